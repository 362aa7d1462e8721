//! Advisory file locks (`flock` through `std::fs::File::lock`), the one lock type: the
//! global lock guards the records and inventory for short critical sections; per-template
//! locks make concurrent creates from a not-yet-built template build it once; the step
//! cache holds layers shared while builds stand on them; work files are locked by name.
//! The kernel releases a lock when its holder dies.

use crate::fsutil::{IoError, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// A lock held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Lock files are private; a work file gets the usual mode (umask applied): it becomes
/// the output.
fn open_with(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .open(path)
        .map_err(|e| IoError::new(path, e))
}

fn open(path: &Path) -> Result<File> {
    open_with(path, 0o600)
}

impl Lock {
    /// Block until the lock on `path` is ours, then write our PID into it (for humans).
    pub(crate) fn exclusive(path: &Path) -> Result<Lock> {
        if let Some(dir) = path.parent() {
            if !dir.exists() {
                crate::fsutil::private_dir(dir)?;
            }
        }
        let at = |e| IoError::new(path, e);
        let mut file = open(path)?;
        file.lock().map_err(at)?;
        file.set_len(0).map_err(at)?;
        writeln!(file, "{}", std::process::id()).map_err(at)?;
        Ok(Lock { _file: file })
    }

    /// Block until `path` is locked shared: other shared holders may hold it too, an
    /// exclusive one waits (or its `try_exclusive` fails).
    pub(crate) fn shared(path: &Path) -> Result<Lock> {
        let file = open(path)?;
        file.lock_shared().map_err(|e| IoError::new(path, e))?;
        Ok(Lock { _file: file })
    }

    /// The exclusive lock on `path` if nobody holds it now; None if someone does.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<Lock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(IoError::new(path, e)),
        }
    }

    /// An exclusive lock on a work file's name: two runs making the same output take
    /// turns. The lock file is the work file itself (its content is left alone), so
    /// nothing else is left behind; a waiter that finds the name renamed or removed
    /// meanwhile locks the new file.
    pub(crate) fn on_name(path: &Path) -> Result<Lock> {
        let at = |e| IoError::new(path, e);
        loop {
            let file = open_with(path, 0o666)?;
            file.lock().map_err(at)?;
            let held = file.metadata().map_err(at)?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Lock { _file: file })
                }
                // Renamed into place or removed by the previous holder: lock the new one.
                _ => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn excludes_other_holders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (path, inside) = (path.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let _l = Lock::exclusive(&path).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn shared_holders_keep_an_exclusive_one_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("use");
        let a = Lock::shared(&path).unwrap();
        let b = Lock::shared(&path).unwrap();
        assert!(Lock::try_exclusive(&path).unwrap().is_none());
        drop((a, b));
        assert!(Lock::try_exclusive(&path).unwrap().is_some());
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
                        let _l = Lock::on_name(&p).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        // Like a finished build: the locked file moves to its final name,
                        // which frees the name for the next one at once (so this is
                        // after leaving the counted section).
                        std::fs::rename(&p, dir.join(format!("done-{i}-{j}"))).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
