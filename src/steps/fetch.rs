//! The `download` importer's inputs in the image module's terms: a template's `url`
//! (http(s)://, file://, or a path relative to the template's directory) as a
//! [`Location`], its `checksum` as an [`Expected`] value, and the URL's file in the
//! downloads directory. The downloading itself (resumable, hashed as it arrives, atomic,
//! once per URL between processes) is [`crate::image::download_cache`]'s.

use crate::error::{Error, Result};
use crate::image::cancel::Cancel;
use crate::image::checksum::Expected;
use crate::image::download_cache;
use crate::image::source::Location;
use std::path::{Path, PathBuf};

/// Where `url` is: a URL as it is, a local path resolved against the template's `base`.
pub fn location(url: &str, base: &Path) -> Location {
    match Location::parse(url) {
        Location::Path(p) => Location::Path(super::render::resolve(base, &p.to_string_lossy())),
        remote => remote,
    }
}

/// `sha256:<hex>`, a bare hex sha256, or `<algorithm>:<hex>` with any of hashlib's names.
pub fn checksum(text: &str) -> Result<Expected> {
    let (algorithm, value) = text.split_once(':').unwrap_or(("sha256", text));
    Ok(Expected::new(algorithm, value, None, None)?)
}

/// `url` as a local file (downloaded into `downloads` if remote), for a step key that
/// depends on the file's content.
pub fn local_file(
    url: &str,
    base: &Path,
    downloads: &Path,
    log: &mut dyn FnMut(String),
) -> Result<PathBuf> {
    match location(url, base) {
        Location::Path(p) if p.is_file() => Ok(p),
        Location::Path(p) => Err(Error::Step {
            context: url.to_string(),
            message: format!("no such file ({})", p.display()),
        }),
        Location::Url(u) => {
            Ok(download_cache::fetch(downloads, &u, None, &Cancel::new(), true, log)?.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_resolve_against_the_template_and_urls_stay_urls() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.img"), b"abc").unwrap();
        let p = local_file("a.img", dir.path(), dir.path(), &mut |_| {}).unwrap();
        assert_eq!(p, dir.path().join("a.img"));
        assert_eq!(
            location("file:///srv/a.img", dir.path()),
            Location::Path("/srv/a.img".into())
        );
        assert_eq!(
            location("https://x/a.img", dir.path()),
            Location::Url("https://x/a.img".into())
        );
        let e = local_file("nope.img", dir.path(), dir.path(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }

    #[test]
    fn checksums_name_their_algorithm_or_are_sha256() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let a = checksum(&format!("sha256:{hex}")).unwrap();
        assert_eq!(a, checksum(hex).unwrap());
        assert_eq!(a.algorithm.name(), "sha256");
        assert_eq!(
            checksum(&format!("SHA256:{}", hex.to_uppercase())).unwrap(),
            a
        );
        let md5 = checksum("md5:900150983cd24fb0d6963f7d28e17f72").unwrap();
        assert_eq!(md5.algorithm.name(), "md5");
        let e = checksum("sha256:00").unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
    }
}
