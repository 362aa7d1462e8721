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

/// Write the seed archive the agent reads at first boot (0600: it holds a private key).
pub fn write_seed(path: &Path, identity: &Identity) -> Result<()> {
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
    let bytes = tar.into_inner().map_err(seed_error)?;
    Ok(write_atomic(path, &bytes, 0o600)?)
}

/// The seed as the raw volume `name` in `pool` (archived into a private temporary file,
/// then created and uploaded through the hypervisor); a stale one is replaced. Returns
/// the volume's path.
pub fn upload_seed(
    hv: &dyn Hypervisor,
    volume: (&str, &Path),
    identity: &Identity,
) -> Result<PathBuf> {
    let (pool, path) = volume;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let files = SecretFiles::new()?;
    let local = files.dir.path().join("seed.tar");
    write_seed(&local, identity)?;
    let capacity = std::fs::metadata(&local)
        .map_err(|e| Error::io(&local, e))?
        .len();
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
        };
        write_seed(&path, &identity).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut archive = tar::Archive::new(std::fs::File::open(&path).unwrap());
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).unwrap();
            if name == "users/virt/password-hash" {
                assert!(body.starts_with("$6$"), "{body}");
                assert!(!body.contains("secret"));
            }
            if name == "hostname" {
                assert_eq!(body, "web1.example.test\n");
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
                "users/virt/authorized_keys",
                "users/virt/password-hash"
            ]
        );
    }
}
