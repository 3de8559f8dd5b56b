//! Scenario traces of image management: upstream `tag_latest` (T0..T4) and `clean_image`
//! (G0..G5) from upstream-ctrmgrd.md §8.2, and the HLD's configurable variants.

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{check, feat, ver};
use sonic_feature_core::images::{MarkGoodFacts, MarkGoodPlan, golden_after, plan_mark_good};
use sonic_feature_core::labels::LabelJournal;
use sonic_feature_core::manager::{Action, Event, Manager, NodeInfo};
use sonic_feature_core::model::{
    CurrentOwner, FeatureConfig, FeatureStatus, ImageMgmtSettings, RemoteCtrConfig, RemoteState,
    SetOwner, SystemState, Timestamp,
};
use sonic_feature_core::ports::{ContainerInfo, ImageInfo};

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

const REPO: &str = "acr.io/sonic/docker-sonic-telemetry";
const LOCAL: &str = "docker-sonic-telemetry";

/// Kube version .74 running from image `sha256:74`, stable .64, shipped local image .11.
fn facts() -> MarkGoodFacts {
    MarkGoodFacts {
        feature: feat("telemetry"),
        version: ver("20201231.74"),
        container: Some(ctr("0123456789ab", "sha256:74", true)),
        local_container: Some(ctr("telemetry", "sha256:11", false)),
        images: vec![
            img("sha256:74", REPO, "20201231.74"),
            img("sha256:64", REPO, "20201231.64"),
            img("sha256:11", LOCAL, "20201230.11"),
            img("sha256:11", LOCAL, "latest"),
        ],
        stable: Some(ver("20201231.64")),
        last: Some(ver("20201231.50")),
    }
}

fn plan(f: &MarkGoodFacts) -> String {
    plan_mark_good(&ImageMgmtSettings::default(), f).to_string()
}

#[test]
fn t0_tag_as_local_and_remove_the_stopped_local_container() {
    check(
        &plan(&facts()),
        r#"
        docker tag sha256:74 docker-sonic-telemetry:latest
        docker rm telemetry
        status {container_stable_version: 20201231.74, container_last_version: 20201231.64}
        docker rmi docker-sonic-telemetry:20201230.11
        "#,
    );
}

#[test]
fn t1_local_container_already_removed_is_fine() {
    let mut f = facts();
    f.local_container = None;
    check(
        &plan(&f),
        r#"
        docker tag sha256:74 docker-sonic-telemetry:latest
        status {container_stable_version: 20201231.74, container_last_version: 20201231.64}
        docker rmi docker-sonic-telemetry:20201230.11
        "#,
    );
}

#[test]
fn t2_deployment_no_longer_running_is_given_up() {
    let mut f = facts();
    f.container = Some(ctr("0123456789ab", "sha256:74", false));
    assert_eq!(plan(&f), "not running: give up");
    f.container = None;
    assert_eq!(plan(&f), "not running: give up");
}

/// The manager's decisions for one event: its actions without the clock snapshots it persists.
fn decide(m: &mut Manager, now: Timestamp, ev: Event) -> Vec<Action> {
    m.step(now, ev)
        .into_iter()
        .filter(|a| !matches!(a, Action::SaveClocks(_)))
        .collect()
}

fn manager_at_mark_good() -> (Manager, Vec<Action>) {
    let timers = RemoteCtrConfig {
        retry_tag_latest: Duration::from_secs(30),
        retry_clean_image: Duration::from_secs(30),
        ..RemoteCtrConfig::default()
    };
    let mut m = Manager::new(timers, NodeInfo::default(), LabelJournal::default());
    let t0 = Timestamp::from_millis(0);
    decide(
        &mut m,
        t0,
        Event::FeatureConfigChanged {
            feature: feat("telemetry"),
            config: Some(FeatureConfig {
                set_owner: SetOwner::Kube,
                ..FeatureConfig::default()
            }),
        },
    );
    decide(
        &mut m,
        t0,
        Event::FeatureStatusChanged {
            feature: feat("telemetry"),
            status: FeatureStatus {
                system_state: Some(SystemState::Up),
                current_owner: CurrentOwner::Kube,
                container_id: Some("0123456789ab".into()),
                remote_state: RemoteState::Running,
                container_version: Some(ver("20201231.74")),
                ..FeatureStatus::default()
            },
        },
    );
    let at = m.poll_timeout().unwrap();
    assert_eq!(at, Timestamp::from_millis(600_000));
    let actions = decide(&mut m, at, Event::Timeout);
    (m, actions)
}

#[test]
fn t3_failure_to_read_docker_state_is_retried() {
    let (mut m, actions) = manager_at_mark_good();
    let [Action::GatherImageFacts { request, .. }] = actions.as_slice() else {
        panic!("expected a gather request, got {actions:?}")
    };
    let now = Timestamp::from_millis(600_000);
    let failed = Event::ImageFactsFailed {
        request: *request,
        feature: feat("telemetry"),
    };
    assert!(decide(&mut m, now, failed).is_empty());
    assert_eq!(m.poll_timeout(), Some(Timestamp::from_millis(630_000)));
    let again = decide(&mut m, Timestamp::from_millis(630_000), Event::Timeout);
    assert!(matches!(
        again.as_slice(),
        [Action::GatherImageFacts { .. }]
    ));
}

#[test]
fn t4_local_container_still_running_is_retried() {
    let mut f = facts();
    f.local_container = Some(ctr("telemetry", "sha256:11", true));
    assert_eq!(
        plan(&f),
        "retry: local container telemetry is running, which is unexpected"
    );
}

#[test]
fn g0_kube_to_kube_removes_old_downloads_but_current_and_last() {
    let mut f = facts();
    f.local_container = None;
    f.images = vec![
        img("sha256:74", REPO, "20201231.74"),
        img("sha256:64", REPO, "20201231.64"),
        img("744d3a09062f", REPO, "20201231.50"),
        img("sha256:11", LOCAL, "latest"),
    ];
    f.stable = Some(ver("20201231.64"));
    check(
        &plan(&f),
        r#"
        docker tag sha256:74 docker-sonic-telemetry:latest
        status {container_stable_version: 20201231.74, container_last_version: 20201231.64}
        docker rmi acr.io/sonic/docker-sonic-telemetry:20201231.50
        "#,
    );
}

#[test]
fn g1_failed_removal_is_retried_by_replanning() {
    let (mut m, actions) = manager_at_mark_good();
    let [Action::GatherImageFacts { request, .. }] = actions.as_slice() else {
        panic!("expected a gather request, got {actions:?}")
    };
    let now = Timestamp::from_millis(600_000);
    let f = facts();
    let ops = decide(
        &mut m,
        now,
        Event::ImageFacts {
            request: *request,
            feature: feat("telemetry"),
            container: f.container.clone(),
            local_container: None,
            images: f.images.clone(),
        },
    );
    let [Action::RunImageOps { request, .. }] = ops.as_slice() else {
        panic!("expected image operations, got {ops:?}")
    };
    decide(
        &mut m,
        now,
        Event::ImageOpsDone {
            request: *request,
            feature: feat("telemetry"),
            ok: false,
        },
    );
    assert_eq!(m.poll_timeout(), Some(Timestamp::from_millis(630_000)));
    let again = decide(&mut m, Timestamp::from_millis(630_000), Event::Timeout);
    assert!(matches!(
        again.as_slice(),
        [Action::GatherImageFacts { .. }]
    ));
}

#[test]
fn g2_no_images_listed_is_retried() {
    let mut f = facts();
    f.images.clear();
    assert_eq!(
        plan(&f),
        "retry: image sha256:74 of the running container is not listed"
    );
}

#[test]
fn g3_current_version_not_downloaded_cleans_nothing() {
    let mut f = facts();
    f.local_container = None;
    f.images = vec![
        img("sha256:74", REPO, "20201231.99"),
        img("sha256:64", REPO, "20201231.64"),
        img("sha256:11", LOCAL, "20201230.11"),
    ];
    check(
        &plan(&f),
        r#"
        docker tag sha256:74 docker-sonic-telemetry:latest
        status {container_stable_version: 20201231.74, container_last_version: 20201231.64}
        "#,
    );
}

#[test]
fn g4_local_to_kube_removes_the_local_versioned_copy() {
    let mut f = facts();
    f.local_container = None;
    f.stable = None;
    f.last = None;
    f.images = vec![
        img("sha256:74", REPO, "20201231.74"),
        img("sha256:73", LOCAL, "20201231.73"),
    ];
    check(
        &plan(&f),
        r#"
        docker tag sha256:74 docker-sonic-telemetry:latest
        status {container_stable_version: 20201231.74}
        docker rmi docker-sonic-telemetry:20201231.73
        "#,
    );
}

#[test]
fn g5_local_copy_of_a_downloaded_version_keeps_its_bits_under_the_downloaded_name() {
    let mut f = facts();
    f.local_container = None;
    f.images = vec![
        img("sha256:74", REPO, "20201231.74"),
        img("sha256:64", REPO, "20201231.64"),
        img("sha256:64local", LOCAL, "20201231.64"),
    ];
    check(
        &plan(&f),
        r#"
        docker tag sha256:74 docker-sonic-telemetry:latest
        status {container_stable_version: 20201231.74, container_last_version: 20201231.64}
        docker rmi acr.io/sonic/docker-sonic-telemetry:20201231.64
        docker tag sha256:64local acr.io/sonic/docker-sonic-telemetry:20201231.64
        docker rmi docker-sonic-telemetry:20201231.64
        "#,
    );
}

#[test]
fn without_tag_as_local_the_shipped_image_stays_golden_hld() {
    let settings = ImageMgmtSettings {
        tag_new_as_local: false,
        ..ImageMgmtSettings::default()
    };
    let mut f = facts();
    f.images.push(img("sha256:50", REPO, "20201231.50"));
    f.images.push(img("sha256:40", REPO, "20201231.40"));
    let p = plan_mark_good(&settings, &f);
    check(
        &p.to_string(),
        r#"
        status {container_stable_version: 20201231.74, container_last_version: 20201231.64}
        docker rmi acr.io/sonic/docker-sonic-telemetry:20201231.50
        docker rmi acr.io/sonic/docker-sonic-telemetry:20201231.40
        "#,
    );
    let MarkGoodPlan::Ops(ops) = p else {
        panic!("expected operations")
    };
    assert_eq!(
        golden_after(LOCAL, &f.images, &ops).as_deref(),
        Some("sha256:11")
    );
}

#[test]
fn keeping_older_images_and_the_local_copy_only_tags_and_records_hld() {
    let settings = ImageMgmtSettings {
        purge_older_image: false,
        purge_local_copy: false,
        ..ImageMgmtSettings::default()
    };
    check(
        &plan_mark_good(&settings, &facts()).to_string(),
        r#"
        docker tag sha256:74 docker-sonic-telemetry:latest
        docker rm telemetry
        status {container_stable_version: 20201231.74, container_last_version: 20201231.64}
        "#,
    );
}

#[test]
fn disabled_image_management_does_nothing_hld() {
    let settings = ImageMgmtSettings {
        disable: true,
        ..ImageMgmtSettings::default()
    };
    assert_eq!(
        plan_mark_good(&settings, &facts()),
        MarkGoodPlan::Ops(Vec::new())
    );
}

#[test]
fn marking_the_same_version_good_twice_keeps_the_last_version() {
    let mut f = facts();
    f.stable = Some(ver("20201231.74"));
    f.last = Some(ver("20201231.64"));
    assert!(plan(&f).contains(
        "status {container_stable_version: 20201231.74, container_last_version: 20201231.64}"
    ));
}
