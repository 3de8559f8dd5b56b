//! Shared pieces of the `container` / `container_startup` end-to-end tests: the built binaries,
//! one private redis-server per test, the shared private dockerd, unique feature names, test
//! images and cleanup.
//!
//! The binaries live in `sonic-cli`, so `CARGO_BIN_EXE_*` is not available here. [`bin`] finds
//! them next to this test executable (`<target>/<profile>/`, so `CARGO_TARGET_DIR` and the profile
//! are honoured) and, when they are missing or older than any source they are built from, runs
//! `cargo build -p sonic-cli --bins` (same profile) once per test process and fails with cargo's
//! output if that fails. Under `cargo test --workspace` cargo has already built them (sonic-cli
//! has integration tests, so its binaries are built with the workspace's tests) and no nested
//! build runs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use sonic_docker_adapter::{Bind, ContainerDetails, CreateSpec, DockerClient};
use sonic_tests::docker::{ImageSpec, build_image, docker_host};
use sonic_tests::redis::{CONFIG_DB, RedisServer, STATE_DB};

/// Time limit of one command of the binaries under test (a `wait` is given its own).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Sources the binaries are built from: a newer file means they must be rebuilt.
const SOURCE_DIRS: &[&str] = &[
    "sonic-cli/src",
    "sonic-feature-core/src",
    "sonic-db/src",
    "sonic-docker-adapter/src",
];
const SOURCE_FILES: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "sonic-cli/Cargo.toml",
    "sonic-feature-core/Cargo.toml",
    "sonic-db/Cargo.toml",
    "sonic-docker-adapter/Cargo.toml",
];
const BINARIES: &[&str] = &["container", "container_startup"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn newest_mtime(path: &Path, newest: &mut SystemTime) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                newest_mtime(&e.path(), newest);
            }
        }
    } else if let Ok(m) = meta.modified()
        && m > *newest
    {
        *newest = m;
    }
}

fn binaries_fresh(dir: &Path) -> bool {
    let root = workspace_root();
    let mut newest = SystemTime::UNIX_EPOCH;
    for d in SOURCE_DIRS.iter().chain(SOURCE_FILES) {
        newest_mtime(&root.join(d), &mut newest);
    }
    BINARIES.iter().all(|b| {
        std::fs::metadata(dir.join(b))
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= newest)
    })
}

fn locate_binaries() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the test executable")?;
    // <target>/<profile>/deps/<test>-<hash>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected test executable path {}", exe.display()))?
        .to_path_buf();
    if binaries_fresh(&dir) {
        return Ok(dir);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from(env!("CARGO")));
    let mut argv: Vec<OsString> = vec![
        cargo,
        "build".into(),
        "--quiet".into(),
        "-p".into(),
        "sonic-cli".into(),
        "--bins".into(),
        "--manifest-path".into(),
        workspace_root().join("Cargo.toml").into_os_string(),
    ];
    if dir.file_name().is_some_and(|n| n == "release") {
        argv.push("--release".into());
    }
    let out = run(&argv, &[], Duration::from_secs(1200))?;
    if !out.status.success() {
        bail!(
            "building the container binaries failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for b in BINARIES {
        if !dir.join(b).is_file() {
            bail!(
                "cargo build -p sonic-cli --bins succeeded but {} is missing (is CARGO_TARGET_DIR different from the tests' target dir?)",
                dir.join(b).display()
            );
        }
    }
    Ok(dir)
}

/// The path of a binary of sonic-cli (`container`, `container_startup`), built if needed.
pub fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(|| locate_binaries().map_err(|e| format!("{e:#}"))) {
        Ok(dir) => dir.join(name),
        Err(e) => panic!("the sonic-cli binaries are not available: {e}"),
    }
}

/// Runs `argv` (no shell) with extra environment, killing it after `timeout`.
pub fn run(argv: &[OsString], env: &[(OsString, OsString)], timeout: Duration) -> Result<Output> {
    let child = spawn(argv, env)?;
    finish(child, timeout)
}

/// Spawns `argv` with piped output and extra environment.
pub fn spawn(argv: &[OsString], env: &[(OsString, OsString)]) -> Result<Child> {
    let (program, args) = argv.split_first().context("empty argv")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The logging switch of the environment running the tests must not change the output.
    cmd.env_remove("SONIC_LOG_STDERR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))
}

/// Waits for `child` at most `timeout` (then kills it and fails) and collects its output.
pub fn finish(mut child: Child, timeout: Duration) -> Result<Output> {
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
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("command did not finish within {} s", timeout.as_secs());
        }
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

fn wait_child(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it holds or `deadline` passes; returns whether it held.
pub fn wait_for(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A feature name no other test (of this or a concurrent run) uses: it is also the container's
/// name on the shared engine.
pub fn unique_feature(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let mix = (std::process::id() << 12) ^ nanos ^ (n << 24) ^ n;
    format!("{prefix}{mix:08x}")
}

/// Runs an async Docker operation on a private current-thread runtime (the tests are sync).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
        .block_on(f)
}

/// The image every feature container of these tests runs unless it needs `container_startup`:
/// busybox, `IMAGE_VERSION=20201231.11`, a process that exits 0 on SIGTERM.
pub const PLAIN_IMAGE: &str = "sonic-ctr-test-plain:1";
/// The version baked into both test images.
pub const IMAGE_VERSION: &str = "20201231.11";
/// The image of a SONiC feature in miniature: `start.sh` runs `container_startup` and then the
/// "application", which first touches `/out/app-started`.
pub const STARTUP_IMAGE: &str = "sonic-ctr-test-startup:1";

/// A process that idles and exits 0 on SIGTERM at once (a bare `sleep` as PID 1 ignores it, and
/// every `docker stop` would wait docker's grace period). A script in the image, not a shell
/// string.
const IDLE_SCRIPT: &str = "#!/bin/sh\ntrap 'exit 0' TERM\nsleep 100000 &\nwait\n";
/// `fail-after SECONDS STATUS`: an application that fails with STATUS after SECONDS.
const FAIL_AFTER_SCRIPT: &str = "#!/bin/sh\nsleep \"$1\"\nexit \"$2\"\n";

fn sleeper_cmd() -> Vec<String> {
    vec!["/usr/bin/idle".to_string()]
}

/// Builds [`PLAIN_IMAGE`] once per process.
pub fn plain_image() -> &'static str {
    static BUILT: OnceLock<Result<String, String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
        let host = docker_host().map_err(|e| format!("{e:#}"))?;
        let spec = ImageSpec::new()
            .env("IMAGE_VERSION", IMAGE_VERSION)
            .file("/usr/bin/idle", IDLE_SCRIPT.as_bytes().to_vec(), 0o755)
            .file(
                "/usr/bin/fail-after",
                FAIL_AFTER_SCRIPT.as_bytes().to_vec(),
                0o755,
            )
            .cmd(sleeper_cmd());
        block_on(build_image(&host, PLAIN_IMAGE, &spec)).map_err(|e| format!("{e:#}"))
    });
    match r {
        Ok(_) => PLAIN_IMAGE,
        Err(e) => panic!("cannot build {PLAIN_IMAGE}: {e}"),
    }
}

/// The start script of [`STARTUP_IMAGE`]: upstream's start.sh sequence (empty `RUNTIME_OWNER`
/// means kube), with `container_startup`'s log and status kept in the bind-mounted `/out`.
fn start_script(container_startup: &Path) -> String {
    format!(
        r#"#!/bin/sh
if [ -z "$RUNTIME_OWNER" ]; then RUNTIME_OWNER=kube; fi
{bin} -f "$FEATURE" -o "$RUNTIME_OWNER" -v "$IMAGE_VERSION" --verbose 2>>/out/startup.log
echo $? > /out/startup.status
touch /out/app-started
trap 'exit 0' TERM
sleep 100000 &
wait
"#,
        bin = container_startup.display()
    )
}

/// Builds [`STARTUP_IMAGE`] (busybox + the built `container_startup` with its libraries + the
/// start script) once per process.
pub fn startup_image() -> &'static str {
    static BUILT: OnceLock<Result<String, String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
        let host = docker_host().map_err(|e| format!("{e:#}"))?;
        let startup = bin("container_startup");
        let spec = ImageSpec::new()
            .env("IMAGE_VERSION", IMAGE_VERSION)
            .binary(&startup)
            .file(
                "/usr/bin/start.sh",
                start_script(&startup).into_bytes(),
                0o755,
            )
            .cmd(["/usr/bin/start.sh"]);
        block_on(build_image(&host, STARTUP_IMAGE, &spec)).map_err(|e| format!("{e:#}"))
    });
    match r {
        Ok(_) => STARTUP_IMAGE,
        Err(e) => panic!("cannot build {STARTUP_IMAGE}: {e}"),
    }
}

/// One test's world: a private redis-server with SONiC's databases, the shared private dockerd,
/// a directory with the kube-support marker and the timers file, and the containers to remove
/// at the end.
pub struct Lab {
    pub redis: RedisServer,
    pub dir: tempfile::TempDir,
    pub docker_host: String,
    /// Whether `SONIC_CTRMGRD_UNIT` names an existing file.
    pub kube_support: bool,
    containers: std::sync::Mutex<Vec<String>>,
}

impl Lab {
    /// A lab with Kubernetes support installed.
    pub fn new() -> Self {
        let redis = RedisServer::start().expect("a private redis-server must start");
        let dir = tempfile::Builder::new()
            .prefix("ctr-lab")
            .tempdir()
            .expect("a temp dir");
        std::fs::write(dir.path().join("ctrmgrd.service"), "[Unit]\n").expect("marker file");
        std::fs::create_dir_all(dir.path().join("out")).expect("out dir");
        let docker_host = docker_host().expect("the private dockerd must be available");
        Lab {
            redis,
            dir,
            docker_host,
            kube_support: true,
            containers: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The same lab on a build without Kubernetes support (no ctrmgrd unit).
    pub fn without_kube_support(mut self) -> Self {
        self.kube_support = false;
        self
    }

    /// Writes `remote_ctr.config.json` with these contents.
    pub fn remote_ctr_config(&self, json: &str) {
        std::fs::write(self.remote_ctr_config_path(), json).expect("timers file");
    }

    pub fn remote_ctr_config_path(&self) -> PathBuf {
        self.dir.path().join("remote_ctr.config.json")
    }

    /// The directory bind-mounted at `/out` in containers started with [`Lab::create_feature`].
    pub fn out_dir(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// The environment of the binaries under test.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        let unit = if self.kube_support {
            self.dir.path().join("ctrmgrd.service")
        } else {
            self.dir.path().join("absent-ctrmgrd.service")
        };
        vec![
            (
                "SONIC_DB_CONFIG".into(),
                self.redis.database_config_path().into(),
            ),
            ("DOCKER_HOST".into(), self.docker_host.clone().into()),
            ("SONIC_CTRMGRD_UNIT".into(), unit.into()),
            (
                "SONIC_REMOTE_CTR_CONFIG".into(),
                self.remote_ctr_config_path().into(),
            ),
        ]
    }

    fn argv(&self, args: &[&str]) -> Vec<OsString> {
        std::iter::once(bin("container").into_os_string())
            .chain(args.iter().map(OsString::from))
            .collect()
    }

    /// Runs `container <args>` and waits for it.
    pub fn container(&self, args: &[&str]) -> Output {
        run(&self.argv(args), &self.env(), COMMAND_TIMEOUT)
            .unwrap_or_else(|e| panic!("container {args:?}: {e:#}"))
    }

    /// Starts `container <args>` in the background (for `wait`).
    pub fn spawn_container(&self, args: &[&str]) -> Child {
        spawn(&self.argv(args), &self.env()).unwrap_or_else(|e| panic!("container {args:?}: {e:#}"))
    }

    // --- Redis ----------------------------------------------------------------------------

    pub fn hset(&self, db: i64, key: &str, fields: &[(&str, &str)]) {
        let mut conn = self.redis.connection(db).expect("redis connection");
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (f, v) in fields {
            cmd.arg(*f).arg(*v);
        }
        cmd.query::<()>(&mut conn).expect("HSET");
    }

    pub fn hgetall(&self, db: i64, key: &str) -> BTreeMap<String, String> {
        let mut conn = self.redis.connection(db).expect("redis connection");
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut conn)
            .expect("HGETALL")
    }

    pub fn config(&self, feature: &str, fields: &[(&str, &str)]) {
        self.hset(CONFIG_DB, &format!("FEATURE|{feature}"), fields);
    }

    pub fn seed_state(&self, feature: &str, fields: &[(&str, &str)]) {
        self.hset(STATE_DB, &format!("FEATURE|{feature}"), fields);
    }

    pub fn state(&self, feature: &str) -> BTreeMap<String, String> {
        self.hgetall(STATE_DB, &format!("FEATURE|{feature}"))
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        self.hgetall(STATE_DB, "KUBE_LABELS|SET")
    }

    /// Asserts that `actual` holds every field of `expected` (upstream's `check_subset`).
    pub fn assert_subset(actual: &BTreeMap<String, String>, expected: &[(&str, &str)]) {
        for (k, v) in expected {
            assert_eq!(
                actual.get(*k).map(String::as_str),
                Some(*v),
                "field {k} in {actual:?}"
            );
        }
    }

    // --- Docker ---------------------------------------------------------------------------

    pub fn docker(&self) -> DockerClient {
        DockerClient::new(&self.docker_host).expect("docker client")
    }

    /// Creates (not starts) a container named `name` from `image`, removed at the end of the
    /// test. `/out` is the lab's out dir; the Redis directory is mounted at its own path so that
    /// `SONIC_DB_CONFIG` works inside.
    pub fn create_container(&self, name: &str, image: &str, env: &[(&str, &str)]) -> String {
        self.create(name, image, env, None)
    }

    /// Creates a container of the plain image running `cmd` instead of its own command.
    pub fn create_container_with_cmd(&self, name: &str, cmd: &[&str]) -> String {
        self.create(name, plain_image(), &[], Some(cmd))
    }

    fn create(
        &self,
        name: &str,
        image: &str,
        env: &[(&str, &str)],
        cmd: Option<&[&str]>,
    ) -> String {
        let redis_dir = self.redis.dir().display().to_string();
        let mut spec = CreateSpec::new(name, image);
        spec.cmd = cmd.map(|c| c.iter().map(|a| (*a).to_string()).collect());
        spec.host_network = true;
        spec.private_cgroupns = true;
        spec.binds = vec![
            Bind {
                host: redis_dir.clone(),
                container: redis_dir,
                read_only: false,
            },
            Bind {
                host: self.out_dir().display().to_string(),
                container: "/out".into(),
                read_only: false,
            },
        ];
        spec.env = vec![(
            "SONIC_DB_CONFIG".to_string(),
            self.redis.database_config_path().display().to_string(),
        )];
        spec.env.extend(
            env.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        self.containers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name.to_string());
        block_on(self.docker().create_container(&spec))
            .unwrap_or_else(|e| panic!("cannot create container {name}: {e}"))
    }

    pub fn start_container(&self, name: &str) {
        block_on(self.docker().start_container(name))
            .unwrap_or_else(|e| panic!("cannot start container {name}: {e}"));
    }

    pub fn kill_container(&self, name: &str) {
        block_on(self.docker().kill_container(name))
            .unwrap_or_else(|e| panic!("cannot kill container {name}: {e}"));
    }

    pub fn inspect(&self, name: &str) -> ContainerDetails {
        block_on(self.docker().inspect_container(name))
            .unwrap_or_else(|e| panic!("cannot inspect container {name}: {e}"))
            .unwrap_or_else(|| panic!("container {name} does not exist"))
    }

    pub fn running(&self, name: &str) -> bool {
        self.inspect(name).running
    }

    /// Waits until the container runs (or not), failing after 30 s.
    pub fn expect_running(&self, name: &str, running: bool) {
        assert!(
            wait_for(Duration::from_secs(30), || self.running(name) == running),
            "container {name} should be {}",
            if running { "running" } else { "stopped" }
        );
    }

    /// Whether the application of a [`STARTUP_IMAGE`] container started.
    pub fn app_started(&self) -> bool {
        self.out_dir().join("app-started").exists()
    }

    /// `container_startup`'s stderr in a [`STARTUP_IMAGE`] container.
    pub fn startup_log(&self) -> String {
        std::fs::read_to_string(self.out_dir().join("startup.log")).unwrap_or_default()
    }

    /// Waits until `container_startup`'s log contains `text`, failing after 30 s with the log.
    pub fn expect_startup_log(&self, text: &str) {
        assert!(
            wait_for(Duration::from_secs(30), || self
                .startup_log()
                .contains(text)),
            "container_startup never logged {text:?}; its log:\n{}",
            self.startup_log()
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let names = std::mem::take(
            &mut *self
                .containers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if names.is_empty() {
            return;
        }
        let docker = self.docker();
        block_on(async {
            for n in names {
                let _ = docker.remove_container(&n, true).await;
            }
        });
    }
}

/// Asserts a command's exit status, showing its stderr when it differs.
pub fn assert_status(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
