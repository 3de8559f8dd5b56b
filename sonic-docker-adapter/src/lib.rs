//! Docker for SONiC's container management, through bollard: container start / stop / kill /
//! wait / inspect / create / remove / list, image list / tag / remove / inspect, and the id of the
//! container this process runs in (cgroup v1 and v2).
//!
//! [`DockerClient`] is the whole Docker surface; [`BollardRuntime`] implements the core's
//! `ContainerRuntime` and `ImageStore` ports on top of it. This is the only crate that knows
//! bollard.

mod client;
mod error;
pub mod own_container;
mod runtime;

pub use client::{
    Bind, ContainerDetails, ContainerSummary, CreateSpec, DEFAULT_DOCKER_HOST, DOCKER_HOST_ENV,
    DockerClient, IMAGE_VERSION_ENV, ImageDetails, Timeouts, image_version,
};
pub use error::{DockerError, Object};
pub use own_container::{OwnIdError, own_container_id, short_id};
pub use runtime::{BollardRuntime, container_info, image_rows};
