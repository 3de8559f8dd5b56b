//! The adapter's error type: which operation on which container or image failed, and whether it is
//! worth retrying (daemon unreachable or slow) or not (no such object, conflict, anything else).

use std::fmt;
use std::time::Duration;

/// What an operation was applied to, for error messages (`container snmp`, `image snmp:1.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A container, by name or id.
    Container(String),
    /// An image, by reference or id.
    Image(String),
    /// The list of containers.
    Containers,
    /// The list of images.
    Images,
    /// The engine itself (connecting, version negotiation).
    Daemon,
}

impl Object {
    /// The noun used in "no such ..." (`container`, `image`).
    pub fn noun(&self) -> &'static str {
        match self {
            Object::Container(_) | Object::Containers => "container",
            Object::Image(_) | Object::Images => "image",
            Object::Daemon => "docker daemon",
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Container(name) => write!(f, "container {name}"),
            Object::Image(name) => write!(f, "image {name}"),
            Object::Containers => f.write_str("containers"),
            Object::Images => f.write_str("images"),
            Object::Daemon => f.write_str("docker daemon"),
        }
    }
}

/// A failed Docker operation. Every message reads `cannot <action> <object>: <reason>`.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The container or image does not exist (HTTP 404).
    #[error("cannot {action} {object}: no such {}", object.noun())]
    NotFound {
        /// The operation (`stop`, `remove`, ...).
        action: &'static str,
        /// What it was applied to.
        object: Object,
    },
    /// The object is in a state that forbids the operation (HTTP 409): killing a stopped
    /// container, removing a running one without force, a name already in use, an image in use.
    #[error("cannot {action} {object}: {message}")]
    Conflict {
        /// The operation.
        action: &'static str,
        /// What it was applied to.
        object: Object,
        /// Docker's explanation.
        message: String,
    },
    /// The daemon could not be reached (no socket, connection refused, broken connection);
    /// transient: retry later.
    #[error("cannot {action} {object}: docker daemon at {host} is unreachable: {source}")]
    Unreachable {
        /// The operation.
        action: &'static str,
        /// What it was applied to.
        object: Object,
        /// The `DOCKER_HOST` used.
        host: String,
        /// The transport error (boxed: bollard's error is large).
        #[source]
        source: Box<bollard::errors::Error>,
    },
    /// The daemon did not answer in time; transient: retry later.
    #[error("cannot {action} {object}: docker daemon at {host} did not answer within {} s", after.as_secs())]
    Timeout {
        /// The operation.
        action: &'static str,
        /// What it was applied to.
        object: Object,
        /// The `DOCKER_HOST` used.
        host: String,
        /// The time limit that expired.
        after: Duration,
    },
    /// Any other answer of the daemon (bad request, server error, malformed answer).
    #[error("cannot {action} {object}: {source}")]
    Other {
        /// The operation.
        action: &'static str,
        /// What it was applied to.
        object: Object,
        /// What bollard reported (boxed: bollard's error is large).
        #[source]
        source: Box<bollard::errors::Error>,
    },
    /// `DOCKER_HOST` names a transport this adapter does not speak.
    #[error(
        "unsupported DOCKER_HOST {host:?}: expected unix:///path/to/docker.sock or tcp://host:port"
    )]
    UnsupportedHost {
        /// The value given.
        host: String,
    },
}

impl DockerError {
    /// Whether retrying later may succeed without anything else changing.
    pub fn is_transient(&self) -> bool {
        match self {
            DockerError::Unreachable { .. } | DockerError::Timeout { .. } => true,
            DockerError::NotFound { .. }
            | DockerError::Conflict { .. }
            | DockerError::Other { .. }
            | DockerError::UnsupportedHost { .. } => false,
        }
    }

    /// Whether the container or image does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DockerError::NotFound { .. })
    }

    /// Whether the object is in a state that forbids the operation.
    pub fn is_conflict(&self) -> bool {
        matches!(self, DockerError::Conflict { .. })
    }

    /// Classifies a bollard error of `action` on `object` against the daemon at `host`.
    pub(crate) fn from_bollard(
        action: &'static str,
        object: Object,
        host: &str,
        source: bollard::errors::Error,
    ) -> Self {
        use bollard::errors::Error as B;
        match source {
            B::DockerResponseServerError {
                status_code: 404, ..
            } => DockerError::NotFound { action, object },
            B::DockerResponseServerError {
                status_code: 409,
                message,
            } => DockerError::Conflict {
                action,
                object,
                message: conflict_message(&message),
            },
            B::RequestTimeoutError => DockerError::Timeout {
                action,
                object,
                host: host.to_string(),
                after: Duration::ZERO,
            },
            B::SocketNotFoundError(_)
            | B::IOError { .. }
            | B::HyperLegacyError { .. }
            | B::HyperResponseError { .. }
            | B::HttpClientError { .. } => DockerError::Unreachable {
                action,
                object,
                host: host.to_string(),
                source: Box::new(source),
            },
            other => DockerError::Other {
                action,
                object,
                source: Box::new(other),
            },
        }
    }
}

/// Docker's conflict messages start with a capital and sometimes a "Conflict. " prefix; keep the
/// explanation, in the lowercase style of our messages.
fn conflict_message(message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    let message = message
        .strip_prefix("Conflict. ")
        .or_else(|| message.strip_prefix("conflict: "))
        .unwrap_or(message);
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "conflict".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: message.to_string(),
        }
    }

    #[test]
    fn not_found_names_the_operation_and_the_container() {
        let e = DockerError::from_bollard(
            "stop",
            Object::Container("snmp".into()),
            "unix:///x",
            server(404, "No such container: snmp"),
        );
        assert_eq!(
            e.to_string(),
            "cannot stop container snmp: no such container"
        );
        assert!(e.is_not_found() && !e.is_transient());
    }

    #[test]
    fn conflict_keeps_dockers_reason_in_lowercase() {
        let e = DockerError::from_bollard(
            "kill",
            Object::Container("snmp".into()),
            "unix:///x",
            server(409, "Container 0123abcd is not running"),
        );
        assert_eq!(
            e.to_string(),
            "cannot kill container snmp: container 0123abcd is not running"
        );
        assert!(e.is_conflict() && !e.is_transient());
    }

    #[test]
    fn missing_socket_is_transient_and_names_the_host() {
        let e = DockerError::from_bollard(
            "start",
            Object::Container("lldp".into()),
            "unix:///run/nowhere.sock",
            bollard::errors::Error::SocketNotFoundError("/run/nowhere.sock".into()),
        );
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "cannot start container lldp: docker daemon at unix:///run/nowhere.sock is unreachable: \
             Socket not found: /run/nowhere.sock"
        );
    }

    #[test]
    fn server_errors_are_permanent_other_errors() {
        let e = DockerError::from_bollard(
            "create",
            Object::Container("x".into()),
            "unix:///x",
            server(500, "OCI runtime create failed"),
        );
        assert!(matches!(e, DockerError::Other { .. }) && !e.is_transient());
        assert!(e.to_string().starts_with("cannot create container x: "));
    }
}
