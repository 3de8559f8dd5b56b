//! `kube-reboot prepare warm|fast|cold` / `kube-reboot restore`: reboot support for
//! kube-managed features (HLD "Reboot support").

// The module lives with the library's sources; it is compiled into this binary only until
// `sonic_cli` exports it (`pub mod reboot;` in lib.rs).
#[path = "../reboot/mod.rs"]
mod reboot;

// `reboot` refers to `crate::install`, as it will inside the library.
use sonic_cli::install;

fn main() -> std::process::ExitCode {
    reboot::cli::main()
}
