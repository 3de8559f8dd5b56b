//! Admission of a starting container (`container_startup`, upstream-ctrmgrd.md §3): a local
//! container records itself; a Kubernetes-deployed one is admitted only while the feature is
//! kube-owned and up, asks the host with `remote_state=pending`, waits for `ready` and then
//! records itself as the running owner. Otherwise it is held ("frozen") with a reason.

use std::fmt;
use std::time::Duration;

use crate::model::{
    ContainerId, CurrentOwner, FeatureName, FeatureStatus, LabelKey, LabelValue, NodeLabels,
    RemoteState, SetOwner, StatusUpdate, SystemState, Timestamp, Version,
};

/// Poll period while waiting for `ready` (upstream: 2 s).
pub const READY_POLL: Duration = Duration::from_secs(2);
/// Re-check period while frozen (upstream logs every 60 s; here it also re-checks).
pub const FROZEN_RECHECK: Duration = Duration::from_secs(60);

/// The arguments of `container_startup -f <feature> -o <owner> -v <version>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupArgs {
    /// `-f`.
    pub feature: FeatureName,
    /// `-o`: who started this container (`RUNTIME_OWNER`, empty meaning kube).
    pub owner: SetOwner,
    /// `-v`: the image version.
    pub version: Version,
    /// The container's own id (kube containers record it; ignored for local ones).
    pub own_id: Option<ContainerId>,
}

/// What the machine reads on each check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartupFacts {
    /// CONFIG_DB `FEATURE|<f>.set_owner`.
    pub set_owner: SetOwner,
    /// STATE_DB `FEATURE|<f>`.
    pub status: FeatureStatus,
    /// STATE_DB `KUBE_LABELS|SET`.
    pub labels: NodeLabels,
    /// Wall-clock text for `update_time`.
    pub wall_time: String,
}

/// Why a kube container is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreezeReason {
    /// `set_owner` is local.
    SetOwnerLocal,
    /// The service is not up (`system_state` is not `up`).
    SystemNotUp,
    /// This version is the one available locally (`<f>_local` label) or is blocked
    /// (`<f>_<version>_enabled=false`).
    VersionDisabled,
    /// Another deployment overwrote `container_version` while this one waited; final.
    Superseded(Option<Version>),
    /// The container does not know its own id, so it could never be followed; final.
    NoOwnId,
    /// A kube → kube hand-over to another version is in progress (that version is `pending` or
    /// `ready` while a deployment owns the feature): the replaced deployment, restarted by its
    /// kubelet, must not take the feature back. Re-checked.
    HandOverInProgress(Version),
}

impl FreezeReason {
    /// Whether the hold is final (no later change can admit this container).
    pub fn is_final(&self) -> bool {
        match self {
            Self::Superseded(_) | Self::NoOwnId => true,
            Self::SetOwnerLocal
            | Self::SystemNotUp
            | Self::VersionDisabled
            | Self::HandOverInProgress(_) => false,
        }
    }
}

impl fmt::Display for FreezeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SetOwnerLocal => f.write_str("bail out as set_owner is local"),
            Self::SystemNotUp => f.write_str("bail out as system state not active"),
            Self::VersionDisabled => f.write_str("this version is marked disabled"),
            Self::Superseded(Some(v)) => write!(
                f,
                "bail out as current deploy version {v} is different; re-deploy a higher one"
            ),
            Self::Superseded(None) => {
                f.write_str("bail out as current deploy version was cleared; re-deploy")
            }
            Self::NoOwnId => f.write_str("bail out as the container does not know its own id"),
            Self::HandOverInProgress(v) => {
                write!(f, "bail out as version {v} is taking over from kube")
            }
        }
    }
}

/// Input of the [`StartupMachine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupEvent {
    /// The deadline of [`StartupMachine::poll_timeout`] passed.
    Timeout,
    /// Answer to [`StartupAction::ReadFacts`].
    Facts(Box<StartupFacts>),
}

/// Output of the [`StartupMachine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupAction {
    /// Read the facts and answer with [`StartupEvent::Facts`].
    ReadFacts,
    /// HSET fields into STATE_DB `FEATURE|<f>`.
    UpdateStatus(StatusUpdate),
    /// Set a desired label in STATE_DB `KUBE_LABELS|SET`.
    SetLabel(LabelKey, LabelValue),
    /// Held for this reason (log it); a later check may still admit unless the reason is final.
    Frozen(FreezeReason),
    /// Final: start the application.
    Proceed,
}

impl fmt::Display for StartupAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadFacts => f.write_str("read facts"),
            Self::UpdateStatus(u) => write!(f, "status {u}"),
            Self::SetLabel(k, v) => write!(f, "label {k}={v}"),
            Self::Frozen(r) => write!(f, "frozen: {r}"),
            Self::Proceed => f.write_str("proceed"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Facts requested for an admission check.
    Checking,
    /// Asked with `pending`; next poll for `ready` at the given time.
    WaitReadyAt(Timestamp),
    /// Facts requested while waiting for `ready`.
    Polling,
    /// Frozen; re-check at the given time.
    FrozenUntil(Timestamp, FreezeReason),
    /// Finished (proceeded or finally frozen).
    Done,
}

/// The `container_startup` admission machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMachine {
    args: StartupArgs,
    phase: Phase,
}

impl StartupMachine {
    /// A machine for these arguments; its first action is [`StartupAction::ReadFacts`].
    pub fn new(args: StartupArgs) -> (Self, Vec<StartupAction>) {
        (
            Self {
                args,
                phase: Phase::Checking,
            },
            vec![StartupAction::ReadFacts],
        )
    }

    /// Why a kube container cannot be admitted now, if it cannot.
    fn hold(&self, facts: &StartupFacts) -> Option<FreezeReason> {
        if facts.set_owner == SetOwner::Local {
            return Some(FreezeReason::SetOwnerLocal);
        }
        if facts.status.system_state != Some(SystemState::Up) {
            return Some(FreezeReason::SystemNotUp);
        }
        let f = &self.args.feature;
        let v = &self.args.version;
        let local = facts.labels.get(&LabelKey::feature_local(f));
        if local.is_some_and(|l| l.as_str().eq_ignore_ascii_case(v.as_str())) {
            return Some(FreezeReason::VersionDisabled);
        }
        if let Ok(k) = LabelKey::feature_version_enabled(f, v)
            && facts.labels.get(&k).is_some_and(|l| l.as_str() == "false")
        {
            return Some(FreezeReason::VersionDisabled);
        }
        // Upstream lets a pod that comes while another version is pending overwrite
        // `container_version` (the newer deployment supersedes). During a kube → kube hand-over
        // the pod coming is the replaced version restarted by its kubelet (the hand-over's
        // `container stop` killed it): admitting it would supersede the new version for good.
        if facts.status.current_owner == CurrentOwner::Kube
            && matches!(
                facts.status.remote_state,
                RemoteState::Pending | RemoteState::Ready
            )
            && let Some(other) = facts.status.container_version.as_ref().filter(|o| *o != v)
        {
            return Some(FreezeReason::HandOverInProgress(other.clone()));
        }
        if self.args.own_id.is_none() {
            return Some(FreezeReason::NoOwnId);
        }
        None
    }

    fn freeze(&mut self, now: Timestamp, reason: FreezeReason) -> Vec<StartupAction> {
        self.phase = if reason.is_final() {
            Phase::Done
        } else {
            Phase::FrozenUntil(now.plus(FROZEN_RECHECK), reason.clone())
        };
        vec![StartupAction::Frozen(reason)]
    }

    fn check(&mut self, now: Timestamp, facts: StartupFacts) -> Vec<StartupAction> {
        let f = &self.args.feature;
        let v = &self.args.version;
        // Not managed (no Kubernetes support, or before `container start` ever ran).
        if facts.status.system_state.is_none() && self.args.owner == SetOwner::Local {
            self.phase = Phase::Done;
            return vec![StartupAction::Proceed];
        }
        match self.args.owner {
            SetOwner::Local => {
                self.phase = Phase::Done;
                vec![
                    StartupAction::UpdateStatus(
                        StatusUpdate::new()
                            .current_owner(CurrentOwner::Local)
                            .container_id(f.as_str())
                            .update_time(facts.wall_time)
                            .container_version(v.clone()),
                    ),
                    StartupAction::SetLabel(
                        LabelKey::feature_local(f),
                        LabelValue::from_version(v),
                    ),
                    StartupAction::Proceed,
                ]
            }
            SetOwner::Kube => {
                if let Some(reason) = self.hold(&facts) {
                    return self.freeze(now, reason);
                }
                let mut upd = StatusUpdate::new().container_version(v.clone());
                let ask = match facts.status.remote_state {
                    RemoteState::None | RemoteState::Running | RemoteState::Stopped => true,
                    RemoteState::Pending | RemoteState::Ready => false,
                };
                if ask {
                    upd = upd.remote_state(RemoteState::Pending);
                }
                if facts.status.remote_state == RemoteState::Ready {
                    // Already allowed (e.g. a re-check after a restart of this script).
                    return self.take_over(facts.wall_time);
                }
                self.phase = Phase::WaitReadyAt(now.plus(READY_POLL));
                vec![StartupAction::UpdateStatus(upd)]
            }
        }
    }

    fn take_over(&mut self, wall_time: String) -> Vec<StartupAction> {
        self.phase = Phase::Done;
        let Some(id) = self.args.own_id.clone() else {
            return vec![StartupAction::Frozen(FreezeReason::NoOwnId)];
        };
        vec![
            StartupAction::UpdateStatus(
                StatusUpdate::new()
                    .current_owner(CurrentOwner::Kube)
                    .container_id(id.as_str())
                    .update_time(wall_time)
                    .container_version(self.args.version.clone())
                    .remote_state(RemoteState::Running),
            ),
            StartupAction::Proceed,
        ]
    }

    fn poll(&mut self, now: Timestamp, facts: StartupFacts) -> Vec<StartupAction> {
        if facts.status.container_version.as_ref() != Some(&self.args.version) {
            return self.freeze(
                now,
                FreezeReason::Superseded(facts.status.container_version.clone()),
            );
        }
        if let Some(reason) = self.hold(&facts) {
            return self.freeze(now, reason);
        }
        if facts.status.remote_state == RemoteState::Ready {
            return self.take_over(facts.wall_time);
        }
        self.phase = Phase::WaitReadyAt(now.plus(READY_POLL));
        Vec::new()
    }

    /// Feeds one event at `now`; returns the actions to carry out in order.
    pub fn step(&mut self, now: Timestamp, ev: StartupEvent) -> Vec<StartupAction> {
        match (&self.phase, ev) {
            (Phase::Checking, StartupEvent::Facts(facts)) => self.check(now, *facts),
            (Phase::Polling, StartupEvent::Facts(facts)) => self.poll(now, *facts),
            (Phase::FrozenUntil(at, _), StartupEvent::Timeout) if now >= *at => {
                // Upstream froze for ever (quirk 13); re-checking lets a later `container
                // start` (system_state up) or owner change admit this container.
                self.phase = Phase::Checking;
                vec![StartupAction::ReadFacts]
            }
            (Phase::WaitReadyAt(at), StartupEvent::Timeout) if now >= *at => {
                self.phase = Phase::Polling;
                vec![StartupAction::ReadFacts]
            }
            // Early timeouts and stale or duplicated answers change nothing.
            (
                Phase::FrozenUntil(..) | Phase::WaitReadyAt(_),
                StartupEvent::Timeout | StartupEvent::Facts(_),
            )
            | (Phase::Checking | Phase::Polling, StartupEvent::Timeout)
            | (Phase::Done, _) => Vec::new(),
        }
    }

    /// When the machine wants a [`StartupEvent::Timeout`].
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.phase {
            Phase::WaitReadyAt(at) | Phase::FrozenUntil(at, _) => Some(*at),
            Phase::Checking | Phase::Polling | Phase::Done => None,
        }
    }

    /// Whether the machine finished (proceeded or finally frozen).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The current hold reason, if frozen.
    pub fn frozen(&self) -> Option<&FreezeReason> {
        match &self.phase {
            Phase::FrozenUntil(_, r) => Some(r),
            Phase::Checking | Phase::WaitReadyAt(_) | Phase::Polling | Phase::Done => None,
        }
    }
}
