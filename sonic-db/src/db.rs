//! A connection to one SONiC database and its table operations with SONiC's conventions.
//!
//! Follows sonic-swss-common's `ConfigDBConnector`: keys are `<TABLE><sep><key>` with the table
//! upper-cased, an entry without fields is stored as the placeholder `NULL`=`NULL`, and list
//! values live in fields named `name@` (see [`crate::typed`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

use crate::config::{DatabaseInfo, DbConfig, Instance, Namespace};
use crate::error::DbError;
use crate::subscribe::{SubscribeOptions, Subscription};
use crate::typed::{FieldValue, raw_to_typed};

/// The fields of one entry, sorted by name.
pub type Fields = BTreeMap<String, String>;

/// The field ConfigDBConnector writes into an entry that has no fields, and drops when reading.
pub const NULL_FIELD: &str = "NULL";

/// How long connecting (including the handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one command may take; generous because `KEYS` on a big table is slow.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Replaces a hash's fields atomically in one round trip: HSET the given fields, then HDEL the
/// others, the same commands (and so the same keyspace notifications) as ConfigDBConnector's
/// `set_entry`. A script rather than WATCH/MULTI/EXEC because the connection is multiplexed and
/// shared, so a WATCH could be consumed by another task's transaction. Arguments are sent in
/// chunks because Lua's `unpack` has a stack limit of about 8000 values.
const REPLACE_SCRIPT: &str = r"
local key = KEYS[1]
local keep = {}
for i = 1, #ARGV, 2 do keep[ARGV[i]] = true end
for i = 1, #ARGV, 1000 do
  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local stale = {}
for _, f in ipairs(redis.call('HKEYS', key)) do
  if not keep[f] then stale[#stale + 1] = f end
end
for i = 1, #stale, 1000 do
  redis.call('HDEL', key, unpack(stale, i, math.min(i + 999, #stale)))
end
return #stale
";

/// Where one database lives, resolved again at every connect so that a unix socket appearing
/// or disappearing (server restart) is noticed.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) info: DatabaseInfo,
    pub(crate) namespace: Namespace,
    instance: Instance,
}

impl Target {
    /// The address to use now and a description of it for error messages.
    fn address(&self) -> (ConnectionAddr, String) {
        let tcp = || ConnectionAddr::Tcp(self.instance.hostname.clone(), self.instance.port);
        let host_port = format!("{}:{}", self.instance.hostname, self.instance.port);
        match &self.instance.unix_socket_path {
            Some(sock) if sock.exists() => (
                ConnectionAddr::Unix(sock.clone()),
                sock.display().to_string(),
            ),
            Some(sock) => (
                tcp(),
                format!(
                    "{host_port} (unix socket {} does not exist)",
                    sock.display()
                ),
            ),
            None => (tcp(), host_port),
        }
    }

    fn client(&self) -> Result<(redis::Client, String), DbError> {
        let (addr, endpoint) = self.address();
        let connect_err = |source| DbError::Connect {
            endpoint: endpoint.clone(),
            db: self.label.clone(),
            source,
        };
        let info = addr
            .into_connection_info()
            .map_err(connect_err)?
            .set_redis_settings(
                RedisConnectionInfo::default()
                    .set_db(i64::from(self.info.id))
                    // One less round trip per connect: a short-lived CLI pays for every command.
                    .set_skip_set_lib_name(),
            );
        let client = redis::Client::open(info).map_err(connect_err)?;
        Ok((client, endpoint))
    }

    /// Opens a multiplexed connection with the database selected.
    pub(crate) async fn connect(&self) -> Result<MultiplexedConnection, DbError> {
        let (client, endpoint) = self.client()?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|source| DbError::Connect {
                endpoint,
                db: self.label.clone(),
                source,
            })
    }

    /// Opens a pub/sub connection.
    pub(crate) async fn connect_pubsub(&self) -> Result<redis::aio::PubSub, DbError> {
        let (client, endpoint) = self.client()?;
        let connect_err = |source| DbError::Connect {
            endpoint: endpoint.clone(),
            db: self.label.clone(),
            source,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
            Ok(result) => result.map_err(connect_err),
            Err(_) => Err(connect_err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timed out",
            )))),
        }
    }

    /// `<TABLE><sep><key>` with the table upper-cased like ConfigDBConnector.
    pub(crate) fn redis_key(&self, table: &str, key: &str) -> String {
        format!("{}{}{}", table_name(table), self.info.separator, key)
    }

    /// The `KEYS` pattern matching every key of `table`, glob characters escaped.
    pub(crate) fn table_pattern(&self, table: &str) -> String {
        format!("{}*", glob_escape(&self.redis_key(table, "")))
    }

    pub(crate) fn command_err(
        &self,
        command: &'static str,
        key: &str,
    ) -> impl FnOnce(redis::RedisError) -> DbError {
        let (key, db) = (key.to_string(), self.label.clone());
        move |source| DbError::Command {
            command,
            key,
            db,
            source,
        }
    }
}

/// Table names are upper-cased like ConfigDBConnector's `to_upper(table)`.
pub(crate) fn table_name(table: &str) -> String {
    table.to_ascii_uppercase()
}

/// Escapes Redis glob metacharacters so a table name matches only itself.
pub(crate) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Removes the `NULL` placeholder field.
pub(crate) fn drop_null(mut fields: Fields) -> Fields {
    fields.remove(NULL_FIELD);
    fields
}

/// A connection to one SONiC database (name, id and separator known).
///
/// Cheap to clone: clones share one multiplexed connection. Each read is one round trip. When
/// the connection is lost (redis-server restarted), the next operation reconnects and, because
/// every operation here is idempotent, retries once.
#[derive(Clone)]
pub struct SonicDb {
    target: Arc<Target>,
    conn: Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl std::fmt::Debug for SonicDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SonicDb")
            .field("db", &self.target.label)
            .field("id", &self.target.info.id)
            .finish_non_exhaustive()
    }
}

impl SonicDb {
    /// Connects to database `db` of a namespace whose configuration is `config`: by unix socket
    /// when the instance has one and it exists, else by TCP; the database id is selected.
    pub async fn open(config: &DbConfig, namespace: Namespace, db: &str) -> Result<Self, DbError> {
        let info = config.database(db)?.clone();
        let instance = config.instance_of(db)?.clone();
        let label = match &namespace {
            Namespace::Host => db.to_string(),
            Namespace::Asic(ns) => format!("{db} of namespace {ns}"),
        };
        let target = Target {
            name: db.to_string(),
            label,
            info,
            namespace,
            instance,
        };
        let conn = target.connect().await?;
        Ok(SonicDb {
            target: Arc::new(target),
            conn: Arc::new(Mutex::new(Some(conn))),
        })
    }

    /// Connects to database `db` of the single-namespace configuration in file `path`.
    pub async fn open_file(path: &Path, db: &str) -> Result<Self, DbError> {
        Self::open(&DbConfig::load(path)?, Namespace::Host, db).await
    }

    /// The database name (`CONFIG_DB`).
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// The database name as errors show it: `CONFIG_DB`, or `CONFIG_DB of namespace asic0`.
    pub fn label(&self) -> &str {
        &self.target.label
    }

    /// The Redis database number.
    pub fn id(&self) -> u32 {
        self.target.info.id
    }

    /// The table/key separator.
    pub fn separator(&self) -> &str {
        &self.target.info.separator
    }

    /// The namespace this database belongs to.
    pub fn namespace(&self) -> &Namespace {
        &self.target.namespace
    }

    /// The Redis key of an entry: `<TABLE><sep><key>`, table upper-cased.
    pub fn redis_key(&self, table: &str, key: &str) -> String {
        self.target.redis_key(table, key)
    }

    /// The shared connection, opened again if it was dropped.
    async fn connection(&self) -> Result<MultiplexedConnection, DbError> {
        if let Some(conn) = self.lock().as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.target.connect().await?;
        *self.lock() = Some(conn.clone());
        Ok(conn)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        // The guarded value is a plain handle that cannot be left half-updated.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `op` on the shared connection; when the connection turns out to be dead, forgets it
    /// and runs `op` once more on a new one.
    async fn with_retry<T, F, Fut>(&self, op: F) -> Result<T, DbError>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, OpError>>,
    {
        let conn = self.connection().await?;
        match op(conn).await {
            Ok(v) => Ok(v),
            Err(e) if needs_reconnect(&e.source) => {
                *self.lock() = None;
                let conn = self.connection().await?;
                op(conn).await.map_err(|e| {
                    if needs_reconnect(&e.source) {
                        *self.lock() = None;
                    }
                    e.into_db_error(&self.target)
                })
            }
            Err(e) => Err(e.into_db_error(&self.target)),
        }
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        command: &'static str,
        key: &str,
    ) -> Result<T, DbError> {
        self.with_retry(|mut conn| async move {
            cmd.query_async(&mut conn).await.map_err(|source| OpError {
                command,
                key: key.to_string(),
                source,
            })
        })
        .await
    }

    /// The fields of an entry (HGETALL) without the `NULL` placeholder; empty when the entry
    /// does not exist. Field names are returned as stored (list fields keep their `@`).
    pub async fn get_entry(&self, table: &str, key: &str) -> Result<Fields, DbError> {
        let k = self.redis_key(table, key);
        let raw: Fields = self
            .query(redis::cmd("HGETALL").arg(&k), "HGETALL", &k)
            .await?;
        Ok(drop_null(raw))
    }

    /// The fields of an entry as stored, `NULL` placeholder included: empty exactly when the
    /// entry does not exist.
    pub(crate) async fn get_entry_raw(&self, table: &str, key: &str) -> Result<Fields, DbError> {
        let k = self.redis_key(table, key);
        self.query(redis::cmd("HGETALL").arg(&k), "HGETALL", &k)
            .await
    }

    /// Removes `remove` then sets `set` in one MULTI/EXEC. Nothing to do is no command.
    pub(crate) async fn update_fields<S: AsRef<str>>(
        &self,
        table: &str,
        key: &str,
        set: &Fields,
        remove: &[S],
    ) -> Result<(), DbError> {
        if set.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let k = self.redis_key(table, key);
        let mut pipe = redis::pipe();
        pipe.atomic();
        if !remove.is_empty() {
            pipe.cmd("HDEL").arg(&k);
            for f in remove {
                pipe.arg(f.as_ref());
            }
            pipe.ignore();
        }
        if !set.is_empty() {
            pipe.cmd("HSET").arg(&k);
            for (f, v) in set {
                pipe.arg(f).arg(v);
            }
            pipe.ignore();
        }
        let pipe = &pipe;
        let key = k.as_str();
        self.with_retry(|mut conn| async move {
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|source| OpError {
                    command: "MULTI",
                    key: key.to_string(),
                    source,
                })
        })
        .await
    }

    /// The fields of an entry decoded like ConfigDBConnector's `raw_to_typed`: `NULL` dropped,
    /// `name@` fields split on `,` into [`FieldValue::List`] under `name`.
    pub async fn get_entry_typed(
        &self,
        table: &str,
        key: &str,
    ) -> Result<BTreeMap<String, FieldValue>, DbError> {
        let k = self.redis_key(table, key);
        let raw: Fields = self
            .query(redis::cmd("HGETALL").arg(&k), "HGETALL", &k)
            .await?;
        Ok(raw_to_typed(&raw))
    }

    /// True when the entry exists (even if it only holds the `NULL` placeholder).
    pub async fn exists(&self, table: &str, key: &str) -> Result<bool, DbError> {
        let k = self.redis_key(table, key);
        self.query(redis::cmd("EXISTS").arg(&k), "EXISTS", &k).await
    }

    /// Replaces an entry: afterwards it holds exactly `fields` (HSET them, HDEL every other
    /// field, atomically). An empty map deletes the entry, like ConfigDBConnector.
    pub async fn set_entry(&self, table: &str, key: &str, fields: &Fields) -> Result<(), DbError> {
        if fields.is_empty() {
            return self.del_entry(table, key).await;
        }
        let k = self.redis_key(table, key);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(REPLACE_SCRIPT).arg(1).arg(&k);
        for (f, v) in fields {
            cmd.arg(f).arg(v);
        }
        let _stale: i64 = self.query(&cmd, "EVAL", &k).await?;
        Ok(())
    }

    /// Replaces an entry with one that has no fields, stored as the placeholder `NULL`=`NULL`.
    pub async fn set_empty_entry(&self, table: &str, key: &str) -> Result<(), DbError> {
        let fields = Fields::from([(NULL_FIELD.to_string(), NULL_FIELD.to_string())]);
        self.set_entry(table, key, &fields).await
    }

    /// Adds or overwrites the given fields, leaving the others (HSET). An empty map deletes the
    /// entry, like ConfigDBConnector's `mod_entry`.
    pub async fn mod_entry(&self, table: &str, key: &str, fields: &Fields) -> Result<(), DbError> {
        if fields.is_empty() {
            return self.del_entry(table, key).await;
        }
        let k = self.redis_key(table, key);
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&k);
        for (f, v) in fields {
            cmd.arg(f).arg(v);
        }
        let _added: i64 = self.query(&cmd, "HSET", &k).await?;
        Ok(())
    }

    /// Deletes an entry (DEL); deleting a missing entry is not an error.
    pub async fn del_entry(&self, table: &str, key: &str) -> Result<(), DbError> {
        let k = self.redis_key(table, key);
        let _deleted: i64 = self.query(redis::cmd("DEL").arg(&k), "DEL", &k).await?;
        Ok(())
    }

    /// Removes the given fields of an entry (HDEL). Redis deletes the entry when its last field
    /// goes.
    pub async fn hdel<S: AsRef<str>>(
        &self,
        table: &str,
        key: &str,
        fields: &[S],
    ) -> Result<(), DbError> {
        if fields.is_empty() {
            return Ok(());
        }
        let k = self.redis_key(table, key);
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(&k);
        for f in fields {
            cmd.arg(f.as_ref());
        }
        let _removed: i64 = self.query(&cmd, "HDEL", &k).await?;
        Ok(())
    }

    /// The keys of a table (the part after the first separator), sorted.
    pub async fn keys(&self, table: &str) -> Result<Vec<String>, DbError> {
        let pattern = self.target.table_pattern(table);
        let raw: Vec<String> = self
            .query(redis::cmd("KEYS").arg(&pattern), "KEYS", &pattern)
            .await?;
        let mut keys: Vec<String> = raw.iter().filter_map(|k| self.strip_table(k)).collect();
        keys.sort();
        Ok(keys)
    }

    /// Every entry of a table: `KEYS` then one pipelined round trip of `HGETALL`. Entries that
    /// vanish between the two are left out; `NULL` placeholders are dropped.
    pub async fn get_table(&self, table: &str) -> Result<BTreeMap<String, Fields>, DbError> {
        let target = &self.target;
        self.with_retry(|mut conn| async move { read_table(target, &mut conn, table).await })
            .await
    }

    /// Subscribes to a table with default options; see [`Subscription`].
    pub async fn subscribe(&self, table: &str) -> Result<Subscription, DbError> {
        self.subscribe_with(table, SubscribeOptions::default())
            .await
    }

    /// Subscribes to a table; see [`Subscription`].
    pub async fn subscribe_with(
        &self,
        table: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, DbError> {
        Subscription::start(Arc::clone(&self.target), table, options).await
    }

    fn strip_table(&self, redis_key: &str) -> Option<String> {
        redis_key
            .split_once(self.separator())
            .map(|(_, key)| key.to_string())
    }
}

/// A failed command before it is given the database's name.
pub(crate) struct OpError {
    command: &'static str,
    key: String,
    source: redis::RedisError,
}

impl OpError {
    pub(crate) fn into_db_error(self, target: &Target) -> DbError {
        target.command_err(self.command, &self.key)(self.source)
    }
}

/// True when the connection is unusable and must be replaced (as opposed to a refused command).
fn needs_reconnect(e: &redis::RedisError) -> bool {
    e.is_unrecoverable_error() || e.is_connection_dropped()
}

/// Reads a whole table on `conn`: `KEYS`, then all `HGETALL`s in one pipeline.
pub(crate) async fn read_table(
    target: &Target,
    conn: &mut MultiplexedConnection,
    table: &str,
) -> Result<BTreeMap<String, Fields>, OpError> {
    let pattern = target.table_pattern(table);
    let op_err = |command: &'static str, source| OpError {
        command,
        key: pattern.clone(),
        source,
    };
    let raw_keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(conn)
        .await
        .map_err(|e| op_err("KEYS", e))?;
    if raw_keys.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut pipe = redis::pipe();
    for k in &raw_keys {
        pipe.cmd("HGETALL").arg(k);
    }
    let values: Vec<Fields> = pipe
        .query_async(conn)
        .await
        .map_err(|e| op_err("HGETALL", e))?;
    let mut table_out = BTreeMap::new();
    for (raw_key, fields) in raw_keys.iter().zip(values) {
        // An empty reply means the entry was deleted after KEYS.
        if fields.is_empty() {
            continue;
        }
        if let Some((_, key)) = raw_key.split_once(target.info.separator.as_str()) {
            table_out.insert(key.to_string(), drop_null(fields));
        }
    }
    Ok(table_out)
}
