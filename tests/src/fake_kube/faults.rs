//! Runtime fault injection and the request log of the fake API server.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The connection is closed without an answer (at accept time for global rules, after the
    /// request is read for path rules).
    Reset,
    /// Answer with this HTTP status and a `Status` body (500, 503, 429 ...).
    Status(u16),
    /// Wait this long before handling the request (other rules still apply afterwards).
    Slow(Duration),
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultScope {
    All,
    /// Paths starting with this prefix (`/api/v1/nodes`).
    PathPrefix(String),
}

/// A fault rule; rules are checked in insertion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub scope: FaultScope,
    pub fault: Fault,
    /// Only requests with this method (`GET`, `PATCH` ...), any when `None`.
    pub method: Option<String>,
    /// Applies this many more times, forever when `None`.
    pub remaining: Option<u32>,
}

impl FaultRule {
    pub fn all(fault: Fault) -> Self {
        Self {
            scope: FaultScope::All,
            fault,
            method: None,
            remaining: None,
        }
    }

    pub fn path_prefix(prefix: impl Into<String>, fault: Fault) -> Self {
        Self {
            scope: FaultScope::PathPrefix(prefix.into()),
            fault,
            method: None,
            remaining: None,
        }
    }

    /// Restricts the rule to one HTTP method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Makes the rule apply `n` times only.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let scope_ok = match &self.scope {
            FaultScope::All => true,
            FaultScope::PathPrefix(p) => path.starts_with(p.as_str()),
        };
        scope_ok && self.method.as_deref().is_none_or(|m| m == method)
    }
}

/// Handle returned by [`super::FakeKube::inject`], used to remove the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultId(u64);

#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Mutex<(u64, Vec<(FaultId, FaultRule)>)>,
}

/// What to do with one request.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub delay: Duration,
    pub action: Option<Fault>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Vec<(FaultId, FaultRule)>)> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, rule: FaultRule) -> FaultId {
        let mut g = self.lock();
        g.0 += 1;
        let id = FaultId(g.0);
        g.1.push((id, rule));
        id
    }

    pub fn remove(&self, id: FaultId) {
        self.lock().1.retain(|(i, _)| *i != id);
    }

    pub fn clear(&self) {
        self.lock().1.clear();
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.lock().1.iter().map(|(_, r)| r.clone()).collect()
    }

    /// Consumes one use of a global `Reset` rule, for resets at accept time.
    pub fn take_global_reset(&self) -> bool {
        let mut g = self.lock();
        let pos = g.1.iter().position(|(_, r)| {
            r.scope == FaultScope::All && r.fault == Fault::Reset && r.method.is_none()
        });
        match pos {
            Some(i) => {
                consume(&mut g.1, i);
                true
            }
            None => false,
        }
    }

    pub fn decide(&self, method: &str, path: &str) -> Decision {
        let mut g = self.lock();
        let mut decision = Decision::default();
        let mut i = 0;
        while i < g.1.len() {
            if !g.1[i].1.matches(method, path) {
                i += 1;
                continue;
            }
            let fault = g.1[i].1.fault.clone();
            let removed = consume(&mut g.1, i);
            match fault {
                Fault::Slow(d) => decision.delay += d,
                other => {
                    decision.action = Some(other);
                    break;
                }
            }
            if !removed {
                i += 1;
            }
        }
        decision
    }
}

/// Counts one use of rule `i`; true when it was used up and removed.
fn consume(rules: &mut Vec<(FaultId, FaultRule)>, i: usize) -> bool {
    if let Some(n) = rules[i].1.remaining.as_mut() {
        *n = n.saturating_sub(1);
        if *n == 0 {
            rules.remove(i);
            return true;
        }
    }
    false
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (percent-encoded), `None` without `?`.
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// The fault applied to it, if any.
    pub fault: Option<Fault>,
}

impl RecordedRequest {
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The decoded value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        super::http::parse_query(self.query.as_deref().unwrap_or(""))
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// True for a watch request.
    pub fn is_watch(&self) -> bool {
        matches!(self.query_param("watch").as_deref(), Some("true" | "1"))
    }
}

#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: Mutex<Vec<RecordedRequest>>,
}

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, r: RecordedRequest) {
        self.lock().push(r);
    }

    pub fn all(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}
