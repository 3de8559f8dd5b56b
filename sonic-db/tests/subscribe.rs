//! Table subscriptions against a real redis-server: replay, ordering, filtering, and restarts of
//! the server in the middle of a subscription.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly on purpose

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{del, events_until, fields, next_event, next_events, open, set, wait_link};
use sonic_db::{Fields, LinkState, SubscribeOptions, TableEvent, TableOp};
use sonic_tests::redis::{CONFIG_DB, RedisServer};

/// Fast reconnects so the tests spend little time waiting.
fn fast() -> SubscribeOptions {
    SubscribeOptions {
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        ping_interval: Duration::from_secs(1),
    }
}

/// Applies events to a mirror of the table, as a consumer would.
fn apply(view: &mut BTreeMap<String, Fields>, ev: &TableEvent) {
    match &ev.op {
        TableOp::Set(f) => {
            view.insert(ev.key.clone(), f.clone());
        }
        TableOp::Del => {
            view.remove(&ev.key);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_replays_existing_entries_then_streams_changes() {
    let server = RedisServer::start().unwrap();
    server
        .seed_from_json(
            CONFIG_DB,
            serde_json::json!({
                "FEATURE|swss": {"state": "enabled"},
                "FEATURE|bgp": {"state": "disabled", "set_owner": "kube"},
                "FEATURE|empty": {},
                "KUBERNETES_MASTER|SERVER": {"ip": "10.0.0.1"},
            }),
        )
        .unwrap();
    let db = open(&server, "CONFIG_DB").await;
    let mut sub = db.subscribe("feature").await.unwrap();
    assert_eq!(sub.table(), "FEATURE");

    // The replay is queued before subscribe returns, in key order, NULL placeholder dropped.
    let replay: Vec<TableEvent> = std::iter::from_fn(|| sub.try_recv()).collect();
    assert_eq!(
        replay,
        [
            set("bgp", &[("set_owner", "kube"), ("state", "disabled")]),
            set("empty", &[]),
            set("swss", &[("state", "enabled")]),
        ]
    );

    db.mod_entry("FEATURE", "swss", &fields(&[("auto_restart", "enabled")]))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        set("swss", &[("auto_restart", "enabled"), ("state", "enabled")])
    );
    db.hdel("FEATURE", "swss", &["state"]).await.unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        set("swss", &[("auto_restart", "enabled")])
    );
    db.del_entry("FEATURE", "bgp").await.unwrap();
    assert_eq!(next_event(&mut sub).await, del("bgp"));
    // Removing the last field deletes the entry: one Del.
    db.hdel("FEATURE", "swss", &["auto_restart"]).await.unwrap();
    db.set_entry("FEATURE", "marker", &fields(&[("m", "1")]))
        .await
        .unwrap();
    assert_eq!(
        events_until(&mut sub, "marker").await,
        [del("swss"), set("marker", &[("m", "1")])]
    );
    assert_eq!(
        *sub.link_state().borrow(),
        LinkState::Connected { epoch: 0 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_delivers_events_in_write_order() {
    let server = RedisServer::start().unwrap();
    let db = open(&server, "STATE_DB").await;
    let mut sub = db.subscribe("FEATURE").await.unwrap();
    assert!(sub.try_recv().is_none());

    // Keys written in an order different from their sort order.
    let keys: Vec<String> = (0..20).map(|i| format!("f{}", (i * 7) % 20)).collect();
    for (i, k) in keys.iter().enumerate() {
        db.mod_entry("FEATURE", k, &fields(&[("n", &i.to_string())]))
            .await
            .unwrap();
    }
    let expected: Vec<TableEvent> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| set(k, &[("n", &i.to_string())]))
        .collect();
    assert_eq!(next_events(&mut sub, 20).await, expected);
    // Deletions after the sets were seen (a set deleted before the subscriber reads it is
    // collapsed away, as upstream, since notifications carry no data).
    for k in keys.iter().rev() {
        db.del_entry("FEATURE", k).await.unwrap();
    }
    let expected: Vec<TableEvent> = keys.iter().rev().map(|k| del(k)).collect();
    assert_eq!(next_events(&mut sub, 20).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_ignores_other_tables_databases_and_unchanged_writes() {
    let server = RedisServer::start().unwrap();
    let config = open(&server, "CONFIG_DB").await;
    let state = open(&server, "STATE_DB").await;
    config
        .set_entry("FEATURE", "swss", &fields(&[("state", "enabled")]))
        .await
        .unwrap();
    let mut sub = config.subscribe("FEATURE").await.unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        set("swss", &[("state", "enabled")])
    );

    config
        .set_entry("FEATURES", "lookalike", &fields(&[("a", "1")]))
        .await
        .unwrap();
    config
        .set_entry("FEATURE_X", "other", &fields(&[("a", "1")]))
        .await
        .unwrap();
    state
        .set_entry("FEATURE", "swss", &fields(&[("state", "other db")]))
        .await
        .unwrap();
    // Writing what is already there changes nothing, so nothing is delivered.
    config
        .set_entry("FEATURE", "swss", &fields(&[("state", "enabled")]))
        .await
        .unwrap();
    config
        .mod_entry("FEATURE", "swss", &fields(&[("state", "enabled")]))
        .await
        .unwrap();
    // Deleting what does not exist neither.
    config.del_entry("FEATURE", "ghost").await.unwrap();
    // A key that is not a hash is skipped.
    let mut c = server.connection(CONFIG_DB).unwrap();
    let _: () = redis::cmd("SET")
        .arg("FEATURE|string")
        .arg("x")
        .query(&mut c)
        .unwrap();
    config
        .set_entry("FEATURE", "marker", &fields(&[("m", "1")]))
        .await
        .unwrap();
    assert_eq!(
        events_until(&mut sub, "marker").await,
        [set("marker", &[("m", "1")])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_turns_keyspace_notifications_on() {
    let server = RedisServer::start().unwrap();
    let mut c = server.connection(CONFIG_DB).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("")
        .query(&mut c)
        .unwrap();
    let db = open(&server, "CONFIG_DB").await;
    let mut sub = db.subscribe("FEATURE").await.unwrap();
    db.set_entry("FEATURE", "swss", &fields(&[("state", "enabled")]))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut sub).await,
        set("swss", &[("state", "enabled")])
    );
    let flags: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut c)
        .unwrap();
    assert!(
        flags[1].contains('K') && flags[1].contains('A'),
        "{flags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_survives_redis_restart_with_no_update_lost() {
    let mut server = RedisServer::start().unwrap();
    let db = open(&server, "CONFIG_DB").await;
    for (k, v) in [("a", "1"), ("b", "1"), ("c", "1")] {
        db.set_entry("FEATURE", k, &fields(&[("v", v)]))
            .await
            .unwrap();
    }
    let mut sub = db.subscribe_with("FEATURE", fast()).await.unwrap();
    let mut link = sub.link_state();
    let mut view = BTreeMap::new();
    for ev in next_events(&mut sub, 3).await {
        apply(&mut view, &ev);
    }
    db.set_entry("FEATURE", "d", &fields(&[("v", "1")]))
        .await
        .unwrap();
    assert_eq!(next_event(&mut sub).await, set("d", &[("v", "1")]));

    server.stop();
    let down = wait_link(&mut link, |s| matches!(s, LinkState::Disconnected { .. })).await;
    let LinkState::Disconnected { error } = down else {
        unreachable!()
    };
    assert!(error.contains("CONFIG_DB"), "{error}");

    // The server comes back with different data: a and d unchanged, b changed, c gone, e new.
    server
        .start_again_with(|s| {
            s.seed_from_json(
                CONFIG_DB,
                serde_json::json!({
                    "FEATURE|a": {"v": "1"},
                    "FEATURE|b": {"v": "2"},
                    "FEATURE|d": {"v": "1"},
                    "FEATURE|e": {"v": "1"},
                }),
            )
            .map(|_| ())
        })
        .unwrap();
    wait_link(&mut link, |s| *s == LinkState::Connected { epoch: 1 }).await;

    // Exactly the difference, in key order, queued before the link reported Connected.
    let catch_up: Vec<TableEvent> = std::iter::from_fn(|| sub.try_recv()).collect();
    assert_eq!(
        catch_up,
        [set("b", &[("v", "2")]), del("c"), set("e", &[("v", "1")])]
    );

    // Every change after the reconnect is delivered, through a new connection of our own too.
    let db2 = open(&server, "CONFIG_DB").await;
    db2.set_entry("FEATURE", "f", &fields(&[("v", "1")]))
        .await
        .unwrap();
    db2.del_entry("FEATURE", "a").await.unwrap();
    db2.mod_entry("FEATURE", "b", &fields(&[("w", "3")]))
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut sub, 3).await,
        [
            set("f", &[("v", "1")]),
            del("a"),
            set("b", &[("v", "2"), ("w", "3")])
        ]
    );
    // The handle opened before the restart reconnected by itself.
    db.set_entry("FEATURE", "g", &fields(&[("v", "1")]))
        .await
        .unwrap();
    assert_eq!(next_event(&mut sub).await, set("g", &[("v", "1")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_converges_when_writes_race_restarts() {
    let mut server = RedisServer::start().unwrap();
    let db = open(&server, "CONFIG_DB").await;
    let mut sub = db.subscribe_with("FEATURE", fast()).await.unwrap();
    let mut link = sub.link_state();

    // A writer that keeps changing keys; its writes fail while the server is down and resume
    // on their own afterwards.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let writer_db = db.clone();
    let writer = tokio::spawn(async move {
        let (mut n, mut failed) = (0u64, 0u64);
        while stop_rx.try_recv().is_err() {
            let key = format!("k{}", n % 7);
            let result = if n % 5 == 4 {
                writer_db.del_entry("FEATURE", &key).await
            } else {
                writer_db
                    .set_entry("FEATURE", &key, &fields(&[("n", &n.to_string())]))
                    .await
            };
            match result {
                Ok(()) => n += 1,
                Err(_) => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (n, failed)
    });

    let mut view = BTreeMap::new();
    for round in 1..=3u64 {
        // Some of the writer's changes arrive, then the server restarts under its feet.
        for ev in next_events(&mut sub, 10).await {
            apply(&mut view, &ev);
        }
        server.restart().unwrap();
        wait_link(&mut link, |s| *s == LinkState::Connected { epoch: round }).await;
    }
    for ev in next_events(&mut sub, 10).await {
        apply(&mut view, &ev);
    }
    stop_tx.send(()).unwrap();
    let (writes, _failed) = writer.await.unwrap();
    // 40 events were received; at most 7 per restart (deletions of k0..k6) were not caused by
    // a write, so the writer kept going through all three restarts.
    assert!(writes >= 40 - 3 * 7, "writer made only {writes} writes");

    // Once quiet, the view equals the server's contents exactly.
    db.set_entry("FEATURE", "zz_marker", &fields(&[("m", "1")]))
        .await
        .unwrap();
    for ev in events_until(&mut sub, "zz_marker").await {
        apply(&mut view, &ev);
    }
    assert_eq!(view, db.get_table("FEATURE").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_keeps_retrying_while_the_server_stays_down() {
    let mut server = RedisServer::start().unwrap();
    let db = open(&server, "STATE_DB").await;
    db.set_entry("FEATURE", "a", &fields(&[("v", "1")]))
        .await
        .unwrap();
    let mut sub = db.subscribe_with("FEATURE", fast()).await.unwrap();
    let mut link = sub.link_state();
    assert_eq!(next_event(&mut sub).await, set("a", &[("v", "1")]));

    server.stop();
    wait_link(&mut link, |s| matches!(s, LinkState::Disconnected { .. })).await;
    // Several failed attempts, each one republishing the state with its error.
    for _ in 0..3 {
        tokio::time::timeout(common::EVENT_DEADLINE, link.changed())
            .await
            .expect("another reconnect attempt")
            .unwrap();
        let state = link.borrow_and_update().clone();
        let LinkState::Disconnected { error } = state else {
            panic!("reconnected to a stopped server: {state:?}")
        };
        assert!(error.starts_with("cannot connect to redis at "), "{error}");
    }
    assert!(sub.try_recv().is_none());

    server.start_again().unwrap();
    wait_link(&mut link, |s| *s == LinkState::Connected { epoch: 1 }).await;
    // The data was lost with the server: the consumer is told.
    assert_eq!(sub.try_recv(), Some(del("a")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_subscription_closes_its_connections() {
    let server = RedisServer::start().unwrap();
    let db = open(&server, "CONFIG_DB").await;
    let pubsub_clients = || -> usize {
        let mut c = server.connection(CONFIG_DB).unwrap();
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut c)
            .unwrap();
        list.lines().count()
    };
    let sub = db.subscribe("FEATURE").await.unwrap();
    assert_eq!(pubsub_clients(), 1);
    drop(sub);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pubsub_clients() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "pub/sub connection still open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
