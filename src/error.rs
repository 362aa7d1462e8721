//! The library's error type: every variant says what failed, on which object, and,
//! where there is one, what the user can do about it.

use crate::runner::ToolError;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),

    #[error("invalid name '{name}': {why}")]
    InvalidName { name: String, why: String },

    #[error("unknown template '{name}'{hint}; see 'virt-up --show-templates'")]
    UnknownTemplate { name: String, hint: String },

    /// Making an image (a source, a conversion, a debootstrap build) failed.
    #[error(transparent)]
    Image(#[from] crate::image::Error),

    /// An external tool missing, failed or stopped.
    #[error(transparent)]
    Tool(#[from] ToolError),

    #[error("libvirt: {what}: {message}{hint}")]
    Libvirt {
        what: String,
        message: String,
        hint: String,
    },

    #[error("{name}: timed out after {seconds} s in phase '{phase}'; console log: {console_log}")]
    Timeout {
        name: String,
        phase: String,
        seconds: u64,
        console_log: String,
    },

    #[error("instance '{0}' already exists (use --delete first, or --login to use it)")]
    InstanceExists(String),

    #[error("instance '{0}' not found (see 'virt-up --list')")]
    InstanceNotFound(String),

    #[error("template '{template}' is used by instance(s): {}; delete them first", .instances.join(", "))]
    TemplateInUse {
        template: String,
        instances: Vec<String>,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A virt-maker template that cannot be built: the file, where in it, and what.
    #[error("{}: {location}{message}", .file.display())]
    Template {
        file: PathBuf,
        location: String,
        message: String,
    },

    #[error("interrupted")]
    Interrupted,

    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An I/O error that names the file it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether this is Ctrl-C (or a cancellation) climbing up, whichever layer saw it.
    pub fn is_interrupted(&self) -> bool {
        self.exit_code() == 130
    }

    /// The process exit code for this error: distinct codes let scripts tell
    /// "you asked for something wrong" from "the host is not ready" from "it broke".
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_)
            | Error::InvalidName { .. }
            | Error::UnknownTemplate { .. }
            | Error::Template { .. } => 2,
            Error::InstanceExists(_) | Error::InstanceNotFound(_) | Error::TemplateInUse { .. } => {
                3
            }
            Error::Libvirt { .. } => 4,
            Error::Timeout { .. } => 5,
            Error::Interrupted => 130,
            Error::Tool(e) => e.exit_code(),
            Error::Image(e) => e.exit_code(),
            _ => 1,
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

/// Extension to attach a path to `std::io::Result`s.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
