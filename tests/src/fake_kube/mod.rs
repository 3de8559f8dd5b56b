//! A fake Kubernetes API server for tests: HTTPS with a generated CA and required client
//! certificates (or plain HTTP), an inspectable in-memory store with watches, runtime fault
//! injection and a request log.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use sonic_tests::fake_kube::{FakeKube, Fault, FaultRule};
//! let kube = FakeKube::start_https().await?;
//! kube.store().add_node("sonic", &[("a", "b")], true);
//! let id = kube.client_identity("sonic")?;          // signed by the server's CA
//! let _rule = kube.inject(FaultRule::path_prefix("/api/v1/nodes", Fault::Status(500)).times(1));
//! kube.set_down(true).await;                        // connections refused
//! kube.set_down(false).await?;                      // same address again
//! assert!(kube.requests().iter().all(|r| r.path.starts_with('/')));
//! # let _ = id; Ok(()) }
//! ```

mod faults;
mod http;
mod pki;
mod selector;
mod store;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use faults::{Fault, FaultId, FaultRule, FaultScope, RecordedRequest};
pub use pki::{ClientIdentity, TestCa};
pub use selector::{FieldSelector, LabelSelector, Requirement};
pub use store::{ApiError, EventType, Resource, Store, StoreEvent, apply_merge_patch, now_rfc3339};

use http::Shared;

/// How to start the server.
#[derive(Debug, Clone)]
pub struct FakeKubeOptions {
    /// Address to bind; port 0 picks a free one.
    pub bind: SocketAddr,
    /// HTTPS with required client certificates (true) or plain HTTP (false).
    pub tls: bool,
    /// Create `default/kube-root-ca.crt` holding the CA (HTTPS mode only).
    pub root_ca_configmap: bool,
}

impl Default for FakeKubeOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            tls: true,
            root_ca_configmap: true,
        }
    }
}

#[derive(Debug)]
struct Running {
    accept: JoinHandle<()>,
    shutdown: watch::Sender<u64>,
}

/// A running fake API server. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca: Option<TestCa>,
    tls: Option<Arc<rustls::ServerConfig>>,
    running: Mutex<Option<Running>>,
    generation: Mutex<u64>,
}

impl FakeKube {
    /// HTTPS on 127.0.0.1 with a fresh CA and required client certificates.
    pub async fn start_https() -> anyhow::Result<Self> {
        Self::start(FakeKubeOptions::default()).await
    }

    /// Plain HTTP on 127.0.0.1.
    pub async fn start_http() -> anyhow::Result<Self> {
        Self::start(FakeKubeOptions {
            tls: false,
            ..FakeKubeOptions::default()
        })
        .await
    }

    pub async fn start(options: FakeKubeOptions) -> anyhow::Result<Self> {
        let (ca, tls) = if options.tls {
            let ca = TestCa::generate("fake-kube-ca")?;
            let tls = tls_config(&ca, options.bind.ip())?;
            (Some(ca), Some(tls))
        } else {
            (None, None)
        };
        let store = Arc::new(Store::new());
        if options.root_ca_configmap
            && let Some(ca) = &ca
        {
            store.set_root_ca(&ca.cert_pem());
        }
        let shared = Arc::new(Shared {
            store,
            faults: Default::default(),
            log: Default::default(),
        });
        let listener = bind(options.bind)
            .await
            .with_context(|| format!("fake kube: cannot bind {}", options.bind))?;
        let addr = listener.local_addr()?;
        let server = Self {
            shared,
            addr,
            ca,
            tls,
            running: Mutex::new(None),
            generation: Mutex::new(0),
        };
        server.serve(listener);
        Ok(server)
    }

    fn serve(&self, listener: TcpListener) {
        let (shutdown, _) = watch::channel(self.next_generation());
        let accept = tokio::spawn(accept_loop(
            listener,
            self.shared.clone(),
            self.tls.clone().map(TlsAcceptor::from),
            shutdown.clone(),
        ));
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Running { accept, shutdown });
    }

    fn next_generation(&self) -> u64 {
        let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *g += 1;
        *g
    }

    /// `https://127.0.0.1:<port>` (or `http://...`); IPv6 addresses are bracketed.
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that signed the server certificate and valid client certificates.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca.as_ref().map(TestCa::cert_pem)
    }

    /// A client certificate + key the server accepts (user `common_name`).
    pub fn client_identity(&self, common_name: &str) -> anyhow::Result<ClientIdentity> {
        self.ca
            .as_ref()
            .context("fake kube: plain HTTP server has no CA")?
            .client_identity(common_name)
    }

    /// A client certificate + key signed by a foreign CA: the server rejects it.
    pub fn foreign_client_identity(common_name: &str) -> anyhow::Result<ClientIdentity> {
        TestCa::generate("foreign-ca")?.client_identity(common_name)
    }

    /// The object store (nodes, config maps, daemon sets, pods), shared with the server.
    pub fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }

    /// Adds a fault rule; returns its id for [`FakeKube::remove_fault`].
    pub fn inject(&self, rule: FaultRule) -> FaultId {
        self.shared.faults.add(rule)
    }

    pub fn remove_fault(&self, id: FaultId) {
        self.shared.faults.remove(id)
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear()
    }

    pub fn faults(&self) -> Vec<FaultRule> {
        self.shared.faults.rules()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.all()
    }

    /// Requests other than watches, discovery and `/version`: the ones that read or change state.
    pub fn api_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| {
                !r.is_watch()
                    && (r.path.starts_with("/api/v1/") || r.path.starts_with("/apis/apps/v1/"))
            })
            .collect()
    }

    pub fn clear_requests(&self) {
        self.shared.log.clear()
    }

    /// Whether the server is down (listener closed).
    pub fn is_down(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// `true`: closes the listener and every open connection (clients get connection refused).
    /// `false`: listens again on the same address.
    pub async fn set_down(&self, down: bool) -> anyhow::Result<()> {
        if down {
            let running = self
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(r) = running {
                r.accept.abort();
                let _ = r.accept.await;
                r.shutdown.send_replace(u64::MAX);
            }
            Ok(())
        } else {
            if !self.is_down() {
                return Ok(());
            }
            let listener = bind(self.addr)
                .await
                .with_context(|| format!("fake kube: cannot listen again on {}", self.addr))?;
            self.serve(listener);
            Ok(())
        }
    }

    /// Writes `ca.crt`, `client.crt`, `client.key` (user `common_name`) and `url` into `dir`.
    pub fn write_state(&self, dir: &Path, common_name: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        if let Some(ca) = self.ca_pem() {
            std::fs::write(dir.join("ca.crt"), ca)?;
            self.client_identity(common_name)?.write_to(dir, "client")?;
        }
        // Written last so a reader can wait for it.
        let tmp = dir.join(".url.tmp");
        std::fs::write(&tmp, format!("{}\n", self.url()))?;
        std::fs::rename(&tmp, dir.join("url"))?;
        Ok(())
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            r.accept.abort();
            r.shutdown.send_replace(u64::MAX);
        }
    }
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Re-listening on the same port after `set_down(false)` must not wait for TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

fn tls_config(ca: &TestCa, bind_ip: IpAddr) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ca.server_identity(&[bind_ip])?;
    let certs = CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()) {
        roots.add(c?)?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: Option<TlsAcceptor>,
    shutdown: watch::Sender<u64>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        if shared.faults.take_global_reset() {
            // RST instead of FIN so the client sees "connection reset".
            let _ = stream.set_zero_linger();
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let mut stop = shutdown.subscribe();
        tokio::spawn(async move {
            let conn_stop = stop.clone();
            let serve = async move {
                let service = hyper::service::service_fn(move |req| {
                    http::handle(shared.clone(), req, conn_stop.clone())
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = stop.changed() => {}
            }
        });
    }
}
