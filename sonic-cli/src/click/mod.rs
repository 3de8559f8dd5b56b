//! A data-driven command tree with click 8.1's dispatch, help pages and usage errors, byte for byte.
//!
//! Upstream's `show` and `config` are click applications; scripts and people depend on their
//! abbreviations, help layout, error texts and exit codes. clap's parser and messages differ in
//! all of these, so the tree is walked here the way click's `Group.invoke` / `OptionParser` walk
//! it:
//!
//! - a group with no arguments prints its help and exits 0 (`no_args_is_help`);
//! - options before the subcommand belong to the group (no interspersed arguments), options of a
//!   command may appear anywhere, `--` ends options;
//! - positional values are shared out as click's `_unpack_args` does: arguments before a variadic
//!   one (`nargs=-1`) take from the front, arguments after it from the back, the variadic one
//!   the rest;
//! - subcommand lookup is exact, then per group kind: [`Matching::Abbreviation`]
//!   (sonic-utilities `AbbreviationGroup`), [`Matching::Aliased`] (`AliasedGroup`, unique prefix
//!   only) or [`Matching::Exact`] (plain `click.Group`);
//! - the group callback ([`Guard`]) runs after the subcommand is resolved and before the
//!   subcommand's own arguments are parsed, which is where upstream's `config` does its root check;
//! - the help option is eager: it wins over argument errors but not over unknown options;
//! - usage errors print `Usage: <path as typed> ...`, `Try '<path> -h' for help.`, a blank line and
//!   `Error: ...` to stderr and exit 2.

pub mod text;

use text::{close_matches, fill, fill_paragraphs, make_default_short_help, py_repr};

/// Help option names in the order click lists them on help pages (upstream's order changes from
/// run to run because click builds it from a Python set; this is the order in SONiC's docs).
const HELP_OPTS_DISPLAY: &str = "-?, -h, --help";
/// The first entry of upstream's `help_option_names`, used in `Try '... -h' for help.`
const HELP_HINT: &str = "-h";
const HELP_TEXT: &str = "Show this message and exit.";

/// How a group finds a subcommand that is not named exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// Plain `click.Group`: exact names only.
    Exact,
    /// sonic-utilities `AbbreviationGroup`: a unique case-insensitive prefix, or the shortest
    /// match when it is a prefix of all matches.
    Abbreviation,
    /// sonic-utilities `AliasedGroup`: a unique case-insensitive prefix.
    Aliased,
}

/// What the group callback must check before its subcommand runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Nothing (most groups have no callback).
    None,
    /// Upstream `config`: root privileges are required.
    Root,
}

/// A command-line parameter of a leaf command.
#[derive(Debug, Clone, Copy)]
pub enum Param {
    /// A positional argument (`nargs=1`).
    Arg {
        /// Key under which the value is found in [`Values`].
        name: &'static str,
        /// Explicit metavar; without it click shows `{a|b}` for choices or the upper-cased name.
        metavar: Option<&'static str>,
        required: bool,
        choices: Option<&'static [&'static str]>,
    },
    /// A variadic positional argument (`nargs=-1`, not required, click's default for it): zero
    /// or more values, shown as `[NAME]...` (or the metavar as given, click adds nothing to an
    /// explicit metavar). At most one per command.
    Args {
        /// Key under which the values are found in [`Values`].
        name: &'static str,
        /// Explicit metavar; without it click shows `[NAME]...`.
        metavar: Option<&'static str>,
    },
    /// An option that takes one value (`--spec FILE`); given twice, the last value wins.
    Opt {
        /// Key under which the value is found in [`Values`].
        name: &'static str,
        short: Option<&'static str>,
        long: &'static str,
        /// Shown after the option names on the help page (`--spec FILE`).
        metavar: &'static str,
        help: &'static str,
    },
    /// A boolean flag (`is_flag=True`).
    Flag {
        /// Key under which the flag is found in [`Values`].
        name: &'static str,
        short: Option<&'static str>,
        long: &'static str,
        help: &'static str,
    },
}

/// A leaf command; `A` identifies what to run.
#[derive(Debug, Clone)]
pub struct Command<A> {
    pub name: &'static str,
    /// Selected only when typed in full: not listed in help and never part of prefix matching
    /// (click would match hidden commands by prefix too), so adding one cannot make an upstream
    /// abbreviation ambiguous.
    pub hidden: bool,
    /// The docstring (shown on the command's own help page).
    pub help: Option<&'static str>,
    /// click's `short_help` (shown in the parent's command list).
    pub short_help: Option<&'static str>,
    pub params: Vec<Param>,
    pub action: A,
}

/// A group of subcommands.
#[derive(Debug, Clone)]
pub struct Group<A> {
    pub name: &'static str,
    pub help: Option<&'static str>,
    pub short_help: Option<&'static str>,
    pub matching: Matching,
    pub guard: Guard,
    pub children: Vec<Node<A>>,
}

/// A node of the command tree.
#[derive(Debug, Clone)]
pub enum Node<A> {
    Group(Group<A>),
    Command(Command<A>),
}

impl<A> Node<A> {
    fn name(&self) -> &'static str {
        match self {
            Node::Group(g) => g.name,
            Node::Command(c) => c.name,
        }
    }

    fn hidden(&self) -> bool {
        match self {
            Node::Group(_) => false,
            Node::Command(c) => c.hidden,
        }
    }

    fn short_help(&self, limit: usize) -> String {
        let (short, help) = match self {
            Node::Group(g) => (g.short_help, g.help),
            Node::Command(c) => (c.short_help, c.help),
        };
        match (short, help) {
            (Some(s), _) => s.trim().to_string(),
            (None, Some(h)) => make_default_short_help(h, limit),
            (None, None) => String::new(),
        }
    }
}

/// The end of a run that never reached a command: text for stdout/stderr and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Exit {
    pub fn stdout(code: i32, text: impl Into<String>) -> Self {
        Exit {
            code,
            stdout: text.into(),
            stderr: String::new(),
        }
    }
    pub fn stderr(code: i32, text: impl Into<String>) -> Self {
        Exit {
            code,
            stdout: String::new(),
            stderr: text.into(),
        }
    }
}

/// Parsed values of a leaf command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    args: Vec<(&'static str, Option<String>)>,
    lists: Vec<(&'static str, Vec<String>)>,
    opts: Vec<(&'static str, String)>,
    flags: Vec<&'static str>,
}

impl Values {
    /// The value of an argument; `None` when an optional argument was not given.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_deref())
    }
    /// The values of a variadic argument, in command-line order (empty when none was given).
    pub fn arg_list(&self, name: &str) -> &[String] {
        self.lists
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&[], |(_, v)| v.as_slice())
    }
    /// The value of an option that takes one; `None` when it was not given.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
    /// Whether a flag was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }
}

/// A resolved command line, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation<A> {
    pub action: A,
    /// The command path as typed (`config feature s`), for messages that name it.
    pub command_path: String,
    pub values: Values,
    /// The usage pieces after the path (`[OPTIONS] <feature-name> <state>`).
    pub usage_pieces: String,
    pub settings: Settings,
}

impl<A> Invocation<A> {
    /// A usage error of this command (`ctx.fail(message)` in click): usage, hint, exit 2.
    pub fn usage_error(&self, message: &str) -> Exit {
        usage_error(
            &self.command_path,
            &self.usage_pieces,
            message,
            self.settings,
        )
    }

    /// click's `BadParameter` for argument `metavar`: `Invalid value for '<metavar>': ...`.
    pub fn bad_parameter(&self, metavar: &str, message: &str) -> Exit {
        self.usage_error(&format!("Invalid value for '{metavar}': {message}"))
    }
}

/// Formatting settings: click's help width is `max(min(terminal columns, 80) - 2, 50)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub width: usize,
}

impl Settings {
    /// Width from `COLUMNS` like Python's `shutil.get_terminal_size`; without it 80 columns are
    /// assumed (the terminal itself is not queried, see docs/COMPATIBILITY.md).
    pub fn from_env() -> Self {
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|c| *c > 0)
            .unwrap_or(80);
        Settings {
            width: columns.min(80).saturating_sub(2).max(50),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings { width: 78 }
    }
}

/// Walks `args` (without the program name) through `root`, named `prog` as typed.
///
/// `guard` is called with each group's [`Guard`] when that group hands over to a subcommand, like
/// click runs a group callback; returning an [`Exit`] stops the run.
pub fn dispatch<A: Clone>(
    root: &Node<A>,
    prog: &str,
    args: &[String],
    settings: Settings,
    guard: &mut dyn FnMut(Guard) -> Result<(), Exit>,
) -> Result<Invocation<A>, Exit> {
    let mut path = prog.to_string();
    let mut node = root;
    let mut args: Vec<String> = args.to_vec();
    loop {
        match node {
            Node::Group(group) => {
                if args.is_empty() {
                    return Err(Exit::stdout(0, group_help(&path, group, settings)));
                }
                let usage = || group_usage_pieces();
                let parsed = parse_options(&args, false, &[], &path, &usage(), settings)?;
                if parsed.help {
                    return Err(Exit::stdout(0, group_help(&path, group, settings)));
                }
                let mut rest = parsed.positionals.into_iter();
                let Some(name) = rest.next() else {
                    return Err(usage_error(&path, &usage(), "Missing command.", settings));
                };
                let child = match find_child(group, &name) {
                    Lookup::Found(child) => child,
                    Lookup::TooMany(mut matches) => {
                        matches.sort_unstable();
                        let msg = format!("Too many matches: {}", matches.join(", "));
                        return Err(usage_error(&path, &usage(), &msg, settings));
                    }
                    Lookup::None => {
                        if looks_like_option(&name) {
                            // click re-parses the (now empty) remaining args, which prints help.
                            return Err(Exit::stdout(0, group_help(&path, group, settings)));
                        }
                        let msg = format!("No such command {}.", py_repr(&name));
                        return Err(usage_error(&path, &usage(), &msg, settings));
                    }
                };
                guard(group.guard)?;
                path = format!("{path} {name}");
                node = child;
                args = rest.collect();
            }
            Node::Command(cmd) => return parse_command(cmd, &path, &args, settings),
        }
    }
}

/// click's `split_opt(name)[0]` is non-empty: the first character is not alphanumeric.
fn looks_like_option(name: &str) -> bool {
    match name.chars().next() {
        Some(c) => !c.is_alphanumeric(),
        None => false,
    }
}

enum Lookup<'a, A> {
    Found(&'a Node<A>),
    TooMany(Vec<&'static str>),
    None,
}

fn find_child<'a, A>(group: &'a Group<A>, name: &str) -> Lookup<'a, A> {
    if let Some(c) = group.children.iter().find(|c| c.name() == name) {
        return Lookup::Found(c);
    }
    if group.matching == Matching::Exact {
        return Lookup::None;
    }
    let lower = name.to_lowercase();
    // click's list_commands() is sorted(self.commands).
    let mut sorted: Vec<&Node<A>> = group.children.iter().filter(|c| !c.hidden()).collect();
    sorted.sort_by_key(|c| c.name());
    let matches: Vec<&Node<A>> = sorted
        .into_iter()
        .filter(|c| c.name().to_lowercase().starts_with(&lower))
        .collect();
    match matches.as_slice() {
        [] => Lookup::None,
        [one] => Lookup::Found(one),
        many => {
            if group.matching == Matching::Abbreviation {
                let mut shortest = many[0];
                for m in many.iter().skip(1) {
                    if m.name().chars().count() < shortest.name().chars().count() {
                        shortest = m;
                    }
                }
                if many.iter().all(|m| m.name().starts_with(shortest.name())) {
                    return Lookup::Found(shortest);
                }
            }
            Lookup::TooMany(many.iter().map(|m| m.name()).collect())
        }
    }
}

struct ParsedOptions {
    help: bool,
    flags: Vec<&'static str>,
    opts: Vec<(&'static str, String)>,
    positionals: Vec<String>,
}

/// What an option name on the command line stands for.
#[derive(Clone, Copy)]
enum Target {
    Help,
    Flag(&'static str),
    /// An option that takes a value, stored under this key.
    Value(&'static str),
}

impl ParsedOptions {
    fn set(&mut self, target: Target, value: Option<String>) {
        match (target, value) {
            (Target::Help, _) => self.help = true,
            (Target::Flag(name), _) => {
                if !self.flags.contains(&name) {
                    self.flags.push(name);
                }
            }
            (Target::Value(name), value) => {
                let value = value.unwrap_or_default();
                match self.opts.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = value,
                    None => self.opts.push((name, value)),
                }
            }
        }
    }
}

/// click raises `BadOptionUsage` without a context from its parser: no usage lines, exit 2.
fn bad_option_usage(message: &str) -> Exit {
    Exit::stderr(2, format!("Error: {message}\n"))
}

fn requires_an_argument(opt: &str) -> Exit {
    bad_option_usage(&format!("Option {} requires an argument.", py_repr(opt)))
}

/// click's `OptionParser` over the help option and the options in `params`. With
/// `interspersed == false` (groups) the first non-option stops option processing and it and
/// everything after it are positional.
fn parse_options(
    args: &[String],
    interspersed: bool,
    params: &[Param],
    path: &str,
    usage_pieces: &str,
    settings: Settings,
) -> Result<ParsedOptions, Exit> {
    let mut long_opts: Vec<(&'static str, Target)> = params
        .iter()
        .filter_map(|p| match p {
            Param::Flag { name, long, .. } => Some((*long, Target::Flag(name))),
            Param::Opt { name, long, .. } => Some((*long, Target::Value(name))),
            Param::Arg { .. } | Param::Args { .. } => None,
        })
        .collect();
    long_opts.push(("--help", Target::Help));
    let mut short_opts: Vec<(&'static str, Target)> = params
        .iter()
        .filter_map(|p| match p {
            Param::Flag {
                name,
                short: Some(s),
                ..
            } => Some((*s, Target::Flag(name))),
            Param::Opt {
                name,
                short: Some(s),
                ..
            } => Some((*s, Target::Value(name))),
            _ => None,
        })
        .collect();
    short_opts.push(("-h", Target::Help));
    short_opts.push(("-?", Target::Help));

    let fail = |msg: &str| usage_error(path, usage_pieces, msg, settings);
    let mut out = ParsedOptions {
        help: false,
        flags: Vec::new(),
        opts: Vec::new(),
        positionals: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.positionals.extend(args[i..].iter().cloned());
            return Ok(out);
        }
        if arg.starts_with('-') && arg.chars().count() > 1 {
            let (long, explicit) = match arg.split_once('=') {
                Some((l, v)) => (l, Some(v)),
                None => (arg.as_str(), None),
            };
            if let Some((_, target)) = long_opts.iter().find(|(o, _)| *o == long) {
                match (target, explicit) {
                    (Target::Value(_), Some(v)) => out.set(*target, Some(v.to_string())),
                    (Target::Value(_), None) => {
                        // The next argument is the value, whatever it looks like.
                        let Some(v) = args.get(i) else {
                            return Err(requires_an_argument(long));
                        };
                        i += 1;
                        out.set(*target, Some(v.clone()));
                    }
                    (_, Some(_)) => {
                        let msg = format!("Option {} does not take a value.", py_repr(long));
                        return Err(bad_option_usage(&msg));
                    }
                    (_, None) => out.set(*target, None),
                }
                continue;
            }
            if arg.starts_with("--") {
                let names: Vec<&str> = long_opts.iter().map(|(o, _)| *o).collect();
                let possibilities = close_matches(long, &names);
                let mut msg = format!("No such option: {long}");
                match possibilities.len() {
                    0 => {}
                    1 => msg.push_str(&format!(" Did you mean {}?", possibilities[0])),
                    _ => {
                        let mut p = possibilities.clone();
                        p.sort();
                        msg.push_str(&format!(" (Possible options: {})", p.join(", ")));
                    }
                }
                return Err(fail(&msg));
            }
            let chars: Vec<char> = arg.chars().collect();
            let mut k = 1;
            while k < chars.len() {
                let opt = format!("-{}", chars[k]);
                k += 1;
                let Some((_, target)) = short_opts.iter().find(|(o, _)| *o == opt) else {
                    return Err(fail(&format!("No such option: {opt}")));
                };
                if let Target::Value(_) = target {
                    // click: the rest of the argument is the value, else the next argument.
                    let value = if k < chars.len() {
                        chars[k..].iter().collect()
                    } else {
                        let Some(v) = args.get(i) else {
                            return Err(requires_an_argument(&opt));
                        };
                        i += 1;
                        v.clone()
                    };
                    out.set(*target, Some(value));
                    break;
                }
                out.set(*target, None);
            }
            continue;
        }
        if interspersed {
            out.positionals.push(arg.clone());
        } else {
            out.positionals.extend(args[i - 1..].iter().cloned());
            return Ok(out);
        }
    }
    Ok(out)
}

/// What click's `_unpack_args` gives one positional parameter.
enum Slot {
    One(Option<String>),
    Many(Vec<String>),
}

/// click's `_unpack_args` for `nargs` 1 and -1: parameters before the variadic one take values
/// from the front, those after it from the back (a missing value is `None`), the variadic one
/// takes what is left in between. Returns the slots in parameter order and the extra values.
fn unpack_args(positionals: Vec<String>, variadic: &[bool]) -> (Vec<Slot>, Vec<String>) {
    let mut rest: std::collections::VecDeque<String> = positionals.into();
    let Some(split) = variadic.iter().position(|v| *v) else {
        let slots = variadic
            .iter()
            .map(|_| Slot::One(rest.pop_front()))
            .collect();
        return (slots, rest.into());
    };
    let mut slots: Vec<Slot> = variadic[..split]
        .iter()
        .map(|_| Slot::One(rest.pop_front()))
        .collect();
    // Right to left, like click: with too few values the leftmost of these go without.
    let mut after: Vec<Slot> = variadic[split + 1..]
        .iter()
        .rev()
        .map(|_| Slot::One(rest.pop_back()))
        .collect();
    after.reverse();
    slots.push(Slot::Many(rest.into()));
    slots.extend(after);
    (slots, Vec::new())
}

fn parse_command<A: Clone>(
    cmd: &Command<A>,
    path: &str,
    args: &[String],
    settings: Settings,
) -> Result<Invocation<A>, Exit> {
    let pieces = command_usage_pieces(cmd);
    let parsed = parse_options(args, true, &cmd.params, path, &pieces, settings)?;
    if parsed.help {
        return Err(Exit::stdout(0, command_help(path, cmd, settings)));
    }
    let fail = |msg: &str| usage_error(path, &pieces, msg, settings);
    let positional_params: Vec<&Param> = cmd
        .params
        .iter()
        .filter(|p| matches!(p, Param::Arg { .. } | Param::Args { .. }))
        .collect();
    let variadic: Vec<bool> = positional_params
        .iter()
        .map(|p| matches!(p, Param::Args { .. }))
        .collect();
    let (slots, extra) = unpack_args(parsed.positionals, &variadic);
    let mut values = Values {
        args: Vec::new(),
        lists: Vec::new(),
        opts: parsed.opts,
        flags: parsed.flags,
    };
    for (param, slot) in positional_params.into_iter().zip(slots) {
        let (name, required, choices, value) = match (param, slot) {
            (Param::Args { name, .. }, Slot::Many(list)) => {
                values.lists.push((name, list));
                continue;
            }
            (
                Param::Arg {
                    name,
                    required,
                    choices,
                    ..
                },
                Slot::One(value),
            ) => (name, required, choices, value),
            // unpack_args gives `Many` exactly to the variadic parameter.
            _ => continue,
        };
        let hint = format!("'{}'", arg_metavar(param));
        match (&value, choices) {
            (None, Some(choices)) if *required => {
                return Err(fail(&format!(
                    "Missing argument {hint}. Choose from:\n\t{}",
                    choices.join(",\n\t")
                )));
            }
            (None, None) if *required => {
                return Err(fail(&format!("Missing argument {hint}.")));
            }
            (Some(v), Some(choices)) if !choices.contains(&v.as_str()) => {
                let listed: Vec<String> = choices.iter().map(|c| py_repr(c)).collect();
                let msg = if listed.len() == 1 {
                    format!("{} is not {}.", py_repr(v), listed[0])
                } else {
                    format!("{} is not one of {}.", py_repr(v), listed.join(", "))
                };
                return Err(fail(&format!("Invalid value for {hint}: {msg}")));
            }
            _ => {}
        }
        values.args.push((name, value));
    }
    if !extra.is_empty() {
        let noun = if extra.len() == 1 {
            "argument"
        } else {
            "arguments"
        };
        return Err(fail(&format!(
            "Got unexpected extra {noun} ({})",
            extra.join(" ")
        )));
    }
    Ok(Invocation {
        action: cmd.action.clone(),
        command_path: path.to_string(),
        values,
        usage_pieces: pieces,
        settings,
    })
}

/// A usage error the way click's `UsageError.show()` prints it (stderr, exit 2).
pub fn usage_error(path: &str, usage_pieces: &str, message: &str, settings: Settings) -> Exit {
    let usage = usage_line(path, usage_pieces, settings);
    Exit::stderr(
        2,
        format!("{usage}Try '{path} {HELP_HINT}' for help.\n\nError: {message}\n"),
    )
}

fn arg_metavar(param: &Param) -> String {
    match param {
        Param::Arg {
            name,
            metavar,
            required,
            choices,
        } => {
            if let Some(m) = metavar {
                return m.to_string();
            }
            let var = match choices {
                Some(c) if *required => format!("{{{}}}", c.join("|")),
                Some(c) => format!("[{}]", c.join("|")),
                None => name.to_uppercase(),
            };
            if *required { var } else { format!("[{var}]") }
        }
        Param::Args { name, metavar } => match metavar {
            Some(m) => m.to_string(),
            None => format!("[{}]...", name.to_uppercase()),
        },
        Param::Opt { long, .. } | Param::Flag { long, .. } => long.to_string(),
    }
}

fn group_usage_pieces() -> String {
    "[OPTIONS] COMMAND [ARGS]...".to_string()
}

fn command_usage_pieces<A>(cmd: &Command<A>) -> String {
    let mut pieces = vec!["[OPTIONS]".to_string()];
    for p in &cmd.params {
        if let Param::Arg { .. } | Param::Args { .. } = p {
            pieces.push(arg_metavar(p));
        }
    }
    pieces.join(" ")
}

/// click's `HelpFormatter.write_usage` with prefix `Usage: ` and no indentation.
fn usage_line(path: &str, pieces: &str, settings: Settings) -> String {
    let prefix = format!("Usage: {path} ");
    let prefix_len = prefix.chars().count();
    if settings.width >= prefix_len + 20 {
        let indent = " ".repeat(prefix_len);
        format!("{}\n", fill(pieces, settings.width, &prefix, &indent))
    } else {
        let indent = " ".repeat(4 + "Usage: ".len());
        format!(
            "{prefix}\n{}\n",
            fill(pieces, settings.width, &indent, &indent)
        )
    }
}

/// click's `HelpFormatter.write_dl` at indentation 2 (inside a section).
fn definition_list(rows: &[(String, String)], settings: Settings) -> String {
    const INDENT: usize = 2;
    let widest = rows
        .iter()
        .map(|(f, _)| f.chars().count())
        .max()
        .unwrap_or(0);
    let first_col = widest.min(30) + 2;
    let mut out = String::new();
    for (first, second) in rows {
        out.push_str(&" ".repeat(INDENT));
        out.push_str(first);
        if second.is_empty() {
            out.push('\n');
            continue;
        }
        let first_len = first.chars().count();
        if first_len <= first_col - 2 {
            out.push_str(&" ".repeat(first_col - first_len));
        } else {
            out.push('\n');
            out.push_str(&" ".repeat(first_col + INDENT));
        }
        let text_width = settings.width.saturating_sub(first_col + 2).max(10);
        let wrapped = fill_paragraphs(second, text_width, "");
        let mut lines = wrapped.lines();
        match lines.next() {
            Some(line) => {
                out.push_str(line);
                out.push('\n');
            }
            None => out.push('\n'),
        }
        for line in lines {
            out.push_str(&" ".repeat(first_col + INDENT));
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn help_text_block(help: Option<&str>, settings: Settings) -> String {
    match help.map(str::trim).filter(|h| !h.is_empty()) {
        Some(text) => format!("\n{}\n", fill_paragraphs(text, settings.width, "  ")),
        None => String::new(),
    }
}

fn finish_help(mut page: String) -> String {
    while page.ends_with('\n') {
        page.pop();
    }
    page.push('\n');
    page
}

/// The help page of a group, as `click.Group.get_help()` followed by `echo`.
pub fn group_help<A>(path: &str, group: &Group<A>, settings: Settings) -> String {
    let mut page = usage_line(path, &group_usage_pieces(), settings);
    page.push_str(&help_text_block(group.help, settings));
    page.push_str("\nOptions:\n");
    page.push_str(&definition_list(
        &[(HELP_OPTS_DISPLAY.into(), HELP_TEXT.into())],
        settings,
    ));
    let mut children: Vec<&Node<A>> = group.children.iter().filter(|c| !c.hidden()).collect();
    children.sort_by_key(|c| c.name());
    if !children.is_empty() {
        let longest = children
            .iter()
            .map(|c| c.name().chars().count())
            .max()
            .unwrap_or(0);
        let limit = settings.width.saturating_sub(6 + longest);
        let rows: Vec<(String, String)> = children
            .iter()
            .map(|c| (c.name().to_string(), c.short_help(limit)))
            .collect();
        page.push_str("\nCommands:\n");
        page.push_str(&definition_list(&rows, settings));
    }
    finish_help(page)
}

/// The help page of a leaf command.
pub fn command_help<A>(path: &str, cmd: &Command<A>, settings: Settings) -> String {
    let mut page = usage_line(path, &command_usage_pieces(cmd), settings);
    page.push_str(&help_text_block(cmd.help, settings));
    let mut rows: Vec<(String, String)> = cmd
        .params
        .iter()
        .filter_map(|p| match p {
            Param::Flag {
                short, long, help, ..
            } => {
                let opts = match short {
                    Some(s) => format!("{s}, {long}"),
                    None => long.to_string(),
                };
                Some((opts, help.to_string()))
            }
            Param::Opt {
                short,
                long,
                metavar,
                help,
                ..
            } => {
                let opts = match short {
                    Some(s) => format!("{s}, {long} {metavar}"),
                    None => format!("{long} {metavar}"),
                };
                Some((opts, help.to_string()))
            }
            Param::Arg { .. } | Param::Args { .. } => None,
        })
        .collect();
    rows.push((HELP_OPTS_DISPLAY.into(), HELP_TEXT.into()));
    page.push_str("\nOptions:\n");
    page.push_str(&definition_list(&rows, settings));
    finish_help(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Node<&'static str> {
        const CHOICES: &[&str] = &["enabled", "disabled"];
        Node::Group(Group {
            name: "config",
            help: Some("SONiC command line - 'config' command"),
            short_help: None,
            matching: Matching::Abbreviation,
            guard: Guard::Root,
            children: vec![Node::Group(Group {
                name: "feature",
                help: Some("Configure features"),
                short_help: None,
                matching: Matching::Abbreviation,
                guard: Guard::None,
                children: vec![
                    Node::Command(Command {
                        name: "state",
                        hidden: false,
                        help: Some("Enable/disable a feature"),
                        short_help: Some("Enable/disable a feature"),
                        params: vec![
                            Param::Arg {
                                name: "name",
                                metavar: Some("<feature-name>"),
                                required: true,
                                choices: None,
                            },
                            Param::Arg {
                                name: "state",
                                metavar: Some("<state>"),
                                required: true,
                                choices: Some(CHOICES),
                            },
                            Param::Flag {
                                name: "block",
                                short: None,
                                long: "--block",
                                help: "Wait till operation is finished",
                            },
                        ],
                        action: "state",
                    }),
                    Node::Command(Command {
                        name: "statistics",
                        hidden: true,
                        help: None,
                        short_help: None,
                        params: vec![],
                        action: "statistics",
                    }),
                    Node::Command(Command {
                        name: "stats",
                        hidden: false,
                        help: None,
                        short_help: None,
                        params: vec![],
                        action: "stats",
                    }),
                ],
            })],
        })
    }

    fn run(args: &[&str]) -> Result<Invocation<&'static str>, Exit> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        dispatch(&tree(), "config", &args, Settings::default(), &mut |_| {
            Ok(())
        })
    }

    #[test]
    fn choice_error_names_the_metavar_and_lists_choices() {
        let e = run(&["feature", "state", "bgp", "foo"]).unwrap_err();
        assert_eq!(e.code, 2);
        assert_eq!(
            e.stderr,
            "Usage: config feature state [OPTIONS] <feature-name> <state>\n\
             Try 'config feature state -h' for help.\n\n\
             Error: Invalid value for '<state>': 'foo' is not one of 'enabled', 'disabled'.\n"
        );
    }

    #[test]
    fn missing_choice_lists_choices_with_tabs() {
        let e = run(&["feature", "state", "bgp"]).unwrap_err();
        assert!(e.stderr.ends_with(
            "Error: Missing argument '<state>'. Choose from:\n\tenabled,\n\tdisabled\n"
        ));
    }

    #[test]
    fn help_wins_over_argument_errors_but_not_unknown_options() {
        assert_eq!(
            run(&["feature", "state", "-h", "x", "y", "z"])
                .unwrap_err()
                .code,
            0
        );
        let e = run(&["feature", "state", "-h", "--bogus"]).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.stderr.ends_with("Error: No such option: --bogus\n"));
    }

    #[test]
    fn flags_may_come_anywhere_in_a_command() {
        let inv = run(&["feature", "state", "--block", "bgp", "enabled"]).unwrap();
        assert!(inv.values.flag("block"));
        assert_eq!(inv.values.arg("name"), Some("bgp"));
    }

    #[test]
    fn shortest_prefix_wins_only_when_it_prefixes_all_matches() {
        let e = run(&["feature", "sta"]).unwrap_err();
        assert!(
            e.stderr.contains("Error: Too many matches: state, stats\n"),
            "{}",
            e.stderr
        );
        assert!(
            e.stderr
                .starts_with("Usage: config feature [OPTIONS] COMMAND [ARGS]...\n")
        );
    }

    #[test]
    fn hidden_commands_match_only_in_full() {
        assert_eq!(
            run(&["feature", "statistics"]).unwrap().action,
            "statistics"
        );
        assert_eq!(run(&["feature", "stati"]).unwrap_err().code, 2);
        assert_eq!(run(&["feature", "stats"]).unwrap().action, "stats");
    }

    #[test]
    fn usage_line_shows_the_name_as_typed() {
        let e = run(&["f", "state"]).unwrap_err();
        assert!(
            e.stderr.starts_with("Usage: config f state [OPTIONS]"),
            "{}",
            e.stderr
        );
    }

    #[test]
    fn long_option_typo_suggests_the_close_one() {
        let e = run(&["feature", "state", "--blok"]).unwrap_err();
        assert!(
            e.stderr
                .ends_with("Error: No such option: --blok Did you mean --block?\n")
        );
    }

    #[test]
    fn group_without_subcommand_prints_help_and_exits_zero() {
        let e = run(&["feature"]).unwrap_err();
        assert_eq!(e.code, 0);
        assert_eq!(
            e.stdout,
            "Usage: config feature [OPTIONS] COMMAND [ARGS]...\n\n  Configure features\n\n\
             Options:\n  -?, -h, --help  Show this message and exit.\n\n\
             Commands:\n  state  Enable/disable a feature\n  stats\n"
        );
    }

    #[test]
    fn guard_runs_after_resolution_and_before_subcommand_parsing() {
        let args: Vec<String> = ["feature", "-h"].iter().map(|s| s.to_string()).collect();
        let e = dispatch(
            &tree(),
            "config",
            &args,
            Settings::default(),
            &mut |g| match g {
                Guard::Root => Err(Exit::stderr(1, "root\n")),
                Guard::None => Ok(()),
            },
        )
        .unwrap_err();
        assert_eq!(e.code, 1);
        let args: Vec<String> = ["nosuch"].iter().map(|s| s.to_string()).collect();
        let e = dispatch(&tree(), "config", &args, Settings::default(), &mut |_| {
            Err(Exit::stderr(1, "root\n"))
        })
        .unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.stderr.ends_with("Error: No such command 'nosuch'.\n"));
    }

    #[test]
    fn extra_arguments_are_reported_together() {
        let e = run(&["feature", "state", "a", "enabled", "b", "c"]).unwrap_err();
        assert!(
            e.stderr
                .ends_with("Error: Got unexpected extra arguments (b c)\n")
        );
    }

    /// `config feature install` as click 8.1 declares it: a required argument, a variadic one
    /// (`nargs=-1`) and an option with a value. Expected texts were printed by click 8.1.7.
    fn install_tree() -> Node<&'static str> {
        Node::Group(Group {
            name: "config",
            help: None,
            short_help: None,
            matching: Matching::Abbreviation,
            guard: Guard::None,
            children: vec![Node::Command(Command {
                name: "install",
                hidden: false,
                help: Some(
                    "Install a kube-only feature: its systemd unit, its service script and its \
                     FEATURE entry",
                ),
                short_help: None,
                params: vec![
                    Param::Arg {
                        name: "name",
                        metavar: Some("<feature-name>"),
                        required: true,
                        choices: None,
                    },
                    Param::Args {
                        name: "required_service",
                        metavar: None,
                    },
                    Param::Opt {
                        name: "spec",
                        short: Some("-s"),
                        long: "--spec",
                        metavar: "FILE",
                        help: "X",
                    },
                ],
                action: "install",
            })],
        })
    }

    fn run_install(args: &[&str]) -> Result<Invocation<&'static str>, Exit> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        dispatch(
            &install_tree(),
            "config",
            &args,
            Settings::default(),
            &mut |_| Ok(()),
        )
    }

    #[test]
    fn variadic_argument_takes_every_value_after_the_required_one() {
        let inv = run_install(&["install", "snmp2", "bgp", "swss"]).unwrap();
        assert_eq!(inv.values.arg("name"), Some("snmp2"));
        assert_eq!(inv.values.arg_list("required_service"), ["bgp", "swss"]);
        assert_eq!(inv.values.option("spec"), None);
        let inv = run_install(&["install", "snmp2"]).unwrap();
        assert!(inv.values.arg_list("required_service").is_empty());
        // Options may sit between the values; after `--` everything is a value.
        let inv = run_install(&["install", "snmp2", "bgp", "--spec", "f.yaml", "swss"]).unwrap();
        assert_eq!(inv.values.arg_list("required_service"), ["bgp", "swss"]);
        assert_eq!(inv.values.option("spec"), Some("f.yaml"));
        let inv = run_install(&["install", "--", "snmp2", "-x", "--spec"]).unwrap();
        assert_eq!(inv.values.arg("name"), Some("snmp2"));
        assert_eq!(inv.values.arg_list("required_service"), ["-x", "--spec"]);
    }

    #[test]
    fn option_values_come_inline_or_next_and_the_last_one_wins() {
        let spec = |args: &[&str]| {
            run_install(args)
                .unwrap()
                .values
                .option("spec")
                .map(str::to_owned)
        };
        assert_eq!(spec(&["install", "a", "--spec=f"]).as_deref(), Some("f"));
        assert_eq!(spec(&["install", "a", "--spec="]).as_deref(), Some(""));
        assert_eq!(spec(&["install", "a", "-sf"]).as_deref(), Some("f"));
        assert_eq!(spec(&["install", "a", "-s", "f"]).as_deref(), Some("f"));
        assert_eq!(
            spec(&["install", "a", "--spec", "-h"]).as_deref(),
            Some("-h")
        );
        assert_eq!(
            spec(&["install", "a", "--spec", "x", "--spec", "y"]).as_deref(),
            Some("y")
        );
    }

    #[test]
    fn option_without_its_value_is_refused_without_usage_lines() {
        let e = run_install(&["install", "a", "--spec"]).unwrap_err();
        assert_eq!(
            (e.code, e.stderr.as_str()),
            (2, "Error: Option '--spec' requires an argument.\n")
        );
        let e = run_install(&["install", "a", "-s"]).unwrap_err();
        assert_eq!(e.stderr, "Error: Option '-s' requires an argument.\n");
    }

    #[test]
    fn variadic_argument_usage_and_help_match_click() {
        let e = run_install(&["install"]).unwrap_err();
        assert_eq!(
            (e.code, e.stderr.as_str()),
            (
                2,
                "Usage: config install [OPTIONS] <feature-name> [REQUIRED_SERVICE]...\n\
                 Try 'config install -h' for help.\n\n\
                 Error: Missing argument '<feature-name>'.\n"
            )
        );
        let e = run_install(&["i", "-h"]).unwrap_err();
        assert_eq!(
            (e.code, e.stdout.as_str()),
            (
                0,
                "Usage: config i [OPTIONS] <feature-name> [REQUIRED_SERVICE]...\n\n  \
                 Install a kube-only feature: its systemd unit, its service script and its\n  \
                 FEATURE entry\n\n\
                 Options:\n  \
                 -s, --spec FILE  X\n  \
                 -?, -h, --help   Show this message and exit.\n"
            )
        );
        let e = run_install(&["install", "a", "--spex", "f"]).unwrap_err();
        assert!(
            e.stderr
                .ends_with("Error: No such option: --spex Did you mean --spec?\n")
        );
    }

    #[test]
    fn narrow_usage_lines_break_after_hyphens_like_click() {
        let args: Vec<String> = vec!["install".into()];
        let e = dispatch(
            &install_tree(),
            "config feature",
            &args,
            Settings { width: 50 },
            &mut |_| Ok(()),
        )
        .unwrap_err();
        // COLUMNS=50 with click 8.1.7 on Python 3.11.
        assert!(
            e.stderr.starts_with(
                "Usage: config feature install [OPTIONS] <feature-\n\
                 \x20                             name> [REQUIRED_SERV\n\
                 \x20                             ICE]...\n"
            ),
            "{}",
            e.stderr
        );
    }

    #[test]
    fn arguments_after_a_variadic_one_take_values_from_the_end() {
        let (slots, extra) = unpack_args(
            ["1", "2", "3", "4", "5"].map(String::from).to_vec(),
            &[false, true, false, false],
        );
        assert!(extra.is_empty());
        let shown: Vec<String> = slots
            .iter()
            .map(|s| match s {
                Slot::One(v) => format!("{v:?}"),
                Slot::Many(l) => format!("{l:?}"),
            })
            .collect();
        assert_eq!(
            shown,
            [
                r#"Some("1")"#,
                r#"["2", "3"]"#,
                r#"Some("4")"#,
                r#"Some("5")"#
            ]
        );
        // click: with `A [REST]... B [C]` and values `1 2`, C gets 2 and B is missing.
        let (slots, _) = unpack_args(
            ["1", "2"].map(String::from).to_vec(),
            &[false, true, false, false],
        );
        assert!(matches!(&slots[2], Slot::One(None)));
        assert!(matches!(&slots[3], Slot::One(Some(v)) if v == "2"));
        let (_, extra) = unpack_args(["1", "2", "3"].map(String::from).to_vec(), &[false]);
        assert_eq!(extra, ["2", "3"]);
    }

    #[test]
    fn flag_with_value_is_refused() {
        let e = run(&["feature", "state", "--block=1"]).unwrap_err();
        assert_eq!(e.stderr, "Error: Option '--block' does not take a value.\n");
    }
}
