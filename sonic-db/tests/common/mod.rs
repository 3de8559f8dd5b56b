//! Helpers shared by the integration tests: opening databases of a private server and waiting
//! for subscription events with deadlines.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use sonic_db::{Fields, LinkState, SonicDb, Subscription, TableEvent, TableOp};
use sonic_tests::redis::RedisServer;

/// How long any single expected event may take.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// Opens database `db` of `server` through its `database_config.json`.
pub async fn open(server: &RedisServer, db: &str) -> SonicDb {
    SonicDb::open_file(server.database_config_path(), db)
        .await
        .unwrap()
}

/// A field map from pairs.
pub fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A `Set` event.
pub fn set(key: &str, pairs: &[(&str, &str)]) -> TableEvent {
    TableEvent {
        key: key.to_string(),
        op: TableOp::Set(fields(pairs)),
    }
}

/// A `Del` event.
pub fn del(key: &str) -> TableEvent {
    TableEvent {
        key: key.to_string(),
        op: TableOp::Del,
    }
}

/// The next event, failing the test if none arrives in time.
pub async fn next_event(sub: &mut Subscription) -> TableEvent {
    tokio::time::timeout(EVENT_DEADLINE, sub.recv())
        .await
        .expect("no subscription event within the deadline")
        .expect("subscription task ended")
}

/// The next `n` events.
pub async fn next_events(sub: &mut Subscription, n: usize) -> Vec<TableEvent> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_event(sub).await);
    }
    out
}

/// Events up to and including the first one for `marker`; proves that nothing else was
/// delivered before a write made after the ones under test.
pub async fn events_until(sub: &mut Subscription, marker: &str) -> Vec<TableEvent> {
    let mut out = Vec::new();
    loop {
        let ev = next_event(sub).await;
        let done = ev.key == marker;
        out.push(ev);
        if done {
            return out;
        }
    }
}

/// Waits until the link state satisfies `pred`.
pub async fn wait_link(
    link: &mut tokio::sync::watch::Receiver<LinkState>,
    pred: impl Fn(&LinkState) -> bool,
) -> LinkState {
    tokio::time::timeout(EVENT_DEADLINE, link.wait_for(|s| pred(s)))
        .await
        .expect("link state did not change within the deadline")
        .expect("subscription task ended")
        .clone()
}
