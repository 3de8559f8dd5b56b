//! Link options of the `ctrmgrd` binary: its resident memory is issue 7's goal.
//!
//! `-z pack-relative-relocs` stores the position-independent executable's relative relocations
//! as DT_RELR (a few KiB) instead of `.rela.dyn` (~320 KiB with 24 bytes per pointer), which
//! the dynamic loader reads in full at start and which then stays resident. The executable
//! stays PIE. Needs glibc >= 2.36 at run time (the loader refuses older ones by the
//! GLIBC_ABI_DT_RELR version) and a linker that knows the option (rust-lld, GNU ld >= 2.38).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=ctrmgrd=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
