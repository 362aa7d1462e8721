//! Work files next to their final place: removed when dropped (an error, a Ctrl-C), and
//! renamed into place only when complete and on disk, so no reader ever sees half a file.
//! Their names come from [`crate::fsutil::hidden_sibling`]; two runs making one output
//! take turns through [`crate::lock::Lock::on_name`].

use super::{IoAt, Result};
use crate::fsutil::{remove_if_exists, sync_dir, sync_file};
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
