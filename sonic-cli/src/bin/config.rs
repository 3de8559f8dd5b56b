//! `config`: SONiC's `config feature ...` and `config kubernetes ...` commands.

fn main() -> std::process::ExitCode {
    sonic_cli::app::config_main()
}
