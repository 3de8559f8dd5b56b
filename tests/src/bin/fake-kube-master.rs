//! Runs the fake Kubernetes API server standalone for the lab: writes `ca.crt`, `client.crt`,
//! `client.key` and `url` into a state directory and serves until SIGTERM or SIGINT.
//!
//! Usage: `fake-kube-master <state-dir> [--listen IP:PORT] [--http] [--node NAME]... [--user CN]`

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use sonic_tests::fake_kube::{FakeKube, FakeKubeOptions};
use tokio::signal::unix::{SignalKind, signal};

struct Args {
    state_dir: PathBuf,
    options: FakeKubeOptions,
    nodes: Vec<String>,
    user: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut state_dir = None;
    let mut options = FakeKubeOptions::default();
    let mut nodes = Vec::new();
    let mut user = "sonic".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => {
                let v = args.next().context("--listen needs IP:PORT")?;
                options.bind = v
                    .parse::<SocketAddr>()
                    .with_context(|| format!("invalid --listen address {v:?}"))?;
            }
            "--http" => options.tls = false,
            "--node" => nodes.push(args.next().context("--node needs a name")?),
            "--user" => user = args.next().context("--user needs a common name")?,
            "-h" | "--help" => {
                println!(
                    "usage: fake-kube-master <state-dir> [--listen IP:PORT] [--http] [--node NAME]... [--user CN]"
                );
                std::process::exit(0);
            }
            other if other.starts_with('-') => bail!("unknown option {other}"),
            other => {
                if state_dir.replace(PathBuf::from(other)).is_some() {
                    bail!("only one state directory may be given");
                }
            }
        }
    }
    Ok(Args {
        state_dir: state_dir.context("missing state directory argument")?,
        options,
        nodes,
        user,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let kube = FakeKube::start(args.options).await?;
    for node in &args.nodes {
        kube.store().add_node(node, &[], true);
    }
    kube.write_state(&args.state_dir, &args.user)?;
    eprintln!("fake-kube-master listening on {}", kube.url());
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(kube);
    Ok(())
}
