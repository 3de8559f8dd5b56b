//! Scenario traces of the manager behind ctrmgrd, one per upstream scenario id
//! (upstream-ctrmgrd.md §8.2: SV0..SV2, F0..F5, L0..L2) plus the HLD-only behaviours (version
//! labels, failure detection and rollback, label journal across outages, image management).

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{check, feat, labels, ver};
use sonic_feature_core::labels::LabelJournal;
use sonic_feature_core::manager::{Action, Event, Manager, NodeInfo, RequestId};
use sonic_feature_core::model::{
    CurrentOwner, FeatureConfig, FeatureStatus, ImageMgmt, ImageMgmtOverride, RemoteCtrConfig,
    RemoteState, ServerConfig, ServerStatus, SetOwner, SystemState, Timestamp,
};
use sonic_feature_core::ports::{ContainerInfo, ImageInfo};

fn node() -> NodeInfo {
    NodeInfo {
        sonic_version: "20201230.111".into(),
        hwsku: "mock".into(),
        deployment_type: None,
        platform: None,
    }
}

/// The upstream test timers: join latency 2 s, retries 0, revert 5 s, tag latest 0.
fn test_timers() -> RemoteCtrConfig {
    RemoteCtrConfig {
        join_latency_on_boot: Duration::from_secs(2),
        retry_join_interval: Duration::from_secs(0),
        retry_labels_update: Duration::from_secs(0),
        revert_to_local_on_wait: Duration::from_secs(5),
        tag_latest_image_on_wait: Duration::from_secs(0),
        retry_tag_latest: Duration::from_secs(0),
        retry_clean_image: Duration::from_secs(0),
        use_k8s_as_http_proxy: false,
    }
}

/// Runs `(seconds, label, event)` steps, printing `@<s>s <label>` and the actions indented.
struct Sim {
    m: Manager,
    out: Vec<String>,
    /// The latest request of each kind, to build answers.
    req: std::collections::BTreeMap<&'static str, RequestId>,
}

impl Sim {
    fn new() -> Self {
        Self::with(RemoteCtrConfig::default())
    }
    fn with(timers: RemoteCtrConfig) -> Self {
        Self {
            m: Manager::new(timers, node(), LabelJournal::default()),
            out: Vec::new(),
            req: Default::default(),
        }
    }
    fn at(&mut self, secs: u64, label: &str, ev: Event) -> Vec<Action> {
        let now = Timestamp::from_millis(secs * 1000);
        let actions = self.m.step(now, ev);
        self.out.push(format!("@{secs}s {label}"));
        for a in &actions {
            let kind = match a {
                Action::Join(r, _) => Some(("join", *r)),
                Action::ReadNodeLabels(r) => Some(("read", *r)),
                Action::PatchNodeLabels(r, _) => Some(("patch", *r)),
                Action::CheckService(r, _) => Some(("check", *r)),
                Action::GatherImageFacts { request, .. } => Some(("gather", *request)),
                Action::RunImageOps { request, .. } => Some(("ops", *request)),
                Action::RestartService { request, .. } => Some(("restart", *request)),
                _ => None,
            };
            if let Some((k, r)) = kind {
                self.req.insert(k, r);
            }
            if !matches!(a, Action::SaveLabelJournal(_) | Action::SaveClocks(_)) {
                self.out.push(format!("  {a}"));
            }
        }
        actions
    }
    /// Steps to the next deadline.
    fn tick(&mut self) -> Vec<Action> {
        let t = self.m.poll_timeout().expect("a deadline").as_millis() / 1000;
        self.at(t, "timeout", Event::Timeout)
    }
    fn r(&self, kind: &str) -> RequestId {
        self.req.get(kind).copied().unwrap_or(RequestId(0))
    }
    fn join_ok(&self) -> Event {
        Event::JoinSucceeded(self.r("join"))
    }
    fn join_failed(&self) -> Event {
        Event::JoinFailed(self.r("join"), "connection refused".into())
    }
    fn patched(&self) -> Event {
        Event::LabelsPatched(self.r("patch"))
    }
    fn patch_failed(&self) -> Event {
        Event::LabelsPatchFailed(self.r("patch"), "connection refused".into())
    }
    fn node_labels(&self, l: sonic_feature_core::model::NodeLabels) -> Event {
        Event::NodeLabelsRead(self.r("read"), l)
    }
    fn active(&self, f: &str, a: bool) -> Event {
        Event::ServiceActivity {
            request: self.r("check"),
            feature: feat(f),
            active: a,
        }
    }
    fn restarted(&self, f: &str, ok: bool) -> Event {
        Event::ServiceRestarted {
            request: self.r("restart"),
            feature: feat(f),
            ok,
        }
    }
    fn trace(&self) -> String {
        self.out.join("\n")
    }
}

fn server(ip: &str) -> ServerConfig {
    ServerConfig {
        ip: Some(ip.into()),
        ..ServerConfig::default()
    }
}

fn cfg(owner: SetOwner) -> FeatureConfig {
    FeatureConfig {
        set_owner: owner,
        ..FeatureConfig::default()
    }
}

fn st(owner: CurrentOwner, remote: RemoteState) -> FeatureStatus {
    FeatureStatus {
        system_state: Some(SystemState::Up),
        current_owner: owner,
        remote_state: remote,
        container_id: Some(match owner {
            CurrentOwner::Local => "snmp".into(),
            CurrentOwner::Kube => "0123456789ab".into(),
            CurrentOwner::None => String::new(),
        }),
        ..FeatureStatus::default()
    }
}

fn fconf(f: &str, c: FeatureConfig) -> Event {
    Event::FeatureConfigChanged {
        feature: feat(f),
        config: Some(c),
    }
}

fn fstat(f: &str, s: FeatureStatus) -> Event {
    Event::FeatureStatusChanged {
        feature: feat(f),
        status: s,
    }
}

fn start(cfg: ServerConfig, booted: bool) -> Event {
    Event::Start {
        server_config: cfg,
        server_status: ServerStatus {
            update_time: (!booted).then(|| "2020-12-08 22:59:57".to_owned()),
            ..ServerStatus::default()
        },
    }
}

#[test]
fn sv0_boot_waits_latency_then_join_retries_and_describes_the_node() {
    let mut s = Sim::with(test_timers());
    s.at(0, "start after boot", start(server("10.10.10.10"), true));
    let mut upd = server("10.10.10.10");
    upd.insecure = true;
    s.at(1, "config insecure=true", Event::ServerConfigChanged(upd));
    s.tick();
    // Retry interval 0 (the upstream test config): the retry is immediate.
    s.at(2, "join failed", s.join_failed());
    s.at(2, "join ok", s.join_ok());
    check(
        &s.trace(),
        r#"
        @0s start after boot
        @1s config insecure=true
        @2s timeout
          join 10.10.10.10:6443 insecure=true
        @2s join failed
          server status connected=false ip= port= last_error=join failed: connection refused
          join 10.10.10.10:6443 insecure=true
        @2s join ok
          server status connected=true ip=10.10.10.10 port=6443
          desired labels deployment_type=unknown hwsku=mock sonic_version=20201230.111 worker.sonic/platform=
          read node labels
        "#,
    );
}

#[test]
fn sv1_restart_of_the_daemon_joins_at_once_secure() {
    let mut s = Sim::new();
    s.at(0, "start", start(server("10.10.10.10"), false));
    check(
        &s.trace(),
        r#"
        @0s start
          join 10.10.10.10:6443 insecure=false
        "#,
    );
}

#[test]
fn sv2_disable_after_join_resets_and_records_disconnected() {
    let mut s = Sim::new();
    s.at(0, "start", start(server("10.10.10.10"), false));
    s.at(1, "join ok", s.join_ok());
    let mut off = server("10.10.10.10");
    off.disable = true;
    s.at(
        2,
        "config disable=true",
        Event::ServerConfigChanged(off.clone()),
    );
    s.at(3, "same config again", Event::ServerConfigChanged(off));
    check(
        &s.trace(),
        r#"
        @0s start
          join 10.10.10.10:6443 insecure=false
        @1s join ok
          server status connected=true ip=10.10.10.10 port=6443
          desired labels deployment_type=unknown hwsku=mock sonic_version=20201230.111 worker.sonic/platform=
          read node labels
        @2s config disable=true
          reset
          server status connected=false ip=10.10.10.10 port=6443
        @3s same config again
        "#,
    );
}

#[test]
fn f0_owner_local_while_kube_runs_restarts_and_clears_the_label() {
    let mut s = Sim::new();
    s.at(
        0,
        "state",
        fstat("snmp", st(CurrentOwner::Kube, RemoteState::Running)),
    );
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Local)));
    s.at(0, "active", s.active("snmp", true));
    check(
        &s.trace(),
        r#"
        @0s state
        @0s config
          is-active snmp
        @0s active
          desired labels snmp_enabled=false
          restart snmp -> local
        "#,
    );
}

#[test]
fn f1_pending_deployment_while_local_runs_restarts_to_kube() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    s.at(
        0,
        "state",
        fstat("snmp", st(CurrentOwner::Local, RemoteState::Pending)),
    );
    s.at(0, "active", s.active("snmp", true));
    check(
        &s.trace(),
        r#"
        @0s config
        @0s state
          is-active snmp
        @0s active
          desired labels snmp_enabled=true
          restart snmp -> kube
        "#,
    );
}

#[test]
fn f2_inactive_service_is_left_alone() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    s.at(
        0,
        "state",
        fstat("snmp", st(CurrentOwner::Local, RemoteState::Pending)),
    );
    s.at(0, "inactive", s.active("snmp", false));
    check(
        &s.trace(),
        r#"
        @0s config
        @0s state
          is-active snmp
        @0s inactive
        "#,
    );
}

/// F1 up to its restart, which fails: the unit is left inactive, and nothing else would ever
/// restart it (F2 leaves inactive units alone), so the manager retries it with backoff, first
/// asking whether someone started the unit meanwhile.
fn f1_with_a_failed_restart() -> Sim {
    let mut s = Sim::new();
    s.m.set_restart_backoff(Duration::from_secs(1), Duration::from_secs(4));
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    s.at(
        0,
        "state",
        fstat("snmp", st(CurrentOwner::Local, RemoteState::Pending)),
    );
    s.at(0, "active", s.active("snmp", true));
    s.at(0, "restart failed", s.restarted("snmp", false));
    s
}

#[test]
fn a_failed_restart_is_retried_with_backoff_while_the_unit_stays_inactive() {
    let mut s = f1_with_a_failed_restart();
    s.tick();
    s.at(1, "inactive", s.active("snmp", false));
    s.at(1, "restart failed again", s.restarted("snmp", false));
    s.tick();
    s.at(3, "inactive", s.active("snmp", false));
    s.at(3, "restart failed again", s.restarted("snmp", false));
    s.tick();
    s.at(7, "inactive", s.active("snmp", false));
    s.at(7, "restart failed again", s.restarted("snmp", false));
    s.tick();
    s.at(11, "inactive", s.active("snmp", false));
    s.at(11, "restart ok", s.restarted("snmp", true));
    assert_eq!(s.m.poll_timeout(), None, "a restart that worked is done");
    check(
        &s.trace(),
        r#"
        @0s config
        @0s state
          is-active snmp
        @0s active
          desired labels snmp_enabled=true
          restart snmp -> kube
        @0s restart failed
        @1s timeout
          is-active snmp
        @1s inactive
          restart snmp -> kube
        @1s restart failed again
        @3s timeout
          is-active snmp
        @3s inactive
          restart snmp -> kube
        @3s restart failed again
        @7s timeout
          is-active snmp
        @7s inactive
          restart snmp -> kube
        @7s restart failed again
        @11s timeout
          is-active snmp
        @11s inactive
          restart snmp -> kube
        @11s restart ok
        "#,
    );
}

#[test]
fn a_retry_that_finds_the_unit_active_forgets_the_restart() {
    let mut s = f1_with_a_failed_restart();
    s.tick();
    s.at(1, "active (started by someone)", s.active("snmp", true));
    assert_eq!(s.m.poll_timeout(), None);
    check(
        &s.trace(),
        r#"
        @0s config
        @0s state
          is-active snmp
        @0s active
          desired labels snmp_enabled=true
          restart snmp -> kube
        @0s restart failed
        @1s timeout
          is-active snmp
        @1s active (started by someone)
          forget restart snmp
        "#,
    );
}

#[test]
fn a_configuration_change_cancels_the_retry_of_a_failed_restart() {
    let mut s = f1_with_a_failed_restart();
    let mut disabled = cfg(SetOwner::Kube);
    disabled.state = Some(sonic_feature_core::model::AdminState::Disabled);
    s.at(0, "feature disabled", fconf("snmp", disabled));
    assert_eq!(s.m.poll_timeout(), None, "no retry left");
    check(
        &s.trace(),
        r#"
        @0s config
        @0s state
          is-active snmp
        @0s active
          desired labels snmp_enabled=true
          restart snmp -> kube
        @0s restart failed
        @0s feature disabled
          forget restart snmp
        "#,
    );
}

#[test]
fn restarts_left_pending_by_an_earlier_run_are_checked_and_carried_out() {
    // A new daemon (after a kill): the unit is inactive because the earlier run's restart
    // failed; by F2 alone it would stay down.
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    let mut stopped = st(CurrentOwner::None, RemoteState::Pending);
    stopped.system_state = Some(SystemState::Down);
    s.at(0, "state", fstat("snmp", stopped));
    s.at(0, "inactive", s.active("snmp", false));
    s.at(
        0,
        "pending restarts",
        Event::PendingRestarts(
            [
                (feat("snmp"), SetOwner::Kube),
                (feat("gone"), SetOwner::Local),
            ]
            .into(),
        ),
    );
    s.at(0, "inactive", s.active("snmp", false));
    s.at(0, "restart ok", s.restarted("snmp", true));
    assert_eq!(s.m.poll_timeout(), None);
    check(
        &s.trace(),
        r#"
        @0s config
        @0s state
          is-active snmp
        @0s inactive
        @0s pending restarts
          forget restart gone
          is-active snmp
        @0s inactive
          restart snmp -> kube
        @0s restart ok
        "#,
    );
}

#[test]
fn a_pending_restart_whose_unit_is_active_is_forgotten() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    s.at(
        0,
        "state",
        fstat("snmp", st(CurrentOwner::Kube, RemoteState::Running)),
    );
    s.at(0, "active", s.active("snmp", true));
    s.at(
        0,
        "pending restarts",
        Event::PendingRestarts([(feat("snmp"), SetOwner::Kube)].into()),
    );
    s.at(0, "active", s.active("snmp", true));
    assert_eq!(s.m.poll_timeout(), None);
    check(
        &s.trace(),
        r#"
        @0s config
        @0s state
          is-active snmp
        @0s active
          desired labels snmp_enabled=true
        @0s pending restarts
          is-active snmp
        @0s active
          forget restart snmp
        "#,
    );
}

fn kube_running(v: &str) -> FeatureStatus {
    let mut s = st(CurrentOwner::Kube, RemoteState::Running);
    s.container_version = Some(ver(v));
    s.container_stable_version = Some(ver("20201231.64"));
    s
}

fn container(id: &str, image: &str, running: bool) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        name: id.into(),
        image_id: image.into(),
        image_version: None,
        running,
    }
}

fn img(id: &str, repo: &str, tag: &str) -> ImageInfo {
    ImageInfo {
        id: id.into(),
        repository: repo.into(),
        tag: tag.into(),
    }
}

#[test]
fn f3_running_deployment_is_tagged_as_good_after_the_timer() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    let mut ready = st(CurrentOwner::Kube, RemoteState::Ready);
    ready.container_version = Some(ver("20201231.74"));
    s.at(0, "ready", fstat("snmp", ready));
    s.at(0, "active", s.active("snmp", true));
    s.at(1, "running", fstat("snmp", kube_running("20201231.74")));
    s.tick();
    s.at(
        601,
        "facts",
        Event::ImageFacts {
            request: s.r("gather"),
            feature: feat("snmp"),
            container: Some(container("0123456789ab", "sha256:74", true)),
            local_container: Some(container("snmp", "sha256:11", false)),
            images: vec![
                img("sha256:74", "acr.io/docker-snmp", "20201231.74"),
                img("sha256:64", "acr.io/docker-snmp", "20201231.64"),
                img("sha256:11", "docker-snmp", "20201230.11"),
                img("sha256:11", "docker-snmp", "latest"),
            ],
        },
    );
    s.at(
        602,
        "ops done",
        Event::ImageOpsDone {
            request: s.r("ops"),
            feature: feat("snmp"),
            ok: true,
        },
    );
    check(
        &s.trace(),
        r#"
        @0s config
        @0s ready
          is-active snmp
        @0s active
          desired labels snmp_enabled=true
        @1s running
          desired labels snmp_20201231.74_enabled=true
        @601s timeout
          gather image facts snmp 0123456789ab
        @601s facts
          image ops snmp: [docker tag sha256:74 docker-snmp:latest] [docker rm snmp] [status {container_stable_version: 20201231.74, container_last_version: 20201231.64}] [docker rmi docker-snmp:20201230.11]
        @602s ops done
        "#,
    );
    assert_eq!(s.m.poll_timeout(), None);
}

#[test]
fn f4_stopped_to_none_without_config_restarts_at_once() {
    let mut s = Sim::new();
    s.at(
        0,
        "stopped",
        fstat("snmp", st(CurrentOwner::None, RemoteState::Stopped)),
    );
    s.at(
        1,
        "none",
        fstat("snmp", st(CurrentOwner::None, RemoteState::None)),
    );
    check(
        &s.trace(),
        r#"
        @0s stopped
        @1s none
          restart snmp -> local
        "#,
    );
}

#[test]
fn f5_local_owner_with_nothing_running_is_not_restarted() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("swss", cfg(SetOwner::Local)));
    s.at(
        0,
        "state",
        fstat("swss", st(CurrentOwner::None, RemoteState::None)),
    );
    s.at(0, "active", s.active("swss", true));
    check(
        &s.trace(),
        r#"
        @0s config
        @0s state
          is-active swss
        @0s active
          desired labels swss_enabled=false
        "#,
    );
}

fn connected_sim() -> Sim {
    let mut s = Sim::new();
    s.at(0, "start", start(server("10.10.10.10"), false));
    s.at(0, "join ok", s.join_ok());
    s.at(0, "node labels", s.node_labels(labels(&[])));
    s.out.clear();
    s
}

#[test]
fn l0_connected_node_gets_desired_labels() {
    let mut s = connected_sim();
    s.at(
        1,
        "desired",
        Event::DesiredLabelsChanged(labels(&[("foo", "bar")])),
    );
    check(
        &s.trace(),
        r#"
        @1s desired
          patch node labels foo=bar
        "#,
    );
}

#[test]
fn l1_disconnected_node_gets_nothing_until_joined() {
    let mut s = Sim::new();
    s.at(
        0,
        "desired",
        Event::DesiredLabelsChanged(labels(&[("foo", "bar")])),
    );
    check(&s.trace(), "@0s desired");
}

#[test]
fn l2_failed_label_push_is_retried() {
    let mut s = connected_sim();
    s.at(
        1,
        "desired",
        Event::DesiredLabelsChanged(labels(&[("foo", "bar")])),
    );
    s.at(1, "patch failed", s.patch_failed());
    s.tick();
    s.at(6, "patched", s.patched());
    check(
        &s.trace(),
        r#"
        @1s desired
          patch node labels foo=bar
        @1s patch failed
          server status connected=true ip=10.10.10.10 port=6443 last_error=node label update failed: connection refused
        @6s timeout
          patch node labels foo=bar
        @6s patched
          server status connected=true ip=10.10.10.10 port=6443
        "#,
    );
}

#[test]
fn label_changes_during_a_master_outage_are_drained_in_order_on_rejoin() {
    let mut s = connected_sim();
    s.at(
        1,
        "desired a",
        Event::DesiredLabelsChanged(labels(&[("a", "1")])),
    );
    s.at(1, "patched", s.patched());
    let mut off = server("10.10.10.10");
    off.disable = true;
    s.at(2, "outage", Event::ServerConfigChanged(off));
    s.at(
        3,
        "desired a=2 b",
        Event::DesiredLabelsChanged(labels(&[("a", "2"), ("b", "x")])),
    );
    s.at(
        4,
        "desired b only",
        Event::DesiredLabelsChanged(labels(&[("b", "x")])),
    );
    s.at(5, "back", Event::ServerConfigChanged(server("10.10.10.10")));
    s.at(6, "join ok", s.join_ok());
    s.at(
        6,
        "node labels",
        s.node_labels(labels(&[("a", "1"), ("kubernetes.io/os", "linux")])),
    );
    check(
        &s.trace(),
        r#"
        @1s desired a
          patch node labels a=1
        @1s patched
        @2s outage
          reset
          server status connected=false ip=10.10.10.10 port=6443
        @3s desired a=2 b
        @4s desired b only
        @5s back
          join 10.10.10.10:6443 insecure=false
        @6s join ok
          server status connected=true ip=10.10.10.10 port=6443
          desired labels deployment_type=unknown hwsku=mock sonic_version=20201230.111 worker.sonic/platform=
          read node labels
        @6s node labels
          patch node labels b=x a-
        "#,
    );
}

#[test]
fn database_is_never_managed() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("database", cfg(SetOwner::Kube)));
    s.at(
        0,
        "state",
        fstat("database", st(CurrentOwner::Kube, RemoteState::Pending)),
    );
    s.at(
        1,
        "none",
        fstat("database", st(CurrentOwner::None, RemoteState::None)),
    );
    check(&s.trace(), "@0s config\n@0s state\n@1s none");
}

#[test]
fn newer_running_version_replaces_the_older_version_label() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    s.at(0, "running 1.0", fstat("snmp", kube_running("1.0")));
    s.at(0, "active", s.active("snmp", true));
    s.at(
        0,
        "desired echoed",
        Event::DesiredLabelsChanged(labels(&[
            ("snmp_1.0_enabled", "true"),
            ("snmp_enabled", "true"),
        ])),
    );
    let mut v2 = kube_running("2.0");
    v2.container_id = Some("abcdefabcdef".into());
    s.at(10, "running 2.0", fstat("snmp", v2));
    s.at(20, "owner local", fconf("snmp", cfg(SetOwner::Local)));
    check(
        &s.trace(),
        r#"
        @0s config
        @0s running 1.0
          desired labels snmp_1.0_enabled=true
          is-active snmp
        @0s active
          desired labels snmp_enabled=true
        @0s desired echoed
        @10s running 2.0
          desired labels snmp_2.0_enabled=true snmp_1.0_enabled-
        @20s owner local
          is-active snmp
        "#,
    );
}

fn watched(minutes: u64, fallback: bool) -> FeatureConfig {
    FeatureConfig {
        set_owner: SetOwner::Kube,
        fallback,
        kube_failure_detection: Some(Duration::from_secs(minutes * 60)),
        ..FeatureConfig::default()
    }
}

#[test]
fn failing_deployment_raises_an_alert_then_falls_back_to_the_golden_image() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", watched(5, true)));
    let mut pending = st(CurrentOwner::None, RemoteState::Pending);
    pending.container_version = Some(ver("2.0"));
    s.at(0, "pending", fstat("snmp", pending));
    s.at(0, "inactive", s.active("snmp", false));
    s.tick();
    s.tick();
    check(
        &s.trace(),
        r#"
        @0s config
        @0s pending
          is-active snmp
        @0s inactive
        @300s timeout
          alert snmp: not running under kubernetes for 5 minutes
        @600s timeout
          alert snmp: failure persists: falling back to the local golden image
          desired labels snmp_2.0_enabled=false
          status snmp {remote_state: none}
          restart snmp -> local
        "#,
    );
    assert_eq!(s.m.poll_timeout(), None);
}

#[test]
fn failing_deployment_without_fallback_only_alerts() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", watched(1, false)));
    s.at(
        0,
        "pending",
        fstat("snmp", st(CurrentOwner::None, RemoteState::Pending)),
    );
    s.tick();
    s.tick();
    check(
        &s.trace(),
        r#"
        @0s config
        @0s pending
          is-active snmp
        @60s timeout
          alert snmp: not running under kubernetes for 1 minute
        @120s timeout
          alert snmp: failure persists and fallback to local is not allowed
        "#,
    );
}

#[test]
fn recovery_before_the_deadline_cancels_failure_detection() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", watched(5, true)));
    s.at(
        0,
        "pending",
        fstat("snmp", st(CurrentOwner::None, RemoteState::Pending)),
    );
    assert_eq!(s.m.poll_timeout(), Some(Timestamp::from_millis(300_000)));
    s.at(100, "running", fstat("snmp", kube_running("2.0")));
    // The failure is forgotten after a whole period of running (bug B: a crash loop shows
    // `running` briefly on every cycle); then only the mark-good timer remains.
    assert_eq!(s.m.poll_timeout(), Some(Timestamp::from_millis(400_000)));
    let forgotten = s.tick();
    // Nothing to do but persist the clocks without the failure.
    assert!(
        matches!(forgotten.as_slice(), [Action::SaveClocks(c)] if c.features[&feat("snmp")].failing_since.is_none()),
        "{forgotten:?}"
    );
    assert_eq!(s.m.poll_timeout(), Some(Timestamp::from_millis(700_000)));
}

#[test]
fn image_management_disabled_arms_no_mark_good_timer() {
    let mut s = Sim::new();
    let mut m = ImageMgmt::default();
    m.per_feature.insert(
        feat("snmp"),
        ImageMgmtOverride {
            disable: Some(true),
            ..ImageMgmtOverride::default()
        },
    );
    s.at(0, "image mgmt", Event::ImageMgmtChanged(m));
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    s.at(1, "running", fstat("snmp", kube_running("2.0")));
    assert_eq!(s.m.poll_timeout(), None);
}

#[test]
fn deployment_that_stopped_before_the_timer_is_not_marked_good() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    s.at(1, "running", fstat("snmp", kube_running("2.0")));
    let mut stopped = kube_running("2.0");
    stopped.remote_state = RemoteState::Stopped;
    stopped.current_owner = CurrentOwner::None;
    s.at(100, "stopped", fstat("snmp", stopped));
    assert_eq!(s.m.poll_timeout(), None);
}

#[test]
fn redelivered_events_give_no_actions() {
    let mut s = connected_sim();
    type MakeEvent = Box<dyn Fn(&Sim) -> Event>;
    let steps: Vec<MakeEvent> = vec![
        Box::new(|_| fconf("snmp", cfg(SetOwner::Kube))),
        Box::new(|_| fstat("snmp", st(CurrentOwner::Local, RemoteState::Pending))),
        Box::new(|s| s.active("snmp", true)),
        Box::new(|_| Event::DesiredLabelsChanged(labels(&[("foo", "bar")]))),
        Box::new(|s| s.patched()),
        Box::new(|s| s.join_ok()),
    ];
    for (i, make) in steps.iter().enumerate() {
        let t = 10 + i as u64;
        let ev = make(&s);
        s.at(t, "first", ev.clone());
        assert!(s.at(t, "again", ev).is_empty(), "{}", s.trace());
    }
}

#[test]
fn a_late_answer_to_an_earlier_request_is_not_taken_for_the_current_one() {
    let mut s = connected_sim();
    s.at(
        1,
        "desired a",
        Event::DesiredLabelsChanged(labels(&[("a", "1")])),
    );
    let first = s.patched();
    s.at(
        2,
        "desired b",
        Event::DesiredLabelsChanged(labels(&[("a", "1"), ("b", "2")])),
    );
    s.at(3, "patched a", first.clone());
    s.at(4, "patched a again", first);
    s.at(5, "patched b", s.patched());
    check(
        &s.trace(),
        r#"
        @1s desired a
          patch node labels a=1
        @2s desired b
        @3s patched a
          patch node labels b=2
        @4s patched a again
        @5s patched b
        "#,
    );
}

#[test]
fn join_and_label_failures_are_recorded_in_the_server_status_once_and_cleared_on_success() {
    // Default timers: join retried after 30 s, labels after 5 s.
    let mut s = Sim::new();
    s.at(0, "start", start(server("10.10.10.10"), false));
    s.at(1, "join failed", s.join_failed());
    s.tick();
    s.at(31, "join failed again, same reason", s.join_failed());
    s.tick();
    s.at(
        61,
        "join failed, other reason",
        Event::JoinFailed(s.r("join"), "certificate expired".into()),
    );
    s.tick();
    s.at(91, "join ok", s.join_ok());
    s.at(91, "node labels", s.node_labels(labels(&[])));
    s.at(
        92,
        "desired",
        Event::DesiredLabelsChanged(labels(&[("foo", "bar")])),
    );
    s.at(92, "patch failed", s.patch_failed());
    s.tick();
    s.at(97, "patch failed again", s.patch_failed());
    s.tick();
    s.at(102, "patched", s.patched());
    check(
        &s.trace(),
        r#"
        @0s start
          join 10.10.10.10:6443 insecure=false
        @1s join failed
          server status connected=false ip= port= last_error=join failed: connection refused
        @31s timeout
          join 10.10.10.10:6443 insecure=false
        @31s join failed again, same reason
        @61s timeout
          join 10.10.10.10:6443 insecure=false
        @61s join failed, other reason
          server status connected=false ip= port= last_error=join failed: certificate expired
        @91s timeout
          join 10.10.10.10:6443 insecure=false
        @91s join ok
          server status connected=true ip=10.10.10.10 port=6443
          desired labels deployment_type=unknown hwsku=mock sonic_version=20201230.111 worker.sonic/platform=
          read node labels
        @91s node labels
        @92s desired
          patch node labels foo=bar
        @92s patch failed
          server status connected=true ip=10.10.10.10 port=6443 last_error=node label update failed: connection refused
        @97s timeout
          patch node labels foo=bar
        @97s patch failed again
        @102s timeout
          patch node labels foo=bar
        @102s patched
          server status connected=true ip=10.10.10.10 port=6443
        "#,
    );
}

#[test]
fn a_problem_recorded_by_an_earlier_run_stays_until_the_next_join_succeeds() {
    let mut s = Sim::new();
    s.at(
        0,
        "start",
        Event::Start {
            server_config: server("10.10.10.10"),
            server_status: ServerStatus {
                update_time: Some("2020-12-08 22:59:57".into()),
                last_error: Some("join failed: connection refused".into()),
                ..ServerStatus::default()
            },
        },
    );
    s.at(1, "join failed, same reason", s.join_failed());
    s.tick();
    s.at(31, "join ok", s.join_ok());
    check(
        &s.trace(),
        r#"
        @0s start
          join 10.10.10.10:6443 insecure=false
        @1s join failed, same reason
        @31s timeout
          join 10.10.10.10:6443 insecure=false
        @31s join ok
          server status connected=true ip=10.10.10.10 port=6443
          desired labels deployment_type=unknown hwsku=mock sonic_version=20201230.111 worker.sonic/platform=
          read node labels
        "#,
    );
}

#[test]
fn failure_detection_of_thirty_seconds_alerts_and_falls_back_within_a_minute() {
    let mut s = Sim::new();
    let config = FeatureConfig {
        set_owner: SetOwner::Kube,
        fallback: true,
        kube_failure_detection: Some(Duration::from_secs(30)),
        ..FeatureConfig::default()
    };
    s.at(0, "config", fconf("snmp", config));
    let mut pending = st(CurrentOwner::None, RemoteState::Pending);
    pending.container_version = Some(ver("2.0"));
    s.at(0, "pending", fstat("snmp", pending));
    s.at(0, "inactive", s.active("snmp", false));
    s.tick();
    s.tick();
    check(
        &s.trace(),
        r#"
        @0s config
        @0s pending
          is-active snmp
        @0s inactive
        @30s timeout
          alert snmp: not running under kubernetes for 30 seconds
        @60s timeout
          alert snmp: failure persists: falling back to the local golden image
          desired labels snmp_2.0_enabled=false
          status snmp {remote_state: none}
          restart snmp -> local
        "#,
    );
}

/// Status of a deployment of `v` with this owner and remote state (container `id`).
fn deploy(v: &str, owner: CurrentOwner, remote: RemoteState, id: &str) -> FeatureStatus {
    let mut s = st(owner, remote);
    s.container_version = Some(ver(v));
    s.container_id = Some(id.into());
    s
}

#[test]
fn hld_upgrade_removes_the_replaced_version_label_before_the_hand_over_restart() {
    // Bug A: 1.2.0 writes `container_version=1.2.0, remote_state=pending` first, so the status
    // before "running 1.2.0" never shows 1.1.0 running.
    let mut s = connected_sim();
    s.at(1, "config", fconf("snmp", cfg(SetOwner::Kube)));
    let old = "0123456789ab";
    s.at(
        1,
        "running 1.1.0",
        fstat(
            "snmp",
            deploy("1.1.0", CurrentOwner::Kube, RemoteState::Running, old),
        ),
    );
    s.at(1, "active", s.active("snmp", true));
    s.at(
        2,
        "desired echoed, rollout adds 1.2.0",
        Event::DesiredLabelsChanged(labels(&[
            ("snmp_1.1.0_enabled", "true"),
            ("snmp_1.2.0_enabled", "true"),
            ("snmp_enabled", "true"),
        ])),
    );
    s.at(2, "patched", s.patched());
    s.at(
        10,
        "1.2.0 pending",
        fstat(
            "snmp",
            deploy("1.2.0", CurrentOwner::Kube, RemoteState::Pending, old),
        ),
    );
    s.at(10, "active", s.active("snmp", true));
    s.at(
        11,
        "desired echoed",
        Event::DesiredLabelsChanged(labels(&[
            ("snmp_1.2.0_enabled", "true"),
            ("snmp_enabled", "true"),
        ])),
    );
    s.at(12, "patched", s.patched());
    s.at(
        13,
        "1.2.0 ready",
        fstat(
            "snmp",
            deploy("1.2.0", CurrentOwner::None, RemoteState::Ready, ""),
        ),
    );
    s.at(
        14,
        "1.2.0 running",
        fstat(
            "snmp",
            deploy(
                "1.2.0",
                CurrentOwner::Kube,
                RemoteState::Running,
                "abcdefabcdef",
            ),
        ),
    );
    check(
        &s.trace(),
        r#"
        @1s config
        @1s running 1.1.0
          desired labels snmp_1.1.0_enabled=true
          is-active snmp
        @1s active
          desired labels snmp_enabled=true
        @2s desired echoed, rollout adds 1.2.0
          patch node labels snmp_1.1.0_enabled=true snmp_1.2.0_enabled=true snmp_enabled=true
        @2s patched
        @10s 1.2.0 pending
          desired labels snmp_1.1.0_enabled-
          is-active snmp
        @10s active
        @11s desired echoed
          patch node labels snmp_1.1.0_enabled-
        @12s patched
          restart snmp -> kube
        @13s 1.2.0 ready
        @14s 1.2.0 running
        "#,
    );
}

#[test]
fn hld_upgrade_while_disconnected_hands_over_at_once_and_still_drops_the_old_label() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    let old = "0123456789ab";
    s.at(
        0,
        "running 1.1.0",
        fstat(
            "snmp",
            deploy("1.1.0", CurrentOwner::Kube, RemoteState::Running, old),
        ),
    );
    s.at(0, "active", s.active("snmp", true));
    s.at(
        1,
        "desired echoed",
        Event::DesiredLabelsChanged(labels(&[
            ("snmp_1.1.0_enabled", "true"),
            ("snmp_1.2.0_enabled", "true"),
            ("snmp_enabled", "true"),
        ])),
    );
    s.at(
        10,
        "1.2.0 pending",
        fstat(
            "snmp",
            deploy("1.2.0", CurrentOwner::Kube, RemoteState::Pending, old),
        ),
    );
    s.at(10, "active", s.active("snmp", true));
    check(
        &s.trace(),
        r#"
        @0s config
        @0s running 1.1.0
          desired labels snmp_1.1.0_enabled=true
          is-active snmp
        @0s active
          desired labels snmp_enabled=true
        @1s desired echoed
        @10s 1.2.0 pending
          desired labels snmp_1.1.0_enabled-
          is-active snmp
        @10s active
          restart snmp -> kube
        "#,
    );
}

#[test]
fn fast_crash_loop_is_detected_although_the_pod_briefly_runs_every_cycle() {
    // Bug B: every cycle shows kube/running for a moment; that must not restart the clock.
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", watched(5, true)));
    let mut alerts = Vec::new();
    for cycle in 0..151u64 {
        let t = cycle * 4;
        let id = format!("{cycle:012x}");
        for (dt, status) in [
            (
                0,
                deploy("2.0", CurrentOwner::None, RemoteState::Pending, ""),
            ),
            (
                1,
                deploy("2.0", CurrentOwner::Kube, RemoteState::Running, &id),
            ),
            (
                2,
                deploy("2.0", CurrentOwner::None, RemoteState::Stopped, ""),
            ),
        ] {
            for a in s.at(t + dt, "cycle", fstat("snmp", status)) {
                if let Action::Alert { message, .. } = a {
                    alerts.push(format!("@{}s {message}", t + dt));
                }
            }
        }
    }
    assert_eq!(
        alerts,
        vec![
            "@300s not running under kubernetes for 5 minutes".to_owned(),
            "@600s failure persists: falling back to the local golden image".to_owned(),
        ],
        "{}",
        s.trace()
    );
}

#[test]
fn rollback_restarts_the_service_once_and_alerts_once() {
    // Bug C: the rollback's own `remote_state=none` write (stopped -> none) must not trigger the
    // fast fallback, and the restart's short `system_state=down` must not reset the alert.
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", watched(5, true)));
    s.at(
        0,
        "pending",
        fstat(
            "snmp",
            deploy("2.0", CurrentOwner::None, RemoteState::Pending, ""),
        ),
    );
    s.at(0, "inactive", s.active("snmp", false));
    s.at(
        10,
        "crashed",
        fstat(
            "snmp",
            deploy("2.0", CurrentOwner::None, RemoteState::Stopped, ""),
        ),
    );
    s.tick();
    s.tick();
    s.at(
        600,
        "rollback's write",
        fstat(
            "snmp",
            deploy("2.0", CurrentOwner::None, RemoteState::None, ""),
        ),
    );
    let mut down = deploy("2.0", CurrentOwner::None, RemoteState::None, "");
    down.system_state = Some(SystemState::Down);
    s.at(601, "service down", fstat("snmp", down));
    s.at(
        602,
        "local up",
        fstat(
            "snmp",
            deploy("1.0", CurrentOwner::Local, RemoteState::None, "snmp"),
        ),
    );
    check(
        &s.trace(),
        r#"
        @0s config
        @0s pending
          is-active snmp
        @0s inactive
        @10s crashed
          is-active snmp
        @300s timeout
          alert snmp: not running under kubernetes for 5 minutes
        @600s timeout
          alert snmp: failure persists: falling back to the local golden image
          desired labels snmp_2.0_enabled=false
          status snmp {remote_state: none}
          restart snmp -> local
        @600s rollback's write
        @601s service down
        @602s local up
        "#,
    );
    assert_eq!(s.m.poll_timeout(), None);
}

#[test]
fn rollback_blocks_the_failing_version_even_when_local_already_runs() {
    // Bug D: `container wait` reverted to local before the second period ended.
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", watched(5, true)));
    s.at(
        0,
        "pending",
        fstat(
            "snmp",
            deploy("2.0", CurrentOwner::None, RemoteState::Pending, ""),
        ),
    );
    s.at(0, "inactive", s.active("snmp", false));
    s.at(
        100,
        "reverted to local",
        fstat(
            "snmp",
            deploy("1.0", CurrentOwner::Local, RemoteState::None, "snmp"),
        ),
    );
    s.tick();
    s.tick();
    check(
        &s.trace(),
        r#"
        @0s config
        @0s pending
          is-active snmp
        @0s inactive
        @100s reverted to local
        @300s timeout
          alert snmp: not running under kubernetes for 5 minutes
        @600s timeout
          desired labels snmp_2.0_enabled=false
        "#,
    );
    assert_eq!(s.m.poll_timeout(), None);
}

/// A reconcile as the daemon does it: a fresh manager fed the whole state at `secs`, then the
/// clocks of the one it replaces carried over.
fn reconcile(s: &mut Sim, secs: u64, state: Vec<Event>) {
    let now = Timestamp::from_millis(secs * 1000);
    let mut fresh = Manager::new(
        RemoteCtrConfig::default(),
        node(),
        s.m.label_journal().clone(),
    );
    for ev in state {
        fresh.step(now, ev);
    }
    // Through JSON, as a restarted daemon reads them back from STATE_DB.
    let json = serde_json::to_string(&s.m.clocks()).unwrap();
    fresh.adopt_clocks(&serde_json::from_str(&json).unwrap(), now);
    s.m = fresh;
    s.out.push(format!("@{secs}s reconcile"));
}

#[test]
fn a_reconcile_keeps_the_mark_good_deadline_of_a_running_deployment() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    s.at(1, "running", fstat("snmp", kube_running("20201231.74")));
    let deadline = s.m.poll_timeout();
    assert_eq!(deadline, Some(Timestamp::from_millis(601_000)));
    reconcile(
        &mut s,
        400,
        vec![
            fconf("snmp", cfg(SetOwner::Kube)),
            fstat("snmp", kube_running("20201231.74")),
        ],
    );
    assert_eq!(s.m.poll_timeout(), deadline);
    s.tick();
    check(
        &s.trace(),
        r#"
        @0s config
        @1s running
          desired labels snmp_20201231.74_enabled=true
          is-active snmp
        @400s reconcile
        @601s timeout
          gather image facts snmp 0123456789ab
        "#,
    );
}

#[test]
fn a_reconcile_asks_again_at_once_for_image_facts_that_were_in_flight() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    s.at(1, "running", fstat("snmp", kube_running("20201231.74")));
    s.tick();
    reconcile(
        &mut s,
        650,
        vec![
            fconf("snmp", cfg(SetOwner::Kube)),
            fstat("snmp", kube_running("20201231.74")),
        ],
    );
    assert_eq!(s.m.poll_timeout(), Some(Timestamp::from_millis(650_000)));
}

#[test]
fn a_reconcile_for_another_deployment_does_not_carry_the_old_mark_good_deadline() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", cfg(SetOwner::Kube)));
    s.at(1, "running", fstat("snmp", kube_running("20201231.74")));
    let mut other = kube_running("20201231.80");
    other.container_id = Some("fedcba987654".into());
    reconcile(
        &mut s,
        400,
        vec![fconf("snmp", cfg(SetOwner::Kube)), fstat("snmp", other)],
    );
    assert_eq!(s.m.poll_timeout(), Some(Timestamp::from_millis(1_000_000)));
}

#[test]
fn a_reconcile_keeps_the_failure_clock_and_its_alert_is_not_raised_twice() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", watched(5, true)));
    let mut pending = st(CurrentOwner::None, RemoteState::Pending);
    pending.container_version = Some(ver("2.0"));
    s.at(0, "pending", fstat("snmp", pending.clone()));
    s.at(0, "inactive", s.active("snmp", false));
    s.tick();
    reconcile(
        &mut s,
        400,
        vec![fconf("snmp", watched(5, true)), fstat("snmp", pending)],
    );
    // The rollback stays due 2 periods after the failure began, not 2 periods after the
    // reconcile; the alert of the first period is not repeated.
    assert_eq!(s.m.poll_timeout(), Some(Timestamp::from_millis(600_000)));
    s.tick();
    check(
        &s.trace(),
        r#"
        @0s config
        @0s pending
          is-active snmp
        @0s inactive
        @300s timeout
          alert snmp: not running under kubernetes for 5 minutes
        @400s reconcile
        @600s timeout
          alert snmp: failure persists: falling back to the local golden image
          desired labels snmp_2.0_enabled=false
          status snmp {remote_state: none}
          restart snmp -> local
        "#,
    );
}

#[test]
fn a_reconcile_after_the_feature_recovered_starts_no_failure_clock() {
    let mut s = Sim::new();
    s.at(0, "config", fconf("snmp", watched(5, true)));
    s.at(
        0,
        "pending",
        fstat("snmp", st(CurrentOwner::None, RemoteState::Pending)),
    );
    reconcile(
        &mut s,
        100,
        vec![
            fconf("snmp", watched(5, true)),
            fstat("snmp", kube_running("2.0")),
        ],
    );
    // Running since the reconcile: the old failure is not carried into a running feature,
    // only the mark-good timer of the deployment is armed.
    assert_eq!(s.m.poll_timeout(), Some(Timestamp::from_millis(700_000)));
}

/// The default timers with `use_k8s_as_http_proxy` on.
fn proxy_timers() -> RemoteCtrConfig {
    RemoteCtrConfig {
        use_k8s_as_http_proxy: true,
        ..RemoteCtrConfig::default()
    }
}

fn proxy_request(actions: &[Action]) -> RequestId {
    actions
        .iter()
        .find_map(|a| match a {
            Action::RouteHttpProxy { request, .. } => Some(*request),
            _ => None,
        })
        .expect("a route http proxy action")
}

#[test]
fn the_http_proxy_route_follows_the_master_address_and_a_failure_is_retried() {
    let mut s = Sim::with(proxy_timers());
    // Routed at start, before the boot latency (upstream's startup step 1).
    let a = s.at(0, "start after boot", start(server("10.0.0.1"), true));
    s.at(0, "routed", Event::HttpProxyRouted(proxy_request(&a)));
    // Same address, another field: no new route.
    let mut insecure = server("10.0.0.1");
    insecure.insecure = true;
    s.at(
        1,
        "config insecure=true",
        Event::ServerConfigChanged(insecure),
    );
    let a = s.at(
        2,
        "config ip=10.0.0.2",
        Event::ServerConfigChanged(server("10.0.0.2")),
    );
    s.at(2, "route fails", Event::HttpProxyFailed(proxy_request(&a)));
    // Retried after retry_join_interval (30 s).
    assert_eq!(s.m.poll_timeout(), Some(Timestamp::from_millis(32_000)));
    let a = s.tick();
    s.at(32, "routed", Event::HttpProxyRouted(proxy_request(&a)));
    // A late or repeated answer to an earlier request changes nothing.
    s.at(33, "stale answer", Event::HttpProxyFailed(RequestId(1)));
    let a = s.at(40, "config ip=\"\"", Event::ServerConfigChanged(server("")));
    s.at(40, "routed", Event::HttpProxyRouted(proxy_request(&a)));
    // While one route runs, a newer address waits for its answer, then goes out.
    let a = s.at(
        50,
        "config ip=10.0.0.3",
        Event::ServerConfigChanged(server("10.0.0.3")),
    );
    s.at(
        51,
        "config ip=10.0.0.4",
        Event::ServerConfigChanged(server("10.0.0.4")),
    );
    s.at(52, "routed", Event::HttpProxyRouted(proxy_request(&a)));
    check(
        &s.trace(),
        r#"
        @0s start after boot
          route http proxy -> 10.0.0.1:3128
        @0s routed
        @1s config insecure=true
        @2s config ip=10.0.0.2
          route http proxy -> 10.0.0.2:3128
        @2s route fails
        @32s timeout
          route http proxy -> 10.0.0.2:3128
        @32s routed
        @33s stale answer
        @40s config ip=""
          route http proxy: remove
        @40s routed
        @50s config ip=10.0.0.3
          route http proxy -> 10.0.0.3:3128
        @51s config ip=10.0.0.4
        @52s routed
          route http proxy -> 10.0.0.4:3128
        "#,
    );
}

#[test]
fn without_use_k8s_as_http_proxy_no_route_is_ever_asked() {
    let mut s = Sim::new();
    let mut all = s.at(0, "start", start(server("10.0.0.1"), false));
    all.extend(s.at(
        1,
        "config ip=10.0.0.2",
        Event::ServerConfigChanged(server("10.0.0.2")),
    ));
    all.extend(s.at(2, "config ip=\"\"", Event::ServerConfigChanged(server(""))));
    assert!(
        !all.iter()
            .any(|a| matches!(a, Action::RouteHttpProxy { .. })),
        "{}",
        s.trace()
    );
}
