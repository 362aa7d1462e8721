//! The real-VM tier: a real libvirtd (qemu:///system), a template built by real virt-builder
//! from the local base image, real guests booted (TCG on these machines), real SSH logins
//! and a real ansible run. It never skips: a missing piece fails the test and says what.
//! Run through `make test` (which sets up the host and the base image) or
//! `cargo test --release --test realvm -- --test-threads=1`.

#[path = "../common/run.rs"]
#[allow(dead_code)] // shared with the integration tier, which uses all of it
mod run;

mod gen_vm_image;
mod guard;
mod maker_steps;
mod mounts;
mod options;
mod package;
mod remote;
mod snapshots;
mod user;
mod virt_maker;
mod warm;
mod world;

use guard::KillOnDrop;
use world::world;

#[test]
fn t1_template_is_built_once_and_read_only() {
    let w = world();
    let xml = w.virsh(&["dumpxml", "TEMPLATE-vut-deb"]);
    assert!(
        xml.contains("<readonly/>"),
        "template disk is writable:\n{xml}"
    );
    assert!(!w
        .virsh(&["dominfo", "TEMPLATE-vut-deb"])
        .contains("running"));
    // Asking again reuses it: the disk is not rewritten.
    let disk = "/var/lib/libvirt/images/TEMPLATE-vut-deb.qcow2";
    let mtime = || std::fs::metadata(disk).unwrap().modified().unwrap();
    let before = mtime();
    w.vu(&["vut-deb", "--no-clone"]).ok();
    assert_eq!(mtime(), before, "template was rebuilt");
}

#[test]
fn t2_instance_lifecycle() {
    let w = world();
    let _cleanup = w.cleanup(&["vut-web1"]);
    w.vu(&["vut-web1", "--template", "vut-deb"]).ok();
    // The create ended with a first login, whose connection stays open for the next ones
    // (ssh -O check asks the master itself).
    // (The socket is named after the instance and its pinned host key.)
    let mux = w.data("ssh-mux");
    let socket = || {
        std::fs::read_dir(&mux).ok().and_then(|dir| {
            dir.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("vut-web1.")
            })
        })
    };
    let master = || {
        let path = socket().expect("no control socket for vut-web1");
        let option = format!("ControlPath={}", path.display());
        w.run("ssh", &["-O", "check", "-o", &option, "vut-web1"])
    };
    master().ok();
    assert_eq!(w.ssh("vut-web1", "id -un"), "virt");
    assert_eq!(w.ssh("vut-web1", "hostname"), "vut-web1");
    assert_eq!(w.ssh("vut-web1", "sudo -n true && echo sudo-ok"), "sudo-ok");
    // The template playbook ran on the template; its clone inherits the result.
    assert_eq!(w.ssh("vut-web1", "cat /etc/motd"), "Built by virt-up");
    // sftp through the same key and host key check.
    let mut sftp = w.vu_command(&["vut-web1", "--login", "--sftp"]);
    sftp.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = sftp.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"pwd\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/home/virt"),
        "{:?}",
        out
    );
    // --command returns the remote exit code.
    assert_eq!(
        w.vu(&["vut-web1", "--login", "--command", "exit 7"]).code,
        7
    );
    // After '--', an argv: each word arrives as it is, and the exit code comes back.
    assert_eq!(
        w.vu(&["vut-web1", "--login", "--", "sh", "-c", "exit 3"])
            .code,
        3
    );
    let words = w
        .vu(&[
            "vut-web1", "--login", "--", "printf", "%s|", "a b", "$HOME", "it's",
        ])
        .ok();
    assert_eq!(words.stdout, "a b|$HOME|it's|");
    // --copy, both ways, with the instance's key and pinned host key.
    let local = std::env::temp_dir().join(format!("vut-copy-{}", std::process::id()));
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("in.txt"), "copied in\n").unwrap();
    let src = local.join("in.txt").display().to_string();
    w.vu(&["--copy", &src, "vut-web1:/tmp/"]).ok();
    assert_eq!(w.ssh("vut-web1", "cat /tmp/in.txt"), "copied in");
    let out_file = local.join("hostname").display().to_string();
    w.vu(&["--copy", "vut-web1:/etc/hostname", &out_file]).ok();
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap().trim(),
        "vut-web1"
    );
    std::fs::remove_dir_all(&local).unwrap();

    let listed = w.list();
    let web1 = listed
        .iter()
        .find(|r| r["name"] == "vut-web1")
        .expect("listed");
    assert_eq!(web1["state"], "running");
    let address = web1["address"].as_str().expect("an address").to_string();
    let mac = web1["mac"].as_str().unwrap().to_string();
    // --info --json: one object, with the live state and what --list says.
    let info: serde_json::Value =
        serde_json::from_str(&w.vu(&["vut-web1", "--info", "--json"]).ok().stdout).unwrap();
    assert_eq!(info["state"], "running");
    assert_eq!(info["address"], address.as_str());
    assert_eq!(info["mac"], mac.as_str());
    assert!(info["disk_used"].as_u64().unwrap() > 0, "{info}");

    // The generated inventory and ssh_config work with the real tools, host keys checked.
    let inventory = w.data("inventory.yaml");
    w.run("ansible", &["-i", &inventory, "all", "-m", "ping"])
        .ok();
    let ssh_config = w.data("ssh_config");
    let out = w
        .run(
            "ssh",
            &["-F", &ssh_config, "vut-web1", "echo", "via-config"],
        )
        .ok();
    assert_eq!(out.stdout.trim(), "via-config");
    w.vu(&["vut-web1", "--playbook", "hello"]).ok();

    // A stopped instance is started by --login, waited for (its own host key checked: the
    // login is strict) and keeps its identity: the first-boot agent does not run again.
    let machine_id = w.ssh("vut-web1", "cat /etc/machine-id");
    let stopped = w.vu(&["vut-web1", "--stop", "--json"]).ok();
    let rows: serde_json::Value = serde_json::from_str(&stopped.stdout).unwrap();
    assert_eq!(rows[0]["state"], "shut off", "{}", stopped.stderr);
    assert!(w.virsh(&["domstate", "vut-web1"]).contains("shut off"));
    assert_eq!(
        socket(),
        None,
        "the connection to the stopped guest is forgotten"
    );
    let out = w
        .vu(&[
            "vut-web1",
            "--login",
            "--command",
            "hostname; cat /etc/machine-id",
        ])
        .ok();
    assert!(out.stderr.contains("starting vut-web1"), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("vut-web1\n{machine_id}"));
    // --restart: stopped and started again, ready with the same identity and address.
    let restarted = w.vu(&["vut-web1", "--restart", "--json"]).ok();
    let rows: serde_json::Value = serde_json::from_str(&restarted.stdout).unwrap();
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[0]["address"], address.as_str());
    master().ok();
    assert_eq!(w.ssh("vut-web1", "cat /etc/machine-id"), machine_id);

    // Delete leaves nothing; re-creating gets the same MAC (and so the same address).
    w.vu(&["vut-web1", "--delete"]).ok();
    w.assert_gone("vut-web1");
    w.vu(&["vut-web1", "--template", "vut-deb"]).ok();
    let again = w.list();
    let web1 = again
        .iter()
        .find(|r| r["name"] == "vut-web1")
        .expect("listed");
    assert_eq!(web1["mac"], mac.as_str());
    assert_eq!(
        web1["address"],
        address.as_str(),
        "same MAC, same DHCP address"
    );
    assert_eq!(w.ssh("vut-web1", "id -un"), "virt");
    w.vu(&["vut-web1", "--delete"]).ok();
    w.assert_gone("vut-web1");
}

#[test]
fn t3_instances_get_distinct_identities_and_arp_discovery_works() {
    let w = world();
    let _cleanup = w.cleanup(&["vut-a", "vut-b"]);
    w.set_common("address-source = arp");
    w.vu(&["vut-a", "vut-b", "--template", "vut-deb"]).ok();
    w.set_common("");
    let id = |n: &str| w.ssh(n, "cat /etc/machine-id");
    let hostkey = |n: &str| w.ssh(n, "cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2");
    let (ida, idb) = (id("vut-a"), id("vut-b"));
    assert_eq!(ida.len(), 32, "machine-id {ida:?}");
    assert_ne!(ida, idb, "two instances share a machine-id");
    assert_ne!(hostkey("vut-a"), hostkey("vut-b"));
    assert_eq!(w.ssh("vut-b", "hostname"), "vut-b");
    // The template itself has no machine-id and no host keys: every clone is its own.
    let template_files = w.run(
        "virt-ls",
        &[
            "-a",
            "/var/lib/libvirt/images/TEMPLATE-vut-deb.qcow2",
            "/etc/ssh",
        ],
    );
    let template_files = template_files.ok().stdout;
    assert!(!template_files.contains("ssh_host_"), "{template_files}");
    let listed = w.list();
    let addr = |n: &str| listed.iter().find(|r| r["name"] == n).unwrap()["address"].clone();
    assert_ne!(addr("vut-a"), addr("vut-b"));
    w.vu(&["vut-a", "--delete"]).ok();
    w.vu(&["vut-b", "--delete"]).ok();
    w.assert_gone("vut-a");
    w.assert_gone("vut-b");
}

#[test]
fn t4_sysprep_identity_works() {
    let w = world();
    let _cleanup = w.cleanup(&["vut-sp"]);
    // virt-install-args: a channel and an rng of the user's, made by virt-install and
    // merged into the domain (the rng replacing virt-up's own).
    w.set_common(
        "identity = sysprep\nvirt-install-args = --channel unix,target.type=virtio,name=org.virtup.test.0\n    --rng /dev/random",
    );
    let run = w.vu(&["vut-sp", "--template", "vut-deb", "--user", "alice"]);
    w.set_common("");
    run.ok();
    assert_eq!(w.ssh("vut-sp", "id -un"), "alice");
    assert_eq!(w.ssh("vut-sp", "hostname"), "vut-sp");
    assert_eq!(w.ssh("vut-sp", "sudo -n true && echo ok"), "ok");
    let ports = w.ssh("vut-sp", "cat /sys/class/virtio-ports/*/name");
    assert!(
        ports.lines().any(|p| p == "org.virtup.test.0"),
        "the channel is not in the guest: {ports}"
    );
    let rngs = w.ssh("vut-sp", "cat /sys/class/misc/hw_random/rng_available");
    assert_eq!(
        rngs.matches("virtio_rng").count(),
        1,
        "one virtio rng in the guest: {rngs}"
    );
    let xml = w.virsh(&["dumpxml", "vut-sp"]);
    assert!(
        xml.contains("<backend model='random'>/dev/random</backend>"),
        "the rng is the one of virt-install-args: {xml}"
    );
    w.vu(&["vut-sp", "--delete"]).ok();
    w.assert_gone("vut-sp");
}

#[test]
fn t5_a_killed_create_is_cleaned_up_by_the_next_run() {
    let w = world();
    let _cleanup = w.cleanup(&["vut-k"]);
    let mut child = KillOnDrop::new(
        w.vu_command(&["vut-k", "--template", "vut-deb"])
            .spawn()
            .unwrap(),
    );
    // Kill it once its domain is running (the middle of the create).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !w.virsh(&["domstate", "vut-k"]).contains("running") {
        assert!(std::time::Instant::now() < deadline, "vut-k never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let listed = w.list();
    assert_eq!(
        listed
            .iter()
            .find(|r| r["name"] == "vut-k")
            .expect("record")["state"],
        "abandoned"
    );
    // The next create cleans it up, and the name can be used again.
    w.vu(&["vut-k", "--template", "vut-deb"]).ok();
    assert_eq!(w.ssh("vut-k", "hostname"), "vut-k");
    w.vu(&["vut-k", "--delete"]).ok();
    w.assert_gone("vut-k");
}
