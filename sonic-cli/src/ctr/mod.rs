//! The `container` and `container_startup` binaries: argument parsing, the environment, logging
//! and the wiring of the core's planners, machines and executors to Redis and Docker.
//!
//! No decision is taken here: who runs a feature, whether to fall back and whether a deployment
//! is admitted come from `sonic_feature_core::{container, startup, exec}`. This module reads the
//! environment, opens the adapters (Redis always, Docker only when the command needs it), logs,
//! and maps the outcome to an exit status:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success (`wait`: the container exited with 0 or 137, or no deployment came in time) |
//! | 1 | a one-line reason on stderr: unknown feature, Redis or Docker unreachable, refused operation, malformed data or file |
//! | 2 | bad arguments (clap's usage error) |
//! | 255 | `wait`: the container exited with another code (as upstream's `docker-rs wait`) |
//!
//! - [`args`]: the clap structs of both binaries;
//! - [`settings`]: `SONIC_REMOTE_CTR_CONFIG`, `SONIC_CTRMGRD_UNIT`, `SONIC_LOG_STDERR`;
//! - [`log`]: syslog (falling back silently) and stderr;
//! - [`container`] / [`startup`]: one small function per command and each binary's `main`.

pub mod args;
pub mod container;
pub mod error;
pub mod log;
pub mod settings;
pub mod startup;

use std::time::Instant;

use sonic_feature_core::model::Timestamp;
use sonic_feature_core::ports::Clock;

pub use error::CtrError;

/// The system clock: monotonic time since the process started and local wall-clock text.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    /// A clock whose monotonic time starts now.
    pub fn new() -> Self {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// `%Y-%m-%d %H:%M:%S` in the system's time zone, like upstream's `datetime.now()`.
    fn wall_time(&self) -> String {
        jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// A current-thread runtime: both binaries are short-lived or mostly asleep, and starting worker
/// threads would cost more than `container id` itself.
fn runtime() -> Result<tokio::runtime::Runtime, CtrError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CtrError::Runtime { source })
}

/// Turns a multi-line message into the one line stderr and syslog get.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_time_has_upstream_format() {
        let t = SystemClock::new().wall_time();
        assert_eq!(t.len(), 19, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], " ");
        assert_eq!(&t[13..14], ":");
    }

    #[test]
    fn monotonic_time_does_not_go_back() {
        let c = SystemClock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(one_line("a\n  b\tc \n"), "a b c");
    }
}
