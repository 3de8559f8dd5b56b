//! `ctrmgrd`, the switch-side daemon of Kubernetes-managed containers, as a library so that
//! tests can run it in-process with emulated ports.
//!
//! - [`daemon`]: the `tokio::select!` loop and the executor around the core's manager.
//! - [`lanes`]: the action queue: actions of different features run at the same time.
//! - [`wiring`]: production ports (Redis, Docker, Kubernetes, systemctl) from [`settings`].
//! - [`instances`]: multi-ASIC routing of feature instances to namespaces and units.
//! - [`services`]: the systemctl service manager and the system clock.
//! - [`report`]: syslog and the once-per-problem rule.
//!
//! No decision is taken here: who owns a feature, when to restart, fall back, label or clean
//! images is decided by `sonic_feature_core::manager::Manager`.

pub mod daemon;
pub mod instances;
pub mod lanes;
pub mod report;
pub mod services;
pub mod settings;
pub mod wiring;

pub use daemon::{Control, DaemonError, DaemonPorts, Exit, Options, Sources, run};
