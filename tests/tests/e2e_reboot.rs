//! End to end on the lab (issue 9 item 3): the real `kube-reboot prepare` and `restore` against
//! a switch whose snmp runs under Kubernetes — real redis-server and dockerd, the fake master,
//! the emulated kubelet answering the node program `systemctl`, the real `container` and
//! `ctrmgrd`. A warm reboot is walked through: prepare parks kubelet, allows fallback and kills
//! the pod container without state updates; the reboot wipes STATE_DB as SONiC's does; at boot
//! the unit starts the local image (the kube version, carried as local) at once; restore puts
//! the operator's setting back and leaves kubelet to ctrmgrd, whose pod of the same version is
//! then held so that snmp is not restarted. A cold reboot stops the pod container and keeps the
//! operator's no-fallback setting: at boot snmp waits for the master, whose pod takes it once
//! ctrmgrd has started kubelet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sonic_feature_core::model::FeatureName;
use sonic_feature_core::ports::ServiceManager;
use sonic_feature_core::reboot::CarryState;
use sonic_tests::kubelet::LABEL_POD_NAME;
use sonic_tests::lab::{FEATURE, KUBE_VERSION, Lab, LabOptions, StepEvent};
use sonic_tests::redis::{CONFIG_DB, STATE_DB};
use sonic_tests::service_manager::workspace_binary;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Generous: a loaded 2-core machine runs several builds next to the lab.
const DEADLINE: Duration = Duration::from_secs(120);
/// How long a killed or stopped pod container must stay dead with kubelet parked (the lab's
/// kubelet restarts a dead pod container within 300 ms while it runs).
const STAYS_DEAD: Duration = Duration::from_secs(5);

/// One lab at a time: each runs its own dockerd and ctrmgrd, and the timers are real seconds.
fn serial() -> &'static Mutex<()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(()))
}

struct Case {
    lab: Lab,
    dir: tempfile::TempDir,
}

async fn lab() -> Case {
    let dir = tempfile::Builder::new().prefix("e2e").tempdir().unwrap();
    let bin_dir: PathBuf = workspace_binary("ctrmgrd")
        .expect("ctrmgrd must be built (cargo build -p sonic-daemon)")
        .parent()
        .unwrap()
        .to_path_buf();
    for b in [
        "show",
        "config",
        "container",
        "container_startup",
        "kube-reboot",
    ] {
        workspace_binary(b)
            .expect("the sonic-cli binaries must be built (cargo build -p sonic-cli --bins)");
    }
    let mut options = LabOptions::new(dir.path(), &bin_dir);
    options.lab_binary = PathBuf::from(env!("CARGO_BIN_EXE_sonic-lab"));
    let mut steps = Vec::new();
    let lab = Lab::up(options, &mut |e: &StepEvent| steps.push(format!("{e:?}")))
        .await
        .unwrap_or_else(|e| panic!("lab up failed: {e:#}\nsteps: {steps:#?}"));
    Case { lab, dir }
}

fn get<'a>(m: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    m.get(k).map(String::as_str)
}

fn snmp() -> FeatureName {
    FeatureName::parse(FEATURE).unwrap()
}

impl Case {
    fn state(&self) -> BTreeMap<String, String> {
        self.lab.paths.feature_state(FEATURE).unwrap()
    }

    fn config_entry(&self) -> BTreeMap<String, String> {
        self.lab
            .paths
            .hash(CONFIG_DB, &format!("FEATURE|{FEATURE}"))
            .unwrap()
    }

    fn ctrmgrd_log(&self) -> String {
        let text =
            std::fs::read_to_string(self.lab.paths.logs().join("ctrmgrd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// Everything a failed wait needs to be understood: the state, the commands and the last
    /// lines of ctrmgrd's log and of every container's output.
    async fn context(&self) -> String {
        let mut text = format!(
            "STATE_DB FEATURE|{FEATURE} {:?}\nCONFIG_DB {:?}\nnode labels {:?}\ncontainers {:?}\n\
             kubelet running {}\nnode commands {:?}\nunit commands {:?}\nctrmgrd log:\n{}",
            self.lab.paths.feature_state(FEATURE).unwrap_or_default(),
            self.config_entry(),
            self.lab.node_labels(),
            self.lab.containers().await.unwrap_or_default(),
            self.lab.kubelet().is_running(),
            self.lab.node_commands(),
            self.lab.services().commands(),
            self.ctrmgrd_log()
        );
        for (name, _, _) in self.lab.containers().await.unwrap_or_default() {
            let logs = self.lab.container_logs(&name).await.unwrap_or_default();
            let lines: Vec<&str> = logs.lines().collect();
            text.push_str(&format!(
                "\n--- {name}:\n{}",
                lines[lines.len().saturating_sub(15)..].join("\n")
            ));
        }
        text
    }

    async fn wait_state(
        &self,
        what: &str,
        pred: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> BTreeMap<String, String> {
        self.wait_state_within(what, DEADLINE, pred).await
    }

    async fn wait_state_within(
        &self,
        what: &str,
        deadline: Duration,
        pred: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> BTreeMap<String, String> {
        match self
            .lab
            .paths
            .wait_feature(FEATURE, what, deadline, pred)
            .await
        {
            Ok(s) => s,
            Err(e) => panic!("{e:#}\n{}", self.context().await),
        }
    }

    fn config(&self, args: &[&str]) {
        self.lab.cli("config", args).unwrap();
    }

    /// Running kube containers of snmp (dockershim names), by name.
    async fn running_kube_containers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in self.lab.docker().list_containers(false).await.unwrap() {
            let name = c.names.first().cloned().unwrap_or_default();
            if name.starts_with(&format!("k8s_{FEATURE}_")) && c.labels.contains_key(LABEL_POD_NAME)
            {
                out.push(name);
            }
        }
        out
    }

    /// snmp handed over to the master's pod, with its no-fallback setting on and the kube image
    /// marked good (ctrmgrd tags it as local then, so the later local start is deterministic).
    /// Returns the pod container's full id.
    async fn snmp_under_kube_without_fallback(&self) -> String {
        self.config(&["feature", "fallback", FEATURE, "off"]);
        assert_eq!(
            get(&self.config_entry(), "no_fallback_to_local"),
            Some("true")
        );
        self.config(&["feature", "owner", FEATURE, "kube"]);
        let s = self
            .wait_state("kube deployment running and its image marked good", |s| {
                get(s, "current_owner") == Some("kube")
                    && get(s, "remote_state") == Some("running")
                    && get(s, "container_version") == Some(KUBE_VERSION)
                    && get(s, "container_stable_version") == Some(KUBE_VERSION)
            })
            .await;
        let short = get(&s, "container_id").unwrap().to_owned();
        let mut found = None;
        for c in self.lab.docker().list_containers(false).await.unwrap() {
            if c.id.starts_with(&short) && c.labels.contains_key(LABEL_POD_NAME) {
                found = Some(c.id);
            }
        }
        let id = found.unwrap_or_else(|| panic!("no running pod container {short}"));
        assert!(self.lab.kubelet().is_running());
        id
    }

    /// The pod container `id` is not running, and stays so for [`STAYS_DEAD`] while no other
    /// pod container of snmp appears (kubelet parked: nobody redeploys). Returns its exit code.
    async fn stays_dead(&self, id: &str) -> i64 {
        let end = Instant::now() + STAYS_DEAD;
        loop {
            let details = self
                .lab
                .docker()
                .inspect_container(id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("pod container {id} was removed"));
            assert!(
                !details.running,
                "pod container {id} runs again\n{}",
                self.context().await
            );
            let running = self.running_kube_containers().await;
            assert!(
                running.is_empty(),
                "a pod container of {FEATURE} runs: {running:?}\n{}",
                self.context().await
            );
            if Instant::now() >= end {
                return details.exit_code.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for a running pod container of snmp held by `container_startup` because it runs
    /// the version available locally; returns its name.
    async fn held_pod_container(&self) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            for name in self.running_kube_containers().await {
                let logs = self.lab.container_logs(&name).await.unwrap_or_default();
                if logs.contains("this version is marked disabled") {
                    return name;
                }
            }
            assert!(
                Instant::now() < end,
                "no held pod container of {FEATURE}\n{}",
                self.context().await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Commands the lab's node programs received since `from` (an index into the history).
    fn node_commands_since(&self, from: usize) -> Vec<String> {
        self.lab.node_commands().split_off(from)
    }

    /// The `systemctl ... kubelet` commands since `from` (ctrmgrd runs its own `systemctl`
    /// commands for snmp meanwhile).
    fn kubelet_commands_since(&self, from: usize) -> Vec<String> {
        self.node_commands_since(from)
            .into_iter()
            .filter(|c| c.starts_with("systemctl ") && c.ends_with(" kubelet"))
            .collect()
    }

    /// The desired node labels ctrmgrd pushes (STATE_DB `KUBE_LABELS|SET`).
    fn desired_labels(&self) -> BTreeMap<String, String> {
        self.lab.paths.hash(STATE_DB, "KUBE_LABELS|SET").unwrap()
    }

    async fn finish(self) {
        self.lab.shutdown().await;
        drop(self.dir);
    }
}

fn lines(text: &str) -> Vec<PathBuf> {
    text.lines().map(PathBuf::from).collect()
}

/// The carry list holds exactly the lab's kube files that exist (in the planner's order) and
/// the state file.
fn assert_carry_list(case: &Case, carried: &[PathBuf]) {
    let paths = case.lab.paths.reboot_paths();
    let mut expected: Vec<PathBuf> = paths
        .kube_context()
        .into_iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.to_path_buf())
        .collect();
    expected.push(paths.state_file.clone());
    assert_eq!(carried, expected.as_slice());
    for p in carried {
        assert!(p.exists(), "carried {} does not exist", p.display());
        assert!(
            p.starts_with(case.dir.path()),
            "{} is not the lab's",
            p.display()
        );
    }
    // What ctrmgrd's join and the lab's kubeadm wrote.
    for must in [
        &paths.kubeconfig,
        &paths.kubelet_config,
        &paths.client_cert,
        &paths.client_key,
        &paths.state_file,
    ] {
        assert!(
            carried.contains(must),
            "{} missing from {carried:?}",
            must.display()
        );
    }
}

fn read_state(path: &Path) -> CarryState {
    CarryState::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_reboot_parks_kubelet_boots_snmp_locally_and_restore_puts_no_fallback_back() {
    let _serial = serial().lock().await;
    let mut c = lab().await;
    let pod = c.snmp_under_kube_without_fallback().await;
    let before = c.state();
    let labels_before = c.desired_labels();
    assert_eq!(
        get(&labels_before, &format!("{FEATURE}_enabled")),
        Some("true")
    );
    let history = c.lab.node_commands().len();
    let unit_stops = c.lab.services().count("stop", FEATURE);
    let carry_file = c.dir.path().join("carry-list.txt");

    // Before the reboot.
    let run = c
        .lab
        .kube_reboot(&[
            "prepare",
            "warm",
            "--skip-updates",
            "--carry-list",
            carry_file.to_str().unwrap(),
        ])
        .unwrap()
        .success()
        .unwrap();
    // Read at once: the unit's ExecStop (`container stop`, run by the service manager when
    // `container wait` ends) may write STATE_DB a moment later.
    let after_kill = c.state();
    let labels_after_kill = c.desired_labels();
    let unit_stopped_yet = c.lab.services().count("stop", FEATURE) > unit_stops;
    assert_eq!(
        c.kubelet_commands_since(history),
        ["systemctl disable kubelet", "systemctl stop kubelet"],
        "{}",
        run.stderr
    );
    assert!(!c.lab.kubelet().is_running(), "kubelet still runs");
    let exit = c.stays_dead(&pod).await;
    assert_eq!(exit, 137, "killed (SIGKILL), not stopped");
    // --skip-updates: the kill wrote nothing, not even the `<f>_enabled=false` label a kill
    // writes otherwise. FEATURE|snmp is compared when the unit's ExecStop had not yet started
    // when it was read (it records the stop in STATE_DB on its own, as systemd's would).
    assert_eq!(labels_after_kill, labels_before);
    if !unit_stopped_yet {
        assert_eq!(after_kill, before, "STATE_DB changed by the kill");
    }
    // Fallback allowed until restore; the operator's value is recorded.
    assert_eq!(
        get(&c.config_entry(), "no_fallback_to_local"),
        Some("false")
    );
    assert_eq!(get(&c.config_entry(), "set_owner"), Some("kube"));
    let state_file = c.lab.paths.reboot_state_file();
    let saved = read_state(&state_file);
    assert_eq!(saved.fallback.len(), 1, "{saved:?}");
    assert_eq!(saved.fallback[0].feature, snmp());
    assert!(saved.fallback[0].no_fallback_to_local);
    assert!(run.stdout.is_empty(), "carry list went to its file");
    let carried = lines(&std::fs::read_to_string(&carry_file).unwrap());
    assert_carry_list(&c, &carried);

    // The reboot: every service and ctrmgrd go down; STATE_DB loses FEATURE and
    // KUBERNETES_MASTER as SONiC's warm reboot deletes them.
    c.lab.stop_ctrmgrd().await;
    c.lab.services().stop(&snmp()).await.unwrap();
    assert!(c.lab.reboot_state_db().unwrap() > 0);
    assert!(c.state().is_empty());

    // The boot: kubelet is disabled (not started), ctrmgrd not yet connected; snmp.service
    // starts and runs the local image at once thanks to the fallback.
    let boot = c.lab.node_commands().len();
    c.lab.unit_start(FEATURE).await.unwrap();
    let s = c
        .wait_state("snmp runs locally after the boot", |s| {
            get(s, "current_owner") == Some("local")
                && get(s, "container_id") == Some(FEATURE)
                && get(s, "system_state") == Some("up")
        })
        .await;
    assert_eq!(get(&s, "remote_state"), Some("none"));
    let local = c
        .lab
        .docker()
        .inspect_container(FEATURE)
        .await
        .unwrap()
        .unwrap();
    assert!(local.running, "the local container runs");
    // The kube image was marked good and tagged as local before the reboot: the local start
    // runs that version, so kubelet has no newer version to restart snmp for.
    assert_eq!(local.image_version.as_deref(), Some(KUBE_VERSION));
    assert!(c.running_kube_containers().await.is_empty());
    assert!(!c.lab.kubelet().is_running());
    assert!(c.lab.services().is_active(&snmp()).await.unwrap());

    // After the boot, as the unit runs it: snmp is up already, so restore does not wait.
    let run = c
        .lab
        .kube_reboot(&["restore", "--wait-up", "60s"])
        .unwrap()
        .success()
        .unwrap();
    assert!(
        run.stderr.contains(&format!("up: {FEATURE}")),
        "{}",
        run.stderr
    );
    assert_eq!(
        get(&c.config_entry(), "no_fallback_to_local"),
        Some("true"),
        "{}",
        run.stderr
    );
    assert!(!state_file.exists(), "state file removed after restore");
    let since = c.node_commands_since(boot);
    assert!(
        !since.iter().any(|l| l.contains("kubelet")),
        "restore touched kubelet: {since:?}"
    );
    assert!(!c.lab.kubelet().is_running(), "restore started kubelet");
    assert!(
        c.lab
            .docker()
            .inspect_container(FEATURE)
            .await
            .unwrap()
            .unwrap()
            .running,
        "restore disturbed the local container"
    );

    // ctrmgrd comes up and starts kubelet (restore left it alone). The master's pod runs the
    // version snmp already runs locally (the image carried as local), so container_startup
    // holds it and snmp is not restarted: no second service interruption after the reboot.
    let restored = c.lab.node_commands().len();
    let starts = c.lab.services().count("start", FEATURE);
    let stops = c.lab.services().count("stop", FEATURE);
    c.lab.start_ctrmgrd().await.unwrap();
    let held = c.held_pod_container().await;
    let kubelet = c.kubelet_commands_since(restored);
    assert!(
        kubelet.iter().any(|l| l == "systemctl start kubelet"),
        "ctrmgrd starts kubelet: {kubelet:?}"
    );
    let end = Instant::now() + STAYS_DEAD;
    while Instant::now() < end {
        let s = c.state();
        assert_eq!(get(&s, "current_owner"), Some("local"), "{s:?}");
        assert_eq!(get(&s, "container_id"), Some(FEATURE), "{s:?}");
        let now = c
            .lab
            .docker()
            .inspect_container(FEATURE)
            .await
            .unwrap()
            .unwrap();
        assert!(
            now.running && now.id == local.id,
            "the local container was restarted or stopped\n{}",
            c.context().await
        );
        assert_eq!(c.lab.services().count("start", FEATURE), starts);
        assert_eq!(c.lab.services().count("stop", FEATURE), stops);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(c.running_kube_containers().await.contains(&held));
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_reboot_stops_the_pod_container_keeps_no_fallback_and_snmp_waits_for_the_master() {
    let _serial = serial().lock().await;
    let mut c = lab().await;
    let pod = c.snmp_under_kube_without_fallback().await;
    let history = c.lab.node_commands().len();

    let run = c
        .lab
        .kube_reboot(&["prepare", "cold"])
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(
        c.kubelet_commands_since(history),
        ["systemctl disable kubelet", "systemctl stop kubelet"],
        "{}",
        run.stderr
    );
    assert!(!c.lab.kubelet().is_running());
    let exit = c.stays_dead(&pod).await;
    assert_eq!(exit, 0, "stopped (SIGTERM, clean exit), not killed");
    // STATE_DB records the stop (`container stop` without --skip-updates and the unit's
    // ExecStop write the same). ctrmgrd, still up, may restart the unit meanwhile: its
    // `container start` of a kube owner without fallback only marks system_state up again.
    let s = c.state();
    assert_eq!(get(&s, "current_owner"), Some("none"), "{s:?}");
    assert_eq!(get(&s, "container_id"), Some(""), "{s:?}");
    assert_eq!(get(&s, "remote_state"), Some("stopped"), "{s:?}");
    // A cold reboot waits for the master after boot: the operator's setting stays.
    assert_eq!(get(&c.config_entry(), "no_fallback_to_local"), Some("true"));
    let saved = read_state(&c.lab.paths.reboot_state_file());
    assert!(saved.fallback.is_empty(), "{saved:?}");
    // Without --carry-list the carry list goes to stdout.
    assert_carry_list(&c, &lines(&run.stdout));

    // The reboot and the boot: without fallback snmp waits for the master; nothing local runs.
    // STATE_DB is empty while the old local container is still there, stopped: `container
    // wait` polls past it (it does not end on it), so the unit stays active and is not
    // restarted (no ExecStop, no RestartSec loop).
    c.lab.stop_ctrmgrd().await;
    c.lab.services().stop(&snmp()).await.unwrap();
    c.lab.reboot_state_db().unwrap();
    let unit_log = c.lab.services().commands().len();
    c.lab.unit_start(FEATURE).await.unwrap();
    c.wait_state("snmp.service started", |s| {
        get(s, "system_state") == Some("up")
    })
    .await;
    let end = Instant::now() + STAYS_DEAD;
    while Instant::now() < end {
        let local = c.lab.docker().inspect_container(FEATURE).await.unwrap();
        assert!(
            !local.is_some_and(|l| l.running),
            "the local container runs without fallback\n{}",
            c.context().await
        );
        assert_ne!(get(&c.state(), "current_owner"), Some("local"));
        assert!(
            c.lab.services().is_active(&snmp()).await.unwrap(),
            "container wait ended on the stopped local container\n{}",
            c.context().await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        c.lab.services().commands()[unit_log..],
        [
            format!("container start {FEATURE}"),
            format!("container wait {FEATURE}")
        ],
        "the unit was stopped or restarted during the boot"
    );

    let boot = c.lab.node_commands().len();
    let run = c.lab.kube_reboot(&["restore"]).unwrap().success().unwrap();
    assert_eq!(
        get(&c.config_entry(), "no_fallback_to_local"),
        Some("true"),
        "{}",
        run.stderr
    );
    assert!(!c.lab.paths.reboot_state_file().exists());
    assert!(c.kubelet_commands_since(boot).is_empty());
    assert!(!c.lab.kubelet().is_running());

    // ctrmgrd comes up and starts kubelet; the master's pod takes snmp from the still polling
    // `container wait` (pending promoted to ready) without any unit restart: before the cold
    // boot fix the wait ended on the stopped local container and every hand-over waited out
    // RestartSec=30 one or more times.
    c.lab.start_ctrmgrd().await.unwrap();
    c.wait_state("snmp under kube after the boot", |s| {
        get(s, "current_owner") == Some("kube") && get(s, "remote_state") == Some("running")
    })
    .await;
    assert!(c.lab.kubelet().is_running());
    let since_boot = c.lab.services().commands()[unit_log..].to_vec();
    assert!(
        !since_boot.iter().any(|l| l.starts_with("auto-restart ")),
        "the unit's main process ended and was restarted: {since_boot:?}"
    );
    c.finish().await;
}
