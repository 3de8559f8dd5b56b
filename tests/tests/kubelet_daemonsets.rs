//! The emulated kubelet against the fake API server and the real dockerd: DaemonSets selecting
//! the node run as pods with dockershim-named containers, follow label changes, template
//! changes and deletion, restart dead containers, and report status through the API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use sonic_docker_adapter::DockerClient;
use sonic_kube_adapter::manifest::FeatureRuntime;
use sonic_tests::docker::{ImageSpec, build_image, docker_host};
use sonic_tests::fake_kube::FakeKube;
use sonic_tests::kubelet::{Kubelet, LABEL_KUBELET, pods_of};

const NODE: &str = "sonic-kubelet";
const DEADLINE: Duration = Duration::from_secs(60);
const IMAGE_REPO: &str = "kubelet-test/app";

/// An image whose process runs until SIGTERM (a start script with a trap, as feature start
/// scripts do).
async fn app_image(host: &str, version: &str) -> String {
    let reference = format!("{IMAGE_REPO}:{version}");
    build_image(
        host,
        &reference,
        &ImageSpec::new()
            .env("IMAGE_VERSION", version)
            .file(
                "/usr/bin/app",
                b"#!/bin/sh\ntrap 'exit 0' TERM\nwhile :; do sleep 1 & wait $!; done\n".to_vec(),
                0o755,
            )
            .cmd(["/usr/bin/app"]),
    )
    .await
    .expect("test image must build");
    reference
}

/// The DaemonSet the project's manifest generator makes for feature `f` at `version`.
fn daemonset(f: &str, version: &str, extra_env: &str) -> DaemonSet {
    let yaml = format!(
        "name: {f}\nruntime:\n  image: {IMAGE_REPO}\n  version: \"{version}\"\n  redis-socket: false\n  mounts:\n    - {{ host-path: /tmp, container-path: /host-tmp, read-only: true }}\n  env: {{ LAB_NOTE: \"{extra_env}\" }}\n"
    );
    let rt = FeatureRuntime::from_yaml(std::path::Path::new("inline.yaml"), &yaml).unwrap();
    let mut list = sonic_kube_adapter::manifest::daemonsets(&rt);
    assert_eq!(list.len(), 1);
    let mut ds = list.remove(0);
    ds.metadata.namespace = Some("default".into());
    ds
}

fn enabled_labels(f: &str, version: &str) -> Vec<(String, String)> {
    vec![
        (format!("{f}_enabled"), "true".into()),
        (format!("{f}_{version}_enabled"), "true".into()),
    ]
}

fn set_labels(kube: &FakeKube, labels: &[(String, String)]) {
    let l: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    kube.store().set_node_labels(NODE, &l).unwrap();
}

struct Env {
    host: String,
    kube: FakeKube,
    kubelet: Kubelet,
    docker: DockerClient,
}

async fn env() -> Env {
    let host = docker_host().expect("the test dockerd must run");
    let kube = FakeKube::start_http().await.unwrap();
    kube.store().add_node(NODE, &[], true);
    let kubelet = Kubelet::start(kube.store().clone(), NODE, &host)
        .await
        .unwrap();
    Env {
        host: host.clone(),
        kube,
        kubelet,
        docker: DockerClient::new(&host).unwrap(),
    }
}

impl Env {
    fn running_pod(&self, ds: &str) -> Option<Pod> {
        pods_of(self.kube.store(), "default", ds, NODE)
            .into_iter()
            .find(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|c| c.first())
                    .is_some_and(|c| c.ready)
            })
    }

    async fn wait_running(&self, ds: &str) -> Pod {
        let ok = self
            .kube
            .store()
            .wait_until(DEADLINE, |_| self.running_pod(ds).is_some())
            .await;
        assert!(
            ok,
            "no running pod of {ds}; pods {:?}; kubelet events {:?}",
            self.kube.store().pods(None),
            self.kubelet.events()
        );
        self.running_pod(ds).unwrap()
    }

    /// Names of this kubelet's containers on the engine, with running state.
    async fn containers(&self) -> Vec<(String, String)> {
        self.docker
            .list_containers(true)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| {
                c.labels.get(LABEL_KUBELET).map(String::as_str) == Some(self.kubelet.instance_id())
            })
            .map(|c| (c.names.first().cloned().unwrap_or_default(), c.state))
            .collect()
    }

    async fn wait_containers(&self, what: &str, pred: impl Fn(&[(String, String)]) -> bool) {
        let end = tokio::time::Instant::now() + DEADLINE;
        loop {
            let list = self.containers().await;
            if pred(&list) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "{what}: containers {list:?}; kubelet events {:?}",
                self.kubelet.events()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn teardown(self) {
        self.kubelet.shutdown(true).await;
    }
}

fn container_id(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .clone()
        .unwrap()
        .strip_prefix("docker://")
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_selecting_the_node_runs_its_container_as_a_kubelet_would() {
    let e = env().await;
    let image = app_image(&e.host, "1.0.0").await;
    let ds = daemonset("kapp", "1.0.0", "a");
    let name = ds.metadata.name.clone().unwrap();
    let created = e.kube.store().create_daemonset(&ds).unwrap();
    // Not selected yet: no pod.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(pods_of(e.kube.store(), "default", &name, NODE).is_empty());

    set_labels(&e.kube, &enabled_labels("kapp", "1.0.0"));
    let pod = e.wait_running(&name).await;

    // The pod object: generated name, owner, node, status.
    let pod_name = pod.metadata.name.clone().unwrap();
    let suffix = pod_name.strip_prefix(&format!("{name}-")).unwrap();
    assert_eq!(suffix.len(), 5, "{pod_name}");
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "DaemonSet");
    assert_eq!(owner.name, name);
    assert_eq!(owner.uid, created.metadata.uid.clone().unwrap());
    assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some(NODE));
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let cs = &status.container_statuses.as_ref().unwrap()[0];
    assert_eq!(cs.restart_count, 0);
    assert_eq!(cs.image, image);

    // The container on the engine: dockershim name, image, env, binds, host network.
    let id = container_id(&pod);
    let details = e.docker.inspect_container(&id).await.unwrap().unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    assert_eq!(details.name, format!("k8s_kapp_{pod_name}_default_{uid}_0"));
    assert!(details.running);
    assert_eq!(details.image_name, image);
    for want in ["RUNTIME_OWNER=kube", "IMAGE_VERSION=1.0.0", "LAB_NOTE=a"] {
        assert!(
            details.env.iter().any(|v| v == want),
            "{want} missing from {:?}",
            details.env
        );
    }
    let host = docker_host().unwrap();
    let raw = sonic_tests::docker::connect(&host)
        .await
        .unwrap()
        .inspect_container(&id, None)
        .await
        .unwrap();
    let hc = raw.host_config.unwrap();
    assert_eq!(hc.network_mode.as_deref(), Some("host"));
    // Not privileged: the test machine may not grant all capabilities to containers.
    assert_eq!(hc.privileged, Some(false));
    assert_eq!(hc.binds.unwrap(), vec!["/tmp:/host-tmp:ro".to_string()]);
    e.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_label_stops_the_container_and_deletes_the_pod() {
    let e = env().await;
    app_image(&e.host, "1.0.0").await;
    let ds = daemonset("klabel", "1.0.0", "b");
    let name = ds.metadata.name.clone().unwrap();
    e.kube.store().create_daemonset(&ds).unwrap();
    set_labels(&e.kube, &enabled_labels("klabel", "1.0.0"));
    e.wait_running(&name).await;
    e.wait_containers("one running container", |l| {
        l.len() == 1 && l[0].1 == "running"
    })
    .await;

    // ctrmgrd-style disabling: the value becomes "false".
    set_labels(
        &e.kube,
        &[
            ("klabel_enabled".into(), "false".into()),
            ("klabel_1.0.0_enabled".into(), "true".into()),
        ],
    );
    e.wait_containers("no container left", |l| l.is_empty())
        .await;
    assert!(
        e.kube
            .store()
            .wait_until(DEADLINE, |s| pods_of(s, "default", &name, NODE).is_empty())
            .await
    );
    e.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_restarted_with_restart_count_one() {
    let e = env().await;
    app_image(&e.host, "1.0.0").await;
    let ds = daemonset("kkill", "1.0.0", "c");
    let name = ds.metadata.name.clone().unwrap();
    e.kube.store().create_daemonset(&ds).unwrap();
    set_labels(&e.kube, &enabled_labels("kkill", "1.0.0"));
    let pod = e.wait_running(&name).await;
    let first = container_id(&pod);
    e.docker.kill_container(&first).await.unwrap();

    let restarted = e
        .kube
        .store()
        .wait_until(DEADLINE, |s| {
            s.pod("default", pod.metadata.name.as_deref().unwrap())
                .and_then(|p| p.status)
                .and_then(|st| st.container_statuses)
                .is_some_and(|c| c[0].restart_count == 1 && c[0].ready)
        })
        .await;
    assert!(restarted, "kubelet events {:?}", e.kubelet.events());
    let pod = e
        .kube
        .store()
        .pod("default", pod.metadata.name.as_deref().unwrap())
        .unwrap();
    let second = container_id(&pod);
    assert_ne!(first, second);
    let details = e.docker.inspect_container(&second).await.unwrap().unwrap();
    assert!(details.running);
    assert!(details.name.ends_with("_1"), "{}", details.name);
    // The dead instance is the last state.
    let last = pod.status.unwrap().container_statuses.unwrap()[0]
        .last_state
        .clone()
        .unwrap();
    assert!(
        last.terminated
            .unwrap()
            .container_id
            .unwrap()
            .ends_with(&first)
    );
    e.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_daemonset_replaces_the_pod_and_its_container() {
    let e = env().await;
    app_image(&e.host, "1.0.0").await;
    let ds = daemonset("kupd", "1.0.0", "old");
    let name = ds.metadata.name.clone().unwrap();
    e.kube.store().create_daemonset(&ds).unwrap();
    set_labels(&e.kube, &enabled_labels("kupd", "1.0.0"));
    let old_pod = e.wait_running(&name).await;
    let old_id = container_id(&old_pod);

    // A new template (another env value), as `kubectl apply` of a changed manifest.
    let new = daemonset("kupd", "1.0.0", "new");
    let new_json = serde_json::to_value(&new).unwrap();
    e.kube
        .store()
        .update_with(
            sonic_tests::fake_kube::Resource::DaemonSet,
            "default",
            &name,
            |o| {
                o["spec"] = new_json["spec"].clone();
            },
        )
        .unwrap();
    let replaced = e
        .kube
        .store()
        .wait_until(DEADLINE, |_| {
            e.running_pod(&name)
                .is_some_and(|p| p.metadata.name != old_pod.metadata.name)
        })
        .await;
    assert!(replaced, "kubelet events {:?}", e.kubelet.events());
    let pods = pods_of(e.kube.store(), "default", &name, NODE);
    assert_eq!(pods.len(), 1, "{pods:?}");
    let new_id = container_id(&pods[0]);
    let details = e.docker.inspect_container(&new_id).await.unwrap().unwrap();
    assert!(
        details.env.iter().any(|v| v == "LAB_NOTE=new"),
        "{:?}",
        details.env
    );
    assert!(e.docker.inspect_container(&old_id).await.unwrap().is_none());
    e.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_daemonset_takes_its_pod_and_container_away() {
    let e = env().await;
    app_image(&e.host, "1.0.0").await;
    let ds = daemonset("kdel", "1.0.0", "d");
    let name = ds.metadata.name.clone().unwrap();
    e.kube.store().create_daemonset(&ds).unwrap();
    set_labels(&e.kube, &enabled_labels("kdel", "1.0.0"));
    let pod = e.wait_running(&name).await;
    let id = container_id(&pod);
    e.kube.store().delete_daemonset("default", &name).unwrap();
    e.wait_containers("no container left", |l| l.is_empty())
        .await;
    assert!(e.docker.inspect_container(&id).await.unwrap().is_none());
    assert!(
        e.kube
            .store()
            .wait_until(DEADLINE, |s| pods_of(s, "default", &name, NODE).is_empty())
            .await
    );
    e.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_status_is_visible_through_the_api_with_kube_rs() {
    let e = env().await;
    app_image(&e.host, "1.0.0").await;
    let ds = daemonset("kapi", "1.0.0", "e");
    let name = ds.metadata.name.clone().unwrap();
    e.kube.store().create_daemonset(&ds).unwrap();
    set_labels(&e.kube, &enabled_labels("kapi", "1.0.0"));
    let pod = e.wait_running(&name).await;

    let client = kube::Client::try_from(kube::Config::new(e.kube.url().parse().unwrap())).unwrap();
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, "default");
    let listed = pods
        .list(&kube::api::ListParams::default().fields(&format!("spec.nodeName={NODE}")))
        .await
        .unwrap();
    let got = listed
        .items
        .iter()
        .find(|p| p.metadata.name == pod.metadata.name)
        .expect("the kubelet's pod is listed by the API");
    let status = got.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let cs = &status.container_statuses.as_ref().unwrap()[0];
    assert!(cs.ready);
    assert_eq!(cs.restart_count, 0);
    assert!(cs.container_id.as_deref().unwrap().starts_with("docker://"));
    assert_eq!(
        got.metadata.owner_references.as_ref().unwrap()[0].name,
        name
    );
    e.teardown().await;
}
