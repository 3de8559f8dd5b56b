//! Multi-ASIC plumbing: the registry of the feature instances ctrmgrd has seen and the
//! `FeatureStore` that routes an instance's reads and writes to its namespace.
//!
//! How an instance is named, which unit it has and which namespace's STATE_DB holds its status
//! is the core's rule ([`sonic_feature_core::instances`]); this module only applies it: the
//! manager decides about an instance (`lldp0`) as about any feature.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use sonic_db::Namespace;
use sonic_feature_core::instances::{AsicNumber, Instance, InstanceError, InstanceStore};
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
    /// The feature on its ASIC (names, unit).
    pub instance: Instance,
}

/// The instances seen so far, shared by the daemon (which registers them) and the routed ports.
#[derive(Debug, Default, Clone)]
pub struct Instances {
    routes: Arc<RwLock<BTreeMap<FeatureName, Route>>>,
}

impl Instances {
    /// Registers the instance of `feature` in ASIC namespace `namespace` (store index `store`)
    /// and returns its name; fails when the namespace has no ASIC number, the combined name is
    /// not a valid feature name, or it already names an instance of another feature or ASIC
    /// (the first registration keeps it).
    pub fn register(
        &self,
        store: usize,
        namespace: &Namespace,
        feature: &FeatureName,
    ) -> Result<FeatureName, InstanceError> {
        let asic = AsicNumber::of_namespace(namespace.name())?;
        let instance = Instance::new(feature.clone(), asic)?;
        let name = instance.name().clone();
        let route = Route {
            store,
            namespace: namespace.clone(),
            instance,
        };
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = routes.get(&name)
            && existing.instance != route.instance
        {
            return Err(InstanceError::Collision {
                feature: feature.clone(),
                asic: route.instance.asic().clone(),
                name,
                other: format!(
                    "feature {} on asic {}",
                    existing.instance.feature(),
                    existing.instance.asic()
                ),
            });
        }
        routes.insert(name.clone(), route);
        Ok(name)
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
            .filter(|(_, r)| r.instance.feature() == feature)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The systemd unit of a feature or instance (`lldp@0` for instance `lldp0`).
    pub fn unit(&self, name: &FeatureName) -> String {
        match self.route(name) {
            Some(r) => r.instance.unit(),
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

    /// The store of `f`: the host's, or for an instance the core's [`InstanceStore`] over the
    /// host and the instance's namespace (the one rule of where an instance lives).
    fn store_for(&self, f: &FeatureName) -> Result<Arc<dyn FeatureStore>, PortError> {
        let host = self.host()?.clone();
        let Some(r) = self.instances.route(f) else {
            return Ok(host);
        };
        let namespace = self.stores.get(r.store).cloned().ok_or_else(|| {
            PortError::permanent(format!(
                "no database for namespace {} of feature instance {f}",
                r.namespace
            ))
        })?;
        Ok(Arc::new(InstanceStore::new(host, namespace, r.instance)))
    }

    fn host(&self) -> Result<&Arc<dyn FeatureStore>, PortError> {
        self.stores
            .first()
            .ok_or_else(|| PortError::permanent("no host database configured"))
    }
}

#[async_trait]
impl FeatureStore for RoutedStore {
    async fn feature_config(&self, f: &FeatureName) -> Result<Option<FeatureConfig>, PortError> {
        self.store_for(f)?.feature_config(f).await
    }

    async fn feature_status(&self, f: &FeatureName) -> Result<FeatureStatus, PortError> {
        self.store_for(f)?.feature_status(f).await
    }

    async fn update_feature_status(
        &self,
        f: &FeatureName,
        u: &StatusUpdate,
    ) -> Result<(), PortError> {
        self.store_for(f)?.update_feature_status(f, u).await
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
    fn registered_instances_get_the_core_names_and_units() {
        let i = Instances::default();
        let ns = Namespace::Asic("asic10".into());
        assert_eq!(i.register(2, &ns, &f("lldp")).unwrap(), f("lldp10"));
        assert_eq!(i.unit(&f("lldp10")), "lldp@10");
        assert_eq!(i.unit(&f("lldp")), "lldp");
        assert_eq!(i.instances_of(&f("lldp")), vec![f("lldp10")]);
        let r = i.route(&f("lldp10")).unwrap();
        assert_eq!((r.store, r.namespace), (2, ns));
        // A namespace without an ASIC number names no instance (and registers nothing).
        let e = i
            .register(3, &Namespace::Asic("red".into()), &f("snmp"))
            .unwrap_err();
        assert!(e.to_string().contains("\"red\""), "{e}");
        assert!(i.instances_of(&f("snmp")).is_empty());
    }

    #[test]
    fn an_instance_name_taken_by_another_feature_and_asic_is_refused_and_the_first_keeps_it() {
        let instances = Instances::default();
        let bgp1_on_2 = instances
            .register(2, &Namespace::Asic("asic2".into()), &f("bgp1"))
            .unwrap();
        assert_eq!(bgp1_on_2.as_str(), "bgp12");
        let err = instances
            .register(12, &Namespace::Asic("asic12".into()), &f("bgp"))
            .unwrap_err();
        assert!(matches!(err, InstanceError::Collision { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "feature bgp on asic 12 would be named bgp12, which already names feature bgp1 on asic 2"
        );
        assert_eq!(instances.unit(&f("bgp12")), "bgp1@2");
        // The same instance again is no collision.
        assert_eq!(
            instances
                .register(2, &Namespace::Asic("asic2".into()), &f("bgp1"))
                .unwrap(),
            bgp1_on_2
        );
    }

    #[test]
    fn instance_status_goes_to_its_namespace_and_config_comes_from_the_host() {
        let i = Instances::default();
        i.register(1, &Namespace::Asic("asic0".into()), &f("snmp"))
            .unwrap();
        let mut host = MockFeatureStore::new();
        host.expect_feature_config()
            .withf(|name| name.as_str() == "snmp")
            .times(1)
            .returning(|_| Ok(None));
        let mut asic = MockFeatureStore::new();
        asic.expect_update_feature_status()
            .withf(|name, _| name.as_str() == "snmp")
            .times(1)
            .returning(|_, _| Ok(()));
        let routed = RoutedStore::new(vec![Arc::new(host), Arc::new(asic)], i);
        let u = StatusUpdate::new().remote_state(RemoteState::None);
        futures::executor::block_on(routed.update_feature_status(&f("snmp0"), &u)).unwrap();
        futures::executor::block_on(routed.feature_config(&f("snmp0"))).unwrap();
    }
}
