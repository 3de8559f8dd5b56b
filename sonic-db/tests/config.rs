//! Configuration files, connection choice (unix socket vs TCP) and multi-ASIC namespaces against
//! real redis-servers.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly on purpose

mod common;

use std::path::Path;

use common::fields;
use sonic_db::{DbConfig, Namespace, SonicDb, SonicDbConfig};
use sonic_tests::redis::{CONFIG_DB, MultiAsicRedis, RedisServer};

fn write(path: &Path, value: &serde_json::Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

#[test]
fn a_missing_config_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.json");
    let err = SonicDbConfig::load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot read database config {}: ", path.display())),
        "{err}"
    );
}

#[test]
fn bad_json_is_reported_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("database_config.json");
    std::fs::write(&path, "{\n  \"INSTANCES\": {\n    \"redis\": {,\n").unwrap();
    let err = SonicDbConfig::load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "invalid database config {}: line 3 column 15: ",
            path.display()
        )),
        "{err}"
    );

    // Right JSON, wrong shape: the position of the bad value is given too.
    std::fs::write(
        &path,
        r#"{"INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": "abc"}}, "DATABASES": {}}"#,
    )
    .unwrap();
    let err = SonicDbConfig::load(&path).unwrap_err().to_string();
    assert!(err.contains("line 1 column"), "{err}");
    assert!(err.contains("invalid type: string \"abc\""), "{err}");
}

#[tokio::test]
async fn unknown_database_and_namespace_are_named_in_errors() {
    let server = RedisServer::start().unwrap();
    let cfg = SonicDbConfig::load(server.database_config_path()).unwrap();
    let err = cfg
        .open(&Namespace::Host, "NO_SUCH_DB")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "unknown database NO_SUCH_DB in {}",
            server.database_config_path().display()
        )
    );
    let err = cfg
        .open(&Namespace::from_name("asic3"), "CONFIG_DB")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "unknown namespace asic3 (known: host)");
}

#[tokio::test]
async fn unix_socket_is_preferred_and_tcp_is_used_when_the_socket_is_missing() {
    let server = RedisServer::start_with_tcp().unwrap();
    let port = server.tcp_port().unwrap();
    let mut c = server.connection(CONFIG_DB).unwrap();
    let _: () = redis::cmd("HSET")
        .arg("FEATURE|swss")
        .arg("state")
        .arg("enabled")
        .query(&mut c)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let expected = fields(&[("state", "enabled")]);

    // Socket present: the socket is used (the TCP port given here is closed).
    let mut cfg = server.database_config();
    cfg["INSTANCES"]["redis"]["port"] = 0.into();
    let unix_only = dir.path().join("unix.json");
    write(&unix_only, &cfg);
    let db = SonicDb::open_file(&unix_only, "CONFIG_DB").await.unwrap();
    assert_eq!(db.get_entry("FEATURE", "swss").await.unwrap(), expected);

    // Socket configured but absent: TCP.
    let mut cfg = server.database_config();
    cfg["INSTANCES"]["redis"]["unix_socket_path"] =
        dir.path().join("absent.sock").to_str().unwrap().into();
    cfg["INSTANCES"]["redis"]["port"] = port.into();
    let tcp_fallback = dir.path().join("tcp.json");
    write(&tcp_fallback, &cfg);
    let db = SonicDb::open_file(&tcp_fallback, "CONFIG_DB")
        .await
        .unwrap();
    assert_eq!(db.get_entry("FEATURE", "swss").await.unwrap(), expected);

    // No socket configured at all: TCP.
    let mut cfg = server.database_config();
    cfg["INSTANCES"]["redis"]
        .as_object_mut()
        .unwrap()
        .remove("unix_socket_path");
    let tcp_only = dir.path().join("tcp-only.json");
    write(&tcp_only, &cfg);
    let db = SonicDb::open_file(&tcp_only, "CONFIG_DB").await.unwrap();
    assert_eq!(db.get_entry("FEATURE", "swss").await.unwrap(), expected);

    // Neither works: the error names what was tried and the database.
    let mut cfg = server.database_config();
    cfg["INSTANCES"]["redis"]["unix_socket_path"] =
        dir.path().join("absent.sock").to_str().unwrap().into();
    cfg["INSTANCES"]["redis"]["port"] = 0.into();
    let broken = dir.path().join("broken.json");
    write(&broken, &cfg);
    let err = SonicDb::open_file(&broken, "STATE_DB").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "cannot connect to redis at 127.0.0.1:0 (unix socket {} does not exist) for STATE_DB: ",
            dir.path().join("absent.sock").display()
        )),
        "{msg}"
    );
}

#[tokio::test]
async fn a_dead_unix_socket_is_named_in_the_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("redis.sock");
    // Exists, but nothing listens: a plain file.
    std::fs::write(&sock, "").unwrap();
    let cfg = serde_json::json!({
        "INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": 0, "unix_socket_path": sock}},
        "DATABASES": {"CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"}},
    });
    let path = dir.path().join("database_config.json");
    write(&path, &cfg);
    let err = SonicDb::open_file(&path, "CONFIG_DB").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "cannot connect to redis at {} for CONFIG_DB: ",
            sock.display()
        )),
        "{msg}"
    );
    assert!(err.is_transient(), "{msg}");
}

#[tokio::test]
async fn multi_asic_namespaces_are_listed_and_opened_separately() {
    let system = MultiAsicRedis::start(2).unwrap();
    let cfg = SonicDbConfig::load_global(&system.global_config_path()).unwrap();
    let asic0 = Namespace::from_name("asic0");
    let asic1 = Namespace::from_name("asic1");
    assert_eq!(
        cfg.namespaces(),
        [Namespace::Host, asic0.clone(), asic1.clone()]
    );
    assert_eq!(cfg.asic_namespaces(), [asic0.clone(), asic1.clone()]);

    let host = cfg.open(&Namespace::Host, "CONFIG_DB").await.unwrap();
    let a0 = cfg.open(&asic0, "CONFIG_DB").await.unwrap();
    let a1_state = cfg.open(&asic1, "STATE_DB").await.unwrap();
    assert_eq!(a0.namespace(), &asic0);

    host.set_entry("FEATURE", "bgp", &fields(&[("state", "host")]))
        .await
        .unwrap();
    a0.set_entry("FEATURE", "bgp", &fields(&[("state", "asic0")]))
        .await
        .unwrap();
    a1_state
        .set_entry("FEATURE", "bgp", &fields(&[("state", "asic1")]))
        .await
        .unwrap();

    // Each namespace is its own server.
    let raw = |server: &RedisServer, db: i64| -> sonic_db::Fields {
        let mut c = server.connection(db).unwrap();
        redis::cmd("HGETALL")
            .arg("FEATURE|bgp")
            .query(&mut c)
            .unwrap()
    };
    assert_eq!(raw(&system.host, 4), fields(&[("state", "host")]));
    assert_eq!(raw(system.asic(0), 4), fields(&[("state", "asic0")]));
    assert_eq!(raw(system.asic(1), 6), fields(&[("state", "asic1")]));
    assert!(raw(system.asic(1), 4).is_empty());

    // Errors in a namespace's database name the namespace.
    system.asics[1].connection(4).unwrap();
    let err = cfg.open(&asic1, "NOPE_DB").await.unwrap_err().to_string();
    assert!(err.starts_with("unknown database NOPE_DB in "), "{err}");
    assert!(
        err.contains("redis1/sonic-db/database_config.json"),
        "{err}"
    );

    // from_paths: the global's host include wins over the single file.
    let cfg2 = SonicDbConfig::from_paths(
        Path::new("/nonexistent/database_config.json"),
        Some(&system.global_config_path()),
    )
    .unwrap();
    assert_eq!(cfg2, cfg);
}

#[test]
fn global_config_includes_are_relative_and_errors_name_the_included_file() {
    let dir = tempfile::tempdir().unwrap();
    let inner = serde_json::json!({
        "INSTANCES": {"redis": {"hostname": "10.0.0.1", "port": 6379, "unix_socket_path": "/var/run/redis0/redis.sock"}},
        "DATABASES": {"CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"}},
    });
    std::fs::create_dir_all(dir.path().join("redis0/sonic-db")).unwrap();
    std::fs::create_dir_all(dir.path().join("redis/sonic-db")).unwrap();
    write(
        &dir.path().join("redis0/sonic-db/database_config.json"),
        &inner,
    );
    let global = dir.path().join("redis/sonic-db/database_global.json");
    write(
        &global,
        &serde_json::json!({"INCLUDES": [
            {"namespace": "asic0", "include": "../../redis0/sonic-db/database_config.json"},
            {"container_name": "dpu0", "include": "../../redisdpu0/sonic-db/database_config.json"},
        ], "VERSION": "1.0"}),
    );
    let cfg = SonicDbConfig::load_global(&global).unwrap();
    // No host include and DPU containers are not namespaces.
    assert_eq!(cfg.namespaces(), [Namespace::from_name("asic0")]);
    let asic0 = cfg.db_config(&Namespace::from_name("asic0")).unwrap();
    assert_eq!(asic0.instance_of("CONFIG_DB").unwrap().hostname, "10.0.0.1");
    assert_eq!(asic0.database("CONFIG_DB").unwrap().id, 4);
    assert_eq!(
        cfg.db_config(&Namespace::Host).unwrap_err().to_string(),
        "unknown namespace host (known: asic0)"
    );

    write(
        &global,
        &serde_json::json!({"INCLUDES": [
            {"namespace": "asic1", "include": "../../redis1/sonic-db/database_config.json"},
        ]}),
    );
    let err = SonicDbConfig::load_global(&global).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "cannot read database config {}: ",
            dir.path()
                .join("redis/sonic-db/../../redis1/sonic-db/database_config.json")
                .display()
        )),
        "{err}"
    );

    write(
        &global,
        &serde_json::json!({"INCLUDES": [
            {"namespace": "asic0", "include": "../../redis0/sonic-db/database_config.json"},
            {"namespace": "asic0", "include": "../../redis0/sonic-db/database_config.json"},
        ]}),
    );
    let err = SonicDbConfig::load_global(&global).unwrap_err().to_string();
    assert!(err.ends_with("namespace asic0 is included twice"), "{err}");

    let parsed = DbConfig::load(&dir.path().join("redis0/sonic-db/database_config.json")).unwrap();
    assert_eq!(parsed.database_names().collect::<Vec<_>>(), ["CONFIG_DB"]);
}
