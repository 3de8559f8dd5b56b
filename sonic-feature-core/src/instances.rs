//! Multi-ASIC feature instances: the one rule that names them, for every frontend.
//!
//! On a multi-ASIC switch a feature may run once per ASIC. Such an *instance* is named as SONiC
//! names its container, the feature name followed by the ASIC number (`lldp0` is `lldp` on ASIC
//! 0); its systemd unit is `<feature>@<asic>` (`lldp@0`); the ASIC number of namespace `asicN`
//! is `N`. Its configuration is the host's CONFIG_DB `FEATURE|<feature>` (HLD "FEATURE config in
//! single host instance") and its status is STATE_DB `FEATURE|<feature>` of its ASIC's
//! namespace (HLD "FEATURE status ... distributed as per ASIC"); its node labels are those of the
//! instance name (`lldp0_enabled`), the ones its per-ASIC DaemonSet selects on.
//!
//! `ctrmgrd` learns an instance from the namespace whose STATE_DB carries it, so it knows both
//! halves. The `container` command only gets the name, and a name can be ambiguous: feature
//! names may end in digits, so `bgp12` is `bgp` on ASIC 12 or `bgp1` on ASIC 2. [`readings`]
//! lists every way to read a name and [`resolve`] picks one with the facts of the platform (its
//! ASICs and the configured features): a feature configured under the very name wins, then the
//! longest configured base on an ASIC the platform has.
//!
//! [`InstanceStore`] applies the "where" half of the rule to the [`FeatureStore`] port, so that
//! `ctrmgrd` and the `container` command read and write an instance in the same places.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{
    FeatureConfig, FeatureName, FeatureStatus, LabelKey, ModelError, NodeLabels, ServerStatus,
    StatusUpdate,
};
use crate::ports::{FeatureStore, PortError};

/// Why an ASIC number or an instance name could not be formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    /// Not 1 to [`AsicNumber::MAX_LEN`] decimal digits.
    #[error("invalid asic number {value:?}: expected 1 to 10 decimal digits")]
    AsicNumber {
        /// The rejected text.
        value: String,
    },
    /// A namespace name that does not end in digits (SONiC names them `asic0`, `asic1`, ...).
    #[error(
        "namespace {namespace:?} has no asic number: expected a name ending in digits such as asic0"
    )]
    Namespace {
        /// The namespace name.
        namespace: String,
    },
    /// The feature name followed by the ASIC number is not a feature name (too long, mostly).
    #[error("feature {feature} on asic {asic} has no valid instance name: {reason}")]
    Name {
        /// The feature.
        feature: FeatureName,
        /// The ASIC number.
        asic: AsicNumber,
        /// Why `<feature><asic>` is not a feature name.
        reason: ModelError,
    },
    /// `<feature><asic>` already names an instance of another feature on another ASIC (`bgp1`
    /// on asic 2 and `bgp` on asic 12 are both `bgp12`): neither may silently take the other's
    /// status and unit.
    #[error("feature {feature} on asic {asic} would be named {name}, which already names {other}")]
    Collision {
        /// The feature.
        feature: FeatureName,
        /// The ASIC number.
        asic: AsicNumber,
        /// The shared name.
        name: FeatureName,
        /// What the name already stands for.
        other: String,
    },
}

/// The number of an ASIC as instance and unit names carry it: 1 to 10 decimal digits, kept as
/// written (`asic01` gives `01`, so that names built from it read back the same).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsicNumber(String);

impl AsicNumber {
    /// Longest accepted number, in digits.
    pub const MAX_LEN: usize = 10;

    /// Parses decimal digits.
    pub fn parse(value: &str) -> Result<Self, InstanceError> {
        if value.is_empty()
            || value.len() > Self::MAX_LEN
            || !value.chars().all(|c| c.is_ascii_digit())
        {
            return Err(InstanceError::AsicNumber {
                value: value.to_owned(),
            });
        }
        Ok(Self(value.to_owned()))
    }

    /// The ASIC number of a namespace name: its trailing digits (`asic3` gives `3`).
    pub fn of_namespace(namespace: &str) -> Result<Self, InstanceError> {
        let digits = namespace
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .count();
        Self::parse(&namespace[namespace.len() - digits..]).map_err(|_| InstanceError::Namespace {
            namespace: namespace.to_owned(),
        })
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AsicNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A feature on one ASIC: valid by construction (its name is a feature name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instance {
    feature: FeatureName,
    asic: AsicNumber,
    name: FeatureName,
}

impl Instance {
    /// `feature` on ASIC `asic`; fails when `<feature><asic>` is not a feature name.
    pub fn new(feature: FeatureName, asic: AsicNumber) -> Result<Self, InstanceError> {
        match FeatureName::parse(&format!("{feature}{asic}")) {
            Ok(name) => Ok(Self {
                feature,
                asic,
                name,
            }),
            Err(reason) => Err(InstanceError::Name {
                feature,
                asic,
                reason,
            }),
        }
    }

    /// The feature (its CONFIG_DB key, and its STATE_DB key in the ASIC's namespace).
    pub fn feature(&self) -> &FeatureName {
        &self.feature
    }

    /// The ASIC number.
    pub fn asic(&self) -> &AsicNumber {
        &self.asic
    }

    /// The instance name: `<feature><asic>`, the container's name and the prefix of its labels.
    pub fn name(&self) -> &FeatureName {
        &self.name
    }

    /// The systemd unit: `<feature>@<asic>`.
    pub fn unit(&self) -> String {
        format!("{}@{}", self.feature, self.asic)
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (feature {} on asic {})",
            self.name, self.feature, self.asic
        )
    }
}

/// Every way to read `name` as an instance, longest feature first: `bgp12` gives `bgp1` on 2
/// and `bgp` on 12; a name without trailing digits gives none.
pub fn readings(name: &FeatureName) -> Vec<Instance> {
    let text = name.as_str();
    let digits = text.chars().rev().take_while(char::is_ascii_digit).count();
    (1..=digits.min(AsicNumber::MAX_LEN))
        .filter_map(|n| {
            let (base, asic) = text.split_at(text.len() - n);
            let feature = FeatureName::parse(base).ok()?;
            let asic = AsicNumber::parse(asic).ok()?;
            Instance::new(feature, asic).ok()
        })
        .collect()
}

/// The CONFIG_DB `FEATURE` keys [`resolve`] needs to know about for `name`: the name itself,
/// then the feature of every reading.
pub fn names_to_check(name: &FeatureName) -> Vec<FeatureName> {
    let mut out = vec![name.clone()];
    out.extend(readings(name).into_iter().map(|i| i.feature));
    out
}

/// What a name given to a command stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A feature configured under this very name: configuration and status under the name, in
    /// the host's databases.
    Feature,
    /// An instance on one of the platform's ASICs.
    Instance(Instance),
    /// Reads as an instance of a configured feature, but on no ASIC of this platform (`lldp0` on
    /// a single-ASIC switch). Upstream had no namespace support and ran such a name as a local
    /// feature with no configuration; it keeps that behaviour: default configuration, status
    /// under the name in the host's STATE_DB.
    Unplaced(Instance),
}

/// What `name` stands for on a platform with ASICs `asics`, given which of
/// [`names_to_check`]`(name)` CONFIG_DB has; `None` for an unknown feature.
pub fn resolve(
    name: &FeatureName,
    asics: &BTreeSet<AsicNumber>,
    configured: &BTreeSet<FeatureName>,
) -> Option<Target> {
    if configured.contains(name) {
        return Some(Target::Feature);
    }
    let known: Vec<Instance> = readings(name)
        .into_iter()
        .filter(|i| configured.contains(&i.feature))
        .collect();
    if let Some(placed) = known.iter().find(|i| asics.contains(&i.asic)) {
        return Some(Target::Instance(placed.clone()));
    }
    known.into_iter().next().map(Target::Unplaced)
}

/// The [`FeatureStore`] of one instance over the host's store and the store of its ASIC's
/// namespace: the instance's configuration is the host's entry of its feature, its status the
/// namespace's entry of its feature; every other feature, the server status and the node labels
/// are the host's (ctrmgrd and the master are the host's).
pub struct InstanceStore {
    host: Arc<dyn FeatureStore>,
    namespace: Arc<dyn FeatureStore>,
    instance: Instance,
}

impl fmt::Debug for InstanceStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceStore")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl InstanceStore {
    /// `instance` with its status in `namespace`, everything else in `host`.
    pub fn new(
        host: Arc<dyn FeatureStore>,
        namespace: Arc<dyn FeatureStore>,
        instance: Instance,
    ) -> Self {
        Self {
            host,
            namespace,
            instance,
        }
    }

    /// The instance.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// The store holding the status of `f`, and its key there.
    fn status_of<'a>(&'a self, f: &'a FeatureName) -> (&'a dyn FeatureStore, &'a FeatureName) {
        if f == self.instance.name() {
            (self.namespace.as_ref(), self.instance.feature())
        } else {
            (self.host.as_ref(), f)
        }
    }
}

#[async_trait]
impl FeatureStore for InstanceStore {
    async fn feature_config(&self, f: &FeatureName) -> Result<Option<FeatureConfig>, PortError> {
        let key = if f == self.instance.name() {
            self.instance.feature()
        } else {
            f
        };
        self.host.feature_config(key).await
    }

    async fn feature_status(&self, f: &FeatureName) -> Result<FeatureStatus, PortError> {
        let (store, key) = self.status_of(f);
        store.feature_status(key).await
    }

    async fn update_feature_status(
        &self,
        f: &FeatureName,
        u: &StatusUpdate,
    ) -> Result<(), PortError> {
        let (store, key) = self.status_of(f);
        store.update_feature_status(key, u).await
    }

    async fn server_status(&self) -> Result<ServerStatus, PortError> {
        self.host.server_status().await
    }

    async fn desired_labels(&self) -> Result<NodeLabels, PortError> {
        self.host.desired_labels().await
    }

    async fn update_desired_labels(
        &self,
        set: &NodeLabels,
        remove: &[LabelKey],
    ) -> Result<(), PortError> {
        self.host.update_desired_labels(set, remove).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> FeatureName {
        FeatureName::parse(s).unwrap()
    }

    fn a(s: &str) -> AsicNumber {
        AsicNumber::parse(s).unwrap()
    }

    fn i(feature: &str, asic: &str) -> Instance {
        Instance::new(f(feature), a(asic)).unwrap()
    }

    fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
        items.iter().cloned().collect()
    }

    #[test]
    fn instances_are_named_like_upstream_containers_and_units() {
        let lldp10 = i("lldp", "10");
        assert_eq!(lldp10.name(), &f("lldp10"));
        assert_eq!(lldp10.unit(), "lldp@10");
        assert_eq!(lldp10.feature(), &f("lldp"));
        assert_eq!(lldp10.asic().as_str(), "10");
    }

    #[test]
    fn asic_number_of_a_namespace_is_its_trailing_digits() {
        assert_eq!(AsicNumber::of_namespace("asic3").unwrap(), a("3"));
        assert_eq!(AsicNumber::of_namespace("asic12").unwrap(), a("12"));
        assert_eq!(AsicNumber::of_namespace("asic01").unwrap(), a("01"));
        for bad in ["red", "", "asic"] {
            let e = AsicNumber::of_namespace(bad).unwrap_err();
            assert_eq!(
                e,
                InstanceError::Namespace {
                    namespace: bad.into()
                }
            );
        }
        assert!(
            AsicNumber::of_namespace("asic12345678901")
                .unwrap_err()
                .to_string()
                .contains("asic12345678901")
        );
    }

    #[test]
    fn asic_numbers_are_decimal_digits_only() {
        for bad in ["", "1a", "-1", " 1", "12345678901"] {
            assert!(AsicNumber::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            AsicNumber::parse("x").unwrap_err().to_string(),
            "invalid asic number \"x\": expected 1 to 10 decimal digits"
        );
    }

    #[test]
    fn an_instance_name_longer_than_a_feature_name_is_refused() {
        let long = "a".repeat(FeatureName::MAX_LEN);
        let e = Instance::new(f(&long), a("0")).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "feature {long} on asic 0 has no valid instance name"
            )),
            "{e}"
        );
    }

    #[test]
    fn readings_list_every_split_longest_feature_first() {
        assert_eq!(readings(&f("lldp0")), vec![i("lldp", "0")]);
        assert_eq!(readings(&f("bgp12")), vec![i("bgp1", "2"), i("bgp", "12")]);
        assert!(readings(&f("snmp")).is_empty());
        // A feature whose own name ends in digits keeps them in its instances.
        assert_eq!(
            readings(&f("lldp4a990")),
            vec![i("lldp4a99", "0"), i("lldp4a9", "90"), i("lldp4a", "990")]
        );
        // A base ending in `_` is no feature name.
        assert!(readings(&f("dhcp_0")).is_empty());
        // All digits: the only features are shorter numbers.
        assert_eq!(readings(&f("123")), vec![i("12", "3"), i("1", "23")]);
        assert_eq!(
            names_to_check(&f("bgp12")),
            vec![f("bgp12"), f("bgp1"), f("bgp")]
        );
    }

    #[test]
    fn a_feature_configured_under_the_name_itself_wins() {
        let asics = set(&[a("0"), a("1")]);
        let configured = set(&[f("lldp0"), f("lldp")]);
        assert_eq!(
            resolve(&f("lldp0"), &asics, &configured),
            Some(Target::Feature)
        );
        assert_eq!(
            resolve(&f("lldp"), &asics, &configured),
            Some(Target::Feature)
        );
    }

    #[test]
    fn an_instance_resolves_to_the_configured_feature_on_an_asic_of_the_platform() {
        let asics = set(&[a("0"), a("1"), a("12")]);
        assert_eq!(
            resolve(&f("lldp1"), &asics, &set(&[f("lldp")])),
            Some(Target::Instance(i("lldp", "1")))
        );
        // Only `bgp` is configured: ASIC 12, not `bgp1` on ASIC 2.
        assert_eq!(
            resolve(&f("bgp12"), &asics, &set(&[f("bgp")])),
            Some(Target::Instance(i("bgp", "12")))
        );
        // Both are configured, ASIC 2 does not exist: `bgp` on ASIC 12.
        assert_eq!(
            resolve(&f("bgp12"), &asics, &set(&[f("bgp"), f("bgp1")])),
            Some(Target::Instance(i("bgp", "12")))
        );
        // Both exist: the longest feature.
        let more = set(&[a("2"), a("12")]);
        assert_eq!(
            resolve(&f("bgp12"), &more, &set(&[f("bgp"), f("bgp1")])),
            Some(Target::Instance(i("bgp1", "2")))
        );
    }

    #[test]
    fn an_instance_on_no_asic_of_the_platform_is_unplaced_and_an_unconfigured_one_unknown() {
        let single = BTreeSet::new();
        assert_eq!(
            resolve(&f("lldp0"), &single, &set(&[f("lldp")])),
            Some(Target::Unplaced(i("lldp", "0")))
        );
        assert_eq!(
            resolve(&f("lldp7"), &set(&[a("0")]), &set(&[f("lldp")])),
            Some(Target::Unplaced(i("lldp", "7")))
        );
        assert_eq!(
            resolve(&f("lldp0"), &set(&[a("0")]), &BTreeSet::new()),
            None
        );
        assert_eq!(
            resolve(&f("snmp"), &set(&[a("0")]), &set(&[f("lldp")])),
            None
        );
    }

    #[test]
    fn an_instance_store_reads_config_from_the_host_and_status_from_its_namespace() {
        use crate::model::{LabelValue, RemoteState, SetOwner};
        use crate::ports::MockFeatureStore;
        let mut host = MockFeatureStore::new();
        host.expect_feature_config()
            .withf(|name| name.as_str() == "lldp")
            .times(1)
            .returning(|_| {
                Ok(Some(FeatureConfig {
                    set_owner: SetOwner::Kube,
                    ..FeatureConfig::default()
                }))
            });
        host.expect_feature_status()
            .withf(|name| name.as_str() == "snmp")
            .times(1)
            .returning(|_| Ok(FeatureStatus::default()));
        host.expect_update_desired_labels()
            .withf(|set, remove| {
                set.keys().map(ToString::to_string).collect::<Vec<_>>() == ["lldp0_enabled"]
                    && remove.is_empty()
            })
            .times(1)
            .returning(|_, _| Ok(()));
        let mut asic = MockFeatureStore::new();
        asic.expect_update_feature_status()
            .withf(|name, u| {
                name.as_str() == "lldp"
                    && u == &StatusUpdate::new().remote_state(RemoteState::Ready)
            })
            .times(1)
            .returning(|_, _| Ok(()));
        asic.expect_feature_status()
            .withf(|name| name.as_str() == "lldp")
            .times(1)
            .returning(|_| Ok(FeatureStatus::default()));
        let store = InstanceStore::new(Arc::new(host), Arc::new(asic), i("lldp", "0"));
        futures::executor::block_on(async {
            let config = store.feature_config(&f("lldp0")).await.unwrap().unwrap();
            assert_eq!(config.set_owner, SetOwner::Kube);
            store.feature_status(&f("lldp0")).await.unwrap();
            let u = StatusUpdate::new().remote_state(RemoteState::Ready);
            store.update_feature_status(&f("lldp0"), &u).await.unwrap();
            // Another feature is the host's.
            store.feature_status(&f("snmp")).await.unwrap();
            let set = [(
                LabelKey::feature_enabled(&f("lldp0")),
                LabelValue::from_bool(true),
            )]
            .into_iter()
            .collect();
            store.update_desired_labels(&set, &[]).await.unwrap();
        });
    }

    fn feature_name() -> impl Strategy<Value = FeatureName> {
        "[A-Za-z0-9][A-Za-z0-9_.-]{0,16}[A-Za-z0-9]|[A-Za-z0-9]"
            .prop_map(|s| FeatureName::parse(&s).unwrap())
    }

    proptest! {
        #[test]
        fn an_instance_name_reads_back_as_its_feature_and_asic(
            feature in feature_name(),
            asic in "[0-9]{1,4}",
            other_asics in proptest::collection::btree_set("[0-9]{1,4}", 0..4),
        ) {
            let asic = AsicNumber::parse(&asic).unwrap();
            let instance = Instance::new(feature.clone(), asic.clone()).unwrap();
            let name = instance.name().clone();
            prop_assert_eq!(name.as_str(), format!("{feature}{asic}"));
            prop_assert_eq!(instance.unit(), format!("{feature}@{asic}"));
            prop_assert!(readings(&name).contains(&instance));
            let mut asics: BTreeSet<AsicNumber> =
                other_asics.iter().map(|s| AsicNumber::parse(s).unwrap()).collect();
            asics.insert(asic.clone());
            let configured: BTreeSet<FeatureName> = [feature.clone()].into();
            prop_assert_eq!(
                resolve(&name, &asics, &configured),
                Some(Target::Instance(instance.clone()))
            );
            // The namespace `asic<N>` gives the same number back.
            prop_assert_eq!(AsicNumber::of_namespace(&format!("asic{asic}")).unwrap(), asic);
        }

        #[test]
        fn every_reading_rebuilds_the_name(feature in feature_name()) {
            for r in readings(&feature) {
                prop_assert_eq!(r.name(), &feature);
                prop_assert_eq!(
                    format!("{}{}", r.feature(), r.asic()),
                    feature.as_str().to_owned()
                );
            }
        }
    }
}
