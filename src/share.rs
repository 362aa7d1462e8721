//! Host directories shared with an instance (`--mount HOST_DIR[:GUEST_DIR]`): a virtiofs
//! device per share, run by libvirt through virtiofsd, mounted in the guest by the identity
//! agent at first boot (and by the guest's /etc/fstab after that). Everything a share needs
//! is checked here, before anything is made: the host directory, the guest path (it goes
//! into the domain XML, the seed, /etc/fstab and the agent's shell), the connection (the
//! directory is on this machine) and virtiofsd.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One share, as planned and as recorded in the instance's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The host directory, absolute.
    pub host: PathBuf,
    /// Where the guest mounts it.
    pub guest: String,
    /// The virtiofs tag (the device's name in the guest), made by virt-up.
    pub tag: String,
}

/// Where virtiofsd is looked for when the `virtiofsd` setting names none: the Rust
/// virtiofsd's place, and QEMU's C virtiofsd in Debian 12's qemu-system-common.
pub const VIRTIOFSD_PATHS: &[&str] = &["/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"];

/// The most bytes a virtiofs tag may have (the virtio-fs device's config field).
const MAX_TAG: usize = 36;

/// Guest directories an instance needs to boot and to let virt-up log in: a share on one
/// of them, or on a directory above one, would hide it.
const GUEST_NEEDS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc/fstab",
    "/etc/ssh",
    "/lib",
    "/lib64",
    "/proc",
    "/root/.ssh",
    "/run",
    "/sbin",
    "/sys",
    "/usr/bin",
    "/var/lib",
];

/// The shares of `specs` (each `HOST_DIR[:GUEST_DIR]`; a relative HOST_DIR is taken from
/// `cwd`), every one checked; `login_home` is the login user's home in the guest, which a
/// share must not hide either.
pub fn plan(specs: &[String], cwd: &Path, login_home: &str) -> Result<Vec<Mount>> {
    let mut mounts: Vec<Mount> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let bad = |why: String| Error::Config(format!("--mount {spec:?}: {why}"));
        let (host, guest) = split(spec);
        let host = host_dir(host, cwd).map_err(bad)?;
        let guest = guest
            .map(str::to_string)
            .unwrap_or_else(|| host.display().to_string());
        guest_problem(&guest, login_home).map_or(Ok(()), |why| Err(bad(why)))?;
        if let Some(other) = mounts.iter().find(|m| m.guest == guest) {
            return Err(bad(format!(
                "{guest} is already the guest directory of {}",
                other.host.display()
            )));
        }
        mounts.push(Mount {
            host,
            guest,
            tag: tag(i),
        });
    }
    Ok(mounts)
}

/// HOST_DIR and GUEST_DIR: split at the last ':' (so a HOST_DIR with a ':' in it is given
/// with a GUEST_DIR after it).
fn split(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once(':') {
        Some((host, guest)) => (host, Some(guest)),
        None => (spec, None),
    }
}

/// The share's tag: the same for the same position, short, and plain.
fn tag(index: usize) -> String {
    let tag = format!("virtup{index}");
    debug_assert!(tag.len() <= MAX_TAG);
    tag
}

/// The host directory, absolute, with symbolic links resolved; or why it cannot be shared.
fn host_dir(host: &str, cwd: &Path) -> std::result::Result<PathBuf, String> {
    if host.is_empty() {
        return Err("no host directory before the ':'".into());
    }
    let path = cwd.join(host);
    let meta = std::fs::metadata(&path)
        .map_err(|e| format!("the host directory {}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    std::fs::canonicalize(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Why `guest` cannot be a guest mount point, if it cannot: it must be absolute and plain
/// (it is written into /etc/fstab and read by the agent's shell), and hide nothing the
/// guest needs.
pub fn guest_problem(guest: &str, login_home: &str) -> Option<String> {
    let why = |text: &str| Some(format!("guest directory {guest:?}: {text}"));
    if !guest.starts_with('/') {
        return why("not an absolute path (give GUEST_DIR after a ':', e.g. /mnt/host)");
    }
    if guest == "/" {
        return why("the guest's root cannot be a mount point");
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+@=".contains(c);
    if let Some(c) = guest.chars().find(|c| !plain(*c)) {
        return why(&format!(
            "{c:?} is not allowed (letters, digits, '/', '.', '_', '-', '+', '@' and '=' are)"
        ));
    }
    let parts: Vec<&str> = guest[1..].split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return why("empty, '.' or '..' components are not allowed");
    }
    let ssh = format!("{login_home}/.ssh");
    let hidden = GUEST_NEEDS
        .iter()
        .copied()
        .chain([ssh.as_str()])
        .find(|needed| *needed == guest || needed.starts_with(&format!("{guest}/")));
    if let Some(needed) = hidden {
        return why(&format!("a share there would hide the guest's {needed}"));
    }
    let pseudo = ["/dev/", "/proc/", "/run/", "/sys/"];
    if pseudo.iter().any(|p| guest.starts_with(p)) {
        return why("not in /dev, /proc, /run or /sys");
    }
    None
}

/// Why shares cannot be made through the libvirt connection `uri`, if they cannot: the
/// host directory is on this machine, and libvirt 9 runs virtiofsd for qemu:///system only.
pub fn uri_problem(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://").unwrap_or((uri, ""));
    let host = rest.split('/').next().unwrap_or("");
    if !host.is_empty() {
        return Some(format!(
            "--mount shares a directory of this machine; {uri} is a connection to another host"
        ));
    }
    let driver = scheme.split('+').next().unwrap_or(scheme);
    let path = rest.split(['?', '#']).next().unwrap_or("");
    match (driver, path) {
        ("test", _) | ("qemu", "/system") => None,
        ("qemu", _) => Some(format!(
            "--mount needs qemu:///system: libvirt before 10.0 runs no virtiofsd for {uri} (\"virtiofs is not yet supported in session mode\")"
        )),
        _ => Some(format!(
            "--mount makes virtiofs shares of QEMU domains; {uri} is not a QEMU connection"
        )),
    }
}

/// The virtiofsd libvirt is to run: the `virtiofsd` setting's, else the first of
/// [`VIRTIOFSD_PATHS`] that is there; an error names where it looked.
pub fn virtiofsd(setting: Option<&str>) -> Result<PathBuf> {
    let candidates: Vec<&str> = match setting {
        Some(path) => vec![path],
        None => VIRTIOFSD_PATHS.to_vec(),
    };
    let executable = |p: &&&str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(found) = candidates.iter().find(executable) {
        return Ok(PathBuf::from(found));
    }
    let looked = match setting {
        Some(path) => format!("{path} (the 'virtiofsd' setting) is not an executable file"),
        None => format!(
            "virtiofsd is not installed: looked at {}",
            VIRTIOFSD_PATHS.join(" and ")
        ),
    };
    Err(Error::HostNotReady(format!(
        "--mount needs virtiofsd: {looked}; install the Debian package 'qemu-system-common' (Debian 12: /usr/lib/qemu/virtiofsd) or 'virtiofsd' (Debian 13: /usr/libexec/virtiofsd), or set 'virtiofsd' in settings.cfg"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_host_dir_and_guest_dir_with_a_tag_of_ours() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        let specs = ["src:/mnt/host".to_string(), real.display().to_string()];
        let mounts = plan(&specs, dir.path(), "/home/virt").unwrap();
        assert_eq!(
            mounts,
            [
                Mount {
                    host: real.join("src"),
                    guest: "/mnt/host".into(),
                    tag: "virtup0".into()
                },
                Mount {
                    host: real.clone(),
                    guest: real.display().to_string(),
                    tag: "virtup1".into()
                }
            ]
        );
    }

    #[test]
    fn bad_shares_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let err = |spec: &str| {
            plan(&[spec.to_string()], dir.path(), "/home/virt")
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("missing:/mnt").contains("the host directory"),
            "{}",
            err("missing:/mnt")
        );
        assert!(err("file:/mnt").ends_with("file is not a directory"));
        assert!(err(":/mnt").contains("no host directory"));
        let d = dir.path().display().to_string();
        assert!(err(&format!("{d}:mnt")).contains("not an absolute path"));
        let two = [format!("{d}:/m"), format!("{d}:/m")];
        let e = plan(&two, dir.path(), "/home/virt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/m is already the guest directory of"), "{e}");
    }

    #[test]
    fn guest_paths_that_would_break_fstab_the_shell_or_the_guest_are_refused() {
        let home = "/home/virt";
        for ok in [
            "/mnt/host",
            "/srv/data-1",
            "/home/virt/src",
            "/opt/a.b_c+d@e=f",
        ] {
            assert_eq!(guest_problem(ok, home), None, "{ok}");
        }
        for (bad, why) in [
            ("/", "root"),
            ("mnt", "absolute"),
            ("/mnt/a b", "' ' is not allowed"),
            ("/mnt/a,b", "',' is not allowed"),
            ("/mnt/it's", "'\\'' is not allowed"),
            ("/mnt/\"q\"", "'\"' is not allowed"),
            ("/mnt/a\nb", "'\\n' is not allowed"),
            ("/mnt/$HOME", "'$' is not allowed"),
            ("/mnt/../etc", "'..'"),
            ("/mnt//x", "empty"),
            ("/etc", "hide the guest's /etc/fstab"),
            ("/usr", "hide the guest's /usr/bin"),
            ("/home", "hide the guest's /home/virt/.ssh"),
            ("/home/virt", "hide the guest's /home/virt/.ssh"),
            ("/proc/x", "not in /dev"),
        ] {
            let problem = guest_problem(bad, home).unwrap_or_default();
            assert!(problem.contains(why), "{bad:?}: {problem}");
        }
    }

    #[test]
    fn only_a_local_system_connection_can_share() {
        assert_eq!(uri_problem("qemu:///system"), None);
        assert_eq!(uri_problem("test:///default"), None);
        assert!(uri_problem("qemu+ssh://root@h/system")
            .unwrap()
            .contains("another host"));
        assert!(uri_problem("qemu:///session")
            .unwrap()
            .contains("needs qemu:///system"));
        assert!(uri_problem("lxc:///").unwrap().contains("not a QEMU"));
    }

    #[test]
    fn a_missing_virtiofsd_names_where_it_was_looked_for_and_the_package() {
        let err = virtiofsd(Some("/nonexistent/virtiofsd")).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/virtiofsd (the 'virtiofsd' setting)"),
            "{text}"
        );
        assert!(text.contains("qemu-system-common"), "{text}");
        assert_eq!(virtiofsd(Some("/bin/sh")).unwrap(), Path::new("/bin/sh"));
    }
}
