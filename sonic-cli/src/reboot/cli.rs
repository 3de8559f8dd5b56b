//! The arguments of `kube-reboot` (clap derive) and `main`, which maps the outcome to the exit
//! status: 0 done, 1 a step or a read failed (the message says which), 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sonic_db::{Namespace, RedisFeatureStore, SonicDbConfig};
use sonic_docker_adapter::BollardRuntime;
use sonic_feature_core::reboot::RebootKind;

use crate::reboot::RebootError;
use crate::reboot::options::{PathFlags, RebootOptions};
use crate::reboot::prepare::{carry_list_text, prepare};
use crate::reboot::restore::restore;
use crate::reboot::runner::TokioRunner;
use crate::reboot::write_atomic;

/// Prepare kube-managed features for a warm, fast or cold reboot, and restore after boot.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "kube-reboot")]
pub struct RebootCli {
    /// Re-root every default kube path and the state file under DIR ($SONIC_REBOOT_ROOT).
    #[arg(long, value_name = "DIR", global = true)]
    pub root: Option<PathBuf>,
    /// The carry-over state file ($SONIC_REBOOT_STATE; default
    /// /etc/sonic/kube-reboot/state.json).
    #[arg(long, value_name = "FILE", global = true)]
    pub state: Option<PathBuf>,
    /// The container program ($SONIC_CONTAINER_BIN; default /usr/local/bin/container).
    #[arg(long, value_name = "PATH", global = true)]
    pub container_bin: Option<PathBuf>,
    /// The systemctl program ($SONIC_SYSTEMCTL; default systemctl).
    #[arg(long, value_name = "PATH", global = true)]
    pub systemctl: Option<PathBuf>,
    /// Units of installed features ($SONIC_INSTALL_UNIT_DIR; default /etc/systemd/system).
    #[arg(long, value_name = "DIR", global = true)]
    pub unit_dir: Option<PathBuf>,
    /// Scripts of installed features ($SONIC_INSTALL_SCRIPT_DIR; default /usr/local/bin).
    #[arg(long, value_name = "DIR", global = true)]
    pub script_dir: Option<PathBuf>,
    /// The action.
    #[command(subcommand)]
    pub command: RebootCommand,
}

/// The actions of `kube-reboot`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum RebootCommand {
    /// Before the reboot: park kubelet, allow fallback (warm/fast), kill or stop the kube
    /// containers, carry the newer good image as local, and print the carry list.
    Prepare {
        /// The reboot.
        #[arg(value_enum)]
        kind: KindArg,
        /// Pass --skip-updates to `container kill|stop` (no STATE_DB or label writes).
        #[arg(long)]
        skip_updates: bool,
        /// Write the carry list (one path per line) to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        carry_list: Option<PathBuf>,
    },
    /// After boot: restore the saved fallback settings and reinstall missing carried units.
    Restore {
        /// The state file written by prepare (default: --state).
        #[arg(long = "from", value_name = "FILE")]
        from: Option<PathBuf>,
    },
}

/// `warm`, `fast` or `cold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Warm reboot.
    Warm,
    /// Fast reboot.
    Fast,
    /// Cold reboot.
    Cold,
}

impl From<KindArg> for RebootKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Warm => RebootKind::Warm,
            KindArg::Fast => RebootKind::Fast,
            KindArg::Cold => RebootKind::Cold,
        }
    }
}

impl RebootCli {
    fn flags(&self) -> PathFlags {
        PathFlags {
            root: self.root.clone(),
            state: self.state.clone(),
            container_bin: self.container_bin.clone(),
            systemctl: self.systemctl.clone(),
            unit_dir: self.unit_dir.clone(),
            script_dir: self.script_dir.clone(),
        }
    }
}

/// The `kube-reboot` binary.
pub fn main() -> ExitCode {
    let cli = match RebootCli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RebootError::Runtime)
        .and_then(|rt| rt.block_on(run(&cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-reboot: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs one action; progress goes to stderr, the carry list to stdout or its file.
pub async fn run(cli: &RebootCli) -> Result<(), RebootError> {
    let opts = RebootOptions::resolve(&cli.flags());
    let dbs = SonicDbConfig::from_env()?;
    let store = RedisFeatureStore::open(&dbs, &Namespace::Host).await?;
    let mut log = |line: &str| eprintln!("kube-reboot: {line}");
    match &cli.command {
        RebootCommand::Prepare {
            kind,
            skip_updates,
            carry_list,
        } => {
            let docker = BollardRuntime::from_env().map_err(|e| RebootError::Port {
                context: e.to_string(),
            })?;
            let done = prepare(
                (*kind).into(),
                *skip_updates,
                &opts,
                &store,
                &docker,
                &TokioRunner,
                &mut log,
            )
            .await?;
            let text = carry_list_text(&done.plan);
            match carry_list {
                Some(path) => write_atomic(path, &text)?,
                None => print!("{text}"),
            }
            if done.failures.is_empty() {
                Ok(())
            } else {
                Err(RebootError::Steps(done.failures))
            }
        }
        RebootCommand::Restore { from } => {
            let file = from
                .clone()
                .unwrap_or_else(|| opts.paths.state_file.clone());
            let done = restore(&file, &opts, &store, &TokioRunner, &mut log).await?;
            if done.failures.is_empty() {
                Ok(())
            } else {
                Err(RebootError::Steps(done.failures))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definitions_are_consistent_and_kinds_are_closed() {
        RebootCli::command().debug_assert();
        let cli = RebootCli::try_parse_from([
            "kube-reboot",
            "prepare",
            "warm",
            "--skip-updates",
            "--carry-list",
            "/tmp/x",
            "--root",
            "/r",
        ])
        .unwrap();
        assert_eq!(cli.root, Some(PathBuf::from("/r")));
        assert_eq!(
            cli.command,
            RebootCommand::Prepare {
                kind: KindArg::Warm,
                skip_updates: true,
                carry_list: Some(PathBuf::from("/tmp/x")),
            }
        );
        let err = RebootCli::try_parse_from(["kube-reboot", "prepare", "soft"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let cli = RebootCli::try_parse_from(["kube-reboot", "restore", "--from", "/s"]).unwrap();
        assert_eq!(
            cli.command,
            RebootCommand::Restore {
                from: Some(PathBuf::from("/s"))
            }
        );
    }
}
