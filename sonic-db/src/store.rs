//! `RedisFeatureStore`: the core's `FeatureStore` and `ManagerStateStore` ports on CONFIG_DB and
//! STATE_DB of one namespace, plus the typed reads the daemon and the CLI need at start.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sonic_feature_core::labels::LabelJournal;
use sonic_feature_core::manager::{Clocks, NodeInfo};
use sonic_feature_core::model::{
    FeatureConfig, FeatureName, FeatureStatus, ImageMgmt, LabelKey, NodeLabels, ServerConfig,
    ServerStatus, SetOwner, StatusUpdate,
};
use sonic_feature_core::ports::{ErrorKind, FeatureStore, ManagerStateStore, PortError};

use crate::config::{Namespace, SonicDbConfig};
use crate::db::{Fields, SonicDb, drop_null};
use crate::error::DbError;
use crate::schema::{self, Origin, SchemaError, dbs};

/// CONFIG_DB and STATE_DB of one namespace, speaking the core's model types.
#[derive(Debug, Clone)]
pub struct RedisFeatureStore {
    config: SonicDb,
    state: SonicDb,
}

/// A database error as a port error: transient when retrying may help. The context carries the
/// whole message because the core prints only the context.
fn db_err(e: DbError) -> PortError {
    let kind = if e.is_transient() {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    };
    PortError {
        kind,
        context: e.to_string(),
        source: Some(Box::new(e)),
    }
}

/// A malformed value is permanent: only a change of the data helps.
fn schema_err(e: SchemaError) -> PortError {
    PortError::permanent(e.to_string()).with_source(e)
}

impl RedisFeatureStore {
    /// Connects to CONFIG_DB and STATE_DB of `namespace`.
    pub async fn open(config: &SonicDbConfig, namespace: &Namespace) -> Result<Self, DbError> {
        Ok(Self::new(
            config.open(namespace, dbs::CONFIG_DB).await?,
            config.open(namespace, dbs::STATE_DB).await?,
        ))
    }

    /// A store over already open databases.
    pub fn new(config_db: SonicDb, state_db: SonicDb) -> Self {
        RedisFeatureStore {
            config: config_db,
            state: state_db,
        }
    }

    /// CONFIG_DB.
    pub fn config_db(&self) -> &SonicDb {
        &self.config
    }

    /// STATE_DB.
    pub fn state_db(&self) -> &SonicDb {
        &self.state
    }

    /// Reads one of ctrmgrd's own STATE_DB entries and parses it with `parse`.
    async fn read_state<T>(
        &self,
        table: &str,
        key: &str,
        parse: impl Fn(&Origin<'_>, &Fields) -> Result<T, SchemaError>,
    ) -> Result<T, PortError> {
        let fields = self.state.get_entry(table, key).await.map_err(db_err)?;
        parse(&Self::origin(&self.state, table, key), &fields).map_err(schema_err)
    }

    /// Replaces one of ctrmgrd's own STATE_DB entries with `fields` (`what`: for the message
    /// when they could not be encoded).
    async fn write_state(
        &self,
        table: &str,
        key: &str,
        what: &str,
        fields: Result<Fields, serde_json::Error>,
    ) -> Result<(), PortError> {
        let fields = fields.map_err(|e| {
            PortError::permanent(format!(
                "cannot encode {what} for {} {}: {e}",
                self.state.label(),
                self.state.redis_key(table, key)
            ))
            .with_source(e)
        })?;
        self.state
            .set_entry(table, key, &fields)
            .await
            .map_err(db_err)
    }

    fn origin<'a>(db: &'a SonicDb, table: &'a str, key: &'a str) -> Origin<'a> {
        Origin {
            db: db.label(),
            table,
            key,
        }
    }

    /// CONFIG_DB `KUBERNETES_MASTER|SERVER` (defaults when absent).
    pub async fn server_config(&self) -> Result<ServerConfig, PortError> {
        use schema::server_config as t;
        let fields = self
            .config
            .get_entry(t::TABLE, t::KEY)
            .await
            .map_err(db_err)?;
        schema::parse_server_config(&Self::origin(&self.config, t::TABLE, t::KEY), &fields)
            .map_err(schema_err)
    }

    /// CONFIG_DB `IMAGE_MGMT` (all entries).
    pub async fn image_mgmt(&self) -> Result<ImageMgmt, PortError> {
        let table = self
            .config
            .get_table(schema::image_mgmt::TABLE)
            .await
            .map_err(db_err)?;
        schema::parse_image_mgmt(self.config.label(), &table).map_err(schema_err)
    }

    /// The node's self-description from CONFIG_DB `DEVICE_METADATA|localhost` and the SONiC
    /// version (read by the caller from `sonic_version.yml`).
    pub async fn node_info(&self, sonic_version: &str) -> Result<NodeInfo, PortError> {
        use schema::device_metadata as t;
        let fields = self
            .config
            .get_entry(t::TABLE, t::KEY)
            .await
            .map_err(db_err)?;
        Ok(schema::node_info(sonic_version, &fields))
    }

    /// The features configured in CONFIG_DB `FEATURE`, in key order. Keys that are not valid
    /// feature names are errors.
    pub async fn feature_names(&self) -> Result<Vec<FeatureName>, PortError> {
        let table = schema::feature_config::TABLE;
        let keys = self.config.keys(table).await.map_err(db_err)?;
        keys.iter()
            .map(|k| {
                FeatureName::parse(k).map_err(|reason| {
                    schema_err(SchemaError::Key {
                        db: self.config.label().to_string(),
                        key: self.config.redis_key(table, k),
                        reason,
                    })
                })
            })
            .collect()
    }
}

#[async_trait]
impl FeatureStore for RedisFeatureStore {
    async fn feature_config(&self, f: &FeatureName) -> Result<Option<FeatureConfig>, PortError> {
        let table = schema::feature_config::TABLE;
        let raw = self
            .config
            .get_entry_raw(table, f.as_str())
            .await
            .map_err(db_err)?;
        if raw.is_empty() {
            return Ok(None);
        }
        schema::parse_feature_config(
            &Self::origin(&self.config, table, f.as_str()),
            &drop_null(raw),
        )
        .map(Some)
        .map_err(schema_err)
    }

    async fn feature_status(&self, f: &FeatureName) -> Result<FeatureStatus, PortError> {
        let table = schema::feature_status::TABLE;
        let fields = self
            .state
            .get_entry(table, f.as_str())
            .await
            .map_err(db_err)?;
        schema::parse_feature_status(&Self::origin(&self.state, table, f.as_str()), &fields)
            .map_err(schema_err)
    }

    async fn update_feature_status(
        &self,
        f: &FeatureName,
        u: &StatusUpdate,
    ) -> Result<(), PortError> {
        let fields = schema::status_update_fields(u);
        // mod_entry with no fields would delete the entry; an empty update writes nothing.
        if fields.is_empty() {
            return Ok(());
        }
        self.state
            .mod_entry(schema::feature_status::TABLE, f.as_str(), &fields)
            .await
            .map_err(db_err)
    }

    async fn server_status(&self) -> Result<ServerStatus, PortError> {
        use schema::server_status as t;
        let fields = self
            .state
            .get_entry(t::TABLE, t::KEY)
            .await
            .map_err(db_err)?;
        schema::parse_server_status(&Self::origin(&self.state, t::TABLE, t::KEY), &fields)
            .map_err(schema_err)
    }

    async fn desired_labels(&self) -> Result<NodeLabels, PortError> {
        use schema::kube_labels as t;
        let fields = self
            .state
            .get_entry(t::TABLE, t::KEY)
            .await
            .map_err(db_err)?;
        schema::parse_node_labels(&Self::origin(&self.state, t::TABLE, t::KEY), &fields)
            .map_err(schema_err)
    }

    async fn update_desired_labels(
        &self,
        set: &NodeLabels,
        remove: &[LabelKey],
    ) -> Result<(), PortError> {
        use schema::kube_labels as t;
        let remove: Vec<&str> = remove.iter().map(LabelKey::as_str).collect();
        self.state
            .update_fields(t::TABLE, t::KEY, &schema::node_labels_fields(set), &remove)
            .await
            .map_err(db_err)
    }
}

#[async_trait]
impl ManagerStateStore for RedisFeatureStore {
    async fn write_server_status(&self, status: &ServerStatus) -> Result<(), PortError> {
        use schema::server_status as t;
        self.state
            .set_entry(t::TABLE, t::KEY, &schema::server_status_fields(status))
            .await
            .map_err(db_err)
    }

    async fn load_label_journal(&self) -> Result<Option<LabelJournal>, PortError> {
        use schema::label_journal as t;
        self.read_state(t::TABLE, t::KEY, schema::parse_label_journal)
            .await
    }

    async fn save_label_journal(&self, journal: &LabelJournal) -> Result<(), PortError> {
        use schema::label_journal as t;
        let fields = schema::label_journal_fields(journal);
        self.write_state(t::TABLE, t::KEY, "the label journal", fields)
            .await
    }

    async fn note_pending_restart(
        &self,
        f: &FeatureName,
        owner: SetOwner,
    ) -> Result<(), PortError> {
        use schema::pending_restarts as t;
        let fields = Fields::from([(f.to_string(), owner.as_str().to_owned())]);
        self.state
            .mod_entry(t::TABLE, t::KEY, &fields)
            .await
            .map_err(db_err)
    }

    async fn clear_pending_restart(&self, f: &FeatureName) -> Result<(), PortError> {
        use schema::pending_restarts as t;
        self.state
            .hdel(t::TABLE, t::KEY, &[f.as_str()])
            .await
            .map_err(db_err)
    }

    async fn save_clocks(&self, clocks: &Clocks) -> Result<(), PortError> {
        use schema::clocks as t;
        let fields = schema::clocks_fields(clocks);
        self.write_state(t::TABLE, t::KEY, "the clocks", fields)
            .await
    }

    async fn load_clocks(&self) -> Result<Option<Clocks>, PortError> {
        use schema::clocks as t;
        self.read_state(t::TABLE, t::KEY, schema::parse_clocks)
            .await
    }

    async fn load_pending_restarts(&self) -> Result<BTreeMap<FeatureName, SetOwner>, PortError> {
        use schema::pending_restarts as t;
        self.read_state(t::TABLE, t::KEY, schema::parse_pending_restarts)
            .await
    }
}
