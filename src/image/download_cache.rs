//! A download cache: one file per URL in a directory, so an image named by several
//! templates (or needed again after its layer was collected) crosses the network once.
//!
//! Concurrent processes fetching one URL take turns on a lock: the first downloads (with
//! [`download::fetch`]: resumable, hashed as it arrives, renamed into place only when
//! complete and matching), the others then find the file there. Each file keeps a note of
//! the checksums it was verified against, so a later use with one of them reads nothing
//! again; a file that does not match a new checksum is downloaded again (the server's copy
//! may have changed since).

use super::cancel::Cancel;
use super::checksum::{self, Expected};
use super::download;
use super::Result;
use crate::fsutil::{remove_if_exists, with_suffix};
use crate::lock::Lock;
use std::path::{Path, PathBuf};

/// A URL's file in the cache.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cached {
    pub path: PathBuf,
    /// The checksum it matched, when one was expected.
    pub digest: Option<String>,
}

/// Where `url` is kept in `dir`: a hash of the URL (distinct URLs never share a file)
/// followed by its last segment (a name a user can recognise).
pub(crate) fn path_for(dir: &Path, url: &str) -> PathBuf {
    let name = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .unwrap_or("download");
    dir.join(format!("{}-{name}", &crate::digest::sha256_hex(url)[..16]))
}

/// `url` as a complete local file in `dir`, downloaded unless it is there already (and,
/// with `expected`, matches it).
pub(crate) fn fetch(
    dir: &Path,
    url: &str,
    expected: Option<&Expected>,
    cancel: &Cancel,
    progress: bool,
    log: &mut dyn FnMut(String),
) -> Result<Cached> {
    crate::fsutil::private_dir(dir)?;
    let dest = path_for(dir, url);
    let lock_path = with_suffix(&dest, ".lock");
    let lock = Lock::on_name(&lock_path)?;
    let result = fetch_locked(&dest, url, expected, cancel, progress, log);
    // Nothing but the file stays behind; a waiter that locked the removed name locks anew.
    let _ = remove_if_exists(&lock_path);
    drop(lock);
    result
}

fn fetch_locked(
    dest: &Path,
    url: &str,
    expected: Option<&Expected>,
    cancel: &Cancel,
    progress: bool,
    log: &mut dyn FnMut(String),
) -> Result<Cached> {
    let notes = with_suffix(dest, ".sums");
    if dest.is_file() {
        if reusable(dest, &notes, expected, cancel)? {
            log(format!("Using the cached download of {url}"));
            return Ok(Cached {
                path: dest.to_path_buf(),
                digest: expected.map(|e| e.value.clone()),
            });
        }
        log(format!(
            "The cached download of {url} does not have the expected checksum: downloading \
             it again"
        ));
        remove_if_exists(dest)?;
        remove_if_exists(&notes)?;
    }
    let fetched = download::fetch(
        &download::Request {
            url,
            dest,
            expected,
            cancel,
            progress,
        },
        log,
    )?;
    if let Some(e) = expected {
        note(&notes, e)?;
    }
    Ok(Cached {
        path: dest.to_path_buf(),
        digest: fetched.digest,
    })
}

/// Whether the cached file serves: no checksum asked for, or one it was verified against
/// before, or (once, then noted) one it hashes to now.
fn reusable(
    dest: &Path,
    notes: &Path,
    expected: Option<&Expected>,
    cancel: &Cancel,
) -> Result<bool> {
    let Some(e) = expected else { return Ok(true) };
    let noted = std::fs::read_to_string(notes).unwrap_or_default();
    if noted.lines().any(|l| l == note_line(e)) {
        return Ok(true);
    }
    // Downloaded without a checksum, or with another one: hash what is there.
    if !e.matches(&checksum::hash_file(dest, e, cancel)?) {
        return Ok(false);
    }
    note(notes, e)?;
    Ok(true)
}

/// One line per checksum a file matched: what was hashed and the value.
fn note_line(e: &Expected) -> String {
    format!(
        "{} {} {}",
        e.algorithm.name(),
        e.read_bytes.unwrap_or(0),
        e.value
    )
}

fn note(notes: &Path, e: &Expected) -> Result<()> {
    let mut text = std::fs::read_to_string(notes).unwrap_or_default();
    let line = note_line(e);
    if text.lines().any(|l| l == line) {
        return Ok(());
    }
    text.push_str(&line);
    text.push('\n');
    Ok(crate::fsutil::write_atomic(notes, text.as_bytes(), 0o644)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn names_are_keyed_by_the_whole_url_and_keep_its_last_segment() {
        let d = Path::new("/c");
        let a = path_for(d, "https://x/a/disk.qcow2");
        let b = path_for(d, "https://y/a/disk.qcow2");
        assert_ne!(a, b);
        assert!(a.to_string_lossy().ends_with("-disk.qcow2"), "{a:?}");
        let q = path_for(d, "https://x/get?file=a");
        assert!(q.to_string_lossy().ends_with("-get"), "{q:?}");
        let bare = path_for(d, "https://x/");
        assert!(bare.to_string_lossy().ends_with("-download"), "{bare:?}");
    }

    #[test]
    fn a_cached_file_is_reused_once_it_matched_and_refused_when_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        let notes = dir.path().join("f.sums");
        std::fs::write(&dest, b"abc").unwrap();
        let good = Expected::new("sha256", ABC_SHA256, None, None).unwrap();
        let bad = Expected::new("sha256", &"0".repeat(64), None, None).unwrap();
        let cancel = Cancel::new();
        assert!(reusable(&dest, &notes, None, &cancel).unwrap());
        assert!(!reusable(&dest, &notes, Some(&bad), &cancel).unwrap());
        assert!(reusable(&dest, &notes, Some(&good), &cancel).unwrap());
        // Noted: the next use reads nothing (the rewritten file shows it is not hashed).
        assert_eq!(
            std::fs::read_to_string(&notes).unwrap(),
            format!("sha256 0 {ABC_SHA256}\n")
        );
        std::fs::write(&dest, b"xyz").unwrap();
        assert!(reusable(&dest, &notes, Some(&good), &cancel).unwrap());
    }
}
