//! What `config feature install` installs: a validated [`ServiceSpec`], built from the command
//! line (HLD proposal 1) or read from a declarative YAML file (HLD proposal 2), and the CONFIG_DB
//! `FEATURE` entry that goes with it.
//!
//! The YAML file (keys in kebab-case, unknown keys refused so a typo is never silently ignored):
//!
//! ```yaml
//! name: telemetry2              # the feature (core FeatureName rules)
//! requires: [swss, database]    # Requires= + After=; absent means [swss], [] means none
//! required-by: [bgp]            # services that depend on this one: Before= and RequiredBy=
//! pre-start:  [[/usr/bin/logger, -t, telemetry2, starting]]   # argv lists, absolute program
//! post-start: []
//! pre-stop:   []
//! post-stop:  []
//! warm-reboot-prepare: [[/usr/bin/telemetry2-save, --warm]]    # `<name>.sh prepare-warm`
//! fast-reboot-prepare: []                                      # `<name>.sh prepare-fast`
//! runtime: { ... }              # for sonic-manifest (sonic-kube-adapter), not read here
//! ```
//!
//! `required-by` is the HLD's "one or more other services depend on this feature". It is
//! expressed from this unit's side only, so no other unit file is touched: `Before=` orders this
//! service first, and `RequiredBy=` in `[Install]` makes `systemctl enable` (which featured runs
//! when the feature's `state` is `enabled`) add this unit to the dependent's `.requires/`
//! directory — the dependent then requires this service as if its own unit said so.

use std::path::Path;

use serde::Deserialize;
use sonic_db::Fields;
use sonic_db::schema::feature_config as feature;
use sonic_feature_core::model::{AdminState, FeatureConfig, FeatureName, SetOwner};

use crate::install::InstallError;
use crate::install::validate::{Argv, UnitName};

/// The service required when none is given (HLD: "it would default to swss").
pub const DEFAULT_REQUIRED: &str = "swss";

/// Host commands run by the script around the `container` calls, and before reboots.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hooks {
    /// Before `container start` (script action `start`, the unit's `ExecStartPre=`).
    pub pre_start: Vec<Argv>,
    /// After `container start` returned.
    pub post_start: Vec<Argv>,
    /// Before `container stop` (script action `stop`, the unit's `ExecStop=`).
    pub pre_stop: Vec<Argv>,
    /// After `container stop` returned.
    pub post_stop: Vec<Argv>,
    /// Script action `prepare-warm`: get the feature ready for a warm reboot.
    pub warm_reboot_prepare: Vec<Argv>,
    /// Script action `prepare-fast`: get the feature ready for a fast reboot.
    pub fast_reboot_prepare: Vec<Argv>,
}

/// Everything needed to generate a feature's unit and script, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The feature; the unit is `<name>.service`, the script `<name>.sh`.
    pub name: FeatureName,
    /// Units this one requires and starts after.
    pub requires: Vec<UnitName>,
    /// Units that require this one and start after it.
    pub required_by: Vec<UnitName>,
    /// Commands around start and stop and before reboots.
    pub hooks: Hooks,
}

/// The YAML form, before validation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawSpec {
    name: String,
    requires: Option<Vec<String>>,
    #[serde(default)]
    required_by: Vec<String>,
    #[serde(default)]
    pre_start: Vec<Vec<String>>,
    #[serde(default)]
    post_start: Vec<Vec<String>>,
    #[serde(default)]
    pre_stop: Vec<Vec<String>>,
    #[serde(default)]
    post_stop: Vec<Vec<String>>,
    #[serde(default)]
    warm_reboot_prepare: Vec<Vec<String>>,
    #[serde(default)]
    fast_reboot_prepare: Vec<Vec<String>>,
    /// Read by sonic-manifest; accepted here so one file describes the whole feature.
    #[serde(default, rename = "runtime")]
    _runtime: Option<serde::de::IgnoredAny>,
}

fn parse_name(value: &str) -> Result<FeatureName, InstallError> {
    FeatureName::parse(value).map_err(|source| InstallError::FeatureName {
        field: "name".to_owned(),
        source,
    })
}

fn parse_units(field: &str, values: &[String]) -> Result<Vec<UnitName>, InstallError> {
    let mut out: Vec<UnitName> = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let unit = UnitName::parse(&format!("{field}[{i}]"), v)?;
        // A repeated name would only repeat a line; keep the first.
        if !out.contains(&unit) {
            out.push(unit);
        }
    }
    Ok(out)
}

fn parse_commands(field: &str, values: &[Vec<String>]) -> Result<Vec<Argv>, InstallError> {
    values
        .iter()
        .enumerate()
        .map(|(i, argv)| Argv::parse(&format!("{field}[{i}]"), argv))
        .collect()
}

impl ServiceSpec {
    /// HLD proposal 1: `config feature install NAME [REQUIRED_SERVICE ...]`; no required service
    /// given means `swss`.
    pub fn simple(name: &str, required: &[String]) -> Result<Self, InstallError> {
        let name = parse_name(name)?;
        let requires = if required.is_empty() {
            parse_units("requires", &[DEFAULT_REQUIRED.to_owned()])?
        } else {
            parse_units("requires", required)?
        };
        Ok(Self {
            name,
            requires,
            required_by: Vec::new(),
            hooks: Hooks::default(),
        })
    }

    /// HLD proposal 2: a spec from YAML text; `origin` names the file in errors.
    pub fn from_yaml(origin: &Path, text: &str) -> Result<Self, InstallError> {
        let raw: RawSpec =
            serde_yaml::from_str(text).map_err(|source| InstallError::ParseSpec {
                path: origin.to_path_buf(),
                source,
            })?;
        let name = parse_name(&raw.name)?;
        let requires = match &raw.requires {
            None => parse_units("requires", &[DEFAULT_REQUIRED.to_owned()])?,
            Some(list) => parse_units("requires", list)?,
        };
        let required_by = parse_units("required-by", &raw.required_by)?;
        if let Some(unit) = required_by.iter().find(|u| requires.contains(u)) {
            return Err(InstallError::Invalid {
                field: "required-by".to_owned(),
                value: unit.to_string(),
                reason: "a service cannot be both required by and required for this feature \
                         (dependency cycle)",
            });
        }
        let hooks = Hooks {
            pre_start: parse_commands("pre-start", &raw.pre_start)?,
            post_start: parse_commands("post-start", &raw.post_start)?,
            pre_stop: parse_commands("pre-stop", &raw.pre_stop)?,
            post_stop: parse_commands("post-stop", &raw.post_stop)?,
            warm_reboot_prepare: parse_commands("warm-reboot-prepare", &raw.warm_reboot_prepare)?,
            fast_reboot_prepare: parse_commands("fast-reboot-prepare", &raw.fast_reboot_prepare)?,
        };
        Ok(Self {
            name,
            requires,
            required_by,
            hooks,
        })
    }

    /// HLD proposal 2: a spec from a YAML file.
    pub fn from_file(path: &Path) -> Result<Self, InstallError> {
        let text = std::fs::read_to_string(path).map_err(|source| InstallError::ReadSpec {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(path, &text)
    }
}

/// The CONFIG_DB `FEATURE|<name>` configuration of an installed feature: owned by kube, no
/// fallback (there is no local image to fall back to), enabled, restarted automatically.
pub fn feature_entry() -> FeatureConfig {
    FeatureConfig {
        set_owner: SetOwner::Kube,
        fallback: false,
        state: Some(AdminState::Enabled),
        auto_restart: Some(AdminState::Enabled),
        kube_failure_detection: None,
    }
}

/// [`feature_entry`] as the fields to HSET into CONFIG_DB `FEATURE|<name>` (other fields of an
/// existing entry are kept).
pub fn feature_entry_fields() -> Fields {
    let cfg = feature_entry();
    let mut fields = Fields::new();
    fields.insert(
        feature::SET_OWNER.to_owned(),
        cfg.set_owner.as_str().to_owned(),
    );
    fields.insert(
        feature::NO_FALLBACK_TO_LOCAL.to_owned(),
        (!cfg.fallback).to_string(),
    );
    if let Some(state) = &cfg.state {
        fields.insert(feature::STATE.to_owned(), state.as_str().to_owned());
    }
    if let Some(auto_restart) = &cfg.auto_restart {
        fields.insert(
            feature::AUTO_RESTART.to_owned(),
            auto_restart.as_str().to_owned(),
        );
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_spec_requires_swss_when_no_service_is_given() {
        let spec = ServiceSpec::simple("snmp", &[]).unwrap();
        let units: Vec<_> = spec.requires.iter().map(UnitName::as_str).collect();
        assert_eq!(units, ["swss.service"]);
    }

    #[test]
    fn feature_entry_is_kube_owned_without_fallback_and_enabled() {
        let f = feature_entry_fields();
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("auto_restart", "enabled"),
                ("no_fallback_to_local", "true"),
                ("set_owner", "kube"),
                ("state", "enabled"),
            ]
        );
    }

    #[test]
    fn unknown_spec_keys_are_refused_with_the_file_name() {
        let e = ServiceSpec::from_yaml(Path::new("x.yaml"), "name: a\npre_start: []\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid feature spec x.yaml: unknown field `pre_start`"),
            "{e}"
        );
    }

    #[test]
    fn a_service_both_required_and_requiring_is_a_cycle() {
        let e =
            ServiceSpec::from_yaml(Path::new("x"), "name: a\nrequires: [b]\nrequired-by: [b]\n")
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("field required-by") && e.contains("cycle"),
            "{e}"
        );
    }
}
