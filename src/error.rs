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

    /// A virt-maker step that failed while building: the template file, the step, and
    /// the failure it wraps. Exit code 1 whatever the failure (an invalid template is
    /// found before any build, and is 2); a Ctrl-C is never wrapped.
    #[error("{}: {location}: {source}", .file.display())]
    StepFailed {
        file: PathBuf,
        location: String,
        #[source]
        source: Box<Error>,
    },

    /// A template step that cannot run as written (no script, a file that is not there).
    #[error("{context}: {message}")]
    Step { context: String, message: String },

    /// The step cache is not in the state a build needs.
    #[error("{0}")]
    StepCache(String),

    /// A step-cache layer that something still stands on.
    #[error("step cache: layer {key} is in use (a template or a running build depends on it); cannot force a rebuild")]
    LayerInUse { key: String },

    /// A setting that names something virt-up cannot do (`virt-install-args`).
    #[error("{setting}: {message}")]
    Setting {
        setting: &'static str,
        message: String,
    },

    /// A command line that does not say what to do (`-p KEY=VALUE`, `cache gc` limits).
    #[error("{0}")]
    Usage(String),

    #[error("playbook '{name}' not found; looked in: {}", .looked_in.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    PlaybookNotFound {
        name: String,
        looked_in: Vec<PathBuf>,
    },

    /// A guest that cannot be made ready: its name and what it did.
    #[error("{name}: {message}")]
    Guest { name: String, message: String },

    /// Making a template generic over SSH (a template playbook's last step) failed.
    #[error("{0}")]
    Generalize(String),

    /// A file of ours that does not parse.
    #[error("{}: {what}: {message}", .path.display())]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        message: String,
    },

    #[error("{what}: {source}")]
    SshKey {
        what: String,
        #[source]
        source: ssh_key::Error,
    },

    /// An instance's identity (its password hash, its seed archive) cannot be made.
    #[error("{what}: {message}")]
    Identity { what: &'static str, message: String },

    #[error(transparent)]
    Json(#[from] serde_json::Error),

    /// A domain or disk with a template's name that no record of ours knows: it may belong
    /// to another data dir, and clones there may depend on it, so it is never overwritten.
    #[error("template {template}: domain or disk '{stem}' exists but is not recorded in {}; it may belong to another virt-up data dir. Remove it (virsh undefine {stem}; virsh vol-delete {}) if it is unused", .data_dir.display(), .disk.display())]
    Unrecorded {
        template: String,
        stem: String,
        data_dir: PathBuf,
        disk: PathBuf,
    },

    /// An instance that exists but cannot be used as asked: still being created, its domain
    /// gone, no address or host key recorded. The message says what to do.
    #[error("{name}: {why}")]
    InstanceNotUsable { name: String, why: String },

    /// A snapshot the instance does not have.
    #[error("{instance} has no snapshot '{snapshot}' (see: virt-up {instance} --snapshots)")]
    SnapshotNotFound { instance: String, snapshot: String },

    /// Several instances were asked for and some failed (each was reported on its own).
    #[error("{failed} of {total} instances failed")]
    SomeFailed { failed: usize, total: usize },

    /// A saved guest's memory image that a warm clone cannot be made from (a warm create
    /// then falls back to a cold one, saying this).
    #[error("the save image cannot be used: {0}")]
    SaveImage(String),

    /// The host lacks what was asked for (virtiofsd for --mount): what, where it was
    /// looked for, and what to install.
    #[error("{0}")]
    HostNotReady(String),

    /// No `[host NAME]` has room for an instance: each host's figure (nothing was placed).
    #[error(transparent)]
    NoRoom(#[from] crate::placement::NoRoom),

    #[error("interrupted")]
    Interrupted,
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
            | Error::Template { .. }
            | Error::Step { .. }
            | Error::Setting { .. }
            | Error::Usage(_)
            | Error::PlaybookNotFound { .. } => 2,
            Error::InstanceExists(_)
            | Error::InstanceNotFound(_)
            | Error::TemplateInUse { .. }
            | Error::LayerInUse { .. }
            | Error::Unrecorded { .. }
            | Error::InstanceNotUsable { .. }
            | Error::SnapshotNotFound { .. } => 3,
            Error::Libvirt { .. } | Error::HostNotReady(_) | Error::NoRoom(_) => 4,
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
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Error as ImageError;

    #[test]
    fn image_errors_keep_their_kind_and_their_text() {
        let mismatch = Error::from(ImageError::ChecksumMismatch {
            what: "disk.qcow2".into(),
            algorithm: "sha256",
            expected: "aa".into(),
            actual: "bb".into(),
        });
        assert_eq!(mismatch.exit_code(), 2);
        assert_eq!(
            mismatch.to_string(),
            "checksum mismatch for disk.qcow2: expected sha256 aa, computed bb"
        );
        let missing = ToolError::Missing {
            tool: "qemu-img".into(),
            package: "qemu-utils",
        };
        let create = Error::from(ImageError::Create {
            path: "out.qcow2".into(),
            source: missing,
        });
        assert_eq!(create.exit_code(), 4);
        assert!(std::error::Error::source(&create).is_some());
        assert_eq!(Error::from(ImageError::Interrupted).exit_code(), 130);
        assert_eq!(
            Error::from(ImageError::from(ToolError::Interrupted)).exit_code(),
            130
        );
        assert_eq!(
            Error::from(ImageError::Recipe("bad suite".into())).exit_code(),
            2
        );
        let download = ImageError::Download {
            url: "u".into(),
            message: "m".into(),
        };
        assert_eq!(Error::from(download).exit_code(), 1);
    }

    #[test]
    fn tool_errors_keep_their_kind() {
        let failed = ToolError::Failed {
            tool: "virt-builder".into(),
            code: 1,
            context: "building template x".into(),
            stderr_tail: "why".into(),
        };
        assert_eq!(Error::from(failed).exit_code(), 1);
        let missing = ToolError::Missing {
            tool: "virt-builder".into(),
            package: "guestfs-tools",
        };
        assert_eq!(Error::from(missing).exit_code(), 4);
        assert!(Error::from(ToolError::Interrupted).is_interrupted());
    }

    #[test]
    fn a_failed_step_is_1_and_keeps_its_cause() {
        let e = Error::StepFailed {
            file: "t.yaml".into(),
            location: "step 2 (run)".into(),
            source: Box::new(Error::Step {
                context: "step 2 (run)".into(),
                message: "no script".into(),
            }),
        };
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "t.yaml: step 2 (run): step 2 (run): no script"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
