//! Logging of the daemon: syslog (ident `ctrmgrd`) in production, memory in tests, and the
//! "once per problem" rule: a failure that repeats on every retry is logged when it starts and
//! when it ends, not on each attempt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something is wrong.
    Error,
    /// Something recovered or changed state.
    Notice,
    /// Routine information.
    Info,
    /// Each action and its outcome (only with [`crate::daemon::Options::trace_actions`]).
    Debug,
}

/// Where log lines go.
pub trait LogSink: Send + Sync + std::fmt::Debug {
    /// Writes one line.
    fn log(&self, level: Level, message: &str);
}

/// Log lines kept in memory (tests read them).
#[derive(Debug, Default, Clone)]
pub struct MemoryLog {
    lines: Arc<Mutex<Vec<(Level, String)>>>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<(Level, String)> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many lines contain `needle`, not counting the action traces ([`Level::Debug`]).
    pub fn count(&self, needle: &str) -> usize {
        self.lines()
            .iter()
            .filter(|(level, l)| *level != Level::Debug && l.contains(needle))
            .count()
    }
}

impl LogSink for MemoryLog {
    fn log(&self, level: Level, message: &str) {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((level, message.to_owned()));
    }
}

/// Syslog through `/dev/log`, falling back to stderr when there is no syslog socket.
pub struct SyslogSink {
    logger: Option<Mutex<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("syslog", &self.logger.is_some())
            .finish()
    }
}

impl SyslogSink {
    /// Connects to the local syslog as `ident` (facility daemon).
    pub fn new(ident: &str) -> Self {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: ident.to_owned(),
            pid: std::process::id(),
        };
        Self {
            logger: syslog::unix(formatter).ok().map(Mutex::new),
        }
    }
}

impl LogSink for SyslogSink {
    fn log(&self, level: Level, message: &str) {
        // Always on stderr too: systemd's journal keeps it with the unit.
        eprintln!("{level:?}: {message}");
        if let Some(l) = &self.logger {
            let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
            let _ = match level {
                Level::Error => l.err(message),
                Level::Notice => l.notice(message),
                Level::Info => l.info(message),
                Level::Debug => l.debug(message),
            };
        }
    }
}

/// Open problems, each logged once when it starts and once when it clears.
#[derive(Debug)]
pub struct Reporter {
    sink: Arc<dyn LogSink>,
    open: BTreeMap<String, String>,
}

impl Reporter {
    /// A reporter writing to `sink`.
    pub fn new(sink: Arc<dyn LogSink>) -> Self {
        Self {
            sink,
            open: BTreeMap::new(),
        }
    }

    /// A problem about `topic`; logged only when the topic has no open problem yet.
    pub fn problem(&mut self, topic: &str, message: &str) {
        if !self.open.contains_key(topic) {
            self.sink.log(Level::Error, &format!("{topic}: {message}"));
            self.open.insert(topic.to_owned(), message.to_owned());
        }
    }

    /// `topic` works again; logged only when it had an open problem.
    pub fn resolved(&mut self, topic: &str) {
        if self.open.remove(topic).is_some() {
            self.sink.log(Level::Notice, &format!("{topic}: recovered"));
        }
    }

    /// Whether `topic` has an open problem.
    pub fn is_open(&self, topic: &str) -> bool {
        self.open.contains_key(topic)
    }

    /// A line logged as is.
    pub fn log(&self, level: Level, message: &str) {
        self.sink.log(level, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_problem_is_logged_once_and_its_end_once() {
        let log = MemoryLog::new();
        let mut r = Reporter::new(Arc::new(log.clone()));
        for _ in 0..5 {
            r.problem("kubernetes master", "connection refused");
        }
        assert!(r.is_open("kubernetes master"));
        r.resolved("kubernetes master");
        r.resolved("kubernetes master");
        r.problem("kubernetes master", "connection refused");
        assert_eq!(log.count("connection refused"), 2);
        assert_eq!(log.count("recovered"), 1);
    }
}
