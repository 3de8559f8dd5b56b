//! `container {start,stop,kill,wait,id,state}`: one small function per action over the core's
//! planners and executors, and `main`, which maps the outcome to the exit status.
//!
//! `id` is the hot path (scripts call it before every `docker exec`): it opens STATE_DB only, does
//! one HGETALL and never connects to Docker. The other actions read CONFIG_DB and STATE_DB and
//! connect to Docker on their first Docker call (`state` never does).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sonic_db::schema::{self, Origin, dbs};
use sonic_db::{Namespace, RedisFeatureStore, SonicDb, SonicDbConfig};
use sonic_docker_adapter::{BollardRuntime, own_container_id, short_id};
use sonic_feature_core::container::{
    CommandAction, CommandFacts, IdResolution, Refusal, StateChange, plan_kill, plan_start,
    plan_state, plan_stop, resolve_id,
};
use sonic_feature_core::exec::{self, ExecError};
use sonic_feature_core::model::{ContainerId, FeatureConfig, FeatureName, SetOwner, Version};
use sonic_feature_core::ports::{Clock, FeatureStore};

use super::args::{ContainerCli, ContainerCommand, UpDown};
use super::log::Logger;
use super::{CtrError, SystemClock, one_line, runtime, settings};

/// What a successful action prints and the status it exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Text for stdout (`id`).
    pub stdout: Option<String>,
    /// Exit status (`wait` passes the container's verdict through).
    pub status: u8,
}

impl Outcome {
    fn done() -> Self {
        Outcome {
            stdout: None,
            status: 0,
        }
    }
}

/// The `container` binary.
pub fn main() -> ExitCode {
    let cli = match ContainerCli::try_parse() {
        Ok(cli) => cli,
        // clap prints help (status 0) or the usage error (status 2) itself.
        Err(e) => e.exit(),
    };
    let log = Logger::new("container", cli.verbose || settings::log_stderr_from_env());
    let result = runtime().and_then(|rt| rt.block_on(run(&cli, &log)));
    match result {
        Ok(outcome) => {
            if let Some(text) = outcome.stdout {
                println!("{text}");
            }
            ExitCode::from(outcome.status)
        }
        Err(e) => {
            let message = one_line(&format!(
                "container {} {}: {e}",
                cli.command.name(),
                cli.command.feature()
            ));
            log.error_to_syslog(&message);
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

/// Runs one `container` action.
pub async fn run(cli: &ContainerCli, log: &Logger) -> Result<Outcome, CtrError> {
    let dbs = SonicDbConfig::from_env()?;
    let feature = cli.command.feature();
    if let ContainerCommand::Id { .. } = &cli.command {
        let id = id(&dbs, feature).await?;
        return Ok(Outcome {
            stdout: Some(id.as_str().to_string()),
            status: 0,
        });
    }
    let store = RedisFeatureStore::open(&dbs, &Namespace::Host).await?;
    let runtime = BollardRuntime::from_env()?;
    let clock = SystemClock::new();
    let kube = settings::kube_support();
    let config = known_config(&store, feature).await?;
    match &cli.command {
        ContainerCommand::Start { .. } => {
            let facts = facts(&store, &clock, feature, config, kube).await?;
            act(&store, &runtime, log, "start", &facts, &plan_start(&facts)).await
        }
        ContainerCommand::Stop { skip_updates, .. } => {
            let facts = facts(&store, &clock, feature, config, kube).await?;
            let timeout = cli.timeout.map(Duration::from_secs);
            let plan = docker_only(plan_stop(&facts, timeout), *skip_updates);
            act(&store, &runtime, log, "stop", &facts, &plan).await
        }
        ContainerCommand::Kill { skip_updates, .. } => {
            let facts = facts(&store, &clock, feature, config, kube).await?;
            let plan = docker_only(plan_kill(&facts), *skip_updates);
            act(&store, &runtime, log, "kill", &facts, &plan).await
        }
        ContainerCommand::State {
            change,
            owner,
            id,
            image_version,
            ..
        } => {
            let change = state_change(*change, owner.map(SetOwner::from), id, image_version)?;
            let facts = facts(&store, &clock, feature, config, kube).await?;
            act(
                &store,
                &runtime,
                log,
                "state",
                &facts,
                &plan_state(&facts, &change),
            )
            .await
        }
        ContainerCommand::Wait { .. } => wait(&store, &runtime, &clock, log, feature, kube).await,
        ContainerCommand::Id { .. } => Ok(Outcome::done()),
    }
}

/// With `--skip-updates` (reboot scripts), keeps only the Docker call and a refusal: no
/// STATE_DB or label write, since the system is going down and the writes cost time.
fn docker_only(plan: Vec<CommandAction>, skip_updates: bool) -> Vec<CommandAction> {
    if !skip_updates {
        return plan;
    }
    plan.into_iter()
        .filter(|a| match a {
            CommandAction::Start(_)
            | CommandAction::Stop(..)
            | CommandAction::Kill(_)
            | CommandAction::Refuse(_) => true,
            CommandAction::UpdateStatus(_) | CommandAction::SetLabel(..) => false,
        })
        .collect()
}

/// `container id <f>`: STATE_DB only, one read; CONFIG_DB is asked only when STATE_DB has no
/// entry, to tell an unknown feature from one that never ran.
async fn id(dbs: &SonicDbConfig, feature: &FeatureName) -> Result<ContainerId, CtrError> {
    let state = dbs.open(&Namespace::Host, dbs::STATE_DB).await?;
    let table = schema::feature_status::TABLE;
    let fields = state.get_entry(table, feature.as_str()).await?;
    if fields.is_empty() {
        let config = dbs.open(&Namespace::Host, dbs::CONFIG_DB).await?;
        if !is_configured(&config, feature).await? {
            return Err(CtrError::UnknownFeature {
                feature: feature.clone(),
            });
        }
    }
    let origin = Origin {
        db: state.label(),
        table,
        key: feature.as_str(),
    };
    let status = schema::parse_feature_status(&origin, &fields)?;
    match resolve_id(feature, &status) {
        IdResolution::Id(id) => Ok(id),
        IdResolution::NoContainer => Err(CtrError::Refused {
            feature: feature.clone(),
            reason: Refusal::NoContainer,
        }),
        IdResolution::Invalid(v) => Err(CtrError::Refused {
            feature: feature.clone(),
            reason: Refusal::InvalidContainerId(v),
        }),
    }
}

/// The possible multi-ASIC bases of an instance name, longest first: `lldp10` gives `lldp1` and
/// `lldp`, since the ASIC number is the trailing digits and a feature name may end in digits too.
fn asic_bases(feature: &FeatureName) -> Vec<FeatureName> {
    let name = feature.as_str();
    let digits = name
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .count();
    (1..=digits)
        .filter_map(|n| FeatureName::parse(&name[..name.len() - n]).ok())
        .collect()
}

/// Whether CONFIG_DB has `FEATURE|<f>` or, for a multi-ASIC instance (`lldp0`), its base
/// feature's entry.
async fn is_configured(config: &SonicDb, feature: &FeatureName) -> Result<bool, CtrError> {
    let table = schema::feature_config::TABLE;
    if config.exists(table, feature.as_str()).await? {
        return Ok(true);
    }
    for base in asic_bases(feature) {
        if config.exists(table, base.as_str()).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// CONFIG_DB `FEATURE|<f>`, or the defaults for a multi-ASIC instance (`lldp0`) of a configured
/// feature, which upstream also runs as locally owned; any other absent feature is unknown.
async fn known_config(
    store: &RedisFeatureStore,
    feature: &FeatureName,
) -> Result<FeatureConfig, CtrError> {
    if let Some(config) = store.feature_config(feature).await? {
        return Ok(config);
    }
    if is_configured(store.config_db(), feature).await? {
        return Ok(FeatureConfig::default());
    }
    Err(CtrError::UnknownFeature {
        feature: feature.clone(),
    })
}

/// The facts a command decides on (the same reads as the core's `read_command_facts`, with the
/// configuration already read by [`known_config`]).
async fn facts(
    store: &RedisFeatureStore,
    clock: &SystemClock,
    feature: &FeatureName,
    config: FeatureConfig,
    kube_support: bool,
) -> Result<CommandFacts, CtrError> {
    Ok(CommandFacts {
        feature: feature.clone(),
        config,
        status: store.feature_status(feature).await?,
        server: store.server_status().await?,
        kube_support,
        wall_time: clock.wall_time(),
    })
}

/// Logs the plan, carries it out, and logs the result.
async fn act(
    store: &RedisFeatureStore,
    runtime: &BollardRuntime,
    log: &Logger,
    action: &str,
    facts: &CommandFacts,
    plan: &[CommandAction],
) -> Result<Outcome, CtrError> {
    let f = &facts.feature;
    let steps: Vec<String> = plan.iter().map(ToString::to_string).collect();
    log.info(&format!(
        "container {action} {f}: set_owner {} current_owner {} remote_state {} kube support {}: {}",
        facts.config.set_owner,
        facts.status.current_owner,
        facts.status.remote_state,
        if facts.kube_support { "on" } else { "off" },
        if steps.is_empty() {
            "nothing to do".to_string()
        } else {
            steps.join("; ")
        }
    ));
    exec::run_command_actions(store, runtime, f, plan)
        .await
        .map_err(refusal_or_exec)?;
    log.info(&format!("container {action} {f}: done"));
    Ok(Outcome::done())
}

fn refusal_or_exec(e: ExecError) -> CtrError {
    match e {
        ExecError::Refused { feature, reason } => CtrError::Refused { feature, reason },
        other => CtrError::Exec(other),
    }
}

/// The change `container state` records. `up kube` without `--id` uses the id of the container
/// this command runs in; the version defaults to `$IMAGE_VERSION` when that is a version.
fn state_change(
    change: UpDown,
    owner: Option<SetOwner>,
    id: &Option<ContainerId>,
    image_version: &Option<Version>,
) -> Result<StateChange, CtrError> {
    match change {
        UpDown::Down => Ok(StateChange::Down),
        UpDown::Up => {
            let owner = owner.unwrap_or(SetOwner::Local);
            let id = match (id, owner) {
                (Some(id), _) => Some(id.clone()),
                (None, SetOwner::Local) => None,
                (None, SetOwner::Kube) => {
                    let full = own_container_id()?;
                    ContainerId::parse(short_id(&full)).ok()
                }
            };
            let version = image_version.clone().or_else(|| {
                std::env::var("IMAGE_VERSION")
                    .ok()
                    .and_then(|v| Version::parse(&v).ok())
            });
            Ok(StateChange::Up { owner, id, version })
        }
    }
}

/// `container wait <f>`: the core's wait executor with real sleeps; the container's verdict
/// becomes the exit status.
async fn wait(
    store: &RedisFeatureStore,
    runtime: &BollardRuntime,
    clock: &SystemClock,
    log: &Logger,
    feature: &FeatureName,
    kube: bool,
) -> Result<Outcome, CtrError> {
    let timers = settings::load_remote_ctr_config(&settings::remote_ctr_config_path())?;
    log.info(&format!(
        "container wait {feature}: kube support {}, revert to local after {} s without a container",
        if kube { "on" } else { "off" },
        timers.revert_to_local_on_wait.as_secs()
    ));
    let status = exec::container_wait(
        store,
        runtime,
        clock,
        tokio::time::sleep,
        feature,
        kube,
        &timers,
    )
    .await
    .map_err(refusal_or_exec)?;
    log.info(&format!("container wait {feature}: exit {status}"));
    Ok(Outcome {
        stdout: None,
        status: u8::try_from(status).unwrap_or(u8::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> FeatureName {
        FeatureName::parse(s).unwrap()
    }

    #[test]
    fn asic_instances_map_to_their_base_feature() {
        assert_eq!(asic_bases(&f("lldp0")), vec![f("lldp")]);
        assert_eq!(asic_bases(&f("bgp12")), vec![f("bgp1"), f("bgp")]);
        assert!(asic_bases(&f("snmp")).is_empty());
        // A feature whose own name ends in digits (`lldp4a99`) keeps them in its instances.
        assert_eq!(
            asic_bases(&f("lldp4a990")),
            vec![f("lldp4a99"), f("lldp4a9"), f("lldp4a")]
        );
        // All digits: the only candidates are shorter numbers.
        assert_eq!(asic_bases(&f("123")), vec![f("12"), f("1")]);
    }

    #[test]
    fn state_down_ignores_owner_and_id() {
        let c = state_change(UpDown::Down, Some(SetOwner::Kube), &None, &None).unwrap();
        assert_eq!(c, StateChange::Down);
    }

    #[test]
    fn state_up_local_needs_no_id() {
        let v = Version::parse("1.2.3").unwrap();
        let c = state_change(UpDown::Up, None, &None, &Some(v.clone())).unwrap();
        assert_eq!(
            c,
            StateChange::Up {
                owner: SetOwner::Local,
                id: None,
                version: Some(v)
            }
        );
    }

    #[test]
    fn state_up_kube_with_explicit_id_uses_it() {
        let id = ContainerId::parse("0123456789ab").unwrap();
        let c = state_change(UpDown::Up, Some(SetOwner::Kube), &Some(id.clone()), &None).unwrap();
        assert!(matches!(c, StateChange::Up { owner: SetOwner::Kube, id: Some(i), .. } if i == id));
    }
}
