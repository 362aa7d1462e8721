//! The work tree of one build, `<work root>/work.<pid>`: removed when the build ends,
//! whatever way it ends, after unmounting anything under it (debootstrap mounts /proc and
//! /sys in the target and may bind /dev). Removal never crosses into another file system:
//! deleting through a bind of /dev would hurt the host. A tree left by a killed build
//! (SIGKILL skips every clean-up) is removed by the next build once its process is gone.

// unsafe: unmounting what debootstrap left mounted and probing PIDs (libc::umount2, libc::kill); each block says why it is sound.
#![allow(unsafe_code)]

use crate::image::{Error, IoAt, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
    removed: bool,
}

impl WorkDir {
    /// A fresh work tree for this process under `root`, after removing those of dead ones.
    pub(crate) fn create(root: &Path) -> Result<WorkDir> {
        crate::fsutil::private_dir(root)?;
        let root = std::fs::canonicalize(root).at(root)?;
        remove_stale(&root)?;
        let path = root.join(format!("work.{}", std::process::id()));
        if path.exists() {
            remove_tree(&path)?;
        }
        std::fs::create_dir(&path).at(&path)?;
        Ok(WorkDir {
            path,
            removed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Remove a part of the tree early (the rootfs, once packed: it is large).
    pub(crate) fn remove_subtree(&self, sub: &Path) -> Result<()> {
        debug_assert!(sub.starts_with(&self.path));
        remove_tree(sub)
    }

    /// Remove the whole tree, reporting what could not be removed.
    pub(crate) fn remove(mut self) -> Result<()> {
        self.removed = true;
        remove_tree(&self.path)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_tree(&self.path);
        }
    }
}

/// Trees of builds whose process no longer exists.
fn remove_stale(root: &Path) -> Result<()> {
    for entry in std::fs::read_dir(root).at(root)? {
        let entry = entry.at(root)?;
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("work."))
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if !process_exists(pid) {
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

fn process_exists(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Unmount everything mounted under `dir`, then remove `dir` without crossing into
/// another file system. Anything left (a mount that would not go) is an error naming it.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    unmount_under(dir)?;
    if !meta.is_dir() {
        return std::fs::remove_file(dir).at(dir);
    }
    remove_one_fs(dir, meta.dev())?;
    std::fs::remove_dir(dir).at(dir)
}

/// Lazy unmounts (MNT_DETACH, like `umount -l`), deepest first: a busy mount must not stop
/// the clean-up, and the tree under it is then no longer reachable through it.
fn unmount_under(dir: &Path) -> Result<()> {
    let dir = std::fs::canonicalize(dir).at(dir)?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").at("/proc/self/mounts")?;
    let mut points = mount_points_under(&mounts, &dir);
    points.sort_by(|a, b| b.cmp(a));
    for p in points {
        let c = CString::new(p.as_os_str().as_bytes())
            .map_err(|_| Error::Invalid(format!("{}: NUL in a mount point", p.display())))?;
        // SAFETY: a valid C string; umount2 has no other preconditions.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Invalid(format!(
                "cannot unmount {} (left by debootstrap): {e}",
                p.display()
            )));
        }
    }
    Ok(())
}

/// Mount points strictly under `dir`, from /proc/self/mounts (octal escapes decoded).
pub(crate) fn mount_points_under(mounts: &str, dir: &Path) -> Vec<PathBuf> {
    mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p != dir && p.starts_with(dir))
        .collect()
}

/// The kernel writes space, tab, newline and backslash as `\040 \011 \012 \134`.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `rm -rf --one-file-system` of the contents of `dir`: directories on another device
/// are left alone (and make the removal of their parent fail, which is reported).
fn remove_one_fs(dir: &Path, dev: u64) -> Result<()> {
    for entry in std::fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let meta = std::fs::symlink_metadata(&path).at(&path)?;
        if meta.is_dir() {
            if meta.dev() != dev {
                continue;
            }
            remove_one_fs(&path, dev)?;
            std::fs::remove_dir(&path).at(&path)?;
        } else {
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// Mount a tmpfs on `at` (root only); unmounted by the guard if the test fails.
    struct Tmpfs(PathBuf);
    impl Tmpfs {
        fn mount(at: &Path) -> Tmpfs {
            std::fs::create_dir_all(at).unwrap();
            let c = |s: &str| CString::new(s).unwrap();
            let target = CString::new(at.as_os_str().as_bytes()).unwrap();
            // SAFETY: valid C strings; no data argument.
            let rc = unsafe {
                libc::mount(
                    c("tmpfs").as_ptr(),
                    target.as_ptr(),
                    c("tmpfs").as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
            Tmpfs(at.to_path_buf())
        }
    }
    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let target = CString::new(self.0.as_os_str().as_bytes()).unwrap();
            // SAFETY: a valid C string.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }

    #[test]
    fn mount_points_are_decoded_and_only_those_under_the_dir() {
        let mounts = "proc /proc proc rw 0 0\n\
                      proc /w/work.1/rootfs/proc proc rw 0 0\n\
                      sysfs /w/work.1/root\\040fs/sys sysfs rw 0 0\n\
                      tmpfs /w/work.10 tmpfs rw 0 0\n\
                      tmpfs /w/work.1 tmpfs rw 0 0\n";
        let got = mount_points_under(mounts, Path::new("/w/work.1"));
        assert_eq!(
            got,
            [
                PathBuf::from("/w/work.1/rootfs/proc"),
                PathBuf::from("/w/work.1/root fs/sys")
            ]
        );
    }

    #[test]
    fn a_tree_is_removed_with_its_mounts() {
        assert!(
            is_root(),
            "this test mounts a tmpfs: run the unit tests as root"
        );
        let root = tempfile::tempdir().unwrap();
        let work = WorkDir::create(root.path()).unwrap();
        let proc_dir = work.path().join("rootfs/proc");
        let _m = Tmpfs::mount(&proc_dir);
        std::fs::write(proc_dir.join("inside"), "x").unwrap();
        std::fs::write(work.path().join("rootfs/file"), "y").unwrap();
        let path = work.path().to_path_buf();
        drop(work);
        assert!(!path.exists());
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(mount_points_under(&mounts, &path).is_empty());
    }

    #[test]
    fn removal_never_crosses_into_another_file_system() {
        assert!(
            is_root(),
            "this test mounts a tmpfs: run the unit tests as root"
        );
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("t");
        let other = dir.join("bound");
        let _m = Tmpfs::mount(&other);
        std::fs::write(other.join("precious"), "x").unwrap();
        std::fs::write(dir.join("junk"), "y").unwrap();
        let dev = std::fs::metadata(&dir).unwrap().dev();
        let err = remove_one_fs(&dir, dev).and_then(|_| std::fs::remove_dir(&dir).at(&dir));
        assert!(err.is_err());
        assert!(other.join("precious").exists());
        assert!(!dir.join("junk").exists());
    }

    #[test]
    fn trees_of_dead_builds_are_removed() {
        let root = tempfile::tempdir().unwrap();
        // PIDs are below 2^22 on Linux: this one cannot be alive.
        let stale = root.path().join("work.99999999");
        std::fs::create_dir_all(stale.join("rootfs/etc")).unwrap();
        let mine = WorkDir::create(root.path()).unwrap();
        assert!(!stale.exists());
        assert!(mine.path().is_dir());
        mine.remove().unwrap();
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
