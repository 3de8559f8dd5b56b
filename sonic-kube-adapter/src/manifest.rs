//! Kubernetes DaemonSet manifests of a feature, one per instance (the host and each ASIC), from
//! the feature's runtime description (HLD "Manifests generation" and "Multi-ASIC support").
//!
//! The description is the `runtime:` section of the same YAML file that `config feature install
//! --spec` reads (other top-level keys are ignored here):
//!
//! ```yaml
//! name: snmp
//! runtime:
//!   image: sonicdev-microsoft.azurecr.io/docker-snmp   # repository
//!   version: 20201230.80        # kept as written (a plain scalar is read as text)
//!   tag: "1.0.1"                # optional, defaults to the version
//!   host-network: true          # default true, like SONiC's `docker create --net=host`
//!   privileged: false
//!   redis-socket: true          # default true: /var/run/redis<N> -> /var/run/redis
//!   mounts:
//!     - { host-path: /etc/sonic, container-path: /etc/sonic, read-only: true }
//!     - { host-path: /var/run/foo, container-path: /var/run/foo, per-asic: true }
//!   env: { LOG_LEVEL: info }
//!   asic-count: 0               # 0: single-ASIC platform, one instance on the host
//!   global-scope: true          # multi-ASIC: one instance on the host (default true)
//!   per-asic-scope: false       # multi-ASIC: one instance per ASIC (default false)
//!   sonic-version: SONiC.20201230.80     # node selector sonic_version
//!   platform: x86_64-kvm_x86_64-r0       # node selector worker.sonic/platform
//!   hwsku: Force10-S6000                 # node selector hwsku
//!   node-selector: { some/label: x }     # any further node selectors
//!   kube-namespace: sonic                # metadata.namespace (optional)
//! ```
//!
//! Per instance the manifests differ as SONiC's `docker create` does: the container name gets the
//! ASIC number as suffix (`snmp0`), `NAMESPACE_ID` is the ASIC number (empty for the host of a
//! multi-ASIC platform, absent on a single-ASIC one), and `per-asic` mounts (the redis socket
//! directory among them) use `<host-path><N>`. Docker's `--net=container:database<N>` has no
//! Kubernetes equivalent, so every instance uses the same `host-network` setting.
//!
//! Every DaemonSet selects nodes with `<f>_enabled=true` and `<f>_<version>_enabled=true`, the
//! labels ctrmgrd sets, and sets `RUNTIME_OWNER=kube` and `IMAGE_VERSION=<version>`, which
//! `container_startup` reads in the container.
//!
//! Kubernetes names allow neither `_` nor upper case, so the feature name is lower-cased and `_`
//! and `.` become `-` in object and container names (`dhcp_relay` -> `dhcp-relay`). The version
//! is part of the DaemonSet name (`snmp-1-0-1`, `snmp0-1-0-1`): a new version is a new DaemonSet,
//! and each node runs the one its version label enables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, HostPathVolumeSource, PodSpec, PodTemplateSpec, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;
use sonic_feature_core::model::{FeatureName, LabelKey, LabelValue, ModelError, Version};

/// Environment variables set by the generator; a description may not set them itself.
pub const RESERVED_ENV: &[&str] = &["RUNTIME_OWNER", "IMAGE_VERSION", "NAMESPACE_ID"];

/// Node label of the SONiC OS version.
pub const SONIC_VERSION_LABEL: &str = "sonic_version";
/// Node label of the platform.
pub const PLATFORM_LABEL: &str = "worker.sonic/platform";
/// Node label of the HWSKU.
pub const HWSKU_LABEL: &str = "hwsku";

/// Directory of the redis sockets; ASIC `N` has its own, `/var/run/redis<N>`.
pub const REDIS_SOCKET_DIR: &str = "/var/run/redis";

/// The longest Kubernetes object and container name we generate (a DNS label).
const NAME_MAX: usize = 63;

/// Why manifests could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The spec file cannot be read.
    #[error("cannot read feature spec {path}: {source}")]
    ReadSpec {
        /// The spec file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The spec file is not valid YAML or does not match the description's shape.
    #[error("invalid feature spec {path}: {source}")]
    ParseSpec {
        /// The spec file.
        path: PathBuf,
        /// The parser's error (with line and column).
        #[source]
        source: serde_yaml::Error,
    },
    /// The spec has no `runtime:` section.
    #[error("feature spec {path} has no runtime section: nothing to deploy")]
    NoRuntime {
        /// The spec file.
        path: PathBuf,
    },
    /// A value that breaks a rule of the description.
    #[error("feature {feature}: field {field}: invalid value {value:?}: {reason}")]
    Invalid {
        /// The feature.
        feature: String,
        /// Which field (`runtime.env.X`, `runtime.mounts[2].container-path`, ...).
        field: String,
        /// The rejected value.
        value: String,
        /// What rule it breaks.
        reason: String,
    },
    /// A node-selector label the model rejects.
    #[error("feature {feature}: field {field}: {source}")]
    Label {
        /// The feature.
        feature: String,
        /// Which field.
        field: String,
        /// The model's reason.
        #[source]
        source: ModelError,
    },
    /// A manifest cannot be serialized.
    #[error("cannot serialize manifest {name}: {source}")]
    Serialize {
        /// The DaemonSet name.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// A manifest cannot be written.
    #[error("cannot write manifest {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn string_newtype_error(what: &str, value: &str, reason: &str) -> String {
    format!("invalid {what} {value:?}: {reason}")
}

/// An absolute path without control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct AbsolutePath(String);

impl AbsolutePath {
    /// Validates a path.
    pub fn parse(value: &str) -> Result<Self, String> {
        if !value.starts_with('/') {
            return Err(string_newtype_error("path", value, "must be absolute"));
        }
        if value.chars().any(char::is_control) {
            return Err(string_newtype_error(
                "path",
                value,
                "control characters are not allowed",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AbsolutePath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

/// An image repository (`registry[:port]/path/name`), without tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ImageRepository(String);

impl ImageRepository {
    /// Validates a repository: lower-case path components of `[a-z0-9._-]` separated by `/`;
    /// the first component may be a registry host with upper case and a `:port`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let bad = |reason| Err(string_newtype_error("image repository", value, reason));
        if value.is_empty() {
            return bad("must not be empty");
        }
        let mut parts = value.split('/').peekable();
        let mut first = true;
        while let Some(part) = parts.next() {
            let is_registry = first && parts.peek().is_some() && part.contains(['.', ':']);
            first = false;
            let ok = !part.is_empty()
                && part.chars().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || "._-".contains(c)
                        || (is_registry && (c.is_ascii_uppercase() || c == ':'))
                });
            if !ok {
                return bad(
                    "expected path components of lower-case letters, digits, '.', '_', '-' \
                     separated by '/' (a tag goes into version or tag)",
                );
            }
        }
        Ok(Self(value.to_owned()))
    }

    /// The repository as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ImageRepository {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

/// An image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ImageTag(String);

impl ImageTag {
    /// Validates a tag.
    pub fn parse(value: &str) -> Result<Self, String> {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(string_newtype_error(
                "image tag",
                value,
                "expected 1 to 128 of letters, digits, '_', '.', '-', not starting with '.' or '-'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ImageTag {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct EnvName(String);

impl EnvName {
    /// Validates a name.
    pub fn parse(value: &str) -> Result<Self, String> {
        let ok = value.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(string_newtype_error(
                "environment variable name",
                value,
                "expected a letter or '_' followed by letters, digits or '_'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnvName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

/// A host directory or file mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Mount {
    /// Path on the host; with `per-asic`, ASIC `N` mounts `<host-path><N>`.
    pub host_path: AbsolutePath,
    /// Path in the container.
    pub container_path: AbsolutePath,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// The host path differs per ASIC (like `/var/run/redis<N>`).
    #[serde(default)]
    pub per_asic: bool,
}

fn default_true() -> bool {
    true
}

/// How a feature's container runs: image, mounts, environment, network, privileges, the
/// platform's ASICs and extra node selectors. Field docs are in the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RuntimeDescription {
    /// Image repository.
    pub image: ImageRepository,
    /// Image version: the `<f>_<version>_enabled` label and `IMAGE_VERSION`.
    pub version: Version,
    /// Image tag; the version when absent.
    #[serde(default)]
    pub tag: Option<ImageTag>,
    /// `hostNetwork`.
    #[serde(default = "default_true")]
    pub host_network: bool,
    /// `securityContext.privileged`.
    #[serde(default)]
    pub privileged: bool,
    /// Mount the instance's redis socket directory at `/var/run/redis`.
    #[serde(default = "default_true")]
    pub redis_socket: bool,
    /// Host paths mounted into the container, in this order after the redis socket directory.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Further environment variables (not those of [`RESERVED_ENV`]).
    #[serde(default)]
    pub env: BTreeMap<EnvName, String>,
    /// Number of ASICs; 0 for a single-ASIC platform.
    #[serde(default)]
    pub asic_count: u32,
    /// Multi-ASIC: run one instance on the host.
    #[serde(default = "default_true")]
    pub global_scope: bool,
    /// Multi-ASIC: run one instance per ASIC.
    #[serde(default)]
    pub per_asic_scope: bool,
    /// Node selector `sonic_version`.
    #[serde(default)]
    pub sonic_version: Option<LabelValue>,
    /// Node selector `worker.sonic/platform`.
    #[serde(default)]
    pub platform: Option<LabelValue>,
    /// Node selector `hwsku`.
    #[serde(default)]
    pub hwsku: Option<LabelValue>,
    /// Further node selectors.
    #[serde(default)]
    pub node_selector: BTreeMap<LabelKey, LabelValue>,
    /// `metadata.namespace` of the DaemonSets; the client's default namespace when absent.
    #[serde(default)]
    pub kube_namespace: Option<String>,
}

/// One instance of a feature on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Instance {
    /// The host (the only instance on a single-ASIC platform).
    Host,
    /// ASIC `N` of a multi-ASIC platform.
    Asic(u32),
}

/// A feature and its validated runtime description: the input of [`daemonsets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureRuntime {
    name: FeatureName,
    runtime: RuntimeDescription,
    node_selector: BTreeMap<String, String>,
}

/// The top level of a spec file as this module reads it.
#[derive(Debug, Deserialize)]
struct SpecFile {
    name: FeatureName,
    runtime: Option<RuntimeDescription>,
}

/// `dhcp_relay` -> `dhcp-relay`: a DNS label from a feature name (which has alphanumeric ends).
fn kube_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

impl FeatureRuntime {
    /// Checks what the field types cannot: reserved environment variables, names and labels
    /// that would be too long, conflicting node selectors and mount paths, instance scopes.
    pub fn new(name: FeatureName, runtime: RuntimeDescription) -> Result<Self, ManifestError> {
        let feature = name.to_string();
        let invalid = |field: &str, value: &str, reason: &str| ManifestError::Invalid {
            feature: feature.clone(),
            field: field.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let label_err = |field: &str| {
            let feature = feature.clone();
            let field = field.to_owned();
            move |source| ManifestError::Label {
                feature,
                field,
                source,
            }
        };
        for key in runtime.env.keys() {
            if RESERVED_ENV.contains(&key.as_str()) {
                return Err(invalid(
                    &format!("runtime.env.{}", key.as_str()),
                    key.as_str(),
                    "set by the manifest generator",
                ));
            }
        }
        for (k, v) in &runtime.env {
            if v.contains('\0') {
                return Err(invalid(
                    &format!("runtime.env.{}", k.as_str()),
                    v,
                    "NUL is not allowed",
                ));
            }
        }
        if runtime.asic_count > 0 && !runtime.global_scope && !runtime.per_asic_scope {
            return Err(invalid(
                "runtime.global-scope",
                "false",
                "with per-asic-scope also false there is no instance to run",
            ));
        }
        if let Some(ns) = &runtime.kube_namespace {
            let ok = !ns.is_empty()
                && ns.len() <= NAME_MAX
                && ns
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && ns.starts_with(|c: char| c.is_ascii_alphanumeric())
                && ns.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !ok {
                return Err(invalid(
                    "runtime.kube-namespace",
                    ns,
                    "expected a DNS label: 1 to 63 of lower-case letters, digits, '-'",
                ));
            }
        }
        let mut seen = Vec::new();
        let redis = runtime.redis_socket.then_some(REDIS_SOCKET_DIR);
        for (i, m) in runtime.mounts.iter().enumerate() {
            let path = m.container_path.as_str();
            if seen.contains(&path) || redis == Some(path) {
                return Err(invalid(
                    &format!("runtime.mounts[{i}].container-path"),
                    path,
                    "mounted twice (redis-socket mounts /var/run/redis)",
                ));
            }
            seen.push(path);
        }

        let mut node_selector = BTreeMap::new();
        let enabled = LabelKey::feature_enabled(&name);
        let version_enabled = LabelKey::feature_version_enabled(&name, &runtime.version)
            .map_err(label_err("runtime.version"))?;
        node_selector.insert(enabled.to_string(), LabelValue::true_().to_string());
        node_selector.insert(version_enabled.to_string(), LabelValue::true_().to_string());
        let typed = [
            (
                "runtime.sonic-version",
                SONIC_VERSION_LABEL,
                &runtime.sonic_version,
            ),
            ("runtime.platform", PLATFORM_LABEL, &runtime.platform),
            ("runtime.hwsku", HWSKU_LABEL, &runtime.hwsku),
        ];
        let extra = runtime
            .node_selector
            .iter()
            .map(|(k, v)| ("runtime.node-selector", k, v));
        let mut add = |field: &str, key: &str, value: &LabelValue| {
            if node_selector
                .insert(key.to_owned(), value.to_string())
                .is_some()
            {
                return Err(invalid(field, key, "this node selector is already set"));
            }
            Ok(())
        };
        for (field, key, value) in typed {
            if let Some(value) = value {
                add(field, key, value)?;
            }
        }
        for (field, key, value) in extra {
            add(field, key.as_str(), value)?;
        }

        let this = Self {
            name,
            runtime,
            node_selector,
        };
        for instance in this.instances() {
            let ds = this.daemonset_name(instance);
            if ds.len() > NAME_MAX {
                return Err(invalid(
                    "name",
                    &ds,
                    "the DaemonSet name (feature, ASIC and version) is longer than 63 characters",
                ));
            }
        }
        Ok(this)
    }

    /// Reads the spec YAML text (`name` and `runtime`; other keys are for the installer).
    pub fn from_yaml(origin: &Path, text: &str) -> Result<Self, ManifestError> {
        let spec: SpecFile =
            serde_yaml::from_str(text).map_err(|source| ManifestError::ParseSpec {
                path: origin.to_path_buf(),
                source,
            })?;
        let runtime = spec.runtime.ok_or_else(|| ManifestError::NoRuntime {
            path: origin.to_path_buf(),
        })?;
        Self::new(spec.name, runtime)
    }

    /// Reads a spec file.
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::ReadSpec {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(path, &text)
    }

    /// The feature.
    pub fn name(&self) -> &FeatureName {
        &self.name
    }

    /// The runtime description.
    pub fn runtime(&self) -> &RuntimeDescription {
        &self.runtime
    }

    /// The node selector every instance uses.
    pub fn node_selector(&self) -> &BTreeMap<String, String> {
        &self.node_selector
    }

    /// The instances to run, host first.
    pub fn instances(&self) -> Vec<Instance> {
        let rt = &self.runtime;
        if rt.asic_count == 0 {
            return vec![Instance::Host];
        }
        let mut out = Vec::new();
        if rt.global_scope {
            out.push(Instance::Host);
        }
        if rt.per_asic_scope {
            out.extend((0..rt.asic_count).map(Instance::Asic));
        }
        out
    }

    /// The container name of an instance: the feature, plus the ASIC number (`lldp0`).
    pub fn container_name(&self, instance: Instance) -> String {
        let base = kube_name(self.name.as_str());
        match instance {
            Instance::Host => base,
            Instance::Asic(n) => format!("{base}{n}"),
        }
    }

    /// The DaemonSet name of an instance: the container name and the version (`lldp0-1-2-3`).
    pub fn daemonset_name(&self, instance: Instance) -> String {
        format!(
            "{}-{}",
            self.container_name(instance),
            self.runtime.version.as_str().replace('.', "-")
        )
    }

    /// `repository:tag`.
    pub fn image(&self) -> String {
        let tag = self.runtime.tag.as_ref().map_or_else(
            || self.runtime.version.as_str().to_owned(),
            |t| t.as_str().to_owned(),
        );
        format!("{}:{tag}", self.runtime.image.as_str())
    }

    fn env(&self, instance: Instance) -> Vec<EnvVar> {
        let var = |name: &str, value: &str| EnvVar {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            value_from: None,
        };
        let mut env = vec![
            var("RUNTIME_OWNER", "kube"),
            var("IMAGE_VERSION", self.runtime.version.as_str()),
        ];
        match (instance, self.runtime.asic_count) {
            (Instance::Host, 0) => {}
            (Instance::Host, _) => env.push(var("NAMESPACE_ID", "")),
            (Instance::Asic(n), _) => env.push(var("NAMESPACE_ID", &n.to_string())),
        }
        env.extend(self.runtime.env.iter().map(|(k, v)| var(k.as_str(), v)));
        env
    }

    fn mounts(&self) -> Vec<Mount> {
        let mut mounts = Vec::with_capacity(self.runtime.mounts.len() + 1);
        if self.runtime.redis_socket {
            let dir = AbsolutePath(REDIS_SOCKET_DIR.to_owned());
            mounts.push(Mount {
                host_path: dir.clone(),
                container_path: dir,
                read_only: false,
                per_asic: true,
            });
        }
        mounts.extend(self.runtime.mounts.iter().cloned());
        mounts
    }

    /// The DaemonSet of one instance.
    pub fn daemonset(&self, instance: Instance) -> DaemonSet {
        let name = self.daemonset_name(instance);
        let labels = BTreeMap::from([("app".to_owned(), name.clone())]);
        let mut volumes = Vec::new();
        let mut volume_mounts = Vec::new();
        for (i, m) in self.mounts().iter().enumerate() {
            let volume = format!("mount{i}");
            let host_path = match instance {
                Instance::Asic(n) if m.per_asic => format!("{}{n}", m.host_path.as_str()),
                _ => m.host_path.as_str().to_owned(),
            };
            volumes.push(Volume {
                name: volume.clone(),
                host_path: Some(HostPathVolumeSource {
                    path: host_path,
                    type_: None,
                }),
                ..Volume::default()
            });
            volume_mounts.push(VolumeMount {
                name: volume,
                mount_path: m.container_path.as_str().to_owned(),
                read_only: m.read_only.then_some(true),
                ..VolumeMount::default()
            });
        }
        let container = Container {
            name: self.container_name(instance),
            image: Some(self.image()),
            env: Some(self.env(instance)),
            volume_mounts: (!volume_mounts.is_empty()).then_some(volume_mounts),
            security_context: self.runtime.privileged.then(|| SecurityContext {
                privileged: Some(true),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        DaemonSet {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: self.runtime.kube_namespace.clone(),
                labels: Some(labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![container],
                        host_network: self.runtime.host_network.then_some(true),
                        node_selector: Some(self.node_selector.clone()),
                        volumes: (!volumes.is_empty()).then_some(volumes),
                        ..PodSpec::default()
                    }),
                },
                ..DaemonSetSpec::default()
            }),
            status: None,
        }
    }
}

/// The DaemonSets of a feature, one per instance, host first.
pub fn daemonsets(desc: &FeatureRuntime) -> Vec<DaemonSet> {
    desc.instances()
        .into_iter()
        .map(|i| desc.daemonset(i))
        .collect()
}

/// `metadata.name` of a generated DaemonSet.
fn ds_name(ds: &DaemonSet) -> String {
    ds.metadata.name.clone().unwrap_or_default()
}

/// One manifest as YAML.
pub fn to_yaml(ds: &DaemonSet) -> Result<String, ManifestError> {
    serde_yaml::to_string(ds).map_err(|source| ManifestError::Serialize {
        name: ds_name(ds),
        source,
    })
}

/// Several manifests as one multi-document YAML stream (`---` between documents), as
/// `kubectl apply -f` takes them.
pub fn to_yaml_stream(list: &[DaemonSet]) -> Result<String, ManifestError> {
    let docs = list.iter().map(to_yaml).collect::<Result<Vec<_>, _>>()?;
    Ok(docs.join("---\n"))
}

/// Writes each manifest to `<dir>/<daemonset name>.yaml` (creating `dir`); returns the files.
pub fn write_manifests(dir: &Path, list: &[DaemonSet]) -> Result<Vec<PathBuf>, ManifestError> {
    std::fs::create_dir_all(dir).map_err(|source| ManifestError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::with_capacity(list.len());
    for ds in list {
        let path = dir.join(format!("{}.yaml", ds_name(ds)));
        std::fs::write(&path, to_yaml(ds)?).map_err(|source| ManifestError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}
