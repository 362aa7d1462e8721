//! The older gen-vm-image command line, from before its `single`/`multiple` commands:
//!
//! ```text
//! gen-vm-image [--architecture-path ARCH] [--image-output-path FILE]
//!              [--generated-image-owner USER] [--generate-gocd-config]
//!              [--gocd-config-name NAME] [--gocd-build-branch BRANCH]
//! ```
//!
//! It built the image its architecture file defines into one file. Scripts written for it
//! keep working: the image is built into exactly that file, and chowned to the owner when
//! one is given. The GoCD options generated a CI pipeline file, which is not this tool's
//! job; they are refused, saying so (argparse's exit code for a bad option, 2).

use super::architecture;
use super::generate::{self, Env};
use super::multiple;
use super::{Failure, ReturnCode, Verbose};
use clap::Args;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The hidden subcommand the older command line is parsed as.
pub const SUBCOMMAND: &str = "legacy-build";

/// The older top-level options: a command line starting with one of them is the older form.
const OPTIONS: [&str; 6] = [
    "--architecture-path",
    "--image-output-path",
    "--generated-image-owner",
    "--generate-gocd-config",
    "--gocd-config-name",
    "--gocd-build-branch",
];

#[derive(Debug, Args)]
pub struct LegacyArgs {
    /// The architecture file that defines the image.
    #[arg(long = "architecture-path", default_value = "architecture.yml")]
    pub architecture_path: PathBuf,
    /// The file the built image is written to.
    #[arg(
        long = "image-output-path",
        default_value = "generated-images/image.qcow2"
    )]
    pub image_output_path: PathBuf,
    /// The user the built image is chowned to.
    #[arg(long = "generated-image-owner")]
    pub generated_image_owner: Option<String>,
    #[arg(long = "generate-gocd-config")]
    pub generate_gocd_config: bool,
    #[arg(long = "gocd-config-name")]
    pub gocd_config_name: Option<String>,
    #[arg(long = "gocd-build-branch")]
    pub gocd_build_branch: Option<String>,
    /// Print verbose output.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// True if the command line (without the program name) is in the older form.
pub fn is_legacy(first: Option<&OsString>) -> bool {
    first
        .and_then(|a| a.to_str())
        .map(|a| a.split_once('=').map_or(a, |(flag, _)| flag))
        .is_some_and(|flag| OPTIONS.contains(&flag))
}

/// Why a GoCD option is refused, for the options that were given.
fn refused(args: &LegacyArgs) -> Option<Failure> {
    let given: Vec<&str> = [
        (args.generate_gocd_config, "--generate-gocd-config"),
        (args.gocd_config_name.is_some(), "--gocd-config-name"),
        (args.gocd_build_branch.is_some(), "--gocd-build-branch"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    (!given.is_empty()).then(|| {
        Failure::new(
            ReturnCode::Load,
            format!(
                "{} not supported: generating a GoCD pipeline is not part of gen-vm-image; \
                 have your pipeline run 'gen-vm-image multiple ARCHITECTURE_PATH' (no replacement option)",
                given.join(", ")
            ),
        )
    })
}

/// Build the one image of the architecture file into `--image-output-path`.
pub fn run(args: &LegacyArgs, env: &Env, verbose: &mut Verbose) -> Result<String, Failure> {
    if let Some(failure) = refused(args) {
        return Err(failure);
    }
    // Looked up before any work: an unknown user is a mistake to report first.
    let owner = args
        .generated_image_owner
        .as_deref()
        .map(user_ids)
        .transpose()?;
    let arch = architecture::load(&args.architecture_path)?;
    for w in &arch.warnings {
        verbose.warn(w.as_str());
    }
    let [spec] = arch.images.as_slice() else {
        return Err(Failure::new(
            ReturnCode::InvalidAttribute,
            format!(
                "{} defines {} images; --image-output-path names one file. For several images use \
                 'gen-vm-image multiple {} --output-directory DIR'",
                args.architecture_path.display(),
                arch.images.len(),
                args.architecture_path.display()
            ),
        ));
    };
    let dir = args.image_output_path.parent().unwrap_or(Path::new(""));
    let mut plan = multiple::request(spec, dir, false)
        .plan()
        .map_err(|f| Failure::new(f.code, format!("image '{}': {}", spec.key, f.message)))?;
    plan.output = args.image_output_path.clone();
    let response = generate::run_plan(&plan, env, verbose)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&plan.output, Some(uid), gid).map_err(|e| {
            Failure::new(
                ReturnCode::Create,
                format!(
                    "cannot give {} to '{}': {e}",
                    plan.output.display(),
                    args.generated_image_owner.as_deref().unwrap_or_default()
                ),
            )
        })?;
    }
    Ok(response)
}

/// The uid and primary gid of a user name (or a numeric uid), from the system's user database.
fn user_ids(user: &str) -> Result<(u32, Option<u32>), Failure> {
    let unknown = || {
        Failure::new(
            ReturnCode::InvalidAttribute,
            format!("--generated-image-owner: no user '{user}' on this system"),
        )
    };
    let name = std::ffi::CString::new(user).map_err(|_| unknown())?;
    let mut entry: libc::passwd = unsafe_zeroed_passwd();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `entry` and `buf` outlive it, and the
    // strings getpwnam_r stores point into `buf`, which we do not read after this block.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() {
        return Ok((entry.pw_uid, Some(entry.pw_gid)));
    }
    // A number is a uid, as chown takes it; its group is left as it is.
    user.parse::<u32>()
        .map(|uid| (uid, None))
        .map_err(|_| unknown())
}

fn unsafe_zeroed_passwd() -> libc::passwd {
    // SAFETY: libc::passwd is plain data (integers and pointers); all-zero is a valid value
    // that getpwnam_r overwrites.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_older_form_is_told_by_its_first_option() {
        let os = |s: &str| Some(OsString::from(s));
        assert!(is_legacy(os("--architecture-path").as_ref()));
        assert!(is_legacy(os("--image-output-path=/x.qcow2").as_ref()));
        assert!(is_legacy(os("--generate-gocd-config").as_ref()));
        assert!(!is_legacy(os("single").as_ref()));
        assert!(!is_legacy(os("--help").as_ref()));
        assert!(!is_legacy(None));
    }

    #[test]
    fn root_and_numeric_owners_resolve_and_strangers_do_not() {
        assert_eq!(user_ids("root").unwrap(), (0, Some(0)));
        assert_eq!(user_ids("4242").unwrap(), (4242, None));
        let err = user_ids("no-such-user-here").unwrap_err();
        assert_eq!(err.code, ReturnCode::InvalidAttribute);
        assert!(
            err.message.contains("no user 'no-such-user-here'"),
            "{}",
            err.message
        );
    }
}
