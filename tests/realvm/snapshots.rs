//! Disk snapshots of one real instance: taken while it runs (stopped for it, started
//! again), a file written afterwards is gone after a revert, listed, deleted with it.

use crate::world::world;

#[test]
fn t6_snapshot_revert_list_and_delete() {
    let w = world();
    let _cleanup = w.cleanup(&["vut-snap"]);
    w.vu(&["vut-snap", "--template", "vut-deb"]).ok();
    w.ssh("vut-snap", "echo kept > before && sync");
    let run = w.vu(&["vut-snap", "--snapshot", "s1"]).ok();
    assert!(run.stderr.contains("stopping it"), "{}", run.stderr);
    w.ssh("vut-snap", "echo lost > after && sync");
    let run = w.vu(&["vut-snap", "--revert", "s1"]).ok();
    assert!(
        run.stderr.contains("reverted to snapshot s1"),
        "{}",
        run.stderr
    );
    assert_eq!(
        w.ssh("vut-snap", "cat before; ls after 2>&1 || true")
            .lines()
            .next(),
        Some("kept")
    );
    assert!(!w.ssh("vut-snap", "ls").contains("after"));
    let listed: serde_json::Value =
        serde_json::from_str(&w.vu(&["vut-snap", "--snapshots", "--json"]).ok().stdout).unwrap();
    assert_eq!(listed[0]["name"], "s1", "{listed}");
    assert!(listed[0]["created"].as_str().unwrap().ends_with('Z'));
    w.vu(&["vut-snap", "--delete"]).ok();
    w.assert_gone("vut-snap");
}

/// `--reset`: a pristine disk (what was written before is gone, and so are the snapshots
/// of the old disk) with the same identity: host name, machine-id, MAC, address, and the
/// host key pinned at creation (the reset's own wait checks it, and so does every login).
/// The instance was made warm, so it is reset warm. Create's `--json` carries the address.
#[test]
fn t8_reset_gives_a_pristine_disk_and_the_same_identity() {
    let w = world();
    let _cleanup = w.cleanup(&["vut-reset"]);
    let made = w.vu(&["vut-reset", "--template", "vut-deb", "--json"]).ok();
    let made: serde_json::Value = serde_json::from_str(&made.stdout).unwrap();
    let info = |w: &crate::world::World| -> serde_json::Value {
        serde_json::from_str(&w.vu(&["vut-reset", "--info", "--json"]).ok().stdout).unwrap()
    };
    let before = info(w);
    assert_eq!(
        made[0]["address"], before["address"],
        "create --json: {made}"
    );
    assert!(before["address"].is_string(), "{before}");
    let machine_id = w.ssh("vut-reset", "cat /etc/machine-id");
    w.ssh("vut-reset", "echo old > written && sync");
    w.vu(&["vut-reset", "--snapshot", "s1"]).ok();
    assert_eq!(info(w)["snapshots"][0]["name"], "s1");

    let run = w.vu(&["vut-reset", "--reset", "--json", "--debug"]).ok();
    assert!(run.stderr.contains("is reset and ready"), "{}", run.stderr);
    // Made warm, so reset warm: restored from the template's saved memory, not booted.
    assert!(
        run.stderr.contains("vut-reset: phase restore took"),
        "{}",
        run.stderr
    );
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows[0]["address"], before["address"], "{rows}");
    assert_eq!(
        w.ssh("vut-reset", "ls written 2>/dev/null || echo pristine"),
        "pristine"
    );
    assert_eq!(w.ssh("vut-reset", "hostname"), "vut-reset");
    assert_eq!(w.ssh("vut-reset", "cat /etc/machine-id"), machine_id);
    let after = info(w);
    assert_eq!(after["mac"], before["mac"]);
    assert_eq!(after["address"], before["address"]);
    assert_eq!(after["snapshots"], serde_json::json!([]), "{after}");
    w.vu(&["vut-reset", "--delete"]).ok();
    w.assert_gone("vut-reset");
}
