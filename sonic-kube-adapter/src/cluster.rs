//! [`KubeNodeCluster`]: this switch as a Kubernetes node — join and reset of the master, node
//! readiness and labels — implementing the core's `NodeCluster` port.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use sonic_feature_core::model::{LabelKey, NodeLabels, ServerConfig};
use sonic_feature_core::ports::{NodeCluster, PortError};

use crate::client::{
    CaFetch, check_private_key, client_from_kubeconfig, fetch_root_ca, pem_certificates,
};
use crate::command::{CommandRunner, CommandSpec};
use crate::config::KubeSettings;
use crate::error::{KubeError, Step};
use crate::kubeconfig::{
    kubeconfig_server, render_kubeconfig, server_url, write_private_atomically,
};
use crate::labels::{is_ready, label_patch, node_labels, raw_labels};

/// How a join ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The node went through the whole join procedure.
    Joined,
    /// Already joined to this master and Ready; only kubelet was (re)started.
    AlreadyConnected,
}

/// The exclusive lock held while a join or reset runs (released on drop).
#[derive(Debug)]
pub struct JoinLock {
    _file: File,
}

impl JoinLock {
    /// Takes the lock without waiting; [`KubeError::LockBusy`] when someone else holds it.
    pub fn acquire(path: &Path) -> Result<Self, KubeError> {
        let lock_err = |source| KubeError::Lock {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(lock_err)?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(KubeError::LockBusy {
                path: path.to_path_buf(),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(lock_err(source)),
        }
    }
}

/// This switch as a Kubernetes node, through kube-rs and a [`CommandRunner`].
pub struct KubeNodeCluster {
    settings: KubeSettings,
    runner: Arc<dyn CommandRunner>,
    fixed_client: Option<Client>,
    /// Client for the kubeconfig text it was built from; rebuilt when the file changes.
    cached: Mutex<Option<(String, Client)>>,
}

impl std::fmt::Debug for KubeNodeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeNodeCluster")
            .field("settings", &self.settings)
            .field("runner", &self.runner)
            .field("fixed_client", &self.fixed_client.is_some())
            .finish_non_exhaustive()
    }
}

impl KubeNodeCluster {
    pub fn new(settings: KubeSettings, runner: Arc<dyn CommandRunner>) -> Self {
        Self {
            settings,
            runner,
            fixed_client: None,
            cached: Mutex::new(None),
        }
    }

    /// Uses `client` for node reads and label patches instead of one built from the kubeconfig
    /// (tests with a tower-test mock service).
    pub fn with_client(mut self, client: Client) -> Self {
        self.fixed_client = Some(client);
        self
    }

    pub fn settings(&self) -> &KubeSettings {
        &self.settings
    }

    /// The API client of the joined cluster; `None` when there is no kubeconfig (not joined).
    pub async fn client(&self) -> Result<Option<Client>, KubeError> {
        if let Some(c) = &self.fixed_client {
            return Ok(Some(c.clone()));
        }
        let path = &self.settings.paths.kubeconfig;
        let text = match tokio::fs::read_to_string(path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KubeError::ReadFile {
                    what: "kubeconfig",
                    path: path.clone(),
                    source,
                });
            }
        };
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, c)) = cached.as_ref()
            && *t == text
        {
            return Ok(Some(c.clone()));
        }
        let client = client_from_kubeconfig(path, &text, self.settings.request_timeout)?;
        *cached = Some((text, client.clone()));
        Ok(Some(client))
    }

    async fn require_client(&self) -> Result<Client, KubeError> {
        self.client().await?.ok_or_else(|| KubeError::Kubeconfig {
            path: self.settings.paths.kubeconfig.clone(),
            reason: "not found: the node has not joined a master".into(),
        })
    }

    async fn call<T>(
        &self,
        action: impl Into<String>,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeError> {
        let after = self.settings.request_timeout;
        match tokio::time::timeout(after, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(KubeError::Api {
                action: action.into(),
                source,
            }),
            Err(_) => Err(KubeError::Timeout {
                action: action.into(),
                after,
            }),
        }
    }

    fn node_name(&self) -> &str {
        &self.settings.node_name
    }

    /// The node object; `None` when the cluster has no node of this name.
    pub async fn get_node(&self) -> Result<Option<DynamicObject>, KubeError> {
        let nodes = node_api(self.require_client().await?);
        let name = self.node_name();
        self.call(format!("get node {name}"), nodes.get_opt(name))
            .await
    }

    /// Whether the node exists and reports Ready=True. Not joined (no kubeconfig) and no such
    /// node are `false`; no answer within the request timeout is a transient error.
    pub async fn node_is_ready(&self) -> Result<bool, KubeError> {
        if self.client().await?.is_none() {
            return Ok(false);
        }
        Ok(self.get_node().await?.as_ref().is_some_and(is_ready))
    }

    /// The labels the node carries, as plain strings.
    pub async fn read_labels(&self) -> Result<BTreeMap<String, String>, KubeError> {
        let nodes = node_api(self.require_client().await?);
        let name = self.node_name();
        let node = self
            .call(format!("get node {name}"), nodes.get(name))
            .await?;
        Ok(raw_labels(&node))
    }

    /// Brings the node's labels to `set` minus `remove` with at most one merge patch; returns
    /// the patch sent (`None`: already in sync, nothing sent).
    pub async fn sync_labels(
        &self,
        set: &NodeLabels,
        remove: &[LabelKey],
    ) -> Result<Option<Value>, KubeError> {
        let current = self.read_labels().await?;
        let Some(patch) = label_patch(&current, set, remove) else {
            return Ok(None);
        };
        let nodes = node_api(self.require_client().await?);
        let name = self.node_name();
        self.call(
            format!("patch labels of node {name}"),
            nodes.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await?;
        Ok(Some(patch))
    }

    /// Upstream's "already connected": kubelet configuration and kubeconfig exist, the
    /// kubeconfig points at `server` (when given) and the node is Ready.
    pub async fn is_connected(&self, server: Option<&str>) -> bool {
        let paths = &self.settings.paths;
        if !paths.kubelet_config.exists() {
            return false;
        }
        let Ok(text) = tokio::fs::read_to_string(&paths.kubeconfig).await else {
            return false;
        };
        if let Some(want) = server
            && kubeconfig_server(&text).as_deref() != Some(want)
        {
            return false;
        }
        self.node_is_ready().await.unwrap_or(false)
    }

    async fn run(&self, step: Step, argv: &[&str], timeout: Duration) -> Result<(), KubeError> {
        self.runner
            .run_checked(&CommandSpec::new(argv.iter().copied(), timeout))
            .await
            .map(drop)
            .map_err(|source| KubeError::Command { step, source })
    }

    /// Runs a step whose failure upstream ignores too; logs it.
    async fn run_lenient(&self, step: Step, argv: &[&str]) {
        if let Err(e) = self.run(step, argv, self.settings.command_timeout).await {
            tracing::warn!("ignored failure: {e}");
        }
    }

    /// Cordons the node, deletes its pods (except daemon-set and mirror pods) and deletes the
    /// node object, through the API. Failures are logged: the master may be unreachable.
    async fn drain_and_delete_node(&self) {
        let client = match self.client().await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("{}: {e}", Step::DrainOldNode);
                return;
            }
        };
        if let Err(e) = self.drain_with(&client).await {
            tracing::warn!("{}: {e}", Step::DrainOldNode);
        }
    }

    async fn drain_with(&self, client: &Client) -> Result<(), KubeError> {
        let name = self.node_name();
        let nodes = node_api(client.clone());
        let cordon = json!({"spec": {"unschedulable": true}});
        match self
            .call(
                format!("cordon node {name}"),
                nodes.patch(name, &PatchParams::default(), &Patch::Merge(&cordon)),
            )
            .await
        {
            Err(e) if e.status_code() == Some(404) => return Ok(()),
            other => other.map(drop)?,
        }
        // Pods are handled as dynamic objects: the drain only needs their metadata, and the
        // typed `Pod` would link its whole (large, all resident) deserializer into ctrmgrd.
        let pod_resource = ApiResource::erase::<Pod>(&());
        let pods: Api<DynamicObject> = Api::all_with(client.clone(), &pod_resource);
        let on_node = ListParams::default().fields(&format!("spec.nodeName={name}"));
        let list = self
            .call(format!("list pods of node {name}"), pods.list(&on_node))
            .await?;
        for pod in list.items {
            let owned_by_daemonset = pod
                .metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|r| r.kind == "DaemonSet"));
            let mirror = pod
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
            if owned_by_daemonset || mirror {
                continue;
            }
            let (Some(ns), Some(pod_name)) = (pod.metadata.namespace, pod.metadata.name) else {
                continue;
            };
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &pod_resource);
            match self
                .call(
                    format!("delete pod {ns}/{pod_name}"),
                    api.delete(&pod_name, &DeleteParams::default()),
                )
                .await
            {
                Err(e) if e.status_code() == Some(404) => {}
                other => other.map(drop)?,
            }
        }
        match self
            .call(
                format!("delete node {name}"),
                nodes.delete(name, &DeleteParams::default()),
            )
            .await
        {
            Err(e) if e.status_code() == Some(404) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Upstream `_do_reset`: drain and delete the node (when a kubeconfig exists), `kubeadm
    /// reset -f`, remove the CNI directory, optionally remove the kubeconfig, stop kubelet.
    /// Every step runs; the first failure is returned.
    async fn node_reset(&self, remove_kubeconfig: bool) -> Result<(), KubeError> {
        let paths = &self.settings.paths;
        let t = self.settings.command_timeout;
        let mut first: Option<KubeError> = None;
        let mut note = |r: Result<(), KubeError>| {
            if let Err(e) = r {
                tracing::warn!("reset: {e}");
                first.get_or_insert(e);
            }
        };
        self.drain_and_delete_node().await;
        note(
            self.run(Step::KubeadmReset, &["kubeadm", "reset", "-f"], t)
                .await,
        );
        note(remove_dir(&paths.cni_dir, "cni directory"));
        if remove_kubeconfig {
            note(remove_file(&paths.kubeconfig, "kubeconfig"));
            *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        note(
            self.run(Step::StopKubelet, &["systemctl", "stop", "kubelet"], t)
                .await,
        );
        first.map_or(Ok(()), Err)
    }

    /// Joins the master at `host:port` (upstream `kube_join_master`, with its bugs fixed).
    pub async fn join_master(
        &self,
        host: &str,
        port: u16,
        insecure: bool,
        force: bool,
    ) -> Result<JoinOutcome, KubeError> {
        let server = server_url(host, port)?;
        let _lock = JoinLock::acquire(&self.settings.paths.lock_file)?;
        if !force && self.is_connected(Some(&server)).await {
            self.run(
                Step::StartKubelet,
                &["systemctl", "start", "kubelet"],
                self.settings.command_timeout,
            )
            .await?;
            return Ok(JoinOutcome::AlreadyConnected);
        }
        match self.join_steps(&server, insecure).await {
            Ok(()) => {
                self.wait_node_registered().await;
                Ok(JoinOutcome::Joined)
            }
            Err((step, source)) => {
                // Leave a clean, not-joined node behind whatever step failed.
                if let Err(e) = self.node_reset(true).await {
                    tracing::warn!("cleanup after failed join of {server}: {e}");
                }
                Err(KubeError::Join {
                    server,
                    step,
                    source: Box::new(source),
                })
            }
        }
    }

    /// Waits until kubelet registered the node at the master, for at most
    /// `node_register_timeout`: `kubeadm join` returns after kubelet's TLS bootstrap, and the
    /// node object comes a moment later. Without this wait the first label update after every
    /// join fails with "node not found" and is reported as a problem. A node that does not show
    /// up in time is left to the label retries, which report it.
    async fn wait_node_registered(&self) {
        let limit = self.settings.node_register_timeout;
        let end = tokio::time::Instant::now() + limit;
        loop {
            match self.get_node().await {
                Ok(Some(_)) => return,
                Ok(None) => {}
                Err(e) => tracing::debug!("waiting for the node to register: {e}"),
            }
            if tokio::time::Instant::now() >= end {
                tracing::warn!(
                    "node {} not registered at the master {limit:?} after kubeadm join",
                    self.node_name()
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn join_steps(&self, server: &str, insecure: bool) -> Result<(), (Step, KubeError)> {
        let s = &self.settings;
        let paths = &s.paths;
        let at = |step: Step| move |e: KubeError| (step, e);

        let cert = read_file(&paths.client_cert, "client certificate")
            .await
            .map_err(at(Step::ReadCredentials))?;
        pem_certificates(&cert, "client certificate", &paths.client_cert)
            .map_err(at(Step::ReadCredentials))?;
        let key = read_file(&paths.client_key, "client key")
            .await
            .map_err(at(Step::ReadCredentials))?;
        check_private_key(&key, &paths.client_key).map_err(at(Step::ReadCredentials))?;

        let ca = fetch_root_ca(&CaFetch {
            server,
            client_cert: &paths.client_cert,
            client_key: &paths.client_key,
            insecure,
            ca_bundle: paths.ca_bundle.as_deref(),
            timeout: s.ca_fetch_timeout,
        })
        .await
        .map_err(at(Step::FetchClusterCa))?;

        let kubeconfig = render_kubeconfig(server, &ca, &cert, &key);
        write_private_atomically(&paths.kubeconfig, kubeconfig.as_bytes())
            .map_err(at(Step::WriteKubeconfig))?;

        // Remove a stale node of the same name from the master, then wipe the node side
        // (upstream `_do_reset(pending_join=True)`, which keeps the new kubeconfig).
        self.drain_and_delete_node().await;
        self.run_lenient(Step::KubeadmReset, &["kubeadm", "reset", "-f"])
            .await;
        remove_dir(&paths.cni_dir, "cni directory").map_err(at(Step::SetupCni))?;
        self.run_lenient(Step::StopKubelet, &["systemctl", "stop", "kubelet"])
            .await;

        self.run_lenient(Step::LoadBrNetfilter, &["modprobe", "br_netfilter"])
            .await;
        setup_cni(&paths.cni_dir, &paths.flannel_conflist).map_err(at(Step::SetupCni))?;
        self.run(
            Step::StartKubelet,
            &["systemctl", "start", "kubelet"],
            s.command_timeout,
        )
        .await
        .map_err(at(Step::StartKubelet))?;
        let conf = paths.kubeconfig.to_string_lossy();
        self.run(
            Step::KubeadmJoin,
            &[
                "kubeadm",
                "join",
                "--discovery-file",
                &conf,
                "--node-name",
                &s.node_name,
            ],
            s.join_timeout,
        )
        .await
        .map_err(at(Step::KubeadmJoin))
    }

    /// Leaves the master (upstream `kube_reset_master`). Without `force`, only when connected;
    /// otherwise kubelet is stopped and [`KubeError::NotConnected`] returned.
    pub async fn reset_master(&self, force: bool) -> Result<(), KubeError> {
        let _lock = JoinLock::acquire(&self.settings.paths.lock_file)?;
        if !force && !self.is_connected(None).await {
            self.run(
                Step::StopKubelet,
                &["systemctl", "stop", "kubelet"],
                self.settings.command_timeout,
            )
            .await?;
            return Err(KubeError::NotConnected);
        }
        self.node_reset(true).await
    }
}

/// Nodes as dynamic objects: the adapter reads only their labels and Ready condition, and the
/// typed `Node` would link its whole (large, all resident) deserializer into ctrmgrd.
fn node_api(client: Client) -> Api<DynamicObject> {
    Api::all_with(client, &ApiResource::erase::<Node>(&()))
}

async fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, KubeError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| KubeError::ReadFile {
            what,
            path: path.to_path_buf(),
            source,
        })
}

fn remove_dir(path: &Path, what: &'static str) -> Result<(), KubeError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(KubeError::WriteFile {
            what,
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path, what: &'static str) -> Result<(), KubeError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(KubeError::WriteFile {
            what,
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Recreates the CNI directory holding only the flannel conflist.
fn setup_cni(cni_dir: &Path, flannel: &Path) -> Result<(), KubeError> {
    let content = std::fs::read(flannel).map_err(|source| KubeError::ReadFile {
        what: "flannel conflist",
        path: flannel.to_path_buf(),
        source,
    })?;
    std::fs::create_dir_all(cni_dir).map_err(|source| KubeError::WriteFile {
        what: "cni directory",
        path: cni_dir.to_path_buf(),
        source,
    })?;
    let target = cni_dir.join(
        flannel
            .file_name()
            .unwrap_or(std::ffi::OsStr::new("10-flannel.conflist")),
    );
    std::fs::write(&target, content).map_err(|source| KubeError::WriteFile {
        what: "cni configuration",
        path: target,
        source,
    })
}

#[async_trait]
impl NodeCluster for KubeNodeCluster {
    async fn join(&self, server: &ServerConfig, force: bool) -> Result<(), PortError> {
        let host = server
            .ip
            .as_deref()
            .ok_or_else(|| PortError::permanent("kubernetes master has no address configured"))?;
        self.join_master(host, server.port, server.insecure, force)
            .await
            .map(drop)
            .map_err(PortError::from)
    }

    async fn reset(&self, force: bool) -> Result<(), PortError> {
        self.reset_master(force).await.map_err(PortError::from)
    }

    async fn node_ready(&self) -> Result<bool, PortError> {
        self.node_is_ready().await.map_err(PortError::from)
    }

    async fn node_labels(&self) -> Result<NodeLabels, PortError> {
        let raw = self.read_labels().await?;
        Ok(node_labels(self.node_name(), &raw)?)
    }

    async fn patch_labels(&self, set: &NodeLabels, remove: &[LabelKey]) -> Result<(), PortError> {
        self.sync_labels(set, remove)
            .await
            .map(drop)
            .map_err(PortError::from)
    }

    async fn route_http_proxy(&self, master: Option<String>) -> Result<(), PortError> {
        crate::proxy::route_http_proxy(&self.settings, self.runner.as_ref(), master.as_deref())
            .await
            .map(drop)
            .map_err(PortError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/lock/kube_join.lock");
        let held = JoinLock::acquire(&path).unwrap();
        assert!(matches!(
            JoinLock::acquire(&path),
            Err(KubeError::LockBusy { .. })
        ));
        drop(held);
        JoinLock::acquire(&path).unwrap();
    }

    #[test]
    fn cni_directory_is_recreated_with_only_the_flannel_conflist() {
        let dir = tempfile::tempdir().unwrap();
        let cni = dir.path().join("etc/cni/net.d");
        std::fs::create_dir_all(&cni).unwrap();
        std::fs::write(cni.join("stale.conf"), "x").unwrap();
        let flannel = dir.path().join("kube_cni.10-flannel.conflist");
        std::fs::write(&flannel, "{}").unwrap();
        remove_dir(&cni, "cni directory").unwrap();
        setup_cni(&cni, &flannel).unwrap();
        let names: Vec<_> = std::fs::read_dir(&cni)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["kube_cni.10-flannel.conflist".to_string()]);
        let missing = setup_cni(&cni, &dir.path().join("nope"));
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("flannel conflist")
        );
    }
}
