//! The image pipeline: an input (a path or URL, possibly compressed, with an expected
//! checksum) becomes a checked qcow2 or raw image of the asked size, built next to its
//! final name and renamed into place only when complete.
//!
//! Every byte of the input is read once where it can be:
//! - a local image is hashed on one thread while it is copied (when it already is what
//!   the output must be) or converted by qemu-img on another (wall time: the slower of the
//!   two; a mismatch stops the other);
//! - a download is hashed as it arrives (and, already in the output format, becomes the
//!   image: nothing is read again; one kept in a download cache is copied instead);
//! - a compressed file is hashed as it is decompressed.

use super::cancel::Cancel;
use super::checksum::{self, Expected, Summer};
use super::compress::{self, Compression};
use super::copy;
use super::download;
use super::download_cache;
use super::progress::Progress;
use super::qemu_img::{self, ImageFormat, QemuImg};
use super::{Error, IoAt, Result};
use crate::fsutil::TempPath;
use crate::fsutil::{absolute, hidden_sibling};
use crate::lock::Lock;
use crate::runner::Runner;
use crate::size;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where an input image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Path(PathBuf),
    Url(String),
}

impl Location {
    /// `http://` and `https://` are URLs; `file://` and anything else a local path.
    pub(crate) fn parse(s: &str) -> Location {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Location::Url(s.to_string())
        } else if let Some(path) = s.strip_prefix("file://") {
            Location::Path(PathBuf::from(path))
        } else {
            Location::Path(PathBuf::from(s))
        }
    }

    pub(crate) fn display(&self) -> String {
        match self {
            Location::Path(p) => p.display().to_string(),
            Location::Url(u) => u.clone(),
        }
    }
}

/// An input image.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub location: Location,
    /// The image format (qcow2, raw, vmdk, ...); None: found out with qemu-img info.
    pub format: Option<String>,
    pub checksum: Option<Expected>,
}

/// One image to make.
pub(crate) struct Job<'a> {
    /// None: a new, empty image of `size`.
    pub input: Option<&'a Input>,
    pub output: &'a Path,
    pub format: ImageFormat,
    /// The virtual size in bytes; None keeps the input's (required without an input).
    pub size: Option<u64>,
    /// Allow making the image smaller than its input (the data beyond is lost).
    pub shrink: bool,
    /// Replace an existing output (atomically); otherwise an existing output is kept.
    pub overwrite: bool,
    pub runner: &'a Runner,
    pub cancel: &'a Cancel,
    /// Progress bars for downloads, decompression, copies and conversions (drawn only on
    /// a terminal).
    pub progress: bool,
    /// Keep downloads in this [`download_cache`] directory (shared, reused); None: a
    /// temporary file next to the output, removed when done.
    pub downloads: Option<&'a Path>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Built {
        virtual_size: u64,
        /// The input's checksum, when one was given (it matched).
        input_digest: Option<String>,
    },
    /// The output exists and `overwrite` was not asked for: left as it is.
    Exists,
}

/// Make the image. `log` receives a line per step (the verbose messages).
pub(crate) fn make(job: &Job, log: &mut dyn FnMut(String)) -> Result<Outcome> {
    let output = job.output;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let part_path = hidden_sibling(output, ".part");
    // Two runs making the same image take turns; the second then finds it made.
    let _lock = Lock::on_name(&part_path)?;
    let part = TempPath::adopt(part_path);
    if output.exists() && !job.overwrite {
        return Ok(Outcome::Exists);
    }
    let qemu = QemuImg::new(job.runner);
    let started = Instant::now();
    let (virtual_size, input_digest, built) = match job.input {
        None => {
            let bytes = job.size.ok_or_else(|| {
                Error::Invalid("a size is needed to create an image without an input".into())
            })?;
            qemu.create(part.path(), job.format, bytes)?;
            let virtual_size = size::rounded(bytes);
            log(format!(
                "Created an empty {} image of {}",
                job.format.as_str(),
                size::human(virtual_size)
            ));
            finish(job, &qemu, part.path(), virtual_size, None, job.cancel, log)?;
            (virtual_size, None, None)
        }
        Some(input) => {
            // A local, uncompressed input is hashed on another thread from the start,
            // while it is inspected, converted, resized, checked and synced here.
            let plain = plain_local(input);
            let ((virtual_size, digest, built), alongside) =
                alongside(plain, job.cancel, log, |cancel, log| {
                    let (staged, digest) = stage(job, input, log)?;
                    let (virtual_size, built) =
                        convert(job, &qemu, staged, part.path(), cancel, log)?;
                    Ok((virtual_size, digest, built))
                })?;
            (virtual_size, digest.or(alongside), built)
        }
    };
    if job.cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    // The image is the work file, or a temporary input kept as it was (see convert).
    match built {
        Some(temp) => temp.persist(output)?,
        None => part.persist(output)?,
    }
    log(format!(
        "Generated image at: {} ({}, {}) in {:.2} s",
        absolute(output).display(),
        job.format.as_str(),
        size::human(virtual_size),
        started.elapsed().as_secs_f64()
    ));
    Ok(Outcome::Built {
        virtual_size,
        input_digest,
    })
}

/// The input as a local, uncompressed image file.
struct Staged {
    path: PathBuf,
    info: qemu_img::Info,
    /// A temporary copy (download, decompressed data), removed when dropped.
    temp: Option<TempPath>,
}

/// A local, uncompressed input with a checksum to verify: hashed alongside the rest.
fn plain_local(input: &Input) -> Option<(&Path, &Expected)> {
    match (&input.location, &input.checksum) {
        (Location::Path(p), Some(e))
            if p.is_file() && matches!(Compression::of_file(p), Ok(Compression::None)) =>
        {
            Some((p.as_path(), e))
        }
        _ => None,
    }
}

fn stage(
    job: &Job,
    input: &Input,
    log: &mut dyn FnMut(String),
) -> Result<(Staged, Option<String>)> {
    let qemu = QemuImg::new(job.runner);
    let unpacked = hidden_sibling(job.output, ".unpacked");
    let (path, temp, digest, downloaded) = match &input.location {
        Location::Path(path) => {
            let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound(path.clone()),
                _ => Error::io(path, e),
            })?;
            if meta.is_dir() {
                return Err(Error::Invalid(format!(
                    "the input {} is a directory, not an image",
                    path.display()
                )));
            }
            match Compression::of_file(path)? {
                // Hashed alongside (see plain_local).
                Compression::None => (path.clone(), None, None, false),
                c => {
                    let t = TempPath::fresh(unpacked)?;
                    log(format!("Decompressing {} ({})", path.display(), c.name()));
                    let file = std::fs::File::open(path).at(path)?;
                    checksum::advise_sequential(&file);
                    let bar = compressed_bar(job, &file);
                    let mut hashing = HashingReader {
                        inner: bar.reader(file),
                        summer: input.checksum.as_ref().map(Expected::summer),
                    };
                    let decoder = c.decoder(&mut hashing)?;
                    compress::write_sparse(decoder, t.path(), job.cancel)?;
                    // The hash covers the compressed file: read what the decoder left.
                    std::io::copy(&mut hashing, &mut std::io::sink()).at(path)?;
                    let digest = hashing.summer.map(Summer::finish);
                    check(input, digest.as_deref(), &path.display().to_string(), log)?;
                    (t.path().to_path_buf(), Some(t), digest, false)
                }
            }
        }
        Location::Url(url) => {
            let (file, download, digest) = fetch(job, url, input, log)?;
            check(input, digest.as_deref(), url, log)?;
            match Compression::of_file(&file)? {
                Compression::None => (file, download, digest, true),
                c => {
                    let t = TempPath::fresh(unpacked)?;
                    log(format!("Decompressing the download ({})", c.name()));
                    let f = std::fs::File::open(&file).at(&file)?;
                    let bar = compressed_bar(job, &f);
                    compress::write_sparse(c.decoder(bar.reader(f))?, t.path(), job.cancel)?;
                    drop(download);
                    (t.path().to_path_buf(), Some(t), digest, true)
                }
            }
        }
    };
    // Without a format, qemu-img finds it out (and says which it found).
    let info = qemu.info(&path, input.format.as_deref())?;
    let format = info.format.clone();
    if downloaded && info.backing_file.is_some() {
        return Err(Error::Invalid(format!(
            "the downloaded image {} refers to a backing file ({}): refusing to read files of \
             this host on its behalf",
            input.location.display(),
            info.backing_file.as_deref().unwrap_or_default()
        )));
    }
    log(format!(
        "Input {}: {format}, virtual size {}",
        input.location.display(),
        size::human(info.virtual_size)
    ));
    if let Some(target) = job.size.map(size::rounded) {
        if target < info.virtual_size && !job.shrink {
            return Err(Error::ShrinkRefused {
                what: input.location.display(),
                from: info.virtual_size,
                to: target,
            });
        }
    }
    Ok((Staged { path, info, temp }, digest))
}

/// Download `url` (hashed as it arrives): into the job's download cache, or to a temporary
/// file next to the output (removed when dropped). The digest is the input's checksum.
fn fetch(
    job: &Job,
    url: &str,
    input: &Input,
    log: &mut dyn FnMut(String),
) -> Result<(PathBuf, Option<TempPath>, Option<String>)> {
    if let Some(dir) = job.downloads {
        let c = download_cache::fetch(
            dir,
            url,
            input.checksum.as_ref(),
            job.cancel,
            job.progress,
            log,
        )?;
        return Ok((c.path, None, c.digest));
    }
    let dest = hidden_sibling(job.output, ".download");
    let fetched = download::fetch(
        &download::Request {
            url,
            dest: &dest,
            expected: input.checksum.as_ref(),
            cancel: job.cancel,
            progress: job.progress,
        },
        log,
    )?;
    log(format!(
        "Downloaded {} bytes{}",
        fetched.bytes,
        if fetched.resumed_from > 0 {
            format!(" (resumed at byte {})", fetched.resumed_from)
        } else {
            String::new()
        }
    ));
    Ok((dest.clone(), Some(TempPath::adopt(dest)), fetched.digest))
}

/// A bar over the compressed file as the decoder reads it (the decompressed size is not
/// known until the end).
fn compressed_bar(job: &Job, file: &std::fs::File) -> Progress {
    let len = file.metadata().map(|m| m.len()).ok();
    Progress::bytes(job.progress, "Decompressing", len)
}

/// Verify a digest computed while reading, and log it.
fn check(
    input: &Input,
    digest: Option<&str>,
    what: &str,
    log: &mut dyn FnMut(String),
) -> Result<()> {
    if let (Some(e), Some(d)) = (&input.checksum, digest) {
        e.verify(d, what)?;
        log(format!(
            "Checksum {} of {what}: {d} (matches)",
            e.describe()
        ));
    }
    Ok(())
}

/// qemu-img convert, resize, check and fsync; the value is the virtual size.
fn convert(
    job: &Job,
    qemu: &QemuImg,
    mut staged: Staged,
    dst: &Path,
    cancel: &Cancel,
    log: &mut dyn FnMut(String),
) -> Result<(u64, Option<TempPath>)> {
    let started = Instant::now();
    let done = |what: &str, log: &mut dyn FnMut(String)| {
        log(format!(
            "{what} in {:.2} s",
            started.elapsed().as_secs_f64()
        ))
    };
    // An input that already is what the output must be is not rewritten by qemu-img: a
    // temporary one (a download, decompressed data) becomes the image, a local one is
    // copied as it is (then resized and checked like any other).
    let mut current = staged.info.virtual_size;
    let kept = match as_is(job, qemu, &staged) {
        None => {
            qemu.convert(
                &staged.path,
                &staged.info.format,
                dst,
                job.format,
                cancel,
                job.progress,
            )?;
            done(&format!("Converted to {}", job.format.as_str()), log);
            // (The output format may round the size differently from the input's.)
            current = qemu.info(dst, Some(job.format.as_str()))?.virtual_size;
            None
        }
        Some(why) => match staged.temp.take() {
            Some(temp) if job.format == ImageFormat::Qcow2 => {
                done(&format!("Kept the input as the image ({why})"), log);
                Some(temp)
            }
            _ => {
                copy::copy_image(
                    &staged.path,
                    dst,
                    job.format == ImageFormat::Raw,
                    cancel,
                    job.progress,
                )?;
                done(&format!("Copied the input as it is ({why})"), log);
                None
            }
        },
    };
    let target = kept.as_ref().map_or(dst, |t| t.path());
    let virtual_size = resize(job, qemu, target, current, log)?;
    finish(job, qemu, target, virtual_size, None, cancel, log)?;
    Ok((virtual_size, kept))
}

/// Why the input can be the output as it is, if it can: the same format, nothing but the
/// guest's data in it (no backing file, snapshots, bitmaps, encryption), and for qcow2
/// compat 1.1 and no compressed clusters (qemu-img convert would expand those).
fn as_is(job: &Job, qemu: &QemuImg, staged: &Staged) -> Option<&'static str> {
    let info = &staged.info;
    if info.format != job.format.as_str() || info.backing_file.is_some() || !info.extras.is_empty()
    {
        return None;
    }
    match job.format {
        ImageFormat::Raw => Some("already raw"),
        ImageFormat::Qcow2 => (info.compat.as_deref() == Some("1.1")
            && qemu.compressed_clusters(&staged.path) == Some(0))
        .then_some("already qcow2 compat 1.1, self-contained, uncompressed"),
    }
}

/// Run `work` while `hash` (a file and what it must hash to) is hashed on another thread:
/// the wall time is the slower of the two. A mismatch stops the work (its cancel token
/// fires) and is the error; otherwise the second value is the checksum.
fn alongside<T>(
    hash: Option<(&Path, &Expected)>,
    cancel: &Cancel,
    log: &mut dyn FnMut(String),
    work: impl FnOnce(&Cancel, &mut dyn FnMut(String)) -> Result<T>,
) -> Result<(T, Option<String>)> {
    let Some((path, expected)) = hash else {
        return work(cancel, log).map(|v| (v, None));
    };
    let started = Instant::now();
    let hash_cancel = cancel.child();
    let work_cancel = cancel.child();
    let (worked, hashed) = std::thread::scope(|s| {
        let hasher = s.spawn(|| {
            let r = checksum::hash_file(path, expected, &hash_cancel);
            if matches!(&r, Ok(d) if !expected.matches(d)) {
                work_cancel.cancel();
            }
            r
        });
        let worked = work(&work_cancel, log);
        if worked.is_err() {
            hash_cancel.cancel();
        }
        let hashed = hasher.join().unwrap_or(Err(Error::Interrupted));
        (worked, hashed)
    });
    let what = path.display().to_string();
    match (worked, hashed) {
        (_, Ok(digest)) if !expected.matches(&digest) => Err(Error::ChecksumMismatch {
            what,
            algorithm: expected.algorithm.name(),
            expected: expected.value.clone(),
            actual: digest,
        }),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e),
        (Ok(v), Ok(digest)) => {
            log(format!(
                "Checksum {} of {what}: {digest} (matches; {:.2} s, alongside the conversion)",
                expected.describe(),
                started.elapsed().as_secs_f64()
            ));
            Ok((v, Some(digest)))
        }
    }
}

/// Check the image and put it on disk (the rename into place follows).
fn finish(
    job: &Job,
    qemu: &QemuImg,
    path: &Path,
    virtual_size: u64,
    known: Option<qemu_img::Info>,
    cancel: &Cancel,
    log: &mut dyn FnMut(String),
) -> Result<()> {
    if cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    let checked = qemu_img::verify(qemu, path, job.format, virtual_size, known)?;
    log(format!("Checked {}: {checked}", job.output.display()));
    if cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    Ok(crate::fsutil::sync_file(path)?)
}

fn resize(
    job: &Job,
    qemu: &QemuImg,
    path: &Path,
    current: u64,
    log: &mut dyn FnMut(String),
) -> Result<u64> {
    let Some(target) = job.size.map(size::rounded) else {
        return Ok(current);
    };
    if target == current {
        return Ok(current);
    }
    let shrinking = target < current;
    if shrinking && !job.shrink {
        return Err(Error::ShrinkRefused {
            what: path.display().to_string(),
            from: current,
            to: target,
        });
    }
    qemu.resize(path, job.format, target, shrinking)?;
    log(format!(
        "Resized from {} to {}",
        size::human(current),
        size::human(target)
    ));
    Ok(target)
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    summer: Option<Summer>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(s) = self.summer.as_mut() {
            s.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            Location::parse("https://x/a.qcow2"),
            Location::Url("https://x/a.qcow2".into())
        );
        assert_eq!(
            Location::parse("HTTP://x/a"),
            Location::Url("HTTP://x/a".into())
        );
        assert_eq!(
            Location::parse("file:///srv/a.qcow2"),
            Location::Path("/srv/a.qcow2".into())
        );
        assert_eq!(Location::parse("a.qcow2"), Location::Path("a.qcow2".into()));
    }
}
