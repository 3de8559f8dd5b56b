//! Table subscriptions: the current contents of a table, then every change, across reconnects.
//!
//! Works like sonic-swss-common's `SubscriberStateTable`: `PSUBSCRIBE
//! __keyspace@<id>__:<TABLE><sep>*` first, then every existing entry is replayed as a
//! [`TableOp::Set`], then each keyspace notification is turned into an event: a deletion (`del`,
//! `expired`, `evicted`, `rename_from`, `move_from`) into [`TableOp::Del`], anything else into an
//! `HGETALL` at delivery time reported as [`TableOp::Set`] (skipped when the entry is already gone:
//! a deletion notification follows).
//!
//! Two differences from upstream, both so that a consumer can treat events as a faithful diff:
//! - Events describe changes of the table's contents, not writes: the subscription remembers what
//!   it delivered and drops a `Set` equal to the last delivered fields of that key, and a `Del` of
//!   a key it never delivered (several quick writes collapse, as upstream, because notifications
//!   carry no data).
//! - When the connection drops (redis-server restarted), it retries with exponential backoff,
//!   re-enables keyspace notifications, subscribes again, re-reads the whole table and delivers
//!   the difference against what it delivered before: `Set` for new or changed entries, `Del` for
//!   entries that disappeared. Nothing is lost and an unchanged entry is not delivered twice. The
//!   link state ([`LinkState`]) is published on a watch channel, changed to `Connected` only after
//!   the catch-up events are queued.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use tokio::sync::{mpsc, watch};

use crate::db::{Fields, Target, drop_null, glob_escape, read_table, table_name};
use crate::error::{DbError, is_transient_redis};

/// One change of a subscribed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEvent {
    /// The entry's key within the table (the part after the table name and separator).
    pub key: String,
    /// What happened to it.
    pub op: TableOp,
}

/// What happened to an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableOp {
    /// The entry exists with these fields (without the `NULL` placeholder).
    Set(Fields),
    /// The entry no longer exists.
    Del,
}

/// The state of a subscription's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Subscribed and up to date. `epoch` is 0 for the first connection and counts reconnects;
    /// a new epoch means the table was re-read and the difference already queued.
    Connected {
        /// Number of reconnects so far.
        epoch: u64,
    },
    /// The connection dropped; the subscription keeps retrying.
    Disconnected {
        /// Why the connection dropped or the last reconnect attempt failed.
        error: String,
    },
}

/// Tuning of a subscription's reconnect behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// First delay before reconnecting; doubled after each failed attempt.
    pub retry_min: Duration,
    /// Longest delay between reconnect attempts.
    pub retry_max: Duration,
    /// How often the pub/sub connection is probed with PING, to notice a dead peer that never
    /// closed the connection.
    pub ping_interval: Duration,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(2),
            ping_interval: Duration::from_secs(10),
        }
    }
}

/// How long a PSUBSCRIBE or PING on the pub/sub connection may take.
const PUBSUB_TIMEOUT: Duration = Duration::from_secs(5);

/// Keyspace event classes swss-common enables on every connection (`dbinterface.h`).
const NOTIFY_KEYSPACE_EVENTS: &str = "KEA";

/// A live subscription to one table; events arrive in the order Redis notified them.
///
/// Obtain one with [`crate::SonicDb::subscribe`]. The initial contents are already queued when
/// it is returned. Dropping it stops the background task.
#[derive(Debug)]
pub struct Subscription {
    table: String,
    events: mpsc::UnboundedReceiver<TableEvent>,
    link: watch::Receiver<LinkState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscription {
    /// Connects, subscribes, queues the replay of the table and starts the background task.
    pub(crate) async fn start(
        target: Arc<Target>,
        table: &str,
        options: SubscribeOptions,
    ) -> Result<Self, DbError> {
        let table = table_name(table);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (link_tx, link) = watch::channel(LinkState::Connected { epoch: 0 });
        let mut worker = Worker {
            prefix: format!("{}{}", table, target.info.separator),
            table: table.clone(),
            target,
            options,
            delivered: BTreeMap::new(),
            events: events_tx,
            link: link_tx,
            epoch: 0,
        };
        let attached = worker.attach().await?;
        let task = tokio::spawn(worker.run(attached));
        Ok(Subscription {
            table,
            events,
            link,
            task,
        })
    }

    /// The upper-cased table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The next event. Waits while the connection is down; returns `None` only if the
    /// background task ended unexpectedly.
    pub async fn recv(&mut self) -> Option<TableEvent> {
        self.events.recv().await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<TableEvent> {
        self.events.try_recv().ok()
    }

    /// A receiver of the connection state, to reconcile after a reconnect.
    pub fn link_state(&self) -> watch::Receiver<LinkState> {
        self.link.clone()
    }
}

impl Stream for Subscription {
    type Item = TableEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TableEvent>> {
        self.events.poll_recv(cx)
    }
}

struct Attached {
    sink: PubSubSink,
    stream: PubSubStream,
    conn: MultiplexedConnection,
}

struct Worker {
    target: Arc<Target>,
    table: String,
    /// `<TABLE><sep>`: the prefix of every Redis key of the table.
    prefix: String,
    options: SubscribeOptions,
    /// What the consumer was told last, per key: the base of every diff.
    delivered: BTreeMap<String, Fields>,
    events: mpsc::UnboundedSender<TableEvent>,
    link: watch::Sender<LinkState>,
    epoch: u64,
}

impl Worker {
    fn pattern(&self) -> String {
        format!(
            "__keyspace@{}__:{}*",
            self.target.info.id,
            glob_escape(&self.prefix)
        )
    }

    /// Connects, enables notifications, subscribes, then reads the table and delivers the
    /// difference. Subscribing before reading means no write can fall between the two.
    async fn attach(&mut self) -> Result<Attached, DbError> {
        let mut conn = self.target.connect().await?;
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg(NOTIFY_KEYSPACE_EVENTS)
            .query_async(&mut conn)
            .await
            .map_err(
                self.target
                    .command_err("CONFIG SET", "notify-keyspace-events"),
            )?;
        let (mut sink, stream) = self.target.connect_pubsub().await?.split();
        let pattern = self.pattern();
        match tokio::time::timeout(PUBSUB_TIMEOUT, sink.psubscribe(&pattern)).await {
            Ok(result) => result.map_err(self.target.command_err("PSUBSCRIBE", &pattern))?,
            Err(_) => return Err(self.timeout_err("PSUBSCRIBE", &pattern)),
        }
        let snapshot = read_table(&self.target, &mut conn, &self.table)
            .await
            .map_err(|e| e.into_db_error(&self.target))?;
        self.deliver_snapshot(snapshot);
        Ok(Attached { sink, stream, conn })
    }

    fn timeout_err(&self, command: &'static str, key: &str) -> DbError {
        self.target.command_err(command, key)(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no reply in time",
        )))
    }

    async fn run(mut self, mut attached: Attached) {
        loop {
            let Some(error) = self.serve(&mut attached).await else {
                return;
            };
            tracing::warn!(table = %self.table, db = %self.target.label, %error, "subscription lost, reconnecting");
            self.link.send_replace(LinkState::Disconnected { error });
            let mut delay = self.options.retry_min;
            attached = loop {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.events.closed() => return,
                }
                match self.attach().await {
                    Ok(a) => break a,
                    Err(e) => {
                        self.link.send_replace(LinkState::Disconnected {
                            error: e.to_string(),
                        });
                        delay = (delay * 2).min(self.options.retry_max);
                    }
                }
            };
            self.epoch += 1;
            tracing::info!(table = %self.table, db = %self.target.label, epoch = self.epoch, "subscription reconnected");
            self.link
                .send_replace(LinkState::Connected { epoch: self.epoch });
        }
    }

    /// Handles notifications until the link breaks (returns why) or the consumer is gone
    /// (returns `None`).
    async fn serve(&mut self, a: &mut Attached) -> Option<String> {
        let period = self.options.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                msg = a.stream.next() => match msg {
                    None => return Some(format!("pub/sub connection for {} closed", self.target.label)),
                    Some(msg) => {
                        if let Err(e) = self.handle(&mut a.conn, &msg).await {
                            return Some(e.to_string());
                        }
                    }
                },
                _ = ping.tick() => {
                    match tokio::time::timeout(PUBSUB_TIMEOUT, a.sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Some(self.target.command_err("PING", "")(e).to_string()),
                        Err(_) => return Some(self.timeout_err("PING", "").to_string()),
                    }
                }
                () = self.events.closed() => return None,
            }
        }
    }

    /// Turns one keyspace notification into at most one event. Only a lost connection is an
    /// error; an entry of the wrong type is logged and skipped.
    async fn handle(
        &mut self,
        conn: &mut MultiplexedConnection,
        msg: &redis::Msg,
    ) -> Result<(), DbError> {
        // Channel: `__keyspace@<id>__:<TABLE><sep><key>`.
        let Some((_, redis_key)) = msg.get_channel_name().split_once(':') else {
            return Ok(());
        };
        let Some(key) = redis_key.strip_prefix(&self.prefix) else {
            return Ok(());
        };
        let op: String = msg.get_payload().unwrap_or_default();
        match op.as_str() {
            "del" | "expired" | "evicted" | "rename_from" | "move_from" => {
                self.deliver(key, None);
            }
            _ => {
                let result: Result<Fields, _> =
                    redis::cmd("HGETALL").arg(redis_key).query_async(conn).await;
                match result {
                    // Already gone: the deletion's own notification follows.
                    Ok(fields) if fields.is_empty() => {}
                    Ok(fields) => self.deliver(key, Some(drop_null(fields))),
                    Err(e) if is_transient_redis(&e) => {
                        return Err(self.target.command_err("HGETALL", redis_key)(e));
                    }
                    Err(e) => {
                        tracing::warn!(key = %redis_key, db = %self.target.label, error = %e, "skipping entry that cannot be read as a hash");
                    }
                }
            }
        }
        Ok(())
    }

    /// Delivers `fields` (or a deletion) for `key` unless the consumer already has that state.
    fn deliver(&mut self, key: &str, fields: Option<Fields>) {
        let op = match fields {
            Some(fields) => {
                if self.delivered.get(key) == Some(&fields) {
                    return;
                }
                self.delivered.insert(key.to_string(), fields.clone());
                TableOp::Set(fields)
            }
            None => {
                if self.delivered.remove(key).is_none() {
                    return;
                }
                TableOp::Del
            }
        };
        // A closed channel means the consumer is gone; the task notices and stops.
        let _ = self.events.send(TableEvent {
            key: key.to_string(),
            op,
        });
    }

    /// Delivers the difference between a fresh read of the whole table and what was delivered,
    /// in key order.
    fn deliver_snapshot(&mut self, mut snapshot: BTreeMap<String, Fields>) {
        let keys: BTreeSet<String> = self
            .delivered
            .keys()
            .chain(snapshot.keys())
            .cloned()
            .collect();
        for key in keys {
            let fields = snapshot.remove(&key);
            self.deliver(&key, fields);
        }
    }
}
