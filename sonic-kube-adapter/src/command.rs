//! Host programs (`kubeadm`, `systemctl`, `modprobe`, `container`, feature hooks), run for the
//! whole workspace: argv lists, never a shell, stdin null, stdout and stderr captured, and a
//! timeout enforced by killing the process and reaping it.
//!
//! [`run_program`] is the one place in the workspace that spawns a program; the
//! [`CommandRunner`] port puts it behind a trait so that callers can be tested with recorded
//! argv.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt};

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
    /// Exit code. [`run_program`] always sets it (a death by signal is
    /// [`CommandError::Signaled`]); runners of tests may leave it `None`.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Why a run that did not succeed failed, on one line, for messages: the exit code and what
    /// the program said (stderr, or stdout when stderr is empty).
    pub fn failure_reason(&self) -> String {
        let said = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        with_output(exit_text(self.code), said)
    }
}

/// Why a program could not be run to completion successfully. Every message starts with the
/// program or the command line; [`CommandError::reason`] is the same message without it, for
/// callers whose own message already names the command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("empty command line")]
    EmptyArgv,
    /// No such program (or, for a script, no such interpreter).
    #[error("{program}: {}", self.reason())]
    NotFound { program: String },
    /// The file exists but may not be executed (no execute permission, a directory).
    #[error("{program}: {}", self.reason())]
    NotExecutable { program: String },
    /// Any other failure to start the program.
    #[error("{program}: {}", self.reason())]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the program or reading its output failed.
    #[error("{command}: {}", self.reason())]
    Wait {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The program ran past its timeout and was killed.
    #[error("{command}: {}", self.reason())]
    TimedOut { command: String, after: Duration },
    /// The program was killed by a signal it did not handle.
    #[error("{command}: {}", self.reason())]
    Signaled {
        command: String,
        signal: i32,
        stderr: String,
    },
    /// The program exited with a non-zero code ([`CommandRunner::run_checked`]).
    #[error("{command}: {}", self.reason())]
    Failed {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
}

impl CommandError {
    /// What went wrong, without the program or command line.
    pub fn reason(&self) -> String {
        match self {
            Self::EmptyArgv => "empty command line".to_owned(),
            Self::NotFound { .. } => "program not found".to_owned(),
            Self::NotExecutable { .. } => "not executable (permission denied)".to_owned(),
            Self::Spawn { source, .. } => format!("cannot start: {source}"),
            Self::Wait { source, .. } => format!("waiting for the program failed: {source}"),
            Self::TimedOut { after, .. } => {
                format!("timed out after {} and was killed", show_duration(*after))
            }
            Self::Signaled { signal, stderr, .. } => {
                with_output(format!("killed by signal {}", show_signal(*signal)), stderr)
            }
            Self::Failed { code, stderr, .. } => with_output(exit_text(*code), stderr),
        }
    }
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exited with code {code}"),
        None => "exited without an exit code".to_owned(),
    }
}

/// `status` followed by the program's (trimmed, one-line) output when it printed any.
fn with_output(status: String, output: &str) -> String {
    let output = output.trim();
    if output.is_empty() {
        status
    } else {
        format!("{status}: {}", output.replace('\n', " | "))
    }
}

/// `60 s` for whole seconds, `200 ms` otherwise.
fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The number and, for the signals numbered alike on every Linux architecture, the name.
fn show_signal(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return signal.to_string(),
    };
    format!("{signal} ({name})")
}

/// The argv joined by spaces, for messages only.
fn show_argv<S: AsRef<OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| a.as_ref().to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a captured stream to its end; `None` (not captured) reads as empty.
async fn read_all<R: AsyncRead + Unpin>(stream: Option<R>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut stream) = stream {
        stream.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// Runs `argv` (program first, looked up in `PATH` unless it contains a `/`) without a shell,
/// stdin null, stdout and stderr captured, until it exits or `timeout` expires.
///
/// Any exit code is `Ok`. At the timeout the program gets SIGKILL and is reaped before
/// [`CommandError::TimedOut`] is returned; if the caller drops the returned future earlier, the
/// program is killed too (tokio reaps it). Output is read while the program runs, so a program
/// writing more than a pipe buffer never blocks. The timeout also bounds reading: descendants
/// that keep the output pipes open are not waited for past it (they are not killed: only the
/// program itself is).
pub async fn run_program<S: AsRef<OsStr>>(
    argv: &[S],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let (program, args) = argv.split_first().ok_or(CommandError::EmptyArgv)?;
    let program_shown = program.as_ref().to_string_lossy().into_owned();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => CommandError::NotFound {
                program: program_shown.clone(),
            },
            std::io::ErrorKind::PermissionDenied => CommandError::NotExecutable {
                program: program_shown.clone(),
            },
            _ => CommandError::Spawn {
                program: program_shown.clone(),
                source,
            },
        })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = tokio::time::timeout(timeout, async {
        tokio::try_join!(child.wait(), read_all(stdout), read_all(stderr))
    })
    .await;
    let (status, stdout, stderr) = match finished {
        Ok(Ok(done)) => done,
        Ok(Err(source)) => {
            kill_and_reap(&mut child).await;
            return Err(CommandError::Wait {
                command: show_argv(argv),
                source,
            });
        }
        Err(_elapsed) => {
            kill_and_reap(&mut child).await;
            return Err(CommandError::TimedOut {
                command: show_argv(argv),
                after: timeout,
            });
        }
    };
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    match (status.code(), status.signal()) {
        (None, Some(signal)) => Err(CommandError::Signaled {
            command: show_argv(argv),
            signal,
            stderr,
        }),
        (code, _) => Ok(CommandOutput {
            code,
            stdout,
            stderr,
        }),
    }
}

/// SIGKILL and wait, so that no zombie is left behind. A program that had already exited (its
/// descendants held the output open) is only reaped.
async fn kill_and_reap(child: &mut tokio::process::Child) {
    match child.try_wait() {
        Ok(Some(_)) => {}
        Ok(None) | Err(_) => {
            if let Err(e) = child.kill().await {
                tracing::warn!(pid = ?child.id(), "cannot kill a timed-out program: {e}");
            }
        }
    }
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

/// Runs programs with [`run_program`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioCommandRunner;

#[async_trait]
impl CommandRunner for TokioCommandRunner {
    async fn run(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        run_program(&spec.argv, spec.timeout).await
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::*;

    const LONG: Duration = Duration::from_secs(10);

    /// The pid of our child whose argv is exactly `argv`, polled until `deadline`.
    async fn child_pid(argv: &[&str], deadline: Duration) -> u32 {
        let me = std::process::id().to_string();
        let want: String = argv.iter().map(|a| format!("{a}\0")).collect();
        let until = Instant::now() + deadline;
        loop {
            let entries = std::fs::read_dir("/proc").unwrap();
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let dir = entry.path();
                let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
                if cmdline == want.as_bytes() && parent_of(&dir).as_deref() == Some(me.as_str()) {
                    return pid;
                }
            }
            assert!(Instant::now() < until, "no child {argv:?} appeared");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The `PPid:` of a /proc/<pid> directory.
    fn parent_of(dir: &Path) -> Option<String> {
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(|p| p.trim().to_owned())
    }

    /// Whether `pid` still exists as our child, even as a zombie.
    fn is_our_process(pid: u32, argv: &[&str]) -> bool {
        let dir = Path::new("/proc").join(pid.to_string());
        let want: String = argv.iter().map(|a| format!("{a}\0")).collect();
        // A zombie has an empty cmdline; its parent tells it is still ours.
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let ours = parent_of(&dir).as_deref() == Some(std::process::id().to_string().as_str());
        ours && (cmdline.is_empty() || cmdline == want.as_bytes())
    }

    /// A `sleep` argv no other test or process uses, so that it can be found in /proc.
    fn unique_sleep(tag: u32) -> Vec<String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        vec![
            "sleep".to_owned(),
            format!("30.{}{:09}", tag, nanos % 1_000_000_000),
        ]
    }

    #[tokio::test]
    async fn real_runner_reports_exit_codes_and_output() {
        let r = TokioCommandRunner;
        let out = r
            .run(&CommandSpec::new(["echo", "a;b", "$(x)"], LONG))
            .await
            .unwrap();
        assert!(out.success());
        // Arguments reach the program verbatim: no shell expands them.
        assert_eq!(out.stdout, "a;b $(x)\n");
        assert_eq!(out.stderr, "");
        let out = r.run(&CommandSpec::new(["false"], LONG)).await.unwrap();
        assert_eq!(out.code, Some(1));
        // stderr is captured apart from stdout.
        let out = r
            .run(&CommandSpec::new(["ls", "/nonexistent/dir"], LONG))
            .await
            .unwrap();
        assert_eq!(out.code, Some(2));
        assert_eq!(out.stdout, "");
        assert!(out.stderr.contains("/nonexistent/dir"), "{}", out.stderr);
        let err = r
            .run_checked(&CommandSpec::new(["ls", "/nonexistent/dir"], LONG))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ls /nonexistent/dir: exited with code 2: ls: "),
            "{err}"
        );
        assert!(matches!(err, CommandError::Failed { code: Some(2), .. }));
        let err = r
            .run_checked(&CommandSpec::new(["false"], LONG))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "false: exited with code 1");
    }

    #[tokio::test]
    async fn stdin_is_null() {
        // `cat` with stdin null reads end of file at once instead of waiting for input.
        let out = run_program(&["cat"], LONG).await.unwrap();
        assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""));
    }

    #[tokio::test]
    async fn a_missing_program_is_named_as_not_found() {
        let err = TokioCommandRunner
            .run(&CommandSpec::new(
                ["/nonexistent/kubeadm"],
                Duration::from_secs(1),
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::NotFound { .. }), "{err:?}");
        assert_eq!(err.to_string(), "/nonexistent/kubeadm: program not found");
        // Looked up in PATH too.
        let err = run_program(&["no-such-program-in-path"], LONG)
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::NotFound { .. }), "{err:?}");
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

    #[tokio::test]
    async fn a_file_without_execute_permission_is_named_as_not_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hook");
        std::fs::write(&file, "not a program\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = run_program(&[&file], LONG).await.unwrap_err();
        assert!(matches!(err, CommandError::NotExecutable { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{}: not executable (permission denied)", file.display())
        );
        // A directory cannot be executed either.
        let err = run_program(&[dir.path()], LONG).await.unwrap_err();
        assert!(matches!(err, CommandError::NotExecutable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn the_timeout_kills_and_reaps_the_program_and_returns_promptly() {
        let argv = unique_sleep(1);
        let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
        let started = Instant::now();
        let run = tokio::spawn({
            let spec = CommandSpec::new(argv.clone(), Duration::from_millis(200));
            async move { TokioCommandRunner.run(&spec).await }
        });
        let pid = child_pid(&argv_ref, Duration::from_secs(5)).await;
        let err = run.await.unwrap().unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{}: timed out after 200 ms and was killed", argv.join(" "))
        );
        assert!(took < Duration::from_secs(3), "took {took:?}");
        // Gone the moment the runner returned: not running, and not a zombie either.
        assert!(!is_our_process(pid, &argv_ref), "pid {pid} is still there");
    }

    #[tokio::test]
    async fn a_program_killed_by_a_signal_is_reported_with_the_signal() {
        let argv = unique_sleep(2);
        let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
        let run = tokio::spawn({
            let argv = argv.clone();
            async move { run_program(&argv, LONG).await }
        });
        let pid = child_pid(&argv_ref, Duration::from_secs(5)).await;
        let kill = run_program(&["kill", "-s", "TERM", &pid.to_string()], LONG)
            .await
            .unwrap();
        assert!(kill.success(), "{kill:?}");
        let err = run.await.unwrap().unwrap_err();
        assert!(
            matches!(err, CommandError::Signaled { signal: 15, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{}: killed by signal 15 (SIGTERM)", argv.join(" "))
        );
    }

    #[tokio::test]
    async fn output_larger_than_a_pipe_buffer_is_read_without_deadlock() {
        const SIZE: usize = 2 * 1024 * 1024;
        let out = run_program(&["head", "-c", &SIZE.to_string(), "/dev/zero"], LONG)
            .await
            .unwrap();
        assert_eq!(out.code, Some(0));
        assert_eq!(out.stdout.len(), SIZE);
        // The same on stderr, which is read at the same time as stdout.
        let out = run_program(
            &[
                "dd",
                "if=/dev/zero",
                "of=/dev/stderr",
                "bs=65536",
                "count=16",
            ],
            LONG,
        )
        .await
        .unwrap();
        assert_eq!(out.code, Some(0), "{}", out.stderr.len());
        assert!(out.stderr.len() >= 1024 * 1024, "{}", out.stderr.len());
    }

    #[test]
    fn durations_and_signals_read_well_in_messages() {
        assert_eq!(show_duration(Duration::from_secs(60)), "60 s");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500 ms");
        assert_eq!(show_signal(9), "9 (SIGKILL)");
        assert_eq!(show_signal(40), "40");
        let e = CommandError::Failed {
            command: "kubeadm join".into(),
            code: Some(1),
            stderr: "line one\nline two\n".into(),
        };
        assert_eq!(e.reason(), "exited with code 1: line one | line two");
        let out = CommandOutput {
            code: Some(3),
            stdout: "said on stdout\n".into(),
            stderr: " \n".into(),
        };
        assert_eq!(out.failure_reason(), "exited with code 3: said on stdout");
        let out = CommandOutput {
            code: Some(3),
            stdout: "ignored".into(),
            stderr: "said on stderr".into(),
        };
        assert_eq!(out.failure_reason(), "exited with code 3: said on stderr");
    }
}
