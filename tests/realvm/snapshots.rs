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
