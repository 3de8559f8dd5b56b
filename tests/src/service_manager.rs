//! An emulated service manager implementing the core's `ServiceManager`: each feature unit runs
//! the project's own `container` binary as the real service scripts do — `container stop f`
//! (ExecStop), `container start f` (ExecStartPre), then `container wait f` in the background
//! (ExecStart, `Type=simple`): the unit is active while that wait runs.
//!
//! The caller gives the binary's path (tests locate `target/debug/container`) and the
//! environment the binary needs (`SONIC_DB_CONFIG`, `DOCKER_HOST`, `SONIC_CTRMGRD_UNIT`,
//! `SONIC_REMOTE_CTR_CONFIG`). Every command run is recorded for assertions.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use async_trait::async_trait;
use sonic_feature_core::model::FeatureName;
use sonic_feature_core::ports::{PortError, ServiceManager};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

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

#[derive(Debug, Default)]
struct Unit {
    /// `container wait f` while the unit is active.
    main: Option<Child>,
}

/// Feature units emulated with the `container` binary.
#[derive(Debug)]
pub struct EmulatedServiceManager {
    container: PathBuf,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    units: Mutex<BTreeMap<FeatureName, Unit>>,
    log: StdMutex<Vec<String>>,
}

impl EmulatedServiceManager {
    /// Units running `container` (at `container`) with `env` added to the environment.
    pub fn new<K, V>(container: impl Into<PathBuf>, env: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Self {
            container: container.into(),
            env: env.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            timeout: Duration::from_secs(60),
            units: Mutex::new(BTreeMap::new()),
            log: StdMutex::new(Vec::new()),
        }
    }

    /// Every command run so far (`container start snmp`, ...), in order.
    pub fn commands(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many times `container <verb> <f>` ran.
    pub fn count(&self, verb: &str, f: &str) -> usize {
        let wanted = format!("container {verb} {f}");
        self.commands().iter().filter(|c| **c == wanted).count()
    }

    fn command(&self, verb: &str, f: &FeatureName) -> Command {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("container {verb} {f}"));
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
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
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
        }
    }

    fn alive(unit: &mut Unit) -> bool {
        match unit.main.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) | None => {
                unit.main = None;
                false
            }
        }
    }

    async fn stop_locked(&self, unit: &mut Unit, f: &FeatureName) -> Result<(), PortError> {
        if !Self::alive(unit) {
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
        if Self::alive(unit) {
            return Ok(());
        }
        self.run("start", f).await?;
        let mut cmd = self.command("wait", f);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| {
            PortError::transient(format!("cannot run container wait {f}")).with_source(e)
        })?;
        unit.main = Some(child);
        Ok(())
    }

    /// `systemctl start f`.
    pub async fn start(&self, f: &FeatureName) -> Result<(), PortError> {
        let mut units = self.units.lock().await;
        let unit = units.entry(f.clone()).or_default();
        self.start_locked(unit, f).await
    }

    /// `systemctl stop f`.
    pub async fn stop(&self, f: &FeatureName) -> Result<(), PortError> {
        let mut units = self.units.lock().await;
        let unit = units.entry(f.clone()).or_default();
        self.stop_locked(unit, f).await
    }

    /// Stops every unit (end of a test).
    pub async fn stop_all(&self) {
        let mut units = self.units.lock().await;
        let names: Vec<FeatureName> = units.keys().cloned().collect();
        for f in names {
            if let Some(unit) = units.get_mut(&f) {
                let _ = self.stop_locked(unit, &f).await;
            }
        }
    }
}

#[async_trait]
impl ServiceManager for EmulatedServiceManager {
    async fn restart(&self, f: &FeatureName) -> Result<(), PortError> {
        let mut units = self.units.lock().await;
        let unit = units.entry(f.clone()).or_default();
        self.stop_locked(unit, f).await?;
        self.start_locked(unit, f).await
    }

    async fn is_active(&self, f: &FeatureName) -> Result<bool, PortError> {
        let mut units = self.units.lock().await;
        Ok(units.get_mut(f).is_some_and(Self::alive))
    }
}
