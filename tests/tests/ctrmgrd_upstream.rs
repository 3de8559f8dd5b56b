//! Upstream ctrmgrd scenarios (upstream-ctrmgrd.md §8.2, `ctrmgrd_test.py`) end to end: a
//! private redis-server, the shared dockerd, the fake Kubernetes API server over HTTPS, the
//! emulated kubelet, the emulated service manager running the real `container` binary, and
//! ctrmgrd in-process. Each upstream expectation is translated to this system (CONFIG_DB /
//! STATE_DB fields, node labels at the fake master, containers and images on the real dockerd);
//! where the project differs on purpose, docs/COMPATIBILITY.md names the difference.
//!
//! - SV0: only `ip`/`port` configured, no STATE_DB `update_time` (fresh boot) ⇒ no join before
//!   `join_latency_on_boot_seconds`; `insecure=true` added meanwhile is what the join uses (the
//!   switch trusts no CA for the master, so only an insecure CA fetch can succeed); the first
//!   `kubeadm join` fails (`connected=false`, `last_error`), the retry succeeds ⇒
//!   `KUBERNETES_MASTER|SERVER` `connected=true` with ip and port, and the node carries
//!   `sonic_version`, `hwsku`, `deployment_type=unknown` and `worker.sonic/platform` taken from
//!   CONFIG_DB `DEVICE_METADATA|localhost` and the build version (M8).
//! - SV1: STATE_DB `update_time` present (ctrmgrd restarted, not a boot) ⇒ the join happens at
//!   once although the boot latency is the shipped 300 s (`insecure` absent: the master's
//!   certificate is checked against the switch's CA bundle).
//! - SV2: joined, then `disable=true` ⇒ the node is reset (`kubeadm reset -f`, kubelet stopped,
//!   kubeconfig removed, node deleted at the master), `connected=false` with ip/port kept; the
//!   running feature is left alone; the same config again does nothing, and labels are no longer
//!   pushed.
//! - F3: a kube deployment goes `ready → running` ⇒ marked good only once
//!   `active_time_to_mark_good` passed: the kube image tagged `docker-<f>:latest` on the real
//!   dockerd, the old local container and its versioned tag removed,
//!   `container_stable_version=2.0.0`, `container_last_version=1.0.0` (the previous stable
//!   version, as upstream), the node carries `<f>_2.0.0_enabled=true` (M7).
//! - F4: `remote_state stopped → none` (`container wait` gave up on a deployment that does not
//!   come back) with fallback allowed ⇒ restart at once to local, the local container runs. The
//!   counter-case (M9): with `no_fallback_to_local=true` the same transition restarts nothing.
//! - L0: connected ⇒ desired labels reach the node; changed values follow, a key deleted from
//!   `KUBE_LABELS|SET` is removed from the node (M6), labels set at the master by others stay.
//! - L1: not connected (every join fails) ⇒ desired labels are kept in STATE_DB but never patched
//!   onto the node; once a join succeeds they arrive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ctrmgrd_common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ctrmgrd_common::{KUBE_VERSION, LOCAL_VERSION, NODE, RunningDaemon, Switch, wait_for};
use sonic_daemon::Exit;
use sonic_db::Fields;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(90);
/// The build version the daemon describes the node with.
const SONIC_VERSION: &str = "20201230.111";

/// `remote_ctr.config.json` with small timers and the given boot latency and revert timeout.
fn timers(join_latency_on_boot: u64, revert_to_local_on_wait: u64) -> String {
    format!(
        r#"{{
    "join_latency_on_boot_seconds": {join_latency_on_boot},
    "retry_join_interval_seconds": 2,
    "retry_labels_update_seconds": 1,
    "revert_to_local_on_wait_seconds": {revert_to_local_on_wait},
    "tag_latest_image_on_wait_seconds": 1,
    "retry_tag_latest_seconds": 1,
    "retry_clean_image_seconds": 1,
    "use_k8s_as_http_proxy": "n"
}}"#
    )
}

/// A kubelet that registers the node again after a join or reset deleted it, but runs no pods:
/// the master deploys nothing for the feature, so a kube deployment never comes (back).
fn start_node_only_kubelet(sw: &Switch) -> JoinHandle<()> {
    let store = sw.kube.store().clone();
    tokio::spawn(async move {
        loop {
            if store.node(NODE).is_none() {
                store.add_node(NODE, &[], true);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

async fn server_field(sw: &Switch, field: &str) -> Option<String> {
    sw.server_status().await.get(field).cloned()
}

/// STATE_DB `KUBE_LABELS|SET`, the labels the switch wants on its node.
async fn desired_labels(sw: &Switch) -> Fields {
    match sw.state_db().await {
        Ok(db) => db.get_entry("KUBE_LABELS", "SET").await.unwrap_or_default(),
        Err(_) => Fields::new(),
    }
}

async fn set_state(sw: &Switch, pairs: &[(&str, &str)]) -> anyhow::Result<()> {
    let f: Fields = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    sw.state_db()
        .await?
        .mod_entry("FEATURE", sw.feature.as_str(), &f)
        .await?;
    Ok(())
}

fn node_label(sw: &Switch, key: &str) -> Option<String> {
    sw.node_labels().get(key).cloned()
}

/// Label patches of the node received by the fake master (a join's cordon is a patch too, but
/// of `spec`, not of labels).
fn label_patches(sw: &Switch) -> usize {
    let path = format!("/api/v1/nodes/{NODE}");
    sw.kube
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path == path
                && r.body_json().pointer("/metadata/labels").is_some()
        })
        .count()
}

/// Requests `method path` received by the fake master.
fn master_requests(sw: &Switch, method: &str, path: &str) -> usize {
    sw.kube
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

/// The node-side commands run so far that start with `prefix`.
fn node_commands(sw: &Switch, prefix: &[&str]) -> usize {
    sw.runner
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|argv| argv.len() >= prefix.len() && argv.iter().zip(prefix).all(|(a, p)| a == p))
        .count()
}

/// How many patterns Redis has subscribers for (ctrmgrd subscribes one per table it watches).
fn subscribed_patterns(sw: &Switch) -> i64 {
    sw.redis
        .connection(0)
        .ok()
        .and_then(|mut c| redis::cmd("PUBSUB").arg("NUMPAT").query::<i64>(&mut c).ok())
        .unwrap_or(0)
}

/// What the daemon, the units and the node did: the context of a failed wait.
fn story(sw: &Switch, daemon: &RunningDaemon) -> String {
    format!(
        "daemon log {:?}\nunits {:?}\nnode commands {:?}\nnode labels {:?}",
        daemon.log.lines(),
        sw.services.commands(),
        sw.runner.calls.lock().unwrap(),
        sw.node_labels()
    )
}

/// The tables ctrmgrd subscribes to: CONFIG_DB KUBERNETES_MASTER, FEATURE, IMAGE_MGMT and
/// STATE_DB KUBE_LABELS, FEATURE.
const DAEMON_PATTERNS: i64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sv0_boot_waits_the_latency_takes_the_insecure_update_retries_a_failed_join_and_describes_the_node()
-> anyhow::Result<()> {
    const LATENCY: Duration = Duration::from_secs(8);
    let mut sw = Switch::new("sv0snmp").await?;
    let config = sw.config_db().await?;
    // Only the address (the fake master's port is not 6443); no `insecure`, no `disable`.
    let server: Fields = [
        ("ip".to_string(), "127.0.0.1".to_string()),
        ("port".to_string(), sw.kube.addr().port().to_string()),
    ]
    .into();
    config
        .set_entry("KUBERNETES_MASTER", "SERVER", &server)
        .await?;
    let metadata: Fields = [
        ("hwsku".to_string(), "Mock-HWSKU".to_string()),
        (
            "platform".to_string(),
            "x86_64-mock_platform-r0".to_string(),
        ),
    ]
    .into();
    config
        .set_entry("DEVICE_METADATA", "localhost", &metadata)
        .await?;
    // The switch trusts no CA for the master: only an insecure CA fetch can succeed, so the
    // join proves that the `insecure=true` update was taken.
    let mut kube = sw.kube_settings.clone();
    kube.paths.ca_bundle = None;
    sw.runner.fail_join.store(true, Ordering::SeqCst);
    sw.start_kubelet();

    let started = Instant::now();
    let daemon = sw
        .start_daemon_timed(&timers(LATENCY.as_secs(), 60), kube)
        .await?;
    wait_for("ctrmgrd subscribed to its tables", DEADLINE, || async {
        subscribed_patterns(&sw) >= DAEMON_PATTERNS
    })
    .await?;
    // Fresh boot: nothing may happen within the latency. Observe a window inside it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        started.elapsed() < LATENCY,
        "the setup took {:?}, longer than the boot latency",
        started.elapsed()
    );
    assert_eq!(
        node_commands(&sw, &["kubeadm"]),
        0,
        "{}",
        story(&sw, &daemon)
    );
    assert!(
        sw.server_status().await.is_empty(),
        "{:?}",
        sw.server_status().await
    );
    let ca_path = "/api/v1/namespaces/default/configmaps/kube-root-ca.crt";
    assert_eq!(master_requests(&sw, "GET", ca_path), 0);

    // The second update while the boot timer is pending.
    let insecure: Fields = [("insecure".to_string(), "true".to_string())].into();
    config
        .mod_entry("KUBERNETES_MASTER", "SERVER", &insecure)
        .await?;

    wait_for("the first join failed and recorded", DEADLINE, || async {
        sw.server_status().await.contains_key("last_error")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    assert!(
        started.elapsed() >= LATENCY,
        "joined {:?} after the start, before the boot latency",
        started.elapsed()
    );
    let failed = sw.server_status().await;
    assert_eq!(
        failed.get("connected").map(String::as_str),
        Some("false"),
        "{failed:?}"
    );
    let error = failed.get("last_error").cloned().unwrap_or_default();
    assert!(
        error.starts_with("join failed: ") && error.contains("kubeadm join"),
        "{failed:?}"
    );
    // The insecure fetch of the cluster CA worked; `kubeadm join` is what failed.
    assert!(master_requests(&sw, "GET", ca_path) >= 1);
    assert!(sw.runner.joins() >= 1, "{}", story(&sw, &daemon));

    sw.runner.fail_join.store(false, Ordering::SeqCst);
    wait_for("connected=true after the retry", DEADLINE, || {
        sw.connected()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    assert!(sw.runner.joins() >= 2);
    let joined = sw.server_status().await;
    assert_eq!(
        joined.get("ip").map(String::as_str),
        Some("127.0.0.1"),
        "{joined:?}"
    );
    assert_eq!(
        joined.get("port").cloned(),
        Some(sw.kube.addr().port().to_string()),
        "{joined:?}"
    );
    assert!(
        joined.get("update_time").is_some_and(|t| !t.is_empty()),
        "{joined:?}"
    );
    assert!(
        sw.kube_settings.paths.kubeconfig.exists(),
        "kubeconfig written"
    );

    let description = [
        ("sonic_version", SONIC_VERSION),
        ("hwsku", "Mock-HWSKU"),
        ("deployment_type", "unknown"),
        ("worker.sonic/platform", "x86_64-mock_platform-r0"),
    ];
    wait_for(
        "the self-description labels on the node",
        DEADLINE,
        || async {
            description
                .iter()
                .all(|(k, v)| node_label(&sw, k).as_deref() == Some(*v))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    let desired = desired_labels(&sw).await;
    for (k, v) in description {
        assert_eq!(desired.get(k).map(String::as_str), Some(v), "{desired:?}");
    }
    // The node registers shortly after `kubeadm join` returns; a label push that came first is
    // retried, and its problem cleared once it succeeds.
    wait_for("no problem left in the server status", DEADLINE, || async {
        !sw.server_status().await.contains_key("last_error")
    })
    .await?;
    assert_eq!(
        server_field(&sw, "connected").await.as_deref(),
        Some("true")
    );
    assert_eq!(daemon.terminate().await?, Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sv1_update_time_present_means_a_daemon_restart_and_the_join_comes_at_once()
-> anyhow::Result<()> {
    const LATENCY: u64 = 300;
    let mut sw = Switch::new("sv1snmp").await?;
    let server: Fields = [
        ("ip".to_string(), "127.0.0.1".to_string()),
        ("port".to_string(), sw.kube.addr().port().to_string()),
    ]
    .into();
    sw.config_db()
        .await?
        .set_entry("KUBERNETES_MASTER", "SERVER", &server)
        .await?;
    // What an earlier ctrmgrd run left in STATE_DB: not a fresh boot.
    let previous: Fields = [
        ("connected".to_string(), "false".to_string()),
        ("update_time".to_string(), "2020-12-08 22:59:57".to_string()),
    ]
    .into();
    sw.state_db()
        .await?
        .set_entry("KUBERNETES_MASTER", "SERVER", &previous)
        .await?;
    sw.start_kubelet();
    let started = Instant::now();
    let daemon = sw
        .start_daemon_timed(&timers(LATENCY, 60), sw.kube_settings.clone())
        .await?;
    // The shipped boot latency (300 s) does not apply: the join comes at once.
    wait_for("connected=true", Duration::from_secs(60), || sw.connected())
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    assert!(started.elapsed() < Duration::from_secs(LATENCY));
    assert!(sw.runner.joins() >= 1, "{}", story(&sw, &daemon));
    let joined = sw.server_status().await;
    assert_eq!(
        joined.get("ip").map(String::as_str),
        Some("127.0.0.1"),
        "{joined:?}"
    );
    assert_eq!(
        joined.get("port").cloned(),
        Some(sw.kube.addr().port().to_string())
    );
    assert_ne!(
        joined.get("update_time").map(String::as_str),
        Some("2020-12-08 22:59:57"),
        "the new state is stamped"
    );
    wait_for("sonic_version on the node", DEADLINE, || async {
        node_label(&sw, "sonic_version").as_deref() == Some(SONIC_VERSION)
    })
    .await?;
    assert_eq!(daemon.terminate().await?, Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sv2_disable_after_the_join_resets_the_node_and_records_disconnected() -> anyhow::Result<()>
{
    let mut sw = Switch::new("sv2snmp").await?;
    sw.set_feature_config(&[("set_owner", "local"), ("state", "enabled")])
        .await?;
    sw.boot_feature().await?;
    wait_for("local start", DEADLINE, || async {
        sw.status_field("current_owner").await.as_deref() == Some("local")
    })
    .await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    wait_for("sonic_version on the node", DEADLINE, || async {
        node_label(&sw, "sonic_version").as_deref() == Some(SONIC_VERSION)
    })
    .await?;
    assert!(sw.kube_settings.paths.kubeconfig.exists());
    let units_before = sw.services.commands();
    let resets_before = node_commands(&sw, &["kubeadm", "reset", "-f"]);
    let kubelet_stops_before = node_commands(&sw, &["systemctl", "stop", "kubelet"]);
    let joins = sw.runner.joins();
    let node_path = format!("/api/v1/nodes/{NODE}");
    let deletes_before = master_requests(&sw, "DELETE", &node_path);

    let disable: Fields = [("disable".to_string(), "true".to_string())].into();
    let config = sw.config_db().await?;
    config
        .mod_entry("KUBERNETES_MASTER", "SERVER", &disable)
        .await?;
    wait_for("connected=false", DEADLINE, || async {
        server_field(&sw, "connected").await.as_deref() == Some("false")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    let status = sw.server_status().await;
    assert_eq!(
        status.get("ip").map(String::as_str),
        Some("127.0.0.1"),
        "{status:?}"
    );
    assert_eq!(
        status.get("port").cloned(),
        Some(sw.kube.addr().port().to_string())
    );
    // The node side was reset and the node left the master.
    assert_eq!(
        node_commands(&sw, &["kubeadm", "reset", "-f"]),
        resets_before + 1,
        "{}",
        story(&sw, &daemon)
    );
    assert_eq!(
        node_commands(&sw, &["systemctl", "stop", "kubelet"]),
        kubelet_stops_before + 1
    );
    assert!(!sw.kube_settings.paths.kubeconfig.exists());
    assert_eq!(
        master_requests(&sw, "DELETE", &node_path),
        deletes_before + 1,
        "the node deleted at the master"
    );

    // The same config again changes nothing; labels are no longer pushed.
    let patches = label_patches(&sw);
    config
        .mod_entry("KUBERNETES_MASTER", "SERVER", &disable)
        .await?;
    sw.set_desired_labels(&[("after_reset", "x")]).await?;
    wait_for("the desired label stored", DEADLINE, || async {
        desired_labels(&sw).await.contains_key("after_reset")
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        node_commands(&sw, &["kubeadm", "reset", "-f"]),
        resets_before + 1,
        "{}",
        story(&sw, &daemon)
    );
    assert_eq!(sw.runner.joins(), joins);
    assert_eq!(label_patches(&sw), patches);
    assert_eq!(node_label(&sw, "after_reset"), None);
    assert_eq!(
        server_field(&sw, "connected").await.as_deref(),
        Some("false")
    );
    // Leaving the master does not touch the running feature.
    assert_eq!(sw.services.commands(), units_before);
    assert!(sw.container_running(sw.feature.as_str()).await);
    assert_eq!(daemon.log.count("Restarted"), 0, "{:?}", daemon.log.lines());
    assert_eq!(daemon.terminate().await?, Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_running_deployment_is_marked_good_only_after_the_timer_and_its_image_becomes_local()
-> anyhow::Result<()> {
    const MARK_GOOD: Duration = Duration::from_secs(4);
    let mut sw = Switch::new("f3snmp").await?;
    sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
        .await?;
    // Everything else at the defaults, which reproduce upstream's tag-latest and clean-up.
    sw.set_image_mgmt("GLOBAL", &[("active_time_to_mark_good", "4s")])
        .await?;
    let local_latest = format!("{}:latest", sw.local_image);
    let local_versioned = format!("{}:{LOCAL_VERSION}", sw.local_image);
    let kube_ref = format!("{}:{KUBE_VERSION}", sw.kube_image);
    let local_id = sw.image_id(&local_latest).await.expect("local image");
    let kube_id = sw.image_id(&kube_ref).await.expect("kube image");
    assert_ne!(local_id, kube_id);
    // Boot: not joined yet, so the local image runs; `container wait` records it as stable.
    sw.boot_feature().await?;
    wait_for("local runs, stable version 1.0.0", DEADLINE, || async {
        let s = sw.status().await;
        s.get("current_owner").map(String::as_str) == Some("local")
            && s.get("container_stable_version").map(String::as_str) == Some(LOCAL_VERSION)
    })
    .await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;

    // The pod is admitted (pending), the unit hands over, `container wait` says ready and the
    // pod's container_startup records running.
    wait_for("remote_state=running under kube", DEADLINE, || async {
        let s = sw.status().await;
        s.get("current_owner").map(String::as_str) == Some("kube")
            && s.get("remote_state").map(String::as_str) == Some("running")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    let running_at = Instant::now();
    // Not good yet: nothing tagged, nothing removed, the stable version unchanged.
    let s = sw.status().await;
    assert_eq!(
        s.get("container_stable_version").map(String::as_str),
        Some(LOCAL_VERSION),
        "{s:?}"
    );
    assert_eq!(s.get("container_last_version"), None, "{s:?}");
    assert_eq!(
        s.get("container_version").map(String::as_str),
        Some(KUBE_VERSION)
    );
    assert_eq!(sw.image_id(&local_latest).await.as_ref(), Some(&local_id));
    assert!(
        sw.docker
            .inspect_container(sw.feature.as_str())
            .await?
            .is_some(),
        "the old local container is still there"
    );

    wait_for("container_stable_version=2.0.0", DEADLINE, || async {
        sw.status_field("container_stable_version").await.as_deref() == Some(KUBE_VERSION)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    // Seen running at most one poll after the write, so the mark-good came at least the timer
    // minus that slack after running.
    assert!(
        running_at.elapsed() >= MARK_GOOD - Duration::from_secs(1),
        "marked good {:?} after running",
        running_at.elapsed()
    );
    assert_eq!(
        sw.status_field("container_last_version").await.as_deref(),
        Some(LOCAL_VERSION)
    );
    // The image operations on the real dockerd: the kube image is now the local (golden) one,
    // the old local container and the old versioned local tag are gone, the running image stays.
    assert_eq!(sw.image_id(&local_latest).await.as_ref(), Some(&kube_id));
    wait_for("the old local container removed", DEADLINE, || async {
        matches!(
            sw.docker.inspect_container(sw.feature.as_str()).await,
            Ok(None)
        )
    })
    .await?;
    wait_for("the old local versioned tag removed", DEADLINE, || async {
        sw.image_id(&local_versioned).await.is_none()
    })
    .await?;
    assert_eq!(sw.image_id(&kube_ref).await.as_ref(), Some(&kube_id));
    assert!(sw.container_running(&format!("k8s_{}", sw.feature)).await);
    // The node says which version runs (M7) and that the feature is enabled.
    wait_for("<f>_2.0.0_enabled=true on the node", DEADLINE, || async {
        node_label(&sw, &format!("{}_{KUBE_VERSION}_enabled", sw.feature)).as_deref()
            == Some("true")
    })
    .await?;
    assert_eq!(
        node_label(&sw, &sw.enabled_label()).as_deref(),
        Some("true")
    );
    let s = sw.status().await;
    assert_eq!(s.get("current_owner").map(String::as_str), Some("kube"));
    assert_eq!(s.get("remote_state").map(String::as_str), Some("running"));
    assert_eq!(daemon.terminate().await?, Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

/// STATE_DB as `container stop` leaves it after the kube deployment ended and the unit went
/// down: `remote_state` running → stopped.
async fn deployment_stopped(sw: &Switch) -> anyhow::Result<()> {
    set_state(
        sw,
        &[
            ("system_state", "down"),
            ("current_owner", "none"),
            ("container_id", ""),
            ("remote_state", "stopped"),
            ("container_version", KUBE_VERSION),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_stopped_to_none_with_fallback_allowed_restarts_at_once_to_the_local_container()
-> anyhow::Result<()> {
    let sw = Switch::new("f4snmp").await?;
    // Fallback allowed (no `no_fallback_to_local`).
    sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
        .await?;
    let kubelet = start_node_only_kubelet(&sw);
    // `container wait` gives a missing deployment 3 s.
    let daemon = sw
        .start_daemon_timed(&timers(0, 3), sw.kube_settings.clone())
        .await?;
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    deployment_stopped(&sw).await?;
    // The unit is down with kube stopped: ctrmgrd starts it again for kube (upstream's
    // kube-upgrade restart); `container start` runs nothing locally (connected, stopped).
    wait_for("restarted for kube", DEADLINE, || async {
        daemon.log.count("Restarted f4snmp to switch to kube") == 1
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    // No deployment comes: `container wait` gives up (stopped → none) and ctrmgrd restarts the
    // unit at once, which runs the local container.
    // (The daemon logs a restart once the unit's start has finished.)
    wait_for(
        "restarted for local, local runs the feature",
        DEADLINE,
        || async {
            let s = sw.status().await;
            daemon.log.count("Restarted f4snmp to switch to local") == 1
                && s.get("current_owner").map(String::as_str) == Some("local")
                && s.get("system_state").map(String::as_str) == Some("up")
                && sw.container_running(sw.feature.as_str()).await
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    let s = sw.status().await;
    assert_eq!(
        s.get("remote_state").map(String::as_str),
        Some("none"),
        "{s:?}"
    );
    assert_eq!(
        s.get("container_id").map(String::as_str),
        Some("f4snmp"),
        "{s:?}"
    );
    // The unit: started for kube (it was inactive), its `container wait` gave up and ended,
    // ExecStop, started again for local.
    assert_eq!(
        sw.services.commands(),
        [
            "container start f4snmp",
            "container wait f4snmp",
            "container stop f4snmp",
            "container start f4snmp",
            "container wait f4snmp",
        ]
    );
    let info = sw
        .docker
        .inspect_container(sw.feature.as_str())
        .await?
        .expect("local container");
    assert_eq!(
        info.image_version.as_deref(),
        Some(LOCAL_VERSION),
        "{info:?}"
    );
    kubelet.abort();
    assert_eq!(daemon.terminate().await?, Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_stopped_to_none_without_fallback_restarts_nothing() -> anyhow::Result<()> {
    let sw = Switch::new("f4nofb").await?;
    sw.set_feature_config(&[
        ("set_owner", "kube"),
        ("state", "enabled"),
        ("no_fallback_to_local", "true"),
    ])
    .await?;
    let kubelet = start_node_only_kubelet(&sw);
    let daemon = sw
        .start_daemon_timed(&timers(0, 3), sw.kube_settings.clone())
        .await?;
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    deployment_stopped(&sw).await?;
    wait_for(
        "restarted for kube and waiting for a deployment",
        DEADLINE,
        || async {
            daemon.log.count("Restarted f4nofb to switch to kube") == 1
                && sw.services.count("wait", "f4nofb") == 1
                && sw.status_field("system_state").await.as_deref() == Some("up")
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    // Without fallback `container wait` waits for ever; the transition upstream reacts to is
    // written here as a `container wait` with fallback (or an operator) would.
    let units = sw.services.commands();
    set_state(&sw, &[("remote_state", "none")]).await?;
    // Nothing may happen: give the daemon a window in which it would have restarted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sw.services.commands(), units, "{}", story(&sw, &daemon));
    assert_eq!(
        daemon.log.count("Restarted f4nofb to switch to local"),
        0,
        "{}",
        story(&sw, &daemon)
    );
    assert!(!sw.container_running(sw.feature.as_str()).await);
    let s = sw.status().await;
    assert_eq!(
        s.get("current_owner").map(String::as_str),
        Some("none"),
        "{s:?}"
    );
    assert_eq!(
        s.get("remote_state").map(String::as_str),
        Some("none"),
        "{s:?}"
    );
    assert_eq!(
        s.get("system_state").map(String::as_str),
        Some("up"),
        "{s:?}"
    );
    kubelet.abort();
    assert_eq!(daemon.terminate().await?, Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l0_connected_node_gets_the_desired_labels_and_their_changes() -> anyhow::Result<()> {
    let mut sw = Switch::new("l0snmp").await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    wait_for("sonic_version on the node", DEADLINE, || async {
        node_label(&sw, "sonic_version").as_deref() == Some(SONIC_VERSION)
    })
    .await?;
    // A label the node got elsewhere (the master's operator).
    let mut at_master = sw.node_labels();
    at_master.insert("zone".into(), "a".into());
    let pairs: Vec<(&str, &str)> = at_master
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sw.kube.store().set_node_labels(NODE, &pairs)?;

    sw.set_desired_labels(&[("foo", "bar"), ("hello", "world")])
        .await?;
    wait_for("foo=bar, hello=world on the node", DEADLINE, || async {
        node_label(&sw, "foo").as_deref() == Some("bar")
            && node_label(&sw, "hello").as_deref() == Some("world")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;

    sw.set_desired_labels(&[("foo", "baz")]).await?;
    sw.state_db()
        .await?
        .hdel("KUBE_LABELS", "SET", &["hello"])
        .await?;
    wait_for(
        "foo=baz and hello removed on the node",
        DEADLINE,
        || async {
            node_label(&sw, "foo").as_deref() == Some("baz") && node_label(&sw, "hello").is_none()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    assert_eq!(node_label(&sw, "zone").as_deref(), Some("a"));
    assert_eq!(
        node_label(&sw, "sonic_version").as_deref(),
        Some(SONIC_VERSION)
    );
    assert!(!sw.server_status().await.contains_key("last_error"));
    assert_eq!(daemon.terminate().await?, Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_disconnected_node_gets_no_labels_until_a_join_succeeds() -> anyhow::Result<()> {
    let mut sw = Switch::new("l1snmp").await?;
    sw.runner.fail_join.store(true, Ordering::SeqCst);
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("a failed join recorded", DEADLINE, || async {
        let s = sw.server_status().await;
        s.get("connected").map(String::as_str) == Some("false") && s.contains_key("last_error")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    sw.set_desired_labels(&[("foo", "bar")]).await?;
    wait_for("the desired label stored", DEADLINE, || async {
        desired_labels(&sw).await.get("foo").map(String::as_str) == Some("bar")
    })
    .await?;
    // Not connected: nothing may reach the node. Join retries keep failing meanwhile.
    let joins = sw.runner.joins();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(sw.runner.joins() > joins, "joins are retried");
    assert_eq!(label_patches(&sw), 0, "{}", story(&sw, &daemon));
    assert_eq!(node_label(&sw, "foo"), None);
    assert!(!sw.connected().await);

    sw.runner.fail_join.store(false, Ordering::SeqCst);
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    wait_for(
        "foo=bar and the self-description on the node",
        DEADLINE,
        || async {
            node_label(&sw, "foo").as_deref() == Some("bar")
                && node_label(&sw, "sonic_version").as_deref() == Some(SONIC_VERSION)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", story(&sw, &daemon)))?;
    assert!(label_patches(&sw) >= 1);
    assert!(!sw.server_status().await.contains_key("last_error"));
    assert_eq!(daemon.terminate().await?, Exit::Terminated);
    sw.teardown().await;
    Ok(())
}
