//! `container {start,stop,kill,wait,id,state}`: one small function per action over the core's
//! planners and executors, and `main`, which maps the outcome to the exit status.
//!
//! `id` is the hot path (scripts call it before every `docker exec`): it opens STATE_DB only, does
//! one HGETALL and never connects to Docker. The other actions read CONFIG_DB and STATE_DB and
//! connect to Docker on their first Docker call (`state` never does).
//!
//! On a multi-ASIC switch the unit of ASIC `N` runs `container <action> <feature><N>`; the core's
//! instance rule ([`sonic_feature_core::instances`]) says what such a name stands for and where
//! it lives, the same rule ctrmgrd follows: the host's configuration of the feature, the status in
//! the ASIC namespace's STATE_DB under the feature's name, the labels of the instance name in the
//! host's STATE_DB. `id` of such a name first asks CONFIG_DB which feature it is.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;
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
use sonic_feature_core::instances::{
    AsicNumber, Instance, InstanceStore, Target, names_to_check, readings, resolve,
};
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
    let (store, config) = open_store(&dbs, feature).await?;
    let store = store.as_ref();
    let runtime = BollardRuntime::from_env()?;
    let clock = SystemClock::new();
    let kube = settings::kube_support();
    match &cli.command {
        ContainerCommand::Start { .. } => {
            let facts = facts(store, &clock, feature, config, kube).await?;
            act(store, &runtime, log, "start", &facts, &plan_start(&facts)).await
        }
        ContainerCommand::Stop { skip_updates, .. } => {
            let facts = facts(store, &clock, feature, config, kube).await?;
            let timeout = cli.timeout.map(Duration::from_secs);
            let plan = docker_only(plan_stop(&facts, timeout), *skip_updates);
            act(store, &runtime, log, "stop", &facts, &plan).await
        }
        ContainerCommand::Kill { skip_updates, .. } => {
            let facts = facts(store, &clock, feature, config, kube).await?;
            let plan = docker_only(plan_kill(&facts), *skip_updates);
            act(store, &runtime, log, "kill", &facts, &plan).await
        }
        ContainerCommand::State {
            change,
            owner,
            id,
            image_version,
            ..
        } => {
            let change = state_change(*change, owner.map(SetOwner::from), id, image_version)?;
            let facts = facts(store, &clock, feature, config, kube).await?;
            act(
                store,
                &runtime,
                log,
                "state",
                &facts,
                &plan_state(&facts, &change),
            )
            .await
        }
        ContainerCommand::Wait { .. } => wait(store, &runtime, &clock, log, feature, kube).await,
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
/// entry, to tell an unknown feature from one that never ran, or first when the name reads as
/// an instance on one of the platform's ASICs, to know which namespace holds its status.
async fn id(dbs: &SonicDbConfig, feature: &FeatureName) -> Result<ContainerId, CtrError> {
    let asics = asic_namespaces(dbs);
    let mut known = false;
    let mut namespace = Namespace::Host;
    let mut key = feature.clone();
    if readings(feature)
        .iter()
        .any(|i| asics.contains_key(i.asic()))
    {
        let config = dbs.open(&Namespace::Host, dbs::CONFIG_DB).await?;
        if let Located::Instance(instance, ns) = locate(&config, &asics, feature).await? {
            namespace = ns;
            key = instance.feature().clone();
        }
        known = true;
    }
    let state = dbs.open(&namespace, dbs::STATE_DB).await?;
    let table = schema::feature_status::TABLE;
    let fields = state.get_entry(table, key.as_str()).await?;
    if fields.is_empty() && !known {
        let config = dbs.open(&Namespace::Host, dbs::CONFIG_DB).await?;
        locate(&config, &asics, feature).await?;
    }
    let origin = Origin {
        db: state.label(),
        table,
        key: key.as_str(),
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

/// The platform's ASIC namespaces by ASIC number (a namespace without one holds no instance).
fn asic_namespaces(dbs: &SonicDbConfig) -> BTreeMap<AsicNumber, Namespace> {
    dbs.asic_namespaces()
        .into_iter()
        .filter_map(|ns| Some((AsicNumber::of_namespace(ns.name()).ok()?, ns)))
        .collect()
}

/// What a name given to `container` stands for, with the namespace of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Located {
    /// A feature configured under the name: the host's databases.
    Host,
    /// An instance on one of the platform's ASICs, in that ASIC's namespace.
    Instance(Instance, Namespace),
    /// A name that reads as an instance of a configured feature on no ASIC of this platform:
    /// upstream's behaviour, default configuration and the host's STATE_DB under the name.
    Unplaced,
}

/// Asks CONFIG_DB about the names the core's [`resolve`] depends on and applies it; an unknown
/// feature is an error.
async fn locate(
    config: &SonicDb,
    asics: &BTreeMap<AsicNumber, Namespace>,
    feature: &FeatureName,
) -> Result<Located, CtrError> {
    let table = schema::feature_config::TABLE;
    let mut configured = BTreeSet::new();
    for name in names_to_check(feature) {
        if config.exists(table, name.as_str()).await? {
            configured.insert(name);
        }
    }
    let numbers: BTreeSet<AsicNumber> = asics.keys().cloned().collect();
    match resolve(feature, &numbers, &configured) {
        None => Err(CtrError::UnknownFeature {
            feature: feature.clone(),
        }),
        Some(Target::Feature) => Ok(Located::Host),
        Some(Target::Unplaced(_)) => Ok(Located::Unplaced),
        // `resolve` places an instance only on one of the ASICs it was given.
        Some(Target::Instance(instance)) => Ok(asics
            .get(instance.asic())
            .cloned()
            .map_or(Located::Unplaced, |ns| Located::Instance(instance, ns))),
    }
}

/// The store a command on `feature` uses and the feature's configuration: the host's databases
/// and CONFIG_DB `FEATURE|<f>` for a configured feature; for an instance on one of the platform's
/// ASICs (`lldp0`), the core's [`InstanceStore`] over the host and that ASIC's namespace and the
/// host's configuration of its feature, as ctrmgrd uses them; for an instance on no ASIC of the
/// platform, the host's databases and the defaults (upstream ran it as a local feature). Any
/// other name is an unknown feature.
pub async fn open_store(
    dbs: &SonicDbConfig,
    feature: &FeatureName,
) -> Result<(Arc<dyn FeatureStore>, FeatureConfig), CtrError> {
    let host = Arc::new(RedisFeatureStore::open(dbs, &Namespace::Host).await?);
    if let Some(config) = host.feature_config(feature).await? {
        return Ok((host, config));
    }
    let asics = asic_namespaces(dbs);
    match locate(host.config_db(), &asics, feature).await? {
        // Deleted since the read above: the defaults, as for a missing entry.
        Located::Host | Located::Unplaced => Ok((host, FeatureConfig::default())),
        Located::Instance(instance, ns) => {
            let state = dbs.open(&ns, dbs::STATE_DB).await?;
            let asic = Arc::new(RedisFeatureStore::new(host.config_db().clone(), state));
            let store = InstanceStore::new(host, asic, instance);
            let config = store.feature_config(feature).await?.unwrap_or_default();
            Ok((Arc::new(store), config))
        }
    }
}

/// The facts a command decides on (the same reads as the core's `read_command_facts`, with the
/// configuration already read by [`open_store`]).
async fn facts(
    store: &dyn FeatureStore,
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
    store: &dyn FeatureStore,
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
    store: &dyn FeatureStore,
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
        |e| {
            log.error(&format!(
                "container wait {feature}: {e}; asking again until the engine answers"
            ))
        },
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
