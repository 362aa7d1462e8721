//! gen-vm-image as users of the original have it: their own architecture files (with keys
//! the original ignores) and the older command line (before `single`/`multiple`).

use crate::harness::{path_str, tool, Gvi};

/// An architecture file written for the original: `output:` and `extra_kwargs:` are keys it
/// ignores (its own test files have them).
const ORIGINAL_STYLE: &str = "owner: the-owner\nimages:\n  image_with_output_path:\n    name: with-output\n    version: 9.4\n    format: qcow2\n    size: 16M\n    output:\n      path: tests/tmp/elsewhere.qcow2\n      format: qcow2\n    extra_kwargs:\n      F: qcow2\n";

fn virtual_size(p: &std::path::Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&tool("qemu-img", &["info", "--output=json", path_str(p)])).unwrap();
    v["virtual-size"].as_u64().unwrap()
}

#[test]
fn keys_the_original_ignores_build_with_a_warning_naming_file_image_and_key() {
    let g = Gvi::new();
    g.write("arch.yml", ORIGINAL_STYLE);
    let run = g.run(&["multiple", "arch.yml"]).ok();
    let out = g.path("generated-images/with-output-9.4.qcow2");
    assert_eq!(virtual_size(&out), 16 << 20);
    let messages = run.doc()["verbose_messages"].to_string();
    for key in ["output", "extra_kwargs"] {
        let warning =
            format!("warning: arch.yml: image 'image_with_output_path': key '{key}' is ignored");
        assert!(messages.contains(&warning), "{warning:?} not in {messages}");
    }
    // The ignored key did not act: nothing was written where `output:` points.
    assert!(!g.path("tests/tmp").exists());
}

#[test]
fn the_older_command_line_builds_the_one_image_into_the_file_it_names() {
    let g = Gvi::new();
    g.write("arch.yml", ORIGINAL_STYLE);
    g.run(&[
        "--architecture-path",
        "arch.yml",
        "--image-output-path",
        "images/base.qcow2",
        "--generated-image-owner",
        "nobody",
    ])
    .ok();
    let out = g.path("images/base.qcow2");
    assert_eq!(virtual_size(&out), 16 << 20);
    use std::os::unix::fs::MetadataExt;
    let nobody = tool("id", &["-u", "nobody"]);
    assert_eq!(
        std::fs::metadata(&out).unwrap().uid().to_string(),
        nobody.trim()
    );
    assert_eq!(g.ls("images"), ["base.qcow2"]);
}

#[test]
fn the_older_command_line_refuses_what_it_cannot_do_and_builds_nothing() {
    let g = Gvi::new();
    g.write("arch.yml", ORIGINAL_STYLE);
    g.run(&["--architecture-path", "arch.yml", "--generate-gocd-config"])
        .fails(2, "--generate-gocd-config not supported");
    g.run(&[
        "--architecture-path",
        "arch.yml",
        "--generated-image-owner",
        "no-such-user-here",
    ])
    .fails(5, "no user 'no-such-user-here'");
    g.write(
        "two.yml",
        "owner: me\nimages:\n  a:\n    name: a\n    size: 1M\n  b:\n    name: b\n    size: 1M\n",
    );
    g.run(&["--architecture-path", "two.yml"])
        .fails(5, "gen-vm-image multiple two.yml --output-directory DIR");
    assert!(!g.path("generated-images").exists());
}
