//! The lab's `redis-server`: one server for the lab's whole life with its unix socket inside the
//! lab directory, the matching `database_config.json`, and CONFIG_DB seeded from a mock-table
//! JSON file (`lab/config_db.json`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::redis::{STANDARD_DATABASES, redis_server_binary};

/// A `redis-server` in `<dir>/redis/`, killed when dropped.
#[derive(Debug)]
pub struct LabRedis {
    dir: PathBuf,
    child: Option<Child>,
}

impl LabRedis {
    /// Starts the server in `<lab>/redis/` and waits until it answers PING (10 s).
    pub fn start(lab: &Path) -> anyhow::Result<Self> {
        let dir = lab.join("redis");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let socket = dir.join("redis.sock");
        let _ = std::fs::remove_file(&socket);
        let log_path = dir.join("redis-server.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let child = Command::new(redis_server_binary()?)
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "777"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--notify-keyspace-events", "AKE", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start redis-server (run scripts/install-deps)")?;
        std::fs::write(dir.join("redis.pid"), format!("{}\n", child.id()))?;
        let mut me = Self {
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = me.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!(
                    "redis-server exited with {status}; see {}",
                    log_path.display()
                );
            }
            if me.connection(0).and_then(|mut c| ping(&mut c)).is_ok() {
                return Ok(me);
            }
            if Instant::now() > deadline {
                bail!(
                    "redis-server did not answer PING within 10 s; see {}",
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// The server's directory (socket, log, pid file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A connection to database `db`.
    pub fn connection(&self, db: i64) -> anyhow::Result<redis::Connection> {
        connect(&self.socket(), db)
    }

    /// Writes SONiC's `database_config.json` for this server to `path`: every standard database
    /// on this socket, port 0 so that nothing falls back to the host's Redis.
    pub fn write_database_config(&self, path: &Path) -> anyhow::Result<()> {
        let mut databases = Map::new();
        for (name, id, sep) in STANDARD_DATABASES {
            databases.insert(
                (*name).to_string(),
                json!({"id": id, "separator": sep, "instance": "redis"}),
            );
        }
        let config = json!({
            "INSTANCES": {"redis": {
                "hostname": "127.0.0.1", "port": 0,
                "unix_socket_path": self.socket(),
                "persistence_for_warm_boot": "yes"
            }},
            "DATABASES": databases,
            "VERSION": "1.0"
        });
        std::fs::write(path, serde_json::to_vec_pretty(&config)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Loads mock-table JSON (`{"TABLE|key": {"field": "value"}}`) into database `db`;
    /// returns the number of keys written.
    pub fn seed(&self, db: i64, file: &Path) -> anyhow::Result<usize> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", file.display()))?;
        let entries = doc
            .as_object()
            .with_context(|| format!("{}: expected a JSON object of keys", file.display()))?;
        let mut conn = self.connection(db)?;
        for (key, fields) in entries {
            let fields = fields.as_object().with_context(|| {
                format!(
                    "{}: key {key} does not hold an object of fields",
                    file.display()
                )
            })?;
            let mut cmd = redis::cmd("HSET");
            cmd.arg(key);
            for (f, v) in fields {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                cmd.arg(f).arg(v);
            }
            cmd.query::<()>(&mut conn)
                .with_context(|| format!("cannot write {key} from {}", file.display()))?;
        }
        Ok(entries.len())
    }

    /// Stops the server (SIGKILL: the lab keeps no data).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("redis.pid"));
    }
}

impl Drop for LabRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A synchronous connection to database `db` of the server at `socket`.
pub fn connect(socket: &Path, db: i64) -> anyhow::Result<redis::Connection> {
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Unix(
        socket.to_path_buf(),
    ))?
    .set_redis_settings(redis::RedisConnectionInfo::default().set_db(db));
    let client = redis::Client::open(info)
        .with_context(|| format!("cannot use redis socket {}", socket.display()))?;
    client
        .get_connection_with_timeout(Duration::from_secs(5))
        .with_context(|| format!("cannot connect to redis at {}", socket.display()))
}

fn ping(conn: &mut redis::Connection) -> anyhow::Result<()> {
    redis::cmd("PING").query::<String>(conn)?;
    Ok(())
}
