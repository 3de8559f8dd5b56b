//! TODO: crate docs.
