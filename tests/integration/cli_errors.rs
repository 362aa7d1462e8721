use crate::harness::TestEnv;

#[test]
fn invalid_names_are_refused_before_touching_anything() {
    let env = TestEnv::new();
    for bad in ["../etc", "a/b", "a b", "x-", "TEMPLATE-x", &"n".repeat(64)] {
        env.run(&[bad, "--template", "deb"])
            .fails(2, "invalid name");
    }
    assert!(env.ls("pool").is_empty());
    assert_eq!(env.tool_runs("virt-builder"), 0);
}

#[test]
fn unknown_template_suggests_the_nearest() {
    let env = TestEnv::new();
    env.run(&["web1", "--template", "deb2"])
        .fails(2, "unknown template 'deb2' (did you mean 'deb'?)");
}

#[test]
fn template_defaults_to_the_name() {
    let env = TestEnv::new();
    env.run(&["web1"]).fails(2, "unknown template 'web1'");
}

#[test]
fn dead_libvirtd_says_how_to_start_it() {
    let mut env = TestEnv::new();
    env.set(
        "LIBVIRT_DEFAULT_URI",
        "qemu+unix:///system?socket=/nonexistent/libvirt-sock",
    );
    env.run(&["--list"]).fails(4, "libvirtd -d");
}

#[test]
fn missing_tool_names_its_package_and_leaves_nothing() {
    let mut env = TestEnv::new();
    env.set("PATH", "/nonexistent");
    env.run(&["deb", "--no-clone"]).fails(
        4,
        "virt-builder is not installed (install the Debian package 'guestfs-tools')",
    );
    assert!(env.ls("pool").is_empty());
    assert!(env.ls("data/instance").is_empty());
}

#[test]
fn missing_pool_and_network_are_named() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\npool = nopool\n",
    );
    env.run(&["deb", "--no-clone"])
        .fails(4, "storage pool 'nopool'");
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nnetwork = nonet\n",
    );
    env.run(&["deb", "--no-clone"])
        .fails(4, "virsh net-start nonet");
}

#[test]
fn virt_ups_own_network_is_made_on_first_use_and_said_so() {
    // The fixture's host has libvirt's 'default' only (192.168.122.0/24).
    let env = TestEnv::new();
    let out = env.run(&["deb", "--no-clone"]);
    assert!(
        out.stderr.contains(
            "made libvirt network 'virt-up' on 192.168.124.1/24 (NAT, STP off, autostarted)"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn login_and_delete_of_unknown_instance() {
    let env = TestEnv::new();
    env.run(&["ghost", "--login"])
        .fails(3, "instance 'ghost' not found");
    env.run(&["ghost", "--delete"])
        .fails(3, "instance 'ghost' not found");
    env.run(&["ghost", "--playbook", "hello"])
        .fails(3, "instance 'ghost' not found");
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new();
    env.run(&["--list", "--delete"])
        .fails(2, "cannot be used with");
    env.run(&["web1", "--sftp"]).fails(2, "--login");
    // A command after '--' is for --login, and only one command form at a time.
    env.run(&["web1", "--", "uname", "-a"]).fails(2, "--login");
    env.run(&["web1", "--login", "--command", "true", "--", "true"])
        .fails(2, "cannot be used with");
    env.run(&["ghost", "--login", "--", "true"])
        .fails(3, "instance 'ghost' not found");
    // --copy: exactly one side in an instance, which must exist; no <name> besides.
    env.run(&["--copy", "a", "b"])
        .fails(2, "exactly one side is NAME:PATH");
    env.run(&["--copy", "web1:a", "web2:b"])
        .fails(2, "exactly one side is NAME:PATH");
    env.run(&["--copy", "./file", "ghost:/tmp/"])
        .fails(3, "instance 'ghost' not found");
    env.run(&["--copy", "Bad_Name:/x", "y"])
        .fails(2, "invalid name");
    env.run(&["web1", "--copy", "a", "web1:b"])
        .fails(2, "--copy takes no <name>");
    env.run(&["--copy", "a"]).fails(2, "2 values required");
    env.run(&[]).fails(2, "nothing to do");
    env.run(&["web1", "--template", "deb", "--user", "Bad User"])
        .fails(2, "invalid name 'Bad User'");
    env.run(&["web1", "--template", "deb", "--size", "big"])
        .fails(2, "--size \"big\"");
}

#[test]
fn virt_install_options_virt_up_manages_are_named_before_anything_is_built() {
    let env = TestEnv::new();
    for (args, option) in [
        ("--hvm --boot uefi", "--boot"),
        ("--name other", "--name"),
        ("--import", "--import"),
        ("--disk path=/x.qcow2", "--disk"),
        ("--memory 2048", "--memory"),
        ("--network bridge=br0", "--network"),
    ] {
        env.write(
            "config/templates.d/test.cfg",
            &format!("[deb]\nos-version = x\nvirt-install-args = {args}\n"),
        );
        env.run(&["web1", "--template", "deb"])
            .fails(2, &format!("option '{option}' is not accepted"));
    }
    // An abbreviation virt-install would take is caught by what virt-install prints.
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nvirt-install-args = --nam other\n",
    );
    env.run(&["web1", "--template", "deb"])
        .fails(2, "as option '--name' does");
    // An option virt-install itself rejects, with what it said.
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nvirt-install-args = --no-such-option 1\n",
    );
    env.run(&["web1", "--template", "deb"])
        .fails(2, "virt-install does not accept '--no-such-option 1'");
    assert_eq!(env.tool_runs("virt-builder"), 0);
}

#[test]
fn virt_install_args_need_virt_install_only_when_given() {
    let mut env = TestEnv::new();
    // The fake tools only: no virt-install on PATH.
    let fakes = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bin");
    env.set("PATH", fakes);
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nvirt-install-args = --channel unix,name=org.example.0\n",
    );
    env.run(&["web1", "--template", "deb"]).fails(
        4,
        "virt-install is not installed (install the Debian package 'virtinst')",
    );
    assert_eq!(env.tool_runs("virt-builder"), 0);
    // Without virt-install-args it is never looked for.
    env.write(
        "config/templates.d/test.cfg",
        "[deb]\nos-version = x\nvirt-install-args = --machine q35 --os-variant debian12\n",
    );
    let run = env.run(&["web1", "--template", "deb"]);
    assert!(!run.stderr.contains("virt-install"), "{}", run.stderr);
    assert_eq!(env.tool_runs("virt-builder"), 1);
}

/// The man pages carry what clap does not know, and the completions only what a user may
/// type (no hidden option).
#[test]
fn man_pages_have_exit_status_environment_and_files_and_completions_no_hidden_options() {
    let files: std::collections::BTreeMap<String, String> =
        virt_up::docs::files().into_iter().collect();
    for page in ["man/virt-up.1", "man/virt-maker.1", "man/gen-vm-image.1"] {
        let text = &files[page];
        for section in ["EXIT STATUS", "ENVIRONMENT", "FILES"] {
            assert!(
                text.contains(&format!(".SH \"{section}\"")),
                "{page}: {section}"
            );
        }
    }
    assert!(files["man/virt-up.1"].contains("\\-\\-show\\-templates"));
    assert!(files["man/virt-up.1"].contains("LIBVIRT_DEFAULT_URI"));
    assert!(files["man/virt-maker.1"].contains("VERBOSE"));
    let bash = &files["completions/virt-up.bash"];
    assert!(bash.contains("--no-inventory") && bash.contains("--stop"));
    // gen-vm-image's older command line is a hidden subcommand.
    assert!(!files["completions/gen-vm-image.bash"].contains("legacy"));
}

/// The committed pages and completions are what the definitions give today.
#[test]
fn committed_man_pages_and_completions_are_not_stale() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (rel, text) in virt_up::docs::files() {
        let committed = std::fs::read_to_string(format!("{root}/{rel}"))
            .unwrap_or_else(|e| panic!("{rel}: {e} (run 'make man')"));
        assert_eq!(text, committed, "{rel} is stale: run 'make man'");
    }
}

/// The help says --password is the login user's: for a root login it would set nothing.
#[test]
fn password_for_a_root_login_is_refused_before_anything_is_built() {
    let env = TestEnv::new();
    env.run(&[
        "web1",
        "--template",
        "deb",
        "--user",
        "root",
        "--password",
        "pw",
    ])
    .fails(2, "the login user is root: use --root-password");
    assert!(env.ls("pool").is_empty());
    assert_eq!(env.tool_runs("virt-builder"), 0);
}
