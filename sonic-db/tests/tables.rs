//! Table operations against a real redis-server, following ConfigDBConnector's conventions.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly on purpose

mod common;

use std::collections::BTreeMap;

use common::{fields, open};
use sonic_db::{FieldValue, Fields};
use sonic_tests::redis::{CONFIG_DB, RedisServer, mock_tables_dir};

fn raw_hgetall(server: &RedisServer, db: i64, key: &str) -> Fields {
    let mut c = server.connection(db).unwrap();
    redis::cmd("HGETALL").arg(key).query(&mut c).unwrap()
}

fn raw_exists(server: &RedisServer, db: i64, key: &str) -> bool {
    let mut c = server.connection(db).unwrap();
    redis::cmd("EXISTS").arg(key).query(&mut c).unwrap()
}

#[tokio::test]
async fn get_entry_drops_null_placeholder_and_keeps_list_fields_raw() {
    let server = RedisServer::start().unwrap();
    server
        .seed_from_json(
            CONFIG_DB,
            serde_json::json!({
                "VLAN|Vlan1000": {"vlanid": "1000", "dhcp_servers": ["192.0.0.1", "192.0.0.2"]},
                "PORTCHANNEL_INTERFACE|PortChannel0002": {},
            }),
        )
        .unwrap();
    let db = open(&server, "CONFIG_DB").await;

    let vlan = db.get_entry("VLAN", "Vlan1000").await.unwrap();
    assert_eq!(
        vlan,
        fields(&[("dhcp_servers@", "192.0.0.1,192.0.0.2"), ("vlanid", "1000")])
    );
    let typed = db.get_entry_typed("VLAN", "Vlan1000").await.unwrap();
    assert_eq!(
        typed,
        BTreeMap::from([
            (
                "dhcp_servers".to_string(),
                FieldValue::List(vec!["192.0.0.1".into(), "192.0.0.2".into()])
            ),
            ("vlanid".to_string(), FieldValue::Str("1000".into())),
        ])
    );

    let placeholder = "PortChannel0002";
    assert_eq!(
        raw_hgetall(&server, CONFIG_DB, "PORTCHANNEL_INTERFACE|PortChannel0002"),
        fields(&[("NULL", "NULL")])
    );
    assert!(
        db.get_entry("PORTCHANNEL_INTERFACE", placeholder)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.get_entry_typed("PORTCHANNEL_INTERFACE", placeholder)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.exists("PORTCHANNEL_INTERFACE", placeholder)
            .await
            .unwrap()
    );
    assert!(!db.exists("PORTCHANNEL_INTERFACE", "nope").await.unwrap());
    assert!(db.get_entry("FEATURE", "nope").await.unwrap().is_empty());
}

#[tokio::test]
async fn set_entry_replaces_all_fields_and_an_empty_map_deletes() {
    let server = RedisServer::start().unwrap();
    let db = open(&server, "CONFIG_DB").await;

    db.set_entry(
        "FEATURE",
        "swss",
        &fields(&[("state", "enabled"), ("set_owner", "local")]),
    )
    .await
    .unwrap();
    db.set_entry(
        "FEATURE",
        "swss",
        &fields(&[("state", "disabled"), ("auto_restart", "enabled")]),
    )
    .await
    .unwrap();
    assert_eq!(
        raw_hgetall(&server, CONFIG_DB, "FEATURE|swss"),
        fields(&[("auto_restart", "enabled"), ("state", "disabled")])
    );

    // Replacing a placeholder entry removes the placeholder.
    db.set_empty_entry("FEATURE", "snmp").await.unwrap();
    assert_eq!(
        raw_hgetall(&server, CONFIG_DB, "FEATURE|snmp"),
        fields(&[("NULL", "NULL")])
    );
    db.set_entry("FEATURE", "snmp", &fields(&[("state", "enabled")]))
        .await
        .unwrap();
    assert_eq!(
        raw_hgetall(&server, CONFIG_DB, "FEATURE|snmp"),
        fields(&[("state", "enabled")])
    );
    // And the other way round: only the placeholder stays.
    db.set_empty_entry("FEATURE", "snmp").await.unwrap();
    assert_eq!(
        raw_hgetall(&server, CONFIG_DB, "FEATURE|snmp"),
        fields(&[("NULL", "NULL")])
    );

    db.set_entry("FEATURE", "swss", &Fields::new())
        .await
        .unwrap();
    assert!(!raw_exists(&server, CONFIG_DB, "FEATURE|swss"));
}

#[tokio::test]
async fn set_entry_handles_entries_with_thousands_of_fields() {
    let server = RedisServer::start().unwrap();
    let db = open(&server, "CONFIG_DB").await;
    let big: Fields = (0..5000)
        .map(|i| (format!("f{i}"), format!("v{i}")))
        .collect();
    db.set_entry("BIG", "one", &big).await.unwrap();
    let small: Fields = (0..10)
        .map(|i| (format!("f{i}"), "x".to_string()))
        .collect();
    db.set_entry("BIG", "one", &small).await.unwrap();
    assert_eq!(db.get_entry("BIG", "one").await.unwrap(), small);
}

#[tokio::test]
async fn mod_entry_merges_fields_and_an_empty_map_deletes() {
    let server = RedisServer::start().unwrap();
    let db = open(&server, "STATE_DB").await;
    db.mod_entry(
        "FEATURE",
        "dhcp_relay",
        &fields(&[("current_owner", "local"), ("container_id", "dhcp_relay")]),
    )
    .await
    .unwrap();
    db.mod_entry(
        "FEATURE",
        "dhcp_relay",
        &fields(&[("current_owner", "kube"), ("remote_state", "running")]),
    )
    .await
    .unwrap();
    assert_eq!(
        db.get_entry("FEATURE", "dhcp_relay").await.unwrap(),
        fields(&[
            ("container_id", "dhcp_relay"),
            ("current_owner", "kube"),
            ("remote_state", "running")
        ])
    );
    db.mod_entry("FEATURE", "dhcp_relay", &Fields::new())
        .await
        .unwrap();
    assert!(!raw_exists(&server, 6, "FEATURE|dhcp_relay"));
}

#[tokio::test]
async fn del_entry_and_hdel_remove_entries_and_fields() {
    let server = RedisServer::start().unwrap();
    let db = open(&server, "STATE_DB").await;
    db.mod_entry(
        "KUBE_LABELS",
        "SET",
        &fields(&[("a", "1"), ("b", "2"), ("c", "3")]),
    )
    .await
    .unwrap();
    db.hdel("KUBE_LABELS", "SET", &["a", "missing"])
        .await
        .unwrap();
    assert_eq!(
        db.get_entry("KUBE_LABELS", "SET").await.unwrap(),
        fields(&[("b", "2"), ("c", "3")])
    );
    db.hdel::<&str>("KUBE_LABELS", "SET", &[]).await.unwrap();
    // Removing the last fields removes the entry, as in Redis.
    db.hdel("KUBE_LABELS", "SET", &["b".to_string(), "c".to_string()])
        .await
        .unwrap();
    assert!(!db.exists("KUBE_LABELS", "SET").await.unwrap());

    db.mod_entry("FEATURE", "x", &fields(&[("a", "1")]))
        .await
        .unwrap();
    db.del_entry("FEATURE", "x").await.unwrap();
    db.del_entry("FEATURE", "x").await.unwrap();
    assert!(!db.exists("FEATURE", "x").await.unwrap());
}

#[tokio::test]
async fn keys_and_get_table_return_the_part_after_the_first_separator() {
    let server = RedisServer::start().unwrap();
    server
        .seed_from_json(
            CONFIG_DB,
            serde_json::json!({
                "INTERFACE|Ethernet0": {},
                "INTERFACE|Ethernet0|10.0.0.0/31": {},
                "INTERFACE|Ethernet4": {"vrf_name": "Vrf1"},
                "INTERFACES|lookalike": {"x": "1"},
                "INTERFACE_X|other": {"x": "1"},
                "interface|lower": {"x": "1"},
            }),
        )
        .unwrap();
    let db = open(&server, "CONFIG_DB").await;
    assert_eq!(
        db.keys("INTERFACE").await.unwrap(),
        ["Ethernet0", "Ethernet0|10.0.0.0/31", "Ethernet4"]
    );
    let table = db.get_table("INTERFACE").await.unwrap();
    assert_eq!(
        table,
        BTreeMap::from([
            ("Ethernet0".to_string(), Fields::new()),
            ("Ethernet0|10.0.0.0/31".to_string(), Fields::new()),
            ("Ethernet4".to_string(), fields(&[("vrf_name", "Vrf1")])),
        ])
    );
    assert!(db.keys("NO_SUCH_TABLE").await.unwrap().is_empty());
    assert!(db.get_table("NO_SUCH_TABLE").await.unwrap().is_empty());
    // Glob characters in a table name match only themselves.
    assert!(db.keys("INTERFACE*").await.unwrap().is_empty());
}

#[tokio::test]
async fn table_names_are_upper_cased_like_config_db_connector() {
    let server = RedisServer::start().unwrap();
    let db = open(&server, "CONFIG_DB").await;
    db.set_entry("feature", "swss", &fields(&[("state", "enabled")]))
        .await
        .unwrap();
    assert_eq!(
        raw_hgetall(&server, CONFIG_DB, "FEATURE|swss"),
        fields(&[("state", "enabled")])
    );
    assert_eq!(db.keys("Feature").await.unwrap(), ["swss"]);
    assert_eq!(
        db.redis_key("kubernetes_master", "SERVER"),
        "KUBERNETES_MASTER|SERVER"
    );
}

#[tokio::test]
async fn separator_and_db_id_come_from_the_config() {
    let server = RedisServer::start().unwrap();
    let appl = open(&server, "APPL_DB").await;
    assert_eq!(
        (appl.name(), appl.id(), appl.separator()),
        ("APPL_DB", 0, ":")
    );
    appl.set_entry("PORT_TABLE", "Ethernet0", &fields(&[("mtu", "9100")]))
        .await
        .unwrap();
    assert_eq!(
        raw_hgetall(&server, 0, "PORT_TABLE:Ethernet0"),
        fields(&[("mtu", "9100")])
    );
    assert_eq!(appl.keys("PORT_TABLE").await.unwrap(), ["Ethernet0"]);
    // Databases sharing an id (PFC_WD_DB and FLEX_COUNTER_DB) see each other's keys.
    let pfc = open(&server, "PFC_WD_DB").await;
    let flex = open(&server, "FLEX_COUNTER_DB").await;
    pfc.set_entry("T", "k", &fields(&[("a", "b")]))
        .await
        .unwrap();
    assert_eq!(
        flex.get_entry("T", "k").await.unwrap(),
        fields(&[("a", "b")])
    );
    assert!(
        open(&server, "CONFIG_DB")
            .await
            .keys("PORT_TABLE")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn mock_tables_are_seeded_like_sonic_utilities_loads_them() {
    let server = RedisServer::start().unwrap();
    let path = mock_tables_dir().join("config_db.json");
    let n = server.seed_from_json(CONFIG_DB, &path).unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(n, doc.as_object().unwrap().len());
    let db = open(&server, "CONFIG_DB").await;

    // Every FEATURE entry of the fixture reads back verbatim.
    let features = db.get_table("FEATURE").await.unwrap();
    let expected: BTreeMap<String, Fields> = doc
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("FEATURE|")?;
            let f = v
                .as_object()
                .unwrap()
                .iter()
                .map(|(f, v)| (f.clone(), v.as_str().unwrap().to_string()))
                .collect();
            Some((key.to_string(), f))
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(features, expected);

    // A JSON list becomes a `field@` list field.
    assert_eq!(
        db.get_entry("DHCP_RELAY", "Vlan1000").await.unwrap(),
        fields(&[("dhcpv6_servers@", "fc02:2000::1")])
    );
    // A redis-dump entry is stored by its value.
    let acl = db
        .get_entry_typed("ACL_TABLE", "DATAACLV4V6")
        .await
        .unwrap();
    assert_eq!(
        acl.get("policy_desc"),
        Some(&FieldValue::Str("DATAACLV4V6".into()))
    );
    assert!(matches!(acl.get("ports"), Some(FieldValue::List(p)) if p.len() > 1));
}

#[tokio::test]
async fn a_non_hash_entry_gives_an_error_naming_command_key_and_database() {
    let server = RedisServer::start().unwrap();
    let mut c = server.connection(CONFIG_DB).unwrap();
    let _: () = redis::cmd("SET")
        .arg("FEATURE|broken")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let db = open(&server, "CONFIG_DB").await;
    let err = db.get_entry("FEATURE", "broken").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("redis HGETALL FEATURE|broken on CONFIG_DB failed: "),
        "{msg}"
    );
    assert!(!err.is_transient());
    let err = db.get_table("FEATURE").await.unwrap_err();
    assert!(err.to_string().contains("on CONFIG_DB"), "{err}");
}
