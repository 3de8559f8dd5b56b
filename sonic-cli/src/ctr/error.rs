//! Why `container` or `container_startup` failed; every variant names what is wrong and ends
//! the process with status 1 and its message on one stderr line.

use std::path::PathBuf;

use sonic_db::{ConfigError, DbError, SchemaError};
use sonic_docker_adapter::{DockerError, OwnIdError};
use sonic_feature_core::container::Refusal;
use sonic_feature_core::exec::ExecError;
use sonic_feature_core::model::FeatureName;
use sonic_feature_core::ports::PortError;

/// A failure of one of the container binaries.
#[derive(Debug, thiserror::Error)]
pub enum CtrError {
    /// `database_config.json` (or the global file) cannot be used.
    #[error(transparent)]
    DbConfig(#[from] ConfigError),
    /// Redis could not be reached or answered with an error.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A stored value is malformed (boxed: the error is large).
    #[error(transparent)]
    Schema(Box<SchemaError>),
    /// A read or write through the store port failed.
    #[error("{0}")]
    Store(PortError),
    /// Neither CONFIG_DB nor STATE_DB knows the feature.
    #[error("unknown feature {feature}: no FEATURE|{feature} entry in CONFIG_DB or STATE_DB")]
    UnknownFeature {
        /// The feature given.
        feature: FeatureName,
    },
    /// The core refused the operation.
    #[error("feature {feature}: {reason}")]
    Refused {
        /// The feature.
        feature: FeatureName,
        /// Why.
        reason: Refusal,
    },
    /// Carrying out the decision failed (Redis or Docker).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// `DOCKER_HOST` cannot be used.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The container's own id could not be found (`container state <f> up kube`).
    #[error(transparent)]
    OwnId(#[from] OwnIdError),
    /// `SONIC_REMOTE_CTR_CONFIG` names a file that cannot be read or parsed.
    #[error("invalid {}: {reason}", path.display())]
    RemoteCtrConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The async runtime could not be built.
    #[error("cannot start the async runtime: {source}")]
    Runtime {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl From<SchemaError> for CtrError {
    fn from(e: SchemaError) -> Self {
        CtrError::Schema(Box::new(e))
    }
}

impl From<PortError> for CtrError {
    fn from(e: PortError) -> Self {
        CtrError::Store(e)
    }
}
