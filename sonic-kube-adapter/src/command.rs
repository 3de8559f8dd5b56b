//! Node-side programs (`kubeadm`, `systemctl`, `modprobe`) behind a port: argv lists, never a
//! shell, and a timeout that is enforced by killing the process.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;

/// One program run: argv (program first) and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub timeout: Duration,
}

impl CommandSpec {
    pub fn new<I, S>(argv: I, timeout: Duration) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout,
        }
    }

    /// The argv joined by spaces, for messages only.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// What a finished program left behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why a program could not be run to completion successfully.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("empty command line")]
    EmptyArgv,
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for {command} failed: {source}")]
    Wait {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} did not finish within {after:?} and was killed")]
    TimedOut { command: String, after: Duration },
    #[error("{command} failed with exit code {code:?}: {stderr}")]
    Failed {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
}

/// Runs programs. The production implementation is [`TokioCommandRunner`]; tests record argv.
#[async_trait]
pub trait CommandRunner: Send + Sync + std::fmt::Debug {
    /// Runs `spec` to completion or until its timeout. Any exit code is `Ok`.
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError>;

    /// Runs `spec` and turns a non-zero exit code into [`CommandError::Failed`].
    async fn run_checked(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        let out = self.run(spec).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(CommandError::Failed {
                command: spec.display(),
                code: out.code,
                stderr: out.stderr.trim().to_string(),
            })
        }
    }
}

/// Runs programs with `tokio::process`; the child is killed when the timeout expires.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioCommandRunner;

#[async_trait]
impl CommandRunner for TokioCommandRunner {
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        let (program, args) = spec.argv.split_first().ok_or(CommandError::EmptyArgv)?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the wait future on timeout kills the child (tokio reaps it).
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| CommandError::Spawn {
                program: program.clone(),
                source,
            })?;
        match tokio::time::timeout(spec.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(CommandOutput {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
            Ok(Err(source)) => Err(CommandError::Wait {
                command: spec.display(),
                source,
            }),
            Err(_) => Err(CommandError::TimedOut {
                command: spec.display(),
                after: spec.timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn real_runner_reports_exit_codes_and_output() {
        let r = TokioCommandRunner;
        let out = r
            .run(&CommandSpec::new(
                ["echo", "a;b", "$(x)"],
                Duration::from_secs(10),
            ))
            .await
            .unwrap();
        assert!(out.success());
        // Arguments reach the program verbatim: no shell expands them.
        assert_eq!(out.stdout, "a;b $(x)\n");
        let out = r
            .run(&CommandSpec::new(["false"], Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(out.code, Some(1));
        let err = r
            .run_checked(&CommandSpec::new(["false"], Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("false failed with exit code Some(1)"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn real_runner_kills_the_program_at_the_timeout() {
        let started = std::time::Instant::now();
        let err = TokioCommandRunner
            .run(&CommandSpec::new(
                ["sleep", "30"],
                Duration::from_millis(200),
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn real_runner_names_a_missing_program() {
        let err = TokioCommandRunner
            .run(&CommandSpec::new(
                ["/nonexistent/kubeadm"],
                Duration::from_secs(1),
            ))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kubeadm"), "{err}");
        assert!(matches!(
            TokioCommandRunner
                .run(&CommandSpec::new(
                    Vec::<String>::new(),
                    Duration::from_secs(1)
                ))
                .await,
            Err(CommandError::EmptyArgv)
        ));
    }
}
