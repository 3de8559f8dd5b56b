//! The pure decision core of SONiC's Kubernetes-managed containers.
//!
//! Who owns a feature, whether to fall back to the local image, what to restart, which labels the
//! node carries and which image is golden are decided here and nowhere else. The crate performs no
//! I/O: it never reads a clock, the environment or a file, and depends on no async runtime or
//! outside-system client. Decisions take facts and events in and give actions out (sans-IO, in
//! the manner of `quinn-proto`); the async executors in [`exec`] carry them out against the
//! [`ports`] traits, which adapter crates implement.
//!
//! * [`model`]: domain types, parsed and validated once at the edge.
//! * [`instances`]: multi-ASIC feature instances (`lldp0` = `lldp` on ASIC 0, unit `lldp@0`).
//! * [`ports`]: the traits adapters implement (mocks behind the `mocks` feature).
//! * [`container`]: the `container` command planners and the `wait` machine.
//! * [`startup`]: `container_startup` admission.
//! * [`manager`]: the machine behind `ctrmgrd`.
//! * [`labels`]: the label journal.
//! * [`images`]: image management (mark good, tag as local, purge, golden image).
//! * [`reboot`]: warm, fast and cold reboot preparation and the restore after boot.
//! * [`proxy`]: Docker's HTTP proxy routed to the master (the iptables DNAT rule plan).
//! * [`exec`]: executors of all of the above against the ports.

pub mod container;
pub mod exec;
pub mod images;
pub mod instances;
pub mod labels;
pub mod manager;
pub mod model;
pub mod ports;
pub mod proxy;
pub mod reboot;
pub mod startup;
