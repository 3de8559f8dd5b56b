//! Upstream's `container_startup` scenarios (upstream-ctrmgrd.md §8.2, S0..S7) and the kube
//! hand-shake with real processes: every feature container here is a real container of an image
//! holding the built `container_startup`, whose start script runs it and then the "application"
//! (which touches `/out/app-started`). STATE_DB, `KUBE_LABELS|SET`, the container's real id and
//! whether the application started are checked; the host side is the built `container` binary.
#![allow(clippy::unwrap_used)]

mod container_common;

use std::time::{Duration, Instant};

use container_common::{
    IMAGE_VERSION, Lab, assert_status, finish, startup_image, unique_feature, wait_for,
};
use sonic_tests::redis::STATE_DB;

/// Creates and starts a feature container from the startup image; returns its 12-char id.
fn start_feature_container(lab: &Lab, name: &str, f: &str, owner: &str, version: &str) -> String {
    let id = lab.create_container(
        name,
        startup_image(),
        &[
            ("FEATURE", f),
            ("RUNTIME_OWNER", owner),
            ("IMAGE_VERSION", version),
        ],
    );
    lab.start_container(name);
    id[..12].to_string()
}

fn expect_state(lab: &Lab, f: &str, field: &str, value: &str) {
    assert!(
        wait_for(Duration::from_secs(30), || lab
            .state(f)
            .get(field)
            .is_some_and(|v| v == value)),
        "{field} never became {value:?}: {:?}\ncontainer_startup log:\n{}",
        lab.state(f),
        lab.startup_log()
    );
}

fn expect_app_started(lab: &Lab) {
    assert!(
        wait_for(Duration::from_secs(30), || lab.app_started()),
        "the application never started; container_startup log:\n{}",
        lab.startup_log()
    );
    let status = std::fs::read_to_string(lab.out_dir().join("startup.status")).unwrap();
    assert_eq!(status.trim(), "0", "container_startup exit status");
}

/// A frozen container: the reason is logged, the container runs, the application never started
/// and STATE_DB is as before.
fn expect_frozen(
    lab: &Lab,
    name: &str,
    f: &str,
    reason: &str,
    before: &std::collections::BTreeMap<String, String>,
) {
    lab.expect_startup_log(reason);
    lab.expect_startup_log("Blocking ....");
    assert!(lab.running(name), "a frozen container keeps running");
    assert!(
        !lab.app_started(),
        "the application of a frozen container must not start"
    );
    assert_eq!(&lab.state(f), before, "a frozen container writes nothing");
}

#[test]
fn s0_local_container_records_owner_version_and_local_label_then_starts() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.seed_state(&f, &[("system_state", "up"), ("remote_state", "none")]);
    start_feature_container(&lab, &f, &f, "local", "20201230.11");
    expect_app_started(&lab);
    Lab::assert_subset(
        &lab.state(&f),
        &[
            ("current_owner", "local"),
            ("container_id", f.as_str()),
            ("container_version", "20201230.11"),
        ],
    );
    assert_eq!(
        lab.labels().get(&format!("{f}_local")).unwrap(),
        "20201230.11"
    );
}

#[test]
fn s1_kube_container_while_set_owner_local_is_frozen() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "local")]);
    lab.seed_state(&f, &[("system_state", "up"), ("remote_state", "none")]);
    let before = lab.state(&f);
    let name = format!("k8s_{f}");
    start_feature_container(&lab, &name, &f, "kube", "20201230.11");
    expect_frozen(&lab, &name, &f, "bail out as set_owner is local", &before);
}

#[test]
fn s2_kube_container_while_service_down_is_frozen() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.seed_state(&f, &[("system_state", "down"), ("remote_state", "none")]);
    let before = lab.state(&f);
    let name = format!("k8s_{f}");
    // Empty RUNTIME_OWNER: the start script passes kube, as upstream's.
    start_feature_container(&lab, &name, &f, "", "20201230.11");
    expect_frozen(
        &lab,
        &name,
        &f,
        "bail out as system state not active",
        &before,
    );
}

#[test]
fn s3_kube_container_with_a_request_pending_only_records_its_version_and_waits() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.seed_state(
        &f,
        &[
            ("system_state", "up"),
            ("remote_state", "pending"),
            ("container_version", "20201230.77"),
        ],
    );
    let name = format!("k8s_{f}");
    let id12 = start_feature_container(&lab, &name, &f, "kube", "20201230.11");
    expect_state(&lab, &f, "container_version", "20201230.11");
    // Still waiting for the host: nothing else written, application held.
    let st = lab.state(&f);
    assert_eq!(st.get("remote_state").unwrap(), "pending");
    assert!(!st.contains_key("current_owner"), "{st:?}");
    assert!(!lab.app_started());
    // The host allows it: it takes over.
    lab.seed_state(&f, &[("remote_state", "ready")]);
    expect_state(&lab, &f, "remote_state", "running");
    expect_app_started(&lab);
    assert_eq!(lab.state(&f).get("container_id").unwrap(), &id12);
}

#[test]
fn s4_kube_container_without_remote_state_asks_with_pending() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.seed_state(&f, &[("system_state", "up"), ("remote_state", "none")]);
    let name = format!("k8s_{f}");
    start_feature_container(&lab, &name, &f, "kube", "20201230.11");
    expect_state(&lab, &f, "remote_state", "pending");
    assert_eq!(
        lab.state(&f).get("container_version").unwrap(),
        "20201230.11"
    );
    assert!(!lab.app_started());
}

fn admitted_when_ready(initial_version: Option<&str>) {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    let mut seed = vec![("system_state", "up"), ("remote_state", "ready")];
    if let Some(v) = initial_version {
        seed.push(("container_version", v));
    }
    lab.seed_state(&f, &seed);
    let name = format!("k8s_{f}");
    let id12 = start_feature_container(&lab, &name, &f, "kube", "20201230.11");
    expect_app_started(&lab);
    let st = lab.state(&f);
    Lab::assert_subset(
        &st,
        &[
            ("current_owner", "kube"),
            ("remote_state", "running"),
            ("container_version", "20201230.11"),
            ("container_id", id12.as_str()),
        ],
    );
    assert!(st.contains_key("update_time"));
}

#[test]
fn s5_kube_container_already_ready_takes_over_with_its_real_id() {
    admitted_when_ready(Some("20201230.77"));
}

#[test]
fn s6_kube_container_ready_with_empty_current_version_takes_over() {
    admitted_when_ready(Some(""));
}

#[test]
fn s7_kube_container_of_the_local_version_is_frozen() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.seed_state(&f, &[("system_state", "up"), ("remote_state", "none")]);
    lab.hset(
        STATE_DB,
        "KUBE_LABELS|SET",
        &[(&format!("{f}_local"), "20201230.11")],
    );
    let before = lab.state(&f);
    let name = format!("k8s_{f}");
    start_feature_container(&lab, &name, &f, "kube", "20201230.11");
    expect_frozen(&lab, &name, &f, "this version is marked disabled", &before);
}

#[test]
fn kube_handshake_with_real_processes_ends_with_wait_following_the_pod() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    // After an earlier kube run was stopped, with the master connected.
    lab.seed_state(
        &f,
        &[
            ("remote_state", "stopped"),
            ("current_owner", "none"),
            ("container_id", ""),
            ("system_state", "down"),
        ],
    );
    lab.hset(
        STATE_DB,
        "KUBERNETES_MASTER|SERVER",
        &[("connected", "true")],
    );

    // systemd's ExecStartPre: kube only, no local container.
    let out = lab.container(&["start", &f]);
    assert_status(&out, 0);
    Lab::assert_subset(&lab.state(&f), &[("system_state", "up")]);
    assert_eq!(lab.labels().get(&format!("{f}_enabled")).unwrap(), "true");

    // Kubernetes deploys the pod; it asks and waits.
    let pod = format!("k8s_{f}");
    let id12 = start_feature_container(&lab, &pod, &f, "kube", "2.0.0");
    expect_state(&lab, &f, "remote_state", "pending");
    assert_eq!(lab.state(&f).get("container_version").unwrap(), "2.0.0");
    assert!(!lab.app_started(), "the pod must wait for the host");

    // systemd's ExecStart: the host lets it proceed and then follows it.
    let mut waiter = lab.spawn_container(&["wait", &f]);
    expect_state(&lab, &f, "remote_state", "running");
    expect_app_started(&lab);
    let st = lab.state(&f);
    Lab::assert_subset(
        &st,
        &[
            ("current_owner", "kube"),
            ("container_id", id12.as_str()),
            ("container_version", "2.0.0"),
        ],
    );
    assert_eq!(id12.len(), 12);
    assert!(lab.inspect(&pod).id.starts_with(&id12));
    // The id is the host's view of the pod: `container id` gives it too.
    let out = lab.container(&["id", &f]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{id12}\n"));

    std::thread::sleep(Duration::from_millis(500));
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "wait must follow the running pod"
    );
    lab.kill_container(&pod);
    let out = finish(waiter, Duration::from_secs(60)).unwrap();
    assert_status(&out, 0);
    assert_eq!(lab.inspect(&pod).exit_code, Some(137));
}

#[test]
fn wait_falls_back_to_local_at_the_deadline_while_the_pod_is_frozen() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.remote_ctr_config(r#"{"revert_to_local_on_wait_seconds": 4}"#);
    lab.seed_state(
        &f,
        &[
            ("system_state", "up"),
            ("remote_state", "none"),
            ("current_owner", "none"),
            ("container_id", ""),
        ],
    );
    lab.hset(
        STATE_DB,
        "KUBE_LABELS|SET",
        &[(&format!("{f}_local"), IMAGE_VERSION)],
    );
    let pod = format!("k8s_{f}");
    start_feature_container(&lab, &pod, &f, "kube", IMAGE_VERSION);
    lab.expect_startup_log("this version is marked disabled");
    let started = Instant::now();
    let out = lab.container(&["wait", &f]);
    assert_status(&out, 0);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(30),
        "wait gave up after {took:?}"
    );
    assert_eq!(lab.state(&f).get("remote_state").unwrap(), "none");
    assert!(lab.running(&pod), "the frozen pod keeps running");
    assert!(!lab.app_started(), "and its application never starts");
}

#[test]
fn frozen_pod_is_admitted_once_the_service_comes_up() {
    // Upstream froze for ever (quirk 13); the core re-checks every 60 s.
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.seed_state(&f, &[("system_state", "down"), ("remote_state", "none")]);
    let pod = format!("k8s_{f}");
    start_feature_container(&lab, &pod, &f, "kube", "2.0.0");
    lab.expect_startup_log("bail out as system state not active");
    lab.seed_state(&f, &[("system_state", "up")]);
    assert!(
        wait_for(Duration::from_secs(90), || lab
            .state(&f)
            .get("remote_state")
            .is_some_and(|v| v == "pending")),
        "never re-checked: {:?}\n{}",
        lab.state(&f),
        lab.startup_log()
    );
    assert!(!lab.app_started());
}
