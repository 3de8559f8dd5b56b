//! `RedisFeatureStore` (the core's `FeatureStore` and `ManagerStateStore`) against a real
//! redis-server: typed reads and writes, malformed values, outages.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly on purpose

mod common;

use std::time::Duration;

use common::{fields, open};
use sonic_db::{Fields, Namespace, RedisFeatureStore, SonicDbConfig};
use sonic_feature_core::labels::LabelJournal;
use sonic_feature_core::model::{
    AdminState, CurrentOwner, FeatureConfig, FeatureName, FeatureStatus, LabelKey, LabelValue,
    NodeLabels, RemoteState, ServerConfig, ServerStatus, SetOwner, StatusUpdate, SystemState,
    Version,
};
use sonic_feature_core::ports::{ErrorKind, FeatureStore, ManagerStateStore};
use sonic_tests::redis::{CONFIG_DB, MultiAsicRedis, RedisServer, STATE_DB, mock_tables_dir};

async fn store(server: &RedisServer) -> RedisFeatureStore {
    RedisFeatureStore::new(
        open(server, "CONFIG_DB").await,
        open(server, "STATE_DB").await,
    )
}

fn feature(name: &str) -> FeatureName {
    FeatureName::parse(name).unwrap()
}

fn raw(server: &RedisServer, db: i64, key: &str) -> Fields {
    let mut c = server.connection(db).unwrap();
    redis::cmd("HGETALL").arg(key).query(&mut c).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> NodeLabels {
    pairs
        .iter()
        .map(|(k, v)| (LabelKey::parse(k).unwrap(), LabelValue::parse(v).unwrap()))
        .collect()
}

#[tokio::test]
async fn sonic_utilities_fixtures_read_as_typed_records() {
    let server = RedisServer::start().unwrap();
    let dir = mock_tables_dir();
    server
        .seed_from_json(CONFIG_DB, dir.join("config_db.json"))
        .unwrap();
    server
        .seed_from_json(STATE_DB, dir.join("state_db.json"))
        .unwrap();
    let store = store(&server).await;

    let names = store.feature_names().await.unwrap();
    assert!(names.contains(&feature("snmp")) && names.contains(&feature("database")));
    for name in &names {
        store.feature_config(name).await.unwrap().unwrap();
        store.feature_status(name).await.unwrap();
    }
    let snmp = store
        .feature_config(&feature("snmp"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snmp.set_owner, SetOwner::Kube);
    assert!(snmp.fallback);
    assert_eq!(snmp.state, Some(AdminState::Enabled));
    assert_eq!(
        store
            .feature_config(&feature("database"))
            .await
            .unwrap()
            .unwrap()
            .state,
        Some(AdminState::AlwaysEnabled)
    );
    assert_eq!(
        store.feature_config(&feature("nosuch")).await.unwrap(),
        None
    );

    assert_eq!(
        store.server_config().await.unwrap(),
        ServerConfig {
            ip: Some("10.3.157.24".into()),
            port: 6443,
            insecure: true,
            disable: false
        }
    );
    let info = store.node_info("20201230.1").await.unwrap();
    assert_eq!(info.hwsku, "Mellanox-SN3800-D112C8");
    assert_eq!(info.deployment_type.as_deref(), Some("ToRRouter"));
    assert_eq!(info.platform.as_deref(), Some("x86_64-mlnx_msn3800-r0"));
}

#[tokio::test]
async fn feature_config_of_an_entry_without_fields_is_the_default() {
    let server = RedisServer::start().unwrap();
    let store = store(&server).await;
    store
        .config_db()
        .set_empty_entry("FEATURE", "snmp")
        .await
        .unwrap();
    assert_eq!(
        store.feature_config(&feature("snmp")).await.unwrap(),
        Some(FeatureConfig::default())
    );
    store
        .config_db()
        .set_entry(
            "FEATURE",
            "snmp",
            &fields(&[
                ("set_owner", "KUBE"),
                ("no_fallback_to_local", "true"),
                ("kube_failure_detection", "2"),
            ]),
        )
        .await
        .unwrap();
    let c = store
        .feature_config(&feature("snmp"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.set_owner, c.fallback, c.kube_failure_detection),
        (SetOwner::Kube, false, Some(Duration::from_secs(120)))
    );
}

#[tokio::test]
async fn status_updates_write_only_their_fields_in_one_hset() {
    let server = RedisServer::start().unwrap();
    let store = store(&server).await;
    let snmp = feature("snmp");
    assert_eq!(
        store.feature_status(&snmp).await.unwrap(),
        FeatureStatus::default()
    );
    store
        .state_db()
        .mod_entry("FEATURE", "snmp", &fields(&[("state", "enabled")]))
        .await
        .unwrap();

    let update = StatusUpdate::new()
        .system_state(SystemState::Up)
        .current_owner(CurrentOwner::Kube)
        .container_id("")
        .remote_state(RemoteState::Pending)
        .container_version(Version::parse("20201230.80").unwrap())
        .update_time("2020-12-08 22:59:57");
    store.update_feature_status(&snmp, &update).await.unwrap();
    assert_eq!(
        raw(&server, STATE_DB, "FEATURE|snmp"),
        fields(&[
            ("container_id", ""),
            ("container_version", "20201230.80"),
            ("current_owner", "kube"),
            ("remote_state", "pending"),
            ("state", "enabled"),
            ("system_state", "up"),
            ("update_time", "2020-12-08 22:59:57"),
        ])
    );
    let mut expected = FeatureStatus::default();
    update.apply_to(&mut expected);
    assert_eq!(store.feature_status(&snmp).await.unwrap(), expected);

    // An empty update neither writes nor deletes.
    store
        .update_feature_status(&snmp, &StatusUpdate::new())
        .await
        .unwrap();
    assert_eq!(store.feature_status(&snmp).await.unwrap(), expected);
    // Absent container_id stays distinguishable from an empty one.
    let lldp = feature("lldp");
    store
        .update_feature_status(
            &lldp,
            &StatusUpdate::new().current_owner(CurrentOwner::Local),
        )
        .await
        .unwrap();
    assert_eq!(
        store.feature_status(&lldp).await.unwrap().container_id,
        None
    );
}

#[tokio::test]
async fn malformed_values_give_permanent_errors_naming_database_key_field_and_value() {
    let server = RedisServer::start().unwrap();
    server
        .seed_from_json(
            CONFIG_DB,
            serde_json::json!({
                "FEATURE|owner": {"set_owner": "banana"},
                "FEATURE|fallback": {"no_fallback_to_local": "maybe"},
                "KUBERNETES_MASTER|SERVER": {"ip": "10.0.0.1", "port": "abc"},
                "IMAGE_MGMT|GLOBAL": {"purge_older_image": "sometimes"},
            }),
        )
        .unwrap();
    server
        .seed_from_json(
            STATE_DB,
            serde_json::json!({
                "FEATURE|snmp": {"remote_state": "flying"},
                "KUBERNETES_MASTER|SERVER": {"connected": "yes"},
                "KUBE_LABELS|SET": {"bad key": "true"},
                "CTRMGRD_STATE|LABEL_JOURNAL": {"json": "{not json"},
            }),
        )
        .unwrap();
    let store = store(&server).await;

    let expect = |r: Result<(), sonic_feature_core::ports::PortError>, msg: &str| {
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
        assert!(e.to_string().starts_with(msg), "{e}");
    };
    expect(
        store.feature_config(&feature("owner")).await.map(|_| ()),
        "CONFIG_DB FEATURE|owner field set_owner: invalid owner \"banana\"",
    );
    expect(
        store.feature_config(&feature("fallback")).await.map(|_| ()),
        "CONFIG_DB FEATURE|fallback field no_fallback_to_local: invalid boolean \"maybe\"",
    );
    expect(
        store.server_config().await.map(|_| ()),
        "CONFIG_DB KUBERNETES_MASTER|SERVER field port: invalid port \"abc\"",
    );
    expect(
        store.image_mgmt().await.map(|_| ()),
        "CONFIG_DB IMAGE_MGMT|GLOBAL field purge_older_image: invalid boolean \"sometimes\"",
    );
    expect(
        store.feature_status(&feature("snmp")).await.map(|_| ()),
        "STATE_DB FEATURE|snmp field remote_state: invalid remote state \"flying\"",
    );
    expect(
        store.server_status().await.map(|_| ()),
        "STATE_DB KUBERNETES_MASTER|SERVER field connected: invalid boolean \"yes\"",
    );
    expect(
        store.desired_labels().await.map(|_| ()),
        "STATE_DB KUBE_LABELS|SET field bad key: invalid label key \"bad key\"",
    );
    expect(
        store.load_label_journal().await.map(|_| ()),
        "STATE_DB CTRMGRD_STATE|LABEL_JOURNAL field json: invalid label journal \"{not json\"",
    );
}

#[tokio::test]
async fn desired_labels_are_set_and_removed_together() {
    let server = RedisServer::start().unwrap();
    let store = store(&server).await;
    assert!(store.desired_labels().await.unwrap().is_empty());
    store
        .update_desired_labels(
            &labels(&[("snmp_enabled", "true"), ("hwsku", "Force10-S6000")]),
            &[],
        )
        .await
        .unwrap();
    store
        .update_desired_labels(
            &labels(&[("snmp_enabled", "false"), ("lldp_enabled", "true")]),
            &[LabelKey::parse("hwsku").unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(
        store.desired_labels().await.unwrap(),
        labels(&[("lldp_enabled", "true"), ("snmp_enabled", "false")])
    );
    assert_eq!(
        raw(&server, STATE_DB, "KUBE_LABELS|SET"),
        fields(&[("lldp_enabled", "true"), ("snmp_enabled", "false")])
    );
    // Nothing to do is fine.
    store
        .update_desired_labels(&NodeLabels::new(), &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn server_status_is_written_whole_and_read_back() {
    let server = RedisServer::start().unwrap();
    let store = store(&server).await;
    assert_eq!(
        store.server_status().await.unwrap(),
        ServerStatus::default()
    );
    let joined = ServerStatus {
        connected: true,
        ip: Some("10.0.0.1".into()),
        port: Some(6443),
        update_time: Some("2020-12-08 22:59:57".into()),
        last_error: None,
    };
    store.write_server_status(&joined).await.unwrap();
    assert_eq!(store.server_status().await.unwrap(), joined);
    let failing = ServerStatus {
        connected: false,
        ip: None,
        port: None,
        update_time: Some("2020-12-08 22:59:59".into()),
        last_error: Some("join failed: connection refused".into()),
    };
    store.write_server_status(&failing).await.unwrap();
    assert_eq!(store.server_status().await.unwrap(), failing);
    assert_eq!(
        raw(&server, STATE_DB, "KUBERNETES_MASTER|SERVER")
            .get("last_error")
            .map(String::as_str),
        Some("join failed: connection refused")
    );
    // Replace semantics: the problem field goes away with the next status without one.
    let reset = ServerStatus {
        connected: false,
        ip: None,
        port: None,
        update_time: Some("2020-12-08 23:00:00".into()),
        last_error: None,
    };
    store.write_server_status(&reset).await.unwrap();
    assert_eq!(
        raw(&server, STATE_DB, "KUBERNETES_MASTER|SERVER"),
        fields(&[
            ("connected", "false"),
            ("update_time", "2020-12-08 23:00:00")
        ])
    );
}

#[tokio::test]
async fn the_label_journal_survives_in_state_db() {
    let server = RedisServer::start().unwrap();
    let store = store(&server).await;
    assert_eq!(store.load_label_journal().await.unwrap(), None);
    let mut journal = LabelJournal::default();
    journal.observe_desired(&labels(&[("snmp_enabled", "true")]));
    store.save_label_journal(&journal).await.unwrap();
    assert_eq!(
        store.load_label_journal().await.unwrap(),
        Some(journal.clone().restored())
    );
    // It is not in KUBE_LABELS, so label subscribers never see it.
    assert!(
        store
            .state_db()
            .keys("KUBE_LABELS")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn pending_restarts_are_recorded_per_feature_and_cleared_one_by_one() {
    let server = RedisServer::start().unwrap();
    let store = store(&server).await;
    assert!(store.load_pending_restarts().await.unwrap().is_empty());
    store
        .note_pending_restart(&feature("snmp"), SetOwner::Kube)
        .await
        .unwrap();
    store
        .note_pending_restart(&feature("lldp0"), SetOwner::Local)
        .await
        .unwrap();
    assert_eq!(
        raw(&server, STATE_DB, "CTRMGRD_STATE|PENDING_RESTARTS"),
        fields(&[("snmp", "kube"), ("lldp0", "local")])
    );
    store.clear_pending_restart(&feature("snmp")).await.unwrap();
    // Clearing what is not recorded is no error.
    store.clear_pending_restart(&feature("bgp")).await.unwrap();
    assert_eq!(
        store.load_pending_restarts().await.unwrap(),
        [(feature("lldp0"), SetOwner::Local)].into()
    );
    store
        .clear_pending_restart(&feature("lldp0"))
        .await
        .unwrap();
    assert!(store.load_pending_restarts().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_malformed_pending_restart_is_an_error_naming_its_field() {
    let server = RedisServer::start().unwrap();
    let store = store(&server).await;
    let mut c = server.connection(STATE_DB).unwrap();
    let _: () = redis::cmd("HSET")
        .arg("CTRMGRD_STATE|PENDING_RESTARTS")
        .arg("snmp")
        .arg("")
        .query(&mut c)
        .unwrap();
    let e = store.load_pending_restarts().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    let text = e.to_string();
    assert!(
        text.contains("CTRMGRD_STATE|PENDING_RESTARTS") && text.contains("snmp"),
        "{text}"
    );
}

#[tokio::test]
async fn the_managers_clocks_survive_in_state_db_and_bad_ones_are_named() {
    use sonic_feature_core::manager::{Clocks, FeatureClocks, MarkGoodClock};
    use sonic_feature_core::model::{ContainerId, Timestamp};
    let server = RedisServer::start().unwrap();
    let store = store(&server).await;
    assert_eq!(store.load_clocks().await.unwrap(), None);
    let clocks = Clocks {
        features: [(
            feature("snmp"),
            FeatureClocks {
                failing_since: Some(Timestamp::from_millis(12_000)),
                alerted: true,
                mark_good: Some(MarkGoodClock {
                    container: ContainerId::parse("0123456789ab").unwrap(),
                    version: Version::parse("2.0.0").unwrap(),
                    due: Some(Timestamp::from_millis(612_000)),
                }),
                ..FeatureClocks::default()
            },
        )]
        .into(),
    };
    store.save_clocks(&clocks).await.unwrap();
    assert_eq!(store.load_clocks().await.unwrap(), Some(clocks));

    let mut c = server.connection(STATE_DB).unwrap();
    let _: () = redis::cmd("HSET")
        .arg("CTRMGRD_STATE|CLOCKS")
        .arg("json")
        .arg("{\"features\": 7}")
        .query(&mut c)
        .unwrap();
    let e = store.load_clocks().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    let text = e.to_string();
    assert!(
        text.contains("CTRMGRD_STATE|CLOCKS") && text.contains("invalid clocks"),
        "{text}"
    );
}

#[tokio::test]
async fn image_mgmt_reads_global_and_feature_overrides() {
    let server = RedisServer::start().unwrap();
    server
        .seed_from_json(
            CONFIG_DB,
            serde_json::json!({
                "IMAGE_MGMT|GLOBAL": {"Disable": "false", "active_time_to_mark_good": "90s", "purge_older_image": "true"},
                "IMAGE_MGMT|snmp": {"Disable": "true"},
            }),
        )
        .unwrap();
    let store = store(&server).await;
    let m = store.image_mgmt().await.unwrap();
    let snmp = m.effective(&feature("snmp"));
    let lldp = m.effective(&feature("lldp"));
    assert!(snmp.disable && !lldp.disable);
    assert_eq!(lldp.active_time_to_mark_good, Duration::from_secs(90));
    assert!(lldp.purge_older_image);
}

#[tokio::test]
async fn store_errors_are_transient_while_redis_is_down_and_heal_after() {
    let mut server = RedisServer::start().unwrap();
    let store = store(&server).await;
    let snmp = feature("snmp");
    store
        .update_feature_status(&snmp, &StatusUpdate::new().system_state(SystemState::Up))
        .await
        .unwrap();
    server.stop();
    let e = store.feature_status(&snmp).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("STATE_DB"), "{e}");
    server.start_again().unwrap();
    assert_eq!(
        store.feature_status(&snmp).await.unwrap(),
        FeatureStatus::default()
    );
}

#[tokio::test]
async fn a_namespace_store_uses_that_namespaces_server() {
    let system = MultiAsicRedis::start(1).unwrap();
    let cfg = SonicDbConfig::load_global(&system.global_config_path()).unwrap();
    let asic0 = RedisFeatureStore::open(&cfg, &Namespace::from_name("asic0"))
        .await
        .unwrap();
    asic0
        .update_feature_status(
            &feature("bgp"),
            &StatusUpdate::new().current_owner(CurrentOwner::Local),
        )
        .await
        .unwrap();
    assert_eq!(
        raw(system.asic(0), STATE_DB, "FEATURE|bgp"),
        fields(&[("current_owner", "local")])
    );
    assert!(raw(&system.host, STATE_DB, "FEATURE|bgp").is_empty());
    system
        .asic(0)
        .seed_from_json(
            CONFIG_DB,
            serde_json::json!({"FEATURE|bgp": {"set_owner": "nope"}}),
        )
        .unwrap();
    let e = asic0.feature_config(&feature("bgp")).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("CONFIG_DB of namespace asic0 FEATURE|bgp field set_owner"),
        "{e}"
    );
}
