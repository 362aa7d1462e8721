//! The debootstrap importer against fake debootstrap/chroot/guestfish (and the real tar
//! and qemu-img): bad arguments are named before anything runs, an import is cached,
//! a failure leaves nothing behind. (These machines run everything as root, which the
//! importer needs.)

use crate::harness::TestEnv;

const MIRROR: &str = "http://mirror.test/debian";

fn spec(import: &str) -> String {
    format!("spec:\n  import:\n    debootstrap:\n{import}  export:\n    qcow2: out.qcow2\n")
}

fn build(env: &TestEnv, file: &str) -> crate::harness::Run {
    let path = env.path(file);
    env.maker(&["build", "-f", path.to_str().unwrap()])
}

#[test]
fn bad_arguments_are_named_with_file_step_and_key_and_nothing_runs() {
    let env = TestEnv::new();
    let cases = [
        (
            "      suit: bookworm\n",
            "key 'suit'",
            "did you mean 'suite'",
        ),
        (
            "      suite: 'bookworm; reboot'\n",
            "key 'suite'",
            "not a suite name",
        ),
        (
            "      mirror: ftp://x/debian\n",
            "key 'mirror'",
            "http://, https:// or file:///",
        ),
        (
            "      mirror: 'http://x/d main'\n",
            "key 'mirror'",
            "spaces",
        ),
        (
            "      packages: [vim, 'Bad!']\n",
            "key 'packages[1]'",
            "'Bad!' is not a Debian package name",
        ),
        ("      size: 100M\n", "key 'size'", "too small"),
    ];
    for (import, key, why) in cases {
        env.write("t/d.yml", &spec(import));
        build(&env, "t/d.yml")
            .fails(2, &format!("d.yml: import (debootstrap): {key}"))
            .fails(2, why);
    }
    assert_eq!(env.tool_runs("debootstrap"), 0);
    assert_eq!(env.tool_runs("guestfish"), 0);
}

#[test]
fn an_import_is_built_once_then_cached_and_its_key_covers_the_arguments() {
    let env = TestEnv::new();
    let yml = spec(&format!(
        "      mirror: {MIRROR}/\n      packages: vim\n      size: 3G\n"
    ));
    env.write("t/d.yml", &yml);
    let first = build(&env, "t/d.yml").ok();
    assert!(
        first.stdout.contains("guestfish: 3072 MiB qcow2 disk"),
        "{}",
        first.stdout
    );
    assert_eq!(env.tool_runs("debootstrap"), 1);
    assert_eq!(env.tool_runs("guestfish"), 1);
    let args = env.read("log/debootstrap.log");
    assert!(args.contains("--variant=minbase\n"), "{args}");
    assert!(args.contains(",ca-certificates,vim\n"), "{args}");
    assert!(args.contains("\nbookworm\n"), "{args}");
    assert!(args.contains(&format!("\n{MIRROR}\n")), "{args}");
    let chroot = env.read("log/chroot.log");
    assert!(chroot.contains("systemctl\nenable\n"), "{chroot}");
    assert!(chroot.contains("apt-get\nclean\n"), "{chroot}");
    let script = env.read("log/guestfish.script");
    assert!(script.contains(" qcow2 3221225472\n"), "{script}");
    assert!(env.path("t/out.qcow2").is_file());
    // Nothing of the build is left but the .deb cache.
    assert!(
        env.ls("cache/debootstrap-work").is_empty(),
        "{:?}",
        env.ls("cache/debootstrap-work")
    );
    assert!(env.path("cache/debootstrap-debs").is_dir());

    let again = build(&env, "t/d.yml").ok();
    assert!(again.stdout.contains("(cached)"), "{}", again.stdout);
    assert_eq!(env.tool_runs("debootstrap"), 1);
    assert_eq!(env.tool_runs("guestfish"), 1);

    // The same arguments, spelled differently (trailing slash): the same disk.
    env.write("t/d.yml", &yml.replace(&format!("{MIRROR}/"), MIRROR));
    build(&env, "t/d.yml").ok();
    assert_eq!(env.tool_runs("debootstrap"), 1);
    // Another package list: another disk.
    env.write("t/d.yml", &yml.replace("vim", "vim curl"));
    build(&env, "t/d.yml").ok();
    assert_eq!(env.tool_runs("debootstrap"), 2);
}

#[test]
fn a_failed_import_leaves_no_layer_and_no_work_tree() {
    let mut env = TestEnv::new();
    env.write("t/d.yml", &spec(&format!("      mirror: {MIRROR}\n")));
    env.set(
        "FAKE_DEBOOTSTRAP_FAIL",
        "Couldn't find these debs: nosuchpkg",
    );
    build(&env, "t/d.yml")
        .fails(1, "debootstrap failed")
        .fails(1, "E: Couldn't find these debs: nosuchpkg");
    env.set("FAKE_DEBOOTSTRAP_FAIL", "");
    env.set("FAKE_GUESTFISH_FAIL", "no space left on device");
    build(&env, "t/d.yml")
        .fails(1, "import (debootstrap)")
        .fails(1, "no space left on device");
    env.set("FAKE_GUESTFISH_FAIL", "");
    env.set("FAKE_GUESTFISH_NO_SERIAL", "1");
    build(&env, "t/d.yml").fails(1, "lacks console=ttyS0");
    for dir in ["cache/layers", "cache/debootstrap-work"] {
        assert!(env.ls(dir).is_empty(), "{dir}: {:?}", env.ls(dir));
    }
    assert!(!env.path("t/out.qcow2").exists());
}

#[test]
fn ctrl_c_stops_the_import_and_removes_its_work_tree() {
    let mut env = TestEnv::new();
    env.write("t/d.yml", &spec(&format!("      mirror: {MIRROR}\n")));
    let release = env.path("release");
    env.set("FAKE_DEBOOTSTRAP_WAIT_FOR", release.to_str().unwrap());
    let mut child = env.spawn_build_until_started(&env.path("t/d.yml"), "debootstrap");
    assert_eq!(env.ls("cache/debootstrap-work").len(), 1);
    // SIGINT to virt-maker alone (as a terminal would send it to the whole group, the
    // tool too; here the importer itself must stop it).
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    env.write("release", "");
    assert_eq!(status.code(), Some(130), "{status:?}");
    for dir in ["cache/layers", "cache/debootstrap-work"] {
        assert!(env.ls(dir).is_empty(), "{dir}: {:?}", env.ls(dir));
    }
    assert_eq!(env.tool_runs("guestfish"), 0);
}

#[test]
fn the_importer_is_listed_with_its_schema_and_commands() {
    let env = TestEnv::new();
    let out = env.maker(&["-v", "runners", "importers"]).ok();
    let text = out.stdout;
    let at = text.find("debootstrap\n").expect(&text);
    let section = &text[at..];
    for needle in [
        "suite ",
        "mirror ",
        "packages ",
        "list of strings",
        "size ",
        "a single value sets 'suite'",
        "    import:\n      debootstrap:",
        "commands: debootstrap, chroot, tar, guestfish",
    ] {
        assert!(section.contains(needle), "{needle:?} in\n{section}");
    }
}

#[test]
fn the_shipped_local_template_builds_from_its_yml_installed_or_copied_by_init() {
    // The shipped template uses the host's apt mirror: without one this test cannot run,
    // and says so rather than passing.
    let apt = std::path::Path::new(virt_up::image::debootstrap::HOST_APT_DIR);
    assert!(
        virt_up::image::debootstrap::host_mirror(apt, "bookworm").is_some(),
        "this test needs a bookworm mirror in the host's apt sources ({})",
        apt.display()
    );
    let env = TestEnv::new();
    // The shipped files as installed in /etc/virt-up.
    let init = env
        .command(&["--init"])
        .env("VIRTUP_CONFIG_HOME", env.path("system"))
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    assert!(env.path("system/templates.d/debian-12-local.yml").is_file());
    let out = env.run(&["debian-12-local", "--no-clone"]).ok();
    assert!(out.stderr.contains("debian-12-local.yml"), "{}", out.stderr);
    assert_eq!(env.tool_runs("debootstrap"), 1);
    assert!(env
        .ls("pool")
        .contains(&"TEMPLATE-debian-12-local.qcow2".to_string()));

    // A user's --init copy is resolved next to the user's local.cfg; the import is the
    // same, so it comes from the cache.
    std::fs::remove_file(env.path("system/templates.d/debian-12-local.yml")).unwrap();
    env.run(&["--init", "--force"]).ok();
    let again = env.run(&["debian-12-local", "--no-clone", "--force"]).ok();
    assert!(again.stderr.contains("(cached)"), "{}", again.stderr);
    assert_eq!(env.tool_runs("debootstrap"), 1);
}
