//! SSH keys generated in-process: a per-instance ed25519 login key pair (kept on the host,
//! never copied into a guest) and the instance's ed25519 host key (its private half goes
//! into the guest only, the public half into our known_hosts before the guest boots).

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use std::path::{Path, PathBuf};

/// A generated key pair in OpenSSH formats.
pub struct KeyPair {
    pub private_openssh: String,
    /// `ssh-ed25519 AAAA... comment`
    pub public_openssh: String,
}

pub fn generate(comment: &str) -> Result<KeyPair> {
    let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).map_err(
        |source| Error::SshKey {
            what: "cannot generate an ed25519 key".into(),
            source,
        },
    )?;
    key.set_comment(comment);
    let private_openssh = key
        .to_openssh(LineEnding::LF)
        .map_err(encode_error)?
        .to_string();
    let public_openssh = key.public_key().to_openssh().map_err(encode_error)?;
    Ok(KeyPair {
        private_openssh,
        public_openssh,
    })
}

/// Write a login key pair as `<dir>/<name>` (0600) and `<dir>/<name>.pub`; returns the
/// private key's path.
pub fn write_login_key(dir: &Path, name: &str, pair: &KeyPair) -> Result<PathBuf> {
    let private = dir.join(name);
    write_atomic(&private, pair.private_openssh.as_bytes(), 0o600)?;
    write_atomic(
        &dir.join(format!("{name}.pub")),
        format!("{}\n", pair.public_openssh).as_bytes(),
        0o600,
    )?;
    Ok(private)
}

/// The public key of an existing private key file.
pub fn public_of(private: &Path) -> Result<String> {
    let text = std::fs::read_to_string(private).map_err(|e| Error::io(private, e))?;
    let key = PrivateKey::from_openssh(&text).map_err(|source| Error::SshKey {
        what: format!("{}: not an OpenSSH key", private.display()),
        source,
    })?;
    key.public_key().to_openssh().map_err(encode_error)
}

fn encode_error(source: ssh_key::Error) -> Error {
    Error::SshKey {
        what: "cannot encode key".into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_and_differ() {
        let a = generate("a").unwrap();
        let b = generate("b").unwrap();
        assert!(a.public_openssh.starts_with("ssh-ed25519 "));
        assert!(a.public_openssh.ends_with(" a"));
        assert_ne!(a.public_openssh, b.public_openssh);
        let dir = tempfile::tempdir().unwrap();
        let p = write_login_key(dir.path(), "web1", &a).unwrap();
        assert_eq!(public_of(&p).unwrap(), a.public_openssh);
    }
}
