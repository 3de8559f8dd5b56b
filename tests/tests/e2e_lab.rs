//! End to end on the lab (`sonic_tests::lab`, in-process, one temp dir and private dockerd per
//! case): the real `container`, `container_startup`, `ctrmgrd`, `show` and `config` binaries
//! against a real redis-server, a real dockerd, the fake master and the emulated kubelet. Each
//! case asserts STATE_DB, the node's labels at the API server and the real containers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use sonic_tests::kubelet::{LABEL_POD_NAME, pods_of};
use sonic_tests::lab::{FEATURE, KUBE_VERSION, LOCAL_VERSION, Lab, LabOptions, NODE, StepEvent};
use sonic_tests::service_manager::workspace_binary;
use tokio::sync::Mutex;

const DEADLINE: Duration = Duration::from_secs(120);

/// One lab at a time: each runs its own dockerd and ctrmgrd, and the timers are real seconds.
fn serial() -> &'static Mutex<()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(()))
}

struct Case {
    lab: Lab,
    _dir: tempfile::TempDir,
}

async fn lab(daemonset: bool) -> Case {
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
    options.daemonset = daemonset;
    let mut steps = Vec::new();
    let lab = Lab::up(options, &mut |e: &StepEvent| steps.push(format!("{e:?}")))
        .await
        .unwrap_or_else(|e| panic!("lab up failed: {e:#}\nsteps: {steps:#?}"));
    Case { lab, _dir: dir }
}

impl Case {
    fn state(&self) -> BTreeMap<String, String> {
        self.lab.paths.feature_state(FEATURE).unwrap()
    }

    async fn wait_state(
        &self,
        what: &str,
        pred: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> BTreeMap<String, String> {
        match self
            .lab
            .paths
            .wait_feature(FEATURE, what, DEADLINE, pred)
            .await
        {
            Ok(s) => s,
            Err(e) => panic!(
                "{e:#}\nnode labels {:?}\ncontainers {:?}\nctrmgrd log:\n{}",
                self.lab.node_labels(),
                self.lab.containers().await.unwrap_or_default(),
                self.ctrmgrd_log()
            ),
        }
    }

    fn ctrmgrd_log(&self) -> String {
        let text =
            std::fs::read_to_string(self.lab.paths.logs().join("ctrmgrd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn wait_labels(&self, what: &str, pred: impl Fn(&BTreeMap<String, String>) -> bool) {
        let end = tokio::time::Instant::now() + DEADLINE;
        loop {
            let labels = self.lab.node_labels();
            if pred(&labels) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "{what}: node labels {labels:?}\nctrmgrd log:\n{}",
                self.ctrmgrd_log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn config(&self, args: &[&str]) {
        self.lab.cli("config", args).unwrap();
    }

    /// Running containers: name -> image.
    async fn running(&self) -> BTreeMap<String, String> {
        self.lab
            .containers()
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, _, state)| state == "running")
            .map(|(n, i, _)| (n, i))
            .collect()
    }

    /// The running kube container of snmp (dockershim name) and its id.
    async fn kube_container(&self) -> Option<(String, String)> {
        for c in self.lab.docker().list_containers(false).await.unwrap() {
            let name = c.names.first().cloned().unwrap_or_default();
            if name.starts_with(&format!("k8s_{FEATURE}_")) && c.labels.contains_key(LABEL_POD_NAME)
            {
                return Some((name, c.id));
            }
        }
        None
    }

    async fn to_kube(&self) -> BTreeMap<String, String> {
        self.config(&["feature", "owner", FEATURE, "kube"]);
        self.wait_state("kube deployment running", |s| {
            s.get("current_owner").map(String::as_str) == Some("kube")
                && s.get("remote_state").map(String::as_str) == Some("running")
                && s.get("container_version").map(String::as_str) == Some(KUBE_VERSION)
        })
        .await
    }

    async fn finish(self) {
        self.lab.shutdown().await;
    }
}

fn label<'a>(l: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    l.get(k).map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_in_local_mode_runs_the_local_image_and_joins_the_master() {
    let _serial = serial().lock().await;
    let c = lab(true).await;
    let s = c.state();
    assert_eq!(label(&s, "current_owner"), Some("local"));
    assert_eq!(label(&s, "system_state"), Some("up"));
    assert_eq!(label(&s, "container_id"), Some(FEATURE));
    assert_eq!(label(&s, "container_version"), Some(LOCAL_VERSION));
    assert_eq!(label(&s, "remote_state"), Some("none"));
    let running = c.running().await;
    assert_eq!(
        running.get(FEATURE).map(String::as_str),
        Some("docker-snmp:latest"),
        "{running:?}"
    );
    // ctrmgrd joined (node registered by the kubelet) and pushed the self-description labels
    // and the local version; the feature is not enabled for kube.
    c.wait_labels("self-description and local version labels", |l| {
        label(l, "sonic_version") == Some("SONiC.lab.1")
            && label(l, "hwsku") == Some("Arista-7050CX3-32S-C32")
            && label(l, &format!("{FEATURE}_local")) == Some(LOCAL_VERSION)
    })
    .await;
    assert_ne!(
        label(&c.lab.node_labels(), &format!("{FEATURE}_enabled")),
        Some("true")
    );
    let connected = c.lab.paths.hash(6, "KUBERNETES_MASTER|SERVER").unwrap();
    assert_eq!(label(&connected, "connected"), Some("true"));
    assert!(c.kube_container().await.is_none());
    let shown = c.lab.show_status().unwrap();
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("snmp ") && l.contains("local")),
        "{shown}"
    );
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_kube_hands_over_to_the_masters_pod() {
    let _serial = serial().lock().await;
    let c = lab(true).await;
    let s = c.to_kube().await;
    let (name, id) = c.kube_container().await.expect("a running kube container");
    assert_eq!(label(&s, "container_id"), Some(&id[..12]));
    assert!(
        name.starts_with(&format!("k8s_{FEATURE}_{FEATURE}-1-1-0-")),
        "{name}"
    );
    assert_eq!(label(&s, "system_state"), Some("up"));
    // The local container was stopped by the hand-over.
    let running = c.running().await;
    assert!(!running.contains_key(FEATURE), "{running:?}");
    assert_eq!(
        running.get(&name).map(String::as_str),
        Some(format!("acr.example/docker-snmp:{KUBE_VERSION}").as_str())
    );
    c.wait_labels("kube labels", |l| {
        label(l, &format!("{FEATURE}_enabled")) == Some("true")
            && label(l, &format!("{FEATURE}_{KUBE_VERSION}_enabled")) == Some("true")
    })
    .await;
    let pods = pods_of(c.lab.kube().store(), "default", "snmp-1-1-0", NODE);
    assert_eq!(pods.len(), 1);
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_never_delivering_falls_back_to_the_last_good_image_after_the_deadline() {
    let _serial = serial().lock().await;
    let c = lab(true).await;
    c.to_kube().await;
    // ctrmgrd marks the kube image good and tags it as the local :latest.
    c.wait_state("kube image marked good", |s| {
        label(s, "container_stable_version") == Some(KUBE_VERSION)
    })
    .await;
    // The master stops delivering: the DaemonSet goes, the pod and its container with it.
    c.lab
        .kube()
        .store()
        .delete_daemonset("default", "snmp-1-1-0")
        .unwrap();
    let s = c
        .wait_state("fallback to local", |s| {
            label(s, "current_owner") == Some("local")
                && label(s, "container_id") == Some(FEATURE)
                && label(s, "remote_state") == Some("none")
        })
        .await;
    assert_eq!(
        label(&s, "set_owner"),
        None,
        "set_owner is CONFIG_DB's, not STATE_DB's"
    );
    // `container start` records the owner before starting the container.
    let end = tokio::time::Instant::now() + DEADLINE;
    while !c.running().await.contains_key(FEATURE) {
        assert!(
            tokio::time::Instant::now() < end,
            "the local container never ran: {:?}\nctrmgrd log:\n{}",
            c.lab.containers().await.unwrap_or_default(),
            c.ctrmgrd_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(c.kube_container().await.is_none());
    // The local container runs the last good (kube) version, from the tagged image.
    let details = c
        .lab
        .docker()
        .inspect_container(FEATURE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(details.image_version.as_deref(), Some(KUBE_VERSION));
    c.wait_state("local container_startup recorded the version", |s| {
        label(s, "container_version") == Some(KUBE_VERSION)
            && label(s, "current_owner") == Some("local")
    })
    .await;
    assert_eq!(
        label(
            &c.lab.paths.hash(4, &format!("FEATURE|{FEATURE}")).unwrap(),
            "set_owner"
        ),
        Some("kube")
    );
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_to_local_stops_the_pod_container_and_runs_the_local_image() {
    let _serial = serial().lock().await;
    let c = lab(true).await;
    c.to_kube().await;
    c.config(&["feature", "owner", FEATURE, "local"]);
    c.wait_state("back to local", |s| {
        label(s, "current_owner") == Some("local") && label(s, "container_id") == Some(FEATURE)
    })
    .await;
    c.wait_labels("feature disabled for kube", |l| {
        label(l, &format!("{FEATURE}_enabled")) == Some("false")
    })
    .await;
    // The kubelet removed the pod once the label went false.
    let end = tokio::time::Instant::now() + DEADLINE;
    while c.kube_container().await.is_some() {
        assert!(
            tokio::time::Instant::now() < end,
            "the kube container is still running"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let running = c.running().await;
    assert!(running.contains_key(FEATURE), "{running:?}");
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_kube_pod_is_redeployed_and_taken_over_again() {
    let _serial = serial().lock().await;
    let c = lab(true).await;
    let before = c.to_kube().await;
    let (_, first) = c.kube_container().await.unwrap();
    c.lab.docker().kill_container(&first).await.unwrap();
    let after = c
        .wait_state("the restarted pod container runs under kube", |s| {
            label(s, "current_owner") == Some("kube")
                && label(s, "remote_state") == Some("running")
                && s.get("container_id")
                    .is_some_and(|id| !first.starts_with(id.as_str()))
        })
        .await;
    assert_ne!(before.get("container_id"), after.get("container_id"));
    let (name, id) = c.kube_container().await.expect("a running kube container");
    assert!(name.ends_with("_1"), "restart count 1 in {name}");
    assert_eq!(label(&after, "container_id"), Some(&id[..12]));
    let pods = pods_of(c.lab.kube().store(), "default", "snmp-1-1-0", NODE);
    assert_eq!(
        pods[0]
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .restart_count,
        1
    );
    assert!(!c.running().await.contains_key(FEATURE));
    c.finish().await;
}

/// The unit is SONiC's `snmp.service` (`Restart=always`, `RestartSec=30`): when the local
/// container dies, `container wait` ends, the unit runs ExecStop (`container stop`, STATE_DB
/// down) and starts again after RestartSec; ctrmgrd has no reason to act for a local feature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_local_container_is_stopped_and_restarted_by_its_unit() {
    let _serial = serial().lock().await;
    let c = lab(false).await;
    let stops = c.lab.services().count("stop", FEATURE);
    let starts = c.lab.services().count("start", FEATURE);
    c.lab.docker().kill_container(FEATURE).await.unwrap();
    c.wait_state("ExecStop recorded the feature down", |s| {
        label(s, "system_state") == Some("down") && label(s, "current_owner") == Some("none")
    })
    .await;
    assert_eq!(c.lab.services().count("stop", FEATURE), stops + 1);
    let end = tokio::time::Instant::now() + DEADLINE;
    while !c.running().await.contains_key(FEATURE) {
        assert!(
            tokio::time::Instant::now() < end,
            "the unit never restarted: {:?}",
            c.lab.services().commands()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.wait_state("local again", |s| {
        label(s, "system_state") == Some("up")
            && label(s, "current_owner") == Some("local")
            && label(s, "container_version") == Some(LOCAL_VERSION)
    })
    .await;
    assert_eq!(c.lab.services().count("start", FEATURE), starts + 1);
    assert!(
        c.lab
            .services()
            .commands()
            .iter()
            .any(|x| x == &format!("auto-restart {FEATURE}")),
        "{:?}",
        c.lab.services().commands()
    );
    c.finish().await;
}
