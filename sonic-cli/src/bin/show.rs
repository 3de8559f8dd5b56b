//! `show`: SONiC's `show feature ...` and `show kubernetes ...` commands.

fn main() -> std::process::ExitCode {
    sonic_cli::app::show_main()
}
