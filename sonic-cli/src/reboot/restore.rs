//! `kube-reboot restore`, after boot: puts back the `no_fallback_to_local` settings `prepare`
//! changed, reinstalls carried units and scripts that the new image lacks (then
//! `systemctl daemon-reload`), and removes the state file once everything succeeded. It never
//! enables or starts kubelet: ctrmgrd starts it when it joins the master.
//!
//! Run it once the features have started (their `container start` needs the fallback that
//! `prepare` allowed); a missing state file means there is nothing to restore.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sonic_db::schema::feature_config;
use sonic_db::{Fields, RedisFeatureStore};
use sonic_feature_core::model::FeatureName;
use sonic_feature_core::ports::FeatureStore;
use sonic_feature_core::reboot::{CarryState, RestoreAction, plan_restore};

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
    /// Why something was not restored.
    pub notes: Vec<String>,
    /// Steps that failed (the state file is then kept for another try).
    pub failures: Vec<String>,
}

/// Restores from `state_file`.
pub async fn restore<R: CommandRunner>(
    state_file: &Path,
    opts: &RebootOptions,
    store: &RedisFeatureStore,
    runner: &R,
    log: &mut dyn FnMut(&str),
) -> Result<Restored, RebootError> {
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
    let mut current = BTreeMap::new();
    for s in &state.fallback {
        current.insert(s.feature.clone(), store.feature_config(&s.feature).await?);
    }
    let present: BTreeSet<PathBuf> = state
        .units
        .iter()
        .flat_map(|u| [&u.unit, &u.script, &u.saved_unit, &u.saved_script])
        .filter(|p| p.symlink_metadata().is_ok())
        .cloned()
        .collect();
    let (actions, notes) = plan_restore(&state, &current, &present);
    for n in &notes {
        log(&format!("note: {n}"));
    }
    let mut failures = Vec::new();
    for action in &actions {
        if matches!(action, RestoreAction::RemoveState) && !failures.is_empty() {
            log(&format!(
                "keeping {} for another try after the failures",
                state_file.display()
            ));
            continue;
        }
        log(&action.to_string());
        if let Err(e) = step(action, &state, state_file, opts, store, runner).await {
            log(&format!("failed: {e}"));
            failures.push(e.to_string());
        }
    }
    Ok(Restored {
        actions,
        notes,
        failures,
    })
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
