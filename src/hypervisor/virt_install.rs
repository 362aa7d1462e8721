//! `virt-install-args` from existing templates. virt-up defines domains itself, through
//! libvirt; the options are honoured by asking virt-install what they mean: `virt-install
//! --print-xml --import` on libvirt's test driver (offline, nothing created, about 0.4 s),
//! once with the options and once without. What the options added or changed is merged
//! into the domain virt-up builds ([`Extra`]): devices (`--channel`, `--rng`, `--controller`,
//! `--filesystem`, `--watchdog`, `--tpm`, ...), `<features>` children, and other top-level
//! elements (`--cpu`, `--clock`, `--memorybacking`, `--cputune`, `--sysinfo`, `--events`,
//! `--qemu-commandline`, ...).
//!
//! What virt-up manages itself is refused, naming the option, before any work: the name,
//! the disks, the install (virt-up imports its clone), the boot order, memory and vCPUs
//! (settings of their own), the NIC and the display. Options are checked twice: by name
//! (below) and by what virt-install printed (so an abbreviation, `--nam x`, is caught too).
//!
//! `--machine`, `--virt-type` and `--arch` are translated into the domain (the test driver
//! cannot say what they mean on the real host); `--os-variant`, `--osinfo` and `--os-type`
//! only choose virt-install's defaults, which virt-up does not take.

use crate::error::{Error, Result};
use crate::hypervisor::domain_xml::{DomainSpec, Element, Extra};
use crate::runner::{Runner, ToolError, VirtType};
use std::ops::Range;
use std::sync::Mutex;

const SETTING: &str = "virt-install-args";

/// Options of virt-install's own workflow, with no effect on the domain virt-up defines.
const NO_OPS: &[&str] = &["--noautoconsole", "--noreboot", "--hvm", "--wait"];

/// Options translated into the domain: each takes a value.
const TRANSLATED: &[&str] = &[
    "--machine",
    "--virt-type",
    "--arch",
    "--os-variant",
    "--osinfo",
    "--os-type",
];

/// Options that conflict with what virt-up manages, and why.
const REFUSED: &[(&[&str], &str)] = &[
    (
        &["--name", "-n"],
        "virt-up names the domain after the instance",
    ),
    (
        &["--import"],
        "virt-up imports the instance's disk itself (it never runs virt-install to create it)",
    ),
    (
        &["--disk", "--filesystem-disk"],
        "virt-up attaches the instance's disk and its identity seed itself",
    ),
    (
        &[
            "--cdrom",
            "-c",
            "--location",
            "-l",
            "--pxe",
            "--install",
            "--extra-args",
            "-x",
            "--initrd-inject",
            "--unattended",
            "--cloud-init",
            "--reinstall",
        ],
        "the instance boots its imported disk: there is no install",
    ),
    (
        &["--boot"],
        "virt-up sets the domain's <os> (boot device, firmware, machine: use --machine)",
    ),
    (
        &["--memory", "--ram", "-r"],
        "set the 'memory' setting (or --memory) instead",
    ),
    (&["--vcpus"], "set the 'vcpus' setting (or --vcpus) instead"),
    (
        &["--network", "-w", "--bridge"],
        "virt-up attaches the NIC on the 'network' setting, with the MAC it keeps for the name",
    ),
    (
        &["--graphics", "--vnc", "--spice", "--nographics"],
        "set the 'graphics' setting (or --graphics) instead",
    ),
    (
        &["--connect"],
        "virt-up connects to the 'libvirt-uri' setting",
    ),
    (
        &[
            "--print-xml",
            "--dry-run",
            "--transient",
            "--autostart",
            "--autoconsole",
            "--destroy-on-exit",
            "--check",
            "--xml",
            "--uuid",
            "-u",
            "--container",
            "--paravirt",
            "-p",
            "--quiet",
            "-q",
            "--debug",
            "-d",
        ],
        "it concerns virt-install's own run, which virt-up does not make",
    ),
];

/// The name the probe domain gets, to see whether the options renamed it.
const PROBE_NAME: &str = "virtup-probe";

/// What virt-up passes virt-install itself: the test driver (offline, nothing created)
/// and the minimum an `--import --print-xml` needs.
const PROBE_ARGS: &[&str] = &[
    "--connect",
    "test:///default",
    "--print-xml",
    "--import",
    "--name",
    PROBE_NAME,
    "--memory",
    "512",
    "--vcpus",
    "1",
    "--disk",
    "none",
    "--network",
    "none",
    "--graphics",
    "none",
    "--osinfo",
    "generic",
    "--noautoconsole",
];

/// The guest agent's channel, which virt-up adds itself.
const AGENT_CHANNEL: &str = "org.qemu.guest_agent.0";

/// The options split: what is translated, and what virt-install is asked about.
#[derive(Debug, Default, PartialEq)]
struct Parsed {
    translated: Vec<(String, String)>,
    passed: Vec<String>,
}

/// Check the options before anything is built, so a bad one costs nothing: a refused
/// option is an error naming it; the rest is run through virt-install (remembered for
/// [`apply`]), so an option virt-install rejects, or a missing virt-install, is found here.
pub fn validate(args: &[String]) -> Result<()> {
    let parsed = parse(args)?;
    if !parsed.passed.is_empty() {
        probe(&parsed.passed)?;
    }
    Ok(())
}

/// Honour the options in `spec`.
pub fn apply(spec: &mut DomainSpec, args: &[String]) -> Result<()> {
    let parsed = parse(args)?;
    for (option, value) in &parsed.translated {
        // virt-install values may carry sub-options after a comma; the first is the value.
        let main = value.split(',').next().unwrap_or_default().to_string();
        match option.as_str() {
            "--machine" => spec.machine = Some(main),
            "--virt-type" => spec.virt_type = main,
            "--arch" => spec.arch = main,
            _ => {}
        }
    }
    if !parsed.passed.is_empty() {
        spec.extra = probe(&parsed.passed)?;
        if spec.extra.elements.iter().any(|e| e.name == "cpu") {
            spec.cpu = None;
        }
    }
    Ok(())
}

fn parse(args: &[String]) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let (option, inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with('-') => (o, Some(v)),
            _ => (arg.as_str(), None),
        };
        if !option.starts_with('-') || option == "-" {
            parsed.passed.push(arg.clone());
            continue;
        }
        if let Some((_, why)) = REFUSED.iter().find(|(names, _)| names.contains(&option)) {
            return Err(refused(option, why));
        }
        if NO_OPS.contains(&option) {
            // `--wait` takes an optional number of minutes.
            if option == "--wait"
                && inline.is_none()
                && args.get(i).is_some_and(|n| n.parse::<i64>().is_ok())
            {
                i += 1;
            }
            continue;
        }
        if TRANSLATED.contains(&option) {
            let value = match inline {
                Some(v) => v.to_string(),
                None => {
                    let v = args.get(i).cloned().ok_or_else(|| Error::Setting {
                        setting: SETTING,
                        message: format!("option '{option}' needs a value"),
                    })?;
                    i += 1;
                    v
                }
            };
            parsed.translated.push((option.to_string(), value));
            continue;
        }
        parsed.passed.push(arg.clone());
    }
    Ok(parsed)
}

fn refused(option: &str, why: &str) -> Error {
    Error::Setting {
        setting: SETTING,
        message: format!("option '{option}' is not accepted: {why}"),
    }
}

/// What the options make of the domain, as virt-install says; one run per set of options
/// in a process (the plan's check and every instance of a create share it).
fn probe(passed: &[String]) -> Result<Extra> {
    static PROBES: Mutex<Vec<(Vec<String>, Extra)>> = Mutex::new(Vec::new());
    // Held while virt-install runs: parallel creates wait for the one run.
    let mut probes = PROBES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, extra)) = probes.iter().find(|(args, _)| args == passed) {
        return Ok(extra.clone());
    }
    let runner = Runner::new(VirtType::Kvm);
    let print = |extra: &[String]| -> Result<String> {
        let out = runner
            .tool("virt-install")
            .args(PROBE_ARGS)
            .args(extra)
            .context("printing the domain XML of virt-install-args")
            .run()
            .map_err(|e| match e {
                ToolError::Failed { stderr_tail, .. } => Error::Setting {
                    setting: SETTING,
                    message: format!(
                        "virt-install does not accept '{}':\n{stderr_tail}",
                        shlex::try_join(extra.iter().map(String::as_str))
                            .unwrap_or_else(|_| extra.join(" "))
                    ),
                },
                other => Error::Tool(other),
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let baseline = print(&[])?;
    let theirs = print(passed)?;
    let extra = merge(&baseline, &theirs, passed)?;
    probes.push((passed.to_vec(), extra.clone()));
    Ok(extra)
}

/// An element of a parsed document: its name, where it is, its child elements.
#[derive(Debug)]
struct Node {
    name: String,
    span: Range<usize>,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// The element tree of an XML document as virt-install prints it (elements and their
/// spans; text, comments and processing instructions are skipped).
fn parse_xml(doc: &str) -> std::result::Result<Node, String> {
    let bytes = doc.as_bytes();
    let mut stack: Vec<Node> = Vec::new();
    let mut i = 0;
    let find = |from: usize, what: &str| {
        doc[from..]
            .find(what)
            .map(|p| from + p + what.len())
            .ok_or_else(|| format!("unterminated '{}'", &doc[from..(from + 4).min(doc.len())]))
    };
    while let Some(p) = doc[i..].find('<') {
        let start = i + p;
        let rest = &doc[start..];
        if rest.starts_with("<?") {
            i = find(start, "?>")?;
        } else if rest.starts_with("<!--") {
            i = find(start, "-->")?;
        } else if rest.starts_with("<![CDATA[") {
            i = find(start, "]]>")?;
        } else if rest.starts_with("<!") {
            i = find(start, ">")?;
        } else if let Some(close) = rest.strip_prefix("</") {
            let end = find(start, ">")?;
            let name = close[..end - start - 3].trim();
            let mut node = stack
                .pop()
                .ok_or_else(|| format!("'</{name}>' closes nothing"))?;
            if node.name != name {
                return Err(format!("'</{name}>' closes '<{}>'", node.name));
            }
            node.span.end = end;
            match stack.last_mut() {
                Some(parent) => parent.children.push(node),
                None => return Ok(node),
            }
            i = end;
        } else {
            // An opening tag, whose attribute values may hold '>'.
            let mut j = start + 1;
            let mut quote = None;
            while j < bytes.len() {
                match (quote, bytes[j]) {
                    (None, b'>') => break,
                    (None, q @ (b'"' | b'\'')) => quote = Some(q),
                    (Some(q), c) if c == q => quote = None,
                    _ => {}
                }
                j += 1;
            }
            if j == bytes.len() {
                return Err("unterminated tag".into());
            }
            let tag = &doc[start + 1..j];
            let name: String = tag
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '/')
                .collect();
            let node = Node {
                name,
                span: start..j + 1,
                children: vec![],
            };
            if tag.ends_with('/') {
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            } else {
                stack.push(node);
            }
            i = j + 1;
        }
    }
    Err("no complete root element".into())
}

/// What `theirs` (virt-install's domain with the options) has that `baseline` (without
/// them) has not, as an [`Extra`]; an error naming the option when the options changed
/// what virt-up manages.
fn merge(baseline: &str, theirs: &str, passed: &[String]) -> Result<Extra> {
    let unreadable = |e: String| Error::Setting {
        setting: SETTING,
        message: format!("virt-install printed XML virt-up cannot read: {e}"),
    };
    let base = parse_xml(baseline).map_err(unreadable)?;
    let user = parse_xml(theirs).map_err(unreadable)?;
    let text_of = |doc: &str, n: &Node| doc[n.span.clone()].to_string();
    let conflict = |option: &str, what: &str| {
        let why = REFUSED
            .iter()
            .find(|(names, _)| names.contains(&option))
            .map(|(_, why)| *why)
            .unwrap_or("virt-up manages it");
        Error::Setting {
            setting: SETTING,
            message: format!(
                "'{}' sets {what}, as option '{option}' does, which is not accepted: {why}",
                passed.join(" ")
            ),
        }
    };
    let same = |name: &str| match (base.child(name), user.child(name)) {
        (None, None) => true,
        (Some(b), Some(u)) => text_of(baseline, b) == text_of(theirs, u),
        _ => false,
    };
    if user
        .child("name")
        .map(|n| text_of(theirs, n) != format!("<name>{PROBE_NAME}</name>"))
        .unwrap_or(true)
    {
        return Err(conflict("--name", "the domain's name"));
    }
    if !same("memory") || !same("currentMemory") {
        return Err(conflict("--memory", "the memory"));
    }
    if !same("vcpu") || !same("vcpus") {
        return Err(conflict("--vcpus", "the vCPUs"));
    }
    if !same("os") {
        return Err(conflict("--boot", "the domain's <os>"));
    }
    if !same("metadata") {
        return Err(conflict("--metadata", "the domain's <metadata>"));
    }

    let mut extra = Extra::default();
    let element = |doc: &str, n: &Node| Element {
        name: n.name.clone(),
        xml: text_of(doc, n),
    };
    for node in &user.children {
        match node.name.as_str() {
            // virt-up's own, checked above; the uuid is new on every run.
            "name" | "uuid" | "memory" | "currentMemory" | "vcpu" | "vcpus" | "os" | "metadata"
            | "devices" => {}
            "features" => {
                let theirs_only = added(baseline, base.child("features"), theirs, node);
                extra
                    .features
                    .extend(theirs_only.iter().map(|n| element(theirs, n)));
            }
            name if !same(name) => extra.elements.push(element(theirs, node)),
            _ => {}
        }
    }
    let empty = Node {
        name: String::new(),
        span: 0..0,
        children: vec![],
    };
    let devices = user.child("devices").unwrap_or(&empty);
    for device in added(baseline, base.child("devices"), theirs, devices) {
        let xml = text_of(theirs, device);
        match device.name.as_str() {
            "disk" => return Err(conflict("--disk", "a disk")),
            "interface" => return Err(conflict("--network", "a network interface")),
            "graphics" => return Err(conflict("--graphics", "a display")),
            // virt-up gives every instance this channel, with its own socket; the original's
            // templates ask for it too (with one socket path for all instances): honoured by
            // virt-up's, not added twice.
            "channel" if xml.contains(&format!("name=\"{AGENT_CHANNEL}\"")) => {}
            _ => extra.devices.push(element(theirs, device)),
        }
    }
    Ok(extra)
}

/// The children of `theirs` that `base` does not have (by their text, each matched once).
fn added<'a>(baseline: &str, base: Option<&Node>, theirs: &str, node: &'a Node) -> Vec<&'a Node> {
    let mut unmatched: Vec<&str> = base
        .map(|b| {
            b.children
                .iter()
                .map(|c| &baseline[c.span.clone()])
                .collect()
        })
        .unwrap_or_default();
    node.children
        .iter()
        .filter(|c| {
            let text = &theirs[c.span.clone()];
            match unmatched.iter().position(|u| *u == text) {
                Some(p) => {
                    unmatched.swap_remove(p);
                    false
                }
                None => true,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        shlex::split(s).unwrap()
    }

    #[test]
    fn translated_no_op_and_passed_options() {
        let parsed = parse(&words(
            "--hvm --machine=q35 --os-variant debian11 --noautoconsole --wait 5 --channel unix,name=a --rng /dev/urandom --arch x86_64",
        ))
        .unwrap();
        assert_eq!(
            parsed.translated,
            vec![
                ("--machine".to_string(), "q35".to_string()),
                ("--os-variant".into(), "debian11".into()),
                ("--arch".into(), "x86_64".into()),
            ]
        );
        assert_eq!(
            parsed.passed,
            words("--channel unix,name=a --rng /dev/urandom")
        );
        // Nothing passed: virt-install is not needed.
        let mut s = DomainSpec::default();
        apply(&mut s, &words("--machine q35 --virt-type qemu")).unwrap();
        assert_eq!(s.machine.as_deref(), Some("q35"));
        assert_eq!(s.virt_type, "qemu");
        assert_eq!(s.extra, Extra::default());
    }

    #[test]
    fn refused_options_are_named() {
        for (args, option) in [
            ("--name x", "--name"),
            ("--import", "--import"),
            ("--disk=size=1", "--disk"),
            ("--memory 1024", "--memory"),
            ("--vcpus 2", "--vcpus"),
            ("--network default", "--network"),
            ("--graphics vnc", "--graphics"),
            ("--boot uefi", "--boot"),
            ("--cdrom x.iso", "--cdrom"),
        ] {
            let err = validate(&words(args)).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            let err = err.to_string();
            assert!(
                err.contains(&format!("option '{option}' is not accepted")),
                "{err}"
            );
        }
        let err = parse(&words("--machine")).unwrap_err().to_string();
        assert!(err.contains("option '--machine' needs a value"), "{err}");
    }

    const BASELINE: &str = r#"<domain type="test">
  <name>virtup-probe</name>
  <uuid>5478d0ae-9e71-4195-b707-06cbdcd4f06a</uuid>
  <memory>524288</memory>
  <currentMemory>524288</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch="i686">hvm</type>
    <boot dev="hd"/>
  </os>
  <features>
    <pae/>
  </features>
  <clock offset="utc"/>
  <pm>
    <suspend-to-mem enabled="no"/>
  </pm>
  <devices>
    <emulator>/usr/bin/test-hv</emulator>
    <controller type="usb" model="ich9-ehci1"/>
    <controller type="usb" model="ich9-uhci1">
      <master startport="0"/>
    </controller>
    <console type="pty"/>
  </devices>
</domain>
"#;

    /// The baseline with `devices` added to its devices and `top` before them.
    fn with(top: &str, devices: &str) -> String {
        BASELINE
            .replace("5478d0ae", "00000000")
            .replace("  <devices>\n", &format!("{top}  <devices>\n"))
            .replace("  </devices>", &format!("{devices}  </devices>"))
    }

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "web1".into(),
            virt_type: "kvm".into(),
            arch: "x86_64".into(),
            memory_mib: 512,
            vcpus: 1,
            network: "default".into(),
            mac: "52:54:00:00:00:01".into(),
            graphics: "none".into(),
            rng: true,
            console_log: "/x.log".into(),
            template: "t".into(),
            ..DomainSpec::default()
        }
    }

    #[test]
    fn added_devices_and_elements_are_merged_without_duplicating_ours() {
        let channel = "<channel type=\"unix\">\n      <source mode=\"bind\"/>\n      <target type=\"virtio\" name=\"org.example.0\"/>\n    </channel>";
        let rng = "<rng model=\"virtio\">\n      <backend model=\"random\">/dev/hwrng</backend>\n    </rng>";
        let theirs = with(
            "  <cpu mode=\"host-model\"/>\n  <memoryBacking>\n    <hugepages/>\n  </memoryBacking>\n",
            &format!("    {channel}\n    {rng}\n"),
        )
        .replace(
            "<pae/>\n",
            "<pae/>\n    <kvm>\n      <hidden state=\"on\"/>\n    </kvm>\n",
        )
        .replace("offset=\"utc\"", "offset=\"localtime\"");
        let extra = merge(BASELINE, &theirs, &words("--channel x --rng y")).unwrap();
        let names = |v: &[Element]| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&extra.devices), ["channel", "rng"]);
        assert_eq!(extra.devices[0].xml, channel);
        assert_eq!(names(&extra.features), ["kvm"]);
        assert_eq!(names(&extra.elements), ["clock", "cpu", "memoryBacking"]);

        let mut s = spec();
        s.extra = extra;
        let xml = s.to_xml();
        assert!(xml.contains(channel), "{xml}");
        assert!(xml.contains(rng), "{xml}");
        assert_eq!(xml.matches("<rng").count(), 1, "ours is replaced: {xml}");
        assert!(xml.contains("name='org.qemu.guest_agent.0'"), "{xml}");
        assert_eq!(xml.matches("<clock").count(), 1, "{xml}");
        assert!(xml.contains("<clock offset=\"localtime\"/>"), "{xml}");
        assert!(xml.contains("<cpu mode=\"host-model\"/>"), "{xml}");
        assert!(xml.contains("<hugepages/>"), "{xml}");
        assert!(xml.contains("<features><acpi/><apic/>\n    <kvm>"), "{xml}");
        assert!(!xml.contains("emulator") && !xml.contains("ich9"), "{xml}");
        assert_eq!(parse_xml(&xml).unwrap().name, "domain");
    }

    #[test]
    fn what_virt_up_manages_is_refused_whatever_the_spelling() {
        let cases = [
            (
                BASELINE.replace(">virtup-probe<", ">x<"),
                "--nam x",
                "option '--name'",
            ),
            (
                BASELINE.replace("524288", "1048576"),
                "--mem 1024",
                "option '--memory'",
            ),
            (
                with("", "    <disk type=\"file\" device=\"disk\"/>\n"),
                "--dis size=1",
                "option '--disk'",
            ),
            (
                with("", "    <interface type=\"network\"/>\n"),
                "--netw default",
                "option '--network'",
            ),
            (
                BASELINE.replace("<boot dev=\"hd\"/>", "<boot dev=\"network\"/>"),
                "--bo network",
                "option '--boot'",
            ),
        ];
        for (theirs, args, expected) in cases {
            let err = merge(BASELINE, &theirs, &words(args)).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            let err = err.to_string();
            assert!(err.contains(expected) && err.contains(args), "{err}");
        }
    }

    #[test]
    fn the_guest_agents_channel_is_virt_ups_own_and_not_added_twice() {
        let theirs = with(
            "",
            "    <channel type=\"unix\"><target type=\"virtio\" name=\"org.qemu.guest_agent.0\"/></channel>\n",
        );
        let args = words(
            "--channel unix,mode=bind,path=/x.agent,target_type=virtio,name=org.qemu.guest_agent.0",
        );
        let extra = merge(BASELINE, &theirs, &args).unwrap();
        assert!(extra.devices.is_empty(), "{:?}", extra.devices);
    }

    #[test]
    fn xml_spans_follow_quotes_comments_and_nesting() {
        let doc = "<?xml version='1.0'?>\n<!-- c -->\n<a x=\"1>2\"><b/><c><d/></c></a>";
        let root = parse_xml(doc).unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(&doc[root.children[1].span.clone()], "<c><d/></c>");
        assert!(parse_xml("<a><b></a>").is_err());
        assert!(parse_xml("<a>").is_err());
    }
}
