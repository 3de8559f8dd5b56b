//! Decisions of the `container` command (`start`, `stop`, `kill`, `id`, `wait`, `state`): pure
//! planners from the facts read to an ordered list of [`CommandAction`]s, and the [`WaitMachine`]
//! driven by poll ticks.
//!
//! Upstream: `src/sonic-ctrmgrd/ctrmgr/container` (upstream-ctrmgrd.md §2); every deliberate
//! difference is listed in docs/COMPATIBILITY.md.

use std::fmt;
use std::time::Duration;

use crate::model::{
    ContainerId, CurrentOwner, FeatureConfig, FeatureName, FeatureStatus, LabelKey, LabelValue,
    RemoteCtrConfig, RemoteState, ServerStatus, SetOwner, StatusUpdate, SystemState, Timestamp,
    Version,
};

/// Everything a `container` subcommand reads before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFacts {
    /// The feature (the argument of the command).
    pub feature: FeatureName,
    /// CONFIG_DB `FEATURE|<f>` (the default when the key is absent).
    pub config: FeatureConfig,
    /// STATE_DB `FEATURE|<f>`.
    pub status: FeatureStatus,
    /// STATE_DB `KUBERNETES_MASTER|SERVER`.
    pub server: ServerStatus,
    /// Whether Kubernetes support is installed (the ctrmgrd unit exists). Without it the
    /// command never writes STATE_DB or labels and always runs the local container.
    pub kube_support: bool,
    /// Wall-clock text for `update_time`, from the caller's clock.
    pub wall_time: String,
}

/// Why a command refuses to act; the command exits non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `kill` of a locally owned feature whose `state` is not enabled (upstream #9986: warm and
    /// fast reboot kill every container, disabled ones must not log errors or be touched).
    KillOfDisabledLocalFeature,
    /// STATE_DB has `container_id` present and empty while the feature is not locally owned:
    /// no container runs.
    NoContainer,
    /// STATE_DB `container_id` holds text that is not a container name or id.
    InvalidContainerId(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KillOfDisabledLocalFeature => {
                f.write_str("feature is locally owned and not enabled: nothing to kill")
            }
            Self::NoContainer => f.write_str("no container runs for the feature"),
            Self::InvalidContainerId(v) => write!(f, "invalid container id {v:?} in state db"),
        }
    }
}

/// One step of a `container` command, carried out in order by the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandAction {
    /// HSET these fields into STATE_DB `FEATURE|<f>`.
    UpdateStatus(StatusUpdate),
    /// Set a desired node label in STATE_DB `KUBE_LABELS|SET`.
    SetLabel(LabelKey, LabelValue),
    /// `docker start`.
    Start(ContainerId),
    /// `docker stop` with an optional timeout.
    Stop(ContainerId, Option<Duration>),
    /// `docker kill`.
    Kill(ContainerId),
    /// Refuse; the command exits non-zero.
    Refuse(Refusal),
}

impl fmt::Display for CommandAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpdateStatus(u) => write!(f, "status {u}"),
            Self::SetLabel(k, v) => write!(f, "label {k}={v}"),
            Self::Start(id) => write!(f, "docker start {id}"),
            Self::Stop(id, None) => write!(f, "docker stop {id}"),
            Self::Stop(id, Some(t)) => write!(f, "docker stop -t {} {id}", t.as_secs()),
            Self::Kill(id) => write!(f, "docker kill {id}"),
            Self::Refuse(r) => write!(f, "refuse: {r}"),
        }
    }
}

/// Result of resolving the container of a feature (`container id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdResolution {
    /// The container to act on.
    Id(ContainerId),
    /// `container_id` is present and empty: no container.
    NoContainer,
    /// `container_id` is present but not a valid id.
    Invalid(String),
}

/// Upstream `container_id()`: the feature name when `current_owner` is local or the field is
/// absent, else the field (present and empty means no container).
pub fn resolve_id(feature: &FeatureName, status: &FeatureStatus) -> IdResolution {
    match (status.current_owner, status.container_id.as_deref()) {
        (CurrentOwner::Local, _) | (CurrentOwner::None | CurrentOwner::Kube, None) => {
            IdResolution::Id(ContainerId::of_feature(feature))
        }
        (CurrentOwner::None | CurrentOwner::Kube, Some(text)) => {
            let text = text.trim();
            if text.is_empty() {
                IdResolution::NoContainer
            } else {
                match ContainerId::parse(text) {
                    Ok(id) => IdResolution::Id(id),
                    Err(_) => IdResolution::Invalid(text.to_owned()),
                }
            }
        }
    }
}

/// `container id <f>`: the id to print, or why there is none.
pub fn plan_id(facts: &CommandFacts) -> Result<ContainerId, Refusal> {
    match resolve_id(&facts.feature, &facts.status) {
        IdResolution::Id(id) => Ok(id),
        IdResolution::NoContainer => Err(Refusal::NoContainer),
        IdResolution::Invalid(v) => Err(Refusal::InvalidContainerId(v)),
    }
}

fn enabled_label(facts: &CommandFacts, on: bool) -> CommandAction {
    CommandAction::SetLabel(
        LabelKey::feature_enabled(&facts.feature),
        LabelValue::from_bool(on),
    )
}

/// Whether `container start` runs the local container: owner local, or kube with fallback
/// allowed while no deployment is in progress or the master is not joined.
pub fn starts_local(facts: &CommandFacts) -> bool {
    match facts.config.set_owner {
        SetOwner::Local => true,
        SetOwner::Kube => {
            !facts.kube_support
                || (facts.config.fallback
                    && (facts.status.remote_state == RemoteState::None || !facts.server.connected))
        }
    }
}

/// `container start <f>` (upstream §2.3).
pub fn plan_start(facts: &CommandFacts) -> Vec<CommandAction> {
    let id = ContainerId::of_feature(&facts.feature);
    if !facts.kube_support {
        return vec![CommandAction::Start(id)];
    }
    let local = starts_local(facts);
    let kube = facts.config.set_owner == SetOwner::Kube;
    let mut out = Vec::new();
    let mut upd = StatusUpdate::new()
        .system_state(SystemState::Up)
        .update_time(facts.wall_time.clone());
    if local && !kube {
        out.push(enabled_label(facts, false));
    }
    if local {
        upd = upd
            .remote_state(RemoteState::None)
            .current_owner(CurrentOwner::Local)
            .container_id(facts.feature.as_str());
    }
    out.push(CommandAction::UpdateStatus(upd));
    if local {
        out.push(CommandAction::Start(id));
    }
    if kube {
        out.push(enabled_label(facts, true));
    }
    out
}

/// `container stop [-t N] <f>` (upstream §2.4).
pub fn plan_stop(facts: &CommandFacts, timeout: Option<Duration>) -> Vec<CommandAction> {
    let mut out = Vec::new();
    if facts.kube_support && facts.config.set_owner == SetOwner::Local {
        out.push(enabled_label(facts, false));
    }
    match resolve_id(&facts.feature, &facts.status) {
        IdResolution::Id(id) => out.push(CommandAction::Stop(id, timeout)),
        // Nothing runs: stopping is done; the state below records it.
        IdResolution::NoContainer => {}
        IdResolution::Invalid(v) => out.push(CommandAction::Refuse(Refusal::InvalidContainerId(v))),
    }
    if facts.kube_support {
        let mut upd = StatusUpdate::new()
            .current_owner(CurrentOwner::None)
            .update_time(facts.wall_time.clone())
            .container_id("")
            .system_state(SystemState::Down);
        if facts.status.remote_state == RemoteState::Running {
            upd = upd.remote_state(RemoteState::Stopped);
        }
        // Refusal goes last so that the state is still recorded as down.
        let refuse = matches!(out.last(), Some(CommandAction::Refuse(_)));
        let pos = if refuse { out.len() - 1 } else { out.len() };
        out.insert(pos, CommandAction::UpdateStatus(upd));
    }
    out
}

/// `container kill <f>` (upstream §2.5).
pub fn plan_kill(facts: &CommandFacts) -> Vec<CommandAction> {
    let mut out = Vec::new();
    let remove_label = facts.config.set_owner != SetOwner::Local
        || facts.status.current_owner != CurrentOwner::Local;
    if facts.kube_support && remove_label {
        out.push(enabled_label(facts, false));
    }
    let enabled = facts.config.state.as_ref().is_some_and(|s| s.is_enabled());
    if facts.config.set_owner == SetOwner::Local && !enabled {
        out.push(CommandAction::Refuse(Refusal::KillOfDisabledLocalFeature));
        return out;
    }
    match resolve_id(&facts.feature, &facts.status) {
        IdResolution::Id(id) => out.push(CommandAction::Kill(id)),
        IdResolution::NoContainer => {}
        IdResolution::Invalid(v) => out.push(CommandAction::Refuse(Refusal::InvalidContainerId(v))),
    }
    out
}

/// What `container state <f> up|down` records (HLD: the container's post-start and pre-stop
/// hooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// The container's application is starting.
    Up {
        /// Who started the container.
        owner: SetOwner,
        /// The container's own id (kube containers; a local container is named after its
        /// feature and may leave this `None`).
        id: Option<ContainerId>,
        /// The image version, if known.
        version: Option<Version>,
    },
    /// The container is stopping.
    Down,
}

/// `container state <f> up|down [local|kube]`: records who runs the feature. It does not admit
/// a kube deployment (that is `container_startup`); it only records.
pub fn plan_state(facts: &CommandFacts, change: &StateChange) -> Vec<CommandAction> {
    if !facts.kube_support {
        return Vec::new();
    }
    let upd = match change {
        StateChange::Up { owner, id, version } => {
            let (current, id) = match owner {
                SetOwner::Local => (
                    CurrentOwner::Local,
                    id.clone()
                        .unwrap_or_else(|| ContainerId::of_feature(&facts.feature)),
                ),
                SetOwner::Kube => match id {
                    Some(id) => (CurrentOwner::Kube, id.clone()),
                    None => return vec![CommandAction::Refuse(Refusal::NoContainer)],
                },
            };
            let mut upd = StatusUpdate::new()
                .current_owner(current)
                .container_id(id.as_str())
                .update_time(facts.wall_time.clone());
            if let Some(v) = version {
                upd = upd.container_version(v.clone());
            }
            upd
        }
        StateChange::Down => {
            let mut upd = StatusUpdate::new()
                .current_owner(CurrentOwner::None)
                .container_id("")
                .update_time(facts.wall_time.clone());
            if facts.status.remote_state == RemoteState::Running {
                upd = upd.remote_state(RemoteState::Stopped);
            }
            upd
        }
    };
    vec![CommandAction::UpdateStatus(upd)]
}

/// Exit status of `container wait` for a container's exit code, as `docker-rs wait`: 0 when the
/// container exited with 0 or was killed (137), 255 otherwise.
pub fn wait_exit_status(exit_code: i64) -> i32 {
    if exit_code == 0 || exit_code == 137 {
        0
    } else {
        255
    }
}

/// Poll period of `container wait` while no container id is known (upstream `WAIT_POLL_SECS`).
pub const WAIT_POLL: Duration = Duration::from_secs(2);

/// What `docker inspect` says about the feature's local container (answer to
/// [`WaitAction::Inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectedContainer {
    /// Whether it runs. A stopped local container is not waited on while Kubernetes must
    /// deliver the feature (cold boot: the old container survives, STATE_DB does not).
    pub running: bool,
    /// The `IMAGE_VERSION` of its image, if the image has one.
    pub version: Option<Version>,
}

/// Input of the [`WaitMachine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEvent {
    /// The deadline of [`WaitMachine::poll_timeout`] passed.
    Timeout,
    /// Answer to [`WaitAction::Inspect`]: `None` if the container does not exist.
    Inspected(Option<InspectedContainer>),
    /// Answer to [`WaitAction::ReadStatus`].
    Status(FeatureStatus),
}

/// Output of the [`WaitMachine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitAction {
    /// Inspect the container and answer with [`WaitEvent::Inspected`] (whether it runs, its
    /// `IMAGE_VERSION`).
    Inspect(ContainerId),
    /// Read STATE_DB `FEATURE|<f>` and answer with [`WaitEvent::Status`].
    ReadStatus,
    /// HSET fields into STATE_DB `FEATURE|<f>`.
    UpdateStatus(StatusUpdate),
    /// Final: wait for this container to exit and exit with [`wait_exit_status`].
    WaitOn(ContainerId),
    /// Final: no deployment came in time; `remote_state` was reset so that the service restarts
    /// on the local image. Exit 0.
    GaveUp,
    /// Final: STATE_DB holds an invalid container id; exit non-zero.
    Fail(Refusal),
}

impl fmt::Display for WaitAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inspect(id) => write!(f, "docker inspect {id}"),
            Self::ReadStatus => f.write_str("read status"),
            Self::UpdateStatus(u) => write!(f, "status {u}"),
            Self::WaitOn(id) => write!(f, "docker wait {id}"),
            Self::GaveUp => f.write_str("exit: fall back to local"),
            Self::Fail(r) => write!(f, "fail: {r}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WaitPhase {
    /// Waiting for the answer about the local container.
    Inspecting(ContainerId),
    /// No container yet: next poll at the given time.
    Polling(Timestamp),
    /// A read of the status is outstanding.
    Reading,
    /// A final action was emitted.
    Done,
}

/// `container wait <f>` (upstream §2.6) as a machine: local containers are waited on after
/// recording `container_stable_version`; without a container it polls every 2 s, promotes
/// `pending` to `ready`, follows the container once its id appears, and with fallback allowed
/// gives up at the revert-to-local deadline.
///
/// "Without a container" includes a local container that exists but does not run while
/// `container start` did not run it ([`starts_local`] is false: kube owns the feature and must
/// deliver it). After a cold reboot STATE_DB is empty, the id falls back to the feature name and
/// the old local container is still there, stopped; waiting on it would end at once and make
/// the unit restart in a loop. When start did run the local container, a stopped one has died
/// and the wait ends at once so that the unit restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitMachine {
    feature: FeatureName,
    fallback: bool,
    /// [`starts_local`] of the facts read at the start: whether `container start` ran the
    /// local container.
    started_local: bool,
    kube_support: bool,
    revert_after: Duration,
    deadline: Option<Timestamp>,
    phase: WaitPhase,
}

impl WaitMachine {
    /// Starts the wait at `now` from the facts read; returns the machine and its first actions.
    pub fn new(
        facts: &CommandFacts,
        timers: &RemoteCtrConfig,
        now: Timestamp,
    ) -> (Self, Vec<WaitAction>) {
        let mut m = Self {
            feature: facts.feature.clone(),
            fallback: facts.config.fallback,
            started_local: starts_local(facts),
            kube_support: facts.kube_support,
            revert_after: timers.revert_to_local_on_wait,
            deadline: None,
            phase: WaitPhase::Done,
        };
        let actions = m.follow(now, &facts.status);
        (m, actions)
    }

    /// Decides from a status: wait on a container, inspect the local one, or poll.
    fn follow(&mut self, now: Timestamp, status: &FeatureStatus) -> Vec<WaitAction> {
        match resolve_id(&self.feature, status) {
            IdResolution::Id(id) if id == ContainerId::of_feature(&self.feature) => {
                self.phase = WaitPhase::Inspecting(id.clone());
                vec![WaitAction::Inspect(id)]
            }
            IdResolution::Id(id) => {
                self.phase = WaitPhase::Done;
                vec![WaitAction::WaitOn(id)]
            }
            IdResolution::Invalid(v) => {
                self.phase = WaitPhase::Done;
                vec![WaitAction::Fail(Refusal::InvalidContainerId(v))]
            }
            IdResolution::NoContainer => self.start_polling(now),
        }
    }

    fn start_polling(&mut self, now: Timestamp) -> Vec<WaitAction> {
        if self.fallback && self.deadline.is_none() {
            self.deadline = Some(now.plus(self.revert_after));
        }
        self.phase = WaitPhase::Polling(now.plus(WAIT_POLL));
        Vec::new()
    }

    /// Feeds one event at `now`; returns the actions to carry out in order.
    pub fn step(&mut self, now: Timestamp, ev: WaitEvent) -> Vec<WaitAction> {
        match (&self.phase, ev) {
            // Kube must deliver and nobody runs the old local container: it is no container.
            (WaitPhase::Inspecting(_), WaitEvent::Inspected(Some(c)))
                if !c.running && !self.started_local =>
            {
                self.start_polling(now)
            }
            (WaitPhase::Inspecting(id), WaitEvent::Inspected(Some(c))) => {
                let id = id.clone();
                let version = c.version;
                self.phase = WaitPhase::Done;
                let mut out = Vec::new();
                if let (Some(v), true) = (version, self.kube_support) {
                    out.push(WaitAction::UpdateStatus(
                        StatusUpdate::new().container_stable_version(v),
                    ));
                }
                out.push(WaitAction::WaitOn(id));
                out
            }
            // The id fell back to the feature name but no such container exists (fresh
            // STATE_DB while a deployment is awaited): poll instead of failing at once.
            (WaitPhase::Inspecting(_), WaitEvent::Inspected(None)) => self.start_polling(now),
            (WaitPhase::Polling(at), WaitEvent::Timeout) => {
                if now < *at {
                    return Vec::new();
                }
                if self.deadline.is_some_and(|d| now >= d) {
                    self.phase = WaitPhase::Done;
                    let mut out = Vec::new();
                    if self.kube_support {
                        out.push(WaitAction::UpdateStatus(
                            StatusUpdate::new().remote_state(RemoteState::None),
                        ));
                    }
                    out.push(WaitAction::GaveUp);
                    return out;
                }
                self.phase = WaitPhase::Reading;
                vec![WaitAction::ReadStatus]
            }
            (WaitPhase::Reading, WaitEvent::Status(status)) => {
                let mut out = Vec::new();
                if status.remote_state == RemoteState::Pending && self.kube_support {
                    out.push(WaitAction::UpdateStatus(
                        StatusUpdate::new().remote_state(RemoteState::Ready),
                    ));
                }
                match resolve_id(&self.feature, &status) {
                    IdResolution::NoContainer => {
                        self.phase = WaitPhase::Polling(now.plus(WAIT_POLL));
                    }
                    IdResolution::Id(_) | IdResolution::Invalid(_) => {
                        out.extend(self.follow(now, &status));
                    }
                }
                out
            }
            // Anything else is a stale or duplicated answer: ignore it.
            (WaitPhase::Inspecting(_), WaitEvent::Timeout | WaitEvent::Status(_))
            | (WaitPhase::Polling(_), WaitEvent::Inspected(_) | WaitEvent::Status(_))
            | (WaitPhase::Reading, WaitEvent::Timeout | WaitEvent::Inspected(_))
            | (WaitPhase::Done, _) => Vec::new(),
        }
    }

    /// When the machine wants a [`WaitEvent::Timeout`]; `None` while it waits for an answer or
    /// after it finished.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.phase {
            WaitPhase::Polling(at) => Some(*at),
            WaitPhase::Inspecting(_) | WaitPhase::Reading | WaitPhase::Done => None,
        }
    }

    /// The revert-to-local deadline, when fallback is allowed and polling started.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.deadline
    }

    /// Whether a final action was emitted.
    pub fn is_done(&self) -> bool {
        self.phase == WaitPhase::Done
    }
}
