//! A whole instance create in this process, through `Context` on libvirt's test driver with
//! volumes made by libvirt's storage API (not the file stand-in the binary tests get): the
//! clone is a volume whose backing store is the template, the seed is a raw volume with
//! the identity uploaded into it, and a failed create deletes both.
//!
//! The test driver cannot upload (virStorageVolUpload is "not supported by the connection
//! driver"), so a decorator records uploaded bytes instead; every other call reaches libvirt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use virt_up::config::plan::{self, Overrides};
use virt_up::config::Config;
use virt_up::context::{Context, Ui};
use virt_up::hypervisor::{
    DomainNames, GuestAddress, Hypervisor, Libvirt, LibvirtAddressSource, NewVolume, PoolCapacity,
    Volume, VolumeSource,
};
use virt_up::paths::Paths;
use virt_up::records::Record;
use virt_up::Result;

/// libvirt's test driver, with uploads recorded and the disks seen at `define`.
struct Recorder {
    inner: Libvirt,
    uploads: Mutex<Vec<(PathBuf, Vec<u8>)>>,
    /// The instance disk's volume when its domain was defined.
    defined_with: Mutex<Vec<Option<Volume>>>,
    /// The domain XML of each define libvirt accepted.
    defined: Mutex<Vec<String>>,
    /// At each define, the address the network has reserved for the domain's MAC.
    reserved_at_define: Mutex<Vec<Option<String>>>,
    /// Make release_address fail, as on a network virt-up may not change.
    fail_release: std::sync::atomic::AtomicBool,
    /// Make reserve_address fail likewise.
    fail_reserve: std::sync::atomic::AtomicBool,
    watch: PathBuf,
    /// The URI it says it has: another machine's (`qemu+ssh://…`) stands for a remote host.
    uri: Option<String>,
}

impl Hypervisor for Recorder {
    fn uri(&self) -> String {
        self.uri.clone().unwrap_or_else(|| self.inner.uri())
    }
    fn pool_path(&self, pool: &str) -> Result<PathBuf> {
        self.inner.pool_path(pool)
    }
    fn ensure_network(&self, network: &str) -> Result<Option<std::net::Ipv4Addr>> {
        self.inner.ensure_network(network)
    }
    fn define(&self, xml: &str) -> Result<()> {
        // libvirt's volume, not a file written behind its back.
        assert!(
            !self.watch.exists(),
            "the clone is a file in the pool directory"
        );
        let volume = self.inner.volume(&self.watch)?;
        self.defined_with.lock().unwrap().push(volume);
        let mac = xml
            .split("<mac address='")
            .nth(1)
            .and_then(|m| m.split('\'').next());
        let reserved = self
            .inner
            .reserved_address("virt-up", mac.unwrap_or_default())?;
        self.reserved_at_define.lock().unwrap().push(reserved);
        self.inner.define(xml)?;
        self.defined.lock().unwrap().push(xml.to_string());
        Ok(())
    }
    fn start(&self, name: &str) -> Result<()> {
        self.inner.start(name)
    }
    fn set_autostart(&self, name: &str, on: bool) -> Result<()> {
        self.inner.set_autostart(name, on)
    }
    fn is_defined(&self, name: &str) -> Result<bool> {
        self.inner.is_defined(name)
    }
    fn is_running(&self, name: &str) -> Result<bool> {
        self.inner.is_running(name)
    }
    fn uuid(&self, name: &str) -> Result<String> {
        self.inner.uuid(name)
    }
    fn shutdown(&self, name: &str) -> Result<()> {
        self.inner.shutdown(name)
    }
    fn destroy(&self, name: &str) -> Result<()> {
        self.inner.destroy(name)
    }
    fn undefine(&self, name: &str) -> Result<()> {
        self.inner.undefine(name)
    }
    fn addresses(&self, name: &str, source: LibvirtAddressSource) -> Result<Vec<GuestAddress>> {
        self.inner.addresses(name, source)
    }
    fn domains(&self) -> Result<DomainNames> {
        self.inner.domains()
    }
    fn create_volume(&self, new: &NewVolume) -> Result<Volume> {
        self.inner.create_volume(new)
    }
    fn upload_volume(&self, volume: &Path, from: &Path) -> Result<()> {
        assert!(
            self.inner.volume(volume)?.is_some(),
            "upload into no volume"
        );
        let bytes = std::fs::read(from).unwrap();
        self.uploads
            .lock()
            .unwrap()
            .push((volume.to_path_buf(), bytes));
        Ok(())
    }
    fn delete_volume(&self, path: &Path) -> Result<()> {
        self.inner.delete_volume(path)
    }
    fn volume(&self, path: &Path) -> Result<Option<Volume>> {
        self.inner.volume(path)
    }
    fn pool_capacity(&self, pool: &str) -> Result<PoolCapacity> {
        self.inner.pool_capacity(pool)
    }
    fn free_memory(&self) -> Result<u64> {
        self.inner.free_memory()
    }
    fn read_volume_head(&self, path: &Path, length: u64) -> Result<Vec<u8>> {
        self.inner.read_volume_head(path, length)
    }
    fn write_volume_head(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.inner.write_volume_head(path, bytes)
    }
    fn save(&self, name: &str, to: &Path) -> Result<()> {
        self.inner.save(name, to)
    }
    fn restore(&self, from: &Path) -> Result<()> {
        self.inner.restore(from)
    }
    fn attach_live(&self, name: &str, device_xml: &str) -> Result<()> {
        self.inner.attach_live(name, device_xml)
    }
    fn update_live(&self, name: &str, device_xml: &str) -> Result<()> {
        self.inner.update_live(name, device_xml)
    }
    fn reserve_address(&self, network: &str, mac: &str) -> Result<Option<String>> {
        if self.fail_reserve.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(virt_up::Error::Config("network is read-only".into()));
        }
        self.inner.reserve_address(network, mac)
    }
    fn release_address(&self, network: &str, mac: &str) -> Result<()> {
        if self.fail_release.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(virt_up::Error::Config("network is read-only".into()));
        }
        self.inner.release_address(network, mac)
    }
    fn nic_forwarding(&self, name: &str, mac: &str) -> Result<Option<bool>> {
        self.inner.nic_forwarding(name, mac)
    }
    fn create_snapshot(&self, name: &str, snapshot: &str, disk: &Path) -> Result<()> {
        self.inner.create_snapshot(name, snapshot, disk)
    }
    fn snapshots(&self, name: &str) -> Result<Vec<virt_up::hypervisor::Snapshot>> {
        self.inner.snapshots(name)
    }
    fn revert_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        self.inner.revert_snapshot(name, snapshot)
    }
    fn delete_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        self.inner.delete_snapshot(name, snapshot)
    }
    fn agent_hostname(&self, name: &str) -> Result<Option<String>> {
        self.inner.agent_hostname(name)
    }
    fn agent_macs(&self, name: &str) -> Result<Vec<String>> {
        self.inner.agent_macs(name)
    }
    fn agent_write(&self, name: &str, file: (&str, bool), bytes: &[u8]) -> Result<()> {
        self.inner.agent_write(name, file, bytes)
    }
}

struct World {
    dir: tempfile::TempDir,
    hv: Arc<Recorder>,
    ctx: Context,
    template: Record,
}

const GIB: u64 = 1 << 30;

/// A context on the test driver (its pool in the tempdir) with a built qcow2 template of
/// 1 GiB: a volume created through the API and its record.
fn world() -> World {
    world_with("")
}

/// [`world`], with more settings of the template.
fn world_with(template_settings: &str) -> World {
    world_on(template_settings, "")
}

/// [`world_with`] on a network whose `<ip>` element holds `dhcp`.
fn world_on(template_settings: &str, dhcp: &str) -> World {
    world_at(template_settings, dhcp, None)
}

/// [`world_on`], the libvirt host saying its URI is `uri`.
fn world_at(template_settings: &str, dhcp: &str, uri: Option<&str>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let path = |rel: &str| dir.path().join(rel);
    for d in ["pool", "config", "data", "run"] {
        std::fs::create_dir_all(path(d)).unwrap();
    }
    let fixture = format!(
        "<node><network><name>virt-up</name><bridge name='virbr0'/><forward/>\
         <ip address='192.168.122.1' netmask='255.255.255.0'>{dhcp}</ip></network>\
         <pool type='dir'><name>default</name><target><path>{}</path></target></pool></node>",
        path("pool").display()
    );
    std::fs::write(path("node.xml"), fixture).unwrap();
    let inner =
        Libvirt::connect_storage_api(&format!("test://{}", path("node.xml").display())).unwrap();
    let hv = Arc::new(Recorder {
        inner,
        uploads: Mutex::default(),
        defined_with: Mutex::default(),
        defined: Mutex::default(),
        reserved_at_define: Mutex::default(),
        fail_release: Default::default(),
        fail_reserve: Default::default(),
        watch: path("pool/web1.qcow2"),
        uri: uri.map(str::to_string),
    });
    let env: HashMap<&str, PathBuf> = [
        ("HOME", path("home")),
        ("VIRTUP_CONFIG_HOME", path("config")),
        ("VIRTUP_SYSTEM_CONFIG", path("system")),
        ("VIRTUP_DATA_HOME", path("data")),
        ("VIRTUP_CACHE_HOME", path("cache")),
        ("XDG_RUNTIME_DIR", path("run")),
    ]
    .into();
    let paths = Paths::from_env(&|k| env.get(k).map(|p| p.display().to_string())).unwrap();
    let mut config = Config::default();
    let settings = "[common]\nvirt-type = qemu\naddress-source = arp\naddress-timeout = 1\n";
    config
        .add_text(&path("config/settings.cfg"), settings, false)
        .unwrap();
    config
        .add_text(
            &path("config/templates.d/t.cfg"),
            &format!("[deb]\nos-version = x\n{template_settings}"),
            true,
        )
        .unwrap();
    let base = hv
        .create_volume(&NewVolume {
            pool: "default",
            name: "TEMPLATE-deb.qcow2",
            format: plan::ImageFormat::Qcow2,
            source: VolumeSource::Empty { capacity: GIB },
        })
        .unwrap();
    let template: Record = serde_json::from_value(serde_json::json!({
        "name": "TEMPLATE-deb", "template": "deb", "created": "2026-01-01T00:00:00Z",
        "phase": "ready", "pid": 1, "os_version": "x", "hostname": "template-deb",
        "domain": "TEMPLATE-deb", "disk": base.path, "format": "qcow2", "memory": 512,
        "vcpus": 1, "graphics": "none",
        "root": {"username": "root", "ssh_identity": "/k"},
        "user": {"username": "virt", "ssh_identity": "/k"}, "address-source": "arp",
        "ssh_options": {}, "mac": "52:54:00:00:00:01", "uri": "test:///default",
        "identity": "firstboot", "console_log": "/c.log", "inventory": false
    }))
    .unwrap();
    std::fs::write(path("neighbours"), "").unwrap();
    let hypervisor: Arc<dyn Hypervisor> = hv.clone();
    let mut ctx = Context::with_hypervisor(paths, config, hypervisor, Ui::default()).unwrap();
    ctx.neighbours = path("neighbours");
    World {
        dir,
        hv,
        ctx,
        template,
    }
}

impl World {
    fn create(&self, given: Overrides) -> virt_up::Error {
        let plan = plan::instance(&self.ctx.config, &self.ctx.paths, "deb", &given).unwrap();
        // The test driver's guest never gets an address: the create runs to the end of its
        // boot and then fails, which also shows its cleanup.
        virt_up::instance::create(&self.ctx, &plan, "web1", &self.template).unwrap_err()
    }

    fn pool(&self, name: &str) -> PathBuf {
        self.dir.path().join("pool").join(name)
    }
}

#[test]
fn a_qcow2_clone_is_a_volume_backed_by_the_template_and_the_seed_is_uploaded() {
    let w = world();
    let err = w.create(Overrides::default());
    assert!(err.to_string().contains("timed out"), "{err}");

    let defined_with = w.hv.defined_with.lock().unwrap();
    let clone = defined_with[0]
        .as_ref()
        .expect("the clone existed at define");
    assert_eq!(clone.backing.as_deref(), Some(w.template.disk.as_path()));
    assert_eq!(clone.format.as_deref(), Some("qcow2"));
    assert_eq!(clone.capacity, GIB, "as large as the template");

    let uploads = w.hv.uploads.lock().unwrap();
    assert_eq!(uploads.len(), 1);
    let (seed, bytes) = &uploads[0];
    assert_eq!(seed, &w.pool("web1-seed.tar"));
    let mut archive = tar::Archive::new(&bytes[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"hostname".to_string()), "{names:?}");
    assert!(
        names.contains(&"ssh_host_ed25519_key".to_string()),
        "{names:?}"
    );

    // The failed create deleted its volumes through libvirt, not the template's.
    assert_eq!(w.hv.volume(&w.pool("web1.qcow2")).unwrap(), None);
    assert_eq!(w.hv.volume(&w.pool("web1-seed.tar")).unwrap(), None);
    assert!(w.hv.volume(&w.template.disk).unwrap().is_some());
    assert!(
        !w.pool("web1.qcow2").exists(),
        "no file behind libvirt's back"
    );
}

/// A range of two addresses, the first reserved for another MAC.
const DHCP: &str = "<dhcp><range start='192.168.122.10' end='192.168.122.11'/>\
    <host mac='52:54:00:00:00:99' ip='192.168.122.10'/></dhcp>";

#[test]
fn the_instance_has_a_free_address_reserved_while_it_exists_and_released_with_it() {
    let w = world_on("", DHCP);
    w.create(Overrides::default());
    assert_eq!(
        *w.hv.reserved_at_define.lock().unwrap(),
        [Some("192.168.122.11".to_string())],
        "the one address nobody has"
    );
    // The failed create removed its reservation: the address is free again.
    assert_eq!(
        w.hv.reserve_address("virt-up", "52:54:00:00:00:77")
            .unwrap()
            .as_deref(),
        Some("192.168.122.11")
    );
}

#[test]
fn a_reservation_that_cannot_be_released_does_not_stop_the_cleanup() {
    let w = world_on("", DHCP);
    w.hv.fail_release
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = w.create(Overrides::default());
    assert!(
        err.to_string().contains("timed out"),
        "the create's own error: {err}"
    );
    assert_eq!(w.hv.volume(&w.pool("web1.qcow2")).unwrap(), None);
    assert_eq!(w.hv.volume(&w.pool("web1-seed.tar")).unwrap(), None);
    assert!(
        w.ctx.store.load("web1").unwrap().is_none(),
        "no record left"
    );
}

#[test]
fn a_network_that_refuses_a_reservation_gives_a_dynamic_address_not_a_failed_create() {
    let w = world_on("", DHCP);
    w.hv.fail_reserve
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = w.create(Overrides::default());
    assert!(
        err.to_string().contains("timed out"),
        "got as far as the boot: {err}"
    );
    assert_eq!(*w.hv.reserved_at_define.lock().unwrap(), [None]);
}

#[test]
fn fixed_address_no_reserves_nothing_and_a_full_range_only_goes_without() {
    let w = world_on("fixed-address = no\n", DHCP);
    w.create(Overrides::default());
    assert_eq!(*w.hv.reserved_at_define.lock().unwrap(), [None]);

    let w = world_on("", DHCP);
    // Both addresses taken: the instance is still made, with a dynamic address.
    w.hv.reserve_address("virt-up", "52:54:00:00:00:77")
        .unwrap();
    let err = w.create(Overrides::default());
    assert!(
        err.to_string().contains("timed out"),
        "got as far as the boot: {err}"
    );
    assert_eq!(*w.hv.reserved_at_define.lock().unwrap(), [None]);
}

#[test]
fn size_grows_the_clone_and_a_smaller_one_is_refused() {
    let w = world();
    w.create(Overrides {
        size: Some("1.5G".into()),
        ..Default::default()
    });
    let defined_with = w.hv.defined_with.lock().unwrap();
    assert_eq!(defined_with[0].as_ref().unwrap().capacity, 3 * GIB / 2);
    drop(defined_with);

    let err = w.create(Overrides {
        size: Some("512M".into()),
        ..Default::default()
    });
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string()
            .contains("--size \"512M\": expected at least the template's disk size"),
        "{err}"
    );
}

#[test]
fn virt_install_args_devices_are_in_the_defined_domain_once() {
    let w = world_with(
        "virt-install-args = --channel unix,target.type=virtio,name=org.example.test.0\n    \
         --rng /dev/random --watchdog i6300esb --features kvm_hidden=on\n",
    );
    w.create(Overrides::default());
    let defined = w.hv.defined.lock().unwrap();
    let xml = &defined[0];
    assert!(
        xml.contains("name=\"org.example.test.0\""),
        "the channel: {xml}"
    );
    assert!(
        xml.contains("<backend model=\"random\">/dev/random</backend>"),
        "the rng: {xml}"
    );
    assert_eq!(
        xml.matches("<rng").count(),
        1,
        "virt-up's rng replaced: {xml}"
    );
    assert!(xml.contains("<watchdog model=\"i6300esb\""), "{xml}");
    assert!(xml.contains("<hidden state=\"on\"/>"), "{xml}");
    // What virt-up manages is there once, virt-install's test-driver defaults not at all.
    assert_eq!(xml.matches("<interface").count(), 1, "{xml}");
    assert_eq!(xml.matches("<disk").count(), 2, "root and seed: {xml}");
    assert_eq!(xml.matches("<console").count(), 1, "{xml}");
    assert_eq!(xml.matches("org.qemu.guest_agent.0").count(), 1, "{xml}");
    assert!(!xml.contains("test-hv") && !xml.contains("ich9"), "{xml}");
}

const LAB2: &str = "qemu+ssh://root@lab2/system";

/// On a remote host, what reads this machine's files is refused before anything is made:
/// its neighbour table has no entries for that host's guests.
#[test]
fn a_remote_host_refuses_address_source_arp_before_anything_is_made() {
    let w = world_at("address-source = arp\n", "", Some(LAB2));
    let err = w.create(Overrides::default());
    let text = err.to_string();
    assert!(
        text.contains("address-source = arp") && text.contains(LAB2),
        "{text}"
    );
    assert!(w.hv.defined.lock().unwrap().is_empty());
    assert!(w.hv.uploads.lock().unwrap().is_empty());
    assert_eq!(w.hv.volume(&w.pool("web1.qcow2")).unwrap(), None);
    assert!(w.ctx.store.load("web1").unwrap().is_none(), "no record");
}

#[test]
fn a_remote_host_refuses_identity_sysprep() {
    let w = world_at(
        "address-source = lease\nidentity = sysprep\n",
        "",
        Some(LAB2),
    );
    let text = w.create(Overrides::default()).to_string();
    assert!(
        text.contains("identity = sysprep") && text.contains("firstboot"),
        "{text}"
    );
    assert!(w.hv.defined.lock().unwrap().is_empty());
}

/// The console log of a guest on a remote host is written there, by its virtlogd: a path
/// of that host's, not one under this machine's data dir.
#[test]
fn a_remote_guest_logs_its_console_on_its_host() {
    // The test driver's guest has a lease at once; its SSH server is looked for through
    // root@lab2, a host that does not exist: said at once, not waited for.
    let w = world_at(
        "address-source = lease\nssh-timeout = 300\n",
        "",
        Some(LAB2),
    );
    let started = std::time::Instant::now();
    let err = w.create(Overrides::default());
    let text = err.to_string();
    assert!(
        text.contains("reached through root@lab2, and ssh to that host failed"),
        "{text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "{text}"
    );
    assert_eq!(
        w.hv.volume(&w.pool("web1.qcow2")).unwrap(),
        None,
        "cleaned up"
    );
    let defined = w.hv.defined.lock().unwrap();
    assert!(
        defined[0].contains("<log file='/var/log/libvirt/qemu/web1-console.log'"),
        "{}",
        defined[0]
    );
    assert!(w.ctx.is_remote());
    assert_eq!(w.ctx.jump.as_deref(), Some("root@lab2"));
    assert_eq!(w.ctx.template_stem("deb"), "TEMPLATE-deb@lab2");
}
