//! `container_startup`: run by a feature container's start script before its application;
//! records who runs the feature and holds a Kubernetes deployment the switch does not want.

fn main() -> std::process::ExitCode {
    sonic_cli::ctr::startup::main()
}
