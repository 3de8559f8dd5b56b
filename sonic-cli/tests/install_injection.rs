//! Nothing given to `config feature install` can inject text into the unit or the script:
//! syntax characters are refused where they would be syntax, and every word of the script is
//! inert — proven by running the generated script with a fake `container` that records its argv.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod install_common;

use std::path::Path;

use install_common::{Root, run_script};
use sonic_cli::install::{InstallError, ServiceSpec, install};

/// Words a shell would expand, split, glob or end a command on if they were not quoted.
const NASTY: &[&str] = &[
    "$(touch PWNED1)",
    "`touch PWNED2`",
    "'; touch PWNED3; '",
    "\"; touch PWNED4; \"",
    "it's",
    "a b  c",
    "$HOME ${IFS} $1 $0 $@ $*",
    "*",
    "~root",
    "\\",
    "\\'",
    "|| touch PWNED5 &",
    "-e",
    "",
    "%n %i $$",
    "é ✓",
];

fn yaml_str(s: &str) -> String {
    // JSON strings are YAML double-quoted strings.
    serde_json::to_string(s).unwrap()
}

fn yaml_argv(argv: &[String]) -> String {
    format!(
        "[{}]",
        argv.iter()
            .map(|a| yaml_str(a))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[test]
fn hostile_command_words_reach_the_programs_verbatim_and_run_nothing_else() {
    let root = Root::new().unwrap();
    let rec = root.recorder();
    // The hostile words, rewritten to touch files inside the temp dir if they ever ran.
    let pwned = |s: &str| {
        s.replace(
            "PWNED",
            &root.dir.path().join("PWNED").display().to_string(),
        )
    };
    let words: Vec<String> = NASTY.iter().map(|s| pwned(s)).collect();
    let hook = |tag: &str| {
        let mut argv = vec![rec.clone(), tag.to_owned()];
        argv.extend(words.iter().cloned());
        argv
    };
    let yaml = format!(
        "name: inject\npre-start: [{}]\npost-start: [{}]\npre-stop: [{}]\npost-stop: [{}]\n\
         warm-reboot-prepare: [{}]\nfast-reboot-prepare: [{}]\n",
        yaml_argv(&hook("pre-start")),
        yaml_argv(&hook("post-start")),
        yaml_argv(&hook("pre-stop")),
        yaml_argv(&hook("post-stop")),
        yaml_argv(&hook("prepare-warm")),
        yaml_argv(&hook("prepare-fast")),
    );
    let spec = ServiceSpec::from_yaml(Path::new("inject.yaml"), &yaml).unwrap();
    let installed = install(&spec, &root.paths).unwrap();

    for action in ["start", "wait", "stop", "prepare-warm", "prepare-fast"] {
        let out = run_script(&installed.script, action).unwrap();
        assert!(
            out.status.success(),
            "{action}: {}",
            install_common::describe(&out)
        );
    }

    let container = |verb: &str| vec![root.container(), verb.to_owned(), "inject".to_owned()];
    let recorded = |tag: &str| {
        let mut argv = hook(tag);
        argv[0] = rec.clone();
        argv
    };
    let expected = vec![
        recorded("pre-start"),
        container("start"),
        recorded("post-start"),
        container("wait"),
        recorded("pre-stop"),
        container("stop"),
        recorded("post-stop"),
        recorded("prepare-warm"),
        recorded("prepare-fast"),
    ];
    assert_eq!(root.calls().unwrap(), expected);
    let leftovers: Vec<_> = std::fs::read_dir(root.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("PWNED"))
        .collect();
    assert!(leftovers.is_empty(), "injected commands ran: {leftovers:?}");
}

#[test]
fn unknown_script_actions_fail_without_calling_container() {
    let root = Root::new().unwrap();
    let installed = install(&ServiceSpec::simple("snmp", &[]).unwrap(), &root.paths).unwrap();
    for action in ["", "restart", "start; touch x", "$(id)"] {
        let out = run_script(&installed.script, action).unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{action:?}: {}",
            install_common::describe(&out)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    }
    assert!(root.calls().unwrap().is_empty());
}

fn field_error(result: Result<ServiceSpec, InstallError>) -> String {
    match result {
        Ok(spec) => panic!("accepted: {spec:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_feature_names_are_rejected_naming_the_field() {
    for name in [
        "a'b", "a$(id)", "a`id`", "a\nb", "a\0b", "a b", "a;b", "../x", "x/y", "", "-x", "a\"b",
    ] {
        let err = field_error(ServiceSpec::simple(name, &[]));
        assert!(
            err.starts_with("field name: invalid feature name"),
            "{name:?}: {err}"
        );
        let yaml = format!("name: {}\n", yaml_str(name));
        let err = field_error(ServiceSpec::from_yaml(Path::new("s.yaml"), &yaml));
        assert!(
            err.starts_with("field name: invalid feature name"),
            "{name:?}: {err}"
        );
    }
}

#[test]
fn hostile_service_names_are_rejected_naming_the_field() {
    for bad in [
        "swss\nExecStartPre=/bin/evil",
        "a b",
        "a'b",
        "$(id)",
        "`id`",
        "a;b",
        "%n",
        "-x",
    ] {
        let err = field_error(ServiceSpec::simple("snmp", &["ok".into(), bad.into()]));
        assert!(
            err.starts_with("field requires[1]: invalid value"),
            "{bad:?}: {err}"
        );
        let yaml = format!("name: snmp\nrequired-by: [ok, {}]\n", yaml_str(bad));
        let err = field_error(ServiceSpec::from_yaml(Path::new("s.yaml"), &yaml));
        assert!(
            err.starts_with("field required-by[1]: invalid value"),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn control_characters_in_commands_are_rejected_naming_the_field() {
    for bad in ["a\nb", "a\rb", "a\0b", "a\tb", "\u{1b}[2J"] {
        let yaml = format!(
            "name: snmp\npost-stop: [[/bin/echo], [/bin/echo, ok, {}]]\n",
            yaml_str(bad)
        );
        let err = field_error(ServiceSpec::from_yaml(Path::new("s.yaml"), &yaml));
        assert!(
            err.starts_with("field post-stop[1][2]: invalid value"),
            "{bad:?}: {err}"
        );
        assert!(err.contains("control characters"), "{err}");
    }
}

#[test]
fn commands_must_name_their_program_by_absolute_path() {
    for bad in ["echo", "start", "exit", "./x", ""] {
        let yaml = format!("name: snmp\npre-start: [[{}, x]]\n", yaml_str(bad));
        let err = field_error(ServiceSpec::from_yaml(Path::new("s.yaml"), &yaml));
        assert!(
            err.starts_with("field pre-start[0][0]: invalid value"),
            "{bad:?}: {err}"
        );
    }
    let err = field_error(ServiceSpec::from_yaml(
        Path::new("s.yaml"),
        "name: snmp\npre-stop: [[]]\n",
    ));
    assert!(err.starts_with("field pre-stop[0]:"), "{err}");
}

#[test]
fn paths_that_would_be_syntax_in_the_unit_file_are_rejected() {
    let mut root = Root::new().unwrap();
    let spec = ServiceSpec::simple("snmp", &[]).unwrap();
    for bad in ["with space", "pct%n", "dollar$X", "quote\"q", "nl\nx"] {
        root.paths.script_dir = root.dir.path().join(bad);
        let err = install(&spec, &root.paths).unwrap_err().to_string();
        assert!(
            err.starts_with("field script_dir: invalid value"),
            "{bad:?}: {err}"
        );
    }
    assert!(
        !root.paths.unit_path(&spec.name).exists(),
        "nothing is written on a refused path"
    );
}
