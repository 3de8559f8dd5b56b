//! The id of the Docker container this process runs in, for `container_startup`, from
//! `/proc/self/cgroup` and, where that says nothing (cgroup v2 with a private cgroup namespace,
//! where it is just `0::/`), from the bind mounts Docker makes in `/proc/self/mountinfo`.
//!
//! Upstream's `get_docker_id()` only reads the cgroup v1 `:memory:` line and returns `""` on
//! cgroup v2 (upstream-ctrmgrd.md §11 item 7); both sources here work on v1 and v2. The functions
//! return the full 64-hex id; callers that record it (`container_id` in STATE_DB) shorten it to
//! 12 characters like upstream.

use std::path::{Path, PathBuf};

/// Where to read the two files; [`ProcFiles::default`] is this process' own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcFiles {
    /// `/proc/self/cgroup`.
    pub cgroup: PathBuf,
    /// `/proc/self/mountinfo`.
    pub mountinfo: PathBuf,
}

impl Default for ProcFiles {
    fn default() -> Self {
        ProcFiles {
            cgroup: PathBuf::from("/proc/self/cgroup"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
        }
    }
}

/// Why the id of our container could not be found.
#[derive(Debug, thiserror::Error)]
pub enum OwnIdError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Neither file names a Docker container.
    #[error(
        "no docker container id in {} or {}: is this process running in a docker container?",
        cgroup.display(),
        mountinfo.display()
    )]
    NotInContainer {
        /// The cgroup file read.
        cgroup: PathBuf,
        /// The mountinfo file read.
        mountinfo: PathBuf,
    },
}

/// The full (64-hex) id of the container this process runs in, from this process' `/proc` files.
pub fn own_container_id() -> Result<String, OwnIdError> {
    own_container_id_from(&ProcFiles::default())
}

/// The full (64-hex) id of the container, from the given files: the cgroup file first, then the
/// mountinfo file. An unreadable mountinfo is only an error when the cgroup file had no id.
pub fn own_container_id_from(files: &ProcFiles) -> Result<String, OwnIdError> {
    let cgroup = read(&files.cgroup)?;
    if let Some(id) = container_id_from_cgroup(&cgroup) {
        return Ok(id);
    }
    let mountinfo = read(&files.mountinfo)?;
    container_id_from_mountinfo(&mountinfo).ok_or_else(|| OwnIdError::NotInContainer {
        cgroup: files.cgroup.clone(),
        mountinfo: files.mountinfo.clone(),
    })
}

fn read(path: &Path) -> Result<String, OwnIdError> {
    std::fs::read_to_string(path).map_err(|source| OwnIdError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The container id in the text of `/proc/<pid>/cgroup`.
///
/// Lines are `hierarchy-id:controllers:path`. The cgroup v1 `memory` line is preferred (what
/// upstream reads), then the cgroup v2 line (`0::`), then any other line. The id is the last path
/// component with a runtime prefix (`docker-`, `cri-containerd-`, `crio-`, `libpod-`) and a
/// `.scope` suffix removed, when that is 64 hex digits: `/docker/<id>` (cgroupfs driver),
/// `/system.slice/docker-<id>.scope` (systemd driver), `/kubepods/.../<id>`.
pub fn container_id_from_cgroup(text: &str) -> Option<String> {
    let mut lines: Vec<(u8, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let _hierarchy = fields.next()?;
            let controllers = fields.next()?;
            let path = fields.next()?;
            let rank = if controllers.split(',').any(|c| c == "memory") {
                0
            } else if controllers.is_empty() {
                1
            } else {
                2
            };
            Some((rank, path))
        })
        .collect();
    lines.sort_by_key(|(rank, _)| *rank);
    lines
        .into_iter()
        .find_map(|(_, path)| id_from_cgroup_path(path))
}

fn id_from_cgroup_path(path: &str) -> Option<String> {
    let last = path.trim_end().rsplit('/').next()?;
    let last = last.strip_suffix(".scope").unwrap_or(last);
    let last = ["docker-", "cri-containerd-", "crio-", "libpod-"]
        .iter()
        .find_map(|prefix| last.strip_prefix(prefix))
        .unwrap_or(last);
    is_full_id(last).then(|| last.to_string())
}

/// The container id in the text of `/proc/<pid>/mountinfo`: Docker bind-mounts
/// `<data-root>/containers/<id>/{hostname,hosts,resolv.conf}` onto `/etc/...` in every container
/// (any data root, not only `/var/lib/docker`). `/etc/hostname` is preferred, then the others.
pub fn container_id_from_mountinfo(text: &str) -> Option<String> {
    let mut found: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        // Fields: id parent major:minor root mount-point options ... - fstype source super-options
        let mut fields = line.split(' ');
        let (Some(root), Some(mount_point)) = (fields.nth(3), fields.next()) else {
            continue;
        };
        let rank = match mount_point {
            "/etc/hostname" => 0,
            "/etc/hosts" => 1,
            "/etc/resolv.conf" => 2,
            _ => continue,
        };
        let file = mount_point.trim_start_matches("/etc/");
        let mut parts = root.rsplit('/');
        if parts.next() != Some(file) {
            continue;
        }
        let (Some(id), Some("containers")) = (parts.next(), parts.next()) else {
            continue;
        };
        if is_full_id(id) {
            found.push((rank, id.to_string()));
        }
    }
    found.sort_by_key(|(rank, _)| *rank);
    found.into_iter().next().map(|(_, id)| id)
}

fn is_full_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The 12-character short form of an id, as upstream records it (`container_id` in STATE_DB).
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "7d3739ba13c355124e915adadb652564dac7444909918ccef1a782da8726f9cc";
    const OTHER: &str = "c386d86b84b670ab6cb1b317112b17e416e567cb1b8bc0f7e19c668224858c59";

    #[test]
    fn cgroup_v1_memory_line_gives_the_id() {
        let text = format!(
            "12:pids:/docker/{OTHER}\n4:memory:/docker/{ID}\n1:name=systemd:/docker/{OTHER}\n0::/\n"
        );
        assert_eq!(container_id_from_cgroup(&text).as_deref(), Some(ID));
    }

    #[test]
    fn cgroup_v1_with_combined_controllers_and_systemd_driver() {
        let text = format!(
            "5:memory,hugetlb:/system.slice/docker-{ID}.scope\n1:name=systemd:/init.scope\n"
        );
        assert_eq!(container_id_from_cgroup(&text).as_deref(), Some(ID));
    }

    #[test]
    fn cgroup_v2_cgroupfs_driver_path() {
        assert_eq!(
            container_id_from_cgroup(&format!("0::/docker/{ID}\n")).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn cgroup_v2_systemd_driver_scope() {
        let text = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_id_from_cgroup(&text).as_deref(), Some(ID));
    }

    #[test]
    fn cgroup_of_a_kubernetes_pod_container() {
        let text = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(container_id_from_cgroup(&text).as_deref(), Some(ID));
    }

    #[test]
    fn cgroup_of_a_host_process_or_a_private_namespace_has_no_id() {
        assert_eq!(container_id_from_cgroup("0::/\n"), None);
        assert_eq!(
            container_id_from_cgroup("0::/user.slice/user-0.slice/session-1.scope\n"),
            None
        );
        assert_eq!(
            container_id_from_cgroup(
                "4:memory:/process_api/d9388328f2db4bb317c436cfb8b8ab8b\n0::/\n"
            ),
            None
        );
        assert_eq!(container_id_from_cgroup(""), None);
        assert_eq!(container_id_from_cgroup("garbage without colons\n"), None);
    }

    #[test]
    fn cgroup_ids_must_be_lowercase_hex_of_full_length() {
        let upper = ID.to_uppercase();
        assert_eq!(
            container_id_from_cgroup(&format!("0::/docker/{upper}\n")),
            None
        );
        assert_eq!(
            container_id_from_cgroup(&format!("0::/docker/{}\n", &ID[..63])),
            None
        );
    }

    fn mountinfo(data_root: &str, id: &str) -> String {
        format!(
            "74 49 0:39 / / rw,relatime master:2 - overlay overlay rw,lowerdir=/x\n\
             75 74 0:42 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n\
             91 74 254:0 {data_root}/containers/{id}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw\n\
             92 74 254:0 {data_root}/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n\
             93 74 254:0 {data_root}/containers/{id}/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw\n"
        )
    }

    #[test]
    fn mountinfo_with_the_default_data_root_gives_the_id() {
        assert_eq!(
            container_id_from_mountinfo(&mountinfo("/var/lib/docker", ID)).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn mountinfo_with_another_data_root_gives_the_id() {
        assert_eq!(
            container_id_from_mountinfo(&mountinfo("/tmp/d/data", ID)).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn mountinfo_prefers_hostname_over_other_mounts() {
        let text = format!(
            "93 74 254:0 /var/lib/docker/containers/{OTHER}/hosts /etc/hosts rw - ext4 /dev/vda rw\n\
             92 74 254:0 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&text).as_deref(), Some(ID));
    }

    #[test]
    fn mountinfo_of_a_host_process_has_no_id() {
        let text = "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                    23 22 0:5 / /dev rw - devtmpfs udev rw\n\
                    24 22 254:0 /srv/hostname /etc/hostname rw - ext4 /dev/vda rw\n\
                    short line\n";
        assert_eq!(container_id_from_mountinfo(text), None);
    }

    #[test]
    fn files_fall_back_from_cgroup_to_mountinfo() {
        let dir = tempfile::tempdir().unwrap();
        let files = ProcFiles {
            cgroup: dir.path().join("cgroup"),
            mountinfo: dir.path().join("mountinfo"),
        };
        std::fs::write(&files.cgroup, "0::/\n").unwrap();
        std::fs::write(&files.mountinfo, mountinfo("/var/lib/docker", ID)).unwrap();
        assert_eq!(own_container_id_from(&files).unwrap(), ID);

        std::fs::write(&files.cgroup, format!("4:memory:/docker/{OTHER}\n0::/\n")).unwrap();
        assert_eq!(own_container_id_from(&files).unwrap(), OTHER);
    }

    #[test]
    fn files_without_an_id_give_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let files = ProcFiles {
            cgroup: dir.path().join("cgroup"),
            mountinfo: dir.path().join("mountinfo"),
        };
        std::fs::write(&files.cgroup, "0::/\n").unwrap();
        std::fs::write(&files.mountinfo, "22 1 254:0 / / rw - ext4 /dev/vda rw\n").unwrap();
        let err = own_container_id_from(&files).unwrap_err().to_string();
        assert!(err.contains("cgroup") && err.contains("mountinfo"), "{err}");

        let missing = ProcFiles {
            cgroup: dir.path().join("nope"),
            mountinfo: files.mountinfo.clone(),
        };
        let err = own_container_id_from(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read ") && err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn short_id_is_twelve_characters() {
        assert_eq!(short_id(ID), "7d3739ba13c3");
        assert_eq!(short_id("abc"), "abc");
    }
}
