//! Image management end to end on the real dockerd: upstream `kube_commands.tag_latest` (T0–T4)
//! and `clean_image` (G0–G5) from upstream-ctrmgrd.md §8.2, and the HLD's `IMAGE_MGMT`
//! variants, carried out by ctrmgrd (in-process) through the docker adapter.
//!
//! Each test builds the docker situation on the shared private engine: the shipped local image
//! (`docker-<f>:1.0.0`, tagged `docker-<f>:latest`, the golden image), downloaded versions
//! (`registry.test/sonic/docker-<f>:<v>`), the old local container `<f>` (stopped, running or
//! already removed) and the pod container `k8s_<f>` running a downloaded version. STATE_DB holds
//! what the pod's `container_startup` admission wrote (kube owns the feature, `running`, the
//! pod's id and version) and what earlier marks left (`container_stable_version`,
//! `container_last_version`). ctrmgrd marks the deployment good after `active_time_to_mark_good`
//! (1 s here) and the test asserts the engine's end state: every reference of the feature's
//! images, which containers remain, and the STATE_DB versions. The golden image (the target of
//! `docker-<f>:latest`) is never removed.
//!
//! - T0 + G4 (local → kube): the good kube image becomes `docker-<f>:latest`, the stopped local
//!   container is removed, the shipped versioned copy is purged (its image goes with its last
//!   tag), stable = the kube version, last = the shipped version; the pod keeps running.
//! - T1: the local container was already removed: same end state, no error.
//! - T2: the pod stopped before the timer fired: the version is given up (nothing tagged,
//!   removed or recorded, also after the retry period); the next deployment (a new version
//!   that goes `pending` then `running`) is marked good, and the given-up version, never
//!   stable, is purged as an older download.
//! - T4: the old local container still runs: nothing happens while it runs (retried every
//!   `retry_tag_latest`); once it stops the retry tags, removes it and records.
//! - (T3, docker unreachable, is in ctrmgrd_docker_restart.rs.)
//! - G0 (kube → kube): older downloads are purged except the current and the last good
//!   version; the previous golden image stays as the last version.
//! - G1: a removal the engine refuses (an old pod container still uses the image) is logged
//!   once and retried every `retry_clean_image`; the retry keeps `container_last_version` and
//!   succeeds once the container is gone (the problem is logged as recovered).
//! - G2: the running image has no tag any more (not listed): retried, nothing changes; once it
//!   is tagged again the retry marks it good.
//! - G3: the current version is not a downloaded image (side-loaded under the local name): tag
//!   and record, nothing cleaned.
//! - G5: a local copy of a downloaded version (the last good one) keeps its bits under the
//!   downloaded name; the downloaded duplicate and the local names go.
//! - HLD `tag_new_as_local=false` (per-feature override over GLOBAL): the golden image stays,
//!   even when it is an older download that purge would otherwise remove; local copies and the
//!   local container stay; only older downloads go.
//! - HLD `purge_older_image=false`, `purge_local_copy=false`: tag, remove the local container
//!   and record only; every image stays.
//! - HLD `Disable=true` for the feature: nothing at all happens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ctrmgrd_common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use ctrmgrd_common::{KUBE_VERSION, LOCAL_VERSION, NODE, RunningDaemon, Switch, wait_for};
use futures::FutureExt;
use sonic_db::Fields;
use sonic_docker_adapter::{CreateSpec, DockerClient};
use sonic_tests::docker::{ImageSpec, build_image, docker_host};
use tokio::task::JoinHandle;

/// How long a test waits for ctrmgrd to reach an expected state.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long a test watches for something that must not happen: the mark-good timer (1 s) and
/// at least one retry (`retry_tag_latest_seconds` = `retry_clean_image_seconds` = 1 s) fall in it.
const WINDOW: Duration = Duration::from_secs(3);
/// The image label `Switch` puts on the feature's images; the clean-up finds them by it, also
/// when they lost every tag.
const FEATURE_LABEL: &str = "org.sonic-tests.feature";

/// One test's switch with the references and ids of its images.
struct Case {
    sw: Switch,
    /// The shipped local image (`docker-<f>:1.0.0` and `docker-<f>:latest` at the start).
    local_id: String,
    /// The downloaded kube image `registry.test/sonic/docker-<f>:2.0.0`.
    kube_id: String,
    /// Registers the node again after the join deleted it, as a kubelet does.
    node_keeper: JoinHandle<()>,
}

impl Case {
    fn feature(&self) -> &str {
        self.sw.feature.as_str()
    }

    /// `docker-<f>:<tag>`.
    fn local(&self, tag: &str) -> String {
        format!("{}:{tag}", self.sw.local_image)
    }

    /// `registry.test/sonic/docker-<f>:<tag>`.
    fn registry(&self, tag: &str) -> String {
        format!("{}:{tag}", self.sw.kube_image)
    }

    fn pod(&self) -> String {
        format!("k8s_{}", self.feature())
    }

    fn old_pod(&self) -> String {
        format!("k8s_{}_old", self.feature())
    }

    /// Builds one more image of the feature (`IMAGE_VERSION=<version>`) as `reference`.
    async fn build(&self, reference: &str, version: &str) -> anyhow::Result<String> {
        build_image(
            &self.sw.docker_host,
            reference,
            &image_spec(self.feature(), version),
        )
        .await
    }

    /// Points `<repo>:<tag>` at `image`.
    async fn tag(&self, image: &str, reference: &str) -> anyhow::Result<()> {
        let (repo, tag) = reference
            .rsplit_once(':')
            .context("reference without tag")?;
        self.sw.docker.tag_image(image, repo, tag).await?;
        Ok(())
    }

    /// `docker rmi <reference>` (untags; the image goes with its last tag).
    async fn untag(&self, reference: &str) -> anyhow::Result<()> {
        self.sw.docker.remove_image(reference, false).await?;
        Ok(())
    }

    /// Runs the pod container `k8s_<f>` from `image`, as the kubelet does; returns its id.
    async fn run_pod(&self, image: &str) -> anyhow::Result<String> {
        let _ = self.sw.docker.remove_container(&self.pod(), true).await;
        let mut spec = CreateSpec::new(&self.pod(), image);
        spec.env.push(("RUNTIME_OWNER".into(), "kube".into()));
        let id = self.sw.docker.create_container(&spec).await?;
        self.sw.docker.start_container(&id).await?;
        Ok(id)
    }

    /// The old local container `<f>` after `container stop`: it ran and exited.
    async fn stop_local_container(&self) -> anyhow::Result<()> {
        self.sw.docker.start_container(self.feature()).await?;
        self.sw
            .docker
            .stop_container(self.feature(), Some(Duration::from_secs(5)))
            .await?;
        Ok(())
    }

    /// STATE_DB `FEATURE|<f>` as the pod's admission leaves it (kube owns, `running`, the pod's
    /// short id and version), with the versions earlier marks recorded.
    async fn record_running(
        &self,
        pod_id: &str,
        version: &str,
        stable: Option<&str>,
        last: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut f: Fields = [
            ("system_state", "up"),
            ("current_owner", "kube"),
            ("remote_state", "running"),
            ("container_id", &pod_id[..12]),
            ("container_version", version),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(s) = stable {
            f.insert("container_stable_version".into(), s.into());
        }
        if let Some(l) = last {
            f.insert("container_last_version".into(), l.into());
        }
        self.sw
            .state_db()
            .await?
            .set_entry("FEATURE", self.feature(), &f)
            .await?;
        Ok(())
    }

    async fn mod_status(&self, fields: &[(&str, &str)]) -> anyhow::Result<()> {
        let f: Fields = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.sw
            .state_db()
            .await?
            .mod_entry("FEATURE", self.feature(), &f)
            .await?;
        Ok(())
    }

    /// Every `repo:tag` naming one of this feature's images, with the image id.
    async fn references(&self) -> BTreeMap<String, String> {
        let images = self.sw.docker.list_images().await.unwrap_or_default();
        images
            .iter()
            .filter(|i| i.labels.get(FEATURE_LABEL).map(String::as_str) == Some(self.feature()))
            .flat_map(|i| i.repo_tags.iter().map(|t| (t.clone(), i.id.clone())))
            .collect()
    }

    /// Waits until the feature's image references are exactly `expected`.
    async fn wait_references(&self, expected: &[(String, &str)]) -> anyhow::Result<()> {
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(r, id)| (r.clone(), id.to_string()))
            .collect();
        let r = wait_for("the expected image references", DEADLINE, || async {
            self.references().await == expected
        })
        .await;
        if let Err(e) = r {
            let found = self.references().await;
            anyhow::bail!("{e:#}\nexpected {expected:#?}\nfound    {found:#?}");
        }
        Ok(())
    }

    async fn image_exists(&self, id: &str) -> bool {
        matches!(self.sw.docker.inspect_image(id).await, Ok(Some(_)))
    }

    /// Waits until the image `id` is gone from the engine (the engine untags before it deletes,
    /// so the references can be gone a moment before the image).
    async fn wait_gone(&self, id: &str) -> anyhow::Result<()> {
        wait_for(&format!("image {id} removed"), DEADLINE, || async {
            !self.image_exists(id).await
        })
        .await
    }

    /// `Some(running)` for an existing container, `None` when it does not exist.
    async fn container(&self, name: &str) -> Option<bool> {
        self.sw
            .docker
            .inspect_container(name)
            .await
            .ok()
            .flatten()
            .map(|c| c.running)
    }

    async fn stable_and_last(&self) -> (Option<String>, Option<String>) {
        let s = self.sw.status().await;
        (
            s.get("container_stable_version").cloned(),
            s.get("container_last_version").cloned(),
        )
    }

    /// STATE_DB `KUBE_LABELS|SET` field `<f>_<v>_enabled`.
    async fn version_label(&self, version: &str) -> Option<String> {
        let db = self.sw.state_db().await.ok()?;
        db.get_entry("KUBE_LABELS", "SET")
            .await
            .ok()?
            .get(&format!("{}_{version}_enabled", self.feature()))
            .cloned()
    }

    /// Waits until ctrmgrd has taken in the running deployment of `version` (it asks for the
    /// node label `<f>_<v>_enabled=true`), so that a following quiet window is meaningful.
    async fn wait_seen_running(&self, version: &str) -> anyhow::Result<()> {
        wait_for(
            "ctrmgrd to take in the running deployment",
            DEADLINE,
            || async { self.version_label(version).await.as_deref() == Some("true") },
        )
        .await
    }

    async fn wait_stable(&self, version: &str) -> anyhow::Result<()> {
        wait_for(
            &format!("container_stable_version={version}"),
            DEADLINE,
            || async { self.stable_and_last().await.0.as_deref() == Some(version) },
        )
        .await
    }
}

/// The feature image `Switch` builds, for another version.
fn image_spec(feature: &str, version: &str) -> ImageSpec {
    ImageSpec::new()
        .env("IMAGE_VERSION", version)
        .file(
            "/usr/bin/idle",
            b"#!/bin/sh\ntrap 'exit 0' TERM\nsleep 100000 &\nwait\n".to_vec(),
            0o755,
        )
        .cmd(["/usr/bin/idle"])
        .label(FEATURE_LABEL, feature)
}

/// Removes the containers and every image of `feature` (also untagged ones), left by this test
/// or by an earlier interrupted run.
async fn purge_feature(docker: &DockerClient, feature: &str) {
    for c in [
        feature.to_string(),
        format!("k8s_{feature}"),
        format!("k8s_{feature}_old"),
    ] {
        let _ = docker.remove_container(&c, true).await;
    }
    if let Ok(images) = docker.list_images().await {
        for i in images
            .iter()
            .filter(|i| i.labels.get(FEATURE_LABEL).map(String::as_str) == Some(feature))
        {
            let _ = docker.remove_image(&i.id, true).await;
        }
    }
}

/// `f`'s result, with a panic (a failed assertion) turned into an error so that the case still
/// stops ctrmgrd and removes its containers and images.
async fn caught(f: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    match std::panic::AssertUnwindSafe(f).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            anyhow::bail!("panicked: {message}")
        }
    }
}

/// Runs one case: a fresh switch for `feature` (kube owns it, `IMAGE_MGMT|GLOBAL` marks good
/// after 1 s), `arrange` builds the docker situation and STATE_DB, ctrmgrd starts, `check` acts
/// and asserts; then ctrmgrd stops and every container and image of the feature is removed,
/// whether the case passed or not.
async fn scenario(
    feature: &str,
    arrange: impl AsyncFnOnce(&Case) -> anyhow::Result<()>,
    check: impl AsyncFnOnce(&Case, &RunningDaemon) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let host = docker_host().context("a docker engine must be available")?;
    let docker = DockerClient::new(&host)?;
    purge_feature(&docker, feature).await;
    let result = async {
        let sw = Switch::on_engine(feature, host.clone()).await?;
        let store = sw.kube.store().clone();
        let node_keeper = tokio::spawn(async move {
            loop {
                if store.node(NODE).is_none() {
                    store.add_node(NODE, &[], true);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let local_id = sw
            .image_id(&format!("{}:{LOCAL_VERSION}", sw.local_image))
            .await
            .context("the shipped image")?;
        let kube_id = sw
            .image_id(&format!("{}:{KUBE_VERSION}", sw.kube_image))
            .await
            .context("the kube image")?;
        let case = Case {
            sw,
            local_id,
            kube_id,
            node_keeper,
        };
        let r = async {
            case.sw
                .set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
                .await?;
            case.sw
                .set_image_mgmt("GLOBAL", &[("active_time_to_mark_good", "1s")])
                .await?;
            caught(arrange(&case)).await?;
            let daemon = case.sw.start_daemon(None).await?;
            let checked = caught(check(&case, &daemon)).await;
            let log = daemon.log.lines();
            let exit = daemon.terminate().await;
            checked.map_err(|e| anyhow::anyhow!("{e:#}\nctrmgrd log: {log:?}"))?;
            let exit = exit?;
            anyhow::ensure!(
                exit == sonic_daemon::Exit::Terminated,
                "ctrmgrd ended with {exit:?}"
            );
            anyhow::Ok(())
        }
        .await;
        case.node_keeper.abort();
        case.sw.teardown().await;
        r
    }
    .await;
    purge_feature(&docker, feature).await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t0_g4_good_kube_image_becomes_local_the_stopped_local_container_and_shipped_copy_go()
-> anyhow::Result<()> {
    scenario(
        "imgt0",
        async |c| {
            c.stop_local_container().await?;
            let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
            // `container wait` of the local run recorded its version as stable (C-W0).
            c.record_running(&pod, KUBE_VERSION, Some(LOCAL_VERSION), None)
                .await
        },
        async |c, _| {
            c.wait_references(&[
                (c.local("latest"), &c.kube_id),
                (c.registry(KUBE_VERSION), &c.kube_id),
            ])
            .await?;
            assert_eq!(c.container(c.feature()).await, None, "local container");
            c.wait_gone(&c.local_id).await?;
            c.wait_stable(KUBE_VERSION).await?;
            assert_eq!(
                c.stable_and_last().await,
                (Some(KUBE_VERSION.into()), Some(LOCAL_VERSION.into()))
            );
            assert_eq!(c.container(&c.pod()).await, Some(true), "the pod runs on");
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_local_container_already_removed_is_fine() -> anyhow::Result<()> {
    scenario(
        "imgt1",
        async |c| {
            c.sw.docker.remove_container(c.feature(), true).await?;
            let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
            c.record_running(&pod, KUBE_VERSION, Some(LOCAL_VERSION), None)
                .await
        },
        async |c, daemon| {
            c.wait_stable(KUBE_VERSION).await?;
            c.wait_references(&[
                (c.local("latest"), &c.kube_id),
                (c.registry(KUBE_VERSION), &c.kube_id),
            ])
            .await?;
            assert_eq!(
                c.stable_and_last().await,
                (Some(KUBE_VERSION.into()), Some(LOCAL_VERSION.into()))
            );
            assert_eq!(c.container(c.feature()).await, None);
            assert_eq!(daemon.log.count("docker:"), 0, "{:?}", daemon.log.lines());
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t2_deployment_gone_before_the_timer_is_given_up_and_the_next_deployment_is_marked_good()
-> anyhow::Result<()> {
    scenario(
        "imgt2",
        async |c| {
            c.stop_local_container().await?;
            let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
            // The pod dies; STATE_DB still says running when the timer fires.
            c.sw.docker
                .stop_container(&pod, Some(Duration::from_secs(5)))
                .await?;
            c.record_running(&pod, KUBE_VERSION, Some(LOCAL_VERSION), None)
                .await
        },
        async |c, _| {
            c.wait_seen_running(KUBE_VERSION).await?;
            tokio::time::sleep(WINDOW).await;
            let untouched = [
                (c.local("latest"), c.local_id.as_str()),
                (c.local(LOCAL_VERSION), c.local_id.as_str()),
                (c.registry(KUBE_VERSION), c.kube_id.as_str()),
            ];
            c.wait_references(&untouched).await?;
            assert_eq!(c.container(c.feature()).await, Some(false));
            assert_eq!(
                c.stable_and_last().await,
                (Some(LOCAL_VERSION.into()), None),
                "a version that stopped running is not marked good"
            );

            // The next deployment: version 2.1.0 is downloaded, its pod asks to take over
            // (`pending`), then runs.
            let next_id = c.build(&c.registry("2.1.0"), "2.1.0").await?;
            let pod = c.run_pod(&c.registry("2.1.0")).await?;
            c.mod_status(&[
                ("remote_state", "pending"),
                ("container_id", &pod[..12]),
                ("container_version", "2.1.0"),
            ])
            .await?;
            // ctrmgrd saw `pending`: the replaced version's label goes (M7).
            wait_for("the 2.0.0 version label dropped", DEADLINE, || async {
                c.version_label(KUBE_VERSION).await.is_none()
            })
            .await?;
            c.mod_status(&[("remote_state", "running")]).await?;
            c.wait_stable("2.1.0").await?;
            // 2.0.0 never became stable, so it is an older download and goes.
            c.wait_references(&[
                (c.local("latest"), &next_id),
                (c.registry("2.1.0"), &next_id),
            ])
            .await?;
            assert_eq!(
                c.stable_and_last().await,
                (Some("2.1.0".into()), Some(LOCAL_VERSION.into()))
            );
            assert_eq!(c.container(c.feature()).await, None);
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t4_running_local_container_is_retried_until_it_stops() -> anyhow::Result<()> {
    scenario(
        "imgt4",
        async |c| {
            c.sw.docker.start_container(c.feature()).await?;
            let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
            c.record_running(&pod, KUBE_VERSION, Some(LOCAL_VERSION), None)
                .await
        },
        async |c, _| {
            c.wait_seen_running(KUBE_VERSION).await?;
            tokio::time::sleep(WINDOW).await;
            c.wait_references(&[
                (c.local("latest"), &c.local_id),
                (c.local(LOCAL_VERSION), &c.local_id),
                (c.registry(KUBE_VERSION), &c.kube_id),
            ])
            .await?;
            assert_eq!(c.container(c.feature()).await, Some(true));
            assert_eq!(
                c.stable_and_last().await,
                (Some(LOCAL_VERSION.into()), None)
            );

            c.sw.docker
                .stop_container(c.feature(), Some(Duration::from_secs(5)))
                .await?;
            c.wait_stable(KUBE_VERSION).await?;
            c.wait_references(&[
                (c.local("latest"), &c.kube_id),
                (c.registry(KUBE_VERSION), &c.kube_id),
            ])
            .await?;
            assert_eq!(c.container(c.feature()).await, None);
            assert_eq!(
                c.stable_and_last().await,
                (Some(KUBE_VERSION.into()), Some(LOCAL_VERSION.into()))
            );
            Ok(())
        },
    )
    .await
}

/// The situation after earlier marks with the defaults: 1.5.0 was marked good (it is
/// `docker-<f>:latest`, the golden image), 1.2.0 before it; the shipped copy and the local
/// container are gone. Returns the ids of 1.2.0 and 1.5.0.
async fn after_earlier_marks(c: &Case) -> anyhow::Result<(String, String)> {
    let v12 = c.build(&c.registry("1.2.0"), "1.2.0").await?;
    let v15 = c.build(&c.registry("1.5.0"), "1.5.0").await?;
    c.tag(&v15, &c.local("latest")).await?;
    c.sw.docker.remove_container(c.feature(), true).await?;
    c.untag(&c.local(LOCAL_VERSION)).await?;
    Ok((v12, v15))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g0_kube_to_kube_purges_older_downloads_but_keeps_current_last_and_golden()
-> anyhow::Result<()> {
    let ids = std::sync::Mutex::new(None);
    scenario(
        "imgg0",
        async |c| {
            let (v12, v15) = after_earlier_marks(c).await?;
            *ids.lock().unwrap() = Some((v12, v15));
            let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
            c.record_running(&pod, KUBE_VERSION, Some("1.5.0"), Some("1.2.0"))
                .await
        },
        async |c, _| {
            let (v12, v15) = ids.lock().unwrap().clone().unwrap();
            c.wait_references(&[
                (c.local("latest"), &c.kube_id),
                (c.registry(KUBE_VERSION), &c.kube_id),
                (c.registry("1.5.0"), &v15),
            ])
            .await?;
            c.wait_gone(&v12).await?;
            c.wait_stable(KUBE_VERSION).await?;
            assert_eq!(
                c.stable_and_last().await,
                (Some(KUBE_VERSION.into()), Some("1.5.0".into()))
            );
            Ok(())
        },
    )
    .await
}

/// G1's situation: the earlier marks, and an old pod of 1.2.0 left behind, so that `docker rmi`
/// of 1.2.0's only tag is a conflict. Returns the ids of 1.2.0 and 1.5.0.
async fn with_old_pod_blocking_1_2_0(c: &Case) -> anyhow::Result<(String, String)> {
    let ids = after_earlier_marks(c).await?;
    let mut old = CreateSpec::new(&c.old_pod(), &c.registry("1.2.0"));
    old.env.push(("RUNTIME_OWNER".into(), "kube".into()));
    c.sw.docker.create_container(&old).await?;
    let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
    c.record_running(&pod, KUBE_VERSION, Some("1.5.0"), Some("1.2.0"))
        .await?;
    Ok(ids)
}

/// Log lines of docker problem topics (`docker: ...`, or a more specific `docker ...` topic).
fn docker_lines(daemon: &RunningDaemon) -> Vec<String> {
    daemon
        .log
        .lines()
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| l.starts_with("docker"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_removal_refused_by_the_engine_is_retried_until_it_succeeds() -> anyhow::Result<()> {
    let ids = std::sync::Mutex::new(None);
    scenario(
        "imgg1",
        async |c| {
            *ids.lock().unwrap() = Some(with_old_pod_blocking_1_2_0(c).await?);
            Ok(())
        },
        async |c, daemon| {
            let (v12, v15) = ids.lock().unwrap().clone().unwrap();
            // The operations before the refused removal are done.
            c.wait_stable(KUBE_VERSION).await?;
            wait_for("the refused removal logged", DEADLINE, || async {
                docker_lines(daemon)
                    .iter()
                    .any(|l| l.contains("cannot remove image") && l.contains("1.2.0"))
            })
            .await?;
            // Retried for a while: the image stays.
            tokio::time::sleep(WINDOW).await;
            c.wait_references(&[
                (c.local("latest"), &c.kube_id),
                (c.registry(KUBE_VERSION), &c.kube_id),
                (c.registry("1.5.0"), &v15),
                (c.registry("1.2.0"), &v12),
            ])
            .await?;

            c.sw.docker.remove_container(&c.old_pod(), true).await?;
            c.wait_references(&[
                (c.local("latest"), &c.kube_id),
                (c.registry(KUBE_VERSION), &c.kube_id),
                (c.registry("1.5.0"), &v15),
            ])
            .await?;
            c.wait_gone(&v12).await?;
            // Marking the same version again keeps the last version (upstream quirk 5 fixed).
            assert_eq!(
                c.stable_and_last().await,
                (Some(KUBE_VERSION.into()), Some("1.5.0".into()))
            );
            wait_for("the recovery logged last", DEADLINE, || async {
                docker_lines(daemon)
                    .last()
                    .is_some_and(|l| l.ends_with(": recovered"))
            })
            .await?;
            Ok(())
        },
    )
    .await
}

/// The reporter's contract ("each problem logged once when it starts and once when it clears")
/// for the refused removal: while the engine keeps refusing, one error line and no recovery.
/// Fails today: `GatherImageFacts` and `RunImageOps` share the `docker` topic, so every retry's
/// successful gathering logs "docker: recovered" and the next refusal logs the error again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_refused_removal_is_logged_once_and_not_as_recovered_between_retries()
-> anyhow::Result<()> {
    scenario(
        "imgg1log",
        async |c| with_old_pod_blocking_1_2_0(c).await.map(|_| ()),
        async |c, daemon| {
            c.wait_stable(KUBE_VERSION).await?;
            // At least two retries (`retry_clean_image_seconds` = 1) while the engine refuses.
            tokio::time::sleep(WINDOW).await;
            assert!(
                c.references().await.contains_key(&c.registry("1.2.0")),
                "still refused"
            );
            let lines = docker_lines(daemon);
            assert!(
                lines.len() == 1 && lines[0].contains("cannot remove image"),
                "one problem line while the removal keeps failing: {lines:#?}"
            );
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_running_image_not_listed_is_retried_until_it_is_tagged_again() -> anyhow::Result<()> {
    scenario(
        "imgg2",
        async |c| {
            c.stop_local_container().await?;
            let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
            // The running image loses its only tag (it stays, dangling, under the pod).
            c.sw.docker
                .remove_image(&c.registry(KUBE_VERSION), true)
                .await?;
            c.record_running(&pod, KUBE_VERSION, Some(LOCAL_VERSION), None)
                .await
        },
        async |c, _| {
            c.wait_seen_running(KUBE_VERSION).await?;
            tokio::time::sleep(WINDOW).await;
            c.wait_references(&[
                (c.local("latest"), &c.local_id),
                (c.local(LOCAL_VERSION), &c.local_id),
            ])
            .await?;
            assert!(
                c.image_exists(&c.kube_id).await,
                "the pod's image is only untagged"
            );
            assert_eq!(c.container(c.feature()).await, Some(false));
            assert_eq!(
                c.stable_and_last().await,
                (Some(LOCAL_VERSION.into()), None)
            );

            c.tag(&c.kube_id, &c.registry(KUBE_VERSION)).await?;
            c.wait_stable(KUBE_VERSION).await?;
            c.wait_references(&[
                (c.local("latest"), &c.kube_id),
                (c.registry(KUBE_VERSION), &c.kube_id),
            ])
            .await?;
            assert_eq!(c.container(c.feature()).await, None);
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_current_version_not_downloaded_is_tagged_and_recorded_but_nothing_is_cleaned()
-> anyhow::Result<()> {
    let v15 = std::sync::Mutex::new(String::new());
    scenario(
        "imgg3",
        async |c| {
            c.stop_local_container().await?;
            *v15.lock().unwrap() = c.build(&c.registry("1.5.0"), "1.5.0").await?;
            // 2.0.0 was side-loaded under the local name, not downloaded.
            c.tag(&c.kube_id, &c.local(KUBE_VERSION)).await?;
            c.untag(&c.registry(KUBE_VERSION)).await?;
            let pod = c.run_pod(&c.local(KUBE_VERSION)).await?;
            c.record_running(&pod, KUBE_VERSION, Some("1.5.0"), None)
                .await
        },
        async |c, _| {
            let v15 = v15.lock().unwrap().clone();
            c.wait_stable(KUBE_VERSION).await?;
            // The status is the plan's last operation: nothing follows it.
            assert_eq!(
                c.references().await,
                BTreeMap::from([
                    (c.local("latest"), c.kube_id.clone()),
                    (c.local(KUBE_VERSION), c.kube_id.clone()),
                    (c.local(LOCAL_VERSION), c.local_id.clone()),
                    (c.registry("1.5.0"), v15),
                ])
            );
            assert_eq!(c.container(c.feature()).await, None);
            assert_eq!(
                c.stable_and_last().await,
                (Some(KUBE_VERSION.into()), Some("1.5.0".into()))
            );
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_local_copy_of_the_last_version_keeps_its_bits_under_the_downloaded_name()
-> anyhow::Result<()> {
    let ids = std::sync::Mutex::new(None);
    scenario(
        "imgg5",
        async |c| {
            // 1.5.0 shipped locally (golden) and also downloaded by a dry kube run marked good.
            let local15 = c.build(&c.local("1.5.0"), "1.5.0").await?;
            let remote15 = c.build(&c.registry("1.5.0"), "1.5.0").await?;
            assert_ne!(local15, remote15);
            c.tag(&local15, &c.local("latest")).await?;
            c.stop_local_container().await?;
            *ids.lock().unwrap() = Some((local15, remote15));
            let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
            c.record_running(&pod, KUBE_VERSION, Some("1.5.0"), None)
                .await
        },
        async |c, _| {
            let (local15, remote15) = ids.lock().unwrap().clone().unwrap();
            c.wait_references(&[
                (c.local("latest"), &c.kube_id),
                (c.registry(KUBE_VERSION), &c.kube_id),
                (c.registry("1.5.0"), &local15),
            ])
            .await?;
            c.wait_gone(&remote15).await?;
            c.wait_gone(&c.local_id).await?;
            assert_eq!(c.container(c.feature()).await, None);
            c.wait_stable(KUBE_VERSION).await?;
            assert_eq!(
                c.stable_and_last().await,
                (Some(KUBE_VERSION.into()), Some("1.5.0".into()))
            );
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hld_without_tag_as_local_the_golden_image_stays_even_as_an_older_download()
-> anyhow::Result<()> {
    let ids = std::sync::Mutex::new(None);
    scenario(
        "imghg",
        async |c| {
            c.sw.set_image_mgmt(c.feature(), &[("tag_new_as_local", "false")])
                .await?;
            let v11 = c.build(&c.registry("1.1.0"), "1.1.0").await?;
            let v12 = c.build(&c.registry("1.2.0"), "1.2.0").await?;
            let v15 = c.build(&c.registry("1.5.0"), "1.5.0").await?;
            // 1.2.0 was made golden by an earlier mark (with tag_new_as_local then true).
            c.tag(&v12, &c.local("latest")).await?;
            c.stop_local_container().await?;
            *ids.lock().unwrap() = Some((v11, v12, v15));
            let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
            c.record_running(&pod, KUBE_VERSION, Some("1.5.0"), Some("1.2.0"))
                .await
        },
        async |c, _| {
            let (v11, v12, v15) = ids.lock().unwrap().clone().unwrap();
            c.wait_references(&[
                (c.local("latest"), &v12),
                (c.local(LOCAL_VERSION), &c.local_id),
                (c.registry("1.2.0"), &v12),
                (c.registry("1.5.0"), &v15),
                (c.registry(KUBE_VERSION), &c.kube_id),
            ])
            .await?;
            c.wait_gone(&v11).await?;
            assert_eq!(c.container(c.feature()).await, Some(false), "kept");
            c.wait_stable(KUBE_VERSION).await?;
            assert_eq!(
                c.stable_and_last().await,
                (Some(KUBE_VERSION.into()), Some("1.5.0".into()))
            );
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hld_keeping_older_images_and_the_local_copy_only_tags_removes_the_container_and_records()
-> anyhow::Result<()> {
    let v12 = std::sync::Mutex::new(String::new());
    scenario(
        "imghk",
        async |c| {
            c.sw.set_image_mgmt(
                "GLOBAL",
                &[
                    ("active_time_to_mark_good", "1s"),
                    ("purge_older_image", "false"),
                    ("purge_local_copy", "false"),
                ],
            )
            .await?;
            *v12.lock().unwrap() = c.build(&c.registry("1.2.0"), "1.2.0").await?;
            c.stop_local_container().await?;
            let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
            c.record_running(&pod, KUBE_VERSION, Some(LOCAL_VERSION), None)
                .await
        },
        async |c, _| {
            let v12 = v12.lock().unwrap().clone();
            c.wait_stable(KUBE_VERSION).await?;
            // The status is the plan's last operation: nothing follows it.
            assert_eq!(
                c.references().await,
                BTreeMap::from([
                    (c.local("latest"), c.kube_id.clone()),
                    (c.local(LOCAL_VERSION), c.local_id.clone()),
                    (c.registry("1.2.0"), v12),
                    (c.registry(KUBE_VERSION), c.kube_id.clone()),
                ])
            );
            assert_eq!(c.container(c.feature()).await, None);
            assert_eq!(
                c.stable_and_last().await,
                (Some(KUBE_VERSION.into()), Some(LOCAL_VERSION.into()))
            );
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hld_disabled_image_management_leaves_every_image_and_container_alone() -> anyhow::Result<()>
{
    let v12 = std::sync::Mutex::new(String::new());
    scenario(
        "imghd",
        async |c| {
            c.sw.set_image_mgmt(c.feature(), &[("Disable", "true")])
                .await?;
            *v12.lock().unwrap() = c.build(&c.registry("1.2.0"), "1.2.0").await?;
            c.stop_local_container().await?;
            let pod = c.run_pod(&c.registry(KUBE_VERSION)).await?;
            c.record_running(&pod, KUBE_VERSION, Some(LOCAL_VERSION), None)
                .await
        },
        async |c, daemon| {
            let v12 = v12.lock().unwrap().clone();
            c.wait_seen_running(KUBE_VERSION).await?;
            tokio::time::sleep(WINDOW).await;
            assert_eq!(
                c.references().await,
                BTreeMap::from([
                    (c.local("latest"), c.local_id.clone()),
                    (c.local(LOCAL_VERSION), c.local_id.clone()),
                    (c.registry("1.2.0"), v12),
                    (c.registry(KUBE_VERSION), c.kube_id.clone()),
                ])
            );
            assert_eq!(c.container(c.feature()).await, Some(false));
            assert_eq!(
                c.stable_and_last().await,
                (Some(LOCAL_VERSION.into()), None)
            );
            assert_eq!(daemon.log.count("docker:"), 0, "{:?}", daemon.log.lines());
            Ok(())
        },
    )
    .await
}
