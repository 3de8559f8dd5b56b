//! `ctrmgrd`: joins/resets the Kubernetes master, pushes node labels, switches features between
//! local and kube, keeps the last good image and falls back to it. Signals: SIGTERM finishes the
//! actions in flight and exits 0; SIGHUP re-reads `remote_ctr.config.json`.
//!
//! Environment: `SONIC_DB_CONFIG`, `SONIC_DB_GLOBAL_CONFIG`, `DOCKER_HOST`,
//! `SONIC_REMOTE_CTR_CONFIG`, `SONIC_VERSION_FILE`, `SONIC_CTRMGRD_KUBE_ROOT`,
//! `SONIC_KUBE_CA_BUNDLE`, `SONIC_CTRMGRD_NODE_NAME`, `SONIC_CTRMGRD_SYSTEMCTL`,
//! `SONIC_CTRMGRD_SKIP_ROOT_CHECK=1` (tests and lab only), `SONIC_CTRMGRD_ABORT_AFTER_ACTIONS=N`
//! / `SONIC_CTRMGRD_ABORT_BEFORE_ACTION=N` (crash tests: abort right after the N-th executed action
//! / right before starting the N-th).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sonic_daemon::report::{LogSink, SyslogSink};
use sonic_daemon::settings::{Settings, hostname, root_check};
use sonic_daemon::wiring::{open_databases, production_outside};
use sonic_daemon::{Control, Exit, Options, run};
use sonic_db::SonicDbConfig;
use tokio::signal::unix::{SignalKind, signal};

/// mimalloc (v2, no transparent huge pages) gives the pages of a burst back to the kernel once
/// the burst is over: after 10,000 label changes glibc's malloc kept a fragmented heap of
/// 3.9 MB with 1.4 MB in use (2.6 MB more than idle, for good), mimalloc stays ~0.3 MB above
/// idle (scripts/bench-ctrmgrd.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let settings = match Settings::from_env(&hostname()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ctrmgrd: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(msg) = root_check(settings.skip_root_check) {
        eprintln!("{msg}");
        return ExitCode::from(1);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ctrmgrd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve(settings)) {
        Ok(Exit::Terminated) => ExitCode::SUCCESS,
        // The crash-test hook: die without any cleanup, as a killed process would.
        Ok(Exit::Aborted(_)) => std::process::abort(),
        Err(e) => {
            eprintln!("ctrmgrd: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<Exit> {
    let sink: Arc<dyn LogSink> = Arc::new(SyslogSink::new("ctrmgrd"));
    let timers = settings.load_timers()?;
    // The version label is best effort: a missing file must not keep the daemon down.
    let version = match settings.sonic_version() {
        Ok(v) => v,
        Err(e) => {
            sink.log(sonic_daemon::report::Level::Error, &e.to_string());
            String::new()
        }
    };
    let db_config = SonicDbConfig::from_env().context("cannot read the database configuration")?;
    let dbs = open_databases(&db_config)
        .await
        .context("cannot connect to the databases")?;
    let outside =
        production_outside(&settings, &dbs.instances).context("cannot set up the docker client")?;
    let ports = dbs.ports(outside);
    let mut options = Options::new(timers, version);
    options.timers_file = Some(settings.remote_ctr_config.clone());
    options.abort_after_actions = settings.abort_after_actions;
    options.abort_before_action = settings.abort_before_action;
    options.trace_actions = settings.trace_actions;

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    // Signals become control messages of the loop.
    tokio::spawn(async move {
        loop {
            let c = tokio::select! {
                _ = term.recv() => Control::Terminate,
                _ = int.recv() => Control::Terminate,
                _ = hup.recv() => Control::Reload,
            };
            if tx.send(c).is_err() {
                return;
            }
        }
    });
    let instances = dbs.instances.clone();
    Ok(run(dbs.sources, ports, instances, options, sink, rx).await?)
}
