//! Executors: async functions that read the facts, ask a planner or machine for the decision and
//! carry out its actions against the ports. No decision is taken here; sleeping is injected so
//! that tests need no real time.

use std::future::Future;
use std::time::Duration;

use crate::container::{
    CommandAction, CommandFacts, Refusal, StateChange, WaitAction, WaitEvent, WaitMachine,
    plan_id, plan_kill, plan_start, plan_state, plan_stop, wait_exit_status,
};
use crate::images::ImageOp;
use crate::manager::{Action, Event};
use crate::model::{ContainerId, FeatureName, RemoteCtrConfig};
use crate::ports::{
    Clock, ContainerRuntime, FeatureStore, ImageStore, ManagerStateStore, NodeCluster, PortError,
    ServiceManager,
};
use crate::startup::{
    FreezeReason, StartupAction, StartupArgs, StartupEvent, StartupFacts, StartupMachine,
};

/// Failure of an executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A database or label write or read failed; later actions were not carried out.
    #[error("feature {feature}: {source}")]
    Store {
        /// The feature.
        feature: FeatureName,
        /// The port error.
        #[source]
        source: PortError,
    },
    /// A Docker operation failed; the other actions were still carried out.
    #[error("feature {feature}: {operation} failed: {source}")]
    Docker {
        /// The feature.
        feature: FeatureName,
        /// The operation (`docker stop snmp`).
        operation: String,
        /// The port error.
        #[source]
        source: PortError,
    },
    /// The decision was to refuse.
    #[error("feature {feature}: {reason}")]
    Refused {
        /// The feature.
        feature: FeatureName,
        /// Why.
        reason: Refusal,
    },
}

/// Reads what a `container` command decides on.
pub async fn read_command_facts(
    store: &dyn FeatureStore,
    clock: &dyn Clock,
    feature: &FeatureName,
    kube_support: bool,
) -> Result<CommandFacts, ExecError> {
    let err = |source| ExecError::Store {
        feature: feature.clone(),
        source,
    };
    let config = store.feature_config(feature).await.map_err(err)?;
    let status = store.feature_status(feature).await.map_err(err)?;
    let server = store.server_status().await.map_err(err)?;
    Ok(CommandFacts {
        feature: feature.clone(),
        config: config.unwrap_or_default(),
        status,
        server,
        kube_support,
        wall_time: clock.wall_time(),
    })
}

/// Carries out `container` actions in order. Store failures stop at once; Docker failures are
/// remembered and the remaining actions still run (so that `stop` records `down`); a refusal
/// ends the run. The first failure is returned.
pub async fn run_command_actions(
    store: &dyn FeatureStore,
    runtime: &dyn ContainerRuntime,
    feature: &FeatureName,
    actions: &[CommandAction],
) -> Result<(), ExecError> {
    let mut first_docker_error = None;
    for a in actions {
        let docker = match a {
            CommandAction::UpdateStatus(u) => {
                store
                    .update_feature_status(feature, u)
                    .await
                    .map_err(|source| ExecError::Store {
                        feature: feature.clone(),
                        source,
                    })?;
                None
            }
            CommandAction::SetLabel(k, v) => {
                let set = [(k.clone(), v.clone())].into_iter().collect();
                store
                    .update_desired_labels(&set, &[])
                    .await
                    .map_err(|source| ExecError::Store {
                        feature: feature.clone(),
                        source,
                    })?;
                None
            }
            CommandAction::Start(id) => Some(runtime.start(id).await),
            CommandAction::Stop(id, t) => Some(runtime.stop(id, *t).await),
            CommandAction::Kill(id) => Some(runtime.kill(id).await),
            CommandAction::Refuse(reason) => {
                return Err(ExecError::Refused {
                    feature: feature.clone(),
                    reason: reason.clone(),
                });
            }
        };
        if let Some(Err(source)) = docker
            && first_docker_error.is_none()
        {
            first_docker_error = Some(ExecError::Docker {
                feature: feature.clone(),
                operation: a.to_string(),
                source,
            });
        }
    }
    first_docker_error.map_or(Ok(()), Err)
}

/// `container start <f>`.
pub async fn container_start(
    store: &dyn FeatureStore,
    runtime: &dyn ContainerRuntime,
    clock: &dyn Clock,
    feature: &FeatureName,
    kube_support: bool,
) -> Result<(), ExecError> {
    let facts = read_command_facts(store, clock, feature, kube_support).await?;
    run_command_actions(store, runtime, feature, &plan_start(&facts)).await
}

/// `container stop [-t N] <f>`.
pub async fn container_stop(
    store: &dyn FeatureStore,
    runtime: &dyn ContainerRuntime,
    clock: &dyn Clock,
    feature: &FeatureName,
    kube_support: bool,
    timeout: Option<Duration>,
) -> Result<(), ExecError> {
    let facts = read_command_facts(store, clock, feature, kube_support).await?;
    run_command_actions(store, runtime, feature, &plan_stop(&facts, timeout)).await
}

/// `container kill <f>`.
pub async fn container_kill(
    store: &dyn FeatureStore,
    runtime: &dyn ContainerRuntime,
    clock: &dyn Clock,
    feature: &FeatureName,
    kube_support: bool,
) -> Result<(), ExecError> {
    let facts = read_command_facts(store, clock, feature, kube_support).await?;
    run_command_actions(store, runtime, feature, &plan_kill(&facts)).await
}

/// `container id <f>`: the id to print.
pub async fn container_id(
    store: &dyn FeatureStore,
    clock: &dyn Clock,
    feature: &FeatureName,
) -> Result<ContainerId, ExecError> {
    let facts = read_command_facts(store, clock, feature, true).await?;
    plan_id(&facts).map_err(|reason| ExecError::Refused {
        feature: feature.clone(),
        reason,
    })
}

/// `container state <f> up|down [local|kube]`.
pub async fn container_state(
    store: &dyn FeatureStore,
    runtime: &dyn ContainerRuntime,
    clock: &dyn Clock,
    feature: &FeatureName,
    kube_support: bool,
    change: &StateChange,
) -> Result<(), ExecError> {
    let facts = read_command_facts(store, clock, feature, kube_support).await?;
    run_command_actions(store, runtime, feature, &plan_state(&facts, change)).await
}

/// `container wait <f>`: drives the [`WaitMachine`], sleeping with `sleep`; returns the exit
/// status of the command.
pub async fn container_wait<S, F>(
    store: &dyn FeatureStore,
    runtime: &dyn ContainerRuntime,
    clock: &dyn Clock,
    sleep: S,
    feature: &FeatureName,
    kube_support: bool,
    timers: &RemoteCtrConfig,
) -> Result<i32, ExecError>
where
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let store_err = |source| ExecError::Store {
        feature: feature.clone(),
        source,
    };
    let facts = read_command_facts(store, clock, feature, kube_support).await?;
    let (mut m, mut actions) = WaitMachine::new(&facts, timers, clock.now());
    loop {
        let mut next = None;
        for a in actions {
            match a {
                WaitAction::Inspect(id) => {
                    let info = runtime
                        .inspect(&id)
                        .await
                        .map_err(|source| ExecError::Docker {
                            feature: feature.clone(),
                            operation: format!("docker inspect {id}"),
                            source,
                        })?;
                    next = Some(WaitEvent::Inspected(info.map(|i| i.image_version)));
                }
                WaitAction::ReadStatus => {
                    next = Some(WaitEvent::Status(
                        store.feature_status(feature).await.map_err(store_err)?,
                    ));
                }
                WaitAction::UpdateStatus(u) => {
                    store
                        .update_feature_status(feature, &u)
                        .await
                        .map_err(store_err)?;
                }
                WaitAction::WaitOn(id) => {
                    let code = runtime
                        .wait(&id)
                        .await
                        .map_err(|source| ExecError::Docker {
                            feature: feature.clone(),
                            operation: format!("docker wait {id}"),
                            source,
                        })?;
                    return Ok(wait_exit_status(code));
                }
                WaitAction::GaveUp => return Ok(0),
                WaitAction::Fail(reason) => {
                    return Err(ExecError::Refused {
                        feature: feature.clone(),
                        reason,
                    });
                }
            }
        }
        let ev = match next {
            Some(ev) => ev,
            None => {
                let Some(at) = m.poll_timeout() else {
                    // Unreachable by construction: a machine that is not done either asks for
                    // an answer or has a deadline. Treat it as finished.
                    return Ok(0);
                };
                let now = clock.now();
                if at > now {
                    sleep(at.since(now)).await;
                }
                WaitEvent::Timeout
            }
        };
        actions = m.step(clock.now(), ev);
    }
}

/// How `container_startup` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupOutcome {
    /// Start the application.
    Proceed,
    /// Held for good (superseded, or no own id): block without starting the application.
    Frozen(FreezeReason),
}

/// `container_startup`: drives the [`StartupMachine`], sleeping with `sleep` and reporting each
/// hold through `on_frozen` (to log it); returns when the application may start or is held for
/// good.
pub async fn container_startup<S, F>(
    store: &dyn FeatureStore,
    clock: &dyn Clock,
    sleep: S,
    mut on_frozen: impl FnMut(&FreezeReason),
    args: StartupArgs,
) -> Result<StartupOutcome, ExecError>
where
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let feature = args.feature.clone();
    let store_err = |source| ExecError::Store {
        feature: feature.clone(),
        source,
    };
    let (mut m, mut actions) = StartupMachine::new(args);
    loop {
        let mut next = None;
        let mut last_freeze = None;
        for a in actions {
            match a {
                StartupAction::ReadFacts => {
                    let config = store.feature_config(&feature).await.map_err(store_err)?;
                    let status = store.feature_status(&feature).await.map_err(store_err)?;
                    let labels = store.desired_labels().await.map_err(store_err)?;
                    next = Some(StartupEvent::Facts(Box::new(StartupFacts {
                        set_owner: config.map(|c| c.set_owner).unwrap_or_default(),
                        status,
                        labels,
                        wall_time: clock.wall_time(),
                    })));
                }
                StartupAction::UpdateStatus(u) => {
                    store
                        .update_feature_status(&feature, &u)
                        .await
                        .map_err(store_err)?;
                }
                StartupAction::SetLabel(k, v) => {
                    let set = [(k, v)].into_iter().collect();
                    store
                        .update_desired_labels(&set, &[])
                        .await
                        .map_err(store_err)?;
                }
                StartupAction::Frozen(reason) => {
                    on_frozen(&reason);
                    last_freeze = Some(reason);
                }
                StartupAction::Proceed => return Ok(StartupOutcome::Proceed),
            }
        }
        let ev = match next {
            Some(ev) => ev,
            None => {
                let Some(at) = m.poll_timeout() else {
                    return Ok(match last_freeze.or_else(|| m.frozen().cloned()) {
                        Some(r) => StartupOutcome::Frozen(r),
                        None => StartupOutcome::Proceed,
                    });
                };
                let now = clock.now();
                if at > now {
                    sleep(at.since(now)).await;
                }
                StartupEvent::Timeout
            }
        };
        actions = m.step(clock.now(), ev);
    }
}

/// The ports the manager's actions need.
#[derive(Clone, Copy)]
pub struct ManagerPorts<'a> {
    /// CONFIG_DB / STATE_DB.
    pub store: &'a dyn FeatureStore,
    /// Server status and label journal.
    pub state: &'a dyn ManagerStateStore,
    /// Docker containers.
    pub runtime: &'a dyn ContainerRuntime,
    /// Docker images.
    pub images: &'a dyn ImageStore,
    /// Kubernetes.
    pub cluster: &'a dyn NodeCluster,
    /// Systemd.
    pub services: &'a dyn ServiceManager,
    /// Wall clock for `update_time`.
    pub clock: &'a dyn Clock,
}

impl std::fmt::Debug for ManagerPorts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManagerPorts")
    }
}

/// What carrying out one manager action gave.
#[derive(Debug, Default)]
pub struct Executed {
    /// The answer to feed back into the manager, if the action has one.
    pub event: Option<Event>,
    /// A failure to log (the answer event already tells the manager).
    pub error: Option<PortError>,
}

impl Executed {
    fn answer(event: Event) -> Self {
        Self {
            event: Some(event),
            error: None,
        }
    }

    fn from_result(r: Result<(), PortError>) -> Self {
        Self {
            event: None,
            error: r.err(),
        }
    }
}

/// Carries out one manager action; `Alert` has no port and is left to the daemon's log.
pub async fn execute_manager_action(ports: ManagerPorts<'_>, action: &Action) -> Executed {
    match action {
        Action::Join(cfg) => match ports.cluster.join(cfg, false).await {
            Ok(()) => Executed::answer(Event::JoinSucceeded),
            Err(e) => Executed {
                event: Some(Event::JoinFailed),
                error: Some(e),
            },
        },
        Action::Reset => Executed::from_result(ports.cluster.reset(true).await),
        Action::WriteServerStatus(s) => {
            let mut s = s.clone();
            s.update_time = Some(ports.clock.wall_time());
            Executed::from_result(ports.state.write_server_status(&s).await)
        }
        Action::SetDesiredLabels(p) => {
            Executed::from_result(ports.store.update_desired_labels(&p.set, &p.remove).await)
        }
        Action::ReadNodeLabels => match ports.cluster.node_labels().await {
            Ok(l) => Executed::answer(Event::NodeLabelsRead(l)),
            Err(e) => Executed {
                event: Some(Event::NodeLabelsReadFailed),
                error: Some(e),
            },
        },
        Action::PatchNodeLabels(p) => match ports.cluster.patch_labels(&p.set, &p.remove).await {
            Ok(()) => Executed::answer(Event::LabelsPatched),
            Err(e) => Executed {
                event: Some(Event::LabelsPatchFailed),
                error: Some(e),
            },
        },
        Action::SaveLabelJournal(j) => Executed::from_result(ports.state.save_label_journal(j).await),
        Action::CheckService(f) => match ports.services.is_active(f).await {
            Ok(active) => Executed::answer(Event::ServiceActivity {
                feature: f.clone(),
                active,
            }),
            // Upstream: a failing `systemctl is-active` means inactive.
            Err(e) => Executed {
                event: Some(Event::ServiceActivity {
                    feature: f.clone(),
                    active: false,
                }),
                error: Some(e),
            },
        },
        Action::RestartService { feature, .. } => {
            Executed::from_result(ports.services.restart(feature).await)
        }
        Action::UpdateFeatureStatus { feature, update } => {
            Executed::from_result(ports.store.update_feature_status(feature, update).await)
        }
        Action::GatherImageFacts { feature, container } => {
            let gathered = async {
                let c = ports.runtime.inspect(container).await?;
                let local = ports
                    .runtime
                    .inspect(&ContainerId::of_feature(feature))
                    .await?;
                let images = ports.images.list_images().await?;
                Ok::<_, PortError>((c, local, images))
            }
            .await;
            match gathered {
                Ok((container, local_container, images)) => Executed::answer(Event::ImageFacts {
                    feature: feature.clone(),
                    container,
                    local_container,
                    images,
                }),
                Err(e) => Executed {
                    event: Some(Event::ImageFactsFailed(feature.clone())),
                    error: Some(e),
                },
            }
        }
        Action::RunImageOps { feature, ops } => {
            let mut error = None;
            for op in ops {
                let r = match op {
                    ImageOp::Tag { image, repo, tag } => {
                        ports.images.tag_image(image, repo, tag).await
                    }
                    ImageOp::RemoveImage(r) => ports.images.remove_image(r).await,
                    ImageOp::RemoveContainer(c) => ports.runtime.remove(c).await,
                    ImageOp::UpdateStatus(u) => ports.store.update_feature_status(feature, u).await,
                };
                if let Err(e) = r {
                    error = Some(e);
                    break;
                }
            }
            Executed {
                event: Some(Event::ImageOpsDone {
                    feature: feature.clone(),
                    ok: error.is_none(),
                }),
                error,
            }
        }
        Action::Alert { .. } => Executed::default(),
    }
}
