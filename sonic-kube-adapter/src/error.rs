//! The adapter's errors, each classified transient (retry) or permanent (needs a change).

use std::path::PathBuf;
use std::time::Duration;

use sonic_feature_core::model::ModelError;
use sonic_feature_core::ports::{ErrorKind, PortError};

use crate::command::CommandError;

/// A step of the join or reset procedure, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Lock,
    ReadCredentials,
    FetchClusterCa,
    WriteKubeconfig,
    DrainOldNode,
    KubeadmReset,
    SetupCni,
    LoadBrNetfilter,
    StartKubelet,
    KubeadmJoin,
    StopKubelet,
    RemoveKubeconfig,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Lock => "take the join lock",
            Step::ReadCredentials => "read the client certificate and key",
            Step::FetchClusterCa => "fetch the cluster ca",
            Step::WriteKubeconfig => "write the kubeconfig",
            Step::DrainOldNode => "drain and delete the old node",
            Step::KubeadmReset => "kubeadm reset",
            Step::SetupCni => "set up the cni directory",
            Step::LoadBrNetfilter => "modprobe br_netfilter",
            Step::StartKubelet => "start kubelet",
            Step::KubeadmJoin => "kubeadm join",
            Step::StopKubelet => "stop kubelet",
            Step::RemoveKubeconfig => "remove the kubeconfig",
        })
    }
}

/// Everything that can go wrong talking to Kubernetes or preparing the node.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// An API request failed (status from the server, connection or TLS failure).
    #[error("kubernetes api: {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// An API request got no answer in time.
    #[error("kubernetes api: {action}: no answer within {after:?}")]
    Timeout { action: String, after: Duration },
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file or directory could not be written, copied or removed.
    #[error("cannot write {what} {path}: {source}")]
    WriteFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig is missing or does not describe a usable cluster.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },
    /// The client certificate, key or CA bundle is not usable PEM.
    #[error("invalid {what} {path}: {reason}")]
    Credentials {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// `default/kube-root-ca.crt` is missing or malformed.
    #[error("config map default/kube-root-ca.crt of {server}: {reason}")]
    RootCa { server: String, reason: String },
    /// The master address cannot be used in a URL.
    #[error("invalid master address {host:?}: {reason}")]
    InvalidServer { host: String, reason: String },
    /// Another join or reset is running.
    #[error("another join or reset holds the lock {path}")]
    LockBusy { path: PathBuf },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A node-side program failed.
    #[error("{step}: {source}")]
    Command {
        step: Step,
        #[source]
        source: CommandError,
    },
    /// A join failed at `step`; the node was reset and the kubeconfig removed.
    #[error("join of {server} failed at step '{step}' (node reset): {source}")]
    Join {
        server: String,
        step: Step,
        #[source]
        source: Box<KubeError>,
    },
    /// A non-forced reset while not connected (upstream returns -1 with this message).
    #[error("currently not connected to the master; use a forced reset if needed")]
    NotConnected,
    /// The node carries a label this crate's model rejects.
    #[error("node {node} carries an invalid label: {source}")]
    InvalidNodeLabel {
        node: String,
        #[source]
        source: ModelError,
    },
}

impl KubeError {
    /// Whether retrying may help.
    ///
    /// Transient: connection refused/reset, timeouts, 5xx, 429, 408, 409 and 404 (the node object
    /// appears only after kubelet registered it, shortly after a join), a busy lock, failed
    /// node-side commands. Permanent: 401/403 (the certificate is not allowed), 400/422
    /// (invalid request), TLS verification failures on either side, malformed kubeconfig, CA
    /// config map or credentials.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KubeError::Api { source, .. } => classify_kube_error(source),
            KubeError::Timeout { .. }
            | KubeError::LockBusy { .. }
            | KubeError::Command { .. }
            | KubeError::WriteFile { .. } => ErrorKind::Transient,
            KubeError::ReadFile { .. }
            | KubeError::Kubeconfig { .. }
            | KubeError::Credentials { .. }
            | KubeError::RootCa { .. }
            | KubeError::InvalidServer { .. }
            | KubeError::Lock { .. }
            | KubeError::NotConnected
            | KubeError::InvalidNodeLabel { .. } => ErrorKind::Permanent,
            KubeError::Join { source, .. } => source.kind(),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// The HTTP status the API server answered with, if any.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            KubeError::Api {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            KubeError::Join { source, .. } => source.status_code(),
            _ => None,
        }
    }
}

impl From<KubeError> for PortError {
    fn from(e: KubeError) -> Self {
        PortError {
            kind: e.kind(),
            context: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

/// Classifies a kube-rs error (see [`KubeError::kind`]).
pub fn classify_kube_error(e: &kube::Error) -> ErrorKind {
    match e {
        kube::Error::Api(status) => classify_status(status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            classify_chain(e)
        }
        _ => ErrorKind::Permanent,
    }
}

/// Classifies an HTTP status code.
pub fn classify_status(code: u16) -> ErrorKind {
    match code {
        404 | 408 | 409 | 429 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// Walks the source chain: a TLS failure is permanent (retrying with the same certificates
/// cannot help), anything else on the wire is transient.
fn classify_chain(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Permanent;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            // `io::Error::source` skips the wrapped error itself (hyper-rustls nests io errors
            // around the rustls error), so descend into it directly.
            if classify_chain(inner) == ErrorKind::Permanent {
                return ErrorKind::Permanent;
            }
        }
        cur = err.source();
    }
    ErrorKind::Transient
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_classified() {
        for code in [404, 408, 409, 429, 500, 503] {
            assert_eq!(classify_status(code), ErrorKind::Transient, "{code}");
        }
        for code in [400, 401, 403, 415, 422] {
            assert_eq!(classify_status(code), ErrorKind::Permanent, "{code}");
        }
    }

    #[test]
    fn tls_errors_inside_io_errors_are_permanent() {
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(classify_chain(&io), ErrorKind::Permanent);
        let nested = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert_eq!(classify_chain(&nested), ErrorKind::Permanent);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_chain(&refused), ErrorKind::Transient);
    }

    #[test]
    fn join_errors_name_the_step_and_keep_the_kind() {
        let e = KubeError::Join {
            server: "10.0.0.1:6443".into(),
            step: Step::KubeadmJoin,
            source: Box::new(KubeError::Command {
                step: Step::KubeadmJoin,
                source: CommandError::TimedOut {
                    command: "kubeadm join".into(),
                    after: Duration::from_secs(360),
                },
            }),
        };
        assert!(e.to_string().contains("step 'kubeadm join'"), "{e}");
        assert!(e.is_transient());
        let p: PortError = e.into();
        assert!(p.is_transient());
    }
}
