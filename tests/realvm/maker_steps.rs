//! virt-maker's step types on real tools: one template, on the local base image, with
//! every step type that needs no internet (all but `inject_qemu_ga`, which installs the
//! guest agent from the distribution's repositories or osinfo-db, and
//! `inject_virtio_win`, which is for Windows guests). Its `firstboot` script writes what
//! each step did, as seen from inside the booted guest, to /root/vm-report and powers
//! the guest off; its `boot` step is that one boot; the exported image's report is then
//! read with one guestfish session and every effect checked.
//!
//! The package: a tiny .deb built on the host with `dpkg-deb`, put into the image by
//! `copy` and installed by `install` (virt-customize --install, that is `apt-get install
//! /path/to.deb`: apt installs a local file by its path).
//!
//! Every virt-customize run is a libguestfs appliance boot, the test's main cost under
//! TCG. The steps are ordered as a user would to boot few appliances (see README.rst,
//! "Customized templates and virt-maker"): the eleven virt-customize steps are adjacent,
//! so virt-maker runs them as one virt-customize invocation (rootpass last: virt-customize
//! sets passwords at the end of a run anyway); then sysprep (virt-sysprep), local_run on
//! the host, and the boot: two appliance boots in all (one per step, twelve, before
//! virt-maker ran consecutive virt-customize steps as one run, and a guestfish session to
//! read the report: it is now read by debugfs from the raw image). The import is the
//! `download` importer on the base image's .raw.xz (checked against the index's sha512):
//! no virt-builder appliance (m1 covers virt-builder).
//!
//! The install needs no network: `virt-customize --install` runs `apt-get update` first,
//! which would fetch the image's package indexes from its mirror when the appliance can
//! reach one (minutes under TCG). The `run` step sets /etc/apt/sources.list aside and the
//! `virtcustomize` step moves it back.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::guard::{Cleanup, KillOnDrop};

const PACKAGE: &str = "vm-every-step";
const DEB_IN_IMAGE: &str = "/var/cache/vm-every-step_1.0_all.deb";
const HOSTNAME: &str = "vm-every-step";
const ROOT_PASSWORD: &str = "Every-step-1";
const INJECTED_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZtLWV2ZXJ5LXN0ZXAtdGVzdC1rZXktMDEyMzQ1Njc4 vm-every-step";

/// `run`: a user for `ssh_keygen`, a marker, a file for `virtcustomize --delete` (a later
/// step of the same virt-customize run: their order holds), one for `sysprep`'s tmp-files
/// operation, and the apt sources set aside (`install` needs none for a local .deb).
const RUN_SH: &str = r#"#!/bin/sh
set -e
mv /etc/apt/sources.list /etc/apt/sources.list.vm-off
useradd -m -s /bin/sh alice
echo "ran by the run step as $(id -un)" > /etc/vm-run
echo "virtcustomize deletes this" > /etc/vm-delete-me
echo "sysprep removes this" > /var/tmp/vm-sysprep-me
"#;

/// `firstboot`: every step's effect from inside the booted guest, one `key=value` a line
/// (a command's error lands in the report too), then power off: the `boot` step waits
/// for that.
const REPORT_SH: &str = r#"#!/bin/sh
deb=/var/cache/vm-every-step_1.0_all.deb
gone() { if [ -e "$1" ]; then echo no; else echo yes; fi; }
{
echo "firstboot=ran"
echo "hostname=$(hostname)"
echo "cmdline=$(cat /proc/cmdline)"
echo "dpkg_status=$(dpkg -s vm-every-step | sed -n 's/^Status: //p')"
echo "dpkg_version=$(dpkg -s vm-every-step | sed -n 's/^Version: //p')"
echo "package_file=$(cat /usr/share/vm-every-step/hello)"
echo "copied=$(stat -c '%a %U' "$deb") $(sha256sum "$deb" | cut -d' ' -f1)"
echo "alice_key=$(stat -c '%a %U' /home/alice/.ssh/id_rsa)"
echo "alice_ssh_dir=$(stat -c '%a %U' /home/alice/.ssh)"
echo "alice_key_fp=$(ssh-keygen -l -f /home/alice/.ssh/id_rsa)"
echo "alice_pub_fp=$(ssh-keygen -l -f /home/alice/.ssh/id_rsa.pub)"
echo "rsa_hostkey=$(stat -c %a /etc/ssh/ssh_host_rsa_key) $(ssh-keygen -l -f /etc/ssh/ssh_host_rsa_key.pub | awk '{print $NF}')"
echo "selinux_config=$(tr '\n' ';' < /etc/selinux/config)"
echo "root_shadow=$(getent shadow root | cut -d: -f2)"
echo "run=$(cat /etc/vm-run)"
echo "sysprep_removed=$(gone /var/tmp/vm-sysprep-me)"
echo "written=$(stat -c %a /etc/vm-dir/written) $(cat /etc/vm-dir/written)"
echo "link=$(readlink /etc/vm-link)"
echo "deleted=$(gone /etc/vm-delete-me)"
echo "localtime=$(readlink /etc/localtime)"
echo "root_authorized_keys=$(cat /root/.ssh/authorized_keys)"
echo "apt_sources=$(gone /etc/apt/sources.list.vm-off) $(grep -c '^deb ' /etc/apt/sources.list)"
} > /root/vm-report.tmp 2>&1
mv /root/vm-report.tmp /root/vm-report
sync
echo "vm-every-step: report written, powering off" > /dev/console
systemctl --no-block poweroff
"#;

/// `local_run`: on the host, against the layer being built ($IMAGE).
const LOCAL_SH: &str = r#"#!/bin/sh
set -e
qemu-img info --output=json "$IMAGE" > "$(dirname "$0")/local-run.json"
"#;

/// The base image's .raw.xz and its sha512, from the virt-builder index.
fn base_image(index: &str) -> (PathBuf, String) {
    let text = std::fs::read_to_string(index).unwrap();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {index}:\n{text}"))
            .trim()
            .to_string()
    };
    let dir = Path::new(index).parent().unwrap();
    (dir.join(value("file=")), value("checksum[sha512]="))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A package with one file, built on the host.
fn build_deb(dir: &Path) -> PathBuf {
    let root = dir.join("pkg");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share").join(PACKAGE)).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!("Package: {PACKAGE}\nVersion: 1.0\nArchitecture: all\nMaintainer: virt-up tests <root@localhost>\nDescription: installed by virt-maker's install step from a local file\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("usr/share").join(PACKAGE).join("hello"),
        "installed from a local .deb\n",
    )
    .unwrap();
    let deb = dir.join("vm-every-step_1.0_all.deb");
    run_ok(
        Command::new("dpkg-deb")
            .arg("--root-owner-group")
            .arg("--build")
            .arg(&root)
            .arg(&deb),
    );
    deb
}

fn template(xz: &Path, sha512: &str) -> serde_json::Value {
    json!({"spec": {
        "import": {"download": {"url": xz.display().to_string(), "checksum": format!("sha512:{sha512}")}},
        // Steps 1-11: one virt-customize run.
        "steps": [
            {"run": {"file": "run.sh"}},
            {"copy": {"src": "vm-every-step_1.0_all.deb", "dest": DEB_IN_IMAGE, "chmod": "0604"}},
            {"install": [DEB_IN_IMAGE]},
            {"ssh_keygen": "alice"},
            {"ssh_hostkeys": null},
            {"grub_append": ["vm_every_step=grub", "vm_second=2"]},
            {"hostname": HOSTNAME},
            {"virtcustomize": [
                "--mkdir", "/etc/vm-dir",
                "--write", "/etc/vm-dir/written:written by virtcustomize",
                "--chmod", "0640:/etc/vm-dir/written",
                "--link", "/etc/vm-dir/written:/etc/vm-link",
                "--delete", "/etc/vm-delete-me",
                "--timezone", "Europe/Paris",
                "--ssh-inject", format!("root:string:{INJECTED_KEY}"),
                "--move", "/etc/apt/sources.list.vm-off:/etc/apt/sources.list",
            ]},
            {"firstboot": {"file": "report.sh"}},
            {"selinux": "permissive"},
            {"rootpass": format!("locked:password:{ROOT_PASSWORD}")},
            {"sysprep": {"operations": "tmp-files"}},
            {"local_run": {"file": "local.sh"}},
            {"boot": {"cpus": 2, "memory": 1024, "serial": true}},
        ],
        "export": {"qcow2": {"path": "out/every.qcow2", "create_dir": true}},
    }})
}

/// The lines of `file` in the image's first partition (ext4), read on the host without a
/// libguestfs appliance: the image converted to raw in `scratch`, the partition found by
/// sfdisk, the file read by debugfs at its offset.
fn read_file(image: &Path, scratch: &Path, file: &str) -> Vec<String> {
    let raw = scratch.join("report.raw");
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(image)
            .arg(&raw),
    );
    let table: serde_json::Value =
        serde_json::from_str(&run_ok(Command::new("sfdisk").arg("--json").arg(&raw))).unwrap();
    let table = &table["partitiontable"];
    let offset =
        table["partitions"][0]["start"].as_u64().unwrap() * table["sectorsize"].as_u64().unwrap();
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {file}")])
        .arg(format!("{}?offset={offset}", raw.display()))
        .output()
        .expect("debugfs (e2fsprogs)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // debugfs exits 0 on a missing file; it says so on stderr.
    assert!(
        out.status.success() && !stderr.contains("not found"),
        "debugfs cat {file}: {stderr}"
    );
    let _ = std::fs::remove_file(&raw);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `virt-maker build`, its output shown as it comes; killed (with its tools and guest)
/// when it takes longer than `limit`, or when its boot step does not end within
/// `boot_limit` (a guest that never powers itself off).
fn build(dir: &Path, limit: Duration, boot_limit: Duration) -> String {
    let mut child = KillOnDrop::group(
        Command::new(env!("CARGO_BIN_EXE_virt-maker"))
            .args(["build", "-f"])
            .arg(dir.join("every.yml"))
            .env("VIRTUP_CONFIG_HOME", dir.join("config"))
            .env("VIRTUP_SYSTEM_CONFIG", dir.join("no-system-config"))
            .env("VIRTUP_CACHE_HOME", dir.join("cache"))
            .env("XDG_RUNTIME_DIR", dir.join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    for (is_stdout, pipe) in [
        (
            true,
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        ),
        (false, Box::new(child.stderr.take().unwrap())),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            // Bytes, not UTF-8 lines: a guest's console may write anything, and a pipe
            // left unread would block it.
            for line in BufReader::new(pipe).split(b'\n').map_while(Result::ok) {
                let _ = tx.send((is_stdout, String::from_utf8_lossy(&line).into_owned()));
            }
        });
    }
    drop(tx);
    let start = Instant::now();
    let (mut stdout, mut all) = (String::new(), String::new());
    let mut boot_started: Option<Instant> = None;
    // Until both pipes are closed: virt-maker (and every tool it ran) has ended.
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((is_stdout, line)) => {
                eprintln!("realvm: {:6.1} s | {line}", start.elapsed().as_secs_f64());
                if is_stdout {
                    if line.contains("[ BOOT ]") && boot_started.is_none() {
                        boot_started = Some(Instant::now());
                    }
                    stdout.push_str(&line);
                    stdout.push('\n');
                }
                all.push_str(&line);
                all.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        assert!(
            start.elapsed() < limit,
            "virt-maker build took over {limit:?}; killed:\n{all}"
        );
        assert!(
            boot_started.is_none_or(|t| t.elapsed() < boot_limit),
            "the guest of the boot step did not power itself off within {boot_limit:?}; killed:\n{all}"
        );
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "virt-maker build failed:\n{all}");
    stdout
}

#[test]
fn m2_every_offline_step_type_shows_its_effect_in_the_booted_guest() {
    let t0 = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let index = crate::world::base_image_index(root);
    let (xz, sha512) = base_image(&index);
    let dir = std::env::temp_dir().join(format!("virt-maker-steps-{}", std::process::id()));
    let mut cleanup = Cleanup::new();
    cleanup.path(dir.clone());
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::write(
        dir.join("config/settings.cfg"),
        "[common]\nvirt-type = qemu\n",
    )
    .unwrap();
    let deb = build_deb(&dir);
    let deb_sha256 = run_ok(Command::new("sha256sum").arg(&deb));
    let deb_sha256 = deb_sha256.split_whitespace().next().unwrap();
    for (name, text) in [
        ("run.sh", RUN_SH),
        ("report.sh", REPORT_SH),
        ("local.sh", LOCAL_SH),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    // JSON is YAML: no quoting to get wrong.
    std::fs::write(
        dir.join("every.yml"),
        serde_json::to_string_pretty(&template(&xz, &sha512)).unwrap(),
    )
    .unwrap();

    let t = Instant::now();
    let stdout = build(
        &dir,
        Duration::from_secs(30 * 60),
        Duration::from_secs(5 * 60),
    );
    eprintln!(
        "realvm: virt-maker build of every step took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Every step ran (a fresh cache), the eleven virt-customize steps in one run.
    assert!(!stdout.contains("(cached)"), "{stdout}");
    assert!(
        stdout.contains("steps 1..11: one virt-customize run"),
        "{stdout}"
    );
    for label in ["[ BOOT ]", "[EXPORT]"] {
        assert!(stdout.contains(label), "{label}: {stdout}");
    }
    // boot with serial: the guest's console is on virt-maker's output.
    assert!(
        stdout.contains("vm-every-step: report written, powering off"),
        "{stdout}"
    );

    // local_run ran on the host against the layer being built: a qcow2 overlay on its
    // parent layer, in the cache.
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("local-run.json")).unwrap())
            .unwrap();
    assert_eq!(info["format"], "qcow2", "{info}");
    assert!(
        info["filename"]
            .as_str()
            .unwrap()
            .starts_with(dir.join("cache").to_str().unwrap()),
        "{info}"
    );
    assert!(info["backing-filename"].is_string(), "{info}");

    // The report the first boot wrote, from the exported image.
    let t = Instant::now();
    let lines = read_file(&dir.join("out/every.qcow2"), &dir, "/root/vm-report");
    eprintln!(
        "realvm: report read in {:.1} s:\n{}",
        t.elapsed().as_secs_f64(),
        lines.join("\n")
    );
    let report: BTreeMap<&str, &str> = lines.iter().filter_map(|l| l.split_once('=')).collect();
    let all = lines.join("\n");
    let get = |k: &str| -> &str { report.get(k).unwrap_or_else(|| panic!("no {k}:\n{all}")) };

    // firstboot: the script ran at the boot (the report is its output).
    assert_eq!(get("firstboot"), "ran");
    // hostname.
    assert_eq!(get("hostname"), HOSTNAME, "{all}");
    // grub_append: the arguments are on the booted kernel's command line, the image's own
    // are kept.
    let cmdline: Vec<&str> = get("cmdline").split_whitespace().collect();
    for arg in [
        "vm_every_step=grub",
        "vm_second=2",
        "console=ttyS0,115200n8",
    ] {
        assert!(cmdline.contains(&arg), "{arg} not in {cmdline:?}");
    }
    // copy: the host's file, byte for byte, with its chmod.
    assert_eq!(get("copied"), format!("604 root {deb_sha256}"), "{all}");
    // install: the local .deb is installed.
    assert_eq!(get("dpkg_status"), "install ok installed", "{all}");
    assert_eq!(get("dpkg_version"), "1.0", "{all}");
    assert_eq!(get("package_file"), "installed from a local .deb", "{all}");
    // ssh_keygen: alice's RSA 2048 pair, hers, private.
    assert_eq!(get("alice_key"), "600 alice", "{all}");
    assert_eq!(get("alice_ssh_dir"), "700 alice", "{all}");
    let fp = get("alice_key_fp");
    assert!(
        fp.starts_with("2048 SHA256:") && fp.ends_with("(RSA)"),
        "{all}"
    );
    assert_eq!(fp, get("alice_pub_fp"), "not one pair:\n{all}");
    // ssh_hostkeys: ssh-keygen -A made an RSA host key (the image's own first-boot unit
    // makes only Ed25519 and ECDSA keys).
    assert_eq!(get("rsa_hostkey"), "600 (RSA)", "{all}");
    // selinux: the mode file, written although Debian has no SELinux.
    assert_eq!(get("selinux_config"), "SELINUX=permissive;", "{all}");
    // rootpass locked:password: a locked hash of that password (virt-customize locks with
    // '!!' and hashes with the distribution's default, yescrypt on Debian 12), checked by
    // the host's crypt(3) through perl (libxcrypt knows yescrypt and SHA-512).
    let shadow = get("root_shadow");
    let hash = shadow.trim_start_matches('!');
    assert!(
        shadow.starts_with('!') && hash.starts_with('$'),
        "root is not locked with a password hash: {shadow}"
    );
    let rehashed = run_ok(
        Command::new("perl")
            .args(["-e", "print crypt($ARGV[0], $ARGV[1])", ROOT_PASSWORD])
            .arg(hash),
    );
    assert_eq!(rehashed, hash, "the hash is not of the password");
    // run: as root in the image.
    assert_eq!(get("run"), "ran by the run step as root", "{all}");
    // sysprep (tmp-files): the file the run step left in /var/tmp is gone.
    assert_eq!(get("sysprep_removed"), "yes", "{all}");
    // virtcustomize: mkdir, write, chmod, link, delete, timezone, ssh-inject.
    assert_eq!(get("written"), "640 written by virtcustomize", "{all}");
    assert_eq!(get("link"), "/etc/vm-dir/written", "{all}");
    assert_eq!(get("deleted"), "yes", "{all}");
    assert_eq!(
        get("localtime"),
        "/usr/share/zoneinfo/Europe/Paris",
        "{all}"
    );
    assert_eq!(get("root_authorized_keys"), INJECTED_KEY, "{all}");
    // virtcustomize --move: the apt sources the run step set aside are back.
    let sources: Vec<&str> = get("apt_sources").split(' ').collect();
    assert_eq!(sources[0], "yes", "{all}");
    assert!(sources[1].parse::<u32>().unwrap() > 0, "{all}");
    eprintln!("realvm: m2 took {:.1} s in all", t0.elapsed().as_secs_f64());
}
