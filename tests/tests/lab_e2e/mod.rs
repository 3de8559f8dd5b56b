//! Shared driver of the lab end-to-end cases (`e2e_upgrade`, `e2e_outage`, `e2e_rollback`): one
//! lab per case in a temp dir with its own dockerd, serialized per test binary, and condition
//! waits that print STATE_DB, the node's labels, the containers and ctrmgrd's log on failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use sonic_tests::kubelet::LABEL_POD_NAME;
use sonic_tests::lab::{FEATURE, Lab, LabOptions, StepEvent};
use sonic_tests::service_manager::workspace_binary;
use tokio::sync::Mutex;

/// Generous: a loaded 2-core machine runs several builds next to these labs.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// One lab at a time: each runs its own dockerd and ctrmgrd, and the timers are real seconds.
pub fn serial() -> &'static Mutex<()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(()))
}

pub struct Case {
    pub lab: Lab,
    _dir: tempfile::TempDir,
}

/// A lab with the workspace's binaries; `tweak` adjusts the options (timers, DaemonSet).
pub async fn lab(tweak: impl FnOnce(&mut LabOptions)) -> Case {
    let dir = tempfile::Builder::new().prefix("e2e").tempdir().unwrap();
    let bin_dir: PathBuf = workspace_binary("ctrmgrd")
        .expect("ctrmgrd must be built (cargo build -p sonic-daemon)")
        .parent()
        .unwrap()
        .to_path_buf();
    for b in ["show", "config", "container", "container_startup"] {
        workspace_binary(b)
            .expect("the sonic-cli binaries must be built (cargo build -p sonic-cli --bins)");
    }
    let mut options = LabOptions::new(dir.path(), &bin_dir);
    options.lab_binary = PathBuf::from(env!("CARGO_BIN_EXE_sonic-lab"));
    tweak(&mut options);
    let mut steps = Vec::new();
    let lab = Lab::up(options, &mut |e: &StepEvent| steps.push(format!("{e:?}")))
        .await
        .unwrap_or_else(|e| panic!("lab up failed: {e:#}\nsteps: {steps:#?}"));
    Case { lab, _dir: dir }
}

pub fn get<'a>(m: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    m.get(k).map(String::as_str)
}

/// A kube container of snmp (dockershim name).
#[derive(Debug, Clone)]
pub struct KubeContainer {
    pub name: String,
    pub id: String,
    pub image: String,
    pub running: bool,
}

impl Case {
    pub fn state(&self) -> BTreeMap<String, String> {
        self.lab.paths.feature_state(FEATURE).unwrap()
    }

    /// STATE_DB `KUBE_LABELS|SET`.
    pub fn desired_labels(&self) -> BTreeMap<String, String> {
        self.lab.paths.hash(6, "KUBE_LABELS|SET").unwrap()
    }

    /// STATE_DB `KUBERNETES_MASTER|SERVER`.
    pub fn server_state(&self) -> BTreeMap<String, String> {
        self.lab.paths.hash(6, "KUBERNETES_MASTER|SERVER").unwrap()
    }

    pub fn ctrmgrd_log(&self) -> String {
        let text =
            std::fs::read_to_string(self.lab.paths.logs().join("ctrmgrd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub fn full_ctrmgrd_log(&self) -> String {
        std::fs::read_to_string(self.lab.paths.logs().join("ctrmgrd.log")).unwrap_or_default()
    }

    /// Everything worth seeing when a wait fails.
    pub async fn picture(&self) -> String {
        format!(
            "STATE_DB FEATURE|{FEATURE} {:?}\nKUBE_LABELS|SET {:?}\nnode labels {:?}\ncontainers {:?}\nunits {:?}\nctrmgrd log (tail):\n{}",
            self.lab.paths.feature_state(FEATURE).unwrap_or_default(),
            self.lab
                .paths
                .hash(6, "KUBE_LABELS|SET")
                .unwrap_or_default(),
            self.lab.node_labels(),
            self.lab.containers().await.unwrap_or_default(),
            self.lab
                .services()
                .commands()
                .iter()
                .rev()
                .take(12)
                .collect::<Vec<_>>(),
            self.ctrmgrd_log()
        )
    }

    /// Polls an async condition every 200 ms until it holds or `deadline` passes.
    pub async fn wait_for<F, Fut>(&self, what: &str, deadline: Duration, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            if cond().await {
                return;
            }
            if tokio::time::Instant::now() > end {
                panic!(
                    "{what}: not reached within {} s\n{}",
                    deadline.as_secs(),
                    self.picture().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Checks an async condition every 300 ms for `span`: it must hold each time (the way to
    /// show that something does not happen).
    pub async fn holds_for<F, Fut>(&self, what: &str, span: Duration, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let end = tokio::time::Instant::now() + span;
        while tokio::time::Instant::now() < end {
            if let Err(e) = cond().await {
                panic!("{what}: {e}\n{}", self.picture().await);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub async fn wait_state(
        &self,
        what: &str,
        pred: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> BTreeMap<String, String> {
        self.wait_for(what, DEADLINE, || async {
            pred(&self.lab.paths.feature_state(FEATURE).unwrap_or_default())
        })
        .await;
        self.state()
    }

    pub async fn wait_labels(&self, what: &str, pred: impl Fn(&BTreeMap<String, String>) -> bool) {
        self.wait_for(what, DEADLINE, || async { pred(&self.lab.node_labels()) })
            .await;
    }

    pub fn config(&self, args: &[&str]) {
        self.lab
            .cli("config", args)
            .unwrap_or_else(|e| panic!("config {}: {e:#}", args.join(" ")));
    }

    /// Running containers: name -> image.
    pub async fn running(&self) -> BTreeMap<String, String> {
        self.lab
            .containers()
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, _, state)| state == "running")
            .map(|(n, i, _)| (n, i))
            .collect()
    }

    /// Every kube container of snmp (running or not).
    pub async fn kube_containers(&self) -> Vec<KubeContainer> {
        let mut out = Vec::new();
        for c in self.lab.docker().list_containers(true).await.unwrap() {
            let name = c.names.first().cloned().unwrap_or_default();
            if name.starts_with(&format!("k8s_{FEATURE}_")) && c.labels.contains_key(LABEL_POD_NAME)
            {
                out.push(KubeContainer {
                    name,
                    id: c.id,
                    image: c.image,
                    running: c.state == "running",
                });
            }
        }
        out
    }

    /// The running kube containers of snmp from `image`.
    pub async fn running_kube_of(&self, image: &str) -> Vec<KubeContainer> {
        self.kube_containers()
            .await
            .into_iter()
            .filter(|c| c.running && c.image == image)
            .collect()
    }

    /// Waits until the local container runs.
    pub async fn wait_local_running(&self, what: &str) {
        self.wait_for(what, DEADLINE, || async {
            self.running().await.contains_key(FEATURE)
        })
        .await;
    }

    pub async fn finish(self) {
        self.lab.shutdown().await;
    }
}
