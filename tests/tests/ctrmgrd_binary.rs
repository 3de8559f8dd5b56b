//! The real `ctrmgrd` binary (`target/debug/ctrmgrd`, build it with `cargo build -p
//! sonic-daemon`) on a simulated switch: signals (SIGTERM finishes the action in flight and
//! exits 0, SIGHUP re-reads `remote_ctr.config.json`), the root check, and a real SIGKILL in the
//! middle of a local → kube switch-over followed by a restart that converges.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ctrmgrd_common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ctrmgrd_common::{Switch, assert_switched_to_kube, wait_for};
use nix::sys::signal::Signal;
use sonic_tests::service_manager::workspace_binary;

const DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_join_in_flight_and_exits_0() -> anyhow::Result<()> {
    let sw = Switch::new("sigterm").await?;
    // The join's `kubeadm join` takes 2 s: the action in flight when SIGTERM arrives.
    sw.runner.join_delay_ms.store(2000, Ordering::SeqCst);
    let mut daemon = sw.start_real_daemon(&[]).await?;
    wait_for("kubeadm join started", DEADLINE, || async {
        sw.runner.joins() == 1
    })
    .await?;
    let signalled = Instant::now();
    daemon.signal(Signal::SIGTERM)?;
    let status = daemon.wait_exit(Duration::from_secs(30)).await?;
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    // It waited for the join to end (kubeadm wrote kubelet's configuration) ...
    assert!(
        signalled.elapsed() >= Duration::from_millis(1000),
        "exited {:?} after SIGTERM, before the join ended\n{}",
        signalled.elapsed(),
        daemon.log()
    );
    assert!(
        sw.kube_settings.paths.kubelet_config.is_file(),
        "the join in flight was cut short\n{}",
        daemon.log()
    );
    assert!(
        daemon
            .log()
            .contains("terminating after the actions in flight"),
        "{}",
        daemon.log()
    );
    // ... and started nothing after it: the join's result is never recorded.
    assert!(!sw.connected().await, "{}", daemon.log());
    assert_eq!(sw.runner.joins(), 1);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_timers_and_the_join_retry_follows_the_new_interval()
-> anyhow::Result<()> {
    let sw = Switch::new("sighup").await?;
    let slow = ctrmgrd_common::TIMERS.replace(
        "\"retry_join_interval_seconds\": 1",
        "\"retry_join_interval_seconds\": 600",
    );
    assert_ne!(slow, ctrmgrd_common::TIMERS);
    sw.write_timers(&slow)?;
    sw.runner.fail_join.store(true, Ordering::SeqCst);
    let daemon = sw.start_real_daemon(&[]).await?;
    wait_for("the first join failed", DEADLINE, || async {
        sw.runner.joins() == 1
    })
    .await?;
    // A retry every 600 s: none within 3 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sw.runner.joins(), 1, "{}", daemon.log());

    sw.write_timers(ctrmgrd_common::TIMERS)?;
    daemon.signal(Signal::SIGHUP)?;
    // A retry every second now.
    wait_for("join retried every second", DEADLINE, || async {
        sw.runner.joins() >= 4
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", daemon.log()))?;
    assert!(
        daemon.log().contains("reloaded timers from"),
        "{}",
        daemon.log()
    );
    // Once the master answers, the retry succeeds.
    sw.runner.fail_join.store(false, Ordering::SeqCst);
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    drop(daemon);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_root_and_without_the_skip_variable_ctrmgrd_refuses_to_run() -> anyhow::Result<()> {
    let bin = workspace_binary("ctrmgrd")?;
    let dir = tempfile::tempdir()?;
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        // Nothing else may be touched before the check.
        .env("SONIC_DB_CONFIG", dir.path().join("missing.json"))
        .env("SONIC_REMOTE_CTR_CONFIG", dir.path().join("missing.json"));
    if nix::unistd::geteuid().is_root() {
        // Drop to nobody for the child only.
        cmd.uid(65534).gid(65534);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await??;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Please run as root. Exiting ...\n"
    );
    assert!(out.stdout.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_a_switch_over_then_a_restart_converges() -> anyhow::Result<()> {
    let sw = Switch::ready_for_switch_over("sigkill").await?;
    let mut first = sw.start_real_daemon(&[]).await?;
    // Mid-way: the deployment asked for the feature (pending) and the unit is being switched.
    wait_for("the unit restarted towards kube", DEADLINE, || async {
        sw.services.count("stop", "sigkill") >= 1
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", first.log()))?;
    first.kill9().await?;
    let status = first.child.try_wait()?.expect("exited");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let second = sw.start_real_daemon(&[]).await?;
    assert_switched_to_kube(&sw, DEADLINE)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", second.log()))?;
    drop(second);
    sw.teardown().await;
    Ok(())
}
