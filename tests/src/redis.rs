//! A private `redis-server` per test, the matching `database_config.json`, multi-ASIC sets of
//! servers with a `database_global.json`, and seeding from sonic-utilities mock-table JSON.
//!
//! Each server listens on a unix socket in its own temp dir (TCP only when asked for, on a port
//! picked by binding 127.0.0.1:0), with persistence off and keyspace notifications on. A server
//! is started on a staging socket and the socket is renamed into place only once it answers
//! PING (and, for [`RedisServer::start_again_with`], once it is seeded), so clients never see a
//! half-ready server.
//!
//! ```no_run
//! let server = sonic_tests::redis::RedisServer::start().unwrap();
//! server.seed_from_json(4, std::path::Path::new("config_db.json")).unwrap();
//! // point any binary at it:
//! // Command::new(bin).env("SONIC_DB_CONFIG", server.database_config_path())
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

/// How long a server may take to answer PING after being started.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// The standard SONiC databases (sonic-swss-common `database_config.json`): name, id, separator.
pub const STANDARD_DATABASES: &[(&str, u32, &str)] = &[
    ("APPL_DB", 0, ":"),
    ("ASIC_DB", 1, ":"),
    ("COUNTERS_DB", 2, ":"),
    ("LOGLEVEL_DB", 3, ":"),
    ("CONFIG_DB", 4, "|"),
    ("PFC_WD_DB", 5, ":"),
    ("FLEX_COUNTER_DB", 5, ":"),
    ("STATE_DB", 6, "|"),
    ("SNMP_OVERLAY_DB", 7, "|"),
    ("RESTAPI_DB", 8, "|"),
    ("GB_ASIC_DB", 9, ":"),
    ("GB_COUNTERS_DB", 10, ":"),
    ("GB_FLEX_COUNTER_DB", 11, ":"),
    ("CHASSIS_APP_DB", 12, "|"),
    ("CHASSIS_STATE_DB", 13, "|"),
    ("APPL_STATE_DB", 14, ":"),
    ("DPU_APPL_DB", 15, ":"),
    ("DPU_APPL_STATE_DB", 16, "|"),
    ("DPU_STATE_DB", 17, "|"),
    ("DPU_COUNTERS_DB", 18, ":"),
];

/// CONFIG_DB's id, for [`RedisServer::seed_from_json`].
pub const CONFIG_DB: i64 = 4;
/// STATE_DB's id, for [`RedisServer::seed_from_json`].
pub const STATE_DB: i64 = 6;

/// Where [`RedisServer::seed_from_json`] reads mock tables from.
#[derive(Debug, Clone)]
pub enum SeedSource {
    /// A JSON file.
    File(PathBuf),
    /// A JSON document in memory.
    Json(Value),
}

impl From<&Path> for SeedSource {
    fn from(p: &Path) -> Self {
        SeedSource::File(p.to_path_buf())
    }
}

impl From<PathBuf> for SeedSource {
    fn from(p: PathBuf) -> Self {
        SeedSource::File(p)
    }
}

impl From<&PathBuf> for SeedSource {
    fn from(p: &PathBuf) -> Self {
        SeedSource::File(p.clone())
    }
}

impl From<Value> for SeedSource {
    fn from(v: Value) -> Self {
        SeedSource::Json(v)
    }
}

impl From<&Value> for SeedSource {
    fn from(v: &Value) -> Self {
        SeedSource::Json(v.clone())
    }
}

/// The sonic-utilities mock tables shipped in the shared fixtures
/// (`config_db.json`, `state_db.json`).
pub fn mock_tables_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/sonic-utilities-mock-tables")
}

/// Finds `redis-server` on `PATH`.
pub fn redis_server_binary() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "redis-server not found: run scripts/install-deps (apt-get install redis-server)"
            )
        })
}

/// A socket of a running server that is not necessarily published yet: what a setup hook of
/// [`RedisServer::start_again_with`] gets.
#[derive(Debug)]
pub struct Staging<'a> {
    socket: &'a Path,
}

impl Staging<'_> {
    /// A synchronous connection with database `db` selected.
    pub fn connection(&self, db: i64) -> Result<redis::Connection> {
        let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Unix(
            self.socket.to_path_buf(),
        ))?
        .set_redis_settings(redis::RedisConnectionInfo::default().set_db(db));
        let client = redis::Client::open(info)?;
        client
            .get_connection_with_timeout(Duration::from_secs(5))
            .with_context(|| format!("connecting to {}", self.socket.display()))
    }

    /// Loads sonic-utilities mock-table JSON (`{"TABLE|key": {"field": "value"}}`) into
    /// database `db` and returns the number of entries written.
    ///
    /// List values are stored as `field@` = comma-joined items; numbers and booleans as their
    /// JSON text; an entry without fields as the placeholder `NULL`=`NULL`; redis-dump entries
    /// (`{"type": "hash", "value": {...}, "ttl": ..}`) by their value.
    pub fn seed_from_json(&self, db: i64, source: impl Into<SeedSource>) -> Result<usize> {
        let (what, doc) = match source.into() {
            SeedSource::File(path) => {
                let text = fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let doc: Value = serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?;
                (path.display().to_string(), doc)
            }
            SeedSource::Json(doc) => ("inline json".to_string(), doc),
        };
        let entries = mock_entries(&doc).with_context(|| format!("seeding from {what}"))?;
        let mut pipe = redis::pipe();
        for (key, fields) in &entries {
            pipe.cmd("HSET").arg(key);
            for (f, v) in fields {
                pipe.arg(f).arg(v);
            }
            pipe.ignore();
        }
        let mut conn = self.connection(db)?;
        pipe.query::<()>(&mut conn)
            .with_context(|| format!("writing {what} into db {db}"))?;
        Ok(entries.len())
    }
}

/// One entry to write: Redis key and raw fields.
type RawEntry = (String, Vec<(String, String)>);

/// Converts mock-table JSON into `(redis key, fields)` in SONiC's raw encoding.
fn mock_entries(doc: &Value) -> Result<Vec<RawEntry>> {
    let obj = doc
        .as_object()
        .ok_or_else(|| anyhow!("top level is not an object"))?;
    let mut out = Vec::with_capacity(obj.len());
    for (key, entry) in obj {
        let mut fields_obj = entry
            .as_object()
            .ok_or_else(|| anyhow!("entry {key} is not an object"))?;
        // redis-dump format used by a few sonic-utilities fixtures.
        if let (Some(kind), Some(Value::Object(value))) =
            (fields_obj.get("type"), fields_obj.get("value"))
        {
            if kind != "hash" {
                bail!("entry {key} has redis type {kind}, only hashes are supported");
            }
            fields_obj = value;
        }
        let mut fields = Vec::with_capacity(fields_obj.len().max(1));
        for (name, value) in fields_obj {
            let (name, value) = match value {
                Value::String(s) => (name.clone(), s.clone()),
                Value::Array(items) => {
                    let items: Result<Vec<String>> =
                        items.iter().map(|i| scalar(key, name, i)).collect();
                    (format!("{}@", name.trim_end_matches('@')), items?.join(","))
                }
                other => (name.clone(), scalar(key, name, other)?),
            };
            fields.push((name, value));
        }
        if fields.is_empty() {
            fields.push(("NULL".to_string(), "NULL".to_string()));
        }
        out.push((key.clone(), fields));
    }
    Ok(out)
}

fn scalar(key: &str, field: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        _ => bail!("entry {key} field {field} has a nested value"),
    }
}

/// A private `redis-server`, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct RedisServer {
    dir: TempDir,
    socket: PathBuf,
    staging: PathBuf,
    tcp_port: Option<u16>,
    log: PathBuf,
    config_path: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a unix socket only (no TCP) and writes its `database_config.json`.
    pub fn start() -> Result<Self> {
        Self::start_inner(false)
    }

    /// Starts a server on a unix socket and on a free TCP port of 127.0.0.1.
    pub fn start_with_tcp() -> Result<Self> {
        Self::start_inner(true)
    }

    fn start_inner(tcp: bool) -> Result<Self> {
        redis_server_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("redis")
            .tempdir()
            .context("creating a temp dir for redis-server")?;
        let tcp_port = if tcp {
            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").context("picking a free TCP port")?;
            Some(listener.local_addr()?.port())
        } else {
            None
        };
        let mut server = RedisServer {
            socket: dir.path().join("redis.sock"),
            staging: dir.path().join("redis.sock.starting"),
            log: dir.path().join("redis-server.log"),
            config_path: dir.path().join("database_config.json"),
            tcp_port,
            child: None,
            dir,
        };
        server.write_database_config(&server.config_path.clone())?;
        server.start_again()?;
        Ok(server)
    }

    /// The unix socket clients connect to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The TCP port, when started with [`RedisServer::start_with_tcp`].
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp_port
    }

    /// The server's private temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's stdout/stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The `database_config.json` written at start; point binaries at it with
    /// `SONIC_DB_CONFIG`.
    pub fn database_config_path(&self) -> &Path {
        &self.config_path
    }

    /// The content of `database_config.json` for this server: every standard SONiC database on
    /// instance `redis` (this server's socket; port 0, which nothing listens on, unless TCP is
    /// enabled, so that a client never falls back to the host's Redis on 6379).
    pub fn database_config(&self) -> Value {
        let mut databases = Map::new();
        for (name, id, sep) in STANDARD_DATABASES {
            databases.insert(
                (*name).to_string(),
                json!({"id": id, "separator": sep, "instance": "redis"}),
            );
        }
        json!({
            "INSTANCES": {
                "redis": {
                    "hostname": "127.0.0.1",
                    "port": self.tcp_port.unwrap_or(0),
                    "unix_socket_path": self.socket,
                    "persistence_for_warm_boot": "yes"
                }
            },
            "DATABASES": databases,
            "VERSION": "1.0"
        })
    }

    /// Writes [`RedisServer::database_config`] to `path`.
    pub fn write_database_config(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, serde_json::to_vec_pretty(&self.database_config())?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kills the server (SIGKILL) and waits for it; its socket disappears. Data is lost.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_file(&self.socket);
        let _ = fs::remove_file(&self.staging);
    }

    /// Starts the (stopped) server again on the same socket and port, with empty data.
    pub fn start_again(&mut self) -> Result<()> {
        self.start_again_with(|_| Ok(()))
    }

    /// Starts the (stopped) server again and runs `setup` (e.g. seeding) before the socket is
    /// published, so unix-socket clients see the seeded data from their first connection.
    pub fn start_again_with(
        &mut self,
        setup: impl FnOnce(&Staging<'_>) -> Result<()>,
    ) -> Result<()> {
        self.stop();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let port = self.tcp_port.unwrap_or(0).to_string();
        let mut cmd = Command::new(redis_server_binary()?);
        cmd.arg("--port").arg(&port);
        if self.tcp_port.is_some() {
            cmd.args(["--bind", "127.0.0.1"]);
        }
        cmd.arg("--unixsocket")
            .arg(&self.staging)
            .args(["--unixsocketperm", "700"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--notify-keyspace-events", "AKE"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn().context("spawning redis-server")?;
        self.child = Some(child);
        self.wait_ready()?;
        setup(&Staging {
            socket: &self.staging,
        })?;
        fs::rename(&self.staging, &self.socket).with_context(|| {
            format!(
                "publishing {} as {}",
                self.staging.display(),
                self.socket.display()
            )
        })?;
        Ok(())
    }

    /// Stops the server and starts it again on the same socket, with empty data.
    pub fn restart(&mut self) -> Result<()> {
        self.start_again()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "redis-server exited with {status} before answering PING; log {}:\n{}",
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            if ping(&self.staging) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                bail!(
                    "redis-server did not answer PING on {} within {:?}; log {}:\n{}",
                    self.staging.display(),
                    START_DEADLINE,
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn published(&self) -> Staging<'_> {
        Staging {
            socket: &self.socket,
        }
    }

    /// A synchronous connection with database `db` selected, for checking and preparing data.
    pub fn connection(&self, db: i64) -> Result<redis::Connection> {
        self.published().connection(db)
    }

    /// Loads sonic-utilities mock-table JSON into database `db`; see [`Staging::seed_from_json`].
    pub fn seed_from_json(&self, db: i64, source: impl Into<SeedSource>) -> Result<usize> {
        self.published().seed_from_json(db, source)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True when a server answers PING on `socket`.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(2000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// A multi-ASIC system: one server for the host and one per ASIC namespace, laid out like a
/// switch (`<root>/redis/sonic-db/database_global.json` including
/// `../../redis/sonic-db/database_config.json` and `../../redis<N>/sonic-db/database_config.json`
/// for namespace `asic<N>`).
#[derive(Debug)]
pub struct MultiAsicRedis {
    root: TempDir,
    /// The host namespace's server.
    pub host: RedisServer,
    /// The servers of `asic0`, `asic1`, ...
    pub asics: Vec<RedisServer>,
}

impl MultiAsicRedis {
    /// Starts `num_asics + 1` servers and writes their configs and the global file.
    pub fn start(num_asics: usize) -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("sonic-multi-asic")
            .tempdir()?;
        let host = RedisServer::start()?;
        let asics = (0..num_asics)
            .map(|_| RedisServer::start())
            .collect::<Result<Vec<_>>>()?;
        let mut includes = vec![json!({"include": "../../redis/sonic-db/database_config.json"})];
        host.write_database_config(&root.path().join("redis/sonic-db/database_config.json"))?;
        for (n, server) in asics.iter().enumerate() {
            let rel = format!("redis{n}/sonic-db/database_config.json");
            server.write_database_config(&root.path().join(&rel))?;
            includes
                .push(json!({"namespace": format!("asic{n}"), "include": format!("../../{rel}")}));
        }
        let global = json!({"INCLUDES": includes, "VERSION": "1.0"});
        let me = MultiAsicRedis { root, host, asics };
        fs::write(me.global_config_path(), serde_json::to_vec_pretty(&global)?)?;
        Ok(me)
    }

    /// The `database_global.json`; point binaries at it with `SONIC_DB_GLOBAL_CONFIG`.
    pub fn global_config_path(&self) -> PathBuf {
        self.root.path().join("redis/sonic-db/database_global.json")
    }

    /// The host's `database_config.json` next to the global file; `SONIC_DB_CONFIG`.
    pub fn host_config_path(&self) -> PathBuf {
        self.root.path().join("redis/sonic-db/database_config.json")
    }

    /// The server of namespace `asic<n>`.
    pub fn asic(&self, n: usize) -> &RedisServer {
        &self.asics[n]
    }
}
