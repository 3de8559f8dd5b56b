//! The adapter against a real dockerd (the shared private engine of `sonic_tests::docker`):
//! container lifecycle and exit codes, image tagging and removal, error classification, and the
//! own-container-id parsers fed with what a container really sees.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use sonic_docker_adapter::own_container::{
    ProcFiles, container_id_from_cgroup, container_id_from_mountinfo, own_container_id_from,
};
use sonic_docker_adapter::{CreateSpec, DockerClient, DockerError, Timeouts};
use sonic_tests::docker::{ImageSpec, PrivateDockerd, build_image, connect, docker_host};

const IMAGE: &str = "sonic-adapter-test:1.0";
const VERSION: &str = "20201230.80";

/// `exit-with CODE [SECONDS]`: sleeps, then exits with CODE (a script file in the image, so no
/// test passes a shell string).
const EXIT_WITH: &[u8] = b"#!/bin/sh\nsleep \"${2:-0}\"\nexit \"$1\"\n";

fn spec() -> ImageSpec {
    ImageSpec::new()
        .env("IMAGE_VERSION", VERSION)
        .cmd(["sleep", "1000"])
        .file("/usr/local/bin/exit-with", EXIT_WITH.to_vec(), 0o755)
        .label("org.sonic-tests.purpose", "adapter")
}

async fn setup() -> anyhow::Result<DockerClient> {
    let host = docker_host()?;
    build_image(&host, IMAGE, &spec()).await?;
    Ok(DockerClient::new(&host)?)
}

/// A container named `name` (any leftover of an earlier run removed first).
async fn fresh(client: &DockerClient, name: &str, cmd: &[&str]) -> anyhow::Result<String> {
    match client.remove_container(name, true).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let mut spec = CreateSpec::new(name, IMAGE);
    if !cmd.is_empty() {
        spec.cmd = Some(cmd.iter().map(|s| s.to_string()).collect());
    }
    Ok(client.create_container(&spec).await?)
}

#[tokio::test]
async fn container_lifecycle_reports_state_image_and_version() -> anyhow::Result<()> {
    let client = setup().await?;
    let name = "sonic-adapter-lifecycle";
    match client.remove_container(name, true).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let mut spec = CreateSpec::new(name, IMAGE);
    spec.env.push(("RUNTIME_OWNER".into(), "local".into()));
    spec.labels.insert("feature".into(), "snmp".into());
    spec.host_network = true;
    let id = client.create_container(&spec).await?;
    assert_eq!(id.len(), 64);

    let created = client.inspect_container(name).await?.context("created")?;
    assert_eq!(created.id, id);
    assert_eq!(created.name, name);
    assert!(!created.running);
    assert_eq!(created.status, "created");
    assert_eq!(created.image_name, IMAGE);
    assert!(created.image_id.starts_with("sha256:"));
    assert_eq!(created.image_version.as_deref(), Some(VERSION));
    assert_eq!(
        created.labels.get("feature").map(String::as_str),
        Some("snmp")
    );
    assert!(created.env.iter().any(|e| e == "RUNTIME_OWNER=local"));

    client.start_container(name).await?;
    // Starting a running container is not an error (docker answers 304, docker-py agrees).
    client.start_container(&id[..12]).await?;
    let running = client.inspect_container(name).await?.context("running")?;
    assert!(running.running);
    assert_eq!(running.status, "running");

    // `sleep` as pid 1 ignores SIGTERM, so the stop ends with SIGKILL after the 1 s timeout.
    let began = Instant::now();
    client
        .stop_container(name, Some(Duration::from_secs(1)))
        .await?;
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(900), "stop took {took:?}");
    assert!(took < Duration::from_secs(9), "stop took {took:?}");
    let stopped = client.inspect_container(name).await?.context("stopped")?;
    assert!(!stopped.running);
    assert_eq!(stopped.exit_code, Some(137));
    // Stopping a stopped container is not an error either.
    client.stop_container(name, None).await?;

    client.remove_container(name, false).await?;
    assert_eq!(client.inspect_container(name).await?, None);
    Ok(())
}

#[tokio::test]
async fn wait_returns_exit_codes_zero_killed_and_custom() -> anyhow::Result<()> {
    let client = setup().await?;

    let ok = fresh(&client, "sonic-adapter-exit0", &["true"]).await?;
    client.start_container(&ok).await?;
    assert_eq!(client.wait_container(&ok).await?, 0);

    let killed = fresh(&client, "sonic-adapter-killed", &[]).await?;
    client.start_container(&killed).await?;
    let waiter = {
        let client = DockerClient::new(client.host())?;
        let id = killed.clone();
        tokio::spawn(async move { client.wait_container(&id).await })
    };
    client.kill_container(&killed).await?;
    assert_eq!(waiter.await??, 137);

    // The wait starts while the container still runs and ends with its exit code.
    let three = fresh(
        &client,
        "sonic-adapter-exit3",
        &["/usr/local/bin/exit-with", "3", "1"],
    )
    .await?;
    client.start_container(&three).await?;
    let began = Instant::now();
    assert_eq!(client.wait_container(&three).await?, 3);
    assert!(began.elapsed() >= Duration::from_millis(500));
    let details = client.inspect_container(&three).await?.context("exit3")?;
    assert_eq!(details.exit_code, Some(3));

    for id in [ok, killed, three] {
        client.remove_container(&id, false).await?;
    }
    Ok(())
}

#[tokio::test]
async fn wait_outlasts_the_request_timeout() -> anyhow::Result<()> {
    let client = setup().await?;
    let id = fresh(
        &client,
        "sonic-adapter-long-wait",
        &["/usr/local/bin/exit-with", "0", "3"],
    )
    .await?;
    let short = DockerClient::new(client.host())?.with_timeouts(Timeouts {
        request: Duration::from_secs(1),
        ..Timeouts::default()
    });
    short.start_container(&id).await?;
    let began = Instant::now();
    assert_eq!(short.wait_container(&id).await?, 0);
    assert!(began.elapsed() >= Duration::from_secs(2));
    client.remove_container(&id, false).await?;
    Ok(())
}

#[tokio::test]
async fn killing_a_stopped_container_is_a_conflict() -> anyhow::Result<()> {
    let client = setup().await?;
    let name = "sonic-adapter-kill-stopped";
    fresh(&client, name, &["true"]).await?;
    let err = client.kill_container(name).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot kill container {name}: ")) && msg.contains("not running"),
        "{msg}"
    );

    // A running container cannot be removed without force.
    client.start_container(name).await?;
    client.wait_container(name).await?;
    let sleeper = "sonic-adapter-remove-running";
    fresh(&client, sleeper, &[]).await?;
    client.start_container(sleeper).await?;
    let err = client.remove_container(sleeper, false).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    client.remove_container(sleeper, true).await?;
    assert_eq!(client.inspect_container(sleeper).await?, None);
    client.remove_container(name, false).await?;
    Ok(())
}

#[tokio::test]
async fn creating_a_second_container_with_a_taken_name_is_a_conflict() -> anyhow::Result<()> {
    let client = setup().await?;
    let name = "sonic-adapter-taken";
    fresh(&client, name, &[]).await?;
    let err = client
        .create_container(&CreateSpec::new(name, IMAGE))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot create container {name}: ")),
        "{err}"
    );
    client.remove_container(name, true).await?;
    Ok(())
}

#[tokio::test]
async fn operations_on_a_missing_container_name_it() -> anyhow::Result<()> {
    let client = setup().await?;
    let name = "sonic-adapter-never-created";
    let expect = |action: &str, err: DockerError| {
        assert!(err.is_not_found(), "{err:?}");
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            format!("cannot {action} container {name}: no such container")
        );
    };
    expect("start", client.start_container(name).await.unwrap_err());
    expect("stop", client.stop_container(name, None).await.unwrap_err());
    expect("kill", client.kill_container(name).await.unwrap_err());
    expect("wait for", client.wait_container(name).await.unwrap_err());
    expect(
        "remove",
        client.remove_container(name, true).await.unwrap_err(),
    );
    assert_eq!(client.inspect_container(name).await?, None);
    Ok(())
}

#[tokio::test]
async fn containers_are_listed_with_names_state_and_labels() -> anyhow::Result<()> {
    let client = setup().await?;
    let name = "sonic-adapter-listed";
    match client.remove_container(name, true).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let mut spec = CreateSpec::new(name, IMAGE);
    spec.labels = BTreeMap::from([("owner".to_string(), "list-test".to_string())]);
    let id = client.create_container(&spec).await?;

    let all = client.list_containers(true).await?;
    let entry = all
        .iter()
        .find(|c| c.id == id)
        .context("created container listed with all=true")?;
    assert_eq!(entry.names, vec![name.to_string()]);
    assert_eq!(entry.image, IMAGE);
    assert_eq!(entry.state, "created");
    assert_eq!(
        entry.labels.get("owner").map(String::as_str),
        Some("list-test")
    );
    let running = client.list_containers(false).await?;
    assert!(running.iter().all(|c| c.id != id));

    client.remove_container(name, false).await?;
    Ok(())
}

#[tokio::test]
async fn images_are_tagged_listed_and_removed() -> anyhow::Result<()> {
    let host = docker_host()?;
    let client = DockerClient::new(&host)?;
    // An image of its own (other label, other id) so that removing it cannot disturb other tests.
    let original = "sonic-adapter-images:7.1";
    let image_spec = spec().label("org.sonic-tests.purpose", "image-test");
    let id = build_image(&host, original, &image_spec).await?;
    for stale in [
        "sonic-adapter-images:latest",
        "registry.local:5000/sonic-adapter-images:7.1",
    ] {
        match client.remove_image(stale, false).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }

    client
        .tag_image(&id, "sonic-adapter-images", "latest")
        .await?;
    client
        .tag_image(original, "registry.local:5000/sonic-adapter-images", "7.1")
        .await?;
    let listed = client.list_images().await?;
    let entry = listed
        .iter()
        .find(|i| i.id == id)
        .context("image listed by id")?;
    let mut tags = entry.repo_tags.clone();
    tags.sort();
    assert_eq!(
        tags,
        vec![
            "registry.local:5000/sonic-adapter-images:7.1".to_string(),
            "sonic-adapter-images:7.1".to_string(),
            "sonic-adapter-images:latest".to_string(),
        ]
    );
    assert_eq!(
        entry
            .labels
            .get("org.sonic-tests.purpose")
            .map(String::as_str),
        Some("image-test")
    );
    assert!(entry.created > 0);

    let inspected = client
        .inspect_image("sonic-adapter-images:latest")
        .await?
        .context("inspect by tag")?;
    assert_eq!(inspected.id, id);
    assert_eq!(inspected.labels, entry.labels);
    assert!(inspected.created > 0);

    // Removing by reference only untags while other tags remain.
    client
        .remove_image("sonic-adapter-images:latest", false)
        .await?;
    assert_eq!(
        client.inspect_image("sonic-adapter-images:latest").await?,
        None
    );
    assert!(client.inspect_image(original).await?.is_some());

    // An id with several tags needs force.
    let err = client.remove_image(&id, false).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    client.remove_image(&id, true).await?;
    assert_eq!(client.inspect_image(&id).await?, None);
    assert_eq!(client.inspect_image(original).await?, None);

    let err = client.remove_image(original, false).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        format!("cannot remove image {original}: no such image")
    );
    let err = client
        .tag_image("sonic-adapter-images:none", "x", "y")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot tag image sonic-adapter-images:none: no such image"
    );
    Ok(())
}

#[tokio::test]
async fn building_the_same_image_twice_reuses_it() -> anyhow::Result<()> {
    let host = docker_host()?;
    let first = build_image(&host, IMAGE, &spec()).await?;
    let began = Instant::now();
    let second = build_image(&host, IMAGE, &spec()).await?;
    assert_eq!(first, second);
    assert!(began.elapsed() < Duration::from_secs(5));
    let changed = build_image(&host, "sonic-adapter-test:other", &spec().env("X", "1")).await?;
    assert_ne!(changed, first);
    DockerClient::new(&host)?
        .remove_image("sonic-adapter-test:other", false)
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_daemon_is_a_transient_error_naming_the_socket() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let host = format!("unix://{}/docker.sock", dir.path().display());
    let client = DockerClient::new(&host)?;
    let err = client.start_container("snmp").await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "cannot start container snmp: docker daemon at {host} is unreachable"
        )),
        "{msg}"
    );
    Ok(())
}

/// Output of `cmd` in a fresh container of an image holding the host's `/bin/cat` (a dynamic
/// binary: the builder brings its libraries), with the container's full id.
async fn container_output(
    client: &DockerClient,
    image: &str,
    name: &str,
    file: &str,
    private_cgroupns: bool,
) -> anyhow::Result<(String, String)> {
    match client.remove_container(name, true).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let mut spec = CreateSpec::new(name, image);
    spec.cmd = Some(vec!["/bin/cat".into(), file.into()]);
    spec.private_cgroupns = private_cgroupns;
    let id = client.create_container(&spec).await?;
    client.start_container(&id).await?;
    let code = client.wait_container(&id).await?;
    let docker = connect(client.host()).await?;
    let options = bollard::query_parameters::LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(&id, Some(options));
    let mut text = String::new();
    while let Some(chunk) = logs.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
    }
    anyhow::ensure!(code == 0, "cat {file} in {name} exited with {code}: {text}");
    let inspected = client.inspect_container(&id).await?.context("inspect")?;
    client.remove_container(&id, false).await?;
    Ok((inspected.id, text))
}

#[tokio::test]
async fn own_container_id_is_found_in_what_a_container_sees() -> anyhow::Result<()> {
    let host = docker_host()?;
    let client = DockerClient::new(&host)?;
    let image = "sonic-adapter-cat:1.0";
    build_image(&host, image, &ImageSpec::new().binary("/bin/cat")).await?;

    // Default cgroup namespace (host on cgroup v1, private on v2): /proc/self/cgroup may name the
    // container; mountinfo always does.
    let (cg_id, cgroup) = container_output(
        &client,
        image,
        "sonic-adapter-cgroup",
        "/proc/self/cgroup",
        false,
    )
    .await?;
    let (mi_id, mountinfo) = container_output(
        &client,
        image,
        "sonic-adapter-mountinfo",
        "/proc/self/mountinfo",
        false,
    )
    .await?;
    assert_eq!(container_id_from_mountinfo(&mountinfo), Some(mi_id.clone()));
    if cgroup.lines().any(|l| l.contains(":memory:")) {
        // cgroup v1: the container shares the host's cgroup namespace and sees its own path.
        assert_eq!(container_id_from_cgroup(&cgroup), Some(cg_id), "{cgroup}");
    } else {
        // cgroup v2: dockerd defaults to a private namespace, the file is `0::/`.
        assert_eq!(container_id_from_cgroup(&cgroup), None, "{cgroup}");
    }

    // Private cgroup namespace: /proc/self/cgroup is just `N:...:/`, mountinfo must do.
    let (_, pcgroup) = container_output(
        &client,
        image,
        "sonic-adapter-private-cgroup",
        "/proc/self/cgroup",
        true,
    )
    .await?;
    assert_eq!(container_id_from_cgroup(&pcgroup), None, "{pcgroup}");

    // The file-reading entry point combines both: feed it one container's own view.
    let (both_id, pmountinfo) = container_output(
        &client,
        image,
        "sonic-adapter-private-mountinfo",
        "/proc/self/mountinfo",
        true,
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let files = ProcFiles {
        cgroup: dir.path().join("cgroup"),
        mountinfo: dir.path().join("mountinfo"),
    };
    std::fs::write(&files.cgroup, &pcgroup)?;
    std::fs::write(&files.mountinfo, &pmountinfo)?;
    assert_eq!(own_container_id_from(&files)?, both_id);
    Ok(())
}

#[tokio::test]
async fn client_survives_a_dockerd_restart() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("sda").tempdir_in("/tmp")?;
    let mut daemon = PrivateDockerd::start(dir.path())?;
    let client = DockerClient::new(daemon.host())?;
    client.ping().await?;
    build_image(daemon.host(), "sonic-adapter-restart:1", &spec()).await?;
    let name = "sonic-adapter-restart";
    let mut create = CreateSpec::new(name, "sonic-adapter-restart:1");
    create.cmd = Some(vec!["true".into()]);
    client.create_container(&create).await?;

    daemon.stop()?;
    let err = client.ping().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let err = client.inspect_container(name).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    daemon.restart()?;
    let details = client
        .inspect_container(name)
        .await?
        .context("container survives the restart")?;
    assert_eq!(details.image_version.as_deref(), Some(VERSION));
    client.start_container(name).await?;
    assert_eq!(client.wait_container(name).await?, 0);
    daemon.stop()?;
    Ok(())
}

#[tokio::test]
async fn a_stale_engine_left_in_a_directory_is_replaced() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("sdb").tempdir_in("/tmp")?;
    // An engine whose owner "crashed": never stopped, still running.
    let crashed = PrivateDockerd::start(dir.path())?;
    let stale_pid: i32 = std::fs::read_to_string(dir.path().join("dockerd.pid"))?
        .trim()
        .parse()?;
    std::mem::forget(crashed);
    assert!(std::path::Path::new(&format!("/proc/{stale_pid}")).exists());

    let mut fresh = PrivateDockerd::start(dir.path())?;
    let new_pid: i32 = std::fs::read_to_string(dir.path().join("dockerd.pid"))?
        .trim()
        .parse()?;
    assert_ne!(new_pid, stale_pid);
    let gone = !std::fs::read_to_string(format!("/proc/{stale_pid}/cmdline"))
        .unwrap_or_default()
        .contains("dockerd");
    assert!(gone, "stale dockerd {stale_pid} still runs");
    DockerClient::new(fresh.host())?.ping().await?;
    fresh.stop()?;
    Ok(())
}

#[tokio::test]
async fn a_daemon_that_never_answers_is_a_transient_timeout() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket)?;
    // Accept connections and hold them open without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let host = format!("unix://{}", socket.display());
    let client = DockerClient::new(&host)?.with_timeouts(Timeouts {
        request: Duration::from_secs(1),
        ..Timeouts::default()
    });
    let began = Instant::now();
    let err = client.inspect_container("snmp").await.unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(10));
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot inspect container snmp: docker daemon at {host} did not answer within 1 s")
    );
    Ok(())
}
