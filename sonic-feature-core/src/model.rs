//! Domain types of Kubernetes-managed SONiC features, parsed and validated once at the edge.
//!
//! Adapters turn database strings, JSON text and command-line arguments into these types with the
//! `parse*` functions below; everything after that point is typed. The functions here parse
//! *values*; which database field holds which value is known only to `sonic-db` (`schema.rs`), so
//! an adapter wraps a [`ModelError`] with the database, key and field it read.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a value could not be parsed into a model type.
///
/// Messages are lowercase and name the offending value; the caller adds where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A feature name that is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid feature name {value:?}: {reason}")]
    FeatureName {
        /// The rejected text.
        value: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A `set_owner` value other than `local`, `kube` or empty.
    #[error("invalid owner {value:?}: expected local or kube")]
    SetOwner {
        /// The rejected text.
        value: String,
    },
    /// A `current_owner` value other than `none`, `local`, `kube` or empty.
    #[error("invalid current owner {value:?}: expected none, local or kube")]
    CurrentOwner {
        /// The rejected text.
        value: String,
    },
    /// A `remote_state` value outside `none/pending/ready/running/stopped` (or empty).
    #[error("invalid remote state {value:?}: expected none, pending, ready, running or stopped")]
    RemoteState {
        /// The rejected text.
        value: String,
    },
    /// A `system_state` value other than `up` or `down`.
    #[error("invalid system state {value:?}: expected up or down")]
    SystemState {
        /// The rejected text.
        value: String,
    },
    /// A boolean that is not `true` or `false` (in any letter case).
    #[error("invalid boolean {value:?}: expected true or false")]
    Bool {
        /// The rejected text.
        value: String,
    },
    /// A version that is not dotted unsigned numbers.
    #[error("invalid version {value:?}: expected dotted unsigned numbers such as 20201230.80")]
    Version {
        /// The rejected text.
        value: String,
    },
    /// A container name or id with characters Docker does not allow.
    #[error("invalid container id {value:?}: {reason}")]
    ContainerId {
        /// The rejected text.
        value: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A Kubernetes label key that breaks the label syntax.
    #[error("invalid label key {value:?}: {reason}")]
    LabelKey {
        /// The rejected text.
        value: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A Kubernetes label value that breaks the label syntax.
    #[error("invalid label value {value:?}: {reason}")]
    LabelValue {
        /// The rejected text.
        value: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A TCP port that is not an integer in 1..=65535.
    #[error("invalid port {value:?}: expected an integer from 1 to 65535")]
    Port {
        /// The rejected text.
        value: String,
    },
    /// A duration that is not `<N>` or `<N>` followed by one of `s`, `m`, `h`, `d`.
    #[error("invalid duration {value:?}: {reason}")]
    Duration {
        /// The rejected text.
        value: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// `remote_ctr.config.json` is not a JSON object.
    #[error("invalid remote container config: {reason}")]
    RemoteCtrConfigText {
        /// The JSON parser's message.
        reason: String,
    },
    /// A key of `remote_ctr.config.json` has a value of the wrong type or range.
    #[error("invalid remote container config key {key:?}: {reason}")]
    RemoteCtrConfigKey {
        /// The JSON key.
        key: String,
        /// What is expected there.
        reason: &'static str,
    },
}

fn is_label_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// Name of a feature (`FEATURE|<name>`), valid in a systemd unit name and as the prefix of a
/// Kubernetes label key (`<name>_enabled`).
///
/// 1..=32 characters, `[A-Za-z0-9]` first and last, `[A-Za-z0-9_.-]` inside.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FeatureName(String);

impl FeatureName {
    /// Longest accepted name (the YANG model's `length 1..32`).
    pub const MAX_LEN: usize = 32;

    /// Validates `value` as a feature name.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let err = |reason| ModelError::FeatureName {
            value: value.to_owned(),
            reason,
        };
        if value.is_empty() {
            return Err(err("must not be empty"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(err("must be at most 32 characters"));
        }
        if !value.chars().all(is_label_name_char) {
            return Err(err("only letters, digits, '_', '.' and '-' are allowed"));
        }
        let alnum_ends = value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && value
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        if !alnum_ends {
            return Err(err("must start and end with a letter or digit"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `database`, which the manager never manages (upstream
    /// `DISABLED_FEATURE_SET`).
    pub fn is_database(&self) -> bool {
        self.0 == "database"
    }
}

impl fmt::Display for FeatureName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for FeatureName {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for FeatureName {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<FeatureName> for String {
    fn from(f: FeatureName) -> String {
        f.0
    }
}

/// Parses `true` / `false` in any letter case; anything else is an error.
///
/// Used for every boolean field (`no_fallback_to_local`, `insecure`, `disable`, the image
/// management switches), so that `"False"` written by the CLI means false everywhere.
pub fn parse_bool(value: &str) -> Result<bool, ModelError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ModelError::Bool {
            value: value.to_owned(),
        })
    }
}

/// Parses a duration written as `<N>` (seconds) or `<N>` with a suffix `s`, `m`, `h` or `d`.
pub fn parse_duration(value: &str) -> Result<Duration, ModelError> {
    let err = |reason| ModelError::Duration {
        value: value.to_owned(),
        reason,
    };
    let text = value.trim();
    let (digits, unit) = match text.char_indices().next_back() {
        None => return Err(err("must not be empty")),
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
        Some(_) => (text, 's'),
    };
    let factor: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(err("unit must be one of s, m, h, d")),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(err("expected an unsigned number followed by s, m, h or d"));
    }
    let n: u64 = digits.parse().map_err(|_| err("number is too large"))?;
    n.checked_mul(factor)
        .map(Duration::from_secs)
        .ok_or_else(|| err("number is too large"))
}

/// Configured owner of a feature (CONFIG_DB `FEATURE|<f>.set_owner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SetOwner {
    /// Run the image shipped with SONiC (the default, also for an absent or empty field).
    #[default]
    Local,
    /// Let Kubernetes deploy the feature.
    Kube,
}

impl SetOwner {
    /// Parses `local` / `kube` in any letter case; the empty string means `local`.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let v = value.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("local") {
            Ok(Self::Local)
        } else if v.eq_ignore_ascii_case("kube") {
            Ok(Self::Kube)
        } else {
            Err(ModelError::SetOwner {
                value: value.to_owned(),
            })
        }
    }

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Kube => "kube",
        }
    }
}

impl fmt::Display for SetOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who runs the feature now (STATE_DB `FEATURE|<f>.current_owner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum CurrentOwner {
    /// Not running (also an absent or empty field).
    #[default]
    None,
    /// The local container named after the feature runs.
    Local,
    /// A container deployed by Kubernetes runs.
    Kube,
}

impl CurrentOwner {
    /// Parses `none` / `local` / `kube` in any letter case; the empty string means `none`.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let v = value.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("none") {
            Ok(Self::None)
        } else if v.eq_ignore_ascii_case("local") {
            Ok(Self::Local)
        } else if v.eq_ignore_ascii_case("kube") {
            Ok(Self::Kube)
        } else {
            Err(ModelError::CurrentOwner {
                value: value.to_owned(),
            })
        }
    }

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Local => "local",
            Self::Kube => "kube",
        }
    }
}

impl fmt::Display for CurrentOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hand-shake state of a Kubernetes deployment (STATE_DB `FEATURE|<f>.remote_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RemoteState {
    /// No deployment in progress (also an absent or empty field).
    #[default]
    None,
    /// A pod started and asks to take over.
    Pending,
    /// The host allowed the pod to proceed.
    Ready,
    /// The pod's application runs.
    Running,
    /// The pod was stopped by `container stop`.
    Stopped,
}

impl RemoteState {
    /// Parses the five states in any letter case; the empty string means `none`.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let v = value.trim().to_ascii_lowercase();
        match v.as_str() {
            "" | "none" => Ok(Self::None),
            "pending" => Ok(Self::Pending),
            "ready" => Ok(Self::Ready),
            "running" => Ok(Self::Running),
            "stopped" => Ok(Self::Stopped),
            _ => Err(ModelError::RemoteState {
                value: value.to_owned(),
            }),
        }
    }

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for RemoteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Systemd-level state of a feature (STATE_DB `FEATURE|<f>.system_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SystemState {
    /// `container start` ran last.
    Up,
    /// `container stop` ran last.
    Down,
}

impl SystemState {
    /// Parses `up` / `down` in any letter case.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("up") {
            Ok(Self::Up)
        } else if v.eq_ignore_ascii_case("down") {
            Ok(Self::Down)
        } else {
            Err(ModelError::SystemState {
                value: value.to_owned(),
            })
        }
    }

    /// Parses an optional field: absent or empty means "not managed" (`None`).
    pub fn parse_field(value: Option<&str>) -> Result<Option<Self>, ModelError> {
        match value.map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => Self::parse(v).map(Some),
        }
    }

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

impl fmt::Display for SystemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An image version: dotted unsigned numbers (`20201230.80`, `1.2.3`).
///
/// Ordered numerically part by part, then by length (`1.2 < 1.2.0 < 1.10`); the text as written
/// breaks the remaining ties (`1.02` vs `1.2`) so that `Ord` agrees with `Eq`. The original text
/// is kept because it is also the image tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version {
    // Field order matters: derived `Ord` compares `parts` first.
    parts: Vec<u64>,
    text: String,
}

impl Version {
    /// Parses dotted unsigned numbers.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let err = || ModelError::Version {
            value: value.to_owned(),
        };
        let text = value.trim();
        if text.is_empty() {
            return Err(err());
        }
        let parts = text
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                    Err(err())
                } else {
                    p.parse::<u64>().map_err(|_| err())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            parts,
            text: text.to_owned(),
        })
    }

    /// Parses an optional field: absent or empty means no version.
    pub fn parse_field(value: Option<&str>) -> Result<Option<Self>, ModelError> {
        match value.map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => Self::parse(v).map(Some),
        }
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The numeric parts.
    pub fn parts(&self) -> &[u64] {
        &self.parts
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Version {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Version {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        v.text
    }
}

/// A Docker container name or id (what `docker start/stop/kill/wait` accept).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

impl ContainerId {
    /// Validates a name or id: `[A-Za-z0-9]` first, then `[A-Za-z0-9_.-]`, at most 255 bytes.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let err = |reason| ModelError::ContainerId {
            value: value.to_owned(),
            reason,
        };
        if value.is_empty() {
            return Err(err("must not be empty"));
        }
        if value.len() > 255 {
            return Err(err("must be at most 255 characters"));
        }
        if !value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            return Err(err("must start with a letter or digit"));
        }
        if !value.chars().all(is_label_name_char) {
            return Err(err("only letters, digits, '_', '.' and '-' are allowed"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The id of the local container, which is named after its feature.
    pub fn of_feature(f: &FeatureName) -> Self {
        // A valid feature name is always a valid container name.
        Self(f.as_str().to_owned())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ContainerId {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ContainerId {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ContainerId> for String {
    fn from(c: ContainerId) -> String {
        c.0
    }
}

/// Value of `FEATURE|<f>.state` and `.auto_restart`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AdminState {
    /// `enabled`.
    Enabled,
    /// `disabled`.
    Disabled,
    /// `always_enabled`.
    AlwaysEnabled,
    /// `always_disabled`.
    AlwaysDisabled,
    /// Anything else, kept verbatim (an unrendered Jinja2 template such as
    /// `{% if ... %}enabled{% else %}disabled{% endif %}`).
    Other(String),
}

impl AdminState {
    /// Parses the four literals in any letter case; any other text becomes [`AdminState::Other`].
    pub fn parse(value: &str) -> Self {
        let v = value.trim();
        if v.eq_ignore_ascii_case("enabled") {
            Self::Enabled
        } else if v.eq_ignore_ascii_case("disabled") {
            Self::Disabled
        } else if v.eq_ignore_ascii_case("always_enabled") {
            Self::AlwaysEnabled
        } else if v.eq_ignore_ascii_case("always_disabled") {
            Self::AlwaysDisabled
        } else {
            Self::Other(value.to_owned())
        }
    }

    /// `enabled` or `always_enabled` (the test `container kill` applies, upstream #9986).
    pub fn is_enabled(&self) -> bool {
        match self {
            Self::Enabled | Self::AlwaysEnabled => true,
            Self::Disabled | Self::AlwaysDisabled | Self::Other(_) => false,
        }
    }

    /// The database spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::AlwaysEnabled => "always_enabled",
            Self::AlwaysDisabled => "always_disabled",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Configuration of one feature (CONFIG_DB `FEATURE|<f>`), as far as ownership is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureConfig {
    /// Who should run the feature.
    pub set_owner: SetOwner,
    /// Whether a kube-owned feature may run its local image while no deployment is active: the
    /// negation of `no_fallback_to_local`, read as a real boolean.
    pub fallback: bool,
    /// `state`, if present.
    pub state: Option<AdminState>,
    /// `auto_restart`, if present.
    pub auto_restart: Option<AdminState>,
    /// `kube_failure_detection` (HLD): a kube-owned feature not running this long is failed.
    /// `None` when absent or 0 (no monitoring).
    pub kube_failure_detection: Option<Duration>,
}

impl Default for FeatureConfig {
    /// What an empty `FEATURE|<f>` entry means: local owner, fallback allowed, no monitoring.
    fn default() -> Self {
        Self {
            set_owner: SetOwner::Local,
            fallback: true,
            state: None,
            auto_restart: None,
            kube_failure_detection: None,
        }
    }
}

impl FeatureConfig {
    /// Turns the `no_fallback_to_local` field into `fallback`.
    ///
    /// Absent or empty: fallback allowed (the documented default). `true`/`false` in any case:
    /// the negation. Anything else is an error (upstream `container` treated every present
    /// string, even `"false"`, as "no fallback").
    pub fn parse_fallback(no_fallback_to_local: Option<&str>) -> Result<bool, ModelError> {
        match no_fallback_to_local.map(str::trim) {
            None | Some("") => Ok(true),
            Some(v) => parse_bool(v).map(|no_fallback| !no_fallback),
        }
    }

    /// The strict, minutes-only form of `kube_failure_detection` (HLD: `config feature
    /// kube_failure_detection <f> <minutes>`); absent, empty or `0` means no monitoring. The
    /// database accepts more, see [`FeatureConfig::parse_failure_detection_duration`].
    pub fn parse_failure_detection(value: Option<&str>) -> Result<Option<Duration>, ModelError> {
        let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let err = |reason| ModelError::Duration {
            value: v.to_owned(),
            reason,
        };
        if !v.chars().all(|c| c.is_ascii_digit()) {
            return Err(err("expected a whole number of minutes"));
        }
        let minutes: u64 = v.parse().map_err(|_| err("number is too large"))?;
        let secs = minutes
            .checked_mul(60)
            .ok_or_else(|| err("number is too large"))?;
        Ok((secs > 0).then(|| Duration::from_secs(secs)))
    }

    /// Turns the `kube_failure_detection` field into a duration: a bare number is whole minutes
    /// (HLD), a number with a suffix `s`, `m`, `h` or `d` is read by [`parse_duration`] (so that
    /// tests and labs can detect failures within seconds). Absent, empty or zero means no
    /// monitoring.
    pub fn parse_failure_detection_duration(
        value: Option<&str>,
    ) -> Result<Option<Duration>, ModelError> {
        let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if v.chars().all(|c| c.is_ascii_digit()) {
            return Self::parse_failure_detection(Some(v));
        }
        let d = parse_duration(v)?;
        Ok((!d.is_zero()).then_some(d))
    }

    /// Renders a failure detection period the way [`FeatureConfig::parse_failure_detection_duration`]
    /// reads it: whole minutes as a bare number (HLD), anything else in seconds (`30s`).
    pub fn render_failure_detection(d: Duration) -> String {
        let secs = d.as_secs();
        if secs.is_multiple_of(60) {
            (secs / 60).to_string()
        } else {
            format!("{secs}s")
        }
    }
}

/// Status of one feature (STATE_DB `FEATURE|<f>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeatureStatus {
    /// `up` after `container start`, `down` after `container stop`; `None` when absent
    /// (feature not managed by this machinery, e.g. a build without Kubernetes support).
    pub system_state: Option<SystemState>,
    /// Who runs the feature now.
    pub current_owner: CurrentOwner,
    /// `None`: the field is absent (upstream then uses the feature name); `Some("")`: present
    /// and empty (nothing runs).
    pub container_id: Option<String>,
    /// Hand-shake state of a Kubernetes deployment.
    pub remote_state: RemoteState,
    /// Version of the running or last started image.
    pub container_version: Option<Version>,
    /// Last version deemed good.
    pub container_stable_version: Option<Version>,
    /// The good version before the stable one, kept for fallback.
    pub container_last_version: Option<Version>,
    /// Wall-clock time of the last update, as written (`%Y-%m-%d %H:%M:%S`).
    pub update_time: Option<String>,
}

/// Fields to write to STATE_DB `FEATURE|<f>`: each `Some` is written, each `None` left alone.
/// One update is one HSET.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusUpdate {
    /// Write `system_state`.
    pub system_state: Option<SystemState>,
    /// Write `current_owner`.
    pub current_owner: Option<CurrentOwner>,
    /// Write `container_id` (`Some(String::new())` writes the empty string).
    pub container_id: Option<String>,
    /// Write `remote_state`.
    pub remote_state: Option<RemoteState>,
    /// Write `container_version`.
    pub container_version: Option<Version>,
    /// Write `container_stable_version`.
    pub container_stable_version: Option<Version>,
    /// Write `container_last_version`.
    pub container_last_version: Option<Version>,
    /// Write `update_time` (wall-clock text given by the caller; the core never reads a clock).
    pub update_time: Option<String>,
}

impl StatusUpdate {
    /// An update that writes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also write `system_state`.
    pub fn system_state(mut self, v: SystemState) -> Self {
        self.system_state = Some(v);
        self
    }

    /// Also write `current_owner`.
    pub fn current_owner(mut self, v: CurrentOwner) -> Self {
        self.current_owner = Some(v);
        self
    }

    /// Also write `container_id`.
    pub fn container_id(mut self, v: impl Into<String>) -> Self {
        self.container_id = Some(v.into());
        self
    }

    /// Also write `remote_state`.
    pub fn remote_state(mut self, v: RemoteState) -> Self {
        self.remote_state = Some(v);
        self
    }

    /// Also write `container_version`.
    pub fn container_version(mut self, v: Version) -> Self {
        self.container_version = Some(v);
        self
    }

    /// Also write `container_stable_version`.
    pub fn container_stable_version(mut self, v: Version) -> Self {
        self.container_stable_version = Some(v);
        self
    }

    /// Also write `container_last_version`.
    pub fn container_last_version(mut self, v: Version) -> Self {
        self.container_last_version = Some(v);
        self
    }

    /// Also write `update_time`.
    pub fn update_time(mut self, v: impl Into<String>) -> Self {
        self.update_time = Some(v.into());
        self
    }

    /// Whether the update writes no field.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the update to a status, as the HSET would.
    pub fn apply_to(&self, status: &mut FeatureStatus) {
        if let Some(v) = self.system_state {
            status.system_state = Some(v);
        }
        if let Some(v) = self.current_owner {
            status.current_owner = v;
        }
        if let Some(v) = &self.container_id {
            status.container_id = Some(v.clone());
        }
        if let Some(v) = self.remote_state {
            status.remote_state = v;
        }
        if let Some(v) = &self.container_version {
            status.container_version = Some(v.clone());
        }
        if let Some(v) = &self.container_stable_version {
            status.container_stable_version = Some(v.clone());
        }
        if let Some(v) = &self.container_last_version {
            status.container_last_version = Some(v.clone());
        }
        if let Some(v) = &self.update_time {
            status.update_time = Some(v.clone());
        }
    }
}

impl fmt::Display for StatusUpdate {
    /// `{field: value, ...}` in database field order, for traces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut fields: Vec<(&str, String)> = Vec::new();
        if let Some(v) = self.system_state {
            fields.push(("system_state", v.to_string()));
        }
        if let Some(v) = self.current_owner {
            fields.push(("current_owner", v.to_string()));
        }
        if let Some(v) = &self.container_id {
            fields.push(("container_id", format!("{v:?}")));
        }
        if let Some(v) = self.remote_state {
            fields.push(("remote_state", v.to_string()));
        }
        if let Some(v) = &self.container_version {
            fields.push(("container_version", v.to_string()));
        }
        if let Some(v) = &self.container_stable_version {
            fields.push(("container_stable_version", v.to_string()));
        }
        if let Some(v) = &self.container_last_version {
            fields.push(("container_last_version", v.to_string()));
        }
        if let Some(v) = &self.update_time {
            fields.push(("update_time", format!("{v:?}")));
        }
        f.write_str("{")?;
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}: {v}")?;
        }
        f.write_str("}")
    }
}

/// Kubernetes master configuration (CONFIG_DB `KUBERNETES_MASTER|SERVER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Host name or address of the master; `None` when absent or empty (never join).
    pub ip: Option<String>,
    /// API server port, default 6443.
    pub port: u16,
    /// Skip TLS verification of the master, default false.
    pub insecure: bool,
    /// Do not connect (reset if connected), default false.
    pub disable: bool,
}

impl ServerConfig {
    /// The default API server port.
    pub const DEFAULT_PORT: u16 = 6443;

    /// Parses the `port` field: an integer in 1..=65535.
    pub fn parse_port(value: &str) -> Result<u16, ModelError> {
        match value.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            Ok(_) | Err(_) => Err(ModelError::Port {
                value: value.to_owned(),
            }),
        }
    }

    /// Normalises the `ip` field: surrounding blanks removed, empty means none.
    pub fn parse_ip(value: Option<&str>) -> Option<String> {
        value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// Whether the node should be joined: enabled and an address configured.
    pub fn wants_join(&self) -> bool {
        !self.disable && self.ip.is_some()
    }
}

impl Default for ServerConfig {
    /// No address, port 6443, secure, enabled.
    fn default() -> Self {
        Self {
            ip: None,
            port: Self::DEFAULT_PORT,
            insecure: false,
            disable: false,
        }
    }
}

/// Kubernetes master status (STATE_DB `KUBERNETES_MASTER|SERVER`), written by the manager only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerStatus {
    /// Whether this node has joined the master.
    pub connected: bool,
    /// The address joined, set on a successful join.
    pub ip: Option<String>,
    /// The port joined, set on a successful join.
    pub port: Option<u16>,
    /// Wall-clock time of the last change; its absence at manager start means "just booted".
    pub update_time: Option<String>,
    /// Why the last join or node label push failed; cleared by the next success.
    pub last_error: Option<String>,
}

/// A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name of 1..=63
/// characters, `[A-Za-z0-9]` first and last, `[A-Za-z0-9_.-]` inside.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabelKey(String);

fn check_label_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > 63 {
        return Err("must be at most 63 characters");
    }
    if !name.chars().all(is_label_name_char) {
        return Err("only letters, digits, '_', '.' and '-' are allowed");
    }
    let alnum_ends = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum_ends {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

fn check_dns_subdomain(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() || prefix.len() > 253 {
        return Err("prefix must be a DNS subdomain of 1 to 253 characters");
    }
    for part in prefix.split('.') {
        let ok = !part.is_empty()
            && part.len() <= 63
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && part
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && part
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err("prefix must be a lowercase DNS subdomain");
        }
    }
    Ok(())
}

impl LabelKey {
    /// Validates a label key.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let err = |reason| ModelError::LabelKey {
            value: value.to_owned(),
            reason,
        };
        let name = match value.split_once('/') {
            Some((prefix, name)) => {
                check_dns_subdomain(prefix).map_err(err)?;
                name
            }
            None => value,
        };
        check_label_name(name).map_err(err)?;
        Ok(Self(value.to_owned()))
    }

    /// `<feature>_enabled`: lets Kubernetes deploy the feature (`true`) or not.
    pub fn feature_enabled(f: &FeatureName) -> Self {
        // A feature name (<= 32 chars, alnum ends) plus "_enabled" is always a valid key.
        Self(format!("{f}_enabled"))
    }

    /// `<feature>_local`: the version of the local image that runs (upstream, #14978).
    pub fn feature_local(f: &FeatureName) -> Self {
        Self(format!("{f}_local"))
    }

    /// `<feature>_<version>_enabled` (HLD, safety check): lets rollouts gate a version.
    /// Fails when the result would be longer than 63 characters.
    pub fn feature_version_enabled(f: &FeatureName, v: &Version) -> Result<Self, ModelError> {
        Self::parse(&format!("{f}_{v}_enabled"))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for LabelKey {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for LabelKey {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<LabelKey> for String {
    fn from(k: LabelKey) -> String {
        k.0
    }
}

/// A Kubernetes label value: empty, or 1..=63 characters, `[A-Za-z0-9]` first and last,
/// `[A-Za-z0-9_.-]` inside.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabelValue(String);

impl LabelValue {
    /// Validates a label value.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        if value.is_empty() {
            return Ok(Self(String::new()));
        }
        check_label_name(value).map_err(|reason| ModelError::LabelValue {
            value: value.to_owned(),
            reason,
        })?;
        Ok(Self(value.to_owned()))
    }

    /// Makes a valid value out of any text (device facts such as a HWSKU): characters outside
    /// `[A-Za-z0-9_.-]` become `_`, the text is cut to 63 characters and non-alphanumeric ends
    /// are trimmed. Deterministic, so the same fact always gives the same label.
    pub fn lossy(value: &str) -> Self {
        let mapped: String = value
            .chars()
            .map(|c| if is_label_name_char(c) { c } else { '_' })
            .take(63)
            .collect();
        let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        Self(trimmed.to_owned())
    }

    /// `true`.
    pub fn true_() -> Self {
        Self("true".to_owned())
    }

    /// `false`.
    pub fn false_() -> Self {
        Self("false".to_owned())
    }

    /// A boolean as `true` / `false`.
    pub fn from_bool(b: bool) -> Self {
        if b { Self::true_() } else { Self::false_() }
    }

    /// A version as written (always a valid value when at most 63 characters; longer ones are
    /// cut by [`LabelValue::lossy`]).
    pub fn from_version(v: &Version) -> Self {
        Self::lossy(v.as_str())
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabelValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for LabelValue {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for LabelValue {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<LabelValue> for String {
    fn from(v: LabelValue) -> String {
        v.0
    }
}

/// Labels of a node (or desired for it), ordered by key.
pub type NodeLabels = BTreeMap<LabelKey, LabelValue>;

/// Timers of `remote_ctr.config.json`. Defaults are upstream's shipped values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCtrConfig {
    /// `join_latency_on_boot_seconds` (300): delay of the first join after boot.
    pub join_latency_on_boot: Duration,
    /// `retry_join_interval_seconds` (30): delay between join attempts.
    pub retry_join_interval: Duration,
    /// `retry_labels_update_seconds` (5): delay between label push attempts.
    pub retry_labels_update: Duration,
    /// `revert_to_local_on_wait_seconds` (360): how long `container wait` waits for a pod
    /// before falling back to the local image.
    pub revert_to_local_on_wait: Duration,
    /// `tag_latest_image_on_wait_seconds` (600): upstream's running time before tagging the
    /// image as latest; the default of [`ImageMgmtSettings::active_time_to_mark_good`].
    pub tag_latest_image_on_wait: Duration,
    /// `retry_tag_latest_seconds` (30): delay between tag attempts.
    pub retry_tag_latest: Duration,
    /// `retry_clean_image_seconds` (30): delay between image clean-up attempts.
    pub retry_clean_image: Duration,
    /// `use_k8s_as_http_proxy` (`"n"`): route Docker's HTTP proxy to the master.
    pub use_k8s_as_http_proxy: bool,
}

impl Default for RemoteCtrConfig {
    fn default() -> Self {
        Self {
            join_latency_on_boot: Duration::from_secs(300),
            retry_join_interval: Duration::from_secs(30),
            retry_labels_update: Duration::from_secs(5),
            revert_to_local_on_wait: Duration::from_secs(360),
            tag_latest_image_on_wait: Duration::from_secs(600),
            retry_tag_latest: Duration::from_secs(30),
            retry_clean_image: Duration::from_secs(30),
            use_k8s_as_http_proxy: false,
        }
    }
}

impl RemoteCtrConfig {
    /// Parses the text of `remote_ctr.config.json` over the defaults: missing keys keep their
    /// default, unknown keys are ignored, a known key with a wrong type is an error naming it.
    /// Second values are non-negative JSON integers; `use_k8s_as_http_proxy` is `"y"`/`"n"`
    /// (upstream), `"yes"`/`"no"`, `"true"`/`"false"` or a JSON boolean.
    pub fn from_json_str(text: &str) -> Result<Self, ModelError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ModelError::RemoteCtrConfigText {
                reason: e.to_string(),
            })?;
        let serde_json::Value::Object(map) = value else {
            return Err(ModelError::RemoteCtrConfigText {
                reason: "expected a JSON object".to_owned(),
            });
        };
        let mut cfg = Self::default();
        for (key, v) in &map {
            let slot = match key.as_str() {
                "join_latency_on_boot_seconds" => &mut cfg.join_latency_on_boot,
                "retry_join_interval_seconds" => &mut cfg.retry_join_interval,
                "retry_labels_update_seconds" => &mut cfg.retry_labels_update,
                "revert_to_local_on_wait_seconds" => &mut cfg.revert_to_local_on_wait,
                "tag_latest_image_on_wait_seconds" => &mut cfg.tag_latest_image_on_wait,
                "retry_tag_latest_seconds" => &mut cfg.retry_tag_latest,
                "retry_clean_image_seconds" => &mut cfg.retry_clean_image,
                "use_k8s_as_http_proxy" => {
                    cfg.use_k8s_as_http_proxy =
                        parse_yes_no(v).ok_or_else(|| ModelError::RemoteCtrConfigKey {
                            key: key.clone(),
                            reason: "expected \"y\" or \"n\"",
                        })?;
                    continue;
                }
                _ => continue,
            };
            let secs = v.as_u64().ok_or_else(|| ModelError::RemoteCtrConfigKey {
                key: key.clone(),
                reason: "expected a non-negative whole number of seconds",
            })?;
            *slot = Duration::from_secs(secs);
        }
        Ok(cfg)
    }
}

fn parse_yes_no(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            match s.as_str() {
                "y" | "yes" | "true" => Some(true),
                "n" | "no" | "false" | "" => Some(false),
                _ => None,
            }
        }
        serde_json::Value::Null
        | serde_json::Value::Number(_)
        | serde_json::Value::Array(_)
        | serde_json::Value::Object(_) => None,
    }
}

/// Effective image management settings of one feature (HLD "Image management configuration").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMgmtSettings {
    /// `Disable`: no marking good, tagging or purging at all.
    pub disable: bool,
    /// `active_time_to_mark_good`: a kube image running this long is deemed good (golden).
    /// Zero means no health period: good as soon as it runs.
    pub active_time_to_mark_good: Duration,
    /// `purge_older_image`: once a new image is good, remove older downloaded images, keeping
    /// the current and the previous good one.
    pub purge_older_image: bool,
    /// `tag_new_as_local`: once good, tag the image as the local image (`<repo>:latest`) so that
    /// a local start or fallback runs it.
    pub tag_new_as_local: bool,
    /// `purge_local_copy`: once tagged as local, remove the original local copy's versioned tag.
    pub purge_local_copy: bool,
}

impl Default for ImageMgmtSettings {
    /// Upstream's hard-coded behaviour: good after 600 s, tag as local, purge older images
    /// keeping current and last, remove the local versioned tag.
    fn default() -> Self {
        Self {
            disable: false,
            active_time_to_mark_good: Duration::from_secs(600),
            purge_older_image: true,
            tag_new_as_local: true,
            purge_local_copy: true,
        }
    }
}

/// Image management settings of one `IMAGE_MGMT` entry: each `Some` overrides the level below.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageMgmtOverride {
    /// `Disable`.
    pub disable: Option<bool>,
    /// `active_time_to_mark_good` (parse with [`parse_duration`]).
    pub active_time_to_mark_good: Option<Duration>,
    /// `purge_older_image`.
    pub purge_older_image: Option<bool>,
    /// `tag_new_as_local`.
    pub tag_new_as_local: Option<bool>,
    /// `purge_local_copy`.
    pub purge_local_copy: Option<bool>,
}

impl ImageMgmtOverride {
    fn apply(&self, s: &mut ImageMgmtSettings) {
        if let Some(v) = self.disable {
            s.disable = v;
        }
        if let Some(v) = self.active_time_to_mark_good {
            s.active_time_to_mark_good = v;
        }
        if let Some(v) = self.purge_older_image {
            s.purge_older_image = v;
        }
        if let Some(v) = self.tag_new_as_local {
            s.tag_new_as_local = v;
        }
        if let Some(v) = self.purge_local_copy {
            s.purge_local_copy = v;
        }
    }
}

/// `IMAGE_MGMT|GLOBAL` with `IMAGE_MGMT|<feature>` overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageMgmt {
    /// `IMAGE_MGMT|GLOBAL` over the built-in defaults.
    pub global: ImageMgmtOverride,
    /// `IMAGE_MGMT|<feature>` over the global entry.
    pub per_feature: BTreeMap<FeatureName, ImageMgmtOverride>,
}

impl ImageMgmt {
    /// The settings in force for `f`: defaults, then GLOBAL, then the feature's entry.
    pub fn effective(&self, f: &FeatureName) -> ImageMgmtSettings {
        let mut s = ImageMgmtSettings::default();
        self.global.apply(&mut s);
        if let Some(o) = self.per_feature.get(f) {
            o.apply(&mut s);
        }
        s
    }
}

/// Monotonic time in milliseconds, given to the core by the caller; the core never reads a clock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp(u64);

impl Timestamp {
    /// A timestamp `ms` milliseconds after the caller's epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the caller's epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future.
    pub fn plus(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    /// Seconds with milliseconds, e.g. `300.000s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_follow_the_unit_and_label_rules() {
        for ok in [
            "snmp",
            "dhcp_relay",
            "mgmt-framework",
            "a",
            "lldp0",
            "x.y",
            &"a".repeat(32),
        ] {
            assert_eq!(FeatureName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "_snmp",
            "snmp-",
            "sn mp",
            "snmp/x",
            "ünï",
            &"a".repeat(33),
        ] {
            let e = FeatureName::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid feature name"), "{e}");
        }
        assert!(FeatureName::parse("database").unwrap().is_database());
    }

    #[test]
    fn owners_parse_case_insensitively_and_empty_means_local() {
        assert_eq!(SetOwner::parse("").unwrap(), SetOwner::Local);
        assert_eq!(SetOwner::parse("LOCAL").unwrap(), SetOwner::Local);
        assert_eq!(SetOwner::parse("Kube").unwrap(), SetOwner::Kube);
        assert_eq!(
            SetOwner::parse("k8s").unwrap_err().to_string(),
            "invalid owner \"k8s\": expected local or kube"
        );
        assert_eq!(CurrentOwner::parse("").unwrap(), CurrentOwner::None);
        assert_eq!(CurrentOwner::parse("None").unwrap(), CurrentOwner::None);
        assert_eq!(CurrentOwner::parse("KUBE").unwrap(), CurrentOwner::Kube);
        assert!(CurrentOwner::parse("not local").is_err());
    }

    #[test]
    fn remote_and_system_states_parse_and_render() {
        for s in [
            RemoteState::None,
            RemoteState::Pending,
            RemoteState::Ready,
            RemoteState::Running,
            RemoteState::Stopped,
        ] {
            assert_eq!(RemoteState::parse(s.as_str()).unwrap(), s);
            assert_eq!(RemoteState::parse(&s.as_str().to_uppercase()).unwrap(), s);
        }
        assert_eq!(RemoteState::parse("").unwrap(), RemoteState::None);
        assert!(RemoteState::parse("xxx").is_err());
        assert_eq!(SystemState::parse("UP").unwrap(), SystemState::Up);
        assert_eq!(SystemState::parse_field(Some("")).unwrap(), None);
        assert_eq!(SystemState::parse_field(None).unwrap(), None);
        assert_eq!(
            SystemState::parse_field(Some("down")).unwrap(),
            Some(SystemState::Down)
        );
        assert!(SystemState::parse("sideways").is_err());
    }

    #[test]
    fn no_fallback_to_local_is_a_real_boolean() {
        assert!(FeatureConfig::parse_fallback(None).unwrap());
        assert!(FeatureConfig::parse_fallback(Some("")).unwrap());
        assert!(FeatureConfig::parse_fallback(Some("false")).unwrap());
        assert!(FeatureConfig::parse_fallback(Some("False")).unwrap());
        assert!(!FeatureConfig::parse_fallback(Some("TRUE")).unwrap());
        assert_eq!(
            FeatureConfig::parse_fallback(Some("yes")).unwrap_err(),
            ModelError::Bool {
                value: "yes".into()
            }
        );
    }

    #[test]
    fn failure_detection_is_minutes_and_zero_disables_it() {
        assert_eq!(FeatureConfig::parse_failure_detection(None).unwrap(), None);
        assert_eq!(
            FeatureConfig::parse_failure_detection(Some("0")).unwrap(),
            None
        );
        assert_eq!(
            FeatureConfig::parse_failure_detection(Some("5")).unwrap(),
            Some(Duration::from_secs(300))
        );
        assert!(FeatureConfig::parse_failure_detection(Some("5m")).is_err());
        assert!(FeatureConfig::parse_failure_detection(Some("-1")).is_err());
    }

    #[test]
    fn failure_detection_in_the_database_is_minutes_or_a_duration_with_a_unit() {
        let p = FeatureConfig::parse_failure_detection_duration;
        assert_eq!(p(None).unwrap(), None);
        assert_eq!(p(Some(" ")).unwrap(), None);
        assert_eq!(p(Some("0")).unwrap(), None);
        assert_eq!(p(Some("0s")).unwrap(), None);
        assert_eq!(p(Some("5")).unwrap(), Some(Duration::from_secs(300)));
        assert_eq!(p(Some("30s")).unwrap(), Some(Duration::from_secs(30)));
        assert_eq!(p(Some("5m")).unwrap(), Some(Duration::from_secs(300)));
        assert_eq!(p(Some("2h")).unwrap(), Some(Duration::from_secs(7200)));
        for bad in ["-1", "5x", "s", "1.5m", "99999999999999999999"] {
            let e = p(Some(bad)).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        for d in [30, 60, 90, 300, 7200] {
            let d = Duration::from_secs(d);
            let text = FeatureConfig::render_failure_detection(d);
            assert_eq!(p(Some(&text)).unwrap(), Some(d), "{text}");
        }
        assert_eq!(
            FeatureConfig::render_failure_detection(Duration::from_secs(300)),
            "5"
        );
    }

    #[test]
    fn versions_order_numerically_and_consistently_with_eq() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("20201230.80") < v("20201230.111"));
        assert!(v("1.2") < v("1.2.0"));
        assert!(v("1.9") < v("1.10"));
        assert!(v("2") > v("1.99.99"));
        assert_ne!(v("1.02"), v("1.2"));
        assert_ne!(v("1.02").cmp(&v("1.2")), std::cmp::Ordering::Equal);
        assert_eq!(v(" 1.2 ").as_str(), "1.2");
        assert_eq!(v("20201231.74").parts(), &[20201231, 74]);
        for bad in [
            "",
            "1..2",
            "1.a",
            "v1",
            "1.-2",
            ".1",
            "99999999999999999999999",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Version::parse_field(Some("")).unwrap(), None);
        assert_eq!(Version::parse_field(Some("1.2")).unwrap(), Some(v("1.2")));
    }

    #[test]
    fn versions_serialize_as_their_text() {
        let v = Version::parse("20201230.80").unwrap();
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(s, "\"20201230.80\"");
        assert_eq!(serde_json::from_str::<Version>(&s).unwrap(), v);
        assert!(serde_json::from_str::<Version>("\"x\"").is_err());
    }

    #[test]
    fn container_ids_accept_names_and_hex_ids() {
        for ok in ["snmp", "0123456789ab", "k8s_snmp_snmp-x_sonic_0"] {
            assert!(ContainerId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b"] {
            assert!(ContainerId::parse(bad).is_err(), "{bad}");
        }
        let f = FeatureName::parse("snmp").unwrap();
        assert_eq!(ContainerId::of_feature(&f).as_str(), "snmp");
    }

    #[test]
    fn admin_state_keeps_templates_verbatim() {
        assert_eq!(AdminState::parse("Enabled"), AdminState::Enabled);
        assert_eq!(
            AdminState::parse("always_enabled"),
            AdminState::AlwaysEnabled
        );
        let t = "{% if x %}enabled{% endif %}";
        assert_eq!(AdminState::parse(t), AdminState::Other(t.into()));
        assert!(AdminState::AlwaysEnabled.is_enabled());
        assert!(!AdminState::Other("enabled-ish".into()).is_enabled());
        assert!(!AdminState::AlwaysDisabled.is_enabled());
    }

    #[test]
    fn label_keys_and_values_follow_kubernetes_syntax() {
        for ok in [
            "snmp_enabled",
            "worker.sonic/platform",
            "sonic_version",
            "a",
        ] {
            assert!(LabelKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_x",
            "x_",
            "Worker.Sonic/platform",
            "/x",
            "a/",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(LabelKey::parse(bad).is_err(), "{bad}");
        }
        for ok in ["", "true", "20201230.11", "Force10-S6000", &"a".repeat(63)] {
            assert!(LabelValue::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["-x", "a b", "x.", &"a".repeat(64)] {
            assert!(LabelValue::parse(bad).is_err(), "{bad}");
        }
        let f = FeatureName::parse("snmp").unwrap();
        let v = Version::parse("20201230.11").unwrap();
        assert_eq!(LabelKey::feature_enabled(&f).as_str(), "snmp_enabled");
        assert_eq!(LabelKey::feature_local(&f).as_str(), "snmp_local");
        assert_eq!(
            LabelKey::feature_version_enabled(&f, &v).unwrap().as_str(),
            "snmp_20201230.11_enabled"
        );
        let long = FeatureName::parse(&"f".repeat(32)).unwrap();
        let longv = Version::parse("1.".repeat(12).trim_end_matches('.')).unwrap();
        assert!(LabelKey::feature_version_enabled(&long, &longv).is_err());
    }

    #[test]
    fn lossy_label_values_are_always_valid() {
        assert_eq!(
            LabelValue::lossy("Mellanox SN2700 (D48)").as_str(),
            "Mellanox_SN2700__D48"
        );
        assert_eq!(LabelValue::lossy("  ").as_str(), "");
        assert_eq!(LabelValue::lossy(&"x".repeat(80)).as_str().len(), 63);
        for s in ["--a--", "é", "a/b", "x86_64-kvm_x86_64-r0"] {
            let v = LabelValue::lossy(s);
            assert_eq!(LabelValue::parse(v.as_str()).unwrap(), v);
        }
    }

    #[test]
    fn remote_ctr_config_defaults_are_upstreams_shipped_values() {
        let d = RemoteCtrConfig::default();
        assert_eq!(d.join_latency_on_boot, Duration::from_secs(300));
        assert_eq!(d.retry_join_interval, Duration::from_secs(30));
        assert_eq!(d.retry_labels_update, Duration::from_secs(5));
        assert_eq!(d.revert_to_local_on_wait, Duration::from_secs(360));
        assert_eq!(d.tag_latest_image_on_wait, Duration::from_secs(600));
        assert_eq!(d.retry_tag_latest, Duration::from_secs(30));
        assert_eq!(d.retry_clean_image, Duration::from_secs(30));
        assert!(!d.use_k8s_as_http_proxy);
        let shipped = r#"{"join_latency_on_boot_seconds": 300, "retry_join_interval_seconds": 30,
            "retry_labels_update_seconds": 5, "revert_to_local_on_wait_seconds": 360,
            "tag_latest_image_on_wait_seconds": 600, "retry_tag_latest_seconds": 30,
            "retry_clean_image_seconds": 30, "use_k8s_as_http_proxy": "n"}"#;
        assert_eq!(RemoteCtrConfig::from_json_str(shipped).unwrap(), d);
    }

    #[test]
    fn remote_ctr_config_ignores_unknown_keys_and_names_bad_ones() {
        let c = RemoteCtrConfig::from_json_str(
            r#"{"revert_to_local_on_wait_seconds": 5, "future_key": [1], "use_k8s_as_http_proxy": "Y"}"#,
        )
        .unwrap();
        assert_eq!(c.revert_to_local_on_wait, Duration::from_secs(5));
        assert_eq!(c.join_latency_on_boot, Duration::from_secs(300));
        assert!(c.use_k8s_as_http_proxy);
        let e =
            RemoteCtrConfig::from_json_str(r#"{"retry_join_interval_seconds": "30"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid remote container config key \"retry_join_interval_seconds\": expected a non-negative whole number of seconds"
        );
        assert!(RemoteCtrConfig::from_json_str(r#"{"retry_clean_image_seconds": -1}"#).is_err());
        assert!(RemoteCtrConfig::from_json_str(r#"{"use_k8s_as_http_proxy": 1}"#).is_err());
        assert!(RemoteCtrConfig::from_json_str("[1]").is_err());
        assert!(RemoteCtrConfig::from_json_str("{").is_err());
    }

    #[test]
    fn durations_take_suffixes() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2H").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        for bad in ["", "m", "10w", "1.5h", "-1s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_mgmt_overrides_layer_over_global_and_defaults() {
        let snmp = FeatureName::parse("snmp").unwrap();
        let lldp = FeatureName::parse("lldp").unwrap();
        let mut m = ImageMgmt::default();
        assert_eq!(m.effective(&snmp), ImageMgmtSettings::default());
        m.global.purge_older_image = Some(false);
        m.global.active_time_to_mark_good = Some(Duration::from_secs(60));
        m.per_feature.insert(
            snmp.clone(),
            ImageMgmtOverride {
                active_time_to_mark_good: Some(Duration::from_secs(3600)),
                disable: Some(true),
                ..Default::default()
            },
        );
        let s = m.effective(&snmp);
        assert!(s.disable && !s.purge_older_image && s.tag_new_as_local);
        assert_eq!(s.active_time_to_mark_good, Duration::from_secs(3600));
        let l = m.effective(&lldp);
        assert!(!l.disable);
        assert_eq!(l.active_time_to_mark_good, Duration::from_secs(60));
    }

    #[test]
    fn status_update_builder_writes_only_chosen_fields() {
        let v = Version::parse("1.2").unwrap();
        let u = StatusUpdate::new()
            .system_state(SystemState::Up)
            .container_id("")
            .container_version(v.clone())
            .update_time("2020-12-08 22:59:57");
        assert!(!u.is_empty());
        assert!(StatusUpdate::new().is_empty());
        assert_eq!(
            u.to_string(),
            "{system_state: up, container_id: \"\", container_version: 1.2, update_time: \"2020-12-08 22:59:57\"}"
        );
        let mut st = FeatureStatus {
            current_owner: CurrentOwner::Local,
            ..Default::default()
        };
        u.apply_to(&mut st);
        assert_eq!(st.system_state, Some(SystemState::Up));
        assert_eq!(st.current_owner, CurrentOwner::Local);
        assert_eq!(st.container_id.as_deref(), Some(""));
        assert_eq!(st.container_version, Some(v));
    }

    #[test]
    fn server_config_defaults_and_port_parsing() {
        let d = ServerConfig::default();
        assert_eq!(
            (d.port, d.insecure, d.disable, d.ip.clone()),
            (6443, false, false, None)
        );
        assert!(!d.wants_join());
        assert_eq!(ServerConfig::parse_port("6443").unwrap(), 6443);
        assert!(ServerConfig::parse_port("0").is_err());
        assert!(ServerConfig::parse_port("65536").is_err());
        assert!(ServerConfig::parse_port("x").is_err());
        assert_eq!(ServerConfig::parse_ip(Some("  ")), None);
        assert_eq!(
            ServerConfig::parse_ip(Some(" 10.0.0.1 ")).as_deref(),
            Some("10.0.0.1")
        );
        assert!(parse_bool("False").is_ok_and(|b| !b));
        assert!(parse_bool("TRUE").is_ok_and(|b| b));
        assert!(parse_bool("1").is_err());
    }

    #[test]
    fn timestamps_add_and_subtract_without_overflow() {
        let t = Timestamp::from_millis(1_000);
        assert_eq!(t.plus(Duration::from_secs(2)).as_millis(), 3_000);
        assert_eq!(
            Timestamp::from_millis(u64::MAX)
                .plus(Duration::from_secs(1))
                .as_millis(),
            u64::MAX
        );
        assert_eq!(t.since(Timestamp::from_millis(5_000)), Duration::ZERO);
        assert_eq!(Timestamp::from_millis(2_500).to_string(), "2.500s");
    }
}
