//! qemu-img, through the [`Runner`] (argument vectors, failures with the tool's stderr).
//! Formats are always given explicitly (`-f`, `-O`): never probed from a file's contents,
//! except by [`QemuImg::info`] without a format, whose answer the caller then passes on.

// unsafe: early write-back of qemu-img's output (libc::sync_file_range); each block says why it is sound.
#![allow(unsafe_code)]

use super::cancel::Cancel;
use super::progress::{self, Progress};
use super::{Error, Result};
use crate::runner::{argv, Output, Runner, ToolError};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The output formats images are made in (qcow2 always with compat 1.1, "v3", which
/// current distributions require).
pub(crate) use crate::choice::ImageFormat;

/// A format named in a template, or the error that names it.
pub(crate) fn parse_format(s: &str) -> Result<ImageFormat> {
    ImageFormat::parse(s).ok_or_else(|| Error::UnsupportedFormat(s.to_string()))
}

/// Creation options: qcow2 is always made compat 1.1 (v3).
fn create_options(format: ImageFormat) -> Vec<OsString> {
    match format {
        ImageFormat::Qcow2 => argv(["-o", "compat=1.1"]),
        ImageFormat::Raw => vec![],
    }
}

/// What `qemu-img info` says about an image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Info {
    pub format: String,
    pub virtual_size: u64,
    /// qcow2's compat level ("0.10" or "1.1").
    pub compat: Option<String>,
    pub backing_file: Option<String>,
    /// Anything besides the guest's data that a copy of the file would carry along:
    /// internal snapshots, persistent bitmaps, an external data file, encryption, a dirty
    /// or corrupt flag.
    pub extras: Vec<&'static str>,
}

/// What `qemu-img check` found.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct CheckReport {
    /// Leaked clusters waste space but do not harm the data.
    pub leaks: u64,
}

pub(crate) struct QemuImg<'a> {
    runner: &'a Runner,
}

fn p(path: &Path) -> OsString {
    path.as_os_str().to_owned()
}

/// A failed write of `path`: Ctrl-C stays Ctrl-C.
fn create_error(path: &Path, e: ToolError) -> Error {
    match e {
        ToolError::Interrupted => Error::Interrupted,
        source => Error::Create {
            path: path.to_path_buf(),
            source,
        },
    }
}

fn resize_error(path: &Path, source: ToolError) -> Error {
    Error::Resize {
        path: path.to_path_buf(),
        source,
    }
}

impl<'a> QemuImg<'a> {
    pub(crate) fn new(runner: &'a Runner) -> QemuImg<'a> {
        QemuImg { runner }
    }

    /// The one way qemu-img runs here: `args`, and what the run is for.
    fn run(&self, args: Vec<OsString>, context: &str) -> Result<Output, ToolError> {
        self.runner
            .tool("qemu-img")
            .args(args)
            .context(context)
            .run()
    }

    /// `qemu-img info`; with `format` None the format is probed (qemu-img's own rules).
    /// `-U`: also works on an image a running guest holds.
    pub(crate) fn info(&self, path: &Path, format: Option<&str>) -> Result<Info> {
        let mut args = argv(["info", "--output=json", "-U"]);
        if let Some(f) = format {
            args.extend(argv(["-f", f]));
        }
        args.push(p(path));
        let inspect = |source| Error::Inspect {
            path: path.to_path_buf(),
            source,
        };
        let out = self
            .run(args, "reading image information")
            .map_err(inspect)?;
        parse_info(&out.stdout).map_err(|why| {
            Error::Invalid(format!(
                "cannot read the input image {}: unexpected output of qemu-img info: {why}",
                path.display()
            ))
        })
    }

    /// Convert `src` (in `src_format`) to a new `dst` in `format`; stopped when `cancel`
    /// fires (the error is then `Interrupted`). With `progress`, a bar on a terminal.
    pub(crate) fn convert(
        &self,
        src: &Path,
        src_format: &str,
        dst: &Path,
        format: ImageFormat,
        cancel: &Cancel,
        progress: bool,
    ) -> Result<()> {
        let mut args = argv(["convert", "-f", src_format, "-O", format.as_str()]);
        let bar = Progress::percent(progress, "Converting");
        if bar.is_drawn() {
            // Reports on stdout, `    (12.34/100%)\r`, read as they come (see watch).
            args.push("-p".into());
        }
        args.extend(create_options(format));
        // The output bypasses the page cache (O_DIRECT) where the file system allows it:
        // half the CPU time of a buffered write, which the checksum computed alongside
        // needs, and the image is on disk when qemu-img returns (it flushes at the end).
        let direct = supports_direct_io(dst);
        if direct {
            args.extend(argv(["-t", "none"]));
        }
        args.extend([p(src), p(dst)]);
        let context = format!("converting {} to {}", src.display(), format.as_str());
        // Buffered: start writing the output to disk while qemu-img writes it, so the
        // fsync that makes the image durable has little left to do.
        let output = std::sync::Mutex::new(None::<std::fs::File>);
        let poll = || {
            if !direct {
                if let Ok(mut f) = output.lock() {
                    if f.is_none() {
                        *f = std::fs::File::open(dst).ok();
                    }
                    if let Some(f) = f.as_ref() {
                        start_writeback(f);
                    }
                }
            }
            cancel.is_cancelled()
        };
        // The reports since the last complete one (a read may end inside one).
        let pending = std::sync::Mutex::new(String::new());
        let watch = |bytes: &[u8]| {
            if let Ok(mut text) = pending.lock() {
                text.push_str(&String::from_utf8_lossy(bytes));
                if let Some(percent) = progress::qemu_img_percent(&text) {
                    bar.set_percent(percent);
                }
                if let Some(end) = text.rfind('\r') {
                    text.drain(..=end);
                }
            }
        };
        self.runner
            .tool("qemu-img")
            .args(&args)
            .context(context)
            .cancel(&poll)
            .watch(&watch)
            .run()
            .map(|_| ())
            .map_err(|e| create_error(dst, e))
    }

    /// A new, empty image of `bytes`.
    pub(crate) fn create(&self, path: &Path, format: ImageFormat, bytes: u64) -> Result<()> {
        let mut args = argv(["create", "-q", "-f", format.as_str()]);
        args.extend(create_options(format));
        args.extend([p(path), bytes.to_string().into()]);
        self.run(args, "creating an empty image")
            .map(|_| ())
            .map_err(|e| create_error(path, e))
    }

    pub(crate) fn resize(
        &self,
        path: &Path,
        format: ImageFormat,
        bytes: u64,
        shrink: bool,
    ) -> Result<()> {
        let mut args = argv(["resize", "-q", "-f", format.as_str()]);
        if shrink {
            args.push("--shrink".into());
        }
        args.extend([p(path), bytes.to_string().into()]);
        self.run(args, "resizing")
            .map(|_| ())
            .map_err(|e| resize_error(path, e))
    }

    /// A qcow2 overlay on `backing` (absolute path): writes go to the overlay, the backing
    /// image is only read.
    pub(crate) fn create_overlay(
        &self,
        overlay: &Path,
        backing: &Path,
        backing_format: &str,
    ) -> Result<()> {
        let backing = crate::fsutil::absolute(backing);
        let args = argv([
            OsString::from("create"),
            "-q".into(),
            "-f".into(),
            "qcow2".into(),
            "-F".into(),
            backing_format.into(),
            "-b".into(),
            backing.into_os_string(),
            p(overlay),
        ]);
        self.run(args, "creating an overlay")
            .map(|_| ())
            .map_err(|e| create_error(overlay, e))
    }

    /// Write a qcow2 overlay's changes into its backing image.
    pub(crate) fn commit(&self, overlay: &Path) -> Result<()> {
        let args = argv([
            OsString::from("commit"),
            "-q".into(),
            "-f".into(),
            "qcow2".into(),
            p(overlay),
        ]);
        self.run(args, "writing the changes into the image")
            .map(|_| ())
            .map_err(|e| create_error(overlay, e))
    }

    /// How many compressed clusters a qcow2 image has (a metadata scan); None when it
    /// cannot be told (the image does not check clean).
    pub(crate) fn compressed_clusters(&self, path: &Path) -> Option<u64> {
        let args = argv([
            OsString::from("check"),
            "--output=json".into(),
            "-U".into(),
            "-f".into(),
            "qcow2".into(),
            p(path),
        ]);
        let out = self.run(args, "checking the input").ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(v["compressed-clusters"].as_u64().unwrap_or(0))
    }

    /// `qemu-img check` of a qcow2 image: corruption is an error, leaks are reported.
    pub(crate) fn check(&self, path: &Path) -> Result<CheckReport> {
        let args = argv([
            OsString::from("check"),
            "--output=json".into(),
            "-f".into(),
            "qcow2".into(),
            p(path),
        ]);
        match self.run(args, "checking") {
            Ok(_) => Ok(CheckReport::default()),
            // Exit code 3: only leaked clusters (wasted space, data intact).
            Err(e) if e.code() == Some(3) => Ok(CheckReport { leaks: 1 }),
            Err(e) => Err(Error::Check {
                path: path.to_path_buf(),
                details: e.to_string(),
            }),
        }
    }
}

/// Whether files next to `path` can be opened with O_DIRECT (some file systems refuse).
fn supports_direct_io(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(probe) = tempfile::Builder::new()
        .prefix(".direct-io-")
        .tempfile_in(dir)
    else {
        return false;
    };
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(probe.path())
        .is_ok()
}

/// Ask the kernel to start writing a file's dirty pages (returns at once).
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; SYNC_FILE_RANGE_WRITE only initiates writeback.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

fn parse_info(json: &[u8]) -> std::result::Result<Info, String> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let format = v["format"].as_str().ok_or("no 'format'")?.to_string();
    let virtual_size = v["virtual-size"].as_u64().ok_or("no 'virtual-size'")?;
    let compat = v["format-specific"]["data"]["compat"]
        .as_str()
        .map(str::to_string);
    let backing_file = v["backing-filename"].as_str().map(str::to_string);
    let data = &v["format-specific"]["data"];
    let mut extras = vec![];
    if v["snapshots"].as_array().is_some_and(|s| !s.is_empty()) {
        extras.push("internal snapshots");
    }
    if data["bitmaps"].as_array().is_some_and(|b| !b.is_empty()) {
        extras.push("bitmaps");
    }
    if !data["data-file"].is_null() {
        extras.push("an external data file");
    }
    if v["encrypted"].as_bool() == Some(true) || !data["encrypt"].is_null() {
        extras.push("encryption");
    }
    if v["dirty-flag"].as_bool() == Some(true) || data["corrupt"].as_bool() == Some(true) {
        extras.push("a dirty or corrupt flag");
    }
    Ok(Info {
        format,
        virtual_size,
        compat,
        backing_file,
        extras,
    })
}

/// Verify a finished image: the format, the size and (qcow2) compat 1.1 and a clean
/// `qemu-img check`. Returns what was verified, for the verbose log. `known`: what
/// `qemu-img info` said about the image after its last change, if that was asked already.
pub(crate) fn verify(
    qemu: &QemuImg,
    path: &Path,
    format: ImageFormat,
    virtual_size: u64,
    known: Option<Info>,
) -> Result<String> {
    let info = match known {
        Some(info) => info,
        None => qemu
            .info(path, Some(format.as_str()))
            .map_err(|e| Error::Check {
                path: path.to_path_buf(),
                details: e.to_string(),
            })?,
    };
    let fail = |details: String| Error::Check {
        path: PathBuf::from(path),
        details,
    };
    if info.virtual_size != virtual_size {
        return Err(fail(format!(
            "virtual size is {} bytes, expected {virtual_size}",
            info.virtual_size
        )));
    }
    match format {
        ImageFormat::Qcow2 => {
            if info.compat.as_deref() != Some("1.1") {
                return Err(fail(format!(
                    "qcow2 compat is {}, expected 1.1",
                    info.compat.as_deref().unwrap_or("unknown")
                )));
            }
            let report = qemu.check(path)?;
            Ok(if report.leaks > 0 {
                "qcow2 compat 1.1; qemu-img check: leaked clusters only (harmless)".into()
            } else {
                "qcow2 compat 1.1; qemu-img check: no errors".into()
            })
        }
        ImageFormat::Raw => Ok("raw".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_json_is_read() {
        let json = br#"{"virtual-size": 1073741824, "filename": "x", "format": "qcow2",
            "actual-size": 200704, "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}},
            "backing-filename": "base.qcow2", "dirty-flag": false}"#;
        let info = parse_info(json).unwrap();
        assert_eq!(info.format, "qcow2");
        assert_eq!(info.virtual_size, 1 << 30);
        assert_eq!(info.compat.as_deref(), Some("1.1"));
        assert_eq!(info.backing_file.as_deref(), Some("base.qcow2"));
        assert!(info.extras.is_empty());
        assert!(parse_info(b"{}").is_err());
        let with_snapshot =
            br#"{"virtual-size": 1, "format": "qcow2", "snapshots": [{"name": "s1"}],
            "format-specific": {"type": "qcow2", "data": {"compat": "1.1", "corrupt": false}}}"#;
        assert_eq!(
            parse_info(with_snapshot).unwrap().extras,
            ["internal snapshots"]
        );
    }

    #[test]
    fn formats() {
        assert_eq!(parse_format("qcow2").unwrap(), ImageFormat::Qcow2);
        assert_eq!(parse_format("raw").unwrap(), ImageFormat::Raw);
        let err = parse_format("vmdk").unwrap_err().to_string();
        assert!(
            err.contains("'vmdk'") && err.contains("qcow2, raw"),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_qcow2_fails_its_check() {
        use std::io::{Read, Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::default();
        let q = QemuImg::new(&runner);
        let a = dir.path().join("a.qcow2");
        q.create(&a, ImageFormat::Qcow2, 1 << 20).unwrap();
        // Zero the first refcount block: every cluster in use then has refcount 0.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&a)
            .unwrap();
        let mut be = [0u8; 8];
        f.seek(SeekFrom::Start(48)).unwrap();
        f.read_exact(&mut be).unwrap();
        f.seek(SeekFrom::Start(u64::from_be_bytes(be))).unwrap();
        f.read_exact(&mut be).unwrap();
        f.seek(SeekFrom::Start(u64::from_be_bytes(be))).unwrap();
        f.write_all(&[0u8; 512]).unwrap();
        drop(f);
        let err = verify(&q, &a, ImageFormat::Qcow2, 1 << 20, None).unwrap_err();
        assert!(matches!(err, Error::Check { .. }), "{err}");
        assert!(err.to_string().contains("check of"), "{err}");
    }

    #[test]
    fn direct_io_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        // Whatever the file system, the probe answers and leaves nothing behind.
        let _ = supports_direct_io(&dir.path().join("x"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(!supports_direct_io(Path::new("/nonexistent/dir/x")));
    }

    #[test]
    fn real_qemu_img_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::default();
        let q = QemuImg::new(&runner);
        let a = dir.path().join("a.qcow2");
        q.create(&a, ImageFormat::Qcow2, 1 << 20).unwrap();
        let info = q.info(&a, None).unwrap();
        assert_eq!(
            (info.format.as_str(), info.virtual_size),
            ("qcow2", 1 << 20)
        );
        q.resize(&a, ImageFormat::Qcow2, 2 << 20, false).unwrap();
        let b = dir.path().join("b.raw");
        q.convert(&a, "qcow2", &b, ImageFormat::Raw, &Cancel::new(), false)
            .unwrap();
        assert_eq!(
            verify(&q, &b, ImageFormat::Raw, 2 << 20, None).unwrap(),
            "raw"
        );
        assert!(verify(&q, &a, ImageFormat::Qcow2, 2 << 20, None)
            .unwrap()
            .contains("compat 1.1"));
        let err = verify(&q, &a, ImageFormat::Qcow2, 3 << 20, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected 3145728"), "{err}");
    }
}
