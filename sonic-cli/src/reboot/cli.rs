//! The arguments of `kube-reboot` (clap derive) and `main`, which maps the outcome to the exit
//! status: 0 done, 1 a step or a read failed (the message says which), 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use sonic_db::{Namespace, RedisFeatureStore, SonicDbConfig};
use sonic_docker_adapter::BollardRuntime;
use sonic_feature_core::reboot::RebootKind;

use crate::reboot::RebootError;
use crate::reboot::options::{PathFlags, RebootOptions};
use crate::reboot::prepare::{carry_list_text, prepare};
use crate::reboot::restore::restore_on;
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
        /// Wait at most DURATION (`600s`, `10m`, `1h`, `1m30s`) for every feature whose
        /// setting goes back to come up (STATE_DB system_state up) before restoring it; units
        /// are reinstalled first, at once. Default: do not wait.
        #[arg(long = "wait-up", value_name = "DURATION", value_parser = parse_duration)]
        wait_up: Option<Duration>,
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

/// Parses `600s`, `10m`, `1h`, `1m30s`, `500ms` or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {value:?}: expected a number with a unit, e.g. 600s, 10m, 1h or 1m30s"
        )
    };
    let text = value.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
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
        RebootCommand::Restore { from, wait_up } => {
            let file = from
                .clone()
                .unwrap_or_else(|| opts.paths.state_file.clone());
            // Multi-ASIC: the instances keep their status in their namespace's STATE_DB.
            let mut asics = Vec::new();
            for ns in dbs.asic_namespaces() {
                asics.push(RedisFeatureStore::open(&dbs, &ns).await?);
            }
            let done = restore_on(
                &file,
                *wait_up,
                &opts,
                &store,
                &asics,
                &TokioRunner,
                &mut log,
            )
            .await?;
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
                from: Some(PathBuf::from("/s")),
                wait_up: None,
            }
        );
        let cli =
            RebootCli::try_parse_from(["kube-reboot", "restore", "--wait-up", "10m"]).unwrap();
        assert_eq!(
            cli.command,
            RebootCommand::Restore {
                from: None,
                wait_up: Some(Duration::from_secs(600)),
            }
        );
    }

    #[test]
    fn wait_up_takes_durations_with_units_and_refuses_anything_else_as_a_usage_error() {
        for (text, secs) in [
            ("600s", 600),
            ("10m", 600),
            ("1h", 3600),
            ("1m30s", 90),
            ("45", 45),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in [
            "",
            "ten",
            "10x",
            "m",
            "-5s",
            "10 m",
            "99999999999999999999h",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.starts_with("invalid duration"), "{bad}: {err}");
        }
        let err = RebootCli::try_parse_from(["kube-reboot", "restore", "--wait-up", "10 minutes"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("--wait-up") && text.contains("invalid duration \"10 minutes\""),
            "{text}"
        );
    }
}
