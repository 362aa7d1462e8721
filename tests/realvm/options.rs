//! The create options and settings a user picks, each checked where the user would notice
//! it: in the guest, in libvirt, in virt-up's own files. Two guests, made side by side
//! (the second's template is built while the first boots): one of the qcow2 template with
//! most options, one of a raw template found through DNS.

use crate::guard::{KillOnDrop, IMAGES};
use crate::world::{world, Run};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Instant;

const ROOT_PASSWORD: &str = "vut-root-Pw1";
const USER_PASSWORD: &str = "vut-user-Pw2";

/// An instance playbook: its mark in the guest is what the user sees.
const PLAYBOOK: &str = "- hosts: all
  gather_facts: false
  become: true
  vars:
    ansible_python_interpreter: /usr/bin/python3
  tasks:
    - name: Leave a mark
      ansible.builtin.copy:
        dest: /etc/vut-instance-playbook
        content: \"instance-playbook ran on {{ inventory_hostname }}\\n\"
";

/// The hash `/etc/shadow` has for `user` (its second field).
fn shadow_hash(shadow: &str, user: &str) -> String {
    shadow
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no {user} in /etc/shadow"))
        .to_string()
}

fn is_hash_of(hash: &str, password: &str) -> bool {
    use sha_crypt::{PasswordVerifier, ShaCrypt};
    hash.starts_with("$6$")
        && ShaCrypt::SHA512
            .verify_password(password.as_bytes(), hash)
            .is_ok()
}

/// A value of /proc/meminfo, in kB.
fn meminfo_kb(meminfo: &str, key: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {meminfo}"))
}

#[test]
fn o1_create_options_and_settings_reach_the_guest() {
    let w = world();
    let started = Instant::now();
    let mut cleanup = w.cleanup(&["vut-opt", "vut-raw"]);
    // The raw template is this test's own.
    cleanup
        .domain("TEMPLATE-vut-raw")
        .path(format!("{IMAGES}/TEMPLATE-vut-raw.raw"))
        .path(w.data("instance/TEMPLATE-vut-raw.json"));
    w.own_file("config/playbooks/vut-instance.yml", PLAYBOOK);
    // libvirt-uri is the setting's, not the environment's (see the create below); vut-deb's
    // instances find their address through the guest agent (the default), vut-raw's are raw
    // full copies found through DNS.
    w.set_config(
        "libvirt-uri = qemu:///system\n",
        &format!(
            "address-source = agent\ninstance-playbook = vut-instance\n\n\
             [vut-raw]\nos-version = debian-12-local\nvirt-builder-source = file://{}\n\
             image-format = raw\naddress-source = dns\nnetwork = default\n",
            w.index()
        ),
    );
    // DNS as a host that uses the default network's dnsmasq (which knows its DHCP clients'
    // names) has it, in vut-raw's create only (vut-raw is on libvirt's network, not on
    // virt-up's own: the real tier covers both).
    let resolv = w.own_file("resolv.conf", "nameserver 192.168.122.1\n");
    eprintln!("realvm: virt-up vut-raw --template vut-raw (in the background)");
    let raw = KillOnDrop::new(
        w.vu_command_with_resolver(&resolv, &["vut-raw", "--template", "vut-raw"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    let opt_args = [
        "vut-opt",
        "--template",
        "vut-deb",
        "--size",
        "3G",
        "--memory",
        "768",
        "--graphics",
        "vnc",
        "--dns-domain",
        "example.test",
        "--root-password",
        ROOT_PASSWORD,
        "--password",
        USER_PASSWORD,
        "--no-inventory",
        "--quiet",
    ];
    eprintln!("realvm: virt-up {}", opt_args.join(" "));
    let opt = Run::from(
        w.vu_command(&opt_args)
            // Were libvirt-uri not honoured, this would be libvirt's test driver.
            .env("LIBVIRT_DEFAULT_URI", "test:///default")
            .output()
            .unwrap(),
    );
    eprintln!(
        "realvm: vut-opt ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let opt = opt.ok();
    // --quiet: a successful create says nothing on stderr but warnings.
    assert!(
        opt.stderr
            .lines()
            .all(|l| l.starts_with("warning:") || l.starts_with("[WARNING]")),
        "--quiet, yet stderr has:\n{}",
        opt.stderr
    );

    let record = w.record("vut-opt");
    assert_eq!(record["uri"], "qemu:///system", "{record}");
    assert_eq!(record["address-source"], "agent", "{record}");
    let address = record["address"].as_str().expect("an address").to_string();
    // agent: the address is the one the guest agent reports, and the guest has it.
    let by_agent = w.virsh(&["domifaddr", "vut-opt", "--source", "agent"]);
    assert!(by_agent.contains(&format!("{address}/")), "{by_agent}");
    let ips = w.ssh("vut-opt", "ip -4 -o addr show scope global");
    assert!(ips.contains(&format!("inet {address}/")), "{ips}");

    // --size: the disk, the root partition and its filesystem are 3 GiB (the template's
    // are 1.5), and the console says the agent grew them.
    let df = w.ssh("vut-opt", "df -B1 --output=size / | tail -n 1");
    let root_size: u64 = df.trim().parse().unwrap_or_else(|_| panic!("df: {df}"));
    let gib = 1u64 << 30;
    assert!(
        root_size > gib * 27 / 10 && root_size <= 3 * gib,
        "df / inside the guest: {root_size} bytes, not about 3 GiB"
    );
    let console = std::fs::read_to_string(record["console_log"].as_str().unwrap()).unwrap();
    assert!(
        console.contains("virt-up-identity: grew partition 1 of /dev/vda")
            && console.contains("virt-up-identity: grew the ext4 filesystem on /dev/vda1"),
        "the console does not tell of the growth:\n{console}"
    );
    // --memory: the guest has 768 MiB, less what the kernel keeps.
    let meminfo = w.ssh("vut-opt", "cat /proc/meminfo");
    let total = meminfo_kb(&meminfo, "MemTotal");
    assert!(
        (600 * 1024..=768 * 1024).contains(&total),
        "MemTotal {total} kB with --memory 768"
    );
    // --graphics vnc: the domain has a VNC display, and libvirt says where it is.
    let xml = w.virsh(&["dumpxml", "vut-opt"]);
    assert!(xml.contains("<graphics type='vnc'"), "{xml}");
    let display = w.virsh(&["domdisplay", "vut-opt"]);
    assert!(display.trim().starts_with("vnc://"), "{display}");
    // --dns-domain: the guest's fully qualified name.
    assert_eq!(w.ssh("vut-opt", "hostname -f"), "vut-opt.example.test");
    // --root-password and --password: the hashes in /etc/shadow are of those passwords.
    let shadow = w.ssh("vut-opt", "sudo -n cat /etc/shadow");
    assert!(
        is_hash_of(&shadow_hash(&shadow, "root"), ROOT_PASSWORD),
        "root's hash is not of --root-password"
    );
    assert!(
        is_hash_of(&shadow_hash(&shadow, "virt"), USER_PASSWORD),
        "virt's hash is not of --password"
    );
    // --password: the user logs in with it (no key offered), host key checked.
    let askpass = w.own_file("askpass", "#!/bin/sh\nprintf '%s\\n' \"$VUT_PASSWORD\"\n");
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    let known_hosts = w.data("known_hosts");
    let login = Run::from(
        std::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "PubkeyAuthentication=no"])
            .args([
                "-o",
                "PreferredAuthentications=password,keyboard-interactive",
            ])
            .args([
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "HostKeyAlias=vut-opt",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={known_hosts}"))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"])
            .arg(format!("virt@{address}"))
            .arg("echo password-login-ok")
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("VUT_PASSWORD", USER_PASSWORD)
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    assert_eq!(login.ok().stdout.trim(), "password-login-ok");
    // instance-playbook: it ran on the new instance, although that is not in the inventory.
    assert_eq!(
        w.ssh("vut-opt", "cat /etc/vut-instance-playbook"),
        "instance-playbook ran on vut-opt"
    );

    // A changed host key is refused: the login fails and ssh says why.
    let pinned = std::fs::read_to_string(&known_hosts).unwrap();
    let other = w.own_path("otherkey");
    let _ = std::fs::remove_file(&other);
    w.run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            other.to_str().unwrap(),
        ],
    )
    .ok();
    let other_key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_key: Vec<&str> = other_key.split_whitespace().take(2).collect();
    let changed: String = pinned
        .lines()
        .map(|l| {
            if l.starts_with("vut-opt ") {
                format!("vut-opt {}\n", other_key.join(" "))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(changed, pinned, "no vut-opt entry in {known_hosts}");
    std::fs::write(&known_hosts, &changed).unwrap();
    let refused = w.vu(&["vut-opt", "--login", "--command", "echo should-not-run"]);
    std::fs::write(&known_hosts, &pinned).unwrap();
    assert_ne!(refused.code, 0, "a changed host key was accepted");
    assert!(!refused.stdout.contains("should-not-run"));
    assert!(
        refused.stderr.contains("Host key verification failed")
            && refused
                .stderr
                .contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "the refusal does not say why: {}",
        refused.stderr
    );
    assert_eq!(w.ssh("vut-opt", "hostname"), "vut-opt.example.test");
    eprintln!(
        "realvm: vut-opt checked after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The raw one: built from its own raw template, found through DNS.
    let mut raw = raw;
    let raw = Run::from(raw.output().unwrap());
    eprintln!(
        "realvm: vut-raw ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    raw.ok();
    let record = w.record("vut-raw");
    assert_eq!(record["address-source"], "dns", "{record}");
    assert!(record["address"].is_string(), "{record}");
    assert_eq!(w.ssh("vut-raw", "hostname"), "vut-raw");
    // image-format = raw: a full copy, no backing file, booted.
    let disk = record["disk"].as_str().unwrap().to_string();
    assert!(disk.ends_with("/vut-raw.raw"), "{disk}");
    let info = w
        .run("qemu-img", &["info", "-U", "--output=json", &disk])
        .ok();
    let info: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(info["format"], "raw", "{info}");
    assert!(info.get("backing-filename").is_none(), "{info}");
    assert_eq!(record["format"], "raw", "{record}");

    // --no-inventory: vut-opt is not in the generated inventory; vut-raw is.
    let inventory = std::fs::read_to_string(w.data("inventory.yaml")).unwrap();
    assert!(!inventory.contains("vut-opt"), "{inventory}");
    assert!(inventory.contains("vut-raw:"), "{inventory}");

    for name in ["vut-opt", "vut-raw"] {
        w.vu(&[name, "--delete"]).ok();
        w.assert_gone(name);
    }
    eprintln!("realvm: o1 took {:.1} s", started.elapsed().as_secs_f64());
}
