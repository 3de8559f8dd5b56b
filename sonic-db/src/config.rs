//! `database_config.json` and `database_global.json`: where each SONiC database lives, per namespace.
//!
//! Mirrors sonic-swss-common's `SonicDBConfig`: a per-namespace file maps database names
//! (`CONFIG_DB`, `STATE_DB`, ...) to an id, a key separator and a Redis instance (hostname, port,
//! unix socket); on multi-ASIC systems a global file lists the per-namespace files.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::db::SonicDb;
use crate::error::DbError;

/// Default location of the host's `database_config.json` (sonic-swss-common `dbconnector.h`).
pub const DEFAULT_CONFIG_PATH: &str = "/var/run/redis/sonic-db/database_config.json";
/// Default location of the multi-ASIC `database_global.json`.
pub const DEFAULT_GLOBAL_CONFIG_PATH: &str = "/var/run/redis/sonic-db/database_global.json";
/// Environment variable overriding [`DEFAULT_CONFIG_PATH`].
pub const CONFIG_ENV: &str = "SONIC_DB_CONFIG";
/// Environment variable overriding [`DEFAULT_GLOBAL_CONFIG_PATH`].
pub const GLOBAL_CONFIG_ENV: &str = "SONIC_DB_GLOBAL_CONFIG";

/// Errors reading or using a database configuration file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable).
    #[error("cannot read database config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON or does not have the expected shape.
    #[error("invalid database config {}: line {line} column {column}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// 1-based column of the error (0 when unknown).
        column: usize,
        /// What serde_json said.
        message: String,
    },
    /// A database refers to an instance the file does not define.
    #[error("invalid database config {}: database {db} uses unknown instance {instance}", path.display())]
    UnknownInstance {
        /// The file.
        path: PathBuf,
        /// The database entry.
        db: String,
        /// The instance it names.
        instance: String,
    },
    /// The caller asked for a database the file does not define.
    #[error("unknown database {name} in {}", path.display())]
    UnknownDb {
        /// The file.
        path: PathBuf,
        /// The requested database name.
        name: String,
    },
    /// The caller asked for a namespace that no loaded file describes.
    #[error("unknown namespace {namespace} (known: {known})")]
    UnknownNamespace {
        /// The requested namespace.
        namespace: Namespace,
        /// The namespaces that are configured, comma separated.
        known: String,
    },
    /// The global file lists the same namespace twice.
    #[error("invalid database config {}: namespace {namespace} is included twice", path.display())]
    DuplicateNamespace {
        /// The global file.
        path: PathBuf,
        /// The namespace.
        namespace: Namespace,
    },
}

/// A network namespace holding one set of SONiC databases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// The host (default) namespace.
    Host,
    /// An ASIC namespace such as `asic0`.
    Asic(String),
}

impl Namespace {
    /// Parses a namespace name as SONiC tools take it: empty (or `host`) is the host namespace.
    pub fn from_name(name: &str) -> Self {
        if name.is_empty() || name == "host" {
            Namespace::Host
        } else {
            Namespace::Asic(name.to_string())
        }
    }

    /// The namespace name as SONiC writes it: empty for the host.
    pub fn name(&self) -> &str {
        match self {
            Namespace::Host => "",
            Namespace::Asic(name) => name,
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Namespace::Host => f.write_str("host"),
            Namespace::Asic(name) => f.write_str(name),
        }
    }
}

/// Host first, then ASIC namespaces in natural order (`asic2` before `asic10`), as upstream's
/// natsorted `/run/netns` listing.
impl Ord for Namespace {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Namespace::Host, Namespace::Host) => Ordering::Equal,
            (Namespace::Host, Namespace::Asic(_)) => Ordering::Less,
            (Namespace::Asic(_), Namespace::Host) => Ordering::Greater,
            (Namespace::Asic(a), Namespace::Asic(b)) => natural_cmp(a, b),
        }
    }
}

impl PartialOrd for Namespace {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares strings so that runs of digits compare by value.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, sa), (db, sb)) in ca.iter().zip(cb.iter()) {
        let ord = if *da && *db {
            let (ta, tb) = (sa.trim_start_matches('0'), sb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// One Redis server as `database_config.json` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Instance {
    /// TCP host name or address.
    pub hostname: String,
    /// TCP port.
    pub port: u16,
    /// Unix socket, preferred over TCP when it exists.
    #[serde(default)]
    pub unix_socket_path: Option<PathBuf>,
    /// Upstream's `persistence_for_warm_boot` flag, kept for completeness.
    #[serde(default)]
    pub persistence_for_warm_boot: Option<String>,
}

/// One logical database: its number, key separator and instance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DatabaseInfo {
    /// Redis database number (`SELECT`).
    pub id: u32,
    /// Separator between table name and key (`|` or `:`).
    pub separator: String,
    /// Name of the instance in `INSTANCES`.
    pub instance: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct RawDbConfig {
    instances: BTreeMap<String, Instance>,
    databases: BTreeMap<String, DatabaseInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct RawGlobalConfig {
    includes: Vec<RawInclude>,
}

#[derive(Deserialize)]
struct RawInclude {
    include: PathBuf,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    container_name: Option<String>,
}

/// One parsed `database_config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    path: PathBuf,
    instances: BTreeMap<String, Instance>,
    databases: BTreeMap<String, DatabaseInfo>,
}

impl DbConfig {
    /// Reads and validates a `database_config.json`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw: RawDbConfig = read_json(path)?;
        Self::from_parts(path.to_path_buf(), raw)
    }

    /// Parses a `database_config.json` already in memory; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawDbConfig = parse_json(path, text)?;
        Self::from_parts(path.to_path_buf(), raw)
    }

    fn from_parts(path: PathBuf, raw: RawDbConfig) -> Result<Self, ConfigError> {
        for (db, info) in &raw.databases {
            if !raw.instances.contains_key(&info.instance) {
                return Err(ConfigError::UnknownInstance {
                    path,
                    db: db.clone(),
                    instance: info.instance.clone(),
                });
            }
        }
        Ok(DbConfig {
            path,
            instances: raw.instances,
            databases: raw.databases,
        })
    }

    /// The file this configuration came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database named `name` (`CONFIG_DB`, ...).
    pub fn database(&self, name: &str) -> Result<&DatabaseInfo, ConfigError> {
        self.databases
            .get(name)
            .ok_or_else(|| ConfigError::UnknownDb {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    /// The instance serving the database named `name`.
    pub fn instance_of(&self, name: &str) -> Result<&Instance, ConfigError> {
        let info = self.database(name)?;
        // Presence was checked when the file was loaded.
        self.instances
            .get(&info.instance)
            .ok_or_else(|| ConfigError::UnknownInstance {
                path: self.path.clone(),
                db: name.to_string(),
                instance: info.instance.clone(),
            })
    }

    /// Names of all databases in the file, sorted.
    pub fn database_names(&self) -> impl Iterator<Item = &str> {
        self.databases.keys().map(String::as_str)
    }
}

/// The databases of every namespace on this system: the host's and, on multi-ASIC systems,
/// one set per ASIC namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SonicDbConfig {
    namespaces: BTreeMap<Namespace, DbConfig>,
}

impl SonicDbConfig {
    /// Loads the configuration the way SONiC tools find it.
    ///
    /// The global file is `$SONIC_DB_GLOBAL_CONFIG` when set; otherwise, only when
    /// `$SONIC_DB_CONFIG` is not set either, [`DEFAULT_GLOBAL_CONFIG_PATH`] if it exists (so that
    /// pointing a tool at a private `database_config.json` never mixes in the host's
    /// namespaces). The host namespace comes from the global file's host include when there is
    /// one, else from `$SONIC_DB_CONFIG` or [`DEFAULT_CONFIG_PATH`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let (single, global) = resolve_paths(
            std::env::var_os(CONFIG_ENV).map(PathBuf::from),
            std::env::var_os(GLOBAL_CONFIG_ENV).map(PathBuf::from),
            Path::new(DEFAULT_GLOBAL_CONFIG_PATH).exists(),
        );
        Self::from_paths(&single, global.as_deref())
    }

    /// Loads `global` when given, taking the host namespace from its host include or, when it
    /// has none, from `single`; without `global`, loads `single` alone.
    pub fn from_paths(single: &Path, global: Option<&Path>) -> Result<Self, ConfigError> {
        match global {
            Some(global) => {
                let mut cfg = Self::load_global(global)?;
                if let std::collections::btree_map::Entry::Vacant(e) =
                    cfg.namespaces.entry(Namespace::Host)
                {
                    e.insert(DbConfig::load(single)?);
                }
                Ok(cfg)
            }
            None => Self::load(single),
        }
    }

    /// A single-namespace system described by one `database_config.json`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Ok(Self::single(DbConfig::load(path)?))
    }

    /// A single-namespace system from an already parsed file.
    pub fn single(host: DbConfig) -> Self {
        SonicDbConfig {
            namespaces: BTreeMap::from([(Namespace::Host, host)]),
        }
    }

    /// A multi-ASIC system described by `database_global.json`. Include paths are relative to
    /// the global file's directory; an include without `namespace` is the host; includes with
    /// only a `container_name` (DPUs) are not namespaces and are skipped.
    pub fn load_global(path: &Path) -> Result<Self, ConfigError> {
        let raw: RawGlobalConfig = read_json(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut namespaces = BTreeMap::new();
        for inc in raw.includes {
            let ns = match (&inc.namespace, &inc.container_name) {
                (Some(ns), _) => Namespace::from_name(ns),
                (None, Some(_)) => continue,
                (None, None) => Namespace::Host,
            };
            if namespaces.contains_key(&ns) {
                return Err(ConfigError::DuplicateNamespace {
                    path: path.to_path_buf(),
                    namespace: ns,
                });
            }
            let file = base.join(&inc.include);
            namespaces.insert(ns, DbConfig::load(&file)?);
        }
        Ok(SonicDbConfig { namespaces })
    }

    /// All configured namespaces, host first, then ASICs in natural order.
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.namespaces.keys().cloned().collect()
    }

    /// The ASIC namespaces only (empty on a single-ASIC system).
    pub fn asic_namespaces(&self) -> Vec<Namespace> {
        self.namespaces
            .keys()
            .filter(|ns| **ns != Namespace::Host)
            .cloned()
            .collect()
    }

    /// The configuration of one namespace.
    pub fn db_config(&self, namespace: &Namespace) -> Result<&DbConfig, ConfigError> {
        self.namespaces
            .get(namespace)
            .ok_or_else(|| ConfigError::UnknownNamespace {
                namespace: namespace.clone(),
                known: self
                    .namespaces
                    .keys()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Connects to database `db` (`CONFIG_DB`, `STATE_DB`, ...) of `namespace`.
    pub async fn open(&self, namespace: &Namespace, db: &str) -> Result<SonicDb, DbError> {
        SonicDb::open(self.db_config(namespace)?, namespace.clone(), db).await
    }
}

/// Which files [`SonicDbConfig::from_env`] reads, from the environment variables' values.
fn resolve_paths(
    single: Option<PathBuf>,
    global: Option<PathBuf>,
    default_global_exists: bool,
) -> (PathBuf, Option<PathBuf>) {
    let global = match global {
        Some(p) => Some(p),
        None if single.is_none() && default_global_exists => {
            Some(PathBuf::from(DEFAULT_GLOBAL_CONFIG_PATH))
        }
        None => None,
    };
    (
        single.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
        global,
    )
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_json(path, &text)
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    serde_json::from_str(text).map_err(|e| ConfigError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        // serde_json appends " at line L column C"; the position has its own fields.
        message: match e.to_string().rsplit_once(" at line ") {
            Some((msg, _)) if e.line() > 0 => msg.to_string(),
            _ => e.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_sort_host_first_then_naturally() {
        let mut v = [
            Namespace::from_name("asic10"),
            Namespace::from_name("asic2"),
            Namespace::Host,
            Namespace::from_name("asic0"),
        ];
        v.sort();
        let names: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["host", "asic0", "asic2", "asic10"]);
    }

    #[test]
    fn environment_selects_files_without_mixing_in_the_hosts_namespaces() {
        let p = |s: &str| Some(PathBuf::from(s));
        // Nothing set: the defaults, the global file only if it exists.
        assert_eq!(
            resolve_paths(None, None, false),
            (PathBuf::from(DEFAULT_CONFIG_PATH), None)
        );
        assert_eq!(
            resolve_paths(None, None, true),
            (
                PathBuf::from(DEFAULT_CONFIG_PATH),
                p(DEFAULT_GLOBAL_CONFIG_PATH)
            )
        );
        // A private database_config.json never picks up the host's default global file.
        assert_eq!(
            resolve_paths(p("/t/db.json"), None, true),
            (PathBuf::from("/t/db.json"), None)
        );
        assert_eq!(
            resolve_paths(p("/t/db.json"), p("/t/global.json"), true),
            (PathBuf::from("/t/db.json"), p("/t/global.json"))
        );
        assert_eq!(
            resolve_paths(None, p("/t/global.json"), false),
            (PathBuf::from(DEFAULT_CONFIG_PATH), p("/t/global.json"))
        );
    }

    #[test]
    fn database_with_unknown_instance_is_rejected_naming_both() {
        let text = r#"{"INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": 6379}},
                       "DATABASES": {"CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis9"}}}"#;
        let err = DbConfig::parse(Path::new("/x/db.json"), text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid database config /x/db.json: database CONFIG_DB uses unknown instance redis9"
        );
    }
}
