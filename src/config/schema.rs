//! The keys settings.cfg and templates.d accept: their kinds, defaults and documentation.
//! One table drives validation, defaults, `--show-templates` and the shipped settings.cfg;
//! a second, [`HOST_KEYS`], the keys of settings.cfg's `[host NAME]` sections.

/// What values a key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Text,
    /// A whole number in an inclusive range.
    Int(u64, u64),
    Choice(&'static [&'static str]),
    /// Shell-style words (split with POSIX quoting rules, never run through a shell).
    Args,
    /// A size in bytes, more than zero, in qemu-img's grammar (`8G`, `1.5G`, `512M`).
    Size,
    /// A size in the same grammar where zero means none (`keep-free-memory = 0`).
    SizeOrZero,
    /// Plain words (letters, digits, '-', '_', '.') separated by spaces or commas.
    Words,
    /// A DNS domain: dot-separated labels of `a-z`, `0-9` and `-`.
    DnsDomain,
}

/// The largest memory and vCPU count a guest may ask for: 16 TiB is the most any
/// x86_64 host libvirt runs on addresses today, and 512 vCPUs is above what QEMU's
/// default machine types start. A value past them is a typo, not a plan.
pub const MAX_MEMORY_MIB: u64 = 16 * 1024 * 1024;
pub const MIN_MEMORY_MIB: u64 = 64;
pub const MAX_VCPUS: u64 = 512;

#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

const fn key(
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    doc: &'static str,
) -> Key {
    Key {
        name,
        kind,
        default,
        doc,
    }
}

/// Keys of the original tool that virt-up accepts and does nothing with, and why: a
/// warning says so instead of the unknown-key one.
pub const IGNORED: &[(&str, &str)] = &[(
    "cp-args",
    "the original passed it to the 'cp' that copied a raw template's disk; virt-up makes that copy through libvirt's storage API (a volume cloned from the template's), and no cp runs",
)];

/// Why `key` is accepted but ignored, if it is one of [`IGNORED`].
pub fn ignored(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    IGNORED.iter().find(|(k, _)| *k == key).map(|(_, why)| *why)
}

pub const KEYS: &[Key] = &[
    key("desc", Kind::Text, None, "A description, shown by --show-templates."),
    key("os-version", Kind::Text, None, "The virt-builder image name (required for a template); see 'virt-builder --list'."),
    key("os-variant", Kind::Text, None, "The osinfo name of the guest OS (recorded; see 'osinfo-query os')."),
    key("os-type", Kind::Text, None, "The OS type (recorded, as virt-install's --os-type)."),
    key("arch", Kind::Text, Some("x86_64"), "The guest architecture."),
    key("pool", Kind::Text, Some("default"), "The libvirt storage pool that holds the disk images."),
    key("network", Kind::Text, Some("virt-up"), "The libvirt network the instances attach to. 'virt-up' (the default) is virt-up's own NAT network, made on first use on a free 192.168.X.0/24 with STP off, so a new instance's network works at once (a bridge with STP on, as libvirt's 'default', forwards nothing for its first 4 s); 'default' is libvirt's."),
    key("username", Kind::Text, Some("virt"), "The login user created in templates, with passwordless sudo ('user' is an alias)."),
    key("password-length", Kind::Int(8, 128), Some("24"), "Accepted for compatibility: virt-up sets no random passwords (accounts are key-only unless --password/--root-password is given)."),
    key("image-format", Kind::Choice(&["qcow2", "raw"]), Some("qcow2"), "Disk format: qcow2 instances are linked clones; raw instances are full copies."),
    key("size", Kind::Size, None, "Template disk size as virt-builder takes it (e.g. 8G); default: the image's size."),
    key("memory", Kind::Int(MIN_MEMORY_MIB, MAX_MEMORY_MIB), Some("512"), "Memory in MiB."),
    key("vcpus", Kind::Int(1, MAX_VCPUS), Some("1"), "Number of virtual CPUs."),
    key("graphics", Kind::Choice(&["none", "vnc", "spice"]), Some("none"), "Graphics console type."),
    key("dns-domain", Kind::DnsDomain, None, "DNS domain appended to instance host names."),
    key("address-source", Kind::Choice(&["agent", "lease", "arp", "dns"]), Some("agent"), "How the instance's IP address is found: guest agent, libvirt DHCP lease, the host's neighbour (arp) table, or a DNS lookup of the host name."),
    key("fixed-address", Kind::Choice(&["yes", "no"]), Some("yes"), "Reserve each instance's address on the libvirt network's DHCP server (a <host> entry for its MAC, removed with the instance): a re-created instance gets the same address, and gets it at once (dnsmasq checks for about 3 s that a new dynamic address is free before it offers it)."),
    key("virt-type", Kind::Choice(&["kvm", "qemu"]), Some("kvm"), "Domain type: kvm (hardware virtualization) or qemu (TCG emulation; libguestfs tools then run with force_tcg)."),
    key("identity", Kind::Choice(&["firstboot", "sysprep"]), Some("firstboot"), "How an instance gets its identity: 'firstboot' applies it at the guest's first boot from a seed disk (no appliance, fast); 'sysprep' runs virt-sysprep on each new disk. Default: firstboot, or sysprep for a template with virt-sysprep-args."),
    key("warm", Kind::Choice(&["yes", "no"]), Some("yes"), "Warm clones: the template is booted once and its memory saved, and instances are restored from it instead of booting (seconds instead of a boot). Used when the instance's memory, vCPUs, graphics and size are the template's; otherwise, and with identity = sysprep, instances boot cold."),
    key("libvirt-uri", Kind::Text, None, "libvirt connection URI (default: libvirt's own choice: $LIBVIRT_DEFAULT_URI, else uri_default in libvirt.conf, else qemu:///system for root and qemu:///session for others). In a template: the host its instances are made on (unless [host] sections place them)."),
    key("jump-host", Kind::Text, Some("auto"), "How ssh, ansible and virt-up reach the guests: 'auto' through the libvirt host when libvirt-uri (or the default URI) names another machine (its NAT network is not routable from here; OpenSSH's ProxyJump, with your own ssh configuration for that host), directly for a local one; 'none' directly always (the guests' network is routable from here); or a [user@]host[:port] to jump through."),
    key("virt-builder-source", Kind::Text, None, "An extra virt-builder repository index URI (e.g. file:///srv/images/index), for hosts without internet."),
    key("virt-builder-fingerprint", Kind::Text, None, "GPG fingerprint that signs virt-builder-source; without it that source's signature is not checked."),
    key("virt-builder-args", Kind::Args, None, "Extra virt-builder arguments for the template build; {scripts}/NAME is the user's scripts/NAME, else the system's."),
    key("virt-sysprep-args", Kind::Args, None, "Extra virt-sysprep arguments, run with identity = sysprep (which they choose when identity is not set)."),
    key("virt-install-args", Kind::Args, None, "virt-install options for the instance's domain (--channel, --rng, --cpu, --features, ...): virt-install --print-xml says what they add, merged in; those for what virt-up manages (--name, --disk, --import, --boot, --memory, --vcpus, --network, --graphics) are refused."),
    key("template-playbook", Kind::Text, None, "Ansible playbook run once on a new template, before instances depend on it."),
    key("instance-playbook", Kind::Text, None, "Ansible playbook run on each new instance."),
    key("address-timeout", Kind::Int(1, 86400), Some("300"), "Seconds to wait for the instance's address."),
    key("ssh-timeout", Kind::Int(1, 86400), Some("300"), "Seconds to wait, after the address is known, for the SSH server."),
    key("stop-timeout", Kind::Int(1, 86400), Some("60"), "Seconds --stop waits for the guest to power off (ACPI) before it is turned off."),
    key("cache-dir", Kind::Text, None, "The step cache directory (default: $VIRTUP_CACHE_HOME, else $XDG_CACHE_HOME/virt-up)."),
    key("steps", Kind::Text, None, "virt-maker steps, one per line as in YAML ('install: [nginx]', 'run: setup.sh'), applied through the step cache to the os-version image (virt-builder); paths relative to the templates.d file's directory. Not with 'customize'."),
    key("customize", Kind::Text, None, "A virt-maker YAML template (relative to the templates.d file's directory) whose import and steps build this template's disk through the step cache, instead of os-version."),
    key("virtiofsd", Kind::Text, None, "The virtiofsd that libvirt runs for --mount shares (default: /usr/libexec/virtiofsd, else /usr/lib/qemu/virtiofsd, the first that is there)."),
    key("parallel", Kind::Int(1, 64), Some("4"), "How many instances one command creates, starts or stops at once."),
    key("hosts", Kind::Text, None, "The [host NAME] sections of settings.cfg the template's instances may be placed on: host names and tag:WORD (every host with that tag), separated by spaces or commas. Default: every [host] section; with none, the one libvirt connection (libvirt-uri)."),
];

/// The most instances a `[host NAME]` may be given: past it is a typo, not a plan.
pub const MAX_HOST_INSTANCES: u64 = 100_000;

/// The keys of a `[host NAME]` section in settings.cfg: one libvirt host that new instances
/// may be placed on. Its `pool`, `network` and `jump-host` default to the template's (and
/// `[common]`'s) when unset, so they have no built-in default here.
pub const HOST_KEYS: &[Key] = &[
    key("uri", Kind::Text, None, "The host's libvirt URI, e.g. qemu+ssh://root@lab2/system (required)."),
    key("pool", Kind::Text, None, "The storage pool on this host (default: the template's 'pool')."),
    key("network", Kind::Text, None, "The network on this host (default: the template's 'network')."),
    key("max-instances", Kind::Int(1, MAX_HOST_INSTANCES), None, "The most instances placed on this host (default: no limit)."),
    key("keep-free-memory", Kind::SizeOrZero, Some("0"), "Memory the host keeps for itself, e.g. 2G: an instance is placed here only if the host's free memory, less this, holds it."),
    key("tags", Kind::Words, None, "Words a template's 'hosts' setting can name as tag:WORD, separated by spaces or commas."),
    key("jump-host", Kind::Text, None, "How guests on this host are reached, as [common]'s jump-host: auto, none or [user@]host[:port] (default: [common]'s)."),
];

/// What a value of `kind` must look like, if `value` is not one; None if it is.
pub fn problem(kind: Kind, value: &str) -> Option<String> {
    let value = value.trim();
    match kind {
        Kind::Text => None,
        Kind::Int(min, max) => match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => None,
            _ => Some(format!("a whole number from {min} to {max}")),
        },
        Kind::Choice(choices) => {
            (!choices.contains(&value)).then(|| format!("one of: {}", choices.join(", ")))
        }
        Kind::Args => shlex::split(value)
            .is_none()
            .then(|| "shell-style words with balanced quotes".to_string()),
        // Empty is unset, as for every optional key.
        _ if value.is_empty() => None,
        Kind::Size => match super::plan::parse_size(value) {
            Ok(0) => Some("a size of more than 0 bytes, e.g. 20G".into()),
            Ok(_) => None,
            Err(why) => Some(format!("a size like 20G, 1.5G or 512M ({why})")),
        },
        Kind::SizeOrZero => super::plan::parse_size(value)
            .err()
            .map(|why| format!("a size like 2G, 1.5G, 512M or 0 ({why})")),
        Kind::DnsDomain => super::plan::dns_domain_problem(value).map(|why| {
            format!("a DNS domain like example.com: labels of a-z, 0-9 and '-', not starting or ending with '-', at most 63 characters each and 253 in all ({why})")
        }),
        Kind::Words => words(value)
            .find(|w| !is_plain_word(w))
            .map(|w| format!("words of letters, digits, '-', '_' and '.' separated by spaces or commas (not {w:?})")),
    }
}

/// The words of a list written with spaces or commas between them (`a b`, `a,b`, `a, b`).
pub fn words(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
}

/// Letters, digits, '-', '_' and '.': what a tag may be (it is matched as `tag:WORD`).
pub fn is_plain_word(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Older spellings accepted for compatibility.
pub fn canonical(key: &str) -> &str {
    match key {
        "user" => "username",
        other => other,
    }
}

pub fn lookup(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == canonical(name))
}

/// A key of a `[host NAME]` section (no aliases there: the section is new).
pub fn lookup_host(name: &str) -> Option<&'static Key> {
    HOST_KEYS.iter().find(|k| k.name == name)
}

/// The known key closest to a misspelled one, for "did you mean" hints.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_suggests_close_keys_only() {
        let names = KEYS.iter().map(|k| k.name);
        assert_eq!(nearest("memroy", names.clone()), Some("memory"));
        assert_eq!(nearest("os_version", names.clone()), Some("os-version"));
        assert_eq!(nearest("zzzzzzzzzzzzzzzzzz", names), None);
    }

    #[test]
    fn user_is_an_alias_of_username() {
        assert_eq!(lookup("user").unwrap().name, "username");
    }

    #[test]
    fn words_split_at_spaces_and_commas() {
        let split = |v| words(v).collect::<Vec<_>>();
        assert_eq!(split("a b,c, d\n e"), ["a", "b", "c", "d", "e"]);
        assert!(split(" , ").is_empty());
        assert_eq!(problem(Kind::Words, "ssd, fast gpu-2 x_y.z"), None);
        let why = problem(Kind::Words, "ssd tag:x").unwrap();
        assert!(why.ends_with("(not \"tag:x\")"), "{why}");
    }

    #[test]
    fn a_size_or_zero_takes_zero_and_sizes() {
        for ok in ["0", "2G", "1.5G", "512M", ""] {
            assert_eq!(problem(Kind::SizeOrZero, ok), None, "{ok}");
        }
        assert!(problem(Kind::SizeOrZero, "2GB").is_some());
        assert!(problem(Kind::Size, "0").is_some());
    }
}
