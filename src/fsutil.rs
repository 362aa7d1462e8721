//! File helpers, at the bottom of the crate (they depend on nothing in it): private
//! directories, removals that tolerate a missing file, names next to a file, work files
//! ([`TempPath`]: removed when dropped, renamed into place only when complete and on
//! disk) and atomic writes built on them (a unique temp file, fsync, rename, fsync of
//! the directory), so a crash never leaves a half-written record, key, image or
//! inventory. Two runs making one output take turns through the lock module's
//! `Lock::on_name` (this module stays below it: no `use` of it here).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An I/O error on a named file. Every layer's error has a variant it converts into.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .path.display())]
pub(crate) struct IoError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    pub(crate) fn new(path: impl Into<PathBuf>, source: std::io::Error) -> IoError {
        IoError {
            path: path.into(),
            source,
        }
    }
}

pub(crate) type Result<T, E = IoError> = std::result::Result<T, E>;

fn at(path: &Path) -> impl Fn(std::io::Error) -> IoError + '_ {
    move |e| IoError::new(path, e)
}

/// Create `dir` (and parents) with mode 0700, and tighten it to 0700 if it exists.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(at(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(at(dir))
}

/// The bytes a file takes on disk (its blocks: a sparse file takes less than its length).
pub(crate) fn allocated_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(fs::metadata(path).map_err(at(path))?.blocks() * 512)
}

/// A temp name no other writer of `path` uses at the same time: other processes differ
/// in the PID, other threads (and calls) of this one in the counter.
fn unique_temp(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    hidden_sibling(path, &format!(".tmp.{}.{n}", std::process::id()))
}

/// Write `contents` to `path` atomically with the given mode: readers see the old file
/// or the new one, whole, and after a crash the new one is on disk or not there at all.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let tmp = TempPath::adopt(unique_temp(path));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp.path())
        .map_err(at(tmp.path()))?;
    // The umask may have narrowed the mode: it is what the caller asked, before the file
    // has its name.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(at(tmp.path()))?;
    f.write_all(contents).map_err(at(tmp.path()))?;
    drop(f);
    tmp.persist(path)
}

/// A file that is removed when dropped, unless it was persisted.
#[derive(Debug)]
pub(crate) struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    /// Take charge of `path`, removing whatever a dead run left there.
    pub(crate) fn fresh(path: PathBuf) -> Result<TempPath> {
        remove_if_exists(&path)?;
        Ok(TempPath { path, keep: false })
    }

    /// Take charge of `path` as it is (e.g. a partial download to resume).
    pub(crate) fn adopt(path: PathBuf) -> TempPath {
        TempPath { path, keep: false }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// fsync the file, rename it to `dest` and fsync the directory: the new name appears
    /// only with complete, durable contents.
    pub(crate) fn persist(mut self, dest: &Path) -> Result<()> {
        sync_file(&self.path)?;
        fs::rename(&self.path, dest).map_err(at(dest))?;
        self.keep = true;
        sync_dir(dest);
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// fsync the file at `path`.
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(at(path))
}

/// fsync the directory holding `path`, so a rename into it is durable (best effort:
/// some file systems refuse).
pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Remove a file; a file that is already gone is not an error.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(IoError::new(path, e)),
        _ => Ok(()),
    }
}

/// `path` made absolute against the working directory (not resolving links); as it is
/// when that cannot be done.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `path` with `suffix` appended to its name (`img` + `.part` = `img.part`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `dir/.<name><suffix>`: a hidden work file next to the file `path`.
pub(crate) fn hidden_sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default();
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    with_suffix(&path.with_file_name(hidden), suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_is_removed_on_drop_and_persisted_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.part");
        {
            let t = TempPath::fresh(p.clone()).unwrap();
            fs::write(t.path(), b"half").unwrap();
        }
        assert!(!p.exists());
        let t = TempPath::fresh(p.clone()).unwrap();
        fs::write(t.path(), b"whole").unwrap();
        let dest = dir.path().join("x");
        t.persist(&dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"whole");
        assert!(!p.exists());
    }

    #[test]
    fn atomic_write_sets_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("d");
        private_dir(&sub).unwrap();
        let p = sub.join("rec.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 1);
    }

    #[test]
    fn concurrent_atomic_writers_never_leave_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shared");
        let sizes = [1usize, 4096, 65536, 1 << 20];
        std::thread::scope(|s| {
            for (i, &len) in sizes.iter().enumerate() {
                let p = &p;
                s.spawn(move || {
                    let contents = vec![b'a' + i as u8; len];
                    for _ in 0..20 {
                        write_atomic(p, &contents, 0o640).unwrap();
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..200 {
                    if let Ok(seen) = fs::read(&p) {
                        // Whole: one writer's bytes, at that writer's length.
                        let i = usize::from(seen[0] - b'a');
                        assert_eq!(seen.len(), sizes[i]);
                        assert!(seen.iter().all(|&b| b == seen[0]));
                    }
                }
            });
        });
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp files left: {names:?}");
    }

    #[test]
    fn a_failed_atomic_write_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no-such-dir/rec");
        let err = write_atomic(&p, b"x", 0o600).unwrap_err();
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }

    #[test]
    fn removing_a_missing_file_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        remove_if_exists(&dir.path().join("none")).unwrap();
        assert!(remove_if_exists(dir.path()).is_err());
    }

    #[test]
    fn names_next_to_a_file() {
        assert_eq!(
            with_suffix(Path::new("/d/img.qcow2"), ".part"),
            Path::new("/d/img.qcow2.part")
        );
        assert_eq!(
            hidden_sibling(Path::new("/d/img.qcow2"), ".part"),
            Path::new("/d/.img.qcow2.part")
        );
        assert!(absolute(Path::new("rel")).is_absolute());
    }
}
