//! Pure render functions of every `show` output: upstream's text (byte for byte) and the `--json`
//! form documented in JSON.md. Each returns exactly what goes to stdout, final newline included.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::tabulate::{self, NumParse};
use sonic_db::schema::{
    feature_config as cfg, feature_status as st, server_config as server, server_status,
};

/// The fields of one entry.
pub type Fields = BTreeMap<String, String>;

/// One feature: its name and its fields (for `status`, STATE_DB overlaid by CONFIG_DB).
pub type FeatureRow = (String, Fields);

/// `show feature status` columns in display order: header and field.
const STATUS_COLUMNS: &[(&str, &str)] = &[
    ("State", cfg::STATE),
    ("AutoRestart", cfg::AUTO_RESTART),
    ("SystemState", st::SYSTEM_STATE),
    ("UpdateTime", st::UPDATE_TIME),
    ("ContainerId", st::CONTAINER_ID),
    ("Version", st::CONTAINER_VERSION),
    ("SetOwner", cfg::SET_OWNER),
    ("CurrentOwner", st::CURRENT_OWNER),
    ("RemoteState", st::REMOTE_STATE),
];

/// `show feature config` columns: header, field and the value shown when a row lacks the field.
const CONFIG_COLUMNS: &[(&str, &str, &str)] = &[
    ("State", cfg::STATE, ""),
    ("AutoRestart", cfg::AUTO_RESTART, ""),
    ("Owner", cfg::SET_OWNER, "local"),
    ("fallback", cfg::NO_FALLBACK_TO_LOCAL, ""),
];

/// Default `port` of `KUBERNETES_MASTER|SERVER`, shown when the field is absent.
const DEFAULT_PORT: &str = "6443";
/// Default `insecure` shown when absent: the daemon's default (upstream's CLI showed `True`).
const DEFAULT_INSECURE: &str = "False";
const DEFAULT_DISABLE: &str = "False";

fn echo(text: String) -> String {
    format!("{text}\n")
}

fn json(value: &impl Serialize) -> String {
    // Serialising plain strings, options and maps cannot fail.
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_string());
    format!("{text}\n")
}

/// Header and body of a table whose visible columns are those fields present in some row.
fn union_table(
    rows: &[FeatureRow],
    columns: &[(&'static str, &'static str, &'static str)],
    value: impl Fn(&str, &str) -> String,
) -> String {
    let visible: Vec<&(&str, &str, &str)> = columns
        .iter()
        .filter(|(_, field, _)| rows.iter().any(|(_, f)| f.contains_key(*field)))
        .collect();
    let mut headers = vec!["Feature"];
    headers.extend(visible.iter().map(|(h, _, _)| *h));
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|(name, fields)| {
            let mut row = vec![name.clone()];
            row.extend(
                visible
                    .iter()
                    .map(|(_, field, default)| match fields.get(*field) {
                        Some(v) => value(field, v),
                        None => default.to_string(),
                    }),
            );
            row
        })
        .collect();
    tabulate::simple(&headers, &body, NumParse::Disabled)
}

/// `show feature status`: columns present in any row, empty cells where a row lacks a field.
pub fn feature_status_text(rows: &[FeatureRow]) -> String {
    let columns: Vec<(&str, &str, &str)> =
        STATUS_COLUMNS.iter().map(|(h, f)| (*h, *f, "")).collect();
    echo(union_table(rows, &columns, |_, v| v.to_string()))
}

#[derive(Serialize)]
struct StatusJson<'a> {
    feature: &'a str,
    state: Option<&'a str>,
    auto_restart: Option<&'a str>,
    system_state: Option<&'a str>,
    update_time: Option<&'a str>,
    container_id: Option<&'a str>,
    container_version: Option<&'a str>,
    set_owner: Option<&'a str>,
    current_owner: Option<&'a str>,
    remote_state: Option<&'a str>,
}

/// `show feature status --json`.
pub fn feature_status_json(rows: &[FeatureRow]) -> String {
    let out: Vec<StatusJson<'_>> = rows
        .iter()
        .map(|(name, f)| {
            let get = |k: &str| f.get(k).map(String::as_str);
            StatusJson {
                feature: name,
                state: get(cfg::STATE),
                auto_restart: get(cfg::AUTO_RESTART),
                system_state: get(st::SYSTEM_STATE),
                update_time: get(st::UPDATE_TIME),
                container_id: get(st::CONTAINER_ID),
                container_version: get(st::CONTAINER_VERSION),
                set_owner: get(cfg::SET_OWNER),
                current_owner: get(st::CURRENT_OWNER),
                remote_state: get(st::REMOTE_STATE),
            }
        })
        .collect();
    json(&out)
}

/// Upstream's `_negate_bool_str`: `no_fallback_to_local` shown as "fallback".
fn negate_bool_str(v: &str) -> String {
    match v.to_lowercase().as_str() {
        "true" => "false".to_string(),
        "false" => "true".to_string(),
        other => other.to_string(),
    }
}

fn config_value(field: &str, v: &str) -> String {
    if field == cfg::NO_FALLBACK_TO_LOCAL {
        negate_bool_str(v)
    } else {
        v.to_string()
    }
}

/// `show feature config`.
pub fn feature_config_text(rows: &[FeatureRow]) -> String {
    echo(union_table(rows, CONFIG_COLUMNS, config_value))
}

#[derive(Serialize)]
struct ConfigJson<'a> {
    feature: &'a str,
    state: Option<&'a str>,
    auto_restart: Option<&'a str>,
    owner: &'a str,
    fallback: Option<String>,
}

/// `show feature config --json`.
pub fn feature_config_json(rows: &[FeatureRow]) -> String {
    let out: Vec<ConfigJson<'_>> = rows
        .iter()
        .map(|(name, f)| ConfigJson {
            feature: name,
            state: f.get(cfg::STATE).map(String::as_str),
            auto_restart: f.get(cfg::AUTO_RESTART).map(String::as_str),
            owner: f.get(cfg::SET_OWNER).map_or("local", String::as_str),
            fallback: f.get(cfg::NO_FALLBACK_TO_LOCAL).map(|v| negate_bool_str(v)),
        })
        .collect();
    json(&out)
}

/// `show feature autorestart`: fixed columns, `unknown` for a missing field, and (unlike the other
/// tables) tabulate's number parsing left on.
pub fn feature_autorestart_text(rows: &[FeatureRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|(name, f)| {
            vec![
                name.clone(),
                f.get(cfg::AUTO_RESTART)
                    .cloned()
                    .unwrap_or("unknown".into()),
            ]
        })
        .collect();
    echo(tabulate::simple(
        &["Feature", "AutoRestart"],
        &body,
        NumParse::Enabled,
    ))
}

#[derive(Serialize)]
struct AutorestartJson<'a> {
    feature: &'a str,
    auto_restart: Option<&'a str>,
}

/// `show feature autorestart --json`.
pub fn feature_autorestart_json(rows: &[FeatureRow]) -> String {
    let out: Vec<AutorestartJson<'_>> = rows
        .iter()
        .map(|(name, f)| AutorestartJson {
            feature: name,
            auto_restart: f.get(cfg::AUTO_RESTART).map(String::as_str),
        })
        .collect();
    json(&out)
}

/// `Feature <name>` not in CONFIG_DB.
pub fn feature_not_found(name: &str) -> String {
    format!("Can not find feature {name}\n")
}

fn single_row(headers: &[&str], row: Vec<String>) -> String {
    echo(tabulate::simple(headers, &[row], NumParse::Disabled))
}

fn or_default(f: &Fields, field: &str, default: &str) -> String {
    f.get(field).cloned().unwrap_or_else(|| default.to_string())
}

/// `show kubernetes server config`; `None` when the entry is absent or empty.
pub fn server_config_text(entry: Option<&Fields>) -> String {
    match entry {
        None => "Kubernetes server is not configured\n".to_string(),
        Some(f) => single_row(
            &["ip", "port", "insecure", "disable"],
            vec![
                or_default(f, server::IP, ""),
                or_default(f, server::PORT, DEFAULT_PORT),
                or_default(f, server::INSECURE, DEFAULT_INSECURE),
                or_default(f, server::DISABLE, DEFAULT_DISABLE),
            ],
        ),
    }
}

#[derive(Serialize)]
struct ServerConfigJson<'a> {
    ip: Option<&'a str>,
    port: String,
    insecure: String,
    disable: String,
}

/// `show kubernetes server config --json`: `null` when not configured.
pub fn server_config_json(entry: Option<&Fields>) -> String {
    json(&entry.map(|f| ServerConfigJson {
        ip: f.get(server::IP).map(String::as_str),
        port: or_default(f, server::PORT, DEFAULT_PORT),
        insecure: or_default(f, server::INSECURE, DEFAULT_INSECURE),
        disable: or_default(f, server::DISABLE, DEFAULT_DISABLE),
    }))
}

/// `show kubernetes server status`; `None` when there is no status entry.
pub fn server_status_text(entry: Option<&Fields>) -> String {
    match entry {
        None => "Kubernetes server has no status info\n".to_string(),
        Some(f) => single_row(
            &["ip", "port", "connected", "update-time"],
            vec![
                or_default(f, server_status::IP, ""),
                or_default(f, server_status::PORT, DEFAULT_PORT),
                or_default(f, server_status::CONNECTED, ""),
                or_default(f, server_status::UPDATE_TIME, ""),
            ],
        ),
    }
}

#[derive(Serialize)]
struct ServerStatusJson<'a> {
    ip: Option<&'a str>,
    port: String,
    connected: Option<&'a str>,
    update_time: Option<&'a str>,
}

/// `show kubernetes server status --json`: `null` when there is no status entry.
pub fn server_status_json(entry: Option<&Fields>) -> String {
    json(&entry.map(|f| ServerStatusJson {
        ip: f.get(server_status::IP).map(String::as_str),
        port: or_default(f, server_status::PORT, DEFAULT_PORT),
        connected: f.get(server_status::CONNECTED).map(String::as_str),
        update_time: f.get(server_status::UPDATE_TIME).map(String::as_str),
    }))
}

/// `show kubernetes labels`: one row per label, sorted by name.
pub fn labels_text(labels: &Fields) -> String {
    let body: Vec<Vec<String>> = labels
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    echo(tabulate::simple(
        &["name", "value"],
        &body,
        NumParse::Disabled,
    ))
}

/// `show kubernetes labels --json`: an object of name to value.
pub fn labels_json(labels: &Fields) -> String {
    json(labels)
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
    fn status_shows_the_union_of_fields_and_blanks_for_missing_ones() {
        let rows = vec![
            (
                "bgp".to_string(),
                fields(&[("state", "enabled"), ("set_owner", "local")]),
            ),
            (
                "snmp".to_string(),
                fields(&[
                    ("state", "enabled"),
                    ("current_owner", "kube"),
                    ("set_owner", "kube"),
                ]),
            ),
        ];
        assert_eq!(
            feature_status_text(&rows),
            "Feature    State    SetOwner    CurrentOwner\n\
             ---------  -------  ----------  --------------\n\
             bgp        enabled  local\n\
             snmp       enabled  kube        kube\n"
        );
    }

    #[test]
    fn config_negates_fallback_and_defaults_owner_to_local() {
        let rows = vec![
            (
                "a".to_string(),
                fields(&[("state", "enabled"), ("no_fallback_to_local", "TRUE")]),
            ),
            (
                "b".to_string(),
                fields(&[("state", "x"), ("set_owner", "kube")]),
            ),
            (
                "c".to_string(),
                fields(&[("no_fallback_to_local", "Maybe")]),
            ),
        ];
        assert_eq!(
            feature_config_text(&rows),
            "Feature    State    Owner    fallback\n\
             ---------  -------  -------  ----------\n\
             a          enabled  local    false\n\
             b          x        kube\n\
             c                   local    maybe\n"
        );
    }

    #[test]
    fn autorestart_shows_unknown_for_a_missing_field() {
        let rows = vec![
            ("bar".to_string(), fields(&[])),
            ("bgp".to_string(), fields(&[("auto_restart", "enabled")])),
        ];
        assert_eq!(
            feature_autorestart_text(&rows),
            "Feature    AutoRestart\n---------  -------------\nbar        unknown\nbgp        enabled\n"
        );
    }

    #[test]
    fn server_config_shows_a_missing_ip_as_empty() {
        let f = fields(&[("disable", "True")]);
        assert_eq!(
            server_config_text(Some(&f)),
            "ip    port    insecure    disable\n----  ------  ----------  ---------\n      6443    False       True\n"
        );
        assert_eq!(
            server_config_text(None),
            "Kubernetes server is not configured\n"
        );
    }

    #[test]
    fn labels_table_is_sorted_and_empty_labels_print_headers_only() {
        assert_eq!(
            labels_text(&Fields::new()),
            "name    value\n------  -------\n"
        );
        let f = fields(&[("zz", "1"), ("hwsku", "Force10-S6000")]);
        assert_eq!(
            labels_text(&f),
            "name    value\n------  -------------\nhwsku   Force10-S6000\nzz      1\n"
        );
    }

    #[test]
    fn json_forms_use_null_for_absent_fields() {
        let rows = vec![("bgp".to_string(), fields(&[("state", "enabled")]))];
        let v: serde_json::Value = serde_json::from_str(&feature_config_json(&rows)).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"feature": "bgp", "state": "enabled", "auto_restart": null,
                                "owner": "local", "fallback": null}])
        );
        assert_eq!(server_status_json(None), "null\n");
    }
}
