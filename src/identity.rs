//! An instance's identity (host name, login keys, password hashes, SSH host key) and the two
//! ways it reaches the guest:
//! - `firstboot` (default): a small seed disk (a tar archive) that the agent installed in the
//!   template applies at the guest's first boot, before the network and sshd start. No
//!   libguestfs appliance per instance, so an instance costs little more than its boot.
//! - `sysprep`: virt-sysprep resets and customizes the new disk (slow; for templates whose
//!   OS cannot run the agent).

use crate::config::plan::ImageFormat;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::hypervisor::{Hypervisor, NewVolume, VolumeSource};
use crate::runner::{argv, Runner};
use crate::share::Mount;
use crate::sshkeys::KeyPair;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The guest agent and its unit, installed into every template.
pub const AGENT_SCRIPT: &str = include_str!("../guest/virt-up-identity");
pub const AGENT_UNIT: &str = include_str!("../guest/virt-up-identity.service");
/// Creates the login user in a new template.
pub const TEMPLATE_SETUP: &str = include_str!("../guest/template-setup");
/// Forgets a booted template's identity before it becomes a backing file.
pub const GENERALIZE: &str = include_str!("../guest/generalize");

/// The serial of the seed disk; the agent looks for it in /sys/block/*/serial.
pub const SEED_SERIAL: &str = "virtup-seed";
/// The serial of a warm template's own seed disk: its boot parks (see `virt-up-park.service`).
pub const PARK_SERIAL: &str = "virtup-park";
/// The host name a parked warm template reports through the guest agent.
pub const PARKED_HOSTNAME: &str = "virt-up-parked";
/// Where a parked warm guest takes an instance's seed archive written through the guest
/// agent (in the parked agent's private directory), and the FIFO it waits on, told
/// "agent" once that file is whole (or, by its own watcher, "disk DEVICE").
pub const AGENT_SEED_FILE: &str = "/run/virt-up-seed/seed.tar";
pub const AGENT_SEED_FIFO: &str = "/run/virt-up/seed-ready";
/// The unit that waits, in a warm template's boot, for an instance's seed.
pub const PARK_UNIT: &str = include_str!("../guest/virt-up-park.service");
/// The unit that makes the message of the day's dynamic part once per boot.
pub const MOTD_UNIT: &str = include_str!("../guest/virt-up-motd.service");

/// The digest of the guest files virt-up builds into a template (agent, units, setup).
pub fn agent_digest() -> String {
    let files = [
        AGENT_SCRIPT,
        AGENT_UNIT,
        PARK_UNIT,
        MOTD_UNIT,
        TEMPLATE_SETUP,
        GENERALIZE,
    ];
    crate::digest::sha256_hex(&files.join("\0"))
}

/// One account that gets keys (and optionally a password) in the guest.
pub struct Account {
    pub username: String,
    /// Create the account (with passwordless sudo) if the template does not have it.
    pub create: bool,
    pub authorized_key: String,
    pub password: Option<String>,
}

/// Everything that makes one guest distinct from its template and its siblings.
pub struct Identity {
    pub instance_id: String,
    pub hostname: String,
    pub host_key: KeyPair,
    pub accounts: Vec<Account>,
    /// Written into /etc/machine-id by a warm clone (a cold one's systemd makes its own).
    pub machine_id: String,
    /// Host directories shared through virtiofs: the agent mounts each tag on its guest
    /// directory and puts it in /etc/fstab.
    pub mounts: Vec<Mount>,
    /// A warm clone's NIC: the MAC its restored guest has (its template's parked one) and
    /// the instance's, which the agent gives it before the link comes up.
    pub mac: Option<(String, String)>,
}

/// The /etc/fstab line of a share (its guest directory is plain: see `share`). `nofail`:
/// a guest whose share is gone still boots.
pub fn fstab_line(mount: &Mount) -> String {
    format!("{} {} virtiofs defaults,nofail 0 0", mount.tag, mount.guest)
}

/// A random identifier (128 bits, hex).
pub fn random_id() -> String {
    let b: [u8; 16] = crate::random::bytes();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A SHA-512 crypt(3) hash, so no plain password is ever written for the guest.
pub fn password_hash(password: &str) -> Result<String> {
    use sha_crypt::{PasswordHasher, ShaCrypt};
    // 12 bytes: the 16 salt characters crypt(3) uses, in its base64.
    let salt: [u8; 12] = crate::random::bytes();
    ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Identity {
            what: "cannot hash password",
            message: format!("{e:?}"),
        })
}

fn seed_error(e: std::io::Error) -> Error {
    Error::Identity {
        what: "building seed archive",
        message: e.to_string(),
    }
}

/// Write a seed archive to a local file (0600: it holds a private key).
fn write_archive(path: &Path, archive: &[u8]) -> Result<()> {
    Ok(write_atomic(path, archive, 0o600)?)
}

/// The seed archive (a tar file) of `identity`.
pub fn seed_archive(identity: &Identity) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8], mode: u32| -> Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data).map_err(seed_error)
    };
    add(
        "instance-id",
        format!("{}\n", identity.instance_id).as_bytes(),
        0o600,
    )?;
    add(
        "hostname",
        format!("{}\n", identity.hostname).as_bytes(),
        0o600,
    )?;
    add(
        "ssh_host_ed25519_key",
        identity.host_key.private_openssh.as_bytes(),
        0o600,
    )?;
    add(
        "ssh_host_ed25519_key.pub",
        format!("{}\n", identity.host_key.public_openssh).as_bytes(),
        0o644,
    )?;
    add(
        "machine-id",
        format!("{}\n", identity.machine_id).as_bytes(),
        0o644,
    )?;
    // Mixed into a warm clone's entropy pool, which is the template's until reseeded.
    // As hex text: the agent writes it into /dev/urandom with a shell builtin.
    let random: [u8; 64] = crate::random::bytes();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    add("random", format!("{hex}\n").as_bytes(), 0o600)?;
    if let Some((parked, mac)) = &identity.mac {
        add("mac", format!("{parked} {mac}\n").as_bytes(), 0o644)?;
    }
    if !identity.mounts.is_empty() {
        let lines: String = identity
            .mounts
            .iter()
            .map(|m| format!("{} {}\n", m.tag, m.guest))
            .collect();
        add("mounts", lines.as_bytes(), 0o600)?;
    }
    for account in &identity.accounts {
        let dir = format!("users/{}", account.username);
        add(
            &format!("{dir}/authorized_keys"),
            format!("{}\n", account.authorized_key).as_bytes(),
            0o600,
        )?;
        if account.create {
            add(&format!("{dir}/create"), b"", 0o600)?;
        }
        if let Some(password) = &account.password {
            add(
                &format!("{dir}/password-hash"),
                format!("{}\n", password_hash(password)?).as_bytes(),
                0o600,
            )?;
        }
    }
    tar.into_inner().map_err(seed_error)
}

/// The seed as the raw volume `name` in `pool` (archived into a private temporary file,
/// then created and uploaded through the hypervisor); a stale one is replaced. Returns
/// the volume's path.
pub fn upload_seed(
    hv: &dyn Hypervisor,
    volume: (&str, &Path),
    identity: &Identity,
) -> Result<PathBuf> {
    upload_archive(hv, volume, &seed_archive(identity)?)
}

/// [`upload_seed`] of an archive already made.
pub fn upload_archive(
    hv: &dyn Hypervisor,
    volume: (&str, &Path),
    archive: &[u8],
) -> Result<PathBuf> {
    let (pool, path) = volume;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let files = SecretFiles::new()?;
    let local = files.dir.path().join("seed.tar");
    write_archive(&local, archive)?;
    let capacity = archive.len() as u64;
    hv.delete_volume(path)?;
    let vol = hv.create_volume(&NewVolume {
        pool,
        name,
        format: ImageFormat::Raw,
        source: VolumeSource::Empty { capacity },
    })?;
    if let Err(e) = hv.upload_volume(&vol.path, &local) {
        let _ = hv.delete_volume(&vol.path);
        return Err(e);
    }
    Ok(vol.path)
}

/// Secret files handed to libguestfs tools by path (never on a command line), removed on drop.
pub struct SecretFiles {
    dir: tempfile::TempDir,
}

impl SecretFiles {
    pub fn new() -> Result<SecretFiles> {
        Ok(SecretFiles {
            dir: tempfile::Builder::new()
                .prefix("virt-up-")
                .tempdir()
                .map_err(|e| Error::io(std::env::temp_dir(), e))?,
        })
    }

    /// An empty private subdirectory.
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        crate::fsutil::private_dir(&path)?;
        Ok(path)
    }

    pub fn write(&self, name: &str, contents: &str, mode: u32) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        write_atomic(&path, contents.as_bytes(), mode)?;
        Ok(path)
    }
}

/// Run virt-sysprep on a new instance disk: reset it and apply the identity.
pub fn sysprep(
    runner: &Runner,
    disk: &Path,
    identity: &Identity,
    extra_args: &[String],
) -> Result<()> {
    let secrets = SecretFiles::new()?;
    let mut args: Vec<OsString> = argv([
        "--quiet",
        "-a",
        &disk.display().to_string(),
        "--operations",
        "defaults,-ssh-userdir",
        "--hostname",
        &identity.hostname,
    ]);
    for (i, account) in identity.accounts.iter().enumerate() {
        if account.create {
            // The same script as a template build: the name goes through a file.
            let user = secrets.write(&format!("user{i}"), &account.username, 0o644)?;
            let setup = secrets.write("template-setup", TEMPLATE_SETUP, 0o755)?;
            args.extend(argv([
                "--mkdir".to_string(),
                "/var/lib/virt-up".to_string(),
                "--upload".to_string(),
                format!("{}:/var/lib/virt-up/template-user", user.display()),
                "--run".to_string(),
                setup.display().to_string(),
            ]));
        }
        let key = secrets.write(&format!("key{i}.pub"), &account.authorized_key, 0o600)?;
        args.extend(argv([
            "--ssh-inject".to_string(),
            format!("{}:file:{}", account.username, key.display()),
        ]));
        if let Some(password) = &account.password {
            let file = secrets.write(&format!("pw{i}"), password, 0o600)?;
            let (flag, selector) = if account.username == "root" {
                ("--root-password", format!("file:{}", file.display()))
            } else {
                (
                    "--password",
                    format!("{}:file:{}", account.username, file.display()),
                )
            };
            args.extend(argv([flag.to_string(), selector]));
        }
    }
    let private = secrets.write("hostkey", &identity.host_key.private_openssh, 0o600)?;
    let public = secrets.write(
        "hostkey.pub",
        &format!("{}\n", identity.host_key.public_openssh),
        0o644,
    )?;
    args.extend(argv([
        "--upload".to_string(),
        format!("{}:/etc/ssh/ssh_host_ed25519_key", private.display()),
        "--chmod".to_string(),
        "0600:/etc/ssh/ssh_host_ed25519_key".to_string(),
        "--upload".to_string(),
        format!("{}:/etc/ssh/ssh_host_ed25519_key.pub", public.display()),
    ]));
    for mount in &identity.mounts {
        // The guest's fstab mounts it from its first boot on (the agent does not run).
        args.extend(argv([
            "--mkdir".to_string(),
            mount.guest.clone(),
            "--append-line".to_string(),
            format!("/etc/fstab:{}", fstab_line(mount)),
        ]));
    }
    args.extend(argv(extra_args));
    runner
        .tool("virt-sysprep")
        .args(&args)
        .context(format!("identity of {}", disk.display()))
        .run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The agent's root growth part, alone (between its markers).
    fn growth_part() -> &'static str {
        let begin = AGENT_SCRIPT
            .find("# --- root growth: begin ---")
            .expect("begin marker");
        let end = AGENT_SCRIPT
            .find("# --- root growth: end ---")
            .expect("end marker");
        &AGENT_SCRIPT[begin..end]
    }

    /// MBR entries: (type, start, sectors).
    type Table<'a> = &'a [(u8, u32, u32)];

    /// A disk's first sector: an MBR with these entries.
    fn mbr(entries: Table) -> Vec<u8> {
        let mut sector = vec![0u8; 512];
        for (i, (kind, start, size)) in entries.iter().enumerate() {
            let e = 446 + i * 16;
            sector[e + 4] = *kind;
            sector[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
            sector[e + 12..e + 16].copy_from_slice(&size.to_le_bytes());
        }
        sector[510] = 0x55;
        sector[511] = 0xaa;
        sector
    }

    fn entry_size(disk: &Path, partno: usize) -> u32 {
        let bytes = std::fs::read(disk).unwrap();
        let e = 446 + (partno - 1) * 16 + 12;
        u32::from_le_bytes(bytes[e..e + 4].try_into().unwrap())
    }

    /// A stand-in for the guest's /: an MBR disk `vda` (`sectors` long, as sysfs says) whose
    /// partition 1 (sectors 2048..2048+`size`) is the ext4 root, a console that is a file, and
    /// fake resizepart and resize2fs that record how they were called.
    struct FakeGuest {
        dir: tempfile::TempDir,
    }

    impl FakeGuest {
        fn new(table: Table, size: u64, sectors: u64) -> FakeGuest {
            let dir = tempfile::tempdir().unwrap();
            let g = FakeGuest { dir };
            let write = |rel: &str, text: &str| {
                let p = g.path(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, text).unwrap();
            };
            write(
                "proc/self/mountinfo",
                "21 26 0:20 / /proc rw - proc proc rw\n\
                 26 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro\n",
            );
            write(
                "sys/block/vda/uevent",
                "MAJOR=252\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
            );
            write("sys/block/vda/size", &format!("{sectors}\n"));
            write("sys/block/vda/queue/logical_block_size", "512\n");
            write(
                "sys/block/vda/vda1/uevent",
                "MAJOR=252\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\n",
            );
            write("sys/block/vda/vda1/partition", "1\n");
            write("sys/block/vda/vda1/start", "2048\n");
            write("sys/block/vda/vda1/size", &format!("{size}\n"));
            std::fs::create_dir_all(g.path("sys/dev/block")).unwrap();
            std::os::unix::fs::symlink("../../block/vda/vda1", g.path("sys/dev/block/252:1"))
                .unwrap();
            std::os::unix::fs::symlink("../../block/vda", g.path("sys/dev/block/252:0")).unwrap();
            let mut disk = mbr(table);
            disk.resize(64 * 1024, 0);
            write("dev/vda1", "");
            std::fs::write(g.path("dev/vda"), disk).unwrap();
            write("dev/console", "");
            for tool in ["resizepart", "resize2fs"] {
                write(
                    &format!("bin/{tool}"),
                    &format!("#!/bin/sh\necho \"{tool} $*\" >> \"$(dirname \"$0\")/../calls\"\n"),
                );
                let p = g.path(&format!("bin/{tool}"));
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            g
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        fn root(&self) -> String {
            self.dir.path().display().to_string()
        }

        /// Run `call` (a function of the growth part, with its arguments) with this fake
        /// root; its stdout, and the tools it called.
        fn run(&self, call: &[&str]) -> (String, String) {
            let _ = std::fs::remove_file(self.path("calls"));
            let script = format!(
                "set -eu\nroot=$1\nshift\n{}\n\"$@\"\necho \"grown=${{grown:-}}\"\n",
                growth_part()
            );
            let path = format!(
                "{}:{}",
                self.path("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg("sh")
                .arg(self.root())
                .args(call)
                .env("PATH", path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let calls = std::fs::read_to_string(self.path("calls")).unwrap_or_default();
            (String::from_utf8(out.stdout).unwrap(), calls)
        }

        fn console(&self) -> String {
            std::fs::read_to_string(self.path("dev/console")).unwrap()
        }
    }

    /// virt-up writes a warm clone's seed where the parked agent reads it, and tells the
    /// FIFO that agent waits on.
    #[test]
    fn the_parked_agent_reads_the_seed_where_virt_up_writes_it() {
        let (dir, file) = AGENT_SEED_FILE.rsplit_once('/').unwrap();
        assert!(AGENT_SCRIPT.contains(&format!("\nwork={dir}\n")));
        assert!(AGENT_SCRIPT.contains(&format!("agent) [ ! -s \"$work/{file}\" ]")));
        assert!(AGENT_SCRIPT.contains(&format!("\nready={AGENT_SEED_FIFO}\n")));
    }

    /// The growth an instance with --size gets at boot: the root partition's entry reaches
    /// the disk's end (nothing else in the disk changes), the kernel is told, the
    /// filesystem grown, and the console says so.
    #[test]
    fn root_partition_and_filesystem_grow_to_the_disk_end() {
        let g = FakeGuest::new(&[(0x83, 2048, 4096)], 4096, 16384);
        let before = std::fs::read(g.path("dev/vda")).unwrap();
        let (out, calls) = g.run(&["grow_root"]);
        let root = g.root();
        assert_eq!(
            calls,
            format!("resizepart {root}/dev/vda 1 14336\nresize2fs {root}/dev/vda1\n")
        );
        assert_eq!(entry_size(&g.path("dev/vda"), 1), 14336);
        let after = std::fs::read(g.path("dev/vda")).unwrap();
        let changed: Vec<usize> = (0..before.len())
            .filter(|&i| before[i] != after[i])
            .collect();
        assert!(
            changed.iter().all(|i| (458..462).contains(i)),
            "{changed:?}"
        );
        assert!(!g.path("var/lib/virt-up/grow-pending").exists());
        let console = g.console();
        assert!(
            console.contains("grew partition 1 of")
                && console.contains("from 4096 to 14336 sectors (7 MiB)")
                && console.contains("grew the ext4 filesystem on"),
            "{console}"
        );
        assert!(out.contains("grew partition 1"), "{out}");

        // The next boot (the kernel now knows the size) has nothing to do.
        std::fs::write(g.path("sys/block/vda/vda1/size"), "14336\n").unwrap();
        let (_, calls) = g.run(&["grow_root"]);
        assert_eq!(calls, "");
        assert_eq!(std::fs::read(g.path("dev/vda")).unwrap(), after);
    }

    /// The 127 sectors a template's partitioning leaves after its root (alignment slack, not
    /// a --size) are left alone: no table write, no resize at every clone's first boot.
    /// A disk 1 MiB larger than the partition's end is grown.
    #[test]
    fn alignment_slack_under_one_mib_is_not_grown() {
        let g = FakeGuest::new(&[(0x83, 2048, 4194049)], 4194049, 4196224);
        let before = std::fs::read(g.path("dev/vda")).unwrap();
        let (_, calls) = g.run(&["grow_root"]);
        assert_eq!(calls, "");
        assert_eq!(std::fs::read(g.path("dev/vda")).unwrap(), before);
        assert!(!g.console().contains("grew"), "{}", g.console());

        let g = FakeGuest::new(&[(0x83, 2048, 4096)], 4096, 2048 + 4096 + 2048);
        let (_, calls) = g.run(&["grow_root"]);
        assert!(calls.starts_with("resizepart"), "{calls}");
        assert_eq!(entry_size(&g.path("dev/vda"), 1), 4096 + 2048);
    }

    /// A boot that grew the partition but stopped before the filesystem: the next one grows
    /// the filesystem (and touches no table).
    #[test]
    fn a_pending_filesystem_growth_is_finished_at_the_next_boot() {
        let g = FakeGuest::new(&[(0x83, 2048, 14336)], 14336, 16384);
        std::fs::create_dir_all(g.path("var/lib/virt-up")).unwrap();
        std::fs::write(g.path("var/lib/virt-up/grow-pending"), "").unwrap();
        let (_, calls) = g.run(&["grow_root"]);
        assert_eq!(calls, format!("resize2fs {}/dev/vda1\n", g.root()));
        assert!(!g.path("var/lib/virt-up/grow-pending").exists());
    }

    /// Nothing is written when the root is not the last partition, the table is GPT, or
    /// the root is not ext2/3/4; the console says why where it is a choice.
    #[test]
    fn growth_leaves_other_layouts_alone() {
        let cases: [(Table, &str); 3] = [
            (
                &[(0x83, 2048, 4096), (0x82, 8192, 2048)],
                "is not the last one",
            ),
            (&[(0xee, 1, 16383)], "GPT partition table (not handled)"),
            (
                &[(0x83, 2048, 4096), (0x05, 6144, 8192)],
                "is not the last one",
            ),
        ];
        for (table, why) in cases {
            let g = FakeGuest::new(table, 4096, 16384);
            let before = std::fs::read(g.path("dev/vda")).unwrap();
            let (_, calls) = g.run(&["grow_root"]);
            assert_eq!(calls, "", "{table:?}");
            assert_eq!(std::fs::read(g.path("dev/vda")).unwrap(), before);
            assert!(g.console().contains(why), "{table:?}: {}", g.console());
            assert!(!g.path("var/lib/virt-up/grow-pending").exists());
        }
        let g = FakeGuest::new(&[(0x83, 2048, 4096)], 4096, 16384);
        let info = g.path("proc/self/mountinfo");
        let text = std::fs::read_to_string(&info)
            .unwrap()
            .replace("ext4", "xfs");
        std::fs::write(&info, text).unwrap();
        let (_, calls) = g.run(&["grow_root"]);
        assert_eq!(
            (calls.as_str(), entry_size(&g.path("dev/vda"), 1)),
            ("", 4096)
        );
    }

    /// The table entry must be what the kernel says it is, a Linux partition, primary; a
    /// disk past 2 TiB gets the largest size an MBR entry holds.
    #[test]
    fn mbr_entries_are_checked_before_they_are_written() {
        let g = FakeGuest::new(&[(0x83, 2048, 4096)], 4096, 16384);
        let disk = g.path("dev/vda").display().to_string();
        let grow = |args: &[&str]| {
            let mut call = vec!["mbr_grow", disk.as_str()];
            call.extend_from_slice(args);
            g.run(&call).0
        };
        assert!(grow(&["1", "2048", "2048", "16384"]).contains("grown=\n"));
        assert!(g
            .console()
            .contains("not a Linux partition at sector 2048 of 2048 sectors"));
        assert!(grow(&["5", "2048", "4096", "16384"]).contains("grown=\n"));
        assert!(g.console().contains("not a primary MBR partition"));
        assert!(grow(&["1", "2048", "4096", "6144"]).contains("grown=\n"));
        assert_eq!(entry_size(&g.path("dev/vda"), 1), 4096);
        let out = grow(&["1", "2048", "4096", &(8u64 << 32).to_string()]);
        assert!(
            out.contains(&format!("grown={}\n", u32::MAX - 2048)),
            "{out}"
        );
        assert_eq!(entry_size(&g.path("dev/vda"), 1), u32::MAX - 2048);

        let g = FakeGuest::new(&[(0x83, 2048, 4096)], 4096, 16384);
        let mut bytes = std::fs::read(g.path("dev/vda")).unwrap();
        bytes[510] = 0;
        std::fs::write(g.path("dev/vda"), &bytes).unwrap();
        let (out, calls) = g.run(&["grow_root"]);
        assert!(
            out.contains("no MBR partition table") && calls.is_empty(),
            "{out}"
        );
    }

    /// Run template-setup's motd part with `/etc/pam.d/sshd` holding `pam` (none if None)
    /// under a fake root that has virt-up-motd.service; the file afterwards.
    fn motd_part_on(pam: Option<&str>) -> Option<String> {
        motd_part_with(pam, true)
    }

    /// [`motd_part_on`], the fake root with or without virt-up-motd.service.
    fn motd_part_with(pam: Option<&str>, unit: bool) -> Option<String> {
        let begin = TEMPLATE_SETUP.find("# --- motd: begin ---").unwrap();
        let end = TEMPLATE_SETUP.find("# --- motd: end ---").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("etc/pam.d/sshd");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        if let Some(pam) = pam {
            std::fs::write(&file, pam).unwrap();
        }
        if unit {
            let units = dir.path().join("etc/systemd/system");
            std::fs::create_dir_all(&units).unwrap();
            std::fs::write(units.join("virt-up-motd.service"), MOTD_UNIT).unwrap();
        }
        let script = format!("set -eu\nroot=$1\n{}", &TEMPLATE_SETUP[begin..end]);
        let out = std::process::Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::fs::read_to_string(&file).ok()
    }

    #[test]
    fn pam_motd_shows_the_boots_message_instead_of_making_one_per_connection() {
        // Debian 12's /etc/pam.d/sshd, in part.
        let debian = "@include common-session\n\
            session    optional     pam_motd.so  motd=/run/motd.dynamic\n\
            session    optional     pam_motd.so noupdate\n\
            session    optional     pam_mail.so standard noenv # [1]\n";
        let done = motd_part_on(Some(debian)).unwrap();
        assert_eq!(
            done,
            debian.replace(
                "motd=/run/motd.dynamic\n",
                "motd=/run/motd.dynamic noupdate\n"
            )
        );
        // Run again, or on a file without that line (Rocky's): unchanged.
        assert_eq!(motd_part_on(Some(&done)).unwrap(), done);
        let rocky =
            "session    include      password-auth\nsession    required     pam_loginuid.so\n";
        assert_eq!(motd_part_on(Some(rocky)).unwrap(), rocky);
        assert_eq!(motd_part_on(None), None);
        // An instance of a template made before the unit existed keeps its per-login motd.
        assert_eq!(motd_part_with(Some(debian), false).unwrap(), debian);
    }

    /// The agent's shares part, alone (between its markers), with its console log.
    fn shares_part() -> String {
        let part = |from: &str, to: &str| {
            let begin = AGENT_SCRIPT.find(from).expect("begin marker");
            let end = AGENT_SCRIPT.find(to).expect("end marker");
            AGENT_SCRIPT[begin..end].to_string()
        };
        let log = "log() { printf 'virt-up-identity: %s\\n' \"$*\"; }\n";
        format!(
            "{log}{}",
            part("# --- shares: begin ---", "# --- shares: end ---")
        )
    }

    /// Run the shares part on a fake guest root `dir` with a fake `mount` that records
    /// its calls (and mounts nothing, so mountinfo says what the test puts there).
    fn run_shares(dir: &Path, seed: &str) -> (String, String) {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let fake = dir.join("bin/mount");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"mount $*\" >> \"$(dirname \"$0\")/../calls\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("mounts"), seed).unwrap();
        let _ = std::fs::remove_file(dir.join("calls"));
        let script = format!(
            "set -eu\nroot=$1\n{}\nmount_shares \"$root/mounts\"\n",
            shares_part()
        );
        let path = format!(
            "{}:{}",
            dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(dir)
            .env("PATH", path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let calls = std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
        (String::from_utf8(out.stdout).unwrap(), calls)
    }

    /// Each share's directory is made, its fstab line added once, and it is mounted unless
    /// something is mounted there already; running again adds and mounts nothing twice.
    #[test]
    fn shares_are_made_put_in_fstab_and_mounted_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("proc/self")).unwrap();
        std::fs::write(
            root.join("etc/fstab"),
            "# static\nLABEL=root / ext4 defaults 0 1",
        )
        .unwrap();
        std::fs::write(
            root.join("proc/self/mountinfo"),
            "26 1 252:1 / / rw - ext4 /dev/vda1 rw\n",
        )
        .unwrap();
        let seed = "virtup0 /mnt/host\nvirtup1 /srv/a/b\n";
        let (out, calls) = run_shares(root, seed);
        let r = root.display();
        assert_eq!(
            calls,
            format!(
                "mount -t virtiofs virtup0 {r}/mnt/host\nmount -t virtiofs virtup1 {r}/srv/a/b\n"
            )
        );
        assert!(root.join("srv/a/b").is_dir() && root.join("mnt/host").is_dir());
        assert!(
            out.contains("mounted the host's share virtup0 on /mnt/host"),
            "{out}"
        );
        let fstab = std::fs::read_to_string(root.join("etc/fstab")).unwrap();
        assert_eq!(
            fstab,
            "# static\nLABEL=root / ext4 defaults 0 1\nvirtup0 /mnt/host virtiofs defaults,nofail 0 0\nvirtup1 /srv/a/b virtiofs defaults,nofail 0 0\n"
        );
        assert_eq!(
            fstab_line(&Mount {
                host: "/h".into(),
                guest: "/mnt/host".into(),
                tag: "virtup0".into()
            }),
            "virtup0 /mnt/host virtiofs defaults,nofail 0 0"
        );
        // Again, with the first one mounted: nothing added, only the second one mounted.
        std::fs::write(
            root.join("proc/self/mountinfo"),
            "26 1 252:1 / / rw - ext4 /dev/vda1 rw\n40 26 0:40 / /mnt/host rw - virtiofs virtup0 rw\n",
        )
        .unwrap();
        let (_, calls) = run_shares(root, seed);
        assert_eq!(calls, format!("mount -t virtiofs virtup1 {r}/srv/a/b\n"));
        assert_eq!(
            std::fs::read_to_string(root.join("etc/fstab")).unwrap(),
            fstab
        );
    }

    /// crypt(3)'s SHA-512 form, with 16 salt characters, which the guest's
    /// chpasswd -e / usermod -p accept; and the hash is of that password.
    #[test]
    fn password_hash_is_sha512_crypt_of_the_password() {
        use sha_crypt::{PasswordVerifier, ShaCrypt};
        let hash = password_hash("secret").unwrap();
        let fields: Vec<&str> = hash.split('$').collect();
        assert_eq!(fields[..3], ["", "6", "rounds=5000"], "{hash}");
        assert_eq!((fields[3].len(), fields[4].len()), (16, 86), "{hash}");
        ShaCrypt::SHA512
            .verify_password(b"secret", hash.as_str())
            .unwrap();
        assert!(ShaCrypt::SHA512
            .verify_password(b"other", hash.as_str())
            .is_err());
        assert_ne!(password_hash("secret").unwrap(), hash, "salted");
    }

    #[test]
    fn seed_archive_holds_the_identity_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.tar");
        let identity = Identity {
            instance_id: "abc".into(),
            hostname: "web1.example.test".into(),
            host_key: crate::sshkeys::generate("web1").unwrap(),
            accounts: vec![Account {
                username: "virt".into(),
                create: false,
                authorized_key: "ssh-ed25519 AAAA x".into(),
                password: Some("secret".into()),
            }],
            machine_id: "0123456789abcdef0123456789abcdef".into(),
            mounts: vec![Mount {
                host: "/srv/src".into(),
                guest: "/mnt/host".into(),
                tag: "virtup0".into(),
            }],
            mac: None,
        };
        write_archive(&path, &seed_archive(&identity).unwrap()).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut archive = tar::Archive::new(std::fs::File::open(&path).unwrap());
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut bytes = vec![];
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            let body = String::from_utf8_lossy(&bytes);
            if name == "random" {
                let hex = body.trim_end();
                assert_eq!(hex.len(), 128, "512 bits for a warm clone's pool: {body}");
                assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{body}");
            }
            if name == "machine-id" {
                assert_eq!(body, "0123456789abcdef0123456789abcdef\n");
            }
            if name == "users/virt/password-hash" {
                assert!(body.starts_with("$6$"), "{body}");
                assert!(!body.contains("secret"));
            }
            if name == "hostname" {
                assert_eq!(body, "web1.example.test\n");
            }
            if name == "mounts" {
                assert_eq!(body, "virtup0 /mnt/host\n");
            }
            names.push(name);
        }
        assert_eq!(
            names,
            [
                "instance-id",
                "hostname",
                "ssh_host_ed25519_key",
                "ssh_host_ed25519_key.pub",
                "machine-id",
                "random",
                "mounts",
                "users/virt/authorized_keys",
                "users/virt/password-hash"
            ]
        );
    }
}
