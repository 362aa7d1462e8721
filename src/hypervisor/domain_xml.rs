//! Domain XML built in code (no virt-install): a plain builder whose output has unit tests.
//! Every user-influenced value is escaped, although names are validated before they get here.

use std::fmt::Write;
use std::path::PathBuf;

/// The XML namespace of the metadata element that marks domains as ours.
pub const METADATA_NS: &str = "https://github.com/virt-up/virt-up/xmlns/1";

#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    pub path: PathBuf,
    pub format: String,
    /// The guest can read but never write it (templates, seeds).
    pub readonly: bool,
    /// virtio-blk serial number, visible in the guest as /sys/block/vdX/serial.
    pub serial: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DomainSpec {
    pub name: String,
    /// The domain's UUID; None lets libvirt choose one.
    pub uuid: Option<String>,
    /// `kvm` or `qemu` (TCG).
    pub virt_type: String,
    pub arch: String,
    pub machine: Option<String>,
    /// `<cpu>` mode or model: None means the hypervisor's default.
    pub cpu: Option<String>,
    pub memory_mib: u64,
    pub vcpus: u64,
    pub disks: Vec<Disk>,
    pub network: String,
    pub mac: String,
    pub nic: Nic,
    /// A VM generation ID device (`<genid/>`): a guest restored from saved memory learns
    /// it is a new one, and its kernel reseeds its random number generator.
    pub genid: bool,
    pub graphics: String,
    pub video: Option<String>,
    pub rng: bool,
    pub console_log: PathBuf,
    /// The template the domain belongs to, recorded in the domain's metadata.
    pub template: String,
    /// Host directories shared through virtiofs; with any, the guest's memory is shared
    /// (memfd) as virtiofsd needs it.
    pub filesystems: Vec<Filesystem>,
    /// What virt-install made of virt-install-args, merged in (see [`Extra`]).
    pub extra: Extra,
}

/// A host directory shared with the guest through virtiofs, as libvirt runs it: its
/// virtiofsd, the directory, and the tag the guest mounts it by.
#[derive(Debug, Clone, PartialEq)]
pub struct Filesystem {
    pub binary: PathBuf,
    pub source: PathBuf,
    pub tag: String,
}

impl Filesystem {
    pub fn to_xml(&self) -> String {
        let e = escape;
        format!(
            "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs' queue='1024'/><binary path='{}'/><source dir='{}'/><target dir='{}'/></filesystem>",
            e(&self.binary.display().to_string()),
            e(&self.source.display().to_string()),
            e(&self.tag)
        )
    }
}

/// Elements `virt-install --print-xml` made for the template's virt-install-args, kept as
/// virt-install wrote them, to merge into the domain virt-up builds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// Top-level elements. One virt-up writes too (`cpu`, `clock`, `on_poweroff`,
    /// `on_reboot`, `on_crash`) replaces virt-up's.
    pub elements: Vec<Element>,
    /// Children of `<features>`, after virt-up's own; one named like one of those (`acpi`,
    /// `apic`) replaces it.
    pub features: Vec<Element>,
    /// Devices, after virt-up's own; an `rng`, `video` or `memballoon` replaces virt-up's.
    pub devices: Vec<Element>,
}

/// One XML element, its name and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub xml: String,
}

impl Extra {
    fn element(&self, name: &str) -> Option<&Element> {
        self.elements.iter().find(|e| e.name == name)
    }

    fn has_feature(&self, name: &str) -> bool {
        self.features.iter().any(|e| e.name == name)
    }

    fn has_device(&self, name: &str) -> bool {
        self.devices.iter().any(|e| e.name == name)
    }
}

/// Elements virt-up writes itself and an [`Extra`] element of the same name replaces.
const REPLACEABLE: &[&str] = &["cpu", "clock", "on_poweroff", "on_reboot", "on_crash"];

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

impl DomainSpec {
    pub fn to_xml(&self) -> String {
        let e = escape;
        let mut x = String::new();
        let _ = writeln!(x, "<domain type='{}'>", e(&self.virt_type));
        let _ = writeln!(x, "  <name>{}</name>", e(&self.name));
        if let Some(uuid) = &self.uuid {
            let _ = writeln!(x, "  <uuid>{}</uuid>", e(uuid));
        }
        if self.genid {
            x.push_str("  <genid/>\n");
        }
        let _ = writeln!(
            x,
            "  <metadata><virtup:domain xmlns:virtup='{METADATA_NS}' template='{}'/></metadata>",
            e(&self.template)
        );
        let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", self.memory_mib);
        if !self.filesystems.is_empty() && self.extra.element("memoryBacking").is_none() {
            // virtiofsd maps the guest's memory: it must be shared, not private to QEMU.
            x.push_str(
                "  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>\n",
            );
        }
        let _ = writeln!(x, "  <vcpu>{}</vcpu>", self.vcpus);
        let machine = self
            .machine
            .as_ref()
            .map(|m| format!(" machine='{}'", e(m)))
            .unwrap_or_default();
        let _ = writeln!(
            x,
            "  <os><type arch='{}'{machine}>hvm</type><boot dev='hd'/></os>",
            e(&self.arch)
        );
        x.push_str("  <features>");
        for own in ["acpi", "apic"] {
            if !self.extra.has_feature(own) {
                let _ = write!(x, "<{own}/>");
            }
        }
        for feature in &self.extra.features {
            let _ = write!(x, "\n    {}", feature.xml);
        }
        x.push_str("</features>\n");
        let mut own = |name: &str, xml: &str| match self.extra.element(name) {
            Some(theirs) => {
                let _ = writeln!(x, "  {}", theirs.xml);
            }
            None => x.push_str(xml),
        };
        let cpu = match self.cpu.as_deref() {
            None => String::new(),
            Some(mode @ ("host-passthrough" | "host-model")) => format!("  <cpu mode='{mode}'/>\n"),
            Some(model) => format!(
                "  <cpu mode='custom' match='exact'><model fallback='allow'>{}</model></cpu>\n",
                e(model)
            ),
        };
        own("cpu", &cpu);
        own("clock", "  <clock offset='utc'/>\n");
        own("on_poweroff", "  <on_poweroff>destroy</on_poweroff>\n");
        own("on_reboot", "  <on_reboot>restart</on_reboot>\n");
        own("on_crash", "  <on_crash>destroy</on_crash>\n");
        for element in &self.extra.elements {
            if !REPLACEABLE.contains(&element.name.as_str()) {
                let _ = writeln!(x, "  {}", element.xml);
            }
        }
        x.push_str("  <devices>\n");
        for (i, disk) in self.disks.iter().enumerate() {
            let _ = writeln!(x, "    {}", disk.to_xml(i));
        }
        match self.nic {
            Nic::Up => {
                let _ = writeln!(x, "    {}", interface_xml(&self.network, &self.mac));
            }
            Nic::LinkDown => {
                let nic = interface_xml_link(&self.network, &self.mac, false);
                let _ = writeln!(x, "    {nic}");
            }
            Nic::Absent => {}
        }
        let _ = writeln!(
            x,
            "    <serial type='pty'><log file='{}' append='off'/><target port='0'/></serial>",
            e(&self.console_log.display().to_string())
        );
        x.push_str("    <console type='pty'><target type='serial' port='0'/></console>\n");
        x.push_str("    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\n");
        if self.rng && !self.extra.has_device("rng") {
            x.push_str(
                "    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\n",
            );
        }
        if self.graphics != "none" {
            let _ = writeln!(
                x,
                "    <graphics type='{}' autoport='yes' listen='127.0.0.1'/>",
                e(&self.graphics)
            );
        }
        if let Some(video) = self
            .video
            .as_ref()
            .or((self.graphics != "none").then_some(&"virtio".to_string()))
            .filter(|_| !self.extra.has_device("video"))
        {
            let _ = writeln!(x, "    <video><model type='{}'/></video>", e(video));
        }
        for fs in &self.filesystems {
            let _ = writeln!(x, "    {}", fs.to_xml());
        }
        for device in &self.extra.devices {
            let _ = writeln!(x, "    {}", device.xml);
        }
        if !self.extra.has_device("memballoon") {
            x.push_str("    <memballoon model='virtio'/>\n");
        }
        x.push_str("  </devices>\n</domain>\n");
        x
    }
}

/// A domain's network interface (on [`DomainSpec::network`], with its MAC).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Nic {
    #[default]
    Up,
    /// Its link down: a warm template's boot, parked before it has a network identity
    /// (each clone's guest is given its own MAC, then the link comes up).
    LinkDown,
    /// None: a warm template's boot whose agent cannot give a clone's guest its MAC (a
    /// template built by an older virt-up): its clones' NICs are plugged in.
    Absent,
}

/// A virtio NIC on a libvirt network, with its MAC.
pub fn interface_xml(network: &str, mac: &str) -> String {
    interface_with_link(network, mac, "")
}

/// The NIC of [`interface_xml`] with its link (as the guest sees it) up or down.
pub fn interface_xml_link(network: &str, mac: &str, up: bool) -> String {
    let state = if up { "up" } else { "down" };
    interface_with_link(network, mac, &format!("<link state='{state}'/>"))
}

fn interface_with_link(network: &str, mac: &str, link: &str) -> String {
    format!(
        "<interface type='network'><source network='{}'/><mac address='{}'/><model type='virtio'/>{link}</interface>",
        escape(network),
        escape(mac)
    )
}

impl Disk {
    /// The disk as the `index`th virtio disk (vda, vdb, ...).
    pub fn to_xml(&self, index: usize) -> String {
        let e = escape;
        let target = format!("vd{}", (b'a' + index as u8) as char);
        let mut x = format!(
            "<disk type='file' device='disk'><driver name='qemu' type='{}'/><source file='{}'/><target dev='{target}' bus='virtio'/>",
            e(&self.format),
            e(&self.path.display().to_string())
        );
        if let Some(serial) = &self.serial {
            let _ = write!(x, "<serial>{}</serial>", e(serial));
        }
        if self.readonly {
            x.push_str("<readonly/>");
        }
        x.push_str("</disk>");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "web1".into(),
            uuid: None,
            virt_type: "qemu".into(),
            arch: "x86_64".into(),
            machine: None,
            cpu: None,
            memory_mib: 1024,
            vcpus: 2,
            disks: vec![
                Disk {
                    path: "/pool/web1.qcow2".into(),
                    format: "qcow2".into(),
                    readonly: false,
                    serial: None,
                },
                Disk {
                    path: "/pool/web1-seed.tar".into(),
                    format: "raw".into(),
                    readonly: true,
                    serial: Some("virtup-seed".into()),
                },
            ],
            network: "default".into(),
            mac: "52:54:00:01:02:03".into(),
            nic: Nic::Up,
            genid: false,
            graphics: "none".into(),
            video: None,
            rng: true,
            console_log: "/data/console/web1.log".into(),
            template: "deb".into(),
            filesystems: Vec::new(),
            extra: Extra::default(),
        }
    }

    #[test]
    fn instance_xml_has_type_disks_mac_console_log_and_agent() {
        let xml = spec().to_xml();
        assert!(
            xml.starts_with("<domain type='qemu'>\n  <name>web1</name>\n"),
            "{xml}"
        );
        assert!(xml.contains("<memory unit='MiB'>1024</memory>"));
        assert!(xml.contains("<vcpu>2</vcpu>"));
        assert!(xml
            .contains("<source file='/pool/web1.qcow2'/><target dev='vda' bus='virtio'/></disk>"));
        assert!(xml.contains(
            "<target dev='vdb' bus='virtio'/><serial>virtup-seed</serial><readonly/></disk>"
        ));
        assert!(xml.contains("<mac address='52:54:00:01:02:03'/>"));
        assert!(xml.contains("<log file='/data/console/web1.log' append='off'/>"));
        assert!(xml.contains("name='org.qemu.guest_agent.0'"));
        assert!(!xml.contains("<graphics"));
        assert!(!xml.contains("<cpu"));
    }

    #[test]
    fn graphics_cpu_and_machine() {
        let mut s = spec();
        s.graphics = "vnc".into();
        s.cpu = Some("host-passthrough".into());
        s.machine = Some("q35".into());
        s.virt_type = "kvm".into();
        let xml = s.to_xml();
        assert!(xml.contains("<domain type='kvm'>"));
        assert!(xml.contains("<graphics type='vnc'"));
        assert!(xml.contains("<video><model type='virtio'/></video>"));
        assert!(xml.contains("<cpu mode='host-passthrough'/>"));
        assert!(xml.contains("<type arch='x86_64' machine='q35'>hvm</type>"));
    }

    #[test]
    fn a_share_is_a_virtiofs_filesystem_over_shared_memory() {
        let mut s = spec();
        assert!(!s.to_xml().contains("memoryBacking"));
        s.filesystems.push(Filesystem {
            binary: "/usr/lib/qemu/virtiofsd".into(),
            source: "/srv/a'b&c".into(),
            tag: "virtup0".into(),
        });
        let xml = s.to_xml();
        assert!(xml.contains(
            "  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>\n"
        ));
        assert!(xml.contains(
            "    <filesystem type='mount' accessmode='passthrough'><driver type='virtiofs' queue='1024'/><binary path='/usr/lib/qemu/virtiofsd'/><source dir='/srv/a&apos;b&amp;c'/><target dir='virtup0'/></filesystem>\n"
        ), "{xml}");
        // One of virt-install-args' replaces virt-up's.
        s.extra.elements.push(Element {
            name: "memoryBacking".into(),
            xml: "<memoryBacking><hugepages/></memoryBacking>".into(),
        });
        let xml = s.to_xml();
        assert_eq!(xml.matches("<memoryBacking>").count(), 1, "{xml}");
        assert!(xml.contains("<hugepages/>"));
    }

    #[test]
    fn values_are_escaped() {
        let mut s = spec();
        s.console_log = "/a'b<c>&.log".into();
        let xml = s.to_xml();
        assert!(xml.contains("file='/a&apos;b&lt;c&gt;&amp;.log'"), "{xml}");
    }
}
