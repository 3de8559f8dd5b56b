//! The shipped `systemd/ctrmgrd.service`: `systemd-analyze verify` accepts a copy whose
//! `ExecStart=` points at the built `ctrmgrd` (the verification checks that the program exists
//! and is executable, so it must be real), with stub units for the SONiC units it depends on;
//! any warning counts as a failure. The key directives are checked on the file itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the unit is installed on a switch refers to the binary here.
const INSTALLED_BIN: &str = "/usr/local/bin/ctrmgrd";
/// Limit of one `systemd-analyze verify`.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

fn shipped_unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/ctrmgrd.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `section -> key -> values` (a key may repeat, e.g. `After=`); comments and blank lines
/// skipped.
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

/// Writes `unit` as `<dir>/ctrmgrd.service` and stubs of the units it needs into
/// `<dir>/stubs`; returns the unit's path and the stub directory.
fn lay_out(dir: &Path, unit: &str) -> (PathBuf, PathBuf) {
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
    let path = dir.join("ctrmgrd.service");
    std::fs::write(&path, unit).unwrap();
    (path, stubs)
}

/// Runs `systemd-analyze verify` on `units` with `stubs` searched first (then the system's
/// own units, for sysinit.target and the like). Ok when it exits 0 without any diagnostic;
/// else the reason.
fn verify(units: &[&Path], stubs: &Path) -> Result<(), String> {
    let mut child = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .args(units)
        // The trailing colon appends the default search path.
        .env("SYSTEMD_UNIT_PATH", format!("{}:", stubs.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-analyze must be installed (apt-get install systemd)");
    let end = Instant::now() + VERIFY_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("systemd-analyze verify did not finish within {VERIFY_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    if status.success() && out.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{status}: {out}"))
    }
}

/// The shipped unit with `ExecStart=` pointing at the built binary.
fn unit_for_built_binary() -> String {
    let unit = shipped_unit();
    let exec = format!("ExecStart={INSTALLED_BIN}\n");
    assert_eq!(unit.matches(&exec).count(), 1, "{unit}");
    unit.replace(
        &exec,
        &format!("ExecStart={}\n", env!("CARGO_BIN_EXE_ctrmgrd")),
    )
}

#[test]
fn shipped_ctrmgrd_unit_passes_systemd_analyze_verify_against_the_built_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (unit, stubs) = lay_out(dir.path(), &unit_for_built_binary());
    if let Err(e) = verify(&[&unit], &stubs) {
        panic!("systemd-analyze verify rejected ctrmgrd.service: {e}");
    }
}

#[test]
fn verification_rejects_a_broken_ctrmgrd_unit() {
    // The check above is real: a missing program, a wrong value and a stray directive each fail.
    let good = unit_for_built_binary();
    let broken = [
        good.replace(env!("CARGO_BIN_EXE_ctrmgrd"), "/nonexistent/ctrmgrd"),
        good.replace("Restart=always", "Restart=allways"),
        good.replace("RestartSec=30", "RestartSec=30\nRestartSecs=30"),
    ];
    for unit in broken {
        let dir = tempfile::tempdir().unwrap();
        let (path, stubs) = lay_out(dir.path(), &unit);
        assert!(
            verify(&[&path], &stubs).is_err(),
            "accepted a broken unit:\n{unit}"
        );
    }
}

#[test]
fn ctrmgrd_unit_runs_the_daemon_always_under_sonic_target() {
    let d = directives(&shipped_unit());
    let one = |section: &str, key: &str| -> Vec<String> {
        d.get(section)
            .and_then(|s| s.get(key))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(one("Service", "ExecStart"), [INSTALLED_BIN]);
    assert_eq!(one("Service", "Type"), ["simple"]);
    assert_eq!(one("Service", "Restart"), ["always"]);
    assert_eq!(one("Service", "RestartSec"), ["30"]);
    // SIGHUP re-reads the timers file.
    assert_eq!(one("Service", "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(one("Install", "WantedBy"), ["sonic.target"]);
    assert_eq!(one("Unit", "BindsTo"), ["sonic.target"]);
    let after = one("Unit", "After").join(" ");
    for unit in ["sonic.target", "caclmgrd.service"] {
        assert!(
            after.split_whitespace().any(|a| a == unit),
            "After= lacks {unit}: {after}"
        );
    }
    // Not after kube-reboot-restore.service: that oneshot may wait 10 minutes for the features
    // after a warm reboot, and ctrmgrd follows the settings it writes whenever it writes them.
    assert!(
        !after.contains("kube-reboot-restore"),
        "ctrmgrd must not wait for kube-reboot restore: {after}"
    );
}
