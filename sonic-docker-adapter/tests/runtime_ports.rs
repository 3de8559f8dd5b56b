//! `BollardRuntime` as the core sees it (`dyn ContainerRuntime`, `dyn ImageStore`) against a real
//! dockerd: domain types out, `PortError`s with the right retry class.

use std::time::Duration;

use anyhow::Context;
use sonic_docker_adapter::{BollardRuntime, CreateSpec, DockerClient};
use sonic_feature_core::model::{ContainerId, Version};
use sonic_feature_core::ports::{ContainerRuntime, ErrorKind, ImageStore};
use sonic_tests::docker::{ImageSpec, build_image, docker_host};

const IMAGE: &str = "sonic-ports-test:1.0";

async fn runtime() -> anyhow::Result<BollardRuntime> {
    let host = docker_host()?;
    build_image(
        &host,
        IMAGE,
        &ImageSpec::new()
            .env("IMAGE_VERSION", "1.2.3")
            .cmd(["sleep", "1000"]),
    )
    .await?;
    Ok(BollardRuntime::new(DockerClient::new(&host)?))
}

async fn fresh(rt: &BollardRuntime, name: &str) -> anyhow::Result<ContainerId> {
    match rt.client().remove_container(name, true).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let mut spec = CreateSpec::new(name, IMAGE);
    spec.host_network = true;
    spec.env.push(("RUNTIME_OWNER".into(), "local".into()));
    rt.client().create_container(&spec).await?;
    Ok(ContainerId::parse(name)?)
}

#[tokio::test]
async fn a_feature_container_runs_through_the_container_port() -> anyhow::Result<()> {
    let rt = runtime().await?;
    let id = fresh(&rt, "sonic-ports-snmp").await?;
    let port: &dyn ContainerRuntime = &rt;

    port.start(&id).await?;
    let info = port.inspect(&id).await?.context("inspect after start")?;
    assert!(info.running);
    assert_eq!(info.name, "sonic-ports-snmp");
    assert_eq!(info.image_version, Some(Version::parse("1.2.3")?));
    assert!(info.image_id.starts_with("sha256:"));

    let waiter = {
        let rt = BollardRuntime::new(DockerClient::new(rt.client().host())?);
        let id = id.clone();
        tokio::spawn(async move { rt.wait(&id).await })
    };
    port.stop(&id, Some(Duration::from_secs(1))).await?;
    assert_eq!(waiter.await??, 137);
    assert!(
        !port
            .inspect(&id)
            .await?
            .context("inspect after stop")?
            .running
    );

    // Killing a stopped container is a permanent conflict.
    let err = port.kill(&id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert!(
        err.to_string()
            .starts_with("cannot kill container sonic-ports-snmp: ")
    );

    port.remove(&id).await?;
    assert_eq!(port.inspect(&id).await?, None);
    let err = port.stop(&id, None).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert_eq!(
        err.to_string(),
        "cannot stop container sonic-ports-snmp: no such container"
    );
    Ok(())
}

#[tokio::test]
async fn a_running_container_is_not_removed_through_the_port() -> anyhow::Result<()> {
    let rt = runtime().await?;
    let id = fresh(&rt, "sonic-ports-running").await?;
    rt.start(&id).await?;
    let err = rt.remove(&id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert!(rt.inspect(&id).await?.context("still there")?.running);
    rt.kill(&id).await?;
    assert_eq!(rt.wait(&id).await?, 137);
    rt.remove(&id).await?;
    Ok(())
}

#[tokio::test]
async fn images_are_tagged_listed_and_removed_through_the_image_port() -> anyhow::Result<()> {
    let host = docker_host()?;
    let rt = BollardRuntime::new(DockerClient::new(&host)?);
    let id = build_image(
        &host,
        "docker-sonic-ports:20201231.74",
        &ImageSpec::new().label("org.sonic-tests.purpose", "image-port"),
    )
    .await?;
    let store: &dyn ImageStore = &rt;

    store.tag_image(&id, "docker-sonic-ports", "latest").await?;
    store
        .tag_image(
            "docker-sonic-ports:20201231.74",
            "acr.local:5000/sonic/docker-sonic-ports",
            "20201231.74",
        )
        .await?;
    let rows: Vec<String> = store
        .list_images()
        .await?
        .into_iter()
        .filter(|r| r.id == id)
        .map(|r| r.reference())
        .collect();
    assert_eq!(
        rows,
        vec![
            "acr.local:5000/sonic/docker-sonic-ports:20201231.74".to_string(),
            "docker-sonic-ports:20201231.74".to_string(),
            "docker-sonic-ports:latest".to_string(),
        ]
    );

    // A reference only untags; an id (with tags left) is removed with force, like upstream.
    store.remove_image("docker-sonic-ports:latest").await?;
    let left = store
        .list_images()
        .await?
        .into_iter()
        .filter(|r| r.id == id)
        .count();
    assert_eq!(left, 2);
    store.remove_image(&id).await?;
    assert!(store.list_images().await?.iter().all(|r| r.id != id));

    let err = store
        .remove_image("docker-sonic-ports:20201231.74")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert_eq!(
        err.to_string(),
        "cannot remove image docker-sonic-ports:20201231.74: no such image"
    );
    Ok(())
}

#[tokio::test]
async fn an_unreachable_daemon_is_transient_for_the_core() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let host = format!("unix://{}/docker.sock", dir.path().display());
    let rt = BollardRuntime::new(DockerClient::new(&host)?);
    let id = ContainerId::parse("snmp")?;
    let err = rt.inspect(&id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(err.to_string().contains(&host), "{err}");
    let err = rt.list_images().await.unwrap_err();
    assert!(err.is_transient());
    Ok(())
}
