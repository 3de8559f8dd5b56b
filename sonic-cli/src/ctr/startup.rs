//! `container_startup -f <feature> -o <local|kube> -v <version>`: runs inside a feature container
//! before its application. The core's admission machine decides; this module gives it the
//! container's own id, real sleeps and a log, and blocks for good when the machine says the hold
//! is final, logging the reason every 60 s like upstream's `do_freeze`.

use std::process::ExitCode;

use clap::Parser;
use sonic_db::SonicDbConfig;
use sonic_docker_adapter::{own_container_id, short_id};
use sonic_feature_core::exec::{self, StartupOutcome};
use sonic_feature_core::model::{ContainerId, SetOwner};
use sonic_feature_core::startup::{FROZEN_RECHECK, FreezeReason, StartupArgs};

use super::args::StartupCli;
use super::log::Logger;
use super::{CtrError, SystemClock, one_line, runtime, settings};

/// The `container_startup` binary: exits 0 when the application may start, blocks while the
/// deployment is not wanted, exits 1 with the reason when Redis cannot be used.
pub fn main() -> ExitCode {
    let cli = match StartupCli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let log = Logger::new(
        "container_startup",
        cli.verbose || settings::log_stderr_from_env(),
    );
    let result = runtime().and_then(|rt| rt.block_on(run(&cli, &log)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = one_line(&format!("container_startup {}: {e}", cli.feature));
            log.error_to_syslog(&message);
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

/// The id this container records (12 characters, like upstream); only a Kubernetes-deployed
/// container needs it. When it cannot be found the machine holds the container for good, since
/// the host could never follow it.
fn own_id(owner: SetOwner, log: &Logger) -> Option<ContainerId> {
    match owner {
        SetOwner::Local => None,
        SetOwner::Kube => match own_container_id() {
            Ok(full) => ContainerId::parse(short_id(&full)).ok(),
            Err(e) => {
                log.error(&format!("cannot find the id of this container: {e}"));
                None
            }
        },
    }
}

/// Runs the admission; returns when the application may start, never returns while frozen.
pub async fn run(cli: &StartupCli, log: &Logger) -> Result<(), CtrError> {
    let dbs = SonicDbConfig::from_env()?;
    // A multi-ASIC instance (`lldp0`) keeps its status where `container` and ctrmgrd keep it:
    // in its namespace's STATE_DB, under the feature's name.
    let (store, _) = super::container::open_store(&dbs, &cli.feature).await?;
    let clock = SystemClock::new();
    let own = own_id(cli.owner, log);
    let feature = cli.feature.clone();
    let shown_id = own
        .as_ref()
        .map_or_else(|| feature.to_string(), ToString::to_string);
    let blocking = |reason: &FreezeReason| {
        format!("Blocking .... feat:{feature} docker_id:{shown_id} msg:{reason}")
    };
    log.info(&format!(
        "container_startup -f {feature} -o {} -v {}: checking",
        cli.owner, cli.version
    ));
    let args = StartupArgs {
        feature: feature.clone(),
        owner: cli.owner,
        version: cli.version.clone(),
        own_id: own.clone(),
    };
    let outcome = exec::container_startup(
        store.as_ref(),
        &clock,
        tokio::time::sleep,
        |reason| log.error(&blocking(reason)),
        args,
    )
    .await
    .map_err(CtrError::Exec)?;
    match outcome {
        StartupOutcome::Proceed => {
            log.info(&format!(
                "container_startup {feature}: admitted as {} owner, starting the application",
                cli.owner
            ));
            Ok(())
        }
        StartupOutcome::Frozen(reason) => loop {
            // Final: no later change can admit this container; block like upstream so that the
            // application never starts, and keep saying why.
            tokio::time::sleep(FROZEN_RECHECK).await;
            log.error(&blocking(&reason));
        },
    }
}
