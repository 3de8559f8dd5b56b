//! The shipped `systemd/kube-reboot-restore.service`: `systemd-analyze verify` accepts a copy
//! whose `ExecStart=` points at the built `kube-reboot` (the verification checks that the
//! program exists, so it must be real), alone and together with ctrmgrd's unit (no ordering
//! between them, no cycle); any warning counts as a failure. The key directives are checked on the file, and its
//! command line is run against a private redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sonic_feature_core::reboot::RebootPaths;
use sonic_tests::redis::RedisServer;

/// The program the installed unit runs.
const INSTALLED_BIN: &str = "/usr/local/bin/kube-reboot";
/// Limit of one external command.
const TIMEOUT: Duration = Duration::from_secs(60);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn shipped_unit() -> String {
    read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/kube-reboot-restore.service"))
}

/// `section -> key -> values` (a key may repeat); comments and blank lines skipped.
fn directives(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a directive: {line}"));
        out.entry(section.clone())
            .or_default()
            .entry(k.trim().to_owned())
            .or_default()
            .push(v.trim().to_owned());
    }
    out
}

fn values(text: &str, section: &str, key: &str) -> Vec<String> {
    directives(text)
        .get(section)
        .and_then(|s| s.get(key))
        .cloned()
        .unwrap_or_default()
}

/// Runs `cmd` with piped output, killing it after [`TIMEOUT`].
fn run(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let end = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Stub units for the SONiC units the shipped ones name, in `<dir>/stubs`.
fn stubs(dir: &Path) -> PathBuf {
    let stubs = dir.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    for service in ["caclmgrd.service", "database.service"] {
        std::fs::write(
            stubs.join(service),
            "[Unit]\nDescription=stub\n[Service]\nExecStart=/bin/true\n",
        )
        .unwrap();
    }
    std::fs::write(stubs.join("sonic.target"), "[Unit]\nDescription=stub\n").unwrap();
    stubs
}

/// `systemd-analyze verify` of `units` with `stubs` searched first (then the system's units,
/// for sysinit.target and the like). Ok when it exits 0 without any diagnostic.
fn verify(units: &[&Path], stubs: &Path) -> Result<(), String> {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["verify", "--man=no", "--generators=no"])
        .args(units)
        // The trailing colon appends the default search path.
        .env("SYSTEMD_UNIT_PATH", format!("{}:", stubs.display()));
    let out = run(cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {text}", out.status))
    }
}

/// The shipped unit with `ExecStart=` pointing at the built binary.
fn unit_for_built_binary() -> String {
    let unit = shipped_unit();
    let exec = format!("ExecStart={INSTALLED_BIN} ");
    assert_eq!(unit.matches(&exec).count(), 1, "{unit}");
    unit.replace(
        &exec,
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_kube-reboot")),
    )
}

#[test]
fn shipped_restore_unit_passes_systemd_analyze_verify_against_the_built_binary() {
    let dir = tempfile::tempdir().unwrap();
    let stubs = stubs(dir.path());
    let unit = dir.path().join("kube-reboot-restore.service");
    std::fs::write(&unit, unit_for_built_binary()).unwrap();
    if let Err(e) = verify(&[&unit], &stubs) {
        panic!("systemd-analyze verify rejected kube-reboot-restore.service: {e}");
    }
}

#[test]
fn restore_unit_and_ctrmgrd_unit_verify_together_without_an_ordering_cycle() {
    // ctrmgrd's own unit is verified against the built ctrmgrd in sonic-daemon's tests; here
    // only the ordering between the two matters, so its program is any existing executable.
    let ctrmgrd_unit = read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../sonic-daemon/systemd/ctrmgrd.service"),
    );
    assert!(ctrmgrd_unit.contains("ExecStart=/usr/local/bin/ctrmgrd\n"));
    let ctrmgrd_unit = ctrmgrd_unit.replace(
        "ExecStart=/usr/local/bin/ctrmgrd\n",
        &format!("ExecStart={}\n", env!("CARGO_BIN_EXE_kube-reboot")),
    );
    let dir = tempfile::tempdir().unwrap();
    let stubs = stubs(dir.path());
    let restore = dir.path().join("kube-reboot-restore.service");
    let ctrmgrd = dir.path().join("ctrmgrd.service");
    std::fs::write(&restore, unit_for_built_binary()).unwrap();
    std::fs::write(&ctrmgrd, &ctrmgrd_unit).unwrap();
    if let Err(e) = verify(&[&restore, &ctrmgrd], &stubs) {
        panic!("the two units do not verify together: {e}");
    }
    // Neither waits for the other: restore may wait 10 minutes for the features, and ctrmgrd
    // follows the settings restore writes whenever it writes them.
    let restore_text = unit_for_built_binary();
    assert!(
        !restore_text.contains("ctrmgrd.service\n"),
        "{restore_text}"
    );
    assert!(
        !ctrmgrd_unit.contains("kube-reboot-restore.service\n"),
        "{ctrmgrd_unit}"
    );
    // The check sees cycles: ordering restore both before and after ctrmgrd is rejected.
    let cyclic = restore_text.replace(
        "After=sonic.target\n",
        "After=sonic.target\nBefore=ctrmgrd.service\nAfter=ctrmgrd.service\n",
    );
    assert_ne!(cyclic, restore_text);
    std::fs::write(&restore, cyclic).unwrap();
    let err = verify(&[&restore, &ctrmgrd], &stubs).expect_err("a cycle was accepted");
    assert!(err.contains("cycl"), "{err}");
}

#[test]
fn verification_rejects_a_broken_restore_unit() {
    let good = unit_for_built_binary();
    let broken = [
        good.replace(
            env!("CARGO_BIN_EXE_kube-reboot"),
            "/nonexistent/kube-reboot",
        ),
        good.replace("Type=oneshot", "Type=once"),
        good.replace("TimeoutStartSec=12min", "TimeoutStartSec=12 minutes please"),
        good.replace(
            "RemainAfterExit=yes",
            "RemainAfterExit=yes\nRemainAfterExits=yes",
        ),
        // A oneshot without a command.
        good.lines()
            .filter(|l| !l.starts_with("ExecStart="))
            .collect::<Vec<_>>()
            .join("\n"),
    ];
    for unit in broken {
        let dir = tempfile::tempdir().unwrap();
        let stubs = stubs(dir.path());
        let path = dir.path().join("kube-reboot-restore.service");
        std::fs::write(&path, &unit).unwrap();
        assert!(
            verify(&[&path], &stubs).is_err(),
            "accepted a broken unit:\n{unit}"
        );
    }
}

/// Seconds of a systemd time span (`12min`, `720s`, `1h`) or a `--wait-up` value (`10m`).
fn seconds(value: &str) -> u64 {
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let n: u64 = value[..digits]
        .parse()
        .unwrap_or_else(|_| panic!("{value}"));
    match &value[digits..] {
        "" | "s" | "sec" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        unit => panic!("unit {unit:?} of {value} not handled here"),
    }
}

#[test]
fn restore_unit_runs_restore_once_after_the_database_waiting_up_to_10m_without_holding_back_ctrmgrd()
 {
    let unit = shipped_unit();
    assert_eq!(
        values(&unit, "Service", "ExecStart"),
        [format!("{INSTALLED_BIN} restore --wait-up 10m")]
    );
    assert_eq!(values(&unit, "Service", "Type"), ["oneshot"]);
    assert_eq!(values(&unit, "Service", "RemainAfterExit"), ["yes"]);
    // systemd must not kill the wait: the start timeout is above --wait-up.
    let timeout = values(&unit, "Service", "TimeoutStartSec");
    assert_eq!(timeout.len(), 1, "{unit}");
    assert!(
        seconds(&timeout[0]) > seconds("10m"),
        "TimeoutStartSec={} is not above --wait-up 10m",
        timeout[0]
    );
    assert_eq!(values(&unit, "Unit", "Requires"), ["database.service"]);
    let after = values(&unit, "Unit", "After").join(" ");
    for u in ["database.service", "sonic.target"] {
        assert!(after.split_whitespace().any(|a| a == u), "After= lacks {u}");
    }
    // Nothing waits for it: ctrmgrd is level-triggered and follows the settings when written.
    assert!(values(&unit, "Unit", "Before").is_empty(), "{unit}");
    assert_eq!(values(&unit, "Install", "WantedBy"), ["sonic.target"]);
    // Skipped when prepare left nothing: the condition names the state file restore reads.
    assert_eq!(
        values(&unit, "Unit", "ConditionPathExists"),
        [RebootPaths::default().state_file.display().to_string()]
    );
}

#[test]
fn restore_unit_command_line_runs_against_redis_with_nothing_to_restore() {
    // The unit's argv (binary swapped for the built one), against a private redis-server and a
    // state file that does not exist: restore has nothing to do and exits 0.
    let unit = unit_for_built_binary();
    let exec = values(&unit, "Service", "ExecStart");
    let argv: Vec<&str> = exec[0].split_whitespace().collect();
    let redis = RedisServer::start().expect("a private redis-server must start");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .env("SONIC_DB_CONFIG", redis.database_config_path())
        .env("SONIC_REBOOT_STATE", &state)
        .env("SONIC_REBOOT_ROOT", dir.path());
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing to restore"), "{err}");
    assert!(err.contains(&state.display().to_string()), "{err}");
}
