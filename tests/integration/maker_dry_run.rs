//! `virt-maker build --dry-run`: templates in the original's forms are loaded, rendered
//! and validated, and the plan is printed, with no tool run and nothing written.

use crate::harness::{Run, TestEnv};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Tools a dry run must never start: each logs its run to log/tripwire.log and fails.
const TRIPWIRES: &[&str] = &[
    "qemu-img",
    "virt-resize",
    "virt-sparsify",
    "qemu-system-x86_64",
    "wget",
    "curl",
    "xz",
    "gzip",
    "lz4",
    "zstd",
    "sh",
    "bash",
    "python3",
];

const EXAMPLES: &[&str] = &[
    "10-basic",
    "20-using_params",
    "30-using_filters",
    "40-export_scripts",
    "50-export_compression",
    "60-to_and_from",
    "70-near_world_example",
    "71-using_cloudimage",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/virt-maker-examples")
}

/// Copy the example templates to `<env>/w/examples` (the original's from/to paths are
/// relative to the working directory) and lay the tripwires.
fn setup() -> TestEnv {
    let env = TestEnv::new();
    for name in EXAMPLES {
        let dir = fixtures().join(name);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            let file = p.file_name().unwrap().to_str().unwrap();
            env.write(&format!("w/examples/{name}/{file}"), &text);
        }
    }
    for tool in TRIPWIRES {
        let script =
            format!("#!/bin/sh\necho \"{tool} $*\" >> \"$FAKE_LOG/tripwire.log\"\nexit 1\n");
        let p = env.path(&format!("tripwire/{tool}"));
        env.write(&format!("tripwire/{tool}"), &script);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    env
}

/// `virt-maker build -f FILE --dry-run` in `<env>/w`, tripwires first on PATH.
fn dry_run(env: &TestEnv, file: &str, extra: &[&str]) -> Run {
    let mut args = vec!["build", "-f", file, "--dry-run"];
    args.extend_from_slice(extra);
    let mut cmd = env.command_of(env!("CARGO_BIN_EXE_virt-maker"), &args);
    let fake_bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin");
    let path = format!(
        "{}:{}:{}",
        env.path("tripwire").display(),
        fake_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path).current_dir(env.path("w"));
    Run::from(cmd.output().unwrap())
}

/// Every file and directory under the environment with its size and modification time.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                todo.push(p.clone());
            }
            out.insert(p, (m.len(), m.modified().unwrap()));
        }
    }
    out
}

fn no_tool_ran(env: &TestEnv) {
    for tool in [
        "tripwire",
        "virt-builder",
        "virt-customize",
        "virt-sysprep",
        "guestfish",
        "debootstrap",
        "chroot",
    ] {
        let log = env.read(&format!("log/{tool}.log"));
        assert!(log.is_empty(), "{tool} ran: {log}");
    }
}

/// The plan lines for runners (import and steps) and for the export.
fn plan_lines(stdout: &str) -> (Vec<&str>, Vec<&str>) {
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains(" step=")).collect();
    let (export, runners) = lines.iter().partition(|l| l.contains(" step=export "));
    (runners, export)
}

#[test]
fn every_example_passes_a_dry_run_that_runs_and_writes_nothing() {
    // Import + steps of each example, after from/to merging.
    let runners = [5, 4, 5, 1, 1, 2, 9, 4];
    for (name, want) in EXAMPLES.iter().zip(runners) {
        let env = setup();
        let before = snapshot(env.path("").as_path());
        let file = format!("examples/{name}/template.yml");
        let out = dry_run(&env, &file, &[]).ok();
        let (steps, export) = plan_lines(&out.stdout);
        assert_eq!(steps.len(), want, "{name}:\n{}", out.stdout);
        assert_eq!(export.len(), 1, "{name}:\n{}", out.stdout);
        for l in steps.iter().chain(&export) {
            assert!(l.contains(&format!("] {file}: step=")), "{l}");
            assert!(l.contains(" runner="), "{l}");
            assert!(l.contains(" key="), "{l}");
        }
        let summary = out.stdout.lines().last().unwrap();
        assert!(
            summary.starts_with(&format!("[ PLAN ] {file}: runners={want} ")),
            "{summary}"
        );
        no_tool_ran(&env);
        assert!(!env.path("cache").exists(), "{name}: a cache dir was made");
        assert_eq!(snapshot(env.path("").as_path()), before, "{name} wrote");
    }
}

#[test]
fn a_download_not_fetched_yet_has_unknown_keys_from_there_on() {
    let env = setup();
    let out = dry_run(&env, "examples/71-using_cloudimage/template.yml", &[]).ok();
    let (steps, _) = plan_lines(&out.stdout);
    assert!(
        steps
            .iter()
            .all(|l| l.contains("key=unknown cached=unknown action=unknown")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("'resize': {"), "{}", out.stdout);
}

#[test]
fn a_dry_run_after_a_build_shows_every_layer_cached_and_changes_nothing() {
    let env = setup();
    env.write(
        "w/t.yml",
        "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - run: echo one\n    - hostname: h\n  export:\n    qcow2: {path: out/t.qcow2, create_dir: true}\n",
    );
    let file = env.path("w/t.yml");
    env.maker(&["build", "-f", file.to_str().unwrap()]).ok();
    let (builder, customize) = (
        env.tool_runs("virt-builder"),
        env.tool_runs("virt-customize"),
    );
    let before = snapshot(env.path("").as_path());
    let out = dry_run(&env, "t.yml", &[]).ok();
    let (steps, export) = plan_lines(&out.stdout);
    assert_eq!(steps.len(), 3, "{}", out.stdout);
    assert!(steps.iter().all(|l| l.contains("cached=yes action=skip")));
    assert!(
        export[0].contains("cached=yes action=skip"),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .ends_with("runners=3 cached=3 build=0 unknown=0 export=skip\n"));
    // -F: the same layers, all to be rebuilt.
    let forced = dry_run(&env, "t.yml", &["-F"]).ok();
    let (steps, _) = plan_lines(&forced.stdout);
    assert!(steps.iter().all(|l| l.contains("cached=yes action=build")));
    assert!(forced.stdout.contains("runners=3 cached=0 build=3"));
    assert_eq!(env.tool_runs("virt-builder"), builder);
    assert_eq!(env.tool_runs("virt-customize"), customize);
    assert!(env.read("log/tripwire.log").is_empty());
    assert_eq!(snapshot(env.path("").as_path()), before);
}

/// A line's `name=value` field.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_end_matches(':'))
}

#[test]
fn a_dry_run_shows_which_steps_share_a_run_and_the_layer_that_holds_them() {
    let env = setup();
    env.write(
        "w/t.yml",
        "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - run: echo one\n    - hostname: h\n    - sysprep: {}\n    - hostname: h2\n",
    );
    // Before a build: steps 1-2 are one virt-customize run; sysprep and step 4 their own.
    let out = dry_run(&env, "t.yml", &[]).ok();
    let (steps, _) = plan_lines(&out.stdout);
    let groups: Vec<Option<&str>> = steps.iter().map(|l| field(l, "group")).collect();
    assert_eq!(
        groups,
        [
            None,
            Some("step-1..step-2"),
            Some("step-1..step-2"),
            None,
            None
        ],
        "{}",
        out.stdout
    );
    let file = env.path("w/t.yml");
    env.maker(&["build", "-f", file.to_str().unwrap()]).ok();
    let customize = env.tool_runs("virt-customize");
    assert_eq!(customize, 2);
    // After it: every step is skipped; step 1 has no layer of its own, step 2's holds it.
    let out = dry_run(&env, "t.yml", &[]).ok();
    let (steps, _) = plan_lines(&out.stdout);
    assert!(
        steps.iter().all(|l| l.contains("cached=yes action=skip")),
        "{}",
        out.stdout
    );
    assert_eq!(
        field(steps[1], "layer"),
        field(steps[2], "key"),
        "{}",
        out.stdout
    );
    assert!(
        steps.iter().all(|l| field(l, "group").is_none()),
        "{}",
        out.stdout
    );
    assert_eq!(
        steps.iter().filter(|l| field(l, "layer").is_some()).count(),
        1,
        "{}",
        out.stdout
    );
    let keys: Vec<&str> = steps.iter().filter_map(|l| field(l, "key")).collect();
    let usage = env.maker(&["cache", "usage", "--json"]).ok();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            usage.stdout.contains(key),
            i != 1,
            "{key}: {}",
            usage.stdout
        );
    }
    assert_eq!(env.tool_runs("virt-customize"), customize);
}

#[test]
fn a_template_of_only_before_and_after_is_valid() {
    let env = setup();
    env.write(
        "w/all.yml",
        "before: examples/10-basic/template.yml\nafter: [examples/20-using_params/template.yml]\n",
    );
    let out = dry_run(&env, "all.yml", &[]).ok();
    assert!(
        out.stdout.contains("[ FILE ] all.yml: Nothing to build"),
        "{}",
        out.stdout
    );
    let files: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("[ PLAN ]"))
        .collect();
    assert_eq!(files.len(), 2, "{}", out.stdout);
    assert!(files[0].contains("10-basic") && files[1].contains("20-using_params"));
    no_tool_ran(&env);
    assert!(!env.path("cache").exists());
}

#[test]
fn a_bad_step_fails_the_dry_run_naming_file_and_step_and_writes_nothing() {
    let env = setup();
    let cases = [
        (
            "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - run: echo\n    - frobnicate: x\n",
            "bad.yml: step 2: key 'frobnicate': unknown step 'frobnicate'",
        ),
        (
            "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - boot: {memory: lots}\n",
            "bad.yml: step 1 (boot): key 'memory': 'memory' must be a integer",
        ),
        (
            "spec:\n  import:\n    download:\n      url: https://example.org/x.qcow2\n      resize: {expand: /dev/sda1}\n",
            "bad.yml: import (download): key 'resize'",
        ),
        (
            "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - run: '{{ nope }}'\n",
            "bad.yml: step 1: ",
        ),
    ];
    for (text, needle) in cases {
        env.write("w/bad.yml", text);
        let before = snapshot(env.path("").as_path());
        dry_run(&env, "bad.yml", &[]).fails(2, needle);
        no_tool_ran(&env);
        assert!(!env.path("cache").exists());
        assert_eq!(snapshot(env.path("").as_path()), before);
    }
}
