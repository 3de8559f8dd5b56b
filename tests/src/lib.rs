//! Shared test harness for the workspace: private servers started per test, fakes and emulators.
//!
//! Every piece here runs real software on loopback or unix sockets in temp dirs; nothing touches
//! the host's `/etc/sonic`, the host's Redis or a fixed TCP port.
#![allow(clippy::unwrap_used)]

pub mod docker;
pub mod fake_kube;
pub mod kubelet;
pub mod lab;
pub mod redis;
pub mod service_manager;
