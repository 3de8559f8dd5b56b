//! `kube-reboot` in the lab (HLD "Reboot support"): the real binary run with the lab's
//! environment — its databases and engine, the node program `systemctl` (answered by the lab,
//! so `systemctl stop kubelet` really stops the emulated kubelet), the lab's `container`, and
//! the kube files under ctrmgrd's Kubernetes root (`node/`) — and what a reboot does to
//! STATE_DB, so that a test can walk prepare → reboot → boot → restore.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, bail};
use sonic_feature_core::reboot::RebootPaths;

use super::{Lab, LabPaths, control};
use crate::docker::run_argv;

/// How long one `kube-reboot` run may take (it stops containers: up to their stop timeouts).
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// STATE_DB tables that survive a warm or fast reboot: SONiC's `backup_database` deletes every
/// other STATE_DB key before the reboot (FEATURE, KUBERNETES_MASTER and the label tables go).
pub const WARM_KEPT_STATE_TABLES: [&str; 8] = [
    "FDB_TABLE|",
    "WARM_RESTART_TABLE|",
    "MIRROR_SESSION_TABLE|",
    "FG_ROUTE_TABLE|",
    "WARM_RESTART_ENABLE_TABLE|",
    "VXLAN_TUNNEL_TABLE|",
    "BUFFER_MAX_PARAM_TABLE|",
    "FAST_RESTART_ENABLE_TABLE|",
];

/// One finished `kube-reboot` run.
#[derive(Debug, Clone)]
pub struct RebootRun {
    /// The argv, for messages.
    pub argv: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output (the carry list when no `--carry-list` is given).
    pub stdout: String,
    /// Standard error (kube-reboot's progress lines).
    pub stderr: String,
}

impl RebootRun {
    /// Fails with the argv and both outputs unless the run exited 0.
    pub fn success(self) -> anyhow::Result<Self> {
        if !self.status.success() {
            bail!(
                "{} exited with {}\nstdout:\n{}\nstderr:\n{}",
                self.argv,
                self.status,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

impl LabPaths {
    /// The kube paths `kube-reboot` carries: kubeadm's and ctrmgrd's files under the node root,
    /// with the state file of [`LabPaths::reboot_state_file`].
    pub fn reboot_paths(&self) -> RebootPaths {
        let mut p = RebootPaths::under(&self.kube_root());
        p.state_file = self.reboot_state_file();
        p
    }

    /// `kube-reboot`'s carry-over state file (`kube-reboot/state.json` in the lab directory).
    pub fn reboot_state_file(&self) -> PathBuf {
        self.dir.join("kube-reboot/state.json")
    }

    /// The argv of `kube-reboot <args>` with every lab path given as a flag (the units and
    /// scripts of installed features are looked for in the lab directory, never in /etc).
    pub fn kube_reboot_argv(&self, args: &[&str]) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![self.bin_dir.join("kube-reboot").into()];
        argv.extend(args.iter().map(OsString::from));
        for (flag, value) in [
            ("--root", self.kube_root()),
            ("--state", self.reboot_state_file()),
            ("--container-bin", self.bin_dir.join("container")),
            ("--unit-dir", self.dir.join("installed/units")),
            ("--script-dir", self.dir.join("installed/scripts")),
        ] {
            argv.push(flag.into());
            argv.push(value.into());
        }
        argv
    }

    /// The environment of `kube-reboot` beyond [`LabPaths::env`]: the lab's `systemctl` node
    /// program and the control socket it forwards to.
    pub fn kube_reboot_env(&self, docker_host: &str) -> Vec<(OsString, OsString)> {
        let mut env = self.env(docker_host);
        env.push((
            "SONIC_SYSTEMCTL".into(),
            self.shim_dir().join("systemctl").into(),
        ));
        env.push((
            control::CONTROL_ENV.into(),
            control::socket_path(&self.dir).into(),
        ));
        env
    }
}

impl Lab {
    /// Runs the real `kube-reboot <args>` (from the lab's binary directory) against this lab and
    /// returns its outcome, whatever the exit status.
    pub fn kube_reboot(&self, args: &[&str]) -> anyhow::Result<RebootRun> {
        let bin = self.paths.bin_dir.join("kube-reboot");
        if !bin.is_file() {
            bail!(
                "{} is missing: build it first (cargo build -p sonic-cli --bins)",
                bin.display()
            );
        }
        let command = self.paths.kube_reboot_argv(args);
        let shown = command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut argv: Vec<OsString> = vec!["env".into()];
        for (k, v) in self.paths.kube_reboot_env(&self.docker_host) {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            argv.push(kv);
        }
        argv.extend(command);
        let out = tokio::task::block_in_place(|| run_argv(&argv, RUN_LIMIT))
            .with_context(|| format!("cannot run {shown}"))?;
        Ok(RebootRun {
            argv: shown,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// What the reboot itself does to STATE_DB: every key but those of
    /// [`WARM_KEPT_STATE_TABLES`] is deleted (warm and fast reboot's `backup_database`; a cold
    /// boot starts with an empty STATE_DB, the same for the lab's tables). Returns how many keys
    /// went.
    pub fn reboot_state_db(&self) -> anyhow::Result<usize> {
        let mut c = self.redis.connection(crate::redis::STATE_DB)?;
        let keys: Vec<String> = ::redis::cmd("KEYS").arg("*").query(&mut c)?;
        let doomed: Vec<&String> = keys
            .iter()
            .filter(|k| !WARM_KEPT_STATE_TABLES.iter().any(|t| k.starts_with(t)))
            .collect();
        if !doomed.is_empty() {
            let mut del = ::redis::cmd("DEL");
            for k in &doomed {
                del.arg(k.as_str());
            }
            del.query::<()>(&mut c)?;
        }
        Ok(doomed.len())
    }
}
