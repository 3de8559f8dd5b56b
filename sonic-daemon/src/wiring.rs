//! Wiring of the ports: the databases of every namespace (host first, then ASICs when
//! `database_global.json` is present) and, for production, Docker, Kubernetes and systemctl.

use std::sync::Arc;

use sonic_db::schema::dbs;
use sonic_db::{DbError, RedisFeatureStore, SonicDbConfig};
use sonic_docker_adapter::BollardRuntime;
use sonic_feature_core::ports::{
    Clock, ContainerRuntime, FeatureStore, ImageStore, NodeCluster, ServiceManager,
};
use sonic_kube_adapter::{KubeNodeCluster, TokioCommandRunner};

use crate::daemon::{DaemonPorts, Sources};
use crate::instances::{Instances, RoutedStore};
use crate::services::{SystemClock, SystemctlServices};
use crate::settings::{Settings, SystemctlTimeouts};

/// The databases of every namespace, ready for subscriptions and for the routed store.
#[derive(Debug)]
pub struct Databases {
    /// What the loop subscribes to.
    pub sources: Sources,
    /// The host's stores.
    pub host: Arc<RedisFeatureStore>,
    /// Feature reads and writes routed to namespaces.
    pub store: Arc<RoutedStore>,
    /// The instance registry shared by the routed ports.
    pub instances: Instances,
}

/// Opens CONFIG_DB and STATE_DB of the host and STATE_DB of every ASIC namespace.
pub async fn open_databases(config: &SonicDbConfig) -> Result<Databases, DbError> {
    let instances = Instances::default();
    let mut state_dbs = Vec::new();
    let mut stores: Vec<Arc<dyn FeatureStore>> = Vec::new();
    let host = Arc::new(RedisFeatureStore::open(config, &sonic_db::Namespace::Host).await?);
    stores.push(host.clone());
    state_dbs.push((sonic_db::Namespace::Host, host.state_db().clone()));
    for ns in config.asic_namespaces() {
        let state = config.open(&ns, dbs::STATE_DB).await?;
        // Instances are configured by the host's CONFIG_DB.
        stores.push(Arc::new(RedisFeatureStore::new(
            host.config_db().clone(),
            state.clone(),
        )));
        state_dbs.push((ns, state));
    }
    Ok(Databases {
        sources: Sources {
            config_db: host.config_db().clone(),
            state_dbs,
        },
        store: Arc::new(RoutedStore::new(stores, instances.clone())),
        host,
        instances,
    })
}

/// The outside systems other than Redis.
#[derive(Clone)]
pub struct Outside {
    /// Docker containers.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Docker images.
    pub images: Arc<dyn ImageStore>,
    /// Kubernetes.
    pub cluster: Arc<dyn NodeCluster>,
    /// Feature units.
    pub services: Arc<dyn ServiceManager>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Outside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outside")
    }
}

impl Databases {
    /// The daemon's ports: these databases plus the outside systems.
    pub fn ports(&self, outside: Outside) -> DaemonPorts {
        DaemonPorts {
            store: self.store.clone(),
            host: self.host.clone(),
            state: self.host.clone(),
            runtime: outside.runtime,
            images: outside.images,
            cluster: outside.cluster,
            services: outside.services,
            clock: outside.clock,
        }
    }
}

/// Production outside systems: Docker from `DOCKER_HOST`, Kubernetes with node commands run
/// directly (argv, timeouts), units through `systemctl`.
pub fn production_outside(
    settings: &Settings,
    instances: &Instances,
) -> Result<Outside, sonic_docker_adapter::DockerError> {
    let docker = Arc::new(BollardRuntime::from_env()?);
    let cluster = KubeNodeCluster::new(settings.kube.clone(), Arc::new(TokioCommandRunner));
    Ok(Outside {
        runtime: docker.clone(),
        images: docker,
        cluster: Arc::new(cluster),
        services: Arc::new(SystemctlServices::new(
            settings.systemctl.clone(),
            SystemctlTimeouts::default(),
            instances.clone(),
        )),
        clock: Arc::new(SystemClock::new()),
    })
}
