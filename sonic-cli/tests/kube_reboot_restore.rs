//! The built `kube-reboot restore --wait-up` against a private redis-server: it waits while a
//! feature whose setting goes back is down and restores right after the test, playing the
//! feature's `container start`, writes STATE_DB `system_state=up` (after restore's own
//! "waiting for" line, a positive sync point); a bad `--wait-up` is a usage error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sonic_tests::redis::{CONFIG_DB, RedisServer, STATE_DB};

const TIMEOUT: Duration = Duration::from_secs(30);

fn hset(redis: &RedisServer, db: i64, key: &str, fields: &[(&str, &str)]) {
    let mut conn = redis.connection(db).unwrap();
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (f, v) in fields {
        cmd.arg(*f).arg(*v);
    }
    cmd.query::<()>(&mut conn).unwrap();
}

fn no_fallback(redis: &RedisServer) -> Option<String> {
    let mut conn = redis.connection(CONFIG_DB).unwrap();
    redis::cmd("HGET")
        .arg("FEATURE|snmp")
        .arg("no_fallback_to_local")
        .query(&mut conn)
        .unwrap()
}

/// A private redis-server with kube-owned snmp running on the fallback `prepare warm` allowed,
/// and the state file recording the operator's `no_fallback_to_local=true`.
struct World {
    redis: RedisServer,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let redis = RedisServer::start().expect("a private redis-server must start");
        hset(
            &redis,
            CONFIG_DB,
            "FEATURE|snmp",
            &[
                ("set_owner", "kube"),
                ("no_fallback_to_local", "false"),
                ("state", "enabled"),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let world = World { redis, dir };
        let state = world.state_file();
        std::fs::create_dir_all(state.parent().unwrap()).unwrap();
        std::fs::write(
            &state,
            r#"{"version": 1, "kind": "warm",
                "fallback": [{"feature": "snmp", "no_fallback_to_local": true}], "units": []}"#,
        )
        .unwrap();
        world
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("etc/sonic/kube-reboot/state.json")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kube-reboot"));
        cmd.arg("--root")
            .arg(self.dir.path())
            // Never called without units to reinstall; a missing program would show it.
            .arg("--systemctl")
            .arg(self.dir.path().join("no-systemctl"))
            .args(args)
            .env("SONIC_DB_CONFIG", self.redis.database_config_path())
            .env_remove("SONIC_DB_GLOBAL_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }
}

/// Kills the child on drop (a failed assertion must not leave it running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `cmd`; its stderr lines arrive on the receiver.
fn spawn(mut cmd: Command) -> (Running, mpsc::Receiver<String>) {
    let mut child = cmd.spawn().expect("the built kube-reboot must run");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Running(child), rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, prefix: &str, seen: &mut Vec<String>) {
    let end = Instant::now() + TIMEOUT;
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

fn wait_exit(child: &mut Running) -> ExitStatus {
    let end = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < end,
            "kube-reboot did not exit in {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn restore_with_wait_up_waits_while_the_feature_is_down_and_restores_once_it_is_up() {
    let w = World::new();
    let (mut child, rx) = spawn(w.command(&["restore", "--wait-up", "10m"]));
    let mut seen = Vec::new();
    wait_line(&rx, "kube-reboot: waiting for snmp to come up", &mut seen);
    // Waiting: nothing restored, the process still runs a while later.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(child.0.try_wait().unwrap(), None, "{seen:?}");
    assert_eq!(no_fallback(&w.redis).as_deref(), Some("false"));
    assert!(w.state_file().exists());

    // snmp's `container start` ran with the fallback.
    hset(
        &w.redis,
        STATE_DB,
        "FEATURE|snmp",
        &[("system_state", "up"), ("current_owner", "local")],
    );
    let up_at = Instant::now();
    let status = wait_exit(&mut child);
    seen.extend(rx.try_iter());
    assert!(status.success(), "{status}: {seen:?}");
    // Polled every second: restored right after the feature came up.
    assert!(up_at.elapsed() < Duration::from_secs(5), "{seen:?}");
    assert_eq!(no_fallback(&w.redis).as_deref(), Some("true"));
    assert!(!w.state_file().exists(), "{seen:?}");
    assert!(
        seen.iter()
            .any(|l| l == "kube-reboot: set snmp no_fallback_to_local true"),
        "{seen:?}"
    );
}

#[test]
fn restore_with_a_short_wait_up_restores_a_feature_that_never_came_up_with_a_note() {
    let w = World::new();
    let (mut child, rx) = spawn(w.command(&["restore", "--wait-up", "2s"]));
    let status = wait_exit(&mut child);
    let seen: Vec<String> = rx.iter().collect();
    assert!(status.success(), "{status}: {seen:?}");
    assert!(
        seen.iter().any(|l| l
            == "kube-reboot: note: snmp: not up (system_state) by the deadline; no_fallback_to_local restored anyway"),
        "{seen:?}"
    );
    assert_eq!(no_fallback(&w.redis).as_deref(), Some("true"));
    assert!(!w.state_file().exists());
}

#[test]
fn a_bad_wait_up_value_is_a_usage_error_that_changes_nothing() {
    let w = World::new();
    for bad in ["soon", "10 m", "10x", ""] {
        let (mut child, rx) = spawn(w.command(&["restore", "--wait-up", bad]));
        let status = wait_exit(&mut child);
        let err = rx.iter().collect::<Vec<_>>().join("\n");
        assert_eq!(status.code(), Some(2), "{bad:?}: {err}");
        assert!(
            err.contains(&format!("invalid value '{bad}' for '--wait-up <DURATION>'"))
                && err.contains("expected a number with a unit, e.g. 600s, 10m, 1h or 1m30s"),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(no_fallback(&w.redis).as_deref(), Some("false"));
    assert!(Path::new(&w.state_file()).exists());
}
