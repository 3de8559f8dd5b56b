//! Upstream ctrmgrd scenarios (upstream-ctrmgrd.md §8.2) end to end, where real processes add
//! something over the core's trace tests: the real `container` binary in the units, the real
//! dockerd, the fake master's node labels and the emulated kubelet acting on them.
//!
//! - F0: `set_owner local` while kube runs ⇒ the unit is restarted, the local container runs
//!   again, the node label `<f>_enabled` turns false and the kubelet removes the pod.
//! - F2: the unit is inactive ⇒ ctrmgrd leaves the feature alone (no restart, no label), even
//!   though `set_owner` is kube and the node is joined.
//! - F5 (#19528): `set_owner local`, the unit active but STATE_DB saying `current_owner none`
//!   (a config reload in progress) ⇒ no restart: the running local container is left alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ctrmgrd_common;

use std::time::Duration;

use ctrmgrd_common::{Switch, wait_for, wait_kube_running};

const DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f0_owner_local_while_kube_runs_brings_the_local_container_back_and_clears_the_label()
-> anyhow::Result<()> {
    let mut sw = Switch::new("f0snmp").await?;
    sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
        .await?;
    // No image management during the test: the old local container stays for the way back.
    sw.set_image_mgmt("GLOBAL", &[("active_time_to_mark_good", "1h")])
        .await?;
    sw.boot_feature().await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    let pod = format!("k8s_{}", sw.feature);
    wait_kube_running(&sw, DEADLINE).await?;
    assert!(sw.container_running(&pod).await);
    assert!(!sw.container_running(sw.feature.as_str()).await);

    sw.set_feature_config(&[("set_owner", "local")]).await?;
    wait_for("local runs the feature again", DEADLINE, || async {
        sw.status_field("current_owner").await.as_deref() == Some("local")
            && sw.container_running(sw.feature.as_str()).await
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{:?}", daemon.log.lines()))?;
    wait_for("<f>_enabled=false on the node", DEADLINE, || async {
        sw.node_labels()
            .get(&sw.enabled_label())
            .map(String::as_str)
            == Some("false")
    })
    .await?;
    wait_for("the kubelet removed the pod", DEADLINE, || async {
        !sw.container_running(&pod).await
    })
    .await?;
    // The label goes out while the restart still runs (actions of the node and of the feature
    // run side by side): its success is logged when it ends.
    wait_for("the restart logged", DEADLINE, || async {
        daemon.log.count("Restarted f0snmp to switch to local") >= 1
    })
    .await?;
    assert_eq!(
        daemon.log.count("Restarted f0snmp to switch to local"),
        1,
        "{:?}",
        daemon.log.lines()
    );
    assert_eq!(daemon.terminate().await?, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_inactive_unit_is_left_alone_although_kube_owns_it_and_the_node_is_joined()
-> anyhow::Result<()> {
    let mut sw = Switch::new("f2snmp").await?;
    sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
        .await?;
    // STATE_DB as after `systemctl stop`: the unit is inactive.
    let state = sw.state_db().await?;
    let fields: sonic_db::Fields = [
        ("system_state".to_string(), "down".to_string()),
        ("current_owner".to_string(), "none".to_string()),
        ("remote_state".to_string(), "none".to_string()),
        ("container_id".to_string(), String::new()),
    ]
    .into();
    state
        .set_entry("FEATURE", sw.feature.as_str(), &fields)
        .await?;
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    wait_for("self-description labels on the node", DEADLINE, || async {
        sw.node_labels().contains_key("sonic_version")
    })
    .await?;
    // Nothing may happen: give the daemon a window in which it would have acted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        sw.services.commands().is_empty(),
        "{:?}",
        sw.services.commands()
    );
    assert!(
        !sw.node_labels().contains_key(&sw.enabled_label()),
        "{:?}",
        sw.node_labels()
    );
    assert!(!sw.container_running(&format!("k8s_{}", sw.feature)).await);
    assert_eq!(daemon.log.count("Restarted"), 0, "{:?}", daemon.log.lines());
    assert_eq!(daemon.terminate().await?, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_local_owner_with_current_owner_none_is_not_restarted() -> anyhow::Result<()> {
    let mut sw = Switch::new("f5snmp").await?;
    sw.set_feature_config(&[("set_owner", "local"), ("state", "enabled")])
        .await?;
    sw.boot_feature().await?;
    wait_for("local start", DEADLINE, || async {
        sw.status_field("current_owner").await.as_deref() == Some("local")
    })
    .await?;
    let started = sw.services.commands().len();
    // The moment of a config reload: the unit still runs, STATE_DB says nothing runs.
    let state = sw.state_db().await?;
    let fields: sonic_db::Fields = [("current_owner".to_string(), "none".to_string())].into();
    state
        .mod_entry("FEATURE", sw.feature.as_str(), &fields)
        .await?;
    // The kubelet registers the node again after the join.
    sw.start_kubelet();
    let daemon = sw.start_daemon(None).await?;
    wait_for("joined", DEADLINE, || sw.connected()).await?;
    wait_for("<f>_enabled=false on the node", DEADLINE, || async {
        sw.node_labels()
            .get(&sw.enabled_label())
            .map(String::as_str)
            == Some("false")
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e:#}\nnode {:?} {:?}\nlog {:?}\nunits {:?}",
            sw.node_labels(),
            sw.kube
                .requests()
                .iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect::<Vec<_>>(),
            daemon.log.lines(),
            sw.services.commands()
        )
    })?;
    // Nothing else may happen: give the daemon a window in which it would have acted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sw.services.commands().len(),
        started,
        "{:?}",
        sw.services.commands()
    );
    assert!(sw.container_running(sw.feature.as_str()).await);
    assert_eq!(daemon.log.count("Restarted"), 0, "{:?}", daemon.log.lines());
    assert_eq!(daemon.terminate().await?, sonic_daemon::Exit::Terminated);
    sw.teardown().await;
    Ok(())
}
