//! A simulated SONiC switch with a Kubernetes master, for the `sonic-lab` binary and the
//! end-to-end tests: a private `redis-server` seeded with a real device's CONFIG_DB, a private
//! `dockerd`, locally built feature images, the fake API server with a DaemonSet, the emulated
//! kubelet, the emulated service manager running the real `container` binary, and the real
//! `ctrmgrd`.
//!
//! Everything lives under one directory (`lab-state/` for the binary, a temp dir in tests):
//!
//! | path | what |
//! |---|---|
//! | `database_config.json` | SONiC's DB config pointing at `redis/redis.sock` |
//! | `redis/` | the server's socket, log and pid file |
//! | `docker/` | the private engine (`docker.sock`, `dockerd.log`) |
//! | `kube/` | the fake master's `ca.crt`, `client.crt`, `client.key`, `url` |
//! | `node/` | ctrmgrd's Kubernetes root (`SONIC_CTRMGRD_KUBE_ROOT`): credentials, kubeconfig |
//! | `bin/` | `systemctl`, `kubeadm`, `modprobe`: the `sonic-lab` binary forwarding to the lab |
//! | `control.sock` | where those programs are answered ([`control`]) |
//! | `logs/` | `ctrmgrd.log`, `lab.log` |
//! | `remote_ctr.config.json`, `sonic_version.yml`, `ctrmgrd.service` | ctrmgrd's files |
//!
//! The feature is snmp: a local image `docker-snmp:latest` (`IMAGE_VERSION` 1.0.0) and kube
//! images `acr.example/docker-snmp:<v>` (1.0.0, 1.1.0, 1.2.0, and 1.3.0 whose application fails).
//! Each image's start script runs the real `container_startup` and then the application, like
//! SONiC's `start.sh`. The kube images are also kept under [`REGISTRY_REPO`], from which a
//! version that ctrmgrd's image clean-up removed is "pulled" again when a pod needs it.
//!
//! The feature unit behaves like SONiC's `snmp.service` (`Restart=always`, `RestartSec=30`):
//! see [`crate::service_manager`].

pub mod control;
pub mod reboot;
pub mod redis;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::apps::v1::DaemonSet;
use sonic_docker_adapter::{Bind, CreateSpec, DockerClient};
use sonic_feature_core::model::FeatureName;
use sonic_feature_core::ports::{PortError, ServiceManager};
use sonic_kube_adapter::manifest::{FeatureRuntime, daemonsets};
use tokio::task::JoinHandle;

use crate::docker::{ImageSpec, PrivateDockerd, build_image, run_argv};
use crate::fake_kube::FakeKube;
use crate::kubelet::{Kubelet, KubeletOptions};
use crate::service_manager::{EmulatedServiceManager, PreStart, Restart};
use control::{CONTROL_ENV, Handler, Reply};
use redis::LabRedis;

/// The lab's feature.
pub const FEATURE: &str = "snmp";
/// The lab's Kubernetes node (ctrmgrd's node name).
pub const NODE: &str = "sonic-lab";
/// Repository of the local image.
pub const LOCAL_REPO: &str = "docker-snmp";
/// Version of the local image.
pub const LOCAL_VERSION: &str = "1.0.0";
/// Repository of the images the master deploys.
pub const KUBE_REPO: &str = "acr.example/docker-snmp";
/// Version the lab's DaemonSet deploys.
pub const KUBE_VERSION: &str = "1.1.0";
/// A further version for upgrade scenarios.
pub const UPGRADE_VERSION: &str = "1.2.0";
/// Where the lab's "registry" keeps the kube images: a repository whose name the image
/// clean-up never matches, so that a version removed from the engine by ctrmgrd can be pulled
/// again when a pod needs it.
pub const REGISTRY_REPO: &str = "lab-registry/snmp-images";
/// A kube version whose application fails right after admission (`start.sh` exits 1 once
/// `container_startup` returns): a crash-looping deployment.
pub const FAILING_VERSION: &str = "1.3.0";
/// What a lab image prints when its application starts (after admission), followed by the
/// version and the owner.
pub const APP_STARTED: &str = "application started:";
/// `RestartSec=` of the feature units (SONiC's `snmp.service`).
pub const UNIT_RESTART_SEC: Duration = Duration::from_secs(30);
/// The SONiC build version in `sonic_version.yml` (node label `sonic_version`).
pub const SONIC_VERSION: &str = "SONiC.lab.1";

/// How to bring a lab up.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The lab directory (created).
    pub dir: PathBuf,
    /// Mock-table JSON seeded into CONFIG_DB.
    pub config_db: PathBuf,
    /// Where `show`, `config`, `container`, `container_startup`, `ctrmgrd` are.
    pub bin_dir: PathBuf,
    /// The `sonic-lab` binary (the `systemctl`/`kubeadm`/`modprobe` shims).
    pub lab_binary: PathBuf,
    /// `None`: a private dockerd in `<dir>/docker`; `Some(host)`: use that engine.
    pub docker_host: Option<String>,
    /// Start ctrmgrd.
    pub ctrmgrd: bool,
    /// `remote_ctr.config.json`.
    pub timers: serde_json::Value,
    /// (key, field, value) written over CONFIG_DB after seeding.
    pub config_overrides: Vec<(String, String, String)>,
    /// Whether the lab's DaemonSet for [`KUBE_VERSION`] is created.
    pub daemonset: bool,
    /// How long the emulated kubelet leaves a dead pod container before restarting it (a real
    /// kubelet's CrashLoopBackOff starts at 10 s and doubles; the lab restarts quickly unless a
    /// scenario needs the real pace).
    pub kubelet_restart_backoff: Duration,
}

impl LabOptions {
    /// Options for a lab in `dir` using the workspace's `lab/config_db.json` and the binaries
    /// in `bin_dir`; short timers so that the walk-through takes seconds, not minutes.
    pub fn new(dir: &Path, bin_dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            config_db: Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/config_db.json"),
            bin_dir: bin_dir.to_path_buf(),
            lab_binary: bin_dir.join("sonic-lab"),
            docker_host: None,
            ctrmgrd: true,
            timers: serde_json::json!({
                "join_latency_on_boot_seconds": 0,
                "retry_join_interval_seconds": 2,
                "retry_labels_update_seconds": 1,
                "revert_to_local_on_wait_seconds": 20,
                "tag_latest_image_on_wait_seconds": 5,
                "retry_tag_latest_seconds": 2,
                "retry_clean_image_seconds": 5,
                "use_k8s_as_http_proxy": "n"
            }),
            config_overrides: vec![
                (
                    format!("FEATURE|{FEATURE}"),
                    "set_owner".into(),
                    "local".into(),
                ),
                // A kube image is good (tagged as local) after 5 s instead of 10 minutes.
                (
                    "IMAGE_MGMT|GLOBAL".into(),
                    "active_time_to_mark_good".into(),
                    "5s".into(),
                ),
            ],
            daemonset: true,
            kubelet_restart_backoff: Duration::from_millis(300),
        }
    }
}

/// Progress of [`Lab::up`], one call per step start and end.
#[derive(Debug, Clone)]
pub enum StepEvent {
    /// A step begins.
    Started(String),
    /// A step ended well after `elapsed`.
    Done(String, Duration),
    /// A step failed after `elapsed` with this message.
    Failed(String, Duration, String),
}

/// Paths and commands of a lab by its directory: what a process other than the lab's own
/// (the `sonic-lab` client, a test) needs to look at it.
#[derive(Debug, Clone)]
pub struct LabPaths {
    /// The lab directory.
    pub dir: PathBuf,
    /// Where the CLI binaries are.
    pub bin_dir: PathBuf,
}

impl LabPaths {
    /// `database_config.json`.
    pub fn database_config(&self) -> PathBuf {
        self.dir.join("database_config.json")
    }
    /// The redis socket.
    pub fn redis_socket(&self) -> PathBuf {
        self.dir.join("redis/redis.sock")
    }
    /// The docker socket URI of the private engine.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.dir.join("docker/docker.sock").display())
    }
    /// The logs directory.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// ctrmgrd's Kubernetes root.
    pub fn kube_root(&self) -> PathBuf {
        self.dir.join("node")
    }
    /// The shims' directory.
    pub fn shim_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }
    /// The kube-support marker.
    pub fn ctrmgrd_unit(&self) -> PathBuf {
        self.dir.join("ctrmgrd.service")
    }
    /// `remote_ctr.config.json`.
    pub fn timers(&self) -> PathBuf {
        self.dir.join("remote_ctr.config.json")
    }

    /// The environment every SONiC binary of the lab gets.
    pub fn env(&self, docker_host: &str) -> Vec<(OsString, OsString)> {
        vec![
            ("SONIC_DB_CONFIG".into(), self.database_config().into()),
            ("DOCKER_HOST".into(), docker_host.into()),
            ("SONIC_CTRMGRD_UNIT".into(), self.ctrmgrd_unit().into()),
            ("SONIC_REMOTE_CTR_CONFIG".into(), self.timers().into()),
            ("SONIC_CLI_SKIP_ROOT_CHECK".into(), "1".into()),
        ]
    }

    /// Runs `bin_dir/<program> args` with the lab's environment (30 s limit); fails on a
    /// non-zero exit with its stderr.
    pub fn run(&self, docker_host: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut argv: Vec<OsString> = vec!["env".into()];
        for (k, v) in self.env(docker_host) {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            argv.push(kv);
        }
        argv.push(self.bin_dir.join(program).into());
        argv.extend(args.iter().map(OsString::from));
        let out = run_argv(&argv, Duration::from_secs(30))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "{program} {} exited with {}: {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                stdout.trim()
            );
        }
        Ok(stdout)
    }

    /// STATE_DB `FEATURE|<f>`.
    pub fn feature_state(&self, f: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let mut c = redis::connect(&self.redis_socket(), crate::redis::STATE_DB)?;
        Ok(::redis::cmd("HGETALL")
            .arg(format!("FEATURE|{f}"))
            .query(&mut c)?)
    }

    /// One hash of a database.
    pub fn hash(&self, db: i64, key: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let mut c = redis::connect(&self.redis_socket(), db)?;
        Ok(::redis::cmd("HGETALL").arg(key).query(&mut c)?)
    }

    /// Writes fields of one hash.
    pub fn hset(&self, db: i64, key: &str, fields: &[(&str, &str)]) -> anyhow::Result<()> {
        let mut c = redis::connect(&self.redis_socket(), db)?;
        let mut cmd = ::redis::cmd("HSET");
        cmd.arg(key);
        for (f, v) in fields {
            cmd.arg(*f).arg(*v);
        }
        cmd.query::<()>(&mut c)?;
        Ok(())
    }

    /// Polls `pred` over STATE_DB `FEATURE|<f>` until it holds or `deadline` passes; the error
    /// shows the last state seen.
    pub async fn wait_feature(
        &self,
        f: &str,
        what: &str,
        deadline: Duration,
        pred: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let end = Instant::now() + deadline;
        loop {
            let state = self.feature_state(f).unwrap_or_default();
            if pred(&state) {
                return Ok(state);
            }
            if Instant::now() > end {
                bail!(
                    "{what}: not reached within {} s; STATE_DB FEATURE|{f} = {state:?}; see {}",
                    deadline.as_secs(),
                    self.logs().join("ctrmgrd.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A running lab. Dropping it stops everything it started (containers of the private engine
/// stop with the engine).
pub struct Lab {
    /// Paths and commands.
    pub paths: LabPaths,
    /// The options it was started with.
    pub options: LabOptions,
    redis: LabRedis,
    dockerd: Option<PrivateDockerd>,
    docker_host: String,
    docker: Arc<DockerClient>,
    kube: FakeKube,
    kubelet: Arc<Kubelet>,
    services: Arc<EmulatedServiceManager>,
    node_state: Arc<NodeState>,
    control: Option<JoinHandle<()>>,
    pulls: Option<JoinHandle<()>>,
    ctrmgrd: Option<tokio::process::Child>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab").field("dir", &self.paths.dir).finish()
    }
}

/// What the node-side programs changed (`kubeadm join` / `reset`).
#[derive(Debug, Default)]
struct NodeState {
    commands: Mutex<Vec<String>>,
}

/// Times one step, reporting it; an error names the step.
async fn step<T, F>(
    name: &str,
    progress: &mut (dyn FnMut(&StepEvent) + Send),
    f: F,
) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    progress(&StepEvent::Started(name.to_string()));
    let start = Instant::now();
    match f.await {
        Ok(v) => {
            progress(&StepEvent::Done(name.to_string(), start.elapsed()));
            Ok(v)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            progress(&StepEvent::Failed(
                name.to_string(),
                start.elapsed(),
                msg.clone(),
            ));
            Err(e.context(format!("lab step \"{name}\" failed")))
        }
    }
}

impl Lab {
    /// Brings the lab up, reporting each step; on failure everything started so far stops and
    /// the error names the step (and the log file to read).
    pub async fn up(
        options: LabOptions,
        progress: &mut (dyn FnMut(&StepEvent) + Send),
    ) -> anyhow::Result<Self> {
        let paths = LabPaths {
            dir: options.dir.clone(),
            bin_dir: options.bin_dir.clone(),
        };
        std::fs::create_dir_all(paths.logs())
            .with_context(|| format!("cannot create {}", paths.logs().display()))?;
        write_switch_files(&paths, &options.timers)?;
        for bin in ["show", "config", "container", "container_startup"] {
            let p = options.bin_dir.join(bin);
            if !p.is_file() {
                bail!(
                    "{} is missing: build it first (cargo build -p sonic-cli --bins)",
                    p.display()
                );
            }
        }

        let redis = step(
            "redis-server (CONFIG_DB from lab/config_db.json)",
            progress,
            async {
                let redis = LabRedis::start(&paths.dir)?;
                redis.write_database_config(&paths.database_config())?;
                redis.seed(crate::redis::CONFIG_DB, &options.config_db)?;
                let mut c = redis.connection(crate::redis::CONFIG_DB)?;
                for (key, k, v) in &options.config_overrides {
                    ::redis::cmd("HSET")
                        .arg(key)
                        .arg(k)
                        .arg(v)
                        .query::<()>(&mut c)?;
                }
                Ok(redis)
            },
        )
        .await?;

        let (dockerd, docker_host) = step("dockerd (private engine)", progress, async {
            match &options.docker_host {
                Some(h) => Ok((None, h.clone())),
                None => {
                    let dir = paths.dir.join("docker");
                    let d = tokio::task::block_in_place(|| PrivateDockerd::start(&dir))
                        .with_context(|| format!("see {}", dir.join("dockerd.log").display()))?;
                    let host = d.host().to_string();
                    Ok((Some(d), host))
                }
            }
        })
        .await?;
        let docker = Arc::new(DockerClient::new(&docker_host)?);

        step(
            "feature images (docker-snmp:latest 1.0.0, acr.example/docker-snmp 1.0.0/1.1.0/1.2.0/1.3.0)",
            progress,
            async { build_feature_images(&docker_host, &docker, &options.bin_dir).await },
        )
        .await?;

        let kube = step(
            "fake Kubernetes master (HTTPS, client certificates)",
            progress,
            async {
                let kube = FakeKube::start_https().await?;
                kube.write_state(&paths.dir.join("kube"), "sonic")?;
                write_node_files(&paths, &kube)?;
                let addr = kube.addr();
                let mut c = redis.connection(crate::redis::CONFIG_DB)?;
                ::redis::cmd("HSET")
                    .arg("KUBERNETES_MASTER|SERVER")
                    .arg("ip")
                    .arg(addr.ip().to_string())
                    .arg("port")
                    .arg(addr.port().to_string())
                    .arg("insecure")
                    .arg("false")
                    .arg("disable")
                    .arg("false")
                    .query::<()>(&mut c)?;
                if options.daemonset {
                    kube.store()
                        .create_daemonset(&feature_daemonset(&paths, KUBE_VERSION, false)?)
                        .map_err(|e| anyhow!("cannot create the snmp daemon set: {e}"))?;
                }
                Ok(kube)
            },
        )
        .await?;

        let kubelet = step("emulated kubelet", progress, async {
            let k = Kubelet::start_with(
                kube.store().clone(),
                NODE,
                &docker_host,
                KubeletOptions {
                    register_node: true,
                    running: false,
                    instance_id: Some("sonic-lab".into()),
                    restart_backoff: options.kubelet_restart_backoff,
                    ..KubeletOptions::default()
                },
            )
            .await?;
            Ok(Arc::new(k))
        })
        .await?;

        // SONiC's feature units: `Restart=always`, `RestartSec=30`; the service script creates
        // the local container from `<repo>:latest` when it is missing before `container start`.
        let pre_start: PreStart = {
            let paths = paths.clone();
            let docker = docker.clone();
            Arc::new(move |f: FeatureName| {
                let paths = paths.clone();
                let docker = docker.clone();
                Box::pin(async move {
                    ensure_local_container(&paths, &docker, f.as_str())
                        .await
                        .map_err(|e| PortError::transient(format!("{e:#}")))
                })
            })
        };
        let services = Arc::new(EmulatedServiceManager::with_options(
            options.bin_dir.join("container"),
            paths.env(&docker_host),
            Restart::Always {
                delay: UNIT_RESTART_SEC,
            },
            Some(pre_start),
        ));
        let node_state = Arc::new(NodeState::default());
        let mut lab = Lab {
            paths: paths.clone(),
            options: options.clone(),
            redis,
            dockerd,
            docker_host: docker_host.clone(),
            docker,
            kube,
            kubelet,
            services,
            node_state,
            control: None,
            pulls: None,
            ctrmgrd: None,
        };

        step(
            "emulated service manager and node programs",
            progress,
            async {
                lab.start_control()?;
                Ok(())
            },
        )
        .await?;

        step(
            "snmp.service start (local image, real container + container_startup)",
            progress,
            async {
                lab.unit_start(FEATURE).await?;
                lab.paths
                    .wait_feature(
                        FEATURE,
                        "snmp running locally",
                        Duration::from_secs(60),
                        |s| {
                            s.get("current_owner").map(String::as_str) == Some("local")
                                && s.get("container_version").map(String::as_str)
                                    == Some(LOCAL_VERSION)
                        },
                    )
                    .await?;
                Ok(())
            },
        )
        .await?;

        if options.ctrmgrd {
            step("ctrmgrd", progress, async { lab.start_ctrmgrd().await }).await?;
        }
        Ok(lab)
    }

    /// The engine's `DOCKER_HOST`.
    pub fn docker_host(&self) -> &str {
        &self.docker_host
    }

    /// The docker client of the lab's engine.
    pub fn docker(&self) -> &DockerClient {
        &self.docker
    }

    /// The fake master.
    pub fn kube(&self) -> &FakeKube {
        &self.kube
    }

    /// The emulated kubelet.
    pub fn kubelet(&self) -> &Kubelet {
        &self.kubelet
    }

    /// The emulated service manager.
    pub fn services(&self) -> &EmulatedServiceManager {
        &self.services
    }

    /// The redis server.
    pub fn redis(&self) -> &LabRedis {
        &self.redis
    }

    /// Node-side commands ctrmgrd ran so far (`kubeadm join ...`).
    pub fn node_commands(&self) -> Vec<String> {
        self.node_state
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The node's labels at the API server (empty when the node is not registered).
    pub fn node_labels(&self) -> BTreeMap<String, String> {
        self.kube.store().node_labels(NODE).unwrap_or_default()
    }

    /// Runs a CLI binary (`show`, `config`) of the lab.
    pub fn cli(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        tokio::task::block_in_place(|| self.paths.run(&self.docker_host, program, args))
    }

    /// `show feature status snmp`.
    pub fn show_status(&self) -> anyhow::Result<String> {
        self.cli("show", &["feature", "status", FEATURE])
    }

    /// The lab's DaemonSet of `version` (the first deployment is selected by
    /// `snmp_enabled=true` only; with `gated` also by `snmp_<version>_enabled=true`).
    pub fn daemonset(&self, version: &str, gated: bool) -> anyhow::Result<DaemonSet> {
        feature_daemonset(&self.paths, version, gated)
    }

    /// Standard output and error of a container of the lab's engine, interleaved.
    pub async fn container_logs(&self, id: &str) -> anyhow::Result<String> {
        use futures::StreamExt;
        let docker = crate::docker::connect(&self.docker_host).await?;
        let options = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut stream = docker.logs(id, Some(options));
        let mut text = String::new();
        let read = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.with_context(|| format!("logs of container {id}"))?;
                text.push_str(&chunk.to_string());
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .map_err(|_| anyhow!("logs of container {id}: no end within 30 s"))??;
        Ok(text)
    }

    /// Containers on the engine: (name, image, running).
    pub async fn containers(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        Ok(self
            .docker
            .list_containers(true)
            .await?
            .into_iter()
            .map(|c| {
                (
                    c.names.first().cloned().unwrap_or_default(),
                    c.image,
                    c.state,
                )
            })
            .collect())
    }

    /// Serves the node programs and the registry.
    fn start_control(&mut self) -> anyhow::Result<()> {
        let shim_dir = self.paths.shim_dir();
        std::fs::create_dir_all(&shim_dir)?;
        for name in ["systemctl", "kubeadm", "modprobe"] {
            let link = shim_dir.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&self.options.lab_binary, &link).with_context(|| {
                format!(
                    "cannot link {} to {}",
                    link.display(),
                    self.options.lab_binary.display()
                )
            })?;
        }
        let ctx = Arc::new(ControlCtx {
            store: self.kube.store().clone(),
            paths: self.paths.clone(),
            kubelet: self.kubelet.clone(),
            services: self.services.clone(),
            node: self.node_state.clone(),
        });
        let handler: Handler = Arc::new(move |argv| {
            let ctx = ctx.clone();
            Box::pin(async move { ctx.handle(argv).await })
        });
        self.control = Some(control::serve(
            &control::socket_path(&self.paths.dir),
            handler,
        )?);
        self.pulls = Some(tokio::spawn(serve_pulls(
            self.kube.store().clone(),
            self.docker.clone(),
        )));
        Ok(())
    }

    /// `systemctl start <f>` through the emulated service manager, creating the local container
    /// first when missing (the service script's `docker create`).
    pub async fn unit_start(&self, f: &str) -> anyhow::Result<()> {
        let name = FeatureName::parse(f).map_err(|e| anyhow!("feature {f}: {e}"))?;
        self.services
            .start(&name)
            .await
            .map_err(|e| anyhow!("systemctl start {f}: {e}"))
    }

    /// Starts ctrmgrd (`bin_dir/ctrmgrd`) with the lab's environment; its output goes to
    /// `logs/ctrmgrd.log`.
    pub async fn start_ctrmgrd(&mut self) -> anyhow::Result<()> {
        let bin = self.options.bin_dir.join("ctrmgrd");
        if !bin.is_file() {
            bail!(
                "{} is missing: build it (cargo build -p sonic-daemon)",
                bin.display()
            );
        }
        let log_path = self.paths.logs().join("ctrmgrd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let path = format!(
            "{}:{}",
            self.paths.shim_dir().display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.envs(self.paths.env(&self.docker_host))
            .env("PATH", path)
            .env(
                "SONIC_VERSION_FILE",
                self.paths.dir.join("sonic_version.yml"),
            )
            .env("SONIC_CTRMGRD_KUBE_ROOT", self.paths.kube_root())
            .env("SONIC_KUBE_CA_BUNDLE", self.paths.dir.join("kube/ca.crt"))
            .env("SONIC_CTRMGRD_NODE_NAME", NODE)
            .env(
                "SONIC_CTRMGRD_SYSTEMCTL",
                self.paths.shim_dir().join("systemctl"),
            )
            .env("SONIC_CTRMGRD_SKIP_ROOT_CHECK", "1")
            .env("SONIC_LOG_STDERR", "1")
            .env(CONTROL_ENV, control::socket_path(&self.paths.dir))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        if let Some(pid) = child.id() {
            std::fs::write(self.paths.dir.join("ctrmgrd.pid"), format!("{pid}\n"))?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(status) = child.try_wait()? {
            bail!(
                "ctrmgrd exited at once with {status}; see {}",
                log_path.display()
            );
        }
        self.ctrmgrd = Some(child);
        Ok(())
    }

    /// Whether ctrmgrd still runs.
    pub fn ctrmgrd_running(&mut self) -> bool {
        self.ctrmgrd
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops ctrmgrd (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop_ctrmgrd(&mut self) {
        if let Some(mut c) = self.ctrmgrd.take() {
            if let Some(pid) = c.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            if tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
        let _ = std::fs::remove_file(self.paths.dir.join("ctrmgrd.pid"));
    }

    /// Stops everything: ctrmgrd, units, the kubelet (removing its containers), the engine and
    /// redis.
    pub async fn shutdown(mut self) {
        self.stop_ctrmgrd().await;
        self.services.stop_all().await;
        if let Some(t) = self.control.take() {
            t.abort();
        }
        if let Some(t) = self.pulls.take() {
            t.abort();
        }
        self.kubelet.shutdown(true).await;
        if self.dockerd.is_none() {
            // A shared engine: remove what the lab made there.
            for name in [FEATURE] {
                let _ = self.docker.remove_container(name, true).await;
            }
        }
        if let Some(mut d) = self.dockerd.take() {
            let _ = tokio::task::block_in_place(|| d.stop());
        }
        self.redis.stop();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(t) = self.control.take() {
            t.abort();
        }
        if let Some(t) = self.pulls.take() {
            t.abort();
        }
    }
}

struct ControlCtx {
    store: Arc<crate::fake_kube::Store>,
    paths: LabPaths,
    kubelet: Arc<Kubelet>,
    services: Arc<EmulatedServiceManager>,
    node: Arc<NodeState>,
}

impl ControlCtx {
    async fn handle(&self, argv: Vec<String>) -> Reply {
        self.node
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(argv.join(" "));
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["modprobe", ..] => Reply::ok(),
            ["lab", "daemonset", "delete", version] => {
                let name = match feature_daemonset(&self.paths, version, false) {
                    Ok(ds) => ds.metadata.name.unwrap_or_default(),
                    Err(e) => return Reply::fail(1, format!("{e:#}")),
                };
                match self.store.delete_daemonset("default", &name) {
                    Ok(()) => Reply::ok(),
                    Err(e) => Reply::fail(1, e.to_string()),
                }
            }
            ["lab", "daemonset", "create", version, gate] => {
                let ds = match feature_daemonset(&self.paths, version, *gate == "gated") {
                    Ok(ds) => ds,
                    Err(e) => return Reply::fail(1, format!("{e:#}")),
                };
                match self.store.create_daemonset(&ds) {
                    Ok(_) => Reply::ok(),
                    Err(e) => Reply::fail(1, e.to_string()),
                }
            }
            ["lab", "labels"] => Reply {
                stdout: serde_json::to_string(&self.store.node_labels(NODE).unwrap_or_default())
                    .unwrap_or_default(),
                ..Reply::default()
            },
            ["kubeadm", "join", ..] => {
                let p =
                    sonic_kube_adapter::KubePaths::under(&self.paths.kube_root()).kubelet_config;
                if let Some(parent) = p.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                match std::fs::write(&p, "kind: KubeletConfiguration\n") {
                    Ok(()) => {
                        // kubelet registers the node once joined.
                        self.kubelet.set_running(true);
                        Reply::ok()
                    }
                    Err(e) => Reply::fail(1, format!("cannot write {}: {e}", p.display())),
                }
            }
            ["kubeadm", "reset", ..] => {
                let p =
                    sonic_kube_adapter::KubePaths::under(&self.paths.kube_root()).kubelet_config;
                let _ = std::fs::remove_file(p);
                Reply::ok()
            }
            ["systemctl", verb, unit] | ["systemctl", verb, "--quiet", unit] => {
                self.systemctl(verb, unit).await
            }
            _ => Reply::fail(1, format!("lab: unsupported command {}", argv.join(" "))),
        }
    }

    async fn systemctl(&self, verb: &str, unit: &str) -> Reply {
        if unit == "kubelet" {
            return match verb {
                "start" | "restart" => {
                    self.kubelet.set_running(true);
                    Reply::ok()
                }
                "stop" => {
                    self.kubelet.set_running(false);
                    Reply::ok()
                }
                "is-active" => Reply {
                    code: if self.kubelet.is_running() { 0 } else { 3 },
                    ..Reply::default()
                },
                _ => Reply::ok(),
            };
        }
        let Ok(f) = FeatureName::parse(unit) else {
            return Reply::fail(5, format!("Unit {unit}.service not found."));
        };
        let result = match verb {
            "reset-failed" => Ok(()),
            "is-active" => {
                return match self.services.is_active(&f).await {
                    Ok(true) => Reply::ok(),
                    Ok(false) => Reply::fail(3, ""),
                    Err(e) => Reply::fail(1, e.to_string()),
                };
            }
            // The units' pre-start hook creates a missing local container.
            "start" | "restart" => {
                if verb == "start" {
                    self.services.start(&f).await
                } else {
                    self.services.restart(&f).await
                }
            }
            "stop" => self.services.stop(&f).await,
            other => return Reply::fail(1, format!("lab: unsupported systemctl {other}")),
        };
        match result {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::fail(1, format!("Job for {unit}.service failed: {e}")),
        }
    }
}

/// The local container of feature `f`, created from `<repo>:latest` when missing, the way
/// SONiC's service script does before `container start`.
async fn ensure_local_container(
    paths: &LabPaths,
    docker: &DockerClient,
    f: &str,
) -> anyhow::Result<()> {
    if docker.inspect_container(f).await?.is_some() {
        return Ok(());
    }
    let mut spec = CreateSpec::new(f, &format!("{LOCAL_REPO}:latest"));
    spec.env = vec![
        ("RUNTIME_OWNER".into(), "local".into()),
        (
            "SONIC_DB_CONFIG".into(),
            paths.database_config().display().to_string(),
        ),
        ("SONIC_LOG_STDERR".into(), "1".into()),
    ];
    spec.binds = redis_binds(paths);
    spec.host_network = true;
    docker
        .create_container(&spec)
        .await
        .with_context(|| format!("cannot create the local container {f}"))?;
    Ok(())
}

fn redis_binds(paths: &LabPaths) -> Vec<Bind> {
    let redis_dir = paths.dir.join("redis").display().to_string();
    let config = paths.database_config().display().to_string();
    vec![
        Bind {
            host: redis_dir.clone(),
            container: redis_dir,
            read_only: false,
        },
        Bind {
            host: config.clone(),
            container: config,
            read_only: true,
        },
    ]
}

/// The DaemonSet of snmp `version` from the project's manifest generator, with the lab's redis
/// socket and database config mounted. Ungated, it selects `snmp_enabled=true` only.
fn feature_daemonset(paths: &LabPaths, version: &str, gated: bool) -> anyhow::Result<DaemonSet> {
    let redis_dir = paths.dir.join("redis").display().to_string();
    let config = paths.database_config().display().to_string();
    let yaml = format!(
        "name: {FEATURE}\nruntime:\n  image: {KUBE_REPO}\n  version: \"{version}\"\n  redis-socket: false\n  mounts:\n    - {{ host-path: \"{redis_dir}\", container-path: \"{redis_dir}\" }}\n    - {{ host-path: \"{config}\", container-path: \"{config}\", read-only: true }}\n  env: {{ SONIC_DB_CONFIG: \"{config}\", SONIC_LOG_STDERR: \"1\" }}\n  kube-namespace: default\n"
    );
    let rt = FeatureRuntime::from_yaml(Path::new("lab-snmp.yaml"), &yaml)
        .map_err(|e| anyhow!("lab manifest: {e}"))?;
    let mut ds = daemonsets(&rt)
        .into_iter()
        .next()
        .context("the manifest generator made no daemon set")?;
    if !gated
        && let Some(sel) = ds
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|s| s.node_selector.as_mut())
    {
        sel.retain(|k, _| k == &format!("{FEATURE}_enabled"));
    }
    Ok(ds)
}

/// The start script of every lab image: SONiC's `start.sh` shape, admission by
/// `container_startup`, then the application (a loop that ends on SIGTERM; with `crash`, an
/// application that fails at once).
fn start_script(container_startup: &Path, crash: bool) -> String {
    let app = if crash {
        format!("echo \"{FEATURE} $IMAGE_VERSION fails\" >&2\nexit 1\n")
    } else {
        "while :; do sleep 1 & wait $!; done\n".to_string()
    };
    format!(
        "#!/bin/sh\n\
         # start.sh of a SONiC feature container (lab image)\n\
         trap 'exit 0' TERM INT\n\
         [ -n \"$RUNTIME_OWNER\" ] || RUNTIME_OWNER=kube\n\
         {} -f {FEATURE} -o \"$RUNTIME_OWNER\" -v \"$IMAGE_VERSION\" &\n\
         wait $! || exit 1\n\
         echo \"{APP_STARTED} {FEATURE} $IMAGE_VERSION (owner $RUNTIME_OWNER)\"\n\
         {app}",
        container_startup.display()
    )
}

/// Builds the local image (`docker-snmp:1.0.0` and `:latest`) and the kube images.
async fn build_feature_images(
    host: &str,
    docker: &DockerClient,
    bin_dir: &Path,
) -> anyhow::Result<()> {
    let startup = bin_dir.join("container_startup");
    let spec = |version: &str, crash: bool| {
        ImageSpec::new()
            .binary(&startup)
            .file(
                "/usr/bin/start.sh",
                start_script(&startup, crash).into_bytes(),
                0o755,
            )
            .env("IMAGE_VERSION", version)
            .cmd(["/usr/bin/start.sh"])
    };
    let local = format!("{LOCAL_REPO}:{LOCAL_VERSION}");
    build_image(host, &local, &spec(LOCAL_VERSION, false)).await?;
    docker.tag_image(&local, LOCAL_REPO, "latest").await?;
    // The master also offers the version the switch ships (held by `container_startup`).
    docker.tag_image(&local, KUBE_REPO, LOCAL_VERSION).await?;
    for v in [KUBE_VERSION, UPGRADE_VERSION] {
        build_image(host, &format!("{KUBE_REPO}:{v}"), &spec(v, false)).await?;
    }
    build_image(
        host,
        &format!("{KUBE_REPO}:{FAILING_VERSION}"),
        &spec(FAILING_VERSION, true),
    )
    .await?;
    for v in [
        LOCAL_VERSION,
        KUBE_VERSION,
        UPGRADE_VERSION,
        FAILING_VERSION,
    ] {
        docker
            .tag_image(&format!("{KUBE_REPO}:{v}"), REGISTRY_REPO, v)
            .await?;
    }
    Ok(())
}

/// The registry side of `docker pull`: the emulated kubelet has no registry and reports
/// `ErrImagePull` for a missing image, retrying on every pass; this task puts back any
/// `acr.example/docker-snmp:<v>` that a pod of this node needs from the lab's registry copy
/// (ctrmgrd's image clean-up removes versions that do not run).
async fn serve_pulls(store: Arc<crate::fake_kube::Store>, docker: Arc<DockerClient>) {
    loop {
        let wanted: std::collections::BTreeSet<String> = store
            .pods(None)
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(NODE))
            .filter_map(|p| p.spec)
            .flat_map(|s| s.containers.into_iter().filter_map(|c| c.image))
            .collect();
        for image in wanted {
            let Some(tag) = image.strip_prefix(&format!("{KUBE_REPO}:")) else {
                continue;
            };
            if matches!(docker.inspect_image(&image).await, Ok(None)) {
                let _ = docker
                    .tag_image(&format!("{REGISTRY_REPO}:{tag}"), KUBE_REPO, tag)
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// ctrmgrd's files: node credentials (signed by the master's CA), the flannel conflist, timers,
/// version file and the kube-support marker.
fn write_node_files(paths: &LabPaths, kube: &FakeKube) -> anyhow::Result<()> {
    let kp = sonic_kube_adapter::KubePaths::under(&paths.kube_root());
    let id = kube.client_identity("sonic")?;
    for (p, content) in [
        (&kp.client_cert, id.cert_pem.as_str()),
        (&kp.client_key, id.key_pem.as_str()),
        (
            &kp.flannel_conflist,
            "{\"name\":\"cbr0\",\"cniVersion\":\"0.3.1\",\"plugins\":[]}\n",
        ),
    ] {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, content).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// Writes ctrmgrd's timers, version file and the kube-support marker.
pub fn write_switch_files(paths: &LabPaths, timers: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(&paths.dir)?;
    std::fs::write(paths.timers(), serde_json::to_vec_pretty(timers)?)?;
    std::fs::write(
        paths.dir.join("sonic_version.yml"),
        format!("build_version: '{SONIC_VERSION}'\nasic_type: vs\n"),
    )?;
    std::fs::write(paths.ctrmgrd_unit(), "[Unit]\nDescription=lab marker\n")?;
    Ok(())
}
