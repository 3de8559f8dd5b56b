//! `use_k8s_as_http_proxy` end to end: ctrmgrd (in-process, on the simulated switch of
//! `ctrmgrd_common`) keeps the one nat OUTPUT DNAT rule sending Docker's HTTP proxy (from the
//! switch's `http_proxy.conf` drop-in) to `<KUBERNETES_MASTER|SERVER ip>:3128` as the address in
//! CONFIG_DB changes, and removes it when the address goes; with the option `"n"` no rule is
//! ever made. `iptables` is the real one, run in a private network namespace per test, so the
//! host's own rules are never read or touched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ctrmgrd_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use async_trait::async_trait;
use ctrmgrd_common::{NodeCommands, RunningDaemon, Switch, TIMERS, wait_for};
use sonic_db::Fields;
use sonic_feature_core::model::RemoteCtrConfig;
use sonic_kube_adapter::{
    CommandError, CommandOutput, CommandRunner, CommandSpec, TokioCommandRunner, run_program,
};

const DEADLINE: Duration = Duration::from_secs(60);
const CMD_TIMEOUT: Duration = Duration::from_secs(20);
const DROP_IN: &str = "[Service]\nEnvironment=\"HTTP_PROXY=http://172.16.1.1:3128/\"\n";

/// A private network namespace, deleted at drop.
struct NetNs {
    name: String,
}

impl NetNs {
    async fn create() -> anyhow::Result<Self> {
        let name = format!("sonic-pxe-{}-{}", std::process::id(), rand_suffix());
        let out = run_program(&["ip", "netns", "add", name.as_str()], CMD_TIMEOUT)
            .await
            .context("`ip` (iproute2) must be installed: scripts/install-deps")?;
        ensure!(
            out.success(),
            "ip netns add {name} failed (the test needs root): {}",
            out.stderr
        );
        Ok(Self { name })
    }

    fn iptables(&self) -> Vec<String> {
        ["ip", "netns", "exec", self.name.as_str(), "iptables"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    /// The nat OUTPUT rules in `iptables -S` form.
    async fn rules(&self) -> Vec<String> {
        let mut argv = self.iptables();
        argv.extend(["-t", "nat", "-S", "OUTPUT"].map(str::to_owned));
        let out = run_program(&argv, CMD_TIMEOUT).await.unwrap();
        assert!(out.success(), "{argv:?}: {}", out.stderr);
        out.stdout
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: delete from a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(run_program(
                &["ip", "netns", "del", name.as_str()],
                CMD_TIMEOUT,
            ))
            .ok()
        })
        .join();
    }
}

/// Distinguishes the namespaces of the tests of this binary, which run in parallel.
fn rand_suffix() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn rule(to: &str) -> String {
    format!("-A OUTPUT -d 172.16.1.1/32 -p tcp -m tcp --dport 3128 -j DNAT --to-destination {to}")
}

/// The switch's node commands (kubeadm, systemctl: recorded and successful), except the
/// namespace's `iptables`, which really runs; counts the iptables runs.
#[derive(Debug)]
struct Runner {
    node: Arc<NodeCommands>,
    iptables: AtomicUsize,
}

#[async_trait]
impl CommandRunner for Runner {
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        if spec.argv.first().map(String::as_str) == Some("ip") {
            self.iptables.fetch_add(1, Ordering::SeqCst);
            TokioCommandRunner.run(spec).await
        } else {
            self.node.run(spec).await
        }
    }
}

/// ctrmgrd in-process on `sw` with `use_k8s_as_http_proxy` set to `proxy`, Docker's drop-in
/// in the switch's directory and iptables in `ns`.
async fn start_daemon(
    sw: &Switch,
    ns: &NetNs,
    proxy: &str,
) -> anyhow::Result<(RunningDaemon, Arc<Runner>)> {
    let timers_text = TIMERS.replace(
        "\"use_k8s_as_http_proxy\": \"n\"",
        &format!("\"use_k8s_as_http_proxy\": \"{proxy}\""),
    );
    let timers = RemoteCtrConfig::from_json_str(&timers_text)?;
    ensure!(timers.use_k8s_as_http_proxy == (proxy == "y"));

    let mut settings = sw.kube_settings.clone();
    settings.iptables = ns.iptables();
    settings.command_timeout = CMD_TIMEOUT;
    let drop_in = &settings.paths.docker_http_proxy_conf;
    std::fs::create_dir_all(drop_in.parent().unwrap())?;
    std::fs::write(drop_in, DROP_IN)?;

    let runner = Arc::new(Runner {
        node: sw.runner.clone(),
        iptables: AtomicUsize::new(0),
    });
    let daemon = sw
        .start_daemon_configured(&timers_text, settings, runner.clone(), None, None)
        .await?;
    Ok((daemon, runner))
}

async fn set_master_ip(sw: &Switch, ip: &str) -> anyhow::Result<()> {
    let f: Fields = [("ip".to_string(), ip.to_string())].into();
    sw.config_db()
        .await?
        .mod_entry("KUBERNETES_MASTER", "SERVER", &f)
        .await?;
    Ok(())
}

async fn wait_rules(ns: &NetNs, want: Vec<String>) -> anyhow::Result<()> {
    let what = format!("nat OUTPUT rules {want:?}");
    let waited = wait_for(&what, DEADLINE, || {
        let want = want.clone();
        async move { ns.rules().await == want }
    })
    .await;
    match waited {
        Ok(()) => Ok(()),
        Err(e) => {
            let now = ns.rules().await;
            Err(e.context(format!("the rules are {now:?}")))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_rule_follows_the_master_address_and_goes_with_it() -> anyhow::Result<()> {
    let sw = Switch::new("pxsnmp").await?;
    let ns = NetNs::create().await?;
    let (daemon, runner) = start_daemon(&sw, &ns, "y").await?;

    // At start: the master configured by the switch (127.0.0.1).
    wait_rules(&ns, vec![rule("127.0.0.1:3128")]).await?;
    wait_for("the node joined", DEADLINE, || async {
        sw.server_status()
            .await
            .get("connected")
            .map(String::as_str)
            == Some("true")
    })
    .await?;

    // A new address replaces the rule (the join to it fails; the route does not care).
    set_master_ip(&sw, "127.0.0.2").await?;
    wait_rules(&ns, vec![rule("127.0.0.2:3128")]).await?;

    // A host name is resolved by the switch.
    set_master_ip(&sw, "localhost").await?;
    wait_rules(&ns, vec![rule("127.0.0.1:3128")]).await?;

    // No address: no rule.
    set_master_ip(&sw, "").await?;
    wait_rules(&ns, vec![]).await?;
    let runs = runner.iptables.load(Ordering::SeqCst);
    ensure!(runs >= 4, "iptables ran only {runs} times");
    ensure!(
        daemon.log.count("http proxy") == 0,
        "a proxy problem was reported: {:?}",
        daemon.log.lines()
    );

    daemon.terminate().await?;
    sw.teardown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_option_off_no_rule_is_ever_made() -> anyhow::Result<()> {
    let sw = Switch::new("pxlldp").await?;
    let ns = NetNs::create().await?;
    let (daemon, runner) = start_daemon(&sw, &ns, "n").await?;

    wait_for("the node joined", DEADLINE, || async {
        sw.server_status()
            .await
            .get("connected")
            .map(String::as_str)
            == Some("true")
    })
    .await?;
    // An address change is handled (the join to it fails) without any route.
    set_master_ip(&sw, "127.0.0.2").await?;
    wait_for(
        "the failed join to 127.0.0.2 recorded",
        DEADLINE,
        || async {
            let s = sw.server_status().await;
            s.get("connected").map(String::as_str) == Some("false") && s.contains_key("last_error")
        },
    )
    .await?;
    ensure!(ns.rules().await.is_empty());
    ensure!(
        runner.iptables.load(Ordering::SeqCst) == 0,
        "iptables ran with the option off"
    );

    daemon.terminate().await?;
    sw.teardown().await;
    Ok(())
}
