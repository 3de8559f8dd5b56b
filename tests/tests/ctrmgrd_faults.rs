//! ctrmgrd under faults, end to end: the master down while labels change (L*: the node ends with
//! exactly the desired labels, the outage is logged once), the master answering 5xx, resetting
//! connections or too slow to answer in time (the same: reported once in the log and in STATE_DB,
//! retried, resumed), Redis restarted mid-scenario (subscriptions reconnect and the daemon
//! reconciles), SIGTERM finishing cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ctrmgrd_common;

use std::time::Duration;

use ctrmgrd_common::{Switch, wait_for};
use sonic_db::Fields;
use sonic_tests::fake_kube::{Fault, FaultRule};

const DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_labels_changed_during_a_master_outage_reach_the_node_after_recovery()
-> anyhow::Result<()> {
    let mut sw = Switch::new("l2snmp").await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    sw.set_desired_labels(&[("foo", "bar")]).await?;
    wait_for("foo=bar on the node", DEADLINE, || async {
        sw.node_labels().get("foo").map(String::as_str) == Some("bar")
    })
    .await?;

    let before = daemon.log.lines().len();
    sw.kube.set_down(true).await?;
    for i in 0..5 {
        sw.set_desired_labels(&[("foo", &format!("v{i}")), (&format!("k{i}"), "x")])
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Retries happen (retry_labels_update_seconds = 1) but the problem is logged once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let problems = daemon
        .log
        .lines()
        .iter()
        .skip(before)
        .filter(|(_, l)| l.starts_with("kubernetes master:") && !l.ends_with("recovered"))
        .count();
    assert_eq!(problems, 1, "{:?}", daemon.log.lines());
    // The problem is in STATE_DB too, written once (retries with the same error change
    // nothing), while the node stays joined.
    let server = sw.server_status().await;
    assert_eq!(server.get("connected").map(String::as_str), Some("true"));
    let error = server.get("last_error").cloned().unwrap_or_default();
    assert!(
        error.starts_with("node label update failed: "),
        "{server:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sw.server_status().await, server, "rewritten on a retry");

    sw.kube.set_down(false).await?;
    wait_for("the desired labels on the node", DEADLINE, || async {
        let l = sw.node_labels();
        l.get("foo").map(String::as_str) == Some("v4")
            && (0..5).all(|i| l.get(&format!("k{i}")).map(String::as_str) == Some("x"))
    })
    .await?;
    wait_for("the problem cleared in STATE_DB", DEADLINE, || async {
        !sw.server_status().await.contains_key("last_error")
    })
    .await?;
    wait_for("recovery logged", DEADLINE, || async {
        daemon.log.lines()[before..]
            .iter()
            .filter(|(_, l)| l == "kubernetes master: recovered")
            .count()
            == 1
    })
    .await?;
    assert_eq!(daemon.terminate().await?, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

/// Labels changed while every request to the node objects meets `fault`: the daemon keeps
/// running and retrying, reports the problem once in its log and once in STATE_DB
/// (`last_error`), and once the fault is gone the node gets exactly the desired labels, the
/// error is cleared and the recovery logged once.
async fn labels_survive_a_misbehaving_master(feature: &str, fault: Fault) -> anyhow::Result<()> {
    let mut sw = Switch::new(feature).await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    sw.set_desired_labels(&[("foo", "bar")]).await?;
    wait_for("foo=bar on the node", DEADLINE, || async {
        sw.node_labels().get("foo").map(String::as_str) == Some("bar")
    })
    .await?;

    let before = daemon.log.lines().len();
    let rule = sw
        .kube
        .inject(FaultRule::path_prefix("/api/v1/nodes", fault.clone()));
    for i in 0..3 {
        sw.set_desired_labels(&[("foo", &format!("v{i}")), (&format!("k{i}"), "x")])
            .await?;
    }
    wait_for("the problem in STATE_DB", DEADLINE, || async {
        sw.server_status()
            .await
            .get("last_error")
            .is_some_and(|e| e.starts_with("node label update failed: "))
    })
    .await?;
    // Several retries (retry_labels_update_seconds = 1, request timeout 3 s) meet the fault.
    wait_for("retries meeting the fault", DEADLINE, || async {
        sw.kube
            .requests()
            .iter()
            .filter(|r| r.fault.is_some())
            .count()
            >= 3
    })
    .await?;
    let server = sw.server_status().await;
    assert_eq!(
        server.get("connected").map(String::as_str),
        Some("true"),
        "{fault:?}: a label failure is not a disconnection"
    );
    let problems: Vec<String> = daemon.log.lines()[before..]
        .iter()
        .filter(|(_, l)| l.starts_with("kubernetes master:") && !l.ends_with("recovered"))
        .map(|(_, l)| l.clone())
        .collect();
    assert_eq!(problems.len(), 1, "{fault:?}: {problems:#?}");
    assert!(
        !daemon.handle.is_finished(),
        "{fault:?}: the daemon stopped"
    );
    assert_ne!(
        sw.node_labels().get("foo").map(String::as_str),
        Some("v2"),
        "{fault:?}: a label got through the fault"
    );

    sw.kube.remove_fault(rule);
    wait_for("the desired labels on the node", DEADLINE, || async {
        let l = sw.node_labels();
        l.get("foo").map(String::as_str) == Some("v2")
            && (0..3).all(|i| l.get(&format!("k{i}")).map(String::as_str) == Some("x"))
    })
    .await?;
    wait_for("the problem cleared in STATE_DB", DEADLINE, || async {
        !sw.server_status().await.contains_key("last_error")
    })
    .await?;
    wait_for("recovery logged once", DEADLINE, || async {
        daemon.log.lines()[before..]
            .iter()
            .filter(|(_, l)| l == "kubernetes master: recovered")
            .count()
            == 1
    })
    .await?;
    let problems_after = daemon.log.lines()[before..]
        .iter()
        .filter(|(_, l)| l.starts_with("kubernetes master:") && !l.ends_with("recovered"))
        .count();
    assert_eq!(problems_after, 1, "{:#?}", daemon.log.lines());
    assert_eq!(daemon.terminate().await?, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_answering_503_to_label_updates_is_reported_once_and_the_labels_follow_later()
-> anyhow::Result<()> {
    labels_survive_a_misbehaving_master("m5snmp", Fault::Status(503)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_resetting_connections_is_reported_once_and_the_labels_follow_later()
-> anyhow::Result<()> {
    labels_survive_a_misbehaving_master("mrsnmp", Fault::Reset).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_slower_than_the_request_timeout_is_reported_once_and_the_labels_follow_later()
-> anyhow::Result<()> {
    // The request timeout of the test switch is 3 s.
    labels_survive_a_misbehaving_master("mssnmp", Fault::Slow(Duration::from_secs(5))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_scenario_the_daemon_reconnects_and_reconciles() -> anyhow::Result<()> {
    let mut sw = Switch::new("rrsnmp").await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    sw.set_desired_labels(&[("before", "restart")]).await?;
    wait_for("label before the restart", DEADLINE, || async {
        sw.node_labels().get("before").map(String::as_str) == Some("restart")
    })
    .await?;
    // Persistence is off: the restarted redis is empty, like STATE_DB after a reboot of the
    // database container. The daemon must rebuild from what it finds.
    sw.redis.restart()?;
    let server: Fields = [
        ("ip".to_string(), "127.0.0.1".to_string()),
        ("port".to_string(), sw.kube.addr().port().to_string()),
    ]
    .into();
    sw.config_db()
        .await?
        .set_entry("KUBERNETES_MASTER", "SERVER", &server)
        .await?;
    sw.set_desired_labels(&[("after", "restart")]).await?;
    wait_for("connected recorded again", DEADLINE, || sw.connected()).await?;
    wait_for("label written after the restart", DEADLINE, || async {
        sw.node_labels().get("after").map(String::as_str) == Some("restart")
    })
    .await?;
    assert!(
        daemon.log.count("redis: recovered") >= 1,
        "{:?}",
        daemon.log.lines()
    );
    assert_eq!(daemon.terminate().await?, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    Ok(())
}
