//! End to end on the lab: the master unreachable or disabled (HLD "Kubernetes cluster
//! unreachable impacts"). Label changes made while the API server is down are journaled by
//! ctrmgrd and drained on its return so that the node carries exactly `KUBE_LABELS|SET`;
//! disabling the master resets the node and leaves every container running. Real binaries,
//! real redis and dockerd, the fake master (`set_down`) and the emulated kubelet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lab_e2e;

use std::time::Duration;

use lab_e2e::{DEADLINE, get, lab, serial};
use sonic_tests::lab::{FEATURE, KUBE_REPO, KUBE_VERSION, LOCAL_VERSION};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_changed_while_the_master_is_down_reach_the_node_exactly_on_its_return() {
    let _serial = serial().lock().await;
    let mut c = lab(|o| o.daemonset = false).await;
    c.config(&["kubernetes", "label", "add", "gone", "soon"]);
    c.wait_labels("labels before the outage", |l| {
        get(l, "gone") == Some("soon") && get(l, &format!("{FEATURE}_local")) == Some(LOCAL_VERSION)
    })
    .await;
    let before = c.lab.node_labels();

    c.lab.kube().set_down(true).await.unwrap();
    c.config(&["kubernetes", "label", "add", "foo", "bar"]);
    c.config(&["kubernetes", "label", "drop", "gone"]);
    c.config(&["feature", "owner", FEATURE, "kube"]);
    // ctrmgrd takes the owner change into the desired labels even though it cannot push them.
    c.wait_for(
        "desired labels updated during the outage",
        DEADLINE,
        || async {
            let d = c.desired_labels();
            get(&d, "foo") == Some("bar")
                && get(&d, "gone").is_none()
                && get(&d, &format!("{FEATURE}_enabled")) == Some("true")
        },
    )
    .await;
    // The failed pushes are reported in STATE_DB.
    c.wait_for(
        "the unreachable master reported in KUBERNETES_MASTER|SERVER",
        DEADLINE,
        || async {
            c.server_state()
                .get("last_error")
                .is_some_and(|e| !e.is_empty())
        },
    )
    .await;
    // A few label retries (1 s apart) later: nothing reached the API server, ctrmgrd lives on,
    // and the local container keeps the feature.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.lab.node_labels(), before, "labels reached a down master");
    assert!(c.lab.ctrmgrd_running(), "ctrmgrd died during the outage");
    let s = c.state();
    assert_eq!(get(&s, "current_owner"), Some("local"), "{s:?}");
    assert!(c.running().await.contains_key(FEATURE));

    c.lab.kube().set_down(false).await.unwrap();
    c.wait_for("node labels equal KUBE_LABELS|SET", DEADLINE, || async {
        c.lab.node_labels() == c.desired_labels()
    })
    .await;
    let labels = c.lab.node_labels();
    assert_eq!(get(&labels, "foo"), Some("bar"));
    assert_eq!(get(&labels, "gone"), None, "the removal was not drained");
    assert_eq!(get(&labels, &format!("{FEATURE}_enabled")), Some("true"));
    c.wait_for(
        "the problem is cleared once labels went through",
        DEADLINE,
        || async {
            let s = c.server_state();
            get(&s, "connected") == Some("true") && s.get("last_error").is_none_or(|e| e.is_empty())
        },
    )
    .await;
    c.finish().await;
}

/// Upstream-ctrmgrd.md §7.2.6 says a reset keeps "the current containers"; that holds for the
/// feature, not for a kube pod's container: the reset deletes this node at the master (upstream
/// `kubectl delete node`, here `drain_and_delete_node`) and `kubeadm reset` removes what kubelet
/// ran, so the pod goes and `container wait` ends. With fallback allowed and the master no
/// longer connected, the service comes back on the local (last good) image; enabling the master
/// again rejoins, and the returning pod of that same version is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_master_resets_the_node_and_the_feature_keeps_running_locally() {
    let _serial = serial().lock().await;
    let mut c = lab(|o| o.daemonset = true).await;
    c.config(&["feature", "owner", FEATURE, "kube"]);
    c.wait_state("1.1.0 running under kube and marked good", |s| {
        get(s, "current_owner") == Some("kube")
            && get(s, "remote_state") == Some("running")
            && get(s, "container_version") == Some(KUBE_VERSION)
            && get(s, "container_stable_version") == Some(KUBE_VERSION)
    })
    .await;
    let image = format!("{KUBE_REPO}:{KUBE_VERSION}");
    assert_eq!(c.running_kube_of(&image).await.len(), 1);
    let resets = |c: &lab_e2e::Case| {
        c.lab
            .node_commands()
            .iter()
            .filter(|x| x.starts_with("kubeadm reset"))
            .count()
    };
    let resets_before = resets(&c);

    c.config(&["kubernetes", "server", "disable", "on"]);
    c.wait_for("reset and disconnected", DEADLINE, || async {
        get(&c.server_state(), "connected") == Some("false") && resets(&c) > resets_before
    })
    .await;
    assert!(
        !c.lab.kubelet().is_running(),
        "kubelet still runs after the reset"
    );
    let s = c
        .wait_state("the feature runs the last good image locally", |s| {
            get(s, "current_owner") == Some("local")
                && get(s, "container_id") == Some(FEATURE)
                && get(s, "remote_state") == Some("none")
                && get(s, "system_state") == Some("up")
                && get(s, "container_version") == Some(KUBE_VERSION)
        })
        .await;
    assert_eq!(get(&s, "container_stable_version"), Some(KUBE_VERSION));
    c.wait_local_running("the local container runs").await;
    let local = c
        .lab
        .docker()
        .inspect_container(FEATURE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.image_version.as_deref(), Some(KUBE_VERSION));
    assert!(c.running_kube_of(&image).await.is_empty());
    assert!(c.lab.ctrmgrd_running(), "ctrmgrd died after the reset");
    // Still kube-owned in CONFIG_DB: only the master went away.
    assert_eq!(
        get(
            &c.lab.paths.hash(4, &format!("FEATURE|{FEATURE}")).unwrap(),
            "set_owner"
        ),
        Some("kube")
    );

    // Enabled again: joined and labels pushed to the re-registered node. The pod comes back,
    // but its version is now the local one (`snmp_local`), so it is held and local keeps the
    // feature.
    c.config(&["kubernetes", "server", "disable", "off"]);
    c.wait_for("joined again with the node's labels", DEADLINE, || async {
        get(&c.server_state(), "connected") == Some("true")
            && c.lab.node_labels() == c.desired_labels()
    })
    .await;
    assert_eq!(
        get(&c.lab.node_labels(), &format!("{FEATURE}_local")),
        Some(KUBE_VERSION)
    );
    c.wait_for("the returning 1.1.0 pod is held", DEADLINE, || async {
        let Some(k) = c.running_kube_of(&image).await.pop() else {
            return false;
        };
        let logs = c.lab.container_logs(&k.id).await.unwrap_or_default();
        logs.to_lowercase().contains("marked disabled")
    })
    .await;
    let s = c.state();
    assert_eq!(get(&s, "current_owner"), Some("local"), "{s:?}");
    assert_eq!(get(&s, "remote_state"), Some("none"), "{s:?}");
    assert!(c.running().await.contains_key(FEATURE));
    c.finish().await;
}
