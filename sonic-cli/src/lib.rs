//! SONiC's `show` and `config` commands for FEATURE and Kubernetes, byte-compatible with
//! sonic-utilities (click 8.1, tabulate 0.9.0, natsort), plus `--json` on every `show` command.
//!
//! - [`click`]: the command-tree dispatcher with click's abbreviations, help and usage errors;
//! - [`tree`]: the `show` and `config` trees;
//! - [`show`] / [`config`]: one function per command (reads, pure checks, writes);
//! - [`install`]: `config feature install|uninstall` (unit and script generators, files, the
//!   `FEATURE` entry);
//! - [`render`]: pure render functions of every output, over [`tabulate`] and [`natsort`];
//! - [`app`]: what the binaries run: dispatch, the root check, the runtime, exit codes.
//!
//! Deliberate differences from upstream are listed in docs/COMPATIBILITY.md, the JSON forms in JSON.md.

pub mod app;
pub mod click;
pub mod config;
pub mod ctr;
pub mod install;
pub mod natsort;
pub mod render;
pub mod show;
pub mod tabulate;
pub mod tree;
