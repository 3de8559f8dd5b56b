//! What the `show` and `config` binaries run: click-style dispatch, `config`'s root check, a
//! current-thread runtime for the command, and the mapping of the outcome to stdout, stderr and
//! the exit code.

use std::io::Write;
use std::process::ExitCode;

use sonic_db::SonicDbConfig;

use crate::click::{self, Exit, Guard, Settings};
use crate::tree;

/// Setting this variable to `1` lets `config` run without root privileges. Meant for tests and
/// the lab only: on a switch, writes to the databases are a root-only operation.
pub const SKIP_ROOT_CHECK_ENV: &str = "SONIC_CLI_SKIP_ROOT_CHECK";

/// Runs `show` with the process arguments.
pub fn show_main() -> ExitCode {
    let (prog, args) = process_args("show");
    finish(run_show(&prog, &args, Settings::from_env()))
}

/// Runs `config` with the process arguments.
pub fn config_main() -> ExitCode {
    let (prog, args) = process_args("config");
    finish(run_config(&prog, &args, Settings::from_env()))
}

/// `show` for an argument list (without the program name).
pub fn run_show(prog: &str, args: &[String], settings: Settings) -> Exit {
    let tree = tree::show_tree();
    match click::dispatch(&tree, prog, args, settings, &mut |_| Ok(())) {
        Err(exit) => exit,
        Ok(inv) => run_async(|dbs| async move { crate::show::run(&inv, &dbs).await }),
    }
}

/// `config` for an argument list (without the program name).
pub fn run_config(prog: &str, args: &[String], settings: Settings) -> Exit {
    let tree = tree::config_tree();
    match click::dispatch(&tree, prog, args, settings, &mut root_guard) {
        Err(exit) => exit,
        Ok(inv) => run_async(|dbs| async move { crate::config::run(&inv, &dbs).await }),
    }
}

/// Upstream's `config` callback: `sys.exit("Root privileges are required for this operation")`.
fn root_guard(guard: Guard) -> Result<(), Exit> {
    match guard {
        Guard::None => Ok(()),
        Guard::Root => {
            let skip = std::env::var(SKIP_ROOT_CHECK_ENV).is_ok_and(|v| v == "1");
            if skip || nix::unistd::geteuid().is_root() {
                Ok(())
            } else {
                Err(Exit::stderr(
                    1,
                    "Root privileges are required for this operation\n",
                ))
            }
        }
    }
}

/// Loads the database configuration and runs `command` on a current-thread runtime; any
/// configuration or database error ends the run with `Error: ...` on stderr and exit 1.
fn run_async<F, Fut>(command: F) -> Exit
where
    F: FnOnce(SonicDbConfig) -> Fut,
    Fut: std::future::Future<Output = Result<Exit, sonic_db::DbError>>,
{
    let dbs = match SonicDbConfig::from_env() {
        Ok(dbs) => dbs,
        Err(e) => return Exit::stderr(1, format!("Error: {e}\n")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Exit::stderr(1, format!("Error: cannot start the async runtime: {e}\n")),
    };
    match runtime.block_on(command(dbs)) {
        Ok(exit) => exit,
        Err(e) => Exit::stderr(1, format!("Error: {e}\n")),
    }
}

/// The program name as typed (`basename(argv[0])`, like click) and the arguments.
fn process_args(default_prog: &str) -> (String, Vec<String>) {
    let mut argv = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let prog = argv
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| default_prog.to_string());
    (prog, argv.collect())
}

/// Writes the outcome and turns its code into the process exit code. A closed stdout (a pager
/// quit early) is not an error worth reporting.
fn finish(exit: Exit) -> ExitCode {
    let _ = std::io::stdout().lock().write_all(exit.stdout.as_bytes());
    let _ = std::io::stderr().lock().write_all(exit.stderr.as_bytes());
    ExitCode::from(u8::try_from(exit.code).unwrap_or(1))
}
