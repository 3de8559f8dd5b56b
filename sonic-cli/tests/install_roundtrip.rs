//! Install and uninstall on disk: what is written, updates, and the refusal to touch files we
//! did not generate; and the command functions with a private redis-server.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod install_common;

use std::os::unix::fs::PermissionsExt;

use install_common::Root;
use sonic_cli::install::command::InstallOptions;
use sonic_cli::install::{
    InstallError, ServiceSpec, config_feature_install, config_feature_uninstall, install, uninstall,
};
use sonic_db::{Namespace, SonicDbConfig};
use sonic_feature_core::model::FeatureName;
use sonic_tests::redis::RedisServer;

fn snmp() -> FeatureName {
    FeatureName::parse("snmp").unwrap()
}

#[test]
fn install_then_uninstall_leaves_the_directories_as_they_were() {
    let root = Root::new().unwrap();
    let listing = |dir: &std::path::Path| {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let units_before = listing(&root.paths.unit_dir);
    let scripts_before = listing(&root.paths.script_dir);

    let installed = install(&ServiceSpec::simple("snmp", &[]).unwrap(), &root.paths).unwrap();
    assert_eq!(installed.unit, root.paths.unit_dir.join("snmp.service"));
    assert_eq!(installed.script, root.paths.script_dir.join("snmp.sh"));
    assert!(!installed.replaced);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&installed.unit), 0o644);
    assert_eq!(mode(&installed.script), 0o755);

    let removed = uninstall(&snmp(), &root.paths).unwrap().removed;
    assert_eq!(
        removed,
        vec![installed.unit.clone(), installed.script.clone()]
    );
    assert_eq!(listing(&root.paths.unit_dir), units_before);
    assert_eq!(listing(&root.paths.script_dir), scripts_before);
}

#[test]
fn installing_again_updates_the_generated_files() {
    let root = Root::new().unwrap();
    install(&ServiceSpec::simple("snmp", &[]).unwrap(), &root.paths).unwrap();
    let again = install(
        &ServiceSpec::simple("snmp", &["teamd".into()]).unwrap(),
        &root.paths,
    )
    .unwrap();
    assert!(again.replaced);
    let unit = std::fs::read_to_string(&again.unit).unwrap();
    assert!(
        unit.contains("Requires=teamd.service") && !unit.contains("swss"),
        "{unit}"
    );
}

#[test]
fn files_without_the_marker_are_never_overwritten() {
    let root = Root::new().unwrap();
    let unit = root.paths.unit_dir.join("snmp.service");
    std::fs::write(&unit, "[Unit]\nDescription=hand written\n").unwrap();
    let err = install(&ServiceSpec::simple("snmp", &[]).unwrap(), &root.paths).unwrap_err();
    assert!(
        matches!(
            err,
            InstallError::NotGenerated {
                action: "overwrite",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains(&unit.display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&unit).unwrap(),
        "[Unit]\nDescription=hand written\n"
    );
    assert!(!root.paths.script_path(&snmp()).exists(), "no half install");
}

#[test]
fn files_without_the_marker_are_never_removed() {
    let root = Root::new().unwrap();
    install(&ServiceSpec::simple("snmp", &[]).unwrap(), &root.paths).unwrap();
    let script = root.paths.script_path(&snmp());
    std::fs::write(&script, "#!/bin/sh\necho mine\n").unwrap();
    let err = uninstall(&snmp(), &root.paths).unwrap_err();
    assert!(
        matches!(
            err,
            InstallError::NotGenerated {
                action: "remove",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        root.paths.unit_path(&snmp()).exists(),
        "nothing removed when one file is foreign"
    );
    assert!(script.exists());
}

#[test]
fn the_marker_of_another_feature_does_not_count() {
    let root = Root::new().unwrap();
    let lldp = install(&ServiceSpec::simple("lldp", &[]).unwrap(), &root.paths).unwrap();
    std::fs::copy(&lldp.unit, root.paths.unit_path(&snmp())).unwrap();
    let err = uninstall(&snmp(), &root.paths).unwrap_err();
    assert!(matches!(err, InstallError::NotGenerated { .. }), "{err}");
}

#[test]
fn uninstalling_what_is_not_installed_is_an_error() {
    let root = Root::new().unwrap();
    let err = uninstall(&snmp(), &root.paths).unwrap_err().to_string();
    assert!(err.starts_with("feature snmp is not installed"), "{err}");
}

fn db_config(redis: &RedisServer) -> SonicDbConfig {
    SonicDbConfig::from_paths(redis.database_config_path(), None).unwrap()
}

fn no_reload(root: &Root) -> InstallOptions {
    InstallOptions {
        paths: root.paths.clone(),
        systemctl: None,
    }
}

#[test]
fn install_command_writes_files_reloads_systemd_and_the_feature_entry() {
    let redis = RedisServer::start().expect("redis-server must start (run scripts/install-deps)");
    let root = Root::new().unwrap();
    // A fake systemctl that records `daemon-reload`.
    let mut opts = no_reload(&root);
    opts.systemctl = Some(root.recorder.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dbs = db_config(&redis);
        let config = dbs.open(&Namespace::Host, "CONFIG_DB").await.unwrap();
        config
            .set_entry(
                "FEATURE",
                "snmp",
                &[("kube_failure_detection".to_owned(), "5".to_owned())].into(),
            )
            .await
            .unwrap();

        let exit = config_feature_install(&dbs, "snmp", &["teamd".into()], &opts)
            .await
            .unwrap();
        assert_eq!(exit.code, 0, "{exit:?}");
        assert!(
            exit.stdout.starts_with("Installed feature snmp: "),
            "{exit:?}"
        );
        assert!(root.paths.unit_path(&snmp()).exists());
        assert_eq!(
            root.calls().unwrap(),
            vec![vec![root.recorder(), "daemon-reload".to_owned()]]
        );
        let entry = config.get_entry("FEATURE", "snmp").await.unwrap();
        let pairs: Vec<(&str, &str)> = entry
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("auto_restart", "enabled"),
                ("kube_failure_detection", "5"),
                ("no_fallback_to_local", "true"),
                ("set_owner", "kube"),
                ("state", "enabled"),
            ]
        );

        let exit = config_feature_uninstall("snmp", &opts).await.unwrap();
        assert_eq!(exit.code, 0, "{exit:?}");
        assert!(!root.paths.unit_path(&snmp()).exists());
        assert!(!root.paths.script_path(&snmp()).exists());
        assert_eq!(root.calls().unwrap().len(), 2, "uninstall reloads too");
    });
}

#[test]
fn install_command_refusals_write_nothing_to_the_database() {
    let redis = RedisServer::start().expect("redis-server must start (run scripts/install-deps)");
    let root = Root::new().unwrap();
    let opts = no_reload(&root);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dbs = db_config(&redis);
        let exit = config_feature_install(&dbs, "bad name", &[], &opts)
            .await
            .unwrap();
        assert_eq!(exit.code, 1);
        assert!(
            exit.stderr
                .starts_with("Error: field name: invalid feature name"),
            "{exit:?}"
        );

        std::fs::write(root.paths.unit_path(&snmp()), "[Unit]\n").unwrap();
        let exit = config_feature_install(&dbs, "snmp", &[], &opts)
            .await
            .unwrap();
        assert_eq!(exit.code, 1);
        assert!(exit.stderr.contains("refusing to overwrite"), "{exit:?}");

        let config = dbs.open(&Namespace::Host, "CONFIG_DB").await.unwrap();
        assert!(config.keys("FEATURE").await.unwrap().is_empty());
    });
}

#[test]
fn a_failing_daemon_reload_stops_before_the_database_write() {
    let redis = RedisServer::start().expect("redis-server must start (run scripts/install-deps)");
    let root = Root::new().unwrap();
    let mut opts = no_reload(&root);
    opts.systemctl = Some("/bin/false".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dbs = db_config(&redis);
        let exit = config_feature_install(&dbs, "snmp", &[], &opts)
            .await
            .unwrap();
        assert_eq!(exit.code, 1);
        assert!(
            exit.stderr
                .starts_with("Error: systemctl daemon-reload (/bin/false) failed")
        );
        let config = dbs.open(&Namespace::Host, "CONFIG_DB").await.unwrap();
        assert!(
            config
                .get_entry("FEATURE", "snmp")
                .await
                .unwrap()
                .is_empty()
        );
    });
}
