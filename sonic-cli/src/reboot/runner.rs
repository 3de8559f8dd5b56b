//! External programs of `kube-reboot` (`systemctl`, `container`, feature hooks) behind a small
//! port: argv lists, never a shell, and a timeout enforced by killing the process. Tests record
//! the calls instead of running them.

use std::ffi::OsString;
use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use crate::reboot::RebootError;

/// One program run: argv (program first) and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    /// Program and arguments.
    pub argv: Vec<OsString>,
    /// Time limit; the process is killed when it expires.
    pub timeout: Duration,
}

impl Cmd {
    /// A command from anything that turns into `OsString`s.
    pub fn new<I, S>(argv: I, timeout: Duration) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout,
        }
    }

    /// The argv joined by spaces, for messages only.
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs programs to completion; a non-zero exit is an error naming the command.
pub trait CommandRunner: Send + Sync {
    /// Runs `cmd`; `Ok` only for exit status 0.
    fn run(&self, cmd: &Cmd) -> impl Future<Output = Result<(), RebootError>> + Send;
}

/// Runs programs with `tokio::process`, killing them at their timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioRunner;

impl CommandRunner for TokioRunner {
    async fn run(&self, cmd: &Cmd) -> Result<(), RebootError> {
        let fail = |reason: String| RebootError::Command {
            command: cmd.display(),
            reason,
        };
        let (program, args) = cmd
            .argv
            .split_first()
            .ok_or_else(|| fail("empty command line".to_owned()))?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start: {e}")))?;
        let out = tokio::time::timeout(cmd.timeout, child.wait_with_output())
            .await
            .map_err(|_| fail(format!("no exit within {}s, killed", cmd.timeout.as_secs())))?
            .map_err(|e| fail(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let text = if stderr.trim().is_empty() {
                stdout.trim().to_owned()
            } else {
                stderr.trim().to_owned()
            };
            Err(fail(format!(
                "{}: {}",
                out.status,
                text.replace('\n', " | ")
            )))
        }
    }
}

#[cfg(test)]
pub(crate) mod recorder {
    //! A runner that records argv and fails the commands it is told to.

    use std::sync::Mutex;

    use super::*;

    #[derive(Debug, Default)]
    pub struct Recorder {
        pub calls: Mutex<Vec<(String, Duration)>>,
        pub fail_when_contains: Option<String>,
    }

    impl Recorder {
        pub fn lines(&self) -> Vec<String> {
            self.calls
                .lock()
                .map(|c| c.iter().map(|(l, _)| l.clone()).collect())
                .unwrap_or_default()
        }
    }

    impl CommandRunner for Recorder {
        async fn run(&self, cmd: &Cmd) -> Result<(), RebootError> {
            let line = cmd.display();
            if let Ok(mut c) = self.calls.lock() {
                c.push((line.clone(), cmd.timeout));
            }
            match &self.fail_when_contains {
                Some(s) if line.contains(s.as_str()) => Err(RebootError::Command {
                    command: line,
                    reason: "exit status: 1: recorded failure".to_owned(),
                }),
                Some(_) | None => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn real_runner_reports_failures_with_the_command_and_enforces_the_timeout() {
        let r = TokioRunner;
        r.run(&Cmd::new(["true"], Duration::from_secs(10)))
            .await
            .unwrap();
        let e = r
            .run(&Cmd::new(["false"], Duration::from_secs(10)))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("command false failed: exit status: 1"), "{e}");
        let e = r
            .run(&Cmd::new(["sleep", "5"], Duration::from_millis(100)))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("sleep 5") && e.contains("killed"), "{e}");
        let e = r
            .run(&Cmd::new(["/nonexistent/prog"], Duration::from_secs(1)))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot start"), "{e}");
    }
}
