//! Golden transcripts (`tests/golden/*.t`, format in `tests/golden/README.md`) run against the
//! built `show` and `config` binaries and private `redis-server`s seeded from the sonic-utilities
//! mock tables; stdout, stderr and the exit code are compared byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use redis::Commands;
use sonic_tests::redis::{CONFIG_DB, MultiAsicRedis, RedisServer, STATE_DB, mock_tables_dir};

/// How long one command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the binaries find their databases (and, for `config feature install`, their files).
struct Env {
    vars: Vec<(&'static str, PathBuf)>,
    servers: Servers,
    /// The temp dir that `$ROOT` stands for in a transcript, when the test has one.
    root: Option<tempfile::TempDir>,
}

enum Servers {
    None,
    Single(RedisServer),
    MultiAsic(MultiAsicRedis),
}

impl Env {
    /// One server seeded with the mock tables.
    fn single() -> Result<Self> {
        let server = RedisServer::start().context("cannot start redis-server")?;
        seed(&server)?;
        Ok(Env {
            vars: vec![(
                "SONIC_DB_CONFIG",
                server.database_config_path().to_path_buf(),
            )],
            servers: Servers::Single(server),
            root: None,
        })
    }

    /// [`Env::single`] with the install commands pointed at a temp dir (`$ROOT`): units in
    /// `$ROOT/units`, scripts in `$ROOT/bin`, and no `systemctl daemon-reload`.
    fn single_with_install_root() -> Result<Self> {
        let mut env = Env::single()?;
        let root = tempfile::tempdir().context("cannot create a temp dir")?;
        env.vars.extend([
            ("SONIC_INSTALL_UNIT_DIR", root.path().join("units")),
            ("SONIC_INSTALL_SCRIPT_DIR", root.path().join("bin")),
            ("SONIC_CONTAINER_BIN", root.path().join("bin/container")),
            ("SONIC_SYSTEMCTL", PathBuf::new()),
        ]);
        env.root = Some(root);
        Ok(env)
    }

    /// The transcript placeholders and what they stand for: `$ROOT` (the install temp dir) and
    /// `$GOLDEN` (the directory of the transcripts, for fixture files).
    fn placeholders(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("$GOLDEN", golden_dir().display().to_string())];
        if let Some(root) = &self.root {
            out.push(("$ROOT", root.path().display().to_string()));
        }
        out
    }

    /// `text` with each placeholder replaced by its path.
    fn expand(&self, text: &str) -> String {
        self.placeholders()
            .iter()
            .fold(text.to_string(), |t, (name, path)| t.replace(name, path))
    }

    /// `text` with each placeholder's path replaced by the placeholder, so that outputs naming
    /// temp paths compare equal from run to run.
    fn redact(&self, text: &str) -> String {
        self.placeholders()
            .iter()
            .fold(text.to_string(), |t, (name, path)| t.replace(path, name))
    }

    /// A host and `n` ASIC namespaces, every one seeded with the mock tables.
    fn multi_asic(n: usize) -> Result<Self> {
        let multi = MultiAsicRedis::start(n).context("cannot start redis-servers")?;
        seed(&multi.host)?;
        for s in &multi.asics {
            seed(s)?;
        }
        Ok(Env {
            vars: vec![
                ("SONIC_DB_CONFIG", multi.host_config_path()),
                ("SONIC_DB_GLOBAL_CONFIG", multi.global_config_path()),
            ],
            servers: Servers::MultiAsic(multi),
            root: None,
        })
    }

    /// A connection to `[asicN:]CONFIG_DB` or `[asicN:]STATE_DB`.
    fn connection(&self, db_spec: &str) -> Result<redis::Connection> {
        let (ns, db) = db_spec.split_once(':').unwrap_or(("", db_spec));
        let id = match db {
            "CONFIG_DB" => CONFIG_DB,
            "STATE_DB" => STATE_DB,
            other => bail!("unknown database {other}"),
        };
        let server = match (&self.servers, ns) {
            (Servers::Single(s), "") => s,
            (Servers::MultiAsic(m), "") => &m.host,
            (Servers::MultiAsic(m), ns) => {
                let n: usize = ns
                    .strip_prefix("asic")
                    .and_then(|n| n.parse().ok())
                    .with_context(|| format!("bad namespace {ns}"))?;
                m.asics
                    .get(n)
                    .with_context(|| format!("no namespace {ns}"))?
            }
            _ => bail!("no server for {db_spec}"),
        };
        server.connection(id)
    }
}

fn seed(server: &RedisServer) -> Result<()> {
    let dir = mock_tables_dir();
    server.seed_from_json(CONFIG_DB, dir.join("config_db.json").as_path())?;
    server.seed_from_json(STATE_DB, dir.join("state_db.json").as_path())?;
    Ok(())
}

/// What one run printed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    stderr: String,
    code: i32,
}

/// Runs a built binary with `args` and a deadline.
fn run_binary(env: &Env, args: &[String], extra_env: &[(&str, &str)]) -> Result<Outcome> {
    let bin = match args.first().map(String::as_str) {
        Some("show") => env!("CARGO_BIN_EXE_show"),
        Some("config") => env!("CARGO_BIN_EXE_config"),
        other => bail!("unknown binary {other:?}"),
    };
    let mut cmd = Command::new(bin);
    cmd.args(&args[1..])
        .env_remove("SONIC_DB_GLOBAL_CONFIG")
        .env_remove("COLUMNS")
        .env_remove("SONIC_INSTALL_UNIT_DIR")
        .env_remove("SONIC_INSTALL_SCRIPT_DIR")
        .env_remove("SONIC_CONTAINER_BIN")
        .env_remove("SONIC_SYSTEMCTL")
        .env("SONIC_CLI_SKIP_ROOT_CHECK", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().with_context(|| format!("cannot run {bin}"))?;
    wait_with_deadline(child, COMMAND_TIMEOUT)
}

fn wait_with_deadline(mut child: std::process::Child, timeout: Duration) -> Result<Outcome> {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            let out = child.wait_with_output()?;
            return Ok(Outcome {
                stdout: String::from_utf8(out.stdout)?,
                stderr: String::from_utf8(out.stderr)?,
                code: out.status.code().unwrap_or(-1),
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("command did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Splits a transcript command line: spaces separate arguments, `'...'` quotes one argument.
fn split_args(line: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if let Some(a) = cur.take() {
                    out.push(a);
                }
            }
            '\'' => {
                let a = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => a.push(c),
                        None => bail!("unterminated quote in {line:?}"),
                    }
                }
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(a) = cur {
        out.push(a);
    }
    Ok(out)
}

/// A command of a transcript and what it should print.
#[derive(Debug, Default)]
struct Expected {
    args: Vec<String>,
    line: usize,
    stdout: Vec<String>,
    stderr: Vec<String>,
    code: i32,
}

fn join_lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Runs a file check of a transcript line; `Ok(false)` when `words` is not one.
fn file_action(words: &[String], at: &str) -> Result<bool> {
    let Some((verb, rest)) = words.split_first() else {
        return Ok(false);
    };
    match (verb.as_str(), rest) {
        ("expect-file", [path, lines @ ..]) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{at}: {path} should exist"))?;
            for line in lines {
                ensure!(
                    text.lines().any(|l| l == line),
                    "{at}: {path} should hold the line {line:?}:\n{text}"
                );
            }
            Ok(true)
        }
        ("expect-no-file", [path]) => {
            ensure!(!Path::new(path).exists(), "{at}: {path} should not exist");
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Runs the `@` action of a transcript line.
fn redis_action(env: &Env, line: &str, at: &str) -> Result<()> {
    let words: Vec<String> = split_args(line)?.iter().map(|w| env.expand(w)).collect();
    if file_action(&words, at)? {
        return Ok(());
    }
    let [verb, db, key, rest @ ..] = words.as_slice() else {
        bail!("{at}: malformed action {line:?}");
    };
    let mut conn = env.connection(db)?;
    match verb.as_str() {
        "hset" => {
            ensure!(
                !rest.is_empty() && rest.len() % 2 == 0,
                "{at}: hset needs field/value pairs"
            );
            let pairs: Vec<(&str, &str)> = rest
                .chunks(2)
                .map(|p| (p[0].as_str(), p[1].as_str()))
                .collect();
            let _: () = conn.hset_multiple(key, &pairs)?;
        }
        "hdel" => {
            let _: i64 = conn.hdel(key, rest)?;
        }
        "del" => {
            let _: i64 = conn.del(key)?;
        }
        "expect" => {
            let actual: BTreeMap<String, String> = conn.hgetall(key)?;
            for pair in rest {
                let (f, v) = pair
                    .split_once('=')
                    .with_context(|| format!("{at}: {pair}"))?;
                ensure!(
                    actual.get(f).map(String::as_str) == Some(v),
                    "{at}: {db} {key} should hold {f}={v}, holds {actual:?}"
                );
            }
        }
        "expect-no-field" => {
            let actual: BTreeMap<String, String> = conn.hgetall(key)?;
            for f in rest {
                ensure!(
                    !actual.contains_key(f),
                    "{at}: {db} {key} should lack {f}: {actual:?}"
                );
            }
        }
        other => bail!("{at}: unknown action {other}"),
    }
    Ok(())
}

/// Runs transcript `name` in `env` and fails with every mismatch shown as expected/actual.
fn run_transcript(name: &str, env: &Env) -> Result<()> {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let mut pending: Option<Expected> = None;
    let mut failures = Vec::new();
    let mut check = |exp: Expected| -> Result<()> {
        let args: Vec<String> = exp.args.iter().map(|a| env.expand(a)).collect();
        let actual = run_binary(env, &args, &[])?;
        let actual = Outcome {
            stdout: env.redact(&actual.stdout),
            stderr: env.redact(&actual.stderr),
            code: actual.code,
        };
        let expected = Outcome {
            stdout: join_lines(&exp.stdout),
            stderr: join_lines(&exp.stderr),
            code: exp.code,
        };
        if actual != expected {
            failures.push(format!(
                "{name}:{}: $ {}\n--- expected (exit {})\n{}{}--- actual (exit {})\n{}{}",
                exp.line,
                exp.args.join(" "),
                expected.code,
                expected.stdout,
                expected
                    .stderr
                    .lines()
                    .map(|l| format!("! {l}\n"))
                    .collect::<String>(),
                actual.code,
                actual.stdout,
                actual
                    .stderr
                    .lines()
                    .map(|l| format!("! {l}\n"))
                    .collect::<String>(),
            ));
        }
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", i + 1);
        if line.starts_with("# ") || line == "#" {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            if let Some(exp) = pending.take() {
                check(exp)?;
            }
            pending = Some(Expected {
                args: split_args(cmd)?,
                line: i + 1,
                ..Default::default()
            });
        } else if let Some(action) = line.strip_prefix("@ ") {
            if let Some(exp) = pending.take() {
                check(exp)?;
            }
            redis_action(env, action, &at)?;
        } else {
            let exp = pending
                .as_mut()
                .with_context(|| format!("{at}: output before a command"))?;
            if let Some(code) = line.strip_prefix("? ") {
                exp.code = code.parse().with_context(|| format!("{at}: exit code"))?;
            } else if line == "!" {
                exp.stderr.push(String::new());
            } else if let Some(err) = line.strip_prefix("! ") {
                exp.stderr.push(err.to_string());
            } else {
                exp.stdout.push(line.to_string());
            }
        }
    }
    if let Some(exp) = pending.take() {
        check(exp)?;
    }
    ensure!(
        failures.is_empty(),
        "{} mismatches:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn show_feature_outputs_match_upstream() -> Result<()> {
    run_transcript("show_feature.t", &Env::single()?)
}

#[test]
fn config_feature_outputs_and_writes_match_upstream() -> Result<()> {
    run_transcript("config_feature.t", &Env::single()?)
}

#[test]
fn kubernetes_outputs_and_writes_match_upstream_except_fixed_bugs() -> Result<()> {
    run_transcript("kubernetes.t", &Env::single()?)
}

#[test]
fn ordering_abbreviations_help_and_json_forms() -> Result<()> {
    run_transcript("show_misc.t", &Env::single()?)
}

#[test]
fn state_and_autorestart_cover_every_namespace_other_commands_only_the_host() -> Result<()> {
    run_transcript("multi_asic.t", &Env::multi_asic(2)?)
}

#[test]
fn feature_install_writes_files_and_feature_entry_and_uninstall_removes_them() -> Result<()> {
    run_transcript("install.t", &Env::single_with_install_root()?)
}

#[test]
fn missing_database_config_is_reported_with_exit_one() -> Result<()> {
    let env = Env {
        vars: vec![(
            "SONIC_DB_CONFIG",
            PathBuf::from("/nonexistent/database_config.json"),
        )],
        servers: Servers::None,
        root: None,
    };
    let out = run_binary(
        &env,
        &["show".into(), "feature".into(), "status".into()],
        &[],
    )?;
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.starts_with("Error: ")
            && out.stderr.contains("/nonexistent/database_config.json"),
        "{}",
        out.stderr
    );
    Ok(())
}

/// `--block` returns once featured reports the requested state, and fails on `failed`.
#[test]
fn blocking_state_change_waits_for_state_db() -> Result<()> {
    let env = Env::single()?;
    let spawn = |state: &str| -> Result<std::process::Child> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_config"));
        cmd.args(["feature", "state", "sflow", state, "--block"])
            .env("SONIC_CLI_SKIP_ROOT_CHECK", "1")
            .env_remove("SONIC_DB_GLOBAL_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &env.vars {
            cmd.env(k, v);
        }
        Ok(cmd.spawn()?)
    };
    let mut state = env.connection("STATE_DB")?;
    let mut config = env.connection("CONFIG_DB")?;

    let mut child = spawn("enabled")?;
    // The CONFIG_DB write happens before the wait starts; until STATE_DB says so it must wait.
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let s: Option<String> = config.hget("FEATURE|sflow", "state")?;
        if s.as_deref() == Some("enabled") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "config never wrote state=enabled"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    ensure!(
        child.try_wait()?.is_none(),
        "--block returned before STATE_DB reported the state"
    );
    let _: i64 = state.hset("FEATURE|sflow", "state", "enabled")?;
    let out = wait_with_deadline(child, COMMAND_TIMEOUT)?;
    assert_eq!(
        out,
        Outcome {
            stdout: String::new(),
            stderr: String::new(),
            code: 0
        }
    );

    // An already reached state returns at once (the subscription replays the entry).
    let out = wait_with_deadline(spawn("enabled")?, COMMAND_TIMEOUT)?;
    assert_eq!(out.code, 0);

    let child = spawn("disabled")?;
    let _: i64 = state.hset("FEATURE|sflow", "state", "failed")?;
    let out = wait_with_deadline(child, COMMAND_TIMEOUT)?;
    assert_eq!(
        out,
        Outcome {
            stdout: "Feature failed to be disabled\n".into(),
            stderr: String::new(),
            code: 1
        }
    );
    Ok(())
}

/// Without `SONIC_CLI_SKIP_ROOT_CHECK=1` a non-root `config` refuses to run a command, after
/// resolving it (an unknown command is still a usage error) and before parsing its arguments.
#[test]
fn config_needs_root_unless_the_skip_variable_is_set() -> Result<()> {
    let env = Env::single()?;
    let run_as_nobody = |args: &[&str]| -> Result<Outcome> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_config"));
        cmd.args(args).env_remove("SONIC_CLI_SKIP_ROOT_CHECK");
        for (k, v) in &env.vars {
            cmd.env(k, v);
        }
        if nix::unistd::geteuid().is_root() {
            // Drop to nobody for the child only.
            use std::os::unix::process::CommandExt;
            cmd.uid(65534).gid(65534);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        wait_with_deadline(cmd.spawn()?, COMMAND_TIMEOUT)
    };
    let out = run_as_nobody(&["feature", "state", "-h"])?;
    assert_eq!(
        out,
        Outcome {
            stdout: String::new(),
            stderr: "Root privileges are required for this operation\n".into(),
            code: 1
        }
    );
    let out = run_as_nobody(&["-h"])?;
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .starts_with("Usage: config [OPTIONS] COMMAND [ARGS]...")
    );
    let out = run_as_nobody(&["nosuch"])?;
    assert_eq!(out.code, 2);
    assert!(out.stderr.ends_with("Error: No such command 'nosuch'.\n"));
    Ok(())
}
