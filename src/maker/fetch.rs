//! Fetching an image input (URL or path) to a local file, atomically.
//!
//! This is deliberately minimal: the `src/image/` module (another branch: resumable
//! downloads verified in the same pass, deduplicated between processes, progress bars)
//! will replace the body of `fetch`; callers depend only on its signature.

use crate::error::{Error, IoContext, Result};
use crate::lock::Lock;
use crate::runner::{argv, Runner};
use std::path::{Path, PathBuf};

/// `url` (http://, https://, file:// or a path relative to `base`) as a local file.
/// Remote files are downloaded once into `downloads` (resuming a partial file, renamed
/// into place when complete; concurrent fetches of one URL wait on a lock).
pub fn fetch(url: &str, base: &Path, downloads: &Path, runner: &Runner) -> Result<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        return exists(PathBuf::from(path), url);
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return exists(super::render::resolve(base, url), url);
    }
    crate::fsutil::private_dir(downloads)?;
    let name = url.rsplit('/').next().unwrap_or("image");
    let dest = downloads.join(format!(
        "{}-{name}",
        &crate::stepcache::key::sha256_hex(url)[..16]
    ));
    let _lock = Lock::exclusive(&dest.with_extension("lock"))?;
    if dest.exists() {
        return Ok(dest);
    }
    let part = downloads.join(format!(
        ".{}.part",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    runner.run(
        "curl",
        &argv([
            "-fsSL".as_ref(),
            "--retry".as_ref(),
            "3".as_ref(),
            "-C".as_ref(),
            "-".as_ref(),
            "-o".as_ref(),
            part.as_os_str(),
            url.as_ref(),
        ]),
        &format!("downloading {url}"),
    )?;
    std::fs::rename(&part, &dest).at(&dest)?;
    Ok(dest)
}

fn exists(p: PathBuf, url: &str) -> Result<PathBuf> {
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::Other(format!(
            "{url}: no such file ({})",
            p.display()
        )))
    }
}

/// Check `path` against `sha256:<hex>` (or a bare hex digest).
pub fn verify(path: &Path, checksum: &str) -> Result<()> {
    let want = checksum
        .strip_prefix("sha256:")
        .unwrap_or(checksum)
        .to_lowercase();
    let got = crate::stepcache::key::hex(&crate::stepcache::key::file_digest(path)?);
    if got != want {
        return Err(Error::Other(format!(
            "{}: checksum mismatch: expected sha256 {want}, got {got}",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_resolve_and_checksums_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.img"), b"abc").unwrap();
        let p = fetch("a.img", dir.path(), dir.path(), &Runner::default()).unwrap();
        verify(
            &p,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        )
        .unwrap();
        let e = verify(&p, "00").unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        let e = fetch("nope.img", dir.path(), dir.path(), &Runner::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }
}
