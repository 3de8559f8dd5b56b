//! An emulated service manager implementing the core's `ServiceManager`: each feature unit runs
//! the project's own `container` binary as the real service scripts do — `container stop f`
//! (ExecStop), `container start f` (ExecStartPre), then `container wait f` in the background
//! (ExecStart, `Type=simple`): the unit is active while that wait runs.
//!
//! As systemd does, when the main process (`container wait`) ends by itself the unit runs
//! ExecStop (`container stop f`) and becomes inactive; with [`Restart::Always`] it is started
//! again after the delay unless someone starts, stops or restarts it first (systemd's
//! `Restart=always` + `RestartSec=`). A supervisor task, spawned on the first start, watches the
//! main processes.
//!
//! The caller gives the binary's path (tests locate `target/debug/container`) and the
//! environment the binary needs (`SONIC_DB_CONFIG`, `DOCKER_HOST`, `SONIC_CTRMGRD_UNIT`,
//! `SONIC_REMOTE_CTR_CONFIG`). Every command run is recorded for assertions.
//!
//! Units are keyed by the name `container` gets: a multi-ASIC instance (`lldp0`) is a unit of its
//! own running `container start lldp0`, as SONiC's `lldp@0` runs `lldp.sh start 0`. With
//! [`EmulatedServiceManager::set_unit_names`] the manager also records the systemd unit each
//! `systemctl start|stop|restart` would address (`restart lldp@0`), so tests can check the unit
//! naming of the caller.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sonic_feature_core::model::FeatureName;
use sonic_feature_core::ports::{PortError, ServiceManager};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// `target/<profile>/<name>` next to the running test binary (`target/debug/deps/..`).
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        let candidate = d.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    anyhow::bail!(
        "binary {name} not found above {}: build it first (cargo build -p sonic-cli --bins / -p sonic-daemon)",
        exe.display()
    )
}

/// What happens when a unit's main process ends by itself (systemd's `Restart=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// The unit stays inactive (`Restart=no`).
    #[default]
    No,
    /// The unit is started again after `delay` (`Restart=always`, `RestartSec=`).
    Always {
        /// `RestartSec=`.
        delay: Duration,
    },
}

/// Runs before every `container start f` (the service script's `docker create` of a missing
/// local container, for instance).
pub type PreStart = Arc<
    dyn Fn(FeatureName) -> Pin<Box<dyn Future<Output = Result<(), PortError>> + Send>>
        + Send
        + Sync,
>;

/// The systemd unit of a feature or instance name (`lldp@0` for `lldp0`).
pub type UnitNames = Arc<dyn Fn(&FeatureName) -> String + Send + Sync>;

#[derive(Debug, Default)]
struct Unit {
    /// `container wait f` while the unit is active (or until its end is noticed).
    main: Option<Child>,
    /// When the unit is started again after its main process ended ([`Restart::Always`]).
    restart_at: Option<Instant>,
}

struct Inner {
    container: PathBuf,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    restart: Restart,
    pre_start: Option<PreStart>,
    units: Mutex<BTreeMap<FeatureName, Unit>>,
    log: StdMutex<Vec<String>>,
    unit_names: StdMutex<Option<UnitNames>>,
    unit_log: StdMutex<Vec<String>>,
    /// When the manager was made: the timeline's zero.
    born: Instant,
    /// Every command, its outcome and every main process' end, with the time since `born`.
    timeline: StdMutex<Vec<String>>,
    /// While set, every restart stops the unit and then fails to start it (see
    /// [`EmulatedServiceManager::fail_restarts`]).
    failing_restarts: std::sync::atomic::AtomicBool,
    /// How long every restart takes before it stops the unit (milliseconds; see
    /// [`EmulatedServiceManager::slow_restarts`]).
    restart_delay_ms: std::sync::atomic::AtomicU64,
}

/// Feature units emulated with the `container` binary.
pub struct EmulatedServiceManager {
    inner: Arc<Inner>,
    supervisor: StdMutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for EmulatedServiceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatedServiceManager")
            .field("container", &self.inner.container)
            .field("restart", &self.inner.restart)
            .finish()
    }
}

/// How often the supervisor looks at the main processes.
const SUPERVISE_PERIOD: Duration = Duration::from_millis(200);

impl EmulatedServiceManager {
    /// Units running `container` (at `container`) with `env` added to the environment;
    /// `Restart=no`, no pre-start hook.
    pub fn new<K, V>(container: impl Into<PathBuf>, env: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Self::with_options(container, env, Restart::No, None)
    }

    /// Units with a restart policy and an optional hook run before every `container start`.
    pub fn with_options<K, V>(
        container: impl Into<PathBuf>,
        env: impl IntoIterator<Item = (K, V)>,
        restart: Restart,
        pre_start: Option<PreStart>,
    ) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Self {
            inner: Arc::new(Inner {
                container: container.into(),
                env: env.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
                timeout: Duration::from_secs(60),
                restart,
                pre_start,
                units: Mutex::new(BTreeMap::new()),
                log: StdMutex::new(Vec::new()),
                unit_names: StdMutex::new(None),
                unit_log: StdMutex::new(Vec::new()),
                born: Instant::now(),
                timeline: StdMutex::new(Vec::new()),
                failing_restarts: std::sync::atomic::AtomicBool::new(false),
                restart_delay_ms: std::sync::atomic::AtomicU64::new(0),
            }),
            supervisor: StdMutex::new(None),
        }
    }

    /// Every command run so far (`container start snmp`, ...), in order.
    pub fn commands(&self) -> Vec<String> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every command with its start time and outcome, and how each main process ended, in
    /// order (`+1.234s container start snmp`, `+1.301s ok`, ...): what a failing test prints.
    pub fn timeline(&self) -> Vec<String> {
        self.inner
            .timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// While `on`, every `restart` stops the unit and then fails, leaving it inactive, as
    /// `systemctl restart` does when the unit's start fails ("Job for snmp.service failed").
    pub fn fail_restarts(&self, on: bool) {
        self.inner
            .failing_restarts
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every `restart` from now on first takes `delay` (a unit whose ExecStop waits for a slow
    /// container), recorded in the timeline as `restart <f>: begins` and `restart <f>: ends`.
    pub fn slow_restarts(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .restart_delay_ms
            .store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// The time since the manager was made (the zero of [`Self::timeline`]).
    pub fn since_start(&self) -> Duration {
        self.inner.born.elapsed()
    }

    /// How many times `container <verb> <f>` ran.
    pub fn count(&self, verb: &str, f: &str) -> usize {
        let wanted = format!("container {verb} {f}");
        self.commands().iter().filter(|c| **c == wanted).count()
    }

    /// Records from now on the unit every `start`, `stop` and `restart` addresses, named by
    /// `names` (see [`Self::unit_calls`]).
    pub fn set_unit_names(&self, names: UnitNames) {
        *self
            .inner
            .unit_names
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(names);
    }

    /// `start <unit>`, `stop <unit>`, `restart <unit>` so far, in order (only while unit names
    /// are set).
    pub fn unit_calls(&self) -> Vec<String> {
        self.inner
            .unit_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Spawns the supervisor once (from a runtime: the first start is async).
    fn supervise(&self) {
        let mut s = self.supervisor.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_none() {
            *s = Some(tokio::spawn(supervisor(Arc::downgrade(&self.inner))));
        }
    }

    /// `systemctl start f`.
    pub async fn start(&self, f: &FeatureName) -> Result<(), PortError> {
        self.inner.record_unit("start", f);
        self.supervise();
        let mut units = self.inner.units.lock().await;
        let unit = units.entry(f.clone()).or_default();
        unit.restart_at = None;
        self.inner.start_locked(unit, f).await
    }

    /// `systemctl stop f`.
    pub async fn stop(&self, f: &FeatureName) -> Result<(), PortError> {
        self.inner.record_unit("stop", f);
        let mut units = self.inner.units.lock().await;
        let unit = units.entry(f.clone()).or_default();
        unit.restart_at = None;
        self.inner.stop_locked(unit, f).await
    }

    /// Stops every unit (end of a test).
    pub async fn stop_all(&self) {
        let mut units = self.inner.units.lock().await;
        let names: Vec<FeatureName> = units.keys().cloned().collect();
        for f in names {
            if let Some(unit) = units.get_mut(&f) {
                unit.restart_at = None;
                let _ = self.inner.stop_locked(unit, &f).await;
            }
        }
    }
}

impl Drop for EmulatedServiceManager {
    fn drop(&mut self) {
        if let Some(t) = self
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
    }
}

/// Notices main processes that ended by themselves (ExecStop, inactive) and carries out due
/// automatic restarts, until the manager is dropped.
async fn supervisor(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(SUPERVISE_PERIOD).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut units = inner.units.lock().await;
        let names: Vec<FeatureName> = units.keys().cloned().collect();
        for f in names {
            let Some(unit) = units.get_mut(&f) else {
                continue;
            };
            if inner.reap_locked(unit, &f).await
                && let Restart::Always { delay } = inner.restart
            {
                unit.restart_at = Some(Instant::now() + delay);
            }
            if unit.restart_at.is_some_and(|t| t <= Instant::now()) {
                unit.restart_at = None;
                inner.record(format!("auto-restart {f}"));
                // A failed start leaves the unit inactive, as systemd's failed state.
                let _ = inner.start_locked(unit, &f).await;
            }
        }
    }
}

impl Inner {
    fn record(&self, what: String) {
        self.note(&what);
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
    }

    /// Adds `what` to the timeline.
    fn note(&self, what: &str) {
        let at = self.born.elapsed().as_secs_f64();
        self.timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("+{at:.3}s {what}"));
    }

    fn record_unit(&self, verb: &str, f: &FeatureName) {
        let names = self
            .unit_names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(names) = names {
            let unit = names(f);
            self.unit_log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{verb} {unit}"));
        }
    }

    fn command(&self, verb: &str, f: &FeatureName) -> Command {
        self.record(format!("container {verb} {f}"));
        let mut cmd = Command::new(&self.container);
        cmd.arg(verb)
            .arg(f.as_str())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, verb: &str, f: &FeatureName) -> Result<(), PortError> {
        let mut cmd = self.command(verb, f);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let what = format!("container {verb} {f}");
        let child = cmd
            .spawn()
            .map_err(|e| PortError::transient(format!("cannot run {what}")).with_source(e))?;
        let r = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Err(_) => Err(PortError::transient(format!(
                "{what} did not finish within {:?}",
                self.timeout
            ))),
            Ok(Err(e)) => Err(PortError::transient(format!("{what} failed")).with_source(e)),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(PortError::transient(format!(
                "{what} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        };
        match &r {
            Ok(()) => self.note(&format!("{what}: ok")),
            Err(e) => self.note(&format!("{what}: {e}")),
        }
        r
    }

    /// Whether the main process runs (a process that ended stays recorded until reaped).
    fn running(unit: &mut Unit) -> bool {
        matches!(unit.main.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// A main process that ended by itself: ExecStop runs and the unit becomes inactive.
    /// Returns whether that happened.
    async fn reap_locked(&self, unit: &mut Unit, f: &FeatureName) -> bool {
        if unit.main.is_none() || Self::running(unit) {
            return false;
        }
        if let Some(mut main) = unit.main.take()
            && let Ok(Some(status)) = main.try_wait()
        {
            let mut err = String::new();
            if let Some(mut pipe) = main.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = tokio::time::timeout(Duration::from_secs(1), pipe.read_to_string(&mut err))
                    .await;
            }
            self.note(&format!(
                "container wait {f} ended by itself: {status} {}",
                err.trim()
            ));
        }
        // The outcome is systemd's business only for the log; the unit is inactive either way.
        let _ = self.run("stop", f).await;
        true
    }

    async fn stop_locked(&self, unit: &mut Unit, f: &FeatureName) -> Result<(), PortError> {
        if self.reap_locked(unit, f).await || unit.main.is_none() {
            return Ok(());
        }
        let r = self.run("stop", f).await;
        // What ExecStop left running is killed, as systemd does.
        if let Some(mut main) = unit.main.take() {
            let _ = main.start_kill();
            let _ = main.wait().await;
        }
        r
    }

    async fn start_locked(&self, unit: &mut Unit, f: &FeatureName) -> Result<(), PortError> {
        self.reap_locked(unit, f).await;
        if unit.main.is_some() {
            return Ok(());
        }
        if let Some(hook) = &self.pre_start {
            hook(f.clone()).await?;
        }
        self.run("start", f).await?;
        let mut cmd = self.command("wait", f);
        // What it says when it ends by itself goes to the timeline.
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let child = cmd.spawn().map_err(|e| {
            PortError::transient(format!("cannot run container wait {f}")).with_source(e)
        })?;
        unit.main = Some(child);
        Ok(())
    }
}

#[async_trait]
impl ServiceManager for EmulatedServiceManager {
    async fn restart(&self, f: &FeatureName) -> Result<(), PortError> {
        self.inner.record_unit("restart", f);
        self.supervise();
        let delay = self
            .inner
            .restart_delay_ms
            .load(std::sync::atomic::Ordering::SeqCst);
        if delay > 0 {
            self.inner.note(&format!("restart {f}: begins"));
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let r = self.restart_now(f).await;
            self.inner.note(&format!("restart {f}: ends"));
            return r;
        }
        self.restart_now(f).await
    }

    async fn is_active(&self, f: &FeatureName) -> Result<bool, PortError> {
        let mut units = self.inner.units.lock().await;
        Ok(units.get_mut(f).is_some_and(Inner::running))
    }
}

impl EmulatedServiceManager {
    /// `systemctl restart f` without the delay of [`Self::slow_restarts`].
    async fn restart_now(&self, f: &FeatureName) -> Result<(), PortError> {
        let mut units = self.inner.units.lock().await;
        let unit = units.entry(f.clone()).or_default();
        unit.restart_at = None;
        self.inner.stop_locked(unit, f).await?;
        if self
            .inner
            .failing_restarts
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            let e = format!("Job for {f}.service failed because its start failed (emulated)");
            self.inner.note(&format!("restart {f}: {e}"));
            return Err(PortError::transient(e));
        }
        self.inner.start_locked(unit, f).await
    }
}
