//! `sonic-manifest`: prints or writes the Kubernetes DaemonSet manifests of a feature spec.
//!
//! ```text
//! sonic-manifest print SPEC.yaml          # all manifests, one YAML stream, on stdout
//! sonic-manifest write SPEC.yaml DIR      # DIR/<daemonset>.yaml, one file per manifest
//! ```
//!
//! Exit codes: 0 done, 1 the spec or a file is wrong, 2 usage.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use sonic_kube_adapter::manifest::{
    FeatureRuntime, ManifestError, daemonsets, to_yaml_stream, write_manifests,
};

const USAGE: &str =
    "usage: sonic-manifest print SPEC.yaml\n       sonic-manifest write SPEC.yaml DIR\n";

fn print(spec: &Path) -> Result<String, ManifestError> {
    let desc = FeatureRuntime::from_file(spec)?;
    to_yaml_stream(&daemonsets(&desc))
}

fn write(spec: &Path, dir: &Path) -> Result<String, ManifestError> {
    let desc = FeatureRuntime::from_file(spec)?;
    let files = write_manifests(dir, &daemonsets(&desc))?;
    Ok(files.iter().map(|f| format!("{}\n", f.display())).collect())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["print", spec] => print(Path::new(spec)),
        ["write", spec, dir] => write(Path::new(spec), Path::new(dir)),
        ["-h" | "--help"] => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(out) => {
            // A closed stdout (a pager quit early) is not worth an error.
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
