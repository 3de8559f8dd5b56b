//! A simulated switch for ctrmgrd end-to-end tests: a private redis-server, the shared private
//! dockerd, the fake Kubernetes API server over HTTPS with client certificates, an emulated
//! kubelet (registers the node again after a join, deploys a pod when `<f>_enabled=true` and
//! runs the core's `container_startup` admission for it), the emulated service manager running
//! the real `container` binary, and ctrmgrd itself in-process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use sonic_daemon::report::MemoryLog;
use sonic_daemon::services::SystemClock;
use sonic_daemon::wiring::{Outside, open_databases};
use sonic_daemon::{Control, DaemonError, Exit, Options, run};
use sonic_db::{Fields, Namespace, RedisFeatureStore, SonicDb, SonicDbConfig};
use sonic_docker_adapter::{BollardRuntime, CreateSpec, DockerClient};
use sonic_feature_core::exec::container_startup;
use sonic_feature_core::model::{ContainerId, FeatureName, RemoteCtrConfig, SetOwner, Version};
use sonic_feature_core::ports::ServiceManager;
use sonic_feature_core::startup::StartupArgs;
use sonic_kube_adapter::{
    CommandError, CommandOutput, CommandRunner, CommandSpec, KubeNodeCluster, KubePaths,
    KubeSettings,
};
use sonic_tests::docker::{ImageSpec, build_image, docker_host};
use sonic_tests::fake_kube::FakeKube;
use sonic_tests::lab::control::{self, CONTROL_ENV, Handler, Reply};
use sonic_tests::redis::RedisServer;
use sonic_tests::service_manager::{EmulatedServiceManager, workspace_binary};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const NODE: &str = "sonic-e2e";
pub const LOCAL_VERSION: &str = "1.0.0";
pub const KUBE_VERSION: &str = "2.0.0";
pub const REGISTRY: &str = "registry.test/sonic";

/// Small timers for tests (`remote_ctr.config.json`).
pub const TIMERS: &str = r#"{
    "join_latency_on_boot_seconds": 0,
    "retry_join_interval_seconds": 1,
    "retry_labels_update_seconds": 1,
    "revert_to_local_on_wait_seconds": 60,
    "tag_latest_image_on_wait_seconds": 1,
    "retry_tag_latest_seconds": 1,
    "retry_clean_image_seconds": 1,
    "use_k8s_as_http_proxy": "n"
}"#;

/// Polls `cond` every 50 ms until it holds or `deadline` passes; the error names `what`.
pub async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut cond: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if cond().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Node-side commands of the join (`kubeadm`, `systemctl ... kubelet`, `modprobe`): recorded
/// and successful; `kubeadm join` writes kubelet's configuration as the real one does, and the
/// node object appears at the master as when the real kubelet registers right after the join
/// (ctrmgrd's join waits for it).
#[derive(Debug)]
pub struct NodeCommands {
    kubelet_config: PathBuf,
    master: Arc<sonic_tests::fake_kube::Store>,
    pub calls: std::sync::Mutex<Vec<Vec<String>>>,
    /// `kubeadm join` takes this many milliseconds (an action in flight for signal tests).
    pub join_delay_ms: std::sync::atomic::AtomicU64,
    /// `kubeadm join` fails (exit 1) while set.
    pub fail_join: AtomicBool,
}

impl NodeCommands {
    /// How many `kubeadm join` ran so far.
    pub fn joins(&self) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.starts_with(&["kubeadm".to_string(), "join".to_string()]))
            .count()
    }
}

#[async_trait]
impl CommandRunner for NodeCommands {
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        self.calls.lock().unwrap().push(spec.argv.clone());
        if spec
            .argv
            .starts_with(&["kubeadm".to_string(), "join".to_string()])
        {
            let delay = self.join_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if self.fail_join.load(Ordering::SeqCst) {
                return Ok(CommandOutput {
                    code: Some(1),
                    stdout: String::new(),
                    stderr: "error execution phase preflight: cannot reach the master".into(),
                });
            }
            std::fs::create_dir_all(self.kubelet_config.parent().unwrap()).unwrap();
            std::fs::write(&self.kubelet_config, "kind: KubeletConfiguration\n").unwrap();
            if self.master.node(NODE).is_none() {
                self.master.add_node(NODE, &[], true);
            }
        }
        if spec
            .argv
            .starts_with(&["kubeadm".to_string(), "reset".to_string()])
        {
            let _ = std::fs::remove_file(&self.kubelet_config);
        }
        Ok(CommandOutput {
            code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
        })
    }
}

/// A running ctrmgrd.
pub struct RunningDaemon {
    pub control: mpsc::UnboundedSender<Control>,
    pub handle: JoinHandle<Result<Exit, DaemonError>>,
    pub log: MemoryLog,
}

impl RunningDaemon {
    /// SIGTERM and wait for the exit.
    pub async fn terminate(self) -> anyhow::Result<Exit> {
        let _ = self.control.send(Control::Terminate);
        Ok(tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .context("daemon did not stop within 60 s")???)
    }
}

/// One simulated switch with one managed feature.
pub struct Switch {
    pub dir: tempfile::TempDir,
    pub redis: RedisServer,
    pub kube: FakeKube,
    pub docker_host: String,
    pub docker: DockerClient,
    pub feature: FeatureName,
    pub services: Arc<EmulatedServiceManager>,
    pub kube_settings: KubeSettings,
    pub runner: Arc<NodeCommands>,
    pub timers_path: PathBuf,
    pub local_image: String,
    pub kube_image: String,
    kubelet_stop: Arc<AtomicBool>,
    kubelet: Option<JoinHandle<()>>,
    /// What the emulated kubelet did, with times (printed by failing tests).
    pub kubelet_events: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Switch {
    /// A switch whose feature `feature` has a local container (`docker-<f>:latest`, version
    /// 1.0.0) and a downloadable kube image (`registry.test/sonic/docker-<f>:2.0.0`), with the
    /// master configured in CONFIG_DB.
    pub async fn new(feature: &str) -> anyhow::Result<Self> {
        let docker_host = docker_host().context("a docker engine must be available")?;
        Self::on_engine(feature, docker_host).await
    }

    /// A switch ready for a local → kube switch-over: `feature` set to kube owner, tag-as-good
    /// after 1 s, its unit booted (the local container runs, the node is not joined yet) and the
    /// emulated kubelet on; the test starts ctrmgrd.
    pub async fn ready_for_switch_over(feature: &str) -> anyhow::Result<Self> {
        let mut sw = Self::new(feature).await?;
        sw.set_feature_config(&[("set_owner", "kube"), ("state", "enabled")])
            .await?;
        sw.set_image_mgmt("GLOBAL", &[("active_time_to_mark_good", "1s")])
            .await?;
        sw.boot_feature().await?;
        sw.start_kubelet();
        Ok(sw)
    }

    /// The same switch on the docker engine at `docker_host` (a private one that the test
    /// restarts, for instance).
    pub async fn on_engine(feature: &str, docker_host: String) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let redis = RedisServer::start().context("redis-server must start")?;
        let kube = FakeKube::start_https().await?;
        kube.store().add_node(NODE, &[], true);
        let docker = DockerClient::new(&docker_host)?;
        let feature = FeatureName::parse(feature)?;

        // Kubernetes side of the switch, under the temp dir.
        let mut paths = KubePaths::under(dir.path());
        std::fs::create_dir_all(paths.client_cert.parent().unwrap())?;
        let id = kube.client_identity(NODE)?;
        std::fs::write(&paths.client_cert, &id.cert_pem)?;
        std::fs::write(&paths.client_key, &id.key_pem)?;
        let bundle = dir.path().join("master-ca.pem");
        std::fs::write(&bundle, kube.ca_pem().context("ca")?)?;
        paths.ca_bundle = Some(bundle);
        std::fs::create_dir_all(paths.flannel_conflist.parent().unwrap())?;
        std::fs::write(&paths.flannel_conflist, r#"{"name":"cbr0"}"#)?;
        let runner = Arc::new(NodeCommands {
            kubelet_config: paths.kubelet_config.clone(),
            master: kube.store().clone(),
            calls: Default::default(),
            join_delay_ms: Default::default(),
            fail_join: AtomicBool::new(false),
        });
        let mut kube_settings = KubeSettings::new(NODE).with_paths(paths);
        kube_settings.request_timeout = Duration::from_secs(3);
        kube_settings.ca_fetch_timeout = Duration::from_secs(3);

        // Images and the local container, as the SONiC image ships them.
        let local_image = format!("docker-{feature}");
        let kube_image = format!("{REGISTRY}/docker-{feature}");
        // The idle script stops on SIGTERM at once: a bare `sleep` as PID 1 ignores it, and
        // every `docker stop` of the switch-over would wait docker's 10 s grace period.
        let spec = |v: &str| {
            ImageSpec::new()
                .env("IMAGE_VERSION", v)
                .file(
                    "/usr/bin/idle",
                    b"#!/bin/sh\ntrap 'exit 0' TERM\nsleep 100000 &\nwait\n".to_vec(),
                    0o755,
                )
                .cmd(["/usr/bin/idle"])
                .label("org.sonic-tests.feature", feature.as_str())
        };
        let local_id = build_image(
            &docker_host,
            &format!("{local_image}:{LOCAL_VERSION}"),
            &spec(LOCAL_VERSION),
        )
        .await?;
        docker.tag_image(&local_id, &local_image, "latest").await?;
        build_image(
            &docker_host,
            &format!("{kube_image}:{KUBE_VERSION}"),
            &spec(KUBE_VERSION),
        )
        .await?;
        for stale in [feature.to_string(), format!("k8s_{feature}")] {
            let _ = docker.remove_container(&stale, true).await;
        }
        let mut create = CreateSpec::new(feature.as_str(), &format!("{local_image}:latest"));
        create.env.push(("RUNTIME_OWNER".into(), "local".into()));
        docker.create_container(&create).await?;

        // Files the `container` binary reads.
        let timers_path = dir.path().join("remote_ctr.config.json");
        std::fs::write(&timers_path, TIMERS)?;
        let unit_marker = dir.path().join("ctrmgrd.service");
        std::fs::write(&unit_marker, "")?;
        let container_bin = workspace_binary("container")?;
        let services = Arc::new(EmulatedServiceManager::new(
            container_bin,
            [
                (
                    "SONIC_DB_CONFIG",
                    redis.database_config_path().as_os_str().to_owned(),
                ),
                ("DOCKER_HOST", docker_host.clone().into()),
                ("SONIC_CTRMGRD_UNIT", unit_marker.into_os_string()),
                (
                    "SONIC_REMOTE_CTR_CONFIG",
                    timers_path.clone().into_os_string(),
                ),
            ],
        ));

        let sw = Self {
            dir,
            redis,
            kube,
            docker_host,
            docker,
            feature,
            services,
            kube_settings,
            runner,
            timers_path,
            local_image,
            kube_image,
            kubelet_stop: Arc::new(AtomicBool::new(false)),
            kubelet: None,
            kubelet_events: Default::default(),
        };
        let server: Fields = [
            ("ip".to_string(), "127.0.0.1".to_string()),
            ("port".to_string(), sw.kube.addr().port().to_string()),
            ("insecure".to_string(), "false".to_string()),
        ]
        .into();
        sw.config_db()
            .await?
            .set_entry("KUBERNETES_MASTER", "SERVER", &server)
            .await?;
        Ok(sw)
    }

    pub async fn config_db(&self) -> anyhow::Result<SonicDb> {
        Ok(SonicDb::open_file(self.redis.database_config_path(), "CONFIG_DB").await?)
    }

    pub async fn state_db(&self) -> anyhow::Result<SonicDb> {
        Ok(SonicDb::open_file(self.redis.database_config_path(), "STATE_DB").await?)
    }

    pub async fn set_feature_config(&self, fields: &[(&str, &str)]) -> anyhow::Result<()> {
        let f: Fields = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.config_db()
            .await?
            .mod_entry("FEATURE", self.feature.as_str(), &f)
            .await?;
        Ok(())
    }

    pub async fn set_image_mgmt(&self, key: &str, fields: &[(&str, &str)]) -> anyhow::Result<()> {
        let f: Fields = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.config_db()
            .await?
            .set_entry("IMAGE_MGMT", key, &f)
            .await?;
        Ok(())
    }

    /// STATE_DB `FEATURE|<f>` (empty when unreadable, e.g. while redis restarts).
    pub async fn status(&self) -> Fields {
        match self.state_db().await {
            Ok(db) => db
                .get_entry("FEATURE", self.feature.as_str())
                .await
                .unwrap_or_default(),
            Err(_) => Fields::new(),
        }
    }

    pub async fn status_field(&self, field: &str) -> Option<String> {
        self.status().await.get(field).cloned()
    }

    /// Labels of the node at the fake API server.
    pub fn node_labels(&self) -> std::collections::BTreeMap<String, String> {
        self.kube.store().node_labels(NODE).unwrap_or_default()
    }

    pub fn enabled_label(&self) -> String {
        format!("{}_enabled", self.feature)
    }

    /// `systemctl start <f>` before the daemon runs, as at boot.
    pub async fn boot_feature(&self) -> anyhow::Result<()> {
        self.services.start(&self.feature).await?;
        Ok(())
    }

    /// The emulated kubelet: registers the node again after a join deleted it; deploys the
    /// feature's pod (a container from the kube image) while `<f>_enabled=true` and runs the
    /// core's `container_startup -o kube` admission for it; removes the pod when the label goes.
    pub fn start_kubelet(&mut self) {
        let store = self.kube.store().clone();
        let stop = self.kubelet_stop.clone();
        let docker = DockerClient::new(&self.docker_host).unwrap();
        let feature = self.feature.clone();
        let image = format!("{}:{KUBE_VERSION}", self.kube_image);
        let db_config = self.redis.database_config_path().to_path_buf();
        let label = self.enabled_label();
        let events = self.kubelet_events.clone();
        // On the service manager's clock, so that the two timelines interleave.
        let services = self.services.clone();
        let note = move |what: String| {
            let at = services.since_start().as_secs_f64();
            events.lock().unwrap().push(format!("+{at:.3}s {what}"));
        };
        self.kubelet = Some(tokio::spawn(async move {
            let pod_name = format!("k8s_{feature}");
            let mut admission: Option<JoinHandle<()>> = None;
            while !stop.load(Ordering::SeqCst) {
                if store.node(NODE).is_none() {
                    store.add_node(NODE, &[], true);
                }
                let wanted = store
                    .node_labels(NODE)
                    .is_some_and(|l| l.get(&label).map(String::as_str) == Some("true"));
                let running = matches!(
                    docker.inspect_container(&pod_name).await,
                    Ok(Some(ref c)) if c.running
                );
                if wanted && !running {
                    note("deploying the pod".into());
                    let _ = docker.remove_container(&pod_name, true).await;
                    let mut spec = CreateSpec::new(&pod_name, &image);
                    spec.env.push(("RUNTIME_OWNER".into(), "kube".into()));
                    let started = match docker.create_container(&spec).await {
                        Ok(id) => match docker.start_container(&id).await {
                            Ok(()) => Some(id),
                            Err(e) => {
                                note(format!("docker start of the pod failed: {e}"));
                                None
                            }
                        },
                        Err(e) => {
                            note(format!("docker create of the pod failed: {e}"));
                            None
                        }
                    };
                    if let Some(id) = started {
                        note(format!("pod container {} runs", &id[..12]));
                        if let Some(a) = admission.take() {
                            a.abort();
                        }
                        let feature = feature.clone();
                        let db_config = db_config.clone();
                        let note = note.clone();
                        admission = Some(tokio::spawn(async move {
                            let Ok(cfg) = SonicDbConfig::load(&db_config) else {
                                return;
                            };
                            let Ok(store) = RedisFeatureStore::open(&cfg, &Namespace::Host).await
                            else {
                                return;
                            };
                            let clock = SystemClock::new();
                            let args = StartupArgs {
                                feature,
                                owner: SetOwner::Kube,
                                version: Version::parse(KUBE_VERSION).unwrap(),
                                own_id: ContainerId::parse(&id[..12]).ok(),
                            };
                            let outcome =
                                container_startup(&store, &clock, tokio::time::sleep, |_| {}, args)
                                    .await;
                            note(format!("admission ended: {outcome:?}"));
                        }));
                    }
                } else if !wanted && running {
                    note("label gone: removing the pod".into());
                    let _ = docker.remove_container(&pod_name, true).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Some(a) = admission {
                a.abort();
            }
        }));
    }

    /// ctrmgrd in-process with this switch's ports; `abort_after` is the crash-test hook.
    pub async fn start_daemon(&self, abort_after: Option<u64>) -> anyhow::Result<RunningDaemon> {
        self.start_daemon_with(abort_after, None).await
    }

    /// ctrmgrd in-process with both crash-test hooks (after the n-th action, before the n-th).
    pub async fn start_daemon_with(
        &self,
        abort_after: Option<u64>,
        abort_before: Option<u64>,
    ) -> anyhow::Result<RunningDaemon> {
        self.start_daemon_configured(
            TIMERS,
            self.kube_settings.clone(),
            self.runner.clone(),
            abort_after,
            abort_before,
        )
        .await
    }

    /// Starts ctrmgrd in-process with the timers `timers` and the Kubernetes settings `kube`
    /// (see [`Switch::start_daemon_configured`]), with the switch's node programs.
    pub async fn start_daemon_timed(
        &self,
        timers: &str,
        kube: KubeSettings,
    ) -> anyhow::Result<RunningDaemon> {
        self.start_daemon_configured(timers, kube, self.runner.clone(), None, None)
            .await
    }

    /// Starts ctrmgrd in-process with the timers `timers` (JSON of `remote_ctr.config.json`,
    /// also written to the switch's timers file), the Kubernetes settings `kube` and the node
    /// programs `node`.
    pub async fn start_daemon_configured(
        &self,
        timers: &str,
        kube: KubeSettings,
        node: Arc<dyn CommandRunner>,
        abort_after: Option<u64>,
        abort_before: Option<u64>,
    ) -> anyhow::Result<RunningDaemon> {
        self.write_timers(timers)?;
        let cfg = SonicDbConfig::load(self.redis.database_config_path())?;
        let dbs = open_databases(&cfg).await?;
        let docker = Arc::new(BollardRuntime::new(DockerClient::new(&self.docker_host)?));
        let cluster = KubeNodeCluster::new(kube, node);
        let outside = Outside {
            runtime: docker.clone(),
            images: docker,
            cluster: Arc::new(cluster),
            services: self.services.clone(),
            clock: Arc::new(SystemClock::new()),
        };
        let ports = dbs.ports(outside);
        let mut options = Options::new(RemoteCtrConfig::from_json_str(timers)?, "20201230.111");
        options.timers_file = Some(self.timers_path.clone());
        options.abort_after_actions = abort_after;
        options.abort_before_action = abort_before;
        options.retry_max = Duration::from_secs(2);
        // A failing test prints the log: each action and its outcome tell what happened.
        options.trace_actions = true;
        let (tx, rx) = mpsc::unbounded_channel();
        let log = MemoryLog::new();
        let handle = tokio::spawn(run(
            dbs.sources,
            ports,
            dbs.instances.clone(),
            options,
            Arc::new(log.clone()),
            rx,
        ));
        Ok(RunningDaemon {
            control: tx,
            handle,
            log,
        })
    }

    /// Replaces the timers file (`remote_ctr.config.json`) with `json` the way a package
    /// manager does, by renaming a complete new file over it: the units' `container` commands
    /// read it at any moment, and an in-place rewrite lets them read it empty (and fail).
    pub fn write_timers(&self, json: &str) -> anyhow::Result<()> {
        if std::fs::read_to_string(&self.timers_path).is_ok_and(|old| old == json) {
            return Ok(());
        }
        let tmp = self.timers_path.with_extension("json.new");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.timers_path)?;
        Ok(())
    }

    /// A STATE_DB entry (empty while unreadable or absent).
    pub async fn state_entry(&self, table: &str, key: &str) -> Fields {
        match self.state_db().await {
            Ok(db) => db.get_entry(table, key).await.unwrap_or_default(),
            Err(_) => Fields::new(),
        }
    }

    /// STATE_DB `CTRMGRD_STATE|PENDING_RESTARTS`: the restarts ctrmgrd started and has not seen
    /// succeed (empty while unreadable or absent).
    pub async fn pending_restarts(&self) -> Fields {
        self.state_entry("CTRMGRD_STATE", "PENDING_RESTARTS").await
    }

    /// STATE_DB `KUBERNETES_MASTER|SERVER` (empty while unreadable or absent).
    pub async fn server_status(&self) -> Fields {
        self.state_entry("KUBERNETES_MASTER", "SERVER").await
    }

    /// Whether STATE_DB says the node is joined (`connected=true`).
    pub async fn connected(&self) -> bool {
        self.server_status()
            .await
            .get("connected")
            .map(String::as_str)
            == Some("true")
    }

    /// Adds `pairs` to STATE_DB `KUBE_LABELS|SET`, the labels the switch wants on its node
    /// (what `config kubernetes label add` writes).
    pub async fn set_desired_labels(&self, pairs: &[(&str, &str)]) -> anyhow::Result<()> {
        let f: Fields = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.state_db()
            .await?
            .mod_entry("KUBE_LABELS", "SET", &f)
            .await?;
        Ok(())
    }

    /// Whether container `name` exists and runs.
    pub async fn container_running(&self, name: &str) -> bool {
        matches!(self.docker.inspect_container(name).await, Ok(Some(c)) if c.running)
    }

    /// The image id `<repo>:<tag>` points at, if any.
    pub async fn image_id(&self, reference: &str) -> Option<String> {
        self.docker
            .inspect_image(reference)
            .await
            .ok()
            .flatten()
            .map(|i| i.id)
    }

    /// Stops units and the kubelet, removes containers.
    pub async fn teardown(mut self) {
        self.kubelet_stop.store(true, Ordering::SeqCst);
        if let Some(k) = self.kubelet.take() {
            let _ = k.await;
        }
        self.services.stop_all().await;
        for c in [self.feature.to_string(), format!("k8s_{}", self.feature)] {
            let _ = self.docker.remove_container(&c, true).await;
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Waits until kube runs the feature: `current_owner=kube` and `remote_state=running`.
pub async fn wait_kube_running(sw: &Switch, deadline: Duration) -> anyhow::Result<()> {
    wait_for(
        "current_owner=kube and remote_state=running",
        deadline,
        || async {
            let s = sw.status().await;
            s.get("current_owner").map(String::as_str) == Some("kube")
                && s.get("remote_state").map(String::as_str) == Some("running")
        },
    )
    .await
}

/// The end state of a local → kube switch-over with image management: kube owns the feature,
/// its deployment runs, the node carries `<f>_enabled=true`, the kube image became the local
/// (golden) image and the old local container is gone.
pub async fn assert_switched_to_kube(sw: &Switch, deadline: Duration) -> anyhow::Result<()> {
    wait_kube_running(sw, deadline).await?;
    wait_for("the node label <f>_enabled=true", deadline, || async {
        sw.node_labels()
            .get(&sw.enabled_label())
            .map(String::as_str)
            == Some("true")
    })
    .await?;
    let kube_id = sw
        .image_id(&format!("{}:{KUBE_VERSION}", sw.kube_image))
        .await
        .context("kube image")?;
    wait_for(
        "the kube image tagged as the local image",
        deadline,
        || async {
            sw.image_id(&format!("{}:latest", sw.local_image))
                .await
                .as_deref()
                == Some(&kube_id)
        },
    )
    .await?;
    wait_for("container_stable_version=2.0.0", deadline, || async {
        sw.status_field("container_stable_version").await.as_deref() == Some(KUBE_VERSION)
    })
    .await?;
    wait_for("the old local container removed", deadline, || async {
        matches!(
            sw.docker.inspect_container(sw.feature.as_str()).await,
            Ok(None)
        )
    })
    .await?;
    Ok(())
}

/// The real `ctrmgrd` binary running against a [`Switch`]: its node programs (`systemctl`,
/// `kubeadm`, `modprobe`) are the `sonic-lab` shim forwarding to this test process, which
/// answers with the switch's emulated units and node commands; stderr (ctrmgrd logs there when
/// there is no syslog socket) goes to a file.
pub struct RealDaemon {
    pub child: tokio::process::Child,
    pub log_path: PathBuf,
    control: JoinHandle<()>,
}

impl RealDaemon {
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id().expect("ctrmgrd runs") as i32)
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        nix::sys::signal::kill(self.pid(), signal)?;
        Ok(())
    }

    /// What ctrmgrd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits for the process to exit (at most `deadline`).
    pub async fn wait_exit(
        &mut self,
        deadline: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let status = tokio::time::timeout(deadline, self.child.wait())
            .await
            .with_context(|| {
                format!("ctrmgrd did not exit within {deadline:?}\n{}", self.log())
            })??;
        Ok(status)
    }

    /// Ends the process with SIGKILL (no cleanup, as a crash) and waits for it.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGKILL)?;
        self.wait_exit(Duration::from_secs(30)).await?;
        Ok(())
    }
}

impl Drop for RealDaemon {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.control.abort();
    }
}

impl Switch {
    /// The environment the real ctrmgrd runs with on this switch (without `PATH`).
    pub fn ctrmgrd_env(&self) -> Vec<(String, std::ffi::OsString)> {
        let shims = self.dir.path().join("bin");
        vec![
            (
                "SONIC_DB_CONFIG".into(),
                self.redis.database_config_path().into(),
            ),
            ("DOCKER_HOST".into(), self.docker_host.clone().into()),
            (
                "SONIC_REMOTE_CTR_CONFIG".into(),
                self.timers_path.clone().into(),
            ),
            (
                "SONIC_VERSION_FILE".into(),
                self.dir.path().join("sonic_version.yml").into(),
            ),
            ("SONIC_CTRMGRD_KUBE_ROOT".into(), self.dir.path().into()),
            (
                "SONIC_KUBE_CA_BUNDLE".into(),
                self.dir.path().join("master-ca.pem").into(),
            ),
            ("SONIC_CTRMGRD_NODE_NAME".into(), NODE.into()),
            (
                "SONIC_CTRMGRD_SYSTEMCTL".into(),
                shims.join("systemctl").into(),
            ),
            (
                CONTROL_ENV.into(),
                control::socket_path(self.dir.path()).into(),
            ),
        ]
    }

    /// Starts `target/debug/ctrmgrd` on this switch with `extra` environment variables (the
    /// root check is skipped unless `extra` says otherwise).
    pub async fn start_real_daemon(&self, extra: &[(&str, &str)]) -> anyhow::Result<RealDaemon> {
        let bin = workspace_binary("ctrmgrd")?;
        let shims = self.dir.path().join("bin");
        std::fs::create_dir_all(&shims)?;
        for name in ["systemctl", "kubeadm", "modprobe"] {
            let link = shims.join(name);
            if !link.exists() {
                std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sonic-lab"), &link)?;
            }
        }
        std::fs::write(
            self.dir.path().join("sonic_version.yml"),
            "build_version: '20201230.111'\n",
        )?;
        let services = self.services.clone();
        let runner = self.runner.clone();
        let handler: Handler = Arc::new(move |argv: Vec<String>| {
            let services = services.clone();
            let runner = runner.clone();
            Box::pin(async move { node_program(&services, &runner, argv).await })
        });
        let socket = control::socket_path(self.dir.path());
        let control = control::serve(&socket, handler)?;
        let log_path = self.dir.path().join(format!(
            "ctrmgrd-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let log = std::fs::File::create(&log_path)?;
        let path = format!(
            "{}:{}",
            shims.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.envs(self.ctrmgrd_env())
            .env("PATH", path)
            .env("SONIC_CTRMGRD_SKIP_ROOT_CHECK", "1")
            .envs(extra.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(RealDaemon {
            child,
            log_path,
            control,
        })
    }
}

/// The node programs ctrmgrd runs, answered by the switch's emulation.
async fn node_program(
    services: &EmulatedServiceManager,
    runner: &NodeCommands,
    argv: Vec<String>,
) -> Reply {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["systemctl", _, "kubelet"] | ["modprobe", ..] => Reply::ok(),
        ["kubeadm", ..] => {
            let spec = CommandSpec::new(argv.clone(), Duration::from_secs(60));
            match runner.run(&spec).await {
                Ok(out) => Reply {
                    code: out.code.unwrap_or(1),
                    stdout: out.stdout,
                    stderr: out.stderr,
                },
                Err(e) => Reply::fail(1, e.to_string()),
            }
        }
        ["systemctl", verb, unit] | ["systemctl", verb, "--quiet", unit] => {
            let Ok(f) = FeatureName::parse(unit) else {
                return Reply::fail(5, format!("Unit {unit}.service not found."));
            };
            let r = match *verb {
                "reset-failed" => Ok(()),
                "is-active" => {
                    return match services.is_active(&f).await {
                        Ok(true) => Reply::ok(),
                        Ok(false) => Reply::fail(3, ""),
                        Err(e) => Reply::fail(1, e.to_string()),
                    };
                }
                "restart" => services.restart(&f).await,
                "start" => services.start(&f).await,
                "stop" => services.stop(&f).await,
                other => return Reply::fail(1, format!("unsupported systemctl {other}")),
            };
            match r {
                Ok(()) => Reply::ok(),
                Err(e) => Reply::fail(1, format!("Job for {unit}.service failed: {e}")),
            }
        }
        _ => Reply::fail(1, format!("unsupported command {}", argv.join(" "))),
    }
}
