//! Image sources and image files, shared by every front-end that makes a disk image from
//! something else (gen-vm-image, virt-up templates, a future step cache):
//!
//! - [`source`]: the pipeline: a path or URL (optionally compressed) and an expected
//!   checksum in, a checked qcow2 or raw image out, written atomically;
//! - [`download`]: resumable, atomic HTTP(S) downloads, hashed in the same pass;
//! - [`download_cache`]: one download per URL in a directory, shared between processes;
//! - [`checksum`]: the algorithms users have (hashlib's names), `read_bytes`, `buffer_size`;
//! - [`compress`]: .xz/.gz/.bz2/.zst detection by magic number and streaming decompression;
//! - [`copy`]: a byte copy (O_DIRECT, from a memory map) of an input already in shape;
//! - [`progress`]: progress bars on stderr, drawn only on a terminal;
//! - [`qemu_img`]: qemu-img info/convert/create/resize/check through the [`Runner`];
//! - [`cancel`]: Ctrl-C and cancellation, so nothing half-written is left behind;
//! - [`debootstrap`]: a bootable Debian disk from Debian packages (no prebuilt image).
//!
//! [`Runner`]: crate::runner::Runner

pub mod cancel;
pub(crate) mod checksum;
pub(crate) mod compress;
pub(crate) mod copy;
pub mod debootstrap;
pub(crate) mod download;
pub(crate) mod download_cache;
pub(crate) mod progress;
pub(crate) mod qemu_img;
pub(crate) mod source;

use crate::runner::ToolError;
use std::path::PathBuf;

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while making an image. Every variant names the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("input image not found: {0}")]
    NotFound(PathBuf),

    #[error(
        "unknown checksum type '{name}' (supported: {})",
        checksum::Algorithm::supported()
    )]
    UnknownAlgorithm { name: String },

    #[error("invalid checksum value '{value}': {why}")]
    InvalidChecksum { value: String, why: String },

    #[error("checksum mismatch for {what}: expected {algorithm} {expected}, computed {actual}")]
    ChecksumMismatch {
        what: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },

    #[error("invalid size '{text}': {why}")]
    InvalidSize { text: String, why: String },

    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },

    #[error(
        "refusing to shrink {what} from {from} to {to} bytes: the data beyond {to} bytes would \
         be lost (ask for it explicitly: --shrink, or 'shrink: true' in an architecture file)"
    )]
    ShrinkRefused { what: String, from: u64, to: u64 },

    #[error("unsupported output format '{0}' (supported: qcow2, raw)")]
    UnsupportedFormat(String),

    #[error("{0}")]
    Invalid(String),

    /// A value of a recipe (a debootstrap suite, package, mirror, size) or a requirement
    /// of it that the user must change.
    #[error("{0}")]
    Recipe(String),

    /// A tool of the pipeline (debootstrap, guestfish, tar, chroot) missing or failed.
    #[error(transparent)]
    Tool(ToolError),

    #[error("cannot read the input image {path}: {source}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: ToolError,
    },

    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: ToolError,
    },

    #[error("cannot resize {path}: {source}")]
    Resize {
        path: PathBuf,
        #[source]
        source: ToolError,
    },

    #[error("check of {path} failed: {details}")]
    Check { path: PathBuf, details: String },

    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Bad input (a checksum that does not match, a size or format not accepted, a
    /// refused shrink) is 2; a missing tool 4; Ctrl-C 130; anything else 1.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Error::NotFound(_)
            | Error::UnknownAlgorithm { .. }
            | Error::InvalidChecksum { .. }
            | Error::ChecksumMismatch { .. }
            | Error::InvalidSize { .. }
            | Error::ShrinkRefused { .. }
            | Error::UnsupportedFormat(_)
            | Error::Recipe(_) => 2,
            Error::Tool(e)
            | Error::Inspect { source: e, .. }
            | Error::Create { source: e, .. }
            | Error::Resize { source: e, .. } => e.exit_code(),
            Error::Interrupted => 130,
            Error::Io { .. } | Error::Download { .. } | Error::Invalid(_) | Error::Check { .. } => {
                1
            }
        }
    }
}

/// Ctrl-C stays Ctrl-C, whichever tool it stopped.
impl From<ToolError> for Error {
    fn from(e: ToolError) -> Self {
        match e {
            ToolError::Interrupted => Error::Interrupted,
            e => Error::Tool(e),
        }
    }
}

impl From<crate::size::InvalidSize> for Error {
    fn from(e: crate::size::InvalidSize) -> Self {
        Error::InvalidSize {
            text: e.text,
            why: e.why,
        }
    }
}

impl From<crate::fsutil::IoError> for Error {
    fn from(e: crate::fsutil::IoError) -> Self {
        Error::Io {
            path: e.path,
            source: e.source,
        }
    }
}

/// Attach a path to `std::io::Result`s.
pub(crate) trait IoAt<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoAt<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
