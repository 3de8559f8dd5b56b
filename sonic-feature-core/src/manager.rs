//! The manager behind `ctrmgrd` (upstream-ctrmgrd.md §4 plus the HLD's image management and
//! failure detection) as one sans-IO machine: [`Event`]s in, [`Action`]s out, deadlines through
//! [`Manager::poll_timeout`].
//!
//! It joins and resets the master, describes the node with labels, keeps `<f>_enabled` and
//! `<f>_<version>_enabled` labels, restarts services on ownership transitions, falls back fast
//! when a deployment did not come, marks long-running images good, detects features that do not
//! run under Kubernetes, and pushes desired labels to the node through the [`LabelJournal`].
//! The feature `database` is never managed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::images::{ImageOp, MarkGoodFacts, MarkGoodPlan, plan_mark_good};
use crate::labels::{LabelJournal, LabelPatch};
use crate::model::{
    ContainerId, CurrentOwner, FeatureConfig, FeatureName, FeatureStatus, ImageMgmt, LabelKey,
    LabelValue, NodeLabels, RemoteCtrConfig, RemoteState, ServerConfig, ServerStatus, SetOwner,
    StatusUpdate, SystemState, Timestamp, Version,
};
use crate::ports::{ContainerInfo, ImageInfo};

/// Facts describing this node, published as labels after a join.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    /// SONiC build version (label `sonic_version`).
    pub sonic_version: String,
    /// HWSKU (label `hwsku`).
    pub hwsku: String,
    /// `DEVICE_METADATA|localhost.type` (label `deployment_type`, `unknown` when absent).
    pub deployment_type: Option<String>,
    /// Platform (label `worker.sonic/platform`, empty when absent).
    pub platform: Option<String>,
}

impl NodeInfo {
    /// The self-description labels; values are made label-safe with [`LabelValue::lossy`].
    pub fn labels(&self) -> NodeLabels {
        let mut out = NodeLabels::new();
        let mut put = |k: &str, v: &str| {
            if let Ok(k) = LabelKey::parse(k) {
                out.insert(k, LabelValue::lossy(v));
            }
        };
        put("sonic_version", &self.sonic_version);
        put("hwsku", &self.hwsku);
        put(
            "deployment_type",
            self.deployment_type
                .as_deref()
                .filter(|t| !t.is_empty())
                .unwrap_or("unknown"),
        );
        put(
            "worker.sonic/platform",
            self.platform.as_deref().unwrap_or(""),
        );
        out
    }
}

/// Identifies a request of the manager (an action that has an answer). Answers carry it back, so
/// that a redelivered or late answer to an earlier request is never taken for the answer to the
/// current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Input of the [`Manager`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The daemon started; the current CONFIG_DB and STATE_DB server entries. An absent STATE_DB
    /// `update_time` means the switch just booted: the first join waits the boot latency.
    Start {
        /// CONFIG_DB `KUBERNETES_MASTER|SERVER`.
        server_config: ServerConfig,
        /// STATE_DB `KUBERNETES_MASTER|SERVER`.
        server_status: ServerStatus,
    },
    /// CONFIG_DB `KUBERNETES_MASTER|SERVER` changed (a deleted entry is the default config).
    ServerConfigChanged(ServerConfig),
    /// CONFIG_DB `FEATURE|<f>` changed; `None`: deleted.
    FeatureConfigChanged {
        /// The feature.
        feature: FeatureName,
        /// The new configuration.
        config: Option<FeatureConfig>,
    },
    /// STATE_DB `FEATURE|<f>` changed.
    FeatureStatusChanged {
        /// The feature.
        feature: FeatureName,
        /// The new status.
        status: FeatureStatus,
    },
    /// STATE_DB `KUBE_LABELS|SET` changed (complete content).
    DesiredLabelsChanged(NodeLabels),
    /// CONFIG_DB `IMAGE_MGMT` changed.
    ImageMgmtChanged(ImageMgmt),
    /// Answer to [`Action::RestartService`].
    ServiceRestarted {
        /// The request answered.
        request: RequestId,
        /// The feature.
        feature: FeatureName,
        /// Whether the restart succeeded.
        ok: bool,
    },
    /// Restarts that were started (persisted by the executor of [`Action::RestartService`])
    /// and not seen to succeed, as loaded at start: by an earlier run killed meanwhile, or
    /// failed and waiting for their retry. Each is carried out again if its unit is inactive.
    PendingRestarts(BTreeMap<FeatureName, SetOwner>),
    /// Answer to [`Action::CheckService`].
    ServiceActivity {
        /// The request answered.
        request: RequestId,
        /// The feature.
        feature: FeatureName,
        /// Whether its unit is active.
        active: bool,
    },
    /// Answer to [`Action::Join`]: success.
    JoinSucceeded(RequestId),
    /// Answer to [`Action::Join`]: failure, with what went wrong (recorded in the server
    /// status).
    JoinFailed(RequestId, String),
    /// Answer to [`Action::ReadNodeLabels`].
    NodeLabelsRead(RequestId, NodeLabels),
    /// Answer to [`Action::ReadNodeLabels`]: failure.
    NodeLabelsReadFailed(RequestId),
    /// Answer to [`Action::PatchNodeLabels`]: success.
    LabelsPatched(RequestId),
    /// Answer to [`Action::PatchNodeLabels`]: failure, with what went wrong (recorded in the
    /// server status).
    LabelsPatchFailed(RequestId, String),
    /// Answer to [`Action::GatherImageFacts`].
    ImageFacts {
        /// The request answered.
        request: RequestId,
        /// The feature.
        feature: FeatureName,
        /// The deployed container, `None` if it no longer exists.
        container: Option<ContainerInfo>,
        /// The local container named after the feature, `None` if it does not exist.
        local_container: Option<ContainerInfo>,
        /// Every local image reference.
        images: Vec<ImageInfo>,
    },
    /// Answer to [`Action::GatherImageFacts`]: failure.
    ImageFactsFailed {
        /// The request answered.
        request: RequestId,
        /// The feature.
        feature: FeatureName,
    },
    /// Answer to [`Action::RunImageOps`].
    ImageOpsDone {
        /// The request answered.
        request: RequestId,
        /// The feature.
        feature: FeatureName,
        /// Whether every operation succeeded.
        ok: bool,
    },
    /// Answer to [`Action::RouteHttpProxy`]: the rule is in place (or removed).
    HttpProxyRouted(RequestId),
    /// Answer to [`Action::RouteHttpProxy`]: failure (the daemon reports the error); retried
    /// after `retry_join_interval` or at the next change of the master's address.
    HttpProxyFailed(RequestId),
    /// The deadline of [`Manager::poll_timeout`] passed.
    Timeout,
}

/// Output of the [`Manager`], carried out by the daemon's executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Join the master; answer [`Event::JoinSucceeded`] or [`Event::JoinFailed`].
    Join(RequestId, ServerConfig),
    /// Leave the master (forced); no answer.
    Reset,
    /// Replace STATE_DB `KUBERNETES_MASTER|SERVER` with this status, stamping `update_time`
    /// with the wall clock.
    WriteServerStatus(ServerStatus),
    /// Set and remove labels in STATE_DB `KUBE_LABELS|SET`.
    SetDesiredLabels(LabelPatch),
    /// Read the node's labels; answer [`Event::NodeLabelsRead`] or
    /// [`Event::NodeLabelsReadFailed`].
    ReadNodeLabels(RequestId),
    /// Patch the node's labels; answer [`Event::LabelsPatched`] or [`Event::LabelsPatchFailed`].
    PatchNodeLabels(RequestId, LabelPatch),
    /// Persist the label journal (it changed).
    SaveLabelJournal(LabelJournal),
    /// Persist the clocks (they changed), for the next daemon process.
    SaveClocks(Clocks),
    /// Ask whether the feature's unit is active; answer [`Event::ServiceActivity`].
    CheckService(RequestId, FeatureName),
    /// `systemctl reset-failed` + `restart` of the feature, to switch to `owner`; the executor
    /// records the restart as pending (STATE_DB) until it succeeds, so that a restart that
    /// failed survives a daemon restart. Answer [`Event::ServiceRestarted`].
    RestartService {
        /// The request.
        request: RequestId,
        /// The feature.
        feature: FeatureName,
        /// The owner the restart switches to (for the log).
        owner: SetOwner,
    },
    /// Drop the record of a pending restart of the feature: it succeeded after all (its unit
    /// is active) or the feature's configuration changed. No answer.
    ForgetRestart(FeatureName),
    /// HSET into STATE_DB `FEATURE|<f>`.
    UpdateFeatureStatus {
        /// The feature.
        feature: FeatureName,
        /// The fields.
        update: StatusUpdate,
    },
    /// Inspect the deployed container and the local one and list images; answer
    /// [`Event::ImageFacts`] or [`Event::ImageFactsFailed`].
    GatherImageFacts {
        /// The request.
        request: RequestId,
        /// The feature (also the local container's name).
        feature: FeatureName,
        /// The deployed container.
        container: ContainerId,
    },
    /// Carry out image operations in order, stopping at the first failure; answer
    /// [`Event::ImageOpsDone`].
    RunImageOps {
        /// The request.
        request: RequestId,
        /// The feature.
        feature: FeatureName,
        /// The operations.
        ops: Vec<ImageOp>,
    },
    /// Route Docker's HTTP proxy to `<master_ip>:3128` (one iptables nat DNAT rule), or remove
    /// the route when `master_ip` is `None`; only with `use_k8s_as_http_proxy`. Answer
    /// [`Event::HttpProxyRouted`] or [`Event::HttpProxyFailed`].
    RouteHttpProxy {
        /// The request.
        request: RequestId,
        /// The master's address (IP or host name) as configured.
        master_ip: Option<String>,
    },
    /// Raise an alert (error log) about a feature.
    Alert {
        /// The feature.
        feature: FeatureName,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn patch(f: &mut fmt::Formatter<'_>, p: &LabelPatch) -> fmt::Result {
            let mut first = true;
            for (k, v) in &p.set {
                write!(f, "{}{k}={v}", if first { "" } else { " " })?;
                first = false;
            }
            for k in &p.remove {
                write!(f, "{}{k}-", if first { "" } else { " " })?;
                first = false;
            }
            Ok(())
        }
        match self {
            Self::Join(_, c) => write!(
                f,
                "join {}:{} insecure={}",
                c.ip.as_deref().unwrap_or(""),
                c.port,
                c.insecure
            ),
            Self::Reset => f.write_str("reset"),
            Self::WriteServerStatus(s) => {
                write!(
                    f,
                    "server status connected={} ip={} port={}",
                    s.connected,
                    s.ip.as_deref().unwrap_or(""),
                    s.port.map(|p| p.to_string()).unwrap_or_default()
                )?;
                match &s.last_error {
                    Some(e) => write!(f, " last_error={e}"),
                    None => Ok(()),
                }
            }
            Self::SetDesiredLabels(p) => {
                f.write_str("desired labels ")?;
                patch(f, p)
            }
            Self::ReadNodeLabels(_) => f.write_str("read node labels"),
            Self::PatchNodeLabels(_, p) => {
                f.write_str("patch node labels ")?;
                patch(f, p)
            }
            Self::SaveLabelJournal(j) => write!(f, "save label journal ({} queued)", j.queue.len()),
            Self::SaveClocks(c) => write!(f, "save clocks ({} features)", c.features.len()),
            Self::CheckService(_, x) => write!(f, "is-active {x}"),
            Self::RestartService { feature, owner, .. } => {
                write!(f, "restart {feature} -> {owner}")
            }
            Self::ForgetRestart(x) => write!(f, "forget restart {x}"),
            Self::UpdateFeatureStatus { feature, update } => write!(f, "status {feature} {update}"),
            Self::GatherImageFacts {
                feature, container, ..
            } => {
                write!(f, "gather image facts {feature} {container}")
            }
            Self::RunImageOps { feature, ops, .. } => {
                write!(f, "image ops {feature}:")?;
                for op in ops {
                    write!(f, " [{op}]")?;
                }
                Ok(())
            }
            Self::RouteHttpProxy { master_ip, .. } => match master_ip {
                Some(ip) => write!(f, "route http proxy -> {ip}:3128"),
                None => f.write_str("route http proxy: remove"),
            },
            Self::Alert { feature, message } => write!(f, "alert {feature}: {message}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MarkStage {
    /// Waiting until the deadline.
    Waiting(Timestamp),
    /// Facts requested.
    Gathering(RequestId),
    /// Operations running.
    Running(RequestId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MarkGood {
    container: ContainerId,
    version: Version,
    stage: MarkStage,
}

impl MarkGood {
    /// When it is due; `None` while its facts or operations are in flight.
    fn due(&self) -> Option<Timestamp> {
        match self.stage {
            MarkStage::Waiting(t) => Some(t),
            MarkStage::Gathering(_) | MarkStage::Running(_) => None,
        }
    }
}

/// The manager's clocks and what they describe, per feature: the failure clock with its alert
/// and rollback, the uninterrupted run of a deployment, the mark-good timer, and the versions
/// they concern. Persisted by the daemon (STATE_DB `CTRMGRD_STATE|CLOCKS`) so that a restarted
/// daemon carries them on ([`Manager::adopt_clocks`]); the daemon's clock counts from the
/// switch's boot, so the times stay valid across daemon restarts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Clocks {
    /// Features with at least one clock or version.
    pub features: BTreeMap<FeatureName, FeatureClocks>,
}

/// The clocks of one feature (see [`Clocks`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FeatureClocks {
    /// Since when the kube-owned feature does not run under Kubernetes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
    /// Since when its deployment runs without interruption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_since: Option<Timestamp>,
    /// The failure's alert was raised.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub alerted: bool,
    /// The rollback to the golden image was done.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fell_back: bool,
    /// The tag-as-good timer of a running deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark_good: Option<MarkGoodClock>,
    /// The version a rollback blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Version>,
    /// The version that last ran under Kubernetes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<Version>,
}

impl FeatureClocks {
    /// Whether these are the clocks of `e` (what [`Manager::clocks`] takes from it).
    fn describes(&self, e: &FeatureEntry) -> bool {
        let mark_good = match (&self.mark_good, &e.mark_good) {
            (None, None) => true,
            (Some(c), Some(m)) => {
                c.container == m.container && c.version == m.version && c.due == m.due()
            }
            (Some(_), None) | (None, Some(_)) => false,
        };
        mark_good
            && self.failing_since == e.failing_since
            && self.running_since == e.running_since
            && self.alerted == e.alerted
            && self.fell_back == e.fell_back
            && self.candidate == e.candidate
            && self.kube_version == e.kube_version
    }
}

/// The tag-as-good timer of one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkGoodClock {
    /// The deployment's container.
    pub container: ContainerId,
    /// Its version.
    pub version: Version,
    /// When it is due; `None`: its facts or operations were in flight (asked again at once).
    pub due: Option<Timestamp>,
}

/// First wait before a failed service restart is tried again (doubled after each failure).
pub const RESTART_RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between two attempts of a failed service restart.
pub const RESTART_RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestartStage {
    /// The restart runs.
    InFlight(RequestId),
    /// It failed (or a pending one was loaded): ask whether the unit is active at this time.
    RetryAt(Timestamp),
    /// Asked whether the unit is active: inactive means restart again.
    Verifying(RequestId),
}

/// A service restart the manager asked for, followed until it succeeds: the core never restarts
/// an inactive unit on its own (upstream F2), and a failed restart leaves the unit inactive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Restart {
    owner: SetOwner,
    stage: RestartStage,
    /// The wait before the next attempt after another failure.
    delay: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct FeatureEntry {
    config: Option<FeatureConfig>,
    status: Option<FeatureStatus>,
    check_pending: Option<RequestId>,
    mark_good: Option<MarkGood>,
    /// Since when the kube-owned feature does not run under Kubernetes. Kept while the
    /// deployment comes and goes: only a deployment running for a whole detection period (or
    /// the end of monitoring) clears it, so a fast crash loop is still detected.
    failing_since: Option<Timestamp>,
    /// Since when the deployment runs under Kubernetes without interruption.
    running_since: Option<Timestamp>,
    alerted: bool,
    /// The rollback to the golden image was done; no further alert or restart until the
    /// failure is forgotten.
    fell_back: bool,
    /// The version that last ran under Kubernetes (its label goes when another version asks).
    kube_version: Option<Version>,
    /// The version of the latest deployment that asked (`pending`), was allowed (`ready`) or
    /// ran: the version a rollback blocks, even when local already runs again.
    candidate: Option<Version>,
    /// The label of the replaced version whose removal must reach the node before the
    /// hand-over restart (which kills the replaced pod, restarted by its kubelet as long as its
    /// DaemonSet still selects the node).
    removing: Option<LabelKey>,
    /// A hand-over restart waits for `removing` to be confirmed.
    handover_waiting: bool,
    /// The restart asked for and not yet seen to succeed.
    restart: Option<Restart>,
}

/// Whether a feature may run its local image instead of a deployment: locally owned, or kube
/// owned with fallback allowed. An absent configuration is the default (local).
pub fn fallback_allowed(config: Option<&FeatureConfig>) -> bool {
    match config {
        None => true,
        Some(c) => c.set_owner == SetOwner::Local || c.fallback,
    }
}

/// `5 minutes` or `30 seconds`, for messages.
fn span(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match (secs % 60, secs / 60) {
        (0, 1) => "1 minute".to_owned(),
        (0, m) => format!("{m} minutes"),
        (1, 0) => "1 second".to_owned(),
        _ => format!("{secs} seconds"),
    }
}

fn runs_under_kube(s: &FeatureStatus) -> bool {
    s.current_owner == CurrentOwner::Kube && s.remote_state == RemoteState::Running
}

/// The manager behind ctrmgrd.
#[derive(Debug, Clone)]
pub struct Manager {
    timers: RemoteCtrConfig,
    node: NodeInfo,
    images: ImageMgmt,
    started: bool,
    server_cfg: ServerConfig,
    /// Last status written (without `update_time`).
    server_status: ServerStatus,
    connected: bool,
    /// The latest join or label push failure, until the next success.
    last_error: Option<String>,
    join_at: Option<Timestamp>,
    joining: Option<RequestId>,
    rejoin: bool,
    reading_labels: Option<RequestId>,
    patching: Option<RequestId>,
    next_request: u64,
    label_retry_at: Option<Timestamp>,
    journal: LabelJournal,
    features: BTreeMap<FeatureName, FeatureEntry>,
    /// The master address Docker's proxy was last routed to (`Some(None)`: route removed);
    /// `None`: not routed by this manager yet.
    proxy_routed: Option<Option<String>>,
    /// The route request in flight and the address it routes to.
    proxy_request: Option<(RequestId, Option<String>)>,
    /// When a failed route is tried again.
    proxy_retry_at: Option<Timestamp>,
    /// First and longest wait between attempts of a failed service restart.
    restart_backoff: (Duration, Duration),
    /// The clocks last emitted with [`Action::SaveClocks`].
    saved_clocks: Clocks,
}

impl Manager {
    /// A manager with these timers and node facts, continuing from a persisted label journal.
    pub fn new(timers: RemoteCtrConfig, node: NodeInfo, journal: LabelJournal) -> Self {
        Self {
            timers,
            node,
            images: ImageMgmt::default(),
            started: false,
            server_cfg: ServerConfig::default(),
            server_status: ServerStatus::default(),
            connected: false,
            last_error: None,
            join_at: None,
            joining: None,
            rejoin: false,
            reading_labels: None,
            patching: None,
            next_request: 0,
            label_retry_at: None,
            journal: journal.restored(),
            features: BTreeMap::new(),
            proxy_routed: None,
            proxy_request: None,
            proxy_retry_at: None,
            restart_backoff: (RESTART_RETRY_MIN, RESTART_RETRY_MAX),
            saved_clocks: Clocks::default(),
        }
    }

    /// Sets the first and the longest wait between attempts of a failed service restart
    /// (default [`RESTART_RETRY_MIN`], [`RESTART_RETRY_MAX`]).
    pub fn set_restart_backoff(&mut self, first: Duration, longest: Duration) {
        self.restart_backoff = (first, longest.max(first));
    }

    /// The label journal, to persist.
    pub fn label_journal(&self) -> &LabelJournal {
        &self.journal
    }

    /// Whether the node is joined (as far as the manager knows).
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// The clocks and what they describe, per feature (see [`Clocks`]).
    pub fn clocks(&self) -> Clocks {
        let mut features = BTreeMap::new();
        for (f, e) in &self.features {
            let c = FeatureClocks {
                failing_since: e.failing_since,
                running_since: e.running_since,
                alerted: e.alerted,
                fell_back: e.fell_back,
                mark_good: e.mark_good.as_ref().map(|m| MarkGoodClock {
                    container: m.container.clone(),
                    version: m.version.clone(),
                    due: m.due(),
                }),
                candidate: e.candidate.clone(),
                kube_version: e.kube_version.clone(),
            };
            if c != FeatureClocks::default() {
                features.insert(f.clone(), c);
            }
        }
        Clocks { features }
    }

    /// Continues the clocks of `previous` — those of the manager this one replaces after a
    /// reconcile (database reconnect, SIGHUP), or those an earlier daemon process persisted —
    /// once the whole state has been fed to this one at `now`. Returns
    /// [`Action::SaveClocks`] when the clocks changed.
    ///
    /// A fresh manager starts every clock at the time it first sees a status, so without this a
    /// Redis restart every few minutes (or a daemon restart) would postpone forever the
    /// tag-as-good of a deployment and the failure detection of a crash loop, and would raise a
    /// failure's alert a second time. Only clocks that still describe the same thing are
    /// carried: the failure of a feature this manager also sees failing (with its alert and
    /// rollback), the uninterrupted run of a deployment it also sees running, the mark-good
    /// timer of the same container and version. A mark-good whose facts or operations were in
    /// flight (their answers are dropped at a reconcile) is asked again at once. A time after
    /// `now` (clocks of another boot) counts as `now`.
    pub fn adopt_clocks(&mut self, previous: &Clocks, now: Timestamp) -> Vec<Action> {
        for (f, e) in &mut self.features {
            let Some(old) = previous.features.get(f) else {
                continue;
            };
            if let (Some(new), Some(was)) = (e.failing_since, old.failing_since) {
                e.failing_since = Some(new.min(was).min(now));
                e.alerted |= old.alerted;
                e.fell_back |= old.fell_back;
            }
            if let (Some(new), Some(was)) = (e.running_since, old.running_since) {
                e.running_since = Some(new.min(was).min(now));
            }
            if e.candidate.is_none() {
                e.candidate.clone_from(&old.candidate);
            }
            if e.kube_version.is_none() {
                e.kube_version.clone_from(&old.kube_version);
            }
            if let (Some(m), Some(was)) = (e.mark_good.as_mut(), old.mark_good.as_ref())
                && let MarkStage::Waiting(at) = m.stage
                && m.container == was.container
                && m.version == was.version
            {
                let carried = was.due.unwrap_or(now);
                m.stage = MarkStage::Waiting(at.min(carried));
            }
        }
        let mut out = Vec::new();
        self.save_clocks(&mut out);
        out
    }

    /// Emits [`Action::SaveClocks`] when the clocks differ from those last emitted. Runs after
    /// every step, so it compares in place and builds a snapshot only when something changed.
    fn save_clocks(&mut self, out: &mut Vec<Action>) {
        if self.clocks_unchanged() {
            return;
        }
        let clocks = self.clocks();
        self.saved_clocks = clocks.clone();
        out.push(Action::SaveClocks(clocks));
    }

    /// Whether [`Manager::clocks`] would equal the clocks last emitted.
    fn clocks_unchanged(&self) -> bool {
        let mut seen = 0;
        for (f, e) in &self.features {
            match self.saved_clocks.features.get(f) {
                Some(saved) => {
                    if !saved.describes(e) {
                        return false;
                    }
                    seen += 1;
                }
                None => {
                    if !FeatureClocks::default().describes(e) {
                        return false;
                    }
                }
            }
        }
        seen == self.saved_clocks.features.len()
    }

    /// Feeds one event at `now`; returns the actions to carry out in order. Timers due at `now`
    /// fire too, so any event (not only [`Event::Timeout`]) advances time.
    pub fn step(&mut self, now: Timestamp, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            Event::Start {
                server_config,
                server_status,
            } => {
                if !self.started {
                    self.started = true;
                    self.server_cfg = server_config;
                    // Upstream routes the proxy at start, before the boot latency.
                    self.route_proxy(&mut out);
                    let booted = server_status.update_time.is_none();
                    // A problem recorded by an earlier run stays until this run succeeds.
                    self.last_error = server_status.last_error.clone();
                    self.server_status = ServerStatus {
                        update_time: None,
                        ..server_status
                    };
                    if booted {
                        self.join_at = Some(now.plus(self.timers.join_latency_on_boot));
                    } else {
                        self.handle_server(now, &mut out);
                    }
                }
            }
            Event::ServerConfigChanged(cfg) => {
                if cfg != self.server_cfg {
                    self.server_cfg = cfg;
                    if self.started {
                        // A new address is routed at once, even while a retry waits.
                        self.proxy_retry_at = None;
                        self.route_proxy(&mut out);
                    }
                    if self.started && self.join_at.is_none() {
                        self.handle_server(now, &mut out);
                    }
                }
            }
            Event::JoinSucceeded(r) => {
                if self.joining == Some(r) {
                    self.joining = None;
                    if std::mem::take(&mut self.rejoin) {
                        self.handle_server(now, &mut out);
                    } else {
                        self.on_joined(&mut out);
                    }
                }
            }
            Event::JoinFailed(r, reason) => {
                if self.joining == Some(r) {
                    self.joining = None;
                    self.connected = false;
                    self.last_error = Some(format!("join failed: {reason}"));
                    self.write_server_status(false, &mut out);
                    if std::mem::take(&mut self.rejoin) {
                        self.handle_server(now, &mut out);
                    } else {
                        self.join_at = Some(now.plus(self.timers.retry_join_interval));
                    }
                }
            }
            Event::NodeLabelsRead(r, labels) => {
                if self.reading_labels == Some(r) {
                    self.reading_labels = None;
                    self.journal.resync(labels);
                    out.push(Action::SaveLabelJournal(self.journal.clone()));
                    self.push_labels(&mut out);
                }
            }
            Event::NodeLabelsReadFailed(r) => {
                if self.reading_labels == Some(r) {
                    self.reading_labels = None;
                    self.push_labels(&mut out);
                }
            }
            Event::LabelsPatched(r) => {
                if self.patching == Some(r) {
                    self.patching = None;
                    self.journal.patched();
                    out.push(Action::SaveLabelJournal(self.journal.clone()));
                    if self.last_error.take().is_some() {
                        self.write_server_status(self.connected, &mut out);
                    }
                    self.push_labels(&mut out);
                }
            }
            Event::LabelsPatchFailed(r, reason) => {
                if self.patching == Some(r) {
                    self.patching = None;
                    self.journal.patch_failed();
                    self.last_error = Some(format!("node label update failed: {reason}"));
                    self.write_server_status(self.connected, &mut out);
                    self.label_retry_at = Some(now.plus(self.timers.retry_labels_update));
                }
            }
            Event::DesiredLabelsChanged(labels) => {
                if self.journal.observe_desired(&labels) {
                    out.push(Action::SaveLabelJournal(self.journal.clone()));
                    self.push_labels(&mut out);
                }
            }
            Event::ImageMgmtChanged(m) => {
                self.images = m;
            }
            Event::FeatureConfigChanged { feature, config } => {
                if !feature.is_database() {
                    self.on_feature_config(now, feature, config, &mut out);
                }
            }
            Event::FeatureStatusChanged { feature, status } => {
                if !feature.is_database() {
                    self.on_feature_status(now, feature, status, &mut out);
                }
            }
            Event::ServiceActivity {
                request,
                feature,
                active,
            } => {
                if !self.on_restart_verified(request, &feature, active, &mut out) {
                    self.on_service_activity(request, &feature, active, &mut out);
                }
            }
            Event::ServiceRestarted {
                request,
                feature,
                ok,
            } => self.on_service_restarted(now, request, &feature, ok),
            Event::PendingRestarts(pending) => self.on_pending_restarts(now, pending, &mut out),
            Event::ImageFacts {
                request,
                feature,
                container,
                local_container,
                images,
            } => self.on_image_facts(
                now,
                request,
                &feature,
                (container, local_container, images),
                &mut out,
            ),
            Event::ImageFactsFailed { request, feature } => {
                let retry = now.plus(self.timers.retry_tag_latest);
                if let Some(m) = self.mark_in(&feature, MarkStage::Gathering(request)) {
                    m.stage = MarkStage::Waiting(retry);
                }
            }
            Event::ImageOpsDone {
                request,
                feature,
                ok,
            } => {
                let retry = now.plus(self.timers.retry_clean_image);
                if let Some(e) = self.features.get_mut(&feature)
                    && e.mark_good
                        .as_ref()
                        .is_some_and(|m| m.stage == MarkStage::Running(request))
                {
                    if ok {
                        e.mark_good = None;
                    } else if let Some(m) = e.mark_good.as_mut() {
                        m.stage = MarkStage::Waiting(retry);
                    }
                }
            }
            Event::HttpProxyRouted(r) => {
                if let Some((_, ip)) = self.proxy_request.take_if(|(q, _)| *q == r) {
                    self.proxy_routed = Some(ip);
                    // The address may have changed while the request was in flight.
                    self.route_proxy(&mut out);
                }
            }
            Event::HttpProxyFailed(r) => {
                if self.proxy_request.take_if(|(q, _)| *q == r).is_some() {
                    self.proxy_retry_at = Some(now.plus(self.timers.retry_join_interval));
                }
            }
            Event::Timeout => {}
        }
        self.release_handovers(&mut out);
        self.fire_due(now, &mut out);
        self.save_clocks(&mut out);
        out
    }

    /// The earliest deadline the manager waits for, if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t: Option<Timestamp> = None;
        let mut consider = |x: Option<Timestamp>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        consider(self.join_at);
        consider(self.proxy_retry_at);
        if self.connected {
            consider(self.label_retry_at);
        }
        for (f, e) in &self.features {
            if let Some(MarkGood {
                stage: MarkStage::Waiting(at),
                ..
            }) = &e.mark_good
            {
                consider(Some(*at));
            }
            consider(self.failure_deadline(f, e));
            if let Some(Restart {
                stage: RestartStage::RetryAt(at),
                ..
            }) = e.restart
            {
                consider(Some(at));
            }
        }
        t
    }

    fn failure_deadline(&self, _f: &FeatureName, e: &FeatureEntry) -> Option<Timestamp> {
        let since = e.failing_since?;
        let n = e.config.as_ref()?.kube_failure_detection?;
        if let Some(r) = e.running_since {
            // Running again: the failure is forgotten once it ran for a whole period.
            return Some(r.plus(n));
        }
        if e.status.as_ref().and_then(|s| s.system_state) != Some(SystemState::Up) {
            // The service is down (stopped, or restarting): nothing to detect meanwhile.
            return None;
        }
        if !e.alerted {
            Some(since.plus(n))
        } else if !e.fell_back {
            Some(since.plus(n).plus(n))
        } else {
            None
        }
    }

    fn mark_in(&mut self, f: &FeatureName, stage: MarkStage) -> Option<&mut MarkGood> {
        self.features
            .get_mut(f)?
            .mark_good
            .as_mut()
            .filter(|m| m.stage == stage)
    }

    fn fire_due(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.proxy_retry_at.is_some_and(|t| t <= now) {
            self.proxy_retry_at = None;
            self.route_proxy(out);
        }
        if self.join_at.is_some_and(|t| t <= now) {
            self.handle_server(now, out);
        }
        if self.connected && self.label_retry_at.is_some_and(|t| t <= now) {
            self.label_retry_at = None;
            self.push_labels(out);
        }
        let names: Vec<FeatureName> = self.features.keys().cloned().collect();
        for f in names {
            let Some(e) = self.features.get_mut(&f) else {
                continue;
            };
            if let Some(m) = e.mark_good.as_mut()
                && matches!(m.stage, MarkStage::Waiting(at) if at <= now)
            {
                self.next_request += 1;
                let request = RequestId(self.next_request);
                m.stage = MarkStage::Gathering(request);
                out.push(Action::GatherImageFacts {
                    request,
                    feature: f.clone(),
                    container: m.container.clone(),
                });
            }
            self.fire_failure(now, &f, out);
            self.fire_restart_retry(now, &f, out);
        }
    }

    fn fire_failure(&mut self, now: Timestamp, f: &FeatureName, out: &mut Vec<Action>) {
        let Some(e) = self.features.get(f) else {
            return;
        };
        let Some(deadline) = self.failure_deadline(f, e) else {
            return;
        };
        if deadline > now {
            return;
        }
        let period = e
            .config
            .as_ref()
            .and_then(|c| c.kube_failure_detection)
            .unwrap_or_default();
        if e.running_since.is_some() {
            if let Some(e) = self.features.get_mut(f) {
                e.failing_since = None;
                e.alerted = false;
                e.fell_back = false;
            }
            return;
        }
        if !e.alerted {
            out.push(Action::Alert {
                feature: f.clone(),
                message: format!("not running under kubernetes for {}", span(period)),
            });
            if let Some(e) = self.features.get_mut(f) {
                e.alerted = true;
            }
            return;
        }
        // The failure persisted for another period: self-mitigation (HLD).
        let status = e.status.clone().unwrap_or_default();
        let allowed = fallback_allowed(e.config.as_ref());
        let failing_version = e.candidate.clone().or_else(|| {
            (status.current_owner != CurrentOwner::Local)
                .then(|| status.container_version.clone())
                .flatten()
        });
        if let Some(e) = self.features.get_mut(f) {
            e.fell_back = true;
        }
        if !allowed {
            if status.current_owner != CurrentOwner::Local {
                out.push(Action::Alert {
                    feature: f.clone(),
                    message: "failure persists and fallback to local is not allowed".to_owned(),
                });
            }
            return;
        }
        let local_runs = status.current_owner == CurrentOwner::Local;
        if !local_runs {
            out.push(Action::Alert {
                feature: f.clone(),
                message: "failure persists: falling back to the local golden image".to_owned(),
            });
        }
        // Block the failing version so that its deployment is held by container_startup, also
        // when `container wait` already reverted to local (else the version is re-admitted at
        // the next re-check of its hold).
        if let Some(v) = &failing_version {
            let local = self.journal.desired.get(&LabelKey::feature_local(f));
            if local.is_none_or(|l| l.as_str() != v.as_str())
                && let Ok(k) = LabelKey::feature_version_enabled(f, v)
            {
                self.set_desired(vec![(k, Some(LabelValue::false_()))], out);
            }
        }
        if local_runs {
            return;
        }
        out.push(Action::UpdateFeatureStatus {
            feature: f.clone(),
            update: StatusUpdate::new().remote_state(RemoteState::None),
        });
        self.restart_service(f, SetOwner::Local, out);
    }

    /// With `use_k8s_as_http_proxy`, routes Docker's proxy to the configured master address
    /// unless it already goes there, a request is in flight (its answer routes again) or a
    /// retry waits.
    fn route_proxy(&mut self, out: &mut Vec<Action>) {
        if !self.timers.use_k8s_as_http_proxy
            || self.proxy_request.is_some()
            || self.proxy_retry_at.is_some()
        {
            return;
        }
        let want = self
            .server_cfg
            .ip
            .as_deref()
            .map(str::trim)
            .filter(|ip| !ip.is_empty())
            .map(str::to_owned);
        if self.proxy_routed.as_ref() == Some(&want) {
            return;
        }
        let request = self.request();
        self.proxy_request = Some((request, want.clone()));
        out.push(Action::RouteHttpProxy {
            request,
            master_ip: want,
        });
    }

    fn handle_server(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let _ = now;
        self.join_at = None;
        if self.joining.is_some() {
            self.rejoin = true;
            return;
        }
        if self.server_cfg.wants_join() {
            let r = self.request();
            self.joining = Some(r);
            out.push(Action::Join(r, self.server_cfg.clone()));
        } else {
            out.push(Action::Reset);
            self.connected = false;
            self.write_server_status(false, out);
        }
    }

    /// Writes the server status if it changed: connected, the address joined and the latest
    /// problem.
    fn write_server_status(&mut self, connected: bool, out: &mut Vec<Action>) {
        let mut s = self.server_status.clone();
        s.connected = connected;
        if connected {
            s.ip = self.server_cfg.ip.clone();
            s.port = Some(self.server_cfg.port);
        }
        s.last_error = self.last_error.clone();
        if s != self.server_status {
            self.server_status = s.clone();
            out.push(Action::WriteServerStatus(s));
        }
    }

    fn on_joined(&mut self, out: &mut Vec<Action>) {
        self.connected = true;
        self.last_error = None;
        self.write_server_status(true, out);
        let own = self.node.labels();
        let changes = own.into_iter().map(|(k, v)| (k, Some(v))).collect();
        self.set_desired(changes, out);
        let r = self.request();
        self.reading_labels = Some(r);
        out.push(Action::ReadNodeLabels(r));
    }

    /// Writes desired labels that differ from the journal's view of `KUBE_LABELS|SET`.
    fn set_desired(&self, changes: Vec<(LabelKey, Option<LabelValue>)>, out: &mut Vec<Action>) {
        let mut patch = LabelPatch::default();
        for (k, v) in changes {
            match v {
                Some(v) if self.journal.desired.get(&k) != Some(&v) => {
                    patch.set.insert(k, v);
                }
                None if self.journal.desired.contains_key(&k) => patch.remove.push(k),
                Some(_) | None => {}
            }
        }
        if !patch.is_empty() {
            out.push(Action::SetDesiredLabels(patch));
        }
    }

    fn push_labels(&mut self, out: &mut Vec<Action>) {
        if !self.connected
            || self.reading_labels.is_some()
            || self.patching.is_some()
            || self.label_retry_at.is_some()
        {
            return;
        }
        if let Some(p) = self.journal.next_patch() {
            let r = self.request();
            self.patching = Some(r);
            out.push(Action::PatchNodeLabels(r, p));
        }
    }

    fn request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn check_service(&mut self, f: &FeatureName, out: &mut Vec<Action>) {
        let r = self.request();
        if let Some(e) = self.features.get_mut(f) {
            e.check_pending = Some(r);
        }
        out.push(Action::CheckService(r, f.clone()));
    }

    fn on_feature_config(
        &mut self,
        now: Timestamp,
        f: FeatureName,
        config: Option<FeatureConfig>,
        out: &mut Vec<Action>,
    ) {
        let config = config.unwrap_or_default();
        let e = self.features.entry(f.clone()).or_default();
        let init = e.config.is_none();
        let owner_changed = e.config.as_ref().map(|c| c.set_owner) != Some(config.set_owner);
        let had_status = e.status.is_some();
        let to_local = !init && owner_changed && config.set_owner == SetOwner::Local;
        let pending = e.check_pending.is_some();
        // A restart asked for under another configuration is not retried (a disabled feature
        // must stay down): the core decides again from the new one.
        let cancelled =
            e.config.is_some() && e.config.as_ref() != Some(&config) && e.restart.take().is_some();
        e.config = Some(config);
        if cancelled {
            out.push(Action::ForgetRestart(f.clone()));
        }
        if (init || owner_changed) && had_status && !pending {
            self.check_service(&f, out);
        }
        let Some(e) = self.features.get(&f) else {
            return;
        };
        if to_local {
            // A locally owned feature carries no version label.
            if let Some(v) = e.status.as_ref().and_then(|s| s.container_version.clone())
                && let Ok(k) = LabelKey::feature_version_enabled(&f, &v)
                && self.journal.desired.get(&k) == Some(&LabelValue::true_())
            {
                self.set_desired(vec![(k, None)], out);
            }
        }
        self.track_failure(now, &f);
    }

    fn on_feature_status(
        &mut self,
        now: Timestamp,
        f: FeatureName,
        status: FeatureStatus,
        out: &mut Vec<Action>,
    ) {
        let e = self.features.entry(f.clone()).or_default();
        if e.status.as_ref() == Some(&status) {
            return;
        }
        let init = e.status.is_none();
        let old = e.status.replace(status.clone()).unwrap_or_default();
        let settings = self.images.effective(&f);

        // Mark-good timer: armed when a deployment starts running, dropped when it stops.
        let running_now = runs_under_kube(&status);
        if let Some(m) = &e.mark_good {
            let same = running_now
                && status.container_id.as_deref() == Some(m.container.as_str())
                && status.container_version.as_ref() == Some(&m.version);
            if !same && !matches!(m.stage, MarkStage::Running(_)) {
                e.mark_good = None;
            }
        }
        if status.remote_state == RemoteState::Running
            && old.remote_state != RemoteState::Running
            && !settings.disable
            && let (Some(id), Some(v)) = (
                status
                    .container_id
                    .as_deref()
                    .and_then(|i| ContainerId::parse(i).ok()),
                status.container_version.clone(),
            )
        {
            e.mark_good = Some(MarkGood {
                container: id,
                version: v,
                stage: MarkStage::Waiting(now.plus(settings.active_time_to_mark_good)),
            });
        }

        if matches!(
            status.remote_state,
            RemoteState::Pending | RemoteState::Ready | RemoteState::Running
        ) && status.container_version.is_some()
        {
            e.candidate = status.container_version.clone();
        }
        // Version labels (HLD safety check): the running deployment's version is enabled; the
        // version it replaces loses its label ("remove the label used by older manifest"), as
        // soon as another version asks to take over from it: the new pod writes its version
        // with `pending` first, so the replaced version is the one that last ran, not the one
        // in the previous status.
        let mut label_changes = Vec::new();
        if running_now
            && let Some(v) = &status.container_version
            && let Ok(k) = LabelKey::feature_version_enabled(&f, v)
        {
            label_changes.push((k, Some(LabelValue::true_())));
        }
        let taking_over = running_now
            || (status.current_owner == CurrentOwner::Kube
                && status.remote_state == RemoteState::Pending);
        if taking_over
            && let (Some(v), Some(replaced)) = (&status.container_version, &e.kube_version)
            && v != replaced
            && let Ok(k) = LabelKey::feature_version_enabled(&f, replaced)
            && self.journal.desired.get(&k) == Some(&LabelValue::true_())
        {
            label_changes.push((k.clone(), None));
            e.removing = Some(k);
        }
        if running_now {
            e.kube_version = status.container_version.clone();
            e.removing = None;
            e.handover_waiting = false;
        }
        self.set_desired(label_changes, out);

        let Some(e) = self.features.get_mut(&f) else {
            return;
        };
        // Fast fallback: `container wait` gave up on a deployment (#15432).
        // Not after our own rollback, whose `remote_state=none` write is this very transition
        // (it already restarts the service).
        if status.current_owner != CurrentOwner::Local
            && status.remote_state == RemoteState::None
            && old.remote_state == RemoteState::Stopped
            && fallback_allowed(e.config.as_ref())
            && !e.fell_back
        {
            self.restart_service(&f, SetOwner::Local, out);
            self.track_failure(now, &f);
            return;
        }
        let relevant = init
            || (status.remote_state != old.remote_state
                && matches!(
                    status.remote_state,
                    RemoteState::Pending | RemoteState::Stopped
                ));
        if relevant && e.config.is_some() && e.check_pending.is_none() {
            self.check_service(&f, out);
        }
        self.track_failure(now, &f);
    }

    fn on_service_activity(
        &mut self,
        request: RequestId,
        f: &FeatureName,
        active: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(e) = self.features.get_mut(f) else {
            return;
        };
        if e.check_pending != Some(request) {
            return;
        }
        e.check_pending = None;
        let cfg = e.config.clone().unwrap_or_default();
        let st = e.status.clone().unwrap_or_default();
        if !active {
            // A kube upgrade stopped the service: start it again quickly.
            if cfg.set_owner == SetOwner::Kube
                && st.current_owner == CurrentOwner::None
                && st.remote_state == RemoteState::Stopped
            {
                self.restart_service(f, SetOwner::Kube, out);
            }
            return;
        }
        let label = LabelValue::from_bool(cfg.set_owner == SetOwner::Kube);
        self.set_desired(vec![(LabelKey::feature_enabled(f), Some(label))], out);
        let restart = match cfg.set_owner {
            // #19528: `none` (nothing runs, e.g. config reload) is no reason to restart.
            SetOwner::Local => st.current_owner == CurrentOwner::Kube,
            SetOwner::Kube => {
                st.current_owner != CurrentOwner::None && st.remote_state == RemoteState::Pending
            }
        };
        if restart && cfg.set_owner == SetOwner::Kube && self.removal_unconfirmed(f) {
            // The hand-over kills the replaced pod; its kubelet restarts it while its DaemonSet
            // still selects this node. Restart once the node lost the replaced version's label.
            if let Some(e) = self.features.get_mut(f) {
                e.handover_waiting = true;
            }
            return;
        }
        if restart {
            self.restart_service(f, cfg.set_owner, out);
        }
    }

    /// Restarts the feature's unit to switch to `owner`, and follows the restart until it
    /// succeeds (a newer restart replaces an older one).
    fn restart_service(&mut self, f: &FeatureName, owner: SetOwner, out: &mut Vec<Action>) {
        let request = self.request();
        let first = self.restart_backoff.0;
        if let Some(e) = self.features.get_mut(f) {
            e.restart = Some(Restart {
                owner,
                stage: RestartStage::InFlight(request),
                delay: first,
            });
        }
        out.push(Action::RestartService {
            request,
            feature: f.clone(),
            owner,
        });
    }

    /// A restart's answer: success ends it; a failure waits (with backoff) for a retry.
    fn on_service_restarted(
        &mut self,
        now: Timestamp,
        request: RequestId,
        f: &FeatureName,
        ok: bool,
    ) {
        let longest = self.restart_backoff.1;
        let Some(e) = self.features.get_mut(f) else {
            return;
        };
        let Some(r) = e
            .restart
            .as_mut()
            .filter(|r| r.stage == RestartStage::InFlight(request))
        else {
            return;
        };
        if ok {
            e.restart = None;
        } else {
            r.stage = RestartStage::RetryAt(now.plus(r.delay));
            r.delay = (r.delay * 2).min(longest);
        }
    }

    /// A retry that is due first asks whether the unit is active: someone may have started it.
    fn fire_restart_retry(&mut self, now: Timestamp, f: &FeatureName, out: &mut Vec<Action>) {
        let due = self.features.get(f).is_some_and(|e| {
            matches!(e.restart, Some(Restart { stage: RestartStage::RetryAt(at), .. }) if at <= now)
        });
        if !due {
            return;
        }
        let request = self.request();
        if let Some(r) = self.features.get_mut(f).and_then(|e| e.restart.as_mut()) {
            r.stage = RestartStage::Verifying(request);
        }
        out.push(Action::CheckService(request, f.clone()));
    }

    /// The answer to a retry's activity check (returns whether it was one): an active unit
    /// ends the restart, an inactive one is restarted again.
    fn on_restart_verified(
        &mut self,
        request: RequestId,
        f: &FeatureName,
        active: bool,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(e) = self.features.get_mut(f) else {
            return false;
        };
        let Some(r) = e
            .restart
            .filter(|r| r.stage == RestartStage::Verifying(request))
        else {
            return false;
        };
        if active {
            e.restart = None;
            out.push(Action::ForgetRestart(f.clone()));
            return true;
        }
        let request = self.request();
        if let Some(e) = self.features.get_mut(f) {
            e.restart = Some(Restart {
                stage: RestartStage::InFlight(request),
                ..r
            });
        }
        out.push(Action::RestartService {
            request,
            feature: f.clone(),
            owner: r.owner,
        });
        true
    }

    /// Restarts an earlier run left pending: each configured feature's is checked at once
    /// (an unconfigured feature's is forgotten).
    fn on_pending_restarts(
        &mut self,
        now: Timestamp,
        pending: BTreeMap<FeatureName, SetOwner>,
        out: &mut Vec<Action>,
    ) {
        let first = self.restart_backoff.0;
        for (f, owner) in pending {
            match self.features.get_mut(&f) {
                Some(e) if e.config.is_some() => {
                    if e.restart.is_none() {
                        e.restart = Some(Restart {
                            owner,
                            stage: RestartStage::RetryAt(now),
                            delay: first,
                        });
                    }
                }
                Some(_) | None => out.push(Action::ForgetRestart(f)),
            }
        }
    }

    /// Whether the label removal a hand-over waits for is not yet known to be on the node
    /// (while disconnected nothing can be confirmed, and no DaemonSet change reaches the
    /// kubelet either: the hand-over goes ahead).
    fn removal_unconfirmed(&self, f: &FeatureName) -> bool {
        let Some(k) = self.features.get(f).and_then(|e| e.removing.as_ref()) else {
            return false;
        };
        self.connected
            && (self.journal.desired.contains_key(k)
                || self.journal.queue.iter().any(|c| &c.key == k))
    }

    /// Carries out hand-over restarts whose label removal is now confirmed; drops those the
    /// status no longer asks for.
    fn release_handovers(&mut self, out: &mut Vec<Action>) {
        let waiting: Vec<FeatureName> = self
            .features
            .iter()
            .filter(|(_, e)| e.handover_waiting)
            .map(|(f, _)| f.clone())
            .collect();
        for f in waiting {
            let unconfirmed = self.removal_unconfirmed(&f);
            let Some(e) = self.features.get_mut(&f) else {
                continue;
            };
            let st = e.status.clone().unwrap_or_default();
            let wanted = e.config.as_ref().map(|c| c.set_owner) == Some(SetOwner::Kube)
                && st.current_owner != CurrentOwner::None
                && st.remote_state == RemoteState::Pending;
            if !wanted {
                e.handover_waiting = false;
            } else if !unconfirmed {
                e.handover_waiting = false;
                e.removing = None;
                self.restart_service(&f, SetOwner::Kube, out);
            }
        }
    }

    fn on_image_facts(
        &mut self,
        now: Timestamp,
        request: RequestId,
        f: &FeatureName,
        (container, local_container, images): (
            Option<ContainerInfo>,
            Option<ContainerInfo>,
            Vec<ImageInfo>,
        ),
        out: &mut Vec<Action>,
    ) {
        let settings = self.images.effective(f);
        let retry = now.plus(self.timers.retry_tag_latest);
        self.next_request += 1;
        let ops_request = RequestId(self.next_request);
        let Some(e) = self.features.get_mut(f) else {
            return;
        };
        let status = e.status.clone().unwrap_or_default();
        let Some(m) = e
            .mark_good
            .as_mut()
            .filter(|m| m.stage == MarkStage::Gathering(request))
        else {
            return;
        };
        let facts = MarkGoodFacts {
            feature: f.clone(),
            version: m.version.clone(),
            container,
            local_container,
            images,
            stable: status.container_stable_version,
            last: status.container_last_version,
        };
        match plan_mark_good(&settings, &facts) {
            MarkGoodPlan::NotRunning => e.mark_good = None,
            MarkGoodPlan::Retry(_) => m.stage = MarkStage::Waiting(retry),
            MarkGoodPlan::Ops(ops) if ops.is_empty() => e.mark_good = None,
            MarkGoodPlan::Ops(ops) => {
                m.stage = MarkStage::Running(ops_request);
                out.push(Action::RunImageOps {
                    request: ops_request,
                    feature: f.clone(),
                    ops,
                });
            }
        }
    }

    /// Starts or stops the failure clock of a feature from its latest config and status.
    fn track_failure(&mut self, now: Timestamp, f: &FeatureName) {
        let Some(e) = self.features.get_mut(f) else {
            return;
        };
        let status = match (&e.config, &e.status) {
            (Some(c), Some(s))
                if c.set_owner == SetOwner::Kube && c.kube_failure_detection.is_some() =>
            {
                s
            }
            (Some(_), Some(_)) | (None, _) | (_, None) => {
                // Not monitored (any more): forget everything.
                e.failing_since = None;
                e.running_since = None;
                e.alerted = false;
                e.fell_back = false;
                return;
            }
        };
        if runs_under_kube(status) {
            // Only a whole period of running forgets the failure (see `fire_failure`): a
            // crash-looping pod shows `running` briefly on every cycle.
            e.running_since.get_or_insert(now);
        } else {
            e.running_since = None;
            // A service going down and up (a restart, the rollback's own restart) keeps the
            // clock, the alert and the rollback.
            if status.system_state == Some(SystemState::Up) {
                e.failing_since.get_or_insert(now);
            }
        }
    }
}
