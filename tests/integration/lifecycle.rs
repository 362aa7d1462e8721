use crate::harness::TestEnv;
use std::path::Path;

/// A record as virt-up writes it, for states a test cannot reach through the test driver.
fn write_record(env: &TestEnv, name: &str, phase: &str, pid: u32, disk: &str) {
    let record = serde_json::json!({
        "name": name, "template": "deb", "created": "2026-01-01T00:00:00Z",
        "phase": phase, "pid": pid, "os_version": "x", "hostname": name, "domain": name,
        "disk": env.path(disk), "format": "qcow2", "memory": 512, "vcpus": 1,
        "graphics": "none", "root": {"username": "root", "ssh_identity": "/k"},
        "user": {"username": "virt", "ssh_identity": "/k"}, "address-source": "lease",
        "ssh_options": {}, "address": "192.168.122.77", "mac": "52:54:00:00:00:77",
        "uri": env.uri(), "identity": "firstboot", "console_log": "/c.log",
        "inventory": true, "cloned": true, "from": "/t.qcow2"
    });
    env.write(&format!("data/instance/{name}.json"), &record.to_string());
    env.write(disk, "disk");
}

#[test]
fn template_build_passes_secrets_by_file_and_writes_private_records() {
    let env = TestEnv::new();
    env.run(&["deb", "--no-clone"]).ok();
    assert_eq!(env.ls("pool"), ["TEMPLATE-deb.qcow2"]);
    let args = env.read("log/virt-builder.log");
    let lines: Vec<&str> = args.lines().collect();
    assert_eq!(lines[0], "debian-12-local");
    assert!(lines.contains(&"--no-check-signature"));
    let root = lines.iter().position(|l| *l == "--root-password").unwrap();
    assert_eq!(
        lines[root + 1],
        "disabled",
        "root of a template is key-only"
    );
    assert!(lines
        .iter()
        .any(|l| l.ends_with(":/usr/local/sbin/virt-up-identity")));
    assert_eq!(
        lines[lines.len() - 5..lines.len() - 1],
        [
            "--truncate",
            "/etc/machine-id",
            "--delete",
            "/etc/ssh/ssh_host_*"
        ]
    );
    assert_eq!(env.mode("data"), 0o700);
    assert_eq!(env.mode("data/instance"), 0o700);
    assert_eq!(env.mode("data/sshkeys"), 0o700);
    let stem = env.template_stem("deb");
    assert_eq!(env.mode(&format!("data/instance/{stem}.json")), 0o600);
    assert_eq!(env.mode(&format!("data/sshkeys/{stem}")), 0o600);
    // Built once: a second call reuses it; --force rebuilds.
    env.run(&["deb", "--no-clone"]).ok();
    assert_eq!(env.tool_runs("virt-builder"), 1);
    env.run(&["deb", "--no-clone", "--force"]).ok();
    assert_eq!(env.tool_runs("virt-builder"), 2);
    let list = env.run(&["--list", "--all", "--json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["name"], stem.as_str());
    assert_eq!(v[0]["is_template"], true);
}

#[test]
fn failed_template_build_leaves_no_disk_or_record() {
    let mut env = TestEnv::new();
    env.set("FAKE_VIRT_BUILDER_FAIL", "cannot find os-version");
    env.run(&["deb", "--no-clone"])
        .fails(1, "virt-builder failed with exit code 1 (building template deb):\nvirt-builder: error: cannot find os-version");
    assert!(env.ls("pool").is_empty(), "{:?}", env.ls("pool"));
    assert!(env.ls("data/instance").is_empty());
    // Nor a partial disk where it was built.
    assert!(
        env.ls("cache/builds").is_empty(),
        "{:?}",
        env.ls("cache/builds")
    );
}

#[test]
fn a_template_is_built_locally_and_uploaded_into_the_pool() {
    let env = TestEnv::new();
    env.run(&["deb", "--no-clone"]).ok();
    // virt-builder wrote a local file, not one in the pool's directory...
    let args = env.read("log/virt-builder.log");
    let lines: Vec<&str> = args.lines().collect();
    let output = lines.iter().position(|l| *l == "--output").unwrap();
    let built = Path::new(lines[output + 1]);
    assert!(built.starts_with(env.path("cache")), "{}", built.display());
    // ...which is gone once its bytes are in the pool's volume.
    assert!(!built.exists());
    assert_eq!(env.ls("pool"), ["TEMPLATE-deb.qcow2"]);
    assert!(env.ls("cache/builds").is_empty());
}

#[test]
fn where_warm_clones_cannot_work_the_instance_boots_cold_saying_why() {
    let env = TestEnv::new();
    // The test driver runs no guest whose memory could be saved: no warm image is made.
    let run = env
        .run(&["web1", "--template", "deb", "--debug"])
        .fails(5, "timed out");
    assert!(
        run.stderr
            .contains("web1: booting cold: libvirt's test driver runs no guest"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("warm image"), "{}", run.stderr);
    assert_eq!(env.ls("pool"), ["TEMPLATE-deb.qcow2"]);
    let shown: serde_json::Value =
        serde_json::from_str(&env.run(&["--show-templates", "--json"]).ok().stdout).unwrap();
    assert_eq!(shown["deb"]["warm"], "yes", "the setting's default");
    assert_eq!(shown["deb"]["built"], true);
    assert!(shown["deb"]["warm-image"].is_null());
}

#[test]
fn concurrent_creates_build_the_template_once() {
    let mut env = TestEnv::new();
    env.set(
        "FAKE_VIRT_BUILDER_WAIT_FOR",
        &env.path("second-started").display().to_string(),
    );
    let first = env.command(&["deb", "--no-clone"]).spawn().unwrap();
    let second = env.command(&["deb", "--no-clone"]).spawn().unwrap();
    env.write("second-started", "");
    assert!(first.wait_with_output().unwrap().status.success());
    assert!(second.wait_with_output().unwrap().status.success());
    assert_eq!(env.tool_runs("virt-builder"), 1);
}

#[test]
fn a_timeout_names_the_phase_and_console_log_and_leaves_nothing_behind() {
    let env = TestEnv::new();
    let run = env
        .run(&["web1", "--template", "deb", "--debug"])
        .fails(5, "web1: timed out after 1 s in phase 'address'");
    assert!(run
        .stderr
        .contains(&env.path("data/console/web1.log").display().to_string()));
    for phase in ["clone", "identity", "define", "boot"] {
        assert!(
            run.stderr.contains(&format!("web1: phase {phase} took")),
            "{}",
            run.stderr
        );
    }
    assert_eq!(env.ls("pool"), ["TEMPLATE-deb.qcow2"]);
    assert_eq!(
        env.ls("data/instance"),
        [format!("{}.json", env.template_stem("deb"))]
    );
    assert!(!env.read("data/inventory.yaml").contains("web1"));
    assert!(!env.read("data/known_hosts").contains("web1"));
    assert!(!env.path("data/sshkeys/web1").exists());
    // The MAC stays reserved, so a re-created web1 gets the same one.
    let macs: serde_json::Value = serde_json::from_str(&env.read("data/macaddrs.json")).unwrap();
    let mac = macs["web1"].as_str().unwrap().to_string();
    env.run(&["web1", "--template", "deb"])
        .fails(5, "timed out");
    let macs: serde_json::Value = serde_json::from_str(&env.read("data/macaddrs.json")).unwrap();
    assert_eq!(macs["web1"], mac.as_str());
}

#[test]
fn several_names_fail_together_with_a_summary() {
    let env = TestEnv::new();
    env.run(&["a1", "a2", "--template", "deb"])
        .fails(1, "2 of 2 instances failed");
    assert_eq!(env.tool_runs("virt-builder"), 1);
    assert_eq!(
        env.ls("data/instance"),
        [format!("{}.json", env.template_stem("deb"))]
    );
}

#[test]
fn an_interrupted_create_is_cleaned_up_by_the_next_run() {
    let env = TestEnv::new();
    env.run(&["deb", "--no-clone"]).ok();
    // A record left in phase "creating" by a process that no longer exists.
    write_record(&env, "ghost", "creating", 999_999, "pool/ghost.qcow2");
    let listed = env.run(&["--list"]).ok().stdout;
    assert!(listed.contains("abandoned"), "{listed}");
    let run = env
        .run(&["web1", "--template", "deb"])
        .fails(5, "timed out");
    assert!(run.stderr.contains("cleaning up ghost"), "{}", run.stderr);
    assert!(!env.path("pool/ghost.qcow2").exists());
    assert!(!env.path("data/instance/ghost.json").exists());
    // The name of a half-made instance can be created again at once.
    write_record(&env, "ghost", "creating", 999_999, "pool/ghost.qcow2");
    let run = env
        .run(&["ghost", "--template", "deb"])
        .fails(5, "timed out");
    assert!(run.stderr.contains("cleaning up ghost"), "{}", run.stderr);
}

#[test]
fn a_domain_deleted_outside_shows_as_missing_and_delete_cleans_up() {
    let env = TestEnv::new();
    write_record(&env, "gone", "ready", 1, "pool/gone.qcow2");
    let out = env.run(&["--list", "--json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "gone");
    assert_eq!(v[0]["state"], "missing");
    assert_eq!(v[0]["address"], "192.168.122.77");
    env.run(&["gone", "--delete"]).ok();
    assert!(!env.path("pool/gone.qcow2").exists());
    assert!(!env.path("data/instance/gone.json").exists());
    assert!(env.run(&["--list"]).ok().stdout.lines().count() == 1);
}

#[test]
fn a_template_with_dependents_is_never_rebuilt_or_deleted() {
    let env = TestEnv::new();
    env.run(&["deb", "--no-clone"]).ok();
    write_record(&env, "web1", "ready", 1, "pool/web1.qcow2");
    env.run(&["deb", "--no-clone", "--force"]).fails(
        3,
        "template 'deb' is used by instance(s): web1; delete them first",
    );
    env.run(&["deb", "--delete", "--all"])
        .fails(3, "used by instance(s): web1");
    assert!(env.path("pool/TEMPLATE-deb.qcow2").exists());
    env.run(&["web1", "--delete"]).ok();
    env.run(&["deb", "--delete", "--all"]).ok();
    assert!(env.ls("pool").is_empty());
}

#[test]
fn an_existing_name_is_refused() {
    let env = TestEnv::new();
    env.run(&["deb", "--no-clone"]).ok();
    write_record(&env, "web1", "ready", 1, "pool/web1.qcow2");
    env.run(&["web1", "--template", "deb"])
        .fails(3, "instance 'web1' already exists");
    assert!(env.path("pool/web1.qcow2").exists());
}

#[test]
fn sysprep_identity_runs_virt_sysprep_with_secrets_in_files() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nidentity = sysprep\nvirt-sysprep-args = --timezone UTC\n",
    );
    env.run(&["web1", "--template", "deb", "--password", "hunter2"])
        .fails(5, "timed out");
    let log = env.read("log/virt-sysprep.log");
    assert!(log.contains("defaults,-ssh-userdir"), "{log}");
    assert!(log.contains("--timezone\nUTC\n"), "{log}");
    assert!(
        !log.contains("hunter2"),
        "a password reached the command line:\n{log}"
    );
    assert!(log.contains("virt:file:"), "{log}");
}

#[test]
fn passwords_can_come_from_a_file_or_standard_input_and_bad_ones_change_nothing() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nidentity = sysprep\n",
    );
    env.write("secret", "s3cret word\nsecond line is not read\n");
    env.write("empty", "\n");
    let secret = env.path("secret").display().to_string();
    let empty = env.path("empty").display().to_string();
    let missing = env.path("missing").display().to_string();
    env.run(&["web1", "--template", "deb", "--password-file", &missing])
        .fails(2, &format!("--password-file {missing}: No such file"));
    env.run(&["web1", "--template", "deb", "--root-password-file", &empty])
        .fails(2, "the first line is empty");
    env.run(&[
        "web1",
        "--template",
        "deb",
        "--password-file",
        "-",
        "--root-password-file",
        "-",
    ])
    .fails(2, "cannot both read standard input");
    env.run(&[
        "web1",
        "--template",
        "deb",
        "--password",
        "x",
        "--password-file",
        &secret,
    ])
    .fails(2, "cannot be used with");
    // Refused before anything was built.
    assert_eq!(env.tool_runs("virt-builder"), 0);
    assert!(env.ls("data/instance").is_empty());

    env.run(&["web1", "--template", "deb", "--password-file", &secret])
        .fails(5, "timed out");
    let log = env.read("log/virt-sysprep.log");
    assert!(
        !log.contains("s3cret"),
        "a password reached the command line:\n{log}"
    );
    assert_eq!(env.read("log/virt-sysprep.passwords"), "virt=s3cret word\n");
}

#[test]
fn a_missing_playbook_is_named_before_anything_is_built() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\ntemplate-playbook = nothere\n",
    );
    env.run(&["web1", "--template", "deb"])
        .fails(2, "playbook 'nothere' not found; looked in: nothere, ");
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\ninstance-playbook = nothere.yml\n",
    );
    env.run(&["web1", "--template", "deb"])
        .fails(2, "playbook 'nothere.yml' not found");
    assert_eq!(env.tool_runs("virt-builder"), 0);
}

#[test]
fn a_failed_template_playbook_leaves_no_template() {
    let env = TestEnv::new();
    env.write("config/playbooks/setup.yml", "- hosts: all\n  tasks: []\n");
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\ntemplate-playbook = setup\n",
    );
    // The test driver's guest never answers: the boot for the playbook times out.
    env.run(&["deb", "--no-clone"])
        .fails(5, "TEMPLATE-deb: timed out after 1 s in phase 'address'");
    assert!(env.ls("pool").is_empty(), "{:?}", env.ls("pool"));
    assert!(env.ls("data/instance").is_empty());
    assert!(!env.read("data/known_hosts").contains("TEMPLATE-deb"));
}

#[test]
fn a_template_disk_that_is_not_ours_is_never_overwritten() {
    let env = TestEnv::new();
    env.write("pool/TEMPLATE-deb.qcow2", "someone else's");
    env.run(&["deb", "--no-clone"])
        .fails(3, "exists but is not recorded");
    assert_eq!(env.read("pool/TEMPLATE-deb.qcow2"), "someone else's");
    assert_eq!(env.tool_runs("virt-builder"), 0);
}

#[test]
fn a_template_whose_definition_changed_is_reused_with_a_warning_saying_how_to_rebuild() {
    let env = TestEnv::new();
    env.run(&["deb", "--no-clone"]).ok();
    // Unchanged, or changed only in what instances get (memory): no warning.
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = debian-12-local\nvirt-builder-source = file:///nonexistent/index\nmemory = 2048\n",
    );
    let same = env.run(&["deb", "--no-clone"]).ok();
    assert!(
        !same.stderr.contains("different definition"),
        "{}",
        same.stderr
    );
    // What the disk holds changed: the built template is kept (clones may use it), and the
    // user is told so, with the way to rebuild.
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = debian-12-local\nvirt-builder-source = file:///nonexistent/index\nvirt-builder-args = --install vim\n",
    );
    let changed = env.run(&["deb", "--no-clone"]).ok();
    assert!(
        changed
            .stderr
            .contains("template deb was built from a different definition")
            && changed.stderr.contains("virt-up deb --no-clone --force"),
        "{}",
        changed.stderr
    );
    assert_eq!(env.tool_runs("virt-builder"), 1, "nothing rebuilt");
}
