//! The checks that keep user text out of unit-file and shell syntax, and POSIX single-quote
//! escaping for the script.
//!
//! Two rules together make the generated files injection-free: every value is checked against a
//! character set that has no syntax where it is written (unit names and paths in the unit file),
//! and every word written into the script is single-quoted, so the shell performs no expansion
//! on it. Control characters (newline, carriage return, NUL, ...) are refused everywhere: a
//! newline would end a unit-file line, and NUL cannot be passed to a program at all.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::install::InstallError;

/// Unit types systemd knows; a name ending in one of these keeps its suffix, any other name gets
/// `.service` appended.
const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".target",
    ".socket",
    ".mount",
    ".automount",
    ".swap",
    ".timer",
    ".path",
    ".slice",
    ".scope",
    ".device",
];

/// systemd's `UNIT_NAME_MAX` minus the terminating NUL.
const UNIT_NAME_MAX: usize = 255;

fn invalid(field: &str, value: &str, reason: &'static str) -> InstallError {
    InstallError::Invalid {
        field: field.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

/// Refuses control characters (newline, carriage return, NUL, escape, ...).
pub fn check_no_control(field: &str, value: &str) -> Result<(), InstallError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            value,
            "control characters (newline, NUL, ...) are not allowed",
        ));
    }
    Ok(())
}

/// A systemd unit name used in `Requires=`, `After=`, `Before=` and `RequiredBy=`.
///
/// Input is `[A-Za-z0-9:_.@-]+`, starting with a letter, digit or `_` (so it can never read as
/// an option or a relative path). A name without a unit-type suffix means a service:
/// `swss` is `swss.service`, `sonic.target` stays as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitName(String);

impl UnitName {
    /// Validates `value`, naming `field` in the error.
    pub fn parse(field: &str, value: &str) -> Result<Self, InstallError> {
        check_no_control(field, value)?;
        if value.is_empty() {
            return Err(invalid(field, value, "a service name must not be empty"));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_.@-".contains(c))
        {
            return Err(invalid(
                field,
                value,
                "a service name may contain only letters, digits and ':', '_', '.', '@', '-'",
            ));
        }
        if !value.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                field,
                value,
                "a service name must start with a letter, a digit or '_'",
            ));
        }
        let unit = if UNIT_SUFFIXES
            .iter()
            .any(|s| value.ends_with(s) && value.len() > s.len())
        {
            value.to_owned()
        } else {
            format!("{value}.service")
        };
        if unit.len() > UNIT_NAME_MAX {
            return Err(invalid(
                field,
                value,
                "a unit name must be at most 255 characters",
            ));
        }
        Ok(Self(unit))
    }

    /// The full unit name (`swss.service`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A command to run from the script: a program given by absolute path and its arguments.
///
/// The absolute path is required so that the shell always executes a program: a name without `/`
/// could select a shell builtin (`exit`, `cd`) or one of the script's own actions. Arguments may
/// hold any text except control characters; they are written single-quoted, so `$()`, backticks,
/// quotes, `;` and globs reach the program verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv(Vec<String>);

impl Argv {
    /// Validates an argv list, naming `field` (`pre-start[0]`) and its index in errors.
    pub fn parse(field: &str, argv: &[String]) -> Result<Self, InstallError> {
        let Some(program) = argv.first() else {
            return Err(invalid(
                field,
                "",
                "a command must have at least the program",
            ));
        };
        for (i, arg) in argv.iter().enumerate() {
            check_no_control(&format!("{field}[{i}]"), arg)?;
        }
        if !program.starts_with('/') {
            return Err(invalid(
                &format!("{field}[0]"),
                program,
                "the program must be an absolute path (so the shell never runs a builtin or \
                 function instead)",
            ));
        }
        Ok(Self(argv.to_vec()))
    }

    /// The words, program first.
    pub fn words(&self) -> &[String] {
        &self.0
    }

    /// The command as one line of POSIX shell: every word single-quoted.
    pub fn to_sh(&self) -> String {
        self.0
            .iter()
            .map(|w| sh_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// POSIX single-quoting: inside `'...'` every character is literal, and a `'` itself is written
/// as `'\''` (end the quote, an escaped quote, reopen).
pub fn sh_quote(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// An absolute path that may be written unquoted into a unit file (`ExecStart=`): only
/// `[A-Za-z0-9/_.+@-]`, so it holds no systemd specifier (`%`), variable (`$`), quote, escape or
/// whitespace.
pub fn check_unit_path(field: &str, path: &Path) -> Result<PathBuf, InstallError> {
    let text = path.to_str().ok_or_else(|| {
        invalid(
            field,
            &path.to_string_lossy(),
            "the path must be valid UTF-8",
        )
    })?;
    check_no_control(field, text)?;
    if !text.starts_with('/') {
        return Err(invalid(field, text, "the path must be absolute"));
    }
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_.+@-".contains(c))
    {
        return Err(invalid(
            field,
            text,
            "a path used in a unit file may contain only letters, digits and '/', '_', '.', '+', \
             '@', '-'",
        ));
    }
    Ok(path.to_path_buf())
}

/// An absolute path written single-quoted into the script (the `container` program).
pub fn check_script_path(field: &str, path: &Path) -> Result<String, InstallError> {
    let text = path.to_str().ok_or_else(|| {
        invalid(
            field,
            &path.to_string_lossy(),
            "the path must be valid UTF-8",
        )
    })?;
    check_no_control(field, text)?;
    if !text.starts_with('/') {
        return Err(invalid(field, text, "the path must be absolute"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_become_services_and_typed_names_stay() {
        assert_eq!(
            UnitName::parse("r", "swss").unwrap().as_str(),
            "swss.service"
        );
        assert_eq!(
            UnitName::parse("r", "sonic.target").unwrap().as_str(),
            "sonic.target"
        );
        assert_eq!(UnitName::parse("r", "a.b").unwrap().as_str(), "a.b.service");
        assert_eq!(
            UnitName::parse("r", "x@1.service").unwrap().as_str(),
            "x@1.service"
        );
        assert!(UnitName::parse("r", ".service").is_err());
    }

    #[test]
    fn unit_names_with_syntax_characters_are_rejected_naming_the_field() {
        for bad in [
            "", "a b", "a\nb", "-x", "a;b", "a$b", "a%b", "a'b", "a\\b", "a=b",
        ] {
            let err = UnitName::parse("requires[2]", bad).unwrap_err().to_string();
            assert!(
                err.starts_with("field requires[2]: invalid value"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn single_quoting_makes_every_character_literal() {
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote("$(id) `id` \"x\""), "'$(id) `id` \"x\"'");
    }

    #[test]
    fn commands_need_an_absolute_program_and_no_control_characters() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Argv::parse("pre-start[0]", &v(&["/bin/echo", "$(x)"])).is_ok());
        let e = Argv::parse("pre-start[0]", &v(&["echo"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("field pre-start[0][0]: invalid value \"echo\""),
            "{e}"
        );
        let e = Argv::parse("post-stop[1]", &v(&["/bin/echo", "a\nb"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("field post-stop[1][1]: invalid value"), "{e}");
        let e = Argv::parse("pre-stop[0]", &[]).unwrap_err().to_string();
        assert!(e.contains("at least the program"), "{e}");
    }

    #[test]
    fn unit_paths_refuse_specifiers_and_spaces() {
        assert!(check_unit_path("script_dir", Path::new("/usr/local/bin")).is_ok());
        for bad in ["relative", "/a b", "/a%n", "/a$X", "/a\"b", "/a\nb"] {
            assert!(
                check_unit_path("script_dir", Path::new(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
