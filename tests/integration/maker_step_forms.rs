//! The original virt-maker's step forms, built with the fake tools: each reaches
//! virt-customize (or qemu) as the right arguments.

use crate::harness::{Run, TestEnv};
use std::path::Path;

const FORMS: &str = "spec:
  import:
    virt-builder: debian-12
  steps:
    - selinux: permissive
    - selinux:
    - grub_append: ['console=ttyS0,115200', quiet]
    - ssh_keygen: alice
    - ssh_keygen:
    - ssh_hostkeys:
    - inject_qemu_ga: osinfo-db
    - rootpass: random
    - rootpass: 'password:s3cret'
    - copy: {dest: /etc/motd, content: motd.txt}
    - copy: {dest: /etc/issue, content: 'hello', chmod: '0600', chown: 'alice:alice', simple: true}
    - boot: {cpus: 2, memory: 512, display: none, opts: [[-device, virtio-rng-pci]]}
";

/// A fake `tool` in bin2/ that logs its arguments to log/<log>.log and succeeds (a fake
/// qemu-system-x86_64 "powers off" at once).
fn fake(env: &TestEnv, tool: &str, log: &str) {
    let p = env.path(&format!("bin2/{tool}"));
    env.write(
        &format!("bin2/{tool}"),
        &format!("#!/bin/sh\n{{ for a in \"$@\"; do printf '%s\\n' \"$a\"; done; echo '--'; }} >> \"$FAKE_LOG/{log}.log\"\n"),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn fake_qemu(env: &TestEnv) {
    fake(env, "qemu-system-x86_64", "qemu");
}

fn build(env: &TestEnv) -> Run {
    let file = env.path("t/forms.yml");
    let mut cmd = env.command_of(
        env!("CARGO_BIN_EXE_virt-maker"),
        &["build", "-f", file.to_str().unwrap()],
    );
    let fake_bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin");
    cmd.env(
        "PATH",
        format!(
            "{}:{}:{}",
            env.path("bin2").display(),
            fake_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    Run::from(cmd.output().unwrap())
}

/// virt-customize's runs, each its argument list.
fn runs(env: &TestEnv) -> Vec<Vec<String>> {
    env.read("log/virt-customize.log")
        .split("--\n")
        .filter(|r| !r.is_empty())
        .map(|r| r.lines().map(str::to_string).collect())
        .collect()
}

fn has(run: &[String], pair: &[&str]) -> bool {
    run.windows(pair.len()).any(|w| w == pair)
}

#[test]
fn the_originals_step_forms_reach_the_tools_as_it_meant_them() {
    let env = TestEnv::new();
    fake_qemu(&env);
    env.write("t/forms.yml", FORMS);
    env.write("t/motd.txt", "motd from a host file\n");
    let out = build(&env).ok();
    assert!(out.stdout.contains("[ BOOT ]"), "{}", out.stdout);
    // Consecutive virt-customize steps are one run, each ended where virt-customize
    // would reorder: by a relabel or a root password (it does those last), then boot:
    // steps 1-2, 3-8, 9, 10-11.
    let r = runs(&env);
    assert_eq!(r.len(), 4, "{r:?}");
    let uploads = env.read("log/virt-customize.uploads");
    let scripts = env.read("log/virt-customize.scripts");
    // selinux: a mode is written to /etc/selinux/config; no value relabels.
    assert!(scripts.contains("SELINUX=$mode"), "{scripts}");
    assert!(uploads.contains("permissive"), "{uploads}");
    assert_eq!(
        r[0].last().map(String::as_str),
        Some("--selinux-relabel"),
        "{:?}",
        r[0]
    );
    // grub_append: the list, one line of arguments.
    assert!(uploads.contains("console=ttyS0,115200 quiet"), "{uploads}");
    // ssh_keygen: a user's key pair (root by default); host keys are their own step.
    assert!(
        scripts.contains("ssh-keygen -q -t rsa -b 2048"),
        "{scripts}"
    );
    assert!(
        uploads.contains("alice") && uploads.contains("root"),
        "{uploads}"
    );
    assert!(
        has(&r[1], &["--run-command", "ssh-keygen -A"]),
        "{:?}",
        r[1]
    );
    assert!(has(&r[1], &["--inject-qemu-ga", "osinfo-db"]), "{:?}", r[1]);
    // rootpass: selectors as virt-customize takes them; a password only through a file.
    assert!(
        r[1].ends_with(&["--root-password".to_string(), "random".to_string()]),
        "{:?}",
        r[1]
    );
    let pw = r[2].iter().position(|a| a == "--root-password").unwrap();
    assert!(r[2][pw + 1].starts_with("file:"), "{:?}", r[2]);
    assert!(!env.read("log/virt-customize.log").contains("s3cret"));
    // copy: a host path as content is that file; simple sets permissions at first boot.
    assert!(uploads.contains("motd from a host file"), "{uploads}");
    assert!(r[3].iter().any(|a| a.ends_with(":/etc/motd")), "{:?}", r[3]);
    assert!(r[3].contains(&"--firstboot".to_string()), "{:?}", r[3]);
    assert!(!r[3].contains(&"--chmod".to_string()), "{:?}", r[3]);
    assert!(
        uploads.contains("0600\nalice:alice\n/etc/issue\n"),
        "{uploads}"
    );
    // boot: the original's options.
    let qemu = env.read("log/qemu.log");
    for want in [
        "-smp\n2\n",
        "-m\n512\n",
        "-display\nnone\n",
        "-device\nvirtio-rng-pci\n",
    ] {
        assert!(qemu.contains(want), "{want}: {qemu}");
    }
}

#[test]
fn a_bare_root_password_is_refused_before_anything_runs() {
    let env = TestEnv::new();
    env.write(
        "t/forms.yml",
        "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - rootpass: hunter2\n",
    );
    build(&env).fails(2, "forms.yml: step 1 (rootpass): key 'password'");
    assert_eq!(env.tool_runs("virt-builder"), 0);
}

#[test]
fn every_runner_takes_pre_and_post_scripts_run_through_their_shebang() {
    let env = TestEnv::new();
    env.write(
        "t/forms.yml",
        "spec:
  import:
    virt-builder:
      image: debian-12
      pre_script: |
        #!/bin/sh -e
        echo \"import-pre ${IMAGE##*/}\" >> \"$FAKE_LOG/hooks\"
  steps:
    - hostname:
        name: h1
        pre_script: |
          echo \"step-pre $(ls \"$FAKE_LOG\" | grep -c virt-customize.log)\" >> \"$FAKE_LOG/hooks\"
        post_script: |
          #!/usr/bin/env bash
          echo \"step-post $BASH_VERSION\" >> \"$FAKE_LOG/hooks\"
",
    );
    build(&env).ok();
    let hooks = env.read("log/hooks");
    let lines: Vec<&str> = hooks.lines().collect();
    assert_eq!(lines.len(), 3, "{hooks}");
    assert!(
        lines[0].starts_with("import-pre .") && lines[0].ends_with(".tmp"),
        "{hooks}"
    );
    // Before the step's virt-customize run, then after it, by bash.
    assert_eq!(lines[1], "step-pre 0", "{hooks}");
    assert!(lines[2].len() > "step-post ".len(), "{hooks}");
    // A failing hook fails its step, named.
    env.write(
        "t/forms.yml",
        "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - run: {script: x, post_script: 'exit 3'}\n",
    );
    build(&env).fails(1, "step 1 (run)").fails(1, "post_script");
}

#[test]
fn the_originals_download_resize_mapping_goes_through_virt_resize() {
    let env = TestEnv::new();
    fake(&env, "virt-resize", "virt-resize");
    std::fs::create_dir_all(env.path("t")).unwrap();
    let img = env.path("t/base.qcow2");
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", img.to_str().unwrap(), "32M"])
        .status()
        .unwrap();
    assert!(ok.success());
    env.write(
        "t/forms.yml",
        "spec:\n  import:\n    download:\n      url: base.qcow2\n      resize: {size: 64M, expand: /dev/sda1, /dev/sda2: +10M}\n",
    );
    build(&env).ok();
    let log = env.read("log/virt-resize.log");
    let args: Vec<&str> = log.lines().collect();
    assert_eq!(
        &args[..4],
        ["--format", "qcow2", "--output-format", "qcow2"],
        "{log}"
    );
    assert_eq!(
        &args[4..6],
        ["--expand=/dev/sda1", "--resize=/dev/sda2=+10M"],
        "{log}"
    );
    // From the converted image to a new 64M disk, which becomes the layer.
    assert!(
        args[6].ends_with(".tmp.src") && args[7].ends_with(".tmp"),
        "{log}"
    );
    let layers = env.ls("cache/layers");
    assert!(layers.iter().all(|n| !n.ends_with(".src")), "{layers:?}");
    let layer = layers.iter().find(|n| n.ends_with(".qcow2")).unwrap();
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(env.path(&format!("cache/layers/{layer}")))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["virtual-size"], 64 << 20);
}

#[test]
fn boot_with_serial_shows_the_guests_console_on_virt_makers_output() {
    let env = TestEnv::new();
    // A fake qemu whose "guest" writes to its serial console (qemu's stdout) and powers off.
    let p = env.path("bin2/qemu-system-x86_64");
    env.write(
        "bin2/qemu-system-x86_64",
        "#!/bin/sh\necho 'guest console: login prompt'\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let template = |serial: bool| {
        format!("spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - boot: {{serial: {serial}}}\n")
    };
    env.write("t/forms.yml", &template(true));
    let out = build(&env).ok();
    assert!(
        out.stdout.contains("guest console: login prompt"),
        "{}",
        out.stdout
    );
    // Without serial the console is not shown (qemu's -serial null).
    env.write("t/forms.yml", &template(false));
    let out = build(&env).ok();
    assert!(!out.stdout.contains("guest console"), "{}", out.stdout);
}
