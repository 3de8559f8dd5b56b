//! The daemon: one `tokio::select!` loop turning table subscriptions, the manager's deadlines,
//! control messages (signals) and action results into [`Event`]s of the core's [`Manager`], and
//! an executor carrying out its [`Action`]s through the ports: one at a time per lane (the
//! node, each feature), lanes side by side (see [`crate::lanes`]).
//!
//! Level-triggered: the daemon keeps a mirror of the subscribed tables (a cache of Redis, exact
//! thanks to the subscriptions' replay) and, at start, after every Redis reconnect, after a
//! reload and after an action without answer failed, throws the manager away and builds a new
//! one from the mirror and the persisted label journal ("reconcile"). Nothing that matters lives
//! only in memory, so a killed daemon restarted on the same databases reaches the same state.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{BoxStream, FuturesUnordered, SelectAll};
use sonic_db::schema::{self, Origin};
use sonic_db::{
    Fields, LinkState, Namespace, RedisFeatureStore, SonicDb, SubscribeOptions, TableEvent, TableOp,
};
use sonic_feature_core::exec::{Executed, ManagerPorts, error_chain, execute_manager_action};
use sonic_feature_core::manager::{Action, Event, Manager};
use sonic_feature_core::model::{
    FeatureConfig, FeatureName, FeatureStatus, ImageMgmt, NodeLabels, RemoteCtrConfig,
    ServerConfig, Timestamp,
};
use sonic_feature_core::ports::{
    Clock, ContainerRuntime, FeatureStore, ImageStore, ManagerStateStore, NodeCluster, PortError,
    ServiceManager,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::WatchStream;

use crate::instances::Instances;
use crate::lanes::{ActionQueue, Ticket};
use crate::report::{Level, LogSink, Reporter};
use crate::settings::load_timers;

/// Problem topic of the databases.
pub const TOPIC_REDIS: &str = "redis";
/// Problem topic of the Kubernetes master (join, labels).
pub const TOPIC_MASTER: &str = "kubernetes master";
/// Problem topic of the Docker engine (image management).
pub const TOPIC_DOCKER: &str = "docker";
/// Problem topic of Docker's HTTP proxy route to the master (`use_k8s_as_http_proxy`).
pub const TOPIC_HTTP_PROXY: &str = "http proxy";
/// Problem topic: the persisted clocks (STATE_DB `CTRMGRD_STATE|CLOCKS`) cannot be read.
pub const TOPIC_CLOCKS: &str = "clocks";
/// How many actions run at once at most (see [`crate::lanes`]).
pub const MAX_IN_FLIGHT: usize = 8;
/// Problem topic: the record of pending restarts (STATE_DB `CTRMGRD_STATE|PENDING_RESTARTS`)
/// cannot be read.
pub const TOPIC_PENDING_RESTARTS: &str = "pending restarts";

/// What the daemon is asked to do from outside (signals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM: finish the actions in flight (start no new one), then exit.
    Terminate,
    /// SIGHUP: re-read `remote_ctr.config.json` and reconcile with the new timers.
    Reload,
}

/// How the loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// After [`Control::Terminate`], with the actions in flight finished.
    Terminated,
    /// The crash-test hook fired after this many executed actions.
    Aborted(u64),
}

/// Why the loop stopped working.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Every subscription stream ended (their background tasks died).
    #[error("the database subscriptions ended unexpectedly")]
    SubscriptionsEnded,
}

/// The databases the daemon subscribes to.
#[derive(Debug)]
pub struct Sources {
    /// The host's CONFIG_DB.
    pub config_db: SonicDb,
    /// STATE_DB of the host (index 0) and of every ASIC namespace, in the numbering of the
    /// store list given to [`crate::instances::RoutedStore`].
    pub state_dbs: Vec<(Namespace, SonicDb)>,
}

/// The ports the executor calls.
#[derive(Clone)]
pub struct DaemonPorts {
    /// CONFIG_DB / STATE_DB (routed to namespaces for feature instances).
    pub store: Arc<dyn FeatureStore>,
    /// The host's databases with the reads the daemon needs at reconcile.
    pub host: Arc<RedisFeatureStore>,
    /// Server status and label journal.
    pub state: Arc<dyn ManagerStateStore>,
    /// Docker containers.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Docker images.
    pub images: Arc<dyn ImageStore>,
    /// Kubernetes.
    pub cluster: Arc<dyn NodeCluster>,
    /// Systemd (or its emulation).
    pub services: Arc<dyn ServiceManager>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DaemonPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DaemonPorts")
    }
}

/// How the daemon is tuned.
#[derive(Debug, Clone)]
pub struct Options {
    /// Timers (`remote_ctr.config.json`).
    pub timers: RemoteCtrConfig,
    /// The file to re-read on [`Control::Reload`]; `None`: reload keeps the timers.
    pub timers_file: Option<PathBuf>,
    /// The SONiC build version (label `sonic_version`).
    pub sonic_version: String,
    /// Crash-test hook: stop right after this many executed actions (the last one's result is
    /// lost).
    pub abort_after_actions: Option<u64>,
    /// Crash-test hook: stop right before starting the action with this number (1-based; the
    /// action is lost).
    pub abort_before_action: Option<u64>,
    /// Log every action when it starts and how it ended ([`Level::Debug`]).
    pub trace_actions: bool,
    /// Reconnect behaviour of the subscriptions.
    pub subscribe: SubscribeOptions,
    /// First delay before a failed reconcile or subscription is retried (doubled up to
    /// `retry_max`).
    pub retry_min: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
}

impl Options {
    /// Options with these timers and version and default retry behaviour.
    pub fn new(timers: RemoteCtrConfig, sonic_version: impl Into<String>) -> Self {
        Self {
            timers,
            timers_file: None,
            sonic_version: sonic_version.into(),
            abort_after_actions: None,
            abort_before_action: None,
            trace_actions: false,
            subscribe: SubscribeOptions::default(),
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
        }
    }
}

/// Which table an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    ServerConfig,
    FeatureConfig,
    ImageMgmt,
    Labels,
    /// STATE_DB `FEATURE` of the namespace with this store index.
    Status(usize),
}

#[derive(Debug)]
enum Input {
    Table(Source, TableEvent),
    Link(usize, LinkState),
}

/// The subscribed tables as last delivered: a cache of Redis from which a manager is rebuilt.
#[derive(Debug, Default)]
struct Mirror {
    server: ServerConfig,
    configs: BTreeMap<FeatureName, FeatureConfig>,
    image_mgmt_raw: BTreeMap<String, Fields>,
    image_mgmt: ImageMgmt,
    labels: NodeLabels,
    statuses: BTreeMap<FeatureName, FeatureStatus>,
}

/// `CONFIG_DB FEATURE|snmp`: where a malformed entry was read, for the log.
fn where_(o: &Origin<'_>) -> String {
    format!("{} {}|{}", o.db, o.table, o.key)
}

/// An action that ended: its ticket, the generation it was started in, and its outcome.
struct Done {
    /// The action's number in start order (for the trace).
    number: u64,
    ticket: Ticket,
    generation: u64,
    action: Action,
    executed: Executed,
}

type InFlight = Pin<Box<dyn Future<Output = Done> + Send>>;

/// Waits for the next action in flight to end; never resolves when there is none.
async fn next_done(f: &mut FuturesUnordered<InFlight>) -> Done {
    match f.next().await {
        Some(done) => done,
        None => std::future::pending().await,
    }
}

enum Woke {
    Done(Box<Done>),
    Control(Option<Control>),
    Input(Option<Input>),
    Timer,
}

struct Daemon {
    ports: DaemonPorts,
    options: Options,
    namespaces: Vec<Namespace>,
    instances: Instances,
    report: Reporter,
    mirror: Mirror,
    manager: Option<Manager>,
    /// The manager a reconcile replaces, kept until the new one is built so that its clocks
    /// (tag-as-good, failure detection) continue instead of starting again.
    previous: Option<Manager>,
    /// Bumped by every reconcile: answers of actions started before are dropped.
    generation: u64,
    queue: ActionQueue,
    /// Actions started so far (the crash-test hook before the n-th counts these).
    started: u64,
    /// Actions ended so far (the crash-test hook after the n-th counts these).
    executed: u64,
    reconcile_at: Option<Timestamp>,
    retry_delay: Duration,
    link_epochs: Vec<u64>,
    db_labels: BTreeMap<usize, String>,
}

/// Subscribes to every table, retrying with backoff while Redis is not there. Returns `None`
/// when told to terminate meanwhile.
async fn subscribe_all(
    sources: &Sources,
    options: &Options,
    report: &mut Reporter,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> Option<(SelectAll<BoxStream<'static, Input>>, usize)> {
    let mut delay = options.retry_min;
    loop {
        match try_subscribe_all(sources, options).await {
            Ok(s) => {
                report.resolved(TOPIC_REDIS);
                return Some(s);
            }
            Err(e) => report.problem(TOPIC_REDIS, &format!("cannot subscribe: {e}")),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            c = control.recv() => if matches!(c, Some(Control::Terminate)) { return None },
        }
        delay = (delay * 2).min(options.retry_max);
    }
}

async fn try_subscribe_all(
    sources: &Sources,
    options: &Options,
) -> Result<(SelectAll<BoxStream<'static, Input>>, usize), sonic_db::DbError> {
    let mut wanted: Vec<(Source, &SonicDb, &str)> = vec![
        (
            Source::ServerConfig,
            &sources.config_db,
            schema::server_config::TABLE,
        ),
        (
            Source::FeatureConfig,
            &sources.config_db,
            schema::feature_config::TABLE,
        ),
        (
            Source::ImageMgmt,
            &sources.config_db,
            schema::image_mgmt::TABLE,
        ),
    ];
    for (i, (_, db)) in sources.state_dbs.iter().enumerate() {
        if i == 0 {
            wanted.push((Source::Labels, db, schema::kube_labels::TABLE));
        }
        wanted.push((Source::Status(i), db, schema::feature_status::TABLE));
    }
    let mut all = SelectAll::new();
    let count = wanted.len();
    for (idx, (source, db, table)) in wanted.into_iter().enumerate() {
        let sub = db.subscribe_with(table, options.subscribe.clone()).await?;
        let link = WatchStream::new(sub.link_state()).map(move |s| Input::Link(idx, s));
        all.push(link.boxed());
        all.push(sub.map(move |e| Input::Table(source, e)).boxed());
    }
    Ok((all, count))
}

/// Runs the daemon until terminated (or the crash-test hook fires).
///
/// `stores` of the routed store and `sources.state_dbs` share the namespace numbering; the
/// instances registry is the one given to the routed ports.
pub async fn run(
    sources: Sources,
    ports: DaemonPorts,
    instances: Instances,
    options: Options,
    sink: Arc<dyn LogSink>,
    mut control: mpsc::UnboundedReceiver<Control>,
) -> Result<Exit, DaemonError> {
    let mut report = Reporter::new(sink);
    let Some((mut inputs, count)) =
        subscribe_all(&sources, &options, &mut report, &mut control).await
    else {
        return Ok(Exit::Terminated);
    };
    let mut db_labels = BTreeMap::new();
    for (i, (_, db)) in sources.state_dbs.iter().enumerate() {
        db_labels.insert(i, db.label().to_owned());
    }
    let mut d = Daemon {
        retry_delay: options.retry_min,
        ports,
        namespaces: sources.state_dbs.iter().map(|(n, _)| n.clone()).collect(),
        instances,
        report,
        mirror: Mirror::default(),
        manager: None,
        previous: None,
        generation: 0,
        queue: ActionQueue::new(MAX_IN_FLIGHT),
        started: 0,
        executed: 0,
        // Reconcile once the replays of every table are in the mirror: inputs win over timers.
        reconcile_at: Some(Timestamp::from_millis(0)),
        link_epochs: vec![0; count],
        options,
        db_labels,
    };
    let mut inflight: FuturesUnordered<InFlight> = FuturesUnordered::new();
    let mut terminating = false;
    let mut control_open = true;
    let config_label = sources.config_db.label().to_owned();
    loop {
        while !terminating && let Some((ticket, a)) = d.queue.start_next() {
            if d.options.abort_before_action == Some(d.started + 1) {
                return Ok(Exit::Aborted(d.executed));
            }
            d.started += 1;
            if d.options.trace_actions {
                d.report
                    .log(Level::Debug, &format!("action {} starts: {a:?}", d.started));
            }
            inflight.push(d.start(d.started, ticket, a));
        }
        if terminating && inflight.is_empty() {
            return Ok(Exit::Terminated);
        }
        let sleep = tokio::time::sleep(d.until_next_deadline());
        let woke = tokio::select! {
            biased;
            done = next_done(&mut inflight) => Woke::Done(Box::new(done)),
            c = control.recv(), if control_open => Woke::Control(c),
            i = inputs.next() => Woke::Input(i),
            () = sleep => Woke::Timer,
        };
        match woke {
            Woke::Done(done) => {
                let Done {
                    number,
                    ticket,
                    generation,
                    action,
                    executed,
                } = *done;
                d.queue.finished(ticket);
                d.executed += 1;
                if d.options.trace_actions {
                    d.report.log(
                        Level::Debug,
                        &format!(
                            "action {number} ended ({action}): {:?}{}",
                            executed.event,
                            executed
                                .error
                                .as_ref()
                                .map(|e| format!(", error: {}", error_chain(e)))
                                .unwrap_or_default()
                        ),
                    );
                }
                if d.options.abort_after_actions == Some(d.executed) {
                    return Ok(Exit::Aborted(d.executed));
                }
                d.finished(generation, &action, executed);
            }
            Woke::Control(None) => control_open = false,
            Woke::Control(Some(Control::Terminate)) => {
                d.report
                    .log(Level::Notice, "terminating after the actions in flight");
                terminating = true;
            }
            Woke::Control(Some(Control::Reload)) => d.reload(),
            Woke::Input(None) => return Err(DaemonError::SubscriptionsEnded),
            Woke::Input(Some(Input::Table(source, ev))) => d.on_table(&config_label, source, ev),
            Woke::Input(Some(Input::Link(idx, state))) => d.on_link(idx, state),
            Woke::Timer => d.on_timer().await,
        }
    }
}

impl Daemon {
    fn now(&self) -> Timestamp {
        self.ports.clock.now()
    }

    fn until_next_deadline(&self) -> Duration {
        let manager = self.manager.as_ref().and_then(Manager::poll_timeout);
        let next = [manager, self.reconcile_at].into_iter().flatten().min();
        match next {
            Some(t) => t.since(self.now()),
            None => Duration::from_secs(3600),
        }
    }

    fn feed(&mut self, ev: Event) {
        let now = self.now();
        if let Some(m) = self.manager.as_mut() {
            for action in m.step(now, ev) {
                self.enqueue(action);
            }
        }
    }

    /// Queues an action (see [`ActionQueue::push`]).
    fn enqueue(&mut self, action: Action) {
        self.queue.push(action);
    }

    fn start(&self, number: u64, ticket: Ticket, action: Action) -> InFlight {
        let p = self.ports.clone();
        let generation = self.generation;
        Box::pin(async move {
            let ports = ManagerPorts {
                store: p.store.as_ref(),
                state: p.state.as_ref(),
                runtime: p.runtime.as_ref(),
                images: p.images.as_ref(),
                cluster: p.cluster.as_ref(),
                services: p.services.as_ref(),
                clock: p.clock.as_ref(),
            };
            let executed = execute_manager_action(ports, &action).await;
            Done {
                number,
                ticket,
                generation,
                action,
                executed,
            }
        })
    }

    /// The problem topic an action's failure belongs to.
    fn topic(action: &Action) -> String {
        match action {
            Action::Join(..) | Action::ReadNodeLabels(_) | Action::PatchNodeLabels(..) => {
                TOPIC_MASTER.to_owned()
            }
            Action::Reset => "kubernetes reset".to_owned(),
            Action::WriteServerStatus(_)
            | Action::SetDesiredLabels(_)
            | Action::SaveLabelJournal(_)
            | Action::SaveClocks(_)
            | Action::ForgetRestart(_)
            | Action::UpdateFeatureStatus { .. } => TOPIC_REDIS.to_owned(),
            // An answered is-active query says nothing about a restart that failed: each has
            // its own topic, so that the next query does not log the restart's problem as
            // recovered.
            Action::CheckService(_, f) => format!("service {f} activity"),
            Action::RestartService { feature: f, .. } => format!("service {f}"),
            // Reading the engine's facts succeeds while an operation keeps being refused (an
            // image still used by a container): the refusal has its own topic, so that the
            // next successful read is not logged as its recovery.
            Action::GatherImageFacts { .. } => TOPIC_DOCKER.to_owned(),
            Action::RunImageOps { feature, .. } => format!("{TOPIC_DOCKER} images {feature}"),
            Action::RouteHttpProxy { .. } => TOPIC_HTTP_PROXY.to_owned(),
            Action::Alert { feature, .. } => format!("alert {feature}"),
        }
    }

    fn finished(&mut self, generation: u64, action: &Action, executed: Executed) {
        let topic = Self::topic(action);
        match &executed.error {
            Some(e) => self.report.problem(&topic, &error_chain(e)),
            None => {
                self.report.resolved(&topic);
                self.retry_delay = self.options.retry_min;
            }
        }
        match action {
            Action::RestartService { feature, owner, .. }
                if matches!(
                    executed.event,
                    Some(Event::ServiceRestarted { ok: true, .. })
                ) =>
            {
                self.report.log(
                    Level::Info,
                    &format!("Restarted {feature} to switch to {owner}"),
                );
            }
            Action::Alert { feature, message } => {
                self.report
                    .log(Level::Error, &format!("feature {feature}: {message}"));
            }
            _ => {}
        }
        if generation != self.generation {
            return;
        }
        match executed.event {
            Some(ev) => self.feed(ev),
            None if executed.error.is_some() => {
                // The core does not retry an action without answer: decide again from the
                // whole state a little later.
                self.schedule_reconcile();
            }
            None => {}
        }
    }

    /// Stops deciding until the next reconcile: the manager is kept aside for its clocks, the
    /// queued actions are dropped and the answers of the one in flight will be ignored.
    fn park_manager(&mut self) {
        if let Some(m) = self.manager.take() {
            self.previous = Some(m);
        }
        self.queue.drop_waiting();
        self.generation += 1;
    }

    fn schedule_reconcile(&mut self) {
        self.park_manager();
        let at = self.now().plus(self.retry_delay);
        self.retry_delay = (self.retry_delay * 2).min(self.options.retry_max);
        self.reconcile_at = Some(self.reconcile_at.map_or(at, |t| t.min(at)));
    }

    fn reload(&mut self) {
        if let Some(path) = &self.options.timers_file {
            match load_timers(path) {
                Ok(t) => {
                    self.report.resolved("configuration");
                    self.report.log(
                        Level::Notice,
                        &format!("reloaded timers from {}", path.display()),
                    );
                    self.options.timers = t;
                }
                Err(e) => {
                    self.report.problem("configuration", &e.to_string());
                    return;
                }
            }
        }
        self.park_manager();
        self.reconcile_at = Some(self.now());
    }

    fn on_link(&mut self, idx: usize, state: LinkState) {
        match state {
            LinkState::Connected { epoch } => {
                let Some(seen) = self.link_epochs.get_mut(idx) else {
                    return;
                };
                if epoch > *seen {
                    *seen = epoch;
                    self.report.resolved(TOPIC_REDIS);
                    // The catch-up events are queued before the link says connected; the
                    // inputs branch drains them before this deadline fires.
                    self.park_manager();
                    self.reconcile_at = Some(self.now());
                }
            }
            LinkState::Disconnected { error } => {
                self.report.problem(TOPIC_REDIS, &error);
                // Decisions wait until the state can be read again.
                self.park_manager();
            }
        }
    }

    async fn on_timer(&mut self) {
        let now = self.now();
        if self.reconcile_at.is_some_and(|t| t <= now) {
            self.reconcile_at = None;
            self.reconcile().await;
        }
        if self
            .manager
            .as_ref()
            .and_then(Manager::poll_timeout)
            .is_some_and(|t| t <= self.now())
        {
            self.feed(Event::Timeout);
        }
    }

    /// Builds a new manager from the persisted journal, the server status, the node facts and
    /// the mirror, continuing the clocks of the manager it replaces; on a database error,
    /// retries later.
    async fn reconcile(&mut self) {
        self.park_manager();
        let read = async {
            let journal = self.ports.state.load_label_journal().await?;
            let status = self.ports.host.server_status().await?;
            let node = self
                .ports
                .host
                .node_info(&self.options.sonic_version)
                .await?;
            Ok::<_, PortError>((journal.unwrap_or_default(), status, node))
        }
        .await;
        let (journal, server_status, node) = match read {
            Ok(r) => r,
            Err(e) => {
                self.report
                    .problem(TOPIC_REDIS, &format!("cannot read the state: {e}"));
                self.schedule_reconcile();
                return;
            }
        };
        // A record the daemon cannot read must not keep it from managing everything else: the
        // problem is reported (naming the field) and those restarts are not resumed.
        let pending = match self.ports.state.load_pending_restarts().await {
            Ok(p) => {
                self.report.resolved(TOPIC_PENDING_RESTARTS);
                p
            }
            Err(e) => {
                self.report
                    .problem(TOPIC_PENDING_RESTARTS, &error_chain(&e));
                BTreeMap::new()
            }
        };
        // The clocks to carry on: the replaced manager's within one process, else those an
        // earlier process persisted (unreadable ones are reported and started afresh).
        let carried = match self.previous.take() {
            Some(m) => Some(m.clocks()),
            None => match self.ports.state.load_clocks().await {
                Ok(c) => {
                    self.report.resolved(TOPIC_CLOCKS);
                    c
                }
                Err(e) => {
                    self.report.problem(TOPIC_CLOCKS, &error_chain(&e));
                    None
                }
            },
        };
        let mut manager = Manager::new(self.options.timers.clone(), node, journal);
        manager.set_restart_backoff(self.options.retry_min, self.options.retry_max);
        self.manager = Some(manager);
        self.feed(Event::Start {
            server_config: self.mirror.server.clone(),
            server_status,
        });
        self.feed(Event::ImageMgmtChanged(self.mirror.image_mgmt.clone()));
        self.feed(Event::DesiredLabelsChanged(self.mirror.labels.clone()));
        let configs: Vec<(FeatureName, FeatureConfig)> = self
            .mirror
            .configs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (feature, config) in configs {
            for name in self.names_of(&feature) {
                self.feed(Event::FeatureConfigChanged {
                    feature: name,
                    config: Some(config.clone()),
                });
            }
        }
        let statuses: Vec<(FeatureName, FeatureStatus)> = self
            .mirror
            .statuses
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (feature, status) in statuses {
            self.feed(Event::FeatureStatusChanged { feature, status });
        }
        if !pending.is_empty() {
            self.feed(Event::PendingRestarts(pending));
        }
        let now = self.now();
        if let (Some(m), Some(carried)) = (self.manager.as_mut(), carried) {
            for action in m.adopt_clocks(&carried, now) {
                self.enqueue(action);
            }
        }
    }

    /// The feature itself and its ASIC instances.
    fn names_of(&self, feature: &FeatureName) -> Vec<FeatureName> {
        let mut out = vec![feature.clone()];
        out.extend(self.instances.instances_of(feature));
        out
    }

    fn bad_input(&mut self, what: String, reason: String) {
        self.report.problem(&what, &reason);
    }

    fn on_table(&mut self, config_label: &str, source: Source, ev: TableEvent) {
        let key = ev.key.clone();
        match source {
            Source::ServerConfig => {
                if key != schema::server_config::KEY {
                    return;
                }
                let cfg = match &ev.op {
                    TableOp::Del => ServerConfig::default(),
                    TableOp::Set(fields) => {
                        let o = Origin {
                            db: config_label,
                            table: schema::server_config::TABLE,
                            key: &key,
                        };
                        match schema::parse_server_config(&o, fields) {
                            Ok(c) => c,
                            Err(e) => return self.bad_input(where_(&o), e.to_string()),
                        }
                    }
                };
                self.mirror.server = cfg.clone();
                self.feed(Event::ServerConfigChanged(cfg));
            }
            Source::FeatureConfig => {
                let o = Origin {
                    db: config_label,
                    table: schema::feature_config::TABLE,
                    key: &key,
                };
                let feature = match FeatureName::parse(&key) {
                    Ok(f) => f,
                    Err(e) => return self.bad_input(where_(&o), e.to_string()),
                };
                let config = match &ev.op {
                    TableOp::Del => None,
                    TableOp::Set(fields) => match schema::parse_feature_config(&o, fields) {
                        Ok(c) => Some(c),
                        Err(e) => return self.bad_input(where_(&o), e.to_string()),
                    },
                };
                self.report.resolved(&where_(&o));
                match &config {
                    Some(c) => self.mirror.configs.insert(feature.clone(), c.clone()),
                    None => self.mirror.configs.remove(&feature),
                };
                for name in self.names_of(&feature) {
                    self.feed(Event::FeatureConfigChanged {
                        feature: name,
                        config: config.clone(),
                    });
                }
            }
            Source::ImageMgmt => {
                match ev.op {
                    TableOp::Del => self.mirror.image_mgmt_raw.remove(&key),
                    TableOp::Set(fields) => self.mirror.image_mgmt_raw.insert(key, fields),
                };
                match schema::parse_image_mgmt(config_label, &self.mirror.image_mgmt_raw) {
                    Ok(m) => {
                        self.report.resolved("IMAGE_MGMT");
                        self.mirror.image_mgmt = m.clone();
                        self.feed(Event::ImageMgmtChanged(m));
                    }
                    Err(e) => self.bad_input("IMAGE_MGMT".to_owned(), e.to_string()),
                }
            }
            Source::Labels => {
                if key != schema::kube_labels::KEY {
                    return;
                }
                let labels = match &ev.op {
                    TableOp::Del => NodeLabels::new(),
                    TableOp::Set(fields) => {
                        let label = self.db_labels.get(&0).cloned().unwrap_or_default();
                        let o = Origin {
                            db: &label,
                            table: schema::kube_labels::TABLE,
                            key: &key,
                        };
                        match schema::parse_node_labels(&o, fields) {
                            Ok(l) => l,
                            Err(e) => return self.bad_input(where_(&o), e.to_string()),
                        }
                    }
                };
                self.mirror.labels = labels.clone();
                self.feed(Event::DesiredLabelsChanged(labels));
            }
            Source::Status(idx) => self.on_status(idx, ev),
        }
    }

    fn on_status(&mut self, idx: usize, ev: TableEvent) {
        let label = self.db_labels.get(&idx).cloned().unwrap_or_default();
        let o = Origin {
            db: &label,
            table: schema::feature_status::TABLE,
            key: &ev.key,
        };
        let feature = match FeatureName::parse(&ev.key) {
            Ok(f) => f,
            Err(e) => return self.bad_input(where_(&o), e.to_string()),
        };
        let status = match &ev.op {
            TableOp::Del => FeatureStatus::default(),
            TableOp::Set(fields) => match schema::parse_feature_status(&o, fields) {
                Ok(s) => s,
                Err(e) => return self.bad_input(where_(&o), e.to_string()),
            },
        };
        self.report.resolved(&where_(&o));
        let name = if idx == 0 {
            feature.clone()
        } else {
            let Some(ns) = self.namespaces.get(idx).cloned() else {
                return;
            };
            let known = self.instances.instances_of(&feature);
            let name = match self.instances.register(idx, &ns, &feature) {
                Ok(name) => name,
                Err(e) => return self.bad_input(where_(&o), e.to_string()),
            };
            if !known.contains(&name)
                && let Some(c) = self.mirror.configs.get(&feature).cloned()
            {
                // A new instance gets the host's configuration of its feature first.
                self.feed(Event::FeatureConfigChanged {
                    feature: name.clone(),
                    config: Some(c),
                });
            }
            name
        };
        match &ev.op {
            TableOp::Del => self.mirror.statuses.remove(&name),
            TableOp::Set(_) => self.mirror.statuses.insert(name.clone(), status.clone()),
        };
        self.feed(Event::FeatureStatusChanged {
            feature: name,
            status,
        });
    }
}
