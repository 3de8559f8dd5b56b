//! End to end on the lab: failure detection and rollback to the golden image (HLD "Failure mode
//! detection & rollback"). A kube version whose application dies right after admission
//! crash-loops; ctrmgrd alerts once it has not run under kube for the detection period, and
//! after a second period blocks that version (`snmp_<v>_enabled=false`), resets `remote_state`
//! and restarts the service on the local golden image. Real binaries, real redis and dockerd,
//! the fake master and the emulated kubelet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lab_e2e;

use std::time::Duration;

use lab_e2e::{DEADLINE, get, lab, serial};
use sonic_tests::kubelet::pods_of;
use sonic_tests::lab::{FAILING_VERSION, FEATURE, KUBE_REPO, LOCAL_VERSION, NODE};

/// The detection period: `kube_failure_detection` takes whole minutes from the CLI (HLD) and a
/// duration with a unit in CONFIG_DB, which lets the lab use seconds.
const DETECTION: &str = "5s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_looping_kube_version_is_blocked_and_the_golden_local_image_takes_over() {
    let _serial = serial().lock().await;
    let c = lab(|o| {
        o.daemonset = false;
        // A real kubelet's CrashLoopBackOff pace (10 s, then 20 s, ...): the failing pod is not
        // back before ctrmgrd's two detection periods end.
        o.kubelet_restart_backoff = Duration::from_secs(20);
    })
    .await;
    let failing_label = format!("{FEATURE}_{FAILING_VERSION}_enabled");
    c.config(&["feature", "kube_failure_detection", FEATURE, "1"]);
    assert_eq!(
        get(
            &c.lab.paths.hash(4, &format!("FEATURE|{FEATURE}")).unwrap(),
            "kube_failure_detection"
        ),
        Some("1"),
        "the CLI stores minutes"
    );
    c.lab
        .paths
        .hset(
            4,
            &format!("FEATURE|{FEATURE}"),
            &[("kube_failure_detection", DETECTION)],
        )
        .unwrap();

    // The rollout controller enables the failing version on this node; the feature goes kube.
    c.lab
        .kube()
        .store()
        .create_daemonset(&c.lab.daemonset(FAILING_VERSION, true).unwrap())
        .unwrap();
    c.config(&["kubernetes", "label", "add", &failing_label, "true"]);
    c.config(&["feature", "owner", FEATURE, "kube"]);

    // It is admitted (the hand-over happens), then its application exits 1.
    let image = format!("{KUBE_REPO}:{FAILING_VERSION}");
    c.wait_for(
        "the failing version was admitted and died",
        DEADLINE,
        || async {
            let mut died = false;
            for k in c.kube_containers().await {
                if k.image == image && !k.running {
                    let logs = c.lab.container_logs(&k.id).await.unwrap_or_default();
                    died |= logs.contains(&format!("{FEATURE} {FAILING_VERSION} fails"));
                }
            }
            died
        },
    )
    .await;

    // ctrmgrd alerts, then rolls back to the golden local image.
    c.wait_for("alert and rollback in ctrmgrd's log", DEADLINE, || async {
        let log = c.full_ctrmgrd_log();
        log.contains(&format!(
            "feature {FEATURE}: not running under kubernetes for"
        )) && log.contains("falling back to the local golden image")
    })
    .await;
    let s = c
        .wait_state("the golden local image runs", |s| {
            get(s, "current_owner") == Some("local")
                && get(s, "container_id") == Some(FEATURE)
                && get(s, "remote_state") == Some("none")
                && get(s, "system_state") == Some("up")
                && get(s, "container_version") == Some(LOCAL_VERSION)
        })
        .await;
    assert_ne!(get(&s, "container_stable_version"), Some(FAILING_VERSION));
    c.wait_local_running("the local container runs").await;
    let local = c
        .lab
        .docker()
        .inspect_container(FEATURE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.image_version.as_deref(), Some(LOCAL_VERSION));

    // The failing version is blocked on the node, so its DaemonSet no longer selects it.
    c.wait_labels("the failing version is disabled on the node", |l| {
        get(l, &failing_label) == Some("false")
            && get(l, &format!("{FEATURE}_enabled")) == Some("true")
    })
    .await;
    assert_eq!(get(&c.desired_labels(), &failing_label), Some("false"));
    let store = c.lab.kube().store().clone();
    c.wait_for("the failing pod is gone", DEADLINE, || async {
        pods_of(store.as_ref(), "default", "snmp-1-3-0", NODE).is_empty()
            && c.running_kube_of(&image).await.is_empty()
    })
    .await;
    // Not redeployed: past the kubelet's back-off, local still owns the feature.
    c.holds_for(
        "local keeps the feature past the kubelet's back-off",
        Duration::from_secs(25),
        || async {
            // Owned by local or briefly by nobody while the local unit restarts, never handed
            // back to kube.
            let s = c.state();
            if get(&s, "current_owner") == Some("kube") || get(&s, "remote_state") != Some("none") {
                return Err(format!("state {s:?}"));
            }
            if !c.running_kube_of(&image).await.is_empty() {
                return Err("the failing version runs again".into());
            }
            Ok(())
        },
    )
    .await;
    let s = c
        .wait_state("local after the rollback settled", |s| {
            get(s, "current_owner") == Some("local") && get(s, "system_state") == Some("up")
        })
        .await;
    assert_eq!(get(&s, "container_version"), Some(LOCAL_VERSION), "{s:?}");
    // CONFIG_DB still says kube: only the failing version was taken out.
    assert_eq!(
        get(
            &c.lab.paths.hash(4, &format!("FEATURE|{FEATURE}")).unwrap(),
            "set_owner"
        ),
        Some("kube")
    );
    c.finish().await;
}
