//! Where ctrmgrd finds its files and how it is tuned: environment variables with upstream's
//! defaults, `remote_ctr.config.json`, `sonic_version.yml` and the root check.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sonic_feature_core::model::RemoteCtrConfig;
use sonic_kube_adapter::{KubePaths, KubeSettings};

/// `remote_ctr.config.json` (timers).
pub const ENV_REMOTE_CTR_CONFIG: &str = "SONIC_REMOTE_CTR_CONFIG";
/// `sonic_version.yml` (label `sonic_version`).
pub const ENV_SONIC_VERSION_FILE: &str = "SONIC_VERSION_FILE";
/// Re-roots every Kubernetes path of the node (`/etc/sonic/kube_admin.conf` becomes
/// `<root>/etc/sonic/kube_admin.conf`, ...).
pub const ENV_KUBE_ROOT: &str = "SONIC_CTRMGRD_KUBE_ROOT";
/// PEM bundle of extra CAs trusted when fetching the cluster CA in secure mode.
pub const ENV_KUBE_CA_BUNDLE: &str = "SONIC_KUBE_CA_BUNDLE";
/// The Kubernetes node name (default: the host name, lower-cased).
pub const ENV_NODE_NAME: &str = "SONIC_CTRMGRD_NODE_NAME";
/// `1` lets ctrmgrd run as non-root (tests and the lab only).
pub const ENV_SKIP_ROOT_CHECK: &str = "SONIC_CTRMGRD_SKIP_ROOT_CHECK";
/// Test hook: abort the process right after the N-th executed action (crash-safety tests).
pub const ENV_ABORT_AFTER_ACTIONS: &str = "SONIC_CTRMGRD_ABORT_AFTER_ACTIONS";
/// Test hook: abort the process right before starting the N-th action.
pub const ENV_ABORT_BEFORE_ACTION: &str = "SONIC_CTRMGRD_ABORT_BEFORE_ACTION";
/// The `systemctl` program (default `systemctl`, found on `PATH`).
pub const ENV_SYSTEMCTL: &str = "SONIC_CTRMGRD_SYSTEMCTL";
/// `1`: log every action the daemon starts and how it ended (debug level).
pub const ENV_TRACE_ACTIONS: &str = "SONIC_CTRMGRD_TRACE_ACTIONS";

/// Upstream's path of the timers file.
pub const DEFAULT_REMOTE_CTR_CONFIG: &str = "/etc/sonic/remote_ctr.config.json";
/// Upstream's path of the version file.
pub const DEFAULT_SONIC_VERSION_FILE: &str = "/etc/sonic/sonic_version.yml";

/// Errors of reading the daemon's files.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// What the file is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds something unusable.
    #[error("{what} {}: {reason}", path.display())]
    Invalid {
        /// What the file is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An environment variable holds something unusable.
    #[error("environment variable {name}={value:?}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Everything ctrmgrd reads from the environment, resolved once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `remote_ctr.config.json`, re-read on SIGHUP.
    pub remote_ctr_config: PathBuf,
    /// `sonic_version.yml`.
    pub sonic_version_file: PathBuf,
    /// Node name and Kubernetes paths.
    pub kube: KubeSettings,
    /// Whether the root check is skipped.
    pub skip_root_check: bool,
    /// Crash-test hook: abort after this many executed actions.
    pub abort_after_actions: Option<u64>,
    /// Crash-test hook: abort before starting the action with this number.
    pub abort_before_action: Option<u64>,
    /// The `systemctl` program.
    pub systemctl: PathBuf,
    /// Whether every action and its outcome is logged (debug level).
    pub trace_actions: bool,
}

impl Settings {
    /// Reads the settings through `var` (the process environment in production) with upstream's
    /// defaults; `hostname` names the node unless overridden.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        hostname: &str,
    ) -> Result<Self, SettingsError> {
        let path = |name: &str, default: &str| {
            var(name)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        let mut paths = match var(ENV_KUBE_ROOT).filter(|v| !v.is_empty()) {
            Some(root) => KubePaths::under(Path::new(&root)),
            None => KubePaths::default(),
        };
        paths.ca_bundle = var(ENV_KUBE_CA_BUNDLE)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let node = var(ENV_NODE_NAME)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| hostname.to_owned());
        let count = |name: &'static str| match var(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| SettingsError::Env {
                    name,
                    value: v.clone(),
                    reason: "expected a whole number of actions",
                }),
        };
        let abort_after_actions = count(ENV_ABORT_AFTER_ACTIONS)?;
        let abort_before_action = count(ENV_ABORT_BEFORE_ACTION)?;
        Ok(Self {
            remote_ctr_config: path(ENV_REMOTE_CTR_CONFIG, DEFAULT_REMOTE_CTR_CONFIG),
            sonic_version_file: path(ENV_SONIC_VERSION_FILE, DEFAULT_SONIC_VERSION_FILE),
            kube: KubeSettings::new(&node).with_paths(paths),
            skip_root_check: var(ENV_SKIP_ROOT_CHECK).as_deref() == Some("1"),
            abort_after_actions,
            abort_before_action,
            systemctl: path(ENV_SYSTEMCTL, "systemctl"),
            trace_actions: var(ENV_TRACE_ACTIONS).as_deref() == Some("1"),
        })
    }

    /// The settings of this process' environment.
    pub fn from_env(hostname: &str) -> Result<Self, SettingsError> {
        Self::from_vars(|n| std::env::var(n).ok(), hostname)
    }

    /// The timers: the file over upstream's defaults; a missing file gives the defaults (a
    /// switch without Kubernetes support has none).
    pub fn load_timers(&self) -> Result<RemoteCtrConfig, SettingsError> {
        load_timers(&self.remote_ctr_config)
    }

    /// The SONiC build version from `sonic_version.yml`.
    pub fn sonic_version(&self) -> Result<String, SettingsError> {
        read_sonic_version(&self.sonic_version_file)
    }
}

/// Reads `remote_ctr.config.json` over the defaults; a missing file gives the defaults.
pub fn load_timers(path: &Path) -> Result<RemoteCtrConfig, SettingsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => RemoteCtrConfig::from_json_str(&text).map_err(|e| SettingsError::Invalid {
            what: "remote container configuration",
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RemoteCtrConfig::default()),
        Err(source) => Err(SettingsError::Read {
            what: "remote container configuration",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `build_version` of `sonic_version.yml`, as upstream's `device_info.get_sonic_version_info`.
pub fn read_sonic_version(path: &Path) -> Result<String, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        what: "sonic version file",
        path: path.to_path_buf(),
        source,
    })?;
    parse_sonic_version(&text).map_err(|reason| SettingsError::Invalid {
        what: "sonic version file",
        path: path.to_path_buf(),
        reason,
    })
}

/// `build_version` of the text of `sonic_version.yml` (a string or a number).
pub fn parse_sonic_version(text: &str) -> Result<String, String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    match doc.get("build_version") {
        Some(serde_yaml::Value::String(s)) => Ok(s.trim().to_owned()),
        Some(serde_yaml::Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err("field build_version is not a string".to_owned()),
        None => Err("field build_version is missing".to_owned()),
    }
}

/// Upstream's root check: ctrmgrd joins the node and restarts services, so it must be root,
/// unless `SONIC_CTRMGRD_SKIP_ROOT_CHECK=1` (tests and the lab).
pub fn root_check(skip: bool) -> Result<(), &'static str> {
    if skip || nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("Please run as root. Exiting ...")
    }
}

/// The host name (upstream's node name, lower-cased by the kube adapter).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Time limits of the production service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemctlTimeouts {
    /// `systemctl is-active` and `reset-failed`.
    pub query: Duration,
    /// `systemctl restart` (waits for the unit's ExecStartPre, e.g. `container start`).
    pub restart: Duration,
}

impl Default for SystemctlTimeouts {
    fn default() -> Self {
        Self {
            query: Duration::from_secs(10),
            restart: Duration::from_secs(120),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_are_upstream_paths() {
        let s = Settings::from_vars(vars(&[]), "SONiC-01").unwrap();
        assert_eq!(
            s.remote_ctr_config,
            PathBuf::from("/etc/sonic/remote_ctr.config.json")
        );
        assert_eq!(
            s.sonic_version_file,
            PathBuf::from("/etc/sonic/sonic_version.yml")
        );
        assert_eq!(s.kube.node_name, "sonic-01");
        assert_eq!(
            s.kube.paths.kubeconfig,
            PathBuf::from("/etc/sonic/kube_admin.conf")
        );
        assert!(!s.skip_root_check);
        assert_eq!(s.abort_after_actions, None);
        assert!(!s.trace_actions);
    }

    #[test]
    fn environment_overrides_paths_node_and_hooks() {
        let s = Settings::from_vars(
            vars(&[
                (ENV_REMOTE_CTR_CONFIG, "/tmp/r.json"),
                (ENV_KUBE_ROOT, "/tmp/root"),
                (ENV_KUBE_CA_BUNDLE, "/tmp/ca.pem"),
                (ENV_NODE_NAME, "Node-A"),
                (ENV_SKIP_ROOT_CHECK, "1"),
                (ENV_ABORT_AFTER_ACTIONS, "7"),
                (ENV_TRACE_ACTIONS, "1"),
            ]),
            "ignored",
        )
        .unwrap();
        assert_eq!(s.remote_ctr_config, PathBuf::from("/tmp/r.json"));
        assert_eq!(
            s.kube.paths.kubeconfig,
            PathBuf::from("/tmp/root/etc/sonic/kube_admin.conf")
        );
        assert_eq!(s.kube.paths.ca_bundle, Some(PathBuf::from("/tmp/ca.pem")));
        assert_eq!(s.kube.node_name, "node-a");
        assert!(s.skip_root_check);
        assert_eq!(s.abort_after_actions, Some(7));
        assert!(s.trace_actions);
    }

    #[test]
    fn a_bad_abort_hook_names_the_variable() {
        let e = Settings::from_vars(vars(&[(ENV_ABORT_AFTER_ACTIONS, "x")]), "h").unwrap_err();
        assert!(e.to_string().contains(ENV_ABORT_AFTER_ACTIONS), "{e}");
    }

    #[test]
    fn sonic_version_is_read_as_text_or_number() {
        assert_eq!(
            parse_sonic_version("build_version: '20201230.111'\nasic_type: vs\n").unwrap(),
            "20201230.111"
        );
        assert_eq!(parse_sonic_version("build_version: 4.5\n").unwrap(), "4.5");
        assert!(parse_sonic_version("asic_type: vs\n").is_err());
    }

    #[test]
    fn missing_timers_file_gives_upstream_defaults_and_a_bad_one_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("remote_ctr.config.json");
        assert_eq!(load_timers(&p).unwrap(), RemoteCtrConfig::default());
        std::fs::write(&p, r#"{"retry_join_interval_seconds": 1}"#).unwrap();
        assert_eq!(
            load_timers(&p).unwrap().retry_join_interval,
            Duration::from_secs(1)
        );
        std::fs::write(&p, r#"{"retry_join_interval_seconds": "x"}"#).unwrap();
        let e = load_timers(&p).unwrap_err().to_string();
        assert!(e.contains("remote_ctr.config.json"), "{e}");
    }
}
