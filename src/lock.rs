//! Advisory file locks (`flock` through `std::fs::File::lock`): the global lock guards the
//! records and inventory for short critical sections; per-template locks make concurrent
//! creates from a not-yet-built template build it once.

use crate::error::{IoContext, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// An exclusive lock held until dropped (the kernel releases it if the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Block until the lock on `path` is ours, then write our PID into it (for humans).
    pub fn exclusive(path: &Path) -> Result<Lock> {
        if let Some(dir) = path.parent() {
            if !dir.exists() {
                crate::fsutil::private_dir(dir)?;
            }
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .at(path)?;
        file.lock().at(path)?;
        file.set_len(0).at(path)?;
        writeln!(file, "{}", std::process::id()).at(path)?;
        Ok(Lock { _file: file })
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
}
