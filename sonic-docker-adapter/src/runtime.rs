//! [`BollardRuntime`]: the core's `ContainerRuntime` and `ImageStore` ports over [`DockerClient`].
//!
//! Errors become `PortError`s whose context is the adapter's full message
//! (`cannot stop container snmp: no such container`); an unreachable or slow daemon is
//! transient, everything else (no such object, conflict, other daemon answers) permanent.

use std::time::Duration;

use async_trait::async_trait;
use sonic_feature_core::model::{ContainerId, Version};
use sonic_feature_core::ports::{
    ContainerInfo, ContainerRuntime, ErrorKind, ImageInfo, ImageStore, PortError,
};

use crate::client::{ContainerDetails, DockerClient, ImageDetails};
use crate::error::DockerError;

/// Docker containers and images for the core, through one [`DockerClient`].
#[derive(Debug)]
pub struct BollardRuntime {
    client: DockerClient,
}

impl BollardRuntime {
    /// Uses `client`.
    pub fn new(client: DockerClient) -> Self {
        BollardRuntime { client }
    }

    /// A runtime for `DOCKER_HOST` (default `unix:///var/run/docker.sock`).
    pub fn from_env() -> Result<Self, DockerError> {
        Ok(Self::new(DockerClient::from_env()?))
    }

    /// The client, for operations outside the ports (create, list, force-remove).
    pub fn client(&self) -> &DockerClient {
        &self.client
    }
}

impl From<DockerError> for PortError {
    fn from(e: DockerError) -> Self {
        let kind = if e.is_transient() {
            ErrorKind::Transient
        } else {
            ErrorKind::Permanent
        };
        let context = e.to_string();
        let source: Option<sonic_feature_core::ports::BoxError> = match e {
            DockerError::Unreachable { source, .. } | DockerError::Other { source, .. } => {
                Some(source)
            }
            DockerError::NotFound { .. }
            | DockerError::Conflict { .. }
            | DockerError::Timeout { .. }
            | DockerError::UnsupportedHost { .. } => None,
        };
        PortError {
            kind,
            context,
            source,
        }
    }
}

/// The port's view of a container: `IMAGE_VERSION` only when it parses as a version.
pub fn container_info(details: ContainerDetails) -> ContainerInfo {
    ContainerInfo {
        image_version: details
            .image_version
            .as_deref()
            .and_then(|v| Version::parse(v).ok()),
        id: details.id,
        name: details.name,
        image_id: details.image_id,
        running: details.running,
    }
}

/// One row per `repository:tag` of each image (untagged images have none), like `docker images`.
pub fn image_rows(images: &[ImageDetails]) -> Vec<ImageInfo> {
    let mut rows: Vec<ImageInfo> = images
        .iter()
        .flat_map(|image| {
            image.repo_tags.iter().filter_map(move |reference| {
                let (repository, tag) = split_reference(reference)?;
                Some(ImageInfo {
                    id: image.id.clone(),
                    repository: repository.to_string(),
                    tag: tag.to_string(),
                })
            })
        })
        .collect();
    rows.sort();
    rows
}

/// `repo:tag` split at the tag's colon, not a registry port's (`reg:5000/x:1` is `reg:5000/x`,
/// `1`); `None` without a tag.
fn split_reference(reference: &str) -> Option<(&str, &str)> {
    let (repo, tag) = reference.rsplit_once(':')?;
    (!repo.is_empty() && !tag.is_empty() && !tag.contains('/')).then_some((repo, tag))
}

/// Whether `reference` is an image id (`sha256:<hex>` or bare hex, full or short) rather than a
/// `repo:tag`.
fn is_image_id(reference: &str) -> bool {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    (12..=64).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[async_trait]
impl ContainerRuntime for BollardRuntime {
    async fn start(&self, id: &ContainerId) -> Result<(), PortError> {
        Ok(self.client.start_container(id.as_str()).await?)
    }

    async fn stop(&self, id: &ContainerId, timeout: Option<Duration>) -> Result<(), PortError> {
        Ok(self.client.stop_container(id.as_str(), timeout).await?)
    }

    /// SIGKILL (upstream's docker-rs sent SIGINT).
    async fn kill(&self, id: &ContainerId) -> Result<(), PortError> {
        Ok(self.client.kill_container(id.as_str()).await?)
    }

    async fn wait(&self, id: &ContainerId) -> Result<i64, PortError> {
        Ok(self.client.wait_container(id.as_str()).await?)
    }

    async fn inspect(&self, id: &ContainerId) -> Result<Option<ContainerInfo>, PortError> {
        Ok(self
            .client
            .inspect_container(id.as_str())
            .await?
            .map(container_info))
    }

    /// `docker rm` without force, like upstream's `_remove_container` (a running container is a
    /// conflict).
    async fn remove(&self, id: &ContainerId) -> Result<(), PortError> {
        Ok(self.client.remove_container(id.as_str(), false).await?)
    }
}

#[async_trait]
impl ImageStore for BollardRuntime {
    async fn list_images(&self) -> Result<Vec<ImageInfo>, PortError> {
        Ok(image_rows(&self.client.list_images().await?))
    }

    async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<(), PortError> {
        Ok(self.client.tag_image(image, repo, tag).await?)
    }

    /// Like upstream's clean-up: `docker rmi <repo:tag>` (untag), and `docker rmi --force <id>`
    /// for ids (an id with several tags needs force).
    async fn remove_image(&self, reference: &str) -> Result<(), PortError> {
        let force = is_image_id(reference);
        Ok(self.client.remove_image(reference, force).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::error::Object;

    #[test]
    fn images_become_one_row_per_tag() {
        let images = vec![
            ImageDetails {
                id: "sha256:aa".into(),
                repo_tags: vec![
                    "docker-snmp:latest".into(),
                    "acr.io:443/sonic/docker-snmp:20201231.74".into(),
                ],
                labels: BTreeMap::new(),
                created: 1,
            },
            ImageDetails {
                id: "sha256:bb".into(),
                repo_tags: vec![],
                labels: BTreeMap::new(),
                created: 2,
            },
        ];
        let rows = image_rows(&images);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].reference(),
            "acr.io:443/sonic/docker-snmp:20201231.74"
        );
        assert!(rows[0].is_downloaded());
        assert_eq!(rows[1].repository, "docker-snmp");
        assert_eq!(rows[1].tag, "latest");
        assert!(rows.iter().all(|r| r.id == "sha256:aa"));
    }

    #[test]
    fn image_ids_are_told_from_references() {
        assert!(is_image_id("sha256:0123456789abcdef0123"));
        assert!(is_image_id("0123456789ab"));
        assert!(!is_image_id("docker-snmp:latest"));
        assert!(!is_image_id("0123"));
    }

    #[test]
    fn invalid_image_versions_are_dropped() {
        let details = |v: Option<&str>| ContainerDetails {
            id: "id".into(),
            name: "snmp".into(),
            running: true,
            status: "running".into(),
            exit_code: Some(0),
            image_id: "sha256:aa".into(),
            image_name: "docker-snmp:latest".into(),
            image_version: v.map(str::to_string),
            labels: BTreeMap::new(),
            env: vec![],
        };
        let info = container_info(details(Some("20201230.80")));
        assert_eq!(
            info.image_version.map(|v| v.to_string()).as_deref(),
            Some("20201230.80")
        );
        assert!(info.running);
        assert_eq!(
            container_info(details(Some("master-123"))).image_version,
            None
        );
        assert_eq!(container_info(details(None)).image_version, None);
    }

    #[test]
    fn port_errors_keep_the_message_and_the_retry_class() {
        let e: PortError = DockerError::NotFound {
            action: "stop",
            object: Object::Container("snmp".into()),
        }
        .into();
        assert_eq!(e.kind, ErrorKind::Permanent);
        assert_eq!(
            e.to_string(),
            "cannot stop container snmp: no such container"
        );

        let e: PortError = DockerError::Timeout {
            action: "start",
            object: Object::Container("snmp".into()),
            host: "unix:///x".into(),
            after: Duration::from_secs(30),
        }
        .into();
        assert!(e.is_transient());
    }
}
