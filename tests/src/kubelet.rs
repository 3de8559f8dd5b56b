//! An emulated kubelet for one node: runs the pods of the fake API server's DaemonSets on a real
//! dockerd, the way a kubelet with a Docker runtime does, and reports pod status back.
//!
//! It plays two roles of a real cluster at once, for one node:
//!
//! - the DaemonSet controller: for every DaemonSet whose pod template's `nodeSelector` matches
//!   the node's labels it keeps exactly one pod (`<ds>-<5 random chars>`, owned by the DaemonSet,
//!   `spec.nodeName` set, label `controller-revision-hash` of the template); a pod whose
//!   DaemonSet is gone, no longer selects the node or has another template is deleted;
//! - the kubelet: every pod of the node gets its containers on the real engine, named like
//!   dockershim did (`k8s_<container>_<pod>_<namespace>_<pod-uid>_<restart-count>`), with the
//!   template's image, environment, hostPath volumes as binds, host network and privileged
//!   flags; a container that exits is replaced with restart count + 1 after a short back-off;
//!   containers of deleted pods are stopped and removed. Pod status (phase, container statuses
//!   with `docker://<id>`, ready, restart count) is written back to the store.
//!
//! The loop is level-triggered: one reconcile pass over (daemon sets, node labels, pods, actual
//! containers) on every store event and every [`KubeletOptions::resync`]. Containers carry a
//! label with the kubelet's instance id, so kubelets of parallel tests sharing one engine never
//! touch each other's containers.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use sonic_tests::fake_kube::FakeKube;
//! use sonic_tests::kubelet::Kubelet;
//! let kube = FakeKube::start_https().await?;
//! kube.store().add_node("sonic", &[("snmp_enabled", "true")], true);
//! let kubelet = Kubelet::start(kube.store().clone(), "sonic", &sonic_tests::docker::docker_host()?).await?;
//! // create DaemonSets in kube.store(); pods appear with status, containers run on dockerd
//! kubelet.shutdown(true).await;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sonic_docker_adapter::{Bind, ContainerSummary, CreateSpec, DockerClient, DockerError};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use crate::fake_kube::Store;

/// Docker label: pod name (as dockershim).
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Docker label: pod namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Docker label: pod uid.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// Docker label: container name in the pod spec.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Docker label: restart count of this container instance.
pub const LABEL_RESTART_COUNT: &str = "annotation.io.kubernetes.container.restartCount";
/// Docker label: the id of the emulated kubelet that owns the container.
pub const LABEL_KUBELET: &str = "org.sonic-tests.kubelet";
/// Docker label: the node the container runs for.
pub const LABEL_NODE: &str = "org.sonic-tests.kubelet.node";
/// Pod label: hash of the DaemonSet's pod template the pod was made from.
pub const LABEL_TEMPLATE_HASH: &str = "controller-revision-hash";

/// How the emulated kubelet behaves.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// Period of the reconcile pass besides store events.
    pub resync: Duration,
    /// Time a dead container stays dead before it is replaced (no exponential growth: tests want
    /// quick restarts).
    pub restart_backoff: Duration,
    /// Grace period of `docker stop` when a pod goes away.
    pub stop_grace: Duration,
    /// Register the node (Ready, no labels) when it is missing from the store, as a kubelet
    /// does after `kubeadm join`.
    pub register_node: bool,
    /// Instance id put on every container; pick a fixed one to adopt the containers of an
    /// earlier kubelet (the lab restarting), else a random one is used.
    pub instance_id: Option<String>,
    /// Start in the running state (`false`: like a disabled kubelet.service until
    /// [`Kubelet::set_running`]).
    pub running: bool,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        Self {
            resync: Duration::from_millis(250),
            restart_backoff: Duration::from_millis(300),
            stop_grace: Duration::from_secs(5),
            register_node: false,
            instance_id: None,
            running: true,
        }
    }
}

/// One thing the kubelet did, for assertions and the lab's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletEvent {
    /// Milliseconds since the kubelet started.
    pub at_ms: u64,
    /// What happened (`created pod default/snmp-1-1-0-x7k2p`, ...).
    pub what: String,
}

#[derive(Debug)]
struct Shared {
    store: Arc<Store>,
    node: String,
    instance: String,
    docker: DockerClient,
    options: KubeletOptions,
    running: watch::Sender<bool>,
    kick: Notify,
    started: Instant,
    events: Mutex<Vec<KubeletEvent>>,
    /// Last status written per pod uid, to write only changes.
    written: Mutex<HashMap<String, PodStatus>>,
    /// When a dead container was first seen dead, per container id.
    dead_since: Mutex<HashMap<String, Instant>>,
    /// Last error of a pass, reported once per distinct message.
    last_error: Mutex<Option<String>>,
}

/// A running emulated kubelet. Dropping it stops the loop (containers stay, as when kubelet
/// stops); [`Kubelet::shutdown`] can remove them.
#[derive(Debug)]
pub struct Kubelet {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
}

impl Kubelet {
    /// Starts a kubelet for `node` against `store` (the fake API server's store) and the engine at
    /// `docker_host` (`unix:///...`), with default options.
    pub async fn start(store: Arc<Store>, node: &str, docker_host: &str) -> anyhow::Result<Self> {
        Self::start_with(store, node, docker_host, KubeletOptions::default()).await
    }

    /// Starts a kubelet with `options`; fails when the engine does not answer.
    pub async fn start_with(
        store: Arc<Store>,
        node: &str,
        docker_host: &str,
        options: KubeletOptions,
    ) -> anyhow::Result<Self> {
        let docker = DockerClient::new(docker_host)
            .with_context(|| format!("kubelet: docker host {docker_host}"))?;
        docker
            .ping()
            .await
            .with_context(|| format!("kubelet: docker at {docker_host} does not answer"))?;
        let instance = options
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("k{}", random_suffix(10)));
        let (running, _) = watch::channel(options.running);
        let shared = Arc::new(Shared {
            store,
            node: node.to_string(),
            instance,
            docker,
            options,
            running,
            kick: Notify::new(),
            started: Instant::now(),
            events: Mutex::new(Vec::new()),
            written: Mutex::new(HashMap::new()),
            dead_since: Mutex::new(HashMap::new()),
            last_error: Mutex::new(None),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_loop(shared.clone(), stop_rx));
        Ok(Self {
            shared,
            task: Mutex::new(Some(task)),
            stop,
        })
    }

    /// The node this kubelet runs pods for.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// The instance id on this kubelet's containers (label [`LABEL_KUBELET`]).
    pub fn instance_id(&self) -> &str {
        &self.shared.instance
    }

    /// Starts (`true`) or stops (`false`) the kubelet service: while stopped nothing is
    /// reconciled and containers keep running, as with `systemctl stop kubelet`.
    pub fn set_running(&self, running: bool) {
        self.shared.running.send_replace(running);
        self.shared.kick.notify_one();
    }

    /// Whether the kubelet service runs.
    pub fn is_running(&self) -> bool {
        *self.shared.running.borrow()
    }

    /// Asks for a reconcile pass now.
    pub fn kick(&self) {
        self.shared.kick.notify_one();
    }

    /// What the kubelet did so far.
    pub fn events(&self) -> Vec<KubeletEvent> {
        lock(&self.shared.events).clone()
    }

    /// The last error a reconcile pass hit (docker unreachable, ...), if any.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }

    /// Stops the loop; with `remove_containers` also removes every container of this kubelet
    /// (pods stay in the store, as when a node dies).
    pub async fn shutdown(&self, remove_containers: bool) {
        self.stop.send_replace(true);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        if remove_containers && let Ok(list) = own_containers(&self.shared).await {
            for c in list {
                let _ = self.shared.docker.remove_container(&c.id, true).await;
            }
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn run_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut events = shared.store.subscribe();
    let mut running = shared.running.subscribe();
    let mut tick = tokio::time::interval(shared.options.resync);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            return;
        }
        let result = reconcile(&shared).await;
        note_result(&shared, result);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
            _ = shared.kick.notified() => {}
            _ = running.changed() => {}
            e = events.recv() => match e {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Coalesce a burst of events into one pass.
                    while events.try_recv().is_ok() {}
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

fn note_result(shared: &Shared, result: anyhow::Result<()>) {
    let mut last = lock(&shared.last_error);
    match result {
        Ok(()) => *last = None,
        Err(e) => {
            let text = format!("{e:#}");
            if last.as_deref() != Some(text.as_str()) {
                record(shared, format!("reconcile failed: {text}"));
            }
            *last = Some(text);
        }
    }
}

fn record(shared: &Shared, what: String) {
    let at_ms = u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    lock(&shared.events).push(KubeletEvent { at_ms, what });
}

/// The DaemonSets that select the node, by (namespace, name).
struct Wanted {
    ds: DaemonSet,
    hash: String,
}

fn ns_name(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

fn template_hash(ds: &DaemonSet) -> String {
    let template = ds.spec.as_ref().map(|s| &s.template);
    let bytes = serde_json::to_vec(&template).unwrap_or_default();
    // FNV-1a, 40 bits as 10 hex digits: short like Kubernetes' revision hashes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

fn selects(ds: &DaemonSet, labels: &BTreeMap<String, String>) -> bool {
    let selector = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.node_selector.as_ref());
    selector.is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn owner_of(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "DaemonSet")
}

async fn reconcile(shared: &Shared) -> anyhow::Result<()> {
    if !*shared.running.borrow() {
        return Ok(());
    }
    let store = &shared.store;
    let Some(labels) = store.node_labels(&shared.node) else {
        if shared.options.register_node {
            store.add_node(&shared.node, &[], true);
            record(shared, format!("registered node {}", shared.node));
        }
        return Ok(());
    };

    let mut wanted: BTreeMap<(String, String), Wanted> = BTreeMap::new();
    for ds in store.daemonsets(None) {
        if selects(&ds, &labels) {
            let hash = template_hash(&ds);
            wanted.insert(ns_name(&ds.metadata), Wanted { ds, hash });
        }
    }

    let containers = own_containers(shared).await?;

    // Pods of this node that a DaemonSet owns.
    let pods: Vec<Pod> = store
        .pods(None)
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&shared.node))
        .filter(|p| owner_of(p).is_some())
        .collect();

    let mut kept: Vec<Pod> = Vec::new();
    for pod in pods {
        let (ns, _) = ns_name(&pod.metadata);
        let owner = owner_of(&pod).map(|o| (o.name.clone(), o.uid.clone()));
        let hash = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_TEMPLATE_HASH))
            .cloned();
        let keep = owner.is_some_and(|(name, uid)| {
            wanted.get(&(ns.clone(), name)).is_some_and(|w| {
                w.ds.metadata.uid.as_deref() == Some(uid.as_str())
                    && hash.as_deref() == Some(w.hash.as_str())
            })
        });
        // One pod per DaemonSet: a second one (a race with ourselves) goes too.
        let duplicate = kept.iter().any(|k| {
            owner_of(k).map(|o| &o.uid) == owner_of(&pod).map(|o| &o.uid)
                && ns_name(&k.metadata).0 == ns
        });
        if keep && !duplicate {
            kept.push(pod);
        } else {
            remove_pod(shared, &pod, &containers).await?;
        }
    }

    for ((ns, name), w) in &wanted {
        let has_pod = kept
            .iter()
            .any(|p| ns_name(&p.metadata).0 == *ns && owner_of(p).is_some_and(|o| o.name == *name));
        if !has_pod && let Some(pod) = create_pod(shared, &w.ds, &w.hash)? {
            kept.push(pod);
        }
    }

    let mut live_uids = Vec::new();
    for pod in &kept {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        live_uids.push(uid);
        sync_pod(shared, pod, &containers).await?;
    }

    // Containers whose pod is gone (deleted by someone else).
    for c in &containers {
        let uid = c.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
        if !live_uids.contains(&uid) {
            stop_and_remove(shared, c).await?;
        }
    }
    lock(&shared.written).retain(|uid, _| live_uids.contains(uid));
    Ok(())
}

async fn own_containers(shared: &Shared) -> anyhow::Result<Vec<ContainerSummary>> {
    let list = shared
        .docker
        .list_containers(true)
        .await
        .context("kubelet: cannot list containers")?;
    Ok(list
        .into_iter()
        .filter(|c| c.labels.get(LABEL_KUBELET) == Some(&shared.instance))
        .collect())
}

fn create_pod(shared: &Shared, ds: &DaemonSet, hash: &str) -> anyhow::Result<Option<Pod>> {
    let (ns, ds_name) = ns_name(&ds.metadata);
    let Some(spec) = ds.spec.as_ref() else {
        return Ok(None);
    };
    let template = &spec.template;
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(LABEL_TEMPLATE_HASH.into(), hash.into());
    let mut pod_spec: PodSpec = template.spec.clone().unwrap_or_default();
    pod_spec.node_name = Some(shared.node.clone());
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(format!("{ds_name}-{}", random_suffix(5))),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "DaemonSet".into(),
                name: ds_name.clone(),
                uid: ds.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        }),
    };
    let created = shared
        .store
        .create_pod(&pod)
        .with_context(|| format!("kubelet: cannot create a pod for daemon set {ns}/{ds_name}"))?;
    record(
        shared,
        format!(
            "created pod {ns}/{} for daemon set {ds_name}",
            created.metadata.name.as_deref().unwrap_or("")
        ),
    );
    Ok(Some(created))
}

async fn remove_pod(
    shared: &Shared,
    pod: &Pod,
    containers: &[ContainerSummary],
) -> anyhow::Result<()> {
    let (ns, name) = ns_name(&pod.metadata);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    for c in containers
        .iter()
        .filter(|c| c.labels.get(LABEL_POD_UID) == Some(&uid))
    {
        stop_and_remove(shared, c).await?;
    }
    match shared.store.delete_pod(&ns, &name) {
        Ok(()) => record(shared, format!("deleted pod {ns}/{name}")),
        // Someone else deleted it meanwhile: the same outcome.
        Err(e) if e.code == 404 => {}
        Err(e) => {
            return Err(anyhow::anyhow!(
                "kubelet: cannot delete pod {ns}/{name}: {e}"
            ));
        }
    }
    lock(&shared.written).remove(&uid);
    Ok(())
}

async fn stop_and_remove(shared: &Shared, c: &ContainerSummary) -> anyhow::Result<()> {
    let name = c.names.first().cloned().unwrap_or_else(|| c.id.clone());
    if c.state == "running" {
        match shared
            .docker
            .stop_container(&c.id, Some(shared.options.stop_grace))
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("kubelet: cannot stop {name}")),
        }
    }
    match shared.docker.remove_container(&c.id, true).await {
        Ok(()) => {
            record(shared, format!("removed container {name}"));
            Ok(())
        }
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("kubelet: cannot remove {name}")),
    }
}

fn restart_count_of(c: &ContainerSummary) -> i32 {
    c.labels
        .get(LABEL_RESTART_COUNT)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn sync_pod(shared: &Shared, pod: &Pod, all: &[ContainerSummary]) -> anyhow::Result<()> {
    let (ns, name) = ns_name(&pod.metadata);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    let mut statuses = Vec::new();
    let mut phase_failed = false;
    for cspec in &spec.containers {
        let mut mine: Vec<&ContainerSummary> = all
            .iter()
            .filter(|c| {
                c.labels.get(LABEL_POD_UID) == Some(&uid)
                    && c.labels.get(LABEL_CONTAINER_NAME) == Some(&cspec.name)
            })
            .collect();
        mine.sort_by_key(|c| restart_count_of(c));
        let status = sync_container(shared, pod, spec, cspec, &mine).await?;
        if status
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .is_some_and(|w| w.reason.as_deref() == Some("CreateContainerError"))
        {
            phase_failed = true;
        }
        statuses.push(status);
    }
    let all_running = statuses
        .iter()
        .all(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()));
    let ever_started = statuses
        .iter()
        .any(|s| s.container_id.is_some() || s.restart_count > 0);
    let phase = if phase_failed {
        "Failed"
    } else if ever_started {
        "Running"
    } else {
        "Pending"
    };
    let ready = all_running && !statuses.is_empty();
    let status = PodStatus {
        phase: Some(phase.into()),
        host_ip: Some("127.0.0.1".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..PodCondition::default()
        }]),
        container_statuses: Some(statuses),
        ..PodStatus::default()
    };
    let changed = lock(&shared.written).get(&uid) != Some(&status);
    if changed {
        match shared.store.set_pod_status(&ns, &name, &status) {
            Ok(_) => {
                lock(&shared.written).insert(uid, status);
            }
            // Deleted meanwhile: the next pass removes its containers.
            Err(e) if e.code == 404 => {}
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "kubelet: cannot write the status of pod {ns}/{name}: {e}"
                ));
            }
        }
    }
    Ok(())
}

fn container_state_running() -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning { started_at: None }),
        ..ContainerState::default()
    }
}

fn waiting(reason: &str, message: String) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: Some(message),
        }),
        ..ContainerState::default()
    }
}

fn terminated(exit_code: i32, id: &str) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            container_id: Some(format!("docker://{id}")),
            reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.into()),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

async fn sync_container(
    shared: &Shared,
    pod: &Pod,
    spec: &PodSpec,
    cspec: &Container,
    mine: &[&ContainerSummary],
) -> anyhow::Result<ContainerStatus> {
    let image = cspec.image.clone().unwrap_or_default();
    let base = ContainerStatus {
        name: cspec.name.clone(),
        image: image.clone(),
        ..ContainerStatus::default()
    };
    let latest = mine.last().copied();
    let Some(latest) = latest else {
        return start_new(shared, pod, spec, cspec, 0, base, None).await;
    };
    let restart_count = restart_count_of(latest);
    let details = shared
        .docker
        .inspect_container(&latest.id)
        .await
        .with_context(|| format!("kubelet: cannot inspect container {}", latest.id))?;
    let Some(details) = details else {
        // Removed under our feet: the next pass sees it missing and starts a new one.
        return Ok(ContainerStatus {
            restart_count,
            state: Some(waiting("ContainerCreating", String::new())),
            ..base
        });
    };
    let last_state = mine.iter().rev().nth(1).map(|c| terminated(1, &c.id));
    if details.running {
        lock(&shared.dead_since).remove(&details.id);
        return Ok(ContainerStatus {
            container_id: Some(format!("docker://{}", details.id)),
            image_id: details.image_id.clone(),
            ready: true,
            started: Some(true),
            restart_count,
            state: Some(container_state_running()),
            last_state,
            ..base
        });
    }
    if details.status == "created" {
        // Created but never started (a crash between create and start): start it now.
        if let Err(e) = shared.docker.start_container(&details.id).await {
            return Ok(ContainerStatus {
                restart_count,
                state: Some(waiting("RunContainerError", e.to_string())),
                ..base
            });
        }
        return Ok(ContainerStatus {
            container_id: Some(format!("docker://{}", details.id)),
            image_id: details.image_id.clone(),
            ready: true,
            started: Some(true),
            restart_count,
            state: Some(container_state_running()),
            last_state,
            ..base
        });
    }
    // Exited: restart after the back-off, keeping the dead one as the last state.
    let exit_code = i32::try_from(details.exit_code.unwrap_or(0)).unwrap_or(-1);
    let first_seen = *lock(&shared.dead_since)
        .entry(details.id.clone())
        .or_insert_with(Instant::now);
    if first_seen.elapsed() < shared.options.restart_backoff {
        return Ok(ContainerStatus {
            container_id: Some(format!("docker://{}", details.id)),
            image_id: details.image_id.clone(),
            restart_count,
            state: Some(waiting(
                "CrashLoopBackOff",
                format!("back-off restarting failed container {}", cspec.name),
            )),
            last_state: Some(terminated(exit_code, &details.id)),
            ..base
        });
    }
    // Only the newest dead instance is kept, like kubelet's container GC.
    for old in &mine[..mine.len().saturating_sub(1)] {
        let _ = shared.docker.remove_container(&old.id, true).await;
    }
    lock(&shared.dead_since).remove(&details.id);
    record(
        shared,
        format!(
            "container {} exited with {exit_code}: restarting (restart count {})",
            details.name,
            restart_count + 1
        ),
    );
    start_new(
        shared,
        pod,
        spec,
        cspec,
        restart_count + 1,
        base,
        Some(terminated(exit_code, &details.id)),
    )
    .await
}

/// The dockershim name of a pod's container instance.
pub fn container_name(
    container: &str,
    pod: &str,
    namespace: &str,
    uid: &str,
    restart: i32,
) -> String {
    format!("k8s_{container}_{pod}_{namespace}_{uid}_{restart}")
}

fn create_spec(
    shared: &Shared,
    pod: &Pod,
    spec: &PodSpec,
    cspec: &Container,
    restart: i32,
) -> CreateSpec {
    let (ns, pod_name) = ns_name(&pod.metadata);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let name = container_name(&cspec.name, &pod_name, &ns, &uid, restart);
    let mut create = CreateSpec::new(&name, cspec.image.as_deref().unwrap_or(""));
    create.env = cspec
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    let mut cmd: Vec<String> = cspec.command.clone().unwrap_or_default();
    cmd.extend(cspec.args.clone().unwrap_or_default());
    create.cmd = (!cmd.is_empty()).then_some(cmd);
    let volumes = spec.volumes.clone().unwrap_or_default();
    for m in cspec.volume_mounts.iter().flatten() {
        let host = volumes
            .iter()
            .find(|v| v.name == m.name)
            .and_then(|v| v.host_path.as_ref())
            .map(|h| h.path.clone());
        if let Some(host) = host {
            create.binds.push(Bind {
                host,
                container: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false),
            });
        }
    }
    create.host_network = spec.host_network.unwrap_or(false);
    create.privileged = cspec
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    create.labels = BTreeMap::from([
        (LABEL_POD_NAME.to_string(), pod_name),
        (LABEL_POD_NAMESPACE.to_string(), ns),
        (LABEL_POD_UID.to_string(), uid),
        (LABEL_CONTAINER_NAME.to_string(), cspec.name.clone()),
        (LABEL_RESTART_COUNT.to_string(), restart.to_string()),
        (LABEL_KUBELET.to_string(), shared.instance.clone()),
        (LABEL_NODE.to_string(), shared.node.clone()),
    ]);
    create
}

async fn start_new(
    shared: &Shared,
    pod: &Pod,
    spec: &PodSpec,
    cspec: &Container,
    restart: i32,
    base: ContainerStatus,
    last_state: Option<ContainerState>,
) -> anyhow::Result<ContainerStatus> {
    let create = create_spec(shared, pod, spec, cspec, restart);
    let id = match shared.docker.create_container(&create).await {
        Ok(id) => id,
        Err(e) if e.is_not_found() => {
            // No registry here: an image that is not on the engine never arrives by itself,
            // but a test may load it later, so this is retried on every pass.
            return Ok(ContainerStatus {
                restart_count: restart,
                state: Some(waiting("ErrImagePull", e.to_string())),
                last_state,
                ..base
            });
        }
        Err(e) if e.is_conflict() => {
            // A container of this name exists already (listed before it was created): the
            // next pass adopts it.
            return Ok(ContainerStatus {
                restart_count: restart,
                state: Some(waiting("ContainerCreating", e.to_string())),
                last_state,
                ..base
            });
        }
        Err(e) => return Err(docker_error(e, &create.name)),
    };
    record(shared, format!("created container {}", create.name));
    if let Err(e) = shared.docker.start_container(&id).await {
        return Ok(ContainerStatus {
            container_id: Some(format!("docker://{id}")),
            restart_count: restart,
            state: Some(waiting("CreateContainerError", e.to_string())),
            last_state,
            ..base
        });
    }
    Ok(ContainerStatus {
        container_id: Some(format!("docker://{id}")),
        ready: true,
        started: Some(true),
        restart_count: restart,
        state: Some(container_state_running()),
        last_state,
        ..base
    })
}

fn docker_error(e: DockerError, name: &str) -> anyhow::Error {
    anyhow::Error::new(e).context(format!("kubelet: cannot create container {name}"))
}

/// `n` characters from Kubernetes' name-suffix alphabet (no vowels, no confusable digits).
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut x = (nanos as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = String::with_capacity(n);
    for _ in 0..n {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        out.push(char::from(ALPHABET[(r % ALPHABET.len() as u64) as usize]));
    }
    out
}

/// Whether `store` has a pod of daemon set `ds` (namespace `ns`) on `node` whose first
/// container is running and ready: a helper for tests waiting on the kubelet.
pub fn pod_running(store: &Store, ns: &str, ds: &str, node: &str) -> bool {
    pods_of(store, ns, ds, node).iter().any(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .is_some_and(|c| c.ready)
    })
}

/// The pods of daemon set `ds` in namespace `ns` on `node`.
pub fn pods_of(store: &Store, ns: &str, ds: &str, node: &str) -> Vec<Pod> {
    store
        .pods(Some(ns))
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .filter(|p| owner_of(p).is_some_and(|o| o.name == ds))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_use_the_kubernetes_alphabet_and_differ() {
        let a = random_suffix(5);
        let b = random_suffix(5);
        assert_eq!(a.len(), 5);
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_ne!(a, b);
    }

    #[test]
    fn container_names_follow_dockershim() {
        assert_eq!(
            container_name("snmp", "snmp-1-1-0-x7k2p", "default", "u-1", 2),
            "k8s_snmp_snmp-1-1-0-x7k2p_default_u-1_2"
        );
    }
}
