//! The `show feature ...` and `show kubernetes ...` commands: read the host databases in as few
//! round trips as possible (one connection per database, tables read with `KEYS` plus one
//! pipeline, independent reads in parallel) and hand the data to [`crate::render`].

use sonic_db::schema::dbs::{CONFIG_DB, STATE_DB};
use sonic_db::schema::{feature_config, feature_status, kube_labels, server_config, server_status};
use sonic_db::{DbError, Fields, Namespace, SonicDb, SonicDbConfig};

use crate::click::{Exit, Invocation};
use crate::natsort;
use crate::render::{self, FeatureRow};
use crate::tree::{ShowAction, arg};

/// Runs a resolved `show` command line.
pub async fn run(inv: &Invocation<ShowAction>, dbs: &SonicDbConfig) -> Result<Exit, DbError> {
    let as_json = inv.values.flag(arg::JSON);
    // Python treats an empty FEATURE_NAME as "no name" (`if feature_name:`).
    let name = inv.values.arg(arg::FEATURE_NAME).filter(|n| !n.is_empty());
    let host = Namespace::Host;
    let text = match inv.action {
        ShowAction::FeatureStatus => {
            let (cfg, state) =
                tokio::try_join!(dbs.open(&host, CONFIG_DB), dbs.open(&host, STATE_DB))?;
            let rows = match name {
                Some(n) => match feature_status_one(&cfg, &state, n).await? {
                    Some(row) => vec![row],
                    None => return Ok(Exit::stdout(1, render::feature_not_found(n))),
                },
                None => {
                    let (cfg_table, state_table) = tokio::try_join!(
                        cfg.get_table(feature_config::TABLE),
                        state.get_table(feature_status::TABLE)
                    )?;
                    merge_status(cfg_table, state_table)
                }
            };
            if as_json {
                render::feature_status_json(&rows)
            } else {
                render::feature_status_text(&rows)
            }
        }
        ShowAction::FeatureConfig | ShowAction::FeatureAutorestart => {
            let cfg = dbs.open(&host, CONFIG_DB).await?;
            let rows = match name {
                Some(n) => match config_entry(&cfg, n).await? {
                    Some(fields) => vec![(n.to_string(), fields)],
                    None => return Ok(Exit::stdout(1, render::feature_not_found(n))),
                },
                None => sorted_rows(cfg.get_table(feature_config::TABLE).await?),
            };
            match (inv.action, as_json) {
                (ShowAction::FeatureConfig, false) => render::feature_config_text(&rows),
                (ShowAction::FeatureConfig, true) => render::feature_config_json(&rows),
                (_, false) => render::feature_autorestart_text(&rows),
                (_, true) => render::feature_autorestart_json(&rows),
            }
        }
        ShowAction::KubeServerConfig => {
            let cfg = dbs.open(&host, CONFIG_DB).await?;
            let entry = non_empty(
                cfg.get_entry(server_config::TABLE, server_config::KEY)
                    .await?,
            );
            if as_json {
                render::server_config_json(entry.as_ref())
            } else {
                render::server_config_text(entry.as_ref())
            }
        }
        ShowAction::KubeServerStatus => {
            let state = dbs.open(&host, STATE_DB).await?;
            let entry = non_empty(
                state
                    .get_entry(server_status::TABLE, server_status::KEY)
                    .await?,
            );
            if as_json {
                render::server_status_json(entry.as_ref())
            } else {
                render::server_status_text(entry.as_ref())
            }
        }
        ShowAction::KubeLabels => {
            let state = dbs.open(&host, STATE_DB).await?;
            let labels = state
                .get_entry(kube_labels::TABLE, kube_labels::KEY)
                .await?;
            if as_json {
                render::labels_json(&labels)
            } else {
                render::labels_text(&labels)
            }
        }
    };
    Ok(Exit::stdout(0, text))
}

/// A CONFIG_DB feature entry, `None` when the key does not exist. An entry holding only the
/// `NULL` placeholder exists with no fields, as in upstream's `get_table`. EXISTS and HGETALL go
/// out together on the multiplexed connection: one round trip.
async fn config_entry(cfg: &SonicDb, name: &str) -> Result<Option<Fields>, DbError> {
    let (exists, fields) = tokio::try_join!(
        cfg.exists(feature_config::TABLE, name),
        cfg.get_entry(feature_config::TABLE, name)
    )?;
    Ok(exists.then_some(fields))
}

async fn feature_status_one(
    cfg: &SonicDb,
    state: &SonicDb,
    name: &str,
) -> Result<Option<FeatureRow>, DbError> {
    let (config, status) = tokio::try_join!(
        config_entry(cfg, name),
        state.get_entry(feature_status::TABLE, name)
    )?;
    Ok(config.map(|config| (name.to_string(), overlay(status, config))))
}

/// STATE_DB fields overridden by CONFIG_DB fields of the same name (upstream's `data.update`).
pub fn overlay(mut status: Fields, config: Fields) -> Fields {
    status.extend(config);
    status
}

/// Every CONFIG_DB feature in natural order, each with its STATE_DB fields overlaid by its
/// CONFIG_DB fields; features only in STATE_DB are not listed.
pub fn merge_status(
    cfg: std::collections::BTreeMap<String, Fields>,
    mut state: std::collections::BTreeMap<String, Fields>,
) -> Vec<FeatureRow> {
    let rows = cfg
        .into_iter()
        .map(|(name, config)| {
            let status = state.remove(&name).unwrap_or_default();
            (name, overlay(status, config))
        })
        .collect();
    natsorted(rows)
}

fn sorted_rows(table: std::collections::BTreeMap<String, Fields>) -> Vec<FeatureRow> {
    natsorted(table.into_iter().collect())
}

fn natsorted(mut rows: Vec<FeatureRow>) -> Vec<FeatureRow> {
    rows.sort_by(|a, b| natsort::compare(&a.0, &b.0));
    rows
}

fn non_empty(fields: Fields) -> Option<Fields> {
    (!fields.is_empty()).then_some(fields)
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
    fn config_fields_hide_state_fields_of_the_same_name() {
        let merged = overlay(
            fields(&[("state", "failed"), ("system_state", "up")]),
            fields(&[("state", "enabled")]),
        );
        assert_eq!(
            merged,
            fields(&[("state", "enabled"), ("system_state", "up")])
        );
    }

    #[test]
    fn features_only_in_state_db_are_not_listed_and_order_is_natural() {
        let cfg = [
            ("bgp10", fields(&[])),
            ("bgp9", fields(&[])),
            ("Zeta", fields(&[])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let state = [("ghost", fields(&[("state", "enabled")]))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let names: Vec<String> = merge_status(cfg, state)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["Zeta", "bgp9", "bgp10"]);
    }
}
