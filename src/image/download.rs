//! Resumable, atomic HTTP(S) downloads, hashed in the same pass.
//!
//! The data goes to `<dest>.part`, with the server's validators (ETag, Last-Modified) and
//! the URL in `<dest>.part.json`. A download cut short (network, Ctrl-C) keeps both; the
//! next call for the same URL hashes the part it has once and asks for the rest with
//! `Range` + `If-Range`, so a file that changed on the server meanwhile is fetched whole
//! again instead of being spliced. Only a complete download whose checksum matches is
//! renamed to `dest`; a mismatch removes it (and never resumes from bad data).

use super::cancel::Cancel;
use super::checksum::{Expected, Summer};
use super::progress::Progress;
use super::{Error, IoAt, Result};
use crate::fsutil::TempPath;
use crate::fsutil::{remove_if_exists, with_suffix};
use crate::lock::Lock;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

/// What to fetch, and where.
pub(crate) struct Request<'a> {
    pub url: &'a str,
    /// The complete file appears here (atomically).
    pub dest: &'a Path,
    pub expected: Option<&'a Expected>,
    pub cancel: &'a Cancel,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fetched {
    /// The checksum of the data (of its first `read_bytes`), when one was expected.
    pub digest: Option<String>,
    pub bytes: u64,
    /// Bytes already on disk from an earlier, interrupted download.
    pub resumed_from: u64,
}

/// The server's description of the resource a partial download belongs to.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct PartMeta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    total: Option<u64>,
}

impl PartMeta {
    /// The validator for `If-Range`: a strong ETag, else Last-Modified.
    fn validator(&self) -> Option<&str> {
        self.etag
            .as_deref()
            .filter(|e| !e.starts_with("W/"))
            .or(self.last_modified.as_deref())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        // One downloader for gen-vm-image, virt-maker and virt-up: the package's name.
        .user_agent(concat!("virt-up/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Download `req.url` to `req.dest`, resuming an earlier partial download of the same URL.
pub(crate) fn fetch(req: &Request, log: &mut dyn FnMut(String)) -> Result<Fetched> {
    let part = with_suffix(req.dest, ".part");
    let meta_file = with_suffix(req.dest, ".part.json");
    let _lock = Lock::on_name(&part)?;
    let fail = |message: String| Error::Download {
        url: req.url.to_string(),
        message,
    };

    let on_disk = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let meta: Option<PartMeta> = std::fs::read(&meta_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut resume_from = match &meta {
        Some(m)
            if m.url == req.url
                && m.validator().is_some()
                && on_disk > 0
                && m.total.is_none_or(|t| on_disk <= t) =>
        {
            on_disk
        }
        _ => 0,
    };

    let agent = agent();
    let mut request = agent.get(req.url);
    if resume_from > 0 {
        let validator = meta
            .as_ref()
            .and_then(|m| m.validator())
            .unwrap_or_default();
        request = request
            .header("Range", format!("bytes={resume_from}-"))
            .header("If-Range", validator);
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(e) => {
            forget_empty(&part, &meta_file, resume_from);
            return Err(fail(e.to_string()));
        }
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let total = match status {
        206 => {
            let range = header("content-range").unwrap_or_default();
            match parse_content_range(&range) {
                Some((start, total)) if start == resume_from => total,
                _ => {
                    return Err(fail(format!(
                        "the server answered a request for bytes {resume_from}- with '{range}'; \
                         remove {} to start over",
                        part.display()
                    )))
                }
            }
        }
        200 => {
            if resume_from > 0 {
                log(format!(
                    "{}: the server sent the whole file (it changed, or it cannot resume): \
                     starting over",
                    req.url
                ));
                resume_from = 0;
            }
            content_length
        }
        416 if resume_from > 0 && meta.as_ref().and_then(|m| m.total) == Some(resume_from) => {
            // We had it all already; only the rename was missing.
            Some(resume_from)
        }
        _ => {
            forget_empty(&part, &meta_file, resume_from);
            let reason = response.status().canonical_reason().unwrap_or("");
            return Err(fail(format!("HTTP {status} {reason}")));
        }
    };

    let new_meta = PartMeta {
        url: req.url.to_string(),
        etag: header("etag"),
        last_modified: header("last-modified"),
        total,
    };
    if meta.as_ref() != Some(&new_meta) {
        crate::fsutil::write_atomic(
            &meta_file,
            &serde_json::to_vec(&new_meta).expect("plain struct"),
            0o644,
        )
        .map_err(|e| Error::Invalid(e.to_string()))?;
    }

    let mut summer = req.expected.map(Expected::summer);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&part)
        .at(&part)?;
    file.set_len(resume_from).at(&part)?;
    if resume_from > 0 {
        log(format!(
            "Resuming the download of {} at byte {resume_from}",
            req.url
        ));
        if let Some(s) = summer.as_mut() {
            hash_prefix(&mut file, &part, resume_from, s, req.cancel)?;
        }
    } else {
        log(format!("Downloading {}", req.url));
    }
    file.seek(SeekFrom::Start(resume_from)).at(&part)?;

    let mut bytes = resume_from;
    if status != 416 {
        let bar = Progress::bytes(req.progress, "Downloading", total);
        bar.set(resume_from);
        let mut body = response.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            if req.cancel.is_cancelled() {
                let _ = file.sync_all();
                return Err(Error::Interrupted);
            }
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = file.sync_all();
                    return Err(fail(format!(
                        "{e} after {bytes}{} bytes; run the same command again to resume",
                        total.map(|t| format!(" of {t}")).unwrap_or_default()
                    )));
                }
            };
            file.write_all(&buf[..n]).at(&part)?;
            if let Some(s) = summer.as_mut() {
                s.update(&buf[..n]);
            }
            bytes += n as u64;
            bar.set(bytes);
        }
    }
    if let Some(t) = total {
        if bytes != t {
            let _ = file.sync_all();
            return Err(fail(format!(
                "the connection ended after {bytes} of {t} bytes; run the same command again \
                 to resume"
            )));
        }
    }
    drop(file);

    let digest = summer.map(Summer::finish);
    if let (Some(e), Some(d)) = (req.expected, digest.as_deref()) {
        if !e.matches(d) {
            // Never resume from data that does not hash right.
            let _ = remove_if_exists(&part);
            let _ = remove_if_exists(&meta_file);
            return Err(Error::ChecksumMismatch {
                what: req.url.to_string(),
                algorithm: e.algorithm.name(),
                expected: e.value.clone(),
                actual: d.to_string(),
            });
        }
    }
    TempPath::adopt(part).persist(req.dest)?;
    remove_if_exists(&meta_file)?;
    Ok(Fetched {
        digest,
        bytes,
        resumed_from: resume_from,
    })
}

/// A failed first request leaves nothing behind (the lock created an empty part).
fn forget_empty(part: &Path, meta: &Path, resume_from: u64) {
    if resume_from == 0 && std::fs::metadata(part).map(|m| m.len()).unwrap_or(0) == 0 {
        let _ = std::fs::remove_file(part);
        let _ = std::fs::remove_file(meta);
    }
}

/// Hash the first `len` bytes of the partial download (the only re-read, once per resume).
fn hash_prefix(
    file: &mut File,
    path: &Path,
    len: u64,
    summer: &mut Summer,
    cancel: &Cancel,
) -> Result<()> {
    file.seek(SeekFrom::Start(0)).at(path)?;
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 && !summer.is_full() {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want]).at(path)?;
        if n == 0 {
            break;
        }
        summer.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// `bytes 100-199/200` -> (100, Some(200)); `bytes 100-199/*` -> (100, None).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn if_range_uses_a_strong_etag_else_the_date() {
        let mut m = PartMeta {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Tue, 01 Jan 2030 00:00:00 GMT".into()),
            ..PartMeta::default()
        };
        assert_eq!(m.validator(), Some("\"abc\""));
        m.etag = Some("W/\"abc\"".into());
        assert_eq!(m.validator(), Some("Tue, 01 Jan 2030 00:00:00 GMT"));
        m.last_modified = None;
        assert_eq!(m.validator(), None);
    }

    #[test]
    fn unreachable_server_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // A port nobody listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dest = dir.path().join("img");
        let url = format!("http://127.0.0.1:{port}/img");
        let req = Request {
            url: &url,
            dest: &dest,
            expected: None,
            cancel: &Cancel::new(),
            progress: false,
        };
        let err = fetch(&req, &mut |_| {}).unwrap_err();
        assert!(matches!(err, Error::Download { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
