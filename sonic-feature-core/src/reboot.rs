//! Warm, fast and cold reboot with kube-managed features (HLD "Reboot support"): the pure
//! planners of `kube-reboot prepare` (before the reboot) and `kube-reboot restore` (after boot).
//!
//! What `prepare` does, in order, and why:
//!
//! 1. `systemctl disable kubelet`, `systemctl stop kubelet`: a running kubelet redeploys any
//!    container we stop or kill. Upstream ships kubelet disabled and ctrmgrd starts it when it
//!    joins the master, so disabling only restores the image's own state; `restore` never
//!    enables it.
//! 2. Warm and fast reboot only: every kube-owned feature whose `no_fallback_to_local` is true is
//!    switched to fallback allowed, so that it starts at once from its local image after boot
//!    instead of waiting for the master (HLD: "Ensure all kube managed features are enabled to
//!    fallback to local image"). The original setting is recorded first in a carry-over state
//!    file and put back by `restore`; an operator's setting is never changed for good. A cold
//!    reboot keeps no-fallback features waiting for kubelet, as the HLD's "reboot" section says.
//!    Features installed by `config feature install` (no local image) are never switched: they
//!    have nothing to fall back to.
//! 3. Warm and fast reboot: the feature's own `prepare-warm` / `prepare-fast` hook (HLD: hooks
//!    for features unknown to the reboot script), for features installed with a generated
//!    script.
//! 4. Containers run by Kubernetes are killed (warm, fast) or stopped (cold) through
//!    `container kill|stop [--skip-updates] <f>`, which finds them by the id in STATE_DB
//!    (kube containers cannot be referred to by name).
//! 5. When the feature's last good downloaded image (STATE_DB `container_stable_version`) is
//!    newer than its local image, it is tagged as the local image and the stopped local
//!    container removed, so the local start after boot runs that version and kubelet does not
//!    restart the service when it deploys the same version (HLD: "carry over the image of later
//!    version").
//! 6. Unit and script of installed kube-only features are copied next to the state file, and
//!    the carry list names everything the next image needs: the kubelet context, the
//!    kubeconfig, the client credentials, the installed units and scripts and the state file.
//!
//! What `restore` does after boot, in order: reinstall the carried units and scripts the new
//! image lacks ([`plan_reinstall`]; features need them to start at all); with `--wait-up`, wait
//! until every feature whose setting goes back has STATE_DB `system_state` `up`, i.e. its
//! `container start` ran with the allowed fallback ([`awaited_features`], [`await_up`]; SONiC
//! starts features after `sonic.target`, delayed ones by timer, so no unit ordering can promise
//! it), or until the deadline; then put the settings back ([`plan_restore_fallback`]) and remove
//! the state file. A stale `up` from before the reboot is not a concern: the warm and fast reboot
//! scripts clear STATE_DB's `FEATURE` table before they save the database.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container::{IdResolution, resolve_id};
use crate::images::{ImageOp, LOCAL_TAG};
use crate::model::{
    AdminState, ContainerId, CurrentOwner, FeatureConfig, FeatureName, FeatureStatus, SetOwner,
    SystemState, Timestamp, Version,
};
use crate::ports::{ContainerInfo, ImageInfo};

/// Which reboot is being prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RebootKind {
    /// Warm reboot: no data-plane disruption; containers are killed.
    Warm,
    /// Fast reboot: minimal disruption; containers are killed.
    Fast,
    /// Cold reboot: containers are stopped cleanly.
    Cold,
}

impl RebootKind {
    /// Parses `warm`, `fast` or `cold` (any letter case).
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("warm") {
            Some(Self::Warm)
        } else if v.eq_ignore_ascii_case("fast") {
            Some(Self::Fast)
        } else if v.eq_ignore_ascii_case("cold") {
            Some(Self::Cold)
        } else {
            None
        }
    }

    /// The spelling on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warm => "warm",
            Self::Fast => "fast",
            Self::Cold => "cold",
        }
    }

    /// Whether kube-owned features without fallback are switched to fallback until `restore`.
    pub fn forces_fallback(self) -> bool {
        match self {
            Self::Warm | Self::Fast => true,
            Self::Cold => false,
        }
    }

    /// The action of a generated feature script run before this reboot, if any.
    pub fn hook_action(self) -> Option<&'static str> {
        match self {
            Self::Warm => Some("prepare-warm"),
            Self::Fast => Some("prepare-fast"),
            Self::Cold => None,
        }
    }
}

impl fmt::Display for RebootKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the files `prepare` carries and writes are. Defaults are upstream's paths
/// (upstream-ctrmgrd.md §5) and kubeadm's; every one is overridable so tests run in temp dirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootPaths {
    /// Kubelet configuration written by `kubeadm join` (`/var/lib/kubelet/config.yaml`).
    pub kubelet_config: PathBuf,
    /// Kubelet flags written by `kubeadm join` (`/var/lib/kubelet/kubeadm-flags.env`).
    pub kubelet_flags: PathBuf,
    /// Kubelet's client certificates (`/var/lib/kubelet/pki`).
    pub kubelet_pki: PathBuf,
    /// Kubelet's kubeconfig for the master (`/etc/kubernetes/kubelet.conf`).
    pub kubelet_kubeconfig: PathBuf,
    /// The cluster CA kubeadm stored (`/etc/kubernetes/pki`).
    pub kubernetes_pki: PathBuf,
    /// The kubeconfig written at join (`/etc/sonic/kube_admin.conf`).
    pub kubeconfig: PathBuf,
    /// The switch's client certificate (`/etc/sonic/credentials/restapiserver.crt`).
    pub client_cert: PathBuf,
    /// The key of `client_cert` (`/etc/sonic/credentials/restapiserver.key`).
    pub client_key: PathBuf,
    /// The CNI directory holding the dummy flannel conflist (`/etc/cni/net.d`).
    pub cni_dir: PathBuf,
    /// The carry-over state file (`/etc/sonic/kube-reboot/state.json`); copies of installed
    /// units and scripts go to `units/` next to it. Under `/etc/sonic` because that directory
    /// moves to a new image with the configuration.
    pub state_file: PathBuf,
}

impl Default for RebootPaths {
    fn default() -> Self {
        Self {
            kubelet_config: "/var/lib/kubelet/config.yaml".into(),
            kubelet_flags: "/var/lib/kubelet/kubeadm-flags.env".into(),
            kubelet_pki: "/var/lib/kubelet/pki".into(),
            kubelet_kubeconfig: "/etc/kubernetes/kubelet.conf".into(),
            kubernetes_pki: "/etc/kubernetes/pki".into(),
            kubeconfig: "/etc/sonic/kube_admin.conf".into(),
            client_cert: "/etc/sonic/credentials/restapiserver.crt".into(),
            client_key: "/etc/sonic/credentials/restapiserver.key".into(),
            cni_dir: "/etc/cni/net.d".into(),
            state_file: "/etc/sonic/kube-reboot/state.json".into(),
        }
    }
}

impl RebootPaths {
    /// The default paths re-rooted under `root` (`/etc/sonic/x` becomes `<root>/etc/sonic/x`).
    pub fn under(root: &Path) -> Self {
        let d = Self::default();
        let re = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        Self {
            kubelet_config: re(&d.kubelet_config),
            kubelet_flags: re(&d.kubelet_flags),
            kubelet_pki: re(&d.kubelet_pki),
            kubelet_kubeconfig: re(&d.kubelet_kubeconfig),
            kubernetes_pki: re(&d.kubernetes_pki),
            kubeconfig: re(&d.kubeconfig),
            client_cert: re(&d.client_cert),
            client_key: re(&d.client_key),
            cni_dir: re(&d.cni_dir),
            state_file: re(&d.state_file),
        }
    }

    /// The directory of the saved unit and script copies (`<dir of state_file>/units`).
    pub fn saved_units_dir(&self) -> PathBuf {
        self.state_file
            .parent()
            .unwrap_or(Path::new("/"))
            .join("units")
    }

    /// The kube context to carry, in carry-list order, with what each is. The caller reports
    /// which exist ([`HostFacts::present`]); only those are carried.
    pub fn kube_context(&self) -> Vec<(&Path, &'static str)> {
        vec![
            (self.kubelet_config.as_path(), "kubelet config"),
            (self.kubelet_flags.as_path(), "kubelet flags"),
            (self.kubelet_pki.as_path(), "kubelet certificates"),
            (self.kubelet_kubeconfig.as_path(), "kubelet kubeconfig"),
            (self.kubernetes_pki.as_path(), "cluster ca"),
            (self.kubeconfig.as_path(), "kubeconfig"),
            (self.client_cert.as_path(), "client certificate"),
            (self.client_key.as_path(), "client key"),
            (self.cni_dir.as_path(), "cni config"),
        ]
    }
}

/// A kube-only feature installed by `config feature install`: unit and script that carry the
/// generated-file marker.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstalledUnit {
    /// The feature.
    pub feature: FeatureName,
    /// `<unit_dir>/<f>.service`.
    pub unit: PathBuf,
    /// `<script_dir>/<f>.sh`.
    pub script: PathBuf,
}

/// Docker facts about one feature, read before planning.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeatureContainers {
    /// The container named by STATE_DB `container_id` (the kube container), if it exists.
    pub kube: Option<ContainerInfo>,
    /// The local container named after the feature, if it exists.
    pub local: Option<ContainerInfo>,
}

/// Facts about the host that `prepare` reads besides the databases.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFacts {
    /// Installed kube-only features.
    pub installed: Vec<InstalledUnit>,
    /// Every local image reference.
    pub images: Vec<ImageInfo>,
    /// Docker facts per kube-owned feature.
    pub containers: BTreeMap<FeatureName, FeatureContainers>,
    /// Which of [`RebootPaths::kube_context`] exist.
    pub present: BTreeSet<PathBuf>,
    /// The state file of an earlier `prepare` that was not restored (a reboot that did not
    /// happen). Its recorded settings win: the database then holds what we wrote, not the
    /// operator's setting.
    pub previous: Option<CarryState>,
}

/// One feature whose fallback `prepare` allowed until `restore`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SavedFallback {
    /// The feature.
    pub feature: FeatureName,
    /// The operator's `no_fallback_to_local` before `prepare`.
    pub no_fallback_to_local: bool,
}

/// A unit and script copied next to the state file, and where they belong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CarriedUnit {
    /// The feature.
    pub feature: FeatureName,
    /// Where the unit belongs.
    pub unit: PathBuf,
    /// Where the script belongs.
    pub script: PathBuf,
    /// The copy of the unit.
    pub saved_unit: PathBuf,
    /// The copy of the script.
    pub saved_script: PathBuf,
}

/// The carry-over state file: what `restore` puts back after boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarryState {
    /// Format version of the file.
    pub version: u32,
    /// The reboot that was prepared.
    pub kind: RebootKind,
    /// Features whose fallback was allowed, with their original setting.
    pub fallback: Vec<SavedFallback>,
    /// Copied units and scripts.
    pub units: Vec<CarriedUnit>,
}

/// Why a state file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarryStateError {
    /// Not JSON of the expected shape.
    #[error("invalid reboot state: {reason}")]
    Text {
        /// The parser's message.
        reason: String,
    },
    /// A format this version does not know.
    #[error("unsupported reboot state version {found}: expected {expected}")]
    Version {
        /// The version in the file.
        found: u32,
        /// The version this code writes.
        expected: u32,
    },
}

impl CarryState {
    /// The format version this code writes and reads.
    pub const VERSION: u32 = 1;

    /// The file's text (pretty JSON, one trailing newline).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses the file's text.
    pub fn from_json(text: &str) -> Result<Self, CarryStateError> {
        let state: Self = serde_json::from_str(text).map_err(|e| CarryStateError::Text {
            reason: e.to_string(),
        })?;
        if state.version != Self::VERSION {
            return Err(CarryStateError::Version {
                found: state.version,
                expected: Self::VERSION,
            });
        }
        Ok(state)
    }
}

impl fmt::Display for CarryState {
    /// One line for traces: `fallback [snmp] units [bgpmon]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fb: Vec<&str> = self.fallback.iter().map(|s| s.feature.as_str()).collect();
        let units: Vec<&str> = self.units.iter().map(|u| u.feature.as_str()).collect();
        write!(
            f,
            "{} fallback [{}] units [{}]",
            self.kind,
            fb.join(", "),
            units.join(", ")
        )
    }
}

/// One step of `prepare`, carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebootAction {
    /// `systemctl disable kubelet`.
    DisableKubelet,
    /// `systemctl stop kubelet`.
    StopKubelet,
    /// Write the state file (before any setting changes, so a failure changes nothing).
    SaveState(CarryState),
    /// CONFIG_DB `FEATURE|<f>` `no_fallback_to_local` = `false` until `restore`.
    AllowFallback(FeatureName),
    /// `<script> prepare-warm|prepare-fast` of an installed feature.
    RunHook {
        /// The feature.
        feature: FeatureName,
        /// Its generated script.
        script: PathBuf,
        /// The script action.
        action: &'static str,
    },
    /// `container kill [--skip-updates] <f>`.
    Kill {
        /// The feature.
        feature: FeatureName,
        /// Pass `--skip-updates`.
        skip_updates: bool,
    },
    /// `container stop [--skip-updates] <f>`.
    Stop {
        /// The feature.
        feature: FeatureName,
        /// Pass `--skip-updates`.
        skip_updates: bool,
    },
    /// An image operation (tag the last good image as local, remove the local container).
    Image(FeatureName, ImageOp),
    /// Copy a file (a unit or script into the state directory).
    Copy {
        /// Source.
        from: PathBuf,
        /// Destination.
        to: PathBuf,
    },
}

fn skip_flag(skip: bool) -> &'static str {
    if skip { " --skip-updates" } else { "" }
}

impl fmt::Display for RebootAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DisableKubelet => f.write_str("systemctl disable kubelet"),
            Self::StopKubelet => f.write_str("systemctl stop kubelet"),
            Self::SaveState(s) => write!(f, "save state {s}"),
            Self::AllowFallback(feat) => {
                write!(
                    f,
                    "allow fallback {feat} (no_fallback_to_local until restore)"
                )
            }
            Self::RunHook { script, action, .. } => write!(f, "run {} {action}", script.display()),
            Self::Kill {
                feature,
                skip_updates,
            } => write!(f, "container kill{} {feature}", skip_flag(*skip_updates)),
            Self::Stop {
                feature,
                skip_updates,
            } => write!(f, "container stop{} {feature}", skip_flag(*skip_updates)),
            Self::Image(_, op) => write!(f, "{op}"),
            Self::Copy { from, to } => write!(f, "copy {} {}", from.display(), to.display()),
        }
    }
}

/// The plan of `prepare`: actions in order, the carry list, and notes on what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootPlan {
    /// Steps, in order.
    pub actions: Vec<RebootAction>,
    /// Files and directories the next image needs, in order, without duplicates.
    pub carry: Vec<PathBuf>,
    /// Why something was not done (`skip kill snmp: ...`).
    pub notes: Vec<String>,
}

impl fmt::Display for RebootPlan {
    /// The trace: actions, then `carry <path>` lines, then `note: ...` lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines: Vec<String> = self.actions.iter().map(ToString::to_string).collect();
        lines.extend(self.carry.iter().map(|p| format!("carry {}", p.display())));
        lines.extend(self.notes.iter().map(|n| format!("note: {n}")));
        f.write_str(&lines.join("\n"))
    }
}

fn is_kube_owned(config: &FeatureConfig) -> bool {
    match config.set_owner {
        SetOwner::Kube => true,
        SetOwner::Local => false,
    }
}

/// Plans `kube-reboot prepare <kind>` from CONFIG_DB and STATE_DB `FEATURE` entries and the
/// host facts. Pure: the same facts give the same plan.
pub fn plan_prepare_reboot(
    kind: RebootKind,
    skip_updates: bool,
    features: &[(FeatureName, FeatureConfig, FeatureStatus)],
    host: &HostFacts,
    paths: &RebootPaths,
) -> RebootPlan {
    let mut actions = vec![RebootAction::DisableKubelet, RebootAction::StopKubelet];
    let mut notes = Vec::new();
    let installed: BTreeMap<&FeatureName, &InstalledUnit> =
        host.installed.iter().map(|u| (&u.feature, u)).collect();

    // Settings recorded by an earlier, unrestored prepare are the operator's; keep them.
    let mut saved: BTreeMap<FeatureName, SavedFallback> = host
        .previous
        .iter()
        .flat_map(|p| p.fallback.iter())
        .map(|s| (s.feature.clone(), s.clone()))
        .collect();
    let mut flips = Vec::new();
    if kind.forces_fallback() {
        for (name, config, _) in features {
            if !is_kube_owned(config) || config.fallback {
                continue;
            }
            if installed.contains_key(name) {
                notes.push(format!(
                    "keep no fallback for {name}: installed kube-only feature without local image"
                ));
                continue;
            }
            saved.entry(name.clone()).or_insert_with(|| SavedFallback {
                feature: name.clone(),
                no_fallback_to_local: true,
            });
            flips.push(RebootAction::AllowFallback(name.clone()));
        }
    }

    let units_dir = paths.saved_units_dir();
    let carried: Vec<CarriedUnit> = host
        .installed
        .iter()
        .map(|u| CarriedUnit {
            feature: u.feature.clone(),
            unit: u.unit.clone(),
            script: u.script.clone(),
            saved_unit: units_dir.join(format!("{}.service", u.feature)),
            saved_script: units_dir.join(format!("{}.sh", u.feature)),
        })
        .collect();
    actions.push(RebootAction::SaveState(CarryState {
        version: CarryState::VERSION,
        kind,
        fallback: saved.into_values().collect(),
        units: carried.clone(),
    }));
    actions.extend(flips);

    if let Some(action) = kind.hook_action() {
        for u in &host.installed {
            actions.push(RebootAction::RunHook {
                feature: u.feature.clone(),
                script: u.script.clone(),
                action,
            });
        }
    }

    let mut image_ops = Vec::new();
    for (name, config, status) in features {
        if !is_kube_owned(config) {
            continue;
        }
        if runs_kube_container(name, status, &mut notes) {
            actions.push(match kind {
                RebootKind::Warm | RebootKind::Fast => RebootAction::Kill {
                    feature: name.clone(),
                    skip_updates,
                },
                RebootKind::Cold => RebootAction::Stop {
                    feature: name.clone(),
                    skip_updates,
                },
            });
        }
        let containers = host.containers.get(name).cloned().unwrap_or_default();
        plan_tag_local(
            name,
            status,
            &containers,
            &host.images,
            &mut image_ops,
            &mut notes,
        );
    }
    actions.extend(image_ops);

    let mut carry: Vec<PathBuf> = Vec::new();
    for (path, what) in paths.kube_context() {
        if host.present.contains(path) {
            carry.push(path.to_path_buf());
        } else {
            notes.push(format!("not carried: {what} {} is missing", path.display()));
        }
    }
    for u in &carried {
        actions.push(RebootAction::Copy {
            from: u.unit.clone(),
            to: u.saved_unit.clone(),
        });
        actions.push(RebootAction::Copy {
            from: u.script.clone(),
            to: u.saved_script.clone(),
        });
        carry.push(u.unit.clone());
        carry.push(u.script.clone());
    }
    carry.push(paths.state_file.clone());
    if !carried.is_empty() {
        carry.push(units_dir);
    }
    let mut seen = BTreeSet::new();
    carry.retain(|p| seen.insert(p.clone()));
    RebootPlan {
        actions,
        carry,
        notes,
    }
}

/// Whether a kube container runs for `name` (by STATE_DB), noting why not.
fn runs_kube_container(
    name: &FeatureName,
    status: &FeatureStatus,
    notes: &mut Vec<String>,
) -> bool {
    match status.current_owner {
        CurrentOwner::Kube => {}
        CurrentOwner::Local => {
            // The local container is the reboot script's, like every local container.
            notes.push(format!("skip {name}: runs locally"));
            return false;
        }
        CurrentOwner::None => {
            notes.push(format!("skip {name}: no container runs"));
            return false;
        }
    }
    match resolve_id(name, status) {
        IdResolution::Id(_) => true,
        IdResolution::NoContainer => {
            notes.push(format!("skip {name}: no container id in state db"));
            false
        }
        IdResolution::Invalid(v) => {
            notes.push(format!(
                "skip {name}: invalid container id {v:?} in state db"
            ));
            false
        }
    }
}

/// The version of the image a local start runs: the largest version tag sharing the id of
/// `<base>:latest`.
fn local_version(images: &[ImageInfo], local_id: &str, base: &str) -> Option<Version> {
    images
        .iter()
        .filter(|r| r.id == local_id && !r.is_downloaded() && r.repository == base)
        .filter_map(|r| Version::parse(&r.tag).ok())
        .max()
}

fn plan_tag_local(
    name: &FeatureName,
    status: &FeatureStatus,
    containers: &FeatureContainers,
    images: &[ImageInfo],
    ops: &mut Vec<RebootAction>,
    notes: &mut Vec<String>,
) {
    let Some(stable) = &status.container_stable_version else {
        return;
    };
    // The feature's repository is the one its kube container's image came from (without
    // registry); the image list alone cannot tell features apart, their tags are all the build
    // version.
    let Some(kube) = &containers.kube else {
        return;
    };
    let Some(base) = images
        .iter()
        .find(|r| r.id == kube.image_id && r.is_downloaded())
        .map(|r| r.base_name().to_owned())
    else {
        notes.push(format!(
            "keep local image of {name}: image {} of its kube container is not a downloaded image",
            kube.image_id
        ));
        return;
    };
    let Some(local) = images
        .iter()
        .find(|r| !r.is_downloaded() && r.repository == base && r.tag == LOCAL_TAG)
    else {
        notes.push(format!(
            "keep local image of {name}: no local image {base}:{LOCAL_TAG}"
        ));
        return;
    };
    let good = images
        .iter()
        .find(|r| r.is_downloaded() && r.base_name() == base && r.tag == stable.as_str());
    if good.is_some_and(|g| g.id == local.id) {
        // Already tagged as local (image management marked it good).
        return;
    }
    let Some(local_ver) = local_version(images, &local.id, &base) else {
        notes.push(format!(
            "keep local image of {name}: version of {base}:{LOCAL_TAG} is unknown"
        ));
        return;
    };
    if *stable <= local_ver {
        return;
    }
    let Some(good) = good else {
        notes.push(format!(
            "keep local image of {name}: last good version {stable} is not a downloaded image"
        ));
        return;
    };
    if let Some(c) = containers.local.as_ref().filter(|c| c.running) {
        notes.push(format!(
            "keep local image of {name}: local container {} is running",
            c.name
        ));
        return;
    }
    ops.push(RebootAction::Image(
        name.clone(),
        ImageOp::Tag {
            image: good.id.clone(),
            repo: base.clone(),
            tag: LOCAL_TAG.to_owned(),
        },
    ));
    if containers.local.is_some() {
        ops.push(RebootAction::Image(
            name.clone(),
            ImageOp::RemoveContainer(ContainerId::of_feature(name)),
        ));
    }
}

/// One step of `restore`, carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreAction {
    /// CONFIG_DB `FEATURE|<f>` `no_fallback_to_local` back to the saved value.
    RestoreFallback(SavedFallback),
    /// Copy a saved unit or script back to where it belongs (it is missing there).
    Reinstall {
        /// The saved copy.
        from: PathBuf,
        /// Where it belongs.
        to: PathBuf,
    },
    /// `systemctl daemon-reload` (units were reinstalled).
    DaemonReload,
    /// Remove the state file and the saved copies: the reboot is complete.
    RemoveState,
}

impl fmt::Display for RestoreAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RestoreFallback(s) => write!(
                f,
                "set {} no_fallback_to_local {}",
                s.feature, s.no_fallback_to_local
            ),
            Self::Reinstall { from, to } => {
                write!(f, "reinstall {} {}", from.display(), to.display())
            }
            Self::DaemonReload => f.write_str("systemctl daemon-reload"),
            Self::RemoveState => f.write_str("remove state"),
        }
    }
}

/// Plans `kube-reboot restore` in one go (no waiting): the units first ([`plan_reinstall`]),
/// then the fallback settings ([`plan_restore_fallback`]), then the removal of the state file.
/// `restore --wait-up` carries out the same parts with [`await_up`] between them.
///
/// Kubelet is never enabled or started here: ctrmgrd starts it when it joins the master.
pub fn plan_restore(
    state: &CarryState,
    current: &BTreeMap<FeatureName, Option<FeatureConfig>>,
    present: &BTreeSet<PathBuf>,
) -> (Vec<RestoreAction>, Vec<String>) {
    let (mut actions, mut notes) = plan_reinstall(state, present);
    let (fallback, fallback_notes) = plan_restore_fallback(state, current);
    actions.extend(fallback);
    notes.extend(fallback_notes);
    actions.push(RestoreAction::RemoveState);
    (actions, notes)
}

/// The first part of `restore`, carried out at once after boot: carried units and scripts that
/// the new image lacks go back (and `systemctl daemon-reload` follows), because an installed
/// feature cannot start at all without them. `present` says which unit paths exist now.
pub fn plan_reinstall(
    state: &CarryState,
    present: &BTreeSet<PathBuf>,
) -> (Vec<RestoreAction>, Vec<String>) {
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    for u in &state.units {
        for (saved, target) in [(&u.saved_unit, &u.unit), (&u.saved_script, &u.script)] {
            if present.contains(target) {
                continue;
            }
            if present.contains(saved) {
                actions.push(RestoreAction::Reinstall {
                    from: saved.clone(),
                    to: target.clone(),
                });
            } else {
                notes.push(format!(
                    "{}: {} is missing and no copy was saved",
                    u.feature,
                    target.display()
                ));
            }
        }
    }
    if !actions.is_empty() {
        actions.push(RestoreAction::DaemonReload);
    }
    (actions, notes)
}

/// The second part of `restore`: the saved `no_fallback_to_local` settings that still need
/// putting back, from the current CONFIG_DB configuration of the saved features (`None`: the
/// feature is gone). A setting the operator changed meanwhile is left alone.
pub fn plan_restore_fallback(
    state: &CarryState,
    current: &BTreeMap<FeatureName, Option<FeatureConfig>>,
) -> (Vec<RestoreAction>, Vec<String>) {
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    for s in &state.fallback {
        match current.get(&s.feature) {
            // `fallback` is the negation of `no_fallback_to_local`.
            Some(Some(cfg)) if cfg.fallback != s.no_fallback_to_local => {
                notes.push(format!(
                    "{}: no_fallback_to_local already {}",
                    s.feature, s.no_fallback_to_local
                ));
            }
            Some(Some(_)) => actions.push(RestoreAction::RestoreFallback(s.clone())),
            Some(None) | None => notes.push(format!("{}: feature no longer configured", s.feature)),
        }
    }
    (actions, notes)
}

/// The features `restore --wait-up` waits for before putting their setting back: those of the
/// `RestoreFallback` steps (each must run its `container start` while the fallback is still
/// allowed), except the administratively disabled ones, which no one starts. An unrendered
/// `state` template counts as enabled: featured renders it and may start the feature.
pub fn awaited_features(
    fallback: &[RestoreAction],
    current: &BTreeMap<FeatureName, Option<FeatureConfig>>,
) -> (Vec<FeatureName>, Vec<String>) {
    let mut awaited = Vec::new();
    let mut notes = Vec::new();
    for action in fallback {
        let s = match action {
            RestoreAction::RestoreFallback(s) => s,
            RestoreAction::Reinstall { .. }
            | RestoreAction::DaemonReload
            | RestoreAction::RemoveState => continue,
        };
        let state = current
            .get(&s.feature)
            .and_then(Option::as_ref)
            .and_then(|c| c.state.as_ref());
        match state {
            Some(AdminState::Disabled | AdminState::AlwaysDisabled) => {
                notes.push(format!("{}: not waited for, it is disabled", s.feature))
            }
            Some(AdminState::Enabled | AdminState::AlwaysEnabled | AdminState::Other(_)) | None => {
                awaited.push(s.feature.clone())
            }
        }
    }
    (awaited, notes)
}

/// What `restore --wait-up` does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpWait {
    /// Every awaited feature is up (or none is awaited): restore now.
    Restore,
    /// These are still down and the deadline has not passed: look again later.
    Wait(Vec<FeatureName>),
    /// The deadline passed with these still down: restore anyway (the operator's setting wins
    /// in the end), with a note naming each.
    Deadline {
        /// The features that did not come up.
        down: Vec<FeatureName>,
        /// One note per feature.
        notes: Vec<String>,
    },
}

/// The `system_state` of a feature that may run on the host and in ASIC namespaces (one
/// STATE_DB `FEATURE|<f>` entry per place): the places that have an entry count; `None` when
/// none has, `Up` when all of them are up, else `Down` (an instance still to start).
pub fn system_state_everywhere<'a>(
    statuses: impl IntoIterator<Item = &'a FeatureStatus>,
) -> Option<SystemState> {
    let mut seen = None;
    for state in statuses.into_iter().filter_map(|s| s.system_state) {
        if state != SystemState::Up {
            return Some(state);
        }
        seen = Some(state);
    }
    seen
}

/// Decides whether `restore --wait-up` may restore the fallback settings now: a feature is up
/// once STATE_DB `system_state` is `up` (its `container start` ran; a missing status is down).
/// `now` and `deadline` are the caller's monotonic clock.
pub fn await_up(
    awaited: &[FeatureName],
    statuses: &BTreeMap<FeatureName, FeatureStatus>,
    now: Timestamp,
    deadline: Timestamp,
) -> UpWait {
    let down: Vec<FeatureName> = awaited
        .iter()
        .filter(|f| statuses.get(*f).and_then(|s| s.system_state) != Some(SystemState::Up))
        .cloned()
        .collect();
    if down.is_empty() {
        UpWait::Restore
    } else if now < deadline {
        UpWait::Wait(down)
    } else {
        let notes = down
            .iter()
            .map(|f| {
                format!(
                    "{f}: not up (system_state) by the deadline; no_fallback_to_local restored anyway"
                )
            })
            .collect();
        UpWait::Deadline { down, notes }
    }
}
