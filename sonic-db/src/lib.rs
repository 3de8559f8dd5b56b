//! SONiC's Redis databases as SONiC tools see them.
//!
//! - [`config`]: `database_config.json` / `database_global.json`, namespaces
//!   ([`SonicDbConfig::from_env`] honours `SONIC_DB_CONFIG` and `SONIC_DB_GLOBAL_CONFIG`).
//! - [`SonicDb`]: a connection to one database (unix socket preferred, else TCP) with
//!   ConfigDBConnector's table operations (`get_entry`, `set_entry`, `mod_entry`, `del_entry`,
//!   `keys`, `get_table`, ...).
//! - [`Subscription`]: SubscriberStateTable-like table subscriptions with initial replay and
//!   transparent reconnect.
//! - [`schema`]: the names of the tables and fields this project uses and their conversions to
//!   the core's model types; [`RedisFeatureStore`] implements the core's `FeatureStore` and
//!   `ManagerStateStore` ports with them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sonic_db::DbError> {
//! use sonic_db::{Namespace, SonicDbConfig};
//! let config = SonicDbConfig::from_env()?;
//! let db = config.open(&Namespace::Host, "CONFIG_DB").await?;
//! let swss = db.get_entry("FEATURE", "swss").await?;
//! println!("{:?}", swss.get("state"));
//! # Ok(()) }
//! ```

pub mod config;
mod db;
mod error;
pub mod schema;
mod store;
pub mod subscribe;
pub mod typed;

pub use config::{ConfigError, DbConfig, Namespace, SonicDbConfig};
pub use db::{Fields, NULL_FIELD, SonicDb};
pub use error::DbError;
pub use schema::SchemaError;
pub use store::RedisFeatureStore;
pub use subscribe::{LinkState, SubscribeOptions, Subscription, TableEvent, TableOp};
pub use typed::FieldValue;
