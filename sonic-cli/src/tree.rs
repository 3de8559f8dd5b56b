//! The `show` and `config` command trees: names, help texts, arguments and group kinds as in
//! sonic-utilities (`show/main.py`, `show/feature.py`, `show/kube.py`, `config/main.py`,
//! `config/feature.py`, `config/kube.py`), plus this project's additions (`--json`, the HLD's
//! `config feature <property>` fields and `config kubernetes join|reset`).

use crate::click::{Command, Group, Guard, Matching, Node, Param};

/// What a `show` command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowAction {
    FeatureStatus,
    FeatureConfig,
    FeatureAutorestart,
    KubeServerConfig,
    KubeServerStatus,
    KubeLabels,
}

/// What a `config` command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigAction {
    FeatureState,
    FeatureAutorestart,
    FeatureOwner,
    FeatureFallback,
    /// `config feature no_fallback_to_local <name> true|false`: the raw field.
    FeatureNoFallback,
    FeatureFailureDetection,
    /// `config feature install <name> [REQUIRED_SERVICE]... [--spec FILE]`.
    FeatureInstall,
    /// `config feature uninstall <name>`.
    FeatureUninstall,
    KubeServerIp,
    KubeServerPort,
    KubeServerInsecure,
    KubeServerDisable,
    KubeLabelAdd,
    KubeLabelDrop,
    KubeJoin,
    KubeReset,
}

const ENABLED_DISABLED: &[&str] = &["enabled", "disabled"];
const ON_OFF: &[&str] = &["on", "off"];
const LOCAL_KUBE: &[&str] = &["local", "kube"];
const TRUE_FALSE: &[&str] = &["true", "false"];

/// Argument names shared by the command functions.
pub mod arg {
    pub const FEATURE_NAME: &str = "feature_name";
    pub const NAME: &str = "name";
    pub const VALUE: &str = "value";
    pub const JSON: &str = "json";
    pub const BLOCK: &str = "block";
    pub const FORCE: &str = "force";
    pub const KEY: &str = "key";
    pub const VAL: &str = "val";
    pub const REQUIRED_SERVICE: &str = "required_service";
    pub const SPEC: &str = "spec";
}

fn group<A>(
    name: &'static str,
    help: Option<&'static str>,
    matching: Matching,
    children: Vec<Node<A>>,
) -> Node<A> {
    Node::Group(Group {
        name,
        help,
        short_help: None,
        matching,
        guard: Guard::None,
        children,
    })
}

fn command<A>(
    name: &'static str,
    help: Option<&'static str>,
    short_help: Option<&'static str>,
    params: Vec<Param>,
    action: A,
) -> Node<A> {
    Node::Command(Command {
        name,
        hidden: false,
        help,
        short_help,
        params,
        action,
    })
}

fn hidden<A>(name: &'static str, params: Vec<Param>, action: A) -> Node<A> {
    Node::Command(Command {
        name,
        hidden: true,
        help: None,
        short_help: None,
        params,
        action,
    })
}

fn arg(name: &'static str, metavar: Option<&'static str>) -> Param {
    Param::Arg {
        name,
        metavar,
        required: true,
        choices: None,
    }
}

fn choice(
    name: &'static str,
    metavar: Option<&'static str>,
    choices: &'static [&'static str],
) -> Param {
    Param::Arg {
        name,
        metavar,
        required: true,
        choices: Some(choices),
    }
}

fn json_flag() -> Param {
    Param::Flag {
        name: arg::JSON,
        short: None,
        long: "--json",
        help: "Print the output as JSON (see JSON.md of sonic-cli).",
    }
}

fn feature_name_arg() -> Param {
    Param::Arg {
        name: arg::FEATURE_NAME,
        metavar: None,
        required: false,
        choices: None,
    }
}

/// The `show` tree (an `AliasedGroup`, as upstream's `show` root).
pub fn show_tree() -> Node<ShowAction> {
    let feature = group(
        "feature",
        Some("Show feature status"),
        Matching::Abbreviation,
        vec![
            command(
                "status",
                None,
                Some("Show feature state"),
                vec![feature_name_arg(), json_flag()],
                ShowAction::FeatureStatus,
            ),
            command(
                "config",
                None,
                Some("Show feature config"),
                vec![feature_name_arg(), json_flag()],
                ShowAction::FeatureConfig,
            ),
            command(
                "autorestart",
                None,
                Some("Show auto-restart state for a feature"),
                vec![feature_name_arg(), json_flag()],
                ShowAction::FeatureAutorestart,
            ),
        ],
    );
    let server = group(
        "server",
        Some(" Server configuration "),
        Matching::Exact,
        vec![
            command(
                "config",
                Some("Show kube configuration"),
                None,
                vec![json_flag()],
                ShowAction::KubeServerConfig,
            ),
            command(
                "status",
                Some("Show kube configuration"),
                None,
                vec![json_flag()],
                ShowAction::KubeServerStatus,
            ),
        ],
    );
    let kubernetes = group(
        "kubernetes",
        None,
        Matching::Abbreviation,
        vec![
            server,
            command(
                "labels",
                None,
                None,
                vec![json_flag()],
                ShowAction::KubeLabels,
            ),
        ],
    );
    Node::Group(Group {
        name: "show",
        help: Some("SONiC command line - 'show' command"),
        short_help: None,
        matching: Matching::Aliased,
        guard: Guard::None,
        children: vec![feature, kubernetes],
    })
}

/// The `config` tree (an `AbbreviationGroup` whose callback needs root).
pub fn config_tree() -> Node<ConfigAction> {
    let feature_name = || arg(arg::NAME, Some("<feature-name>"));
    let feature = group(
        "feature",
        Some("Configure features"),
        Matching::Abbreviation,
        vec![
            command(
                "state",
                Some("Enable/disable a feature"),
                Some("Enable/disable a feature"),
                vec![
                    feature_name(),
                    choice(arg::VALUE, Some("<state>"), ENABLED_DISABLED),
                    Param::Flag {
                        name: arg::BLOCK,
                        short: None,
                        long: "--block",
                        help: "Wait till operation is finished",
                    },
                ],
                ConfigAction::FeatureState,
            ),
            command(
                "autorestart",
                Some("Enable/disable autorestart of a feature"),
                Some("Enable/disable autosrestart of a feature"),
                vec![
                    feature_name(),
                    choice(arg::VALUE, Some("<autorestart>"), ENABLED_DISABLED),
                ],
                ConfigAction::FeatureAutorestart,
            ),
            command(
                "owner",
                Some("Set owner for the feature"),
                Some("set owner for a feature"),
                vec![
                    feature_name(),
                    choice(arg::VALUE, Some("<owner>"), LOCAL_KUBE),
                ],
                ConfigAction::FeatureOwner,
            ),
            command(
                "fallback",
                Some("Set fallback for the feature"),
                Some("set fallback for a feature"),
                vec![
                    feature_name(),
                    choice(arg::VALUE, Some("<fallback>"), ON_OFF),
                ],
                ConfigAction::FeatureFallback,
            ),
            command(
                "kube_failure_detection",
                Some(
                    "Set the minutes a kube-owned feature may be down before it is reported \
                     as failed (0: never)",
                ),
                Some("set kube failure detection minutes for a feature"),
                vec![feature_name(), arg(arg::VALUE, Some("<minutes>"))],
                ConfigAction::FeatureFailureDetection,
            ),
            // Project additions (HLD "config feature install"); `i` and `u` were unused
            // prefixes, so every upstream abbreviation resolves as before.
            command(
                "install",
                Some(
                    "Install a kube-only feature: its systemd unit, its service script and its \
                     FEATURE entry",
                ),
                Some("Install a kube-only feature"),
                vec![
                    feature_name(),
                    Param::Args {
                        name: arg::REQUIRED_SERVICE,
                        metavar: None,
                    },
                    Param::Opt {
                        name: arg::SPEC,
                        short: None,
                        long: "--spec",
                        metavar: "FILE",
                        help: "Install from this YAML feature spec (its name must be \
                               <feature-name>; it lists the required services)",
                    },
                ],
                ConfigAction::FeatureInstall,
            ),
            command(
                "uninstall",
                Some("Remove the unit and script installed by 'config feature install'"),
                Some("Remove what 'config feature install' installed"),
                vec![feature_name()],
                ConfigAction::FeatureUninstall,
            ),
            // The HLD's `config feature <property> <name> <value>` by FEATURE field name.
            hidden(
                "auto_restart",
                vec![
                    feature_name(),
                    choice(arg::VALUE, Some("<auto_restart>"), ENABLED_DISABLED),
                ],
                ConfigAction::FeatureAutorestart,
            ),
            hidden(
                "set_owner",
                vec![
                    feature_name(),
                    choice(arg::VALUE, Some("<set_owner>"), LOCAL_KUBE),
                ],
                ConfigAction::FeatureOwner,
            ),
            hidden(
                "no_fallback_to_local",
                vec![
                    feature_name(),
                    choice(arg::VALUE, Some("<no_fallback_to_local>"), TRUE_FALSE),
                ],
                ConfigAction::FeatureNoFallback,
            ),
        ],
    );
    let force = |help| Param::Flag {
        name: arg::FORCE,
        short: Some("-f"),
        long: "--force",
        help,
    };
    let server = group(
        "server",
        Some(" Server configuration "),
        Matching::Exact,
        vec![
            command(
                "ip",
                Some("Specify a kubernetes cluster VIP"),
                None,
                vec![arg("vip", None)],
                ConfigAction::KubeServerIp,
            ),
            command(
                "port",
                Some("Specify a kubernetes Service port"),
                None,
                vec![arg("portval", None)],
                ConfigAction::KubeServerPort,
            ),
            command(
                "insecure",
                Some("Specify a kubernetes cluster VIP access as insecure or not"),
                None,
                vec![choice("option", None, ON_OFF)],
                ConfigAction::KubeServerInsecure,
            ),
            command(
                "disable",
                Some("Specify a kubernetes cluster VIP access is disabled or not"),
                None,
                vec![choice("option", None, ON_OFF)],
                ConfigAction::KubeServerDisable,
            ),
        ],
    );
    let label = group(
        "label",
        Some(" label configuration "),
        Matching::Exact,
        vec![
            command(
                "add",
                Some("Add a label to this node"),
                None,
                vec![arg(arg::KEY, None), arg(arg::VAL, None)],
                ConfigAction::KubeLabelAdd,
            ),
            command(
                "drop",
                Some("Drop a label from this node"),
                None,
                vec![arg(arg::KEY, None)],
                ConfigAction::KubeLabelDrop,
            ),
        ],
    );
    let kubernetes = group(
        "kubernetes",
        Some("kubernetes command line"),
        Matching::Abbreviation,
        vec![
            server,
            label,
            command(
                "join",
                Some("Ask ctrmgrd to join the Kubernetes master"),
                None,
                vec![force("Join even when already connected")],
                ConfigAction::KubeJoin,
            ),
            command(
                "reset",
                Some("Ask ctrmgrd to reset the connection to the Kubernetes master"),
                None,
                vec![force("Reset even when not connected")],
                ConfigAction::KubeReset,
            ),
        ],
    );
    Node::Group(Group {
        name: "config",
        help: Some("SONiC command line - 'config' command"),
        short_help: None,
        matching: Matching::Abbreviation,
        guard: Guard::Root,
        children: vec![feature, kubernetes],
    })
}
