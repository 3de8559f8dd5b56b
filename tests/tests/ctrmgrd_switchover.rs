//! ctrmgrd end to end: real redis-server, the real dockerd, the fake Kubernetes API server over
//! HTTPS, the real `container` binary driven by the emulated service manager, and an emulated
//! kubelet. Upstream scenario ids: F1 (local → kube restart on `pending`), SV0/SV1 (join and
//! node labels), T0 (tag the good image as local, remove the old local container), G4/G5
//! (purge older images, never the golden one), and crash safety (killed at many points).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ctrmgrd_common;

use std::time::Duration;

use sonic_feature_core::ports::ServiceManager;

use ctrmgrd_common::{
    KUBE_VERSION, LOCAL_VERSION, NODE, Switch, assert_switched_to_kube, wait_for, wait_kube_running,
};

const DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_local_to_kube_switch_over_ends_with_the_kube_image_as_golden() -> anyhow::Result<()> {
    let mut sw = Switch::new("f1snmp").await?;
    sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
        .await?;
    sw.set_image_mgmt(
        "GLOBAL",
        &[
            ("active_time_to_mark_good", "1s"),
            ("tag_new_as_local", "true"),
            ("purge_older_image", "true"),
            ("purge_local_copy", "true"),
        ],
    )
    .await?;
    // Boot: not joined yet, so `container start` runs the local image (fallback).
    sw.boot_feature().await?;
    wait_for("local start", DEADLINE, || async {
        sw.status_field("current_owner").await.as_deref() == Some("local")
    })
    .await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;

    // SV: joined, connected recorded, self-description labels pushed to the node.
    wait_for("connected=true", DEADLINE, || async {
        let db = sw.state_db().await.unwrap();
        db.get_entry("KUBERNETES_MASTER", "SERVER")
            .await
            .unwrap_or_default()
            .get("connected")
            .map(String::as_str)
            == Some("true")
    })
    .await?;
    wait_for("self-description labels on the node", DEADLINE, || async {
        let l = sw.node_labels();
        l.get("sonic_version").map(String::as_str) == Some("20201230.111")
            && l.contains_key("hwsku")
            && l.get("deployment_type").map(String::as_str) == Some("unknown")
    })
    .await?;

    // F1: the pod's admission wrote pending; ctrmgrd restarted the unit, which handed over.
    assert_switched_to_kube(&sw, DEADLINE).await?;
    assert!(
        sw.services.count("stop", "f1snmp") >= 1,
        "{:?}",
        sw.services.commands()
    );
    assert!(
        daemon.log.count("Restarted f1snmp to switch to kube") >= 1,
        "{:?}",
        daemon.log.lines()
    );
    // G: the original local copy's versioned tag is purged; the golden image stays.
    wait_for("the old local versioned tag purged", DEADLINE, || async {
        sw.image_id(&format!("{}:{LOCAL_VERSION}", sw.local_image))
            .await
            .is_none()
    })
    .await?;
    assert!(
        sw.image_id(&format!("{}:latest", sw.local_image))
            .await
            .is_some(),
        "the golden image must never be removed"
    );
    assert_eq!(
        sw.status_field("container_last_version").await.as_deref(),
        Some(LOCAL_VERSION)
    );
    assert_eq!(
        sw.status_field("container_version").await.as_deref(),
        Some(KUBE_VERSION)
    );
    assert!(sw.kube.store().node(NODE).is_some());

    let exit = daemon.terminate().await?;
    assert_eq!(exit, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

/// A restart that fails leaves the unit inactive, and nothing restarts an inactive unit (F2):
/// the daemon retries it, and a daemon killed before its retry worked leaves the restart pending
/// in STATE_DB, where the next one finds it and carries it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_failed_before_a_kill_is_carried_out_by_the_next_daemon()
-> anyhow::Result<()> {
    let sw = Switch::ready_for_switch_over("krsnmp").await?;
    sw.services.fail_restarts(true);
    let first = sw.start_daemon(None).await?;
    let failed = |sw: &Switch| {
        sw.services
            .timeline()
            .iter()
            .filter(|l| l.contains("restart krsnmp: Job for"))
            .count()
    };
    wait_for("the switch-over restart failing", DEADLINE, || async {
        failed(&sw) >= 1
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", sw.services.timeline().join("\n")))?;
    // Killed: the in-process daemon is dropped where it stands, without any cleanup.
    first.handle.abort();
    let _ = first.handle.await;
    let pending = sw.pending_restarts().await;
    assert_eq!(
        pending.get("krsnmp").map(String::as_str),
        Some("kube"),
        "{pending:?}"
    );
    assert!(
        !sw.services.is_active(&sw.feature).await?,
        "the failed restart left the unit inactive"
    );

    sw.services.fail_restarts(false);
    let second = sw.start_daemon(None).await?;
    if let Err(e) = assert_switched_to_kube(&sw, DEADLINE).await {
        anyhow::bail!(
            "after the kill: {e:#}\n{}\nlog {:#?}",
            diagnosis(&sw).await,
            second.log.lines()
        );
    }
    assert!(
        second.log.count("Restarted krsnmp to switch to kube") >= 1,
        "{:#?}",
        second.log.lines()
    );
    wait_for("the pending restart record cleared", DEADLINE, || async {
        sw.pending_restarts().await.is_empty()
    })
    .await?;
    second.terminate().await?;
    sw.teardown().await;
    Ok(())
}

/// Actions of different lanes run side by side: while the switch-over's restart of the unit is
/// slow (its stop waits for a container), a label the operator adds still reaches the node,
/// and the switch-over completes afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_added_during_a_slow_restart_reaches_the_node_before_the_restart_ends()
-> anyhow::Result<()> {
    let sw = Switch::ready_for_switch_over("slowsnmp").await?;
    sw.services.slow_restarts(Duration::from_secs(20));
    let daemon = sw.start_daemon(None).await?;
    let timeline_has =
        |sw: &Switch, what: &str| sw.services.timeline().iter().any(|l| l.ends_with(what));
    wait_for("the switch-over restart under way", DEADLINE, || async {
        timeline_has(&sw, "restart slowsnmp: begins")
    })
    .await?;
    sw.set_desired_labels(&[("rack", "r12")]).await?;
    wait_for("the label rack=r12 on the node", DEADLINE, || async {
        sw.node_labels().get("rack").map(String::as_str) == Some("r12")
    })
    .await?;
    assert!(
        !timeline_has(&sw, "restart slowsnmp: ends"),
        "the label waited for the restart\n{}",
        sw.services.timeline().join("\n")
    );
    if let Err(e) = assert_switched_to_kube(&sw, DEADLINE).await {
        anyhow::bail!(
            "{e:#}\n{}\nlog {:#?}",
            diagnosis(&sw).await,
            daemon.log.lines()
        );
    }
    daemon.terminate().await?;
    sw.teardown().await;
    Ok(())
}

/// The tag-as-good timer runs on across a daemon kill: the manager's clocks are persisted
/// (STATE_DB `CTRMGRD_STATE|CLOCKS`, on a clock counting from the boot), so the next daemon
/// tags the kube image when the first would have, not a whole period after its own start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tag_as_good_timer_runs_on_after_a_daemon_kill() -> anyhow::Result<()> {
    const MARK_GOOD: Duration = Duration::from_secs(40);
    const KILLED_AFTER: Duration = Duration::from_secs(25);
    let mut sw = Switch::new("clksnmp").await?;
    sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
        .await?;
    sw.set_image_mgmt("GLOBAL", &[("active_time_to_mark_good", "40s")])
        .await?;
    sw.boot_feature().await?;
    sw.start_kubelet();
    let first = sw.start_daemon(None).await?;
    wait_kube_running(&sw, DEADLINE).await?;
    let running_at = tokio::time::Instant::now();
    wait_for("the mark-good timer persisted", DEADLINE, || async {
        sw.state_entry("CTRMGRD_STATE", "CLOCKS")
            .await
            .get("json")
            .is_some_and(|j| j.contains("mark_good"))
    })
    .await?;
    // The scenario: the first daemon runs for 25 s of the 40 s period, then is killed (dropped
    // without any cleanup).
    tokio::time::sleep_until(running_at + KILLED_AFTER).await;
    assert_ne!(
        sw.status_field("container_stable_version").await.as_deref(),
        Some(KUBE_VERSION),
        "tagged before its period"
    );
    first.handle.abort();
    let _ = first.handle.await;
    let restarted_at = tokio::time::Instant::now();
    let second = sw.start_daemon(None).await?;
    wait_for("container_stable_version=2.0.0", DEADLINE, || async {
        sw.status_field("container_stable_version").await.as_deref() == Some(KUBE_VERSION)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\nlog {:#?}", second.log.lines()))?;
    let after = restarted_at.elapsed();
    // Carried on: due about 15 s after the restart. Started again it would be 40 s or more.
    assert!(
        after < MARK_GOOD - Duration::from_secs(2),
        "tagged {after:?} after the restart: the timer started again\n{:#?}",
        second.log.lines()
    );
    second.terminate().await?;
    sw.teardown().await;
    Ok(())
}

/// Where the crash-test hook kills ctrmgrd.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Right after the n-th action finished, before its result was recorded.
    After(u64),
    /// Right before the n-th action started.
    Before(u64),
}

/// Runs the switch-over with ctrmgrd killed at `kill` (the hook ends the daemon without any
/// cleanup, as SIGKILL would), then starts a fresh ctrmgrd on the same databases, units and
/// master: it must reach the same end state. Returns whether the kill happened.
async fn killed_at(kill: Kill) -> anyhow::Result<bool> {
    let (name, after, before) = match kill {
        Kill::After(n) => (format!("ka{n}snmp"), Some(n), None),
        Kill::Before(n) => (format!("kb{n}snmp"), None, Some(n)),
    };
    let sw = Switch::ready_for_switch_over(&name).await?;
    let first = sw.start_daemon_with(after, before).await?;
    let first_log = first.log.clone();
    let mut handle = first.handle;
    let killed = tokio::select! {
        r = &mut handle => matches!(r??, sonic_daemon::Exit::Aborted(_)),
        r = assert_switched_to_kube(&sw, DEADLINE) => {
            if let Err(e) = r {
                anyhow::bail!(
                    "before the kill: {e:#}\n{}\nlog {:#?}",
                    diagnosis(&sw).await,
                    first_log.lines()
                );
            }
            false
        }
    };
    if !killed {
        let _ = first.control.send(sonic_daemon::Control::Terminate);
        let _ = handle.await;
    }
    let second = sw.start_daemon(None).await?;
    if let Err(e) = assert_switched_to_kube(&sw, DEADLINE).await {
        anyhow::bail!(
            "after a kill at {kill:?}: {e:#}\n{}\nfirst log {:#?}\nlog {:#?}",
            diagnosis(&sw).await,
            first_log.lines(),
            second.log.lines()
        );
    }
    second.terminate().await?;
    sw.teardown().await;
    Ok(killed)
}

/// What a failing kill test prints besides the daemons' logs: the feature's state, the node's
/// labels, the units' commands and the emulated kubelet's doings, with times.
async fn diagnosis(sw: &ctrmgrd_common::Switch) -> String {
    let desired = match sw.state_db().await {
        Ok(db) => db.get_entry("KUBE_LABELS", "SET").await.unwrap_or_default(),
        Err(_) => Default::default(),
    };
    format!(
        "status {:?}\nnode labels {:?}\nKUBE_LABELS|SET {:?}\nunits {:#?}\nkubelet {:#?}",
        sw.status().await,
        sw.node_labels(),
        desired,
        sw.services.timeline(),
        sw.kubelet_events.lock().unwrap().clone(),
    )
}

/// How many killed switch-overs run at the same time (each with its own redis-server, fake
/// master, units and feature name on the shared dockerd): most of a switch-over is waiting for
/// timers, processes and the engine, so they overlap well on two cores.
const CONCURRENT: usize = 6;

/// Runs every kill point, [`CONCURRENT`] at a time, and requires each to have killed the daemon
/// and converged afterwards.
async fn kill_points(kills: Vec<Kill>) -> anyhow::Result<()> {
    use futures::StreamExt;
    let results: Vec<(Kill, anyhow::Result<bool>)> = futures::stream::iter(kills)
        .map(|kill| async move { (kill, killed_at(kill).await) })
        .buffer_unordered(CONCURRENT)
        .collect()
        .await;
    let mut failures = Vec::new();
    for (kill, r) in results {
        match r {
            Ok(true) => {}
            Ok(false) => {
                failures.push(format!("the switch-over ended before the kill at {kill:?}"))
            }
            Err(e) => failures.push(format!("{kill:?}: {e:#}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

// The switch-over takes about 20 actions (with the clock snapshots); how many exactly depends on
// timing (a retry, a coalesced notification or a coalesced snapshot changes the count, and with
// lanes several run at once), so the kill points stop at 15, well inside every run:
// 2 x 15 kill points, each a real kill, each converging to the same end state.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_over_killed_after_each_of_actions_1_to_15_reaches_the_same_end_state()
-> anyhow::Result<()> {
    kill_points((1..=15).map(Kill::After).collect()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_over_killed_before_each_of_actions_1_to_15_reaches_the_same_end_state()
-> anyhow::Result<()> {
    kill_points((1..=15).map(Kill::Before).collect()).await
}
