//! The disk from the packed rootfs, in one libguestfs appliance (one boot: ~50 s under
//! TCG): create, partition, format, unpack, install GRUB; then the checks that it boots.

use super::ImageFormat;
use crate::image::cancel::interrupted;
use crate::image::{Error, IoAt, Result};
use crate::runner::Runner;
use std::path::Path;

pub(crate) struct Disk<'a> {
    pub path: &'a Path,
    pub format: ImageFormat,
    /// Bytes; the file is sparse.
    pub size: u64,
}

/// Make `disk` from `tarball`; `work` holds what is downloaded for the checks. Returns
/// the kernel line of grub.cfg (for the build log).
pub(crate) fn make(disk: &Disk, tarball: &Path, work: &Path, runner: &Runner) -> Result<String> {
    let grub_cfg = work.join("grub.cfg");
    let mbr = work.join("mbr");
    let script = script(disk, tarball, &grub_cfg, &mbr)?;
    runner
        .tool("guestfish")
        .arg("--no-progress-bars")
        .input(script.as_bytes())
        .context(format!("making the disk {}", disk.path.display()))
        .cancel(&interrupted)
        .run()?;
    let mbr = std::fs::read(&mbr).at(&mbr)?;
    let cfg = std::fs::read_to_string(&grub_cfg).at(&grub_cfg)?;
    check_boot(&mbr, &cfg).map_err(|why| Error::Invalid(format!("{}: {why}", disk.path.display())))
}

/// The guestfish script. Paths are quoted (they are the only values in it that come from
/// outside this file).
///
/// `sh`/`command` run chrooted into the guest's root with /dev, /proc and /sys bound in.
/// /dev/sda in guestfish's API is always our disk, but the kernel's name for it is not:
/// the appliance's own disk is probed concurrently and sometimes gets sda (grub-install
/// then fails with "ext2 doesn't support embedding ... cross-disk install"). So
/// grub-install gets the kernel's name of the disk holding the mounted root.
pub(crate) fn script(disk: &Disk, tarball: &Path, grub_cfg: &Path, mbr: &Path) -> Result<String> {
    let (out, fmt) = (quote(disk.path)?, disk.format.as_str());
    Ok(format!(
        r#"disk-create {out} {fmt} {size}
add {out} format:{fmt}
run
part-disk /dev/sda mbr
part-set-bootable /dev/sda 1 true
mkfs ext4 /dev/sda1 label:root
mount /dev/sda1 /
tar-in {tarball} / xattrs:true
sh "grub-install --target=i386-pc /dev/$(lsblk -ndo PKNAME $(findmnt -nvo SOURCE /))"
command "update-grub"
download /boot/grub/grub.cfg {grub_cfg}
df-h
umount-all
download-offset /dev/sda {mbr} 0 512
"#,
        size = disk.size,
        tarball = quote(tarball)?,
        grub_cfg = quote(grub_cfg)?,
        mbr = quote(mbr)?,
    ))
}

/// A guestfish double-quoted argument: `\` and `"` escaped. A path that cannot be said
/// on one line of a script (not UTF-8, control characters) is refused.
fn quote(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .filter(|s| !s.chars().any(char::is_control))
        .ok_or_else(|| {
            Error::Recipe(format!(
                "{}: a path with control characters or not in UTF-8 cannot be given to guestfish",
                path.display()
            ))
        })?;
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// GRUB must be in the disk's MBR; update-grub ran in the appliance, where the disk is
/// /dev/sd?, so the guest must find its root by UUID or label (it is /dev/vda there);
/// and the kernel must log to the serial console. Returns the kernel line.
pub(crate) fn check_boot(mbr: &[u8], grub_cfg: &str) -> std::result::Result<String, String> {
    if !mbr.windows(4).any(|w| w == b"GRUB") {
        return Err("no GRUB boot code in the disk's MBR".into());
    }
    let linux: Vec<&str> = grub_cfg
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("linux ") || l.starts_with("linux\t"))
        .collect();
    let first = linux
        .first()
        .ok_or("grub.cfg has no kernel ('linux') line")?;
    if !linux
        .iter()
        .any(|l| l.contains("root=UUID=") || l.contains("root=LABEL="))
    {
        return Err("grub.cfg does not name the root by UUID or label".into());
    }
    if !linux.iter().any(|l| l.contains("console=ttyS0")) {
        return Err("grub.cfg kernel command line lacks console=ttyS0".into());
    }
    Ok(first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "menuentry 'Debian' {\n\tlinux\t/boot/vmlinuz-6.1.0-37-cloud-amd64 root=UUID=1234 ro console=tty0 console=ttyS0,115200n8\n}\n";

    #[test]
    fn a_bootable_disk_passes() {
        let mut mbr = vec![0u8; 512];
        mbr[0x180..0x184].copy_from_slice(b"GRUB");
        let line = check_boot(&mbr, CFG).unwrap();
        assert!(line.starts_with("linux\t/boot/vmlinuz"), "{line}");
    }

    #[test]
    fn each_boot_problem_is_named() {
        let mut mbr = vec![0u8; 512];
        assert!(check_boot(&mbr, CFG).unwrap_err().contains("MBR"));
        mbr[..4].copy_from_slice(b"GRUB");
        let by_device = CFG.replace("root=UUID=1234", "root=/dev/sda1");
        assert!(check_boot(&mbr, &by_device)
            .unwrap_err()
            .contains("UUID or label"));
        let no_serial = CFG.replace(" console=ttyS0,115200n8", "");
        assert!(check_boot(&mbr, &no_serial)
            .unwrap_err()
            .contains("console=ttyS0"));
        assert!(check_boot(&mbr, "").unwrap_err().contains("no kernel"));
    }

    #[test]
    fn the_script_creates_the_disk_in_its_format_and_quotes_paths() {
        let disk = Disk {
            path: Path::new("/c/my \"disk\".qcow2"),
            format: ImageFormat::Qcow2,
            size: 2 << 30,
        };
        let s = script(
            &disk,
            Path::new("/w/rootfs.tar"),
            Path::new("/w/grub.cfg"),
            Path::new("/w/mbr"),
        )
        .unwrap();
        let first: Vec<&str> = s.lines().take(3).collect();
        assert_eq!(
            first,
            [
                r#"disk-create "/c/my \"disk\".qcow2" qcow2 2147483648"#,
                r#"add "/c/my \"disk\".qcow2" format:qcow2"#,
                "run"
            ]
        );
        assert!(s.contains("tar-in \"/w/rootfs.tar\" / xattrs:true\n"));
        assert!(s.contains("download-offset /dev/sda \"/w/mbr\" 0 512\n"));
        let bad = Disk {
            path: Path::new("/c/a\nrun"),
            ..disk
        };
        assert!(script(&bad, Path::new("/t"), Path::new("/g"), Path::new("/m")).is_err());
    }
}
