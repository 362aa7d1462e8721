//! The Debian package (`make deb`) on a real guest: the virt-up it installs, with the
//! configuration it installs, creates an instance that answers over SSH and deletes it.

use crate::world::world;
use std::path::Path;
use std::process::Command;

#[test]
fn d1_the_debian_packages_virt_up_creates_and_deletes_an_instance() {
    let w = world();
    let _cleanup = w.cleanup(&["vut-pkg1"]);
    let root = env!("CARGO_MANIFEST_DIR");
    let made = Command::new(Path::new(root).join("scripts/make-deb.sh"))
        .output()
        .expect("scripts/make-deb.sh");
    assert!(made.status.success(), "make-deb: {made:?}");
    let deb = Path::new(root).join(String::from_utf8(made.stdout).unwrap().trim());
    let tree = w.own_path("deb-root");
    let _ = std::fs::remove_dir_all(&tree);
    let unpacked = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&tree)
        .status()
        .expect("dpkg-deb");
    assert!(unpacked.success(), "dpkg-deb -x {}", deb.display());
    let bin = tree.join("usr/bin/virt-up");
    let etc = tree.join("etc/virt-up");
    let version = w.vu_installed(&bin, &etc, &["--version"]).ok().stdout;
    assert!(version.starts_with("virt-up "), "{version}");
    // The installed system configuration and the world's template (the user's config).
    let templates = w
        .vu_installed(&bin, &etc, &["--show-templates", "-q"])
        .ok()
        .stdout;
    assert!(
        templates.lines().any(|t| t == "debian-12-local") && templates.contains("vut-deb"),
        "{templates}"
    );
    w.vu_installed(&bin, &etc, &["vut-pkg1", "--template", "vut-deb"])
        .ok();
    let host = w
        .vu_installed(
            &bin,
            &etc,
            &["vut-pkg1", "--login", "--command", "hostname"],
        )
        .ok()
        .stdout;
    assert_eq!(host.trim(), "vut-pkg1");
    w.vu_installed(&bin, &etc, &["vut-pkg1", "--delete"]).ok();
    w.assert_gone("vut-pkg1");
}
