//! Scenario traces of reboot preparation (HLD "Reboot support": warm, fast, cold) and of the
//! restore after boot: each prints the plan and compares it with the expected text.

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{check, feat, ver};
use sonic_feature_core::model::{
    AdminState, CurrentOwner, FeatureConfig, FeatureName, FeatureStatus, RemoteState, SetOwner,
    SystemState, Timestamp,
};
use sonic_feature_core::ports::{ContainerInfo, ImageInfo};
use sonic_feature_core::reboot::{
    CarryState, CarryStateError, FeatureContainers, HostFacts, InstalledUnit, RebootKind,
    RebootPaths, RestoreAction, SavedFallback, UpWait, await_up, awaited_features,
    plan_prepare_reboot, plan_reinstall, plan_restore, plan_restore_fallback,
    system_state_everywhere,
};

type Feature = (FeatureName, FeatureConfig, FeatureStatus);

fn local(name: &str) -> Feature {
    let status = FeatureStatus {
        system_state: Some(SystemState::Up),
        current_owner: CurrentOwner::Local,
        container_id: Some(name.to_owned()),
        ..FeatureStatus::default()
    };
    (feat(name), FeatureConfig::default(), status)
}

/// A kube-owned feature whose kube container `id` runs, last good version `stable`.
fn kube(name: &str, fallback: bool, id: &str, stable: Option<&str>) -> Feature {
    let config = FeatureConfig {
        set_owner: SetOwner::Kube,
        fallback,
        ..FeatureConfig::default()
    };
    let status = FeatureStatus {
        system_state: Some(SystemState::Up),
        current_owner: CurrentOwner::Kube,
        container_id: Some(id.to_owned()),
        remote_state: RemoteState::Running,
        container_stable_version: stable.map(ver),
        ..FeatureStatus::default()
    };
    (feat(name), config, status)
}

fn img(id: &str, repo: &str, tag: &str) -> ImageInfo {
    ImageInfo {
        id: id.into(),
        repository: repo.into(),
        tag: tag.into(),
    }
}

fn ctr(name: &str, image: &str, running: bool) -> ContainerInfo {
    ContainerInfo {
        id: name.into(),
        name: name.into(),
        image_id: image.into(),
        image_version: None,
        running,
    }
}

fn paths() -> RebootPaths {
    RebootPaths::under(Path::new("/r"))
}

/// Every kube context path exists.
fn joined() -> HostFacts {
    HostFacts {
        present: paths()
            .kube_context()
            .into_iter()
            .map(|(p, _)| p.to_path_buf())
            .collect(),
        ..HostFacts::default()
    }
}

fn bgpmon_installed() -> InstalledUnit {
    InstalledUnit {
        feature: feat("bgpmon"),
        unit: "/r/etc/systemd/system/bgpmon.service".into(),
        script: "/r/usr/local/bin/bgpmon.sh".into(),
    }
}

/// snmp runs kube version .74 (last good), the local image is .11 and its stopped local
/// container exists.
fn snmp_images(host: &mut HostFacts) {
    host.images = vec![
        img("sha256:74", "acr.io/sonic/docker-snmp", "20201231.74"),
        img("sha256:11", "docker-snmp", "20201230.11"),
        img("sha256:11", "docker-snmp", "latest"),
        img("sha256:99", "docker-lldp", "latest"),
    ];
    host.containers.insert(
        feat("snmp"),
        FeatureContainers {
            kube: Some(ctr("0123456789ab", "sha256:74", true)),
            local: Some(ctr("snmp", "sha256:11", false)),
        },
    );
}

fn prepare(kind: RebootKind, skip: bool, features: &[Feature], host: &HostFacts) -> String {
    plan_prepare_reboot(kind, skip, features, host, &paths()).to_string()
}

#[test]
fn warm_reboot_allows_fallback_kills_kube_containers_and_carries_the_kube_context() {
    let mut host = joined();
    snmp_images(&mut host);
    let features = [
        local("lldp"),
        kube("snmp", false, "0123456789ab", Some("20201231.74")),
    ];
    check(
        &prepare(RebootKind::Warm, true, &features, &host),
        "
        systemctl disable kubelet
        systemctl stop kubelet
        save state warm fallback [snmp] units []
        allow fallback snmp (no_fallback_to_local until restore)
        container kill --skip-updates snmp
        docker tag sha256:74 docker-snmp:latest
        docker rm snmp
        carry /r/var/lib/kubelet/config.yaml
        carry /r/var/lib/kubelet/kubeadm-flags.env
        carry /r/var/lib/kubelet/pki
        carry /r/etc/kubernetes/kubelet.conf
        carry /r/etc/kubernetes/pki
        carry /r/etc/sonic/kube_admin.conf
        carry /r/etc/sonic/credentials/restapiserver.crt
        carry /r/etc/sonic/credentials/restapiserver.key
        carry /r/etc/cni/net.d
        carry /r/etc/sonic/kube-reboot/state.json
        ",
    );
}

#[test]
fn fast_reboot_without_skip_updates_lets_container_kill_update_the_databases() {
    let features = [kube("snmp", true, "0123456789ab", None)];
    check(
        &prepare(RebootKind::Fast, false, &features, &joined()),
        "
        systemctl disable kubelet
        systemctl stop kubelet
        save state fast fallback [] units []
        container kill snmp
        carry /r/var/lib/kubelet/config.yaml
        carry /r/var/lib/kubelet/kubeadm-flags.env
        carry /r/var/lib/kubelet/pki
        carry /r/etc/kubernetes/kubelet.conf
        carry /r/etc/kubernetes/pki
        carry /r/etc/sonic/kube_admin.conf
        carry /r/etc/sonic/credentials/restapiserver.crt
        carry /r/etc/sonic/credentials/restapiserver.key
        carry /r/etc/cni/net.d
        carry /r/etc/sonic/kube-reboot/state.json
        ",
    );
}

#[test]
fn cold_reboot_stops_kube_containers_and_keeps_no_fallback_features_waiting_for_kubelet() {
    let features = [
        kube("snmp", false, "0123456789ab", None),
        kube("telemetry", true, "fedcba987654", None),
    ];
    let mut host = joined();
    host.present.clear();
    check(
        &prepare(RebootKind::Cold, true, &features, &host),
        "
        systemctl disable kubelet
        systemctl stop kubelet
        save state cold fallback [] units []
        container stop --skip-updates snmp
        container stop --skip-updates telemetry
        carry /r/etc/sonic/kube-reboot/state.json
        note: not carried: kubelet config /r/var/lib/kubelet/config.yaml is missing
        note: not carried: kubelet flags /r/var/lib/kubelet/kubeadm-flags.env is missing
        note: not carried: kubelet certificates /r/var/lib/kubelet/pki is missing
        note: not carried: kubelet kubeconfig /r/etc/kubernetes/kubelet.conf is missing
        note: not carried: cluster ca /r/etc/kubernetes/pki is missing
        note: not carried: kubeconfig /r/etc/sonic/kube_admin.conf is missing
        note: not carried: client certificate /r/etc/sonic/credentials/restapiserver.crt is missing
        note: not carried: client key /r/etc/sonic/credentials/restapiserver.key is missing
        note: not carried: cni config /r/etc/cni/net.d is missing
        ",
    );
}

#[test]
fn reboot_without_kube_features_only_parks_kubelet_and_saves_an_empty_state() {
    let mut host = joined();
    host.present = BTreeSet::from([paths().kubeconfig]);
    check(
        &prepare(
            RebootKind::Warm,
            true,
            &[local("lldp"), local("snmp")],
            &host,
        ),
        "
        systemctl disable kubelet
        systemctl stop kubelet
        save state warm fallback [] units []
        carry /r/etc/sonic/kube_admin.conf
        carry /r/etc/sonic/kube-reboot/state.json
        note: not carried: kubelet config /r/var/lib/kubelet/config.yaml is missing
        note: not carried: kubelet flags /r/var/lib/kubelet/kubeadm-flags.env is missing
        note: not carried: kubelet certificates /r/var/lib/kubelet/pki is missing
        note: not carried: kubelet kubeconfig /r/etc/kubernetes/kubelet.conf is missing
        note: not carried: cluster ca /r/etc/kubernetes/pki is missing
        note: not carried: client certificate /r/etc/sonic/credentials/restapiserver.crt is missing
        note: not carried: client key /r/etc/sonic/credentials/restapiserver.key is missing
        note: not carried: cni config /r/etc/cni/net.d is missing
        ",
    );
}

#[test]
fn installed_kube_only_feature_keeps_no_fallback_runs_its_hook_and_carries_its_files() {
    let mut host = joined();
    host.present = BTreeSet::from([paths().kubelet_config]);
    host.installed = vec![bgpmon_installed()];
    let features = [
        kube("bgpmon", false, "aaaaaaaaaaaa", None),
        kube("snmp", false, "0123456789ab", None),
    ];
    let plan = prepare(RebootKind::Fast, true, &features, &host);
    let lines: Vec<&str> = plan
        .lines()
        .filter(|l| !l.starts_with("note: not carried"))
        .collect();
    check(
        &lines.join("\n"),
        "
        systemctl disable kubelet
        systemctl stop kubelet
        save state fast fallback [snmp] units [bgpmon]
        allow fallback snmp (no_fallback_to_local until restore)
        run /r/usr/local/bin/bgpmon.sh prepare-fast
        container kill --skip-updates bgpmon
        container kill --skip-updates snmp
        copy /r/etc/systemd/system/bgpmon.service /r/etc/sonic/kube-reboot/units/bgpmon.service
        copy /r/usr/local/bin/bgpmon.sh /r/etc/sonic/kube-reboot/units/bgpmon.sh
        carry /r/var/lib/kubelet/config.yaml
        carry /r/etc/systemd/system/bgpmon.service
        carry /r/usr/local/bin/bgpmon.sh
        carry /r/etc/sonic/kube-reboot/state.json
        carry /r/etc/sonic/kube-reboot/units
        note: keep no fallback for bgpmon: installed kube-only feature without local image
        ",
    );
    // A cold reboot runs no hook.
    let cold = prepare(RebootKind::Cold, true, &features, &host);
    assert!(!cold.contains(" prepare-"), "{cold}");
}

#[test]
fn an_unrestored_earlier_prepare_keeps_the_operators_original_setting() {
    // The first prepare switched snmp to fallback; the reboot did not happen; the database now
    // says fallback allowed. The second prepare must still remember "no fallback".
    let previous = CarryState {
        version: CarryState::VERSION,
        kind: RebootKind::Warm,
        fallback: vec![SavedFallback {
            feature: feat("snmp"),
            no_fallback_to_local: true,
        }],
        units: Vec::new(),
    };
    let mut host = joined();
    host.previous = Some(previous);
    let features = [
        kube("snmp", true, "0123456789ab", None),
        kube("telemetry", false, "fedcba987654", None),
    ];
    let plan = plan_prepare_reboot(RebootKind::Warm, true, &features, &host, &paths());
    check(
        &plan
            .actions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        "
        systemctl disable kubelet
        systemctl stop kubelet
        save state warm fallback [snmp, telemetry] units []
        allow fallback telemetry (no_fallback_to_local until restore)
        container kill --skip-updates snmp
        container kill --skip-updates telemetry
        ",
    );
}

#[test]
fn kube_features_without_a_running_kube_container_are_not_killed() {
    let mut none = kube("snmp", true, "", None);
    none.2.current_owner = CurrentOwner::None;
    let mut empty_id = kube("telemetry", true, "", None);
    empty_id.2.container_id = Some(String::new());
    let mut bad_id = kube("radv", true, "-x", None);
    bad_id.2.container_id = Some("bad id!".into());
    let mut fell_back = kube("lldp", false, "lldp", None);
    fell_back.2.current_owner = CurrentOwner::Local;
    let plan = plan_prepare_reboot(
        RebootKind::Warm,
        true,
        &[none, empty_id, bad_id, fell_back],
        &joined(),
        &paths(),
    );
    check(
        &plan.to_string(),
        "
        systemctl disable kubelet
        systemctl stop kubelet
        save state warm fallback [lldp] units []
        allow fallback lldp (no_fallback_to_local until restore)
        carry /r/var/lib/kubelet/config.yaml
        carry /r/var/lib/kubelet/kubeadm-flags.env
        carry /r/var/lib/kubelet/pki
        carry /r/etc/kubernetes/kubelet.conf
        carry /r/etc/kubernetes/pki
        carry /r/etc/sonic/kube_admin.conf
        carry /r/etc/sonic/credentials/restapiserver.crt
        carry /r/etc/sonic/credentials/restapiserver.key
        carry /r/etc/cni/net.d
        carry /r/etc/sonic/kube-reboot/state.json
        note: skip snmp: no container runs
        note: skip telemetry: no container id in state db
        note: skip radv: invalid container id \"bad id!\" in state db
        note: skip lldp: runs locally
        ",
    );
}

/// Only the image lines and image notes of a warm plan for snmp with the given facts.
fn image_trace(stable: Option<&str>, host: &HostFacts) -> String {
    let features = [kube("snmp", true, "0123456789ab", stable)];
    let plan = plan_prepare_reboot(RebootKind::Warm, true, &features, host, &paths());
    plan.to_string()
        .lines()
        .filter(|l| l.starts_with("docker ") || l.starts_with("note: keep local image"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_last_good_image_is_tagged_as_local_only_when_it_is_newer() {
    let mut host = HostFacts::default();
    snmp_images(&mut host);
    check(
        &image_trace(Some("20201231.74"), &host),
        "
        docker tag sha256:74 docker-snmp:latest
        docker rm snmp
        ",
    );
    // Last good is older than or equal to the local image: nothing to carry.
    host.images
        .push(img("sha256:50", "acr.io/sonic/docker-snmp", "20201230.05"));
    check(&image_trace(Some("20201230.05"), &host), "");
    check(&image_trace(Some("20201230.11"), &host), "");
    // No good version recorded: the running image is not proven; nothing to carry.
    check(&image_trace(None, &host), "");
    // The last good version is not downloaded (any more).
    check(
        &image_trace(Some("20201231.80"), &host),
        "note: keep local image of snmp: last good version 20201231.80 is not a downloaded image",
    );
}

#[test]
fn the_local_image_is_kept_when_the_comparison_or_the_retag_is_not_safe() {
    // No local container: tag only.
    let mut host = HostFacts::default();
    snmp_images(&mut host);
    host.containers.get_mut(&feat("snmp")).unwrap().local = None;
    check(
        &image_trace(Some("20201231.74"), &host),
        "docker tag sha256:74 docker-snmp:latest",
    );
    // The local container runs (it should not while kube runs the feature).
    let mut host = HostFacts::default();
    snmp_images(&mut host);
    host.containers.get_mut(&feat("snmp")).unwrap().local = Some(ctr("snmp", "sha256:11", true));
    check(
        &image_trace(Some("20201231.74"), &host),
        "note: keep local image of snmp: local container snmp is running",
    );
    // The local image has no version tag.
    let mut host = HostFacts::default();
    snmp_images(&mut host);
    host.images.retain(|r| r.tag != "20201230.11");
    check(
        &image_trace(Some("20201231.74"), &host),
        "note: keep local image of snmp: version of docker-snmp:latest is unknown",
    );
    // No local image at all.
    let mut host = HostFacts::default();
    snmp_images(&mut host);
    host.images.retain(|r| r.is_downloaded());
    check(
        &image_trace(Some("20201231.74"), &host),
        "note: keep local image of snmp: no local image docker-snmp:latest",
    );
    // The kube container's image is not a downloaded one.
    let mut host = HostFacts::default();
    snmp_images(&mut host);
    host.containers.get_mut(&feat("snmp")).unwrap().kube =
        Some(ctr("0123456789ab", "sha256:11", true));
    check(
        &image_trace(Some("20201231.74"), &host),
        "note: keep local image of snmp: image sha256:11 of its kube container is not a downloaded image",
    );
    // Already the local image.
    let mut host = HostFacts::default();
    snmp_images(&mut host);
    host.images.push(img("sha256:74", "docker-snmp", "latest"));
    host.images
        .retain(|r| !(r.id == "sha256:11" && r.tag == "latest"));
    check(&image_trace(Some("20201231.74"), &host), "");
}

fn state() -> CarryState {
    CarryState {
        version: CarryState::VERSION,
        kind: RebootKind::Warm,
        fallback: vec![
            SavedFallback {
                feature: feat("snmp"),
                no_fallback_to_local: true,
            },
            SavedFallback {
                feature: feat("telemetry"),
                no_fallback_to_local: true,
            },
            SavedFallback {
                feature: feat("radv"),
                no_fallback_to_local: true,
            },
        ],
        units: vec![sonic_feature_core::reboot::CarriedUnit {
            feature: feat("bgpmon"),
            unit: "/r/etc/systemd/system/bgpmon.service".into(),
            script: "/r/usr/local/bin/bgpmon.sh".into(),
            saved_unit: "/r/etc/sonic/kube-reboot/units/bgpmon.service".into(),
            saved_script: "/r/etc/sonic/kube-reboot/units/bgpmon.sh".into(),
        }],
    }
}

fn restore_trace(
    current: &BTreeMap<FeatureName, Option<FeatureConfig>>,
    present: &[&str],
) -> String {
    let present: BTreeSet<PathBuf> = present.iter().map(PathBuf::from).collect();
    let (actions, notes) = plan_restore(&state(), current, &present);
    actions
        .iter()
        .map(ToString::to_string)
        .chain(notes.iter().map(|n| format!("note: {n}")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn restore_puts_no_fallback_back_and_reinstalls_missing_units_but_never_enables_kubelet() {
    let kube_cfg = |fallback| FeatureConfig {
        set_owner: SetOwner::Kube,
        fallback,
        ..FeatureConfig::default()
    };
    let current = BTreeMap::from([
        (feat("snmp"), Some(kube_cfg(true))),
        // The operator already turned fallback off again.
        (feat("telemetry"), Some(kube_cfg(false))),
        // Removed from CONFIG_DB meanwhile.
        (feat("radv"), None),
    ]);
    check(
        &restore_trace(
            &current,
            &[
                "/r/etc/sonic/kube-reboot/units/bgpmon.service",
                "/r/etc/sonic/kube-reboot/units/bgpmon.sh",
                "/r/usr/local/bin/bgpmon.sh",
            ],
        ),
        "
        reinstall /r/etc/sonic/kube-reboot/units/bgpmon.service /r/etc/systemd/system/bgpmon.service
        systemctl daemon-reload
        set snmp no_fallback_to_local true
        remove state
        note: telemetry: no_fallback_to_local already true
        note: radv: feature no longer configured
        ",
    );
    // Units in place: no reload; a missing file without a copy is reported.
    let trace = restore_trace(&current, &["/r/etc/systemd/system/bgpmon.service"]);
    check(
        &trace,
        "
        set snmp no_fallback_to_local true
        remove state
        note: bgpmon: /r/usr/local/bin/bgpmon.sh is missing and no copy was saved
        note: telemetry: no_fallback_to_local already true
        note: radv: feature no longer configured
        ",
    );
    assert!(!trace.contains("kubelet"));
    let (actions, _) = plan_restore(&state(), &current, &BTreeSet::new());
    assert!(
        actions
            .iter()
            .all(|a| !matches!(a, RestoreAction::DaemonReload))
    );
}

#[test]
fn restore_parts_put_units_back_first_and_the_settings_of_configured_features_second() {
    let present: BTreeSet<PathBuf> = [
        "/r/etc/sonic/kube-reboot/units/bgpmon.service",
        "/r/etc/sonic/kube-reboot/units/bgpmon.sh",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let (units, notes) = plan_reinstall(&state(), &present);
    let trace: Vec<String> = units.iter().map(ToString::to_string).collect();
    assert_eq!(
        trace,
        [
            "reinstall /r/etc/sonic/kube-reboot/units/bgpmon.service /r/etc/systemd/system/bgpmon.service",
            "reinstall /r/etc/sonic/kube-reboot/units/bgpmon.sh /r/usr/local/bin/bgpmon.sh",
            "systemctl daemon-reload",
        ]
    );
    assert!(notes.is_empty(), "{notes:?}");
    // The reinstall part never touches a setting; the fallback part never touches a file.
    let current = BTreeMap::from([(feat("snmp"), Some(kube_cfg(true, None)))]);
    let (fallback, notes) = plan_restore_fallback(&state(), &current);
    assert_eq!(
        fallback,
        [RestoreAction::RestoreFallback(SavedFallback {
            feature: feat("snmp"),
            no_fallback_to_local: true,
        })]
    );
    assert_eq!(
        notes,
        [
            "telemetry: feature no longer configured",
            "radv: feature no longer configured"
        ]
    );
    // The one-go plan is the two parts in that order, then the state file's removal.
    let (all, _) = plan_restore(&state(), &current, &present);
    let mut expected = units.clone();
    expected.extend(fallback);
    expected.push(RestoreAction::RemoveState);
    assert_eq!(all, expected);
}

fn kube_cfg(fallback: bool, state: Option<AdminState>) -> FeatureConfig {
    FeatureConfig {
        set_owner: SetOwner::Kube,
        fallback,
        state,
        ..FeatureConfig::default()
    }
}

fn status(system_state: Option<SystemState>) -> FeatureStatus {
    FeatureStatus {
        system_state,
        ..FeatureStatus::default()
    }
}

#[test]
fn restore_waits_only_for_enabled_features_whose_setting_goes_back() {
    let current = BTreeMap::from([
        (
            feat("snmp"),
            Some(kube_cfg(true, Some(AdminState::Enabled))),
        ),
        // Already back to no fallback: nothing to restore, nothing to wait for.
        (
            feat("telemetry"),
            Some(kube_cfg(false, Some(AdminState::Enabled))),
        ),
        // Disabled: nobody starts it, waiting for it would only spend the deadline.
        (
            feat("radv"),
            Some(kube_cfg(true, Some(AdminState::AlwaysDisabled))),
        ),
    ]);
    let (fallback, _) = plan_restore_fallback(&state(), &current);
    let (awaited, notes) = awaited_features(&fallback, &current);
    assert_eq!(awaited, [feat("snmp")]);
    assert_eq!(notes, ["radv: not waited for, it is disabled"]);
    // An unrendered template or a missing state may still be started by featured.
    let current = BTreeMap::from([
        (
            feat("snmp"),
            Some(kube_cfg(
                true,
                Some(AdminState::Other("{% if x %}enabled{% endif %}".into())),
            )),
        ),
        (feat("telemetry"), Some(kube_cfg(true, None))),
        (feat("radv"), None),
    ]);
    let (fallback, _) = plan_restore_fallback(&state(), &current);
    let (awaited, notes) = awaited_features(&fallback, &current);
    assert_eq!(awaited, [feat("snmp"), feat("telemetry")]);
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn restore_waits_for_features_until_up_and_restores_the_late_ones_at_the_deadline() {
    let awaited = [feat("snmp"), feat("telemetry")];
    let t = Timestamp::from_millis;
    let deadline = t(600_000);
    // Nothing written yet after boot (STATE_DB starts empty): both are down.
    assert_eq!(
        await_up(&awaited, &BTreeMap::new(), t(0), deadline),
        UpWait::Wait(awaited.to_vec())
    );
    let mut statuses = BTreeMap::from([
        (feat("snmp"), status(Some(SystemState::Up))),
        (feat("telemetry"), status(Some(SystemState::Down))),
    ]);
    assert_eq!(
        await_up(&awaited, &statuses, t(599_999), deadline),
        UpWait::Wait(vec![feat("telemetry")])
    );
    assert_eq!(
        await_up(&awaited, &statuses, deadline, deadline),
        UpWait::Deadline {
            down: vec![feat("telemetry")],
            notes: vec![
                "telemetry: not up (system_state) by the deadline; no_fallback_to_local restored anyway"
                    .to_owned()
            ],
        }
    );
    statuses.insert(feat("telemetry"), status(Some(SystemState::Up)));
    assert_eq!(
        await_up(&awaited, &statuses, t(1), deadline),
        UpWait::Restore
    );
    // Up after the deadline is still up; nothing awaited restores at once.
    assert_eq!(
        await_up(&awaited, &statuses, t(900_000), deadline),
        UpWait::Restore
    );
    assert_eq!(await_up(&[], &BTreeMap::new(), t(0), t(0)), UpWait::Restore);
}

#[test]
fn state_file_round_trips_and_refuses_unknown_versions_and_bad_names() {
    let s = state();
    let text = s.to_json();
    assert_eq!(CarryState::from_json(&text).unwrap(), s);
    assert!(text.contains("\"kind\": \"warm\""), "{text}");
    let newer = text.replace("\"version\": 1", "\"version\": 2");
    assert_eq!(
        CarryState::from_json(&newer).unwrap_err(),
        CarryStateError::Version {
            found: 2,
            expected: 1
        }
    );
    let bad = text.replace("\"snmp\"", "\"sn mp\"");
    let err = CarryState::from_json(&bad).unwrap_err().to_string();
    assert!(
        err.starts_with("invalid reboot state: invalid feature name \"sn mp\""),
        "{err}"
    );
    assert!(CarryState::from_json("{").is_err());
}

#[test]
fn reboot_kinds_parse_in_any_case_and_only_warm_and_fast_force_fallback() {
    assert_eq!(RebootKind::parse("WARM"), Some(RebootKind::Warm));
    assert_eq!(RebootKind::parse("fast"), Some(RebootKind::Fast));
    assert_eq!(RebootKind::parse(" cold "), Some(RebootKind::Cold));
    assert_eq!(RebootKind::parse("soft"), None);
    assert!(RebootKind::Warm.forces_fallback() && RebootKind::Fast.forces_fallback());
    assert!(!RebootKind::Cold.forces_fallback());
}

#[test]
fn a_feature_with_asic_instances_is_up_only_when_every_place_with_an_entry_is_up() {
    let st = |s: Option<SystemState>| FeatureStatus {
        system_state: s,
        ..FeatureStatus::default()
    };
    let (up, down, none) = (
        st(Some(SystemState::Up)),
        st(Some(SystemState::Down)),
        st(None),
    );
    // Host only, or instances only (no host entry): the places that have an entry decide.
    assert_eq!(system_state_everywhere([&up]), Some(SystemState::Up));
    assert_eq!(
        system_state_everywhere([&none, &up, &up]),
        Some(SystemState::Up)
    );
    // One instance still down (or stopped): not up yet.
    assert_eq!(
        system_state_everywhere([&none, &up, &down]),
        Some(SystemState::Down)
    );
    // No entry anywhere: never started.
    assert_eq!(system_state_everywhere([&none, &none]), None);
    assert_eq!(system_state_everywhere([]), None);
}
