//! `kube-reboot restore`, after boot: reinstalls carried units and scripts that the new image
//! lacks (then `systemctl daemon-reload`), with `--wait-up` waits until the features whose
//! setting goes back are up, puts back the `no_fallback_to_local` settings `prepare` changed,
//! and removes the state file once everything succeeded. It never enables or starts kubelet:
//! ctrmgrd starts it when it joins the master.
//!
//! The waiting decisions are the core's (`awaited_features`, `await_up`); this module polls
//! STATE_DB and CONFIG_DB with a small period until they say restore. A missing state file
//! means there is nothing to restore.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sonic_db::schema::feature_config;
use sonic_db::{Fields, RedisFeatureStore};
use sonic_feature_core::model::{FeatureConfig, FeatureName, FeatureStatus, Timestamp};
use sonic_feature_core::ports::FeatureStore;
use sonic_feature_core::reboot::{
    CarryState, RestoreAction, UpWait, await_up, awaited_features, plan_reinstall,
    plan_restore_fallback, system_state_everywhere,
};

use crate::install::render::has_marker;
use crate::reboot::options::RebootOptions;
use crate::reboot::prepare::read_state;
use crate::reboot::runner::{Cmd, CommandRunner};
use crate::reboot::{RebootError, copy_file};

/// What a `restore` run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The steps, in order (empty: no state file).
    pub actions: Vec<RestoreAction>,
    /// Why something was not restored, or not waited for.
    pub notes: Vec<String>,
    /// Steps that failed (the state file is then kept for another try).
    pub failures: Vec<String>,
}

/// Restores from `state_file`. `wait_up`: how long at most to wait for the features whose
/// setting goes back to come up (`None`: do not wait, restore at once).
// The kube-reboot binary compiles this module too and calls [`restore_on`] only.
#[allow(dead_code)]
pub async fn restore<R: CommandRunner>(
    state_file: &Path,
    wait_up: Option<Duration>,
    opts: &RebootOptions,
    store: &RedisFeatureStore,
    runner: &R,
    log: &mut dyn FnMut(&str),
) -> Result<Restored, RebootError> {
    restore_on(state_file, wait_up, opts, store, &[], runner, log).await
}

/// [`restore`] on a multi-ASIC switch: `asics` are the STATE_DBs of the ASIC namespaces, where
/// the instances of a feature keep their status (`--wait-up` waits until the feature is up in
/// every place that has an entry for it: the host and each ASIC).
#[allow(clippy::too_many_arguments)]
pub async fn restore_on<R: CommandRunner>(
    state_file: &Path,
    wait_up: Option<Duration>,
    opts: &RebootOptions,
    store: &RedisFeatureStore,
    asics: &[RedisFeatureStore],
    runner: &R,
    log: &mut dyn FnMut(&str),
) -> Result<Restored, RebootError> {
    let started = Instant::now();
    let Some(state) = read_state(state_file)? else {
        log(&format!(
            "nothing to restore: {} does not exist",
            state_file.display()
        ));
        return Ok(Restored {
            actions: Vec::new(),
            notes: Vec::new(),
            failures: Vec::new(),
        });
    };
    let present: BTreeSet<PathBuf> = state
        .units
        .iter()
        .flat_map(|u| [&u.unit, &u.script, &u.saved_unit, &u.saved_script])
        .filter(|p| p.symlink_metadata().is_ok())
        .cloned()
        .collect();
    // Units first and at once: an installed feature cannot start without its unit.
    let (mut actions, mut notes) = plan_reinstall(&state, &present);
    for n in &notes {
        log(&format!("note: {n}"));
    }
    let steps = Steps {
        state: &state,
        state_file,
        opts,
        store,
        runner,
    };
    let mut failures = Vec::new();
    steps.run(&actions, log, &mut failures).await;

    let (fallback, fallback_notes) = match wait_up {
        None => {
            let current = read_configs(&state, store).await?;
            plan_restore_fallback(&state, &current)
        }
        Some(limit) => wait_for_features(&state, started, limit, opts, store, asics, log).await?,
    };
    for n in &fallback_notes {
        log(&format!("note: {n}"));
    }
    notes.extend(fallback_notes);
    steps.run(&fallback, log, &mut failures).await;
    actions.extend(fallback);

    if failures.is_empty() {
        let remove = [RestoreAction::RemoveState];
        steps.run(&remove, log, &mut failures).await;
    } else {
        log(&format!(
            "keeping {} for another try after the failures",
            state_file.display()
        ));
    }
    actions.push(RestoreAction::RemoveState);
    Ok(Restored {
        actions,
        notes,
        failures,
    })
}

/// What the steps of one run act on.
struct Steps<'a, R> {
    state: &'a CarryState,
    state_file: &'a Path,
    opts: &'a RebootOptions,
    store: &'a RedisFeatureStore,
    runner: &'a R,
}

impl<R: CommandRunner> Steps<'_, R> {
    /// Carries out `actions` in order; a failed one is logged and recorded, the next still run.
    async fn run(
        &self,
        actions: &[RestoreAction],
        log: &mut dyn FnMut(&str),
        failures: &mut Vec<String>,
    ) {
        for action in actions {
            log(&action.to_string());
            let done = step(
                action,
                self.state,
                self.state_file,
                self.opts,
                self.store,
                self.runner,
            )
            .await;
            if let Err(e) = done {
                log(&format!("failed: {e}"));
                failures.push(e.to_string());
            }
        }
    }
}

async fn read_configs(
    state: &CarryState,
    store: &RedisFeatureStore,
) -> Result<BTreeMap<FeatureName, Option<FeatureConfig>>, RebootError> {
    let mut current = BTreeMap::new();
    for s in &state.fallback {
        current.insert(s.feature.clone(), store.feature_config(&s.feature).await?);
    }
    Ok(current)
}

/// The status of each feature as the core's `await_up` reads it: the host's entry, with its
/// `system_state` taken over every place that has an entry (host and ASIC namespaces).
async fn read_statuses(
    features: &[FeatureName],
    store: &RedisFeatureStore,
    asics: &[RedisFeatureStore],
) -> Result<BTreeMap<FeatureName, FeatureStatus>, RebootError> {
    let mut statuses = BTreeMap::new();
    for f in features {
        let mut here = vec![store.feature_status(f).await?];
        for asic in asics {
            here.push(asic.feature_status(f).await?);
        }
        let mut status = here[0].clone();
        status.system_state = system_state_everywhere(&here);
        statuses.insert(f.clone(), status);
    }
    Ok(statuses)
}

fn names(features: &[FeatureName]) -> String {
    features
        .iter()
        .map(FeatureName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Polls CONFIG_DB and STATE_DB every `opts.up_poll_period` until the core says restore (all
/// awaited features up) or the deadline passed, and returns the fallback steps planned on the
/// last read (a setting the operator changed during the wait is then left alone). A read that
/// fails (Redis unreachable) is retried until the deadline, then reported.
async fn wait_for_features(
    state: &CarryState,
    started: Instant,
    limit: Duration,
    opts: &RebootOptions,
    store: &RedisFeatureStore,
    asics: &[RedisFeatureStore],
    log: &mut dyn FnMut(&str),
) -> Result<(Vec<RestoreAction>, Vec<String>), RebootError> {
    let deadline = Timestamp::from_millis(0).plus(limit);
    let now =
        || Timestamp::from_millis(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    let mut last_down: Option<Vec<FeatureName>> = None;
    let mut last_error: Option<String> = None;
    loop {
        let read = async {
            let current = read_configs(state, store).await?;
            let (fallback, notes) = plan_restore_fallback(state, &current);
            let (awaited, awaited_notes) = awaited_features(&fallback, &current);
            let statuses = read_statuses(&awaited, store, asics).await?;
            Ok::<_, RebootError>((fallback, notes, awaited, awaited_notes, statuses))
        };
        match read.await {
            Ok((fallback, mut notes, awaited, awaited_notes, statuses)) => {
                if last_error.take().is_some() {
                    log("the database answers again");
                }
                match await_up(&awaited, &statuses, now(), deadline) {
                    UpWait::Restore => {
                        if !awaited.is_empty() {
                            log(&format!("up: {}", names(&awaited)));
                        }
                        notes.extend(awaited_notes);
                        return Ok((fallback, notes));
                    }
                    UpWait::Deadline { down, notes: late } => {
                        log(&format!(
                            "still down after {}: {}",
                            humanize(limit),
                            names(&down)
                        ));
                        notes.extend(awaited_notes);
                        notes.extend(late);
                        return Ok((fallback, notes));
                    }
                    UpWait::Wait(down) => {
                        if last_down.as_ref() != Some(&down) {
                            log(&format!(
                                "waiting for {} to come up (STATE_DB FEATURE system_state up), at most {} after start",
                                names(&down),
                                humanize(limit)
                            ));
                            last_down = Some(down);
                        }
                    }
                }
            }
            Err(e) => {
                let message = e.to_string();
                if now() >= deadline {
                    return Err(RebootError::WaitUp {
                        limit: humanize(limit),
                        reason: message,
                    });
                }
                if last_error.as_ref() != Some(&message) {
                    log(&format!(
                        "cannot read the features ({message}); retrying until the deadline"
                    ));
                    last_error = Some(message);
                }
            }
        }
        let left = deadline.since(now());
        tokio::time::sleep(opts.up_poll_period.min(left).max(Duration::from_millis(10))).await;
    }
}

/// `600s` -> `10m`, `90s` -> `90s`: the limit as the operator wrote it, more or less.
fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 || s == 0 {
        format!("{}ms", d.as_millis())
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn feature_of<'a>(state: &'a CarryState, saved: &Path) -> Option<&'a FeatureName> {
    state
        .units
        .iter()
        .find(|u| u.saved_unit == saved || u.saved_script == saved)
        .map(|u| &u.feature)
}

async fn step<R: CommandRunner>(
    action: &RestoreAction,
    state: &CarryState,
    state_file: &Path,
    opts: &RebootOptions,
    store: &RedisFeatureStore,
    runner: &R,
) -> Result<(), RebootError> {
    match action {
        RestoreAction::RestoreFallback(s) => {
            let fields = Fields::from([(
                feature_config::NO_FALLBACK_TO_LOCAL.to_owned(),
                s.no_fallback_to_local.to_string(),
            )]);
            store
                .config_db()
                .mod_entry(feature_config::TABLE, s.feature.as_str(), &fields)
                .await?;
            Ok(())
        }
        RestoreAction::Reinstall { from, to } => {
            // Only files we generated go back (the copy could have been replaced meanwhile).
            if let Some(f) = feature_of(state, from) {
                let text = std::fs::read(from).map_err(|source| RebootError::Io {
                    action: "read",
                    path: from.clone(),
                    source,
                })?;
                if !has_marker(&String::from_utf8_lossy(&text), f) {
                    return Err(RebootError::NotGenerated {
                        path: from.clone(),
                        feature: f.clone(),
                    });
                }
            }
            copy_file(from, to)
        }
        RestoreAction::DaemonReload => {
            runner
                .run(&Cmd::new(
                    [opts.systemctl.as_os_str(), "daemon-reload".as_ref()],
                    opts.systemctl_timeout,
                ))
                .await
        }
        RestoreAction::RemoveState => {
            for u in &state.units {
                for p in [&u.saved_unit, &u.saved_script] {
                    remove_if_present(p)?;
                }
            }
            remove_if_present(state_file)
        }
    }
}

fn remove_if_present(path: &Path) -> Result<(), RebootError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RebootError::Io {
            action: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    //! `restore` against a private redis-server, files in a temp dir and a recording runner;
    //! the test plays the features' `container start` by writing STATE_DB `system_state`,
    //! after a positive sync point: restore's own "waiting for" log line.

    use std::time::{Duration, Instant};

    use sonic_db::SonicDbConfig;
    use sonic_feature_core::reboot::{CarriedUnit, RebootKind, SavedFallback};
    use sonic_tests::redis::{CONFIG_DB, RedisServer, STATE_DB};
    use tokio::sync::mpsc;

    use super::*;
    use crate::install::{ServiceSpec, install};
    use crate::reboot::options::PathFlags;
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

    fn no_fallback(redis: &RedisServer, feature: &str) -> Option<String> {
        let mut conn = redis.connection(CONFIG_DB).unwrap();
        redis::cmd("HGET")
            .arg(format!("FEATURE|{feature}"))
            .arg("no_fallback_to_local")
            .query(&mut conn)
            .unwrap()
    }

    fn feat(name: &str) -> FeatureName {
        FeatureName::parse(name).unwrap()
    }

    /// After "boot": snmp and telemetry run with the fallback prepare allowed (operator's
    /// setting: no fallback), the installed bgpmon's unit and script are only in the saved
    /// copies. Nothing is up yet (STATE_DB starts empty after a warm reboot).
    struct World {
        redis: RedisServer,
        _dir: tempfile::TempDir,
        opts: RebootOptions,
    }

    fn seed_configs(redis: &RedisServer) {
        for f in ["snmp", "telemetry"] {
            hset(
                redis,
                CONFIG_DB,
                &format!("FEATURE|{f}"),
                &[
                    ("set_owner", "kube"),
                    ("no_fallback_to_local", "false"),
                    ("state", "enabled"),
                ],
            );
        }
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
        let mut opts = RebootOptions::resolve(&flags);
        opts.up_poll_period = Duration::from_millis(50);
        seed_configs(&redis);
        let bgpmon = feat("bgpmon");
        install(&ServiceSpec::simple("bgpmon", &[]).unwrap(), &opts.install).unwrap();
        let saved_dir = opts.paths.saved_units_dir();
        std::fs::create_dir_all(&saved_dir).unwrap();
        let unit = CarriedUnit {
            feature: bgpmon.clone(),
            unit: opts.install.unit_path(&bgpmon),
            script: opts.install.script_dir.join("bgpmon.sh"),
            saved_unit: saved_dir.join("bgpmon.service"),
            saved_script: saved_dir.join("bgpmon.sh"),
        };
        std::fs::rename(&unit.unit, &unit.saved_unit).unwrap();
        std::fs::rename(&unit.script, &unit.saved_script).unwrap();
        let state = CarryState {
            version: CarryState::VERSION,
            kind: RebootKind::Warm,
            fallback: ["snmp", "telemetry"]
                .iter()
                .map(|f| SavedFallback {
                    feature: feat(f),
                    no_fallback_to_local: true,
                })
                .collect(),
            units: vec![unit],
        };
        std::fs::write(&opts.paths.state_file, state.to_json()).unwrap();
        World {
            redis,
            _dir: dir,
            opts,
        }
    }

    async fn open_store(w: &World) -> RedisFeatureStore {
        let dbs = SonicDbConfig::from_paths(w.redis.database_config_path(), None).unwrap();
        RedisFeatureStore::open(&dbs, &sonic_db::Namespace::Host)
            .await
            .unwrap()
    }

    fn up(redis: &RedisServer, feature: &str) {
        hset(
            redis,
            STATE_DB,
            &format!("FEATURE|{feature}"),
            &[("system_state", "up"), ("current_owner", "local")],
        );
    }

    /// Receives log lines until one starts with `prefix` (20 s at most), returning them all.
    async fn lines_until(rx: &mut mpsc::UnboundedReceiver<String>, prefix: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = rx.recv().await {
                let hit = line.starts_with(prefix);
                seen.push(line);
                if hit {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "no log line {prefix:?} in {seen:?}");
        seen
    }

    fn unit_reinstalled(w: &World) -> bool {
        w.opts.install.unit_path(&feat("bgpmon")).is_file()
            && w.opts.install.script_dir.join("bgpmon.sh").is_file()
    }

    #[tokio::test]
    async fn wait_up_reinstalls_units_first_then_waits_while_a_feature_is_down_and_restores_right_after_it_comes_up()
     {
        let w = world();
        up(&w.redis, "telemetry");
        let store = open_store(&w).await;
        let rec = Recorder::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut log = |l: &str| {
            let _ = tx.send(l.to_owned());
        };
        let run = restore(
            &w.opts.paths.state_file,
            Some(Duration::from_secs(60)),
            &w.opts,
            &store,
            &rec,
            &mut log,
        );
        let drive = async {
            let seen = lines_until(&mut rx, "waiting for snmp ").await;
            // Restore is waiting: the units are back and systemd reloaded, no setting changed.
            assert!(unit_reinstalled(&w), "{seen:?}");
            assert_eq!(rec.lines(), ["systemctl daemon-reload"]);
            assert_eq!(no_fallback(&w.redis, "snmp").as_deref(), Some("false"));
            assert_eq!(no_fallback(&w.redis, "telemetry").as_deref(), Some("false"));
            assert!(w.opts.paths.state_file.exists());
            // Still waiting a few polls later.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(no_fallback(&w.redis, "snmp").as_deref(), Some("false"));
            // snmp's `container start` ran.
            up(&w.redis, "snmp");
            Instant::now()
        };
        let (done, up_at) = tokio::join!(run, drive);
        let done = done.unwrap();
        assert!(
            up_at.elapsed() < Duration::from_secs(5),
            "restored {:?} after the feature came up",
            up_at.elapsed()
        );
        assert!(done.failures.is_empty(), "{:?}", done.failures);
        assert!(
            !done.notes.iter().any(|n| n.contains("deadline")),
            "{:?}",
            done.notes
        );
        assert_eq!(no_fallback(&w.redis, "snmp").as_deref(), Some("true"));
        assert_eq!(no_fallback(&w.redis, "telemetry").as_deref(), Some("true"));
        assert!(!w.opts.paths.state_file.exists());
        let trace: Vec<String> = done.actions.iter().map(ToString::to_string).collect();
        assert_eq!(
            trace[2..],
            [
                "systemctl daemon-reload",
                "set snmp no_fallback_to_local true",
                "set telemetry no_fallback_to_local true",
                "remove state",
            ]
        );
        assert!(trace[0].starts_with("reinstall ") && trace[1].starts_with("reinstall "));
    }

    #[tokio::test]
    async fn wait_up_on_a_multi_asic_switch_waits_until_every_asic_instance_is_up() {
        let w = world();
        up(&w.redis, "telemetry");
        let store = open_store(&w).await;
        // Two ASIC namespaces: snmp runs per ASIC, with no entry in the host's STATE_DB.
        let asic_servers: Vec<RedisServer> = (0..2)
            .map(|_| RedisServer::start().expect("redis-server must start"))
            .collect();
        let mut asics = Vec::new();
        for server in &asic_servers {
            let dbs = SonicDbConfig::from_paths(server.database_config_path(), None).unwrap();
            asics.push(
                RedisFeatureStore::open(&dbs, &sonic_db::Namespace::Host)
                    .await
                    .unwrap(),
            );
        }
        up(&asic_servers[0], "snmp");
        hset(
            &asic_servers[1],
            STATE_DB,
            "FEATURE|snmp",
            &[("system_state", "down")],
        );
        let rec = Recorder::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut log = |l: &str| {
            let _ = tx.send(l.to_owned());
        };
        let run = restore_on(
            &w.opts.paths.state_file,
            Some(Duration::from_secs(60)),
            &w.opts,
            &store,
            &asics,
            &rec,
            &mut log,
        );
        let drive = async {
            let seen = lines_until(&mut rx, "waiting for snmp ").await;
            assert_eq!(
                no_fallback(&w.redis, "snmp").as_deref(),
                Some("false"),
                "{seen:?}"
            );
            // Still waiting a few polls later: asic1's instance is down.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(no_fallback(&w.redis, "snmp").as_deref(), Some("false"));
            up(&asic_servers[1], "snmp");
            Instant::now()
        };
        let (done, up_at) = tokio::join!(run, drive);
        let done = done.unwrap();
        assert!(up_at.elapsed() < Duration::from_secs(5));
        assert!(done.failures.is_empty(), "{:?}", done.failures);
        assert!(
            !done.notes.iter().any(|n| n.contains("deadline")),
            "{:?}",
            done.notes
        );
        assert_eq!(no_fallback(&w.redis, "snmp").as_deref(), Some("true"));
        assert_eq!(no_fallback(&w.redis, "telemetry").as_deref(), Some("true"));
    }

    #[tokio::test]
    async fn wait_up_restores_at_the_deadline_with_a_note_naming_the_feature_that_never_came_up() {
        let w = world();
        up(&w.redis, "telemetry");
        let store = open_store(&w).await;
        let rec = Recorder::default();
        let mut lines = Vec::new();
        let started = Instant::now();
        let done = restore(
            &w.opts.paths.state_file,
            Some(Duration::from_millis(700)),
            &w.opts,
            &store,
            &rec,
            &mut |l| lines.push(l.to_owned()),
        )
        .await
        .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(700));
        assert!(done.failures.is_empty(), "{:?}", done.failures);
        assert_eq!(
            done.notes,
            ["snmp: not up (system_state) by the deadline; no_fallback_to_local restored anyway"]
        );
        assert!(
            lines.iter().any(|l| l == "still down after 700ms: snmp"),
            "{lines:?}"
        );
        // The operator's setting wins in the end, for both.
        assert_eq!(no_fallback(&w.redis, "snmp").as_deref(), Some("true"));
        assert_eq!(no_fallback(&w.redis, "telemetry").as_deref(), Some("true"));
        assert!(!w.opts.paths.state_file.exists());
    }

    #[tokio::test]
    async fn wait_up_does_not_wait_for_disabled_features_and_without_it_restore_does_not_wait() {
        let w = world();
        hset(
            &w.redis,
            CONFIG_DB,
            "FEATURE|snmp",
            &[("state", "disabled")],
        );
        up(&w.redis, "telemetry");
        let store = open_store(&w).await;
        let started = Instant::now();
        let done = restore(
            &w.opts.paths.state_file,
            Some(Duration::from_secs(60)),
            &w.opts,
            &store,
            &Recorder::default(),
            &mut |_| {},
        )
        .await
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(done.notes, ["snmp: not waited for, it is disabled"]);
        assert_eq!(no_fallback(&w.redis, "snmp").as_deref(), Some("true"));

        // Interactive use (no --wait-up): restore at once although nothing is up.
        let w = world();
        let store = open_store(&w).await;
        let started = Instant::now();
        let done = restore(
            &w.opts.paths.state_file,
            None,
            &w.opts,
            &store,
            &Recorder::default(),
            &mut |_| {},
        )
        .await
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(done.notes.is_empty(), "{:?}", done.notes);
        assert_eq!(no_fallback(&w.redis, "snmp").as_deref(), Some("true"));
        assert!(!w.opts.paths.state_file.exists());
    }

    #[tokio::test]
    async fn wait_up_retries_while_redis_is_down_and_fails_at_the_deadline_keeping_the_state_file()
    {
        // Redis comes back before the deadline: the wait goes on and restores.
        let mut w = world();
        let store = open_store(&w).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut log = |l: &str| {
            let _ = tx.send(l.to_owned());
        };
        let state_file = w.opts.paths.state_file.clone();
        let opts = w.opts.clone();
        let rec = Recorder::default();
        let run = restore(
            &state_file,
            Some(Duration::from_secs(60)),
            &opts,
            &store,
            &rec,
            &mut log,
        );
        let redis = &mut w.redis;
        let drive = async {
            lines_until(&mut rx, "waiting for snmp, telemetry ").await;
            redis.stop();
            lines_until(&mut rx, "cannot read the features (").await;
            redis.start_again().unwrap();
            seed_configs(redis);
            up(redis, "snmp");
            up(redis, "telemetry");
            lines_until(&mut rx, "the database answers again").await;
        };
        let (done, ()) = tokio::join!(run, drive);
        let done = done.unwrap();
        assert!(done.failures.is_empty(), "{:?}", done.failures);
        assert_eq!(no_fallback(&w.redis, "snmp").as_deref(), Some("true"));
        assert!(!state_file.exists());

        // Redis stays down: a clear error at the deadline, the state file kept for next time.
        let mut w = world();
        let store = open_store(&w).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut log = |l: &str| {
            let _ = tx.send(l.to_owned());
        };
        let state_file = w.opts.paths.state_file.clone();
        let opts = w.opts.clone();
        let rec = Recorder::default();
        let started = Instant::now();
        let run = restore(
            &state_file,
            Some(Duration::from_secs(2)),
            &opts,
            &store,
            &rec,
            &mut log,
        );
        let redis = &mut w.redis;
        let drive = async {
            lines_until(&mut rx, "waiting for snmp, telemetry ").await;
            redis.stop();
        };
        let (done, ()) = tokio::join!(run, drive);
        let err = done.unwrap_err().to_string();
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert!(
            err.starts_with("cannot read the features' state within --wait-up 2s: ")
                && err.ends_with(
                    "the state file is kept, run kube-reboot restore again once the database answers"
                ),
            "{err}"
        );
        assert!(state_file.exists());
        // The units were reinstalled before the wait all the same.
        assert!(unit_reinstalled(&w));
        assert_eq!(rec.lines(), ["systemctl daemon-reload"]);
    }
}
