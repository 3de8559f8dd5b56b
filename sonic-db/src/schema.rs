//! The only place that knows table, key and field names, and the conversions between field maps
//! and the core's typed records.
//!
//! Parsing is strict where the core needs a real value (a malformed `set_owner`, `port` or
//! boolean is an error naming database, key, field and value) and lenient where upstream is
//! (absent or empty fields take their documented defaults). Rendering writes the spellings
//! upstream tools read (`true`/`false`, lower-case enums).

use std::collections::BTreeMap;

use sonic_feature_core::labels::LabelJournal;
use sonic_feature_core::manager::{Clocks, NodeInfo};
use sonic_feature_core::model::{
    AdminState, CurrentOwner, FeatureConfig, FeatureName, FeatureStatus, ImageMgmt,
    ImageMgmtOverride, LabelKey, LabelValue, ModelError, NodeLabels, RemoteState, ServerConfig,
    ServerStatus, SetOwner, StatusUpdate, SystemState, Version, parse_bool, parse_duration,
};

use crate::db::Fields;

/// Database names as in `database_config.json`.
pub mod dbs {
    /// Configuration database.
    pub const CONFIG_DB: &str = "CONFIG_DB";
    /// State database.
    pub const STATE_DB: &str = "STATE_DB";
}

/// CONFIG_DB `FEATURE|<feature>`.
pub mod feature_config {
    /// Table name.
    pub const TABLE: &str = "FEATURE";
    /// `local` / `kube`; absent or empty means local.
    pub const SET_OWNER: &str = "set_owner";
    /// `true` / `false`; absent or empty means false (fallback allowed).
    pub const NO_FALLBACK_TO_LOCAL: &str = "no_fallback_to_local";
    /// Admin state (`enabled`, `disabled`, `always_enabled`, ... or a template).
    pub const STATE: &str = "state";
    /// Auto-restart setting, same values as `state`.
    pub const AUTO_RESTART: &str = "auto_restart";
    /// How long a kube-owned feature may be down before it is failed: whole minutes (HLD) or a
    /// number with a unit `s`, `m`, `h`, `d` (`30s`); 0 disables.
    pub const KUBE_FAILURE_DETECTION: &str = "kube_failure_detection";
}

/// STATE_DB `FEATURE|<feature>`.
pub mod feature_status {
    /// Table name.
    pub const TABLE: &str = "FEATURE";
    /// `up` / `down`.
    pub const SYSTEM_STATE: &str = "system_state";
    /// `none` / `local` / `kube`.
    pub const CURRENT_OWNER: &str = "current_owner";
    /// Docker id or name of the running container, or empty.
    pub const CONTAINER_ID: &str = "container_id";
    /// `none` / `pending` / `ready` / `running` / `stopped`.
    pub const REMOTE_STATE: &str = "remote_state";
    /// Version of the running or last started image.
    pub const CONTAINER_VERSION: &str = "container_version";
    /// Last version deemed good.
    pub const CONTAINER_STABLE_VERSION: &str = "container_stable_version";
    /// Previous good version.
    pub const CONTAINER_LAST_VERSION: &str = "container_last_version";
    /// `%Y-%m-%d %H:%M:%S` of the last update.
    pub const UPDATE_TIME: &str = "update_time";
    /// Written by featured (`enabled`/`disabled`/`failed`); not part of [`super::FeatureStatus`].
    pub const STATE: &str = "state";
}

/// CONFIG_DB `KUBERNETES_MASTER|SERVER`.
pub mod server_config {
    /// Table name.
    pub const TABLE: &str = "KUBERNETES_MASTER";
    /// The only key.
    pub const KEY: &str = "SERVER";
    /// Master address.
    pub const IP: &str = "ip";
    /// API server port (default 6443).
    pub const PORT: &str = "port";
    /// `true` / `false` (any case): skip TLS verification.
    pub const INSECURE: &str = "insecure";
    /// `true` / `false` (any case): do not join.
    pub const DISABLE: &str = "disable";
}

/// STATE_DB `KUBERNETES_MASTER|SERVER`.
pub mod server_status {
    /// Table name.
    pub const TABLE: &str = "KUBERNETES_MASTER";
    /// The only key.
    pub const KEY: &str = "SERVER";
    /// `true` / `false`.
    pub const CONNECTED: &str = "connected";
    /// Address joined.
    pub const IP: &str = "ip";
    /// Port joined.
    pub const PORT: &str = "port";
    /// `%Y-%m-%d %H:%M:%S` of the last change.
    pub const UPDATE_TIME: &str = "update_time";
    /// Why the last join or node label push failed (absent once it works); not upstream.
    pub const LAST_ERROR: &str = "last_error";
}

/// STATE_DB `KUBERNETES_MASTER|REQUEST`: a join or reset request from `config kubernetes
/// join|reset` for the daemon, which acts on it and deletes the key.
pub mod kube_request {
    /// Table name.
    pub const TABLE: &str = "KUBERNETES_MASTER";
    /// The only key.
    pub const KEY: &str = "REQUEST";
    /// `join` or `reset`.
    pub const ACTION: &str = "action";
    /// `true` / `false`.
    pub const FORCE: &str = "force";
    /// Unique per request, so that repeating a request is a change a subscription delivers
    /// (subscriptions drop writes that change nothing).
    pub const REQUEST_ID: &str = "request_id";
}

/// STATE_DB `KUBE_LABELS|SET`: one field per desired node label.
pub mod kube_labels {
    /// Table name.
    pub const TABLE: &str = "KUBE_LABELS";
    /// The only key.
    pub const KEY: &str = "SET";
}

/// CONFIG_DB `DEVICE_METADATA|localhost`.
pub mod device_metadata {
    /// Table name.
    pub const TABLE: &str = "DEVICE_METADATA";
    /// The only key.
    pub const KEY: &str = "localhost";
    /// Deployment type (label `deployment_type`).
    pub const TYPE: &str = "type";
    /// HWSKU (label `hwsku`).
    pub const HWSKU: &str = "hwsku";
    /// Platform (label `worker.sonic/platform`).
    pub const PLATFORM: &str = "platform";
}

/// CONFIG_DB `IMAGE_MGMT|GLOBAL` and `IMAGE_MGMT|<feature>` (HLD "Image management
/// configuration").
pub mod image_mgmt {
    /// Table name.
    pub const TABLE: &str = "IMAGE_MGMT";
    /// The key of the global settings; any other key is a feature name.
    pub const GLOBAL_KEY: &str = "GLOBAL";
    /// `true` / `false`: no image management. Spelled with a capital D in the HLD; the
    /// lower-case spelling is accepted too.
    pub const DISABLE: &str = "Disable";
    /// `<N>[s|m|h|d]`.
    pub const ACTIVE_TIME_TO_MARK_GOOD: &str = "active_time_to_mark_good";
    /// `true` / `false`.
    pub const PURGE_OLDER_IMAGE: &str = "purge_older_image";
    /// `true` / `false`.
    pub const TAG_NEW_AS_LOCAL: &str = "tag_new_as_local";
    /// `true` / `false`.
    pub const PURGE_LOCAL_COPY: &str = "purge_local_copy";
}

/// STATE_DB `CTRMGRD_STATE|LABEL_JOURNAL`: the manager's label journal as JSON, so that label
/// changes not yet pushed to the master survive a daemon restart. A table of our own (not
/// `KUBE_LABELS`) so that subscribers of `KUBE_LABELS` never see it.
pub mod label_journal {
    /// Table name.
    pub const TABLE: &str = "CTRMGRD_STATE";
    /// The only key.
    pub const KEY: &str = "LABEL_JOURNAL";
    /// The journal as JSON.
    pub const JSON: &str = "json";
}

/// STATE_DB `CTRMGRD_STATE|CLOCKS`: the manager's clocks as JSON (times on ctrmgrd's clock,
/// which counts from the switch's boot), so that a restarted daemon carries them on.
pub mod clocks {
    /// Table name.
    pub const TABLE: &str = "CTRMGRD_STATE";
    /// The only key.
    pub const KEY: &str = "CLOCKS";
    /// The clocks as JSON.
    pub const JSON: &str = "json";
}

/// STATE_DB `CTRMGRD_STATE|PENDING_RESTARTS`: one field per feature (or instance) whose
/// restart ctrmgrd started and has not seen succeed, valued with the owner it switches to
/// (`local` / `kube`), so that a failed restart is retried also after a daemon restart.
pub mod pending_restarts {
    /// Table name.
    pub const TABLE: &str = "CTRMGRD_STATE";
    /// The only key.
    pub const KEY: &str = "PENDING_RESTARTS";
}

/// A field or entry whose value cannot be turned into the core's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A field value the model rejects.
    #[error("{db} {key} field {field}: {reason}")]
    Field {
        /// Database, with namespace when not the host (`CONFIG_DB`).
        db: String,
        /// Redis key (`FEATURE|snmp`).
        key: String,
        /// Field name.
        field: String,
        /// What the model said, naming the value.
        reason: ModelError,
    },
    /// A key that is not a valid feature name (`IMAGE_MGMT|<feature>`, `FEATURE|<feature>`).
    #[error("{db} {key}: {reason}")]
    Key {
        /// Database.
        db: String,
        /// Redis key.
        key: String,
        /// What the model said.
        reason: ModelError,
    },
    /// The stored label journal is not valid JSON of the expected shape.
    #[error("{db} {key} field {field}: invalid label journal {value:?}: {reason}")]
    Journal {
        /// Database.
        db: String,
        /// Redis key.
        key: String,
        /// Field name.
        field: String,
        /// The stored text (cut to 200 characters).
        value: String,
        /// What serde_json said.
        reason: String,
    },
    /// Other stored JSON of ours (the clocks) that is not of the expected shape.
    #[error("{db} {key} field json: invalid {what} {value:?}: {reason}")]
    Json {
        /// Database.
        db: String,
        /// Redis key (its field `json` holds the text).
        key: String,
        /// What the JSON holds.
        what: &'static str,
        /// The stored text (cut to 200 characters).
        value: String,
        /// What serde_json said.
        reason: String,
    },
}

/// Where a field map was read from, for error messages: the database label and the Redis key.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Database name as shown in errors (`CONFIG_DB`, `STATE_DB of namespace asic0`).
    pub db: &'a str,
    /// Table name.
    pub table: &'a str,
    /// Key within the table.
    pub key: &'a str,
}

impl Origin<'_> {
    fn redis_key(&self) -> String {
        format!("{}|{}", self.table, self.key)
    }

    fn field_err(&self, field: &str) -> impl FnOnce(ModelError) -> SchemaError {
        let (db, key, field) = (self.db.to_string(), self.redis_key(), field.to_string());
        move |reason| SchemaError::Field {
            db,
            key,
            field,
            reason,
        }
    }
}

fn get<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.get(name).map(String::as_str)
}

/// Parses an optional boolean field: absent or empty gives `default`.
fn bool_field(
    o: &Origin<'_>,
    fields: &Fields,
    name: &str,
    default: bool,
) -> Result<bool, SchemaError> {
    match get(fields, name).map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => parse_bool(v).map_err(o.field_err(name)),
    }
}

fn opt_bool_field(
    o: &Origin<'_>,
    fields: &Fields,
    name: &str,
) -> Result<Option<bool>, SchemaError> {
    match get(fields, name).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => parse_bool(v).map(Some).map_err(o.field_err(name)),
    }
}

fn version_field(
    o: &Origin<'_>,
    fields: &Fields,
    name: &str,
) -> Result<Option<Version>, SchemaError> {
    Version::parse_field(get(fields, name)).map_err(o.field_err(name))
}

fn bool_text(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// CONFIG_DB `FEATURE|<f>` fields to [`FeatureConfig`].
pub fn parse_feature_config(o: &Origin<'_>, fields: &Fields) -> Result<FeatureConfig, SchemaError> {
    use feature_config as f;
    Ok(FeatureConfig {
        set_owner: SetOwner::parse(get(fields, f::SET_OWNER).unwrap_or(""))
            .map_err(o.field_err(f::SET_OWNER))?,
        fallback: FeatureConfig::parse_fallback(get(fields, f::NO_FALLBACK_TO_LOCAL))
            .map_err(o.field_err(f::NO_FALLBACK_TO_LOCAL))?,
        state: get(fields, f::STATE).map(AdminState::parse),
        auto_restart: get(fields, f::AUTO_RESTART).map(AdminState::parse),
        kube_failure_detection: FeatureConfig::parse_failure_detection_duration(get(
            fields,
            f::KUBE_FAILURE_DETECTION,
        ))
        .map_err(o.field_err(f::KUBE_FAILURE_DETECTION))?,
    })
}

/// [`FeatureConfig`] to CONFIG_DB `FEATURE|<f>` fields (for tests, fakes and the CLI).
pub fn feature_config_fields(c: &FeatureConfig) -> Fields {
    use feature_config as f;
    let mut out = Fields::new();
    out.insert(f::SET_OWNER.into(), c.set_owner.as_str().into());
    out.insert(f::NO_FALLBACK_TO_LOCAL.into(), bool_text(!c.fallback));
    if let Some(s) = &c.state {
        out.insert(f::STATE.into(), s.as_str().into());
    }
    if let Some(s) = &c.auto_restart {
        out.insert(f::AUTO_RESTART.into(), s.as_str().into());
    }
    if let Some(d) = c.kube_failure_detection {
        out.insert(
            f::KUBE_FAILURE_DETECTION.into(),
            FeatureConfig::render_failure_detection(d),
        );
    }
    out
}

/// STATE_DB `FEATURE|<f>` fields to [`FeatureStatus`]; absent fields take their defaults.
pub fn parse_feature_status(o: &Origin<'_>, fields: &Fields) -> Result<FeatureStatus, SchemaError> {
    use feature_status as f;
    Ok(FeatureStatus {
        system_state: SystemState::parse_field(get(fields, f::SYSTEM_STATE))
            .map_err(o.field_err(f::SYSTEM_STATE))?,
        current_owner: CurrentOwner::parse(get(fields, f::CURRENT_OWNER).unwrap_or(""))
            .map_err(o.field_err(f::CURRENT_OWNER))?,
        container_id: get(fields, f::CONTAINER_ID).map(str::to_string),
        remote_state: RemoteState::parse(get(fields, f::REMOTE_STATE).unwrap_or(""))
            .map_err(o.field_err(f::REMOTE_STATE))?,
        container_version: version_field(o, fields, f::CONTAINER_VERSION)?,
        container_stable_version: version_field(o, fields, f::CONTAINER_STABLE_VERSION)?,
        container_last_version: version_field(o, fields, f::CONTAINER_LAST_VERSION)?,
        update_time: get(fields, f::UPDATE_TIME).map(str::to_string),
    })
}

/// [`FeatureStatus`] to STATE_DB `FEATURE|<f>` fields; `None` fields are left out.
pub fn feature_status_fields(s: &FeatureStatus) -> Fields {
    let update = StatusUpdate {
        system_state: s.system_state,
        current_owner: Some(s.current_owner),
        container_id: s.container_id.clone(),
        remote_state: Some(s.remote_state),
        container_version: s.container_version.clone(),
        container_stable_version: s.container_stable_version.clone(),
        container_last_version: s.container_last_version.clone(),
        update_time: s.update_time.clone(),
    };
    status_update_fields(&update)
}

/// The fields a [`StatusUpdate`] writes (one HSET).
pub fn status_update_fields(u: &StatusUpdate) -> Fields {
    use feature_status as f;
    let mut out = Fields::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.insert(k.to_string(), v);
        }
    };
    put(f::SYSTEM_STATE, u.system_state.map(|v| v.as_str().into()));
    put(f::CURRENT_OWNER, u.current_owner.map(|v| v.as_str().into()));
    put(f::CONTAINER_ID, u.container_id.clone());
    put(f::REMOTE_STATE, u.remote_state.map(|v| v.as_str().into()));
    put(
        f::CONTAINER_VERSION,
        u.container_version.as_ref().map(|v| v.as_str().into()),
    );
    put(
        f::CONTAINER_STABLE_VERSION,
        u.container_stable_version
            .as_ref()
            .map(|v| v.as_str().into()),
    );
    put(
        f::CONTAINER_LAST_VERSION,
        u.container_last_version.as_ref().map(|v| v.as_str().into()),
    );
    put(f::UPDATE_TIME, u.update_time.clone());
    out
}

/// CONFIG_DB `KUBERNETES_MASTER|SERVER` fields to [`ServerConfig`]; a missing entry or field
/// takes the default (port 6443, secure, enabled).
pub fn parse_server_config(o: &Origin<'_>, fields: &Fields) -> Result<ServerConfig, SchemaError> {
    use server_config as f;
    let port = match get(fields, f::PORT).map(str::trim) {
        None | Some("") => ServerConfig::DEFAULT_PORT,
        Some(v) => ServerConfig::parse_port(v).map_err(o.field_err(f::PORT))?,
    };
    Ok(ServerConfig {
        ip: ServerConfig::parse_ip(get(fields, f::IP)),
        port,
        insecure: bool_field(o, fields, f::INSECURE, false)?,
        disable: bool_field(o, fields, f::DISABLE, false)?,
    })
}

/// [`ServerConfig`] to CONFIG_DB `KUBERNETES_MASTER|SERVER` fields.
pub fn server_config_fields(c: &ServerConfig) -> Fields {
    use server_config as f;
    let mut out = Fields::new();
    if let Some(ip) = &c.ip {
        out.insert(f::IP.into(), ip.clone());
    }
    out.insert(f::PORT.into(), c.port.to_string());
    out.insert(f::INSECURE.into(), bool_text(c.insecure));
    out.insert(f::DISABLE.into(), bool_text(c.disable));
    out
}

/// STATE_DB `KUBERNETES_MASTER|SERVER` fields to [`ServerStatus`]; `connected` absent is false.
pub fn parse_server_status(o: &Origin<'_>, fields: &Fields) -> Result<ServerStatus, SchemaError> {
    use server_status as f;
    let port = match get(fields, f::PORT).map(str::trim) {
        None | Some("") => None,
        Some(v) => Some(ServerConfig::parse_port(v).map_err(o.field_err(f::PORT))?),
    };
    Ok(ServerStatus {
        connected: bool_field(o, fields, f::CONNECTED, false)?,
        ip: get(fields, f::IP).map(str::to_string),
        port,
        update_time: get(fields, f::UPDATE_TIME).map(str::to_string),
        last_error: get(fields, f::LAST_ERROR)
            .filter(|e| !e.is_empty())
            .map(str::to_string),
    })
}

/// [`ServerStatus`] to STATE_DB `KUBERNETES_MASTER|SERVER` fields (the whole entry: written with
/// replace semantics, as upstream's `set_db_entry`).
pub fn server_status_fields(s: &ServerStatus) -> Fields {
    use server_status as f;
    let mut out = Fields::new();
    out.insert(f::CONNECTED.into(), bool_text(s.connected));
    if let Some(ip) = &s.ip {
        out.insert(f::IP.into(), ip.clone());
    }
    if let Some(port) = s.port {
        out.insert(f::PORT.into(), port.to_string());
    }
    if let Some(t) = &s.update_time {
        out.insert(f::UPDATE_TIME.into(), t.clone());
    }
    if let Some(e) = &s.last_error {
        out.insert(f::LAST_ERROR.into(), e.clone());
    }
    out
}

/// STATE_DB `KUBE_LABELS|SET` fields to [`NodeLabels`]: every field is a label.
pub fn parse_node_labels(o: &Origin<'_>, fields: &Fields) -> Result<NodeLabels, SchemaError> {
    fields
        .iter()
        .map(|(k, v)| {
            let key = LabelKey::parse(k).map_err(o.field_err(k))?;
            let value = LabelValue::parse(v).map_err(o.field_err(k))?;
            Ok((key, value))
        })
        .collect()
}

/// [`NodeLabels`] to STATE_DB `KUBE_LABELS|SET` fields.
pub fn node_labels_fields(labels: &NodeLabels) -> Fields {
    labels
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.as_str().to_string()))
        .collect()
}

/// One `IMAGE_MGMT` entry's fields to an [`ImageMgmtOverride`].
pub fn parse_image_mgmt_entry(
    o: &Origin<'_>,
    fields: &Fields,
) -> Result<ImageMgmtOverride, SchemaError> {
    use image_mgmt as f;
    let disable_name = if fields.contains_key(f::DISABLE) {
        f::DISABLE
    } else {
        "disable"
    };
    let active = match get(fields, f::ACTIVE_TIME_TO_MARK_GOOD).map(str::trim) {
        None | Some("") => None,
        Some(v) => Some(parse_duration(v).map_err(o.field_err(f::ACTIVE_TIME_TO_MARK_GOOD))?),
    };
    Ok(ImageMgmtOverride {
        disable: opt_bool_field(o, fields, disable_name)?,
        active_time_to_mark_good: active,
        purge_older_image: opt_bool_field(o, fields, f::PURGE_OLDER_IMAGE)?,
        tag_new_as_local: opt_bool_field(o, fields, f::TAG_NEW_AS_LOCAL)?,
        purge_local_copy: opt_bool_field(o, fields, f::PURGE_LOCAL_COPY)?,
    })
}

/// The whole `IMAGE_MGMT` table (as [`crate::SonicDb::get_table`] returns it) to [`ImageMgmt`].
pub fn parse_image_mgmt(
    db: &str,
    table: &BTreeMap<String, Fields>,
) -> Result<ImageMgmt, SchemaError> {
    let mut out = ImageMgmt::default();
    for (key, fields) in table {
        let o = Origin {
            db,
            table: image_mgmt::TABLE,
            key,
        };
        let entry = parse_image_mgmt_entry(&o, fields)?;
        if key == image_mgmt::GLOBAL_KEY {
            out.global = entry;
        } else {
            let feature = FeatureName::parse(key).map_err(|reason| SchemaError::Key {
                db: db.to_string(),
                key: o.redis_key(),
                reason,
            })?;
            out.per_feature.insert(feature, entry);
        }
    }
    Ok(out)
}

/// CONFIG_DB `DEVICE_METADATA|localhost` fields plus the SONiC version (which is not in a
/// database) to the core's [`NodeInfo`].
pub fn node_info(sonic_version: &str, fields: &Fields) -> NodeInfo {
    use device_metadata as f;
    NodeInfo {
        sonic_version: sonic_version.to_string(),
        hwsku: get(fields, f::HWSKU).unwrap_or("").to_string(),
        deployment_type: get(fields, f::TYPE).map(str::to_string),
        platform: get(fields, f::PLATFORM).map(str::to_string),
    }
}

/// STATE_DB `CTRMGRD_STATE|LABEL_JOURNAL` fields to a [`LabelJournal`]; `None` when never saved.
pub fn parse_label_journal(
    o: &Origin<'_>,
    fields: &Fields,
) -> Result<Option<LabelJournal>, SchemaError> {
    let Some(text) = get(fields, label_journal::JSON) else {
        return Ok(None);
    };
    serde_json::from_str::<LabelJournal>(text)
        .map(|j| Some(j.restored()))
        .map_err(|e| SchemaError::Journal {
            db: o.db.to_string(),
            key: o.redis_key(),
            field: label_journal::JSON.to_string(),
            value: text.chars().take(200).collect(),
            reason: e.to_string(),
        })
}

/// STATE_DB `CTRMGRD_STATE|PENDING_RESTARTS` fields to the pending restarts; the first field
/// that is not a feature name with an owner is the error.
pub fn parse_pending_restarts(
    o: &Origin<'_>,
    fields: &Fields,
) -> Result<BTreeMap<FeatureName, SetOwner>, SchemaError> {
    let mut out = BTreeMap::new();
    for (name, owner) in fields {
        let feature = FeatureName::parse(name).map_err(|reason| SchemaError::Field {
            db: o.db.to_string(),
            key: o.redis_key(),
            field: name.clone(),
            reason,
        })?;
        // An empty owner would read as `local`: only the two spellings written are accepted.
        let owner = match owner.trim() {
            "" => Err(ModelError::SetOwner {
                value: owner.clone(),
            }),
            v => SetOwner::parse(v),
        }
        .map_err(|reason| SchemaError::Field {
            db: o.db.to_string(),
            key: o.redis_key(),
            field: name.clone(),
            reason,
        })?;
        out.insert(feature, owner);
    }
    Ok(out)
}

/// STATE_DB `CTRMGRD_STATE|CLOCKS` fields to the manager's [`Clocks`]; `None` when never
/// saved.
pub fn parse_clocks(o: &Origin<'_>, fields: &Fields) -> Result<Option<Clocks>, SchemaError> {
    let Some(text) = get(fields, clocks::JSON) else {
        return Ok(None);
    };
    serde_json::from_str::<Clocks>(text)
        .map(Some)
        .map_err(|e| SchemaError::Json {
            db: o.db.to_string(),
            key: o.redis_key(),
            what: "clocks",
            value: text.chars().take(200).collect(),
            reason: e.to_string(),
        })
}

/// The manager's [`Clocks`] to STATE_DB `CTRMGRD_STATE|CLOCKS` fields.
pub fn clocks_fields(c: &Clocks) -> Result<Fields, serde_json::Error> {
    Ok(Fields::from([(
        clocks::JSON.to_string(),
        serde_json::to_string(c)?,
    )]))
}

/// A [`LabelJournal`] to STATE_DB `CTRMGRD_STATE|LABEL_JOURNAL` fields.
pub fn label_journal_fields(j: &LabelJournal) -> Result<Fields, serde_json::Error> {
    Ok(Fields::from([(
        label_journal::JSON.to_string(),
        serde_json::to_string(j)?,
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn f(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const CFG: Origin<'static> = Origin {
        db: "CONFIG_DB",
        table: "FEATURE",
        key: "snmp",
    };

    #[test]
    fn feature_config_defaults_and_round_trip() {
        assert_eq!(
            parse_feature_config(&CFG, &Fields::new()).unwrap(),
            FeatureConfig::default()
        );
        let c = parse_feature_config(
            &CFG,
            &f(&[
                ("set_owner", "kube"),
                ("no_fallback_to_local", "True"),
                ("state", "enabled"),
                ("auto_restart", "always_disabled"),
                ("kube_failure_detection", "5"),
                ("has_per_asic_scope", "False"),
            ]),
        )
        .unwrap();
        assert_eq!(c.set_owner, SetOwner::Kube);
        assert!(!c.fallback);
        assert_eq!(c.state, Some(AdminState::Enabled));
        assert_eq!(c.auto_restart, Some(AdminState::AlwaysDisabled));
        assert_eq!(c.kube_failure_detection, Some(Duration::from_secs(300)));
        assert_eq!(
            parse_feature_config(&CFG, &feature_config_fields(&c)).unwrap(),
            c
        );
    }

    #[test]
    fn kube_failure_detection_is_minutes_or_a_duration_with_a_unit_and_round_trips() {
        for (text, secs, rendered) in [
            ("5", 300, "5"),
            ("30s", 30, "30s"),
            ("2m", 120, "2"),
            ("90s", 90, "90s"),
            ("1h", 3600, "60"),
        ] {
            let c = parse_feature_config(&CFG, &f(&[("kube_failure_detection", text)])).unwrap();
            assert_eq!(
                c.kube_failure_detection,
                Some(Duration::from_secs(secs)),
                "{text}"
            );
            let fields = feature_config_fields(&c);
            assert_eq!(
                fields.get("kube_failure_detection").map(String::as_str),
                Some(rendered)
            );
            assert_eq!(parse_feature_config(&CFG, &fields).unwrap(), c, "{text}");
        }
        for off in ["0", "0s", ""] {
            let c = parse_feature_config(&CFG, &f(&[("kube_failure_detection", off)])).unwrap();
            assert_eq!(c.kube_failure_detection, None, "{off:?}");
        }
        let e = parse_feature_config(&CFG, &f(&[("kube_failure_detection", "5x")])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "CONFIG_DB FEATURE|snmp field kube_failure_detection: invalid duration \"5x\""
            ),
            "{e}"
        );
    }

    #[test]
    fn server_status_with_its_last_error_round_trips() {
        let o = Origin {
            db: "STATE_DB",
            table: server_status::TABLE,
            key: server_status::KEY,
        };
        let s = ServerStatus {
            connected: false,
            ip: None,
            port: None,
            update_time: Some("2020-12-08 22:59:57".into()),
            last_error: Some("join failed: connection refused".into()),
        };
        let fields = server_status_fields(&s);
        assert_eq!(
            fields.get("last_error").map(String::as_str),
            Some("join failed: connection refused")
        );
        assert_eq!(parse_server_status(&o, &fields).unwrap(), s);
        let ok = ServerStatus {
            last_error: None,
            ..s
        };
        let fields = server_status_fields(&ok);
        assert!(!fields.contains_key("last_error"), "{fields:?}");
        assert_eq!(parse_server_status(&o, &fields).unwrap(), ok);
        // An empty field (written by hand) is no problem.
        let mut fields = fields;
        fields.insert("last_error".into(), String::new());
        assert_eq!(parse_server_status(&o, &fields).unwrap(), ok);
    }

    #[test]
    fn malformed_values_name_database_key_field_and_value() {
        let cases = [
            (
                f(&[("set_owner", "banana")]),
                "CONFIG_DB FEATURE|snmp field set_owner: invalid owner \"banana\": expected local or kube",
            ),
            (
                f(&[("no_fallback_to_local", "maybe")]),
                "CONFIG_DB FEATURE|snmp field no_fallback_to_local: invalid boolean \"maybe\": expected true or false",
            ),
        ];
        for (fields, msg) in cases {
            assert_eq!(
                parse_feature_config(&CFG, &fields).unwrap_err().to_string(),
                msg
            );
        }
        let o = Origin {
            db: "CONFIG_DB",
            table: server_config::TABLE,
            key: server_config::KEY,
        };
        assert_eq!(
            parse_server_config(&o, &f(&[("port", "abc")]))
                .unwrap_err()
                .to_string(),
            "CONFIG_DB KUBERNETES_MASTER|SERVER field port: invalid port \"abc\": expected an integer from 1 to 65535"
        );
        let o = Origin {
            db: "STATE_DB",
            table: "FEATURE",
            key: "snmp",
        };
        let e = parse_feature_status(&o, &f(&[("container_version", "v1")])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "STATE_DB FEATURE|snmp field container_version: invalid version \"v1\""
            ),
            "{e}"
        );
    }

    #[test]
    fn server_config_defaults_match_ctrmgrd() {
        let o = Origin {
            db: "CONFIG_DB",
            table: server_config::TABLE,
            key: server_config::KEY,
        };
        assert_eq!(
            parse_server_config(&o, &Fields::new()).unwrap(),
            ServerConfig::default()
        );
        let c = parse_server_config(
            &o,
            &f(&[
                ("ip", "10.0.0.1"),
                ("port", "7443"),
                ("insecure", "True"),
                ("disable", "FALSE"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c,
            ServerConfig {
                ip: Some("10.0.0.1".into()),
                port: 7443,
                insecure: true,
                disable: false
            }
        );
        assert_eq!(
            parse_server_config(&o, &server_config_fields(&c)).unwrap(),
            c
        );
    }

    #[test]
    fn image_mgmt_reads_global_and_per_feature_entries() {
        let table = BTreeMap::from([
            (
                "GLOBAL".to_string(),
                f(&[("Disable", "false"), ("active_time_to_mark_good", "10m")]),
            ),
            (
                "snmp".to_string(),
                f(&[("disable", "true"), ("purge_older_image", "False")]),
            ),
        ]);
        let m = parse_image_mgmt("CONFIG_DB", &table).unwrap();
        assert_eq!(m.global.disable, Some(false));
        assert_eq!(
            m.global.active_time_to_mark_good,
            Some(Duration::from_secs(600))
        );
        let snmp = FeatureName::parse("snmp").unwrap();
        assert_eq!(m.per_feature[&snmp].disable, Some(true));
        assert_eq!(m.per_feature[&snmp].purge_older_image, Some(false));

        let bad = BTreeMap::from([("_bad".to_string(), Fields::new())]);
        assert!(
            parse_image_mgmt("CONFIG_DB", &bad)
                .unwrap_err()
                .to_string()
                .starts_with("CONFIG_DB IMAGE_MGMT|_bad: invalid feature name")
        );
        let bad = BTreeMap::from([(
            "GLOBAL".to_string(),
            f(&[("active_time_to_mark_good", "soon")]),
        )]);
        assert!(
            parse_image_mgmt("CONFIG_DB", &bad)
                .unwrap_err()
                .to_string()
                .starts_with(
                    "CONFIG_DB IMAGE_MGMT|GLOBAL field active_time_to_mark_good: invalid duration \"soon\""
                )
        );
    }

    #[test]
    fn node_info_takes_device_metadata() {
        let info = node_info(
            "20201230.1",
            &f(&[
                ("hwsku", "Force10-S6000"),
                ("type", "ToRRouter"),
                ("platform", "x86_64-kvm"),
            ]),
        );
        assert_eq!(info.hwsku, "Force10-S6000");
        assert_eq!(info.deployment_type.as_deref(), Some("ToRRouter"));
        assert_eq!(info.platform.as_deref(), Some("x86_64-kvm"));
        assert_eq!(info.sonic_version, "20201230.1");
    }
}
