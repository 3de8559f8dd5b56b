//! Executors: async functions that read the facts, ask a planner or machine for the decision and
//! carry out its actions against the ports. No decision is taken here; sleeping is injected so
//! that tests need no real time.

use std::future::Future;
use std::time::Duration;

use crate::container::{
    CommandAction, CommandFacts, InspectedContainer, Refusal, StateChange, WaitAction, WaitEvent,
    WaitMachine, plan_id, plan_kill, plan_start, plan_state, plan_stop, wait_exit_status,
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

/// First pause before `docker wait` is asked again after the engine could not be reached.
pub const WAIT_RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest pause between two `docker wait` attempts while the engine stays away.
pub const WAIT_RETRY_MAX: Duration = Duration::from_secs(8);

/// `container wait <f>`: drives the [`WaitMachine`], sleeping with `sleep`; returns the exit
/// status of the command.
///
/// A `docker wait` that fails because the engine cannot be reached (dockerd restarting, a
/// live-restore engine whose containers keep running) is asked again with backoff until the
/// engine answers, instead of ending the wait: ending it would make systemd stop the unit and
/// record the feature down while its container may still run. `on_engine_away` hears about the
/// first failure of each outage (to log it once).
#[allow(clippy::too_many_arguments)]
pub async fn container_wait<S, F>(
    store: &dyn FeatureStore,
    runtime: &dyn ContainerRuntime,
    clock: &dyn Clock,
    sleep: S,
    feature: &FeatureName,
    kube_support: bool,
    timers: &RemoteCtrConfig,
    mut on_engine_away: impl FnMut(&PortError),
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
                    next = Some(WaitEvent::Inspected(info.map(|i| InspectedContainer {
                        running: i.running,
                        version: i.image_version,
                    })));
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
                    let mut delay = WAIT_RETRY_MIN;
                    let mut away = false;
                    loop {
                        match runtime.wait(&id).await {
                            Ok(code) => return Ok(wait_exit_status(code)),
                            Err(source) if source.is_transient() => {
                                if !away {
                                    on_engine_away(&source);
                                    away = true;
                                }
                                sleep(delay).await;
                                delay = (delay * 2).min(WAIT_RETRY_MAX);
                            }
                            Err(source) => {
                                return Err(ExecError::Docker {
                                    feature: feature.clone(),
                                    operation: format!("docker wait {id}"),
                                    source,
                                });
                            }
                        }
                    }
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

/// An error with its sources, each source left out when the message above already says it
/// (adapters often repeat their source in their own message).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        src = s.source();
    }
    text
}

/// Carries out one manager action; `Alert` has no port and is left to the daemon's log.
pub async fn execute_manager_action(ports: ManagerPorts<'_>, action: &Action) -> Executed {
    match action {
        Action::Join(r, cfg) => match ports.cluster.join(cfg, false).await {
            Ok(()) => Executed::answer(Event::JoinSucceeded(*r)),
            Err(e) => Executed {
                event: Some(Event::JoinFailed(*r, error_chain(&e))),
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
        Action::ReadNodeLabels(r) => match ports.cluster.node_labels().await {
            Ok(l) => Executed::answer(Event::NodeLabelsRead(*r, l)),
            Err(e) => Executed {
                event: Some(Event::NodeLabelsReadFailed(*r)),
                error: Some(e),
            },
        },
        Action::PatchNodeLabels(r, p) => {
            match ports.cluster.patch_labels(&p.set, &p.remove).await {
                Ok(()) => Executed::answer(Event::LabelsPatched(*r)),
                Err(e) => Executed {
                    event: Some(Event::LabelsPatchFailed(*r, error_chain(&e))),
                    error: Some(e),
                },
            }
        }
        Action::SaveLabelJournal(j) => {
            Executed::from_result(ports.state.save_label_journal(j).await)
        }
        Action::SaveClocks(c) => Executed::from_result(ports.state.save_clocks(c).await),
        Action::CheckService(r, f) => match ports.services.is_active(f).await {
            Ok(active) => Executed::answer(Event::ServiceActivity {
                request: *r,
                feature: f.clone(),
                active,
            }),
            // Upstream: a failing `systemctl is-active` means inactive.
            Err(e) => Executed {
                event: Some(Event::ServiceActivity {
                    request: *r,
                    feature: f.clone(),
                    active: false,
                }),
                error: Some(e),
            },
        },
        Action::RestartService {
            request,
            feature,
            owner,
        } => {
            // Recorded first, so that a restart that fails (the unit left inactive, which
            // nothing else restarts) is retried also by a daemon that was killed meanwhile.
            let noted = ports.state.note_pending_restart(feature, *owner).await;
            let restarted = ports.services.restart(feature).await;
            let ok = restarted.is_ok();
            let cleared = if ok {
                ports.state.clear_pending_restart(feature).await
            } else {
                Ok(())
            };
            Executed {
                event: Some(Event::ServiceRestarted {
                    request: *request,
                    feature: feature.clone(),
                    ok,
                }),
                error: restarted.err().or(noted.err()).or(cleared.err()),
            }
        }
        Action::ForgetRestart(feature) => {
            Executed::from_result(ports.state.clear_pending_restart(feature).await)
        }
        Action::UpdateFeatureStatus { feature, update } => {
            Executed::from_result(ports.store.update_feature_status(feature, update).await)
        }
        Action::GatherImageFacts {
            request,
            feature,
            container,
        } => {
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
                    request: *request,
                    feature: feature.clone(),
                    container,
                    local_container,
                    images,
                }),
                Err(e) => Executed {
                    event: Some(Event::ImageFactsFailed {
                        request: *request,
                        feature: feature.clone(),
                    }),
                    error: Some(e),
                },
            }
        }
        Action::RunImageOps {
            request,
            feature,
            ops,
        } => {
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
                    request: *request,
                    feature: feature.clone(),
                    ok: error.is_none(),
                }),
                error,
            }
        }
        Action::RouteHttpProxy { request, master_ip } => {
            match ports.cluster.route_http_proxy(master_ip.clone()).await {
                Ok(()) => Executed::answer(Event::HttpProxyRouted(*request)),
                Err(e) => Executed {
                    event: Some(Event::HttpProxyFailed(*request)),
                    error: Some(e),
                },
            }
        }
        Action::Alert { .. } => Executed::default(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use futures::executor::block_on;
    use mockall::Sequence;
    use mockall::predicate::eq;

    use super::*;
    use crate::manager::RequestId;
    use crate::model::{
        AdminState, CurrentOwner, FeatureConfig, FeatureStatus, LabelKey, LabelValue, NodeLabels,
        RemoteState, ServerConfig, ServerStatus, SetOwner, StatusUpdate, SystemState, Timestamp,
        Version,
    };
    use crate::ports::{
        ContainerInfo, ImageInfo, MockContainerRuntime, MockFeatureStore, MockImageStore,
        MockManagerStateStore, MockNodeCluster, MockServiceManager,
    };

    /// A manual clock; `sleep` advances it, so no test waits for real time.
    #[derive(Clone, Default)]
    struct ManualClock(Arc<AtomicU64>);

    impl Clock for ManualClock {
        fn now(&self) -> Timestamp {
            Timestamp::from_millis(self.0.load(Ordering::SeqCst))
        }
        fn wall_time(&self) -> String {
            "2020-12-08 22:59:57".to_owned()
        }
    }

    impl ManualClock {
        fn sleeper(&self) -> impl Fn(Duration) -> std::future::Ready<()> + use<> {
            let c = self.0.clone();
            move |d: Duration| {
                c.fetch_add(u64::try_from(d.as_millis()).unwrap(), Ordering::SeqCst);
                std::future::ready(())
            }
        }
    }

    fn snmp() -> FeatureName {
        FeatureName::parse("snmp").unwrap()
    }

    fn store_with(
        config: FeatureConfig,
        status: FeatureStatus,
        connected: bool,
    ) -> MockFeatureStore {
        let mut s = MockFeatureStore::new();
        s.expect_feature_config()
            .returning(move |_| Ok(Some(config.clone())));
        s.expect_feature_status()
            .times(1)
            .returning(move |_| Ok(status.clone()));
        s.expect_server_status().returning(move || {
            Ok(ServerStatus {
                connected,
                ..ServerStatus::default()
            })
        });
        s
    }

    fn label(k: &str, v: &str) -> NodeLabels {
        [(LabelKey::parse(k).unwrap(), LabelValue::parse(v).unwrap())]
            .into_iter()
            .collect()
    }

    #[test]
    fn start_of_local_feature_clears_label_then_records_then_starts() {
        let mut store = store_with(FeatureConfig::default(), FeatureStatus::default(), false);
        let mut rt = MockContainerRuntime::new();
        let mut seq = Sequence::new();
        store
            .expect_update_desired_labels()
            .with(
                eq(label("snmp_enabled", "false")),
                eq(Vec::<LabelKey>::new()),
            )
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        store
            .expect_update_feature_status()
            .withf(|_, u| u.current_owner == Some(CurrentOwner::Local))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        rt.expect_start()
            .withf(|id| id.as_str() == "snmp")
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        let clock = ManualClock::default();
        block_on(container_start(&store, &rt, &clock, &snmp(), true)).unwrap();
    }

    #[test]
    fn start_of_kube_feature_with_pending_deployment_never_touches_docker() {
        let cfg = FeatureConfig {
            set_owner: SetOwner::Kube,
            ..FeatureConfig::default()
        };
        let st = FeatureStatus {
            remote_state: RemoteState::Stopped,
            ..FeatureStatus::default()
        };
        let mut store = store_with(cfg, st, true);
        store
            .expect_update_feature_status()
            .times(1)
            .returning(|_, _| Ok(()));
        store
            .expect_update_desired_labels()
            .with(
                eq(label("snmp_enabled", "true")),
                eq(Vec::<LabelKey>::new()),
            )
            .times(1)
            .returning(|_, _| Ok(()));
        // No expectation on the runtime: any Docker call fails the test.
        let rt = MockContainerRuntime::new();
        block_on(container_start(
            &store,
            &rt,
            &ManualClock::default(),
            &snmp(),
            true,
        ))
        .unwrap();
    }

    #[test]
    fn failed_docker_stop_still_records_down_and_reports_the_failure() {
        let st = FeatureStatus {
            current_owner: CurrentOwner::Local,
            ..FeatureStatus::default()
        };
        let mut store = store_with(FeatureConfig::default(), st, false);
        store
            .expect_update_desired_labels()
            .returning(|_, _| Ok(()));
        store
            .expect_update_feature_status()
            .withf(|_, u| u.system_state == Some(SystemState::Down))
            .times(1)
            .returning(|_, _| Ok(()));
        let mut rt = MockContainerRuntime::new();
        rt.expect_stop()
            .withf(|id, t| id.as_str() == "snmp" && *t == Some(Duration::from_secs(60)))
            .times(1)
            .returning(|_, _| Err(PortError::permanent("no such container: snmp")));
        let err = block_on(container_stop(
            &store,
            &rt,
            &ManualClock::default(),
            &snmp(),
            true,
            Some(Duration::from_secs(60)),
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "feature snmp: docker stop -t 60 snmp failed: no such container: snmp"
        );
    }

    #[test]
    fn kill_of_disabled_local_feature_is_refused_without_docker_call() {
        let st = FeatureStatus {
            current_owner: CurrentOwner::Local,
            ..FeatureStatus::default()
        };
        let store = store_with(FeatureConfig::default(), st, false);
        let rt = MockContainerRuntime::new();
        let err = block_on(container_kill(
            &store,
            &rt,
            &ManualClock::default(),
            &snmp(),
            true,
        ))
        .unwrap_err();
        assert!(matches!(err, ExecError::Refused { .. }), "{err}");
    }

    #[test]
    fn kill_of_enabled_local_feature_kills_it() {
        let cfg = FeatureConfig {
            state: Some(AdminState::AlwaysEnabled),
            ..FeatureConfig::default()
        };
        let st = FeatureStatus {
            current_owner: CurrentOwner::Local,
            ..FeatureStatus::default()
        };
        let store = store_with(cfg, st, false);
        let mut rt = MockContainerRuntime::new();
        rt.expect_kill().times(1).returning(|_| Ok(()));
        block_on(container_kill(
            &store,
            &rt,
            &ManualClock::default(),
            &snmp(),
            true,
        ))
        .unwrap();
    }

    #[test]
    fn store_failure_stops_the_command_before_docker() {
        let mut store = store_with(FeatureConfig::default(), FeatureStatus::default(), false);
        store
            .expect_update_desired_labels()
            .returning(|_, _| Err(PortError::transient("redis down")));
        let rt = MockContainerRuntime::new();
        let err = block_on(container_start(
            &store,
            &rt,
            &ManualClock::default(),
            &snmp(),
            true,
        ))
        .unwrap_err();
        assert_eq!(err.to_string(), "feature snmp: redis down");
    }

    #[test]
    fn id_of_feature_with_absent_field_is_its_name() {
        let store = store_with(FeatureConfig::default(), FeatureStatus::default(), false);
        let id = block_on(container_id(&store, &ManualClock::default(), &snmp())).unwrap();
        assert_eq!(id.as_str(), "snmp");
    }

    #[test]
    fn wait_on_local_feature_records_stable_version_and_maps_exit_codes() {
        let st = FeatureStatus {
            current_owner: CurrentOwner::Local,
            ..FeatureStatus::default()
        };
        let mut store = store_with(FeatureConfig::default(), st, false);
        store
            .expect_update_feature_status()
            .with(
                eq(snmp()),
                eq(StatusUpdate::new().container_stable_version(Version::parse("1.2").unwrap())),
            )
            .times(1)
            .returning(|_, _| Ok(()));
        let mut rt = MockContainerRuntime::new();
        rt.expect_inspect().times(1).returning(|_| {
            Ok(Some(ContainerInfo {
                id: "abc".into(),
                name: "snmp".into(),
                image_id: "sha256:1".into(),
                image_version: Some(Version::parse("1.2").unwrap()),
                running: true,
            }))
        });
        rt.expect_wait().times(1).returning(|_| Ok(137));
        let clock = ManualClock::default();
        let code = block_on(container_wait(
            &store,
            &rt,
            &clock,
            clock.sleeper(),
            &snmp(),
            true,
            &RemoteCtrConfig::default(),
            |_| {},
        ))
        .unwrap();
        assert_eq!(code, 0);
    }

    #[test]
    fn wait_keeps_asking_docker_while_the_engine_is_away_and_reports_the_outage_once() {
        let st = FeatureStatus {
            current_owner: CurrentOwner::Kube,
            container_id: Some("0123456789ab".into()),
            ..FeatureStatus::default()
        };
        let store = store_with(FeatureConfig::default(), st, false);
        let mut rt = MockContainerRuntime::new();
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        rt.expect_wait()
            .times(5)
            .returning(move |_| match c.fetch_add(1, Ordering::SeqCst) {
                0..=3 => Err(PortError::transient(
                    "docker wait 0123456789ab: engine away",
                )),
                _ => Ok(1),
            });
        let clock = ManualClock::default();
        let mut reports = Vec::new();
        let code = block_on(container_wait(
            &store,
            &rt,
            &clock,
            clock.sleeper(),
            &snmp(),
            true,
            &RemoteCtrConfig::default(),
            |e: &PortError| reports.push(e.to_string()),
        ))
        .unwrap();
        // The container's own verdict once the engine answers, after 1 + 2 + 4 + 8 s of
        // backoff; the outage reported once.
        assert_eq!(code, 255);
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        assert_eq!(clock.now().as_millis(), 15_000);
        assert_eq!(reports.len(), 1, "{reports:?}");
    }

    #[test]
    fn wait_ends_on_a_permanent_docker_error() {
        let st = FeatureStatus {
            current_owner: CurrentOwner::Kube,
            container_id: Some("0123456789ab".into()),
            ..FeatureStatus::default()
        };
        let store = store_with(FeatureConfig::default(), st, false);
        let mut rt = MockContainerRuntime::new();
        rt.expect_wait().times(1).returning(|_| {
            Err(PortError::permanent(
                "docker wait 0123456789ab: no such container",
            ))
        });
        let clock = ManualClock::default();
        let err = block_on(container_wait(
            &store,
            &rt,
            &clock,
            clock.sleeper(),
            &snmp(),
            true,
            &RemoteCtrConfig::default(),
            |_| {},
        ))
        .unwrap_err();
        assert!(matches!(err, ExecError::Docker { .. }), "{err}");
    }

    #[test]
    fn wait_for_deployment_promotes_pending_and_follows_the_new_container() {
        let cfg = FeatureConfig {
            set_owner: SetOwner::Kube,
            ..FeatureConfig::default()
        };
        let mut store = MockFeatureStore::new();
        store
            .expect_feature_config()
            .returning(move |_| Ok(Some(cfg.clone())));
        store
            .expect_server_status()
            .returning(|| Ok(ServerStatus::default()));
        let reads = Arc::new(AtomicU64::new(0));
        let r = reads.clone();
        store.expect_feature_status().returning(move |_| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            Ok(match n {
                0 | 1 => FeatureStatus {
                    container_id: Some(String::new()),
                    remote_state: RemoteState::Pending,
                    ..FeatureStatus::default()
                },
                _ => FeatureStatus {
                    current_owner: CurrentOwner::Kube,
                    container_id: Some("0123456789ab".into()),
                    remote_state: RemoteState::Running,
                    ..FeatureStatus::default()
                },
            })
        });
        store
            .expect_update_feature_status()
            .with(
                eq(snmp()),
                eq(StatusUpdate::new().remote_state(RemoteState::Ready)),
            )
            .times(1)
            .returning(|_, _| Ok(()));
        let mut rt = MockContainerRuntime::new();
        rt.expect_wait()
            .withf(|id| id.as_str() == "0123456789ab")
            .times(1)
            .returning(|_| Ok(1));
        let clock = ManualClock::default();
        let code = block_on(container_wait(
            &store,
            &rt,
            &clock,
            clock.sleeper(),
            &snmp(),
            true,
            &RemoteCtrConfig::default(),
            |_| {},
        ))
        .unwrap();
        assert_eq!(code, 255);
        assert_eq!(clock.now(), Timestamp::from_millis(4000));
    }

    #[test]
    fn wait_gives_up_at_the_revert_deadline_without_docker_calls() {
        let cfg = FeatureConfig {
            set_owner: SetOwner::Kube,
            ..FeatureConfig::default()
        };
        let mut store = MockFeatureStore::new();
        store
            .expect_feature_config()
            .returning(move |_| Ok(Some(cfg.clone())));
        store
            .expect_server_status()
            .returning(|| Ok(ServerStatus::default()));
        store.expect_feature_status().returning(|_| {
            Ok(FeatureStatus {
                container_id: Some(String::new()),
                ..FeatureStatus::default()
            })
        });
        store
            .expect_update_feature_status()
            .with(
                eq(snmp()),
                eq(StatusUpdate::new().remote_state(RemoteState::None)),
            )
            .times(1)
            .returning(|_, _| Ok(()));
        let rt = MockContainerRuntime::new();
        let clock = ManualClock::default();
        let code = block_on(container_wait(
            &store,
            &rt,
            &clock,
            clock.sleeper(),
            &snmp(),
            true,
            &RemoteCtrConfig::default(),
            |_| {},
        ))
        .unwrap();
        assert_eq!(code, 0);
        assert_eq!(clock.now(), Timestamp::from_millis(360_000));
    }

    /// The old local container, stopped, as Docker reports it after a cold reboot.
    fn stopped_snmp() -> ContainerInfo {
        ContainerInfo {
            id: "f00d".into(),
            name: "snmp".into(),
            image_id: "sha256:1".into(),
            image_version: Some(Version::parse("1.0").unwrap()),
            running: false,
        }
    }

    #[test]
    fn wait_after_cold_boot_polls_past_the_stopped_local_container_until_the_pod_registers() {
        // Kube owns snmp without fallback and STATE_DB is empty: start did not run the local
        // container, so its stopped leftover must not end the wait.
        let cfg = FeatureConfig {
            set_owner: SetOwner::Kube,
            fallback: false,
            ..FeatureConfig::default()
        };
        let mut store = MockFeatureStore::new();
        store
            .expect_feature_config()
            .returning(move |_| Ok(Some(cfg.clone())));
        store.expect_server_status().returning(|| {
            Ok(ServerStatus {
                connected: true,
                ..ServerStatus::default()
            })
        });
        let reads = Arc::new(AtomicU64::new(0));
        let r = reads.clone();
        store.expect_feature_status().returning(move |_| {
            // The command's own read and two polls see the empty table, then the pod registers.
            Ok(if r.fetch_add(1, Ordering::SeqCst) < 3 {
                FeatureStatus {
                    system_state: Some(SystemState::Up),
                    ..FeatureStatus::default()
                }
            } else {
                FeatureStatus {
                    system_state: Some(SystemState::Up),
                    current_owner: CurrentOwner::Kube,
                    container_id: Some("0123456789ab".into()),
                    remote_state: RemoteState::Running,
                    ..FeatureStatus::default()
                }
            })
        });
        // No status write: a stopped leftover's version is not the stable one.
        store.expect_update_feature_status().never();
        let mut rt = MockContainerRuntime::new();
        rt.expect_inspect()
            .withf(|id| id.as_str() == "snmp")
            .times(3)
            .returning(|_| Ok(Some(stopped_snmp())));
        rt.expect_wait()
            .withf(|id| id.as_str() == "0123456789ab")
            .times(1)
            .returning(|_| Ok(0));
        let clock = ManualClock::default();
        let code = block_on(container_wait(
            &store,
            &rt,
            &clock,
            clock.sleeper(),
            &snmp(),
            true,
            &RemoteCtrConfig::default(),
            |_| {},
        ))
        .unwrap();
        assert_eq!(code, 0);
        assert_eq!(reads.load(Ordering::SeqCst), 4);
        assert_eq!(clock.now(), Timestamp::from_millis(6000));
    }

    #[test]
    fn wait_on_a_dead_local_container_of_a_local_feature_ends_at_once() {
        let st = FeatureStatus {
            current_owner: CurrentOwner::Local,
            container_id: Some("snmp".into()),
            ..FeatureStatus::default()
        };
        let mut store = store_with(FeatureConfig::default(), st, false);
        store
            .expect_update_feature_status()
            .with(
                eq(snmp()),
                eq(StatusUpdate::new().container_stable_version(Version::parse("1.0").unwrap())),
            )
            .times(1)
            .returning(|_, _| Ok(()));
        let mut rt = MockContainerRuntime::new();
        rt.expect_inspect()
            .times(1)
            .returning(|_| Ok(Some(stopped_snmp())));
        rt.expect_wait()
            .withf(|id| id.as_str() == "snmp")
            .times(1)
            .returning(|_| Ok(1));
        let clock = ManualClock::default();
        let code = block_on(container_wait(
            &store,
            &rt,
            &clock,
            clock.sleeper(),
            &snmp(),
            true,
            &RemoteCtrConfig::default(),
            |_| {},
        ))
        .unwrap();
        assert_eq!(code, 255);
        assert_eq!(clock.now(), Timestamp::from_millis(0));
    }

    fn startup_store(statuses: Vec<FeatureStatus>, set_owner: SetOwner) -> MockFeatureStore {
        let mut store = MockFeatureStore::new();
        store.expect_feature_config().returning(move |_| {
            Ok(Some(FeatureConfig {
                set_owner,
                ..FeatureConfig::default()
            }))
        });
        let n = Arc::new(AtomicU64::new(0));
        store.expect_feature_status().returning(move |_| {
            let i = usize::try_from(n.fetch_add(1, Ordering::SeqCst)).unwrap();
            Ok(statuses[i.min(statuses.len() - 1)].clone())
        });
        store
            .expect_desired_labels()
            .returning(|| Ok(NodeLabels::new()));
        store
    }

    #[test]
    fn startup_of_kube_pod_asks_waits_for_ready_and_takes_over() {
        let v = Version::parse("2.0").unwrap();
        let up = |r, ver: Option<Version>| FeatureStatus {
            system_state: Some(SystemState::Up),
            remote_state: r,
            container_version: ver,
            ..FeatureStatus::default()
        };
        let mut store = startup_store(
            vec![
                up(RemoteState::None, None),
                up(RemoteState::Pending, Some(v.clone())),
                up(RemoteState::Ready, Some(v.clone())),
            ],
            SetOwner::Kube,
        );
        let mut seq = Sequence::new();
        store
            .expect_update_feature_status()
            .withf(|_, u| u.remote_state == Some(RemoteState::Pending))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        store
            .expect_update_feature_status()
            .withf(|_, u| {
                u.remote_state == Some(RemoteState::Running)
                    && u.container_id.as_deref() == Some("0123456789ab")
            })
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        let clock = ManualClock::default();
        let outcome = block_on(container_startup(
            &store,
            &clock,
            clock.sleeper(),
            |_| {},
            StartupArgs {
                feature: snmp(),
                owner: SetOwner::Kube,
                version: v,
                own_id: Some(ContainerId::parse("0123456789ab").unwrap()),
            },
        ))
        .unwrap();
        assert_eq!(outcome, StartupOutcome::Proceed);
        assert_eq!(clock.now(), Timestamp::from_millis(4000));
    }

    #[test]
    fn startup_of_superseded_pod_ends_frozen_without_taking_over() {
        let v = Version::parse("2.0").unwrap();
        let up = |r, ver: Option<Version>| FeatureStatus {
            system_state: Some(SystemState::Up),
            remote_state: r,
            container_version: ver,
            ..FeatureStatus::default()
        };
        let mut store = startup_store(
            vec![
                up(RemoteState::None, None),
                up(RemoteState::Pending, Some(Version::parse("3.0").unwrap())),
            ],
            SetOwner::Kube,
        );
        store
            .expect_update_feature_status()
            .withf(|_, u| u.remote_state == Some(RemoteState::Pending))
            .times(1)
            .returning(|_, _| Ok(()));
        let clock = ManualClock::default();
        let mut holds = Vec::new();
        let outcome = block_on(container_startup(
            &store,
            &clock,
            clock.sleeper(),
            |r| holds.push(r.clone()),
            StartupArgs {
                feature: snmp(),
                owner: SetOwner::Kube,
                version: v,
                own_id: Some(ContainerId::parse("0123456789ab").unwrap()),
            },
        ))
        .unwrap();
        assert!(matches!(
            outcome,
            StartupOutcome::Frozen(FreezeReason::Superseded(_))
        ));
        assert_eq!(holds.len(), 1);
    }

    struct Ports {
        store: MockFeatureStore,
        state: MockManagerStateStore,
        runtime: MockContainerRuntime,
        images: MockImageStore,
        cluster: MockNodeCluster,
        services: MockServiceManager,
        clock: ManualClock,
    }

    impl Ports {
        fn new() -> Self {
            Self {
                store: MockFeatureStore::new(),
                state: MockManagerStateStore::new(),
                runtime: MockContainerRuntime::new(),
                images: MockImageStore::new(),
                cluster: MockNodeCluster::new(),
                services: MockServiceManager::new(),
                clock: ManualClock::default(),
            }
        }
        fn run(&self, a: &Action) -> Executed {
            block_on(execute_manager_action(
                ManagerPorts {
                    store: &self.store,
                    state: &self.state,
                    runtime: &self.runtime,
                    images: &self.images,
                    cluster: &self.cluster,
                    services: &self.services,
                    clock: &self.clock,
                },
                a,
            ))
        }
    }

    #[test]
    fn join_answers_with_success_or_failure() {
        let mut p = Ports::new();
        p.cluster
            .expect_join()
            .withf(|c, force| c.ip.as_deref() == Some("10.0.0.1") && !force)
            .times(1)
            .returning(|_, _| Err(PortError::transient("connection refused")));
        let cfg = ServerConfig {
            ip: Some("10.0.0.1".into()),
            ..ServerConfig::default()
        };
        let r = p.run(&Action::Join(RequestId(7), cfg));
        assert_eq!(
            r.event,
            Some(Event::JoinFailed(RequestId(7), "connection refused".into()))
        );
        assert!(r.error.is_some());
    }

    #[test]
    fn http_proxy_route_answers_with_success_or_failure() {
        let mut p = Ports::new();
        let mut seq = Sequence::new();
        p.cluster
            .expect_route_http_proxy()
            .with(eq(Some("10.0.0.1".to_owned())))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        p.cluster
            .expect_route_http_proxy()
            .with(eq(None))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Err(PortError::transient("iptables: timed out")));
        let r = p.run(&Action::RouteHttpProxy {
            request: RequestId(4),
            master_ip: Some("10.0.0.1".into()),
        });
        assert_eq!(r.event, Some(Event::HttpProxyRouted(RequestId(4))));
        assert!(r.error.is_none());
        let r = p.run(&Action::RouteHttpProxy {
            request: RequestId(5),
            master_ip: None,
        });
        assert_eq!(r.event, Some(Event::HttpProxyFailed(RequestId(5))));
        assert_eq!(
            r.error.map(|e| e.to_string()).as_deref(),
            Some("iptables: timed out")
        );
    }

    #[test]
    fn server_status_is_stamped_with_wall_time() {
        let mut p = Ports::new();
        p.state
            .expect_write_server_status()
            .withf(|s| s.connected && s.update_time.as_deref() == Some("2020-12-08 22:59:57"))
            .times(1)
            .returning(|_| Ok(()));
        let r = p.run(&Action::WriteServerStatus(ServerStatus {
            connected: true,
            ..ServerStatus::default()
        }));
        assert!(r.event.is_none() && r.error.is_none());
    }

    #[test]
    fn failing_is_active_counts_as_inactive() {
        let mut p = Ports::new();
        p.services
            .expect_is_active()
            .returning(|_| Err(PortError::transient("systemctl timed out")));
        let r = p.run(&Action::CheckService(RequestId(3), snmp()));
        assert_eq!(
            r.event,
            Some(Event::ServiceActivity {
                request: RequestId(3),
                feature: snmp(),
                active: false
            })
        );
    }

    #[test]
    fn a_restart_is_recorded_as_pending_before_it_runs_and_cleared_once_it_worked() {
        let mut p = Ports::new();
        let mut seq = Sequence::new();
        p.state
            .expect_note_pending_restart()
            .with(eq(snmp()), eq(SetOwner::Kube))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        p.services
            .expect_restart()
            .with(eq(snmp()))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        p.state
            .expect_clear_pending_restart()
            .with(eq(snmp()))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        let r = p.run(&Action::RestartService {
            request: RequestId(4),
            feature: snmp(),
            owner: SetOwner::Kube,
        });
        assert_eq!(
            r.event,
            Some(Event::ServiceRestarted {
                request: RequestId(4),
                feature: snmp(),
                ok: true
            })
        );
        assert!(r.error.is_none());
    }

    #[test]
    fn a_failed_restart_stays_recorded_as_pending_and_is_answered_as_failed() {
        let mut p = Ports::new();
        p.state
            .expect_note_pending_restart()
            .times(1)
            .returning(|_, _| Ok(()));
        p.services
            .expect_restart()
            .times(1)
            .returning(|_| Err(PortError::transient("Job for snmp.service failed")));
        p.state.expect_clear_pending_restart().never();
        let r = p.run(&Action::RestartService {
            request: RequestId(5),
            feature: snmp(),
            owner: SetOwner::Local,
        });
        assert_eq!(
            r.event,
            Some(Event::ServiceRestarted {
                request: RequestId(5),
                feature: snmp(),
                ok: false
            })
        );
        assert!(r.error.unwrap().to_string().contains("snmp.service failed"));
    }

    #[test]
    fn a_restart_runs_even_when_its_record_cannot_be_written() {
        let mut p = Ports::new();
        p.state
            .expect_note_pending_restart()
            .returning(|_, _| Err(PortError::transient("redis down")));
        p.services.expect_restart().times(1).returning(|_| Ok(()));
        p.state
            .expect_clear_pending_restart()
            .returning(|_| Err(PortError::transient("redis down")));
        let r = p.run(&Action::RestartService {
            request: RequestId(6),
            feature: snmp(),
            owner: SetOwner::Local,
        });
        assert!(matches!(
            r.event,
            Some(Event::ServiceRestarted { ok: true, .. })
        ));
        assert!(r.error.unwrap().to_string().contains("redis down"));
    }

    #[test]
    fn image_ops_run_in_order_and_stop_at_the_first_failure() {
        let mut p = Ports::new();
        let mut seq = Sequence::new();
        p.images
            .expect_tag_image()
            .with(eq("sha256:74"), eq("docker-snmp"), eq("latest"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(()));
        p.runtime
            .expect_remove()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        p.images
            .expect_remove_image()
            .with(eq("docker-snmp:1.0"))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Err(PortError::transient("image in use")));
        // The status update after the failure must not happen: no expectation on the store.
        let ops = vec![
            ImageOp::Tag {
                image: "sha256:74".into(),
                repo: "docker-snmp".into(),
                tag: "latest".into(),
            },
            ImageOp::RemoveContainer(ContainerId::parse("snmp").unwrap()),
            ImageOp::RemoveImage("docker-snmp:1.0".into()),
            ImageOp::UpdateStatus(StatusUpdate::new().remote_state(RemoteState::None)),
        ];
        let r = p.run(&Action::RunImageOps {
            request: RequestId(9),
            feature: snmp(),
            ops,
        });
        assert_eq!(
            r.event,
            Some(Event::ImageOpsDone {
                request: RequestId(9),
                feature: snmp(),
                ok: false
            })
        );
    }

    #[test]
    fn image_facts_gather_both_containers_and_the_image_list() {
        let mut p = Ports::new();
        p.runtime.expect_inspect().times(2).returning(|id| {
            Ok((id.as_str() != "snmp").then(|| ContainerInfo {
                id: id.to_string(),
                name: id.to_string(),
                image_id: "sha256:74".into(),
                image_version: None,
                running: true,
            }))
        });
        p.images.expect_list_images().times(1).returning(|| {
            Ok(vec![ImageInfo {
                id: "sha256:74".into(),
                repository: "acr.io/docker-snmp".into(),
                tag: "2.0".into(),
            }])
        });
        let r = p.run(&Action::GatherImageFacts {
            request: RequestId(1),
            feature: snmp(),
            container: ContainerId::parse("0123456789ab").unwrap(),
        });
        match r.event {
            Some(Event::ImageFacts {
                container: Some(c),
                local_container: None,
                images,
                ..
            }) => {
                assert_eq!(c.id, "0123456789ab");
                assert_eq!(images.len(), 1);
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
}
