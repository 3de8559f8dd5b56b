//! Request shapes of the label and readiness calls, pinned with a tower-test mock API server.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use sonic_feature_core::model::{LabelKey, LabelValue, NodeLabels};
use sonic_feature_core::ports::{ErrorKind, NodeCluster};
use sonic_kube_adapter::{KubeNodeCluster, KubeSettings};
use tower_test::mock;

use common::RecordingRunner;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

fn cluster() -> (KubeNodeCluster, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let c =
        KubeNodeCluster::new(KubeSettings::new("None"), RecordingRunner::new()).with_client(client);
    (c, handle)
}

fn node(labels: &[(&str, &str)], ready: &str) -> Value {
    let labels: BTreeMap<_, _> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "none", "labels": labels, "resourceVersion": "7"},
        "status": {"conditions": [{"type": "Ready", "status": ready}]}
    })
}

fn labels(pairs: &[(&str, &str)]) -> NodeLabels {
    pairs
        .iter()
        .map(|(k, v)| (LabelKey::parse(k).unwrap(), LabelValue::parse(v).unwrap()))
        .collect()
}

fn respond(send: mock::SendResponse<Response<Body>>, status: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

/// Takes the next request, checks method and URI, returns its content type and JSON body.
async fn expect(
    handle: &mut Handle,
    method: &str,
    uri: &str,
) -> (Option<String>, Value, mock::SendResponse<Response<Body>>) {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method().as_str(), method);
    assert_eq!(req.uri().to_string(), uri);
    let ct = req
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (ct, body, send)
}

#[tokio::test]
async fn w0_label_sync_overwrites_and_adds_in_one_patch() {
    let (c, mut handle) = cluster();
    let server = tokio::spawn(async move {
        let (_, _, send) = expect(&mut handle, "GET", "/api/v1/nodes/none").await;
        respond(
            send,
            200,
            &node(&[("foo", "bar"), ("hello", "world")], "True"),
        );
        let (ct, body, send) = expect(&mut handle, "PATCH", "/api/v1/nodes/none?").await;
        assert_eq!(ct.as_deref(), Some("application/merge-patch+json"));
        // Only the changed and the new label, nothing else (no resourceVersion, no status).
        assert_eq!(
            body,
            json!({"metadata": {"labels": {"hello": "World", "test": "ok"}}})
        );
        respond(
            send,
            200,
            &node(
                &[("foo", "bar"), ("hello", "World"), ("test", "ok")],
                "True",
            ),
        );
        handle
    });
    let want = labels(&[("foo", "bar"), ("hello", "World"), ("test", "ok")]);
    c.patch_labels(&want, &[]).await.unwrap();
    let mut handle = server.await.unwrap();
    // Exactly two requests.
    drop(c);
    assert!(handle.next_request().await.is_none());
}

#[tokio::test]
async fn w1_labels_in_sync_send_only_the_read() {
    let (c, mut handle) = cluster();
    let server = tokio::spawn(async move {
        let (_, _, send) = expect(&mut handle, "GET", "/api/v1/nodes/none").await;
        respond(
            send,
            200,
            &node(&[("foo", "bar"), ("hello", "world")], "True"),
        );
        handle
    });
    c.patch_labels(
        &labels(&[("foo", "bar")]),
        &[LabelKey::parse("absent").unwrap()],
    )
    .await
    .unwrap();
    let mut handle = server.await.unwrap();
    drop(c);
    assert!(
        handle.next_request().await.is_none(),
        "no patch when in sync"
    );
}

#[tokio::test]
async fn removals_are_sent_as_null_in_the_same_patch() {
    let (c, mut handle) = cluster();
    let server = tokio::spawn(async move {
        let (_, _, send) = expect(&mut handle, "GET", "/api/v1/nodes/none").await;
        respond(
            send,
            200,
            &node(&[("snmp_enabled", "true"), ("keep", "1")], "True"),
        );
        let (ct, body, send) = expect(&mut handle, "PATCH", "/api/v1/nodes/none?").await;
        assert_eq!(ct.as_deref(), Some("application/merge-patch+json"));
        assert_eq!(
            body,
            json!({"metadata": {"labels": {"snmp_enabled": null, "lldp_enabled": "true"}}})
        );
        respond(
            send,
            200,
            &node(&[("keep", "1"), ("lldp_enabled", "true")], "True"),
        );
    });
    c.patch_labels(
        &labels(&[("keep", "1"), ("lldp_enabled", "true")]),
        &[LabelKey::parse("snmp_enabled").unwrap()],
    )
    .await
    .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn w2_failed_read_sends_no_patch_and_is_transient() {
    let (c, mut handle) = cluster();
    let server = tokio::spawn(async move {
        let (_, _, send) = expect(&mut handle, "GET", "/api/v1/nodes/none").await;
        respond(
            send,
            500,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcd down", "reason": "InternalError", "code": 500}),
        );
        handle
    });
    let err = c
        .patch_labels(&labels(&[("a", "b")]), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    let mut handle = server.await.unwrap();
    drop(c);
    assert!(handle.next_request().await.is_none());
}

#[tokio::test]
async fn forbidden_patch_is_permanent() {
    let (c, mut handle) = cluster();
    let server = tokio::spawn(async move {
        let (_, _, send) = expect(&mut handle, "GET", "/api/v1/nodes/none").await;
        respond(send, 200, &node(&[], "True"));
        let (_, _, send) = expect(&mut handle, "PATCH", "/api/v1/nodes/none?").await;
        respond(
            send,
            403,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "forbidden", "reason": "Forbidden", "code": 403}),
        );
    });
    let err = c
        .patch_labels(&labels(&[("a", "b")]), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.context.contains("patch labels of node none"), "{err}");
    server.await.unwrap();
}

#[tokio::test]
async fn node_ready_reads_the_ready_condition_of_this_node() {
    let (c, mut handle) = cluster();
    let server = tokio::spawn(async move {
        let (_, _, send) = expect(&mut handle, "GET", "/api/v1/nodes/none").await;
        respond(send, 200, &node(&[], "True"));
        let (_, _, send) = expect(&mut handle, "GET", "/api/v1/nodes/none").await;
        respond(send, 200, &node(&[], "False"));
        let (_, _, send) = expect(&mut handle, "GET", "/api/v1/nodes/none").await;
        respond(
            send,
            404,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "nodes \"none\" not found", "reason": "NotFound", "code": 404}),
        );
    });
    assert!(c.node_ready().await.unwrap());
    assert!(!c.node_ready().await.unwrap());
    assert!(!c.node_ready().await.unwrap());
    server.await.unwrap();
}
