//! The hypervisor boundary: the few operations virt-up needs, domains and storage, behind
//! a trait, with the libvirt implementation on the `virt` crate. Disks are made through
//! libvirt's storage API (so a regular user's session daemon and a remote host work the
//! same way), except on libvirt's test driver, which keeps no volumes between processes
//! and cannot upload: there [`local_dir`] stands in with files in the pool's directory.
//! Tests of this code use the test driver; the real daemon is exercised by the real-VM tier.

mod agent_file;
mod dhcp;
pub mod domain_xml;
mod local_dir;
pub mod own_network;
pub mod save_image;
mod snapshot;
pub(crate) mod virt_install;

use crate::config::plan::ImageFormat;
use crate::error::{Error, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

pub use snapshot::Snapshot;

/// Where libvirt should look for a guest's addresses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LibvirtAddressSource {
    Lease,
    Agent,
}

/// One address of a guest interface.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestAddress {
    pub mac: Option<String>,
    pub ip: String,
}

/// A volume (a disk image in a storage pool) as the hypervisor knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub path: PathBuf,
    /// The size the guest sees, in bytes.
    pub capacity: u64,
    /// The bytes it takes in the pool (an overlay: what the guest wrote).
    pub allocation: u64,
    pub format: Option<String>,
    /// The volume this one is an overlay of.
    pub backing: Option<PathBuf>,
}

/// Where a new volume's content comes from.
#[derive(Debug, Clone, Copy)]
pub enum VolumeSource<'a> {
    /// Empty, of this many bytes.
    Empty { capacity: u64 },
    /// A qcow2 overlay over `backing` (which it never writes): a linked clone. Its size is
    /// the backing volume's, or `capacity` when that is given.
    Overlay {
        backing: &'a Volume,
        capacity: Option<u64>,
    },
    /// A full copy of `from`, grown to `capacity` when that is given.
    Copy {
        from: &'a Volume,
        capacity: Option<u64>,
    },
}

/// A volume to create.
#[derive(Debug, Clone, Copy)]
pub struct NewVolume<'a> {
    pub pool: &'a str,
    pub name: &'a str,
    pub format: ImageFormat,
    pub source: VolumeSource<'a>,
}

/// A pool's size and use, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolCapacity {
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

pub trait Hypervisor: Send + Sync {
    fn uri(&self) -> String;
    /// The directory of a `dir` storage pool; an error if the pool is missing or inactive.
    fn pool_path(&self, pool: &str) -> Result<PathBuf>;
    /// An error if the network is missing or not active; virt-up's own network
    /// ([`own_network::NAME`]) is made or started instead. Some(its address, the
    /// gateway of its /24) when this call made it.
    fn ensure_network(&self, network: &str) -> Result<Option<Ipv4Addr>>;
    fn define(&self, xml: &str) -> Result<()>;
    fn start(&self, name: &str) -> Result<()>;
    fn set_autostart(&self, name: &str, on: bool) -> Result<()>;
    fn is_defined(&self, name: &str) -> Result<bool>;
    fn is_running(&self, name: &str) -> Result<bool>;
    /// The defined domain's UUID.
    fn uuid(&self, name: &str) -> Result<String>;
    /// Ask the guest to power off (ACPI).
    fn shutdown(&self, name: &str) -> Result<()>;
    /// Stop at once; no error if it is not running or not defined.
    fn destroy(&self, name: &str) -> Result<()>;
    /// Remove the definition; no error if it is not defined.
    fn undefine(&self, name: &str) -> Result<()>;
    fn addresses(&self, name: &str, source: LibvirtAddressSource) -> Result<Vec<GuestAddress>>;
    /// All domains and which of them run, in two calls (for fast listings).
    fn domains(&self) -> Result<DomainNames>;

    /// Create a volume in `new.pool`; an existing one of that name is an error.
    fn create_volume(&self, new: &NewVolume) -> Result<Volume>;
    /// Write a local file's bytes into the volume at `volume` (from its start).
    fn upload_volume(&self, volume: &Path, from: &Path) -> Result<()>;
    /// Delete the volume at `path`; no error if there is none.
    fn delete_volume(&self, path: &Path) -> Result<()>;
    /// The volume at `path`, if the hypervisor has one there.
    fn volume(&self, path: &Path) -> Result<Option<Volume>>;
    fn pool_capacity(&self, pool: &str) -> Result<PoolCapacity>;
    /// The host's free memory in bytes (virNodeGetFreeMemory): what placing new instances
    /// across several hosts weighs.
    fn free_memory(&self) -> Result<u64>;
    /// The first `length` bytes of the volume at `path` (fewer if it is shorter).
    fn read_volume_head(&self, path: &Path, length: u64) -> Result<Vec<u8>>;
    /// Write `bytes` over the start of the volume at `path`, leaving the rest as it is.
    fn write_volume_head(&self, path: &Path, bytes: &[u8]) -> Result<()>;

    /// Save the running domain's memory to `to` (a volume's path on the hypervisor's
    /// host); the domain stops. Used once per warm template.
    fn save(&self, name: &str, to: &Path) -> Result<()>;
    /// Start the domain saved in `from` (its header's XML says which), running.
    fn restore(&self, from: &Path) -> Result<()>;
    /// Add a device to the running domain (not to its persistent definition).
    fn attach_live(&self, name: &str, device_xml: &str) -> Result<()>;
    /// Change a device of the running domain (not its persistent definition): a NIC's
    /// link state.
    fn update_live(&self, name: &str, device_xml: &str) -> Result<()>;
    /// The host name the guest agent reports; None while the agent does not answer.
    fn agent_hostname(&self, name: &str) -> Result<Option<String>>;
    /// The MACs of the running guest's network interfaces as its guest agent reports them
    /// (with or without addresses).
    fn agent_macs(&self, name: &str) -> Result<Vec<String>>;
    /// Write `bytes` to the file at `path` in the running guest through its guest agent:
    /// a new or truncated file (0600) when `create`, else only a file (or FIFO) that is
    /// there already.
    fn agent_write(&self, name: &str, file: (&str, bool), bytes: &[u8]) -> Result<()>;
    /// Whether the bridge port of the running domain's NIC with `mac` forwards frames yet
    /// (a bridge with STP holds a new port back for a while); None when that cannot be
    /// seen from here (a remote host, a NIC not on a bridge).
    fn nic_forwarding(&self, name: &str, mac: &str) -> Result<Option<bool>>;

    /// Reserve an address for `mac` on `network`'s DHCP server (its reservation if it has
    /// one); None when the network has no IPv4 DHCP range or no free address in it.
    fn reserve_address(&self, network: &str, mac: &str) -> Result<Option<String>>;
    /// Remove `mac`'s reservation; no error if there is none or the network is gone.
    fn release_address(&self, network: &str, mac: &str) -> Result<()>;

    /// Snapshot the stopped domain's disk at `disk` (an internal qcow2 snapshot; its
    /// other disks are left out).
    fn create_snapshot(&self, name: &str, snapshot: &str, disk: &Path) -> Result<()>;
    /// The domain's snapshots, oldest first.
    fn snapshots(&self, name: &str) -> Result<Vec<Snapshot>>;
    /// Put the stopped domain's disks back as they were at `snapshot`.
    fn revert_snapshot(&self, name: &str, snapshot: &str) -> Result<()>;
    fn delete_snapshot(&self, name: &str, snapshot: &str) -> Result<()>;
}

/// Names of the defined domains and of the running ones.
#[derive(Debug, Default)]
pub struct DomainNames {
    pub defined: std::collections::HashSet<String>,
    pub running: std::collections::HashSet<String>,
}

/// libvirt through the `virt` crate.
pub struct Libvirt {
    conn: Connect,
    storage: Storage,
}

/// How volumes are made.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Storage {
    /// libvirt's storage API (every real driver).
    Api,
    /// Files in the pool's directory: the test driver's stand-in (see [`local_dir`]).
    LocalDir,
}

fn libvirt_error(what: impl Into<String>, e: virt::error::Error) -> Error {
    Error::Libvirt {
        what: what.into(),
        message: e.message().to_string(),
        hint: String::new(),
    }
}

impl Libvirt {
    /// Connect to `uri`. On the test driver (`test://...`) volumes are files in the
    /// pool's directory, so that several processes share them as they share a real pool.
    pub fn connect(uri: &str) -> Result<Libvirt> {
        Libvirt::open(Some(uri))
    }

    /// Connect to the URI libvirt itself picks when none is given, by its own rules:
    /// LIBVIRT_DEFAULT_URI, then `uri_default` in the user's libvirt.conf
    /// (~/.config/libvirt/libvirt.conf; root's: /etc/libvirt/libvirt.conf), then the local
    /// hypervisor (qemu:///system as root, qemu:///session for anyone else).
    pub fn connect_default() -> Result<Libvirt> {
        Libvirt::open(None)
    }

    fn open(uri: Option<&str>) -> Result<Libvirt> {
        let mut hv = Libvirt::open_storage_api(uri)?;
        if hv.uri().starts_with("test:") {
            hv.storage = Storage::LocalDir;
        }
        Ok(hv)
    }

    /// Connect to `uri` with volumes always made through libvirt's storage API (on the
    /// test driver too: its volumes then live in this process's memory).
    pub fn connect_storage_api(uri: &str) -> Result<Libvirt> {
        Libvirt::open_storage_api(Some(uri))
    }

    fn open_storage_api(uri: Option<&str>) -> Result<Libvirt> {
        // libvirt prints every error to stderr unless told not to; we report them ourselves.
        virt::error::clear_error_callback();
        let conn = Connect::open(uri).map_err(|e| {
            let message = e.message().to_string();
            let hint = if message.contains("socket") || message.contains("No such file") {
                "\nis libvirtd running? Start it with 'systemctl start libvirtd' (without systemd: 'libvirtd -d; virtlogd -d')".to_string()
            } else {
                String::new()
            };
            Error::Libvirt {
                what: match uri {
                    Some(uri) => format!("cannot connect to {uri}"),
                    None => "cannot connect to libvirt's default URI (LIBVIRT_DEFAULT_URI, uri_default in libvirt.conf, else the local qemu)".into(),
                },
                message,
                hint,
            }
        })?;
        Ok(Libvirt {
            conn,
            storage: Storage::Api,
        })
    }

    fn domain(&self, name: &str) -> Result<Option<Domain>> {
        match self.conn.lookup_domain_by_name(name) {
            Ok(d) => Ok(Some(d)),
            Err(e)
                if e.code() == virt::enumutil::Enum::Known(virt::error::ErrorNumber::NoDomain) =>
            {
                Ok(None)
            }
            Err(e) => Err(libvirt_error(format!("looking up domain '{name}'"), e)),
        }
    }

    /// The address `network` has reserved for `mac`, if any (none if there is no network).
    pub fn reserved_address(&self, network: &str, mac: &str) -> Result<Option<String>> {
        let Ok(net) = self.conn.lookup_network_by_name(network) else {
            return Ok(None);
        };
        let xml = net
            .xml_desc(0)
            .map_err(|e| libvirt_error(format!("network '{network}'"), e))?;
        Ok(dhcp::ranges(&xml)
            .into_iter()
            .flat_map(|r| r.hosts)
            .find(|(m, _)| m.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(mac)))
            .map(|(_, ip)| ip.to_string()))
    }

    /// The active network `name`, or an error that says how to start it.
    /// For messages: " on <uri>" and the virsh command line for a remote host; nothing
    /// and plain `virsh` for this machine's.
    fn on_host(&self) -> (String, String) {
        let uri = self.uri();
        match is_remote(&uri) {
            true => (format!(" on {uri}"), format!("virsh -c {uri}")),
            false => (String::new(), "virsh".to_string()),
        }
    }

    fn network(&self, name: &str) -> Result<virt::network::Network> {
        let problem = match self.conn.lookup_network_by_name(name) {
            Ok(n) if n.is_active().unwrap_or(false) => return Ok(n),
            Ok(_) => "the network is not active".to_string(),
            Err(e) => e.message().to_string(),
        };
        let (on, virsh) = self.on_host();
        Err(Error::Libvirt {
            what: format!("network '{name}'{on}"),
            message: problem,
            hint: format!("\nstart it with: {virsh} net-start {name}"),
        })
    }

    /// Start virt-up's own network, or make it when it is missing (Some(its address) then).
    /// Another virt-up may be doing the same at the same moment: whoever loses the define
    /// or the start finds the network there, or active, on its next look.
    fn ensure_own_network(&self) -> Result<Option<Ipv4Addr>> {
        for _ in 0..3 {
            match self.conn.lookup_network_by_name(own_network::NAME) {
                Ok(net) if net.is_active().unwrap_or(false) => return Ok(None),
                Ok(net) => match net.create() {
                    Ok(()) => return Ok(None),
                    Err(_) if net.is_active().unwrap_or(false) => return Ok(None),
                    Err(e) => return Err(self.own_network_error(e.message())),
                },
                Err(_) => {
                    if let Some(gateway) = self.define_own_network()? {
                        return Ok(Some(gateway));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Define and start virt-up's network on the first free subnet (Some(its address));
    /// None when another virt-up defined it first.
    fn define_own_network(&self) -> Result<Option<Ipv4Addr>> {
        let used: Vec<_> = self
            .conn
            .list_all_networks(0)
            .map_err(|e| libvirt_error("listing networks", e))?
            .iter()
            .filter_map(|n| n.xml_desc(0).ok())
            .flat_map(|xml| own_network::addresses(&xml))
            .collect();
        let mut clash = String::from("no subnet left to try");
        for third in own_network::candidates(&used) {
            let xml = own_network::xml(third);
            let net = match self.conn.define_network_xml(&xml) {
                Ok(net) => net,
                Err(_) if self.conn.lookup_network_by_name(own_network::NAME).is_ok() => {
                    return Ok(None)
                }
                Err(e) => return Err(self.own_network_error(e.message())),
            };
            match net.create() {
                Ok(()) => {
                    net.set_autostart(true).map_err(|e| {
                        libvirt_error(format!("network '{}'", own_network::NAME), e)
                    })?;
                    return Ok(Some(own_network::gateway(third)));
                }
                Err(e) => {
                    // Ours, just defined and never started: nobody else uses it.
                    let _ = net.undefine();
                    if !own_network::is_subnet_clash(e.message()) {
                        return Err(self.own_network_error(e.message()));
                    }
                    clash = e.message().to_string();
                }
            }
        }
        Err(self.own_network_error(&format!(
            "no free 192.168.X.0/24 among the {} tried (last: {clash})",
            own_network::TRIES
        )))
    }

    fn own_network_error(&self, message: &str) -> Error {
        let (on, _) = self.on_host();
        Error::Libvirt {
            what: format!("making virt-up's network '{}'{on}", own_network::NAME),
            message: message.to_string(),
            hint: "\nset 'network = default' (libvirt's NAT network) or another network in settings.cfg".into(),
        }
    }

    fn existing(&self, name: &str) -> Result<Domain> {
        self.domain(name)?.ok_or_else(|| Error::Libvirt {
            what: format!("domain '{name}'"),
            message: "no such domain".into(),
            hint: String::new(),
        })
    }
}

impl Hypervisor for Libvirt {
    fn create_snapshot(&self, name: &str, snapshot: &str, disk: &Path) -> Result<()> {
        snapshot::create(&self.existing(name)?, snapshot, disk)
    }

    fn snapshots(&self, name: &str) -> Result<Vec<Snapshot>> {
        snapshot::list(&self.existing(name)?)
    }

    fn revert_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        snapshot::revert(&self.existing(name)?, snapshot)
    }

    fn delete_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        snapshot::delete(&self.existing(name)?, snapshot)
    }

    fn uri(&self) -> String {
        self.conn.uri().unwrap_or_default()
    }

    fn pool_path(&self, pool: &str) -> Result<PathBuf> {
        let (on, virsh) = self.on_host();
        let missing = |message: String| {
            Error::Libvirt {
            what: format!("storage pool '{pool}'{on}"),
            message,
            hint: format!(
                "\ndefine and start it, e.g.: {virsh} pool-define-as {pool} dir --target /var/lib/libvirt/images && {virsh} pool-start {pool}"
            ),
        }
        };
        let p = self
            .conn
            .lookup_storage_pool_by_name(pool)
            .map_err(|e| missing(e.message().to_string()))?;
        if !p.is_active().unwrap_or(false) {
            return Err(missing("the pool is not active".into()));
        }
        let xml = p
            .xml_desc(0)
            .map_err(|e| libvirt_error(format!("storage pool '{pool}'"), e))?;
        xml_text(&xml, "path").map(PathBuf::from).ok_or_else(|| {
            missing("the pool has no target path (only 'dir' pools are supported)".into())
        })
    }

    fn ensure_network(&self, network: &str) -> Result<Option<Ipv4Addr>> {
        let made = match network == own_network::NAME {
            true => self.ensure_own_network()?,
            false => None,
        };
        self.network(network).map(|_| made)
    }

    fn define(&self, xml: &str) -> Result<()> {
        self.conn
            .define_domain_xml(xml)
            .map(|_| ())
            .map_err(|e| libvirt_error("defining domain", e))
    }

    fn start(&self, name: &str) -> Result<()> {
        self.existing(name)?
            .create()
            .map_err(|e| libvirt_error(format!("starting domain '{name}'"), e))
    }

    fn set_autostart(&self, name: &str, on: bool) -> Result<()> {
        self.existing(name)?
            .set_autostart(on)
            .map(|_| ())
            .map_err(|e| libvirt_error(format!("autostart of domain '{name}'"), e))
    }

    fn is_defined(&self, name: &str) -> Result<bool> {
        Ok(self.domain(name)?.is_some())
    }

    fn is_running(&self, name: &str) -> Result<bool> {
        Ok(match self.domain(name)? {
            Some(d) => d.is_active().unwrap_or(false),
            None => false,
        })
    }

    fn uuid(&self, name: &str) -> Result<String> {
        self.existing(name)?
            .uuid_string()
            .map_err(|e| libvirt_error(format!("reading domain '{name}'"), e))
    }

    fn shutdown(&self, name: &str) -> Result<()> {
        self.existing(name)?
            .shutdown()
            .map_err(|e| libvirt_error(format!("shutting down '{name}'"), e))
    }

    fn destroy(&self, name: &str) -> Result<()> {
        match self.domain(name)? {
            Some(d) if d.is_active().unwrap_or(false) => d
                .destroy()
                .map_err(|e| libvirt_error(format!("stopping domain '{name}'"), e)),
            _ => Ok(()),
        }
    }

    fn undefine(&self, name: &str) -> Result<()> {
        match self.domain(name)? {
            Some(d) => d
                .undefine()
                .map_err(|e| libvirt_error(format!("undefining domain '{name}'"), e)),
            None => Ok(()),
        }
    }

    fn addresses(&self, name: &str, source: LibvirtAddressSource) -> Result<Vec<GuestAddress>> {
        let src = match source {
            LibvirtAddressSource::Lease => virt::sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            LibvirtAddressSource::Agent => virt::sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
        };
        let ifaces = self
            .existing(name)?
            .interface_addresses(src, 0)
            .map_err(|e| libvirt_error(format!("addresses of '{name}'"), e))?;
        Ok(ifaces
            .into_iter()
            .flat_map(|i| {
                let mac = i.hwaddr.clone();
                i.addrs.into_iter().map(move |a| GuestAddress {
                    mac: mac.clone(),
                    ip: a.addr,
                })
            })
            .collect())
    }

    fn domains(&self) -> Result<DomainNames> {
        Ok(DomainNames {
            defined: self.names(0)?,
            running: self.names(virt::sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE)?,
        })
    }

    fn create_volume(&self, new: &NewVolume) -> Result<Volume> {
        if self.storage == Storage::LocalDir {
            return local_dir::create(&self.pool_path(new.pool)?, new);
        }
        let pool = self.active_pool(new.pool)?;
        let what = || format!("creating volume '{}' in pool '{}'", new.name, new.pool);
        let vol = match new.source {
            VolumeSource::Copy { from, capacity } => {
                let original = self
                    .lookup_volume(&from.path)?
                    .ok_or_else(|| Error::Libvirt {
                        what: what(),
                        message: format!("no volume {}", from.path.display()),
                        hint: String::new(),
                    })?;
                let xml = volume_xml(new, capacity.unwrap_or(from.capacity).max(from.capacity));
                StorageVol::create_xml_from(&pool, &xml, &original, 0)
            }
            VolumeSource::Overlay { backing, capacity } => StorageVol::create_xml(
                &pool,
                &volume_xml(new, capacity.unwrap_or(backing.capacity)),
                0,
            ),
            VolumeSource::Empty { capacity } => {
                StorageVol::create_xml(&pool, &volume_xml(new, capacity), 0)
            }
        }
        .map_err(|e| libvirt_error(what(), e))?;
        describe(&vol).map_err(|e| libvirt_error(what(), e))
    }

    fn upload_volume(&self, volume: &Path, from: &Path) -> Result<()> {
        if self.storage == Storage::LocalDir {
            return local_dir::upload(volume, from);
        }
        let what = || {
            format!(
                "uploading {} to volume {}",
                from.display(),
                volume.display()
            )
        };
        let mut file = std::fs::File::open(from).map_err(|e| Error::io(from, e))?;
        let length = file.metadata().map_err(|e| Error::io(from, e))?.len();
        let (vol, stream) = self.volume_stream(volume, &what())?;
        vol.upload(&stream, 0, length, 0)
            .map_err(|e| libvirt_error(what(), e))?;
        // In pieces: a template disk is gigabytes, and need not be in memory at once.
        let mut buffer = vec![0u8; 4 << 20];
        loop {
            let n = match std::io::Read::read(&mut file, &mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = stream.abort();
                    return Err(Error::io(from, e));
                }
            };
            if let Err(message) = send_all(&stream, &buffer[..n]) {
                let _ = stream.abort();
                return Err(Error::Libvirt {
                    what: what(),
                    message,
                    hint: String::new(),
                });
            }
        }
        stream.finish().map_err(|e| libvirt_error(what(), e))
    }

    fn delete_volume(&self, path: &Path) -> Result<()> {
        if self.storage == Storage::LocalDir {
            return local_dir::delete(path);
        }
        let Some(vol) = self.lookup_volume(path)? else {
            return Ok(());
        };
        // A volume libvirt is still filling (a copy that a killed run started: libvirtd
        // goes on with it) cannot be deleted until it is done; it is, within seconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            match vol.delete(0) {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.message().contains("still being allocated")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(libvirt_error(
                        format!("deleting volume {}", path.display()),
                        e,
                    ))
                }
            }
        }
    }

    fn volume(&self, path: &Path) -> Result<Option<Volume>> {
        if self.storage == Storage::LocalDir {
            return local_dir::volume(path);
        }
        match self.lookup_volume(path)? {
            Some(vol) => describe(&vol)
                .map(Some)
                .map_err(|e| libvirt_error(format!("volume {}", path.display()), e)),
            None => Ok(None),
        }
    }

    fn pool_capacity(&self, pool: &str) -> Result<PoolCapacity> {
        let info = self
            .active_pool(pool)?
            .info()
            .map_err(|e| libvirt_error(format!("storage pool '{pool}'"), e))?;
        Ok(PoolCapacity {
            capacity: info.capacity,
            allocation: info.allocation,
            available: info.available,
        })
    }

    fn free_memory(&self) -> Result<u64> {
        let what = || format!("free memory of {}", self.uri());
        match self.conn.free_memory() {
            Ok(bytes) => Ok(bytes),
            // A driver without per-cell figures (the test driver on a node file): the
            // node's memory less what its running domains were given.
            Err(_) => {
                let node = self
                    .conn
                    .node_info()
                    .map_err(|e| libvirt_error(what(), e))?;
                let flags = virt::sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE;
                let given: u64 = self
                    .conn
                    .list_all_domains(flags)
                    .map_err(|e| libvirt_error(what(), e))?
                    .iter()
                    .filter_map(|d| d.max_memory().ok())
                    .sum();
                Ok(node.memory.saturating_sub(given) << 10)
            }
        }
    }

    fn read_volume_head(&self, path: &Path, length: u64) -> Result<Vec<u8>> {
        if self.storage == Storage::LocalDir {
            return local_dir::read_head(path, length);
        }
        let what = || format!("reading volume {}", path.display());
        let (vol, stream) = self.volume_stream(path, &what())?;
        vol.download(&stream, 0, length, 0)
            .map_err(|e| libvirt_error(what(), e))?;
        let mut out = Vec::with_capacity(length as usize);
        let mut buffer = vec![0u8; 256 << 10];
        loop {
            match stream.recv(&mut buffer) {
                Ok(0) => break,
                Ok(n) if n > 0 => out.extend_from_slice(&buffer[..n as usize]),
                Ok(n) => {
                    let _ = stream.abort();
                    return Err(Error::Libvirt {
                        what: what(),
                        message: format!("libvirt's stream returned {n}"),
                        hint: String::new(),
                    });
                }
                Err(e) => {
                    let _ = stream.abort();
                    return Err(libvirt_error(what(), e));
                }
            }
        }
        stream.finish().map_err(|e| libvirt_error(what(), e))?;
        Ok(out)
    }

    fn write_volume_head(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        if self.storage == Storage::LocalDir {
            return local_dir::write_head(path, bytes);
        }
        let what = || format!("writing the start of volume {}", path.display());
        let (vol, stream) = self.volume_stream(path, &what())?;
        // An upload with a length writes that range only: the file is not truncated.
        vol.upload(&stream, 0, bytes.len() as u64, 0)
            .map_err(|e| libvirt_error(what(), e))?;
        if let Err(message) = send_all(&stream, bytes) {
            let _ = stream.abort();
            return Err(Error::Libvirt {
                what: what(),
                message,
                hint: String::new(),
            });
        }
        stream.finish().map_err(|e| libvirt_error(what(), e))
    }

    fn save(&self, name: &str, to: &Path) -> Result<()> {
        let domain = self.existing(name)?;
        let path = std::ffi::CString::new(to.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Config(format!("{}: a path with a NUL byte", to.display())))?;
        save_domain(&domain, &path)
            .map_err(|e| libvirt_error(format!("saving domain '{name}' to {}", to.display()), e))
    }

    fn restore(&self, from: &Path) -> Result<()> {
        self.conn
            .restore_domain_flags(
                &from.display().to_string(),
                None,
                virt::sys::VIR_DOMAIN_SAVE_RUNNING,
            )
            .map_err(|e| libvirt_error(format!("restoring {}", from.display()), e))
    }

    fn attach_live(&self, name: &str, device_xml: &str) -> Result<()> {
        self.existing(name)?
            .attach_device_flags(device_xml, virt::sys::VIR_DOMAIN_AFFECT_LIVE)
            .map(|_| ())
            .map_err(|e| libvirt_error(format!("adding a device to running domain '{name}'"), e))
    }

    fn update_live(&self, name: &str, device_xml: &str) -> Result<()> {
        self.existing(name)?
            .update_device_flags(device_xml, virt::sys::VIR_DOMAIN_AFFECT_LIVE)
            .map_err(|e| libvirt_error(format!("changing a device of running domain '{name}'"), e))
    }

    fn reserve_address(&self, network: &str, mac: &str) -> Result<Option<String>> {
        let net = self.network(network)?;
        // Another virt-up (another user's) may take the address between the look and the
        // add: libvirt then refuses the duplicate, and the next look sees it.
        let mut last = None;
        for _ in 0..5 {
            let xml = net
                .xml_desc(0)
                .map_err(|e| libvirt_error(format!("network '{network}'"), e))?;
            let leases = dhcp::leases(&net)?;
            match dhcp::choose(&dhcp::ranges(&xml), &leases, mac) {
                dhcp::Choice::Reserved(ip) => return Ok(Some(ip.to_string())),
                dhcp::Choice::Nothing => return Ok(None),
                dhcp::Choice::New(ip) => {
                    match dhcp::update(&net, true, &dhcp::host_xml(mac, Some(ip))) {
                        Ok(()) => return Ok(Some(ip.to_string())),
                        Err(e) => last = Some(e),
                    }
                }
            }
        }
        Err(last.expect("five tries"))
    }

    fn release_address(&self, network: &str, mac: &str) -> Result<()> {
        let Ok(net) = self.conn.lookup_network_by_name(network) else {
            return Ok(());
        };
        match self.reserved_address(network, mac)? {
            Some(ip) => dhcp::update(&net, false, &dhcp::host_xml(mac, ip.parse().ok())),
            None => Ok(()),
        }
    }

    fn nic_forwarding(&self, name: &str, mac: &str) -> Result<Option<bool>> {
        if is_remote(&self.uri()) {
            return Ok(None);
        }
        let xml = self
            .existing(name)?
            .xml_desc(0)
            .map_err(|e| libvirt_error(format!("domain '{name}'"), e))?;
        let Some(dev) = tap_of(&xml, mac) else {
            return Ok(None);
        };
        // 3 is BR_STATE_FORWARDING.
        Ok(
            std::fs::read_to_string(format!("/sys/class/net/{dev}/brport/state"))
                .ok()
                .map(|state| state.trim() == "3"),
        )
    }

    fn agent_hostname(&self, name: &str) -> Result<Option<String>> {
        // Any failure here means "not yet": the agent is not running or not answering.
        Ok(self
            .existing(name)?
            .hostname(virt::sys::VIR_DOMAIN_GET_HOSTNAME_AGENT)
            .ok())
    }

    fn agent_macs(&self, name: &str) -> Result<Vec<String>> {
        let ifaces = self
            .existing(name)?
            .interface_addresses(virt::sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, 0)
            .map_err(|e| libvirt_error(format!("interfaces of '{name}'"), e))?;
        Ok(ifaces.into_iter().filter_map(|i| i.hwaddr).collect())
    }

    fn agent_write(&self, name: &str, file: (&str, bool), bytes: &[u8]) -> Result<()> {
        agent_file::write(&self.existing(name)?, name, file, bytes)
    }
}

/// True for a URI with a host part (`qemu+ssh://lab2/system`): its devices are not this
/// machine's.
pub fn is_remote(uri: &str) -> bool {
    uri.split_once("://")
        .is_some_and(|(_, rest)| !rest.starts_with('/'))
}

/// The host-side device (`vnet3`) of the live domain XML's interface with `mac`, if its
/// name is a plain device name.
fn tap_of(domain_xml: &str, mac: &str) -> Option<String> {
    domain_xml.split("<interface ").skip(1).find_map(|chunk| {
        let chunk = &chunk[..chunk.find("</interface>")?];
        let has_mac = chunk
            .split("<mac address='")
            .nth(1)
            .is_some_and(|m| m.len() >= mac.len() && m[..mac.len()].eq_ignore_ascii_case(mac));
        let dev = chunk.split("<target dev='").nth(1)?.split('\'').next()?;
        let plain = !dev.is_empty()
            && dev
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && dev != "."
            && dev != "..";
        (has_mac && plain).then(|| dev.to_string())
    })
}

/// virDomainSaveFlags, which the `virt` crate does not wrap.
#[allow(unsafe_code)]
fn save_domain(
    domain: &Domain,
    path: &std::ffi::CStr,
) -> std::result::Result<(), virt::error::Error> {
    // SAFETY: the domain pointer is valid for the borrow of `domain`; the path is a
    // NUL-terminated string that outlives the call; a null dxml means "keep the XML".
    let rc = unsafe {
        virt::sys::virDomainSaveFlags(
            domain.as_ptr(),
            path.as_ptr(),
            std::ptr::null(),
            virt::sys::VIR_DOMAIN_SAVE_RUNNING,
        )
    };
    if rc < 0 {
        return Err(virt::error::Error::last_error());
    }
    Ok(())
}

/// Send all of `data` into `stream` (a send may take only part of it).
/// A blocking stream sends something or fails; never spin on a send of nothing.
fn send_all(stream: &virt::stream::Stream, mut data: &[u8]) -> Result<(), String> {
    while !data.is_empty() {
        let sent = stream.send(data).map_err(|e| e.message().to_string())?;
        match usize::try_from(sent) {
            Ok(n) if n > 0 => data = &data[n.min(data.len())..],
            _ => return Err(format!("libvirt's stream took no data ({sent})")),
        }
    }
    Ok(())
}

/// The XML of a new volume. Allocation 0: nothing is preallocated (an overlay or a seed
/// needs no more than it holds).
fn volume_xml(new: &NewVolume, capacity: u64) -> String {
    let backing = match new.source {
        VolumeSource::Overlay { backing, .. } => format!(
            "<backingStore><path>{}</path><format type='{}'/></backingStore>",
            xml_escape(&backing.path.display().to_string()),
            backing.format.as_deref().unwrap_or("qcow2")
        ),
        _ => String::new(),
    };
    // libvirt would make qcow2 version 2 (compat 0.10), for QEMUs older than any we run on.
    let compat = match new.format {
        ImageFormat::Qcow2 => "<compat>1.1</compat>",
        ImageFormat::Raw => "",
    };
    format!(
        "<volume><name>{}</name><capacity unit='bytes'>{capacity}</capacity><allocation unit='bytes'>0</allocation><target><format type='{}'/>{compat}</target>{backing}</volume>",
        xml_escape(new.name),
        new.format
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

/// A volume's path, capacity, format and backing volume, as libvirt describes it.
fn describe(vol: &StorageVol) -> std::result::Result<Volume, virt::error::Error> {
    let xml = vol.xml_desc(0)?;
    let backing = xml
        .find("<backingStore>")
        .and_then(|at| xml_text(&xml[at..], "path"))
        .map(PathBuf::from);
    // The target's format comes first: a backing store's follows it.
    let format = xml
        .find("<format type='")
        .map(|at| &xml[at + 14..])
        .and_then(|rest| rest.split('\'').next())
        .map(str::to_string);
    let info = vol.info()?;
    Ok(Volume {
        path: PathBuf::from(vol.path()?),
        capacity: info.capacity,
        allocation: info.allocation,
        format,
        backing,
    })
}

impl Libvirt {
    /// The volume at `path` and a new stream to move its bytes; errors say `what`.
    fn volume_stream(&self, path: &Path, what: &str) -> Result<(StorageVol, virt::stream::Stream)> {
        let vol = self.lookup_volume(path)?.ok_or_else(|| Error::Libvirt {
            what: what.to_string(),
            message: "no such volume".into(),
            hint: String::new(),
        })?;
        let stream =
            virt::stream::Stream::new(&self.conn, 0).map_err(|e| libvirt_error(what, e))?;
        Ok((vol, stream))
    }

    fn active_pool(&self, pool: &str) -> Result<StoragePool> {
        self.pool_path(pool)?;
        self.conn
            .lookup_storage_pool_by_name(pool)
            .map_err(|e| libvirt_error(format!("storage pool '{pool}'"), e))
    }

    /// The volume at `path`. libvirt's list of a pool's volumes changes only when it makes
    /// or deletes one, or refreshes the pool: a file another tool wrote into the pool's
    /// directory (a template disk of an older virt-up, which built it there) is missing from it, and one removed by hand is still in
    /// it. So a volume not found, or found but without a file (its info fails), is looked
    /// up again after one refresh of that pool.
    fn lookup_volume(&self, path: &Path) -> Result<Option<StorageVol>> {
        let text = path.display().to_string();
        let lookup = || match self.conn.lookup_storage_vol_by_path(&text) {
            Ok(v) if v.info().is_ok() => Ok(Some(v)),
            Ok(_) => Ok(None),
            Err(e)
                if e.code()
                    == virt::enumutil::Enum::Known(virt::error::ErrorNumber::NoStorageVolume) =>
            {
                Ok(None)
            }
            Err(e) => Err(libvirt_error(format!("looking up volume {text}"), e)),
        };
        if let Some(v) = lookup()? {
            return Ok(Some(v));
        }
        let dir = path
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        match self.conn.lookup_storage_pool_by_target_path(&dir) {
            Ok(pool) => {
                let _ = pool.refresh(0);
            }
            Err(_) => return Ok(None),
        }
        lookup()
    }

    fn names(&self, flags: u32) -> Result<std::collections::HashSet<String>> {
        let domains = self
            .conn
            .list_all_domains(flags)
            .map_err(|e| libvirt_error("listing domains", e))?;
        Ok(domains.iter().filter_map(|d| d.name().ok()).collect())
    }
}

/// The text of the first `<tag>` element in a small libvirt XML document.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml_unescape(&xml[start..end]))
}

/// Text or an attribute value of libvirt's XML, its five entities replaced (`&amp;` last,
/// so an escaped entity stays text).
fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_driver_define_start_destroy_undefine() {
        let hv = Libvirt::connect("test:///default").unwrap();
        let xml = "<domain type='test'><name>vu-unit</name><memory>1024</memory><os><type>hvm</type></os></domain>";
        hv.define(xml).unwrap();
        assert!(hv.is_defined("vu-unit").unwrap());
        hv.start("vu-unit").unwrap();
        assert!(hv.is_running("vu-unit").unwrap());
        hv.destroy("vu-unit").unwrap();
        assert!(!hv.is_running("vu-unit").unwrap());
        hv.undefine("vu-unit").unwrap();
        assert!(!hv.is_defined("vu-unit").unwrap());
        // Idempotent on a missing domain.
        hv.destroy("vu-unit").unwrap();
        hv.undefine("vu-unit").unwrap();
    }

    #[test]
    fn test_driver_pool_and_network() {
        let hv = Libvirt::connect("test:///default").unwrap();
        assert_eq!(
            hv.pool_path("default-pool").unwrap(),
            PathBuf::from("/default-pool")
        );
        let err = hv.pool_path("nope").unwrap_err().to_string();
        assert!(
            err.contains("storage pool 'nope'") && err.contains("pool-define-as"),
            "{err}"
        );
        assert_eq!(hv.ensure_network("default").unwrap(), None);
        let err = hv.ensure_network("nope").unwrap_err().to_string();
        assert!(err.contains("virsh net-start nope"), "{err}");
    }

    #[test]
    fn virt_ups_own_network_is_made_once_started_and_autostarted() {
        let hv = Libvirt::connect("test:///default").unwrap();
        let made = hv.ensure_network(own_network::NAME).unwrap();
        // The test driver's own 'default' holds 192.168.122.0/24: the first of ours is free.
        assert_eq!(
            made,
            Some(Ipv4Addr::new(192, 168, 124, 1)),
            "made on first use"
        );
        let net = hv.conn.lookup_network_by_name(own_network::NAME).unwrap();
        let xml = net.xml_desc(0).unwrap();
        assert!(xml.contains("stp='off'"), "{xml}");
        assert!(net.is_active().unwrap() && net.autostart().unwrap());
        assert_eq!(hv.ensure_network(own_network::NAME).unwrap(), None);
        // Stopped behind our back: started again, not made again.
        net.destroy().unwrap();
        assert_eq!(hv.ensure_network(own_network::NAME).unwrap(), None);
        assert!(net.is_active().unwrap());
        net.destroy().unwrap();
        net.undefine().unwrap();
    }

    #[test]
    fn a_host_where_networks_cannot_be_defined_gets_an_error_that_says_what_to_set() {
        let hv = Libvirt {
            conn: Connect::open_read_only(Some("test:///default")).unwrap(),
            storage: Storage::Api,
        };
        let err = hv
            .ensure_network(own_network::NAME)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("making virt-up's network 'virt-up'") && err.contains("network = default"),
            "{err}"
        );
        assert!(
            hv.conn.lookup_network_by_name(own_network::NAME).is_err(),
            "nothing left"
        );
    }

    #[test]
    fn test_driver_volumes_through_the_storage_api() {
        let hv = Libvirt::connect_storage_api("test:///default").unwrap();
        let new = |name, source| NewVolume {
            pool: "default-pool",
            name,
            format: ImageFormat::Qcow2,
            source,
        };
        let base = hv
            .create_volume(&new(
                "vu-base.qcow2",
                VolumeSource::Empty { capacity: 1 << 20 },
            ))
            .unwrap();
        assert_eq!(base.path, PathBuf::from("/default-pool/vu-base.qcow2"));
        let overlay = VolumeSource::Overlay {
            backing: &base,
            capacity: None,
        };
        let clone = hv.create_volume(&new("vu-clone.qcow2", overlay)).unwrap();
        assert_eq!(clone.backing.as_deref(), Some(base.path.as_path()));
        assert_eq!(
            (clone.capacity, clone.format.as_deref()),
            (1 << 20, Some("qcow2"))
        );
        assert_eq!(hv.volume(&clone.path).unwrap(), Some(clone.clone()));
        assert!(hv.pool_capacity("default-pool").unwrap().capacity > 0);
        hv.delete_volume(&clone.path).unwrap();
        assert_eq!(hv.volume(&clone.path).unwrap(), None);
        // Deleting what is not there is no error.
        hv.delete_volume(&clone.path).unwrap();
        let err = hv
            .upload_volume(&base.path, Path::new("/etc/hostname"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported"), "{err}");
    }

    /// The test driver reports its node's free memory as a real host does (in bytes).
    #[test]
    fn test_driver_reports_free_memory() {
        let hv = Libvirt::connect("test:///default").unwrap();
        let free = hv.free_memory().unwrap();
        assert!(free > 0, "{free}");
        // Bytes, not KiB: the test node has gigabytes, and at most its total.
        let total = hv.conn.node_info().unwrap().memory * 1024;
        assert!(
            free <= total && free >= 1 << 20,
            "free {free}, total {total}"
        );
    }

    #[test]
    fn dead_daemon_says_how_to_start_it() {
        let err = Libvirt::connect("qemu+unix:///system?socket=/nonexistent/sock")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("libvirtd -d"), "{err}");
    }

    #[test]
    fn only_a_uri_with_a_host_is_remote() {
        assert!(is_remote("qemu+ssh://root@lab2/system"));
        assert!(is_remote("qemu+tcp://10.0.0.2:16509/system"));
        assert!(!is_remote("qemu:///system"));
        assert!(!is_remote("test:///default"));
    }

    #[test]
    fn the_tap_of_a_nic_is_found_by_its_mac_and_must_be_a_plain_name() {
        let xml = "<domain><devices>\
            <interface type='network'><mac address='52:54:00:00:00:01'/><target dev='vnet3'/></interface>\
            <interface type='network'><mac address='52:54:00:00:00:02'/><target dev='../x'/></interface>\
            </devices></domain>";
        assert_eq!(tap_of(xml, "52:54:00:00:00:01").as_deref(), Some("vnet3"));
        assert_eq!(tap_of(xml, "52:54:00:00:00:02"), None, "not a device name");
        assert_eq!(tap_of(xml, "52:54:00:00:00:03"), None);
    }

    #[test]
    fn xml_text_unescapes() {
        assert_eq!(
            xml_text(
                "<pool><target><path>/a&amp;b</path></target></pool>",
                "path"
            )
            .as_deref(),
            Some("/a&b")
        );
    }
}
