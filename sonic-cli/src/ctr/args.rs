//! Command-line arguments of `container` and `container_startup` (clap derive), validated into
//! the core's model types while parsing so that a bad feature name or version is a usage error
//! (exit 2) before anything is read.

use clap::{Parser, Subcommand, ValueEnum};
use sonic_feature_core::model::{ContainerId, FeatureName, SetOwner, Version};

/// `container {start,stop,kill,wait,id} [-t|--timeout SECS] <feature>` and
/// `container state <feature> up|down [local|kube]`.
///
/// Upstream's argparse accepts `-t` before or after the action; `global` gives the same here.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "container",
    about = "Start, stop, kill, wait for or identify the container of a SONiC feature, locally or under Kubernetes"
)]
pub struct ContainerCli {
    /// Seconds `stop` waits before killing (docker's default when absent); ignored by the other
    /// actions, like upstream.
    #[arg(short = 't', long = "timeout", value_name = "SECS", global = true)]
    pub timeout: Option<u64>,
    /// Also log to stderr (same as SONIC_LOG_STDERR=1).
    #[arg(short = 'v', long = "verbose", global = true)]
    pub verbose: bool,
    /// The action.
    #[command(subcommand)]
    pub command: ContainerCommand,
}

/// The actions of `container`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ContainerCommand {
    /// Start the feature: the local container and/or allow a Kubernetes deployment.
    Start {
        /// The feature (its service name).
        #[arg(value_parser = parse_feature)]
        feature: FeatureName,
    },
    /// Stop the feature's container and record it as down.
    Stop {
        /// The feature.
        #[arg(value_parser = parse_feature)]
        feature: FeatureName,
        /// Only the Docker call, by the id in STATE_DB: no STATE_DB or label write (reboot
        /// scripts, HLD "Reboot support").
        #[arg(long = "skip-updates")]
        skip_updates: bool,
    },
    /// Kill the feature's container.
    Kill {
        /// The feature.
        #[arg(value_parser = parse_feature)]
        feature: FeatureName,
        /// Only the Docker call, by the id in STATE_DB: no label write (reboot scripts).
        #[arg(long = "skip-updates")]
        skip_updates: bool,
    },
    /// Wait until the feature's container exits; with no container yet (or only a stopped local
    /// one that start did not run, as after a cold boot of a kube-owned feature), wait for a
    /// Kubernetes deployment (and let it proceed) or fall back to local at the deadline.
    Wait {
        /// The feature.
        #[arg(value_parser = parse_feature)]
        feature: FeatureName,
    },
    /// Print the id (or name) of the feature's container.
    Id {
        /// The feature.
        #[arg(value_parser = parse_feature)]
        feature: FeatureName,
    },
    /// Record that the feature's container is up (post-start) or down (pre-stop), as the HLD's
    /// `container state <name> up|down [local|kube]`.
    State {
        /// The feature.
        #[arg(value_parser = parse_feature)]
        feature: FeatureName,
        /// `up` or `down`.
        #[arg(value_enum)]
        change: UpDown,
        /// Who started the container (for `up`; default local).
        #[arg(value_enum)]
        owner: Option<OwnerArg>,
        /// The container's id (for `up kube`; default: the id of the container this command runs
        /// in).
        #[arg(long = "id", value_name = "ID", value_parser = parse_container_id)]
        id: Option<ContainerId>,
        /// The image version (default: $IMAGE_VERSION when it is a version).
        #[arg(long = "image-version", value_name = "VERSION", value_parser = parse_version)]
        image_version: Option<Version>,
    },
}

impl ContainerCommand {
    /// The feature the action applies to.
    pub fn feature(&self) -> &FeatureName {
        match self {
            Self::Start { feature }
            | Self::Stop { feature, .. }
            | Self::Kill { feature, .. }
            | Self::Wait { feature }
            | Self::Id { feature }
            | Self::State { feature, .. } => feature,
        }
    }

    /// The action's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start { .. } => "start",
            Self::Stop { .. } => "stop",
            Self::Kill { .. } => "kill",
            Self::Wait { .. } => "wait",
            Self::Id { .. } => "id",
            Self::State { .. } => "state",
        }
    }
}

/// `up` or `down` of `container state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpDown {
    /// The container's application is starting.
    Up,
    /// The container is stopping.
    Down,
}

/// `local` or `kube` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OwnerArg {
    /// Started by systemd on the switch.
    Local,
    /// Deployed by Kubernetes.
    Kube,
}

impl From<OwnerArg> for SetOwner {
    fn from(o: OwnerArg) -> Self {
        match o {
            OwnerArg::Local => SetOwner::Local,
            OwnerArg::Kube => SetOwner::Kube,
        }
    }
}

/// `container_startup -f <feature> -o <local|kube> -v <version>`, run by a feature container's
/// start script before its application (upstream `container_startup.py`).
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "container_startup",
    about = "Record who runs this feature container and hold a Kubernetes deployment until the switch admits it"
)]
pub struct StartupCli {
    /// The feature.
    #[arg(short = 'f', long = "feature", value_parser = parse_feature)]
    pub feature: FeatureName,
    /// Who started this container: `local` or `kube` ($RUNTIME_OWNER; empty means kube, as in
    /// the feature start scripts).
    #[arg(short = 'o', long = "owner", value_parser = parse_runtime_owner)]
    pub owner: SetOwner,
    /// The image version ($IMAGE_VERSION).
    #[arg(short = 'v', long = "version", value_parser = parse_version)]
    pub version: Version,
    /// Also log to stderr (same as SONIC_LOG_STDERR=1).
    #[arg(long = "verbose")]
    pub verbose: bool,
}

fn parse_feature(s: &str) -> Result<FeatureName, String> {
    FeatureName::parse(s).map_err(|e| e.to_string())
}

fn parse_version(s: &str) -> Result<Version, String> {
    Version::parse(s).map_err(|e| e.to_string())
}

fn parse_container_id(s: &str) -> Result<ContainerId, String> {
    ContainerId::parse(s).map_err(|e| e.to_string())
}

/// `RUNTIME_OWNER`: `local`, `kube`, or empty for kube (a Kubernetes manifest may leave it
/// unset; upstream's start scripts then pass `kube`).
fn parse_runtime_owner(s: &str) -> Result<SetOwner, String> {
    let v = s.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("kube") {
        Ok(SetOwner::Kube)
    } else if v.eq_ignore_ascii_case("local") {
        Ok(SetOwner::Local)
    } else {
        Err(format!("invalid owner {s:?}: expected local or kube"))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<ContainerCli, clap::Error> {
        ContainerCli::try_parse_from(std::iter::once("container").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definitions_are_consistent() {
        ContainerCli::command().debug_assert();
        StartupCli::command().debug_assert();
    }

    #[test]
    fn timeout_is_accepted_before_and_after_the_action_like_argparse() {
        for args in [
            &["-t", "60", "stop", "snmp"][..],
            &["stop", "-t", "60", "snmp"],
            &["stop", "snmp", "--timeout", "60"],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.timeout, Some(60), "{args:?}");
            assert_eq!(cli.command.name(), "stop");
            assert_eq!(cli.command.feature().as_str(), "snmp");
        }
    }

    #[test]
    fn skip_updates_is_accepted_by_stop_and_kill_only() {
        let cli = parse(&["kill", "--skip-updates", "snmp"]).unwrap();
        assert!(matches!(
            cli.command,
            ContainerCommand::Kill {
                skip_updates: true,
                ..
            }
        ));
        let cli = parse(&["stop", "snmp", "--skip-updates", "-t", "5"]).unwrap();
        assert!(matches!(
            cli.command,
            ContainerCommand::Stop {
                skip_updates: true,
                ..
            }
        ));
        assert!(matches!(
            parse(&["stop", "snmp"]).unwrap().command,
            ContainerCommand::Stop {
                skip_updates: false,
                ..
            }
        ));
        assert!(parse(&["start", "--skip-updates", "snmp"]).is_err());
    }

    #[test]
    fn invalid_feature_names_and_unknown_actions_are_usage_errors() {
        for args in [
            &["start", "sn mp"][..],
            &["start", "-snmp"],
            &["restart", "snmp"],
            &["start"],
            &["stop", "-t", "-1", "snmp"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn state_takes_up_or_down_and_an_optional_owner() {
        let cli = parse(&["state", "snmp", "up", "kube", "--id", "0123456789ab"]).unwrap();
        assert_eq!(
            cli.command,
            ContainerCommand::State {
                feature: FeatureName::parse("snmp").unwrap(),
                change: UpDown::Up,
                owner: Some(OwnerArg::Kube),
                id: Some(ContainerId::parse("0123456789ab").unwrap()),
                image_version: None,
            }
        );
        let cli = parse(&["state", "snmp", "down"]).unwrap();
        assert!(matches!(
            cli.command,
            ContainerCommand::State {
                change: UpDown::Down,
                owner: None,
                ..
            }
        ));
        assert!(parse(&["state", "snmp", "sideways"]).is_err());
    }

    #[test]
    fn startup_owner_empty_means_kube() {
        let cli = StartupCli::try_parse_from([
            "container_startup",
            "-f",
            "snmp",
            "-o",
            "",
            "-v",
            "20201230.11",
        ])
        .unwrap();
        assert_eq!(cli.owner, SetOwner::Kube);
        assert_eq!(cli.version.as_str(), "20201230.11");
        let err = StartupCli::try_parse_from([
            "container_startup",
            "-f",
            "snmp",
            "-o",
            "remote",
            "-v",
            "1.0",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = StartupCli::try_parse_from([
            "container_startup",
            "-f",
            "snmp",
            "-o",
            "kube",
            "-v",
            "x",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
