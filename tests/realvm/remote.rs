//! A second libvirt host, reached only through libvirt's remote protocol over SSH
//! (`qemu+ssh://`), by a regular user. scripts/lab-host.sh makes it on this machine: its
//! own libvirtd, virtlogd, pool, NAT network and sshd in private network, mount and UTS
//! namespaces, its pool in a directory the user cannot read, its guests on a network only
//! that host reaches. So no local file access or local route can pass for remote work: the
//! template is uploaded through libvirt, disks are made and deleted by that host's
//! libvirtd, and every ssh to its guests jumps through it (host keys checked throughout).

use crate::run::Run;
use crate::user::{as_user_with, chown, configure, regular_user, user_binary, USER};
use crate::world::world;
use std::path::Path;
use std::process::Command;

const LAB: &str = "/tmp/vulab-r1";
const INSTANCE: &str = "vut-r1";
const SECOND: &str = "vut-r2";
const TEMPLATE: &str = "vut-userdeb";

/// `scripts/lab-host.sh ARGS` as root; its stdout.
fn lab(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab-host.sh");
    eprintln!("realvm: lab-host.sh {}", args.join(" "));
    let out = Command::new(script).args(args).output().unwrap();
    Run::from(out).ok().stdout
}

/// The value of `key=` in the lab's `up` output.
fn field(up: &str, key: &str) -> String {
    up.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in: {up}"))
        .to_string()
}

/// Stops the lab host however the test ends.
struct LabDown;
impl Drop for LabDown {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab-host.sh");
        let _ = Command::new(script).args(["down", LAB]).output();
    }
}

/// The user's own ssh key (made if missing), authorized for root on the lab host, and the
/// lab's host key in the user's known_hosts: what a user sets up once for `qemu+ssh://`.
fn trust_each_other(home: &Path, address: &str) {
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = ssh.join("id_ed25519");
    if !key.exists() {
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", USER, "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", Run::from(made).stderr);
    }
    lab(&["authorize", LAB, &format!("{}.pub", key.display())]);
    let known = lab(&["known-hosts", LAB]);
    let known_hosts = ssh.join("known_hosts");
    let kept: String = std::fs::read_to_string(&known_hosts)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with(&format!("{address} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&known_hosts, kept + &known).unwrap();
    chown(home);
    let _ = Command::new("chmod").arg("700").arg(&ssh).status();
}

fn rows(listed: &str) -> serde_json::Value {
    serde_json::from_str(listed).unwrap_or_else(|e| panic!("{e}: {listed}"))
}

fn row<'a>(rows: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {rows}"))
}

#[test]
fn r1_an_instance_on_a_remote_libvirt_host_through_qemu_ssh() {
    let w = world();
    let home = regular_user();
    let vu = user_binary(&home);
    lab(&["down", LAB]);
    let up = lab(&["up", LAB, "r1", "5"]);
    let _down = LabDown;
    let uri = field(&up, "uri");
    let address = field(&up, "address");
    let subnet = field(&up, "guest_subnet");
    // The lab's own NAT network, named as a user names a remote host's network (virt-up's
    // default, its own network, would be made there on a subnet this machine routes too).
    let network = field(&up, "network");
    trust_each_other(&home, &address);
    let on_lab = vec![format!("LIBVIRT_DEFAULT_URI={uri}")];
    let run = |env: &[String], args: &[&str]| as_user_with(&home, env, &vu, args);
    let lab_virsh = |args: &[&str]| {
        let mut all = vec!["-c", uri.as_str()];
        all.extend_from_slice(args);
        as_user_with(&home, &[], Path::new("virsh"), &all)
            .ok()
            .stdout
    };

    // The lab's pool is not the user's to read: only libvirt's protocol reaches it.
    let readable = Command::new("runuser")
        .args(["-u", USER, "--", "ls", LAB])
        .output()
        .unwrap();
    assert!(!readable.status.success(), "{USER} can read {LAB}");
    // Leftovers of an earlier run that failed half-way (the lab host is new, at the same
    // URI): their records go, and what the lab host still has of them (nothing).
    for name in [
        INSTANCE, SECOND, "vut-r3", "vut-r5", "vut-m1", "vut-m2", "vut-m3", "vut-m4", "vut-m5",
        "vut-m6",
    ] {
        run(&[], &[name, "--delete"]);
    }
    let _ = std::fs::remove_dir_all(home.join(".config/virt-up"));
    configure(&home, w.index());
    std::fs::write(
        home.join(".config/virt-up/settings.cfg"),
        format!("[common]\nnetwork = {network}\n"),
    )
    .unwrap();
    chown(&home);

    run(&on_lab, &[INSTANCE, "--template", TEMPLATE]).ok();
    assert_eq!(
        run(&[], &[INSTANCE, "--login", "--command", "id -un; hostname"])
            .ok()
            .stdout,
        "virt\nvut-r1\n",
        "a login through the lab host, without naming it"
    );
    let info = rows(&run(&[], &[INSTANCE, "--info", "--json"]).ok().stdout);
    assert_eq!(info["host"], uri.as_str(), "{info}");
    let guest = info["address"].as_str().unwrap().to_string();
    let prefix = subnet.rsplit_once('.').map(|(p, _)| p).unwrap_or(&subnet);
    assert!(
        guest.starts_with(prefix),
        "{guest} is not on the lab's network {subnet}"
    );
    // The guest is reached through the lab host only: no route to it from here.
    let direct = Command::new("ip")
        .args(["route", "get", &guest])
        .output()
        .unwrap();
    let route = String::from_utf8_lossy(&direct.stdout);
    assert!(
        !route.contains("virbr") && !route.contains("vulab"),
        "{guest} is routable from here: {route}"
    );
    let vols = lab_virsh(&["vol-list", "default"]);
    assert!(vols.contains(&format!("{INSTANCE}.qcow2")), "{vols}");
    assert!(
        vols.contains(&format!("TEMPLATE-{TEMPLATE}.qcow2")),
        "{vols}"
    );

    // ansible through the generated inventory (it jumps through the lab host too).
    let inventory = home.join(".local/share/virt-up/inventory.yaml");
    let checking = ["ANSIBLE_HOST_KEY_CHECKING=True".to_string()];
    let inventory = inventory.display().to_string();
    let ansible = ["-i", inventory.as_str(), INSTANCE, "-m", "ping"];
    let ping = as_user_with(&home, &checking, Path::new("ansible"), &ansible)
        .ok()
        .stdout;
    assert!(ping.contains("SUCCESS"), "{ping}");
    // And plain ssh with the generated ssh_config (its ProxyJump, its pinned host key).
    let config = home.join(".local/share/virt-up/ssh_config");
    let config = config.display().to_string();
    let ssh = ["-F", config.as_str(), INSTANCE, "hostname"];
    let out = as_user_with(&home, &[], Path::new("ssh"), &ssh).ok();
    assert_eq!(out.stdout.trim(), INSTANCE);

    // The template is on the lab host now: a second instance there builds and uploads
    // nothing.
    let second = run(&on_lab, &[SECOND, "--template", TEMPLATE, "--debug"]).ok();
    eprintln!("realvm: {SECOND} on the lab host:\n{}", second.stderr);
    assert!(
        !second.stderr.contains("building template") && !second.stderr.contains("upload"),
        "{}",
        second.stderr
    );

    // --list without the URI shows the lab's instances, with their host.
    let listed = rows(&run(&[], &["--list", "--json"]).ok().stdout);
    assert_eq!(row(&listed, INSTANCE)["state"], "running", "{listed}");
    assert_eq!(row(&listed, INSTANCE)["host_name"], address.as_str());

    // The lab's libvirtd down: --list still works and names the host; a create there
    // fails naming it.
    lab(&["stop-libvirtd", LAB]);
    let listed = run(&[], &["--list", "--json"]).ok();
    assert!(listed.stderr.contains(&address), "{}", listed.stderr);
    assert_eq!(row(&rows(&listed.stdout), SECOND)["state"], "unknown");
    let refused = run(&on_lab, &["vut-r3", "--template", TEMPLATE]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains(&address), "{}", refused.stderr);
    lab(&["start-libvirtd", LAB]);
    // A pool the lab host does not have: refused before anything is built, naming the host.
    let templates = home.join(".config/virt-up/templates.d/user.cfg");
    let text = std::fs::read_to_string(&templates).unwrap();
    std::fs::write(
        &templates,
        format!("{text}\n[vut-nopool]\nos-version = debian-12-local\npool = vut-nothere\n"),
    )
    .unwrap();
    run(&on_lab, &["vut-r5", "--template", "vut-nopool"])
        .fails(4, &format!("storage pool 'vut-nothere' on {uri}"));
    std::fs::write(&templates, text).unwrap();

    // --delete (no URI given) removes the domain and volumes on the lab host.
    run(&[], &[INSTANCE, "--delete"]).ok();
    run(&[], &[SECOND, "--delete"]).ok();
    let domains = lab_virsh(&["list", "--all", "--name"]);
    assert!(
        !domains.contains(INSTANCE) && !domains.contains(SECOND),
        "{domains}"
    );
    let vols = lab_virsh(&["vol-list", "default"]);
    assert!(!vols.contains(INSTANCE) && !vols.contains(SECOND), "{vols}");

    several_hosts(&home, (&uri, &network), &|env, args| run(env, args));

    run(&on_lab, &[TEMPLATE, "--delete", "--all"]).ok();
    // Built for a remote host, the template's disk was kept: the same template on a host
    // that lacks it is uploaded, not built again.
    let again = run(&on_lab, &[TEMPLATE, "--no-clone"]).ok();
    assert!(
        again.stderr.contains("built for another host") && !again.stderr.contains("building"),
        "{}",
        again.stderr
    );
    run(&on_lab, &[TEMPLATE, "--delete", "--all"]).ok();
    let vols = lab_virsh(&["vol-list", "default"]);
    assert!(!vols.contains("TEMPLATE-"), "{vols}");
    let listed = run(&[], &["--list", "--all", "--json"]).ok().stdout;
    assert!(!listed.contains("vut-r"), "{listed}");
}

/// This machine's system daemon and the lab host as two `[host NAME]`s, two instances at
/// most on each: four names in one command go two and two, each reachable, `--list` shows
/// both hosts; with the lab's libvirtd down, a create pinned there fails naming it.
fn several_hosts(
    home: &Path,
    (lab_uri, lab_network): (&str, &str),
    run: &dyn Fn(&[String], &[&str]) -> Run,
) {
    let settings = home.join(".config/virt-up/settings.cfg");
    std::fs::write(
        &settings,
        format!(
            "[host here]\nuri = qemu:///system\nmax-instances = 2\n\
             [host lab]\nuri = {lab_uri}\nnetwork = {lab_network}\nmax-instances = 2\n"
        ),
    )
    .unwrap();
    chown(home);
    let four = ["vut-m1", "vut-m2", "vut-m3", "vut-m4"];
    let mut args = four.to_vec();
    args.extend(["--template", TEMPLATE]);
    let made = run(&[], &args).ok();
    eprintln!("realvm: four over two hosts:\n{}", made.stderr);
    let listed = rows(&run(&[], &["--list", "--json"]).ok().stdout);
    let on = |host: &str| {
        four.iter()
            .filter(|n| row(&listed, n)["host_name"] == host)
            .count()
    };
    assert_eq!((on("here"), on("lab")), (2, 2), "{listed}");
    // The template went to both hosts as one disk: the same digest in both records.
    let all = rows(&run(&[], &["--list", "--all", "--json"]).ok().stdout);
    let digests: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["is_template"] == true && r["template"] == TEMPLATE)
        .map(|r| r["disk_digest"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(digests.len(), 2, "{all}");
    assert!(digests[0].len() == 64 && digests[0] == digests[1], "{all}");
    for name in four {
        assert_eq!(row(&listed, name)["state"], "running", "{listed}");
        let hostname = run(&[], &[name, "--login", "--command", "hostname"]).ok();
        assert_eq!(hostname.stdout.trim(), name);
    }
    for name in four {
        run(&[], &[name, "--delete"]).ok();
    }
    lab(&["stop-libvirtd", LAB]);
    run(&[], &["vut-m5", "--template", TEMPLATE, "--host", "lab"])
        .fails(4, "no host has room for vut-m5")
        .fails(4, "lab: did not answer");
    // Placed freely, it goes to the host that answers, and is deleted there.
    run(&[], &["vut-m6", "--template", TEMPLATE]).ok();
    let listed = rows(&run(&[], &["--list", "--json"]).ok().stdout);
    assert_eq!(row(&listed, "vut-m6")["host_name"], "here", "{listed}");
    run(&[], &["vut-m6", "--delete"]).ok();
    lab(&["start-libvirtd", LAB]);
    std::fs::remove_file(&settings).unwrap();
    // The template this machine's daemon got for the instances placed here.
    run(&[], &[TEMPLATE, "--delete", "--all"]).ok();
}
