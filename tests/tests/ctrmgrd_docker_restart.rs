//! ctrmgrd while the Docker engine restarts in the middle of a local → kube switch-over (a
//! private dockerd of this test, stopped and started again with `PrivateDockerd`): the daemon
//! keeps running, logs problems once, and the switch-over with image management (the kube
//! image tagged as the golden local image, the old local container removed) completes once the
//! engine is back. The feature unit has systemd's `Restart=always` (SONiC's feature units do),
//! played here by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ctrmgrd_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ctrmgrd_common::{Switch, assert_switched_to_kube, wait_for};
use sonic_feature_core::ports::ServiceManager;
use sonic_tests::docker::PrivateDockerd;

const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restarted_mid_switch_over_the_daemon_keeps_running_and_the_switch_over_completes()
-> anyhow::Result<()> {
    // A short directory: dockerd's unix sockets must fit in 108 bytes.
    let engine_dir = tempfile::Builder::new().prefix("cd").tempdir_in("/tmp")?;
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

    // systemd's Restart=always of the feature unit.
    let stop = Arc::new(AtomicBool::new(false));
    let restarter = {
        let services = sw.services.clone();
        let feature = sw.feature.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if !services.is_active(&feature).await.unwrap_or(true) {
                    let _ = services.start(&feature).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let converged = assert_switched_to_kube(&sw, DEADLINE).await;
    stop.store(true, Ordering::SeqCst);
    let _ = restarter.await;
    converged.map_err(|e| anyhow::anyhow!("{e:#}\n{:#?}", daemon.log.lines()))?;

    assert!(!daemon.handle.is_finished(), "the daemon stopped");
    let lines = daemon.log.lines();
    let docker_problems = lines
        .iter()
        .filter(|(_, l)| l.starts_with("docker:") && !l.ends_with("recovered"))
        .count();
    // Only image management talks to the engine, and it is disarmed as soon as the deployment
    // stops: the daemon itself may never meet the engine's absence here. If it does, the
    // problem is logged once and its end once.
    assert!(docker_problems <= 1, "{lines:#?}");
    assert_eq!(
        daemon.log.count("docker: recovered"),
        docker_problems,
        "{lines:#?}"
    );
    // No problem of any kind was logged again on a retry.
    let mut errors = std::collections::BTreeMap::<&str, usize>::new();
    for (level, line) in &lines {
        if *level == sonic_daemon::report::Level::Error {
            *errors.entry(line.as_str()).or_default() += 1;
        }
    }
    assert!(errors.values().all(|n| *n == 1), "{lines:#?}");
    assert_eq!(daemon.terminate().await?, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    drop(engine);
    Ok(())
}
