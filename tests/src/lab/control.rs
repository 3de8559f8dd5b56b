//! The lab's control socket: node-side programs that ctrmgrd runs (`systemctl`, `kubeadm`,
//! `modprobe`) are the `sonic-lab` binary under those names; they forward their argv over a unix
//! socket to the lab process, which answers with an exit code and output. One JSON line each
//! way: the request is the argv (program name first), the answer `{"code", "stdout", "stderr"}`.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

/// Environment variable naming the control socket, set for ctrmgrd and inherited by the shims.
pub const CONTROL_ENV: &str = "SONIC_LAB_CONTROL";

/// The answer to one forwarded command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Exit code of the emulated program.
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Reply {
    /// Success with no output.
    pub fn ok() -> Self {
        Self::default()
    }

    /// Failure with `code` and a message on stderr.
    pub fn fail(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            stdout: String::new(),
            stderr: message.into(),
        }
    }
}

/// What the lab does with a forwarded argv.
pub type Handler =
    Arc<dyn Fn(Vec<String>) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// Serves `socket` until the returned task is aborted.
pub fn serve(socket: &Path, handler: Handler) -> anyhow::Result<JoinHandle<()>> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                let Ok(Some(line)) = lines.next_line().await else {
                    return;
                };
                let reply = match serde_json::from_str::<Vec<String>>(&line) {
                    Ok(argv) if !argv.is_empty() => handler(argv).await,
                    Ok(_) => Reply::fail(2, "empty command line"),
                    Err(e) => Reply::fail(2, format!("bad request: {e}")),
                };
                let mut text = serde_json::to_string(&reply).unwrap_or_default();
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
            });
        }
    }))
}

/// Forwards `argv` to the lab at `socket` and waits for the answer (`timeout`).
pub fn forward(socket: &Path, argv: &[String], timeout: Duration) -> anyhow::Result<Reply> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "the lab is not running (no control socket {})",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_string(argv)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .with_context(|| format!("no answer from the lab within {} s", timeout.as_secs()))?;
    serde_json::from_str(&answer).with_context(|| format!("bad answer from the lab: {answer:?}"))
}

/// The control socket of the lab in `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("control.sock")
}
