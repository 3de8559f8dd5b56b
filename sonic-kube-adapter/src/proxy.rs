//! Docker's HTTP proxy routed to the Kubernetes master (`use_k8s_as_http_proxy`): the I/O around
//! the core's plan (`sonic_feature_core::proxy`) — read Docker's drop-in, resolve the master's
//! name, list the nat OUTPUT chain and run the planned `iptables` deletions and append, each
//! with an argv list and a timeout through the [`CommandRunner`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use sonic_feature_core::ports::{ErrorKind, PortError};
use sonic_feature_core::proxy::{
    IptablesOp, ProxyAddr, ProxyError, list_args, parse_drop_in, parse_nat_listing, plan,
};

use crate::command::{CommandError, CommandRunner, CommandSpec};
use crate::config::KubeSettings;

/// What [`route_http_proxy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOutcome {
    /// Docker has no HTTP proxy (no drop-in, or no `HTTP_PROXY` in it): nothing to route.
    NoProxy,
    /// The rules were already as wanted.
    Unchanged(ProxyAddr),
    /// These operations ran, in order.
    Changed(ProxyAddr, Vec<IptablesOp>),
}

/// Why the route could not be set.
#[derive(Debug, thiserror::Error)]
pub enum HttpProxyError {
    /// Docker's drop-in exists but cannot be read.
    #[error("cannot read docker http proxy drop-in {path}: {source}")]
    ReadDropIn {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The drop-in's `HTTP_PROXY` is not usable.
    #[error("{path}: {source}")]
    DropIn {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ProxyError,
    },
    /// The master's name has no address (nothing is changed).
    #[error("cannot resolve kubernetes master {host:?} for the http proxy route: {reason}")]
    Resolve {
        /// The configured name.
        host: String,
        /// Why.
        reason: String,
    },
    /// The listing of the chain is not understood (nothing is changed).
    #[error("{0}")]
    Listing(#[source] ProxyError),
    /// The master's address cannot be the rule's destination.
    #[error("{0}")]
    Master(#[source] ProxyError),
    /// An `iptables` call failed.
    #[error("iptables: {0}")]
    Iptables(#[source] CommandError),
}

impl HttpProxyError {
    /// Transient: a failed read, name resolution or `iptables` run. Permanent: what only a
    /// configuration change fixes (a malformed drop-in, an IPv6 master, a listing we do not
    /// understand).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ReadDropIn { .. } | Self::Resolve { .. } | Self::Iptables(_) => {
                ErrorKind::Transient
            }
            Self::DropIn { .. } | Self::Listing(_) | Self::Master(_) => ErrorKind::Permanent,
        }
    }
}

impl From<HttpProxyError> for PortError {
    fn from(e: HttpProxyError) -> Self {
        PortError {
            kind: e.kind(),
            context: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

/// Resolves the master's configured address: an IP literal as is, else a DNS lookup within
/// `timeout`, preferring an IPv4 address (the rule is an IPv4 rule).
pub async fn resolve_master(host: &str, timeout: Duration) -> Result<IpAddr, HttpProxyError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    let err = |reason: String| HttpProxyError::Resolve {
        host: host.to_owned(),
        reason,
    };
    let found = tokio::time::timeout(timeout, tokio::net::lookup_host((host, 0)))
        .await
        .map_err(|_| err(format!("no answer within {timeout:?}")))?
        .map_err(|e| err(e.to_string()))?;
    let ips: Vec<IpAddr> = found.map(|a| a.ip()).collect();
    ips.iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| ips.first())
        .copied()
        .ok_or_else(|| err("no address".to_owned()))
}

async fn iptables(
    settings: &KubeSettings,
    runner: &dyn CommandRunner,
    args: Vec<String>,
) -> Result<String, HttpProxyError> {
    let mut argv = settings.iptables.clone();
    argv.extend(args);
    let spec = CommandSpec::new(argv, settings.command_timeout);
    let out = runner
        .run_checked(&spec)
        .await
        .map_err(HttpProxyError::Iptables)?;
    Ok(out.stdout)
}

/// Leaves exactly one nat OUTPUT rule sending Docker's HTTP proxy to `<master>:3128`, or none
/// when `master` is `None`. Without a proxy in Docker's drop-in nothing is done; an
/// unresolvable master changes nothing and is an error.
pub async fn route_http_proxy(
    settings: &KubeSettings,
    runner: &dyn CommandRunner,
    master: Option<&str>,
) -> Result<RouteOutcome, HttpProxyError> {
    let path = &settings.paths.docker_http_proxy_conf;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RouteOutcome::NoProxy),
        Err(source) => {
            return Err(HttpProxyError::ReadDropIn {
                path: path.clone(),
                source,
            });
        }
    };
    let Some(proxy) = parse_drop_in(&text).map_err(|source| HttpProxyError::DropIn {
        path: path.clone(),
        source,
    })?
    else {
        return Ok(RouteOutcome::NoProxy);
    };
    let master_ip = match master {
        Some(host) => Some(resolve_master(host, settings.command_timeout).await?),
        None => None,
    };
    let listing = iptables(settings, runner, list_args()).await?;
    let rules = parse_nat_listing(&listing).map_err(HttpProxyError::Listing)?;
    let ops = plan(&proxy, master_ip, &rules).map_err(HttpProxyError::Master)?;
    if ops.is_empty() {
        return Ok(RouteOutcome::Unchanged(proxy));
    }
    for op in &ops {
        iptables(settings, runner, op.args()).await?;
    }
    tracing::info!(
        "docker http proxy {proxy}: {}",
        ops.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(RouteOutcome::Changed(proxy, ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_literals_resolve_without_a_lookup() {
        let t = Duration::from_secs(1);
        assert_eq!(
            resolve_master("10.0.0.1", t).await.unwrap(),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            resolve_master("[fd00::1]", t).await.unwrap(),
            "fd00::1".parse::<IpAddr>().unwrap()
        );
        assert!(resolve_master("localhost", t).await.is_ok());
    }

    #[tokio::test]
    async fn an_unresolvable_master_is_a_transient_error_naming_it() {
        let e = resolve_master("no-such-host.invalid", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("\"no-such-host.invalid\""), "{e}");
        assert_eq!(e.kind(), ErrorKind::Transient);
    }
}
