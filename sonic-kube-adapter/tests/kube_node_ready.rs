//! Node readiness (upstream N0–N4) against the fake API server, the timeout by slow-fault
//! injection.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use sonic_feature_core::ports::{ErrorKind, NodeCluster};
use sonic_tests::fake_kube::{Fault, FaultRule};

use common::{NODE, Switch};

#[tokio::test]
async fn n0_ready_node_is_ready() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    assert!(c.node_ready().await.unwrap());
}

#[tokio::test]
async fn n1_not_ready_node_is_not_ready() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube.store().set_node_ready(NODE, false).unwrap();
    assert!(!c.node_ready().await.unwrap());
    sw.kube.store().set_node_ready(NODE, true).unwrap();
    assert!(c.node_ready().await.unwrap());
}

#[tokio::test]
async fn n2_absent_node_is_not_ready() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube.store().delete_node(NODE).unwrap();
    assert!(!c.node_ready().await.unwrap());
}

#[tokio::test]
async fn n3_not_joined_is_not_ready_without_asking_the_master() {
    let sw = Switch::new().await;
    assert!(!sw.cluster().node_ready().await.unwrap());
    assert!(sw.kube.requests().is_empty());
}

#[tokio::test]
async fn n4_slow_master_times_out_as_a_transient_error() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube.inject(FaultRule::path_prefix(
        format!("/api/v1/nodes/{NODE}"),
        Fault::Slow(Duration::from_secs(10)),
    ));
    let started = Instant::now();
    let err = c.node_ready().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "request timeout of 2 s must apply"
    );
    sw.kube.clear_faults();
    assert!(c.node_ready().await.unwrap());
}

#[tokio::test]
async fn server_errors_and_throttling_are_transient() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    for code in [500, 503, 429] {
        sw.kube.inject(FaultRule::all(Fault::Status(code)).times(1));
        let err = c.node_ready().await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient, "{code}: {err}");
    }
    sw.kube
        .inject(FaultRule::path_prefix("/api", Fault::Reset).times(1));
    let err = c.node_ready().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "reset: {err}");
    assert!(c.node_ready().await.unwrap());
}
