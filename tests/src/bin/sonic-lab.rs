//! `sonic-lab up|down|status [--dir lab-state] [--bin-dir target/debug]`: brings up a simulated
//! switch with a Kubernetes master (see `sonic_tests::lab`), walks snmp through local → kube →
//! fallback, and leaves the lab running in the background for `show` and `config`.
//!
//! The same binary is the lab's node programs: run as `systemctl`, `kubeadm` or `modprobe`
//! (links in `lab-state/bin/`), it forwards its argv to the running lab.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sonic_tests::lab::control::{self, CONTROL_ENV};
use sonic_tests::lab::{FEATURE, KUBE_VERSION, Lab, LabOptions, LabPaths, StepEvent};

const USAGE: &str = "usage: sonic-lab up|down|status [--dir lab-state] [--bin-dir target/debug]";
const UP_DEADLINE: Duration = Duration::from_secs(600);
const WALK_DEADLINE: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if matches!(name.as_str(), "systemctl" | "kubeadm" | "modprobe") {
        return shim(&name);
    }
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sonic-lab: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A node program: forward to the lab and mirror its answer.
fn shim(name: &str) -> ExitCode {
    let Some(socket) = std::env::var_os(CONTROL_ENV) else {
        eprintln!("{name}: {CONTROL_ENV} is not set (this is the sonic-lab node program)");
        return ExitCode::from(1);
    };
    let mut argv = vec![name.to_string()];
    argv.extend(std::env::args().skip(1));
    match control::forward(Path::new(&socket), &argv, Duration::from_secs(180)) {
        Ok(reply) => {
            print!("{}", reply.stdout);
            eprint!("{}", reply.stderr);
            ExitCode::from(u8::try_from(reply.code).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::from(1)
        }
    }
}

struct Args {
    command: String,
    dir: PathBuf,
    bin_dir: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut command = None;
    let mut dir = PathBuf::from("lab-state");
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut bin_dir = exe
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target/debug"));
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = PathBuf::from(args.next().context("--dir needs a directory")?),
            "--bin-dir" => {
                bin_dir = PathBuf::from(args.next().context("--bin-dir needs a directory")?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other if other.starts_with('-') => bail!("unknown option {other}\n{USAGE}"),
            other => {
                if command.replace(other.to_string()).is_some() {
                    bail!("only one command may be given\n{USAGE}");
                }
            }
        }
    }
    let dir = absolute(&dir)?;
    let bin_dir = absolute(&bin_dir)?;
    Ok(Args {
        command: command.context(USAGE)?,
        dir,
        bin_dir,
    })
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = parse_args()?;
    match args.command.as_str() {
        "up" => up(&args),
        "serve" => serve(&args),
        "down" => down(&args.dir).map(|()| ExitCode::SUCCESS),
        "status" => status(&args),
        other => bail!("unknown command {other}\n{USAGE}"),
    }
}

fn pid_alive(path: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    kill(Pid::from_raw(pid), None).is_ok().then_some(pid)
}

/// `up`: start the lab process in the background, print its progress, walk through.
fn up(args: &Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if pid_alive(&args.dir.join("serve.pid")).is_some() {
        bail!(
            "a lab is already running in {}: run `sonic-lab down` first",
            args.dir.display()
        );
    }
    if args.dir.exists() {
        down(&args.dir)?;
    }
    std::fs::create_dir_all(args.dir.join("logs"))?;
    let log_path = args.dir.join("logs/lab.log");
    let log = std::fs::File::create(&log_path)?;
    let exe = std::env::current_exe()?;
    // setsid: the lab outlives this command and the terminal.
    let child = std::process::Command::new("setsid")
        .arg(&exe)
        .arg("serve")
        .arg("--dir")
        .arg(&args.dir)
        .arg("--bin-dir")
        .arg(&args.bin_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start the lab process (setsid from util-linux)")?;
    drop(child);

    println!("Bringing up the lab in {}", args.dir.display());
    let progress = args.dir.join("progress");
    let deadline = Instant::now() + UP_DEADLINE;
    let mut seen = 0usize;
    loop {
        let text = std::fs::read_to_string(&progress).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[seen..] {
            let mut parts = line.splitn(4, '\t');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("DONE"), Some(name), Some(ms), _) => {
                    println!("  \u{2713} {name} ({})", secs(ms));
                }
                (Some("FAIL"), Some(name), Some(ms), msg) => {
                    println!("  \u{2717} {name} ({})", secs(ms));
                    bail!(
                        "step \"{name}\" failed: {}\nlab log: {}",
                        msg.unwrap_or(""),
                        log_path.display()
                    );
                }
                (Some("ERROR"), Some(msg), _, _) => {
                    bail!("{msg}\nlab log: {}", log_path.display());
                }
                _ => {}
            }
        }
        seen = lines.len();
        if lines.last() == Some(&"READY") {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the lab did not come up within {} s; lab log: {}",
                UP_DEADLINE.as_secs(),
                log_path.display()
            );
        }
        if pid_alive(&args.dir.join("serve.pid")).is_none() && seen > 0 && !text.contains("READY") {
            std::thread::sleep(Duration::from_millis(300));
            let again = std::fs::read_to_string(&progress).unwrap_or_default();
            if !again.contains("READY") && !again.contains("FAIL") && !again.contains("ERROR") {
                bail!("the lab process died; lab log: {}", log_path.display());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("Lab up in {:.1} s\n", started.elapsed().as_secs_f64());

    let paths = LabPaths {
        dir: args.dir.clone(),
        bin_dir: args.bin_dir.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let walked = rt.block_on(walk_through(&paths));
    if let Err(e) = &walked {
        println!("\u{2717} walk-through stopped: {e:#}");
    }
    println!(
        "\nTotal {:.1} s. The lab keeps running. Try:\n",
        started.elapsed().as_secs_f64()
    );
    println!(
        "  export SONIC_DB_CONFIG={}",
        paths.database_config().display()
    );
    println!("  export DOCKER_HOST={}", paths.docker_host());
    println!("  target/debug/show feature status {FEATURE}");
    println!("  target/debug/show feature config {FEATURE}");
    println!("  SONIC_CLI_SKIP_ROOT_CHECK=1 target/debug/config feature owner {FEATURE} local");
    println!("  scripts/lab status");
    println!("  scripts/lab down");
    Ok(if walked.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn secs(ms: &str) -> String {
    let ms: f64 = ms.parse().unwrap_or(0.0);
    format!("{:.1} s", ms / 1000.0)
}

fn show(paths: &LabPaths, title: &str) -> anyhow::Result<()> {
    let out = paths.run(
        &paths.docker_host(),
        "show",
        &["feature", "status", FEATURE],
    )?;
    println!("--- {title}: show feature status {FEATURE}");
    print!("{out}");
    Ok(())
}

async fn walk_through(paths: &LabPaths) -> anyhow::Result<()> {
    let t = Instant::now();
    show(paths, "1. boot: snmp runs the local image")?;

    let ctrmgrd = paths.bin_dir.join("ctrmgrd");
    if !ctrmgrd.is_file() {
        println!("(ctrmgrd is not built: the walk-through stops at local mode)");
        return Ok(());
    }
    paths.run(
        &paths.docker_host(),
        "config",
        &["feature", "owner", FEATURE, "kube"],
    )?;
    println!("\n$ config feature owner {FEATURE} kube");
    paths
        .wait_feature(FEATURE, "snmp deployed by kube", WALK_DEADLINE, |s| {
            s.get("current_owner").map(String::as_str) == Some("kube")
                && s.get("remote_state").map(String::as_str) == Some("running")
                && s.get("container_version").map(String::as_str) == Some(KUBE_VERSION)
        })
        .await?;
    show(
        paths,
        &format!(
            "2. kube: the master's pod {KUBE_VERSION} took over ({:.1} s)",
            t.elapsed().as_secs_f64()
        ),
    )?;

    paths
        .wait_feature(FEATURE, "kube image marked good", WALK_DEADLINE, |s| {
            s.get("container_stable_version").map(String::as_str) == Some(KUBE_VERSION)
        })
        .await?;
    println!(
        "(ctrmgrd marked {KUBE_VERSION} good: tagged {FEATURE}'s kube image as the local :latest)"
    );

    let t = Instant::now();
    println!("\n$ (master) delete DaemonSet snmp {KUBE_VERSION}: kube stops delivering");
    let reply = control::forward(
        &control::socket_path(&paths.dir),
        &[
            "lab".to_string(),
            "daemonset".into(),
            "delete".into(),
            KUBE_VERSION.into(),
        ],
        Duration::from_secs(30),
    )?;
    if reply.code != 0 {
        bail!("cannot delete the daemon set: {}", reply.stderr);
    }
    paths
        .wait_feature(FEATURE, "fallback to the local image", WALK_DEADLINE, |s| {
            s.get("current_owner").map(String::as_str) == Some("local")
                && s.get("system_state").map(String::as_str) == Some("up")
                && s.get("container_version").map(String::as_str) == Some(KUBE_VERSION)
        })
        .await?;
    show(
        paths,
        &format!(
            "3. fallback: the last good image runs locally after the deadline ({:.1} s)",
            t.elapsed().as_secs_f64()
        ),
    )?;
    Ok(())
}

/// The lab process: brings the lab up, reports progress to `<dir>/progress`, serves until
/// SIGTERM, then stops everything.
fn serve(args: &Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)?;
    std::fs::write(
        args.dir.join("serve.pid"),
        format!("{}\n", std::process::id()),
    )?;
    let progress_path = args.dir.join("progress");
    let mut progress_file = std::fs::File::create(&progress_path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let options = LabOptions::new(&args.dir, &args.bin_dir);
        let mut report = |e: &StepEvent| {
            let line = match e {
                StepEvent::Started(n) => format!("START\t{n}"),
                StepEvent::Done(n, d) => format!("DONE\t{n}\t{}", d.as_millis()),
                StepEvent::Failed(n, d, m) => {
                    format!("FAIL\t{n}\t{}\t{}", d.as_millis(), m.replace('\n', " "))
                }
            };
            eprintln!("{line}");
            let _ = writeln!(progress_file, "{line}");
            let _ = progress_file.flush();
        };
        let lab = match Lab::up(options, &mut report).await {
            Ok(lab) => lab,
            Err(e) => {
                let _ = writeln!(
                    progress_file,
                    "ERROR\t{}",
                    format!("{e:#}").replace('\n', " ")
                );
                return Err(e);
            }
        };
        writeln!(progress_file, "READY")?;
        progress_file.flush()?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("stopping the lab");
        lab.shutdown().await;
        anyhow::Ok(())
    });
    let _ = std::fs::remove_file(args.dir.join("serve.pid"));
    result.map(|()| ExitCode::SUCCESS)
}

/// `down`: stop the lab process (it stops its servers), kill what a crashed one left, remove
/// the directory.
fn down(dir: &Path) -> anyhow::Result<()> {
    if let Some(pid) = pid_alive(&dir.join("serve.pid")) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(90);
        while kill(Pid::from_raw(pid), None).is_ok() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
        }
        if kill(Pid::from_raw(pid), None).is_ok() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    for pidfile in ["ctrmgrd.pid", "redis/redis.pid", "docker/dockerd.pid"] {
        if let Some(pid) = pid_alive(&dir.join(pidfile)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            std::thread::sleep(Duration::from_millis(500));
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    if dir.exists() {
        // A lab process that was killed may leave the engine's mounts behind: the error then
        // names the directory to unmount.
        std::fs::remove_dir_all(dir).with_context(|| {
            format!(
                "cannot remove {} (mounts of a killed dockerd left behind? `umount -R {}/docker/data`)",
                dir.display(),
                dir.display()
            )
        })?;
    }
    println!("lab in {} stopped and removed", dir.display());
    Ok(())
}

fn status(args: &Args) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    let Some(pid) = pid_alive(&dir.join("serve.pid")) else {
        println!("no lab running in {}", dir.display());
        return Ok(ExitCode::from(3));
    };
    println!("lab process {pid} ({})", dir.display());
    for (what, pidfile) in [
        ("redis-server", "redis/redis.pid"),
        ("dockerd", "docker/dockerd.pid"),
        ("ctrmgrd", "ctrmgrd.pid"),
    ] {
        match pid_alive(&dir.join(pidfile)) {
            Some(p) => println!("  \u{2713} {what} (pid {p})"),
            None => println!("  \u{2717} {what} not running"),
        }
    }
    let paths = LabPaths {
        dir: dir.clone(),
        bin_dir: args.bin_dir.clone(),
    };
    let reply = control::forward(
        &control::socket_path(dir),
        &["lab".to_string(), "labels".into()],
        Duration::from_secs(10),
    )?;
    println!("  node labels: {}", reply.stdout);
    println!("--- show feature status {FEATURE}");
    print!(
        "{}",
        paths.run(
            &paths.docker_host(),
            "show",
            &["feature", "status", FEATURE]
        )?
    );
    Ok(ExitCode::SUCCESS)
}
