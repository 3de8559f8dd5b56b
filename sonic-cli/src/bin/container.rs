//! `container`: start, stop, kill, wait for or identify a SONiC feature's container, locally or
//! under Kubernetes (drop-in for upstream's `/usr/local/bin/container`).

fn main() -> std::process::ExitCode {
    sonic_cli::ctr::container::main()
}
