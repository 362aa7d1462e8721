//! The runner table: every importer, step and exporter with its arguments, their types,
//! which are required, an example and the host commands it needs. One table drives
//! validation (with "did you mean" hints) and `virt-maker runners -v`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Role {
    Importer,
    Step,
    Exporter,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    Str,
    Int,
    Bool,
    /// A list of strings; a string is split on commas and white space.
    Words,
    /// A list of arguments; a string is split with POSIX shell quoting rules.
    Argv,
    /// Arguments as a list of strings and lists of strings (flattened), as the original's
    /// boot `opts`.
    Opts,
    /// A size string, or the original's resize mapping (`size`, `expand`, partitions).
    Resize,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Str => "string",
            Ty::Int => "integer",
            Ty::Bool => "boolean",
            Ty::Words => "list of strings",
            Ty::Argv => "list of arguments",
            Ty::Opts => "list of argument lists",
            Ty::Resize => "size or mapping (size, expand, /dev/<partition>)",
        }
    }
}

#[derive(Debug)]
pub struct Arg {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub doc: &'static str,
}

#[derive(Debug)]
pub struct RunnerDef {
    pub name: &'static str,
    pub role: Role,
    /// The argument a scalar value stands for (`hostname: web1`).
    pub primary: Option<&'static str>,
    pub args: &'static [Arg],
    pub doc: &'static str,
    pub example: &'static str,
    pub commands: &'static [&'static str],
    /// Not available in this implementation: validation says so.
    pub unsupported: Option<&'static str>,
}

const fn a(name: &'static str, ty: Ty, required: bool, doc: &'static str) -> Arg {
    Arg {
        name,
        ty,
        required,
        doc,
    }
}

const SCRIPT_ARGS: &[Arg] = &[
    a(
        "script",
        Ty::Str,
        false,
        "Shell script text (uploaded as a file, never interpolated).",
    ),
    a(
        "file",
        Ty::Str,
        false,
        "A script file on the host (relative to the template).",
    ),
];

/// Every runner's host scripts, as in the original (exporters list them themselves).
pub const HOOKS: &[Arg] = &[
    a(
        "pre_script",
        Ty::Str,
        false,
        "Run on the host before the runner ($IMAGE: the image file), through its #! line.",
    ),
    a(
        "post_script",
        Ty::Str,
        false,
        "Run on the host after the runner ($IMAGE: the image file), through its #! line.",
    ),
];

const EXPORT_ARGS: &[Arg] = &[
    a(
        "path",
        Ty::Str,
        true,
        "Output file (relative to the template), written as named: no suffix is added for compress.",
    ),
    a(
        "create_dir",
        Ty::Bool,
        false,
        "Create the output directory if missing.",
    ),
    a("compress", Ty::Str, false, "xz, gzip, lz4 or zstd."),
    a("level", Ty::Int, false, "Compression level, 1-9 (zstd: 1-19); default 1."),
    a(
        "sparsify",
        Ty::Bool,
        false,
        "Convert with virt-sparsify (drops unused blocks; a qcow2 without compress gets qcow2 compression).",
    ),
    a(
        "pre_script",
        Ty::Str,
        false,
        "Host shell script run before the export ($IMAGE: the final layer).",
    ),
    a(
        "post_script",
        Ty::Str,
        false,
        "Host shell script run after the export ($IMAGE: the exported file).",
    ),
];

pub const RUNNERS: &[RunnerDef] = &[
    RunnerDef { name: "virt-builder", role: Role::Importer, primary: Some("image"),
        args: &[a("image", Ty::Str, true, "virt-builder template name (see virt-builder --list)."),
                a("size", Ty::Str, false, "Disk size, e.g. 6G."),
                a("source", Ty::Str, false, "A virt-builder index URI (e.g. file:///srv/index) used instead of the configured repositories; its signature is not checked."),
                a("args", Ty::Argv, false, "Extra virt-builder arguments.")],
        doc: "Start from a virt-builder image.",
        example: "import:\n  virt-builder:\n    image: debian-12\n    size: 6G",
        commands: &["virt-builder", "qemu-img"], unsupported: None },
    RunnerDef { name: "download", role: Role::Importer, primary: Some("url"),
        args: &[a("url", Ty::Str, true, "http(s)://, file:// URL or a local path; .xz/.gz/.bz2/.zst are decompressed."),
                a("checksum", Ty::Str, false, "sha256:<hex> (or a bare hex sha256, or <algorithm>:<hex>) of the file as given (compressed or not); verified as it is downloaded."),
                a("resize", Ty::Resize, false, "New virtual size, e.g. 10G; or, as the original, {size: 10G, expand: /dev/sda5, /dev/sda1: +1G} through virt-resize.")],
        doc: "Start from a qcow2 or raw image file or URL.",
        example: "import:\n  download:\n    url: https://example.org/debian-12.qcow2\n    checksum: sha256:0123...",
        commands: &["qemu-img"], unsupported: None },
    RunnerDef { name: "debootstrap", role: Role::Importer, primary: Some("suite"),
        args: &[a("suite", Ty::Str, false, "Debian suite (default bookworm)."),
                a("mirror", Ty::Str, false, "http(s):// or file:/// Debian mirror (default: the one the host's apt uses for the suite)."),
                a("packages", Ty::Words, false, "Packages installed besides the base set (kernel, GRUB, systemd, SSH, guest agent, sudo, python3)."),
                a("size", Ty::Str, false, "Disk size (default 2G, at least 1G).")],
        doc: "Make a bootable Debian disk from Debian packages (debootstrap; no prebuilt image; needs root).",
        example: "import:\n  debootstrap:\n    suite: bookworm\n    mirror: http://deb.debian.org/debian\n    packages: [vim, curl]\n    size: 4G",
        commands: &["debootstrap", "chroot", "tar", "guestfish"], unsupported: None },
    RunnerDef { name: "isoboot", role: Role::Importer, primary: None, args: &[],
        doc: "Install from an ISO.", example: "", commands: &[],
        unsupported: Some("the isoboot importer is not supported by virt-up's virt-maker; import with virt-builder or download instead") },
    RunnerDef { name: "run", role: Role::Step, primary: Some("script"), args: SCRIPT_ARGS,
        doc: "Run a shell script inside the image (virt-customize --run).",
        example: "- run: apt-get clean", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "firstboot", role: Role::Step, primary: Some("script"), args: SCRIPT_ARGS,
        doc: "Run a script at the image's first boot (virt-customize --firstboot).",
        example: "- firstboot: apt-get update", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "install", role: Role::Step, primary: Some("packages"),
        args: &[a("packages", Ty::Words, true, "Packages to install.")],
        doc: "Install packages (virt-customize --install).",
        example: "- install: [nginx, curl]", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "hostname", role: Role::Step, primary: Some("name"),
        args: &[a("name", Ty::Str, true, "The host name.")],
        doc: "Set the host name.", example: "- hostname: web1", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "rootpass", role: Role::Step, primary: Some("password"),
        args: &[a("password", Ty::Str, true, "A virt-customize --root-password selector: password:PASSWORD, file:FILE (relative to the template), random, disabled, locked, locked:<selector>. A password never reaches a command line (it goes through a 0600 file).")],
        doc: "Set root's password.", example: "- rootpass: 'password:{{ root_password }}'", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "ssh_keygen", role: Role::Step, primary: Some("user"),
        args: &[a("user", Ty::Str, false, "The user whose key pair (~/.ssh/id_rsa, RSA 2048, no passphrase) is made (default root).")],
        doc: "Make a user's SSH key pair in the image, as the original.",
        example: "- ssh_keygen: alice", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "ssh_hostkeys", role: Role::Step, primary: None, args: &[],
        doc: "Generate the SSH host keys (ssh-keygen -A in the image).",
        example: "- ssh_hostkeys:", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "selinux", role: Role::Step, primary: Some("mode"),
        args: &[a("mode", Ty::Str, false, "enforcing, permissive or disabled (SELINUX= in /etc/selinux/config), or relabel (the default: relabel file contexts at first boot).")],
        doc: "Set the SELinux mode, or relabel.", example: "- selinux: permissive", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "grub_append", role: Role::Step, primary: Some("args"),
        args: &[a("args", Ty::Argv, true, "Kernel command line arguments to append (a list, as the original, or a string).")],
        doc: "Append to GRUB_CMDLINE_LINUX and regenerate the GRUB configuration.",
        example: "- grub_append: console=ttyS0", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "copy", role: Role::Step, primary: None,
        args: &[a("dest", Ty::Str, true, "Path in the image."),
                a("content", Ty::Str, false, "File content, or (as the original) the path of a host file to copy when one exists there (relative to the template, then the working directory)."),
                a("src", Ty::Str, false, "A host file to copy (relative to the template)."),
                a("chmod", Ty::Str, false, "Octal mode, e.g. 0644."),
                a("chown", Ty::Str, false, "owner[:group]."),
                a("simple", Ty::Bool, false, "As the original: chmod/chown happen at the image's first boot.")],
        doc: "Put a file into the image.",
        example: "- copy:\n    dest: /etc/motd\n    content: hello", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "local_run", role: Role::Step, primary: Some("script"),
        args: &[a("script", Ty::Str, false, "Shell script run on the host; $IMAGE is the layer being built."),
                a("file", Ty::Str, false, "A script file on the host."),
                a("command", Ty::Argv, false, "A command (argument list) run on the host, $IMAGE in its environment.")],
        doc: "Run something on the host against the image file.",
        example: "- local_run: qemu-img info \"$IMAGE\"", commands: &["sh"], unsupported: None },
    RunnerDef { name: "sysprep", role: Role::Step, primary: Some("operations"),
        args: &[a("operations", Ty::Str, false, "virt-sysprep --operations value.")],
        doc: "Generalize the image (virt-sysprep).", example: "- sysprep:", commands: &["virt-sysprep"], unsupported: None },
    RunnerDef { name: "inject_qemu_ga", role: Role::Step, primary: Some("source"),
        args: &[a("source", Ty::Str, false, "virt-customize --inject-qemu-ga METHOD (osinfo-db, or a path to the guest agent packages), as the original; without it the distribution's qemu-guest-agent package is installed.")],
        doc: "Install the QEMU guest agent.", example: "- inject_qemu_ga: osinfo-db", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "inject_virtio_win", role: Role::Step, primary: Some("path"),
        args: &[a("path", Ty::Str, true, "virtio-win ISO, directory or 'osinfo-db'.")],
        doc: "Inject virtio-win drivers into a Windows image.",
        example: "- inject_virtio_win: /usr/share/virtio-win", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "boot", role: Role::Step, primary: None,
        args: &[a("memory", Ty::Int, false, "MiB (default 1024)."),
                a("cpus", Ty::Int, false, "CPUs (default 1), as the original."),
                a("vcpus", Ty::Int, false, "CPUs (default 1; 'cpus' wins)."),
                a("cpu", Ty::Str, false, "qemu -cpu model (default: qemu's)."),
                a("display", Ty::Str, false, "qemu -display: none (default), gtk, sdl or curses."),
                a("serial", Ty::Bool, false, "Guest serial console on virt-maker's output (-serial mon:stdio)."),
                a("opts", Ty::Opts, false, "More qemu arguments: a list of argument lists, e.g. [[-device, virtio-rng-pci]].")],
        doc: "Boot the image until it powers itself off (TCG unless KVM works).",
        example: "- boot:\n    memory: 2048", commands: &["qemu-system-x86_64"], unsupported: None },
    RunnerDef { name: "virtcustomize", role: Role::Step, primary: Some("args"),
        args: &[a("args", Ty::Argv, true, "virt-customize arguments.")],
        doc: "Any virt-customize operations.",
        example: "- virtcustomize: --timezone UTC", commands: &["virt-customize"], unsupported: None },
    RunnerDef { name: "qcow2", role: Role::Exporter, primary: Some("path"), args: EXPORT_ARGS,
        doc: "Write the image as qcow2.", example: "export:\n  qcow2:\n    path: images/web.qcow2",
        commands: &["qemu-img", "virt-sparsify", "xz", "gzip", "lz4", "zstd"], unsupported: None },
    RunnerDef { name: "raw", role: Role::Exporter, primary: Some("path"), args: EXPORT_ARGS,
        doc: "Write the image as raw.", example: "export:\n  raw:\n    path: images/web.img.xz\n    compress: xz",
        commands: &["qemu-img", "virt-sparsify", "xz", "gzip", "lz4", "zstd"], unsupported: None },
    RunnerDef { name: "libvirt", role: Role::Exporter, primary: Some("name"),
        args: &[a("name", Ty::Str, true, "The volume's name in the pool (e.g. web.qcow2); a volume of that name is replaced."),
                a("pool", Ty::Str, false, "The libvirt storage pool (default: default)."),
                a("format", Ty::Str, false, "qcow2 (default) or raw."),
                a("uri", Ty::Str, false, "The libvirt connection (default: libvirt's own choice, as virsh: LIBVIRT_DEFAULT_URI, uri_default in libvirt.conf, ...).")],
        doc: "Upload the image into a libvirt storage pool through libvirt's storage API: a pool this user cannot write (a regular user on qemu:///system), or on another host (qemu+ssh://). Not cached: uploaded at every build.",
        example: "export:\n  libvirt:\n    name: web.qcow2\n    pool: default",
        commands: &["qemu-img"], unsupported: None },
];

pub fn find(name: &str) -> Option<&'static RunnerDef> {
    RUNNERS.iter().find(|r| r.name == name)
}

pub fn of_role(role: Role) -> impl Iterator<Item = &'static RunnerDef> {
    RUNNERS.iter().filter(move |r| r.role == role)
}

/// Normalize a step's arguments to a map of checked values, or say which key is wrong.
/// The error is (key, message).
pub fn normalize(def: &RunnerDef, args: &Value) -> Result<Map<String, Value>, (String, String)> {
    let mut map = match args {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        scalar => match def.primary {
            Some(p) => Map::from_iter([(p.to_string(), scalar.clone())]),
            None => {
                return Err((
                    String::new(),
                    format!(
                        "'{}' takes a mapping of arguments, not a single value",
                        def.name
                    ),
                ))
            }
        },
    };
    for (k, v) in map.iter_mut() {
        let arg = def.args.iter().find(|a| a.name == k);
        let Some(arg) = arg.or_else(|| HOOKS.iter().find(|a| a.name == k)) else {
            let hint = crate::config::schema::nearest(k, def.args.iter().map(|a| a.name))
                .map(|n| format!(" (did you mean '{n}'?)"))
                .unwrap_or_default();
            let valid: Vec<&str> = def.args.iter().map(|a| a.name).collect();
            return Err((
                k.clone(),
                format!(
                    "unknown argument '{k}' for '{}'{hint}; valid: {}",
                    def.name,
                    if valid.is_empty() {
                        "none".to_string()
                    } else {
                        valid.join(", ")
                    }
                ),
            ));
        };
        *v = coerce(arg.ty, v).ok_or_else(|| {
            (
                k.clone(),
                format!("'{k}' must be a {}, not {}", arg.ty.name(), short(v)),
            )
        })?;
    }
    for arg in def.args.iter().filter(|a| a.required) {
        if !map.contains_key(arg.name) {
            return Err((
                arg.name.to_string(),
                format!(
                    "'{}' needs the argument '{}' ({})",
                    def.name, arg.name, arg.doc
                ),
            ));
        }
    }
    let one_of = |keys: &[&str]| keys.iter().filter(|k| map.contains_key(**k)).count();
    match def.name {
        "run" | "firstboot" if one_of(&["script", "file"]) != 1 => Err((
            "script".into(),
            format!("'{}' needs exactly one of 'script' or 'file'", def.name),
        )),
        "local_run" if one_of(&["script", "file", "command"]) != 1 => Err((
            "script".into(),
            "'local_run' needs exactly one of 'script', 'file' or 'command'".into(),
        )),
        "selinux" => match map.get("mode").and_then(Value::as_str) {
            Some(m) if !SELINUX_MODES.contains(&m) => Err((
                "mode".into(),
                format!(
                    "'selinux' takes one of {}, not '{m}'",
                    SELINUX_MODES.join(", ")
                ),
            )),
            _ => Ok(map),
        },
        "rootpass" => check_selector(map.get("password").and_then(Value::as_str).unwrap_or(""))
            .map_err(|m| ("password".into(), m))
            .map(|_| map),
        "ssh_keygen" => match map.get("user").and_then(Value::as_str) {
            Some(u) if !is_user_name(u) => {
                Err(("user".into(), format!("'{u}' is not a user name")))
            }
            _ => Ok(map),
        },
        "boot" => match map.get("display").and_then(Value::as_str) {
            Some(d) if !["none", "gtk", "sdl", "curses"].contains(&d) => Err((
                "display".into(),
                format!("'display' must be none, gtk, sdl or curses, not '{d}'"),
            )),
            _ => Ok(map),
        },
        "copy" if one_of(&["content", "src"]) != 1 => Err((
            "content".into(),
            "'copy' needs exactly one of 'content' or 'src'".into(),
        )),
        "debootstrap" => check_debootstrap(&map).map(|_| map),
        "download" => check_resize(map.get("resize")).map(|_| map),
        "qcow2" | "raw" => {
            if let Some(c) = map.get("compress").and_then(Value::as_str) {
                if !["xz", "gzip", "lz4", "zstd"].contains(&c) {
                    return Err((
                        "compress".into(),
                        format!("'compress' must be xz, gzip, lz4 or zstd, not '{c}'"),
                    ));
                }
            }
            let max = match map.get("compress").and_then(Value::as_str) {
                Some("zstd") => 19,
                _ => 9,
            };
            match map.get("level").and_then(Value::as_i64) {
                Some(l) if !(1..=max).contains(&l) => Err((
                    "level".into(),
                    format!("'level' must be 1 to {max}, not {l}"),
                )),
                _ => Ok(map),
            }
        }
        _ => Ok(map),
    }
}

/// The debootstrap importer's values are checked before anything runs: they reach
/// debootstrap's command line and the image's sources.list.
fn check_debootstrap(map: &Map<String, Value>) -> Result<(), (String, String)> {
    use crate::image::debootstrap as d;
    let str_of = |k: &str| map.get(k).and_then(Value::as_str);
    fn at(k: &'static str) -> impl Fn(String) -> (String, String) {
        move |msg| (k.to_string(), msg)
    }
    if let Some(s) = str_of("suite") {
        d::check_suite(s).map_err(at("suite"))?;
    }
    if let Some(m) = str_of("mirror") {
        d::check_mirror(m).map_err(at("mirror"))?;
    }
    let packages = map.get("packages").and_then(Value::as_array);
    for (i, p) in packages.into_iter().flatten().enumerate() {
        let p = p.as_str().unwrap_or("");
        d::check_package(p).map_err(|e| (format!("packages[{i}]"), e))?;
    }
    if let Some(s) = str_of("size") {
        d::check_size(s).map_err(at("size"))?;
    }
    Ok(())
}

pub const SELINUX_MODES: &[&str] = &["enforcing", "permissive", "disabled", "relabel"];

/// virt-customize's --root-password selectors; a bare value is refused, never taken as
/// the password itself.
fn check_selector(sel: &str) -> Result<(), String> {
    let inner = match sel.strip_prefix("locked") {
        Some("") => return Ok(()),
        Some(rest) => match rest.strip_prefix(':') {
            Some(inner) => inner,
            None => sel,
        },
        None => sel,
    };
    let ok = inner.starts_with("password:")
        || inner.strip_prefix("file:").is_some_and(|f| !f.is_empty())
        || ["random", "disabled"].contains(&inner);
    if ok {
        return Ok(());
    }
    Err("'rootpass' takes a virt-customize selector: password:PASSWORD, file:FILE, random, disabled, locked or locked:<selector> (a bare value is not taken as the password)".into())
}

/// A POSIX-ish user name (it reaches the guest only as data, but a typo is better caught
/// here than at boot).
fn is_user_name(u: &str) -> bool {
    let mut chars = u.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c))
        && u.len() <= 32
}

/// The original's resize mapping: `size` (required), `expand` and `/dev/...` partitions
/// (each a virt-resize `--resize` operation); values are strings.
fn check_resize(v: Option<&Value>) -> Result<(), (String, String)> {
    let Some(Value::Object(m)) = v else {
        return Ok(());
    };
    if !m.contains_key("size") {
        return Err((
            "resize".into(),
            "'resize' as a mapping needs 'size' (the new disk size)".into(),
        ));
    }
    for k in m.keys() {
        if !["size", "expand"].contains(&k.as_str()) && !k.starts_with("/dev/") {
            return Err((
                format!("resize.{k}"),
                format!("unknown resize key '{k}'; valid: size, expand, or a partition /dev/..."),
            ));
        }
    }
    Ok(())
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!("{}...", &s[..40])
    } else {
        s
    }
}

fn coerce(ty: Ty, v: &Value) -> Option<Value> {
    match (ty, v) {
        (Ty::Str, Value::String(_)) => Some(v.clone()),
        (Ty::Str, Value::Number(n)) => Some(Value::String(n.to_string())),
        (Ty::Str, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (Ty::Int, Value::Number(n)) if n.is_i64() => Some(v.clone()),
        (Ty::Int, Value::String(s)) => s.trim().parse::<i64>().ok().map(Value::from),
        (Ty::Bool, Value::Bool(_)) => Some(v.clone()),
        (Ty::Bool, Value::String(s)) => match s.to_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(Value::Bool(true)),
            "false" | "no" | "off" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        (Ty::Words, Value::String(s)) => Some(Value::Array(
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|w| !w.is_empty())
                .map(|w| Value::String(w.into()))
                .collect(),
        )),
        (Ty::Argv, Value::String(s)) => {
            shlex::split(s).map(|w| Value::Array(w.into_iter().map(Value::String).collect()))
        }
        (Ty::Opts, Value::Array(items)) => items
            .iter()
            .flat_map(|i| match i {
                Value::Array(words) => words.iter().map(|w| coerce(Ty::Str, w)).collect(),
                one => vec![coerce(Ty::Str, one)],
            })
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        (Ty::Resize, Value::Object(m)) => m
            .iter()
            .map(|(k, v)| coerce(Ty::Str, v).map(|v| (k.clone(), v)))
            .collect::<Option<Map<_, _>>>()
            .map(Value::Object),
        (Ty::Resize, _) => coerce(Ty::Str, v),
        (Ty::Words | Ty::Argv, Value::Array(items)) => items
            .iter()
            .map(|i| coerce(Ty::Str, i))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        _ => None,
    }
}

/// The tag of a runner's output line: upper case, cut to 6 letters, centred.
pub fn tag(name: &str) -> String {
    let t: String = name.to_uppercase().chars().take(6).collect();
    let left = (6 - t.len()) / 2;
    format!("{}{t}{}", " ".repeat(left), " ".repeat(6 - t.len() - left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_match_the_original() {
        assert_eq!(tag("run"), " RUN  ");
        assert_eq!(tag("file"), " FILE ");
        assert_eq!(tag("firstboot"), "FIRSTB");
        assert_eq!(tag("hostname"), "HOSTNA");
        assert_eq!(tag("import"), "IMPORT");
    }

    #[test]
    fn scalars_stand_for_the_primary_argument() {
        let m = normalize(find("hostname").unwrap(), &json!("web1")).unwrap();
        assert_eq!(m["name"], "web1");
        let m = normalize(find("install").unwrap(), &json!("a, b c")).unwrap();
        assert_eq!(m["packages"], json!(["a", "b", "c"]));
        let m = normalize(
            find("virtcustomize").unwrap(),
            &json!("--timezone 'Europe/Paris'"),
        )
        .unwrap();
        assert_eq!(m["args"], json!(["--timezone", "Europe/Paris"]));
    }

    #[test]
    fn unknown_missing_and_mistyped_arguments_are_named() {
        let (k, msg) = normalize(
            find("copy").unwrap(),
            &json!({"dset": "/x", "content": "y"}),
        )
        .unwrap_err();
        assert_eq!(k, "dset");
        assert!(msg.contains("did you mean 'dest'"), "{msg}");
        let (k, _) = normalize(find("copy").unwrap(), &json!({"content": "y"})).unwrap_err();
        assert_eq!(k, "dest");
        let (k, msg) = normalize(find("boot").unwrap(), &json!({"memory": "lots"})).unwrap_err();
        assert_eq!(k, "memory");
        assert!(msg.contains("integer"), "{msg}");
        let (k, _) = normalize(
            find("qcow2").unwrap(),
            &json!({"path": "x", "compress": "rar"}),
        )
        .unwrap_err();
        assert_eq!(k, "compress");
        let q = |v: Value| normalize(find("qcow2").unwrap(), &v);
        let (k, msg) = q(json!({"path": "x", "compress": "xz", "level": 10})).unwrap_err();
        assert_eq!(
            (k.as_str(), msg.as_str()),
            ("level", "'level' must be 1 to 9, not 10")
        );
        assert!(q(json!({"path": "x", "compress": "gzip", "level": "0"})).is_err());
        assert!(q(json!({"path": "x", "compress": "zstd", "level": 19})).is_ok());
        assert!(q(json!({"path": "x", "compress": "lz4", "level": "9"})).is_ok());
    }

    #[test]
    fn the_originals_step_forms_are_accepted() {
        let n = |r: &str, v: Value| normalize(find(r).unwrap(), &v);
        assert_eq!(
            n("selinux", json!("permissive")).unwrap()["mode"],
            "permissive"
        );
        assert!(n("selinux", Value::Null).unwrap().is_empty());
        let (k, msg) = n("selinux", json!("lax")).unwrap_err();
        assert_eq!(k, "mode");
        assert!(
            msg.contains("enforcing, permissive, disabled, relabel"),
            "{msg}"
        );
        assert_eq!(
            n("grub_append", json!(["console=ttyS0,115200", "quiet"])).unwrap()["args"],
            json!(["console=ttyS0,115200", "quiet"])
        );
        assert_eq!(
            n("grub_append", json!("console=ttyS0,115200 quiet")).unwrap()["args"],
            json!(["console=ttyS0,115200", "quiet"])
        );
        assert_eq!(n("ssh_keygen", json!("alice")).unwrap()["user"], "alice");
        assert!(n("ssh_keygen", Value::Null).unwrap().is_empty());
        assert_eq!(n("ssh_keygen", json!("al ice")).unwrap_err().0, "user");
        assert_eq!(
            n("inject_qemu_ga", json!("osinfo-db")).unwrap()["source"],
            "osinfo-db"
        );
        for ok in [
            "password:x",
            "file:/p",
            "random",
            "disabled",
            "locked",
            "locked:random",
            "locked:password:x",
        ] {
            assert!(n("rootpass", json!(ok)).is_ok(), "{ok}");
        }
        for bad in ["hunter2", "file:", "locked:hunter2", "lockedx"] {
            let (k, msg) = n("rootpass", json!(bad)).unwrap_err();
            assert_eq!(k, "password");
            assert!(msg.contains("selector"), "{msg}");
        }
        let m = n(
            "boot",
            json!({"display": "none", "cpu": "host", "cpus": 2, "memory": "2048",
                   "serial": true, "opts": [["-device", "virtio-rng-pci"], "-snapshot"]}),
        )
        .unwrap();
        assert_eq!(m["opts"], json!(["-device", "virtio-rng-pci", "-snapshot"]));
        assert_eq!(m["memory"], 2048);
        assert_eq!(
            n("boot", json!({"display": "vnc"})).unwrap_err().0,
            "display"
        );
        let m = n(
            "copy",
            json!({"dest": "/x", "content": "y", "simple": true}),
        )
        .unwrap();
        assert_eq!(m["simple"], true);
    }
}
