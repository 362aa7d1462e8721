//! Work files next to their final place: removed when dropped (an error, a Ctrl-C), and
//! renamed into place only when complete and on disk, so no reader ever sees half a file.

use super::{IoAt, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file that is removed when dropped, unless [`TempPath::keep`] was called.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    /// Take charge of `path`, removing whatever a dead run left there.
    pub fn fresh(path: PathBuf) -> Result<TempPath> {
        remove_if_exists(&path)?;
        Ok(TempPath { path, keep: false })
    }

    /// Take charge of `path` as it is (e.g. a partial download to resume).
    pub fn adopt(path: PathBuf) -> TempPath {
        TempPath { path, keep: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leave the file where it is.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }

    /// fsync the file, rename it to `dest` and fsync the directory: the new name appears
    /// only with complete, durable contents.
    pub fn persist(mut self, dest: &Path) -> Result<()> {
        sync_file(&self.path)?;
        std::fs::rename(&self.path, dest).at(dest)?;
        self.keep = true;
        sync_dir(dest);
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// An exclusive lock on a work file's name, held until dropped: two runs making the same
/// output take turns. The lock file is the work file itself, so nothing else is left
/// behind; a waiter that finds the name renamed or removed meanwhile locks the new file.
#[derive(Debug)]
pub struct NameLock {
    _file: File,
}

impl NameLock {
    pub fn acquire(path: &Path) -> Result<NameLock> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .at(path)?;
            file.lock().at(path)?;
            let held = file.metadata().at(path)?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(NameLock { _file: file })
                }
                // Renamed into place or removed by the previous holder: lock the new one.
                _ => continue,
            }
        }
    }
}

pub fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(super::Error::io(path, e)),
        _ => Ok(()),
    }
}

pub fn sync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).at(path)
}

/// fsync the directory holding `path` (best effort: some file systems refuse).
pub fn sync_dir(path: &Path) {
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

/// `dir/.<name of final><suffix>`: hidden work files next to the final file.
pub fn sibling(final_path: &Path, suffix: &str) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn temp_is_removed_on_drop_and_persisted_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.part");
        {
            let t = TempPath::fresh(p.clone()).unwrap();
            std::fs::write(t.path(), b"half").unwrap();
        }
        assert!(!p.exists());
        let t = TempPath::fresh(p.clone()).unwrap();
        std::fs::write(t.path(), b"whole").unwrap();
        let dest = dir.path().join("x");
        t.persist(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
        assert!(!p.exists());
    }

    #[test]
    fn sibling_names_are_hidden() {
        assert_eq!(
            sibling(Path::new("/d/img.qcow2"), ".part"),
            Path::new("/d/.img.qcow2.part")
        );
    }

    #[test]
    fn name_lock_excludes_even_when_the_name_is_renamed_away() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".out.part");
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (p, inside, dir) = (p.clone(), inside.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    for j in 0..10 {
                        let _l = NameLock::acquire(&p).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        // Like a finished build: the locked file moves to its final name.
                        std::fs::rename(&p, dir.join(format!("done-{i}-{j}"))).unwrap();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
