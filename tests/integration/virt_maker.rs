//! virt-maker against fake virt-builder/virt-customize and the real qemu-img: the step
//! cache's behaviour as a user sees it (what runs, what is cached, what is left behind).
//! T3's three steps are all virt-customize operations: one virt-customize run, one layer.

use crate::harness::{Bin, TestEnv};

const T3: &str = "params:\n  name: demo\nspec:\n  import:\n    virt-builder:\n      image: debian-12\n  steps:\n    - run:\n        file: setup.sh\n    - hostname: '{{ name }}'\n    - copy: {dest: /etc/motd, content: 'built by {{ name }}'}\n  export:\n    qcow2:\n      path: out/{{ name }}.qcow2\n      create_dir: true\n";

fn env3() -> TestEnv {
    let env = TestEnv::new();
    env.write("t/t.yml", T3);
    env.write("t/setup.sh", "echo setup-one\n");
    env
}

fn build(env: &TestEnv, extra: &[&str]) -> crate::harness::Run {
    let file = env.path("t/t.yml");
    let mut args = vec!["build", "-f", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    env.maker(&args)
}

#[test]
fn build_then_rebuild_unchanged_runs_nothing() {
    let env = env3();
    let first = build(&env, &[]).ok();
    assert_eq!(env.tool_runs("virt-builder"), 1);
    assert_eq!(env.tool_runs("virt-customize"), 1);
    assert!(first.stdout.contains("[ FILE ] "), "{}", first.stdout);
    assert!(first.stdout.contains("[HOSTNA] "), "{}", first.stdout);
    assert!(env.path("t/out/demo.qcow2").is_file());
    let again = build(&env, &[]).ok();
    assert_eq!(env.tool_runs("virt-builder"), 1);
    assert_eq!(env.tool_runs("virt-customize"), 1);
    assert_eq!(
        again.stdout.matches("(cached)").count(),
        5,
        "{}",
        again.stdout
    );
}

#[test]
fn changing_a_step_of_a_run_reruns_the_run_from_the_layer_before_it() {
    let env = env3();
    build(&env, &[]).ok();
    env.write("t/t.yml", &T3.replace("built by", "made by"));
    let out = build(&env, &[]).ok();
    // Steps 1 and 2 have no layers of their own: the run starts again on the import.
    assert_eq!(env.tool_runs("virt-customize"), 2);
    assert_eq!(out.stdout.matches("(cached)").count(), 1, "{}", out.stdout);
    assert!(out.stdout.contains("[IMPORT] "), "{}", out.stdout);
    assert!(env
        .read("log/virt-customize.uploads")
        .ends_with("made by demo"));
}

/// Steps 1-2 are one virt-customize run, sysprep (another tool) its own, steps 4-5 a
/// second virt-customize run.
const SPLIT: &str = "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - run: {file: setup.sh}\n    - hostname: h1\n    - sysprep: {operations: tmp-files}\n    - copy: {dest: /etc/motd, content: one}\n    - hostname: h2\n";

/// virt-customize's runs so far, each its arguments.
fn customize_runs(env: &TestEnv) -> Vec<Vec<String>> {
    env.read("log/virt-customize.log")
        .split("--\n")
        .filter(|r| !r.is_empty())
        .map(|r| r.lines().map(str::to_string).collect())
        .collect()
}

#[test]
fn consecutive_customize_steps_are_one_virt_customize_run_cached_as_one_layer() {
    let env = TestEnv::new();
    env.write("t/t.yml", SPLIT);
    env.write("t/setup.sh", "echo setup\n");
    let first = build(&env, &[]).ok();
    let runs = customize_runs(&env);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(env.tool_runs("virt-sysprep"), 1);
    // Each run: the steps' operations in step order, on one layer.
    let ops = |r: &[String]| -> Vec<String> {
        r.iter().filter(|a| a.starts_with("--")).cloned().collect()
    };
    assert_eq!(ops(&runs[0]), ["--format", "--run", "--hostname"]);
    assert_eq!(runs[0].last().unwrap(), "h1");
    assert_eq!(ops(&runs[1]), ["--format", "--upload", "--hostname"]);
    assert_eq!(runs[1].last().unwrap(), "h2");
    for want in [
        "steps 1..2: one virt-customize run",
        "steps 4..5: one virt-customize run",
    ] {
        assert!(first.stdout.contains(want), "{want}: {}", first.stdout);
    }
    // The import, each run's layer, sysprep's: 4 layers for 6 runners.
    let usage = env.maker(&["cache", "usage", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&usage.stdout).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 4, "{}", usage.stdout);
    // Unchanged: every runner is cached, nothing runs.
    let again = build(&env, &[]).ok();
    assert_eq!(
        again.stdout.matches("(cached)").count(),
        6,
        "{}",
        again.stdout
    );
    assert_eq!(env.tool_runs("virt-customize"), 2);
    assert_eq!(env.tool_runs("virt-sysprep"), 1);
    // A change after sysprep reruns only the run after it, on sysprep's layer.
    env.write("t/t.yml", &SPLIT.replace("content: one", "content: two"));
    let out = build(&env, &[]).ok();
    assert_eq!(out.stdout.matches("(cached)").count(), 4, "{}", out.stdout);
    let runs = customize_runs(&env);
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(ops(&runs[2]), ["--format", "--upload", "--hostname"]);
    assert_eq!(env.tool_runs("virt-sysprep"), 1);
    assert!(env.read("log/virt-customize.uploads").ends_with("two"));
}

#[test]
fn changing_a_script_file_invalidates_its_step_and_later_ones() {
    let env = env3();
    build(&env, &[]).ok();
    env.write("t/setup.sh", "echo setup-two\n");
    build(&env, &[]).ok();
    assert_eq!(env.tool_runs("virt-builder"), 1);
    assert_eq!(env.tool_runs("virt-customize"), 2);
    assert!(env.read("log/virt-customize.scripts").contains("setup-two"));
}

#[test]
fn params_override_and_shared_prefixes_share_layers() {
    let env = env3();
    build(&env, &[]).ok();
    // -p changes step 2 onwards; the import is shared (step 1 is in one run with steps 2
    // and 3: it has no layer of its own).
    build(&env, &["-p", "name=other"]).ok();
    assert_eq!(env.tool_runs("virt-builder"), 1);
    assert_eq!(env.tool_runs("virt-customize"), 2);
    assert!(env.path("t/out/other.qcow2").is_file());
    let usage = env.maker(&["cache", "usage", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&usage.stdout).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 3);
}

#[test]
fn force_rebuilds_and_force_export_reexports() {
    let env = env3();
    build(&env, &[]).ok();
    build(&env, &["-X"]).ok();
    assert_eq!(env.tool_runs("virt-customize"), 1);
    build(&env, &["-F"]).ok();
    assert_eq!(env.tool_runs("virt-builder"), 2);
    assert_eq!(env.tool_runs("virt-customize"), 2);
}

#[test]
fn an_invalid_template_is_an_error_naming_file_step_key_and_builds_nothing() {
    let env = TestEnv::new();
    env.write(
        "t/bad.yml",
        "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - run: echo\n    - hostnam: x\n",
    );
    let file = env.path("t/bad.yml");
    let out = env.maker(&["build", "-f", file.to_str().unwrap()]);
    out.fails(2, "bad.yml: step 2: key 'hostnam'")
        .fails(2, "did you mean 'hostname'");
    assert_eq!(env.tool_runs("virt-builder"), 0);
    env.write(
        "t/bad2.yml",
        "spec:\n  import:\n    virt-builder: {image: d, sise: 3G}\n",
    );
    let file = env.path("t/bad2.yml");
    env.maker(&["build", "-f", file.to_str().unwrap()])
        .fails(2, "bad2.yml: import (virt-builder): key 'sise'");
}

#[test]
fn a_failed_step_leaves_no_layer_and_the_rebuild_resumes_there() {
    let mut env = env3();
    env.set("FAKE_VIRT_CUSTOMIZE_FAIL", "no space left");
    // The run of steps 1..3 failed: its steps are named, with virt-customize's message.
    build(&env, &[])
        .fails(
            1,
            "t.yml: one of steps 1..3 (run, hostname, copy): virt-customize failed",
        )
        .fails(1, "no space left");
    let env = {
        let mut e = env;
        e.set("FAKE_VIRT_CUSTOMIZE_FAIL", "");
        e
    };
    let usage = env.maker(&["cache", "usage", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&usage.stdout).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 1, "{}", usage.stdout);
    build(&env, &[]).ok();
    assert_eq!(env.tool_runs("virt-builder"), 1);
    assert_eq!(env.tool_runs("virt-customize"), 2);
    let leftovers: Vec<String> = env
        .ls("cache/layers")
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_build_killed_mid_step_leaves_nothing_complete_and_the_rebuild_is_correct() {
    let mut env = env3();
    env.set(
        "FAKE_VIRT_CUSTOMIZE_WAIT_FOR",
        env.path("release").to_str().unwrap(),
    );
    let mut child = env.spawn_build_until_started(&env.path("t/t.yml"), "virt-customize");
    child.kill().unwrap();
    child.wait().unwrap();
    env.write("release", "");
    env.set("FAKE_VIRT_CUSTOMIZE_WAIT_FOR", "");
    // Only the import is complete; the half-built step 1 is not a layer.
    let usage = env.maker(&["cache", "usage", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&usage.stdout).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 1, "{}", usage.stdout);
    let out = build(&env, &[]).ok();
    assert!(out.stdout.contains("(cached)"), "{}", out.stdout);
    assert!(env.path("t/out/demo.qcow2").is_file());
    env.maker(&["cache", "clean"]).ok();
    assert!(
        env.ls("cache/layers").is_empty(),
        "{:?}",
        env.ls("cache/layers")
    );
}

#[test]
fn concurrent_builds_of_one_chain_build_each_layer_once() {
    let env = env3();
    let file = env.path("t/t.yml");
    let spawn = || {
        env.command_for(Bin::VirtMaker, &["build", "-f", file.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    assert_eq!(env.tool_runs("virt-builder"), 1);
    assert_eq!(env.tool_runs("virt-customize"), 1);
}

#[test]
fn cache_usage_gc_and_clean() {
    let env = env3();
    build(&env, &[]).ok();
    let usage = env.maker(&["cache", "usage", "-H"]).ok();
    assert!(
        usage.stdout.contains("total (2 layers)"),
        "{}",
        usage.stdout
    );
    let dry = env
        .maker(&["cache", "gc", "--max-size", "0", "--dry-run"])
        .ok();
    assert!(
        dry.stdout.contains("would remove 2 layers"),
        "{}",
        dry.stdout
    );
    assert_eq!(env.ls("cache/layers").len(), 4);
    env.maker(&["cache", "gc"]).fails(2, "--max-size");
    env.maker(&["cache", "gc", "--max-age", "30d"]).ok();
    assert_eq!(env.ls("cache/layers").len(), 4);
    env.maker(&["cache", "clean"]).ok();
    assert!(env.ls("cache/layers").is_empty());
    // The export is a copy: it survives the cache.
    assert!(env.path("t/out/demo.qcow2").is_file());
}

#[test]
fn runners_are_listed_with_schemas() {
    let env = TestEnv::new();
    let out = env.maker(&["runners", "steps"]).ok();
    for name in [
        "run",
        "firstboot",
        "install",
        "grub_append",
        "virtcustomize",
    ] {
        assert!(out.stdout.contains(name), "{}", out.stdout);
    }
    let out = env.maker(&["-v", "runners", "exporters"]).ok();
    assert!(out.stdout.contains("compress"), "{}", out.stdout);
    assert!(out.stdout.contains("commands: qemu-img"), "{}", out.stdout);
    env.maker(&["-V"]).ok();
}

/// `tool` in wrap/ logs its arguments to log/<tool>.args, then runs the real one (wrap/
/// taken off PATH).
fn wrap_tool(env: &mut TestEnv, tool: &str) {
    let dir = env.path("wrap");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$FAKE_LOG/{tool}.args\"\nPATH=${{PATH#*:}} exec {tool} \"$@\"\n"
    );
    env.write(&format!("wrap/{tool}"), &script);
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(tool);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn export_compression_writes_path_as_named_at_the_originals_default_level() {
    let mut env = TestEnv::new();
    for tool in ["xz", "lz4", "gzip", "zstd"] {
        wrap_tool(&mut env, tool);
    }
    let wrap = env.path("wrap");
    env.prepend_path(&wrap);
    // (runner, path, compress, level, the file's first bytes)
    let cases: [(&str, &str, &str, &str, &[u8]); 5] = [
        ("raw", "r.img", "gzip", "", &[0x1f, 0x8b]),
        (
            "qcow2",
            "out/c.qcow2.lz",
            "lz4",
            "",
            &[0x04, 0x22, 0x4d, 0x18],
        ),
        ("qcow2", "c.qcow2.xz", "xz", "", b"\xfd7zXZ\0"),
        ("qcow2", "l9/c.qcow2", "xz", "level: 9", b"\xfd7zXZ\0"),
        (
            "raw",
            "z.img.zst",
            "zstd",
            "level: 19",
            &[0x28, 0xb5, 0x2f, 0xfd],
        ),
    ];
    for (runner, path, compress, level, magic) in cases {
        env.write(
            "t/c.yml",
            &format!("spec:\n  import:\n    virt-builder: debian-12\n  export:\n    {runner}:\n      path: {path}\n      create_dir: true\n      compress: {compress}\n      {level}\n"),
        );
        let file = env.path("t/c.yml");
        let out = env.maker(&["build", "-f", file.to_str().unwrap()]).ok();
        // As the original: the output is `path` itself, no suffix added or replaced.
        let written = env.path(&format!("t/{path}"));
        assert!(out.stdout.contains(path), "{}", out.stdout);
        let data = std::fs::read(&written).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(data.starts_with(magic), "{path}: {:x?}", &data[..8]);
        let dir = written.parent().unwrap();
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let stem = written.file_name().unwrap().to_str().unwrap();
        assert!(
            !names.iter().any(|n| n.starts_with(stem) && n != stem),
            "{path}: {names:?}"
        );
        let args = env.read(&format!("log/{compress}.args"));
        let want = if level.is_empty() {
            "-1 ".to_string()
        } else {
            format!("-{} ", level.trim_start_matches("level: "))
        };
        assert!(
            args.lines().last().unwrap_or("").starts_with(&want),
            "{compress}: {args}"
        );
    }
    // gzip's own record of its level: XFL 4 is "fastest" (-1); 0 would be the default -6.
    let gz = std::fs::read(env.path("t/r.img")).unwrap();
    assert_eq!(gz[8], 4, "{:x?}", &gz[..10]);
}

#[test]
fn a_compression_level_out_of_range_is_a_template_error() {
    let env = TestEnv::new();
    env.write(
        "t/c.yml",
        "spec:\n  import:\n    virt-builder: debian-12\n  export:\n    qcow2: {path: c.qcow2, compress: xz, level: 10}\n",
    );
    let file = env.path("t/c.yml");
    let out = env
        .maker(&["build", "-f", file.to_str().unwrap()])
        .fails(2, "'level' must be 1 to 9, not 10");
    assert!(out.stderr.contains("c.yml"), "{}", out.stderr);
    assert_eq!(env.tool_runs("virt-builder"), 0);
}

#[test]
fn virt_up_builds_a_customized_template_through_the_shared_cache() {
    let env = env3();
    env.write(
        "config/templates.d/cust.cfg",
        "[cust]\ncustomize = ../../t/t.yml\n",
    );
    // virt-maker first: virt-up then finds every layer in the cache.
    build(&env, &[]).ok();
    assert_eq!(env.tool_runs("virt-customize"), 1);
    let out = env.run(&["cust", "--no-clone"]).ok();
    assert!(out.stderr.contains("(cached)"), "{}", out.stderr);
    assert_eq!(env.tool_runs("virt-builder"), 1);
    // Only virt-up's own customization ran on the copied disk.
    assert_eq!(env.tool_runs("virt-customize"), 2);
    let log = env.read("log/virt-customize.log");
    assert!(
        log.contains("/etc/systemd/system/virt-up-identity.service"),
        "{log}"
    );
    assert!(
        env.ls("pool").iter().any(|n| n == "TEMPLATE-cust.qcow2"),
        "{:?}",
        env.ls("pool")
    );
    // The template pins its layers: clean keeps them while the template exists.
    env.maker(&["cache", "clean"]).ok();
    assert_eq!(
        env.ls("cache/layers").len(),
        4,
        "{:?}",
        env.ls("cache/layers")
    );
}

#[test]
fn download_imports_a_compressed_local_image_with_its_checksum() {
    let env = TestEnv::new();
    let img = env.path("t/base.qcow2");
    std::fs::create_dir_all(env.path("t")).unwrap();
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", img.to_str().unwrap(), "32M"])
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = std::process::Command::new("gzip")
        .arg(&img)
        .status()
        .unwrap();
    assert!(ok.success());
    let gz = std::fs::read(env.path("t/base.qcow2.gz")).unwrap();
    use sha2::Digest;
    let sum: String = sha2::Sha256::digest(&gz)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let spec = |sum: &str| {
        format!("spec:\n  import:\n    download:\n      url: base.qcow2.gz\n      checksum: sha256:{sum}\n      resize: 64M\n  steps:\n    - local_run:\n        command: [sh, -c, 'qemu-img check -q \"$IMAGE\"']\n  export:\n    raw: out.img\n")
    };
    env.write("t/d.yml", &spec(&"0".repeat(64)));
    let file = env.path("t/d.yml");
    env.maker(&["build", "-f", file.to_str().unwrap()])
        .fails(1, "checksum mismatch");
    assert!(
        env.ls("cache/layers").is_empty(),
        "{:?}",
        env.ls("cache/layers")
    );
    env.write("t/d.yml", &spec(&sum));
    env.maker(&["build", "-f", file.to_str().unwrap()]).ok();
    assert_eq!(
        std::fs::metadata(env.path("t/out.img")).unwrap().len(),
        64 << 20
    );
}

#[test]
fn before_and_after_templates_are_built_in_order_once() {
    let env = TestEnv::new();
    env.write(
        "t/base.yml",
        "spec:\n  import:\n    virt-builder: base-os\n",
    );
    env.write(
        "t/post.yml",
        "spec:\n  import:\n    virt-builder: post-os\n",
    );
    env.write(
        "t/main.yml",
        "before: base.yml\nafter: [post.yml]\nspec:\n  import:\n    virt-builder: main-os\n",
    );
    let main = env.path("t/main.yml");
    let base = env.path("t/base.yml");
    let out = env
        .maker(&[
            "build",
            "-f",
            base.to_str().unwrap(),
            main.to_str().unwrap(),
        ])
        .ok();
    let files: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("Starting"))
        .map(|l| l.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "base.yml: Starting",
            "main.yml: Starting",
            "post.yml: Starting"
        ]
    );
    let images: Vec<String> = env
        .read("log/virt-builder.log")
        .lines()
        .filter(|l| l.ends_with("-os"))
        .map(str::to_string)
        .collect();
    assert_eq!(images, ["base-os", "main-os", "post-os"]);
}

// ---------------------------------------------------------------------------------------
// The download importer from a URL (the loopback server of http.rs)

/// A 2 MiB raw image with data in every block, served at `disk.raw`; its sha256.
fn serve_disk(server: &crate::http::Server) -> (Vec<u8>, String) {
    let data: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8 + 1).collect();
    use sha2::Digest;
    let sum = sha2::Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    server.put("disk.raw", data.clone(), "\"v1\"");
    (data, sum)
}

fn download_template(env: &TestEnv, name: &str, url: &str, sum: &str, resize: &str) -> String {
    env.write(
        &format!("t/{name}.yml"),
        &format!(
            "spec:\n  import:\n    download:\n      url: {url}\n      checksum: sha256:{sum}\n      resize: {resize}\n"
        ),
    );
    env.path(&format!("t/{name}.yml")).display().to_string()
}

/// The downloads directory's complete files (work files and notes aside).
fn downloaded(env: &TestEnv) -> Vec<String> {
    env.ls("cache/downloads")
        .into_iter()
        .filter(|n| !n.ends_with(".sums"))
        .collect()
}

#[test]
fn a_url_is_downloaded_once_verified_and_reused_by_another_template() {
    let env = TestEnv::new();
    let server = crate::http::Server::start();
    let (data, sum) = serve_disk(&server);
    let url = server.url("disk.raw");
    let a = download_template(&env, "a", &url, &sum, "4M");
    env.maker(&["build", "-f", &a]).ok();
    let files = downloaded(&env);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("-disk.raw"), "{files:?}");
    assert_eq!(
        std::fs::read(env.path("cache/downloads").join(&files[0])).unwrap(),
        data
    );
    // Another layer from the same URL (another size): the cached file, no request.
    let b = download_template(&env, "b", &url, &sum, "8M");
    env.maker(&["build", "-f", &b]).ok();
    assert_eq!(server.log().len(), 1, "{:?}", server.log());
    let usage = env.maker(&["cache", "usage", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&usage.stdout).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 2, "{}", usage.stdout);
}

#[test]
fn a_wrong_checksum_names_url_and_sums_and_leaves_no_file_and_no_layer() {
    let env = TestEnv::new();
    let server = crate::http::Server::start();
    let (_, sum) = serve_disk(&server);
    let url = server.url("disk.raw");
    let wrong = "0".repeat(64);
    let t = download_template(&env, "t", &url, &wrong, "4M");
    env.maker(&["build", "-f", &t])
        .fails(1, &format!("checksum mismatch for {url}"))
        .fails(1, &format!("expected sha256 {wrong}"))
        .fails(1, &format!("computed {sum}"));
    assert!(
        env.ls("cache/downloads").is_empty(),
        "{:?}",
        env.ls("cache/downloads")
    );
    assert!(
        env.ls("cache/layers").is_empty(),
        "{:?}",
        env.ls("cache/layers")
    );
}

#[test]
fn an_interrupted_download_resumes_where_it_stopped() {
    let env = TestEnv::new();
    let server = crate::http::Server::start();
    let (data, sum) = serve_disk(&server);
    let cut = 700_000;
    server.state.lock().unwrap().cut_next_after = Some(cut);
    let t = download_template(&env, "t", &server.url("disk.raw"), &sum, "4M");
    env.maker(&["build", "-f", &t]).fails(1, "resume");
    assert!(downloaded(&env).iter().any(|f| f.ends_with(".part")));
    assert!(env.ls("cache/layers").is_empty());
    env.maker(&["build", "-f", &t]).ok();
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1].range.as_deref(), Some(&*format!("bytes={cut}-")));
    assert_eq!(log[1].status, 206);
    // Each byte crossed the network once.
    assert_eq!(log[0].body_bytes + log[1].body_bytes, data.len());
    assert_eq!(downloaded(&env).len(), 1, "{:?}", downloaded(&env));
}

#[test]
fn concurrent_builds_needing_one_url_download_it_once() {
    let env = TestEnv::new();
    let server = crate::http::Server::start();
    let (_, sum) = serve_disk(&server);
    // Slowly, so the second build asks while the first is downloading.
    server.state.lock().unwrap().trickle = true;
    let url = server.url("disk.raw");
    // Two sizes: two layers, so the step cache's own lock does not serialise them.
    let files = [
        download_template(&env, "a", &url, &sum, "4M"),
        download_template(&env, "b", &url, &sum, "8M"),
    ];
    let mut children: Vec<_> = files
        .iter()
        .map(|f| {
            env.command_for(Bin::VirtMaker, &["build", "-f", f])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let log = server.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(downloaded(&env).len(), 1, "{:?}", downloaded(&env));
}

#[test]
fn a_malformed_checksum_or_size_is_a_template_error_before_any_download() {
    let env = TestEnv::new();
    let server = crate::http::Server::start();
    let (_, sum) = serve_disk(&server);
    let url = server.url("disk.raw");
    let t = download_template(&env, "t", &url, "00", "4M");
    env.maker(&["build", "-f", &t])
        .fails(2, "import (download): key 'checksum'")
        .fails(2, "64 hex digits");
    let t = download_template(&env, "t", &url, &sum, "4 GB");
    env.maker(&["build", "-f", &t])
        .fails(2, "import (download): key 'resize'");
    assert!(server.log().is_empty(), "{:?}", server.log());
}

#[test]
fn a_url_without_a_checksum_is_downloaded_once_for_its_key_and_its_import() {
    let env = TestEnv::new();
    let server = crate::http::Server::start();
    let (data, _) = serve_disk(&server);
    env.write(
        "t/t.yml",
        &format!(
            "spec:\n  import:\n    download: {}\n",
            server.url("disk.raw")
        ),
    );
    let t = env.path("t/t.yml").display().to_string();
    env.maker(&["build", "-f", &t]).ok();
    let log = server.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].body_bytes, data.len());
    let again = env.maker(&["build", "-f", &t]).ok();
    assert!(again.stdout.contains("(cached)"), "{}", again.stdout);
    assert_eq!(server.log().len(), 1);
}

#[test]
fn a_cached_download_that_does_not_match_a_new_checksum_is_downloaded_again() {
    let env = TestEnv::new();
    let server = crate::http::Server::start();
    let (_, sum) = serve_disk(&server);
    let url = server.url("disk.raw");
    let t = download_template(&env, "t", &url, &sum, "4M");
    env.maker(&["build", "-f", &t]).ok();
    // A new version on the server, and the template updated to its checksum.
    let new: Vec<u8> = vec![7u8; 1 << 20];
    use sha2::Digest;
    let new_sum: String = sha2::Sha256::digest(&new)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    server.put("disk.raw", new.clone(), "\"v2\"");
    let t = download_template(&env, "t", &url, &new_sum, "4M");
    env.maker(&["build", "-f", &t]).ok();
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!((log[1].status, log[1].body_bytes), (200, new.len()));
    let files = downloaded(&env);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        std::fs::read(env.path("cache/downloads").join(&files[0])).unwrap(),
        new
    );
}

#[test]
fn templates_d_steps_build_through_the_cache_and_share_layers_with_the_same_yaml() {
    let env = TestEnv::new();
    env.write("config/templates.d/setup.sh", "echo set up\n");
    env.write(
        "config/templates.d/web.cfg",
        "[web]\nos-version = debian-12\nsteps = run: setup.sh\n        copy: {dest: /etc/motd, content: hello}\n",
    );
    let first = env.run(&["web", "--no-clone"]).ok();
    assert!(first.stderr.contains("[ RUN  ] "), "{}", first.stderr);
    assert_eq!(env.tool_runs("virt-builder"), 1);
    // The two steps in one run, then virt-up's own customization of the copy.
    assert_eq!(env.tool_runs("virt-customize"), 2);
    assert!(env.ls("pool").iter().any(|n| n == "TEMPLATE-web.qcow2"));
    // The same import and steps written as a virt-maker template: every layer is cached.
    env.write(
        "config/templates.d/web.yml",
        "spec:\n  import:\n    virt-builder: {image: debian-12}\n  steps:\n    - run: setup.sh\n    - copy: {dest: /etc/motd, content: hello}\n",
    );
    let file = env.path("config/templates.d/web.yml");
    let maker = env.maker(&["build", "-f", file.to_str().unwrap()]).ok();
    assert_eq!(
        maker.stdout.matches("(cached)").count(),
        3,
        "{}",
        maker.stdout
    );
    assert_eq!(env.tool_runs("virt-customize"), 2, "nothing ran again");
}

#[test]
fn templates_d_steps_errors_name_the_file_and_step_and_keep_the_old_template() {
    let env = TestEnv::new();
    env.write(
        "config/templates.d/web.cfg",
        "[web]\nos-version = debian-12\nsteps = run: setup.sh\n",
    );
    env.write("config/templates.d/setup.sh", "echo set up\n");
    env.run(&["web", "--no-clone"]).ok();
    // An unknown runner in step 2: named with the file and the nearest valid name, and the
    // built template is still there after a forced rebuild was refused.
    env.write(
        "config/templates.d/web.cfg",
        "[web]\nos-version = debian-12\nsteps = run: setup.sh\n        instal: [nginx]\n",
    );
    let bad = env.run(&["web", "--no-clone", "--force"]);
    assert_ne!(bad.code, 0);
    for needle in ["web.cfg", "step 2", "instal", "install"] {
        assert!(bad.stderr.contains(needle), "{needle}: {}", bad.stderr);
    }
    assert!(env.ls("pool").iter().any(|n| n == "TEMPLATE-web.qcow2"));
    assert_eq!(env.tool_runs("virt-builder"), 1);
    // A line that is not a mapping.
    env.write(
        "config/templates.d/web.cfg",
        "[web]\nos-version = debian-12\nsteps = just words\n",
    );
    let bad = env.run(&["web", "--no-clone", "--force"]);
    assert!(
        bad.code != 0 && bad.stderr.contains("web.cfg") && bad.stderr.contains("step 1"),
        "{}",
        bad.stderr
    );
    // customize and steps together.
    env.write(
        "config/templates.d/web.cfg",
        "[web]\nos-version = debian-12\nsteps = run: setup.sh\ncustomize = web.yml\n",
    );
    let both = env.run(&["web", "--no-clone"]);
    assert!(
        both.code != 0 && both.stderr.contains("both 'customize'"),
        "{}",
        both.stderr
    );
}

// ---------------------------------------------------------------------------------------
// Template helpers as the original's (template/filters/__init__.py)

/// What `date` prints for `fmt` in time zone `tz` at each second from `from` to `to`.
fn dates(tz: &str, fmt: &str, from: u64, to: u64) -> Vec<String> {
    (from..=to)
        .map(|s| {
            let out = std::process::Command::new("date")
                .env("TZ", tz)
                .args([format!("-d@{s}"), format!("+{fmt}")])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect()
}

fn epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn date_helpers_are_in_local_time() {
    let mut env = TestEnv::new();
    // 14 hours east of UTC (a POSIX TZ, no tzdata needed): UTC would be another day.
    env.set("TZ", "XST-14");
    env.write(
        "t/d.yml",
        "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - copy: {dest: /etc/stamp, content: '{{ now() }}|{{ year() }}-{{ month() }}-{{ day() }} {{ hour() }}:{{ minute() }}:{{ second() }}'}\n",
    );
    let file = env.path("t/d.yml");
    let before = epoch();
    env.maker(&["build", "-f", file.to_str().unwrap()]).ok();
    let after = epoch();
    let got = env.read("log/virt-customize.uploads");
    let want = dates(
        "XST-14",
        "%Y-%m-%d_%H-%M-%S|%Y-%m-%d %H:%M:%S",
        before,
        after,
    );
    assert!(want.contains(&got), "{got} not in {want:?}");
    let utc = dates("UTC0", "%Y-%m-%d_%H-%M-%S", before, after);
    assert!(!utc.iter().any(|u| got.starts_with(u)), "{got} is UTC");
}

const HELPERS: &str = r#"params:
  count: ' 41 '
  vars: "{{ from_yaml(file_contents('vars.yml')) }}"
spec:
  import:
    virt-builder: debian-12
  steps:
    - copy:
        dest: /etc/out
        content: "{% for i, p in enumerate(from_yaml(file_contents('vars.yml')).pkgs) %}{{ i }}:{{ p }},{% endfor %} n={{ int(count) + 1 }} [{{ file_contents('absent.txt', ignore_missing=true) }}] {{ file_contents(download(url, 'dl/motd.txt')) }}"
"#;

#[test]
fn enumerate_int_from_yaml_file_contents_and_download() {
    let env = TestEnv::new();
    let server = crate::http::Server::start();
    server.put("motd.txt", b"from the server".to_vec(), "\"e1\"");
    env.write("t/h.yml", HELPERS);
    env.write("t/vars.yml", "pkgs: [nginx, curl]\n");
    let file = env.path("t/h.yml");
    let url = format!("url={}", server.url("motd.txt"));
    let args = ["build", "-f", file.to_str().unwrap(), "-p", &url];
    env.maker(&args).ok();
    assert_eq!(
        env.read("log/virt-customize.uploads"),
        "0:nginx,1:curl, n=42 [] from the server"
    );
    // download(url, path) wrote path (relative to the template) and returned it.
    assert_eq!(env.read("t/dl/motd.txt"), "from the server");
    assert_eq!(env.ls("t/dl"), ["motd.txt"]);
    // As the original: a file already at path is not downloaded again.
    env.maker(&args).ok();
    assert_eq!(server.log().len(), 1, "{:?}", server.log());
}

#[test]
fn a_dry_run_downloads_nothing() {
    let env = TestEnv::new();
    let server = crate::http::Server::start();
    server.put("motd.txt", b"from the server".to_vec(), "\"e1\"");
    env.write(
        "t/h.yml",
        "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - hostname: \"{{ download(url, 'dl/motd.txt') }}\"\n",
    );
    let file = env.path("t/h.yml");
    let url = format!("url={}", server.url("motd.txt"));
    let out = env
        .maker(&[
            "build",
            "-f",
            file.to_str().unwrap(),
            "-p",
            &url,
            "--dry-run",
        ])
        .ok();
    assert!(out.stdout.contains("dl/motd.txt"), "{}", out.stdout);
    assert!(server.log().is_empty(), "{:?}", server.log());
    assert!(!env.path("t/dl").exists());
}

#[test]
fn helper_errors_name_the_file_and_the_step_and_build_nothing() {
    let env = TestEnv::new();
    let server = crate::http::Server::start();
    let file = env.path("t/e.yml");
    let cases = [
        ("{{ file_contents('nope.txt') }}", "file_contents(nope.txt)"),
        ("{{ int('4.5') }}", "int('4.5'): not a base-10 integer"),
        ("{{ from_yaml('a: [') }}", "from_yaml: invalid YAML"),
        ("{{ enumerate(3) }}", "enumerate(3): cannot enumerate"),
        (
            &format!("{{{{ download('{}', 'x.img') }}}}", server.url("missing")),
            "HTTP 404",
        ),
        (
            "{{ download('ftp://h/x', 'x.img') }}",
            "only http:// and https://",
        ),
    ];
    for (expr, needle) in cases {
        env.write(
            "t/e.yml",
            &format!("spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - run: \"echo {expr}\"\n"),
        );
        let out = env
            .maker(&["build", "-f", file.to_str().unwrap()])
            .fails(2, needle);
        assert!(out.stderr.contains("e.yml"), "{}", out.stderr);
        assert!(out.stderr.contains("step"), "{}", out.stderr);
    }
    assert_eq!(env.tool_runs("virt-builder"), 0);
    assert!(!env.path("t/x.img").exists());
}

#[test]
fn download_imports_a_bzip2_image_as_the_original_does() {
    // The original's download importer takes .qcow2.bz2 and .img.bz2 (bunzip2).
    let env = TestEnv::new();
    let img = env.path("t/base.qcow2");
    std::fs::create_dir_all(env.path("t")).unwrap();
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", img.to_str().unwrap(), "48M"])
        .status()
        .unwrap();
    assert!(ok.success());
    use std::io::Write;
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&std::fs::read(&img).unwrap()).unwrap();
    let bz = bz.finish().unwrap();
    std::fs::write(env.path("t/local.qcow2.bz2"), &bz).unwrap();
    let server = crate::http::Server::start();
    server.put("base.qcow2.bz2", bz, "\"b1\"");
    for url in [server.url("base.qcow2.bz2"), "local.qcow2.bz2".to_string()] {
        env.write(
            "t/b.yml",
            &format!(
                "spec:\n  import:\n    download:\n      url: {url}\n  export:\n    raw: out.img\n"
            ),
        );
        let file = env.path("t/b.yml");
        env.maker(&["build", "-f", file.to_str().unwrap(), "-F", "-X"])
            .ok();
        assert_eq!(
            std::fs::metadata(env.path("t/out.img")).unwrap().len(),
            48 << 20,
            "{url}"
        );
    }
}

#[test]
fn verbose_and_verbosity_variables_set_the_verbosity_as_the_originals() {
    let verbose = |vars: &[(&str, &str)], args: &[&str]| {
        let mut env = TestEnv::new();
        for (k, v) in vars {
            env.set(k, v);
        }
        let mut all = args.to_vec();
        all.extend(["runners", "exporters"]);
        env.maker(&all)
    };
    // -v's listing (schemas, commands) from the variables alone.
    let listing = |r: crate::harness::Run| r.ok().stdout.contains("commands: qemu-img");
    assert!(!listing(verbose(&[], &[])));
    assert!(listing(verbose(&[("VERBOSE", "1")], &[])));
    assert!(listing(verbose(&[("VERBOSITY", "2")], &[])));
    // A set variable wins over -v, and VERBOSE over VERBOSITY.
    assert!(!listing(verbose(&[("VERBOSE", "0")], &["-v"])));
    assert!(!listing(verbose(
        &[("VERBOSE", "0"), ("VERBOSITY", "1")],
        &[]
    )));
    verbose(&[("VERBOSE", "loud")], &[]).fails(2, "VERBOSE='loud' is not an integer");
}

#[test]
fn sparsify_compresses_a_qcow2_that_is_not_compressed_afterwards_as_the_original() {
    let mut env = TestEnv::new();
    // A fake virt-sparsify: logs its arguments, writes an empty image of --convert's format.
    env.write(
        "bin3/virt-sparsify",
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$FAKE_LOG/virt-sparsify.args\"\nfmt=qcow2\nprev=\nfor a; do [ \"$prev\" = --convert ] && fmt=$a; prev=$a; out=$a; done\nqemu-img create -q -f \"$fmt\" \"$out\" 64M\n",
    );
    use std::os::unix::fs::PermissionsExt;
    let p = env.path("bin3/virt-sparsify");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin3 = env.path("bin3");
    env.prepend_path(&bin3);
    let file = env.path("t/s.yml");
    for export in [
        "qcow2: {path: a.qcow2, sparsify: true}",
        "qcow2: {path: b.qcow2.xz, sparsify: true, compress: xz}",
        "raw: {path: c.img, sparsify: true}",
    ] {
        env.write(
            "t/s.yml",
            &format!("spec:\n  import:\n    virt-builder: debian-12\n  export:\n    {export}\n"),
        );
        env.maker(&["build", "-f", file.to_str().unwrap()]).ok();
    }
    let runs = env.read("log/virt-sparsify.args");
    let runs: Vec<&str> = runs.lines().collect();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(
        runs[0].starts_with("--compress ") && runs[0].contains("--convert qcow2"),
        "{runs:?}"
    );
    assert!(!runs[1].contains("--compress"), "{runs:?}");
    assert!(
        !runs[2].contains("--compress") && runs[2].contains("--convert raw"),
        "{runs:?}"
    );
}

/// The `libvirt` exporter puts the image into a storage pool through libvirt (here the
/// test driver's, whose volumes are files of its pool directory): a rebuild replaces the
/// volume; a bad volume name is refused and writes nothing.
#[test]
fn the_libvirt_exporter_uploads_into_a_pool_and_replaces_its_volume() {
    let env = TestEnv::new();
    let spec = |name: &str| {
        format!("spec:\n  import:\n    virt-builder: debian-12\n  export:\n    libvirt:\n      name: {name}\n      pool: default\n")
    };
    env.write("t/p.yml", &spec("demo.qcow2"));
    let file = env.path("t/p.yml");
    let file = file.to_str().unwrap();
    env.maker(&["build", "-f", file]).ok();
    assert_eq!(env.ls("pool"), ["demo.qcow2"]);
    let info = crate::harness::tool(
        "qemu-img",
        &[
            "info",
            "--output=json",
            env.path("pool/demo.qcow2").to_str().unwrap(),
        ],
    );
    assert!(info.contains("\"format\": \"qcow2\""), "{info}");
    // Not cached: a second build uploads again, over the first.
    env.maker(&["build", "-f", file]).ok();
    assert_eq!(env.ls("pool"), ["demo.qcow2"]);
    env.write("t/p.yml", &spec("../x"));
    env.maker(&["build", "-f", file])
        .fails(1, "not allowed in a volume name");
    assert_eq!(env.ls("pool"), ["demo.qcow2"]);
}
