//! Private `dockerd` for tests and a busybox-based image builder, so that Docker tests run against
//! the real engine without touching the host's default socket or needing an image registry.
//!
//! - [`docker_host`] gives the `DOCKER_HOST` URI of the engine every test of this process shares:
//!   the one named by `SONIC_TEST_DOCKER_HOST` (started once per run by `scripts/test` / CI), or
//!   a private one started on first use.
//! - [`PrivateDockerd`] is one private engine in a directory (start / stop / restart), also used by
//!   the `sonic-test-dockerd` binary and by tests that restart the engine mid-scenario; with
//!   [`EngineOptions::live_restore`] its containers keep running while dockerd is away, and
//!   [`engine_dir`] gives such a test a directory that a later run sweeps if this one is killed.
//! - [`build_image`] imports a small rootfs (busybox-static plus given files and ELF binaries with
//!   their shared libraries) as an image, with `ENV` / `CMD` / `LABEL` changes.
//!
//! Engines started here die with the test process: they are spawned through
//! `setpriv --pdeathsig TERM` from a thread that lives as long as the process, so dockerd shuts
//! down cleanly (stopping its containers and containerd) when the process exits. Directories of
//! engines whose owner process died without that cleanup (SIGKILL of both, a reboot) are swept on
//! the next start.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Environment variable naming an already running engine to use instead of starting one.
pub const DOCKER_HOST_ENV: &str = "SONIC_TEST_DOCKER_HOST";
/// Environment variable overriding the busybox binary put into test images.
pub const BUSYBOX_ENV: &str = "SONIC_TEST_BUSYBOX";
/// Environment variable forcing a storage driver (`overlay2`, `vfs`) on private engines; by default
/// dockerd picks one itself and falls back to `vfs` where overlayfs does not work.
pub const STORAGE_DRIVER_ENV: &str = "SONIC_TEST_DOCKER_STORAGE_DRIVER";
/// Label holding a hash of an image's content and changes, to skip rebuilding the same image.
pub const CONTENT_HASH_LABEL: &str = "org.sonic-tests.content-hash";

const INSTALL_HINT: &str = "run scripts/install-deps";
const READY_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(60);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// A directory without an owner file younger than this is being set up by another process.
const SETUP_GRACE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The engine shared by the tests of this process
// ---------------------------------------------------------------------------------------------

struct Shared {
    /// Held, never read: keeps a private engine for the life of the process.
    _daemon: Option<PrivateDockerd>,
    host: String,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

/// The `DOCKER_HOST` URI (`unix:///...`) of the engine the tests of this process share.
///
/// Uses `SONIC_TEST_DOCKER_HOST` when set (after checking that it answers `/_ping`), otherwise
/// starts a private dockerd under `<tmp>/sonic-test-dockerd/` once per process. Fails (never
/// skips) with the reason and, for a private engine, the tail of its log.
pub fn docker_host() -> anyhow::Result<String> {
    let shared = SHARED.get_or_init(|| init_shared().map_err(|e| format!("{e:#}")));
    // The static keeps the engine (`Shared::_daemon`) for the whole process: it is never dropped,
    // and dies with the process through its parent-death signal.
    match shared {
        Ok(s) => Ok(s.host.clone()),
        Err(e) => Err(anyhow!("{e}")),
    }
}

fn init_shared() -> anyhow::Result<Shared> {
    if let Ok(host) = std::env::var(DOCKER_HOST_ENV)
        && !host.is_empty()
    {
        let socket = unix_socket_path(&host)
            .with_context(|| format!("{DOCKER_HOST_ENV}={host} is not usable"))?;
        wait_for_ping(&socket, READY_DEADLINE, || Ok(()))
            .with_context(|| format!("docker engine named by {DOCKER_HOST_ENV}={host}"))?;
        return Ok(Shared {
            _daemon: None,
            host,
        });
    }
    let base = std::env::temp_dir().join("sonic-test-dockerd");
    fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    sweep_stale(&base);
    // `keep()`: the directory outlives this process' statics on purpose; the next run's sweep
    // removes it once the engine is gone.
    let dir = tempfile::Builder::new()
        .prefix("d")
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a directory in {}", base.display()))?
        .keep();
    let daemon = PrivateDockerd::start(&dir)?;
    let host = daemon.host().to_string();
    Ok(Shared {
        _daemon: Some(daemon),
        host,
    })
}

/// Removes directories under `base` left by engines whose owner process is gone.
fn sweep_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        match read_owner(&dir) {
            Some(owner) if owner_alive(&owner) => continue,
            Some(_) => {}
            None => {
                let young = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_none_or(|age| age < SETUP_GRACE);
                if young {
                    continue;
                }
            }
        }
        stop_stale_engine(&dir);
        let _ = fs::remove_dir_all(&dir);
    }
}

// ---------------------------------------------------------------------------------------------
// PrivateDockerd
// ---------------------------------------------------------------------------------------------

/// One private dockerd with everything under one directory: `data/` (data root), `exec/` (exec
/// root, containerd state), `docker.sock`, `dockerd.pid`, `dockerd.log`, an empty
/// `daemon.json` (so the host's `/etc/docker/daemon.json` does not apply) and `owner` (pid and
/// start time of the process that started it, for the stale sweep).
///
/// Dropping it stops the engine (its containers stop with it); the directory stays.
#[derive(Debug)]
pub struct PrivateDockerd {
    dir: PathBuf,
    host: String,
    options: EngineOptions,
    child: Option<Child>,
}

/// How a [`PrivateDockerd`] runs; the default is what [`PrivateDockerd::start`] gives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// dockerd's `--live-restore`: containers (with containerd's shims) keep running while
    /// dockerd is stopped and are adopted again when it restarts, as on a switch whose engine
    /// crashes or is restarted under running containers. [`PrivateDockerd::stop`] then stops
    /// dockerd alone; dropping the engine also ends what it left running.
    pub live_restore: bool,
}

impl EngineOptions {
    /// Options with `--live-restore`.
    pub fn live_restore() -> Self {
        Self { live_restore: true }
    }
}

/// A fresh directory for a test's own [`PrivateDockerd`] under `<tmp>/sonic-test-dockerd/`,
/// short enough for dockerd's unix sockets. Directories there whose owner process died without
/// cleaning up (a killed test, whose live-restore engine left containers running) are swept
/// first. The directory is removed when the returned value is dropped; drop the engine before.
pub fn engine_dir() -> anyhow::Result<tempfile::TempDir> {
    let base = std::env::temp_dir().join("sonic-test-dockerd");
    fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    sweep_stale(&base);
    tempfile::Builder::new()
        .prefix("e")
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a directory in {}", base.display()))
}

impl PrivateDockerd {
    /// Starts dockerd in `dir` (created if missing) and waits until `/_ping` answers (60 s).
    ///
    /// A dockerd still running from an earlier, crashed run in the same directory is stopped
    /// first.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(dir, EngineOptions::default())
    }

    /// [`PrivateDockerd::start`] with `options` (`--live-restore`, for instance).
    pub fn start_with(dir: &Path, options: EngineOptions) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let socket = dir.join("docker.sock");
        // sockaddr_un holds 108 bytes; containerd's socket lives deeper under exec/.
        let longest = dir.join("exec/containerd/containerd.sock.ttrpc");
        if longest.as_os_str().len() >= 108 {
            bail!(
                "directory {} is too deep for dockerd's unix sockets (max 108 bytes): use a shorter path",
                dir.display()
            );
        }
        let mut me = PrivateDockerd {
            host: format!("unix://{}", socket.display()),
            dir,
            options,
            child: None,
        };
        me.launch(true)?;
        Ok(me)
    }

    /// The options this engine runs with.
    pub fn options(&self) -> EngineOptions {
        self.options
    }

    /// The `DOCKER_HOST` URI of this engine.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The engine's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of dockerd's log (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    /// Whether dockerd is running (started and not yet exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops dockerd with SIGTERM, SIGKILL after 60 s. Without live-restore it stops its
    /// containers and containerd; with live-restore they keep running (the engine's API is gone
    /// until [`PrivateDockerd::restart`]). Stopping a stopped engine does nothing.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("dockerd pid out of range")?);
        if child.try_wait().context("cannot poll dockerd")?.is_none() {
            let _ = kill(pid, Signal::SIGTERM);
            if wait_child(&mut child, STOP_DEADLINE)?.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if !self.options.live_restore {
            // A hard kill leaves containerd and shims behind; they would hold the directories.
            // The network namespace dockerd bind-mounts under its exec root outlives it.
            kill_processes_mentioning(&self.dir);
            unmount_below(&self.dir);
        }
        let _ = fs::remove_file(self.dir.join("docker.sock"));
        Ok(())
    }

    /// Stops dockerd and ends everything of the engine still running: with live-restore its
    /// containers, containerd and the shims (killed), then the mounts. What dropping does.
    pub fn shut_down(&mut self) -> anyhow::Result<()> {
        let stopped = self.stop();
        if self.options.live_restore {
            // Containers first: a container whose shim is gone is reparented and keeps running.
            kill_container_processes(&self.dir);
            kill_processes_mentioning(&self.dir);
            unmount_below(&self.dir);
        }
        stopped
    }

    /// Stops and starts dockerd again in the same directory, with the same `DOCKER_HOST`; images
    /// and containers survive (stopped, or still running with live-restore).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.launch(false)
    }

    /// `fresh`: the first start in this directory, which ends what an earlier run left there.
    fn launch(&mut self, fresh: bool) -> anyhow::Result<()> {
        require_program("dockerd", "docker.io")?;
        require_program("setpriv", "util-linux")?;
        let dir = &self.dir;
        // An engine of an earlier run in this directory (its pidfile names a live dockerd of this
        // directory) would make dockerd refuse to start. A live-restore restart keeps what the
        // stopped dockerd left running: the new one adopts containerd and the containers.
        if fresh || !self.options.live_restore {
            stop_stale_engine(dir);
        }
        let _ = fs::remove_file(dir.join("docker.sock"));
        write_owner(dir)?;
        fs::write(dir.join("daemon.json"), b"{}\n")
            .with_context(|| format!("cannot write {}/daemon.json", dir.display()))?;
        let log_path = self.log_path();
        let log = fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .context("cannot duplicate the log file handle")?;

        let mut cmd = Command::new("setpriv");
        cmd.arg("--pdeathsig").arg("TERM").arg("--").arg("dockerd");
        cmd.args(dockerd_args_with(dir, &self.options));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let mut child = spawn_from_keeper(cmd)
            .with_context(|| format!("cannot start dockerd ({INSTALL_HINT})"))?;

        let socket = dir.join("docker.sock");
        let ready = wait_for_ping(&socket, READY_DEADLINE, || match child.try_wait() {
            Ok(Some(status)) => bail!("dockerd exited with {status}"),
            Ok(None) => Ok(()),
            Err(e) => bail!("cannot poll dockerd: {e}"),
        });
        if let Err(e) = ready {
            let _ = kill(
                Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)),
                Signal::SIGTERM,
            );
            if !matches!(wait_child(&mut child, Duration::from_secs(20)), Ok(Some(_))) {
                let _ = child.kill();
                let _ = child.wait();
            }
            kill_processes_mentioning(dir);
            bail!(
                "private dockerd in {} did not come up: {e:#}\n--- tail of {} ---\n{}",
                dir.display(),
                log_path.display(),
                tail(&log_path, 30)
            );
        }
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

/// The dockerd arguments for a private engine in `dir` (after `dockerd`).
///
/// Networking is host-only (`--bridge=none`, no iptables) because tests use host networking and
/// must not change the host's firewall; the cgroup and storage drivers are dockerd's defaults
/// (`cgroupfs`; `overlay2` with fallback to `vfs`) unless `SONIC_TEST_DOCKER_STORAGE_DRIVER` is set.
pub fn dockerd_args(dir: &Path) -> Vec<OsString> {
    dockerd_args_with(dir, &EngineOptions::default())
}

/// [`dockerd_args`] for an engine with `options` (`--live-restore` when asked).
pub fn dockerd_args_with(dir: &Path, options: &EngineOptions) -> Vec<OsString> {
    let p = |name: &str| dir.join(name).into_os_string();
    let mut host = OsString::from("unix://");
    host.push(dir.join("docker.sock"));
    let mut args: Vec<OsString> = vec![
        "--data-root".into(),
        p("data"),
        "--exec-root".into(),
        p("exec"),
        "--pidfile".into(),
        p("dockerd.pid"),
        "--host".into(),
        host,
        "--config-file".into(),
        p("daemon.json"),
        "--bridge=none".into(),
        "--iptables=false".into(),
        "--ip6tables=false".into(),
    ];
    if let Ok(driver) = std::env::var(STORAGE_DRIVER_ENV)
        && !driver.is_empty()
    {
        args.push("--storage-driver".into());
        args.push(driver.into());
    }
    if options.live_restore {
        args.push("--live-restore".into());
    }
    args
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process: `--pdeathsig` fires when the
/// *thread* that forked the child exits, and test threads end with their test.
fn spawn_from_keeper(cmd: Command) -> anyhow::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        // If the thread cannot start, `rx` is dropped and every request below fails with
        // "dockerd keeper thread is gone".
        let _ = std::thread::Builder::new()
            .name("dockerd-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // The sender lives in a static, so the loop never ends; park to be sure the
                // thread (the parent of every engine) stays.
                loop {
                    std::thread::park();
                }
            });
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    keeper
        .lock()
        .map_err(|_| anyhow!("dockerd keeper lock poisoned"))?
        .send((cmd, reply_tx))
        .map_err(|_| anyhow!("dockerd keeper thread is gone"))?;
    let child = reply_rx
        .recv_timeout(COMMAND_TIMEOUT)
        .map_err(|_| anyhow!("dockerd keeper thread did not answer"))??;
    Ok(child)
}

/// Waits until `GET /_ping` on `socket` answers `OK`, calling `check` between attempts (to fail
/// fast when the daemon died).
fn wait_for_ping(
    socket: &Path,
    deadline: Duration,
    mut check: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    loop {
        check()?;
        let last = match ping(socket) {
            Ok(()) => return Ok(()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= until {
            bail!(
                "no answer to /_ping on {} within {} s (last error: {last})",
                socket.display(),
                deadline.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ping(socket: &Path) -> anyhow::Result<()> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.lines().next().unwrap_or("");
    if status.contains(" 200 ") && answer.ends_with("OK") {
        Ok(())
    } else {
        bail!("unexpected answer to /_ping: {status:?}")
    }
}

fn unix_socket_path(host: &str) -> anyhow::Result<PathBuf> {
    match host.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        _ => bail!("expected unix:///absolute/path/docker.sock, got {host:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Stale engines
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Owner {
    pid: i32,
    start_time: u64,
}

fn write_owner(dir: &Path) -> anyhow::Result<()> {
    let me = std::process::id();
    let start = process_start_time(i32::try_from(me).unwrap_or(0)).unwrap_or(0);
    fs::write(dir.join("owner"), format!("{me} {start}\n"))
        .with_context(|| format!("cannot write {}/owner", dir.display()))
}

fn read_owner(dir: &Path) -> Option<Owner> {
    let text = fs::read_to_string(dir.join("owner")).ok()?;
    let mut words = text.split_whitespace();
    Some(Owner {
        pid: words.next()?.parse().ok()?,
        start_time: words.next()?.parse().ok()?,
    })
}

/// Alive and the same process (pid not reused: same start time).
fn owner_alive(owner: &Owner) -> bool {
    process_start_time(owner.pid) == Some(owner.start_time)
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks after boot).
fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Stops whatever an earlier engine left in `dir`: its dockerd (SIGTERM, then SIGKILL), then any
/// containerd or shim still naming the directory, the processes of its containers, and its
/// mounts.
fn stop_stale_engine(dir: &Path) {
    if let Some(pid) = fs::read_to_string(dir.join("dockerd.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        && cmdline_mentions(pid, dir)
    {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until && cmdline_mentions(pid, dir) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if cmdline_mentions(pid, dir) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    kill_processes_mentioning(dir);
    kill_container_processes(dir);
    unmount_below(dir);
}

fn cmdline_mentions(pid: i32, dir: &Path) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let needle = dir.as_os_str().as_encoded_bytes();
    raw.windows(needle.len()).any(|w| w == needle)
}

/// SIGKILLs the engine's own processes that still name `dir` on their command line: dockerd,
/// containerd, the containerd shims and runc. Other processes naming it (a wrapper script, a
/// `timeout`, a debugger) are left alone.
fn kill_processes_mentioning(dir: &Path) {
    const ENGINE: &[&str] = &["dockerd", "containerd", "runc", "docker-proxy"];
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me || !cmdline_mentions(pid, dir) {
            continue;
        }
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim();
        // comm is cut at 15 bytes: `containerd-shim-runc-v2` reads `containerd-shim`.
        if ENGINE.contains(&comm) || comm.starts_with("containerd-shim") {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// SIGKILLs the processes of containers of the engine in `dir`, found through the cgroups dockerd
/// put them in (`<hierarchy>/docker/<id>`, cgroup v1 and v2, cgroupfs driver).
fn kill_container_processes(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir.join("data/containers")) else {
        return;
    };
    let roots = [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ];
    for entry in entries.flatten() {
        let id = entry.file_name();
        for root in roots {
            let procs = Path::new(root)
                .join("docker")
                .join(&id)
                .join("cgroup.procs");
            let Ok(text) = fs::read_to_string(&procs) else {
                continue;
            };
            for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Unmounts (lazily) every mount point at or below `dir`, deepest first (overlay roots, the
/// network namespace file dockerd bind-mounts under its exec root).
fn unmount_below(dir: &Path) {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for point in points {
        let argv = [
            OsString::from("umount"),
            "-l".into(),
            point.into_os_string(),
        ];
        let _ = run_argv(&argv, COMMAND_TIMEOUT);
    }
}

/// Mount paths in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(raw: &str) -> PathBuf {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(digits) = std::str::from_utf8(&bytes[i + 1..i + 4])
            && let Ok(v) = u8::from_str_radix(digits, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(OsString::from(String::from_utf8_lossy(&out).into_owned()))
}

// ---------------------------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------------------------

fn require_program(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    find_program(name).ok_or_else(|| {
        anyhow!("{name} not found in PATH (Debian package {package}): {INSTALL_HINT}")
    })
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn wait_child(
    child: &mut Child,
    deadline: Duration,
) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().context("cannot poll child process")? {
            return Ok(Some(status));
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `argv` (no shell) with stdin closed, capturing stdout and stderr, killing it after
/// `timeout`.
pub fn run_argv(argv: &[OsString], timeout: Duration) -> anyhow::Result<Output> {
    let (program, args) = argv.split_first().context("empty argv")?;
    let shown = argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {shown}"))?;
    let mut out_pipe = child.stdout.take().context("stdout not piped")?;
    let mut err_pipe = child.stderr.take().context("stderr not piped")?;
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let status = match wait_child(&mut child, timeout)? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{shown} did not finish within {} s", timeout.as_secs());
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read: {e})"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Image builder
// ---------------------------------------------------------------------------------------------

/// Where the bytes of a file put into an image come from.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// These bytes.
    Bytes(Vec<u8>),
    /// The content of this host file (symlinks followed).
    Host(PathBuf),
}

/// One file put into an image.
#[derive(Debug, Clone)]
pub struct ImageFile {
    /// Absolute path inside the image.
    pub path: String,
    /// Content.
    pub source: FileSource,
    /// Permission bits (`0o755`).
    pub mode: u32,
}

/// What [`build_image`] puts into an image besides busybox.
///
/// ```no_run
/// # use sonic_tests::docker::ImageSpec;
/// let spec = ImageSpec::new()
///     .env("IMAGE_VERSION", "1.0.0")
///     .cmd(["sleep", "1000"])
///     .file("/etc/motd", b"hello\n".to_vec(), 0o644)
///     .binary("/usr/bin/cat");
/// ```
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// Files, placed after busybox's applet links (so they may replace an applet).
    pub files: Vec<ImageFile>,
    /// Host ELF binaries, put at the same path inside the image together with the shared
    /// libraries and the dynamic loader `ldd` lists for them.
    pub binaries: Vec<PathBuf>,
    /// `ENV` changes (a default `PATH` is always set first).
    pub env: Vec<(String, String)>,
    /// `CMD` (exec form); empty means none.
    pub cmd: Vec<String>,
    /// `LABEL` changes.
    pub labels: Vec<(String, String)>,
}

impl ImageSpec {
    /// An image with busybox only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file with the given bytes.
    pub fn file(mut self, path: &str, bytes: Vec<u8>, mode: u32) -> Self {
        self.files.push(ImageFile {
            path: path.to_string(),
            source: FileSource::Bytes(bytes),
            mode,
        });
        self
    }

    /// Adds a copy of a host file.
    pub fn host_file(mut self, path: &str, host: impl Into<PathBuf>, mode: u32) -> Self {
        self.files.push(ImageFile {
            path: path.to_string(),
            source: FileSource::Host(host.into()),
            mode,
        });
        self
    }

    /// Adds a host ELF binary with its shared libraries.
    pub fn binary(mut self, host: impl Into<PathBuf>) -> Self {
        self.binaries.push(host.into());
        self
    }

    /// Adds an `ENV key=value`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Sets the `CMD` (exec form).
    pub fn cmd<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cmd = argv.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a `LABEL key=value`.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }
}

/// Busybox applets linked in `/bin` of every test image.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "ash", "sleep", "cat", "echo", "ls", "true", "false", "env", "kill", "ps", "mkdir", "rm",
    "touch", "grep", "head", "tail", "wc", "date", "id", "hostname", "sed", "printf", "test", "[",
    "sync", "mount", "uname", "pwd", "cp", "mv", "ln", "chmod", "tr", "cut", "awk", "find", "wget",
    "nc", "timeout", "trap", "yes", "seq", "readlink", "basename", "dirname", "stat",
];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Entry {
    Dir(u32),
    File(Vec<u8>, u32),
    Symlink(String),
}

/// A rootfs under construction: normalized relative paths (`bin/sh`) to entries; later inserts
/// replace earlier ones, parents are added as directories.
#[derive(Debug, Default)]
struct Rootfs {
    entries: BTreeMap<String, Entry>,
}

impl Rootfs {
    fn insert(&mut self, path: &str, entry: Entry) -> anyhow::Result<()> {
        let rel = normalize_image_path(path)?;
        let mut parent = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.entries.get(&parent) {
                Some(Entry::Dir(_)) => {}
                Some(_) => bail!("image path {path}: parent /{parent} is not a directory"),
                None => {
                    self.entries.insert(parent.clone(), Entry::Dir(0o755));
                }
            }
        }
        self.entries.insert(rel, entry);
        Ok(())
    }

    /// A deterministic tar (sorted paths, mtime 0, root-owned), so equal specs give equal bytes.
    fn to_tar(&self) -> anyhow::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            match entry {
                Entry::Dir(mode) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Entry::File(bytes, mode) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(bytes.len() as u64);
                    builder.append_data(&mut header, path, bytes.as_slice())?;
                }
                Entry::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)?;
                }
            }
        }
        Ok(builder.into_inner()?)
    }
}

fn normalize_image_path(path: &str) -> anyhow::Result<String> {
    if !path.starts_with('/') {
        bail!("image path {path:?} must be absolute");
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        bail!("image path {path:?} must name a file below / without . or ..");
    }
    Ok(parts.join("/"))
}

/// The rootfs tar for `spec`: busybox-static at `/bin/busybox` with applet links, `/etc/passwd`,
/// `/etc/group`, `/tmp`, `/root`, then the spec's binaries (with their libraries) and files.
pub fn rootfs_tar(spec: &ImageSpec) -> anyhow::Result<Vec<u8>> {
    let busybox = std::env::var_os(BUSYBOX_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"));
    rootfs_tar_with(spec, &busybox)
}

fn rootfs_tar_with(spec: &ImageSpec, busybox: &Path) -> anyhow::Result<Vec<u8>> {
    let busybox_bytes = fs::read(busybox).with_context(|| {
        format!(
            "cannot read busybox at {} (Debian package busybox-static): {INSTALL_HINT}",
            busybox.display()
        )
    })?;
    let mut root = Rootfs::default();
    for dir in ["bin", "etc", "root", "usr/bin", "var"] {
        root.insert(&format!("/{dir}"), Entry::Dir(0o755))?;
    }
    root.insert("/tmp", Entry::Dir(0o1777))?;
    root.insert("/bin/busybox", Entry::File(busybox_bytes, 0o755))?;
    // A dynamically linked busybox (SONIC_TEST_BUSYBOX) brings its libraries.
    for (lib_path, bytes) in shared_libraries(busybox)? {
        root.insert(&lib_path, Entry::File(bytes, 0o755))?;
    }
    for applet in BUSYBOX_APPLETS {
        root.insert(&format!("/bin/{applet}"), Entry::Symlink("busybox".into()))?;
    }
    root.insert(
        "/etc/passwd",
        Entry::File(
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                .to_vec(),
            0o644,
        ),
    )?;
    root.insert(
        "/etc/group",
        Entry::File(b"root:x:0:\nnogroup:x:65534:\n".to_vec(), 0o644),
    )?;
    for binary in &spec.binaries {
        let bytes = fs::read(binary)
            .with_context(|| format!("cannot read binary {} for the image", binary.display()))?;
        let in_image = binary
            .to_str()
            .with_context(|| format!("binary path {} is not UTF-8", binary.display()))?;
        root.insert(in_image, Entry::File(bytes, 0o755))?;
        for (lib_path, bytes) in shared_libraries(binary)? {
            root.insert(&lib_path, Entry::File(bytes, 0o755))?;
        }
    }
    for file in &spec.files {
        let bytes = match &file.source {
            FileSource::Bytes(b) => b.clone(),
            FileSource::Host(p) => fs::read(p).with_context(|| {
                format!("cannot read {} for image file {}", p.display(), file.path)
            })?,
        };
        root.insert(&file.path, Entry::File(bytes, file.mode))?;
    }
    root.to_tar()
}

/// The shared libraries and dynamic loader of an ELF binary, as (path, content), from `ldd`.
/// A static binary has none.
fn shared_libraries(binary: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    require_program("ldd", "libc-bin")?;
    let argv = [OsString::from("ldd"), binary.as_os_str().to_os_string()];
    let out = run_argv(&argv, COMMAND_TIMEOUT)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stdout.contains("not a dynamic executable")
            || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed ({}): {}",
            binary.display(),
            out.status,
            stderr.trim()
        );
    }
    let mut libs = Vec::new();
    for path in parse_ldd(&stdout).with_context(|| format!("ldd {}", binary.display()))? {
        let bytes = fs::read(&path).with_context(|| {
            format!("cannot read library {path} needed by {}", binary.display())
        })?;
        libs.push((path, bytes));
    }
    Ok(libs)
}

/// Paths of the libraries in `ldd` output: `name => /path (0x...)` and the loader's
/// `/path (0x...)`; the vDSO (no path) is skipped, `not found` is an error.
pub fn parse_ldd(text: &str) -> anyhow::Result<Vec<String>> {
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("statically linked") {
            continue;
        }
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("library {} not found", name.trim());
                }
                rest
            }
            None => line,
        };
        let path = target.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            paths.push(path.to_string());
        }
    }
    Ok(paths)
}

/// `ENV`, `CMD` and `LABEL` changes for `docker import`, content-hash label last.
fn import_changes(spec: &ImageSpec, content_hash: &str) -> Vec<String> {
    let mut changes = vec![format!("ENV PATH={}", dockerfile_quote(DEFAULT_PATH))];
    for (k, v) in &spec.env {
        changes.push(format!("ENV {k}={}", dockerfile_quote(v)));
    }
    if !spec.cmd.is_empty() {
        let argv = serde_json::to_string(&spec.cmd).unwrap_or_else(|_| "[]".into());
        changes.push(format!("CMD {argv}"));
    }
    for (k, v) in &spec.labels {
        changes.push(format!(
            "LABEL {}={}",
            dockerfile_quote(k),
            dockerfile_quote(v)
        ));
    }
    changes.push(format!(
        "LABEL {CONTENT_HASH_LABEL}={}",
        dockerfile_quote(content_hash)
    ));
    changes
}

/// Double-quoted Dockerfile word: no variable expansion, no splitting.
fn dockerfile_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// FNV-1a 64: a stable hash (unlike `DefaultHasher`) so a shared engine recognises images built by
/// earlier runs.
fn fnv1a(chunks: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in chunks {
        for b in *chunk {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate chunks so ("ab","c") differs from ("a","bc").
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Connects bollard to `host` (unix socket), negotiating the API version (Debian's dockerd 20.10
/// speaks 1.41, older than bollard's default).
pub async fn connect(host: &str) -> anyhow::Result<bollard::Docker> {
    let docker = bollard::Docker::connect_with_unix(host, 120, bollard::API_DEFAULT_VERSION)
        .with_context(|| format!("cannot connect to docker at {host}"))?;
    let docker = tokio::time::timeout(Duration::from_secs(30), docker.negotiate_version())
        .await
        .map_err(|_| anyhow!("docker at {host} did not answer /version within 30 s"))?
        .with_context(|| format!("cannot negotiate the API version with docker at {host}"))?;
    Ok(docker)
}

/// Builds `reference` (`name:tag`) from `spec` by importing a rootfs tar (`docker import` with
/// changes) and returns the image id. Skips the import when the tag already names an image with
/// the same content hash.
pub async fn build_image(host: &str, reference: &str, spec: &ImageSpec) -> anyhow::Result<String> {
    let (repo, tag) = split_reference(reference)?;
    let tar = rootfs_tar(spec)?;
    let provisional = import_changes(spec, "");
    let joined = provisional.join("\n");
    let hash = fnv1a(&[&tar, joined.as_bytes()]);
    let docker = connect(host).await?;

    let existing = tokio::time::timeout(COMMAND_TIMEOUT, docker.inspect_image(reference))
        .await
        .map_err(|_| anyhow!("inspecting image {reference} timed out"))?;
    if let Ok(image) = existing {
        let same = image
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(CONTENT_HASH_LABEL))
            .is_some_and(|h| *h == hash);
        if same && let Some(id) = image.id {
            return Ok(id);
        }
    }

    let options = bollard::query_parameters::CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(import_changes(spec, &hash))
        .build();
    let body = bollard::body_full(bytes::Bytes::from(tar));
    let import = async {
        use futures::StreamExt;
        let mut stream = docker.create_image(Some(options), Some(body), None);
        while let Some(item) = stream.next().await {
            item.with_context(|| format!("docker import of {reference} failed"))?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(120), import)
        .await
        .map_err(|_| anyhow!("docker import of {reference} did not finish within 120 s"))??;
    let image = tokio::time::timeout(COMMAND_TIMEOUT, docker.inspect_image(reference))
        .await
        .map_err(|_| anyhow!("inspecting image {reference} timed out"))?
        .with_context(|| format!("image {reference} missing after import"))?;
    image
        .id
        .with_context(|| format!("image {reference} has no id after import"))
}

fn split_reference(reference: &str) -> anyhow::Result<(&str, &str)> {
    // The tag follows the last ':' unless that ':' belongs to a registry host:port.
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !repo.is_empty() && !tag.is_empty() => {
            Ok((repo, tag))
        }
        _ => bail!("image reference {reference:?} must be name:tag"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_of_a_dynamic_binary_lists_libraries_and_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc5b1f2000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e1c000000)\n\
                    \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f0e1c200000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f0e1c400000)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            vec![
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libz.so.1",
                "/lib64/ld-linux-x86-64.so.2",
            ]
        );
    }

    #[test]
    fn ldd_output_with_a_missing_library_is_an_error_naming_it() {
        let err = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert_eq!(err.to_string(), "library libfoo.so.1 not found");
    }

    #[test]
    fn image_paths_must_be_absolute_and_plain() {
        assert_eq!(normalize_image_path("/usr//bin/x").unwrap(), "usr/bin/x");
        assert!(normalize_image_path("usr/bin/x").is_err());
        assert!(normalize_image_path("/usr/../etc").is_err());
        assert!(normalize_image_path("/").is_err());
    }

    #[test]
    fn dockerfile_quote_escapes_quotes_backslashes_and_dollars() {
        assert_eq!(dockerfile_quote(r#"a "b" \ $X"#), r#""a \"b\" \\ \$X""#);
    }

    #[test]
    fn references_split_at_the_tag_colon_not_the_registry_port() {
        assert_eq!(split_reference("snmp:1.0").unwrap(), ("snmp", "1.0"));
        assert_eq!(
            split_reference("reg:5000/snmp:1.0").unwrap(),
            ("reg:5000/snmp", "1.0")
        );
        assert!(split_reference("reg:5000/snmp").is_err());
        assert!(split_reference("snmp").is_err());
    }

    #[test]
    fn rootfs_tar_is_deterministic_and_files_replace_applets() {
        let spec = ImageSpec::new().file("/bin/cat", b"not cat".to_vec(), 0o755);
        let a = rootfs_tar(&spec).unwrap();
        let b = rootfs_tar(&spec).unwrap();
        assert_eq!(fnv1a(&[&a]), fnv1a(&[&b]));
        let mut archive = tar::Archive::new(a.as_slice());
        let mut cat = None;
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().to_str() == Some("bin/cat") {
                let mut s = String::new();
                entry.read_to_string(&mut s).unwrap();
                cat = Some(s);
            }
        }
        assert_eq!(cat.as_deref(), Some("not cat"));
    }

    #[test]
    fn missing_tools_point_to_install_deps() {
        let err = require_program("sonic-no-such-program", "some-package").unwrap_err();
        assert_eq!(
            err.to_string(),
            "sonic-no-such-program not found in PATH (Debian package some-package): run scripts/install-deps"
        );
        let err =
            rootfs_tar_with(&ImageSpec::new(), Path::new("/nonexistent/busybox")).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("(Debian package busybox-static): run scripts/install-deps"),
            "{err}"
        );
    }

    #[test]
    fn images_carry_dynamic_binaries_with_their_libraries() {
        let tar = rootfs_tar(&ImageSpec::new().binary("/bin/cat")).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let paths: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(paths.iter().any(|p| p == "bin/cat"), "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("libc.so")), "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("ld-linux")), "{paths:?}");
        assert!(paths.iter().any(|p| p == "bin/busybox"));
        assert!(paths.iter().any(|p| p == "etc/passwd"));
    }

    #[test]
    fn live_restore_is_asked_for_only_when_wanted() {
        let dir = Path::new("/tmp/e1");
        let plain = dockerd_args(dir);
        assert!(!plain.iter().any(|a| a == "--live-restore"));
        assert_eq!(plain, dockerd_args_with(dir, &EngineOptions::default()));
        let live = dockerd_args_with(dir, &EngineOptions::live_restore());
        assert_eq!(live.iter().filter(|a| *a == "--live-restore").count(), 1);
        assert_eq!(&live[..plain.len()], &plain[..]);
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(
            unescape_mount_path(r"/tmp/a\040b/c"),
            PathBuf::from("/tmp/a b/c")
        );
    }

    #[test]
    fn owner_of_this_process_is_alive_and_a_reused_pid_is_not() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let start = process_start_time(pid).unwrap();
        assert!(owner_alive(&Owner {
            pid,
            start_time: start
        }));
        assert!(!owner_alive(&Owner {
            pid,
            start_time: start + 1
        }));
    }
}
