//! The kubeconfig written at join: master URL (IPv6 bracketed), rendering with embedded
//! credentials, and an atomic 0600 write.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::error::KubeError;

/// `https://<host>:<port>`, with IPv6 literals in brackets.
pub fn server_url(host: &str, port: u16) -> Result<String, KubeError> {
    let invalid = |reason: &str| KubeError::InvalidServer {
        host: host.to_string(),
        reason: reason.to_string(),
    };
    let h = host.trim();
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        inner
            .parse::<Ipv6Addr>()
            .map_err(|_| invalid("brackets must hold an IPv6 address"))?;
        return Ok(format!("https://[{inner}]:{port}"));
    }
    if let Ok(v6) = h.parse::<Ipv6Addr>() {
        return Ok(format!("https://[{v6}]:{port}"));
    }
    if h.parse::<Ipv4Addr>().is_ok() {
        return Ok(format!("https://{h}:{port}"));
    }
    let hostname_ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !hostname_ok {
        return Err(invalid(
            "expected an IPv4 or IPv6 address or a DNS host name",
        ));
    }
    Ok(format!("https://{h}:{port}"))
}

/// Renders the kubeconfig upstream writes: cluster `kubernetes`, user `user`, context
/// `user@kubernetes`, CA and client credentials embedded as base64 data.
pub fn render_kubeconfig(server: &str, ca_pem: &str, cert_pem: &[u8], key_pem: &[u8]) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "kubernetes",
            "cluster": {
                "certificate-authority-data": STANDARD.encode(ca_pem.as_bytes()),
                "server": server,
            }
        }],
        "users": [{
            "name": "user",
            "user": {
                "client-certificate-data": STANDARD.encode(cert_pem),
                "client-key-data": STANDARD.encode(key_pem),
            }
        }],
        "contexts": [{
            "name": "user@kubernetes",
            "context": {"cluster": "kubernetes", "user": "user"}
        }],
        "current-context": "user@kubernetes",
    });
    // A JSON document of strings always serialises as YAML.
    serde_yaml::to_string(&doc).unwrap_or_else(|_| doc.to_string())
}

/// The `server` of the current context's cluster (the first cluster as a fallback).
pub fn kubeconfig_server(text: &str) -> Option<String> {
    let kc: kube::config::Kubeconfig = serde_yaml::from_str(text).ok()?;
    let cluster_name = kc.current_context.as_ref().and_then(|ctx| {
        kc.contexts
            .iter()
            .find(|c| &c.name == ctx)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
    });
    let cluster = match cluster_name {
        Some(name) => kc.clusters.iter().find(|c| c.name == name),
        None => kc.clusters.first(),
    }?;
    cluster.cluster.as_ref()?.server.clone()
}

/// Writes `contents` to `path` with mode 0600: temp file in the same directory, fsync, rename,
/// fsync of the directory, so readers see the old or the new file and never a partial one.
pub fn write_private_atomically(path: &Path, contents: &[u8]) -> Result<(), KubeError> {
    let err = |source| KubeError::WriteFile {
        what: "kubeconfig",
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kubeconfig".into());
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ipv6_literals_are_bracketed_and_bad_hosts_rejected() {
        assert_eq!(
            server_url("10.1.2.3", 6443).unwrap(),
            "https://10.1.2.3:6443"
        );
        assert_eq!(
            server_url("fd00::1", 6443).unwrap(),
            "https://[fd00::1]:6443"
        );
        assert_eq!(server_url("[::1]", 443).unwrap(), "https://[::1]:443");
        assert_eq!(
            server_url("Master.example", 6443).unwrap(),
            "https://Master.example:6443"
        );
        for bad in ["", "a b", "x/y", "user@host", "[nope]", "-lead", "a;reboot"] {
            assert!(server_url(bad, 6443).is_err(), "{bad}");
        }
    }

    #[test]
    fn rendered_kubeconfig_has_upstream_names_and_embedded_data() {
        let text = render_kubeconfig("https://[fd00::1]:6443", "CA", b"CERT", b"KEY");
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("user@kubernetes"));
        assert_eq!(kc.clusters[0].name, "kubernetes");
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        assert_eq!(kc.auth_infos[0].name, "user");
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.client_certificate_data.as_deref(), Some("Q0VSVA=="));
        assert_eq!(
            kubeconfig_server(&text).as_deref(),
            Some("https://[fd00::1]:6443")
        );
    }

    #[test]
    fn kubeconfig_is_written_0600_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/sonic/kube_admin.conf");
        write_private_atomically(&path, b"one").unwrap();
        write_private_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }
}
