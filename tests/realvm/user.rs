//! virt-up run by a regular user in group `libvirt` on qemu:///system (the Debian default
//! for a desktop user), who cannot write the pool directory: the template is built in the
//! user's cache and uploaded, disks and seeds are volumes made through libvirt, and every
//! command of a VM's life works. The user is made here (as a desktop user would be, in
//! group libvirt); libvirtd's socket is opened to the group by `make host`.

use crate::run::Run;
use crate::world::world;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) const USER: &str = "vut-user";
const POOL: &str = "/var/lib/libvirt/images";

/// The user's home, the user made (in group libvirt) if it is not there.
pub(crate) fn regular_user() -> PathBuf {
    let known = Command::new("id").arg(USER).output().unwrap();
    if !known.status.success() {
        let made = Command::new("useradd")
            .args([
                "--create-home",
                "--groups",
                "libvirt",
                "--shell",
                "/bin/sh",
                USER,
            ])
            .output()
            .unwrap();
        assert!(made.status.success(), "useradd: {}", Run::from(made).stderr);
    }
    PathBuf::from(format!("/home/{USER}"))
}

/// `program args` run as the user, in a login-like environment of the user's own (no
/// LIBVIRT_DEFAULT_URI: the user's libvirt.conf says which daemon).
pub(crate) fn as_user(home: &Path, program: &Path, args: &[&str]) -> Run {
    as_user_with(home, &[], program, args)
}

/// [`as_user`] with more of the environment (`NAME=value`).
pub(crate) fn as_user_with(home: &Path, env: &[String], program: &Path, args: &[&str]) -> Run {
    eprintln!(
        "realvm: ({USER}) {} {} {}",
        env.join(" "),
        program.display(),
        args.join(" ")
    );
    let out = Command::new("runuser")
        .args(["-u", USER, "--", "env", "-i"])
        .arg(format!("HOME={}", home.display()))
        .arg(format!("USER={USER}"))
        .arg(format!("PATH={}", std::env::var("PATH").unwrap()))
        .arg(format!("XDG_RUNTIME_DIR={}", home.join("run").display()))
        .args(env)
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    Run::from(out)
}

/// The binary under test, where the user can run it (the checkout may be in root's home).
pub(crate) fn user_binary(home: &Path) -> PathBuf {
    let bin = home.join("bin/virt-up");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_virt-up"), &bin).unwrap();
    chown(home);
    bin
}

pub(crate) fn chown(home: &Path) {
    let out = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(home)
        .output()
        .unwrap();
    assert!(out.status.success(), "chown: {}", Run::from(out).stderr);
}

/// The user's own configuration: a template of the world's base image (built again, as
/// the user), and the shipped playbooks.
pub(crate) fn configure(home: &Path, index: &str) {
    let config = home.join(".config/virt-up");
    std::fs::create_dir_all(config.join("templates.d")).unwrap();
    std::fs::create_dir_all(home.join("run")).unwrap();
    // How a desktop user points virsh (and so virt-up) at the system daemon: libvirt's own
    // client configuration, no environment variable.
    std::fs::create_dir_all(home.join(".config/libvirt")).unwrap();
    std::fs::write(
        home.join(".config/libvirt/libvirt.conf"),
        "uri_default = \"qemu:///system\"\n",
    )
    .unwrap();
    std::fs::write(
        config.join("templates.d/user.cfg"),
        format!(
            // These machines' KVM is unusable (a kvm guest hangs after its boot loader):
            // TCG, as the world's own settings say.
            "[vut-userdeb]\nos-version = debian-12-local\nvirt-builder-source = file://{index}\n\
             virt-type = qemu\nmemory = 1024\nvcpus = 2\n"
        ),
    )
    .unwrap();
    chown(home);
}

#[test]
fn u1_a_regular_user_in_group_libvirt_runs_every_command() {
    let w = world();
    let home = regular_user();
    let vu = user_binary(&home);
    let run = |args: &[&str]| as_user(&home, &vu, args);
    // Leftovers of an earlier run of this test (the user and its home stay between runs).
    run(&["vut-user1", "--delete"]);
    run(&["vut-userdeb", "--delete", "--all"]);
    // Then a user who has not configured virt-up yet (--init writes the files afresh).
    let _ = std::fs::remove_dir_all(home.join(".config/virt-up"));
    configure(&home, w.index());

    // No local file access can pass for libvirt's: the pool is not the user's to write.
    let writable = Command::new("runuser")
        .args(["-u", USER, "--", "test", "-w", POOL])
        .status()
        .unwrap();
    assert!(!writable.success(), "{USER} can write {POOL}");

    run(&["--init"]).ok();
    assert!(home.join(".config/virt-up/settings.cfg").exists());
    run(&["vut-user1", "--template", "vut-userdeb"]).ok();
    assert_eq!(
        run(&["vut-user1", "--login", "--command", "id -un; hostname"])
            .ok()
            .stdout,
        "virt\nvut-user1\n"
    );
    let listed = run(&["--list", "--json"]).ok().stdout;
    let rows: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(rows[0]["name"], "vut-user1", "{listed}");
    assert_eq!(rows[0]["state"], "running", "{listed}");
    run(&["vut-user1", "--playbook", "hello"]).ok();
    let info = run(&["vut-user1", "--info", "--json"]).ok().stdout;
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["host"], "qemu:///system",
        "uri_default of libvirt.conf: {info}"
    );
    // The disks are libvirt's (root's, or the QEMU user's while the guest runs), in the
    // pool the user cannot write: not files the user made.
    let disk = Path::new(POOL).join("vut-user1.qcow2");
    use std::os::unix::fs::MetadataExt;
    let uid = Command::new("id").args(["-u", USER]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&uid.stdout).trim().parse().unwrap();
    assert_ne!(
        std::fs::metadata(&disk).unwrap().uid(),
        uid,
        "{} is the user's",
        disk.display()
    );

    run(&["vut-user1", "--delete"]).ok();
    assert!(!disk.exists(), "{} is left", disk.display());
    assert!(!w.virsh(&["list", "--all", "--name"]).contains("vut-user1"));
    run(&["vut-userdeb", "--delete", "--all"]).ok();
    assert!(!Path::new(POOL).join("TEMPLATE-vut-userdeb.qcow2").exists());
    maker_exports_into_the_pool(w, &home);
}

/// virt-maker's `libvirt` exporter, run by the same user: the image goes into the pool the
/// user cannot write, through libvirt's storage API.
fn maker_exports_into_the_pool(w: &crate::world::World, home: &Path) {
    let dir = home.join("maker");
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("base.qcow2");
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&base)
        .arg("64M")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", Run::from(made).stderr);
    std::fs::write(
        dir.join("pool.yml"),
        "spec:\n  import:\n    download:\n      url: base.qcow2\n  export:\n    libvirt:\n      name: vut-maker.qcow2\n",
    )
    .unwrap();
    let maker = home.join("bin/virt-maker");
    std::fs::copy(env!("CARGO_BIN_EXE_virt-maker"), &maker).unwrap();
    chown(home);
    let volume = Path::new(POOL).join("vut-maker.qcow2");
    let _ = w.virsh(&["vol-delete", "--pool", "default", "vut-maker.qcow2"]);
    let yml = dir.join("pool.yml").display().to_string();
    as_user(home, &maker, &["build", "-f", &yml]).ok();
    let vols = w.virsh(&["vol-list", "default"]);
    assert!(vols.contains("vut-maker.qcow2"), "{vols}");
    assert!(volume.exists());
    w.virsh(&["vol-delete", "--pool", "default", "vut-maker.qcow2"]);
}
