//! Docker's HTTP proxy route (`use_k8s_as_http_proxy`) against the real `iptables`, run in a
//! private network namespace per test (`ip netns exec <name> iptables`), so the host's own rules
//! are never read or touched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sonic_feature_core::ports::NodeCluster;
use sonic_kube_adapter::proxy::{HttpProxyError, RouteOutcome, route_http_proxy};
use sonic_kube_adapter::{
    CommandError, CommandOutput, CommandRunner, CommandSpec, KubeNodeCluster, KubePaths,
    KubeSettings, TokioCommandRunner, run_program,
};

const TIMEOUT: Duration = Duration::from_secs(20);
const DROP_IN: &str = "[Service]\nEnvironment=\"HTTP_PROXY=http://172.16.1.1:3128/\"\n";

/// A private network namespace, deleted at drop.
struct NetNs {
    name: String,
}

impl NetNs {
    async fn create() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "sonic-px-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let out = run_program(&["ip", "netns", "add", name.as_str()], TIMEOUT)
            .await
            .expect("`ip` (iproute2) must be installed: scripts/install-deps");
        assert!(
            out.success(),
            "ip netns add {name} failed (the tests need root): {}",
            out.stderr
        );
        Self { name }
    }

    fn iptables(&self) -> Vec<String> {
        ["ip", "netns", "exec", self.name.as_str(), "iptables"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    /// Runs iptables in the namespace; panics on failure.
    async fn run(&self, args: &[&str]) -> String {
        let mut argv = self.iptables();
        argv.extend(args.iter().map(|s| (*s).to_owned()));
        let out = run_program(&argv, TIMEOUT).await.unwrap();
        assert!(out.success(), "{argv:?}: {}", out.stderr);
        out.stdout
    }

    /// The nat OUTPUT rules in `iptables -S` form.
    async fn rules(&self) -> Vec<String> {
        self.run(&["-t", "nat", "-S", "OUTPUT"])
            .await
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_owned)
            .collect()
    }

    async fn add_dnat(&self, port: &str, to: &str) {
        self.run(&[
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            "172.16.1.1",
            "--dport",
            port,
            "-j",
            "DNAT",
            "--to-destination",
            to,
        ])
        .await;
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: delete from a thread with its own runtime (through the workspace's
        // runner, with a timeout).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(run_program(&["ip", "netns", "del", name.as_str()], TIMEOUT))
                .ok()
        })
        .join();
    }
}

fn rule(to: &str) -> String {
    format!("-A OUTPUT -d 172.16.1.1/32 -p tcp -m tcp --dport 3128 -j DNAT --to-destination {to}")
}

fn other_port_rule() -> String {
    "-A OUTPUT -d 172.16.1.1/32 -p tcp -m tcp --dport 3129 -j DNAT --to-destination 11.11.11.11:8088"
        .to_owned()
}

/// Settings with the drop-in under a temp dir and iptables in the namespace.
fn settings(dir: &tempfile::TempDir, ns: &NetNs, drop_in: Option<&str>) -> KubeSettings {
    let mut s = KubeSettings::new("sonic-test").with_paths(KubePaths::under(dir.path()));
    s.iptables = ns.iptables();
    s.command_timeout = TIMEOUT;
    if let Some(text) = drop_in {
        let p = &s.paths.docker_http_proxy_conf;
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    s
}

/// The real runner, counting its calls.
#[derive(Debug, Default)]
struct Counting(AtomicUsize);

#[async_trait]
impl CommandRunner for Counting {
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        TokioCommandRunner.run(spec).await
    }
}

#[tokio::test]
async fn the_rule_is_added_replaced_on_a_new_address_and_removed_without_one() {
    let ns = NetNs::create().await;
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&dir, &ns, Some(DROP_IN));
    let runner = Counting::default();

    let r = route_http_proxy(&s, &runner, Some("10.0.0.1"))
        .await
        .unwrap();
    assert!(
        matches!(r, RouteOutcome::Changed(_, ref ops) if ops.len() == 1),
        "{r:?}"
    );
    assert_eq!(ns.rules().await, vec![rule("10.0.0.1:3128")]);

    // Again: only the listing runs.
    let before = runner.0.load(Ordering::SeqCst);
    let r = route_http_proxy(&s, &runner, Some("10.0.0.1"))
        .await
        .unwrap();
    assert!(matches!(r, RouteOutcome::Unchanged(_)), "{r:?}");
    assert_eq!(runner.0.load(Ordering::SeqCst), before + 1);

    // A new address replaces the rule; another port's rule stays.
    ns.add_dnat("3129", "11.11.11.11:8088").await;
    route_http_proxy(&s, &runner, Some("10.0.0.2"))
        .await
        .unwrap();
    assert_eq!(
        ns.rules().await,
        vec![other_port_rule(), rule("10.0.0.2:3128")]
    );

    // No address: the route goes, the other rule stays.
    route_http_proxy(&s, &runner, None).await.unwrap();
    assert_eq!(ns.rules().await, vec![other_port_rule()]);
}

#[tokio::test]
async fn stale_and_duplicate_rules_are_reduced_to_one() {
    let ns = NetNs::create().await;
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&dir, &ns, Some(DROP_IN));
    ns.add_dnat("3128", "11.11.11.11:8080").await;
    ns.add_dnat("3128", "10.0.0.5:3128").await;
    ns.add_dnat("3129", "11.11.11.11:8088").await;
    ns.add_dnat("3128", "11.11.11.11:8080").await;
    ns.add_dnat("3128", "10.0.0.5:3128").await;

    let r = route_http_proxy(&s, &TokioCommandRunner, Some("10.0.0.5"))
        .await
        .unwrap();
    // Three deletions (highest number first), the first correct rule kept, nothing appended.
    assert!(
        matches!(r, RouteOutcome::Changed(_, ref ops) if ops.len() == 3),
        "{r:?}"
    );
    assert_eq!(
        ns.rules().await,
        vec![rule("10.0.0.5:3128"), other_port_rule()]
    );
}

#[tokio::test]
async fn without_a_proxy_in_the_drop_in_no_iptables_runs() {
    let ns = NetNs::create().await;
    let dir = tempfile::tempdir().unwrap();
    let runner = Counting::default();

    // No drop-in at all.
    let s = settings(&dir, &ns, None);
    let r = route_http_proxy(&s, &runner, Some("10.0.0.1"))
        .await
        .unwrap();
    assert_eq!(r, RouteOutcome::NoProxy);

    // A drop-in with only an HTTPS proxy.
    let s = settings(
        &dir,
        &ns,
        Some("[Service]\nEnvironment=\"HTTPS_PROXY=http://172.16.1.1:3128/\"\n"),
    );
    let r = route_http_proxy(&s, &runner, Some("10.0.0.1"))
        .await
        .unwrap();
    assert_eq!(r, RouteOutcome::NoProxy);
    assert_eq!(runner.0.load(Ordering::SeqCst), 0);
    assert!(ns.rules().await.is_empty());
}

#[tokio::test]
async fn an_unresolvable_master_changes_nothing_and_says_which_name() {
    let ns = NetNs::create().await;
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&dir, &ns, Some(DROP_IN));
    ns.add_dnat("3128", "10.0.0.1:3128").await;
    let e = route_http_proxy(&s, &TokioCommandRunner, Some("no-such-master.invalid"))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpProxyError::Resolve { .. }), "{e}");
    assert!(e.to_string().contains("\"no-such-master.invalid\""), "{e}");
    assert_eq!(ns.rules().await, vec![rule("10.0.0.1:3128")]);
}

#[tokio::test]
async fn a_malformed_drop_in_is_a_permanent_error_naming_the_file() {
    let ns = NetNs::create().await;
    let dir = tempfile::tempdir().unwrap();
    let s = settings(
        &dir,
        &ns,
        Some("[Service]\nEnvironment=\"HTTP_PROXY=http://proxy.example:3128/\"\n"),
    );
    let cluster = KubeNodeCluster::new(s.clone(), Arc::new(TokioCommandRunner));
    let e = cluster
        .route_http_proxy(Some("10.0.0.1".into()))
        .await
        .unwrap_err();
    assert!(!e.is_transient());
    assert!(
        e.context
            .contains(&s.paths.docker_http_proxy_conf.display().to_string()),
        "{}",
        e.context
    );
    assert!(e.context.contains("line 2"), "{}", e.context);
    assert!(ns.rules().await.is_empty());
}

#[tokio::test]
async fn the_node_cluster_port_routes_through_the_same_adapter() {
    let ns = NetNs::create().await;
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&dir, &ns, Some(DROP_IN));
    let cluster = KubeNodeCluster::new(s, Arc::new(TokioCommandRunner));
    cluster
        .route_http_proxy(Some("localhost".into()))
        .await
        .unwrap();
    assert_eq!(ns.rules().await, vec![rule("127.0.0.1:3128")]);
    cluster.route_http_proxy(None).await.unwrap();
    assert!(ns.rules().await.is_empty());
}
