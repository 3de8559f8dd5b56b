//! `kube-reboot prepare`: reads CONFIG_DB / STATE_DB `FEATURE`, the installed kube-only
//! features, Docker's images and containers and which kube files exist; asks the core for the
//! plan; carries it out step by step.
//!
//! A failing step is reported and the next one runs (the system is going down anyway and every
//! other step still helps), except the state file: if it cannot be written, nothing is changed
//! in CONFIG_DB, since the operator's settings could not be restored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sonic_db::schema::feature_config;
use sonic_db::{Fields, RedisFeatureStore};
use sonic_feature_core::container::{IdResolution, resolve_id};
use sonic_feature_core::images::ImageOp;
use sonic_feature_core::model::{FeatureConfig, FeatureName, FeatureStatus, SetOwner};
use sonic_feature_core::ports::{ContainerRuntime, FeatureStore, ImageStore};
use sonic_feature_core::reboot::{
    CarryState, FeatureContainers, HostFacts, InstalledUnit, RebootAction, RebootKind, RebootPlan,
    plan_prepare_reboot,
};

use crate::install::render::has_marker;
use crate::reboot::options::RebootOptions;
use crate::reboot::runner::{Cmd, CommandRunner};
use crate::reboot::{RebootError, copy_file, write_atomic};

/// What a `prepare` run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The plan that was carried out (its `carry` is the carry list).
    pub plan: RebootPlan,
    /// Facts that could not be read (they only make the plan smaller).
    pub warnings: Vec<String>,
    /// Steps that failed.
    pub failures: Vec<String>,
}

/// The features of CONFIG_DB with their STATE_DB status, in key order.
pub async fn read_features(
    store: &RedisFeatureStore,
) -> Result<Vec<(FeatureName, FeatureConfig, FeatureStatus)>, RebootError> {
    let mut out = Vec::new();
    for name in store.feature_names().await? {
        // Deleted between the listing and the read: nothing to prepare for it.
        let Some(config) = store.feature_config(&name).await? else {
            continue;
        };
        let status = store.feature_status(&name).await?;
        out.push((name, config, status));
    }
    Ok(out)
}

/// Kube-only features installed by `config feature install`: `<f>.service` in the unit
/// directory and `<f>.sh` in the script directory, both carrying the generated-file marker.
pub fn installed_units(opts: &RebootOptions) -> Result<Vec<InstalledUnit>, RebootError> {
    let dir = &opts.install.unit_dir;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RebootError::Io {
                action: "read",
                path: dir.clone(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".service") else {
            continue;
        };
        let Ok(name) = FeatureName::parse(stem) else {
            continue;
        };
        let generated = |p: &Path| {
            std::fs::read(p).is_ok_and(|b| has_marker(&String::from_utf8_lossy(&b), &name))
        };
        let unit = opts.install.unit_path(&name);
        let script = opts.install.script_path(&name);
        if generated(&unit) && generated(&script) {
            out.push(InstalledUnit {
                feature: name,
                unit,
                script,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the state file; `None` when there is none.
pub fn read_state(path: &Path) -> Result<Option<CarryState>, RebootError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RebootError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    CarryState::from_json(&text)
        .map(Some)
        .map_err(|source| RebootError::State {
            path: path.to_path_buf(),
            source,
        })
}

/// Docker facts for the kube-owned features with a last good version (the only ones whose
/// image may be carried). Failures become warnings: they only leave the local image as it is.
async fn docker_facts<D: ContainerRuntime + ImageStore>(
    docker: &D,
    features: &[(FeatureName, FeatureConfig, FeatureStatus)],
    host: &mut HostFacts,
    warnings: &mut Vec<String>,
) {
    let candidates: Vec<_> = features
        .iter()
        .filter(|(_, c, s)| c.set_owner == SetOwner::Kube && s.container_stable_version.is_some())
        .collect();
    if candidates.is_empty() {
        return;
    }
    match docker.list_images().await {
        Ok(images) => host.images = images,
        Err(e) => {
            warnings.push(format!("cannot list images: {}", RebootError::from(e)));
            return;
        }
    }
    for (name, _, status) in candidates {
        let mut c = FeatureContainers::default();
        if let IdResolution::Id(id) = resolve_id(name, status) {
            match docker.inspect(&id).await {
                Ok(info) => c.kube = info,
                Err(e) => warnings.push(format!("{name}: {}", RebootError::from(e))),
            }
        }
        let local = sonic_feature_core::model::ContainerId::of_feature(name);
        match docker.inspect(&local).await {
            Ok(info) => c.local = info,
            Err(e) => warnings.push(format!("{name}: {}", RebootError::from(e))),
        }
        host.containers.insert(name.clone(), c);
    }
}

/// Reads every fact and plans.
pub async fn plan<D: ContainerRuntime + ImageStore>(
    kind: RebootKind,
    skip_updates: bool,
    opts: &RebootOptions,
    store: &RedisFeatureStore,
    docker: &D,
) -> Result<(RebootPlan, Vec<String>), RebootError> {
    let features = read_features(store).await?;
    let mut warnings = Vec::new();
    let mut host = HostFacts {
        installed: installed_units(opts)?,
        previous: read_state(&opts.paths.state_file)?,
        present: opts
            .paths
            .kube_context()
            .into_iter()
            .filter(|(p, _)| p.symlink_metadata().is_ok())
            .map(|(p, _)| p.to_path_buf())
            .collect::<BTreeSet<PathBuf>>(),
        ..HostFacts::default()
    };
    docker_facts(docker, &features, &mut host, &mut warnings).await;
    let plan = plan_prepare_reboot(kind, skip_updates, &features, &host, &opts.paths);
    Ok((plan, warnings))
}

/// Plans and carries out `prepare`.
pub async fn prepare<R: CommandRunner, D: ContainerRuntime + ImageStore>(
    kind: RebootKind,
    skip_updates: bool,
    opts: &RebootOptions,
    store: &RedisFeatureStore,
    docker: &D,
    runner: &R,
    log: &mut dyn FnMut(&str),
) -> Result<Prepared, RebootError> {
    let (plan, warnings) = plan(kind, skip_updates, opts, store, docker).await?;
    for w in &warnings {
        log(&format!("warning: {w}"));
    }
    for n in &plan.notes {
        log(&format!("note: {n}"));
    }
    let mut failures = Vec::new();
    for action in &plan.actions {
        log(&action.to_string());
        let result = step(action, opts, store, docker, runner).await;
        match (action, result) {
            (_, Ok(())) => {}
            (RebootAction::SaveState(_), Err(e)) => return Err(e),
            (_, Err(e)) => {
                log(&format!("failed: {e}"));
                failures.push(e.to_string());
            }
        }
    }
    Ok(Prepared {
        plan,
        warnings,
        failures,
    })
}

async fn step<R: CommandRunner, D: ContainerRuntime + ImageStore>(
    action: &RebootAction,
    opts: &RebootOptions,
    store: &RedisFeatureStore,
    docker: &D,
    runner: &R,
) -> Result<(), RebootError> {
    let systemctl = |verb: &str| {
        Cmd::new(
            [
                opts.systemctl.as_os_str(),
                verb.as_ref(),
                "kubelet".as_ref(),
            ],
            opts.systemctl_timeout,
        )
    };
    let container = |verb: &str, f: &FeatureName, skip: bool| {
        let mut argv = vec![
            opts.install.container_bin.clone().into_os_string(),
            verb.into(),
        ];
        if skip {
            argv.push("--skip-updates".into());
        }
        argv.push(f.as_str().into());
        Cmd::new(argv, opts.container_timeout)
    };
    match action {
        RebootAction::DisableKubelet => runner.run(&systemctl("disable")).await,
        RebootAction::StopKubelet => runner.run(&systemctl("stop")).await,
        RebootAction::SaveState(state) => write_atomic(&opts.paths.state_file, &state.to_json()),
        RebootAction::AllowFallback(f) => {
            let fields = Fields::from([(
                feature_config::NO_FALLBACK_TO_LOCAL.to_owned(),
                "false".to_owned(),
            )]);
            store
                .config_db()
                .mod_entry(feature_config::TABLE, f.as_str(), &fields)
                .await
                .map_err(RebootError::from)
        }
        RebootAction::RunHook { script, action, .. } => {
            runner
                .run(&Cmd::new(
                    [script.as_os_str(), action.as_ref()],
                    opts.hook_timeout,
                ))
                .await
        }
        RebootAction::Kill {
            feature,
            skip_updates,
        } => runner.run(&container("kill", feature, *skip_updates)).await,
        RebootAction::Stop {
            feature,
            skip_updates,
        } => runner.run(&container("stop", feature, *skip_updates)).await,
        RebootAction::Image(feature, op) => image_op(feature, op, store, docker).await,
        RebootAction::Copy { from, to } => copy_file(from, to),
    }
}

async fn image_op<D: ContainerRuntime + ImageStore>(
    feature: &FeatureName,
    op: &ImageOp,
    store: &RedisFeatureStore,
    docker: &D,
) -> Result<(), RebootError> {
    match op {
        ImageOp::Tag { image, repo, tag } => docker.tag_image(image, repo, tag).await?,
        ImageOp::RemoveImage(r) => docker.remove_image(r).await?,
        ImageOp::RemoveContainer(c) => docker.remove(c).await?,
        ImageOp::UpdateStatus(u) => store.update_feature_status(feature, u).await?,
    }
    Ok(())
}

/// The carry list: one path per line.
pub fn carry_list_text(plan: &RebootPlan) -> String {
    plan.carry
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect()
}

#[cfg(test)]
mod tests {
    //! The executors against a private redis-server, files in a temp dir, a recording runner
    //! for `systemctl` / `container` / hooks, and a Docker endpoint that does not exist (only
    //! the image facts need Docker; their failure is a warning).

    use std::path::PathBuf;

    use sonic_db::SonicDbConfig;
    use sonic_docker_adapter::{BollardRuntime, DockerClient};
    use sonic_tests::redis::{CONFIG_DB, RedisServer, STATE_DB};

    use super::*;
    use crate::install::{ServiceSpec, install};
    use crate::reboot::options::PathFlags;
    use crate::reboot::restore::restore;
    use crate::reboot::runner::recorder::Recorder;

    fn hset(redis: &RedisServer, db: i64, key: &str, fields: &[(&str, &str)]) {
        let mut conn = redis.connection(db).unwrap();
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (f, v) in fields {
            cmd.arg(*f).arg(*v);
        }
        cmd.query::<()>(&mut conn).unwrap();
    }

    fn hget(redis: &RedisServer, db: i64, key: &str, field: &str) -> Option<String> {
        let mut conn = redis.connection(db).unwrap();
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query(&mut conn)
            .unwrap()
    }

    struct World {
        redis: RedisServer,
        dir: tempfile::TempDir,
        opts: RebootOptions,
    }

    fn world() -> World {
        let redis =
            RedisServer::start().expect("redis-server must start (run scripts/install-deps)");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let flags = PathFlags {
            root: Some(root.clone()),
            container_bin: Some(root.join("usr/local/bin/container")),
            systemctl: Some(PathBuf::from("systemctl")),
            unit_dir: Some(root.join("etc/systemd/system")),
            script_dir: Some(root.join("usr/local/bin")),
            state: None,
        };
        let opts = RebootOptions::resolve(&flags);
        // snmp: kube-owned, no fallback, its kube container runs; lldp: local; bgpmon: an
        // installed kube-only feature whose pod runs.
        hset(
            &redis,
            CONFIG_DB,
            "FEATURE|snmp",
            &[
                ("set_owner", "kube"),
                ("no_fallback_to_local", "true"),
                ("state", "enabled"),
            ],
        );
        hset(
            &redis,
            STATE_DB,
            "FEATURE|snmp",
            &[
                ("current_owner", "kube"),
                ("container_id", "0123456789ab"),
                ("system_state", "up"),
                ("remote_state", "running"),
            ],
        );
        hset(&redis, CONFIG_DB, "FEATURE|lldp", &[("state", "enabled")]);
        hset(
            &redis,
            STATE_DB,
            "FEATURE|lldp",
            &[
                ("current_owner", "local"),
                ("container_id", "lldp"),
                ("system_state", "up"),
            ],
        );
        hset(
            &redis,
            CONFIG_DB,
            "FEATURE|bgpmon",
            &[
                ("set_owner", "kube"),
                ("no_fallback_to_local", "true"),
                ("state", "enabled"),
            ],
        );
        hset(
            &redis,
            STATE_DB,
            "FEATURE|bgpmon",
            &[
                ("current_owner", "kube"),
                ("container_id", "aaaaaaaaaaaa"),
                ("system_state", "up"),
            ],
        );
        install(&ServiceSpec::simple("bgpmon", &[]).unwrap(), &opts.install).unwrap();
        std::fs::create_dir_all(opts.paths.kubelet_config.parent().unwrap()).unwrap();
        std::fs::write(&opts.paths.kubelet_config, "kind: KubeletConfiguration\n").unwrap();
        World { redis, dir, opts }
    }

    async fn store(w: &World) -> RedisFeatureStore {
        let dbs = SonicDbConfig::from_paths(w.redis.database_config_path(), None).unwrap();
        RedisFeatureStore::open(&dbs, &sonic_db::Namespace::Host)
            .await
            .unwrap()
    }

    fn no_docker(w: &World) -> BollardRuntime {
        let sock = w.dir.path().join("no-docker.sock");
        BollardRuntime::new(DockerClient::new(&format!("unix://{}", sock.display())).unwrap())
    }

    #[tokio::test]
    async fn warm_prepare_then_restore_round_trips_fallback_and_units() {
        let w = world();
        let store = store(&w).await;
        let rec = Recorder::default();
        let mut log = Vec::new();
        let done = prepare(
            RebootKind::Warm,
            true,
            &w.opts,
            &store,
            &no_docker(&w),
            &rec,
            &mut |l| log.push(l.to_owned()),
        )
        .await
        .unwrap();
        assert!(done.failures.is_empty(), "{:?}", done.failures);
        let root = w.dir.path().display().to_string();
        let lines: Vec<String> = rec
            .lines()
            .iter()
            .map(|l| l.replace(&root, "<root>"))
            .collect();
        assert_eq!(
            lines,
            [
                "systemctl disable kubelet",
                "systemctl stop kubelet",
                "<root>/usr/local/bin/bgpmon.sh prepare-warm",
                "<root>/usr/local/bin/container kill --skip-updates bgpmon",
                "<root>/usr/local/bin/container kill --skip-updates snmp",
            ]
        );
        // snmp may now fall back; the installed kube-only bgpmon has no local image to fall to.
        assert_eq!(
            hget(&w.redis, CONFIG_DB, "FEATURE|snmp", "no_fallback_to_local").as_deref(),
            Some("false")
        );
        assert_eq!(
            hget(
                &w.redis,
                CONFIG_DB,
                "FEATURE|bgpmon",
                "no_fallback_to_local"
            )
            .as_deref(),
            Some("true")
        );
        let state = read_state(&w.opts.paths.state_file).unwrap().unwrap();
        assert_eq!(state.fallback.len(), 1);
        assert_eq!(state.fallback[0].feature.as_str(), "snmp");
        let carry: Vec<String> = carry_list_text(&done.plan)
            .lines()
            .map(|l| l.replace(&root, "<root>"))
            .collect();
        assert_eq!(
            carry,
            [
                "<root>/var/lib/kubelet/config.yaml",
                "<root>/etc/systemd/system/bgpmon.service",
                "<root>/usr/local/bin/bgpmon.sh",
                "<root>/etc/sonic/kube-reboot/state.json",
                "<root>/etc/sonic/kube-reboot/units",
            ]
        );
        assert!(
            w.opts
                .paths
                .saved_units_dir()
                .join("bgpmon.service")
                .is_file()
        );

        // The new image lacks the unit: restore puts it back and reloads systemd.
        std::fs::remove_file(
            w.opts
                .install
                .unit_path(&FeatureName::parse("bgpmon").unwrap()),
        )
        .unwrap();
        let rec = Recorder::default();
        let done = restore(
            &w.opts.paths.state_file,
            None,
            &w.opts,
            &store,
            &rec,
            &mut |l| log.push(l.to_owned()),
        )
        .await
        .unwrap();
        assert!(done.failures.is_empty(), "{:?}", done.failures);
        assert_eq!(
            rec.lines(),
            ["systemctl daemon-reload"],
            "kubelet is never enabled by restore"
        );
        assert_eq!(
            hget(&w.redis, CONFIG_DB, "FEATURE|snmp", "no_fallback_to_local").as_deref(),
            Some("true")
        );
        assert!(
            w.opts
                .install
                .unit_path(&FeatureName::parse("bgpmon").unwrap())
                .is_file()
        );
        assert!(
            !w.opts.paths.state_file.exists(),
            "state removed after a complete restore"
        );
        // A second restore has nothing to do.
        let again = restore(
            &w.opts.paths.state_file,
            None,
            &w.opts,
            &store,
            &rec,
            &mut |_| {},
        )
        .await
        .unwrap();
        assert!(again.actions.is_empty());
    }

    #[tokio::test]
    async fn failing_steps_are_reported_and_the_others_still_run() {
        let w = world();
        // A last good version makes the image facts needed; Docker is unreachable: a warning.
        hset(
            &w.redis,
            STATE_DB,
            "FEATURE|snmp",
            &[("container_stable_version", "20201231.74")],
        );
        let store = store(&w).await;
        let rec = Recorder {
            fail_when_contains: Some("disable".to_owned()),
            ..Recorder::default()
        };
        let done = prepare(
            RebootKind::Cold,
            false,
            &w.opts,
            &store,
            &no_docker(&w),
            &rec,
            &mut |_| {},
        )
        .await
        .unwrap();
        assert_eq!(done.failures.len(), 1, "{:?}", done.failures);
        assert!(
            done.failures[0].starts_with("command systemctl disable kubelet failed"),
            "{:?}",
            done.failures
        );
        assert!(
            done.warnings
                .iter()
                .any(|w| w.starts_with("cannot list images")),
            "{:?}",
            done.warnings
        );
        let lines = rec.lines();
        assert!(
            lines.iter().any(|l| l.ends_with("container stop snmp")),
            "{lines:?}"
        );
        // Cold: no fallback change, no hook.
        assert_eq!(
            hget(&w.redis, CONFIG_DB, "FEATURE|snmp", "no_fallback_to_local").as_deref(),
            Some("true")
        );
        assert!(!lines.iter().any(|l| l.contains("prepare-")), "{lines:?}");
    }

    #[tokio::test]
    async fn an_unreadable_state_file_stops_prepare_before_any_change() {
        let w = world();
        std::fs::create_dir_all(w.opts.paths.state_file.parent().unwrap()).unwrap();
        std::fs::write(&w.opts.paths.state_file, "not json").unwrap();
        let store = store(&w).await;
        let rec = Recorder::default();
        let err = prepare(
            RebootKind::Warm,
            true,
            &w.opts,
            &store,
            &no_docker(&w),
            &rec,
            &mut |_| {},
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("state.json: invalid reboot state"), "{err}");
        assert!(rec.lines().is_empty());
        assert_eq!(
            hget(&w.redis, CONFIG_DB, "FEATURE|snmp", "no_fallback_to_local").as_deref(),
            Some("true")
        );
    }
}
