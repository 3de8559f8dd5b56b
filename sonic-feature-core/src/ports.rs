//! The narrow traits through which executors reach the outside world (databases, Docker,
//! Kubernetes, systemd, the clock), in domain words. Adapter crates implement them; the `mocks`
//! feature provides a `mockall` mock of each (`MockFeatureStore`, `MockContainerRuntime`, ...).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::labels::LabelJournal;
use crate::manager::Clocks;
use crate::model::{
    ContainerId, FeatureConfig, FeatureName, FeatureStatus, LabelKey, NodeLabels, ServerConfig,
    ServerStatus, SetOwner, StatusUpdate, Timestamp, Version,
};

/// Any error an adapter wraps as the source of a [`PortError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a caller should react to a [`PortError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Retry with backoff (connection refused, timeout, server busy).
    Transient,
    /// Retrying will not help until something changes (bad configuration, no such object,
    /// malformed data).
    Permanent,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        })
    }
}

/// Failure of a port call: what was being done, whether to retry, and why.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct PortError {
    /// Whether to retry.
    pub kind: ErrorKind,
    /// What failed, naming the object (`docker stop snmp`, `STATE_DB FEATURE|snmp`).
    pub context: String,
    /// The underlying error, if any.
    #[source]
    pub source: Option<BoxError>,
}

impl PortError {
    /// A transient error without source.
    pub fn transient(context: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Transient,
            context: context.into(),
            source: None,
        }
    }

    /// A permanent error without source.
    pub fn permanent(context: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            context: context.into(),
            source: None,
        }
    }

    /// The same error with `source` attached.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Whether a retry may help.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// What Docker knows about one container (`docker inspect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Full container id.
    pub id: String,
    /// Container name without the leading `/`.
    pub name: String,
    /// Id of the image it was created from (as Docker reports it, e.g. `sha256:...`).
    pub image_id: String,
    /// The `IMAGE_VERSION` environment variable baked into the image, if present and valid.
    pub image_version: Option<Version>,
    /// Whether the container is running.
    pub running: bool,
}

/// One repository:tag reference of a local image (one row of `docker images`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageInfo {
    /// Image id (as Docker reports it, e.g. `sha256:...`); several rows may share it.
    pub id: String,
    /// Repository, with registry prefix for downloaded images (`acr.io/docker-snmp`) and without
    /// for images shipped with SONiC (`docker-snmp`).
    pub repository: String,
    /// Tag (`20201231.74`, `latest`).
    pub tag: String,
}

impl ImageInfo {
    /// `repository:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }

    /// Whether the image was downloaded from a registry (its repository has a `/`), as opposed
    /// to shipped with SONiC.
    pub fn is_downloaded(&self) -> bool {
        self.repository.contains('/')
    }

    /// The repository without registry and path (`acr.io/x/docker-snmp` gives `docker-snmp`).
    pub fn base_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(self.repository.as_str())
    }
}

/// CONFIG_DB and STATE_DB of one namespace (implemented by `sonic-db`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait FeatureStore: Send + Sync {
    /// CONFIG_DB `FEATURE|<f>`; `None` when the key does not exist.
    async fn feature_config(&self, f: &FeatureName) -> Result<Option<FeatureConfig>, PortError>;
    /// STATE_DB `FEATURE|<f>` (all fields default when the key does not exist).
    async fn feature_status(&self, f: &FeatureName) -> Result<FeatureStatus, PortError>;
    /// One HSET of the fields set in `u` into STATE_DB `FEATURE|<f>`.
    async fn update_feature_status(
        &self,
        f: &FeatureName,
        u: &StatusUpdate,
    ) -> Result<(), PortError>;
    /// STATE_DB `KUBERNETES_MASTER|SERVER`.
    async fn server_status(&self) -> Result<ServerStatus, PortError>;
    /// STATE_DB `KUBE_LABELS|SET`: the labels this node should carry.
    async fn desired_labels(&self) -> Result<NodeLabels, PortError>;
    /// Sets `set` and deletes `remove` in STATE_DB `KUBE_LABELS|SET`.
    async fn update_desired_labels(
        &self,
        set: &NodeLabels,
        remove: &[LabelKey],
    ) -> Result<(), PortError>;
}

/// What only the manager writes: the server status and its persisted label journal
/// (implemented by `sonic-db`). An addition to the ARCHITECTURE.md port list: `FeatureStore`
/// can read the server status but not write it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ManagerStateStore: Send + Sync {
    /// Replaces STATE_DB `KUBERNETES_MASTER|SERVER` with `status` (fields it does not hold are
    /// deleted).
    async fn write_server_status(&self, status: &ServerStatus) -> Result<(), PortError>;
    /// Loads the persisted label journal; `None` when none was saved yet.
    async fn load_label_journal(&self) -> Result<Option<LabelJournal>, PortError>;
    /// Persists the label journal.
    async fn save_label_journal(&self, journal: &LabelJournal) -> Result<(), PortError>;
    /// Records that a restart of `f` to switch to `owner` started and has not succeeded yet.
    async fn note_pending_restart(&self, f: &FeatureName, owner: SetOwner)
    -> Result<(), PortError>;
    /// Drops the record of a pending restart of `f` (nothing when there is none).
    async fn clear_pending_restart(&self, f: &FeatureName) -> Result<(), PortError>;
    /// The restarts recorded as pending.
    async fn load_pending_restarts(&self) -> Result<BTreeMap<FeatureName, SetOwner>, PortError>;
    /// Persists the manager's clocks.
    async fn save_clocks(&self, clocks: &Clocks) -> Result<(), PortError>;
    /// Loads the persisted clocks; `None` when none were saved yet.
    async fn load_clocks(&self) -> Result<Option<Clocks>, PortError>;
}

/// Docker containers (implemented by `sonic-docker-adapter`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// `docker start <id>`.
    async fn start(&self, id: &ContainerId) -> Result<(), PortError>;
    /// `docker stop [-t timeout] <id>`.
    async fn stop(&self, id: &ContainerId, timeout: Option<Duration>) -> Result<(), PortError>;
    /// `docker kill <id>`.
    async fn kill(&self, id: &ContainerId) -> Result<(), PortError>;
    /// Waits until the container is not running; returns its exit code.
    async fn wait(&self, id: &ContainerId) -> Result<i64, PortError>;
    /// `docker inspect <id>`; `None` when there is no such container.
    async fn inspect(&self, id: &ContainerId) -> Result<Option<ContainerInfo>, PortError>;
    /// `docker rm <id>`.
    async fn remove(&self, id: &ContainerId) -> Result<(), PortError>;
}

/// Docker images (implemented by `sonic-docker-adapter`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Every repository:tag reference of every local image.
    async fn list_images(&self) -> Result<Vec<ImageInfo>, PortError>;
    /// `docker tag <image> <repo>:<tag>` (replacing an existing tag).
    async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<(), PortError>;
    /// `docker rmi <reference>` (an id or `repo:tag`).
    async fn remove_image(&self, reference: &str) -> Result<(), PortError>;
}

/// Kubernetes membership of this node (implemented by `sonic-kube-adapter`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait NodeCluster: Send + Sync {
    /// Joins the master; with `force`, even when already joined.
    async fn join(&self, server: &ServerConfig, force: bool) -> Result<(), PortError>;
    /// Leaves the master; with `force`, even when not joined.
    async fn reset(&self, force: bool) -> Result<(), PortError>;
    /// Whether the node is joined and Ready.
    async fn node_ready(&self) -> Result<bool, PortError>;
    /// The labels the node carries.
    async fn node_labels(&self) -> Result<NodeLabels, PortError>;
    /// Sets `set` and removes `remove` on the node (one merge patch).
    async fn patch_labels(&self, set: &NodeLabels, remove: &[LabelKey]) -> Result<(), PortError>;
    /// Routes Docker's HTTP proxy (from its systemd drop-in) to the proxy on the master at
    /// `master` (an IP or a host name), or removes the route when `master` is `None`
    /// (`use_k8s_as_http_proxy`, upstream's `ctrmgr_iptables`). Nothing to do without a proxy
    /// in the drop-in.
    async fn route_http_proxy(&self, master: Option<String>) -> Result<(), PortError>;
}

/// Systemd units of features (systemctl in production, an emulator in tests).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ServiceManager: Send + Sync {
    /// `systemctl reset-failed <f>` then `systemctl restart <f>`.
    async fn restart(&self, f: &FeatureName) -> Result<(), PortError>;
    /// `systemctl is-active <f>`.
    async fn is_active(&self, f: &FeatureName) -> Result<bool, PortError>;
}

/// The clock, read only by executors and the daemon, never by decision code.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// Monotonic time.
    fn now(&self) -> Timestamp;
    /// Local wall-clock time as `%Y-%m-%d %H:%M:%S`, for `update_time` fields.
    fn wall_time(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn port_errors_carry_kind_context_and_source() {
        let e = PortError::transient("docker stop snmp")
            .with_source(std::io::Error::other("connection refused"));
        assert!(e.is_transient());
        assert_eq!(e.to_string(), "docker stop snmp");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("connection refused")
        );
        let p = PortError::permanent("no such container: snmp");
        assert_eq!(p.kind, ErrorKind::Permanent);
        assert!(p.source().is_none());
        assert_eq!(ErrorKind::Transient.to_string(), "transient");
    }

    #[test]
    fn image_rows_know_their_origin_and_base_name() {
        let remote = ImageInfo {
            id: "sha256:1".into(),
            repository: "acr.io/sonic/docker-snmp".into(),
            tag: "20201231.74".into(),
        };
        assert!(remote.is_downloaded());
        assert_eq!(remote.base_name(), "docker-snmp");
        assert_eq!(remote.reference(), "acr.io/sonic/docker-snmp:20201231.74");
        let local = ImageInfo {
            id: "sha256:2".into(),
            repository: "docker-snmp".into(),
            tag: "latest".into(),
        };
        assert!(!local.is_downloaded());
        assert_eq!(local.base_name(), "docker-snmp");
    }

    #[test]
    fn mocks_can_be_built_and_driven() {
        let mut svc = MockServiceManager::new();
        svc.expect_is_active().times(1).returning(|_| Ok(true));
        let f = FeatureName::parse("snmp").unwrap();
        assert!(futures::executor::block_on(svc.is_active(&f)).unwrap());
    }
}
