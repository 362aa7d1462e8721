//! `--mount HOST_DIR[:GUEST_DIR]`: a bad share is refused with its reason and exit code
//! before anything is made (no template, volume, domain or record), and a good one reaches
//! libvirt's test driver as a virtiofs device of a domain that boots cold.

use crate::harness::TestEnv;

/// An environment whose `virtiofsd` setting is a fake executable of its own, so that the
/// tests do not depend on the host's.
fn env_with_virtiofsd() -> TestEnv {
    let env = TestEnv::new();
    env.write("bin/virtiofsd", "#!/bin/sh\nexit 0\n");
    use std::os::unix::fs::PermissionsExt;
    let perms = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(env.path("bin/virtiofsd"), perms).unwrap();
    let settings = env.read("config/settings.cfg");
    let fake = env.path("bin/virtiofsd").display().to_string();
    env.write(
        "config/settings.cfg",
        &format!("{settings}virtiofsd = {fake}\n"),
    );
    std::fs::create_dir_all(env.path("share")).unwrap();
    env.write("a-file", "");
    env
}

/// Nothing of the create is left: no volume, no record, no key.
#[track_caller]
fn nothing_made(env: &TestEnv) {
    assert!(env.ls("pool").is_empty(), "{:?}", env.ls("pool"));
    assert!(
        env.ls("data/instance").is_empty(),
        "{:?}",
        env.ls("data/instance")
    );
    assert!(!env.path("data/sshkeys/web1").exists());
}

#[test]
fn bad_shares_are_refused_before_anything_is_made() {
    let env = env_with_virtiofsd();
    let share = env.path("share").display().to_string();
    let file = env.path("a-file").display().to_string();
    let missing = env.path("missing").display().to_string();
    let cases = [
        (format!("{missing}:/mnt/host"), "the host directory"),
        (format!("{file}:/mnt/host"), "a-file is not a directory"),
        (format!("{share}:mnt"), "not an absolute path"),
        (format!("{share}:/mnt/a b"), "' ' is not allowed"),
        (format!("{share}:/mnt/a,b"), "',' is not allowed"),
        (format!("{share}:/mnt/../etc"), "'..' components"),
        (
            format!("{share}:/"),
            "the guest's root cannot be a mount point",
        ),
        (
            format!("{share}:/home/virt"),
            "would hide the guest's /home/virt/.ssh",
        ),
    ];
    for (spec, why) in cases {
        let run = env.run(&["web1", "--template", "deb", "--mount", &spec]);
        let run = run.fails(2, why);
        assert!(
            run.stderr.contains(&format!("--mount {spec:?}")),
            "{}",
            run.stderr
        );
        nothing_made(&env);
    }
}

#[test]
fn a_missing_virtiofsd_is_a_host_not_ready_naming_where_it_was_looked_for() {
    let env = env_with_virtiofsd();
    let settings = env.read("config/settings.cfg");
    let gone = env.path("no/virtiofsd").display().to_string();
    let fake = env.path("bin/virtiofsd").display().to_string();
    env.write("config/settings.cfg", &settings.replace(&fake, &gone));
    let share = env.path("share").display().to_string();
    let run = env.run(&["web1", "--template", "deb", "--mount", &share]);
    let run = run.fails(4, "--mount needs virtiofsd");
    assert!(
        run.stderr.contains(&format!(
            "{gone} (the 'virtiofsd' setting) is not an executable file"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("qemu-system-common"), "{}", run.stderr);
    nothing_made(&env);
}

#[test]
fn mount_applies_to_creating_instances_only() {
    let env = env_with_virtiofsd();
    let share = env.path("share").display().to_string();
    env.run(&["web1", "--login", "--mount", &share]).fails(
        2,
        "--mount does not apply to --login (it applies to creating instances)",
    );
    env.run(&["deb", "--no-clone", "--mount", &share])
        .fails(2, "--mount does not apply to --no-clone");
    nothing_made(&env);
}

/// A good share is a domain the test driver defines and boots (cold: a restored guest
/// could not have the device); the create then times out as every create does here, and
/// leaves nothing of the instance.
#[test]
fn a_good_share_boots_cold_with_its_device() {
    let env = env_with_virtiofsd();
    let share = env.path("share").display().to_string();
    let run = env
        .run(&[
            "web1",
            "--template",
            "deb",
            "--mount",
            &format!("{share}:/mnt/host"),
            "--debug",
        ])
        .fails(5, "timed out");
    assert!(
        run.stderr
            .contains("web1: booting cold: --mount: a restored guest keeps the devices"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("web1: phase boot took"),
        "{}",
        run.stderr
    );
    assert_eq!(env.ls("pool"), ["TEMPLATE-deb.qcow2"]);
    assert_eq!(
        env.ls("data/instance"),
        [format!("{}.json", env.template_stem("deb"))]
    );
}

/// A template built by a virt-up whose agent does not mount shares is refused for
/// `--mount`, with how to rebuild it, before an instance is made.
#[test]
fn a_template_whose_agent_cannot_mount_is_refused_with_how_to_rebuild_it() {
    let env = env_with_virtiofsd();
    env.run(&["deb", "--no-clone"]).ok();
    let file = format!("data/instance/{}.json", env.template_stem("deb"));
    let record = env.read(&file);
    let mut v: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(v["agent_mounts"], true, "{record}");
    v.as_object_mut().unwrap().remove("agent_mounts");
    env.write(&file, &v.to_string());
    let share = env.path("share").display().to_string();
    env.run(&["web1", "--template", "deb", "--mount", &share])
        .fails(3, "template deb: it was built by a virt-up whose guest agent does not mount --mount shares; rebuild it");
    assert_eq!(env.ls("pool"), ["TEMPLATE-deb.qcow2"]);
    assert_eq!(
        env.ls("data/instance"),
        [format!("{}.json", env.template_stem("deb"))]
    );
}

/// The shares are in the instance's record and shown by `--info` and `--info --json`.
#[test]
fn info_shows_the_shares_of_the_record() {
    let env = TestEnv::new();
    let record = serde_json::json!({
        "name": "web1", "template": "deb", "created": "2026-01-01T00:00:00Z",
        "phase": "ready", "pid": 1, "os_version": "x", "hostname": "web1", "domain": "web1",
        "disk": env.path("pool/web1.qcow2"), "format": "qcow2", "memory": 512, "vcpus": 1,
        "graphics": "none", "root": {"username": "root", "ssh_identity": "/k"},
        "user": {"username": "virt", "ssh_identity": "/k"}, "address-source": "lease",
        "ssh_options": {}, "address": "192.168.122.77", "mac": "52:54:00:00:00:77",
        "uri": env.uri(), "identity": "firstboot", "console_log": "/c.log",
        "inventory": true, "cloned": true, "from": "/t.qcow2",
        "mounts": [{"host": "/srv/src", "guest": "/mnt/host", "tag": "virtup0"}]
    });
    env.write("data/instance/web1.json", &record.to_string());
    let out = env.run(&["web1", "--info"]).ok().stdout;
    assert!(
        out.lines()
            .any(|l| l.starts_with("mounts ") && l.ends_with(" /srv/src -> /mnt/host (virtup0)")),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&["web1", "--info", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        json["mounts"],
        serde_json::json!([{"host": "/srv/src", "guest": "/mnt/host", "tag": "virtup0"}])
    );
}
