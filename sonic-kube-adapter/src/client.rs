//! Building kube-rs clients: from the joined kubeconfig, and the one-off client that fetches the
//! cluster CA with the switch's certificate at join.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::config::{AuthInfo, Kubeconfig};
use kube::{Client, Config};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::KubeError;

fn finish(mut config: Config, timeout: Duration) -> Config {
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    // Retrying is the caller's decision (the core retries transient errors on its timers).
    config.default_retry = false;
    config
}

/// A client for the cluster described by kubeconfig `text` (read from `path`).
pub fn client_from_kubeconfig(
    path: &Path,
    text: &str,
    timeout: Duration,
) -> Result<Client, KubeError> {
    let bad = |reason: String| KubeError::Kubeconfig {
        path: path.to_path_buf(),
        reason,
    };
    // serde_yaml (already linked) instead of kube's own YAML reader: ctrmgrd's code, all of
    // which is resident, is smaller by its size. kubeadm writes single-document kubeconfigs.
    let kc: Kubeconfig = serde_yaml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let config = Config::try_from(kc).map_err(|e| bad(e.to_string()))?;
    Client::try_from(finish(config, timeout)).map_err(|e| bad(e.to_string()))
}

/// Parses every certificate in `pem`; `what`/`path` name the source in errors.
pub fn pem_certificates(
    pem: &[u8],
    what: &'static str,
    path: &Path,
) -> Result<Vec<Vec<u8>>, KubeError> {
    let bad = |reason: String| KubeError::Credentials {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// Checks that `pem` holds a private key.
pub fn check_private_key(pem: &[u8], path: &Path) -> Result<(), KubeError> {
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem)
        .map(drop)
        .map_err(|e| KubeError::Credentials {
            what: "client key",
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// The trust anchors for the secure CA fetch: the system roots plus `bundle`.
///
/// The master's serving certificate is signed by the cluster CA we are about to download, so it
/// cannot be used yet; upstream verified with Python requests' default store (certifi). We use
/// the operating system's roots and, when configured, an extra bundle, so a master whose
/// certificate chains to a private CA can still be verified without turning verification off.
fn trust_anchors(bundle: Option<&Path>) -> Result<Vec<Vec<u8>>, KubeError> {
    let mut anchors = Vec::new();
    let mut probe = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // Skip system certificates webpki cannot use instead of failing the whole store.
        if probe.add(cert.clone()).is_ok() {
            anchors.push(cert.as_ref().to_vec());
        }
    }
    if let Some(path) = bundle {
        let pem = std::fs::read(path).map_err(|source| KubeError::ReadFile {
            what: "ca bundle",
            path: path.to_path_buf(),
            source,
        })?;
        anchors.extend(pem_certificates(&pem, "ca bundle", path)?);
    }
    Ok(anchors)
}

/// Where and how to fetch the cluster CA.
#[derive(Debug, Clone)]
pub struct CaFetch<'a> {
    /// `https://<host>:<port>`.
    pub server: &'a str,
    pub client_cert: &'a Path,
    pub client_key: &'a Path,
    /// Skip verification of the master's certificate (CONFIG_DB `insecure=true`).
    pub insecure: bool,
    pub ca_bundle: Option<&'a Path>,
    pub timeout: Duration,
}

/// Fetches `data["ca.crt"]` of `default/kube-root-ca.crt` presenting the client certificate.
pub async fn fetch_root_ca(req: &CaFetch<'_>) -> Result<String, KubeError> {
    let action = format!(
        "get config map default/kube-root-ca.crt from {}",
        req.server
    );
    let uri: http::Uri =
        req.server
            .parse()
            .map_err(|e: http::uri::InvalidUri| KubeError::InvalidServer {
                host: req.server.to_string(),
                reason: e.to_string(),
            })?;
    let mut config = Config::new(uri);
    config.auth_info = AuthInfo {
        client_certificate: Some(req.client_cert.to_string_lossy().into_owned()),
        client_key: Some(req.client_key.to_string_lossy().into_owned()),
        ..AuthInfo::default()
    };
    if req.insecure {
        config.accept_invalid_certs = true;
    } else {
        config.root_cert = Some(trust_anchors(req.ca_bundle)?);
    }
    let client =
        Client::try_from(finish(config, req.timeout)).map_err(|source| KubeError::Api {
            action: action.clone(),
            source,
        })?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm = match tokio::time::timeout(req.timeout, api.get("kube-root-ca.crt")).await {
        Err(_) => {
            return Err(KubeError::Timeout {
                action,
                after: req.timeout,
            });
        }
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => {
            return Err(KubeError::RootCa {
                server: req.server.to_string(),
                reason: "not found".into(),
            });
        }
        Ok(Err(source)) => return Err(KubeError::Api { action, source }),
        Ok(Ok(cm)) => cm,
    };
    let ca = cm
        .data
        .as_ref()
        .and_then(|d| d.get("ca.crt"))
        .ok_or_else(|| KubeError::RootCa {
            server: req.server.to_string(),
            reason: "data has no \"ca.crt\"".into(),
        })?;
    pem_certificates(ca.as_bytes(), "cluster ca", Path::new("kube-root-ca.crt")).map_err(|_| {
        KubeError::RootCa {
            server: req.server.to_string(),
            reason: "data[\"ca.crt\"] is not a PEM certificate".into(),
        }
    })?;
    Ok(ca.clone())
}
