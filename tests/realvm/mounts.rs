//! `--mount`: a host directory shared with a real guest through virtiofs (libvirt runs
//! virtiofsd, as root for qemu:///system), mounted by the identity agent at first boot,
//! still mounted after a stop and a start (the guest's fstab), and left as it is on the
//! host when the instance is deleted.

use crate::world::world;
use std::os::unix::fs::PermissionsExt;

#[test]
fn t7_a_mount_share_is_visible_in_the_guest() {
    let w = world();
    let _cleanup = w.cleanup(&["vut-mnt"]);
    let host = tempfile::Builder::new()
        .prefix("vut-share-")
        .tempdir()
        .unwrap();
    // Readable by the guest's login user: ownership and modes pass through virtiofs.
    std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(host.path().join("from-host.txt"), "written on the host\n").unwrap();
    let spec = format!("{}:/mnt/host", host.path().display());
    w.vu(&["vut-mnt", "--template", "vut-deb", "--mount", &spec])
        .ok();

    let mounted = || w.ssh("vut-mnt", "grep ' /mnt/host ' /proc/mounts");
    assert!(
        mounted().starts_with("virtup0 /mnt/host virtiofs "),
        "{}",
        mounted()
    );
    assert_eq!(
        w.ssh("vut-mnt", "cat /mnt/host/from-host.txt"),
        "written on the host"
    );
    // Root in the guest writes as root on the host (virtiofsd passes the ids through).
    w.ssh(
        "vut-mnt",
        "echo written in the guest | sudo tee /mnt/host/from-guest.txt > /dev/null",
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("from-guest.txt")).unwrap(),
        "written in the guest\n"
    );
    let xml = w.virsh(&["dumpxml", "vut-mnt"]);
    assert!(xml.contains("<access mode='shared'/>"), "{xml}");
    assert!(xml.contains("<target dir='virtup0'/>"), "{xml}");
    let info: serde_json::Value =
        serde_json::from_str(&w.vu(&["vut-mnt", "--info", "--json"]).ok().stdout).unwrap();
    assert_eq!(info["mounts"][0]["guest"], "/mnt/host", "{info}");

    // A later boot mounts it from the guest's /etc/fstab.
    w.vu(&["vut-mnt", "--stop"]).ok();
    w.vu(&["vut-mnt", "--start"]).ok();
    assert!(
        mounted().starts_with("virtup0 /mnt/host virtiofs "),
        "{}",
        mounted()
    );
    assert_eq!(
        w.ssh("vut-mnt", "cat /mnt/host/from-guest.txt"),
        "written in the guest"
    );

    // Deleting the instance leaves the host's directory as it was.
    w.vu(&["vut-mnt", "--delete"]).ok();
    w.assert_gone("vut-mnt");
    assert!(host.path().join("from-host.txt").exists());
    assert!(host.path().join("from-guest.txt").exists());
}
