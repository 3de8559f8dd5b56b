//! Join (upstream J*) and reset (X*) against the fake API server over HTTPS with client
//! certificates, with a recording command runner pinning the node-side argv sequence.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use sonic_feature_core::model::ServerConfig;
use sonic_feature_core::ports::{ErrorKind, NodeCluster};
use sonic_kube_adapter::{JoinLock, JoinOutcome, KubeError, KubeNodeCluster, Step};
use sonic_tests::fake_kube::{FakeKube, TestCa};

use common::{NODE, Switch, argv};

fn join_argvs(sw: &Switch) -> Vec<Vec<String>> {
    let conf = sw.kubeconfig().to_string_lossy().into_owned();
    vec![
        argv(&["kubeadm", "reset", "-f"]),
        argv(&["systemctl", "stop", "kubelet"]),
        argv(&["modprobe", "br_netfilter"]),
        argv(&["systemctl", "start", "kubelet"]),
        argv(&[
            "kubeadm",
            "join",
            "--discovery-file",
            &conf,
            "--node-name",
            NODE,
        ]),
    ]
}

fn reset_argvs() -> Vec<Vec<String>> {
    vec![
        argv(&["kubeadm", "reset", "-f"]),
        argv(&["systemctl", "stop", "kubelet"]),
    ]
}

fn server(sw: &Switch, insecure: bool) -> ServerConfig {
    ServerConfig {
        ip: Some(sw.host()),
        port: sw.port(),
        insecure,
        disable: false,
    }
}

/// A clean, not-joined node: no kubeconfig, no CNI directory.
fn assert_clean(sw: &Switch) {
    assert!(!sw.kubeconfig().exists(), "kubeconfig must be removed");
    assert!(!sw.paths().cni_dir.exists(), "cni dir must be removed");
}

async fn check_successful_join(sw: &Switch, insecure: bool) {
    sw.kube.store().add_node(NODE, &[("stale", "1")], true);
    sw.cluster()
        .join(&server(sw, insecure), false)
        .await
        .unwrap();

    assert_eq!(sw.runner.argvs(), join_argvs(sw));
    let join = sw.runner.specs().pop().unwrap();
    assert_eq!(join.timeout, Duration::from_secs(360));

    // Kubeconfig: 0600, upstream names, the cluster CA embedded, this master's URL.
    let text = std::fs::read_to_string(sw.kubeconfig()).unwrap();
    let mode = std::fs::metadata(sw.kubeconfig())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    assert_eq!(kc.current_context.as_deref(), Some("user@kubernetes"));
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some(sw.kube.url().as_str()));
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster.certificate_authority_data.as_ref().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(ca).unwrap(), sw.kube.ca_pem().unwrap());

    // CNI dir holds the flannel conflist.
    let conflist = sw.paths().cni_dir.join("kube_cni.10-flannel.conflist");
    assert_eq!(
        std::fs::read(conflist).unwrap(),
        std::fs::read(&sw.paths().flannel_conflist).unwrap()
    );

    // The CA came from the config map with the client certificate; the stale node was drained
    // and deleted through the API.
    let reqs = sw.kube.api_requests();
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(
        reqs[0].path,
        "/api/v1/namespaces/default/configmaps/kube-root-ca.crt"
    );
    let calls: Vec<_> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        calls.contains(&format!("PATCH /api/v1/nodes/{NODE}")),
        "{calls:?}"
    );
    assert!(calls.contains(&"GET /api/v1/pods".to_string()), "{calls:?}");
    assert!(
        calls.contains(&format!("DELETE /api/v1/nodes/{NODE}")),
        "{calls:?}"
    );
    assert!(sw.kube.store().node(NODE).is_none());
}

#[tokio::test]
async fn j1_secure_join_verifies_the_master_and_runs_the_node_steps_in_order() {
    let sw = Switch::new().await;
    check_successful_join(&sw, false).await;
}

#[tokio::test]
async fn j0_insecure_join_skips_master_verification() {
    let mut sw = Switch::new().await;
    // No bundle: the master's CA is unknown, which only insecure mode tolerates.
    sw.settings.paths.ca_bundle = None;
    check_successful_join(&sw, true).await;
}

#[tokio::test]
async fn secure_join_with_a_wrong_ca_fails_permanently_and_leaves_a_clean_node() {
    let mut sw = Switch::new().await;
    let other = sw.dir.path().join("other-ca.pem");
    std::fs::write(&other, TestCa::generate("other").unwrap().cert_pem()).unwrap();
    sw.settings.paths.ca_bundle = Some(other);
    let err = sw
        .cluster()
        .join_master(&sw.host(), sw.port(), false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KubeError::Join {
                step: Step::FetchClusterCa,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert!(err.to_string().contains("fetch the cluster ca"), "{err}");
    assert_clean(&sw);
    assert_eq!(sw.runner.argvs(), reset_argvs());
    assert!(
        sw.kube.api_requests().is_empty(),
        "the TLS handshake must fail before any request"
    );
}

#[tokio::test]
async fn join_with_a_client_certificate_of_another_ca_is_rejected_by_the_master() {
    let sw = Switch::new().await;
    let foreign = FakeKube::foreign_client_identity(NODE).unwrap();
    std::fs::write(&sw.paths().client_cert, &foreign.cert_pem).unwrap();
    std::fs::write(&sw.paths().client_key, &foreign.key_pem).unwrap();
    let err = sw
        .cluster()
        .join_master(&sw.host(), sw.port(), false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KubeError::Join {
                step: Step::FetchClusterCa,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert!(sw.kube.api_requests().is_empty());
    assert_clean(&sw);
}

#[tokio::test]
async fn join_with_an_unreadable_client_key_names_the_file() {
    let sw = Switch::new().await;
    std::fs::write(&sw.paths().client_key, "not a key").unwrap();
    let err = sw
        .cluster()
        .join_master(&sw.host(), sw.port(), false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KubeError::Join {
                step: Step::ReadCredentials,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("restapiserver.key"), "{err}");
}

#[tokio::test]
async fn join_with_the_master_down_is_transient_and_leaves_a_clean_node() {
    let sw = Switch::new().await;
    sw.kube.set_down(true).await.unwrap();
    let err = sw
        .cluster()
        .join(&server(&sw, false), false)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(err.context.contains("fetch the cluster ca"), "{err}");
    assert_clean(&sw);
    assert_eq!(sw.runner.argvs(), reset_argvs());
}

#[tokio::test]
async fn join_with_malformed_root_ca_config_maps_fails_permanently() {
    let sw = Switch::new().await;
    let c = sw.cluster();
    type Setup<'a> = Box<dyn Fn() + 'a>;
    let cases: [(&str, Setup); 3] = [
        (
            "data has no \"ca.crt\"",
            Box::new(|| {
                sw.kube
                    .store()
                    .set_configmap("default", "kube-root-ca.crt", &[("other", "x")])
            }),
        ),
        (
            "is not a PEM certificate",
            Box::new(|| sw.kube.store().set_root_ca("garbage")),
        ),
        (
            "not found",
            Box::new(|| {
                sw.kube
                    .store()
                    .delete_configmap("default", "kube-root-ca.crt")
                    .unwrap()
            }),
        ),
    ];
    for (want, make) in cases {
        make();
        let err = c
            .join_master(&sw.host(), sw.port(), false, false)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                KubeError::Join {
                    step: Step::FetchClusterCa,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
        assert!(err.to_string().contains(want), "{want}: {err}");
        assert_clean(&sw);
    }
}

#[tokio::test]
async fn failed_kubeadm_join_resets_the_node_and_names_the_step() {
    let sw = Switch::new().await;
    sw.runner.hang(&["kubeadm", "join"]);
    let err = sw
        .cluster()
        .join_master(&sw.host(), sw.port(), false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KubeError::Join {
                step: Step::KubeadmJoin,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    let mut want = join_argvs(&sw);
    want.extend(reset_argvs());
    assert_eq!(sw.runner.argvs(), want);
    assert_clean(&sw);
}

#[tokio::test]
async fn failed_kubelet_start_stops_before_kubeadm_join() {
    let sw = Switch::new().await;
    sw.runner.fail(&["systemctl", "start", "kubelet"], 1);
    let err = sw
        .cluster()
        .join_master(&sw.host(), sw.port(), false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KubeError::Join {
                step: Step::StartKubelet,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        !sw.runner
            .argvs()
            .iter()
            .any(|a| a.starts_with(&argv(&["kubeadm", "join"])))
    );
    assert_clean(&sw);
}

#[tokio::test]
async fn j2_already_connected_only_starts_kubelet() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube.clear_requests();
    let outcome = c
        .join_master(&sw.host(), sw.port(), false, false)
        .await
        .unwrap();
    assert_eq!(outcome, JoinOutcome::AlreadyConnected);
    assert_eq!(
        sw.runner.argvs(),
        vec![argv(&["systemctl", "start", "kubelet"])]
    );
    let calls: Vec<_> = sw
        .kube
        .api_requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(calls, vec![format!("GET /api/v1/nodes/{NODE}")]);
}

#[tokio::test]
async fn join_rejoins_when_the_node_is_not_ready_or_forced() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube.store().set_node_ready(NODE, false).unwrap();
    assert_eq!(
        c.join_master(&sw.host(), sw.port(), false, false)
            .await
            .unwrap(),
        JoinOutcome::Joined
    );
    sw.kube.store().add_node(NODE, &[], true);
    assert_eq!(
        c.join_master(&sw.host(), sw.port(), false, true)
            .await
            .unwrap(),
        JoinOutcome::Joined
    );
}

#[tokio::test]
async fn join_returns_once_kubelet_registered_the_node_so_labels_can_be_set_at_once() {
    let sw = Switch::new().await;
    let mut settings = sw.settings.clone();
    settings.node_register_timeout = Duration::from_secs(20);
    let c = KubeNodeCluster::new(settings, sw.runner.clone());
    let store = sw.kube.store().clone();
    // kubelet registers the node a moment after `kubeadm join` returned.
    let kubelet = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        store.add_node(NODE, &[], true);
    });
    assert_eq!(
        c.join_master(&sw.host(), sw.port(), false, true)
            .await
            .unwrap(),
        JoinOutcome::Joined
    );
    assert!(
        c.get_node().await.unwrap().is_some(),
        "the join returned before the node was registered"
    );
    kubelet.await.unwrap();
}

#[tokio::test]
async fn join_succeeds_although_the_node_never_registers_in_time() {
    let sw = Switch::new().await;
    let c = sw.cluster();
    assert_eq!(
        c.join_master(&sw.host(), sw.port(), false, true)
            .await
            .unwrap(),
        JoinOutcome::Joined
    );
    assert!(c.get_node().await.unwrap().is_none());
}

#[tokio::test]
async fn j3_join_while_another_holds_the_lock_is_busy() {
    let sw = Switch::new().await;
    let _held = JoinLock::acquire(&sw.paths().lock_file).unwrap();
    let err = sw
        .cluster()
        .join_master(&sw.host(), sw.port(), false, false)
        .await
        .unwrap_err();
    assert!(matches!(err, KubeError::LockBusy { .. }), "{err}");
    assert!(err.is_transient());
    assert!(sw.runner.argvs().is_empty());
    assert!(sw.kube.api_requests().is_empty());
}

#[tokio::test]
async fn join_without_a_master_address_is_permanent() {
    let sw = Switch::new().await;
    let err = sw
        .cluster()
        .join(&ServerConfig::default(), false)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
}

#[tokio::test]
async fn x0_reset_when_connected_drains_deletes_and_cleans_up() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    sw.kube.clear_requests();
    c.reset(false).await.unwrap();
    assert_eq!(sw.runner.argvs(), reset_argvs());
    let calls: Vec<_> = sw
        .kube
        .api_requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        vec![
            format!("GET /api/v1/nodes/{NODE}"),
            format!("PATCH /api/v1/nodes/{NODE}"),
            "GET /api/v1/pods".to_string(),
            format!("DELETE /api/v1/nodes/{NODE}"),
        ]
    );
    assert!(sw.kube.store().node(NODE).is_none());
    assert_clean(&sw);
}

#[tokio::test]
async fn x1_forced_reset_without_kubeconfig_only_cleans_the_node_side() {
    let sw = Switch::new().await;
    std::fs::create_dir_all(&sw.paths().cni_dir).unwrap();
    sw.cluster().reset(true).await.unwrap();
    assert_eq!(sw.runner.argvs(), reset_argvs());
    assert!(sw.kube.api_requests().is_empty());
    assert_clean(&sw);
}

#[tokio::test]
async fn x2_reset_when_not_connected_only_stops_kubelet() {
    let sw = Switch::new().await;
    let err = sw.cluster().reset_master(false).await.unwrap_err();
    assert!(matches!(err, KubeError::NotConnected), "{err}");
    assert_eq!(
        sw.runner.argvs(),
        vec![argv(&["systemctl", "stop", "kubelet"])]
    );
}

#[tokio::test]
async fn drain_deletes_workload_pods_but_keeps_daemonset_pods() {
    let sw = Switch::new().await;
    let c = sw.joined().await;
    let pod = |name: &str, owner: Option<&str>| -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "sonic",
                "ownerReferences": owner.map(|k| vec![serde_json::json!({"apiVersion": "apps/v1", "kind": k, "name": "x", "uid": "u"})])},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "i"}]}
        }))
        .unwrap()
    };
    sw.kube.store().create_pod(&pod("workload", None)).unwrap();
    sw.kube
        .store()
        .create_pod(&pod("telemetry-abcde", Some("DaemonSet")))
        .unwrap();
    c.reset(false).await.unwrap();
    let left: Vec<_> = sw
        .kube
        .store()
        .pods(None)
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(left, vec!["telemetry-abcde".to_string()]);
}
