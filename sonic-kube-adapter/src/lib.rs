//! Kubernetes side of SONiC's managed containers, through kube-rs (rustls with ring only).
//!
//! * [`cluster::KubeNodeCluster`] implements the core's `NodeCluster` port: join and reset of
//!   the master, node readiness, node labels by one merge patch.
//! * [`client`]: the CA fetch at join (the switch's client certificate; the master verified
//!   against the system roots plus an optional bundle unless `insecure`) and clients built from
//!   the joined kubeconfig.
//! * [`kubeconfig`]: rendering (IPv6 bracketed) and the atomic 0600 write.
//! * [`command`]: host programs for the whole workspace: [`command::run_program`] (argv lists,
//!   never a shell, enforced timeouts, the one place that spawns) and the
//!   [`command::CommandRunner`] port over it.
//! * [`error`]: [`error::KubeError`], classified transient or permanent.
//! * [`proxy`]: Docker's HTTP proxy routed to the master (`use_k8s_as_http_proxy`): the
//!   drop-in, name resolution and `iptables` around the core's rule plan.

pub mod client;
pub mod cluster;
pub mod command;
pub mod config;
pub mod error;
pub mod kubeconfig;
pub mod labels;
pub mod manifest;
pub mod proxy;

pub use cluster::{JoinLock, JoinOutcome, KubeNodeCluster};
pub use command::{
    CommandError, CommandOutput, CommandRunner, CommandSpec, TokioCommandRunner, run_program,
};
pub use config::{KubePaths, KubeSettings};
pub use error::{KubeError, Step};
