//! gen-vm-image on real guests (real libvirtd, TCG here): `configure` applies a user-data
//! to a Debian 12 image with cloud-init (scripts/build-cloudinit-image.sh, cached), the
//! result boots and has the file the user-data wrote; an image without cloud-init fails
//! with a clear error instead of hanging. Domains are named vut-gvi-* and removed.

use crate::guard::Cleanup;
use crate::run::Run;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use virt_up::hypervisor::domain_xml::{Disk, DomainSpec};

const URI: &str = "qemu:///system";

fn gvi(args: &[&str]) -> Run {
    eprintln!("realvm: gen-vm-image {}", args.join(" "));
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gen-vm-image"))
        .args(args)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .unwrap();
    let run = Run::document(out);
    eprintln!(
        "realvm: ... return code {} after {:.1} s",
        run.code,
        started.elapsed().as_secs_f64()
    );
    run
}

/// A working directory libvirt's qemu user can reach (/var/tmp is world-traversable).
struct Workdir(PathBuf);

impl Workdir {
    fn new(tag: &str) -> Workdir {
        let dir = PathBuf::from(format!("/var/tmp/vut-gvi-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Workdir(dir)
    }

    fn path(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn script(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts").join(name))
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a path")
        .trim()
        .to_string()
}

fn connect() -> virt::connect::Connect {
    virt::error::clear_error_callback();
    virt::connect::Connect::open(Some(URI))
        .expect("the real-VM tier needs libvirtd on qemu:///system (make host)")
}

/// Destroy and undefine a domain if it exists.
fn remove_domain(conn: &virt::connect::Connect, name: &str) {
    if let Ok(d) = conn.lookup_domain_by_name(name) {
        let _ = d.destroy();
        let _ = d.undefine();
    }
}

fn domain_exists(conn: &virt::connect::Connect, name: &str) -> bool {
    conn.lookup_domain_by_name(name).is_ok()
}

/// Run a guest-agent command (virsh qemu-agent-command), waiting until the agent answers
/// (polling every 100 ms).
fn agent(dom: &str, cmd: &str, deadline: Instant, log: &str) -> serde_json::Value {
    loop {
        let out = Command::new("virsh")
            .args(["-c", URI, "qemu-agent-command", dom, cmd, "--timeout", "5"])
            .output()
            .unwrap();
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the guest agent never answered ({}); console log: {log}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => 0,
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = vec![];
    for chunk in clean.chunks(4) {
        let n = chunk.iter().filter(|&&c| c != b'=').count();
        let v = chunk
            .iter()
            .fold(0u32, |acc, &c| (acc << 6) | u32::from(val(c)))
            << (6 * (4 - chunk.len()));
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&bytes[..n.saturating_sub(1)]);
    }
    out
}

/// Read a file in a running guest through its agent.
fn guest_file(dom: &str, path: &str, deadline: Instant, log: &str) -> String {
    let open = agent(
        dom,
        &format!(r#"{{"execute":"guest-file-open","arguments":{{"path":"{path}","mode":"r"}}}}"#),
        deadline,
        log,
    );
    let handle = open["return"].as_i64().expect("a file handle");
    let read = agent(
        dom,
        &format!(
            r#"{{"execute":"guest-file-read","arguments":{{"handle":{handle},"count":65536}}}}"#
        ),
        deadline,
        log,
    );
    agent(
        dom,
        &format!(r#"{{"execute":"guest-file-close","arguments":{{"handle":{handle}}}}}"#),
        deadline,
        log,
    );
    String::from_utf8(base64_decode(read["return"]["buf-b64"].as_str().unwrap())).unwrap()
}

#[test]
fn base64_decoder_works() {
    assert_eq!(base64_decode("aGVsbG8gd29ybGQK"), b"hello world\n");
    assert_eq!(base64_decode("YQ=="), b"a");
    assert_eq!(base64_decode("YWI="), b"ab");
}

#[test]
fn gvi1_configure_applies_user_data_and_the_result_boots_with_it() {
    let conn = connect();
    for d in ["vut-gvi-cfg", "vut-gvi-boot"] {
        remove_domain(&conn, d);
    }
    let _cleanup = Cleanup::domains(&["vut-gvi-cfg", "vut-gvi-boot"]);
    let source = script("build-cloudinit-image.sh");
    let w = Workdir::new("cfg");
    // The image to configure, made by gen-vm-image itself from the cached one.
    let made = gvi(&[
        "single",
        "ci",
        "3G",
        "-i",
        &source,
        "-od",
        &w.path("images"),
    ]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let image = w.path("images/ci.qcow2");

    let token = format!("configured by gen-vm-image {:016x}", virt_up::random::u64());
    std::fs::write(
        w.path("user-data"),
        format!(
            "#cloud-config\nwrite_files:\n  - path: /etc/gvi-proof\n    content: \"{token}\\n\"\n"
        ),
    )
    .unwrap();
    let run = gvi(&[
        "configure",
        &image,
        "--user-data",
        &w.path("user-data"),
        "--seed-output",
        &w.path("seed/seed.img"),
        "--console-log",
        &w.path("configure-console.log"),
        "--domain-name",
        "vut-gvi-cfg",
        "--virt-type",
        "qemu",
        "--connect",
        URI,
        "--timeout",
        "900",
        "--verbose",
    ]);
    let doc = run.doc();
    eprintln!("realvm: {}", serde_json::to_string_pretty(&doc).unwrap());
    assert_eq!(run.code, 0, "configure failed: {}", doc["response"]);
    assert_eq!(doc["status"], "success");
    assert!(
        !domain_exists(&conn, "vut-gvi-cfg"),
        "the temporary domain was left"
    );
    assert!(
        !Path::new(&w.path("images/.ci.qcow2.configure.qcow2")).exists(),
        "the overlay was left"
    );

    // Boot the result and find the file the user-data wrote.
    let console = w.path("boot-console.log");
    let spec = DomainSpec {
        name: "vut-gvi-boot".into(),
        uuid: None,
        virt_type: "qemu".into(),
        arch: "x86_64".into(),
        machine: None,
        cpu: None,
        memory_mib: 1024,
        vcpus: 2,
        disks: vec![Disk {
            path: image.clone().into(),
            format: "qcow2".into(),
            readonly: false,
            serial: None,
        }],
        network: "default".into(),
        mac: virt_up::mac::random(),
        nic: virt_up::hypervisor::domain_xml::Nic::Up,
        genid: false,
        graphics: "none".into(),
        video: None,
        rng: true,
        console_log: console.clone().into(),
        template: "vut-gvi".into(),
        filesystems: Vec::new(),
        extra: Default::default(),
    };
    let dom = conn.define_domain_xml(&spec.to_xml()).unwrap();
    dom.create().unwrap();
    let dom = "vut-gvi-boot";
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let proof = guest_file(dom, "/etc/gvi-proof", deadline, &console);
    eprintln!(
        "realvm: the configured image booted; agent answered after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // virt-sysprep gave the image a fresh identity: the guest made a new machine-id.
    let machine_id = guest_file(dom, "/etc/machine-id", deadline, &console);
    remove_domain(&conn, "vut-gvi-boot");
    assert_eq!(proof.trim(), token);
    assert_eq!(machine_id.trim().len(), 32, "{machine_id:?}");
}

#[test]
fn gvi2_an_image_without_cloud_init_fails_clearly_and_is_left_alone() {
    let conn = connect();
    remove_domain(&conn, "vut-gvi-nocloud");
    let _cleanup = Cleanup::domains(&["vut-gvi-nocloud"]);
    let index = script("build-base-image.sh");
    let dir = Path::new(&index).parent().unwrap();
    let text = std::fs::read_to_string(&index).unwrap();
    let file = text
        .lines()
        .find_map(|l| l.strip_prefix("file="))
        .expect("file= in the index");
    let w = Workdir::new("nocloud");
    // The base image (no cloud-init) as qcow2: gen-vm-image decompresses the .xz itself.
    let xz = dir.join(file).display().to_string();
    let made = gvi(&[
        "single",
        "plain",
        "2G",
        "-i",
        &xz,
        "-if",
        "raw",
        "-od",
        &w.path("images"),
    ]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let image = w.path("images/plain.qcow2");
    let before = std::fs::metadata(&image).unwrap().modified().unwrap();
    std::fs::write(w.path("user-data"), "#cloud-config\n").unwrap();
    let log = w.path("console.log");
    let run = gvi(&[
        "configure",
        &image,
        "--user-data",
        &w.path("user-data"),
        "--seed-output",
        &w.path("seed.img"),
        "--console-log",
        &log,
        "--domain-name",
        "vut-gvi-nocloud",
        "--connect",
        URI,
        "--timeout",
        "600",
    ]);
    let doc = run.doc();
    eprintln!("realvm: {}", doc["response"]);
    assert_eq!(run.code, 12, "{doc}");
    let response = doc["response"].as_str().unwrap();
    assert!(response.contains("has no cloud-init"), "{response}");
    assert!(response.contains(&log), "{response}");
    assert!(!domain_exists(&conn, "vut-gvi-nocloud"));
    assert_eq!(
        std::fs::metadata(&image).unwrap().modified().unwrap(),
        before,
        "the image was modified"
    );
}
