//! The file-writing layer of `config feature install|uninstall`: where the files go (every path
//! overridable, so tests run in a temp dir), atomic writes, and the marker check that keeps us
//! from overwriting or deleting a file we did not generate.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sonic_feature_core::model::FeatureName;

use crate::install::InstallError;
use crate::install::render::{self, has_marker};
use crate::install::spec::ServiceSpec;

/// Where the generated files go and which `container` program the script calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPaths {
    /// Directory of `<name>.service`.
    pub unit_dir: PathBuf,
    /// Directory of `<name>.sh`.
    pub script_dir: PathBuf,
    /// The `container` program called by the script.
    pub container_bin: PathBuf,
}

impl InstallPaths {
    /// Default unit directory: the administrator's, which overrides image-shipped units.
    pub const UNIT_DIR: &'static str = "/etc/systemd/system";
    /// Default script directory: the administrator's, never owned by an image package.
    pub const SCRIPT_DIR: &'static str = "/usr/local/bin";
    /// Default `container` program (where the image's feature scripts call it).
    pub const CONTAINER_BIN: &'static str = "/usr/local/bin/container";

    /// Overrides [`InstallPaths::UNIT_DIR`] in [`InstallPaths::from_env`].
    pub const UNIT_DIR_ENV: &'static str = "SONIC_INSTALL_UNIT_DIR";
    /// Overrides [`InstallPaths::SCRIPT_DIR`] in [`InstallPaths::from_env`].
    pub const SCRIPT_DIR_ENV: &'static str = "SONIC_INSTALL_SCRIPT_DIR";
    /// Overrides [`InstallPaths::CONTAINER_BIN`] in [`InstallPaths::from_env`].
    pub const CONTAINER_BIN_ENV: &'static str = "SONIC_CONTAINER_BIN";

    /// The switch's paths.
    pub fn system() -> Self {
        Self {
            unit_dir: PathBuf::from(Self::UNIT_DIR),
            script_dir: PathBuf::from(Self::SCRIPT_DIR),
            container_bin: PathBuf::from(Self::CONTAINER_BIN),
        }
    }

    /// The switch's paths, each overridden by its environment variable when set and not empty
    /// (the lab and end-to-end tests install into temp dirs this way).
    pub fn from_env() -> Self {
        let get = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Self {
            unit_dir: get(Self::UNIT_DIR_ENV, Self::UNIT_DIR),
            script_dir: get(Self::SCRIPT_DIR_ENV, Self::SCRIPT_DIR),
            container_bin: get(Self::CONTAINER_BIN_ENV, Self::CONTAINER_BIN),
        }
    }

    /// All three paths under `root` (`<root>/etc/systemd/system`, `<root>/usr/local/bin`,
    /// `<root>/usr/local/bin/container`).
    pub fn under(root: &Path) -> Self {
        let rel = |p: &str| root.join(p.trim_start_matches('/'));
        Self {
            unit_dir: rel(Self::UNIT_DIR),
            script_dir: rel(Self::SCRIPT_DIR),
            container_bin: rel(Self::CONTAINER_BIN),
        }
    }

    /// `<unit_dir>/<name>.service`.
    pub fn unit_path(&self, name: &FeatureName) -> PathBuf {
        self.unit_dir.join(format!("{name}.service"))
    }

    /// `<script_dir>/<name>.sh`.
    pub fn script_path(&self, name: &FeatureName) -> PathBuf {
        self.script_dir.join(format!("{name}.sh"))
    }
}

/// What [`install`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The unit file.
    pub unit: PathBuf,
    /// The script.
    pub script: PathBuf,
    /// Whether a generated unit or script was already there (an update, not a first install).
    pub replaced: bool,
}

/// What [`uninstall`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uninstalled {
    /// The files removed (unit first).
    pub removed: Vec<PathBuf>,
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> InstallError + 'a {
    move |source| InstallError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// `Some(true)`: exists with our marker; `Some(false)`: exists without; `None`: absent.
fn generated(path: &Path, name: &FeatureName) -> Result<Option<bool>, InstallError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(has_marker(&String::from_utf8_lossy(&bytes), name))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

/// Writes `text` to a temporary file next to `path` with `mode`, then renames it over `path`,
/// so a reader (systemd) sees the old file or the new one, never a partial one.
fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<(), InstallError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io("write", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        // The umask may have narrowed `mode`; the script must be executable for everyone.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("write", &tmp))?;
        fs::rename(&tmp, path).map_err(io("rename", &tmp))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Generates and writes the unit and the script of `spec`.
///
/// Both texts are generated and both targets checked before anything is written: an existing
/// file without our marker is never overwritten. The script is written first because the unit
/// refers to it.
pub fn install(spec: &ServiceSpec, paths: &InstallPaths) -> Result<Installed, InstallError> {
    let unit_text = render::unit_file(spec, paths)?;
    let script_text = render::script(spec, paths)?;
    let unit = paths.unit_path(&spec.name);
    let script = paths.script_path(&spec.name);
    let mut replaced = false;
    for path in [&unit, &script] {
        match generated(path, &spec.name)? {
            Some(false) => {
                return Err(InstallError::NotGenerated {
                    action: "overwrite",
                    path: path.clone(),
                    feature: spec.name.to_string(),
                });
            }
            Some(true) => replaced = true,
            None => {}
        }
    }
    write_atomic(&script, &script_text, 0o755)?;
    write_atomic(&unit, &unit_text, 0o644)?;
    Ok(Installed {
        unit,
        script,
        replaced,
    })
}

/// Removes the unit and the script of `name`, if we generated them.
///
/// Both files are checked before either is removed; a file without our marker makes the whole
/// uninstall fail. One missing file is fine (a half-removed install); both missing is
/// [`InstallError::NotInstalled`].
pub fn uninstall(name: &FeatureName, paths: &InstallPaths) -> Result<Uninstalled, InstallError> {
    let unit = paths.unit_path(name);
    let script = paths.script_path(name);
    let mut present = Vec::new();
    for path in [&unit, &script] {
        match generated(path, name)? {
            Some(false) => {
                return Err(InstallError::NotGenerated {
                    action: "remove",
                    path: path.clone(),
                    feature: name.to_string(),
                });
            }
            Some(true) => present.push(path.clone()),
            None => {}
        }
    }
    if present.is_empty() {
        return Err(InstallError::NotInstalled {
            feature: name.to_string(),
            unit,
            script,
        });
    }
    for path in &present {
        fs::remove_file(path).map_err(io("remove", path))?;
    }
    Ok(Uninstalled { removed: present })
}
