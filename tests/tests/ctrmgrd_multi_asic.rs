//! ctrmgrd end to end on a multi-ASIC switch (HLD "Multi-ASIC support"): a redis-server for the
//! host and one per ASIC namespace (`database_global.json`), the real dockerd, the fake
//! Kubernetes API server over HTTPS, the emulated service manager running the real `container`
//! binary for the instance units (`<f>0`, `<f>1`, SONiC's `<f>@0`, `<f>@1`), an emulated kubelet
//! that only has a DaemonSet for ASIC 1, and ctrmgrd in-process.
//!
//! FEATURE configuration is the host's CONFIG_DB, once for all ASICs; each instance's status is
//! `FEATURE|<f>` in its own namespace's STATE_DB; node labels are named after the instance
//! (`<f>1_enabled`), as its per-ASIC DaemonSet selects. The `container` binary and ctrmgrd must
//! agree on all of that: the switch-over below only happens when they do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ctrmgrd_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use ctrmgrd_common::{
    KUBE_VERSION, LOCAL_VERSION, NODE, REGISTRY, RunningDaemon, TIMERS, wait_for,
};
use sonic_daemon::instances::Instances;
use sonic_daemon::report::MemoryLog;
use sonic_daemon::services::SystemClock;
use sonic_daemon::wiring::{Outside, open_databases};
use sonic_daemon::{Options, run};
use sonic_db::{Fields, Namespace, RedisFeatureStore, SonicDb, SonicDbConfig};
use sonic_docker_adapter::{BollardRuntime, CreateSpec, DockerClient};
use sonic_feature_core::exec::container_startup;
use sonic_feature_core::instances::{AsicNumber, Instance, InstanceStore};
use sonic_feature_core::model::{ContainerId, FeatureName, RemoteCtrConfig, SetOwner, Version};
use sonic_feature_core::ports::FeatureStore;
use sonic_feature_core::startup::StartupArgs;
use sonic_kube_adapter::{
    CommandError, CommandOutput, CommandRunner, CommandSpec, KubeNodeCluster, KubePaths,
    KubeSettings,
};
use sonic_tests::docker::{ImageSpec, build_image, docker_host};
use sonic_tests::fake_kube::FakeKube;
use sonic_tests::redis::MultiAsicRedis;
use sonic_tests::service_manager::{EmulatedServiceManager, workspace_binary};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(90);
const ASICS: usize = 2;

/// Node-side commands of the join: successful; `kubeadm join` writes kubelet's configuration.
#[derive(Debug)]
struct Node {
    kubelet_config: std::path::PathBuf,
}

#[async_trait]
impl CommandRunner for Node {
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        if spec.argv.first().map(String::as_str) == Some("kubeadm") {
            match spec.argv.get(1).map(String::as_str) {
                Some("join") => {
                    std::fs::create_dir_all(self.kubelet_config.parent().unwrap()).unwrap();
                    std::fs::write(&self.kubelet_config, "kind: KubeletConfiguration\n").unwrap();
                }
                Some("reset") => {
                    let _ = std::fs::remove_file(&self.kubelet_config);
                }
                _ => {}
            }
        }
        Ok(CommandOutput {
            code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
        })
    }
}

/// A switch with `ASICS` ASIC namespaces and one feature running once per ASIC.
struct MultiAsicSwitch {
    dir: tempfile::TempDir,
    redis: MultiAsicRedis,
    kube: FakeKube,
    docker_host: String,
    docker: DockerClient,
    feature: FeatureName,
    services: Arc<EmulatedServiceManager>,
    kube_settings: KubeSettings,
    node: Arc<Node>,
    timers_path: std::path::PathBuf,
    container_bin: std::path::PathBuf,
    env: Vec<(String, std::ffi::OsString)>,
    kubelet_stop: Arc<AtomicBool>,
    kubelet: Option<JoinHandle<()>>,
}

impl MultiAsicSwitch {
    /// Images `docker-<f>:1.0.0` (tagged latest, the local containers `<f>0`, `<f>1`) and
    /// `registry.test/sonic/docker-<f>:2.0.0`; the master in the host's CONFIG_DB and
    /// `FEATURE|<f>` with `config`.
    async fn new(feature: &str, config: &[(&str, &str)]) -> anyhow::Result<Self> {
        let docker_host = docker_host().context("a docker engine must be available")?;
        let dir = tempfile::tempdir()?;
        let redis = MultiAsicRedis::start(ASICS).context("redis-servers must start")?;
        let kube = FakeKube::start_https().await?;
        kube.store().add_node(NODE, &[], true);
        let docker = DockerClient::new(&docker_host)?;
        let feature = FeatureName::parse(feature)?;

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
        let node = Arc::new(Node {
            kubelet_config: paths.kubelet_config.clone(),
        });
        let mut kube_settings = KubeSettings::new(NODE).with_paths(paths);
        kube_settings.request_timeout = Duration::from_secs(3);
        kube_settings.ca_fetch_timeout = Duration::from_secs(3);

        // One image for every instance (HLD: "share the same image with only runtime
        // differences"); the idle script ends on SIGTERM at once.
        let local_image = format!("docker-{feature}");
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
            &format!("{REGISTRY}/docker-{feature}:{KUBE_VERSION}"),
            &spec(KUBE_VERSION),
        )
        .await?;

        let timers_path = dir.path().join("remote_ctr.config.json");
        std::fs::write(&timers_path, TIMERS)?;
        let unit_marker = dir.path().join("ctrmgrd.service");
        std::fs::write(&unit_marker, "")?;
        let container_bin = workspace_binary("container")?;
        let env: Vec<(String, std::ffi::OsString)> = vec![
            (
                "SONIC_DB_CONFIG".into(),
                redis.host_config_path().into_os_string(),
            ),
            (
                "SONIC_DB_GLOBAL_CONFIG".into(),
                redis.global_config_path().into_os_string(),
            ),
            ("DOCKER_HOST".into(), docker_host.clone().into()),
            ("SONIC_CTRMGRD_UNIT".into(), unit_marker.into_os_string()),
            (
                "SONIC_REMOTE_CTR_CONFIG".into(),
                timers_path.clone().into_os_string(),
            ),
        ];
        let services = Arc::new(EmulatedServiceManager::new(
            container_bin.clone(),
            env.clone(),
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
            node,
            timers_path,
            container_bin,
            env,
            kubelet_stop: Arc::new(AtomicBool::new(false)),
            kubelet: None,
        };
        for n in 0..ASICS {
            let name = sw.instance(n).name().to_string();
            for stale in [name.clone(), format!("k8s_{name}")] {
                let _ = sw.docker.remove_container(&stale, true).await;
            }
            let mut create = CreateSpec::new(&name, &format!("{local_image}:latest"));
            create.env.push(("RUNTIME_OWNER".into(), "local".into()));
            sw.docker.create_container(&create).await?;
        }
        let server: Fields = [
            ("ip".to_string(), "127.0.0.1".to_string()),
            ("port".to_string(), sw.kube.addr().port().to_string()),
            ("insecure".to_string(), "false".to_string()),
        ]
        .into();
        let config_db = sw.host_db("CONFIG_DB").await?;
        config_db
            .set_entry("KUBERNETES_MASTER", "SERVER", &server)
            .await?;
        let fields: Fields = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config_db
            .set_entry("FEATURE", sw.feature.as_str(), &fields)
            .await?;
        Ok(sw)
    }

    /// The feature on ASIC `n`.
    fn instance(&self, n: usize) -> Instance {
        Instance::new(
            self.feature.clone(),
            AsicNumber::parse(&n.to_string()).unwrap(),
        )
        .unwrap()
    }

    fn db_config(&self) -> anyhow::Result<SonicDbConfig> {
        Ok(SonicDbConfig::from_paths(
            &self.redis.host_config_path(),
            Some(&self.redis.global_config_path()),
        )?)
    }

    async fn host_db(&self, db: &str) -> anyhow::Result<SonicDb> {
        Ok(SonicDb::open_file(&self.redis.host_config_path(), db).await?)
    }

    async fn asic_db(&self, n: usize, db: &str) -> anyhow::Result<SonicDb> {
        Ok(SonicDb::open_file(self.redis.asic(n).database_config_path(), db).await?)
    }

    /// STATE_DB `FEATURE|<f>` of ASIC `n`'s namespace.
    async fn asic_status(&self, n: usize) -> Fields {
        match self.asic_db(n, "STATE_DB").await {
            Ok(db) => db
                .get_entry("FEATURE", self.feature.as_str())
                .await
                .unwrap_or_default(),
            Err(_) => Fields::new(),
        }
    }

    async fn asic_field(&self, n: usize, field: &str) -> Option<String> {
        self.asic_status(n).await.get(field).cloned()
    }

    /// Keys of the host's STATE_DB `FEATURE` table.
    async fn host_status_keys(&self) -> Vec<String> {
        match self.host_db("STATE_DB").await {
            Ok(db) => db.keys("FEATURE").await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    fn node_labels(&self) -> BTreeMap<String, String> {
        self.kube.store().node_labels(NODE).unwrap_or_default()
    }

    async fn running(&self, container: &str) -> bool {
        matches!(
            self.docker.inspect_container(container).await,
            Ok(Some(ref c)) if c.running
        )
    }

    /// The real `container` binary with the switch's environment.
    async fn container(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let mut cmd = tokio::process::Command::new(&self.container_bin);
        cmd.args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        Ok(tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .context("container did not finish within 60 s")??)
    }

    /// The emulated kubelet with a DaemonSet for ASIC `asic` only: registers the node again
    /// after a join deleted it; while `<f><asic>_enabled=true` runs the pod `k8s_<f><asic>`
    /// from the kube image and its `container_startup -o kube` admission, which reads and writes
    /// through the core's `InstanceStore` (the instance's status in its namespace).
    fn start_kubelet(&mut self, asic: usize) -> anyhow::Result<()> {
        let store = self.kube.store().clone();
        let stop = self.kubelet_stop.clone();
        let docker = DockerClient::new(&self.docker_host)?;
        let instance = self.instance(asic);
        let image = format!("{REGISTRY}/docker-{}:{KUBE_VERSION}", self.feature);
        let cfg = self.db_config()?;
        let namespace = Namespace::Asic(format!("asic{asic}"));
        self.kubelet = Some(tokio::spawn(async move {
            let name = instance.name().clone();
            let label = format!("{name}_enabled");
            let pod_name = format!("k8s_{name}");
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
                    let _ = docker.remove_container(&pod_name, true).await;
                    let mut spec = CreateSpec::new(&pod_name, &image);
                    spec.env.push(("RUNTIME_OWNER".into(), "kube".into()));
                    if let Ok(id) = docker.create_container(&spec).await
                        && docker.start_container(&id).await.is_ok()
                    {
                        if let Some(a) = admission.take() {
                            a.abort();
                        }
                        let instance = instance.clone();
                        let cfg = cfg.clone();
                        let namespace = namespace.clone();
                        admission = Some(tokio::spawn(async move {
                            let Ok(host) = RedisFeatureStore::open(&cfg, &Namespace::Host).await
                            else {
                                return;
                            };
                            let Ok(asic) = cfg.open(&namespace, "STATE_DB").await else {
                                return;
                            };
                            let asic = RedisFeatureStore::new(host.config_db().clone(), asic);
                            let store: Arc<dyn FeatureStore> = Arc::new(InstanceStore::new(
                                Arc::new(host),
                                Arc::new(asic),
                                instance.clone(),
                            ));
                            let args = StartupArgs {
                                feature: instance.name().clone(),
                                owner: SetOwner::Kube,
                                version: Version::parse(KUBE_VERSION).unwrap(),
                                own_id: ContainerId::parse(&id[..12]).ok(),
                            };
                            let clock = SystemClock::new();
                            let _ = container_startup(
                                store.as_ref(),
                                &clock,
                                tokio::time::sleep,
                                |_| {},
                                args,
                            )
                            .await;
                        }));
                    }
                } else if !wanted && running {
                    let _ = docker.remove_container(&pod_name, true).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Some(a) = admission {
                a.abort();
            }
        }));
        Ok(())
    }

    /// ctrmgrd in-process over the databases of every namespace; the service manager records
    /// the systemd unit names ctrmgrd's instance registry gives.
    async fn start_daemon(&self) -> anyhow::Result<(RunningDaemon, Instances)> {
        let dbs = open_databases(&self.db_config()?).await?;
        let instances = dbs.instances.clone();
        let names = instances.clone();
        self.services
            .set_unit_names(Arc::new(move |f: &FeatureName| names.unit(f)));
        let docker = Arc::new(BollardRuntime::new(DockerClient::new(&self.docker_host)?));
        let cluster = KubeNodeCluster::new(self.kube_settings.clone(), self.node.clone());
        let outside = Outside {
            runtime: docker.clone(),
            images: docker,
            cluster: Arc::new(cluster),
            services: self.services.clone(),
            clock: Arc::new(SystemClock::new()),
        };
        let ports = dbs.ports(outside);
        let mut options = Options::new(RemoteCtrConfig::from_json_str(TIMERS)?, "20201230.111");
        options.timers_file = Some(self.timers_path.clone());
        options.retry_max = Duration::from_secs(2);
        let (tx, rx) = mpsc::unbounded_channel();
        let log = MemoryLog::new();
        let handle = tokio::spawn(run(
            dbs.sources,
            ports,
            instances.clone(),
            options,
            Arc::new(log.clone()),
            rx,
        ));
        Ok((
            RunningDaemon {
                control: tx,
                handle,
                log,
            },
            instances,
        ))
    }

    async fn teardown(mut self) {
        self.kubelet_stop.store(true, Ordering::SeqCst);
        if let Some(k) = self.kubelet.take() {
            let _ = k.await;
        }
        self.services.stop_all().await;
        for n in 0..ASICS {
            let name = self.instance(n).name().to_string();
            for c in [name.clone(), format!("k8s_{name}")] {
                let _ = self.docker.remove_container(&c, true).await;
            }
        }
        drop(self.dir);
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_on_asic1_switches_only_unit_at_1_to_kube_and_leaves_asic0_local()
-> anyhow::Result<()> {
    let mut sw =
        MultiAsicSwitch::new("masnmp", &[("set_owner", "local"), ("state", "enabled")]).await?;
    let f = sw.feature.to_string();
    let (i0, i1) = (sw.instance(0), sw.instance(1));
    let (n0, n1) = (i0.name().to_string(), i1.name().to_string());

    // Boot: `systemctl start <f>@0 <f>@1` runs `container start <f>0` / `<f>1`; each status
    // lands in its own namespace under the feature's name, none in the host's STATE_DB.
    sw.services.start(i0.name()).await?;
    sw.services.start(i1.name()).await?;
    for (n, name) in [(0, &n0), (1, &n1)] {
        wait_for(&format!("{name} running locally"), DEADLINE, || async {
            let s = sw.asic_status(n).await;
            s.get("current_owner").map(String::as_str) == Some("local")
                && s.get("container_id") == Some(name)
                && s.get("system_state").map(String::as_str) == Some("up")
        })
        .await?;
        assert!(sw.running(name).await, "local container {name}");
    }
    assert!(
        sw.host_status_keys().await.is_empty(),
        "no instance status in the host's STATE_DB: {:?}",
        sw.host_status_keys().await
    );
    // `container id` finds each instance's status in its namespace.
    for name in [&n0, &n1] {
        let out = sw.container(&["id", name]).await?;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(&stdout(&out), name);
    }

    sw.start_kubelet(1)?;
    let (daemon, instances) = sw.start_daemon().await?;
    wait_for("connected=true", DEADLINE, || async {
        let db = sw.host_db("STATE_DB").await.unwrap();
        db.get_entry("KUBERNETES_MASTER", "SERVER")
            .await
            .unwrap_or_default()
            .get("connected")
            .map(String::as_str)
            == Some("true")
    })
    .await?;
    // ctrmgrd learnt both instances from the ASIC namespaces' STATE_DB.
    wait_for("both instances registered", DEADLINE, || async {
        instances.instances_of(&sw.feature).len() == ASICS
    })
    .await?;
    assert_eq!(instances.unit(i0.name()), format!("{f}@0"));
    assert_eq!(instances.unit(i1.name()), format!("{f}@1"));
    // Locally owned instances carry `<instance>_enabled=false` (written by `container start`
    // into the host's desired labels, pushed by ctrmgrd); no label of the bare feature name.
    wait_for(
        "<f>0_enabled=false and <f>1_enabled=false",
        DEADLINE,
        || async {
            let l = sw.node_labels();
            l.get(&format!("{n0}_enabled")).map(String::as_str) == Some("false")
                && l.get(&format!("{n1}_enabled")).map(String::as_str) == Some("false")
        },
    )
    .await?;
    let before = sw.services.unit_calls();

    // The host's FEATURE config is the one configuration of every instance: kube owns both.
    // Only ASIC 1 has a DaemonSet: its pod's admission writes into asic1's STATE_DB, ctrmgrd
    // reacts by restarting `<f>@1` and nothing else, and the unit hands over to the pod.
    sw.host_db("CONFIG_DB")
        .await?
        .mod_entry(
            "FEATURE",
            &f,
            &[("set_owner".to_string(), "kube".to_string())].into(),
        )
        .await?;
    wait_for(
        "<f>0_enabled=true and <f>1_enabled=true",
        DEADLINE,
        || async {
            let l = sw.node_labels();
            l.get(&format!("{n0}_enabled")).map(String::as_str) == Some("true")
                && l.get(&format!("{n1}_enabled")).map(String::as_str) == Some("true")
        },
    )
    .await?;
    wait_for(
        "asic1: current_owner=kube, remote_state=running",
        DEADLINE,
        || async {
            let s = sw.asic_status(1).await;
            s.get("current_owner").map(String::as_str) == Some("kube")
                && s.get("remote_state").map(String::as_str) == Some("running")
        },
    )
    .await?;
    let pod_id = sw
        .docker
        .inspect_container(&format!("k8s_{n1}"))
        .await?
        .context("the pod of asic1")?
        .id;
    assert_eq!(
        sw.asic_field(1, "container_id").await.as_deref(),
        Some(&pod_id[..12]),
        "asic1's status names the pod"
    );
    assert_eq!(
        sw.asic_field(1, "container_version").await.as_deref(),
        Some(KUBE_VERSION)
    );
    wait_for("the local container of asic1 stopped", DEADLINE, || async {
        !sw.running(&n1).await
    })
    .await?;
    let calls = sw.services.unit_calls()[before.len()..].to_vec();
    assert!(
        calls.contains(&format!("restart {f}@1")),
        "ctrmgrd restarted {f}@1: {calls:?}"
    );
    assert!(
        calls.iter().all(|c| c == &format!("restart {f}@1")),
        "no other unit was touched: {calls:?}"
    );
    assert!(
        daemon
            .log
            .count(&format!("Restarted {n1} to switch to kube"))
            >= 1,
        "{:?}",
        daemon.log.lines()
    );
    // `container id <f>1` follows asic1's status to the pod.
    let out = sw.container(&["id", &n1]).await?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), pod_id[..12]);

    // ASIC 0 had no deployment: still the local container, its status untouched, its unit
    // never stopped or restarted.
    let s0 = sw.asic_status(0).await;
    assert_eq!(
        s0.get("current_owner").map(String::as_str),
        Some("local"),
        "{s0:?}"
    );
    assert_eq!(s0.get("container_id"), Some(&n0), "{s0:?}");
    assert_eq!(
        s0.get("remote_state").map(String::as_str),
        Some("none"),
        "{s0:?}"
    );
    assert!(sw.running(&n0).await, "local container {n0} still runs");
    assert_eq!(
        sw.services.count("stop", &n0),
        0,
        "{:?}",
        sw.services.commands()
    );
    assert_eq!(
        sw.services.count("start", &n0),
        1,
        "{:?}",
        sw.services.commands()
    );
    let out = sw.container(&["id", &n0]).await?;
    assert_eq!(stdout(&out), n0);

    // Labels as designed: per instance name, what the per-ASIC DaemonSets select on; the version
    // label of the deployed instance only; nothing under the bare feature name; no instance
    // status ever written to the host.
    let labels = sw.node_labels();
    assert_eq!(
        labels
            .get(&format!("{n1}_{KUBE_VERSION}_enabled"))
            .map(String::as_str),
        Some("true"),
        "{labels:?}"
    );
    assert!(
        !labels.contains_key(&format!("{n0}_{KUBE_VERSION}_enabled")),
        "{labels:?}"
    );
    assert!(
        labels.keys().all(|k| !k.starts_with(&format!("{f}_"))),
        "no label of the bare feature name: {labels:?}"
    );
    assert!(
        sw.host_status_keys().await.is_empty(),
        "{:?}",
        sw.host_status_keys().await
    );

    daemon.terminate().await?;
    sw.teardown().await;
    Ok(())
}

/// The real `container` binary with `env`, at most 60 s.
async fn run_container(
    env: &[(String, std::ffi::OsString)],
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    run_program("container", env, args).await
}

/// Runs the workspace binary `name` with `env` and `args`, for at most 60 s.
async fn run_program(
    name: &str,
    env: &[(String, std::ffi::OsString)],
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    let mut cmd = tokio::process::Command::new(workspace_binary(name)?);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    Ok(tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .with_context(|| format!("{name} did not finish within 60 s"))??)
}

/// `container` and ctrmgrd's routed store, each writing what the other then reads: an instance's
/// status is its feature's entry in its ASIC namespace's STATE_DB, its configuration the host's
/// entry of its feature. The binary resolves a bare name with the core's rule: a feature whose
/// own name ends in digits, a host feature named like an instance, an instance on no ASIC of the
/// platform (upstream's local default, in the host) and an unknown name. `state` and `id` never
/// need Docker: `DOCKER_HOST` points nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_binary_and_ctrmgrd_agree_on_where_an_instance_lives() -> anyhow::Result<()> {
    let redis = MultiAsicRedis::start(ASICS).context("redis-servers must start")?;
    let dir = tempfile::tempdir()?;
    let unit_marker = dir.path().join("ctrmgrd.service");
    std::fs::write(&unit_marker, "")?;
    let env: Vec<(String, std::ffi::OsString)> = vec![
        (
            "SONIC_DB_CONFIG".into(),
            redis.host_config_path().into_os_string(),
        ),
        (
            "SONIC_DB_GLOBAL_CONFIG".into(),
            redis.global_config_path().into_os_string(),
        ),
        (
            "DOCKER_HOST".into(),
            format!("unix://{}", dir.path().join("no-docker.sock").display()).into(),
        ),
        ("SONIC_CTRMGRD_UNIT".into(), unit_marker.into_os_string()),
    ];
    let host_config = SonicDb::open_file(&redis.host_config_path(), "CONFIG_DB").await?;
    for (feature, owner) in [("mabgp", "kube"), ("mab1", "local"), ("mahost0", "local")] {
        host_config
            .set_entry(
                "FEATURE",
                feature,
                &[("set_owner".to_string(), owner.to_string())].into(),
            )
            .await?;
    }
    let host_state = SonicDb::open_file(&redis.host_config_path(), "STATE_DB").await?;
    let asic_state =
        |n: usize| SonicDb::open_file(redis.asic(n).database_config_path(), "STATE_DB");
    let ok = |out: &std::process::Output| {
        assert!(out.status.success(), "{out:?}");
        stdout(out)
    };

    // `container` writes instance mabgp1: asic1's FEATURE|mabgp, nothing in the host or asic0.
    let out = run_container(
        &env,
        &[
            "state",
            "mabgp1",
            "up",
            "kube",
            "--id",
            "0123456789ab",
            "--image-version",
            "2.0.0",
        ],
    )
    .await?;
    ok(&out);
    let s = asic_state(1).await?.get_entry("FEATURE", "mabgp").await?;
    assert_eq!(
        s.get("current_owner").map(String::as_str),
        Some("kube"),
        "{s:?}"
    );
    assert_eq!(
        s.get("container_id").map(String::as_str),
        Some("0123456789ab")
    );
    assert!(host_state.keys("FEATURE").await?.is_empty());
    assert!(asic_state(0).await?.keys("FEATURE").await?.is_empty());

    // ctrmgrd's store, with the instance registered as the daemon does from asic1's STATE_DB
    // (store 2: host, asic0, asic1), reads the same status and the host's config of `mabgp`.
    let dbs = open_databases(&SonicDbConfig::from_paths(
        &redis.host_config_path(),
        Some(&redis.global_config_path()),
    )?)
    .await?;
    let mabgp = FeatureName::parse("mabgp")?;
    let name = dbs
        .instances
        .register(2, &Namespace::Asic("asic1".into()), &mabgp)?;
    assert_eq!(name.as_str(), "mabgp1");
    assert_eq!(dbs.instances.unit(&name), "mabgp@1");
    let status = dbs.store.feature_status(&name).await?;
    assert_eq!(status.current_owner.to_string(), "kube");
    assert_eq!(status.container_id.as_deref(), Some("0123456789ab"));
    assert_eq!(
        status.container_version.map(|v| v.to_string()).as_deref(),
        Some("2.0.0")
    );
    let config = dbs.store.feature_config(&name).await?.context("config")?;
    assert_eq!(config.set_owner, SetOwner::Kube);

    // ctrmgrd writes, `container id` reads.
    dbs.store
        .update_feature_status(
            &name,
            &sonic_feature_core::model::StatusUpdate::new().container_id("fedcba987654"),
        )
        .await?;
    assert_eq!(
        ok(&run_container(&env, &["id", "mabgp1"]).await?),
        "fedcba987654"
    );
    assert!(host_state.keys("FEATURE").await?.is_empty());

    // `mab11` is feature `mab1` (configured) on asic1, not `mab` on ASIC 11.
    ok(&run_container(&env, &["state", "mab11", "up", "local"]).await?);
    let s = asic_state(1).await?.get_entry("FEATURE", "mab1").await?;
    assert_eq!(
        s.get("container_id").map(String::as_str),
        Some("mab11"),
        "{s:?}"
    );
    assert_eq!(ok(&run_container(&env, &["id", "mab11"]).await?), "mab11");

    // `container_startup` inside the instance's container records its version in the same
    // place (asic1's FEATURE|mab1), never under the instance name in the host (as after the
    // unit's `container start`, which records system_state).
    asic_state(1)
        .await?
        .mod_entry(
            "FEATURE",
            "mab1",
            &[("system_state".to_string(), "up".to_string())].into(),
        )
        .await?;
    ok(&run_program(
        "container_startup",
        &env,
        &["-f", "mab11", "-o", "local", "-v", "1.2.3"],
    )
    .await?);
    let s = asic_state(1).await?.get_entry("FEATURE", "mab1").await?;
    assert_eq!(
        s.get("container_version").map(String::as_str),
        Some("1.2.3"),
        "{s:?}"
    );
    assert_eq!(s.get("current_owner").map(String::as_str), Some("local"));
    assert!(
        host_state.get_entry("FEATURE", "mab11").await?.is_empty(),
        "container_startup wrote the host's FEATURE|mab11"
    );

    // `mahost0` is configured under its own name: a host feature.
    ok(&run_container(&env, &["state", "mahost0", "up", "local"]).await?);
    let s = host_state.get_entry("FEATURE", "mahost0").await?;
    assert_eq!(
        s.get("current_owner").map(String::as_str),
        Some("local"),
        "{s:?}"
    );
    assert!(
        asic_state(0)
            .await?
            .get_entry("FEATURE", "mahost")
            .await?
            .is_empty()
    );

    // `mabgp7`: ASIC 7 does not exist here; upstream's behaviour, defaults in the host.
    assert_eq!(ok(&run_container(&env, &["id", "mabgp7"]).await?), "mabgp7");
    ok(&run_container(&env, &["state", "mabgp7", "up", "local"]).await?);
    let s = host_state.get_entry("FEATURE", "mabgp7").await?;
    assert_eq!(
        s.get("current_owner").map(String::as_str),
        Some("local"),
        "{s:?}"
    );

    // An instance of an unconfigured feature is unknown.
    let out = run_container(&env, &["id", "manone1"]).await?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown feature manone1"), "{err}");
    Ok(())
}
