//! The fake API server as kube-rs sees it: discovery, selectors, watches, daemon sets, pods,
//! plain HTTP mode, down/up and fault rules.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::AuthInfo;
use kube::{Client, Config};
use serde_json::json;
use sonic_tests::fake_kube::{FakeKube, Fault, FaultRule};

async fn https_client(kube: &FakeKube) -> Client {
    let dir = tempfile::tempdir().unwrap();
    let id = kube.client_identity("tester").unwrap();
    let (cert, key) = id.write_to(dir.path(), "tester").unwrap();
    let mut config = Config::new(kube.url().parse().unwrap());
    config.root_cert = Some(
        rustls::pki_types::pem::PemObject::pem_slice_iter(kube.ca_pem().unwrap().as_bytes())
            .map(|c: Result<rustls::pki_types::CertificateDer<'static>, _>| c.unwrap().to_vec())
            .collect(),
    );
    config.auth_info = AuthInfo {
        client_certificate: Some(cert.to_string_lossy().into_owned()),
        client_key: Some(key.to_string_lossy().into_owned()),
        ..AuthInfo::default()
    };
    config.default_retry = false;
    let client = Client::try_from(config).unwrap();
    // The identity is loaded when the client is built; the files may go.
    drop(dir);
    client
}

fn daemonset(name: &str, selector: &[(&str, &str)]) -> DaemonSet {
    let sel: BTreeMap<_, _> = selector
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "sonic"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"nodeSelector": sel, "containers": [{"name": name, "image": format!("docker-{name}:1")}]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn discovery_and_version_answer_kube_rs() {
    let kube = FakeKube::start_https().await.unwrap();
    let client = https_client(&kube).await;
    let v = client.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "33"));
    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "apps"));
    let core = client.list_core_api_resources("v1").await.unwrap();
    assert!(core.resources.iter().any(|r| r.name == "nodes"));
}

#[tokio::test]
async fn node_lists_honour_label_selectors() {
    let kube = FakeKube::start_https().await.unwrap();
    kube.store()
        .add_node("a", &[("snmp_enabled", "true"), ("hwsku", "x")], true);
    kube.store()
        .add_node("b", &[("snmp_enabled", "false")], true);
    kube.store().add_node("c", &[], true);
    let nodes: Api<Node> = Api::all(https_client(&kube).await);
    let names = |l: kube::api::ObjectList<Node>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|n| n.metadata.name.unwrap())
            .collect()
    };
    let q = |s: &str| ListParams::default().labels(s);
    assert_eq!(
        names(nodes.list(&q("snmp_enabled=true")).await.unwrap()),
        ["a"]
    );
    assert_eq!(
        names(nodes.list(&q("snmp_enabled!=true")).await.unwrap()),
        ["b", "c"]
    );
    assert_eq!(
        names(nodes.list(&q("snmp_enabled")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(names(nodes.list(&q("!snmp_enabled")).await.unwrap()), ["c"]);
    assert_eq!(
        names(nodes.list(&q("snmp_enabled,hwsku=x")).await.unwrap()),
        ["a"]
    );
    let logged = kube
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path == "/api/v1/nodes")
        .unwrap();
    assert_eq!(
        logged.query_param("labelSelector").as_deref(),
        Some("snmp_enabled=true")
    );
}

#[tokio::test]
async fn node_watch_from_a_resource_version_sees_changes_in_order() {
    let kube = FakeKube::start_https().await.unwrap();
    kube.store().add_node("a", &[("x", "1")], true);
    let nodes: Api<Node> = Api::all(https_client(&kube).await);
    let rv = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = nodes
        .watch(&WatchParams::default().labels("x=1").timeout(30), &rv)
        .await
        .unwrap()
        .boxed();
    nodes
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"y": "2"}}})),
        )
        .await
        .unwrap();
    kube.store().add_node("b", &[("x", "1")], true);
    kube.store().set_node_labels("a", &[("x", "0")]).unwrap(); // leaves the selector
    nodes.delete("b", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(match ev {
            WatchEvent::Added(n) => format!("ADDED {}", n.metadata.name.unwrap()),
            WatchEvent::Modified(n) => format!("MODIFIED {}", n.metadata.name.unwrap()),
            WatchEvent::Deleted(n) => format!("DELETED {}", n.metadata.name.unwrap()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["MODIFIED a", "ADDED b", "DELETED a", "DELETED b"]);
}

#[tokio::test]
async fn strategic_merge_patch_of_labels_and_null_removal() {
    let kube = FakeKube::start_https().await.unwrap();
    kube.store().add_node("a", &[("x", "1"), ("y", "2")], true);
    let nodes: Api<Node> = Api::all(https_client(&kube).await);
    nodes
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"x": null, "z": "3"}}})),
        )
        .await
        .unwrap();
    let labels = kube.store().node_labels("a").unwrap();
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        [("y".into(), "2".into()), ("z".into(), "3".into())]
    );
    let bad = nodes
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"k": "$(x)"}}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(bad, kube::Error::Api(ref s) if s.code == 422),
        "{bad}"
    );
}

#[tokio::test]
async fn daemonsets_are_stored_with_their_node_selectors() {
    let kube = FakeKube::start_https().await.unwrap();
    let client = https_client(&kube).await;
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), "sonic");
    let created = ds
        .create(
            &PostParams::default(),
            &daemonset("snmp", &[("snmp_enabled", "true")]),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let stored = kube.store().daemonset("sonic", "snmp").unwrap();
    let sel = stored
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .node_selector
        .unwrap();
    assert_eq!(sel.get("snmp_enabled").map(String::as_str), Some("true"));

    let mut replaced = created.clone();
    replaced
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("docker-snmp:2".into());
    let replaced = ds
        .replace("snmp", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    // A stale resourceVersion conflicts.
    let err = ds
        .replace("snmp", &PostParams::default(), &created)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );

    let all: Api<DaemonSet> = Api::all(client);
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    ds.delete("snmp", &DeleteParams::default()).await.unwrap();
    assert!(kube.store().daemonsets(None).is_empty());
}

#[tokio::test]
async fn pod_status_written_by_the_store_is_seen_by_watchers() {
    let kube = FakeKube::start_https().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(https_client(&kube).await, "sonic");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "snmp-x", "namespace": "sonic"},
        "spec": {"nodeName": "n1", "containers": [{"name": "snmp", "image": "i"}]}
    }))
    .unwrap();
    kube.store().create_pod(&pod).unwrap();
    let mut events = pods
        .watch(&WatchParams::default().fields("spec.nodeName=n1"), "0")
        .await
        .unwrap()
        .boxed();
    let first = events.try_next().await.unwrap().unwrap();
    assert!(matches!(first, WatchEvent::Added(_)));
    let status: PodStatus = serde_json::from_value(json!({"phase": "Running"})).unwrap();
    kube.store()
        .set_pod_status("sonic", "snmp-x", &status)
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match next {
        WatchEvent::Modified(p) => assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running")),
        other => panic!("unexpected {other:?}"),
    }
    // Status writes through the API do not touch the spec, main writes keep the status.
    let got = pods.get("snmp-x").await.unwrap();
    assert_eq!(got.status.unwrap().phase.as_deref(), Some("Running"));
}

#[tokio::test]
async fn plain_http_mode_serves_without_certificates() {
    let kube = FakeKube::start_http().await.unwrap();
    assert!(kube.url().starts_with("http://127.0.0.1:"));
    kube.store().add_node("a", &[], true);
    let client = Client::try_from(Config::new(kube.url().parse().unwrap())).unwrap();
    let nodes: Api<Node> = Api::all(client);
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn down_refuses_connections_and_up_serves_again_on_the_same_address() {
    let kube = FakeKube::start_https().await.unwrap();
    kube.store().add_node("a", &[], true);
    let nodes: Api<Node> = Api::all(https_client(&kube).await);
    nodes.get("a").await.unwrap();
    let addr = kube.addr();
    kube.set_down(true).await.unwrap();
    assert!(kube.is_down());
    let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(nodes.get("a").await.is_err());
    kube.set_down(false).await.unwrap();
    assert_eq!(kube.addr(), addr);
    nodes.get("a").await.unwrap();
}

#[tokio::test]
async fn faults_can_be_counted_scoped_and_removed() {
    let kube = FakeKube::start_https().await.unwrap();
    kube.store().add_node("a", &[], true);
    let nodes: Api<Node> = Api::all(https_client(&kube).await);
    kube.inject(
        FaultRule::path_prefix("/api/v1/nodes", Fault::Status(429))
            .method("GET")
            .times(2),
    );
    let id = kube.inject(FaultRule::path_prefix(
        "/api/v1/configmaps",
        Fault::Status(500),
    ));
    for _ in 0..2 {
        let e = nodes.get("a").await.unwrap_err();
        assert!(matches!(e, kube::Error::Api(ref s) if s.code == 429), "{e}");
    }
    nodes.get("a").await.unwrap();
    assert_eq!(kube.faults().len(), 1);
    kube.remove_fault(id);
    assert!(kube.faults().is_empty());
    let faulted = kube
        .requests()
        .iter()
        .filter(|r| r.fault == Some(Fault::Status(429)))
        .count();
    assert_eq!(faulted, 2);
}
