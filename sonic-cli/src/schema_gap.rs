//! Transitional names for `src/install`, which still imports them from here; everything else uses
//! `sonic_db::schema` directly. Remove once `install` imports `sonic_db::schema`.

pub use sonic_db::schema::dbs::CONFIG_DB;
pub use sonic_db::schema::feature_config::TABLE as FEATURE;
pub use sonic_db::schema::feature_config as feature;
