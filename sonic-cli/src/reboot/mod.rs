//! `kube-reboot prepare warm|fast|cold` and `kube-reboot restore`: the switch side of the HLD's
//! "Reboot support" for kube-managed features, executing the core's
//! `sonic_feature_core::reboot` plans.
//!
//! - [`runner`]: external programs (`systemctl`, `container`, feature hooks) behind a port;
//! - [`options`]: every path and program, from flags, then the environment, then the defaults;
//! - [`prepare`]: reads the facts, plans, carries the plan out, returns the carry list;
//! - [`restore`]: after boot, reinstalls missing units, waits (`--wait-up`) for the features to
//!   come up, and puts the saved fallback settings back;
//! - [`cli`]: the clap arguments and `main`.
//!
//! Kubelet is disabled and stopped by `prepare` and never enabled by `restore`: upstream ships it
//! disabled and ctrmgrd starts it when it joins the master.

pub mod cli;
pub mod options;
pub mod prepare;
pub mod restore;
pub mod runner;

use std::path::PathBuf;

use sonic_feature_core::model::FeatureName;

/// Why `kube-reboot` failed.
#[derive(Debug, thiserror::Error)]
pub enum RebootError {
    /// The database configuration could not be loaded.
    #[error(transparent)]
    DbConfig(#[from] sonic_db::ConfigError),
    /// A database could not be opened or a command failed.
    #[error(transparent)]
    Db(#[from] sonic_db::DbError),
    /// A port call (feature store, Docker) failed.
    #[error("{context}")]
    Port {
        /// What was being done.
        context: String,
    },
    /// A program failed or timed out.
    #[error("command {command} failed: {reason}")]
    Command {
        /// The argv, joined for the message.
        command: String,
        /// Exit status and output, or why it could not run.
        reason: String,
    },
    /// A file could not be read, written or copied.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read`, `write`, `copy`, `remove`, `create directory`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not a state file of this version.
    #[error("{path}: {source}; move it away if it is not needed")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: sonic_feature_core::reboot::CarryStateError,
    },
    /// A saved unit or script lost the generated-file marker; it is not reinstalled.
    #[error("{path}: not a generated file of feature {feature} (marker line missing)")]
    NotGenerated {
        /// The file.
        path: PathBuf,
        /// Its feature.
        feature: FeatureName,
    },
    /// `restore --wait-up` could not read the features until its deadline.
    #[error(
        "cannot read the features' state within --wait-up {limit}: {reason}; the state file is kept, run kube-reboot restore again once the database answers"
    )]
    WaitUp {
        /// The limit, as given.
        limit: String,
        /// The last read error.
        reason: String,
    },
    /// Some steps failed; the others were carried out.
    #[error("{} step(s) failed: {}", .0.len(), .0.join("; "))]
    Steps(Vec<String>),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<sonic_feature_core::ports::PortError> for RebootError {
    fn from(e: sonic_feature_core::ports::PortError) -> Self {
        let mut context = e.context.clone();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            context.push_str(": ");
            context.push_str(&s.to_string());
            source = s.source();
        }
        RebootError::Port { context }
    }
}

fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RebootError {
    let path = path.to_path_buf();
    move |source| RebootError::Io {
        action,
        path,
        source,
    }
}

/// Writes `text` to `path` through a temporary file and a rename (readers see the old or the
/// new file), creating the directory.
pub(crate) fn write_atomic(path: &std::path::Path, text: &str) -> Result<(), RebootError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io("write", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("write", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Copies `from` to `to` (keeping the permission bits), creating the directory.
pub(crate) fn copy_file(from: &std::path::Path, to: &std::path::Path) -> Result<(), RebootError> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    }
    std::fs::copy(from, to).map_err(io("copy", from))?;
    Ok(())
}
