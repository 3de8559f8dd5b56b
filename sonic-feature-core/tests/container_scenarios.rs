//! Scenario traces of the `container` command and `container_startup`, one per upstream
//! scenario id (upstream-ctrmgrd.md §8.2) plus the HLD-only and fixed behaviours.

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Facts, T, check, feat, labels, trace, ver};
use sonic_feature_core::container::{
    CommandAction, InspectedContainer, StateChange, WaitAction, WaitEvent, WaitMachine, plan_id,
    plan_kill, plan_start, plan_state, plan_stop, wait_exit_status,
};
use sonic_feature_core::model::{
    AdminState, ContainerId, CurrentOwner, FeatureName, FeatureStatus, RemoteCtrConfig,
    RemoteState, SetOwner, SystemState, Timestamp,
};
use sonic_feature_core::startup::{
    StartupAction, StartupArgs, StartupEvent, StartupFacts, StartupMachine,
};

#[test]
fn c_s0_local_owner_starts_local_and_clears_the_label() {
    // Upstream's remote_state "xxx" is not a remote state: it is rejected when read, and the
    // decision for a local owner does not depend on it.
    assert!(RemoteState::parse("xxx").is_err());
    for r in [
        RemoteState::Running,
        RemoteState::Pending,
        RemoteState::None,
    ] {
        let facts = Facts::new("snmp").remote(r).0;
        check(
            &trace(&plan_start(&facts)),
            r#"
            label snmp_enabled=false
            status {system_state: up, current_owner: local, container_id: "snmp", remote_state: none, update_time: "2020-12-08 22:59:57"}
            docker start snmp
            "#,
        );
    }
}

#[test]
fn c_s1_kube_owner_with_no_remote_state_starts_local_and_sets_label() {
    let facts = Facts::new("snmp").owner(SetOwner::Kube).connected().0;
    check(
        &trace(&plan_start(&facts)),
        r#"
        status {system_state: up, current_owner: local, container_id: "snmp", remote_state: none, update_time: "2020-12-08 22:59:57"}
        docker start snmp
        label snmp_enabled=true
        "#,
    );
}

#[test]
fn c_s2_kube_owner_stopped_and_connected_only_marks_up_and_sets_label() {
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .remote(RemoteState::Stopped)
        .connected()
        .0;
    check(
        &trace(&plan_start(&facts)),
        r#"
        status {system_state: up, update_time: "2020-12-08 22:59:57"}
        label snmp_enabled=true
        "#,
    );
}

#[test]
fn start_of_kube_owner_without_fallback_never_runs_local() {
    let facts = Facts::new("snmp").owner(SetOwner::Kube).no_fallback().0;
    check(
        &trace(&plan_start(&facts)),
        r#"
        status {system_state: up, update_time: "2020-12-08 22:59:57"}
        label snmp_enabled=true
        "#,
    );
}

#[test]
fn start_of_kube_owner_with_fallback_runs_local_while_master_unreachable() {
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .remote(RemoteState::Stopped)
        .0;
    check(
        &trace(&plan_start(&facts)),
        r#"
        status {system_state: up, current_owner: local, container_id: "snmp", remote_state: none, update_time: "2020-12-08 22:59:57"}
        docker start snmp
        label snmp_enabled=true
        "#,
    );
}

#[test]
fn start_without_kube_support_runs_local_even_for_kube_owner_and_writes_nothing() {
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .no_fallback()
        .without_kube_support()
        .0;
    check(&trace(&plan_start(&facts)), "docker start snmp");
}

#[test]
fn c_t0_stop_local_clears_label_stops_and_records_down() {
    let facts = Facts::new("snmp")
        .current(CurrentOwner::Local)
        .id("snmp")
        .system(SystemState::Up)
        .0;
    check(
        &trace(&plan_stop(&facts, None)),
        r#"
        label snmp_enabled=false
        docker stop snmp
        status {system_state: down, current_owner: none, container_id: "", update_time: "2020-12-08 22:59:57"}
        "#,
    );
}

#[test]
fn c_t1_stop_kube_keeps_label_stops_by_id_and_records_stopped() {
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .current(CurrentOwner::Kube)
        .id("xxx")
        .remote(RemoteState::Running)
        .0;
    check(
        &trace(&plan_stop(&facts, Some(Duration::from_secs(60)))),
        r#"
        docker stop -t 60 xxx
        status {system_state: down, current_owner: none, container_id: "", remote_state: stopped, update_time: "2020-12-08 22:59:57"}
        "#,
    );
}

#[test]
fn stop_with_no_container_only_records_down() {
    let facts = Facts::new("snmp").owner(SetOwner::Kube).id("").0;
    check(
        &trace(&plan_stop(&facts, None)),
        r#"
        status {system_state: down, current_owner: none, container_id: "", update_time: "2020-12-08 22:59:57"}
        "#,
    );
}

#[test]
fn stop_with_garbage_container_id_records_down_then_refuses() {
    let facts = Facts::new("snmp").owner(SetOwner::Kube).id("a b").0;
    check(
        &trace(&plan_stop(&facts, None)),
        r#"
        status {system_state: down, current_owner: none, container_id: "", update_time: "2020-12-08 22:59:57"}
        refuse: invalid container id "a b" in state db
        "#,
    );
}

#[test]
fn c_k0_kill_local_enabled_kills_without_state_or_label() {
    let facts = Facts::new("snmp")
        .state(AdminState::Enabled)
        .current(CurrentOwner::Local)
        .0;
    check(&trace(&plan_kill(&facts)), "docker kill snmp");
}

#[test]
fn c_k1_kill_kube_drops_label_and_kills_by_id() {
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .current(CurrentOwner::Kube)
        .id("xxx")
        .0;
    check(
        &trace(&plan_kill(&facts)),
        r#"
        label snmp_enabled=false
        docker kill xxx
        "#,
    );
}

#[test]
fn c_k2_kill_of_disabled_local_feature_refuses_without_docker_call() {
    let facts = Facts::new("snmp").current(CurrentOwner::Local).0;
    check(
        &trace(&plan_kill(&facts)),
        "refuse: feature is locally owned and not enabled: nothing to kill",
    );
}

#[test]
fn c_w0_wait_local_records_stable_version_and_waits_on_the_feature() {
    let facts = Facts::new("snmp").current(CurrentOwner::Local).id("snmp").0;
    let (mut m, first) = WaitMachine::new(
        &facts,
        &RemoteCtrConfig::default(),
        Timestamp::from_millis(0),
    );
    let second = m.step(
        Timestamp::from_millis(10),
        WaitEvent::Inspected(Some(InspectedContainer {
            running: true,
            version: Some(ver("20201231.11")),
        })),
    );
    check(
        &format!("{}\n{}", trace(&first), trace(&second)),
        r#"
        docker inspect snmp
        status {container_stable_version: 20201231.11}
        docker wait snmp
        "#,
    );
    assert!(m.is_done());
    assert_eq!(wait_exit_status(0), 0);
    assert_eq!(wait_exit_status(137), 0);
    assert_eq!(wait_exit_status(1), 255);
}

/// Drives a wait machine: `script` answers each read with a status; prints `@ms action`. No
/// inspect is expected (the status never resolves to the local container).
fn drive_wait(
    facts: &sonic_feature_core::container::CommandFacts,
    timers: &RemoteCtrConfig,
    script: impl FnMut(u64) -> FeatureStatus,
) -> String {
    drive_wait_inspecting(facts, timers, script, |now| {
        panic!("unexpected docker inspect at {now} ms")
    })
}

/// [`drive_wait`] where `inspect` answers each inspect of the local container.
fn drive_wait_inspecting(
    facts: &sonic_feature_core::container::CommandFacts,
    timers: &RemoteCtrConfig,
    mut script: impl FnMut(u64) -> FeatureStatus,
    mut inspect: impl FnMut(u64) -> Option<InspectedContainer>,
) -> String {
    let mut now = 0u64;
    let (mut m, mut actions) = WaitMachine::new(facts, timers, Timestamp::from_millis(now));
    let mut out = Vec::new();
    for _ in 0..1000 {
        let mut next = None;
        for a in &actions {
            out.push(format!("@{now} {a}"));
            match a {
                WaitAction::ReadStatus => next = Some(WaitEvent::Status(script(now))),
                WaitAction::Inspect(_) => next = Some(WaitEvent::Inspected(inspect(now))),
                WaitAction::UpdateStatus(_)
                | WaitAction::WaitOn(_)
                | WaitAction::GaveUp
                | WaitAction::Fail(_) => {}
            }
        }
        if m.is_done() {
            break;
        }
        let ev = match next {
            Some(ev) => ev,
            None => {
                now = m
                    .poll_timeout()
                    .expect("a waiting machine has a deadline")
                    .as_millis();
                WaitEvent::Timeout
            }
        };
        actions = m.step(Timestamp::from_millis(now), ev);
    }
    out.join("\n")
}

#[test]
fn c_w1_wait_kube_promotes_pending_to_ready_then_falls_back_at_the_deadline() {
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .id("")
        .remote(RemoteState::Pending)
        .0;
    let timers = RemoteCtrConfig {
        revert_to_local_on_wait: Duration::from_secs(5),
        ..RemoteCtrConfig::default()
    };
    let mut pending = true;
    let t = drive_wait(&facts, &timers, |_| {
        let s = FeatureStatus {
            container_id: Some(String::new()),
            remote_state: if pending {
                RemoteState::Pending
            } else {
                RemoteState::Ready
            },
            ..FeatureStatus::default()
        };
        pending = false;
        s
    });
    check(
        &t,
        r#"
        @2000 read status
        @2000 status {remote_state: ready}
        @4000 read status
        @6000 status {remote_state: none}
        @6000 exit: fall back to local
        "#,
    );
}

#[test]
fn wait_without_fallback_polls_until_the_container_appears_and_follows_it() {
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .no_fallback()
        .id("")
        .0;
    let timers = RemoteCtrConfig {
        revert_to_local_on_wait: Duration::from_secs(1),
        ..RemoteCtrConfig::default()
    };
    let t = drive_wait(&facts, &timers, |now| FeatureStatus {
        current_owner: if now >= 8000 {
            CurrentOwner::Kube
        } else {
            CurrentOwner::None
        },
        container_id: Some(if now >= 8000 {
            "0123456789ab".into()
        } else {
            String::new()
        }),
        remote_state: if now >= 8000 {
            RemoteState::Running
        } else {
            RemoteState::Pending
        },
        ..FeatureStatus::default()
    });
    check(
        &t,
        r#"
        @2000 read status
        @2000 status {remote_state: ready}
        @4000 read status
        @4000 status {remote_state: ready}
        @6000 read status
        @6000 status {remote_state: ready}
        @8000 read status
        @8000 docker wait 0123456789ab
        "#,
    );
}

#[test]
fn wait_on_a_fresh_db_polls_when_the_feature_container_does_not_exist() {
    // Quirk 16: no container_id field gives the feature name; upstream waited on a container
    // that does not exist. Here the machine inspects first and polls when it is absent.
    let facts = Facts::new("snmp").owner(SetOwner::Kube).0;
    let (mut m, first) = WaitMachine::new(
        &facts,
        &RemoteCtrConfig::default(),
        Timestamp::from_millis(0),
    );
    assert_eq!(trace(&first), "docker inspect snmp");
    assert!(
        m.step(Timestamp::from_millis(5), WaitEvent::Inspected(None))
            .is_empty()
    );
    assert_eq!(m.poll_timeout(), Some(Timestamp::from_millis(2005)));
    assert_eq!(m.deadline(), Some(Timestamp::from_millis(360_005)));
}

/// The old local container left by a cold reboot: it exists, stopped, with its image version.
fn stopped_leftover(_now: u64) -> Option<InspectedContainer> {
    Some(InspectedContainer {
        running: false,
        version: Some(ver("1.0.0")),
    })
}

/// STATE_DB `FEATURE|snmp` after a cold reboot and `container start`: only `system_state`.
fn cold_boot_status() -> FeatureStatus {
    FeatureStatus {
        system_state: Some(SystemState::Up),
        ..FeatureStatus::default()
    }
}

#[test]
fn cold_boot_wait_of_kube_feature_without_fallback_polls_past_the_stopped_local_container() {
    // start did not run the local container (kube must deliver); its stopped leftover is no
    // container to wait on. The wait polls, promotes the pod's pending request, then follows
    // the pod once container_startup registered it. No deadline without fallback.
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .no_fallback()
        .system(SystemState::Up)
        .0;
    let t = drive_wait_inspecting(
        &facts,
        &RemoteCtrConfig::default(),
        |now| {
            let mut s = cold_boot_status();
            if now >= 6000 {
                s.remote_state = RemoteState::Pending;
            }
            if now >= 8000 {
                s.current_owner = CurrentOwner::Kube;
                s.container_id = Some("0123456789ab".into());
                s.remote_state = RemoteState::Running;
            }
            s
        },
        stopped_leftover,
    );
    check(
        &t,
        r#"
        @0 docker inspect snmp
        @2000 read status
        @2000 docker inspect snmp
        @4000 read status
        @4000 docker inspect snmp
        @6000 read status
        @6000 status {remote_state: ready}
        @6000 docker inspect snmp
        @8000 read status
        @8000 docker wait 0123456789ab
        "#,
    );
}

#[test]
fn cold_boot_wait_without_fallback_has_no_deadline() {
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .no_fallback()
        .system(SystemState::Up)
        .0;
    let timers = RemoteCtrConfig {
        revert_to_local_on_wait: Duration::from_secs(1),
        ..RemoteCtrConfig::default()
    };
    let (mut m, _) = WaitMachine::new(&facts, &timers, Timestamp::from_millis(0));
    assert!(
        m.step(
            Timestamp::from_millis(3),
            WaitEvent::Inspected(stopped_leftover(3))
        )
        .is_empty()
    );
    assert_eq!(m.deadline(), None);
    assert!(!m.is_done());
    // An hour of polls: every one reads, inspects the leftover and polls on.
    let mut now = 3;
    for _ in 0..1800 {
        let at = m.poll_timeout().expect("polling").as_millis();
        assert_eq!(at, now + 2000);
        now = at;
        let read = m.step(Timestamp::from_millis(now), WaitEvent::Timeout);
        assert_eq!(trace(&read), "read status");
        let inspect = m.step(
            Timestamp::from_millis(now),
            WaitEvent::Status(cold_boot_status()),
        );
        assert_eq!(trace(&inspect), "docker inspect snmp");
        assert!(
            m.step(
                Timestamp::from_millis(now),
                WaitEvent::Inspected(stopped_leftover(now))
            )
            .is_empty()
        );
    }
    assert!(!m.is_done());
}

#[test]
fn wait_of_kube_feature_not_started_locally_falls_back_at_the_deadline_past_a_stopped_container() {
    // Fallback allowed, but the master is joined and the deployment is stopped: start only
    // marked the feature up. The stopped local container is polled past like no container, and
    // the usual revert-to-local deadline applies.
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .remote(RemoteState::Stopped)
        .system(SystemState::Up)
        .connected()
        .0;
    let timers = RemoteCtrConfig {
        revert_to_local_on_wait: Duration::from_secs(5),
        ..RemoteCtrConfig::default()
    };
    let t = drive_wait_inspecting(
        &facts,
        &timers,
        |_| FeatureStatus {
            remote_state: RemoteState::Stopped,
            ..cold_boot_status()
        },
        stopped_leftover,
    );
    check(
        &t,
        r#"
        @0 docker inspect snmp
        @2000 read status
        @2000 docker inspect snmp
        @4000 read status
        @4000 docker inspect snmp
        @6000 status {remote_state: none}
        @6000 exit: fall back to local
        "#,
    );
}

#[test]
fn wait_on_a_dead_container_of_a_local_feature_ends_at_once() {
    // Existing behaviour: the local container died, the wait ends and the unit restarts it.
    let facts = Facts::new("snmp")
        .current(CurrentOwner::Local)
        .id("snmp")
        .system(SystemState::Up)
        .0;
    let t = drive_wait_inspecting(
        &facts,
        &RemoteCtrConfig::default(),
        |now| panic!("unexpected status read at {now} ms"),
        stopped_leftover,
    );
    check(
        &t,
        r#"
        @0 docker inspect snmp
        @0 status {container_stable_version: 1.0.0}
        @0 docker wait snmp
        "#,
    );
}

#[test]
fn wait_on_a_dead_local_container_that_start_ran_for_a_kube_feature_ends_at_once() {
    // Kube owner with fallback and no deployment: start ran the local container, so a stopped
    // one has died and the unit must restart (the same as for a local owner).
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .current(CurrentOwner::Local)
        .id("snmp")
        .system(SystemState::Up)
        .0;
    let t = drive_wait_inspecting(
        &facts,
        &RemoteCtrConfig::default(),
        |now| panic!("unexpected status read at {now} ms"),
        stopped_leftover,
    );
    check(
        &t,
        r#"
        @0 docker inspect snmp
        @0 status {container_stable_version: 1.0.0}
        @0 docker wait snmp
        "#,
    );
}

#[test]
fn wait_without_kube_support_waits_on_the_stopped_local_container() {
    // Without Kubernetes support start always runs the local container; no status write.
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .no_fallback()
        .without_kube_support()
        .0;
    let t = drive_wait_inspecting(
        &facts,
        &RemoteCtrConfig::default(),
        |now| panic!("unexpected status read at {now} ms"),
        stopped_leftover,
    );
    check(
        &t,
        r#"
        @0 docker inspect snmp
        @0 docker wait snmp
        "#,
    );
}

#[test]
fn running_local_container_of_a_kube_feature_without_fallback_is_waited_on() {
    // A local container that runs (e.g. the image a warm reboot carried) is followed as before.
    let facts = Facts::new("snmp")
        .owner(SetOwner::Kube)
        .no_fallback()
        .system(SystemState::Up)
        .0;
    let t = drive_wait_inspecting(
        &facts,
        &RemoteCtrConfig::default(),
        |now| panic!("unexpected status read at {now} ms"),
        |_| {
            Some(InspectedContainer {
                running: true,
                version: None,
            })
        },
    );
    check(
        &t,
        r#"
        @0 docker inspect snmp
        @0 docker wait snmp
        "#,
    );
}

#[test]
fn c_m_feature_arguments_are_validated_before_any_decision() {
    for ok in ["snmp", "dhcp_relay", "lldp0", "mgmt-framework"] {
        assert!(FeatureName::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", "snmp;reboot", "../snmp", "-t", &"x".repeat(33)] {
        assert!(FeatureName::parse(bad).is_err(), "{bad}");
    }
    // `container id`: absent field gives the feature name, present-empty gives no container.
    let absent = Facts::new("snmp").current(CurrentOwner::Kube).0;
    assert_eq!(plan_id(&absent).unwrap().as_str(), "snmp");
    let empty = Facts::new("snmp").current(CurrentOwner::Kube).id("").0;
    assert_eq!(
        plan_id(&empty).unwrap_err().to_string(),
        "no container runs for the feature"
    );
    let local = Facts::new("snmp").current(CurrentOwner::Local).id("").0;
    assert_eq!(plan_id(&local).unwrap().as_str(), "snmp");
    let kube = Facts::new("snmp")
        .current(CurrentOwner::Kube)
        .id("0123456789ab")
        .0;
    assert_eq!(plan_id(&kube).unwrap().as_str(), "0123456789ab");
}

#[test]
fn container_state_up_and_down_record_the_owner_hld() {
    let facts = Facts::new("snmp").remote(RemoteState::Running).0;
    let up = StateChange::Up {
        owner: SetOwner::Kube,
        id: Some(ContainerId::parse("0123456789ab").unwrap()),
        version: Some(ver("1.2")),
    };
    let up_local = StateChange::Up {
        owner: SetOwner::Local,
        id: None,
        version: None,
    };
    check(
        &format!(
            "{}\n{}\n{}",
            trace(&plan_state(&facts, &up)),
            trace(&plan_state(&facts, &up_local)),
            trace(&plan_state(&facts, &StateChange::Down))
        ),
        r#"
        status {current_owner: kube, container_id: "0123456789ab", container_version: 1.2, update_time: "2020-12-08 22:59:57"}
        status {current_owner: local, container_id: "snmp", update_time: "2020-12-08 22:59:57"}
        status {current_owner: none, container_id: "", remote_state: stopped, update_time: "2020-12-08 22:59:57"}
        "#,
    );
    let no_id = StateChange::Up {
        owner: SetOwner::Kube,
        id: None,
        version: None,
    };
    assert!(matches!(
        plan_state(&facts, &no_id).as_slice(),
        [CommandAction::Refuse(_)]
    ));
}

// ---- container_startup ----

fn startup_facts(set_owner: SetOwner, status: FeatureStatus) -> StartupFacts {
    StartupFacts {
        set_owner,
        status,
        labels: Default::default(),
        wall_time: T.to_owned(),
    }
}

fn args(owner: SetOwner, v: &str) -> StartupArgs {
    StartupArgs {
        feature: feat("snmp"),
        owner,
        version: ver(v),
        own_id: Some(ContainerId::parse("0123456789ab").unwrap()),
    }
}

fn up(remote: RemoteState) -> FeatureStatus {
    FeatureStatus {
        system_state: Some(SystemState::Up),
        remote_state: remote,
        ..FeatureStatus::default()
    }
}

/// First check of a startup machine with these facts.
fn first_check(a: StartupArgs, facts: StartupFacts) -> (StartupMachine, String) {
    let (mut m, first) = StartupMachine::new(a);
    assert_eq!(first, vec![StartupAction::ReadFacts]);
    let out = m.step(
        Timestamp::from_millis(0),
        StartupEvent::Facts(Box::new(facts)),
    );
    (m, trace(&out))
}

#[test]
fn s0_local_start_records_owner_version_and_local_label() {
    let (m, t) = first_check(
        args(SetOwner::Local, "20201230.11"),
        startup_facts(SetOwner::Kube, up(RemoteState::None)),
    );
    check(
        &t,
        r#"
        status {current_owner: local, container_id: "snmp", container_version: 20201230.11, update_time: "2020-12-08 22:59:57"}
        label snmp_local=20201230.11
        proceed
        "#,
    );
    assert!(m.is_done());
}

#[test]
fn s1_kube_pod_while_set_owner_local_is_frozen_without_writes() {
    let (m, t) = first_check(
        args(SetOwner::Kube, "20201230.11"),
        startup_facts(SetOwner::Local, up(RemoteState::None)),
    );
    check(&t, "frozen: bail out as set_owner is local");
    assert!(!m.is_done());
}

#[test]
fn s2_kube_pod_while_system_down_is_frozen_without_writes() {
    let mut st = up(RemoteState::None);
    st.system_state = Some(SystemState::Down);
    let (_, t) = first_check(
        args(SetOwner::Kube, "20201230.11"),
        startup_facts(SetOwner::Kube, st),
    );
    check(&t, "frozen: bail out as system state not active");
}

#[test]
fn s3_kube_pod_with_a_request_already_pending_only_records_its_version() {
    // Upstream used the non-state "no_change"; an already pending request is the real case.
    let mut st = up(RemoteState::Pending);
    st.container_version = Some(ver("20201230.77"));
    let (_, t) = first_check(
        args(SetOwner::Kube, "20201230.11"),
        startup_facts(SetOwner::Kube, st),
    );
    check(&t, "status {container_version: 20201230.11}");
}

#[test]
fn s4_kube_pod_with_no_remote_state_asks_with_pending() {
    let (m, t) = first_check(
        args(SetOwner::Kube, "20201230.11"),
        startup_facts(SetOwner::Kube, up(RemoteState::None)),
    );
    check(
        &t,
        "status {remote_state: pending, container_version: 20201230.11}",
    );
    assert_eq!(m.poll_timeout(), Some(Timestamp::from_millis(2000)));
}

#[test]
fn s5_kube_pod_with_ready_takes_over() {
    let mut st = up(RemoteState::Ready);
    st.container_version = Some(ver("20201230.77"));
    let (m, t) = first_check(
        args(SetOwner::Kube, "20201230.11"),
        startup_facts(SetOwner::Kube, st),
    );
    check(
        &t,
        r#"
        status {current_owner: kube, container_id: "0123456789ab", remote_state: running, container_version: 20201230.11, update_time: "2020-12-08 22:59:57"}
        proceed
        "#,
    );
    assert!(m.is_done());
}

#[test]
fn s6_kube_pod_with_ready_and_no_current_version_takes_over() {
    let (_, t) = first_check(
        args(SetOwner::Kube, "20201230.11"),
        startup_facts(SetOwner::Kube, up(RemoteState::Ready)),
    );
    check(
        &t,
        r#"
        status {current_owner: kube, container_id: "0123456789ab", remote_state: running, container_version: 20201230.11, update_time: "2020-12-08 22:59:57"}
        proceed
        "#,
    );
}

#[test]
fn s7_kube_pod_of_the_local_version_is_frozen() {
    let mut f = startup_facts(SetOwner::Kube, up(RemoteState::None));
    f.labels = labels(&[("snmp_local", "20201230.11")]);
    let (_, t) = first_check(args(SetOwner::Kube, "20201230.11"), f);
    check(&t, "frozen: this version is marked disabled");
}

#[test]
fn kube_pod_of_a_blocked_version_is_frozen_hld() {
    let mut f = startup_facts(SetOwner::Kube, up(RemoteState::None));
    f.labels = labels(&[("snmp_20201230.11_enabled", "false")]);
    let (_, t) = first_check(args(SetOwner::Kube, "20201230.11"), f);
    check(&t, "frozen: this version is marked disabled");
}

#[test]
fn frozen_kube_pod_is_admitted_once_the_service_comes_up() {
    // Quirk 13: upstream froze for ever when system_state was not up.
    let mut down = up(RemoteState::None);
    down.system_state = Some(SystemState::Down);
    let (mut m, t) = first_check(
        args(SetOwner::Kube, "2.0"),
        startup_facts(SetOwner::Kube, down),
    );
    check(&t, "frozen: bail out as system state not active");
    assert_eq!(m.poll_timeout(), Some(Timestamp::from_millis(60_000)));
    assert!(
        m.step(Timestamp::from_millis(59_999), StartupEvent::Timeout)
            .is_empty()
    );
    let again = m.step(Timestamp::from_millis(60_000), StartupEvent::Timeout);
    assert_eq!(again, vec![StartupAction::ReadFacts]);
    let admitted = m.step(
        Timestamp::from_millis(60_001),
        StartupEvent::Facts(Box::new(startup_facts(
            SetOwner::Kube,
            up(RemoteState::Stopped),
        ))),
    );
    check(
        &trace(&admitted),
        "status {remote_state: pending, container_version: 2.0}",
    );
}

#[test]
fn kube_pod_superseded_while_waiting_is_frozen_for_good() {
    let (mut m, _) = first_check(
        args(SetOwner::Kube, "2.0"),
        startup_facts(SetOwner::Kube, up(RemoteState::None)),
    );
    assert_eq!(
        m.step(Timestamp::from_millis(2000), StartupEvent::Timeout),
        vec![StartupAction::ReadFacts]
    );
    let mut other = up(RemoteState::Pending);
    other.container_version = Some(ver("3.0"));
    let out = m.step(
        Timestamp::from_millis(2001),
        StartupEvent::Facts(Box::new(startup_facts(SetOwner::Kube, other))),
    );
    check(
        &trace(&out),
        "frozen: bail out as current deploy version 3.0 is different; re-deploy a higher one",
    );
    assert!(m.is_done());
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn kube_pod_waiting_for_ready_is_held_when_owner_turns_local() {
    let (mut m, _) = first_check(
        args(SetOwner::Kube, "2.0"),
        startup_facts(SetOwner::Kube, up(RemoteState::None)),
    );
    m.step(Timestamp::from_millis(2000), StartupEvent::Timeout);
    let mut st = up(RemoteState::Ready);
    st.container_version = Some(ver("2.0"));
    let out = m.step(
        Timestamp::from_millis(2001),
        StartupEvent::Facts(Box::new(startup_facts(SetOwner::Local, st))),
    );
    check(&trace(&out), "frozen: bail out as set_owner is local");
}

#[test]
fn unmanaged_local_container_proceeds_without_writes() {
    let (_, t) = first_check(
        args(SetOwner::Local, "1.0"),
        startup_facts(SetOwner::Local, FeatureStatus::default()),
    );
    check(&t, "proceed");
}

#[test]
fn replaced_kube_version_restarted_during_a_hand_over_is_held_until_the_new_one_runs() {
    // 1.1.0 ran under kube; 1.2.0 asked with `pending`; the hand-over killed 1.1.0 and its
    // kubelet restarted it. Admitting it would supersede 1.2.0 for good (bug A of the lab).
    let mut st = up(RemoteState::Pending);
    st.current_owner = CurrentOwner::Kube;
    st.container_id = Some("0123456789ab".into());
    st.container_version = Some(ver("1.2.0"));
    let (mut m, t) = first_check(
        args(SetOwner::Kube, "1.1.0"),
        startup_facts(SetOwner::Kube, st.clone()),
    );
    check(
        &t,
        "frozen: bail out as version 1.2.0 is taking over from kube",
    );
    assert!(!m.is_done());
    // Still held while 1.2.0 is `ready`.
    assert_eq!(
        m.step(Timestamp::from_millis(60_000), StartupEvent::Timeout),
        vec![StartupAction::ReadFacts]
    );
    st.remote_state = RemoteState::Ready;
    let out = m.step(
        Timestamp::from_millis(60_001),
        StartupEvent::Facts(Box::new(startup_facts(SetOwner::Kube, st))),
    );
    check(
        &trace(&out),
        "frozen: bail out as version 1.2.0 is taking over from kube",
    );
    assert_eq!(m.poll_timeout(), Some(Timestamp::from_millis(120_001)));
}
