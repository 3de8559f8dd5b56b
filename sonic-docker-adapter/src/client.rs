//! [`DockerClient`]: the Docker operations SONiC's container management needs, over bollard, each
//! with a time limit and errors that name the operation and the container or image.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, HostConfigCgroupnsModeEnum,
    ImageInspect, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    StopContainerOptionsBuilder, TagImageOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::sync::OnceCell;

use crate::error::{DockerError, Object};

/// The engine used when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// The environment variable naming the engine.
pub const DOCKER_HOST_ENV: &str = "DOCKER_HOST";
/// The environment variable carrying a SONiC image's version in its config.
pub const IMAGE_VERSION_ENV: &str = "IMAGE_VERSION";

/// Time limits of Docker calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Limit of one ordinary request (inspect, start, kill, list, tag, ...).
    pub request: Duration,
    /// Added to a stop's own grace period: the daemon answers a stop only once the container is
    /// gone.
    pub stop_margin: Duration,
    /// Grace period of a stop without an explicit timeout (docker's default, 10 s).
    pub default_stop: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request: Duration::from_secs(30),
            stop_margin: Duration::from_secs(30),
            default_stop: Duration::from_secs(10),
        }
    }
}

/// What `inspect` tells about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDetails {
    /// Full id.
    pub id: String,
    /// Name without docker's leading `/`.
    pub name: String,
    /// Whether it runs now.
    pub running: bool,
    /// Docker's state word (`created`, `running`, `exited`, ...).
    pub status: String,
    /// Exit code of the last run (0 for a container never started).
    pub exit_code: Option<i64>,
    /// Id of the image (`sha256:...`).
    pub image_id: String,
    /// The image reference it was created from (`docker-snmp:latest`).
    pub image_name: String,
    /// `IMAGE_VERSION` from the container's environment, if set.
    pub image_version: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Environment, `KEY=value` entries.
    pub env: Vec<String>,
}

/// One entry of the container list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Full id.
    pub id: String,
    /// Names without docker's leading `/`.
    pub names: Vec<String>,
    /// Image reference it was created from.
    pub image: String,
    /// Image id.
    pub image_id: String,
    /// Docker's state word.
    pub state: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// What Docker tells about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDetails {
    /// Id (`sha256:...`).
    pub id: String,
    /// `repo:tag` references naming it (empty for an untagged image).
    pub repo_tags: Vec<String>,
    /// Labels of the image config.
    pub labels: BTreeMap<String, String>,
    /// Creation time, seconds since the epoch (0 when unknown).
    pub created: i64,
}

/// A host path bind-mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Path on the host.
    pub host: String,
    /// Path in the container.
    pub container: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// How to create a container: the runtime options a SONiC feature container needs. Restart policy
/// is always `no`: systemd (or Kubernetes) restarts features, not dockerd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateSpec {
    /// Container name.
    pub name: String,
    /// Image reference or id.
    pub image: String,
    /// Environment (`RUNTIME_OWNER=local` for a locally started feature).
    pub env: Vec<(String, String)>,
    /// Command; `None` keeps the image's `CMD`.
    pub cmd: Option<Vec<String>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Bind mounts.
    pub binds: Vec<Bind>,
    /// `tmpfs` mount points (`/tmp`, `/var/tmp` for SONiC features).
    pub tmpfs: Vec<String>,
    /// `--net=host` (every SONiC feature container).
    pub host_network: bool,
    /// `--privileged`.
    pub privileged: bool,
    /// A private cgroup namespace (`--cgroupns=private`) instead of the daemon's default.
    pub private_cgroupns: bool,
}

impl CreateSpec {
    /// A spec for `name` from `image` with nothing else set.
    pub fn new(name: &str, image: &str) -> Self {
        CreateSpec {
            name: name.to_string(),
            image: image.to_string(),
            ..Default::default()
        }
    }
}

/// A connection to one Docker engine.
///
/// Constructing it does no I/O: the connection and the API version negotiation (Debian's dockerd
/// 20.10 speaks API 1.41, older than bollard's default) happen on first use and are retried on
/// later calls while they fail, so a client made before dockerd is up works once it is.
#[derive(Debug)]
pub struct DockerClient {
    host: String,
    timeouts: Timeouts,
    docker: OnceCell<Docker>,
}

impl DockerClient {
    /// A client for `DOCKER_HOST`, or `unix:///var/run/docker.sock` when it is unset or empty.
    pub fn from_env() -> Result<Self, DockerError> {
        let host = std::env::var(DOCKER_HOST_ENV)
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string());
        Self::new(&host)
    }

    /// A client for `host` (`unix:///path`, `tcp://host:port` or `http://host:port`).
    pub fn new(host: &str) -> Result<Self, DockerError> {
        let supported = host
            .strip_prefix("unix://")
            .is_some_and(|p| p.starts_with('/'))
            || host.starts_with("tcp://")
            || host.starts_with("http://");
        if !supported {
            return Err(DockerError::UnsupportedHost {
                host: host.to_string(),
            });
        }
        Ok(DockerClient {
            host: host.to_string(),
            timeouts: Timeouts::default(),
            docker: OnceCell::new(),
        })
    }

    /// The same client with other time limits.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The engine this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The time limits in use.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    async fn docker(&self, action: &'static str, object: &Object) -> Result<&Docker, DockerError> {
        self.docker
            .get_or_try_init(|| async {
                let secs = self.timeouts.request.as_secs().max(1);
                let connected = if self.host.starts_with("unix://") {
                    Docker::connect_with_unix(&self.host, secs, bollard::API_DEFAULT_VERSION)
                } else {
                    Docker::connect_with_http(&self.host, secs, bollard::API_DEFAULT_VERSION)
                };
                let docker = connected.map_err(|e| self.error(action, object.clone(), e))?;
                match tokio::time::timeout(self.timeouts.request, docker.negotiate_version()).await
                {
                    Ok(Ok(docker)) => Ok(docker),
                    Ok(Err(e)) => Err(self.error(action, object.clone(), e)),
                    Err(_) => Err(self.timeout(action, object.clone(), self.timeouts.request)),
                }
            })
            .await
    }

    /// Classifies `e`; a bollard timeout is reported with the limit of the request.
    fn error_within(
        &self,
        action: &'static str,
        object: Object,
        e: bollard::errors::Error,
        limit: Duration,
    ) -> DockerError {
        let mut err = DockerError::from_bollard(action, object, &self.host, e);
        if let DockerError::Timeout { after, .. } = &mut err {
            *after = limit;
        }
        err
    }

    fn error(
        &self,
        action: &'static str,
        object: Object,
        e: bollard::errors::Error,
    ) -> DockerError {
        self.error_within(action, object, e, self.timeouts.request)
    }

    fn timeout(&self, action: &'static str, object: Object, after: Duration) -> DockerError {
        DockerError::Timeout {
            action,
            object,
            host: self.host.clone(),
            after,
        }
    }

    /// Runs one request against the engine with a time limit, classifying its error.
    async fn call<'a, T, F, Fut>(
        &'a self,
        action: &'static str,
        object: Object,
        limit: Duration,
        f: F,
    ) -> Result<T, DockerError>
    where
        F: FnOnce(&'a Docker) -> Fut,
        Fut: Future<Output = Result<T, bollard::errors::Error>>,
    {
        let docker = self.docker(action, &object).await?;
        match tokio::time::timeout(limit, f(docker)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error_within(action, object, e, limit)),
            Err(_) => Err(self.timeout(action, object, limit)),
        }
    }

    /// Answers `/_ping`: the engine is reachable.
    pub async fn ping(&self) -> Result<(), DockerError> {
        self.call(
            "ping",
            Object::Daemon,
            self.timeouts.request,
            |d| async move { d.ping().await.map(|_| ()) },
        )
        .await
    }

    // --- containers -----------------------------------------------------------------------

    /// Starts a container; starting a running container succeeds (docker answers 304).
    pub async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        let object = Object::Container(id.to_string());
        self.call("start", object, self.timeouts.request, |d| async move {
            d.start_container(id, None).await
        })
        .await
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout` (docker's default of 10 s
    /// when `None`). Stopping a stopped container succeeds (docker answers 304).
    pub async fn stop_container(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<(), DockerError> {
        let grace = timeout.unwrap_or(self.timeouts.default_stop);
        let mut options = StopContainerOptionsBuilder::new();
        if let Some(t) = timeout {
            options = options.t(i32::try_from(t.as_secs()).unwrap_or(i32::MAX));
        }
        let options = options.build();
        let limit = grace + self.timeouts.stop_margin;
        let object = Object::Container(id.to_string());
        self.call("stop", object, limit, |d| async move {
            // bollard's own limit covers the whole answer here, which comes after the stop.
            let d = d.clone().with_timeout(limit);
            d.stop_container(id, Some(options)).await
        })
        .await
    }

    /// Kills a container with SIGKILL. (Upstream's `docker-rs kill` sent SIGINT, which a feature's
    /// supervisord may handle as a graceful stop; a kill here is meant to be immediate.) Killing a
    /// container that is not running is a conflict.
    pub async fn kill_container(&self, id: &str) -> Result<(), DockerError> {
        let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        let object = Object::Container(id.to_string());
        self.call("kill", object, self.timeouts.request, |d| async move {
            d.kill_container(id, Some(options)).await
        })
        .await
    }

    /// Waits until the container is not running and returns its exit code (137 after SIGKILL).
    /// Returns at once for a container that is not running. There is no overall time limit: a
    /// feature's `wait` lasts as long as the feature runs; only the daemon's first answer is
    /// bounded by the request limit.
    pub async fn wait_container(&self, id: &str) -> Result<i64, DockerError> {
        let object = Object::Container(id.to_string());
        let docker = self.docker("wait for", &object).await?;
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut stream = docker.wait_container(id, Some(options));
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard turns a non-zero exit code into an error; it is the answer we want.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { error, code }))
                if error.is_empty() =>
            {
                Ok(code)
            }
            Some(Err(e)) => Err(self.error("wait for", object, e)),
            // The engine went away in the middle of the wait (dockerd stopping closes its
            // connections): as unreachable as a refused connection, so callers retry.
            None => Err(DockerError::Unreachable {
                action: "wait for",
                object,
                host: self.host().to_string(),
                source: Box::new(bollard::errors::Error::DockerStreamError {
                    error: "the daemon closed the wait without an exit code".to_string(),
                }),
            }),
        }
    }

    /// Inspects a container; `None` when it does not exist.
    pub async fn inspect_container(
        &self,
        id: &str,
    ) -> Result<Option<ContainerDetails>, DockerError> {
        let object = Object::Container(id.to_string());
        let answer = self
            .call("inspect", object, self.timeouts.request, |d| async move {
                d.inspect_container(id, None).await
            })
            .await;
        match answer {
            Ok(response) => Ok(Some(container_details(response))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a container (not started) and returns its id.
    pub async fn create_container(&self, spec: &CreateSpec) -> Result<String, DockerError> {
        let object = Object::Container(spec.name.clone());
        let body = create_body(spec);
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let response = self
            .call("create", object, self.timeouts.request, |d| async move {
                d.create_container(Some(options), body).await
            })
            .await?;
        Ok(response.id)
    }

    /// Removes a container; `force` also kills a running one.
    pub async fn remove_container(&self, id: &str, force: bool) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::new().force(force).build();
        let object = Object::Container(id.to_string());
        self.call("remove", object, self.timeouts.request, |d| async move {
            d.remove_container(id, Some(options)).await
        })
        .await
    }

    /// Lists containers (`all`: stopped ones too).
    pub async fn list_containers(&self, all: bool) -> Result<Vec<ContainerSummary>, DockerError> {
        let options = ListContainersOptionsBuilder::new().all(all).build();
        let list = self
            .call(
                "list",
                Object::Containers,
                self.timeouts.request,
                |d| async move { d.list_containers(Some(options)).await },
            )
            .await?;
        Ok(list
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                names: c
                    .names
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .collect(),
                image: c.image.unwrap_or_default(),
                image_id: c.image_id.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
            })
            .collect())
    }

    // --- images ---------------------------------------------------------------------------

    /// Lists images (tagged and untagged top-level ones, like `docker images -a` without
    /// intermediate layers).
    pub async fn list_images(&self) -> Result<Vec<ImageDetails>, DockerError> {
        let options = ListImagesOptionsBuilder::new().all(false).build();
        let list = self
            .call(
                "list",
                Object::Images,
                self.timeouts.request,
                |d| async move { d.list_images(Some(options)).await },
            )
            .await?;
        Ok(list
            .into_iter()
            .map(|i| ImageDetails {
                id: i.id,
                repo_tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                labels: i.labels.into_iter().collect(),
                created: i.created,
            })
            .collect())
    }

    /// Inspects an image by reference or id; `None` when it does not exist.
    pub async fn inspect_image(
        &self,
        reference: &str,
    ) -> Result<Option<ImageDetails>, DockerError> {
        let object = Object::Image(reference.to_string());
        let answer = self
            .call("inspect", object, self.timeouts.request, |d| async move {
                d.inspect_image(reference).await
            })
            .await;
        match answer {
            Ok(image) => Ok(Some(image_details(image))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Tags `image` (reference or id) as `repo:tag`, moving the tag if it named another image.
    pub async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<(), DockerError> {
        let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        let object = Object::Image(image.to_string());
        self.call("tag", object, self.timeouts.request, |d| async move {
            d.tag_image(image, Some(options)).await
        })
        .await
    }

    /// Removes an image by reference (untags it; the image goes when no tag is left) or by id
    /// (`force` is needed for an id with several tags or used by a stopped container).
    pub async fn remove_image(&self, reference: &str, force: bool) -> Result<(), DockerError> {
        let options = RemoveImageOptionsBuilder::new().force(force).build();
        let object = Object::Image(reference.to_string());
        self.call("remove", object, self.timeouts.request, |d| async move {
            d.remove_image(reference, Some(options), None)
                .await
                .map(|_| ())
        })
        .await
    }
}

fn create_body(spec: &CreateSpec) -> ContainerCreateBody {
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let binds: Vec<String> = spec
        .binds
        .iter()
        .map(|b| {
            let mode = if b.read_only { ":ro" } else { "" };
            format!("{}:{}{mode}", b.host, b.container)
        })
        .collect();
    let tmpfs = spec
        .tmpfs
        .iter()
        .map(|p| (p.clone(), String::new()))
        .collect();
    let host_config = HostConfig {
        network_mode: spec.host_network.then(|| "host".to_string()),
        binds: (!binds.is_empty()).then_some(binds),
        tmpfs: (!spec.tmpfs.is_empty()).then_some(tmpfs),
        privileged: Some(spec.privileged),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        cgroupns_mode: spec
            .private_cgroupns
            .then_some(HostConfigCgroupnsModeEnum::PRIVATE),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: (!env.is_empty()).then_some(env),
        cmd: spec.cmd.clone(),
        labels: (!spec.labels.is_empty()).then(|| {
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        host_config: Some(host_config),
        ..Default::default()
    }
}

fn container_details(response: ContainerInspectResponse) -> ContainerDetails {
    let state = response.state.unwrap_or_default();
    let config = response.config.unwrap_or_default();
    let env = config.env.unwrap_or_default();
    ContainerDetails {
        id: response.id.unwrap_or_default(),
        name: response
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        running: state.running.unwrap_or(false),
        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
        exit_code: state.exit_code,
        image_id: response.image.unwrap_or_default(),
        image_name: config.image.unwrap_or_default(),
        image_version: image_version(&env),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        env,
    }
}

/// `IMAGE_VERSION` from `KEY=value` entries (the first one, like upstream's `container_version`).
pub fn image_version(env: &[String]) -> Option<String> {
    env.iter().find_map(|e| {
        e.strip_prefix(IMAGE_VERSION_ENV)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_string)
    })
}

fn image_details(image: ImageInspect) -> ImageDetails {
    let created = image
        .created
        .as_deref()
        .and_then(parse_rfc3339_seconds)
        .unwrap_or(0);
    ImageDetails {
        id: image.id.unwrap_or_default(),
        repo_tags: image.repo_tags.unwrap_or_default(),
        labels: image
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default()
            .into_iter()
            .collect(),
        created,
    }
}

/// Seconds since the epoch of an RFC 3339 UTC time as docker writes it
/// (`2024-05-01T12:34:56.789012345Z`); `None` for anything else.
fn parse_rfc3339_seconds(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.strip_suffix('Z')?;
    let time = time.split('.').next()?;
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_version_is_read_from_the_environment() {
        let env = vec![
            "PATH=/bin".to_string(),
            "IMAGE_VERSIONX=9".to_string(),
            "IMAGE_VERSION=20201230.80".to_string(),
            "IMAGE_VERSION=2".to_string(),
        ];
        assert_eq!(image_version(&env).as_deref(), Some("20201230.80"));
        assert_eq!(image_version(&["PATH=/bin".to_string()]), None);
    }

    #[test]
    fn docker_times_convert_to_epoch_seconds() {
        assert_eq!(parse_rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_seconds("2024-05-01T12:34:56.789012345Z"),
            Some(1_714_566_896)
        );
        assert_eq!(parse_rfc3339_seconds("yesterday"), None);
    }

    #[test]
    fn create_body_carries_the_feature_runtime_options() {
        let mut spec = CreateSpec::new("snmp", "docker-snmp:latest");
        spec.env.push(("RUNTIME_OWNER".into(), "local".into()));
        spec.host_network = true;
        spec.binds.push(Bind {
            host: "/etc/sonic".into(),
            container: "/etc/sonic".into(),
            read_only: true,
        });
        spec.tmpfs.push("/tmp".into());
        let body = create_body(&spec);
        assert_eq!(body.env, Some(vec!["RUNTIME_OWNER=local".to_string()]));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(
            host.binds,
            Some(vec!["/etc/sonic:/etc/sonic:ro".to_string()])
        );
        assert_eq!(
            host.restart_policy.and_then(|r| r.name),
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(host.cgroupns_mode, None);
    }

    #[test]
    fn unsupported_hosts_are_rejected_by_name() {
        let err = DockerClient::new("ssh://switch").unwrap_err();
        assert!(err.to_string().contains("ssh://switch"), "{err}");
        assert!(DockerClient::new("unix://relative.sock").is_err());
        assert!(DockerClient::new("unix:///run/docker.sock").is_ok());
        assert!(DockerClient::new("tcp://127.0.0.1:2375").is_ok());
    }
}
