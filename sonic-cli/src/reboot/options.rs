//! Where `kube-reboot` finds everything: each path and program comes from its flag, else its
//! environment variable, else the switch's default, so tests run entirely in temp dirs.

use std::path::PathBuf;
use std::time::Duration;

use sonic_feature_core::reboot::RebootPaths;

use crate::install::InstallPaths;

/// Re-roots every default kube path and the state file under this directory.
pub const ROOT_ENV: &str = "SONIC_REBOOT_ROOT";
/// The carry-over state file.
pub const STATE_ENV: &str = "SONIC_REBOOT_STATE";
/// The systemctl program (shared with `config feature install`).
pub const SYSTEMCTL_ENV: &str = "SONIC_SYSTEMCTL";

/// Paths, programs and time limits of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootOptions {
    /// Kube context and state file.
    pub paths: RebootPaths,
    /// Unit and script directories of installed features, and the `container` program.
    pub install: InstallPaths,
    /// The systemctl program.
    pub systemctl: PathBuf,
    /// Limit of each systemctl call.
    pub systemctl_timeout: Duration,
    /// Limit of each `container stop|kill` (a stop waits for the container's own timeout).
    pub container_timeout: Duration,
    /// Limit of each feature hook.
    pub hook_timeout: Duration,
    /// How often `restore --wait-up` reads whether the features are up.
    pub up_poll_period: Duration,
}

/// The flags that override paths; `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathFlags {
    /// `--root`.
    pub root: Option<PathBuf>,
    /// `--state`.
    pub state: Option<PathBuf>,
    /// `--container-bin`.
    pub container_bin: Option<PathBuf>,
    /// `--systemctl`.
    pub systemctl: Option<PathBuf>,
    /// `--unit-dir`.
    pub unit_dir: Option<PathBuf>,
    /// `--script-dir`.
    pub script_dir: Option<PathBuf>,
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl RebootOptions {
    /// Flags first, then the environment (`SONIC_REBOOT_ROOT`, `SONIC_REBOOT_STATE`,
    /// `SONIC_SYSTEMCTL`, `SONIC_INSTALL_UNIT_DIR`, `SONIC_INSTALL_SCRIPT_DIR`,
    /// `SONIC_CONTAINER_BIN`), then the defaults.
    pub fn resolve(flags: &PathFlags) -> Self {
        let root = flags.root.clone().or_else(|| env_path(ROOT_ENV));
        let mut paths = match &root {
            Some(r) => RebootPaths::under(r),
            None => RebootPaths::default(),
        };
        if let Some(s) = flags.state.clone().or_else(|| env_path(STATE_ENV)) {
            paths.state_file = s;
        }
        let mut install = InstallPaths::from_env();
        if let Some(d) = &flags.unit_dir {
            install.unit_dir = d.clone();
        }
        if let Some(d) = &flags.script_dir {
            install.script_dir = d.clone();
        }
        if let Some(c) = &flags.container_bin {
            install.container_bin = c.clone();
        }
        let systemctl = flags
            .systemctl
            .clone()
            .or_else(|| env_path(SYSTEMCTL_ENV))
            .unwrap_or_else(|| PathBuf::from("systemctl"));
        Self {
            paths,
            install,
            systemctl,
            systemctl_timeout: Duration::from_secs(60),
            container_timeout: Duration::from_secs(180),
            hook_timeout: Duration::from_secs(120),
            up_poll_period: Duration::from_secs(1),
        }
    }
}
