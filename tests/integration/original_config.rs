//! The original virt-up's own configuration files (tests/fixtures/virt-up-original, see its
//! README for where they come from) load unchanged, and their virt-builder-args and
//! virt-sysprep-args reach the tools word for word.
//! Their `virt-install-args = --channel ...` (generic/ubuntu18, generic/opensuse42) load as
//! they are; that the channel reaches the domain is shown by the virt-install-args tests.

use crate::harness::TestEnv;
use std::path::Path;

fn fixture(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/virt-up-original")
        .join(rel)
}

/// Copy a fixture directory's files into the environment under `to`.
fn install(env: &TestEnv, from: &str, to: &str) {
    let base = fixture(from);
    for sub in ["", "templates.d", "scripts"] {
        let Ok(entries) = std::fs::read_dir(base.join(sub)) else {
            continue;
        };
        for e in entries.flatten().filter(|e| e.path().is_file()) {
            let rel = Path::new(sub).join(e.file_name());
            let text = std::fs::read_to_string(e.path()).unwrap();
            env.write(&format!("{to}/{}", rel.display()), &text);
        }
    }
}

/// The argument vectors a fake tool was called with, in order.
fn calls(env: &TestEnv, tool: &str) -> Vec<Vec<String>> {
    let log = env.read(&format!("log/{tool}.log"));
    let mut calls = vec![];
    let mut call = vec![];
    for line in log.lines() {
        if line == "--" {
            calls.push(std::mem::take(&mut call));
        } else {
            call.push(line.to_string());
        }
    }
    calls
}

/// `words` appear in `argv` one after the other.
#[track_caller]
fn assert_has(argv: &[String], words: &[&str]) {
    assert!(
        argv.windows(words.len()).any(|w| w == words),
        "{words:?} not in {argv:?}"
    );
}

/// An environment with one version's files where root's init wrote them (/etc/virt-up);
/// the harness' user settings.cfg (TCG, short timeouts) overrides them key by key.
fn with_original(version: &str) -> TestEnv {
    let env = TestEnv::new();
    install(&env, &format!("{version}/rendered"), "system");
    env
}

#[test]
fn the_original_templates_show_with_their_descriptions() {
    for (version, templates) in [
        (
            "1.4.0",
            &[
                ("generic-centos-8", "centos-8.2", "CentOS 8.2"),
                ("generic-centos-7", "centos-7.8", "CentOS 7.8"),
                ("generic-fedora-32", "fedora-32", "Fedora 32"),
                ("generic-debian-10", "debian-10", "Debian 10 (buster)"),
                ("generic-debian-9", "debian-9", "Debian 9 (stretch)"),
                ("generic-ubuntu-18", "ubuntu-18.04", "Ubuntu 18.04"),
                ("generic-opensuse-42", "opensuse-42.1", "openSUSE Leap 42.1"),
            ][..],
        ),
        (
            "2.2.0",
            &[
                ("default", "debian-10", "Debian 10 (buster)"),
                ("generic/centos7", "centos-7.8", "CentOS 7.8"),
                ("generic/centos8", "centos-8.2", "CentOS 8.2"),
                ("generic/debian9", "debian-9", "Debian 9 (stretch)"),
                ("generic/debian10", "debian-10", "Debian 10 (buster)"),
                ("generic/debian11", "debian-11", "Debian 11 (bullseye)"),
                ("generic/fedora32", "fedora-32", "Fedora 32"),
                ("generic/fedora33", "fedora-33", "Fedora 33"),
                ("generic/fedora34", "fedora-34", "Fedora 34"),
                ("generic/fedora35", "fedora-35", "Fedora 35"),
                ("generic/opensuse42", "opensuse-42.1", "openSUSE Leap 42.1"),
                ("generic/ubuntu18", "ubuntu-18.04", "Ubuntu 18.04"),
            ][..],
        ),
    ] {
        let env = with_original(version);
        let run = env.run(&["--show-templates"]).ok();
        for (name, os, desc) in templates {
            let row = run
                .stdout
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("{version}: no {name} in\n{}", run.stdout));
            assert!(row.contains(os) && row.ends_with(desc), "{version}: {row}");
        }
        // 1.4.0's settings.cfg misspells 'graphics': a warning, not an error.
        if version == "1.4.0" {
            assert!(
                run.stderr
                    .contains("settings.cfg:7: unknown key 'grahics' in [common] is ignored"),
                "{}",
                run.stderr
            );
        }
        let json = env.run(&["--show-templates", "--json"]).ok().stdout;
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v.as_object().unwrap().len(), templates.len() + 1, "{json}");
    }
}

#[test]
fn debian11_args_reach_virt_builder_and_virt_sysprep_intact() {
    let env = with_original("2.2.0");
    // The test driver's guest never answers: the create times out after the clone.
    env.run(&["web1", "--template", "generic/debian11"])
        .fails(5, "web1: timed out");
    let builder = calls(&env, "virt-builder");
    assert_eq!(builder.len(), 1);
    let argv = &builder[0];
    assert_eq!(argv[0], "debian-11");
    assert_has(argv, &["--output"]);
    // The template's words, as the original's shlex.split gave them, after virt-up's own
    // customizations and before its generalization.
    assert_has(
        argv,
        &[
            "--install",
            "sudo,qemu-guest-agent",
            "--firstboot",
            "/home/user/.config/virt-up/scripts/fixup-network-interfaces.sh",
            "--truncate",
            "/etc/machine-id",
        ],
    );
    // virt-sysprep-args choose virt-sysprep for the identity, as the original ran it.
    let sysprep = calls(&env, "virt-sysprep");
    assert_eq!(sysprep.len(), 1);
    let argv = &sysprep[0];
    assert!(argv.ends_with(&[
        "--run-command".to_string(),
        "/usr/sbin/dpkg-reconfigure -f noninteractive openssh-server".to_string()
    ]));
    assert_has(
        argv,
        &["-a", &env.path("pool/web1.qcow2").display().to_string()],
    );
    let record: serde_json::Value = serde_json::from_str(&env.read(&format!(
        "data/instance/{}.json",
        env.template_stem("generic/debian11")
    )))
    .unwrap();
    assert_eq!(record["template"], "generic/debian11");
    assert_eq!(record["os_variant"], "debian11");
}

#[test]
fn centos8_firstboot_commands_and_selinux_relabel_reach_the_tools() {
    let env = with_original("2.2.0");
    env.run(&["db1", "--template", "generic/centos8"])
        .fails(5, "db1: timed out");
    let argv = &calls(&env, "virt-builder")[0];
    assert_eq!(argv[0], "centos-8.2");
    assert_has(
        argv,
        &[
            "--firstboot-command",
            "systemctl enable serial-getty@ttyS0.service",
            "--firstboot-command",
            "systemctl start serial-getty@ttyS0.service",
            "--install",
            "sudo,python3",
            "--selinux-relabel",
            "--truncate",
        ],
    );
    let argv = &calls(&env, "virt-sysprep")[0];
    assert_eq!(argv.last().unwrap(), "--selinux-relabel");
}

#[test]
fn an_explicit_firstboot_identity_runs_no_virt_sysprep() {
    let env = with_original("2.2.0");
    env.write(
        "config/templates.d/mine.cfg",
        "[generic/centos8]\nidentity = firstboot\n",
    );
    env.run(&["db1", "--template", "generic/centos8"])
        .fails(5, "db1: timed out");
    assert_eq!(env.tool_runs("virt-sysprep"), 0);
}

/// Templates with virt-install-args (--channel) build as they are.
#[test]
fn ubuntu18_and_opensuse42_templates_build_with_their_args() {
    let env = with_original("2.2.0");
    env.run(&["generic/ubuntu18", "--no-clone"]).ok();
    env.run(&["generic/opensuse42", "--no-clone"]).ok();
    let builder = calls(&env, "virt-builder");
    assert_eq!(builder[0][0], "ubuntu-18.04");
    assert_has(
        &builder[0],
        &[
            "--install",
            "sudo,policykit-1,qemu-guest-agent",
            "--firstboot",
            "/home/user/.config/virt-up/scripts/fixup-netplan-netcfg.sh",
            "--truncate",
        ],
    );
    assert_eq!(builder[1][0], "opensuse-42.1");
    assert_has(
        &builder[1],
        &["--install", "sudo,qemu-guest-agent", "--truncate"],
    );
}

#[test]
fn version_1_templates_as_its_init_wrote_them() {
    let env = with_original("1.4.0");
    env.run(&["generic-debian-10", "--no-clone"]).ok();
    env.run(&["generic-centos-7", "--no-clone"]).ok();
    let builder = calls(&env, "virt-builder");
    assert_has(
        &builder[0],
        &[
            "--install",
            "sudo,qemu-guest-agent",
            "--firstboot",
            "/home/user/.config/virt-up/scripts/fixup-network-interfaces.sh",
        ],
    );
    assert_has(
        &builder[1],
        &[
            "--firstboot-command",
            "systemctl start serial-getty@ttyS0.service",
            "--install",
            "sudo,python3",
            "--selinux-relabel",
        ],
    );
}

/// 1.4.0's templates before its init formatted them: `{scripts}/NAME` is the user's
/// scripts/NAME, else the system's (the seed's FILES: the user's files override
/// /etc/virt-up's).
#[test]
fn the_scripts_placeholder_finds_the_users_script_then_the_systems() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/generic.cfg",
        &std::fs::read_to_string(fixture("1.4.0/source/templates.d/generic.cfg")).unwrap(),
    );
    // No scripts anywhere: named with file, line and the places looked in; nothing built.
    let run = env
        .run(&["generic-debian-10", "--no-clone"])
        .fails(2, "generic.cfg:45: 'virt-builder-args' uses {scripts}, but no configuration directory has scripts/fixup-network-interfaces.sh");
    assert!(
        run.stderr.contains(&format!(
            "looked in: {}, {}",
            env.path("config").display(),
            env.path("system").display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(env.tool_runs("virt-builder"), 0);
    assert!(env.ls("pool").is_empty());

    install(&env, "1.4.0/source", "system");
    env.write(
        "config/scripts/fixup-netplan-netcfg.sh",
        "#!/bin/sh\n# mine\n",
    );
    env.run(&["generic-debian-10", "--no-clone"]).ok();
    env.run(&["generic-ubuntu-18", "--no-clone"]).ok();
    let builder = calls(&env, "virt-builder");
    let system = env.path("system/scripts/fixup-network-interfaces.sh");
    assert_has(&builder[0], &["--firstboot", &system.display().to_string()]);
    let user = env.path("config/scripts/fixup-netplan-netcfg.sh");
    assert_has(&builder[1], &["--firstboot", &user.display().to_string()]);
}
