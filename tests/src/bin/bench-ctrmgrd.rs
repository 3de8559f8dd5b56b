//! `bench-ctrmgrd --ctrmgrd <path> --shim <sonic-lab path> [--changes N] [--idle-secs S]
//! [--features F] [--rss-changes N] [--rounds R]`: measures the real ctrmgrd (run it through
//! `scripts/bench-ctrmgrd.sh`, which builds release binaries).
//!
//! Setup: a private redis-server, the fake Kubernetes API server over HTTPS, `F` locally owned
//! features in CONFIG_DB/STATE_DB, the node programs (`systemctl`, `kubeadm`, `modprobe`)
//! answered in-process through the lab's control socket, and ctrmgrd joined to the master.
//!
//! Figures:
//! - reaction latency: from the HSET of a pure label change into STATE_DB `KUBE_LABELS|SET`
//!   (what `config kubernetes label add` writes) to the moment the fake API server applied the
//!   node patch carrying it (its store's change event), `N` changes one after the other;
//! - resident memory (`VmRSS` of `/proc/<pid>/status`) after `S` s idle, then after each of
//!   `R` rounds (default 3) of `--rss-changes` label changes sent without waiting (growth
//!   check); after the idle period and after the last round also the resident KiB per mapped
//!   file from `/proc/<pid>/smaps` (the binary, libc, ..., `[anonymous]`).
//!
//! Prints a small report; makes no pass/fail judgement (no timing assertions anywhere).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sonic_kube_adapter::KubePaths;
use sonic_tests::fake_kube::FakeKube;
use sonic_tests::fake_kube::StoreEvent;
use sonic_tests::lab::control::{self, CONTROL_ENV, Handler, Reply};
use sonic_tests::redis::RedisServer;
use tokio::sync::broadcast;

const NODE: &str = "sonic-bench";
const CONFIG_DB: i64 = 4;
const STATE_DB: i64 = 6;
const LABEL: &str = "bench";

struct Args {
    ctrmgrd: PathBuf,
    shim: PathBuf,
    changes: usize,
    idle: Duration,
    features: usize,
    rss_changes: usize,
    rounds: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        ctrmgrd: PathBuf::new(),
        shim: PathBuf::new(),
        changes: 1000,
        idle: Duration::from_secs(60),
        features: 30,
        rss_changes: 10_000,
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--ctrmgrd" => a.ctrmgrd = PathBuf::from(value()?),
            "--shim" => a.shim = PathBuf::from(value()?),
            "--changes" => a.changes = value()?.parse()?,
            "--idle-secs" => a.idle = Duration::from_secs(value()?.parse()?),
            "--features" => a.features = value()?.parse()?,
            "--rss-changes" => a.rss_changes = value()?.parse()?,
            "--rounds" => a.rounds = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    if !a.ctrmgrd.is_file() || !a.shim.is_file() {
        bail!("--ctrmgrd <path> and --shim <sonic-lab path> must name built binaries");
    }
    Ok(a)
}

/// The node programs ctrmgrd runs: every unit is active, restarts succeed, `kubeadm join`
/// writes kubelet's configuration as the real one does.
fn node_programs(kubelet_config: PathBuf) -> Handler {
    Arc::new(move |argv: Vec<String>| {
        let kubelet_config = kubelet_config.clone();
        Box::pin(async move {
            let args: Vec<&str> = argv.iter().map(String::as_str).collect();
            match args.as_slice() {
                ["kubeadm", "join", ..] => {
                    if let Some(p) = kubelet_config.parent() {
                        let _ = std::fs::create_dir_all(p);
                    }
                    match std::fs::write(&kubelet_config, "kind: KubeletConfiguration\n") {
                        Ok(()) => Reply::ok(),
                        Err(e) => Reply::fail(1, e.to_string()),
                    }
                }
                ["kubeadm", "reset", ..] => {
                    let _ = std::fs::remove_file(&kubelet_config);
                    Reply::ok()
                }
                ["systemctl", ..] | ["modprobe", ..] => Reply::ok(),
                _ => Reply::fail(1, format!("unsupported command {}", argv.join(" "))),
            }
        })
    })
}

/// `field` (`VmRSS`, `RssAnon`, ...) of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))
        .with_context(|| format!("no {field} line"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("no {field} value"))?
        .parse()?)
}

fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS")
}

/// `VmRSS 11868 KiB (11.59 MiB; anonymous 2000 KiB, file 9000 KiB)`.
fn rss_text(pid: u32) -> anyhow::Result<String> {
    let rss = vm_rss_kib(pid)?;
    Ok(format!(
        "VmRSS {rss} KiB ({:.2} MiB; anonymous {} KiB, file-backed {} KiB)",
        rss as f64 / 1024.0,
        status_kib(pid, "RssAnon")?,
        status_kib(pid, "RssFile")?
    ))
}

/// Where the resident pages are: `Rss` of `/proc/<pid>/smaps` summed per mapped file
/// (`[anonymous]` for malloc arenas and thread stacks, `[heap]`, `[stack]`), largest first, in KiB.
fn rss_by_mapping(pid: u32) -> anyhow::Result<String> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut by: Vec<(String, u64)> = Vec::new();
    let mut current = String::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: `start-end perms offset dev inode [path]`.
            let path = line.split_whitespace().nth(5).unwrap_or("[anonymous]");
            current = match path.rsplit('/').next() {
                Some(name) if path.starts_with('/') => name.to_owned(),
                _ => path.to_owned(),
            };
        } else if first == "Rss:" {
            let kib: u64 = words.next().unwrap_or("0").parse()?;
            match by.iter_mut().find(|(n, _)| *n == current) {
                Some((_, total)) => *total += kib,
                None => by.push((current.clone(), kib)),
            }
        }
    }
    by.retain(|(_, kib)| *kib > 0);
    by.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    Ok(by
        .iter()
        .map(|(n, kib)| format!("{n} {kib}"))
        .collect::<Vec<_>>()
        .join(", "))
}

fn label_of(ev: &StoreEvent) -> Option<String> {
    if ev.name != NODE {
        return None;
    }
    ev.object
        .pointer(&format!("/metadata/labels/{LABEL}"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// Waits until the node's patch carrying `value` is applied.
async fn arrived(
    rx: &mut broadcast::Receiver<StoreEvent>,
    value: &str,
    deadline: Duration,
) -> anyhow::Result<()> {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Err(_) => bail!("label {LABEL}={value} did not reach the node within {deadline:?}"),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(e)) => bail!("store events ended: {e}"),
            Ok(Ok(ev)) if label_of(&ev).as_deref() == Some(value) => return Ok(()),
            Ok(Ok(_)) => {}
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn hset(c: &mut redis::Connection, key: &str, pairs: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (k, v) in pairs {
        cmd.arg(*k).arg(*v);
    }
    cmd.query::<()>(c)?;
    Ok(())
}

fn write_switch_files(dir: &Path, kube: &FakeKube) -> anyhow::Result<KubePaths> {
    let mut paths = KubePaths::under(dir);
    std::fs::create_dir_all(paths.client_cert.parent().context("cert dir")?)?;
    let id = kube.client_identity(NODE)?;
    std::fs::write(&paths.client_cert, &id.cert_pem)?;
    std::fs::write(&paths.client_key, &id.key_pem)?;
    let bundle = dir.join("master-ca.pem");
    std::fs::write(&bundle, kube.ca_pem().context("the fake master has no CA")?)?;
    paths.ca_bundle = Some(bundle);
    std::fs::create_dir_all(paths.flannel_conflist.parent().context("cni dir")?)?;
    std::fs::write(&paths.flannel_conflist, r#"{"name":"cbr0"}"#)?;
    std::fs::write(
        dir.join("remote_ctr.config.json"),
        r#"{"join_latency_on_boot_seconds": 0, "retry_join_interval_seconds": 1,
            "retry_labels_update_seconds": 1}"#,
    )?;
    std::fs::write(dir.join("sonic_version.yml"), "build_version: 'bench'\n")?;
    Ok(paths)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let redis = RedisServer::start().context("redis-server must start")?;
    let kube = FakeKube::start_https().await?;
    kube.store().add_node(NODE, &[], true);
    let paths = write_switch_files(dir.path(), &kube)?;

    let mut cfg = redis.connection(CONFIG_DB)?;
    let mut state = redis.connection(STATE_DB)?;
    let port = kube.addr().port().to_string();
    hset(
        &mut cfg,
        "KUBERNETES_MASTER|SERVER",
        &[("ip", "127.0.0.1"), ("port", &port), ("insecure", "false")],
    )?;
    for i in 0..args.features {
        let f = format!("feat{i}");
        hset(
            &mut cfg,
            &format!("FEATURE|{f}"),
            &[("set_owner", "local"), ("state", "enabled")],
        )?;
        hset(
            &mut state,
            &format!("FEATURE|{f}"),
            &[
                ("current_owner", "local"),
                ("system_state", "up"),
                ("remote_state", "none"),
                ("container_id", &f),
                ("container_version", "1.0.0"),
            ],
        )?;
    }

    let shims = dir.path().join("bin");
    std::fs::create_dir_all(&shims)?;
    for name in ["systemctl", "kubeadm", "modprobe"] {
        std::os::unix::fs::symlink(&args.shim, shims.join(name))?;
    }
    let socket = control::socket_path(dir.path());
    let _control = control::serve(&socket, node_programs(paths.kubelet_config.clone()))?;
    let log_path = dir.path().join("ctrmgrd.log");
    let log = std::fs::File::create(&log_path)?;
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let mut child = tokio::process::Command::new(&args.ctrmgrd)
        .env("PATH", path)
        .env("SONIC_DB_CONFIG", redis.database_config_path())
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no-docker.sock", dir.path().display()),
        )
        .env(
            "SONIC_REMOTE_CTR_CONFIG",
            dir.path().join("remote_ctr.config.json"),
        )
        .env("SONIC_VERSION_FILE", dir.path().join("sonic_version.yml"))
        .env("SONIC_CTRMGRD_KUBE_ROOT", dir.path())
        .env("SONIC_KUBE_CA_BUNDLE", dir.path().join("master-ca.pem"))
        .env("SONIC_CTRMGRD_NODE_NAME", NODE)
        .env("SONIC_CTRMGRD_SYSTEMCTL", shims.join("systemctl"))
        .env("SONIC_CTRMGRD_SKIP_ROOT_CHECK", "1")
        .env(CONTROL_ENV, &socket)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", args.ctrmgrd.display()))?;
    let pid = child.id().context("ctrmgrd exited at once")?;

    // The kubelet's part: the join deletes the node, which registers again.
    let store = kube.store().clone();
    let registrar = tokio::spawn(async move {
        loop {
            if store.node(NODE).is_none() {
                store.add_node(NODE, &[], true);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    // Joined and the self-description labels on the node.
    let joined = kube
        .store()
        .wait_until(Duration::from_secs(60), |s| {
            s.node_labels(NODE)
                .is_some_and(|l| l.get("sonic_version").map(String::as_str) == Some("bench"))
        })
        .await;
    if !joined {
        bail!(
            "ctrmgrd did not join within 60 s; its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    registrar.abort();
    println!(
        "ctrmgrd {} (pid {pid}), {} features",
        args.ctrmgrd.display(),
        args.features
    );
    let settle = Instant::now();
    tokio::time::sleep(args.idle).await;
    println!(
        "after {} s idle: {}",
        settle.elapsed().as_secs(),
        rss_text(pid)?
    );
    println!("  resident KiB by mapping: {}", rss_by_mapping(pid)?);

    let mut rx = kube.store().subscribe();
    let mut lat = Vec::with_capacity(args.changes);
    for i in 0..args.changes {
        let value = format!("v{i}");
        let t0 = Instant::now();
        hset(&mut state, "KUBE_LABELS|SET", &[(LABEL, &value)])?;
        arrived(&mut rx, &value, Duration::from_secs(30)).await?;
        lat.push(t0.elapsed());
    }
    lat.sort();
    let mean = lat.iter().sum::<Duration>() / u32::try_from(lat.len().max(1))?;
    println!(
        "label change -> node patch applied, {} changes: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, mean {:.3} ms",
        lat.len(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
    );

    println!("after those {} changes: {}", args.changes, rss_text(pid)?);
    for round in 1..=args.rounds {
        let t0 = Instant::now();
        let mut last = String::new();
        for i in 0..args.rss_changes {
            last = format!("r{round}x{i}");
            hset(&mut state, "KUBE_LABELS|SET", &[(LABEL, &last)])?;
        }
        arrived(&mut rx, &last, Duration::from_secs(120)).await?;
        // Let the last journal writes finish.
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "after {} more label changes sent without waiting (all applied in {:.2} s): {}",
            args.rss_changes,
            t0.elapsed().as_secs_f64(),
            rss_text(pid)?
        );
    }
    println!("  resident KiB by mapping: {}", rss_by_mapping(pid)?);
    let patches = kube
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with(&format!("/nodes/{NODE}")))
        .count();
    println!("node PATCH requests seen by the fake API server: {patches}");
    if let Some(status) = child.try_wait()? {
        bail!("ctrmgrd exited during the bench with {status}");
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    Ok(())
}
