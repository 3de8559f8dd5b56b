//! Multi-ASIC plumbing: a feature running in an ASIC namespace is a feature *instance* named as
//! upstream names its container (`<feature><asic>`, e.g. `lldp0`), configured by the host's
//! CONFIG_DB `FEATURE|<feature>` (HLD "FEATURE config in single host instance"), with its
//! status in that namespace's STATE_DB `FEATURE|<feature>` and its unit `<feature>@<asic>`.
//!
//! This module only routes names: the manager decides about an instance as about any feature.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use sonic_db::Namespace;
use sonic_feature_core::model::{
    FeatureConfig, FeatureName, FeatureStatus, LabelKey, NodeLabels, ServerStatus, StatusUpdate,
};
use sonic_feature_core::ports::{FeatureStore, PortError};

/// Where a feature instance lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Index of the namespace in [`Instances`]' store list (0 is the host).
    pub store: usize,
    /// The namespace.
    pub namespace: Namespace,
    /// The feature's name in that namespace's STATE_DB and in CONFIG_DB.
    pub feature: FeatureName,
    /// The ASIC number used in the instance and unit names.
    pub asic: String,
}

/// The instances seen so far, shared by the daemon (which registers them) and the routed ports.
#[derive(Debug, Default, Clone)]
pub struct Instances {
    routes: Arc<RwLock<BTreeMap<FeatureName, Route>>>,
}

/// The ASIC number of a namespace name: its trailing digits (`asic3` gives `3`), else the whole
/// name.
pub fn asic_suffix(namespace: &Namespace) -> String {
    let name = namespace.name();
    let digits: String = name
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if digits.is_empty() {
        name.to_owned()
    } else {
        digits
    }
}

impl Instances {
    /// Registers the instance of `feature` in ASIC namespace `namespace` (store index `store`)
    /// and returns its name; `None` when the combined name is not a valid feature name.
    pub fn register(
        &self,
        store: usize,
        namespace: &Namespace,
        feature: &FeatureName,
    ) -> Option<FeatureName> {
        let asic = asic_suffix(namespace);
        let name = FeatureName::parse(&format!("{feature}{asic}")).ok()?;
        let route = Route {
            store,
            namespace: namespace.clone(),
            feature: feature.clone(),
            asic,
        };
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        routes.insert(name.clone(), route);
        Some(name)
    }

    /// The route of an instance; `None` for a host feature.
    pub fn route(&self, name: &FeatureName) -> Option<Route> {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        routes.get(name).cloned()
    }

    /// The instances of a host feature.
    pub fn instances_of(&self, feature: &FeatureName) -> Vec<FeatureName> {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        routes
            .iter()
            .filter(|(_, r)| &r.feature == feature)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The systemd unit of a feature or instance (`lldp@0` for instance `lldp0`).
    pub fn unit(&self, name: &FeatureName) -> String {
        match self.route(name) {
            Some(r) => format!("{}@{}", r.feature, r.asic),
            None => name.to_string(),
        }
    }
}

/// The core's `FeatureStore` over the host store and one store per ASIC namespace: feature
/// reads and writes of an instance go to its namespace, everything else to the host.
pub struct RoutedStore {
    stores: Vec<Arc<dyn FeatureStore>>,
    instances: Instances,
}

impl std::fmt::Debug for RoutedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedStore")
            .field("stores", &self.stores.len())
            .field("instances", &self.instances)
            .finish()
    }
}

impl RoutedStore {
    /// `stores[0]` is the host; the others are the ASIC namespaces in [`Instances`]' numbering.
    pub fn new(stores: Vec<Arc<dyn FeatureStore>>, instances: Instances) -> Self {
        Self { stores, instances }
    }

    fn target(&self, f: &FeatureName) -> Result<(&dyn FeatureStore, FeatureName), PortError> {
        match self.instances.route(f) {
            None => self
                .stores
                .first()
                .map(|s| (s.as_ref(), f.clone()))
                .ok_or_else(|| PortError::permanent("no host database configured")),
            Some(r) => self
                .stores
                .get(r.store)
                .map(|s| (s.as_ref(), r.feature.clone()))
                .ok_or_else(|| {
                    PortError::permanent(format!(
                        "no database for namespace {} of feature instance {f}",
                        r.namespace
                    ))
                }),
        }
    }

    fn host(&self) -> Result<&dyn FeatureStore, PortError> {
        self.stores
            .first()
            .map(|s| s.as_ref())
            .ok_or_else(|| PortError::permanent("no host database configured"))
    }
}

#[async_trait]
impl FeatureStore for RoutedStore {
    async fn feature_config(&self, f: &FeatureName) -> Result<Option<FeatureConfig>, PortError> {
        // Configuration is the host's, also for instances.
        let name = self
            .instances
            .route(f)
            .map_or_else(|| f.clone(), |r| r.feature);
        self.host()?.feature_config(&name).await
    }

    async fn feature_status(&self, f: &FeatureName) -> Result<FeatureStatus, PortError> {
        let (store, name) = self.target(f)?;
        store.feature_status(&name).await
    }

    async fn update_feature_status(
        &self,
        f: &FeatureName,
        u: &StatusUpdate,
    ) -> Result<(), PortError> {
        let (store, name) = self.target(f)?;
        store.update_feature_status(&name, u).await
    }

    async fn server_status(&self) -> Result<ServerStatus, PortError> {
        self.host()?.server_status().await
    }

    async fn desired_labels(&self) -> Result<NodeLabels, PortError> {
        self.host()?.desired_labels().await
    }

    async fn update_desired_labels(
        &self,
        set: &NodeLabels,
        remove: &[LabelKey],
    ) -> Result<(), PortError> {
        self.host()?.update_desired_labels(set, remove).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sonic_feature_core::model::RemoteState;
    use sonic_feature_core::ports::MockFeatureStore;

    fn f(s: &str) -> FeatureName {
        FeatureName::parse(s).unwrap()
    }

    #[test]
    fn instances_are_named_like_upstream_containers_and_units() {
        let i = Instances::default();
        let ns = Namespace::Asic("asic10".into());
        assert_eq!(i.register(2, &ns, &f("lldp")), Some(f("lldp10")));
        assert_eq!(i.unit(&f("lldp10")), "lldp@10");
        assert_eq!(i.unit(&f("lldp")), "lldp");
        assert_eq!(i.instances_of(&f("lldp")), vec![f("lldp10")]);
        assert_eq!(asic_suffix(&Namespace::Asic("red".into())), "red");
    }

    #[test]
    fn instance_status_updates_go_to_their_namespace_under_the_feature_name() {
        let i = Instances::default();
        i.register(1, &Namespace::Asic("asic0".into()), &f("snmp"));
        let host = MockFeatureStore::new();
        let mut asic = MockFeatureStore::new();
        asic.expect_update_feature_status()
            .withf(|name, _| name.as_str() == "snmp")
            .times(1)
            .returning(|_, _| Ok(()));
        let routed = RoutedStore::new(vec![Arc::new(host), Arc::new(asic)], i);
        let u = StatusUpdate::new().remote_state(RemoteState::None);
        futures::executor::block_on(routed.update_feature_status(&f("snmp0"), &u)).unwrap();
    }
}
