//! ctrmgrd while the Docker engine goes away and comes back (a private dockerd of each test,
//! stopped and started again with `PrivateDockerd`):
//!
//! - without live-restore the deployment and the unit's main process die with the engine in the
//!   middle of a local → kube switch-over; the switch-over with image management (the kube
//!   image tagged as the golden local image, the old local container removed) completes once
//!   the engine is back;
//! - with `--live-restore` the deployment keeps running through the outage and the engine
//!   adopts it again when it comes back;
//! - with `--live-restore`, a restart the daemon asks for while the engine is away (the fast
//!   fallback to local, whose `container start` needs the engine) fails, is retried with
//!   backoff and completes once the engine is back.
//!
//! In all of them the daemon keeps running and reports a problem once (not once per retry) and
//! its end once. The feature unit has systemd's `Restart=always` (SONiC's feature units do),
//! played by the test where the scenario needs it.
//!
//! Not covered: the daemon's own tag-as-good attempt meeting the absent engine (upstream T3).
//! When the engine goes away the unit's `container wait` loses its `docker wait` and exits, and
//! the unit's ExecStop (`container stop`) records the deployment `stopped` although its
//! `docker stop` failed and the pod still runs; that status change disarms the tag-as-good
//! timer before its deadline, so the daemon has no reason to call the engine during the outage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ctrmgrd_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use ctrmgrd_common::{RunningDaemon, Switch, assert_switched_to_kube, wait_for};
use sonic_daemon::report::Level;
use sonic_feature_core::ports::ServiceManager;
use sonic_tests::docker::{EngineOptions, PrivateDockerd, engine_dir};
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(120);

/// systemd's `Restart=always` of the feature unit: starts the unit again whenever it is
/// inactive, once a second, until the returned flag is set.
fn restart_always(sw: &Switch) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let services = sw.services.clone();
    let feature = sw.feature.clone();
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        while !flag.load(Ordering::SeqCst) {
            if !services.is_active(&feature).await.unwrap_or(true) {
                let _ = services.start(&feature).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    (stop, task)
}

/// Error lines of the daemon's log, each with how often it was logged.
fn error_counts(daemon: &RunningDaemon) -> BTreeMap<String, usize> {
    let mut errors = BTreeMap::new();
    for (level, line) in daemon.log.lines() {
        if level == Level::Error {
            *errors.entry(line).or_default() += 1;
        }
    }
    errors
}

/// Lines of the daemon's log that report a problem of `topic` (not its recovery).
fn problems_of(daemon: &RunningDaemon, topic: &str) -> Vec<String> {
    let prefix = format!("{topic}: ");
    daemon
        .log
        .lines()
        .into_iter()
        .filter(|(level, l)| *level == Level::Error && l.starts_with(&prefix))
        .map(|(_, l)| l)
        .collect()
}

/// The processes of a container, from the cgroup dockerd (cgroupfs driver) put it in: readable
/// while the engine is away.
fn container_pids(full_id: &str) -> Vec<i32> {
    for root in [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ] {
        let procs = std::path::Path::new(root)
            .join("docker")
            .join(full_id)
            .join("cgroup.procs");
        if let Ok(text) = std::fs::read_to_string(&procs) {
            let mut pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            pids.sort_unstable();
            return pids;
        }
    }
    Vec::new()
}

/// The pod container of the switch: its full id and its processes.
async fn pod(sw: &Switch) -> anyhow::Result<(String, Vec<i32>)> {
    let name = format!("k8s_{}", sw.feature);
    let details = sw
        .docker
        .inspect_container(&name)
        .await?
        .with_context(|| format!("no container {name}"))?;
    anyhow::ensure!(details.running, "{name} does not run");
    let pids = container_pids(&details.id);
    anyhow::ensure!(!pids.is_empty(), "no processes found for {name}");
    Ok((details.id, pids))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restarted_mid_switch_over_the_daemon_keeps_running_and_the_switch_over_completes()
-> anyhow::Result<()> {
    let engine_dir = engine_dir()?;
    let mut engine = PrivateDockerd::start(engine_dir.path())?;
    let mut sw = Switch::on_engine("dockrs", engine.host().to_string()).await?;
    sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
        .await?;
    // The kube image is marked good 2 s after it runs: while the engine is away.
    sw.set_image_mgmt("GLOBAL", &[("active_time_to_mark_good", "2s")])
        .await?;
    sw.boot_feature().await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("the deployment running", DEADLINE, || async {
        sw.status_field("remote_state").await.as_deref() == Some("running")
    })
    .await?;

    engine.stop()?;
    // The engine stays away for a while (the deployment and the unit's main process died
    // with it); this is the outage, not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(4)).await;
    engine.restart()?;

    let (stop, restarter) = restart_always(&sw);
    let converged = assert_switched_to_kube(&sw, DEADLINE).await;
    stop.store(true, Ordering::SeqCst);
    let _ = restarter.await;
    converged.map_err(|e| anyhow::anyhow!("{e:#}\n{:#?}", daemon.log.lines()))?;

    assert!(!daemon.handle.is_finished(), "the daemon stopped");
    let lines = daemon.log.lines();
    let docker_problems = problems_of(&daemon, "docker").len();
    // Only image management talks to the engine, and it is disarmed as soon as the deployment
    // stops: the daemon itself may never meet the engine's absence here (the live-restore
    // tests below make it). If it does, the problem is logged once and its end once.
    assert!(docker_problems <= 1, "{lines:#?}");
    assert_eq!(
        daemon.log.count("docker: recovered"),
        docker_problems,
        "{lines:#?}"
    );
    // No problem of any kind was logged again on a retry.
    assert!(
        error_counts(&daemon).values().all(|n| *n == 1),
        "{lines:#?}"
    );
    assert_eq!(daemon.terminate().await?, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    drop(engine);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restarted_with_live_restore_under_a_running_deployment_the_pod_runs_through_and_the_daemon_keeps_running()
-> anyhow::Result<()> {
    let engine_dir = engine_dir()?;
    let mut engine = PrivateDockerd::start_with(engine_dir.path(), EngineOptions::live_restore())?;
    let mut sw = Switch::on_engine("docklr", engine.host().to_string()).await?;
    sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
        .await?;
    sw.boot_feature().await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("the deployment running", DEADLINE, || async {
        sw.status_field("remote_state").await.as_deref() == Some("running")
    })
    .await?;
    let (pod_id, pod_pids) = pod(&sw).await?;

    engine.stop()?;
    // Live-restore: the deployment runs on without its engine.
    assert_eq!(
        container_pids(&pod_id),
        pod_pids,
        "the pod died with the engine"
    );
    // The unit's `container wait` loses its `docker wait` and the unit's ExecStop records the
    // deployment stopped (its `docker stop` fails): the daemon reacts to that while the
    // engine is away.
    wait_for(
        "the unit's stop recorded while the engine is away",
        DEADLINE,
        || async { sw.status_field("remote_state").await.as_deref() == Some("stopped") },
    )
    .await?;
    // The outage lasts several of the daemon's retry periods; this is the outage, not a wait
    // for a condition.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        container_pids(&pod_id),
        pod_pids,
        "the pod died during the outage"
    );
    engine.restart()?;

    // The engine adopted the running container: the same container with the same processes.
    wait_for("the engine answering for the pod", DEADLINE, || async {
        pod(&sw).await.is_ok()
    })
    .await?;
    let (pod_after, pids_after) = pod(&sw).await?;
    assert_eq!((pod_after, pids_after), (pod_id, pod_pids));

    let lines = daemon.log.lines();
    assert!(
        !daemon.handle.is_finished(),
        "the daemon stopped\n{lines:#?}"
    );
    let docker_problems = problems_of(&daemon, "docker").len();
    assert!(docker_problems <= 1, "{lines:#?}");
    assert_eq!(
        daemon.log.count("docker: recovered"),
        docker_problems,
        "{lines:#?}"
    );
    // No problem of any kind was logged again on a retry.
    assert!(
        error_counts(&daemon).values().all(|n| *n == 1),
        "{lines:#?}"
    );
    assert_eq!(daemon.terminate().await?, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    drop(engine);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_the_daemon_asks_for_while_docker_is_away_is_retried_and_completes_once_it_is_back()
-> anyhow::Result<()> {
    let engine_dir = engine_dir()?;
    let mut engine = PrivateDockerd::start_with(engine_dir.path(), EngineOptions::live_restore())?;
    let mut sw = Switch::on_engine("dockrt", engine.host().to_string()).await?;
    sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
        .await?;
    // Image management keeps the local container (the fallback below starts it).
    sw.set_image_mgmt("GLOBAL", &[("active_time_to_mark_good", "3600s")])
        .await?;
    sw.boot_feature().await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("the deployment running", DEADLINE, || async {
        sw.status_field("remote_state").await.as_deref() == Some("running")
    })
    .await?;
    // `container` reads the timers at every run: the unit's next `container wait` gives up on
    // a deployment that does not come back after 5 s instead of 60 s.
    std::fs::write(
        &sw.timers_path,
        ctrmgrd_common::TIMERS.replace(
            "\"revert_to_local_on_wait_seconds\": 60",
            "\"revert_to_local_on_wait_seconds\": 5",
        ),
    )?;

    // The engine goes away: the unit's `container wait` loses its `docker wait`, its ExecStop
    // records the deployment stopped, the daemon restarts the unit for kube (no Docker call),
    // that `container wait` gives up after 5 s (`remote_state=none`), and the daemon's fast
    // fallback restarts the unit for local: `container start` must start the local container
    // and meets the absent engine.
    engine.stop()?;
    let restart_problem = format!("service {}", sw.feature);
    wait_for(
        "the daemon's restart meeting the absent engine",
        DEADLINE,
        || async { !problems_of(&daemon, &restart_problem).is_empty() },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{:#?}", daemon.log.lines()))?;
    let problem = problems_of(&daemon, &restart_problem).remove(0);
    assert!(
        problem.contains("container start") && problem.contains("unreachable"),
        "{problem}"
    );
    // The outage lasts several retries (backoff from 200 ms to 2 s); this is the outage, not
    // a wait for a condition.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let lines_before_return = daemon.log.lines().len();
    engine.restart()?;

    wait_for("the local container running", DEADLINE, || async {
        matches!(
            sw.docker.inspect_container(sw.feature.as_str()).await,
            Ok(Some(c)) if c.running
        )
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{:#?}", daemon.log.lines()))?;
    wait_for("current_owner=local, system_state=up", DEADLINE, || async {
        let s = sw.status().await;
        s.get("current_owner").map(String::as_str) == Some("local")
            && s.get("system_state").map(String::as_str) == Some("up")
    })
    .await?;
    wait_for("the unit active", DEADLINE, || async {
        sw.services.is_active(&sw.feature).await.unwrap_or(false)
    })
    .await?;

    let lines = daemon.log.lines();
    assert!(
        !daemon.handle.is_finished(),
        "the daemon stopped\n{lines:#?}"
    );
    // The problem was reported once and its end once, when a restart worked again: after the
    // engine came back, not when the unit's activity was merely read.
    assert_eq!(
        problems_of(&daemon, &restart_problem).len(),
        1,
        "{lines:#?}"
    );
    let recovered = format!("{restart_problem}: recovered");
    let recoveries: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, (_, l))| *l == recovered)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(recoveries.len(), 1, "{lines:#?}");
    assert!(recoveries[0] >= lines_before_return, "{lines:#?}");
    assert!(
        lines[recoveries[0]..]
            .iter()
            .any(|(_, l)| *l == format!("Restarted {} to switch to local", sw.feature)),
        "{lines:#?}"
    );
    assert!(
        error_counts(&daemon).values().all(|n| *n == 1),
        "{lines:#?}"
    );
    assert_eq!(daemon.terminate().await?, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    drop(engine);
    Ok(())
}
