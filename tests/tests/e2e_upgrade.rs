//! End to end on the lab: kube → kube upgrade through a new DaemonSet gated by
//! `snmp_<version>_enabled` (the HLD's safety-check rollout), and a kube pod of the version the
//! switch already runs locally held by `container_startup`. Real binaries, real redis and
//! dockerd, the fake master and the emulated kubelet; each case asserts STATE_DB, the node's
//! labels at the API server and the real containers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lab_e2e;

use std::time::Duration;

use lab_e2e::{Case, get, lab, serial};
use sonic_tests::kubelet::pods_of;
use sonic_tests::lab::{
    APP_STARTED, FEATURE, KUBE_REPO, KUBE_VERSION, LOCAL_VERSION, NODE, UPGRADE_VERSION,
};

fn image(v: &str) -> String {
    format!("{KUBE_REPO}:{v}")
}

fn version_label(v: &str) -> String {
    format!("{FEATURE}_{v}_enabled")
}

/// Creates the gated DaemonSet of `v` and lets the rollout controller enable it on this node.
async fn gated_daemonset(c: &Case, v: &str) {
    c.lab
        .kube()
        .store()
        .create_daemonset(&c.lab.daemonset(v, true).unwrap())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_to_kube_upgrade_waits_for_the_version_labels_then_replaces_the_old_pod() {
    let _serial = serial().lock().await;
    let c = lab(|o| o.daemonset = false).await;
    let store = c.lab.kube().store().clone();

    // 1.1.0 rolled out to this node the HLD way: its own DaemonSet and version label.
    gated_daemonset(&c, KUBE_VERSION).await;
    c.config(&[
        "kubernetes",
        "label",
        "add",
        &version_label(KUBE_VERSION),
        "true",
    ]);
    c.config(&["feature", "owner", FEATURE, "kube"]);
    let before = c
        .wait_state("1.1.0 running under kube", |s| {
            get(s, "current_owner") == Some("kube")
                && get(s, "remote_state") == Some("running")
                && get(s, "container_version") == Some(KUBE_VERSION)
        })
        .await;
    let old = c.running_kube_of(&image(KUBE_VERSION)).await;
    assert_eq!(old.len(), 1, "{old:?}");
    let old = old[0].clone();
    assert_eq!(get(&before, "container_id"), Some(&old.id[..12]));
    c.wait_labels("1.1.0 labels on the node", |l| {
        get(l, &format!("{FEATURE}_enabled")) == Some("true")
            && get(l, &version_label(KUBE_VERSION)) == Some("true")
    })
    .await;

    // The 1.2.0 DaemonSet exists, but this node is not selected yet: nothing changes.
    gated_daemonset(&c, UPGRADE_VERSION).await;
    c.holds_for(
        "nothing changes before the 1.2.0 label",
        Duration::from_secs(6),
        || async {
            let s = c.state();
            if get(&s, "container_version") != Some(KUBE_VERSION)
                || get(&s, "remote_state") != Some("running")
                || get(&s, "container_id") != Some(&old.id[..12])
            {
                return Err(format!("state {s:?}"));
            }
            if c.kube_containers()
                .await
                .iter()
                .any(|k| k.image == image(UPGRADE_VERSION))
            {
                return Err("a 1.2.0 container exists before its label".into());
            }
            if !pods_of(store.as_ref(), "default", "snmp-1-2-0", NODE).is_empty() {
                return Err("a 1.2.0 pod exists before its label".into());
            }
            if get(&c.lab.node_labels(), &version_label(UPGRADE_VERSION)).is_some() {
                return Err("the 1.2.0 label is on the node".into());
            }
            Ok(())
        },
    )
    .await;

    // The rollout controller moves this node from 1.1.0 to 1.2.0: it takes the old version's
    // label away and adds the new one. (The HLD's make-before-break order, adding the new label
    // while the old one stays, is `hld_order_upgrade_adds_the_new_label_and_the_node_removes_the_old_one`.)
    c.config(&["kubernetes", "label", "drop", &version_label(KUBE_VERSION)]);
    c.config(&[
        "kubernetes",
        "label",
        "add",
        &version_label(UPGRADE_VERSION),
        "true",
    ]);
    let after = c
        .wait_state("1.2.0 took over under kube", |s| {
            get(s, "current_owner") == Some("kube")
                && get(s, "remote_state") == Some("running")
                && get(s, "container_version") == Some(UPGRADE_VERSION)
        })
        .await;
    let new = c.running_kube_of(&image(UPGRADE_VERSION)).await;
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(get(&after, "container_id"), Some(&new[0].id[..12]));
    assert_eq!(get(&after, "system_state"), Some("up"));

    // Version labels: the running version enabled (ctrmgrd keeps it), the replaced one gone
    // (which undeploys the old DaemonSet's pod); the local version is still advertised.
    c.wait_labels("version labels after the upgrade", |l| {
        get(l, &format!("{FEATURE}_enabled")) == Some("true")
            && get(l, &version_label(UPGRADE_VERSION)) == Some("true")
            && get(l, &version_label(KUBE_VERSION)).is_none()
            && get(l, &format!("{FEATURE}_local")) == Some(LOCAL_VERSION)
    })
    .await;
    c.wait_for(
        "the 1.1.0 pod and container are gone",
        lab_e2e::DEADLINE,
        || async {
            pods_of(store.as_ref(), "default", "snmp-1-1-0", NODE).is_empty()
                && c.running_kube_of(&image(KUBE_VERSION)).await.is_empty()
        },
    )
    .await;
    // 1.2.0 still owns the feature once the old pod is gone, and the local container is down.
    let s = c.state();
    assert_eq!(get(&s, "container_version"), Some(UPGRADE_VERSION), "{s:?}");
    assert_eq!(get(&s, "container_id"), Some(&new[0].id[..12]), "{s:?}");
    assert!(!c.running().await.contains_key(FEATURE));
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_pod_of_the_local_version_is_frozen_and_local_keeps_the_feature() {
    let _serial = serial().lock().await;
    let c = lab(|o| o.daemonset = false).await;
    c.config(&["feature", "owner", FEATURE, "kube"]);
    c.wait_labels("snmp enabled for kube", |l| {
        get(l, &format!("{FEATURE}_enabled")) == Some("true")
            && get(l, &format!("{FEATURE}_local")) == Some(LOCAL_VERSION)
    })
    .await;
    // The master deploys the very version the switch runs locally.
    c.lab
        .kube()
        .store()
        .create_daemonset(&c.lab.daemonset(LOCAL_VERSION, false).unwrap())
        .unwrap();
    c.wait_for(
        "the 1.0.0 pod's container_startup holds it",
        lab_e2e::DEADLINE,
        || async {
            let Some(k) = c.running_kube_of(&image(LOCAL_VERSION)).await.pop() else {
                return false;
            };
            let logs = c.lab.container_logs(&k.id).await.unwrap_or_default();
            logs.to_lowercase().contains("marked disabled")
        },
    )
    .await;
    let k = c
        .running_kube_of(&image(LOCAL_VERSION))
        .await
        .pop()
        .unwrap();
    // Held, not started: give it time to (wrongly) proceed, then look again.
    c.holds_for(
        "local keeps the feature",
        Duration::from_secs(6),
        || async {
            let s = c.state();
            let local = get(&s, "current_owner") == Some("local")
                && get(&s, "container_id") == Some(FEATURE)
                && get(&s, "remote_state") == Some("none")
                && get(&s, "container_version") == Some(LOCAL_VERSION);
            if local {
                Ok(())
            } else {
                Err(format!("state {s:?}"))
            }
        },
    )
    .await;
    let logs = c.lab.container_logs(&k.id).await.unwrap();
    assert!(
        !logs.contains(APP_STARTED),
        "the pod's application started:\n{logs}"
    );
    let running = c.running().await;
    assert_eq!(
        running.get(FEATURE).map(String::as_str),
        Some("docker-snmp:latest"),
        "{running:?}"
    );
    assert_eq!(
        running.get(&k.name).map(String::as_str),
        Some(image(LOCAL_VERSION).as_str()),
        "the held pod container keeps running: {running:?}"
    );
    // The local container's application did start.
    let local_logs = c.lab.container_logs(FEATURE).await.unwrap();
    assert!(local_logs.contains(APP_STARTED), "{local_logs}");
    let labels = c.lab.node_labels();
    assert_eq!(
        get(&labels, &version_label(LOCAL_VERSION)),
        None,
        "{labels:?}"
    );
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hld_order_upgrade_adds_the_new_label_and_the_node_removes_the_old_one() {
    // The HLD's make-before-break rollout: the controller adds `snmp_1.2.0_enabled=true` while
    // `snmp_1.1.0_enabled` stays; the node removes the older version's label itself (HLD
    // "Safety Check Service": "Remove the label used by older manifest ... Node may do this
    // removal"), before the hand-over restart kills the 1.1.0 container.
    let _serial = serial().lock().await;
    let c = lab(|o| o.daemonset = false).await;
    let store = c.lab.kube().store().clone();

    gated_daemonset(&c, KUBE_VERSION).await;
    c.config(&[
        "kubernetes",
        "label",
        "add",
        &version_label(KUBE_VERSION),
        "true",
    ]);
    c.config(&["feature", "owner", FEATURE, "kube"]);
    c.wait_state("1.1.0 running under kube", |s| {
        get(s, "current_owner") == Some("kube")
            && get(s, "remote_state") == Some("running")
            && get(s, "container_version") == Some(KUBE_VERSION)
    })
    .await;
    c.wait_labels("1.1.0 labels on the node", |l| {
        get(l, &format!("{FEATURE}_enabled")) == Some("true")
            && get(l, &version_label(KUBE_VERSION)) == Some("true")
    })
    .await;

    gated_daemonset(&c, UPGRADE_VERSION).await;
    c.config(&[
        "kubernetes",
        "label",
        "add",
        &version_label(UPGRADE_VERSION),
        "true",
    ]);
    let after = c
        .wait_state("1.2.0 took over under kube", |s| {
            get(s, "current_owner") == Some("kube")
                && get(s, "remote_state") == Some("running")
                && get(s, "container_version") == Some(UPGRADE_VERSION)
        })
        .await;
    let new = c.running_kube_of(&image(UPGRADE_VERSION)).await;
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(get(&after, "container_id"), Some(&new[0].id[..12]));

    // Only the running version's label is left, on the node and in KUBE_LABELS|SET.
    c.wait_labels("only the running version's label", |l| {
        get(l, &format!("{FEATURE}_enabled")) == Some("true")
            && get(l, &version_label(UPGRADE_VERSION)) == Some("true")
            && get(l, &version_label(KUBE_VERSION)).is_none()
            && get(l, &format!("{FEATURE}_local")) == Some(LOCAL_VERSION)
    })
    .await;
    assert_eq!(get(&c.desired_labels(), &version_label(KUBE_VERSION)), None);
    c.wait_for(
        "the 1.1.0 pod and container are gone",
        lab_e2e::DEADLINE,
        || async {
            pods_of(store.as_ref(), "default", "snmp-1-1-0", NODE).is_empty()
                && c.running_kube_of(&image(KUBE_VERSION)).await.is_empty()
        },
    )
    .await;
    // 1.2.0 keeps the feature past the old pod's end and a kubelet back-off: the replaced
    // version never takes it back.
    c.holds_for(
        "1.2.0 keeps the feature",
        Duration::from_secs(6),
        || async {
            let s = c.state();
            if get(&s, "container_version") != Some(UPGRADE_VERSION)
                || get(&s, "container_id") != Some(&new[0].id[..12])
                || get(&s, "remote_state") != Some("running")
            {
                return Err(format!("state {s:?}"));
            }
            if !c.running_kube_of(&image(KUBE_VERSION)).await.is_empty() {
                return Err("a 1.1.0 container runs again".into());
            }
            Ok(())
        },
    )
    .await;
    assert!(!c.running().await.contains_key(FEATURE));
    c.finish().await;
}
