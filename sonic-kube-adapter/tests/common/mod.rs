//! Shared fixtures of the adapter's integration tests: a recording command runner and a switch
//! laid out in a temp dir next to a fake API server.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sonic_kube_adapter::{
    CommandError, CommandOutput, CommandRunner, CommandSpec, KubeNodeCluster, KubePaths,
    KubeSettings,
};
use sonic_tests::fake_kube::FakeKube;

pub const NODE: &str = "sonic-test";

/// Records every argv and answers success, except for programs told to fail or hang.
#[derive(Debug, Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<CommandSpec>>,
    /// argv prefix -> exit code to report.
    failures: Mutex<Vec<(Vec<String>, i32)>>,
    /// argv prefixes that behave as if they never finish (timeout error).
    hangs: Mutex<Vec<Vec<String>>>,
}

impl RecordingRunner {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn fail(&self, prefix: &[&str], code: i32) {
        self.failures
            .lock()
            .unwrap()
            .push((prefix.iter().map(|s| s.to_string()).collect(), code));
    }

    pub fn hang(&self, prefix: &[&str]) {
        self.hangs
            .lock()
            .unwrap()
            .push(prefix.iter().map(|s| s.to_string()).collect());
    }

    pub fn argvs(&self) -> Vec<Vec<String>> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.argv.clone())
            .collect()
    }

    pub fn specs(&self) -> Vec<CommandSpec> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl CommandRunner for RecordingRunner {
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        self.calls.lock().unwrap().push(spec.clone());
        if self
            .hangs
            .lock()
            .unwrap()
            .iter()
            .any(|p| spec.argv.starts_with(p))
        {
            return Err(CommandError::TimedOut {
                command: spec.display(),
                after: spec.timeout,
            });
        }
        let code = self
            .failures
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| spec.argv.starts_with(p))
            .map(|(_, c)| *c)
            .unwrap_or(0);
        Ok(CommandOutput {
            code: Some(code),
            stdout: String::new(),
            stderr: if code == 0 {
                String::new()
            } else {
                "simulated failure".into()
            },
        })
    }
}

pub fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// A switch file system in a temp dir, the fake master, and the adapter wired to both.
pub struct Switch {
    pub dir: tempfile::TempDir,
    pub kube: FakeKube,
    pub runner: Arc<RecordingRunner>,
    pub settings: KubeSettings,
}

impl Switch {
    /// HTTPS fake master with node `NODE` (Ready), the switch's client certificate signed by
    /// the master's CA and the master's CA as the trusted bundle.
    pub async fn new() -> Self {
        let kube = FakeKube::start_https()
            .await
            .expect("fake kube API server must start");
        let dir = tempfile::tempdir().unwrap();
        let mut paths = KubePaths::under(dir.path());
        std::fs::create_dir_all(paths.client_cert.parent().unwrap()).unwrap();
        let id = kube.client_identity(NODE).unwrap();
        std::fs::write(&paths.client_cert, &id.cert_pem).unwrap();
        std::fs::write(&paths.client_key, &id.key_pem).unwrap();
        let bundle = dir.path().join("master-ca.pem");
        std::fs::write(&bundle, kube.ca_pem().unwrap()).unwrap();
        paths.ca_bundle = Some(bundle);
        std::fs::create_dir_all(paths.flannel_conflist.parent().unwrap()).unwrap();
        std::fs::write(
            &paths.flannel_conflist,
            r#"{"name":"cbr0","cniVersion":"0.3.1"}"#,
        )
        .unwrap();
        let mut settings = KubeSettings::new(NODE).with_paths(paths);
        settings.request_timeout = Duration::from_secs(2);
        // No kubelet registers the node here (the tests add it themselves when they need it).
        settings.node_register_timeout = Duration::from_millis(300);
        settings.ca_fetch_timeout = Duration::from_secs(2);
        kube.store().add_node(NODE, &[], true);
        Self {
            dir,
            kube,
            runner: RecordingRunner::new(),
            settings,
        }
    }

    pub fn paths(&self) -> &KubePaths {
        &self.settings.paths
    }

    pub fn cluster(&self) -> KubeNodeCluster {
        KubeNodeCluster::new(self.settings.clone(), self.runner.clone())
    }

    pub fn host(&self) -> String {
        self.kube.addr().ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.kube.addr().port()
    }

    /// What a successful join leaves: the kubeconfig for this master and kubelet's config.
    pub async fn joined(&self) -> KubeNodeCluster {
        let cluster = self.cluster();
        cluster
            .join_master(&self.host(), self.port(), false, true)
            .await
            .expect("join must succeed");
        // The join deleted the stale node object; kubelet registers it again after
        // `kubeadm join` (emulated here until the fake has a kubelet).
        self.kube.store().add_node(NODE, &[], true);
        self.kubelet_configured();
        self.runner_clear();
        cluster
    }

    /// Writes kubelet's config file as `kubeadm join` would.
    pub fn kubelet_configured(&self) {
        let p = &self.paths().kubelet_config;
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "kind: KubeletConfiguration\n").unwrap();
    }

    fn runner_clear(&self) {
        self.runner.calls.lock().unwrap().clear();
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.paths().kubeconfig.clone()
    }
}

/// Polls `f` until it is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
