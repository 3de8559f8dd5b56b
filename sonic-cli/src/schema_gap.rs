//! WORKAROUND, to be replaced by `sonic_db::schema`: the database, table, key and field names the
//! commands use.
//!
//! ARCHITECTURE.md makes `sonic-db/src/schema.rs` the only place that knows these names; when
//! this crate was written sonic-db had no `schema` module yet, so they are collected here, in one
//! place, to be swapped for the sonic-db constants without touching the command code.

/// Database names as in `database_config.json`.
pub const CONFIG_DB: &str = "CONFIG_DB";
pub const STATE_DB: &str = "STATE_DB";

/// `FEATURE|<name>` in CONFIG_DB (configuration) and STATE_DB (status).
pub const FEATURE: &str = "FEATURE";

/// CONFIG_DB `FEATURE|<name>` fields.
pub mod feature {
    pub const STATE: &str = "state";
    pub const AUTO_RESTART: &str = "auto_restart";
    pub const SET_OWNER: &str = "set_owner";
    pub const NO_FALLBACK_TO_LOCAL: &str = "no_fallback_to_local";
    pub const KUBE_FAILURE_DETECTION: &str = "kube_failure_detection";
}

/// STATE_DB `FEATURE|<name>` fields.
pub mod feature_status {
    /// Written by featured: `enabled`, `disabled` or `failed` (what `config feature state --block`
    /// waits for).
    pub const STATE: &str = "state";
    pub const SYSTEM_STATE: &str = "system_state";
    pub const UPDATE_TIME: &str = "update_time";
    pub const CONTAINER_ID: &str = "container_id";
    pub const CONTAINER_VERSION: &str = "container_version";
    pub const CURRENT_OWNER: &str = "current_owner";
    pub const REMOTE_STATE: &str = "remote_state";
}

/// `KUBERNETES_MASTER|SERVER`: configuration in CONFIG_DB, status in STATE_DB.
pub const KUBERNETES_MASTER: &str = "KUBERNETES_MASTER";
pub const SERVER: &str = "SERVER";

/// CONFIG_DB `KUBERNETES_MASTER|SERVER` fields.
pub mod server {
    pub const IP: &str = "ip";
    pub const PORT: &str = "port";
    pub const INSECURE: &str = "insecure";
    pub const DISABLE: &str = "disable";
}

/// STATE_DB `KUBERNETES_MASTER|SERVER` fields (written by ctrmgrd).
pub mod server_status {
    pub const IP: &str = "ip";
    pub const PORT: &str = "port";
    pub const CONNECTED: &str = "connected";
    pub const UPDATE_TIME: &str = "update_time";
}

/// STATE_DB `KUBERNETES_MASTER|REQUEST`: a join or reset request from `config kubernetes
/// join|reset` for ctrmgrd, which acts on it and then deletes the key. Fields: `action`
/// (`join`|`reset`), `force` (`true`|`false`), `request_id` (unique per request, so that a
/// repeated request is a change the daemon's subscription delivers).
pub const REQUEST: &str = "REQUEST";

/// STATE_DB `KUBERNETES_MASTER|REQUEST` fields.
pub mod request {
    pub const ACTION: &str = "action";
    pub const FORCE: &str = "force";
    pub const REQUEST_ID: &str = "request_id";
}

/// STATE_DB `KUBE_LABELS|SET`: the labels this node should carry.
pub const KUBE_LABELS: &str = "KUBE_LABELS";
pub const SET: &str = "SET";
