//! The gen-vm-image command line: the original's commands and options, plus `configure`.
//!
//! The original (Python argparse) spelt some short options with several letters after one
//! dash (`-ict sha256`, `-od DIR`); [`normalize_args`] turns those into the long options
//! before clap parses, so old command lines keep working.

use super::configure::{self, ConfigureOptions};
use super::generate::{self, Env, ImageRequest, DEFAULT_OUTPUT_DIRECTORY};
use super::legacy::{self, LegacyArgs};
use super::multiple::{self, MultipleOptions};
use super::{Document, Failure, ReturnCode, Verbose};
use crate::image::cancel::Cancel;
use crate::paths::Env as EnvVars;
use crate::runner::Runner;
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "gen-vm-image",
    version,
    about = "Generate virtual machine images (qcow2, raw) from nothing, a file or a URL, and configure them with cloud-init",
    after_help = "Each command prints a JSON document {response, return_code, status, verbose_messages} \
                  (on stdout on success, on stderr on failure) and exits with its return code: \
                  0 success, 1 path not found, 2 load, 3 create, 4 missing attribute, \
                  5 invalid attribute, 6 checksum, 7 resize, 8 check, 9 JSON, 10 download, \
                  11 size, 12 configure, 13 reset (virt-sysprep), 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a single virtual machine image.
    Single(SingleArgs),
    /// Generate the images an architecture file defines.
    Multiple(MultipleArgs),
    /// Configure an image with cloud-init: boot it once with a NoCloud seed, wait until
    /// cloud-init finished, power it off and reset its identity with virt-sysprep.
    Configure(ConfigureArgs),
    /// The older command line (`--architecture-path A --image-output-path FILE`), which
    /// `normalize_args` turns into this command.
    #[command(name = legacy::SUBCOMMAND, hide = true)]
    Legacy(LegacyArgs),
}

/// The man page: the command line, return codes, environment and files.
pub fn man_page() -> String {
    use crate::manpage::{render, Section};
    use clap::CommandFactory;
    render(
        Cli::command(),
        &[
            Section {
                title: "EXIT STATUS",
                items: &[
                    ("0", "Success."),
                    ("1", "Path not found."),
                    ("2", "The architecture file cannot be loaded."),
                    ("3", "The image cannot be created."),
                    ("4", "A required attribute is missing."),
                    ("5", "An attribute is invalid."),
                    ("6", "Checksum mismatch."),
                    ("7", "The image cannot be resized."),
                    ("8", "The image fails its check."),
                    ("9", "JSON output failed."),
                    ("10", "The download failed."),
                    ("11", "Bad size."),
                    ("12", "configure: the guest, libvirt or cloud-init failed or timed out."),
                    ("13", "configure: virt-sysprep failed."),
                    ("130", "Interrupted; nothing half-written is left."),
                ],
            },
            Section {
                title: "ENVIRONMENT",
                items: &[
                    (
                        "LIBVIRT_DEFAULT_URI",
                        "configure: the libvirt connection without --connect.",
                    ),
                    ("HOME", "The base of the default directories."),
                ],
            },
            Section {
                title: "FILES",
                items: &[
                    (
                        "generated-images/",
                        "The default output directory of single and multiple.",
                    ),
                    (
                        "architecture.yml",
                        "The default architecture file of the older command line (--architecture-path).",
                    ),
                ],
            },
        ],
    )
}

#[derive(Debug, Args)]
pub struct SingleArgs {
    /// The name of the image that will be generated.
    pub name: String,
    /// The size of the image: bytes, or with a k, M, G, T, P or E suffix (qemu-img's syntax).
    pub size: String,
    /// The path or URL of the input image the generated image is based on
    /// (.xz, .gz and .zst are decompressed).
    #[arg(short = 'i', long = "input")]
    pub input: Option<String>,
    /// The format of the input image (default: found out from its contents). [-if]
    #[arg(long = "input-format")]
    pub input_format: Option<String>,
    /// The checksum type used to validate the input image: md5, sha1, sha224, sha256,
    /// sha384, sha512, blake2b, blake2s, sha3_224, sha3_256, sha3_384, sha3_512. [-ict]
    #[arg(long = "input-checksum-type")]
    pub input_checksum_type: Option<String>,
    /// The expected checksum of the input image (hex, any case). [-ic]
    #[arg(long = "input-checksum")]
    pub input_checksum: Option<String>,
    /// The size of each read while hashing a local input (default 1 MiB). [-icbs]
    #[arg(long = "input-checksum-buffer-size")]
    pub input_checksum_buffer_size: Option<u64>,
    /// Hash only the first N bytes of the input. [-icrb]
    #[arg(long = "input-checksum-read-bytes")]
    pub input_checksum_read_bytes: Option<u64>,
    /// The directory the image is written to. [-od]
    #[arg(long = "output-directory", default_value = DEFAULT_OUTPUT_DIRECTORY)]
    pub output_directory: PathBuf,
    /// The format of the output image: qcow2 (compat 1.1) or raw. [-of]
    #[arg(long = "output-format", default_value = "qcow2")]
    pub output_format: String,
    /// The version of the image (the output is <name>-<version>.<format>).
    #[arg(short = 'V', long = "version")]
    pub version: Option<String>,
    /// Replace the output image if it exists (otherwise it is left as it is).
    #[arg(long)]
    pub overwrite: bool,
    /// Allow a size below the input's virtual size (the data beyond it is lost).
    #[arg(long)]
    pub shrink: bool,
    /// Print verbose output.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct MultipleArgs {
    /// The path to the architecture file that defines the images that should be generated.
    pub architecture_path: PathBuf,
    /// The directory the images are written to. [-od, -iod]
    #[arg(long = "output-directory", default_value = DEFAULT_OUTPUT_DIRECTORY)]
    pub output_directory: PathBuf,
    /// Replace existing images (otherwise they are left as they are).
    #[arg(long)]
    pub overwrite: bool,
    /// How many images are made at once (default: the number of CPUs).
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Print verbose output.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// The image to configure (qcow2 or raw; changed in place).
    #[arg(conflicts_with = "image_input_path")]
    pub image: Option<PathBuf>,
    /// The image to configure (the original's option) [default: generated-images/image.qcow2].
    #[arg(long = "image-input-path", hide = true)]
    pub image_input_path: Option<PathBuf>,
    /// The cloud-init user-data [default: cloud-init-config/user-data].
    #[arg(long = "user-data", visible_alias = "config-user-data-path")]
    pub user_data: Option<PathBuf>,
    /// The cloud-init meta-data [default: cloud-init-config/meta-data if it exists, else an
    /// instance-id and a host name made up].
    #[arg(long = "meta-data", visible_alias = "config-meta-data-path")]
    pub meta_data: Option<PathBuf>,
    /// The cloud-init vendor-data [default: cloud-init-config/vendor-data if it exists].
    #[arg(long = "vendor-data", visible_alias = "config-vendor-data-path")]
    pub vendor_data: Option<PathBuf>,
    /// The cloud-init network-config [default: cloud-init-config/network-config if it exists].
    #[arg(long = "network-config")]
    pub network_config: Option<PathBuf>,
    /// Where the NoCloud seed image is written.
    #[arg(long = "seed-output", visible_alias = "config-seed-output-path", default_value = configure::DEFAULT_SEED)]
    pub seed_output: PathBuf,
    /// kvm, or qemu (TCG: slower, for hosts without a working KVM).
    #[arg(long = "virt-type", default_value = "qemu", value_parser = ["kvm", "qemu"])]
    pub virt_type: String,
    /// The CPU model of the guest (`host` needs --virt-type kvm) [default: the hypervisor's].
    #[arg(long = "cpu-model", visible_alias = "qemu-cpu-model")]
    pub cpu_model: Option<String>,
    /// The libvirt URI [default: $LIBVIRT_DEFAULT_URI, else libvirt's choice: uri_default in
    /// libvirt.conf, else qemu:///system for root and qemu:///session for others].
    #[arg(short = 'c', long = "connect")]
    pub connect: Option<String>,
    /// The libvirt network the guest is attached to (for packages the user-data installs).
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Memory of the guest, MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory: u64,
    /// Virtual CPUs of the guest.
    #[arg(long, default_value_t = 2)]
    pub vcpus: u64,
    /// Seconds cloud-init may take, counted from the guest's start.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// The name of the temporary libvirt domain [default: gen-vm-image-<image>-<pid>].
    #[arg(long = "domain-name")]
    pub domain_name: Option<String>,
    /// Where the guest's serial console is logged [default: next to the seed,
    /// <image>-console.log].
    #[arg(long = "console-log")]
    pub console_log: Option<PathBuf>,
    /// Print verbose output.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// The original's multi-letter single-dash options, and their long forms.
const LEGACY: [(&str, &str); 8] = [
    ("-if", "--input-format"),
    ("-ict", "--input-checksum-type"),
    ("-ic", "--input-checksum"),
    ("-icbs", "--input-checksum-buffer-size"),
    ("-icrb", "--input-checksum-read-bytes"),
    ("-od", "--output-directory"),
    ("-iod", "--output-directory"),
    ("-of", "--output-format"),
];

/// Rewrite `-ict sha256` / `-ict=sha256` (and the other multi-letter options) into long
/// options; everything after `--` is left alone.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args = args.into_iter();
    let mut out: Vec<OsString> = args.next().into_iter().collect();
    let mut args = args.peekable();
    if legacy::is_legacy(args.peek()) {
        out.push(legacy::SUBCOMMAND.into());
    }
    let mut rest = false;
    for a in args {
        if rest {
            out.push(a);
            continue;
        }
        if a == "--" {
            rest = true;
            out.push(a);
            continue;
        }
        let replaced = a.to_str().and_then(|s| {
            let (flag, value) = match s.split_once('=') {
                Some((f, v)) => (f, Some(v)),
                None => (s, None),
            };
            LEGACY
                .iter()
                .find(|(short, _)| *short == flag)
                .map(|(_, long)| match value {
                    Some(v) => OsString::from(format!("{long}={v}")),
                    None => OsString::from(*long),
                })
        });
        out.push(replaced.unwrap_or(a));
    }
    out
}

/// Run a parsed command line; the document says how it went.
pub fn run(cli: Cli, env: EnvVars) -> Document {
    let cancel = Cancel::new();
    let runner = Runner::default();
    let progress = std::io::stderr().is_terminal();
    let gen_env = Env {
        runner: &runner,
        cancel: &cancel,
        progress,
    };
    match cli.command {
        Command::Single(a) => {
            let mut verbose = Verbose::new(a.verbose);
            let req = ImageRequest {
                name: a.name,
                version: a.version,
                size: a.size,
                format: a.output_format,
                input: a.input,
                input_format: a.input_format,
                checksum_type: a.input_checksum_type,
                checksum: a.input_checksum,
                buffer_size: a.input_checksum_buffer_size,
                read_bytes: a.input_checksum_read_bytes,
                output_directory: a.output_directory,
                overwrite: a.overwrite,
                shrink: a.shrink,
            };
            let result = generate::generate(&req, &gen_env, &mut verbose);
            Document::from_result(result, verbose.messages)
        }
        Command::Multiple(a) => {
            let mut verbose = Verbose::new(a.verbose);
            let jobs = a.jobs.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            });
            let opts = MultipleOptions {
                architecture: a.architecture_path,
                output_directory: a.output_directory,
                overwrite: a.overwrite,
                jobs,
            };
            let result = if jobs == 0 {
                Err(Failure::new(
                    ReturnCode::InvalidAttribute,
                    "--jobs must be at least 1",
                ))
            } else {
                multiple::run(&opts, &gen_env, &mut verbose)
            };
            Document::from_result(result, verbose.messages)
        }
        Command::Configure(a) => {
            let mut verbose = Verbose::new(a.verbose);
            // libvirt reads LIBVIRT_DEFAULT_URI itself; it is read here too so that a test's
            // environment (not the process's) is the one that counts.
            let uri = a.connect.or_else(|| env("LIBVIRT_DEFAULT_URI"));
            let opts = ConfigureOptions {
                image: a
                    .image
                    .or(a.image_input_path)
                    .unwrap_or_else(|| PathBuf::from(configure::DEFAULT_IMAGE)),
                user_data: a.user_data,
                meta_data: a.meta_data,
                vendor_data: a.vendor_data,
                network_config: a.network_config,
                seed_output: a.seed_output,
                virt_type: a.virt_type,
                uri,
                network: a.network,
                memory_mib: a.memory,
                vcpus: a.vcpus,
                cpu_model: a.cpu_model,
                timeout: Duration::from_secs(a.timeout),
                domain_name: a.domain_name,
                console_log: a.console_log,
            };
            let result = configure::run(&opts, &cancel, &mut verbose);
            Document::from_result(result, verbose.messages)
        }
        Command::Legacy(a) => {
            let mut verbose = Verbose::new(a.verbose);
            let result = legacy::run(&a, &gen_env, &mut verbose);
            Document::from_result(result, verbose.messages)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn original_multi_letter_options_still_work() {
        let args = normalize_args(os(&[
            "gen-vm-image",
            "single",
            "n",
            "1G",
            "-i",
            "x.qcow2",
            "-if",
            "qcow2",
            "-ict",
            "sha256",
            "-ic=AB",
            "-icbs",
            "4096",
            "-icrb",
            "10",
            "-od",
            "out",
            "-of",
            "raw",
            "-V",
            "9.10",
            "--",
            "-od",
        ]));
        assert_eq!(
            args,
            os(&[
                "gen-vm-image",
                "single",
                "n",
                "1G",
                "-i",
                "x.qcow2",
                "--input-format",
                "qcow2",
                "--input-checksum-type",
                "sha256",
                "--input-checksum=AB",
                "--input-checksum-buffer-size",
                "4096",
                "--input-checksum-read-bytes",
                "10",
                "--output-directory",
                "out",
                "--output-format",
                "raw",
                "-V",
                "9.10",
                "--",
                "-od",
            ])
        );
        let cli = Cli::try_parse_from(&args[..args.len() - 2]).unwrap();
        let Command::Single(s) = cli.command else {
            panic!("not single")
        };
        assert_eq!(s.version.as_deref(), Some("9.10"));
        assert_eq!(s.input_checksum.as_deref(), Some("AB"));
        assert_eq!(s.output_format, "raw");
        assert_eq!(s.output_directory, PathBuf::from("out"));
    }

    #[test]
    fn defaults_are_the_originals() {
        let cli = Cli::try_parse_from(["gen-vm-image", "single", "n", "20G"]).unwrap();
        let Command::Single(s) = cli.command else {
            panic!()
        };
        assert_eq!(s.output_directory, PathBuf::from("generated-images"));
        assert_eq!(s.output_format, "qcow2");
        assert!(!s.overwrite && !s.verbose);
        let cli = Cli::try_parse_from(normalize_args(os(&[
            "gen-vm-image",
            "multiple",
            "arch.yml",
            "-iod",
            "d",
            "--overwrite",
            "-v",
        ])))
        .unwrap();
        let Command::Multiple(m) = cli.command else {
            panic!()
        };
        assert!(m.overwrite && m.verbose);
        assert_eq!(m.output_directory, PathBuf::from("d"));
        let cli = Cli::try_parse_from([
            "gen-vm-image",
            "configure",
            "--image-input-path",
            "x.qcow2",
            "--config-user-data-path",
            "u",
        ])
        .unwrap();
        let Command::Configure(c) = cli.command else {
            panic!()
        };
        assert_eq!(c.image_input_path, Some(PathBuf::from("x.qcow2")));
        assert_eq!(c.user_data, Some(PathBuf::from("u")));
        assert_eq!(c.virt_type, "qemu");
        assert_eq!(c.seed_output, PathBuf::from("image-config/seed.img"));
    }
}
