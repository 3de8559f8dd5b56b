//! The standalone `fake-kube-master` binary: writes its state directory, serves HTTPS that
//! requires the client certificate it wrote, and exits on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn wait_for(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[tokio::test]
async fn fake_kube_master_serves_with_its_written_credentials_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fake-kube-master"))
        .arg(dir.path())
        .args(["--node", "sonic-lab"])
        .spawn()
        .expect("fake-kube-master must start");
    let url_file = dir.path().join("url");
    assert!(
        wait_for(Duration::from_secs(20), || url_file.exists()),
        "url file never written"
    );
    let url = std::fs::read_to_string(&url_file).unwrap();
    let addr = url.trim().strip_prefix("https://").unwrap().to_string();

    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let cert = std::fs::read(dir.path().join("client.crt")).unwrap();
    let key = std::fs::read(dir.path().join("client.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            CertificateDer::pem_slice_iter(&cert)
                .map(Result::unwrap)
                .collect(),
            PrivateKeyDer::from_pem_slice(&key).unwrap(),
        )
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /api/v1/nodes/sonic-lab HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"name\":\"sonic-lab\""), "{answer}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut status = None;
    assert!(
        wait_for(Duration::from_secs(10), || {
            status = child.try_wait().unwrap();
            status.is_some()
        }),
        "fake-kube-master did not exit on SIGTERM"
    );
    assert!(status.unwrap().success());
}
