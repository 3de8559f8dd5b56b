//! The `config feature install|uninstall` command functions: each is one call for the command
//! tree, returning the [`Exit`] to print.
//!
//! Install order: files, then `systemctl daemon-reload` (so systemd knows the new unit), then
//! the CONFIG_DB `FEATURE` entry — last, because `state=enabled` is what makes featured start the
//! service. Uninstall removes the files and reloads; it leaves `FEATURE|<name>` alone, since a
//! feature whose image ships its own unit keeps running from that unit once ours is gone (disable
//! a kube-only feature with `config feature state <name> disabled` before uninstalling it).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sonic_db::schema::dbs::CONFIG_DB;
use sonic_db::schema::feature_config;
use sonic_db::{DbError, Namespace, SonicDbConfig};
use sonic_feature_core::model::FeatureName;
use sonic_kube_adapter::run_program;

use crate::click::Exit;
use crate::install::InstallError;
use crate::install::files::{self, InstallPaths};
use crate::install::spec::{ServiceSpec, feature_entry_fields};

/// How long `systemctl daemon-reload` may take.
pub const DAEMON_RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Paths and the systemctl program for the install commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    /// Where files go.
    pub paths: InstallPaths,
    /// The program run as `<systemctl> daemon-reload` after files change; `None`: no reload.
    pub systemctl: Option<PathBuf>,
}

impl InstallOptions {
    /// `SONIC_SYSTEMCTL` overrides the systemctl program; set and empty, no reload is run.
    pub const SYSTEMCTL_ENV: &'static str = "SONIC_SYSTEMCTL";

    /// [`InstallPaths::from_env`] and `systemctl` from `PATH` unless `SONIC_SYSTEMCTL` says
    /// otherwise.
    pub fn from_env() -> Self {
        let systemctl = match std::env::var_os(Self::SYSTEMCTL_ENV) {
            None => Some(PathBuf::from("systemctl")),
            Some(v) if v.is_empty() => None,
            Some(v) => Some(PathBuf::from(v)),
        };
        Self {
            paths: InstallPaths::from_env(),
            systemctl,
        }
    }
}

/// `<systemctl> daemon-reload` with an enforced timeout, through the workspace's one runner.
pub async fn daemon_reload(systemctl: &Path) -> Result<(), InstallError> {
    let fail = |reason: String| InstallError::DaemonReload {
        program: systemctl.to_path_buf(),
        reason,
    };
    let argv = [systemctl.as_os_str(), OsStr::new("daemon-reload")];
    let output = run_program(&argv, DAEMON_RELOAD_TIMEOUT)
        .await
        .map_err(|e| fail(e.reason()))?;
    if output.success() {
        Ok(())
    } else {
        Err(fail(output.failure_reason()))
    }
}

fn error_exit(e: &InstallError) -> Exit {
    Exit::stderr(1, format!("Error: {e}\n"))
}

async fn install_spec(
    dbs: &SonicDbConfig,
    spec: &ServiceSpec,
    opts: &InstallOptions,
) -> Result<Exit, DbError> {
    let installed = match files::install(spec, &opts.paths) {
        Ok(installed) => installed,
        Err(e) => return Ok(error_exit(&e)),
    };
    if let Some(systemctl) = &opts.systemctl
        && let Err(e) = daemon_reload(systemctl).await
    {
        return Ok(error_exit(&e));
    }
    let config = dbs.open(&Namespace::Host, CONFIG_DB).await?;
    config
        .mod_entry(
            feature_config::TABLE,
            spec.name.as_str(),
            &feature_entry_fields(),
        )
        .await?;
    let verb = if installed.replaced {
        "Updated"
    } else {
        "Installed"
    };
    Ok(Exit::stdout(
        0,
        format!(
            "{verb} feature {}: {} and {}\n",
            spec.name,
            installed.unit.display(),
            installed.script.display()
        ),
    ))
}

/// `config feature install NAME [REQUIRED_SERVICE ...]` (HLD proposal 1).
pub async fn config_feature_install(
    dbs: &SonicDbConfig,
    name: &str,
    required: &[String],
    opts: &InstallOptions,
) -> Result<Exit, DbError> {
    match ServiceSpec::simple(name, required) {
        Ok(spec) => install_spec(dbs, &spec, opts).await,
        Err(e) => Ok(error_exit(&e)),
    }
}

/// `config feature install --spec FILE` (HLD proposal 2).
pub async fn config_feature_install_spec(
    dbs: &SonicDbConfig,
    spec_file: &Path,
    opts: &InstallOptions,
) -> Result<Exit, DbError> {
    match ServiceSpec::from_file(spec_file) {
        Ok(spec) => install_spec(dbs, &spec, opts).await,
        Err(e) => Ok(error_exit(&e)),
    }
}

/// `config feature install NAME --spec FILE`: like [`config_feature_install_spec`], and the spec
/// must describe `NAME`, so the command line always names the feature it changes.
pub async fn config_feature_install_named_spec(
    dbs: &SonicDbConfig,
    name: &str,
    spec_file: &Path,
    opts: &InstallOptions,
) -> Result<Exit, DbError> {
    let name = match FeatureName::parse(name) {
        Ok(name) => name,
        Err(source) => {
            return Ok(error_exit(&InstallError::FeatureName {
                field: "name".to_owned(),
                source,
            }));
        }
    };
    let spec = match ServiceSpec::from_file(spec_file) {
        Ok(spec) => spec,
        Err(e) => return Ok(error_exit(&e)),
    };
    if spec.name != name {
        return Ok(error_exit(&InstallError::SpecName {
            path: spec_file.to_path_buf(),
            given: name.to_string(),
            spec: spec.name.to_string(),
        }));
    }
    install_spec(dbs, &spec, opts).await
}

/// `config feature uninstall NAME`. Needs no database; it returns a `Result` like the other
/// command functions so that it wires the same way.
pub async fn config_feature_uninstall(name: &str, opts: &InstallOptions) -> Result<Exit, DbError> {
    let name = match FeatureName::parse(name) {
        Ok(name) => name,
        Err(source) => {
            return Ok(error_exit(&InstallError::FeatureName {
                field: "name".to_owned(),
                source,
            }));
        }
    };
    let removed = match files::uninstall(&name, &opts.paths) {
        Ok(u) => u.removed,
        Err(e) => return Ok(error_exit(&e)),
    };
    if let Some(systemctl) = &opts.systemctl
        && let Err(e) = daemon_reload(systemctl).await
    {
        return Ok(error_exit(&e));
    }
    let list: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
    Ok(Exit::stdout(
        0,
        format!(
            "Uninstalled feature {name}: removed {}\n",
            list.join(" and ")
        ),
    ))
}
