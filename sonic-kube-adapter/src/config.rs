//! Where the adapter finds and puts things on the switch, and how long it waits.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every file and directory the join / reset steps touch. `Default` gives upstream's paths;
/// tests use [`KubePaths::under`] to move them all into a temp dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubePaths {
    /// Kubeconfig written at join, used for every API call and as kubeadm's discovery file.
    pub kubeconfig: PathBuf,
    /// The switch's client certificate (PEM) presented to the master.
    pub client_cert: PathBuf,
    /// The private key of `client_cert` (PEM).
    pub client_key: PathBuf,
    /// Extra CA certificates (PEM bundle) trusted, next to the system roots, when fetching the
    /// cluster CA in secure mode. `None`: system roots only.
    pub ca_bundle: Option<PathBuf>,
    /// Exclusive lock held during a join or reset.
    pub lock_file: PathBuf,
    /// CNI configuration directory, recreated at join.
    pub cni_dir: PathBuf,
    /// The dummy flannel conflist copied into `cni_dir` so the node reports Ready.
    pub flannel_conflist: PathBuf,
    /// Kubelet configuration written by `kubeadm join`; its presence means "joined".
    pub kubelet_config: PathBuf,
    /// Docker's systemd drop-in holding `HTTP_PROXY` (`use_k8s_as_http_proxy`).
    pub docker_http_proxy_conf: PathBuf,
}

impl Default for KubePaths {
    fn default() -> Self {
        Self {
            kubeconfig: "/etc/sonic/kube_admin.conf".into(),
            client_cert: "/etc/sonic/credentials/restapiserver.crt".into(),
            client_key: "/etc/sonic/credentials/restapiserver.key".into(),
            ca_bundle: None,
            lock_file: "/var/lock/kube_join.lock".into(),
            cni_dir: "/etc/cni/net.d".into(),
            flannel_conflist: "/usr/share/sonic/templates/kube_cni.10-flannel.conflist".into(),
            kubelet_config: "/var/lib/kubelet/config.yaml".into(),
            docker_http_proxy_conf: "/etc/systemd/system/docker.service.d/http_proxy.conf".into(),
        }
    }
}

impl KubePaths {
    /// Upstream's paths re-rooted under `root` (`/etc/sonic/x` becomes `<root>/etc/sonic/x`).
    pub fn under(root: &Path) -> Self {
        let d = Self::default();
        let re = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        Self {
            kubeconfig: re(&d.kubeconfig),
            client_cert: re(&d.client_cert),
            client_key: re(&d.client_key),
            ca_bundle: None,
            lock_file: re(&d.lock_file),
            cni_dir: re(&d.cni_dir),
            flannel_conflist: re(&d.flannel_conflist),
            kubelet_config: re(&d.kubelet_config),
            docker_http_proxy_conf: re(&d.docker_http_proxy_conf),
        }
    }
}

/// Adapter settings: node identity, paths and time limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeSettings {
    /// The Kubernetes node name: the switch's host name in lower case (upstream #7694).
    pub node_name: String,
    pub paths: KubePaths,
    /// Limit for each API request (labels, node status, drain steps).
    pub request_timeout: Duration,
    /// Limit for fetching the cluster CA at join (upstream: 10 s).
    pub ca_fetch_timeout: Duration,
    /// Limit for node-side commands other than `kubeadm join` (upstream: 60 s).
    pub command_timeout: Duration,
    /// Limit for `kubeadm join` (upstream: 360 s, #26341).
    pub join_timeout: Duration,
    /// How long a join waits, after `kubeadm join` returned, for kubelet to register the node
    /// at the master (its labels cannot be set before); the join succeeds anyway afterwards.
    pub node_register_timeout: Duration,
    /// The `iptables` program as an argv prefix (`["iptables"]`; tests run it in a private
    /// network namespace with `["ip", "netns", "exec", <name>, "iptables"]`).
    pub iptables: Vec<String>,
}

impl KubeSettings {
    /// Upstream defaults for the node named after `hostname` (lower-cased).
    pub fn new(hostname: &str) -> Self {
        Self {
            node_name: hostname.to_lowercase(),
            paths: KubePaths::default(),
            request_timeout: Duration::from_secs(20),
            ca_fetch_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
            join_timeout: Duration::from_secs(360),
            node_register_timeout: Duration::from_secs(30),
            iptables: vec!["iptables".to_owned()],
        }
    }

    /// The same settings with `paths`.
    pub fn with_paths(mut self, paths: KubePaths) -> Self {
        self.paths = paths;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_upstream_paths_and_under_reroots_them() {
        let s = KubeSettings::new("SONiC-01");
        assert_eq!(s.node_name, "sonic-01");
        assert_eq!(
            s.paths.kubeconfig,
            PathBuf::from("/etc/sonic/kube_admin.conf")
        );
        assert_eq!(s.join_timeout, Duration::from_secs(360));
        let p = KubePaths::under(Path::new("/tmp/x"));
        assert_eq!(p.lock_file, PathBuf::from("/tmp/x/var/lock/kube_join.lock"));
        assert_eq!(p.cni_dir, PathBuf::from("/tmp/x/etc/cni/net.d"));
    }
}
