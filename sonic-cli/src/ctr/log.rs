//! Logging of the container binaries: syslog under the binary's ident (like upstream's
//! `syslog.openlog`), and stderr when asked (`-v/--verbose`, `SONIC_LOG_STDERR=1`).
//!
//! The syslog socket is opened on the first message, so that `container id`, which logs nothing,
//! pays nothing for it; when `/dev/log` is absent (a container without it, a test machine) the
//! messages go to stderr only if asked, and are otherwise dropped silently.

use std::io::Write;
use std::sync::Mutex;

use syslog::{Facility, Formatter3164, LoggerBackend};

use super::one_line;

type Syslog = syslog::Logger<LoggerBackend, Formatter3164>;

/// Severity of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal operation.
    Info,
    /// Something is wrong.
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Error => "ERR",
        }
    }
}

/// The log of one process.
pub struct Logger {
    ident: &'static str,
    stderr: bool,
    /// `None`: not opened yet; `Some(None)`: no syslog here.
    syslog: Mutex<Option<Option<Syslog>>>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("ident", &self.ident)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

impl Logger {
    /// A log under `ident`, echoed to stderr when `stderr` is set.
    pub fn new(ident: &'static str, stderr: bool) -> Self {
        Logger {
            ident,
            stderr,
            syslog: Mutex::new(None),
        }
    }

    /// Whether messages are echoed to stderr.
    pub fn echoes_to_stderr(&self) -> bool {
        self.stderr
    }

    /// Logs an informational message.
    pub fn info(&self, message: &str) {
        self.log(Level::Info, message, self.stderr);
    }

    /// Logs an error.
    pub fn error(&self, message: &str) {
        self.log(Level::Error, message, self.stderr);
    }

    /// Logs an error to syslog only (the caller prints it on stderr itself).
    pub fn error_to_syslog(&self, message: &str) {
        self.log(Level::Error, message, false);
    }

    fn log(&self, level: Level, message: &str, stderr: bool) {
        let message = one_line(message);
        if stderr {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}: {}: {message}",
                self.ident,
                level.as_str()
            );
        }
        // A poisoned lock only means another thread panicked while logging; keep logging.
        let mut guard = self
            .syslog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = guard.get_or_insert_with(|| self.open());
        if let Some(logger) = slot {
            let sent = match level {
                Level::Info => logger.info(message.as_str()),
                Level::Error => logger.err(message.as_str()),
            };
            // syslogd restarted: drop the socket; the next message opens it again.
            if sent.is_err() {
                *guard = None;
            }
        }
    }

    fn open(&self) -> Option<Syslog> {
        let formatter = Formatter3164 {
            facility: Facility::LOG_USER,
            hostname: None,
            process: self.ident.to_string(),
            pid: std::process::id(),
        };
        syslog::unix(formatter).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logging_without_syslog_socket_does_not_fail() {
        // Whether or not /dev/log exists here, logging never panics or errors.
        let log = Logger::new("container-test", false);
        log.info("first message");
        log.error("second\nmessage");
        assert!(!log.echoes_to_stderr());
    }
}
