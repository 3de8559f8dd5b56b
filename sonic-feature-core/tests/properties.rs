//! Property tests over random event sequences (1000 cases each), with small simulated worlds as
//! reference models: the switch as seen by the `container` planners and `container_startup`
//! (ownership invariants), the manager against a simulated master (label sync, redelivery,
//! deadlines), and the image planner over random image lists (the golden image survives).

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use common::{feat, ver};
use sonic_feature_core::container::{
    CommandAction, CommandFacts, InspectedContainer, WaitAction, WaitEvent, WaitMachine, plan_kill,
    plan_start, plan_stop, starts_local,
};
use sonic_feature_core::images::{
    LOCAL_TAG, MarkGoodFacts, MarkGoodPlan, apply_ops, golden_after, plan_mark_good,
};
use sonic_feature_core::labels::LabelJournal;
use sonic_feature_core::manager::{Action, Clocks, Event, Manager, NodeInfo, fallback_allowed};
use sonic_feature_core::model::{
    AdminState, ContainerId, CurrentOwner, FeatureConfig, FeatureStatus, ImageMgmtSettings,
    LabelKey, LabelValue, NodeLabels, RemoteCtrConfig, RemoteState, ServerConfig, ServerStatus,
    SetOwner, SystemState, Timestamp,
};
use sonic_feature_core::ports::{ContainerInfo, ImageInfo};
use sonic_feature_core::startup::{
    StartupAction, StartupArgs, StartupEvent, StartupFacts, StartupMachine,
};

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Ownership: the switch as the planners and machines see it.

#[derive(Debug, Clone)]
enum Op {
    /// systemd starts the service (only when it is not up).
    Start,
    /// systemd stops the service (only when it is up).
    Stop,
    /// `container kill` (warm reboot, or a failed service).
    Kill,
    /// A `container wait` poll (a fresh wait machine reading the current status).
    WaitPoll,
    /// Kubernetes starts a pod of version `1.<n>`.
    PodStart(u8),
    /// Every waiting or frozen pod checks again.
    PodTick,
    SetOwner(bool),
    SetFallback(bool),
    SetConnected(bool),
    /// The local container exits by itself.
    LocalExits,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Start),
        3 => Just(Op::Stop),
        1 => Just(Op::Kill),
        3 => Just(Op::WaitPoll),
        2 => (0u8..3).prop_map(Op::PodStart),
        4 => Just(Op::PodTick),
        1 => any::<bool>().prop_map(Op::SetOwner),
        1 => any::<bool>().prop_map(Op::SetFallback),
        1 => any::<bool>().prop_map(Op::SetConnected),
        1 => Just(Op::LocalExits),
    ]
}

struct Pod {
    id: ContainerId,
    machine: StartupMachine,
}

struct World {
    now: u64,
    config: FeatureConfig,
    status: FeatureStatus,
    connected: bool,
    local_running: bool,
    kube_running: BTreeSet<ContainerId>,
    pods: Vec<Pod>,
    labels: NodeLabels,
    next_pod: u32,
}

impl World {
    fn new() -> Self {
        Self {
            now: 0,
            config: FeatureConfig {
                state: Some(AdminState::Enabled),
                ..FeatureConfig::default()
            },
            status: FeatureStatus::default(),
            connected: false,
            local_running: false,
            kube_running: BTreeSet::new(),
            pods: Vec::new(),
            labels: NodeLabels::new(),
            next_pod: 0,
        }
    }

    fn facts(&self) -> CommandFacts {
        CommandFacts {
            feature: feat("snmp"),
            config: self.config.clone(),
            status: self.status.clone(),
            server: ServerStatus {
                connected: self.connected,
                ..ServerStatus::default()
            },
            kube_support: true,
            wall_time: "t".into(),
        }
    }

    fn stop_container(&mut self, id: &ContainerId) {
        if id.as_str() == "snmp" {
            self.local_running = false;
        } else {
            self.kube_running.remove(id);
        }
    }

    fn apply_command(&mut self, actions: &[CommandAction]) -> Result<(), TestCaseError> {
        for a in actions {
            match a {
                CommandAction::UpdateStatus(u) => u.apply_to(&mut self.status),
                CommandAction::SetLabel(k, v) => {
                    self.labels.insert(k.clone(), v.clone());
                }
                CommandAction::Start(id) => {
                    prop_assert_eq!(id.as_str(), "snmp");
                    // Fallback only where allowed.
                    prop_assert!(
                        self.config.set_owner == SetOwner::Local || self.config.fallback,
                        "local start of a kube owner without fallback"
                    );
                    self.local_running = true;
                }
                CommandAction::Stop(id, _) | CommandAction::Kill(id) => self.stop_container(id),
                CommandAction::Refuse(_) => {}
            }
        }
        Ok(())
    }

    fn startup_facts(&self) -> StartupFacts {
        StartupFacts {
            set_owner: self.config.set_owner,
            status: self.status.clone(),
            labels: self.labels.clone(),
            wall_time: "t".into(),
        }
    }

    fn apply_startup(
        &mut self,
        pod: &ContainerId,
        actions: Vec<StartupAction>,
    ) -> Result<bool, TestCaseError> {
        let mut wants_facts = false;
        for a in actions {
            match a {
                StartupAction::ReadFacts => wants_facts = true,
                StartupAction::UpdateStatus(u) => u.apply_to(&mut self.status),
                StartupAction::SetLabel(k, v) => {
                    self.labels.insert(k, v);
                }
                StartupAction::Frozen(_) => {}
                StartupAction::Proceed => {
                    // No kube deployment admitted while set_owner is local or the service down.
                    prop_assert_eq!(self.config.set_owner, SetOwner::Kube);
                    prop_assert_eq!(self.status.system_state, Some(SystemState::Up));
                    self.kube_running.insert(pod.clone());
                }
            }
        }
        Ok(wants_facts)
    }

    fn drive_pod(&mut self, i: usize, ev: StartupEvent) -> Result<(), TestCaseError> {
        let now = Timestamp::from_millis(self.now);
        let mut ev = Some(ev);
        while let Some(e) = ev.take() {
            let actions = self.pods[i].machine.step(now, e);
            let id = self.pods[i].id.clone();
            if self.apply_startup(&id, actions)? {
                ev = Some(StartupEvent::Facts(Box::new(self.startup_facts())));
            }
        }
        Ok(())
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.now += 1000;
        let up = self.status.system_state == Some(SystemState::Up);
        match op {
            Op::Start if !up => {
                let a = plan_start(&self.facts());
                self.apply_command(&a)?;
            }
            Op::Stop if up => {
                let a = plan_stop(&self.facts(), None);
                self.apply_command(&a)?;
            }
            Op::Start | Op::Stop => {}
            Op::Kill => {
                let a = plan_kill(&self.facts());
                self.apply_command(&a)?;
            }
            Op::WaitPoll => {
                if up {
                    let facts = self.facts();
                    let timers = RemoteCtrConfig::default();
                    let (mut m, mut actions) =
                        WaitMachine::new(&facts, &timers, Timestamp::from_millis(self.now));
                    for _ in 0..3 {
                        let mut ev = None;
                        for a in &actions {
                            match a {
                                WaitAction::UpdateStatus(u) => u.apply_to(&mut self.status),
                                WaitAction::Inspect(id) => {
                                    // The local container always exists (it survives reboots
                                    // and stops); it runs only when started.
                                    let local = InspectedContainer {
                                        running: self.local_running,
                                        version: None,
                                    };
                                    ev = Some(WaitEvent::Inspected(
                                        (id.as_str() == "snmp").then_some(local),
                                    ));
                                }
                                WaitAction::ReadStatus => {
                                    ev = Some(WaitEvent::Status(self.status.clone()));
                                }
                                WaitAction::GaveUp => prop_assert!(self.config.fallback),
                                WaitAction::WaitOn(id) => {
                                    // A stopped local container ends the wait (the unit
                                    // restarts) only when start ran it; else kube must deliver
                                    // and the wait polls (cold boot).
                                    prop_assert!(
                                        id.as_str() != "snmp"
                                            || self.local_running
                                            || starts_local(&facts),
                                        "wait ended on a stopped local container start did not run"
                                    );
                                }
                                WaitAction::Fail(_) => {}
                            }
                        }
                        let ev = match ev {
                            Some(ev) => ev,
                            None => match m.poll_timeout() {
                                Some(_) => WaitEvent::Timeout,
                                None => break,
                            },
                        };
                        let t = m.poll_timeout().map_or(self.now, |t| t.as_millis());
                        actions = m.step(Timestamp::from_millis(t), ev);
                    }
                }
            }
            Op::PodStart(n) => {
                self.next_pod += 1;
                let id = ContainerId::parse(&format!("pod{}", self.next_pod)).unwrap();
                let (m, first) = StartupMachine::new(StartupArgs {
                    feature: feat("snmp"),
                    owner: SetOwner::Kube,
                    version: ver(&format!("1.{n}")),
                    own_id: Some(id.clone()),
                });
                self.pods.push(Pod {
                    id: id.clone(),
                    machine: m,
                });
                let i = self.pods.len() - 1;
                prop_assert_eq!(first, vec![StartupAction::ReadFacts]);
                let facts = self.startup_facts();
                self.drive_pod(i, StartupEvent::Facts(Box::new(facts)))?;
            }
            Op::PodTick => {
                self.now += 60_000;
                for i in 0..self.pods.len() {
                    if self.pods[i].machine.poll_timeout().is_some() {
                        self.drive_pod(i, StartupEvent::Timeout)?;
                    }
                }
            }
            Op::SetOwner(kube) => {
                self.config.set_owner = if *kube {
                    SetOwner::Kube
                } else {
                    SetOwner::Local
                };
            }
            Op::SetFallback(b) => self.config.fallback = *b,
            Op::SetConnected(b) => self.connected = *b,
            Op::LocalExits => self.local_running = false,
        }
        // Never two running owners.
        let running = usize::from(self.local_running) + self.kube_running.len();
        prop_assert!(
            running <= 1,
            "{running} containers run at once after {op:?}"
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn ownership_invariants_hold_over_any_event_sequence(ops in prop::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        for op in &ops {
            w.run(op)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The manager against a simulated master.

#[derive(Debug, Clone)]
enum MOp {
    /// An operator or command writes a desired label (`None` deletes it).
    Desired(u8, Option<u8>),
    /// The master becomes unreachable (disable) or reachable again.
    Master(bool),
    /// The next answer from the master fails.
    Flaky,
    /// Time passes.
    Wait(u16),
    /// A feature status change: owner, remote state, version.
    Status(u8, u8, u8),
    /// A feature config change.
    Config(bool, bool, bool),
}

fn mop() -> impl Strategy<Value = MOp> {
    prop_oneof![
        4 => (0u8..5, prop::option::of(0u8..3)).prop_map(|(k, v)| MOp::Desired(k, v)),
        2 => any::<bool>().prop_map(MOp::Master),
        2 => Just(MOp::Flaky),
        2 => (0u16..400).prop_map(MOp::Wait),
        2 => (0u8..3, 0u8..5, 0u8..3).prop_map(|(o, r, v)| MOp::Status(o, r, v)),
        1 => (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(a, b, c)| MOp::Config(a, b, c)),
    ]
}

struct MasterSim {
    m: Manager,
    now: u64,
    desired: NodeLabels,
    node: NodeLabels,
    master_up: bool,
    flaky: u32,
    queue: Vec<Event>,
    restarts: Vec<(SetOwner, Option<FeatureConfig>)>,
    config: Option<FeatureConfig>,
    /// The latest feature status delivered.
    status: Option<FeatureStatus>,
    /// The clocks of the latest `SaveClocks`.
    saved_clocks: Clocks,
}

impl MasterSim {
    fn new() -> Self {
        let timers = RemoteCtrConfig::default();
        let node = NodeInfo {
            sonic_version: "1.0".into(),
            hwsku: "sku".into(),
            deployment_type: None,
            platform: Some("x86_64-kvm".into()),
        };
        let mut s = Self {
            m: Manager::new(timers, node, LabelJournal::default()),
            now: 0,
            desired: NodeLabels::new(),
            node: [(
                LabelKey::parse("kubernetes.io/os").unwrap(),
                LabelValue::parse("linux").unwrap(),
            )]
            .into_iter()
            .collect(),
            master_up: true,
            flaky: 0,
            queue: Vec::new(),
            restarts: Vec::new(),
            config: None,
            status: None,
            saved_clocks: Clocks::default(),
        };
        let ev = Event::Start {
            server_config: server(true),
            server_status: ServerStatus {
                update_time: Some("t".into()),
                ..ServerStatus::default()
            },
        };
        s.deliver(ev).expect("start");
        s
    }

    /// Steps the manager, checks the per-step invariants, and executes the actions against the
    /// simulated store and master (answers are queued).
    fn deliver(&mut self, ev: Event) -> Result<(), TestCaseError> {
        let now = Timestamp::from_millis(self.now);
        let actions = self.m.step(now, ev.clone());
        // Deadlines never move backwards: nothing is due at or before `now` after a step.
        if let Some(t) = self.m.poll_timeout() {
            prop_assert!(t > now, "deadline {t} not after now {now}");
        }
        // Redelivering the last event yields no action.
        let again = self.m.step(now, ev.clone());
        prop_assert!(again.is_empty(), "redelivered {ev:?} gave {again:?}");
        // Whenever the clocks change, the step persists them: what was persisted last is what
        // a restarted daemon would carry on.
        if let Some(Action::SaveClocks(c)) = actions
            .iter()
            .rev()
            .find(|a| matches!(a, Action::SaveClocks(_)))
        {
            self.saved_clocks = c.clone();
        }
        prop_assert_eq!(&self.m.clocks(), &self.saved_clocks, "after {:?}", ev);
        for a in actions {
            self.execute(a)?;
        }
        Ok(())
    }

    fn fails(&mut self) -> bool {
        if self.flaky > 0 {
            self.flaky -= 1;
            true
        } else {
            false
        }
    }

    fn execute(&mut self, a: Action) -> Result<(), TestCaseError> {
        match a {
            Action::Join(r, _) => {
                let ok = self.master_up && !self.fails();
                self.queue.push(if ok {
                    Event::JoinSucceeded(r)
                } else {
                    Event::JoinFailed(r, "master down".into())
                });
            }
            Action::Reset
            | Action::WriteServerStatus(_)
            | Action::SaveLabelJournal(_)
            | Action::SaveClocks(_) => {}
            Action::Alert { .. } | Action::UpdateFeatureStatus { .. } => {}
            Action::RouteHttpProxy { request, .. } => {
                self.queue.push(Event::HttpProxyRouted(request));
            }
            Action::SetDesiredLabels(p) => {
                p.apply_to(&mut self.desired);
                self.queue
                    .push(Event::DesiredLabelsChanged(self.desired.clone()));
            }
            Action::ReadNodeLabels(r) => {
                let ok = self.master_up && !self.fails();
                self.queue.push(if ok {
                    Event::NodeLabelsRead(r, self.node.clone())
                } else {
                    Event::NodeLabelsReadFailed(r)
                });
            }
            Action::PatchNodeLabels(r, p) => {
                let ok = self.master_up && !self.fails();
                if ok {
                    p.apply_to(&mut self.node);
                }
                self.queue.push(if ok {
                    Event::LabelsPatched(r)
                } else {
                    Event::LabelsPatchFailed(r, "master down".into())
                });
            }
            Action::CheckService(r, f) => self.queue.push(Event::ServiceActivity {
                request: r,
                feature: f,
                active: true,
            }),
            Action::RestartService {
                request,
                feature,
                owner,
            } => {
                self.restarts.push((owner, self.config.clone()));
                self.queue.push(Event::ServiceRestarted {
                    request,
                    feature,
                    ok: true,
                });
            }
            Action::ForgetRestart(_) => {}
            Action::GatherImageFacts {
                request, feature, ..
            } => {
                self.queue
                    .push(Event::ImageFactsFailed { request, feature });
            }
            Action::RunImageOps {
                request, feature, ..
            } => self.queue.push(Event::ImageOpsDone {
                request,
                feature,
                ok: true,
            }),
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), TestCaseError> {
        let mut n = 0;
        while !self.queue.is_empty() {
            let ev = self.queue.remove(0);
            self.deliver(ev)?;
            n += 1;
            prop_assert!(n < 10_000, "no quiescence");
        }
        Ok(())
    }

    fn advance(&mut self, ms: u64) -> Result<(), TestCaseError> {
        let target = self.now + ms;
        while let Some(t) = self.m.poll_timeout().map(|t| t.as_millis()) {
            if t > target {
                break;
            }
            self.now = t.max(self.now);
            self.deliver(Event::Timeout)?;
            self.drain()?;
        }
        self.now = target;
        Ok(())
    }

    fn run(&mut self, op: &MOp) -> Result<(), TestCaseError> {
        match op {
            MOp::Desired(k, v) => {
                let key = LabelKey::parse(&format!("user{k}")).unwrap();
                match v {
                    Some(v) => {
                        self.desired
                            .insert(key, LabelValue::parse(&format!("v{v}")).unwrap());
                    }
                    None => {
                        self.desired.remove(&key);
                    }
                }
                self.deliver(Event::DesiredLabelsChanged(self.desired.clone()))?;
            }
            MOp::Master(up) => {
                self.master_up = *up;
                self.deliver(Event::ServerConfigChanged(server(*up)))?;
            }
            MOp::Flaky => self.flaky += 1,
            MOp::Wait(s) => self.advance(u64::from(*s) * 1000)?,
            MOp::Status(o, r, v) => {
                let owner =
                    [CurrentOwner::None, CurrentOwner::Local, CurrentOwner::Kube][*o as usize];
                let remote = [
                    RemoteState::None,
                    RemoteState::Pending,
                    RemoteState::Ready,
                    RemoteState::Running,
                    RemoteState::Stopped,
                ][*r as usize];
                let status = FeatureStatus {
                    system_state: Some(SystemState::Up),
                    current_owner: owner,
                    container_id: Some(if owner == CurrentOwner::Kube {
                        "abc".into()
                    } else {
                        String::new()
                    }),
                    remote_state: remote,
                    container_version: Some(ver(["1.0", "2.0", "3.0"][*v as usize])),
                    ..FeatureStatus::default()
                };
                self.status = Some(status.clone());
                self.deliver(Event::FeatureStatusChanged {
                    feature: feat("snmp"),
                    status,
                })?;
            }
            MOp::Config(kube, fallback, watch) => {
                let c = FeatureConfig {
                    set_owner: if *kube {
                        SetOwner::Kube
                    } else {
                        SetOwner::Local
                    },
                    fallback: *fallback,
                    kube_failure_detection: watch.then(|| Duration::from_secs(60)),
                    ..FeatureConfig::default()
                };
                self.config = Some(c.clone());
                self.deliver(Event::FeatureConfigChanged {
                    feature: feat("snmp"),
                    config: Some(c),
                })?;
            }
        }
        self.drain()?;
        // A restart towards local is a fallback only where allowed.
        for (owner, cfg) in &self.restarts {
            if *owner == SetOwner::Local {
                prop_assert!(
                    fallback_allowed(cfg.as_ref()),
                    "fallback restart with {cfg:?}"
                );
            }
        }
        Ok(())
    }
}

fn server(up: bool) -> ServerConfig {
    ServerConfig {
        ip: Some("10.0.0.1".into()),
        disable: !up,
        ..ServerConfig::default()
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn node_labels_converge_to_desired_after_any_outages_and_failures(
        ops in prop::collection::vec(mop(), 1..40)
    ) {
        let mut s = MasterSim::new();
        for op in &ops {
            s.run(op)?;
        }
        // The master comes back for good and answers reliably.
        s.flaky = 0;
        s.master_up = true;
        s.deliver(Event::ServerConfigChanged(server(true)))?;
        s.drain()?;
        s.advance(10 * 60 * 1000)?;
        let system: BTreeSet<&str> = ["kubernetes.io/os"].into_iter().collect();
        let ours: NodeLabels = s
            .node
            .iter()
            .filter(|(k, _)| !system.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        prop_assert_eq!(&ours, &s.desired);
        prop_assert!(s.node.contains_key(&LabelKey::parse("kubernetes.io/os").unwrap()));
        // After an upgrade (or any version change) completes, only the running version's label
        // is true: every replaced version's label was removed (HLD safety check).
        if let Some(st) = s.status.as_ref().filter(|st| {
            st.current_owner == CurrentOwner::Kube && st.remote_state == RemoteState::Running
        }) {
            let running = format!("snmp_{}_enabled", st.container_version.as_ref().unwrap());
            let enabled: Vec<&str> = s
                .desired
                .iter()
                .filter(|(k, v)| {
                    k.as_str().starts_with("snmp_")
                        && k.as_str() != "snmp_enabled"
                        && k.as_str().ends_with("_enabled")
                        && v.as_str() == "true"
                })
                .map(|(k, _)| k.as_str())
                .collect();
            prop_assert!(
                enabled.iter().all(|k| *k == running),
                "version labels {enabled:?} while {running} runs"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Images: the golden image is never deleted.

const BASE: &str = "docker-snmp";
const REPO: &str = "acr.io/docker-snmp";

fn image_world() -> impl Strategy<
    Value = (
        Vec<ImageInfo>,
        u8,
        Option<u8>,
        Option<u8>,
        ImageMgmtSettings,
    ),
> {
    let rows = prop::collection::vec((0u8..6, any::<bool>(), 0u8..6), 0..10);
    (
        rows,
        0u8..6,
        prop::option::of(0u8..6),
        prop::option::of(0u8..6),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(|(rows, cur, stable, last, (purge, tag, local, latest))| {
            let mut images: Vec<ImageInfo> = rows
                .into_iter()
                .map(|(id, downloaded, tag)| ImageInfo {
                    id: format!("sha256:{id}"),
                    repository: if downloaded { REPO.into() } else { BASE.into() },
                    tag: format!("1.{tag}"),
                })
                .collect();
            // The running image is listed under its downloaded name.
            images.push(ImageInfo {
                id: format!("sha256:{cur}"),
                repository: REPO.into(),
                tag: format!("1.{cur}"),
            });
            if latest {
                images.push(ImageInfo {
                    id: "sha256:shipped".into(),
                    repository: BASE.into(),
                    tag: LOCAL_TAG.into(),
                });
            }
            let mut seen = BTreeSet::new();
            images.retain(|r| seen.insert(r.reference()));
            let settings = ImageMgmtSettings {
                disable: false,
                active_time_to_mark_good: Duration::from_secs(600),
                purge_older_image: purge,
                tag_new_as_local: tag,
                purge_local_copy: local,
            };
            (images, cur, stable, last, settings)
        })
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn the_golden_image_is_never_deleted((images, cur, stable, last, settings) in image_world()) {
        let image_id = images
            .iter()
            .find(|r| r.repository == REPO && r.tag == format!("1.{cur}"))
            .map(|r| r.id.clone())
            .unwrap();
        let facts = MarkGoodFacts {
            feature: feat("snmp"),
            version: ver(&format!("1.{cur}")),
            container: Some(ContainerInfo {
                id: "abc".into(),
                name: "abc".into(),
                image_id: image_id.clone(),
                image_version: None,
                running: true,
            }),
            local_container: None,
            images: images.clone(),
            stable: stable.map(|s| ver(&format!("1.{s}"))),
            last: last.map(|s| ver(&format!("1.{s}"))),
        };
        let golden_before = golden_after(BASE, &images, &[]);
        match plan_mark_good(&settings, &facts) {
            MarkGoodPlan::Ops(ops) => {
                let golden = golden_after(BASE, &images, &ops);
                let expected = if settings.tag_new_as_local { Some(image_id.clone()) } else { golden_before };
                prop_assert_eq!(&golden, &expected);
                let mut after = images.clone();
                apply_ops(&mut after, &ops);
                if let Some(g) = golden {
                    prop_assert!(after.iter().any(|r| r.id == g), "golden {g} deleted by {ops:?}");
                }
                // The running image always survives.
                prop_assert!(after.iter().any(|r| r.id == image_id));
                // Planning is idempotent: the same facts give the same plan.
                prop_assert_eq!(MarkGoodPlan::Ops(ops), plan_mark_good(&settings, &facts));
            }
            MarkGoodPlan::Retry(_) | MarkGoodPlan::NotRunning => {}
        }
    }
}

/// The reference world reaches the interesting states: a deployment takes over from the local
/// container through the real hand-shake (so the invariants above are not vacuous).
#[test]
fn reference_world_hands_over_from_local_to_kube() {
    let mut w = World::new();
    for op in [
        Op::SetOwner(true),
        Op::SetConnected(true),
        Op::Start,
        Op::PodStart(1),
        Op::WaitPoll,
        Op::Stop,
        Op::Start,
        Op::WaitPoll,
        Op::PodTick,
    ] {
        w.run(&op).unwrap();
        if matches!(op, Op::Start)
            && w.kube_running.is_empty()
            && w.status.remote_state == RemoteState::None
        {
            assert!(w.local_running, "first start runs the local image");
        }
    }
    assert!(!w.local_running);
    assert_eq!(w.kube_running.len(), 1);
    assert_eq!(w.status.current_owner, CurrentOwner::Kube);
    assert_eq!(w.status.remote_state, RemoteState::Running);
}
