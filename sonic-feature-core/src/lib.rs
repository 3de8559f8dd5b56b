//! The pure decision core of SONiC's Kubernetes-managed containers.
//!
//! Who owns a feature, whether to fall back to the local image, what to restart, which labels the
//! node carries and which image is golden are decided here and nowhere else. The crate performs no
//! I/O: it never reads a clock, the environment or a file, and depends on no async runtime or
//! outside-system client. Decisions take facts and events in and give actions out;
//! the async executors in `exec` carry them out against the [`ports`] traits, which adapter crates
//! implement.
//!
//! * [`model`]: domain types, parsed and validated once at the edge.
//! * [`ports`]: the traits adapters implement (mocks behind the `mocks` feature).

pub mod model;
pub mod ports;
