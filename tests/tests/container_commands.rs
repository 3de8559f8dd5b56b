//! Upstream's `container` scenarios (upstream-ctrmgrd.md §8.2, C-*) through the built `container`
//! binary against a private redis-server and the real Docker engine: STATE_DB, `KUBE_LABELS|SET`
//! and the containers' real state are checked after each command. Plus the exit statuses and
//! environment handling upstream never had.
#![allow(clippy::unwrap_used)]

mod container_common;

use std::time::Duration;

use container_common::{
    IMAGE_VERSION, Lab, assert_status, finish, plain_image, stderr, stdout, unique_feature,
    wait_for,
};
use sonic_tests::redis::STATE_DB;

/// A lab with feature `f` configured in CONFIG_DB and its local container created from the plain
/// image (named after the feature, like SONiC's).
fn lab_with_local_container(prefix: &str, config: &[(&str, &str)]) -> (Lab, String) {
    let lab = Lab::new();
    let f = unique_feature(prefix);
    lab.config(&f, config);
    lab.create_container(&f, plain_image(), &[]);
    (lab, f)
}

/// A running container standing for a Kubernetes pod of `f`; returns its name and 12-char id.
fn kube_container(lab: &Lab, f: &str) -> (String, String) {
    let name = format!("k8s_{f}");
    let id = lab.create_container(&name, plain_image(), &[]);
    lab.start_container(&name);
    (name, id[..12].to_string())
}

#[test]
fn c_s0_start_of_local_owner_runs_local_container_and_clears_label() {
    let (lab, f) =
        lab_with_local_container("snmp", &[("set_owner", "local"), ("state", "enabled")]);
    // Upstream seeds remote_state "xxx", which is not a state here (see the malformed-value
    // test); a stale "running" shows the same reset to none.
    lab.seed_state(&f, &[("remote_state", "running")]);
    let out = lab.container(&["start", &f]);
    assert_status(&out, 0);
    Lab::assert_subset(
        &lab.state(&f),
        &[
            ("remote_state", "none"),
            ("system_state", "up"),
            ("current_owner", "local"),
            ("container_id", f.as_str()),
        ],
    );
    assert_eq!(lab.labels().get(&format!("{f}_enabled")).unwrap(), "false");
    lab.expect_running(&f, true);
}

#[test]
fn c_s1_start_of_kube_owner_without_remote_state_falls_back_to_local_and_sets_label() {
    let (lab, f) = lab_with_local_container("snmp", &[("set_owner", "kube")]);
    let out = lab.container(&["start", &f]);
    assert_status(&out, 0);
    Lab::assert_subset(
        &lab.state(&f),
        &[
            ("remote_state", "none"),
            ("system_state", "up"),
            ("current_owner", "local"),
            ("container_id", f.as_str()),
        ],
    );
    assert_eq!(lab.labels().get(&format!("{f}_enabled")).unwrap(), "true");
    lab.expect_running(&f, true);
}

#[test]
fn c_s2_start_of_kube_owner_stopped_and_connected_only_marks_up_without_docker() {
    let (lab, f) = lab_with_local_container("snmp", &[("set_owner", "kube")]);
    lab.seed_state(
        &f,
        &[
            ("remote_state", "stopped"),
            ("current_owner", "none"),
            ("container_id", ""),
        ],
    );
    lab.hset(
        STATE_DB,
        "KUBERNETES_MASTER|SERVER",
        &[("connected", "true")],
    );
    let out = lab.container(&["start", &f]);
    assert_status(&out, 0);
    let st = lab.state(&f);
    Lab::assert_subset(
        &st,
        &[
            ("system_state", "up"),
            ("remote_state", "stopped"),
            ("current_owner", "none"),
            ("container_id", ""),
        ],
    );
    assert!(st.contains_key("update_time"));
    assert_eq!(lab.labels().get(&format!("{f}_enabled")).unwrap(), "true");
    // No docker start: the local container stays created, never run.
    assert_eq!(lab.inspect(&f).status, "created");
}

#[test]
fn c_t0_stop_of_local_owner_stops_container_records_down_and_keeps_version() {
    let (lab, f) = lab_with_local_container("snmp", &[("set_owner", "local")]);
    lab.start_container(&f);
    lab.seed_state(
        &f,
        &[
            ("current_owner", "local"),
            ("container_id", &f),
            ("remote_state", "none"),
            ("system_state", "up"),
            ("container_version", "20201230.11"),
        ],
    );
    let out = lab.container(&["stop", "-t", "5", &f]);
    assert_status(&out, 0);
    Lab::assert_subset(
        &lab.state(&f),
        &[
            ("system_state", "down"),
            ("current_owner", "none"),
            ("container_id", ""),
            ("remote_state", "none"),
            ("container_version", "20201230.11"),
        ],
    );
    assert_eq!(lab.labels().get(&format!("{f}_enabled")).unwrap(), "false");
    let c = lab.inspect(&f);
    assert!(!c.running);
    assert_eq!(
        c.exit_code,
        Some(0),
        "the stop signal ended it, no kill was needed"
    );
}

#[test]
fn c_t1_stop_of_kube_owner_stops_by_id_records_stopped_and_keeps_label() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    let (pod, id12) = kube_container(&lab, &f);
    lab.seed_state(
        &f,
        &[
            ("current_owner", "kube"),
            ("container_id", &id12),
            ("remote_state", "running"),
            ("system_state", "up"),
        ],
    );
    lab.hset(
        STATE_DB,
        "KUBE_LABELS|SET",
        &[(&format!("{f}_enabled"), "true")],
    );
    let out = lab.container(&["stop", &f]);
    assert_status(&out, 0);
    Lab::assert_subset(
        &lab.state(&f),
        &[
            ("remote_state", "stopped"),
            ("system_state", "down"),
            ("current_owner", "none"),
            ("container_id", ""),
        ],
    );
    assert_eq!(lab.labels().get(&format!("{f}_enabled")).unwrap(), "true");
    assert!(!lab.running(&pod));
}

#[test]
fn c_k0_kill_of_enabled_local_feature_kills_without_state_or_label() {
    let (lab, f) =
        lab_with_local_container("snmp", &[("set_owner", "local"), ("state", "enabled")]);
    lab.start_container(&f);
    lab.seed_state(&f, &[("current_owner", "local"), ("container_id", &f)]);
    let before = lab.state(&f);
    let out = lab.container(&["kill", &f]);
    assert_status(&out, 0);
    let c = lab.inspect(&f);
    assert!(!c.running);
    assert_eq!(c.exit_code, Some(137));
    assert_eq!(lab.state(&f), before);
    assert!(lab.labels().is_empty(), "{:?}", lab.labels());
}

#[test]
fn c_k1_kill_of_kube_owner_kills_by_id_and_drops_label() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    let (pod, id12) = kube_container(&lab, &f);
    lab.seed_state(
        &f,
        &[
            ("current_owner", "kube"),
            ("container_id", &id12),
            ("remote_state", "running"),
        ],
    );
    lab.hset(
        STATE_DB,
        "KUBE_LABELS|SET",
        &[(&format!("{f}_enabled"), "true")],
    );
    let out = lab.container(&["kill", &f]);
    assert_status(&out, 0);
    assert_eq!(lab.inspect(&pod).exit_code, Some(137));
    assert_eq!(lab.labels().get(&format!("{f}_enabled")).unwrap(), "false");
}

#[test]
fn c_k2_kill_of_disabled_local_feature_is_refused_and_leaves_it_running() {
    let (lab, f) = lab_with_local_container("snmp", &[("set_owner", "local")]);
    lab.start_container(&f);
    lab.seed_state(&f, &[("current_owner", "local"), ("container_id", &f)]);
    let out = lab.container(&["kill", &f]);
    assert_status(&out, 1);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not enabled"), "{err}");
    assert!(lab.running(&f));
}

#[test]
fn c_w0_wait_on_local_records_stable_version_and_exits_0_when_the_container_stops() {
    let (lab, f) = lab_with_local_container("snmp", &[("set_owner", "local")]);
    lab.start_container(&f);
    lab.seed_state(&f, &[("current_owner", "local"), ("container_id", &f)]);
    let waiter = lab.spawn_container(&["wait", &f]);
    assert!(
        wait_for(Duration::from_secs(30), || lab
            .state(&f)
            .get("container_stable_version")
            .is_some_and(|v| v == IMAGE_VERSION)),
        "{:?}",
        lab.state(&f)
    );
    let out = lab.container(&["stop", &f]);
    assert_status(&out, 0);
    let out = finish(waiter, Duration::from_secs(60)).unwrap();
    assert_status(&out, 0);
}

#[test]
fn c_w0_wait_exits_0_when_the_container_is_killed() {
    let (lab, f) =
        lab_with_local_container("snmp", &[("set_owner", "local"), ("state", "enabled")]);
    lab.start_container(&f);
    lab.seed_state(&f, &[("current_owner", "local"), ("container_id", &f)]);
    let waiter = lab.spawn_container(&["wait", &f]);
    assert!(wait_for(Duration::from_secs(30), || lab
        .state(&f)
        .contains_key("container_stable_version")));
    lab.kill_container(&f);
    let out = finish(waiter, Duration::from_secs(60)).unwrap();
    assert_status(&out, 0);
    assert_eq!(lab.inspect(&f).exit_code, Some(137));
}

#[test]
fn wait_exits_non_zero_when_the_container_fails() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "local")]);
    // A container whose application fails with status 3 shortly after starting.
    lab.create_container_with_cmd(&f, &["/usr/bin/fail-after", "2", "3"]);
    lab.start_container(&f);
    lab.seed_state(&f, &[("current_owner", "local"), ("container_id", &f)]);
    let out = lab.container(&["wait", &f]);
    assert_status(&out, 255);
    assert_eq!(lab.inspect(&f).exit_code, Some(3));
}

#[test]
fn c_w1_wait_for_kube_promotes_pending_to_ready_then_falls_back_at_the_deadline() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.remote_ctr_config(r#"{"revert_to_local_on_wait_seconds": 4}"#);
    lab.seed_state(
        &f,
        &[
            ("current_owner", "none"),
            ("container_id", ""),
            ("remote_state", "pending"),
            ("system_state", "up"),
        ],
    );
    let started = std::time::Instant::now();
    let waiter = lab.spawn_container(&["wait", &f]);
    assert!(
        wait_for(Duration::from_secs(20), || lab
            .state(&f)
            .get("remote_state")
            .is_some_and(|v| v == "ready")),
        "pending never became ready: {:?}",
        lab.state(&f)
    );
    let out = finish(waiter, Duration::from_secs(60)).unwrap();
    assert_status(&out, 0);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(30),
        "gave up after {took:?}"
    );
    assert_eq!(lab.state(&f).get("remote_state").unwrap(), "none");
}

#[test]
fn c_w1_wait_without_fallback_keeps_waiting_past_the_deadline() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(
        &f,
        &[("set_owner", "kube"), ("no_fallback_to_local", "true")],
    );
    lab.remote_ctr_config(r#"{"revert_to_local_on_wait_seconds": 1}"#);
    lab.seed_state(
        &f,
        &[
            ("current_owner", "none"),
            ("container_id", ""),
            ("remote_state", "none"),
        ],
    );
    let mut waiter = lab.spawn_container(&["wait", &f]);
    // Three poll periods past the deadline, still waiting.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "wait gave up without fallback"
    );
    waiter.kill().unwrap();
    waiter.wait().unwrap();
    assert_eq!(lab.state(&f).get("remote_state").unwrap(), "none");
}

#[test]
fn c_m_id_prints_feature_for_local_and_the_recorded_id_for_kube() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    // No STATE_DB entry yet: the feature name (upstream's default).
    let out = lab.container(&["id", &f]);
    assert_status(&out, 0);
    assert_eq!(stdout(&out), format!("{f}\n"));
    lab.seed_state(
        &f,
        &[("current_owner", "kube"), ("container_id", "0123456789ab")],
    );
    let out = lab.container(&["id", &f]);
    assert_status(&out, 0);
    assert_eq!(stdout(&out), "0123456789ab\n");
    lab.seed_state(&f, &[("current_owner", "local")]);
    let out = lab.container(&["id", &f]);
    assert_eq!(stdout(&out), format!("{f}\n"));
}

#[test]
fn c_m_id_of_a_feature_without_container_fails_with_the_reason() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.seed_state(&f, &[("current_owner", "none"), ("container_id", "")]);
    let out = lab.container(&["id", &f]);
    assert_status(&out, 1);
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("no container runs"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_feature_fails_with_a_one_line_reason() {
    let lab = Lab::new();
    for action in ["id", "start", "stop", "kill", "wait"] {
        let out = lab.container(&[action, "nosuchfeature"]);
        assert_status(&out, 1);
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("unknown feature nosuchfeature"), "{err}");
    }
}

#[test]
fn multi_asic_instance_of_a_configured_feature_runs_as_local() {
    let lab = Lab::new();
    let base = unique_feature("lldp");
    lab.config(&base, &[("set_owner", "kube")]);
    let instance = format!("{base}0");
    lab.create_container(&instance, plain_image(), &[]);
    let out = lab.container(&["start", &instance]);
    assert_status(&out, 0);
    lab.expect_running(&instance, true);
    Lab::assert_subset(
        &lab.state(&instance),
        &[
            ("current_owner", "local"),
            ("container_id", instance.as_str()),
        ],
    );
    let out = lab.container(&["id", &instance]);
    assert_eq!(stdout(&out), format!("{instance}\n"));
}

#[test]
fn bad_arguments_exit_2() {
    let lab = Lab::new();
    for args in [
        &["restart", "snmp"][..],
        &["start"],
        &["start", "bad name"],
        &["stop", "-t", "soon", "snmp"],
        &[],
    ] {
        let out = lab.container(args);
        assert_status(&out, 2);
    }
}

#[test]
fn unreachable_redis_fails_with_the_endpoint_named() {
    let mut lab = Lab::new();
    lab.redis.stop();
    let out = lab.container(&["id", "snmp"]);
    assert_status(&out, 1);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("STATE_DB"), "{err}");
}

#[test]
fn unreachable_docker_fails_and_still_records_the_state() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "local")]);
    let mut env = lab.env();
    let bogus = lab.dir.path().join("no-docker.sock");
    for (k, v) in &mut env {
        if k == "DOCKER_HOST" {
            *v = format!("unix://{}", bogus.display()).into();
        }
    }
    let argv = vec![
        container_common::bin("container").into_os_string(),
        "start".into(),
        f.clone().into(),
    ];
    let out = container_common::run(&argv, &env, Duration::from_secs(60)).unwrap();
    assert_status(&out, 1);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unreachable"), "{err}");
    assert!(err.contains(&bogus.display().to_string()), "{err}");
    // The decision was recorded before the Docker call, like upstream.
    assert_eq!(lab.state(&f).get("system_state").unwrap(), "up");
}

#[test]
fn malformed_state_value_fails_naming_key_and_field() {
    let (lab, f) = lab_with_local_container("snmp", &[("set_owner", "local")]);
    lab.seed_state(&f, &[("remote_state", "xxx")]);
    let out = lab.container(&["start", &f]);
    assert_status(&out, 1);
    let err = stderr(&out);
    assert!(err.contains(&format!("FEATURE|{f}")), "{err}");
    assert!(err.contains("remote_state"), "{err}");
    assert!(err.contains("xxx"), "{err}");
    assert_eq!(lab.inspect(&f).status, "created", "nothing was started");
}

#[test]
fn malformed_timers_file_fails_wait_naming_the_file() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.remote_ctr_config("{ \"revert_to_local_on_wait_seconds\": ");
    let out = lab.container(&["wait", &f]);
    assert_status(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(&lab.remote_ctr_config_path().display().to_string()),
        "{err}"
    );
}

#[test]
fn without_kube_support_start_and_stop_only_drive_docker() {
    let lab = Lab::new().without_kube_support();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.create_container(&f, plain_image(), &[]);
    let out = lab.container(&["start", &f]);
    assert_status(&out, 0);
    lab.expect_running(&f, true);
    let out = lab.container(&["stop", "-t", "5", &f]);
    assert_status(&out, 0);
    lab.expect_running(&f, false);
    assert!(lab.state(&f).is_empty(), "{:?}", lab.state(&f));
    assert!(lab.labels().is_empty(), "{:?}", lab.labels());
}

#[test]
fn state_up_and_down_record_the_owner_like_the_hld_hooks() {
    let lab = Lab::new();
    let f = unique_feature("snmp");
    lab.config(&f, &[("set_owner", "kube")]);
    lab.seed_state(&f, &[("remote_state", "running")]);
    let out = lab.container(&[
        "state",
        &f,
        "up",
        "kube",
        "--id",
        "0123456789ab",
        "--image-version",
        "2.0.1",
    ]);
    assert_status(&out, 0);
    Lab::assert_subset(
        &lab.state(&f),
        &[
            ("current_owner", "kube"),
            ("container_id", "0123456789ab"),
            ("container_version", "2.0.1"),
        ],
    );
    let out = lab.container(&["state", &f, "down"]);
    assert_status(&out, 0);
    Lab::assert_subset(
        &lab.state(&f),
        &[
            ("current_owner", "none"),
            ("container_id", ""),
            ("remote_state", "stopped"),
        ],
    );
}

#[test]
fn verbose_logs_the_decision_on_stderr() {
    let (lab, f) =
        lab_with_local_container("snmp", &[("set_owner", "local"), ("state", "enabled")]);
    let out = lab.container(&["-v", "start", &f]);
    assert_status(&out, 0);
    let err = stderr(&out);
    assert!(err.contains(&format!("docker start {f}")), "{err}");
    assert!(err.contains("done"), "{err}");
    // Quiet by default.
    let out = lab.container(&["stop", "-t", "5", &f]);
    assert_status(&out, 0);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}
