use crate::harness::TestEnv;

#[test]
fn invalid_value_names_file_line_and_accepted_values() {
    let env = TestEnv::new();
    env.write("config/settings.cfg", "[common]\n\nimage-format = vmdk\n");
    let run = env.run(&["web1", "--template", "deb"]).fails(
        2,
        "settings.cfg:3: invalid value \"vmdk\" for 'image-format': expected one of: qcow2, raw\n  image-format: ",
    );
    // What the key is for, from the settings' own descriptions.
    assert!(run.stderr.contains("linked clone"), "{}", run.stderr);
    assert!(run
        .stderr
        .contains(&env.path("config").display().to_string()));
}

#[test]
fn unknown_key_is_a_warning_with_file_and_line() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nmemroy = 4\n",
    );
    let run = env.run(&["--show-templates"]).ok();
    assert!(
        run.stderr.contains(
            "test.cfg:3: unknown key 'memroy' in [deb] is ignored (did you mean 'memory'?)"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("deb"));
}

#[test]
fn broken_ini_is_an_error_naming_the_line() {
    let env = TestEnv::new();
    env.write("config/templates.d/test.cfg", "os-version = x\n");
    env.run(&["--show-templates"]).fails(2, "test.cfg");
}

#[test]
fn user_config_overrides_system_config() {
    let env = TestEnv::new();
    env.write(
        "system/templates.d/sys.cfg",
        "[deb]\nos-version = sys-os\nmemory = 700\n[sysonly]\nos-version = other\n",
    );
    env.write("config/templates.d/test.cfg", "[deb]\nmemory = 900\n");
    let out = env.run(&["--show-templates", "--json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deb"]["memory"], "900");
    assert_eq!(v["deb"]["os-version"], "sys-os");
    assert_eq!(v["sysonly"]["os-version"], "other");
}

/// `[host NAME]` sections are read and checked before anything is made: a bad value names
/// its line, `--host` must name one of them.
#[test]
fn host_sections_and_host_are_checked_before_anything_is_made() {
    let env = TestEnv::new();
    let settings = env.read("config/settings.cfg");
    let with_hosts = |hosts: &str| env.write("config/settings.cfg", &format!("{settings}{hosts}"));
    env.run(&["web1", "--template", "deb", "--host", "lab2"])
        .fails(
            2,
            "--host lab2: no such host; settings.cfg has no [host NAME] section",
        );
    with_hosts("[host lab2]\nuri = test:///default\nmax-instances = none\n");
    env.run(&["web1", "--template", "deb"]).fails(
        2,
        "settings.cfg:8: invalid value \"none\" for 'max-instances': expected a whole number from 1 to 100000",
    );
    with_hosts("[host lab2]\nuri = test:///default\n[host lab3]\nuri = test:///default\n");
    env.run(&["web1", "--template", "deb"]).fails(
        2,
        "[host lab3] has the uri of [host lab2] (test:///default): a libvirt host is one section",
    );
    with_hosts("[host lab2]\nuri = test:///default\n[host lab3]\nuri = test:///lab3.xml\n");
    env.run(&["web1", "--template", "deb", "--host", "lab9"])
        .fails(
            2,
            "--host lab9: no such host; configured hosts ([host NAME] in settings.cfg): lab2, lab3",
        );

    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nhosts = lab2 tag:gpu\n",
    );
    env.run(&["web1", "--template", "deb"]).fails(
        2,
        "test.cfg:3: template [deb]: hosts = \"lab2 tag:gpu\": no host has the tag 'gpu' (no host has tags)",
    );
    // The other commands do not need the hosts.
    env.run(&["--list"]).ok();
    assert_eq!(env.tool_runs("virt-builder"), 0);
    assert!(env.ls("data/instance").is_empty());
}

/// Whether the tests run as root (the owner of a file they made).
fn running_as_root(env: &TestEnv) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(env.path("log")).unwrap().uid() == 0
}

/// `--init` writes the shipped files where virt-up reads them: as root the system directory
/// (/etc/virt-up; `VIRTUP_SYSTEM_CONFIG` stands for it here), else the user's, as the
/// original did. Which of the two this test sees depends on who runs it; the next test
/// covers the other when it can.
#[test]
fn init_installs_shipped_files_and_refuses_to_overwrite() {
    let mut env = TestEnv::new();
    env.set(
        "VIRTUP_CONFIG_HOME",
        &env.path("fresh").display().to_string(),
    );
    let (dest, other) = match running_as_root(&env) {
        true => ("system", "fresh"),
        false => ("fresh", "system"),
    };
    let run = env.run(&["--init"]).ok();
    assert!(
        run.stderr.contains(&format!(
            "initializing files in {}",
            env.path(dest).display()
        )),
        "{}",
        run.stderr
    );
    assert!(env
        .read(&format!("{dest}/settings.cfg"))
        .contains("[common]"));
    assert!(env
        .read(&format!("{dest}/templates.d/local.cfg"))
        .contains("[debian-12-local]"));
    assert!(env
        .read(&format!("{dest}/playbooks/hello.yml"))
        .contains("hosts: all"));
    for script in ["fixup-network-interfaces.sh", "fixup-netplan-netcfg.sh"] {
        let rel = format!("{dest}/scripts/{script}");
        assert!(env.read(&rel).starts_with("#!/bin/sh\n"), "{rel}");
        assert_eq!(env.mode(&rel), 0o755, "{rel}");
    }
    assert_eq!(env.mode(&format!("{dest}/settings.cfg")), 0o644);
    assert!(env.ls(other).is_empty(), "{:?}", env.ls(other));

    env.write(&format!("{dest}/settings.cfg"), "# mine\n");
    env.run(&["--init"]).fails(2, "use --force");
    assert_eq!(env.read(&format!("{dest}/settings.cfg")), "# mine\n");
    env.run(&["--init", "--force"]).ok();
    assert!(env
        .read(&format!("{dest}/settings.cfg"))
        .contains("[common]"));

    // The installed scripts are what {scripts}/NAME finds.
    env.write(
        "fresh/templates.d/mine.cfg",
        "[mine]\nos-version = debian-10\nvirt-builder-args = --firstboot {scripts}/fixup-network-interfaces.sh\n",
    );
    let shown = env.run(&["--show-templates", "--json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        v["mine"]["virt-builder-args"],
        format!(
            "--firstboot {}",
            env.path(&format!("{dest}/scripts/fixup-network-interfaces.sh"))
                .display()
        )
    );
    for t in [
        "debian-12",
        "ubuntu-22.04",
        "fedora-40",
        "centosstream-9",
        "debian-12-local",
    ] {
        assert!(v.get(t).is_some(), "{shown}");
    }
}

/// A regular user's `--init` writes the user's directory and not the system's. Only a
/// root test process can run virt-up as another user (nobody); run by a regular user,
/// the test above is this case.
#[test]
fn init_as_a_regular_user_writes_the_users_directory() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let mut env = TestEnv::new();
    if !running_as_root(&env) {
        return;
    }
    const NOBODY: u32 = 65534;
    let perms = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(env.dir.path(), perms).unwrap();
    std::fs::create_dir(env.path("nobody")).unwrap();
    std::os::unix::fs::chown(env.path("nobody"), Some(NOBODY), Some(NOBODY)).unwrap();
    let home = env.path("nobody").display().to_string();
    env.set("HOME", &home);
    env.set("VIRTUP_CONFIG_HOME", &format!("{home}/config"));
    env.set("VIRTUP_DATA_HOME", &format!("{home}/data"));
    let out = env
        .command(&["--init"])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.read("nobody/config/settings.cfg").contains("[common]"));
    assert!(env
        .read("nobody/config/scripts/fixup-network-interfaces.sh")
        .starts_with("#!/bin/sh"));
    assert!(env.ls("system").is_empty(), "{:?}", env.ls("system"));
}

#[test]
fn show_paths_lists_inventory_and_ssh_config() {
    let env = TestEnv::new();
    let out = env.run(&["--show-paths", "--json"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["inventory"],
        env.path("data/inventory.yaml").display().to_string()
    );
    assert_eq!(
        v["ssh-config"],
        env.path("data/ssh_config").display().to_string()
    );
    assert_eq!(
        v["lock"],
        env.path("run/virt-up.lock").display().to_string()
    );
    let text = env.run(&["--show-paths"]).ok().stdout;
    assert!(text.contains("inventory"));
}

/// Output into a pipe whose reader is gone (`virt-up --show-paths | head -0`, or a reader
/// that has read what it wanted) ends the command quietly with status 0, as other tools'
/// does: no panic and backtrace on stderr.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use crate::harness::Bin;
    let env = TestEnv::new();
    for (bin, args) in [
        (Bin::VirtUp, &["--show-paths"][..]),
        (Bin::VirtUp, &["--show-templates", "--json"][..]),
        (Bin::VirtMaker, &["runners", "steps"][..]),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env
            .command_for(bin, args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
}
