//! Warm clones on real guests: instances restored from the template's saved memory are
//! each their own machine, work like cold ones, and a broken warm image is made again.

use crate::world::world;
use std::time::{SystemTime, UNIX_EPOCH};

const POOL: &str = "/var/lib/libvirt/images";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn w1_warm_instances_are_distinct_machines_with_the_hosts_clock() {
    let w = world();
    let _cleanup = w.cleanup(&["vut-wa", "vut-wb", "vut-wc"]);
    let template = w.data("instance/TEMPLATE-vut-deb.json");
    let text = std::fs::read_to_string(&template).unwrap();
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    let save = record["warm"]["save"]
        .as_str()
        .unwrap_or_else(|| panic!("the template has no warm image: {text}"))
        .to_string();
    let first_disk = record["warm"]["disk"].as_str().unwrap().to_string();

    let made = w
        .vu(&["vut-wa", "vut-wb", "--template", "vut-deb", "--debug"])
        .ok();
    for name in ["vut-wa", "vut-wb"] {
        assert!(
            made.stderr.contains(&format!("{name}: phase restore took")),
            "{name} was not restored warm: {}",
            made.stderr
        );
        assert!(w.record(name)["warm"].is_object(), "{name}'s record");
    }
    assert!(!made.stderr.contains("booting it cold"), "{}", made.stderr);
    let (a, b) = ("vut-wa", "vut-wb");
    assert_eq!(w.ssh(a, "hostname"), a);
    assert_eq!(w.ssh(b, "hostname"), b);
    // The message of the day an interactive login shows names the instance, not the
    // template it was restored from (made once per boot, again after the identity).
    for n in [a, b] {
        let motd = w.ssh(
            n,
            &format!(
                "for i in $(seq 100); do grep -q '^Linux {n} ' /run/motd.dynamic 2>/dev/null && break; sleep 0.2; done; cat /run/motd.dynamic"
            ),
        );
        assert!(motd.starts_with(&format!("Linux {n} ")), "{n}: {motd}");
    }
    let machine_id = |n: &str| w.ssh(n, "cat /etc/machine-id");
    assert_ne!(machine_id(a), machine_id(b), "shared machine-id");
    assert_eq!(machine_id(a).len(), 32);
    let host_key = |n: &str| w.ssh(n, "cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub");
    assert_ne!(host_key(a), host_key(b), "shared host key");
    let known = std::fs::read_to_string(w.data("known_hosts")).unwrap();
    assert!(
        known.contains(&host_key(a)),
        "the pinned key is the guest's"
    );
    let mac = |n: &str| w.ssh(n, "cat /sys/class/net/ens*/address");
    assert_eq!(
        mac(a),
        w.record(a)["mac"].as_str().unwrap(),
        "the guest uses its MAC"
    );
    assert_ne!(mac(a), mac(b));
    let listed = w.list();
    let address = |n: &str| listed.iter().find(|r| r["name"] == n).unwrap()["address"].clone();
    assert_ne!(address(a), address(b));
    // Each address is the one reserved for its MAC on the network's DHCP server.
    let net = w.virsh(&["net-dumpxml", "virt-up"]);
    for n in [a, b] {
        let r = w.record(n);
        assert_eq!(r["reservation"]["address"], address(n), "{n}: {r}");
        let host = format!(
            "<host mac='{}' ip='{}'/>",
            r["mac"].as_str().unwrap(),
            r["reservation"]["address"].as_str().unwrap()
        );
        assert!(net.contains(&host), "{host} not in {net}");
    }
    let genid = |n: &str| {
        let xml = w.virsh(&["dumpxml", n]);
        let at = xml
            .find("<genid>")
            .unwrap_or_else(|| panic!("{n} has no genid: {xml}"));
        xml[at..at + 45].to_string()
    };
    assert_ne!(genid(a), genid(b), "one VM generation ID for two guests");
    // The clock was stopped when the template was saved: each guest has the host's.
    for n in [a, b] {
        let before = now();
        let theirs: u64 = w.ssh(n, "date +%s").parse().unwrap();
        let after = now();
        assert!(
            theirs + 2 >= before && theirs <= after + 2,
            "{n}'s clock is {theirs}, the host's {before}..{after}"
        );
    }
    // The journal of this boot is found under the new machine-id.
    assert!(!w.ssh(a, "sudo journalctl -b -q -n 1 --no-pager").is_empty());
    w.run(
        "ansible",
        &["-i", &w.data("inventory.yaml"), "all", "-m", "ping"],
    )
    .ok();

    // Shut down from inside and started cold: the same identity and host key.
    let id = machine_id(a);
    w.vu(&[a, "--stop"]).ok();
    let out = w
        .vu(&[a, "--login", "--command", "hostname; cat /etc/machine-id"])
        .ok();
    assert_eq!(out.stdout.trim(), format!("{a}\n{id}"));

    // warm = no: created cold.
    w.set_common("warm = no");
    let cold = w.vu(&["vut-wc", "--template", "vut-deb", "--debug"]);
    w.set_common("");
    let cold = cold.ok();
    assert!(
        cold.stderr.contains("vut-wc: booting cold: warm = no"),
        "{}",
        cold.stderr
    );
    assert!(w.record("vut-wc")["warm"].is_null());
    assert_eq!(w.ssh("vut-wc", "hostname"), "vut-wc");
    // A cold boot makes the message of the day once, and pam_motd only shows it.
    let motd = w.ssh(
        "vut-wc",
        "grep -c 'pam_motd.so  motd=/run/motd.dynamic noupdate$' /etc/pam.d/sshd; \
         for i in $(seq 100); do [ -s /run/motd.dynamic ] && break; sleep 0.2; done; cat /run/motd.dynamic",
    );
    assert!(motd.starts_with("1\nLinux vut-wc "), "{motd}");
    let wc_address = w.record("vut-wc")["address"].clone();
    w.vu(&["vut-wc", "--delete"]).ok();
    w.assert_gone("vut-wc");

    // A warm image whose save image is damaged is found and made again; the template's
    // own disk is untouched and still passes qemu-img check.
    let garbage = std::env::temp_dir().join(format!("vut-garbage-{}", std::process::id()));
    std::fs::write(&garbage, [0u8; 64]).unwrap();
    w.virsh(&[
        "vol-upload",
        &save,
        &garbage.display().to_string(),
        "--offset",
        "0",
        "--length",
        "64",
    ]);
    std::fs::remove_file(&garbage).unwrap();
    remade_and_restored(w, "its warm image cannot be used");
    assert_eq!(w.ssh("vut-wc", "hostname"), "vut-wc");
    // vut-wa and vut-wb were made from the replaced image: their disks are overlays of its
    // disk, which is kept (the new one has other names) and still what they boot from.
    let template = w.record("TEMPLATE-vut-deb");
    let disk_now = template["warm"]["disk"].as_str().unwrap().to_string();
    assert_ne!(
        disk_now, first_disk,
        "the new warm image took the old one's disk"
    );
    assert_eq!(
        template["retired_warm"][0]["disk"],
        first_disk.as_str(),
        "{template}"
    );
    assert!(std::path::Path::new(&first_disk).exists());
    w.vu(&[a, "--stop"]).ok();
    let again = w
        .vu(&[a, "--login", "--command", "hostname; cat /etc/machine-id"])
        .ok();
    assert_eq!(
        again.stdout.trim(),
        format!("{a}\n{id}"),
        "after the remake"
    );
    let a_disk = w.record(a)["disk"].as_str().unwrap().to_string();
    w.run("qemu-img", &["check", "-U", &a_disk]).ok();
    let save = template["warm"]["save"].as_str().unwrap().to_string();
    assert_eq!(
        w.record("vut-wc")["address"],
        wc_address,
        "re-created, its address is the same"
    );
    w.run(
        "qemu-img",
        &["check", "-U", &format!("{POOL}/TEMPLATE-vut-deb.qcow2")],
    )
    .ok();

    // A truncated save image (its header intact) is found by its size and made again,
    // instead of failing every restore.
    w.vu(&["vut-wc", "--delete"]).ok();
    let half = std::fs::metadata(&save).unwrap().len() / 2;
    let file = std::fs::OpenOptions::new().write(true).open(&save).unwrap();
    file.set_len(half).unwrap();
    drop(file);
    remade_and_restored(w, &format!("is {half} bytes, it was made"));

    let macs: Vec<String> = [a, b, "vut-wc"]
        .iter()
        .map(|n| w.record(n)["mac"].as_str().unwrap().to_string())
        .collect();
    for n in [a, b, "vut-wc"] {
        w.vu(&[n, "--delete"]).ok();
        w.assert_gone(n);
        assert!(
            !std::path::Path::new(&format!("{POOL}/{n}.save")).exists(),
            "{n}'s save image left behind"
        );
    }
    // With the last of its clones, the replaced warm disk went.
    assert!(
        !std::path::Path::new(&first_disk).exists(),
        "{first_disk} left behind"
    );
    let template = w.record("TEMPLATE-vut-deb");
    assert!(template["retired_warm"].is_null(), "{template}");
    let net = w.virsh(&["net-dumpxml", "virt-up"]);
    for mac in macs {
        assert!(
            !net.contains(&mac),
            "{mac}'s reservation left behind: {net}"
        );
    }
}

/// Create vut-wc while the warm image is damaged: the damage is named (`why`), the image
/// made again, and the instance restored from it.
fn remade_and_restored(w: &crate::world::World, why: &str) {
    let again = w.vu(&["vut-wc", "--template", "vut-deb", "--debug"]).ok();
    let said = |text: &str| again.stderr.contains(text);
    assert!(said(why) && said("making it again"), "{}", again.stderr);
    assert!(said("vut-wc: phase restore took"), "{}", again.stderr);
}

/// Wait (polling every 10 ms, up to 120 s) until `done` says so.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn sha256(path: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn w2_a_warm_create_killed_midway_is_cleaned_up_and_the_warm_image_is_unchanged() {
    let w = world();
    let name = "vut-wk";
    let _cleanup = w.cleanup(&[name]);
    let record = w.record("TEMPLATE-vut-deb");
    let save = record["warm"]["save"]
        .as_str()
        .expect("a warm image")
        .to_string();
    let disk = record["warm"]["disk"].as_str().unwrap().to_string();
    let before = sha256(&save);
    let clone_save = format!("{POOL}/{name}.save");
    // Killed while its save image is being written, then right after the restore.
    type Reached<'a> = Box<dyn Fn() -> bool + 'a>;
    let points: [(&str, Reached); 2] = [
        (
            "its save image exists",
            Box::new(|| std::path::Path::new(&clone_save).exists()),
        ),
        (
            "its domain runs",
            Box::new(|| w.virsh(&["domstate", name]).contains("running")),
        ),
    ];
    for (point, reached) in points {
        let mut child = crate::guard::KillOnDrop::new(
            w.vu_command(&[name, "--template", "vut-deb"])
                .spawn()
                .unwrap(),
        );
        wait_until(point, reached);
        child.kill().unwrap();
        child.wait().unwrap();
        // The next create of that name cleans up what the killed one left, and succeeds.
        w.vu(&[name, "--template", "vut-deb"]).ok();
        assert_eq!(w.ssh(name, "hostname"), name, "after a kill when {point}");
        w.vu(&[name, "--delete"]).ok();
        w.assert_gone(name);
        assert!(!std::path::Path::new(&clone_save).exists());
    }
    assert_eq!(sha256(&save), before, "the template's save image changed");
    w.run("qemu-img", &["check", "-U", &disk]).ok();
}
