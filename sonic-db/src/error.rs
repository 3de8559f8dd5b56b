//! Errors of database access, each naming the endpoint or key and the database involved.

use crate::config::ConfigError;

/// An error talking to a SONiC database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The configuration does not say where the database is.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Connecting (or the connection handshake, including `SELECT`) failed.
    #[error("cannot connect to redis at {endpoint} for {db}: {source}")]
    Connect {
        /// Unix socket path or `host:port`, plus why TCP was used when a socket was configured.
        endpoint: String,
        /// Database name, with the namespace when it is not the host.
        db: String,
        /// The client's error.
        source: redis::RedisError,
    },
    /// A command failed (connection lost, timeout, wrong type, non-UTF-8 value...).
    #[error("redis {command} {key} on {db} failed: {source}")]
    Command {
        /// The Redis command (`HGETALL`, `KEYS`, ...).
        command: &'static str,
        /// The Redis key or pattern the command was about.
        key: String,
        /// Database name, with the namespace when it is not the host.
        db: String,
        /// The client's error.
        source: redis::RedisError,
    },
}

impl DbError {
    /// True when retrying later may succeed: the server is unreachable, the connection dropped
    /// or a command timed out. Configuration mistakes and server-side refusals are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Config(_) => false,
            DbError::Connect { source, .. } | DbError::Command { source, .. } => {
                is_transient_redis(source)
            }
        }
    }
}

/// True for errors that mean the link is gone or slow rather than that the request was wrong.
pub(crate) fn is_transient_redis(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}
