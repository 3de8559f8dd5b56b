//! Label sync (upstream W0–W3) against the fake API server over HTTPS with client certificates,
//! including removals and a master outage in the middle of label changes.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sonic_feature_core::model::{LabelKey, LabelValue, NodeLabels};
use sonic_feature_core::ports::{ErrorKind, NodeCluster};
use sonic_tests::fake_kube::{Fault, FaultRule};

use common::{NODE, Switch};

fn labels(pairs: &[(&str, &str)]) -> NodeLabels {
    pairs
        .iter()
        .map(|(k, v)| (LabelKey::parse(k).unwrap(), LabelValue::parse(v).unwrap()))
        .collect()
}

fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn patches(sw: &Switch) -> Vec<serde_json::Value> {
    sw.kube
        .api_requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| {
            assert_eq!(
                r.content_type.as_deref(),
                Some("application/merge-patch+json")
            );
            r.body_json()
        })
        .collect()
}

#[tokio::test]
async fn w0_label_sync_overwrites_and_adds_in_one_patch() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube
        .store()
        .set_node_labels(NODE, &[("foo", "bar"), ("hello", "world")])
        .unwrap();
    sw.kube.clear_requests();
    c.patch_labels(
        &labels(&[("foo", "bar"), ("hello", "World"), ("test", "ok")]),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        patches(&sw),
        vec![json!({"metadata": {"labels": {"hello": "World", "test": "ok"}}})]
    );
    assert_eq!(
        sw.kube.store().node_labels(NODE).unwrap(),
        raw(&[("foo", "bar"), ("hello", "World"), ("test", "ok")])
    );
    assert_eq!(
        c.node_labels().await.unwrap(),
        labels(&[("foo", "bar"), ("hello", "World"), ("test", "ok")])
    );
}

#[tokio::test]
async fn w1_labels_already_in_sync_send_no_patch() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube
        .store()
        .set_node_labels(NODE, &[("foo", "bar"), ("hello", "world")])
        .unwrap();
    sw.kube.clear_requests();
    c.patch_labels(
        &labels(&[("foo", "bar"), ("hello", "world")]),
        &[LabelKey::parse("gone").unwrap()],
    )
    .await
    .unwrap();
    let reqs = sw.kube.api_requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, format!("/api/v1/nodes/{NODE}"));
}

#[tokio::test]
async fn w2_failed_read_is_transient_and_changes_nothing() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube
        .store()
        .set_node_labels(NODE, &[("foo", "bar")])
        .unwrap();
    sw.kube.clear_requests();
    sw.kube.inject(
        FaultRule::path_prefix("/api/v1/nodes", Fault::Status(500))
            .method("GET")
            .times(1),
    );
    let err = c
        .patch_labels(&labels(&[("foo", "baz")]), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(patches(&sw).is_empty());
    assert_eq!(
        sw.kube.store().node_labels(NODE).unwrap(),
        raw(&[("foo", "bar")])
    );
    // The retry goes through.
    c.patch_labels(&labels(&[("foo", "baz")]), &[])
        .await
        .unwrap();
    assert_eq!(
        sw.kube.store().node_labels(NODE).unwrap(),
        raw(&[("foo", "baz")])
    );
}

/// W3: upstream checked that injection strings reach kubectl as one argv element. Here labels
/// travel as JSON strings in an HTTP body, so nothing can be injected; strings outside the
/// Kubernetes label syntax are rejected by the model before any request, and strings that
/// merely look like flags or shell but are valid label values are sent verbatim.
#[tokio::test]
async fn w3_injection_strings_are_rejected_or_sent_as_plain_values() {
    for bad in [
        "$(reboot)",
        "; rm -rf /",
        "--overwrite",
        "a b",
        "x`id`",
        "World!",
        "a=b,c=d",
    ] {
        assert!(
            LabelValue::parse(bad).is_err(),
            "value {bad:?} must be rejected"
        );
        assert!(
            LabelKey::parse(bad).is_err(),
            "key {bad:?} must be rejected"
        );
    }
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube.clear_requests();
    let odd = labels(&[
        ("rm-rf", "overwrite--x"),
        ("example.com/a.b_c", "x..-y"),
        ("empty", ""),
    ]);
    c.patch_labels(&odd, &[]).await.unwrap();
    assert_eq!(
        patches(&sw),
        vec![
            json!({"metadata": {"labels": {"rm-rf": "overwrite--x", "example.com/a.b_c": "x..-y", "empty": ""}}})
        ]
    );
    let on_node = sw.kube.store().node_labels(NODE).unwrap();
    assert_eq!(
        on_node.get("rm-rf").map(String::as_str),
        Some("overwrite--x")
    );
    assert_eq!(on_node.get("empty").map(String::as_str), Some(""));
}

#[tokio::test]
async fn labels_are_removed_with_null() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube
        .store()
        .set_node_labels(NODE, &[("snmp_enabled", "true"), ("keep", "1")])
        .unwrap();
    sw.kube.clear_requests();
    c.patch_labels(
        &labels(&[("keep", "1")]),
        &[LabelKey::parse("snmp_enabled").unwrap()],
    )
    .await
    .unwrap();
    assert_eq!(
        patches(&sw),
        vec![json!({"metadata": {"labels": {"snmp_enabled": null}}})]
    );
    assert_eq!(
        sw.kube.store().node_labels(NODE).unwrap(),
        raw(&[("keep", "1")])
    );
}

#[tokio::test]
async fn label_changes_during_a_master_outage_land_after_recovery() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    c.patch_labels(&labels(&[("a", "1")]), &[]).await.unwrap();

    sw.kube.set_down(true).await.unwrap();
    let desired = labels(&[("a", "2"), ("b", "x")]);
    let err = c.patch_labels(&desired, &[]).await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Transient,
        "down master must be transient: {err}"
    );

    sw.kube.set_down(false).await.unwrap();
    // Retry with backoff as the daemon would, until the labels are on the node.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match c.patch_labels(&desired, &[]).await {
            Ok(()) => break,
            Err(e) => {
                assert!(e.is_transient(), "{e}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "labels never landed: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(
        sw.kube.store().node_labels(NODE).unwrap(),
        raw(&[("a", "2"), ("b", "x")])
    );
}

#[tokio::test]
async fn labels_of_an_absent_node_are_a_transient_error() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube.store().delete_node(NODE).unwrap();
    let err = c
        .patch_labels(&labels(&[("a", "1")]), &[])
        .await
        .unwrap_err();
    // Right after a join the node object appears only once kubelet registered it.
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
}

#[tokio::test]
async fn labels_without_a_kubeconfig_are_a_permanent_error() {
    let sw = Switch::new().await;
    let err = sw
        .cluster()
        .patch_labels(&labels(&[("a", "1")]), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.context.contains("kube_admin.conf"), "{err}");
}
