//! Persistent records under the data dir: one JSON file per instance or template
//! (`instance/<name>.json`, 0600) and the stable MAC addresses (`macaddrs.json`).
//! Writes are atomic; callers hold the global lock around read-modify-write sequences.

pub(crate) mod inventory;
pub(crate) mod ssh;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{private_dir, remove_if_exists, write_atomic};
use crate::paths::Paths;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A login account of a guest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Login {
    pub username: String,
    /// Passwords are never stored: logins use the per-instance key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub ssh_identity: PathBuf,
}

impl Login {
    /// A login with `key` and no password (the only kind virt-up records).
    pub fn with_key(username: impl Into<String>, key: impl Into<PathBuf>) -> Login {
        Login {
            username: username.into(),
            password: None,
            ssh_identity: key.into(),
        }
    }
}

/// Where an instance is in its life: a record in `Creating` whose process is gone
/// is a half-made instance that the next run cleans up.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Creating,
    Ready,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub name: String,
    pub template: String,
    pub created: String,
    pub phase: Phase,
    /// The process that is creating it (meaningful while `phase` is `Creating`).
    pub pid: u32,
    pub os_version: String,
    #[serde(default)]
    pub os_variant: Option<String>,
    pub hostname: String,
    pub domain: String,
    pub disk: PathBuf,
    pub format: String,
    pub memory: u64,
    pub vcpus: u64,
    pub graphics: String,
    #[serde(default)]
    pub size: Option<String>,
    pub root: Login,
    pub user: Login,
    #[serde(rename = "address-source")]
    pub address_source: String,
    pub ssh_options: BTreeMap<String, String>,
    #[serde(default)]
    pub address: Option<String>,
    pub mac: String,
    pub uri: String,
    pub identity: String,
    pub console_log: PathBuf,
    /// Extra files that belong to the instance (the first-boot seed), removed with it.
    #[serde(default)]
    pub extra_files: Vec<PathBuf>,
    pub inventory: bool,
    /// Present (true) for clones; a template's record has no `cloned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloned: Option<bool>,
    /// The template disk a clone is backed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
    /// Templates: the fingerprint of the settings their disk was built from (see
    /// `template::definition`), so a changed definition is noticed when it is reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// Templates: whether its identity agent can park a warm boot (built by a virt-up
    /// that has warm clones).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parks: bool,
    /// Templates: whether its identity agent mounts an instance's `--mount` shares (built
    /// by a virt-up that has them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub agent_mounts: bool,
    /// Templates: whether its identity agent, parked, takes an instance's seed written
    /// through the guest agent and gives the parked NIC the instance's MAC (built by a
    /// virt-up whose warm clones are made so).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub agent_seed: bool,
    /// Templates: the sha256 of the disk uploaded into the pool (the same on every host
    /// that was given the same disk; a template-playbook changes the disk afterwards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_digest: Option<String>,
    /// Instances: the host directories shared with it (`--mount`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<crate::share::Mount>,
    /// Templates: its warm image, once made. Instances: whether it was restored from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<Warm>,
    /// Instances: the address reserved for its MAC on the network's DHCP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Reservation>,
    /// Templates: the disks of warm images made again while instances were clones of
    /// them (their overlays' backing files), kept until the last of those is deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_warm: Vec<RetiredWarm>,
}

/// A replaced warm image's disk and park seed (its save image is gone): the backing file
/// of the instances restored from it, and a device of those that still run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetiredWarm {
    pub disk: PathBuf,
    pub seed: PathBuf,
}

/// A DHCP reservation (`fixed-address`): the network's `<host>` entry for the MAC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub network: String,
    pub address: String,
}

/// A template's warm image: the disk and memory of its boot parked before an identity,
/// read-only once saved, which instances are restored from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warm {
    /// The overlay of the template's disk that the parked boot ran on.
    pub disk: PathBuf,
    /// The parked boot's own seed disk (clones keep it attached, read-only).
    pub seed: PathBuf,
    /// The saved memory (libvirt's save image).
    pub save: PathBuf,
    /// The domain's shape when saved: a clone must have the same.
    pub memory: u64,
    pub vcpus: u64,
    pub graphics: String,
    /// The digest of the virt-install-args the domain was made with.
    pub devices: String,
    /// The console log path in the saved domain (each clone's replaces it).
    pub console_log: PathBuf,
    pub created: String,
    /// How long making it took, in seconds.
    pub build_seconds: f64,
    /// The save image's size when it was made: another size is a truncated or overwritten
    /// image, which no clone can be restored from (none for images made before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_bytes: Option<u64>,
    /// Whether its parked guest takes an instance's seed through the guest agent (else
    /// only as a disk plugged in, as made by older templates).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub agent_seed: bool,
    /// The MAC of the NIC it was parked with, link down (each clone's guest is given its
    /// own); none when it was parked without one (older images: clones get theirs plugged
    /// in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked_mac: Option<String>,
}

impl Record {
    pub fn is_template(&self) -> bool {
        self.cloned.is_none()
    }

    /// The host its SSH server is reached through (ProxyJump), if not directly.
    pub fn jump(&self) -> Option<&str> {
        self.ssh_options.get("ProxyJump").map(String::as_str)
    }

    /// The ssh command line of a login as `login` that checks the pinned host key and
    /// never prompts, with `extra` options (the caller adds the command).
    pub fn batch_login(
        &self,
        login: &Login,
        address: &str,
        extra: &[String],
    ) -> std::process::Command {
        let options: Vec<&str> = ["-T", "-o", "BatchMode=yes"]
            .into_iter()
            .chain(extra.iter().map(String::as_str))
            .collect();
        ssh::command("ssh", self, login, address, &options)
    }
}

/// Read and write records in the data dir.
#[derive(Debug, Clone)]
pub struct Store {
    paths: Paths,
}

impl Store {
    pub fn new(paths: &Paths) -> Result<Store> {
        for dir in [paths.data.clone(), paths.instances(), paths.sshkeys()] {
            private_dir(&dir)?;
        }
        Ok(Store {
            paths: paths.clone(),
        })
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The record file's stem: the instance name, or `TEMPLATE-<t>` for a template.
    pub fn load(&self, stem: &str) -> Result<Option<Record>> {
        let path = self.paths.instance_record(stem);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Corrupt {
                    path: path.clone(),
                    what: "corrupt record",
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    pub fn save(&self, stem: &str, record: &Record) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).expect("records serialize");
        Ok(write_atomic(
            &self.paths.instance_record(stem),
            &json,
            0o600,
        )?)
    }

    pub fn remove(&self, stem: &str) -> Result<()> {
        Ok(remove_if_exists(&self.paths.instance_record(stem))?)
    }

    /// Every record, sorted by name. A corrupt file is reported, not fatal to listing.
    pub fn all(&self) -> Result<(Vec<Record>, Vec<String>)> {
        let dir = self.paths.instances();
        let mut records = Vec::new();
        let mut problems = Vec::new();
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            match self.load(stem) {
                Ok(Some(r)) => records.push(r),
                Ok(None) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((records, problems))
    }

    /// The stable MAC for `name`: the recorded one, else a new unique one (recorded).
    /// Kept after delete, so a re-created instance gets the same MAC and DHCP address.
    pub fn mac_for(&self, name: &str) -> Result<String> {
        let mut macs = self.macs()?;
        if let Some(mac) = macs.get(name) {
            return Ok(mac.clone());
        }
        let mac = loop {
            let candidate = crate::mac::random();
            if !macs.values().any(|m| *m == candidate) {
                break candidate;
            }
        };
        macs.insert(name.to_string(), mac.clone());
        let json = serde_json::to_vec_pretty(&macs).expect("map serializes");
        write_atomic(&self.paths.macaddrs(), &json, 0o600)?;
        Ok(mac)
    }

    fn macs(&self) -> Result<BTreeMap<String, String>> {
        let path = self.paths.macaddrs();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Corrupt {
                path: path.clone(),
                what: "corrupt",
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_stable_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::from_env(&|k| {
            (k == "VIRTUP_DATA_HOME").then(|| dir.path().join("d").display().to_string())
        })
        .unwrap();
        let store = Store::new(&paths).unwrap();
        let a = store.mac_for("a").unwrap();
        assert!(a.starts_with("52:54:00:"));
        assert_eq!(store.mac_for("a").unwrap(), a);
        assert_ne!(store.mac_for("b").unwrap(), a);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(paths.macaddrs())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
