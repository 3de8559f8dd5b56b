//! The `config feature ...` and `config kubernetes ...` commands.
//!
//! Each command is a pure check or plan over what was read (unit-tested without Redis) followed by
//! the writes. `state` and `autorestart` read and write the host and every ASIC namespace; all
//! other commands touch the host only, as upstream. `install` and `uninstall` are carried out by
//! [`crate::install`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sonic_db::{DbError, Fields, Namespace, SonicDb, SonicDbConfig, TableOp};
use sonic_feature_core::model::{FeatureConfig, LabelKey, LabelValue, ServerConfig, parse_bool};

use crate::click::{Exit, Invocation};
use crate::install::{self, InstallOptions};
use crate::tabulate::parse_py_int;
use crate::tree::{ConfigAction, arg};
use sonic_db::schema::dbs::{CONFIG_DB, STATE_DB};
use sonic_db::schema::{
    feature_config as feature, feature_status, kube_labels, kube_request as request,
    server_config as server, server_status,
};

/// Runs a resolved `config` command line.
pub async fn run(inv: &Invocation<ConfigAction>, dbs: &SonicDbConfig) -> Result<Exit, DbError> {
    let v = &inv.values;
    let name = v.arg(arg::NAME).unwrap_or_default();
    let value = v.arg(arg::VALUE).unwrap_or_default();
    match inv.action {
        ConfigAction::FeatureState => {
            set_admin_field(dbs, AdminField::State, name, value, v.flag(arg::BLOCK)).await
        }
        ConfigAction::FeatureAutorestart => {
            set_admin_field(dbs, AdminField::AutoRestart, name, value, false).await
        }
        ConfigAction::FeatureOwner => set_host_field(dbs, name, feature::SET_OWNER, value).await,
        ConfigAction::FeatureFallback => {
            // Upstream's values: `on` stores no_fallback_to_local=false (see docs/COMPATIBILITY.md).
            let stored = if value == "on" { "false" } else { "true" };
            set_host_field(dbs, name, feature::NO_FALLBACK_TO_LOCAL, stored).await
        }
        ConfigAction::FeatureNoFallback => {
            set_host_field(dbs, name, feature::NO_FALLBACK_TO_LOCAL, value).await
        }
        ConfigAction::FeatureFailureDetection => {
            let minutes = value.trim();
            if FeatureConfig::parse_failure_detection(Some(minutes)).is_err() || minutes.is_empty()
            {
                return Ok(inv.bad_parameter(
                    "<minutes>",
                    &format!(
                        "{} is not a whole number of minutes.",
                        crate::click::text::py_repr(value)
                    ),
                ));
            }
            set_host_field(dbs, name, feature::KUBE_FAILURE_DETECTION, minutes).await
        }
        ConfigAction::FeatureInstall => {
            let required = v.arg_list(arg::REQUIRED_SERVICE);
            let opts = InstallOptions::from_env();
            match v.option(arg::SPEC) {
                None => install::config_feature_install(dbs, name, required, &opts).await,
                Some(_) if !required.is_empty() => Ok(inv.usage_error(
                    "REQUIRED_SERVICE cannot be combined with --spec: the spec file lists \
                     the required services.",
                )),
                Some(spec) => {
                    install::config_feature_install_named_spec(dbs, name, Path::new(spec), &opts)
                        .await
                }
            }
        }
        ConfigAction::FeatureUninstall => {
            install::config_feature_uninstall(name, &InstallOptions::from_env()).await
        }
        ConfigAction::KubeServerIp => {
            update_server(dbs, server::IP, v.arg("vip").unwrap_or_default()).await
        }
        ConfigAction::KubeServerPort => {
            let portval = v.arg("portval").unwrap_or_default();
            match parse_port(portval) {
                Some(port) => update_server(dbs, server::PORT, &port.to_string()).await,
                None => Ok(Exit::stdout(1, format!("Invalid port value {portval}\n"))),
            }
        }
        ConfigAction::KubeServerInsecure => {
            update_server(
                dbs,
                server::INSECURE,
                on_off_to_python_bool(v.arg("option")),
            )
            .await
        }
        ConfigAction::KubeServerDisable => {
            update_server(dbs, server::DISABLE, on_off_to_python_bool(v.arg("option"))).await
        }
        ConfigAction::KubeLabelAdd => {
            let key = v.arg(arg::KEY).unwrap_or_default();
            let val = v.arg(arg::VAL).unwrap_or_default();
            if let Err(e) = LabelKey::parse(key) {
                return Ok(inv.bad_parameter("KEY", &format!("{e}.")));
            }
            if let Err(e) = LabelValue::parse(val) {
                return Ok(inv.bad_parameter("VAL", &format!("{e}.")));
            }
            let state = dbs.open(&Namespace::Host, STATE_DB).await?;
            state
                .mod_entry(kube_labels::TABLE, kube_labels::KEY, &one(key, val))
                .await?;
            Ok(Exit::stdout(0, ""))
        }
        ConfigAction::KubeLabelDrop => {
            let key = v.arg(arg::KEY).unwrap_or_default();
            let state = dbs.open(&Namespace::Host, STATE_DB).await?;
            state
                .hdel(kube_labels::TABLE, kube_labels::KEY, &[key])
                .await?;
            Ok(Exit::stdout(0, ""))
        }
        ConfigAction::KubeJoin => request_master(dbs, MasterAction::Join, v.flag(arg::FORCE)).await,
        ConfigAction::KubeReset => {
            request_master(dbs, MasterAction::Reset, v.flag(arg::FORCE)).await
        }
    }
}

fn one(field: &str, value: &str) -> Fields {
    Fields::from([(field.to_string(), value.to_string())])
}

/// `str(option == "on")`: what upstream stores for `insecure` and `disable`.
fn on_off_to_python_bool(option: Option<&str>) -> &'static str {
    if option == Some("on") {
        "True"
    } else {
        "False"
    }
}

/// Upstream's `int(portval)` and range check `0 < port < 65536`; a non-integer is refused with
/// the same message instead of upstream's traceback.
pub fn parse_port(portval: &str) -> Option<u16> {
    parse_py_int(portval)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
}

/// The two FEATURE fields that are kept equal across namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminField {
    State,
    AutoRestart,
}

impl AdminField {
    fn field(self) -> &'static str {
        match self {
            AdminField::State => feature::STATE,
            AdminField::AutoRestart => feature::AUTO_RESTART,
        }
    }
    fn label(self) -> &'static str {
        match self {
            AdminField::State => "state",
            AdminField::AutoRestart => "auto-restart",
        }
    }
}

/// Upstream's checks before `state`/`autorestart` is written (sonic-utilities PR #4445): the
/// feature must exist in every namespace, the namespaces that have the field must agree, and an
/// `always_enabled` value is never changed (`state` exits 1, `autorestart` exits 0). `entries`
/// are the CONFIG_DB entries, host first, without the `NULL` placeholder.
pub fn check_admin_change(name: &str, field: AdminField, entries: &[Fields]) -> Result<(), Exit> {
    let refuse = |code: i32, msg: String| Err(Exit::stdout(code, format!("{msg}\n")));
    let mut values: Vec<&str> = Vec::new();
    for entry in entries {
        if entry.is_empty() {
            return refuse(1, format!("Feature '{name}' doesn't exist"));
        }
        if let Some(v) = entry.get(field.field())
            && !values.contains(&v.as_str())
        {
            values.push(v);
        }
    }
    let label = field.label();
    match values.as_slice() {
        [] => refuse(
            1,
            format!("Feature '{name}' {label} is not available in any namespace"),
        ),
        [_, _, ..] => refuse(
            1,
            format!("Feature '{name}' {label} is not consistent across namespaces"),
        ),
        ["always_enabled"] => refuse(
            match field {
                AdminField::State => 1,
                AdminField::AutoRestart => 0,
            },
            format!("Feature '{name}' {label} is always enabled and can not be modified"),
        ),
        [_] => Ok(()),
    }
}

async fn open_all(dbs: &SonicDbConfig, db: &str) -> Result<Vec<SonicDb>, DbError> {
    let mut out = Vec::new();
    for ns in dbs.namespaces() {
        out.push(dbs.open(&ns, db).await?);
    }
    Ok(out)
}

async fn set_admin_field(
    dbs: &SonicDbConfig,
    field: AdminField,
    name: &str,
    value: &str,
    block: bool,
) -> Result<Exit, DbError> {
    let cfgs = open_all(dbs, CONFIG_DB).await?;
    let mut entries = Vec::with_capacity(cfgs.len());
    for cfg in &cfgs {
        entries.push(cfg.get_entry(feature::TABLE, name).await?);
    }
    if let Err(refused) = check_admin_change(name, field, &entries) {
        return Ok(refused);
    }
    for cfg in &cfgs {
        cfg.mod_entry(feature::TABLE, name, &one(field.field(), value))
            .await?;
    }
    if block {
        return wait_for_feature_state(dbs, name, value).await;
    }
    Ok(Exit::stdout(0, ""))
}

/// `--block`: waits on the host STATE_DB until featured reports the feature in the requested
/// state (exit 0) or `failed` (exit 1). The subscription replays the current entry first, so an
/// already reached state returns at once. Like upstream there is no deadline.
async fn wait_for_feature_state(
    dbs: &SonicDbConfig,
    name: &str,
    wanted: &str,
) -> Result<Exit, DbError> {
    let state = dbs.open(&Namespace::Host, STATE_DB).await?;
    let mut sub = state.subscribe(feature_status::TABLE).await?;
    while let Some(event) = sub.recv().await {
        if event.key != name {
            continue;
        }
        let TableOp::Set(fields) = event.op else {
            continue;
        };
        match fields.get(feature_status::STATE).map(String::as_str) {
            Some("failed") => {
                return Ok(Exit::stdout(1, format!("Feature failed to be {wanted}\n")));
            }
            Some(s) if s == wanted => return Ok(Exit::stdout(0, "")),
            _ => {}
        }
    }
    Ok(Exit::stdout(
        1,
        "Failed to wait till feature reaches desired state: select() failed\n",
    ))
}

/// Sets one field of a feature on the host CONFIG_DB (upstream's `_update_field`).
async fn set_host_field(
    dbs: &SonicDbConfig,
    name: &str,
    field: &str,
    value: &str,
) -> Result<Exit, DbError> {
    let cfg = dbs.open(&Namespace::Host, CONFIG_DB).await?;
    if !cfg.exists(feature::TABLE, name).await? {
        return Ok(Exit::stdout(
            1,
            format!("Unable to retrieve {name} from FEATURE table\n"),
        ));
    }
    cfg.mod_entry(feature::TABLE, name, &one(field, value))
        .await?;
    Ok(Exit::stdout(0, ""))
}

/// Defaults of `KUBERNETES_MASTER|SERVER` written with the first change, in upstream's order;
/// `insecure` defaults to `False` like the daemon (upstream's CLI wrote `True`).
const SERVER_DEFAULTS: &[(&str, &str)] = &[
    (server::IP, ""),
    (server::PORT, "6443"),
    (server::INSECURE, "False"),
    (server::DISABLE, "False"),
];

/// What upstream's `_update_kube_server` writes: `field` when it differs, and every missing
/// default field. Upstream issues one HSET per field; the plan is written with one HSET.
pub fn plan_server_update(current: &Fields, field: &str, value: &str) -> Fields {
    let mut writes = Fields::new();
    for (f, default) in SERVER_DEFAULTS {
        match current.get(*f) {
            Some(existing) => {
                if *f == field && existing != value {
                    writes.insert(f.to_string(), value.to_string());
                }
            }
            None => {
                let v = if *f == field { value } else { default };
                writes.insert(f.to_string(), v.to_string());
            }
        }
    }
    writes
}

async fn update_server(dbs: &SonicDbConfig, field: &str, value: &str) -> Result<Exit, DbError> {
    let cfg = dbs.open(&Namespace::Host, CONFIG_DB).await?;
    let current = cfg.get_entry(server::TABLE, server::KEY).await?;
    let writes = plan_server_update(&current, field, value);
    if !writes.is_empty() {
        cfg.mod_entry(server::TABLE, server::KEY, &writes).await?;
    }
    Ok(Exit::stdout(0, ""))
}

/// A request for ctrmgrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterAction {
    Join,
    Reset,
}

impl MasterAction {
    fn as_str(self) -> &'static str {
        match self {
            MasterAction::Join => "join",
            MasterAction::Reset => "reset",
        }
    }
}

/// Whether a join or reset request should be written, from the CONFIG_DB server entry and the
/// STATE_DB server status. Join needs an address and `disable` off (ctrmgrd treats any `disable`
/// other than `false` as disabled); without `force` a join while connected and a reset while not
/// connected have nothing to do.
pub fn check_master_request(
    action: MasterAction,
    force: bool,
    config: &Fields,
    status: &Fields,
) -> Result<(), Exit> {
    let connected = status
        .get(server_status::CONNECTED)
        .is_some_and(|c| parse_bool(c.trim()).unwrap_or(false));
    match action {
        MasterAction::Join => {
            let Some(ip) = ServerConfig::parse_ip(config.get(server::IP).map(String::as_str))
            else {
                return Err(Exit::stdout(
                    1,
                    "Kubernetes server is not configured; set it with 'config kubernetes server ip <VIP>'\n",
                ));
            };
            let disabled = config
                .get(server::DISABLE)
                .is_some_and(|d| !d.trim().eq_ignore_ascii_case("false"));
            if disabled {
                return Err(Exit::stdout(
                    1,
                    "Kubernetes server is disabled; enable it with 'config kubernetes server disable off'\n",
                ));
            }
            if connected && !force {
                return Err(Exit::stdout(
                    0,
                    format!(
                        "Kubernetes server {ip} is already connected; use 'config kubernetes join -f' to join again\n"
                    ),
                ));
            }
        }
        MasterAction::Reset => {
            if !connected && !force {
                return Err(Exit::stdout(
                    0,
                    "Kubernetes server is not connected; use 'config kubernetes reset -f' to reset anyway\n",
                ));
            }
        }
    }
    Ok(())
}

/// The STATE_DB `KUBERNETES_MASTER|REQUEST` entry for a request.
pub fn request_entry(action: MasterAction, force: bool, request_id: &str) -> Fields {
    BTreeMap::from([
        (request::ACTION.to_string(), action.as_str().to_string()),
        (request::FORCE.to_string(), force.to_string()),
        (request::REQUEST_ID.to_string(), request_id.to_string()),
    ])
}

async fn request_master(
    dbs: &SonicDbConfig,
    action: MasterAction,
    force: bool,
) -> Result<Exit, DbError> {
    let host = Namespace::Host;
    let (cfg, state) = tokio::try_join!(dbs.open(&host, CONFIG_DB), dbs.open(&host, STATE_DB))?;
    let (config, status) = tokio::try_join!(
        cfg.get_entry(server::TABLE, server::KEY),
        state.get_entry(server_status::TABLE, server_status::KEY)
    )?;
    if let Err(refused) = check_master_request(action, force, &config, &status) {
        return Ok(refused);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let request_id = format!("{nanos}-{}", std::process::id());
    state
        .set_entry(
            request::TABLE,
            request::KEY,
            &request_entry(action, force, &request_id),
        )
        .await?;
    Ok(Exit::stdout(0, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn state_change_needs_the_feature_in_every_namespace() {
        let e = check_admin_change(
            "bgp",
            AdminField::State,
            &[fields(&[("state", "enabled")]), fields(&[])],
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.stdout.as_str()),
            (1, "Feature 'bgp' doesn't exist\n")
        );
    }

    #[test]
    fn namespaces_that_disagree_refuse_the_change() {
        let entries = [
            fields(&[("state", "enabled")]),
            fields(&[("state", "disabled")]),
        ];
        let e = check_admin_change("bgp", AdminField::State, &entries).unwrap_err();
        assert_eq!(
            e.stdout,
            "Feature 'bgp' state is not consistent across namespaces\n"
        );
        let entries = [
            fields(&[("auto_restart", "enabled")]),
            fields(&[("auto_restart", "disabled")]),
        ];
        let e = check_admin_change("bgp", AdminField::AutoRestart, &entries).unwrap_err();
        assert_eq!(
            e.stdout,
            "Feature 'bgp' auto-restart is not consistent across namespaces\n"
        );
    }

    #[test]
    fn namespaces_missing_the_field_do_not_count_but_one_must_have_it() {
        let entries = [fields(&[("state", "enabled")]), fields(&[("x", "y")])];
        assert!(check_admin_change("bgp", AdminField::State, &entries).is_ok());
        let e = check_admin_change("bgp", AdminField::AutoRestart, &entries).unwrap_err();
        assert_eq!(
            (e.code, e.stdout.as_str()),
            (
                1,
                "Feature 'bgp' auto-restart is not available in any namespace\n"
            )
        );
    }

    #[test]
    fn always_enabled_state_exits_one_and_autorestart_exits_zero() {
        let entries = [fields(&[
            ("state", "always_enabled"),
            ("auto_restart", "always_enabled"),
        ])];
        let e = check_admin_change("database", AdminField::State, &entries).unwrap_err();
        assert_eq!(
            (e.code, e.stdout.as_str()),
            (
                1,
                "Feature 'database' state is always enabled and can not be modified\n"
            )
        );
        let e = check_admin_change("database", AdminField::AutoRestart, &entries).unwrap_err();
        assert_eq!(
            (e.code, e.stdout.as_str()),
            (
                0,
                "Feature 'database' auto-restart is always enabled and can not be modified\n"
            )
        );
    }

    #[test]
    fn first_server_write_fills_every_missing_field_with_daemon_defaults() {
        let plan = plan_server_update(&Fields::new(), "ip", "10.10.10.11");
        assert_eq!(
            plan,
            fields(&[
                ("ip", "10.10.10.11"),
                ("port", "6443"),
                ("insecure", "False"),
                ("disable", "False")
            ])
        );
    }

    #[test]
    fn server_write_of_an_unchanged_value_writes_nothing() {
        let current = fields(&[
            ("ip", "a"),
            ("port", "6443"),
            ("insecure", "True"),
            ("disable", "False"),
        ]);
        assert!(plan_server_update(&current, "insecure", "True").is_empty());
        assert_eq!(
            plan_server_update(&current, "insecure", "False"),
            fields(&[("insecure", "False")])
        );
    }

    #[test]
    fn port_follows_python_int_and_the_upstream_range() {
        assert_eq!(parse_port("7777"), Some(7777));
        assert_eq!(parse_port("07777"), Some(7777));
        assert_eq!(parse_port(" 443 "), Some(443));
        assert_eq!(parse_port("0"), None);
        assert_eq!(parse_port("65536"), None);
        assert_eq!(parse_port("10101011"), None);
        assert_eq!(parse_port("abc"), None);
        assert_eq!(parse_port("-1"), None);
    }

    #[test]
    fn join_needs_an_address_and_an_enabled_server() {
        let none = Fields::new();
        let e = check_master_request(MasterAction::Join, false, &none, &none).unwrap_err();
        assert_eq!(e.code, 1);
        let disabled = fields(&[("ip", "10.0.0.1"), ("disable", "True")]);
        let e = check_master_request(MasterAction::Join, true, &disabled, &none).unwrap_err();
        assert_eq!(e.code, 1);
        let ok = fields(&[("ip", "10.0.0.1"), ("disable", "False")]);
        assert!(check_master_request(MasterAction::Join, false, &ok, &none).is_ok());
    }

    #[test]
    fn join_while_connected_and_reset_while_disconnected_need_force() {
        let cfg = fields(&[("ip", "10.0.0.1")]);
        let connected = fields(&[("connected", "true")]);
        let e = check_master_request(MasterAction::Join, false, &cfg, &connected).unwrap_err();
        assert_eq!(e.code, 0);
        assert!(check_master_request(MasterAction::Join, true, &cfg, &connected).is_ok());
        let e = check_master_request(MasterAction::Reset, false, &cfg, &Fields::new()).unwrap_err();
        assert_eq!(e.code, 0);
        assert!(check_master_request(MasterAction::Reset, true, &cfg, &Fields::new()).is_ok());
        assert!(check_master_request(MasterAction::Reset, false, &cfg, &connected).is_ok());
    }
}
