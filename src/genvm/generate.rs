//! One image, as `single` asks for it and as each entry of an architecture file does.

use super::{Failure, ReturnCode, Verbose};
use crate::fsutil::absolute;
use crate::image::cancel::Cancel;
use crate::image::checksum::Expected;
use crate::image::qemu_img::ImageFormat;
use crate::image::source::{self, Input, Job, Location, Outcome};
use crate::runner::Runner;
use std::path::PathBuf;

/// The directory images go to when none is given (the original tool's).
pub const DEFAULT_OUTPUT_DIRECTORY: &str = "generated-images";

/// One image to generate, as the user wrote it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageRequest {
    pub name: String,
    pub version: Option<String>,
    pub size: String,
    /// qcow2 or raw.
    pub format: String,
    /// A path or URL.
    pub input: Option<String>,
    pub input_format: Option<String>,
    pub checksum_type: Option<String>,
    pub checksum: Option<String>,
    pub buffer_size: Option<u64>,
    pub read_bytes: Option<u64>,
    pub output_directory: PathBuf,
    pub overwrite: bool,
    pub shrink: bool,
}

/// What every image generation shares.
pub struct Env<'a> {
    pub runner: &'a Runner,
    pub cancel: &'a Cancel,
    pub progress: bool,
}

/// A request checked and turned into what the image pipeline takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub output: PathBuf,
    pub format: ImageFormat,
    pub size: u64,
    pub input: Option<Input>,
    pub overwrite: bool,
    pub shrink: bool,
}

impl ImageRequest {
    /// `<dir>/<name>[-<version>].<format>`, as the original named its outputs.
    pub fn output_path(&self) -> PathBuf {
        let file = match &self.version {
            Some(v) => format!("{}-{v}.{}", self.name, self.format),
            None => format!("{}.{}", self.name, self.format),
        };
        self.output_directory.join(file)
    }

    /// Every check that needs no I/O, so a mistake is reported before any work starts.
    pub fn plan(&self) -> Result<Plan, Failure> {
        let invalid = |m: String| Failure::new(ReturnCode::InvalidAttribute, m);
        let name_ok = |n: &str| !(n.is_empty() || n == "." || n == ".." || n.contains('/'));
        if !name_ok(&self.name) {
            return Err(invalid(format!(
                "the image name must be a file name (no '/'), not '{}'",
                self.name
            )));
        }
        if let Some(v) = &self.version {
            if v.contains('/') {
                return Err(invalid(format!(
                    "the image version must not contain '/': '{v}'"
                )));
            }
        }
        let format = crate::image::qemu_img::parse_format(&self.format)?;
        let size = crate::size::parse(&self.size).map_err(crate::image::Error::from)?;
        let missing = |m: &str| Failure::new(ReturnCode::MissingAttribute, m);
        let checksum = match (&self.checksum_type, &self.checksum) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(missing(
                    "missing attribute 'input_checksum': a checksum type was given without a checksum value",
                ))
            }
            (None, Some(_)) => {
                return Err(missing(
                    "missing attribute 'input_checksum_type': a checksum value was given without its type",
                ))
            }
            (Some(kind), Some(value)) => {
                if self.buffer_size == Some(0) {
                    return Err(invalid(
                        "the checksum buffer size must be at least 1 byte".into(),
                    ));
                }
                let buffer = self
                    .buffer_size
                    .map(|b| usize::try_from(b).unwrap_or(usize::MAX).min(1 << 30));
                Some(Expected::new(kind, value, self.read_bytes, buffer)?)
            }
        };
        let input = match &self.input {
            None if checksum.is_some() || self.input_format.is_some() => {
                return Err(missing(
                    "missing attribute 'input': a checksum or input format was given without an input image",
                ))
            }
            None => None,
            Some(location) if location.is_empty() => {
                return Err(invalid("the input must be a path or URL, not empty".into()))
            }
            Some(location) => Some(Input {
                location: Location::parse(location),
                format: self.input_format.clone(),
                checksum,
            }),
        };
        Ok(Plan {
            output: self.output_path(),
            format,
            size,
            input,
            overwrite: self.overwrite,
            shrink: self.shrink,
        })
    }
}

/// Generate the image; the value is the response for the JSON document.
pub fn generate(req: &ImageRequest, env: &Env, verbose: &mut Verbose) -> Result<String, Failure> {
    let plan = req.plan()?;
    run_plan(&plan, env, verbose)
}

/// Carry out a checked plan.
pub fn run_plan(plan: &Plan, env: &Env, verbose: &mut Verbose) -> Result<String, Failure> {
    let output = &plan.output;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::new(
                ReturnCode::Create,
                format!(
                    "Failed to create path: {} - error: cannot create the output directory: {e}",
                    dir.display()
                ),
            )
        })?;
    }
    let job = Job {
        input: plan.input.as_ref(),
        output,
        format: plan.format,
        size: Some(plan.size),
        shrink: plan.shrink,
        overwrite: plan.overwrite,
        runner: env.runner,
        cancel: env.cancel,
        progress: env.progress,
        downloads: None,
    };
    let existed = output.exists();
    let mut log = |m: String| verbose.push(m);
    match source::make(&job, &mut log)? {
        Outcome::Exists => {
            verbose.push(format!(
                "The output image: {} already exists",
                output.display()
            ));
            verbose.push("Use the --overwrite flag to overwrite the existing image".to_string());
            Ok(format!(
                "The output image {} already exists; it was left as it is (use --overwrite to replace it)",
                output.display()
            ))
        }
        Outcome::Built { .. } => Ok(format!(
            "{} the image {}",
            if existed { "Replaced" } else { "Generated" },
            absolute(output).display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ImageRequest {
        ImageRequest {
            name: "deb".into(),
            size: "10G".into(),
            format: "qcow2".into(),
            output_directory: "out".into(),
            ..ImageRequest::default()
        }
    }

    #[test]
    fn output_is_named_like_the_originals() {
        let mut r = req();
        assert_eq!(r.output_path(), std::path::Path::new("out/deb.qcow2"));
        r.version = Some("9.10".into());
        r.format = "raw".into();
        assert_eq!(r.output_path(), std::path::Path::new("out/deb-9.10.raw"));
    }

    #[test]
    fn plan_checks_everything_before_any_work() {
        let code = |r: ImageRequest| r.plan().unwrap_err().code.code();
        assert_eq!(req().plan().unwrap().size, 10 << 30);
        assert_eq!(
            code(ImageRequest {
                size: "10GB".into(),
                ..req()
            }),
            11
        );
        assert_eq!(
            code(ImageRequest {
                format: "vmdk".into(),
                ..req()
            }),
            5
        );
        assert_eq!(
            code(ImageRequest {
                name: "a/b".into(),
                ..req()
            }),
            5
        );
        let with_input = ImageRequest {
            input: Some("/x.qcow2".into()),
            ..req()
        };
        assert_eq!(
            code(ImageRequest {
                checksum: Some("ab".into()),
                ..with_input.clone()
            }),
            4
        );
        assert_eq!(
            code(ImageRequest {
                checksum_type: Some("sha256".into()),
                ..with_input.clone()
            }),
            4
        );
        assert_eq!(
            code(ImageRequest {
                checksum_type: Some("crc".into()),
                checksum: Some("ab".into()),
                ..with_input.clone()
            }),
            6
        );
        assert_eq!(
            code(ImageRequest {
                checksum_type: Some("md5".into()),
                checksum: Some("900150983cd24fb0d6963f7d28e17f72".into()),
                buffer_size: Some(0),
                ..with_input.clone()
            }),
            5
        );
        assert_eq!(
            code(ImageRequest {
                checksum_type: Some("md5".into()),
                checksum: Some("900150983cd24fb0d6963f7d28e17f72".into()),
                ..req()
            }),
            4
        );
        let plan = ImageRequest {
            input: Some("https://h/x.qcow2".into()),
            ..req()
        }
        .plan()
        .unwrap();
        assert_eq!(
            plan.input.unwrap().location,
            Location::Url("https://h/x.qcow2".into())
        );
    }
}
