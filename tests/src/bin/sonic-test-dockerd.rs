//! `sonic-test-dockerd DIR`: runs a private dockerd in DIR for a whole test run (scripts/test, CI),
//! prints its `DOCKER_HOST` URI on stdout and stops it on SIGTERM, SIGINT or SIGHUP.
//!
//! ```text
//! target/debug/sonic-test-dockerd /tmp/sonic-ci-dockerd > host.txt &
//! # wait until host.txt has a line, then
//! export SONIC_TEST_DOCKER_HOST=$(cat host.txt)
//! ```
//!
//! The engine also stops when this process dies (SIGKILL included): it runs under
//! `setpriv --pdeathsig TERM`. An engine left in DIR by an earlier crashed run is stopped first.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use sonic_tests::docker::PrivateDockerd;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sonic-test-dockerd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        anyhow::bail!("usage: sonic-test-dockerd DIR");
    };
    // Block the stop signals before any thread exists so that every thread inherits the mask
    // and `wait` below receives them (children get a clean mask from std's spawn).
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGHUP);
    signals.thread_block().context("cannot block signals")?;

    let mut daemon = PrivateDockerd::start(&PathBuf::from(dir))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", daemon.host()).context("cannot write to stdout")?;
    stdout.flush().context("cannot flush stdout")?;

    let signal = signals.wait().context("cannot wait for a signal")?;
    eprintln!("sonic-test-dockerd: {signal}: stopping dockerd");
    daemon.stop()
}
