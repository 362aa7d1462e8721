//! Turning a fresh debootstrap tree into a VM image's root: network, name resolution,
//! apt sources, fstab and GRUB for a serial console, no identity (machine-id, SSH host
//! keys) so every clone makes its own, units enabled offline, and caches removed.

use super::Recipe;
use crate::image::{IoAt, Result};
use crate::runner::{argv, Runner};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// DHCP on every ethernet interface, whatever the naming scheme. The client identifier is
/// the MAC, not the machine-id, so clones that still share the template's machine-id do
/// not end up with the same address. The host name is the identity agent's: with the
/// DHCP server's, networkd would ask systemd-hostnamed to set it, whose D-Bus activation
/// took 2 s of guest CPU under TCG (seen in a warm clone's journal), just while virt-up's
/// SSH probe, host-key check and the user's first login run (and it is refused anyway).
const NETWORK: &str = "[Match]
Name=en* eth*

[Network]
DHCP=yes

[DHCPv4]
ClientIdentifier=mac
UseHostname=no
";

const HOSTS: &str = "127.0.0.1\tlocalhost
::1\t\tlocalhost ip6-localhost ip6-loopback
ff02::1\t\tip6-allnodes
ff02::2\t\tip6-allrouters
";

/// Kernel and GRUB on the serial port: `virsh console` and the domain's serial log show
/// the boot, no menu delay. "quiet": under TCG every line the kernel and systemd print on
/// the 115200-baud console is boot time (~40 KB of kernel messages); errors, warnings,
/// failed units and an emergency shell still reach the console, and the whole kernel log
/// stays in `journalctl -k`.
const GRUB_DEFAULTS: &str = r#"GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"
GRUB_DISABLE_OS_PROBER=true
"#;

/// Only Ed25519 and ECDSA: `ssh-keygen -A` also makes an RSA-3072 key, which takes ~12 s
/// of first boot under TCG and delays sshd by as much.
const SSHD_HOSTKEYS: &str = "HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
";

/// Debian does not regenerate missing host keys (virt-sysprep deletes them too), so a
/// oneshot unit makes them before sshd starts.
const SSH_HOSTKEYS_UNIT: &str = r#"[Unit]
Description=Generate missing SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStartPre=/bin/rm -f /etc/ssh/ssh_host_ecdsa_key /etc/ssh/ssh_host_ecdsa_key.pub
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key

[Install]
WantedBy=multi-user.target
"#;

/// Debian's qemu-guest-agent unit has an empty [Install]: udev starts it when the agent's
/// virtio port appears. Enable it the same way (wanted by that device): WantedBy=
/// multi-user.target would leave a start job waiting 90 s for the device in domains
/// without an agent channel, holding `is-system-running` at "starting".
const GUEST_AGENT_INSTALL: &str = r"[Install]
WantedBy=dev-virtio\x2dports-org.qemu.guest_agent.0.device
";

const ENABLE: &[&str] = &[
    "systemd-networkd.service",
    "ssh.service",
    "ssh-hostkeys.service",
    "qemu-guest-agent.service",
    "serial-getty@ttyS0.service",
];

/// e2scrub only checks LVM-backed ext4 (there is none); it costs CPU during boot.
const DISABLE: &[&str] = &["e2scrub_reap.service", "e2scrub_all.timer"];

/// Units a short-lived VM does not need, masked because under TCG each costs the booting
/// guest CPU (2-3 s apiece on 2 vCPUs): debug/tracing file systems, huge pages, binfmt
/// (no foreign binaries), pstore (no crash store), the DRM module (no display driver is
/// needed on a serial console). The apt/dpkg timers would start `apt-get update` minutes
/// after boot (Persistent=: they never ran) and hold apt's lock against the user's own
/// playbooks; fstrim has nothing to do on a thin qcow2 clone.
const MASK: &[&str] = &[
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "dev-hugepages.mount",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-pstore.service",
    "modprobe@drm.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "fstrim.timer",
];

/// Debian's ssh.service first runs `sshd -t` (a whole second sshd start, ~1-2 s under
/// TCG) to test a configuration this image ships and virt-up does not change.
const SSH_NO_CONFIG_TEST: &str = "[Service]\nExecStartPre=\n";

pub(crate) fn configure(root: &Path, recipe: &Recipe, runner: &Runner) -> Result<()> {
    configure_network(root, recipe)?;
    configure_boot(root)?;
    configure_identity(root)?;
    enable_units(root, runner)?;
    shrink(root, runner)
}

/// Write a file inside the rootfs, creating its directory.
fn put(root: &Path, rel: &str, text: &str) -> Result<()> {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    std::fs::write(&path, text).at(&path)
}

fn remove(root: &Path, rel: &str) -> Result<()> {
    Ok(crate::fsutil::remove_if_exists(&root.join(rel))?)
}

fn configure_network(root: &Path, recipe: &Recipe) -> Result<()> {
    put(root, "etc/systemd/network/80-dhcp.network", NETWORK)?;
    // debootstrap copied the host's resolv.conf and hostname. Bookworm's systemd has no
    // resolved in the base package, so point at libvirt's default-network dnsmasq.
    remove(root, "etc/resolv.conf")?;
    put(root, "etc/resolv.conf", "nameserver 192.168.122.1\n")?;
    put(root, "etc/hostname", "localhost\n")?;
    put(root, "etc/hosts", HOSTS)?;
    put(root, "etc/apt/sources.list", &apt_sources(recipe))
}

/// The image's apt sources: the build's mirror, and Debian's security archive.
pub(crate) fn apt_sources(recipe: &Recipe) -> String {
    let (m, s) = (&recipe.mirror, &recipe.suite);
    format!(
        "deb {m} {s} main\ndeb {m} {s}-updates main\ndeb http://deb.debian.org/debian-security {s}-security main\n"
    )
}

fn configure_boot(root: &Path) -> Result<()> {
    // Pass 0: no fsck of / at every boot (~3 s on the boot's critical path under TCG);
    // the ext4 journal makes a crashed short-lived VM consistent again on mount.
    put(
        root,
        "etc/fstab",
        "LABEL=root / ext4 errors=remount-ro 0 0\n",
    )?;
    put(root, "etc/default/grub", GRUB_DEFAULTS)
}

fn configure_identity(root: &Path) -> Result<()> {
    // Empty (not missing) machine-id: systemd generates a fresh one on first boot.
    put(root, "etc/machine-id", "")?;
    remove(root, "var/lib/dbus/machine-id")?;
    let dbus = root.join("var/lib/dbus");
    std::fs::create_dir_all(&dbus).at(&dbus)?;
    let link = dbus.join("machine-id");
    std::os::unix::fs::symlink("/etc/machine-id", &link).at(&link)?;
    remove_host_keys(root)?;
    put(
        root,
        "etc/ssh/sshd_config.d/10-hostkeys.conf",
        SSHD_HOSTKEYS,
    )?;
    put(
        root,
        "etc/systemd/system/ssh-hostkeys.service",
        SSH_HOSTKEYS_UNIT,
    )?;
    empty_random_seed(root)
}

/// Every instance needs its own host keys.
fn remove_host_keys(root: &Path) -> Result<()> {
    let dir = root.join("etc/ssh");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in entries {
        let path = e.at(&dir)?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("ssh_host_") {
            crate::fsutil::remove_if_exists(&path)?;
        }
    }
    Ok(())
}

/// An empty seed file: virt-builder and virt-sysprep fill an existing one with fresh
/// random data per instance (and warn if there is none); systemd refreshes it later.
fn empty_random_seed(root: &Path) -> Result<()> {
    let path = root.join("var/lib/systemd/random-seed");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .at(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).at(&path)
}

/// Offline, inside the chroot: systemctl only creates symlinks and starts nothing.
fn enable_units(root: &Path, runner: &Runner) -> Result<()> {
    put(
        root,
        "etc/systemd/system/qemu-guest-agent.service.d/install.conf",
        GUEST_AGENT_INSTALL,
    )?;
    put(
        root,
        "etc/systemd/system/ssh.service.d/10-no-config-test.conf",
        SSH_NO_CONFIG_TEST,
    )?;
    chroot(root, runner, &["systemctl", "enable", "--quiet"], ENABLE)?;
    chroot(root, runner, &["systemctl", "disable", "--quiet"], DISABLE)?;
    chroot(root, runner, &["systemctl", "mask", "--quiet"], MASK)
}

fn chroot(root: &Path, runner: &Runner, command: &[&str], args: &[&str]) -> Result<()> {
    let mut a = vec![root.as_os_str().to_owned()];
    a.extend(argv(command.iter().chain(args)));
    runner
        .tool("chroot")
        .args(&a)
        .context(format!("{} in the rootfs", command.join(" ")))
        .run()?;
    Ok(())
}

/// What an image does not need: apt's downloaded .debs and lists, logs, temporary files.
fn shrink(root: &Path, runner: &Runner) -> Result<()> {
    chroot(root, runner, &["apt-get", "clean"], &[])?;
    remove_caches(root)
}

fn remove_caches(root: &Path) -> Result<()> {
    for dir in ["var/lib/apt/lists", "var/log/apt", "tmp", "var/tmp"] {
        empty_dir(&root.join(dir), |_| true)?;
    }
    empty_dir(&root.join("var/cache/apt"), |n| n.ends_with(".bin"))?;
    empty_dir(&root.join("var/log"), |n| n.ends_with(".log"))
}

/// Remove the entries of `dir` whose name `matches` (directories with their contents).
fn empty_dir(dir: &Path, matches: impl Fn(&str) -> bool) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let e = e.at(dir)?;
        if !matches(&e.file_name().to_string_lossy()) {
            continue;
        }
        let path = e.path();
        if e.file_type().at(&path)?.is_dir() {
            super::workdir::remove_tree(&path)?;
        } else {
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::ImageFormat;
    use super::*;

    fn recipe() -> Recipe {
        Recipe {
            suite: "bookworm".into(),
            mirror: "http://mirror.lan/debian".into(),
            packages: vec![],
            size: 2 << 30,
            format: ImageFormat::Qcow2,
        }
    }

    /// A tree shaped like debootstrap's, with the host's leftovers in it.
    fn fake_rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for (rel, text) in [
            ("etc/hostname", "buildhost\n"),
            ("etc/ssh/ssh_host_rsa_key", "secret"),
            ("etc/ssh/ssh_host_rsa_key.pub", "public"),
            ("etc/ssh/sshd_config", "# kept\n"),
            ("var/lib/dbus/machine-id", "0123\n"),
            ("var/lib/apt/lists/deb.debian.org_dists", "x"),
            ("var/lib/apt/lists/partial/y", "y"),
            ("var/cache/apt/pkgcache.bin", "x"),
            ("var/cache/apt/archives/keep", ""),
            ("var/log/dpkg.log", "x"),
            ("var/log/journal/keep", ""),
            ("tmp/x", "x"),
        ] {
            put(r, rel, text).unwrap();
        }
        std::os::unix::fs::symlink("/run/host-resolv.conf", r.join("etc/resolv.conf")).unwrap();
        d
    }

    fn read(r: &Path, rel: &str) -> String {
        std::fs::read_to_string(r.join(rel)).unwrap()
    }

    #[test]
    fn network_names_and_sources_are_the_images_own() {
        let d = fake_rootfs();
        let r = d.path();
        configure_network(r, &recipe()).unwrap();
        assert_eq!(read(r, "etc/hostname"), "localhost\n");
        assert_eq!(read(r, "etc/resolv.conf"), "nameserver 192.168.122.1\n");
        assert!(!r.join("etc/resolv.conf").is_symlink());
        let network = read(r, "etc/systemd/network/80-dhcp.network");
        assert!(network.contains("ClientIdentifier=mac"));
        assert!(
            network.contains("UseHostname=no"),
            "the identity agent's host name"
        );
        assert_eq!(
            read(r, "etc/apt/sources.list").lines().next(),
            Some("deb http://mirror.lan/debian bookworm main")
        );
    }

    #[test]
    fn boot_is_on_the_serial_console_and_root_by_label() {
        let d = fake_rootfs();
        configure_boot(d.path()).unwrap();
        assert!(read(d.path(), "etc/fstab").starts_with("LABEL=root / ext4"));
        assert!(read(d.path(), "etc/default/grub").contains("console=ttyS0,115200n8"));
    }

    #[test]
    fn the_image_has_no_identity() {
        let d = fake_rootfs();
        let r = d.path();
        configure_identity(r).unwrap();
        assert_eq!(read(r, "etc/machine-id"), "");
        assert_eq!(
            std::fs::read_link(r.join("var/lib/dbus/machine-id")).unwrap(),
            Path::new("/etc/machine-id")
        );
        assert!(!r.join("etc/ssh/ssh_host_rsa_key").exists());
        assert!(!r.join("etc/ssh/ssh_host_rsa_key.pub").exists());
        assert!(r.join("etc/ssh/sshd_config").exists());
        assert!(read(r, "etc/systemd/system/ssh-hostkeys.service").contains("Before=ssh.service"));
        let seed = std::fs::metadata(r.join("var/lib/systemd/random-seed")).unwrap();
        assert_eq!((seed.len(), seed.permissions().mode() & 0o777), (0, 0o600));
    }

    #[test]
    fn shrinking_removes_caches_and_logs_only() {
        let d = fake_rootfs();
        let r = d.path();
        remove_caches(r).unwrap();
        assert_eq!(
            std::fs::read_dir(r.join("var/lib/apt/lists"))
                .unwrap()
                .count(),
            0
        );
        assert!(!r.join("var/cache/apt/pkgcache.bin").exists());
        assert!(r.join("var/cache/apt/archives/keep").exists());
        assert!(!r.join("var/log/dpkg.log").exists());
        assert!(r.join("var/log/journal/keep").exists());
        assert!(r.join("tmp").is_dir() && !r.join("tmp/x").exists());
    }
}
