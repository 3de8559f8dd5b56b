//! `kube-reboot prepare warm --skip-updates` and `kube-reboot restore --wait-up` end to end:
//! the built binaries against a private redis-server and the shared private dockerd, with the
//! project's `container` binary killing a real "kube" container by the id in STATE_DB and
//! starting the local one after "boot" while restore waits for it. systemd is not PID 1 here,
//! so `systemctl` is a recorder that appends its arguments to a log.
#![allow(clippy::unwrap_used)]

mod container_common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use container_common::{COMMAND_TIMEOUT, Lab, bin, plain_image, run, spawn, unique_feature};
use sonic_tests::redis::{CONFIG_DB, STATE_DB};

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A temp root with a joined node's kube files, the unit and script directories, and a
/// `systemctl` that records its arguments, one call per line.
struct Host {
    root: PathBuf,
    systemctl_log: PathBuf,
}

impl Host {
    fn new(lab: &Lab) -> Self {
        let root = lab.dir.path().join("root");
        for (file, text) in [
            (
                "var/lib/kubelet/config.yaml",
                "kind: KubeletConfiguration\n",
            ),
            ("var/lib/kubelet/pki/kubelet-client-current.pem", "pem\n"),
            ("etc/sonic/kube_admin.conf", "apiVersion: v1\n"),
            ("etc/sonic/credentials/restapiserver.crt", "crt\n"),
            ("etc/sonic/credentials/restapiserver.key", "key\n"),
        ] {
            let p = root.join(file);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
        }
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        let systemctl_log = lab.dir.path().join("systemctl.log");
        // A fixture program (not a shell string run by the code under test): records argv.
        let recorder = lab.dir.path().join("systemctl");
        std::fs::write(
            &recorder,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n",
                systemctl_log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&recorder, std::fs::Permissions::from_mode(0o755)).unwrap();
        Host {
            root,
            systemctl_log,
        }
    }

    fn systemctl_calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.systemctl_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn kube_reboot(&self, lab: &Lab, args: &[&str]) -> Output {
        run(&self.argv(args), &lab.env(), COMMAND_TIMEOUT * 3).unwrap()
    }

    /// Starts `kube-reboot <args>`; its stderr lines arrive on the receiver.
    fn spawn_kube_reboot(&self, lab: &Lab, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
        let mut child = spawn(&self.argv(args), &lab.env()).unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    }

    fn argv(&self, args: &[&str]) -> Vec<OsString> {
        let program = bin("kube-reboot");
        assert!(
            program.is_file(),
            "{} is missing: build it with cargo build -p sonic-cli --bins",
            program.display()
        );
        let root = self.root.display().to_string();
        let systemctl = self
            .systemctl_log
            .with_file_name("systemctl")
            .display()
            .to_string();
        let container = bin("container").display().to_string();
        let unit_dir = self.root.join("etc/systemd/system").display().to_string();
        let script_dir = self.root.join("usr/local/bin").display().to_string();
        let argv: Vec<OsString> = [
            program.display().to_string().as_str(),
            "--root",
            &root,
            "--systemctl",
            &systemctl,
            "--container-bin",
            &container,
            "--unit-dir",
            &unit_dir,
            "--script-dir",
            &script_dir,
        ]
        .iter()
        .chain(args)
        .map(OsString::from)
        .collect();
        argv
    }

    fn path(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }
}

/// Receives lines until one starts with `prefix` (fails after [`COMMAND_TIMEOUT`]).
fn wait_line(rx: &mpsc::Receiver<String>, prefix: &str, seen: &mut Vec<String>) {
    let end = Instant::now() + COMMAND_TIMEOUT;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.starts_with(prefix);
                seen.push(line);
                if hit {
                    return;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line {prefix:?} on stderr: {seen:?}");
}

/// Waits for `child` at most [`COMMAND_TIMEOUT`] (then kills it and fails).
fn wait_exit(mut child: Child) -> ExitStatus {
    let end = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kube-reboot did not exit within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn field(map: &BTreeMap<String, String>, k: &str) -> Option<String> {
    map.get(k).cloned()
}

#[test]
fn warm_prepare_with_skip_updates_kills_the_kube_container_allows_fallback_and_restore_undoes_it() {
    let lab = Lab::new();
    let host = Host::new(&lab);
    let kube_f = unique_feature("rbk");
    let local_f = unique_feature("rbl");

    // The kube-owned feature: its pod's container runs; STATE_DB has its 12-char id.
    let pod = format!("k8s_{kube_f}_pod");
    let id = lab.create_container(&pod, plain_image(), &[]);
    lab.start_container(&pod);
    let id12 = id[..12].to_string();
    lab.config(
        &kube_f,
        &[
            ("set_owner", "kube"),
            ("no_fallback_to_local", "true"),
            ("state", "enabled"),
        ],
    );
    lab.seed_state(
        &kube_f,
        &[
            ("system_state", "up"),
            ("current_owner", "kube"),
            ("container_id", &id12),
            ("remote_state", "running"),
            ("update_time", "2020-12-08 22:59:57"),
        ],
    );
    // Its stopped local container, for the `container start` after "boot".
    lab.create_container(&kube_f, plain_image(), &[]);
    // The local feature runs its local container; prepare leaves it to the reboot script.
    lab.create_container(&local_f, plain_image(), &[]);
    lab.start_container(&local_f);
    lab.config(&local_f, &[("state", "enabled")]);
    lab.seed_state(
        &local_f,
        &[
            ("system_state", "up"),
            ("current_owner", "local"),
            ("container_id", &local_f),
        ],
    );
    let state_before = lab.state(&kube_f);
    let labels_before = lab.labels();

    let carry_file = lab.dir.path().join("carry.txt");
    let out = host.kube_reboot(
        &lab,
        &[
            "prepare",
            "warm",
            "--skip-updates",
            "--carry-list",
            &carry_file.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));

    // The kube container was killed for real; the local one still runs.
    lab.expect_running(&pod, false);
    assert!(lab.running(&local_f));
    // --skip-updates: STATE_DB and the labels are untouched.
    assert_eq!(lab.state(&kube_f), state_before);
    assert_eq!(lab.labels(), labels_before);
    // Kubelet parked first, through systemctl.
    assert_eq!(host.systemctl_calls(), ["disable kubelet", "stop kubelet"]);
    // Fallback allowed until restore, the original recorded.
    let cfg_key = format!("FEATURE|{kube_f}");
    assert_eq!(
        field(&lab.hgetall(CONFIG_DB, &cfg_key), "no_fallback_to_local").as_deref(),
        Some("false")
    );
    let state_file = host.path("etc/sonic/kube-reboot/state.json");
    let saved = std::fs::read_to_string(&state_file).unwrap();
    assert!(
        saved.contains(&kube_f) && saved.contains("\"no_fallback_to_local\": true"),
        "{saved}"
    );
    // The carry list names the kube context that exists and the state file.
    let carry = std::fs::read_to_string(&carry_file).unwrap();
    let expected: Vec<String> = [
        "var/lib/kubelet/config.yaml",
        "var/lib/kubelet/pki",
        "etc/sonic/kube_admin.conf",
        "etc/sonic/credentials/restapiserver.crt",
        "etc/sonic/credentials/restapiserver.key",
        "etc/sonic/kube-reboot/state.json",
    ]
    .iter()
    .map(|p| host.path(p))
    .collect();
    assert_eq!(carry.lines().collect::<Vec<_>>(), expected, "{carry}");

    // The warm reboot script saves the databases without STATE_DB's FEATURE entries.
    let mut conn = lab.redis.connection(STATE_DB).unwrap();
    redis::cmd("DEL")
        .arg(format!("FEATURE|{kube_f}"))
        .query::<()>(&mut conn)
        .unwrap();

    // After "boot", the unit runs `kube-reboot restore --wait-up` (here before the feature
    // starts, as with a delayed feature): units first, then it waits for the feature.
    let (restore, lines) = host.spawn_kube_reboot(&lab, &["restore", "--wait-up", "60s"]);
    let mut seen = Vec::new();
    wait_line(
        &lines,
        &format!("kube-reboot: waiting for {kube_f} to come up"),
        &mut seen,
    );
    assert_eq!(
        field(&lab.hgetall(CONFIG_DB, &cfg_key), "no_fallback_to_local").as_deref(),
        Some("false"),
        "restored before the feature started: {seen:?}"
    );

    // The switch is not joined, so `container start` runs the local image now, on the
    // fallback restore has not taken back yet.
    let out = lab.container(&["start", &kube_f]);
    assert!(out.status.success(), "{}", describe(&out));
    lab.expect_running(&kube_f, true);
    let st = lab.state(&kube_f);
    assert_eq!(field(&st, "current_owner").as_deref(), Some("local"));
    assert_eq!(field(&st, "container_id").as_deref(), Some(kube_f.as_str()));

    // Restore sees it up, puts the operator's setting back, never touches kubelet, and removes
    // the state.
    let status = wait_exit(restore);
    seen.extend(lines.try_iter());
    assert!(status.success(), "{status}: {seen:?}");
    assert!(
        seen.iter()
            .any(|l| l == &format!("kube-reboot: up: {kube_f}")),
        "{seen:?}"
    );
    assert_eq!(
        field(&lab.hgetall(CONFIG_DB, &cfg_key), "no_fallback_to_local").as_deref(),
        Some("true")
    );
    assert_eq!(
        host.systemctl_calls(),
        ["disable kubelet", "stop kubelet"],
        "restore must not enable or start kubelet"
    );
    assert!(!Path::new(&state_file).exists());
    // Nothing left to restore: a second run succeeds and changes nothing.
    let out = host.kube_reboot(&lab, &["restore"]);
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn prepare_with_an_unreachable_database_fails_with_a_clear_message() {
    let lab = Lab::new();
    let host = Host::new(&lab);
    let mut env = lab.env();
    for (k, v) in &mut env {
        if k == "SONIC_DB_CONFIG" {
            *v = lab.dir.path().join("absent-database_config.json").into();
        }
    }
    let argv: Vec<OsString> = [
        bin("kube-reboot").display().to_string().as_str(),
        "--root",
        &host.root.display().to_string(),
        "prepare",
        "cold",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let out = run(&argv, &env, COMMAND_TIMEOUT).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("kube-reboot: ") && err.contains("absent-database_config.json"),
        "{err}"
    );
    assert!(
        host.systemctl_calls().is_empty(),
        "nothing runs before the facts are read"
    );
}
