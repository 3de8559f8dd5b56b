//! External programs of `kube-reboot` (`systemctl`, `container`, feature hooks) behind a small
//! port, so that tests record the calls instead of running them. The real runs go through the
//! workspace's one runner, [`sonic_kube_adapter::run_program`] (argv lists, never a shell, a
//! timeout enforced by killing the process).

use std::ffi::OsString;
use std::future::Future;
use std::time::Duration;

use sonic_kube_adapter::run_program;

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

/// Runs programs with [`run_program`]; its failures become [`RebootError::Command`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioRunner;

impl CommandRunner for TokioRunner {
    async fn run(&self, cmd: &Cmd) -> Result<(), RebootError> {
        let fail = |reason: String| RebootError::Command {
            command: cmd.display(),
            reason,
        };
        let out = run_program(&cmd.argv, cmd.timeout)
            .await
            .map_err(|e| fail(e.reason()))?;
        if out.success() {
            Ok(())
        } else {
            Err(fail(out.failure_reason()))
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
                    reason: "exited with code 1: recorded failure".to_owned(),
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
        assert_eq!(e, "command false failed: exited with code 1");
        let e = r
            .run(&Cmd::new(
                ["ls", "/nonexistent/dir"],
                Duration::from_secs(10),
            ))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("command ls /nonexistent/dir failed: exited with code 2: ls: "),
            "{e}"
        );
        let started = std::time::Instant::now();
        let e = r
            .run(&Cmd::new(["sleep", "5"], Duration::from_millis(100)))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "command sleep 5 failed: timed out after 100 ms and was killed"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        let e = r
            .run(&Cmd::new(["/nonexistent/prog"], Duration::from_secs(1)))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(e, "command /nonexistent/prog failed: program not found");
    }
}
