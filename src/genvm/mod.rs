//! gen-vm-image: the front-end for users of the Python tool of that name. Their commands
//! (`single`, `multiple`, `configure`), architecture files, JSON result document and return
//! codes are kept; its defects are not (see README.rst, "gen-vm-image").
//!
//! The images themselves are made by [`crate::image`]; this module adds the architecture
//! files, output naming, concurrency of `multiple`, the cloud-init `configure` pass and the
//! mapping of errors to the original return codes.

pub(crate) mod architecture;
pub mod cli;
pub(crate) mod configure;
pub(crate) mod generate;
// unsafe: getpwnam_r, for --generated-image-owner.
#[allow(unsafe_code)]
pub(crate) mod legacy;
pub(crate) mod multiple;

use serde::Serialize;

/// The original tool's return codes (its process exit codes), plus two for `configure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ReturnCode {
    Success = 0,
    PathNotFound = 1,
    Load = 2,
    Create = 3,
    MissingAttribute = 4,
    InvalidAttribute = 5,
    Checksum = 6,
    Resize = 7,
    Check = 8,
    Json = 9,
    Download = 10,
    Size = 11,
    /// configure: the guest, libvirt or cloud-init failed, or timed out.
    Configure = 12,
    /// configure: virt-sysprep failed.
    Reset = 13,
    /// Ctrl-C or SIGTERM.
    Interrupted = 130,
}

impl ReturnCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A failure with the return code it maps to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: ReturnCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ReturnCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<crate::image::Error> for Failure {
    fn from(e: crate::image::Error) -> Failure {
        use crate::image::Error as E;
        let code = match &e {
            E::NotFound(_) => ReturnCode::PathNotFound,
            E::UnknownAlgorithm { .. } | E::InvalidChecksum { .. } | E::ChecksumMismatch { .. } => {
                ReturnCode::Checksum
            }
            E::InvalidSize { .. } => ReturnCode::Size,
            E::Download { .. } => ReturnCode::Download,
            E::ShrinkRefused { .. } | E::Resize { .. } => ReturnCode::Resize,
            E::UnsupportedFormat(_) | E::Recipe(_) => ReturnCode::InvalidAttribute,
            E::Check { .. } => ReturnCode::Check,
            E::Interrupted => ReturnCode::Interrupted,
            E::Io { .. } | E::Invalid(_) | E::Inspect { .. } | E::Create { .. } | E::Tool(_) => {
                ReturnCode::Create
            }
        };
        Failure::new(code, e.to_string())
    }
}

/// The result document every command prints: `{response, return_code, status,
/// verbose_messages}` (keys sorted, indented by 4, as Python's json.dumps printed it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    pub response: String,
    pub return_code: i32,
    pub status: &'static str,
    pub verbose_messages: Vec<String>,
}

impl Document {
    pub fn success(response: impl Into<String>, verbose_messages: Vec<String>) -> Document {
        Document {
            response: response.into(),
            return_code: 0,
            status: "success",
            verbose_messages,
        }
    }

    pub fn failure(failure: &Failure, verbose_messages: Vec<String>) -> Document {
        Document {
            response: failure.message.clone(),
            return_code: failure.code.code(),
            status: "failed",
            verbose_messages,
        }
    }

    pub fn from_result(result: Result<String, Failure>, verbose_messages: Vec<String>) -> Document {
        match result {
            Ok(response) => Document::success(response, verbose_messages),
            Err(f) => Document::failure(&f, verbose_messages),
        }
    }

    pub fn is_success(&self) -> bool {
        self.return_code == 0
    }

    /// The JSON text (without a trailing newline).
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        match self.serialize(&mut ser) {
            Ok(()) => String::from_utf8(out).unwrap_or_default(),
            // Cannot happen with these types; the original had a code for it.
            Err(e) => format!(
                "{{\n    \"response\": \"Failed to dump JSON: {e}\",\n    \"return_code\": {},\n    \"status\": \"failed\",\n    \"verbose_messages\": []\n}}",
                ReturnCode::Json.code()
            ),
        }
    }
}

/// Collects the verbose messages of one run (only when asked for with --verbose).
#[derive(Debug, Default)]
pub struct Verbose {
    pub enabled: bool,
    pub messages: Vec<String>,
}

impl Verbose {
    pub fn new(enabled: bool) -> Verbose {
        Verbose {
            enabled,
            messages: vec![],
        }
    }

    pub fn push(&mut self, message: impl Into<String>) {
        if self.enabled {
            self.messages.push(message.into());
        }
    }

    /// A warning is kept with or without --verbose: it goes into the document, so stdout
    /// and stderr stay one JSON document each, as scripts of the original read them.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.messages.push(format!("warning: {}", message.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_sorted_and_indented_like_pythons_json_dumps() {
        let doc = Document::success("done", vec![]);
        assert_eq!(
            doc.to_json(),
            "{\n    \"response\": \"done\",\n    \"return_code\": 0,\n    \"status\": \"success\",\n    \"verbose_messages\": []\n}"
        );
        let failed = Document::failure(
            &Failure::new(ReturnCode::Checksum, "bad \"sum\""),
            vec!["one".into()],
        );
        let v: serde_json::Value = serde_json::from_str(&failed.to_json()).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["return_code"], 6);
        assert_eq!(v["response"], "bad \"sum\"");
        assert_eq!(v["verbose_messages"][0], "one");
    }

    #[test]
    fn image_errors_map_to_the_original_codes() {
        use crate::image::Error as E;
        let code = |e: E| Failure::from(e).code.code();
        assert_eq!(code(E::NotFound("x".into())), 1);
        assert_eq!(code(E::UnknownAlgorithm { name: "x".into() }), 6);
        assert_eq!(
            code(E::InvalidSize {
                text: "x".into(),
                why: "y".into()
            }),
            11
        );
        assert_eq!(
            code(E::Download {
                url: "u".into(),
                message: "m".into()
            }),
            10
        );
        assert_eq!(
            code(E::ShrinkRefused {
                what: "w".into(),
                from: 2,
                to: 1
            }),
            7
        );
        assert_eq!(
            code(E::Check {
                path: "p".into(),
                details: "d".into()
            }),
            8
        );
        assert_eq!(code(E::Interrupted), 130);
    }
}
