//! ctrmgrd while the Docker engine goes away and comes back (a private dockerd of each test,
//! stopped and started again with `PrivateDockerd`):
//!
//! - without live-restore the deployment and the unit's main process die with the engine in the
//!   middle of a local → kube switch-over; the switch-over with image management (the kube
//!   image tagged as the golden local image, the old local container removed) completes once
//!   the engine is back;
//! - with `--live-restore` the deployment keeps running through the outage, the unit's
//!   `container wait` keeps asking the engine instead of ending (the unit stays active, the
//!   deployment stays `running`), the daemon's tag-as-good falls due during the outage and
//!   meets the absent engine (upstream T3), and once the engine is back, having adopted the same
//!   pod, the retry tags the kube image as the golden local image and removes the old local
//!   container;
//! - with `--live-restore`, a restart the daemon asks for while the engine is away (the owner
//!   set back to local: `container start` must start the local container) fails, is retried
//!   with backoff and completes once the engine is back.
//!
//! In all of them the daemon keeps running and reports a problem once (not once per retry) and
//! its end once. The feature unit has systemd's `Restart=always` (SONiC's feature units do),
//! played by the test where the scenario needs it.
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
    // dies with the engine: the daemon itself may never meet the engine's absence here (the
    // live-restore test below makes it). If it does, the problem is logged once and its end
    // once.
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
async fn docker_away_under_a_running_deployment_the_tag_as_good_meets_the_outage_and_completes_after()
-> anyhow::Result<()> {
    let engine_dir = engine_dir()?;
    let mut engine = PrivateDockerd::start_with(engine_dir.path(), EngineOptions::live_restore())?;
    let mut sw = Switch::on_engine("docklr", engine.host().to_string()).await?;
    sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
        .await?;
    // The kube image is marked good 4 s after it runs: while the engine is away.
    sw.set_image_mgmt("GLOBAL", &[("active_time_to_mark_good", "4s")])
        .await?;
    sw.boot_feature().await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("the deployment running", DEADLINE, || async {
        sw.status_field("remote_state").await.as_deref() == Some("running")
    })
    .await?;
    let (pod_id, pod_pids) = pod(&sw).await?;
    let local_before = sw.image_id(&format!("{}:latest", sw.local_image)).await;

    engine.stop()?;
    // Live-restore: the deployment runs on without its engine.
    assert_eq!(
        container_pids(&pod_id),
        pod_pids,
        "the pod died with the engine"
    );
    wait_for(
        "the daemon's tag-as-good meeting the absent engine",
        DEADLINE,
        || async { !problems_of(&daemon, "docker").is_empty() },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{:#?}", daemon.log.lines()))?;
    // The outage lasts several of the daemon's retry periods (retry_tag_latest_seconds = 1);
    // this is the outage, not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        problems_of(&daemon, "docker").len(),
        1,
        "{:#?}",
        daemon.log.lines()
    );
    // The unit's `container wait` kept asking instead of ending: no ExecStop ran, so the
    // deployment is still recorded running, and nothing was tagged.
    assert!(
        sw.services.is_active(&sw.feature).await?,
        "the unit stopped with the engine"
    );
    assert_eq!(
        sw.status_field("remote_state").await.as_deref(),
        Some("running")
    );
    assert_eq!(
        container_pids(&pod_id),
        pod_pids,
        "the pod died during the outage"
    );
    engine.restart()?;

    // The engine adopted the running container; the retry marks it good.
    assert_switched_to_kube(&sw, DEADLINE)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{:#?}", daemon.log.lines()))?;
    assert_ne!(
        sw.image_id(&format!("{}:latest", sw.local_image)).await,
        local_before
    );
    let (pod_after, pids_after) = pod(&sw).await?;
    assert_eq!((pod_after, pids_after), (pod_id, pod_pids));
    assert!(sw.services.is_active(&sw.feature).await?);

    let lines = daemon.log.lines();
    assert!(
        !daemon.handle.is_finished(),
        "the daemon stopped\n{lines:#?}"
    );
    assert_eq!(problems_of(&daemon, "docker").len(), 1, "{lines:#?}");
    assert_eq!(daemon.log.count("docker: recovered"), 1, "{lines:#?}");
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
    // Image management keeps the local container (the way back to local below starts it).
    sw.set_image_mgmt("GLOBAL", &[("active_time_to_mark_good", "3600s")])
        .await?;
    sw.boot_feature().await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("the deployment running", DEADLINE, || async {
        sw.status_field("remote_state").await.as_deref() == Some("running")
    })
    .await?;

    // The engine goes away, then the operator sets the owner back to local: the daemon
    // restarts the unit, whose `container start` must start the local container and meets the
    // absent engine.
    engine.stop()?;
    sw.set_feature_config(&[("set_owner", "local"), ("state", "enabled")])
        .await?;
    let restart_problem = format!("service {}", sw.feature);
    wait_for(
        "the daemon's restart meeting the absent engine",
        DEADLINE,
        || async { !problems_of(&daemon, &restart_problem).is_empty() },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{:#?}", daemon.log.lines()))?;
    let problem = problems_of(&daemon, &restart_problem).remove(0);
    assert!(problem.contains("unreachable"), "{problem}");
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
    wait_for("the node label <f>_enabled=false", DEADLINE, || async {
        sw.node_labels()
            .get(&sw.enabled_label())
            .map(String::as_str)
            == Some("false")
    })
    .await?;

    // The label and the unit's own start can show the switch before the restart action ends
    // (node actions do not wait for it): its outcome is logged when it does.
    let recovered = format!("{restart_problem}: recovered");
    wait_for("the restart's end logged", DEADLINE, || async {
        daemon.log.count(&recovered) >= 1
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{:#?}", daemon.log.lines()))?;
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
