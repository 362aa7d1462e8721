//! `configure`: apply a cloud-init configuration to an image by booting it once.
//!
//! 1. a NoCloud seed (ISO 9660, volume label `cidata`) with user-data, meta-data (made up
//!    when none is given), vendor-data and network-config, written atomically;
//! 2. a libvirt domain with a qcow2 overlay on the image, the seed (read-only) and a serial
//!    console log;
//! 3. the console log is followed until cloud-init reports "Cloud-init v. ... finished";
//!    a guest that reaches a login prompt without cloud-init, stops, or runs out of time is
//!    an error that says so and names the log (never a hang);
//! 4. ACPI power-off, waited for by polling the domain's state;
//! 5. the domain is removed (also on any error or Ctrl-C), virt-sysprep resets the
//!    overlay's identity (machine-id, SSH host keys, logs, ...), and only then are the
//!    overlay's changes committed into the image. A failure at any step before leaves the
//!    image as it was (the original tool changed it in place, even when failing).

use super::{Failure, ReturnCode, Verbose};
use crate::fsutil::hidden_sibling;
use crate::fsutil::TempPath;
use crate::hypervisor::domain_xml::{Disk, DomainSpec};
use crate::hypervisor::{Hypervisor, Libvirt};
use crate::image::cancel::Cancel;
use crate::image::qemu_img::QemuImg;
use crate::runner::{argv, Runner, ToolError};
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(100);
/// How long a guest may take to power off once cloud-init is done.
const POWER_OFF_TIMEOUT: Duration = Duration::from_secs(180);
/// ACPI power button presses can be lost while the guest is busy: press again this often.
const POWER_BUTTON_REPEAT: Duration = Duration::from_secs(10);

pub const DEFAULT_CLOUD_CONFIG_DIR: &str = "cloud-init-config";
pub const DEFAULT_SEED: &str = "image-config/seed.img";
pub const DEFAULT_IMAGE: &str = "generated-images/image.qcow2";

#[derive(Debug, Clone)]
pub struct ConfigureOptions {
    pub image: PathBuf,
    /// Default: cloud-init-config/user-data (it must exist).
    pub user_data: Option<PathBuf>,
    /// Default: cloud-init-config/meta-data if it exists, else one is made up.
    pub meta_data: Option<PathBuf>,
    /// Default: cloud-init-config/vendor-data if it exists.
    pub vendor_data: Option<PathBuf>,
    /// Default: cloud-init-config/network-config if it exists.
    pub network_config: Option<PathBuf>,
    pub seed_output: PathBuf,
    /// `kvm` or `qemu` (TCG, for hosts without a working KVM).
    pub virt_type: String,
    /// None: the one libvirt picks (LIBVIRT_DEFAULT_URI, uri_default, the local qemu).
    pub uri: Option<String>,
    pub network: String,
    pub memory_mib: u64,
    pub vcpus: u64,
    pub cpu_model: Option<String>,
    /// How long cloud-init may take, from the start of the guest.
    pub timeout: Duration,
    /// The temporary domain's name (default: gen-vm-image-<image>-<pid>).
    pub domain_name: Option<String>,
    /// Default: next to the seed, `<image stem>-console.log`.
    pub console_log: Option<PathBuf>,
}

fn fail(code: ReturnCode, message: impl Into<String>) -> Failure {
    Failure::new(code, message)
}

/// Configure the image; the value is the response for the JSON document.
pub fn run(
    opts: &ConfigureOptions,
    cancel: &Cancel,
    verbose: &mut Verbose,
) -> Result<String, Failure> {
    let started = Instant::now();
    if !opts.image.is_file() {
        return Err(fail(
            ReturnCode::PathNotFound,
            format!(
                "Path not found: {} (the image to configure)",
                opts.image.display()
            ),
        ));
    }
    let virt_type = crate::config::plan::VirtType::parse(&opts.virt_type).ok_or_else(|| {
        fail(
            ReturnCode::InvalidAttribute,
            format!("--virt-type must be kvm or qemu, not '{}'", opts.virt_type),
        )
    })?;
    let cpu = match opts.cpu_model.as_deref() {
        Some("host") if opts.virt_type == "qemu" => {
            return Err(fail(
                ReturnCode::InvalidAttribute,
                "the CPU model 'host' needs --virt-type kvm (without KVM, leave the model out)",
            ))
        }
        Some("host") | Some("host-passthrough") => Some("host-passthrough".to_string()),
        other => other.map(str::to_string),
    };
    let files = seed_files(opts)?;
    let runner = Runner::new(virt_type);
    let qemu = QemuImg::new(&runner);
    let info = qemu.info(&opts.image, None).map_err(|e| {
        fail(
            ReturnCode::Load,
            format!("cannot read the image to configure: {e}"),
        )
    })?;
    make_seed(&runner, &files, &opts.seed_output, &stem(&opts.image))?;
    verbose.push(format!(
        "Seed {} (label cidata): {}",
        opts.seed_output.display(),
        files.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
    ));

    let hv = match &opts.uri {
        Some(uri) => Libvirt::connect(uri),
        None => Libvirt::connect_default(),
    }
    .map_err(|e| fail(ReturnCode::Configure, e.to_string()))?;
    let domain = opts
        .domain_name
        .clone()
        .unwrap_or_else(|| format!("gen-vm-image-{}-{}", stem(&opts.image), std::process::id()));
    let console_log = opts.console_log.clone().unwrap_or_else(|| {
        opts.seed_output
            .with_file_name(format!("{}-console.log", stem(&opts.image)))
    });
    if let Some(dir) = console_log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(ReturnCode::Create, format!("{}: {e}", dir.display())))?;
    }
    let console_log = crate::fsutil::absolute(&console_log);
    // The guest writes to an overlay; the image changes only when everything worked.
    let overlay = TempPath::fresh(hidden_sibling(&opts.image, ".configure.qcow2"))
        .map_err(|e| fail(ReturnCode::Create, e.to_string()))?;
    qemu.create_overlay(overlay.path(), &opts.image, &info.format)
        .map_err(|e| fail(ReturnCode::Create, e.to_string()))?;
    if hv
        .is_defined(&domain)
        .map_err(|e| fail(ReturnCode::Configure, e.to_string()))?
    {
        return Err(fail(
            ReturnCode::Configure,
            format!(
                "a libvirt domain named '{domain}' already exists; choose another --domain-name"
            ),
        ));
    }
    let spec = DomainSpec {
        name: domain.clone(),
        uuid: None,
        virt_type: opts.virt_type.clone(),
        arch: std::env::consts::ARCH.to_string(),
        machine: None,
        cpu,
        memory_mib: opts.memory_mib,
        vcpus: opts.vcpus,
        disks: vec![
            Disk {
                path: crate::fsutil::absolute(overlay.path()),
                format: "qcow2".into(),
                readonly: false,
                serial: None,
            },
            Disk {
                path: crate::fsutil::absolute(&opts.seed_output),
                format: "raw".into(),
                readonly: true,
                serial: Some("cidata".into()),
            },
        ],
        network: opts.network.clone(),
        mac: crate::mac::random(),
        nic: crate::hypervisor::domain_xml::Nic::Up,
        genid: false,
        graphics: "none".into(),
        video: None,
        rng: true,
        console_log: console_log.clone(),
        template: "gen-vm-image-configure".into(),
        filesystems: Vec::new(),
        extra: Default::default(),
    };
    let guard = DomainGuard {
        hv: &hv,
        name: &domain,
    };
    boot_and_wait(opts, &hv, &spec, cancel, verbose)?;
    drop(guard);
    verbose.push(format!(
        "Guest {domain} configured and powered off after {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    let sysprep_started = Instant::now();
    // virt-sysprep wants --format before the -a it applies to.
    let args = argv([
        OsString::from("--format"),
        "qcow2".into(),
        "-a".into(),
        overlay.path().as_os_str().to_owned(),
    ]);
    let cancelled = || cancel.is_cancelled();
    runner
        .tool("virt-sysprep")
        .args(&args)
        .context("resetting the image's identity")
        .cancel(&cancelled)
        .run()
        .map_err(|e| match e {
            ToolError::Interrupted => fail(ReturnCode::Interrupted, "interrupted"),
            e => fail(ReturnCode::Reset, format!("Failed to reset image: {e}")),
        })?;
    verbose.push(format!(
        "virt-sysprep reset the image's identity in {:.1} s",
        sysprep_started.elapsed().as_secs_f64()
    ));
    if cancel.is_cancelled() {
        return Err(fail(ReturnCode::Interrupted, "interrupted"));
    }
    qemu.commit(overlay.path())
        .map_err(|e| fail(ReturnCode::Create, e.to_string()))?;
    drop(overlay);
    verbose.push(format!(
        "Committed the changes into {}",
        opts.image.display()
    ));
    Ok(format!(
        "Configured {} with cloud-init in {:.0} s (console log: {})",
        opts.image.display(),
        started.elapsed().as_secs_f64(),
        console_log.display()
    ))
}

/// Removes the temporary domain however the run ends.
struct DomainGuard<'a> {
    hv: &'a dyn Hypervisor,
    name: &'a str,
}

impl Drop for DomainGuard<'_> {
    fn drop(&mut self) {
        let _ = self.hv.destroy(self.name);
        let _ = self.hv.undefine(self.name);
    }
}

fn libvirt_failure(e: crate::error::Error) -> Failure {
    let mut message = e.to_string();
    if message.contains("Permission denied") {
        message.push_str(
            "\nthe image and the seed must be readable by libvirt's qemu user: check the \
             permissions of their directories",
        );
    }
    fail(ReturnCode::Configure, message)
}

fn boot_and_wait(
    opts: &ConfigureOptions,
    hv: &dyn Hypervisor,
    spec: &DomainSpec,
    cancel: &Cancel,
    verbose: &mut Verbose,
) -> Result<(), Failure> {
    let name = spec.name.as_str();
    let log = spec.console_log.as_path();
    hv.define(&spec.to_xml()).map_err(libvirt_failure)?;
    hv.start(name).map_err(libvirt_failure)?;
    let started = Instant::now();
    verbose.push(format!(
        "Started {name} ({}); console log: {}",
        spec.virt_type,
        log.display()
    ));
    let mut watch = ConsoleWatch::default();
    let mut follower = Follower::new(log);
    let seen = |w: &ConsoleWatch| {
        if w.seen_cloud_init {
            "cloud-init started but did not report that it finished"
        } else {
            "the console showed no cloud-init output (does the image have cloud-init and a serial console?)"
        }
    };
    loop {
        follower.feed(&mut watch);
        if let Some(line) = &watch.finished {
            verbose.push(format!(
                "cloud-init finished after {:.1} s: {line}",
                started.elapsed().as_secs_f64()
            ));
            break;
        }
        if watch.login_prompt && !watch.seen_cloud_init {
            return Err(fail(
                ReturnCode::Configure,
                format!(
                    "{name}: the guest reached a login prompt, but cloud-init never ran: the \
                     image has no cloud-init (or it is disabled); console log: {}",
                    log.display()
                ),
            ));
        }
        if cancel.is_cancelled() {
            return Err(fail(ReturnCode::Interrupted, "interrupted"));
        }
        if !hv.is_running(name).unwrap_or(false) {
            follower.feed(&mut watch);
            if watch.finished.is_some() {
                continue;
            }
            return Err(fail(
                ReturnCode::Configure,
                format!(
                    "{name}: the guest stopped before cloud-init finished ({}); console log: {}",
                    seen(&watch),
                    log.display()
                ),
            ));
        }
        if started.elapsed() >= opts.timeout {
            return Err(fail(
                ReturnCode::Configure,
                format!(
                    "{name}: timed out after {} s waiting for cloud-init: {}; console log: {} \
                     (a longer --timeout may help)",
                    opts.timeout.as_secs(),
                    seen(&watch),
                    log.display()
                ),
            ));
        }
        std::thread::sleep(POLL);
    }
    for w in &watch.warnings {
        verbose.push(format!("cloud-init: {w}"));
    }
    if !watch.failures.is_empty() {
        return Err(fail(
            ReturnCode::Configure,
            format!(
                "{name}: cloud-init finished with errors:\n{}\nconsole log: {}",
                watch.failures.join("\n"),
                log.display()
            ),
        ));
    }
    power_off(hv, name, cancel, log)?;
    verbose.push(format!(
        "Powered off after {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// ACPI power-off, pressed again now and then, until the domain is shut off.
fn power_off(hv: &dyn Hypervisor, name: &str, cancel: &Cancel, log: &Path) -> Result<(), Failure> {
    let started = Instant::now();
    let mut pressed: Option<Instant> = None;
    while hv.is_running(name).unwrap_or(false) {
        if cancel.is_cancelled() {
            return Err(fail(ReturnCode::Interrupted, "interrupted"));
        }
        if started.elapsed() >= POWER_OFF_TIMEOUT {
            return Err(fail(
                ReturnCode::Configure,
                format!(
                    "{name}: the guest did not power off within {} s after cloud-init finished \
                     (it was stopped; the image may be inconsistent); console log: {}",
                    POWER_OFF_TIMEOUT.as_secs(),
                    log.display()
                ),
            ));
        }
        if pressed.is_none_or(|t| t.elapsed() >= POWER_BUTTON_REPEAT) {
            // An error here (e.g. it just stopped) is seen by the next state check.
            let _ = hv.shutdown(name);
            pressed = Some(Instant::now());
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Reads what was appended to the console log since the last call.
struct Follower<'a> {
    path: &'a Path,
    offset: u64,
}

impl<'a> Follower<'a> {
    fn new(path: &'a Path) -> Follower<'a> {
        Follower { path, offset: 0 }
    }

    fn feed(&mut self, watch: &mut ConsoleWatch) {
        let Ok(mut f) = std::fs::File::open(self.path) else {
            return;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            // Truncated (a new guest start): read from the beginning.
            self.offset = 0;
        }
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.read_to_end(&mut buf) {
            self.offset += n as u64;
            watch.feed(&buf);
        }
    }
}

/// What the serial console says about cloud-init.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ConsoleWatch {
    /// Any cloud-init output at all.
    pub seen_cloud_init: bool,
    /// The "Cloud-init v. ... finished at ..." line.
    pub finished: Option<String>,
    /// A `login:` prompt was shown.
    pub login_prompt: bool,
    /// Modules that failed.
    pub failures: Vec<String>,
    /// Other warnings cloud-init printed.
    pub warnings: Vec<String>,
    partial: String,
}

impl ConsoleWatch {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.partial.push_str(&String::from_utf8_lossy(bytes));
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.line(line.trim_end_matches(['\r', '\n']));
        }
        // A prompt waits for input: it never ends its line.
        let prompt = strip_escapes(&self.partial);
        if prompt.trim_end().ends_with(" login:") {
            self.login_prompt = true;
        }
    }

    fn line(&mut self, raw: &str) {
        let line = strip_escapes(raw);
        let line = line.trim();
        let lower = line.to_ascii_lowercase();
        if lower.contains("cloud-init") {
            self.seen_cloud_init = true;
        }
        if line.contains("Cloud-init v.") && line.contains(" finished at ") {
            self.finished = Some(line.to_string());
        } else if lower.contains("cloud-init")
            && (line.contains("[WARNING]")
                || line.contains("[ERROR]")
                || line.contains("[CRITICAL]"))
        {
            let failed_module = (lower.contains("running module") && lower.contains("failed"))
                || lower.contains("failed to run module")
                || line.contains("[ERROR]")
                || line.contains("[CRITICAL]");
            if failed_module {
                self.failures.push(line.to_string());
            } else {
                self.warnings.push(line.to_string());
            }
        }
        if line.ends_with(" login:") {
            self.login_prompt = true;
        }
    }
}

/// Console output without terminal escape sequences.
fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// One file of the seed: its name on the ISO, and where it comes from.
struct SeedFile {
    name: &'static str,
    source: SeedSource,
}

enum SeedSource {
    File(PathBuf),
    Text(String),
}

fn seed_files(opts: &ConfigureOptions) -> Result<Vec<SeedFile>, Failure> {
    let dir = Path::new(DEFAULT_CLOUD_CONFIG_DIR);
    let given = |p: &Option<PathBuf>, what: &str| -> Result<Option<PathBuf>, Failure> {
        match p {
            Some(p) if p.is_file() => Ok(Some(p.clone())),
            Some(p) => Err(fail(
                ReturnCode::PathNotFound,
                format!("Path not found: {} (the cloud-init {what})", p.display()),
            )),
            None => {
                let default = dir.join(what);
                Ok(default.is_file().then_some(default))
            }
        }
    };
    let user_data = given(&opts.user_data, "user-data")?.ok_or_else(|| {
        fail(
            ReturnCode::PathNotFound,
            format!(
                "Path not found: {} (the cloud-init user-data; give one with --user-data)",
                dir.join("user-data").display()
            ),
        )
    })?;
    let mut files = vec![SeedFile {
        name: "user-data",
        source: SeedSource::File(user_data),
    }];
    files.push(SeedFile {
        name: "meta-data",
        source: match given(&opts.meta_data, "meta-data")? {
            Some(p) => SeedSource::File(p),
            None => SeedSource::Text(format!(
                "instance-id: gen-vm-image-{:016x}\nlocal-hostname: {}\n",
                crate::random::u64(),
                hostname_of(&stem(&opts.image))
            )),
        },
    });
    if let Some(p) = given(&opts.vendor_data, "vendor-data")? {
        files.push(SeedFile {
            name: "vendor-data",
            source: SeedSource::File(p),
        });
    }
    if let Some(p) = given(&opts.network_config, "network-config")? {
        files.push(SeedFile {
            name: "network-config",
            source: SeedSource::File(p),
        });
    }
    Ok(files)
}

/// The seed ISO, built in a work directory and renamed into place.
fn make_seed(
    runner: &Runner,
    files: &[SeedFile],
    seed: &Path,
    label_for: &str,
) -> Result<(), Failure> {
    let create = |m: String| {
        fail(
            ReturnCode::Create,
            format!("Failed to create path: {} - error: {m}", seed.display()),
        )
    };
    let dir = seed
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| create(e.to_string()))?;
    let work = tempfile::Builder::new()
        .prefix(".seed-")
        .tempdir_in(dir)
        .map_err(|e| create(e.to_string()))?;
    let mut paths = vec![];
    for f in files {
        let dest = work.path().join(f.name);
        match &f.source {
            SeedSource::File(p) => std::fs::copy(p, &dest).map(|_| ()),
            SeedSource::Text(t) => std::fs::write(&dest, t),
        }
        .map_err(|e| create(format!("{}: {e}", f.name)))?;
        paths.push(dest.into_os_string());
    }
    let part = TempPath::fresh(hidden_sibling(seed, ".part")).map_err(|e| create(e.to_string()))?;
    let mut args = argv(["-quiet", "-o"]);
    args.push(part.path().as_os_str().to_owned());
    args.extend(argv(["-V", "cidata", "-J", "-r"]));
    args.extend(paths);
    let context = format!("making the cloud-init seed for {label_for}");
    let made = match runner
        .tool("genisoimage")
        .args(&args)
        .context(&context)
        .run()
    {
        Err(ToolError::Missing { .. }) => (runner.tool("xorriso").args(["-as", "mkisofs"]))
            .args(&args)
            .context(&context)
            .run(),
        other => other,
    };
    made.map_err(|e| create(e.to_string()))?;
    part.persist(seed).map_err(|e| create(e.to_string()))?;
    // libvirt's qemu user reads the seed.
    let _ = std::fs::set_permissions(seed, std::os::unix::fs::PermissionsExt::from_mode(0o644));
    Ok(())
}

fn stem(image: &Path) -> String {
    let s = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "image".into()
    } else {
        clean
    }
}

/// A host name from an image name: letters, digits and '-', at most 63.
fn hostname_of(stem: &str) -> String {
    let h: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let h = h.trim_matches('-');
    let h = &h[..h.len().min(63)];
    if h.is_empty() {
        "localhost".into()
    } else {
        h.trim_end_matches('-').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_line_is_recognised_across_chunks() {
        let mut w = ConsoleWatch::default();
        w.feed(b"[    5.1] cloud-init[301]: Cloud-init v. 22.4.2 running 'init-local' at Mon, 01 Jan 2024 00:00:00 +0000. Up 5.00 seconds.\r\n");
        assert!(w.seen_cloud_init && w.finished.is_none());
        w.feed(b"[   30.0] cloud-init[500]: Cloud-init v. 22.4.2 fini");
        assert!(w.finished.is_none());
        w.feed(b"shed at Mon, 01 Jan 2024 00:00:30 +0000. Datasource DataSourceNoCloud [seed=/dev/vdb][dsmode=net].  Up 30.00 seconds\r\n");
        assert!(w.finished.as_deref().unwrap().contains("DataSourceNoCloud"));
        assert!(w.failures.is_empty());
    }

    #[test]
    fn login_prompt_without_cloud_init_is_noticed() {
        let mut w = ConsoleWatch::default();
        w.feed(b"Debian GNU/Linux 12 debian ttyS0\r\n\r\n\x1b[1;32mdebian login: ");
        assert!(w.login_prompt);
        assert!(!w.seen_cloud_init);
    }

    #[test]
    fn failed_modules_are_failures_other_warnings_are_not() {
        let mut w = ConsoleWatch::default();
        w.feed(b"[   20.0] cloud-init[400]: 2024-01-01 00:00:20,000 - util.py[WARNING]: Running module runcmd (<module 'cloudinit.config.cc_runcmd'>) failed\n");
        w.feed(b"[   21.0] cloud-init[400]: 2024-01-01 00:00:21,000 - cc_foo.py[WARNING]: something odd\n");
        assert_eq!(w.failures.len(), 1, "{w:?}");
        assert_eq!(w.warnings.len(), 1, "{w:?}");
    }

    #[test]
    fn names() {
        assert_eq!(stem(Path::new("/x/debian 12.qcow2")), "debian-12");
        assert_eq!(hostname_of("Debian_12.5"), "debian-12-5");
        assert_eq!(hostname_of("___"), "localhost");
    }
}
