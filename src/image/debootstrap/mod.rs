//! A bootable Debian disk from Debian packages, with no prebuilt image: how templates are
//! built on hosts that reach a package mirror but not the internet.
//!
//! The recipe (it was scripts/build-base-image.sh; that script now calls this):
//! `debootstrap --variant=minbase` with [`BASE_PACKAGES`] and the user's packages (the
//! .debs kept in a cache across builds), the rootfs configured for a VM ([`rootfs`]),
//! packed with tar (numeric owners, xattrs), then ONE guestfish session that creates the
//! disk, partitions, formats, unpacks and installs GRUB ([`bootdisk`]), and a check that
//! the result can boot.
//!
//! Needs root (debootstrap, chroot). The work tree lives under a work root in the step
//! cache; it is removed on any failure and on Ctrl-C, after unmounting whatever
//! debootstrap left mounted in it, without ever crossing into another file system
//! ([`workdir`]).

// unsafe: the root check (libc::geteuid); each block says why it is sound.
#![allow(unsafe_code)]

mod apt_sources;
mod bootdisk;
mod rootfs;
mod workdir;

pub use apt_sources::host_mirror;

use super::{Error, Result};
use crate::image::cancel::{interrupted, InterruptScope};
use crate::runner::{argv, Runner};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Part of every cache key of a debootstrap import. Bump it whenever the recipe changes
/// (packages, files written, guestfish script): old layers then miss instead of standing
/// in for a disk this code would no longer make.
pub(crate) const RECIPE_VERSION: &str = "virt-up-debootstrap-v2";

pub(crate) const DEFAULT_SUITE: &str = "bookworm";
pub(crate) const DEFAULT_SIZE: &str = "2G";

/// Where the host's apt configuration is (for the default mirror).
pub const HOST_APT_DIR: &str = "/etc/apt";

/// What every image gets: a small kernel with virtio and serial, GRUB for BIOS, systemd,
/// SSH, the guest agent, and what virt-up's first-boot agent and ansible need.
pub(crate) const BASE_PACKAGES: &[&str] = &[
    "linux-image-cloud-amd64",
    "grub-pc",
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "qemu-guest-agent",
    "sudo",
    "iproute2",
    "kmod",
    "initramfs-tools",
    "python3",
    "ca-certificates",
];

/// The rootfs alone is about 0.6 GiB.
const MIN_SIZE: u64 = 1 << 30;

/// The disk's format: qemu-img's (qcow2 or raw).
pub(crate) use super::qemu_img::ImageFormat;

/// Everything a debootstrap disk depends on, validated, with the mirror resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub suite: String,
    /// An http(s):// or file:/// URL, without a trailing slash.
    pub mirror: String,
    /// The user's packages (installed with [`BASE_PACKAGES`]).
    pub packages: Vec<String>,
    /// Bytes.
    pub size: u64,
    pub format: ImageFormat,
}

impl Recipe {
    /// Validate the arguments; without a mirror, use the one the host's apt uses for
    /// `suite` (read from `apt_dir`).
    pub(crate) fn new(
        suite: &str,
        mirror: Option<&str>,
        packages: &[String],
        size: &str,
        format: ImageFormat,
        apt_dir: &Path,
    ) -> Result<Recipe> {
        check_suite(suite).map_err(Error::Recipe)?;
        for p in packages {
            check_package(p).map_err(Error::Recipe)?;
        }
        let size = check_size(size).map_err(Error::Recipe)?;
        let mirror = match mirror {
            Some(m) => m.to_string(),
            None => host_mirror(apt_dir, suite).ok_or_else(|| {
                Error::Recipe(format!(
                    "no Debian mirror for '{suite}' in {} (sources.list, sources.list.d); set 'mirror'",
                    apt_dir.display()
                ))
            })?,
        };
        check_mirror(&mirror).map_err(Error::Recipe)?;
        Ok(Recipe {
            suite: suite.to_string(),
            mirror: mirror.trim_end_matches('/').to_string(),
            packages: packages.to_vec(),
            size,
            format,
        })
    }

    /// The base packages and the user's, each once, for debootstrap's --include.
    pub(crate) fn all_packages(&self) -> Vec<&str> {
        let mut all: Vec<&str> = BASE_PACKAGES.to_vec();
        for p in &self.packages {
            if !all.contains(&p.as_str()) {
                all.push(p);
            }
        }
        all
    }

    /// What a cache key must cover: the recipe's version and every resolved input.
    pub(crate) fn key(&self) -> serde_json::Value {
        serde_json::json!({
            "recipe": RECIPE_VERSION,
            "base_packages": BASE_PACKAGES,
            "suite": self.suite,
            "mirror": self.mirror,
            "packages": self.packages,
            "size": self.size,
            "format": self.format.as_str(),
        })
    }
}

/// A suite (codename) as debootstrap knows them: `bookworm`, `stable`, `trixie`.
pub(crate) fn check_suite(s: &str) -> std::result::Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    ok.then_some(()).ok_or_else(|| {
        format!(
            "'{s}' is not a suite name (lower-case letters, digits, '.', '_', '-'; e.g. bookworm)"
        )
    })
}

/// A Debian package name (policy 5.6.1): lower-case letters, digits, `+ - .`, at least
/// two characters, starting with a letter or digit.
pub(crate) fn check_package(s: &str) -> std::result::Result<(), String> {
    let ok = (2..=128).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    ok.then_some(()).ok_or_else(|| {
        format!("'{s}' is not a Debian package name (lower-case letters, digits, '+', '-', '.')")
    })
}

/// A mirror URL: http://host/..., https://host/... or file:///path. It is written into
/// the image's sources.list, so nothing that could split or quote a line.
pub(crate) fn check_mirror(m: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("mirror '{m}' {why}"));
    if m.chars()
        .any(|c| c.is_whitespace() || c.is_control() || "\"'`\\$;<>|&{}[]^#".contains(c))
    {
        return bad("contains spaces, quotes or shell characters");
    }
    let host_then_path = |rest: &str| !rest.split('/').next().unwrap_or("").is_empty();
    let ok = match m.split_once("://") {
        Some(("http" | "https", rest)) => host_then_path(rest),
        Some(("file", rest)) => rest.starts_with('/') && rest.len() > 1,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        bad("is not an http://, https:// or file:/// URL (e.g. http://deb.debian.org/debian)")
    }
}

/// A disk size (qemu-img's syntax) big enough for the rootfs; bytes.
pub(crate) fn check_size(s: &str) -> std::result::Result<u64, String> {
    let size = crate::size::parse(s).map_err(|e| e.to_string())?;
    if size < MIN_SIZE {
        return Err(format!(
            "size '{s}' is too small: the root file system alone takes about 0.6 GiB (at least 1G)"
        ));
    }
    Ok(size)
}

/// Where a build keeps things: the .deb cache (kept across builds and recipe changes, so
/// a rebuild downloads nothing) and the root under which work trees are made.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    pub debs: PathBuf,
    pub work_root: PathBuf,
}

impl Dirs {
    /// The layout under a step cache directory.
    pub(crate) fn under(cache: &Path) -> Dirs {
        Dirs {
            debs: cache.join("debootstrap-debs"),
            work_root: cache.join("debootstrap-work"),
        }
    }
}

/// Needs root: debootstrap creates device nodes and chown()s, chroot needs CAP_SYS_CHROOT.
fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Recipe(
            "the debootstrap image source needs root (debootstrap and chroot): run as root".into(),
        ));
    }
    Ok(())
}

/// Make the disk `output` (which must not exist) from `recipe`. `progress` gets one line
/// per phase, with its duration. On any failure and on Ctrl-C, nothing is left: neither
/// `output` nor the work tree.
pub(crate) fn build(
    recipe: &Recipe,
    output: &Path,
    dirs: &Dirs,
    runner: &Runner,
    progress: &dyn Fn(&str),
) -> Result<()> {
    require_root()?;
    let _signals = InterruptScope::enter();
    let work = workdir::WorkDir::create(&dirs.work_root)?;
    let result = build_in(recipe, output, dirs, &work, runner, progress);
    if result.is_err() {
        let _ = crate::fsutil::remove_if_exists(output);
    }
    let cleaned = work.remove();
    let result = result.and(cleaned);
    if result.is_ok() && interrupted() {
        // A Ctrl-C after the last cancellable step: the caller must still stop.
        let _ = crate::fsutil::remove_if_exists(output);
        return Err(Error::Interrupted);
    }
    result
}

fn build_in(
    recipe: &Recipe,
    output: &Path,
    dirs: &Dirs,
    work: &workdir::WorkDir,
    runner: &Runner,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let runner = apt_runner(runner);
    let root = work.path().join("rootfs");
    let tarball = work.path().join("rootfs.tar");
    timed(
        progress,
        &format!("debootstrap {} from {}", recipe.suite, recipe.mirror),
        || run_debootstrap(recipe, &root, &dirs.debs, &runner),
    )?;
    timed(progress, "configure the rootfs", || {
        rootfs::configure(&root, recipe, &runner)
    })?;
    timed(progress, "tar the rootfs", || {
        make_tarball(&root, &tarball, &runner)
    })?;
    work.remove_subtree(&root)?;
    let disk = bootdisk::Disk {
        path: output,
        format: recipe.format,
        size: recipe.size,
    };
    let what = format!(
        "guestfish: {} MiB {} disk, ext4, GRUB",
        recipe.size >> 20,
        recipe.format.as_str()
    );
    let checked = timed(progress, &what, || {
        bootdisk::make(&disk, &tarball, work.path(), &runner)
    })?;
    progress(&format!("grub.cfg: {checked}"));
    Ok(())
}

/// Run one phase, stopping first if a Ctrl-C came in between phases.
fn timed<T>(progress: &dyn Fn(&str), what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    if interrupted() {
        return Err(Error::Interrupted);
    }
    progress(&format!("{what}..."));
    let started = Instant::now();
    let value = f()?;
    progress(&format!(
        "{what}: done in {} s",
        started.elapsed().as_secs()
    ));
    Ok(value)
}

/// Package tools must never ask questions, and need a locale that exists in a minbase.
fn apt_runner(runner: &Runner) -> Runner {
    runner
        .clone()
        .with_env("DEBIAN_FRONTEND", "noninteractive")
        .with_env("LC_ALL", "C.UTF-8")
}

fn run_debootstrap(recipe: &Recipe, root: &Path, debs: &Path, runner: &Runner) -> Result<()> {
    crate::fsutil::private_dir(debs)?;
    let debs = std::path::absolute(debs).map_err(|e| Error::io(debs, e))?;
    // Builds of different recipes share the .deb cache: one debootstrap at a time in it.
    let _lock = crate::lock::Lock::exclusive(&debs.join(".lock"))?;
    let mut args = argv([
        "--variant=minbase".to_string(),
        format!("--include={}", recipe.all_packages().join(",")),
        format!("--cache-dir={}", debs.display()),
        recipe.suite.clone(),
    ]);
    args.push(root.as_os_str().to_owned());
    args.push(recipe.mirror.clone().into());
    // debootstrap writes its progress and its errors ("E: ...") to stdout.
    runner
        .tool("debootstrap")
        .args(&args)
        .stdout_is_log()
        .context(format!(
            "debootstrap {} from {}",
            recipe.suite, recipe.mirror
        ))
        .cancel(&interrupted)
        .run()?;
    Ok(())
}

/// Numeric owners and xattrs (file capabilities) survive the trip into the disk.
fn make_tarball(root: &Path, tarball: &Path, runner: &Runner) -> Result<()> {
    let mut args = argv(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-C"]);
    args.push(root.as_os_str().to_owned());
    args.push("-cf".into());
    args.push(tarball.as_os_str().to_owned());
    args.push(".".into());
    runner
        .tool("tar")
        .args(&args)
        .context("packing the rootfs")
        .cancel(&interrupted)
        .run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(mirror: Option<&str>, apt: &Path) -> Result<Recipe> {
        Recipe::new("bookworm", mirror, &[], "2G", ImageFormat::Qcow2, apt)
    }

    #[test]
    fn names_are_checked_strictly() {
        for ok in ["bookworm", "stable", "bookworm-backports", "sid"] {
            check_suite(ok).unwrap();
        }
        for bad in ["", "Bookworm", "-x", "a b", "x;rm", "../x", "book/worm"] {
            assert!(check_suite(bad).is_err(), "{bad}");
        }
        for ok in ["vim", "g++", "libc6-dev", "python3.11"] {
            check_package(ok).unwrap();
        }
        for bad in [
            "v",
            "Vim",
            "-x",
            "a,b",
            "a b",
            "vim;reboot",
            "pkg=1.0",
            "$(x)",
        ] {
            assert!(check_package(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mirrors_are_http_or_file_urls() {
        for ok in [
            "http://deb.debian.org/debian",
            "https://mirror.example/debian/",
            "file:///srv/mirror",
            "http://10.0.0.1:3142/debian",
        ] {
            check_mirror(ok).unwrap();
        }
        for bad in [
            "deb.debian.org/debian",
            "ftp://x/debian",
            "http:///debian",
            "file://relative",
            "http://x/debian main",
            "http://x/$(reboot)",
            "http://x/\ndeb http://evil/ sid main",
        ] {
            assert!(check_mirror(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_mirror_defaults_to_the_hosts_and_is_normalized() {
        let apt = tempfile::tempdir().unwrap();
        let err = recipe(None, apt.path()).unwrap_err().to_string();
        assert!(err.contains("no Debian mirror for 'bookworm'"), "{err}");
        std::fs::write(
            apt.path().join("sources.list"),
            "deb http://mirror.local/debian/ bookworm main\n",
        )
        .unwrap();
        let r = recipe(None, apt.path()).unwrap();
        assert_eq!(r.mirror, "http://mirror.local/debian");
        let r = recipe(Some("file:///srv/m/"), apt.path()).unwrap();
        assert_eq!(r.mirror, "file:///srv/m");
    }

    #[test]
    fn sizes_have_a_floor_and_packages_are_added_once() {
        let apt = Path::new("/nonexistent");
        let small = Recipe::new(
            "bookworm",
            Some("http://m/d"),
            &[],
            "512M",
            ImageFormat::Raw,
            apt,
        );
        assert!(small.unwrap_err().to_string().contains("too small"));
        let r = Recipe::new(
            "bookworm",
            Some("http://m/d"),
            &["vim".into(), "sudo".into()],
            "1536M",
            ImageFormat::Raw,
            apt,
        )
        .unwrap();
        assert_eq!(r.size, 1536 << 20);
        let all = r.all_packages();
        assert_eq!(all.iter().filter(|p| **p == "sudo").count(), 1);
        assert_eq!(all.last(), Some(&"vim"));
    }

    #[test]
    fn the_key_covers_every_input() {
        let apt = Path::new("/nonexistent");
        let base = recipe(Some("http://m/d"), apt).unwrap();
        let key = base.key();
        assert_eq!(key["recipe"], RECIPE_VERSION);
        let mut other = base.clone();
        other.mirror = "http://n/d".into();
        assert_ne!(key, other.key());
        let mut other = base.clone();
        other.packages.push("vim".into());
        assert_ne!(key, other.key());
        let mut other = base;
        other.format = ImageFormat::Raw;
        assert_ne!(key, other.key());
    }
}
