//! Helpers shared by the install tests: external programs with a deadline, a temp root with
//! stub units, and a fake `container` program that records its argv.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sonic_cli::install::InstallPaths;

/// Runs `program args...` with `env` added, killing it after `timeout`.
pub fn run(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // A script written by this test process can be "busy" for a moment: another test
        // thread may fork while it holds the file open for writing, and the child keeps that
        // descriptor until its exec. Retry the spawn until a deadline.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .kill_on_drop(true)
                .stdin(std::process::Stdio::null());
            for (k, v) in env {
                cmd.env(k, v);
            }
            match tokio::time::timeout_at(deadline, cmd.output()).await {
                Err(_) => bail!("{program} {args:?} did not finish within {timeout:?}"),
                Ok(Err(e))
                    if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32)
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(out) => return out.with_context(|| format!("cannot run {program}")),
            }
        }
    })
}

/// Output as text for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes an executable file.
pub fn write_exec(path: &Path, text: &str) -> Result<()> {
    std::fs::create_dir_all(path.parent().context("no parent")?)?;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A temp root with the install layout, stub `swss.service` and `sonic.target` next to the
/// generated units, and a fake `container` that appends its argv to `log`.
pub struct Root {
    pub dir: tempfile::TempDir,
    pub paths: InstallPaths,
    pub log: PathBuf,
    /// A program that records its argv like the fake `container` (for hook commands).
    pub recorder: PathBuf,
}

/// One argv per call, `$0` first, in call order.
pub type Calls = Vec<Vec<String>>;

impl Root {
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let paths = InstallPaths::under(dir.path());
        std::fs::create_dir_all(&paths.unit_dir)?;
        std::fs::create_dir_all(&paths.script_dir)?;
        std::fs::write(
            paths.unit_dir.join("swss.service"),
            "[Unit]\nDescription=stub swss\n\n[Service]\nExecStart=/bin/true\n",
        )?;
        std::fs::write(
            paths.unit_dir.join("sonic.target"),
            "[Unit]\nDescription=stub sonic\n",
        )?;
        let log = dir.path().join("calls.log");
        let recorder = dir.path().join("bin/record-argv");
        // Each call: its arguments NUL-terminated, then a newline (arguments never hold a
        // newline: the generator refuses control characters).
        let body = format!(
            "#!/bin/sh\nprintf '%s\\0' \"$0\" \"$@\" >> '{log}'\nprintf '\\n' >> '{log}'\n",
            log = log.display()
        );
        write_exec(&paths.container_bin, &body)?;
        write_exec(&recorder, &body)?;
        Ok(Self {
            dir,
            paths,
            log,
            recorder,
        })
    }

    /// The calls recorded so far.
    pub fn calls(&self) -> Result<Calls> {
        let bytes = match std::fs::read(&self.log) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let text = String::from_utf8(bytes)?;
        Ok(text
            .split_terminator('\n')
            .map(|rec| rec.split_terminator('\0').map(str::to_owned).collect())
            .collect())
    }

    pub fn recorder(&self) -> String {
        self.recorder.display().to_string()
    }

    pub fn container(&self) -> String {
        self.paths.container_bin.display().to_string()
    }
}

/// `systemd-analyze verify` of `unit`, with the unit's directory searched first and the host's
/// standard units (sysinit.target, ...) after it: the trailing `:` of SYSTEMD_UNIT_PATH appends
/// the default search path.
pub fn systemd_verify(unit_dir: &Path, unit: &Path) -> Result<Output> {
    let search = format!("{}:", unit_dir.display());
    let unit = unit.display().to_string();
    run(
        "systemd-analyze",
        &["verify", &unit],
        &[("SYSTEMD_UNIT_PATH", &search), ("SYSTEMD_LOG_COLOR", "0")],
        Duration::from_secs(60),
    )
}

/// `shellcheck` on `script`; a missing shellcheck is a failure that says how to install it.
pub fn shellcheck(script: &Path) -> Result<Output> {
    let script = script.display().to_string();
    run(
        "shellcheck",
        &["--shell=sh", "--severity=style", &script],
        &[],
        Duration::from_secs(60),
    )
    .context("shellcheck is needed by this test: run scripts/install-deps")
}

/// `/bin/sh -n script`: parses the file and runs nothing (the file is the argument; no command
/// string is given to the shell).
pub fn sh_syntax_check(script: &Path) -> Result<Output> {
    let script = script.display().to_string();
    run("/bin/sh", &["-n", &script], &[], Duration::from_secs(30))
}

/// Runs a generated script with one action; the script's shebang selects /bin/sh.
pub fn run_script(script: &Path, action: &str) -> Result<Output> {
    run(
        &script.display().to_string(),
        &[action],
        &[],
        Duration::from_secs(30),
    )
}
