//! The environment of `container` and `container_startup` besides Redis (`SONIC_DB_CONFIG`, read
//! by sonic-db) and Docker (`DOCKER_HOST`, read by the Docker adapter): where the kube-support
//! marker and the timers file are, and whether to log to stderr.

use std::path::{Path, PathBuf};

use sonic_feature_core::model::RemoteCtrConfig;

use crate::ctr::CtrError;

/// Names the file of the kube timers (`revert_to_local_on_wait_seconds`, ...).
pub const REMOTE_CTR_CONFIG_ENV: &str = "SONIC_REMOTE_CTR_CONFIG";
/// Upstream's path of the kube timers.
pub const DEFAULT_REMOTE_CTR_CONFIG: &str = "/etc/sonic/remote_ctr.config.json";
/// Names the file whose existence means Kubernetes support is installed.
pub const CTRMGRD_UNIT_ENV: &str = "SONIC_CTRMGRD_UNIT";
/// Upstream's marker: `os.path.exists('/lib/systemd/system/ctrmgrd.service')`.
pub const DEFAULT_CTRMGRD_UNIT: &str = "/lib/systemd/system/ctrmgrd.service";
/// `1` logs to stderr as well as to syslog.
pub const LOG_STDERR_ENV: &str = "SONIC_LOG_STDERR";

/// The path named by `var`, or `default` when it is unset or empty.
fn path_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The kube-support marker file (`SONIC_CTRMGRD_UNIT`).
pub fn ctrmgrd_unit_path() -> PathBuf {
    path_from_env(CTRMGRD_UNIT_ENV, DEFAULT_CTRMGRD_UNIT)
}

/// Whether Kubernetes support is installed: without it, `container` writes neither STATE_DB
/// nor labels and always runs the local container, like upstream on a non-kube build.
pub fn kube_support() -> bool {
    ctrmgrd_unit_path().exists()
}

/// The timers file (`SONIC_REMOTE_CTR_CONFIG`).
pub fn remote_ctr_config_path() -> PathBuf {
    path_from_env(REMOTE_CTR_CONFIG_ENV, DEFAULT_REMOTE_CTR_CONFIG)
}

/// Whether `SONIC_LOG_STDERR=1`.
pub fn log_stderr_from_env() -> bool {
    std::env::var(LOG_STDERR_ENV).is_ok_and(|v| v.trim() == "1")
}

/// Loads the timers from `path`: a missing file gives upstream's shipped defaults (a non-kube
/// build has none); an unreadable or malformed one is an error naming the file.
pub fn load_remote_ctr_config(path: &Path) -> Result<RemoteCtrConfig, CtrError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(RemoteCtrConfig::default());
        }
        Err(e) => {
            return Err(CtrError::RemoteCtrConfig {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    RemoteCtrConfig::from_json_str(&text).map_err(|e| CtrError::RemoteCtrConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn missing_timers_file_gives_upstream_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = load_remote_ctr_config(&dir.path().join("absent.json")).unwrap();
        assert_eq!(cfg, RemoteCtrConfig::default());
        assert_eq!(cfg.revert_to_local_on_wait, Duration::from_secs(360));
    }

    #[test]
    fn timers_file_overrides_the_revert_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("remote_ctr.config.json");
        std::fs::write(&p, r#"{"revert_to_local_on_wait_seconds": 5}"#).unwrap();
        let cfg = load_remote_ctr_config(&p).unwrap();
        assert_eq!(cfg.revert_to_local_on_wait, Duration::from_secs(5));
    }

    #[test]
    fn malformed_timers_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("remote_ctr.config.json");
        std::fs::write(&p, "{ not json").unwrap();
        let err = load_remote_ctr_config(&p).unwrap_err().to_string();
        assert!(err.contains(&p.display().to_string()), "{err}");
        assert!(err.starts_with("invalid "), "{err}");
    }

    #[test]
    fn unreadable_timers_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be read as a file.
        let err = load_remote_ctr_config(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }
}
