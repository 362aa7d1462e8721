//! virt-maker on real tools: a 3-step template built from the local base image by real
//! virt-builder and virt-customize (TCG), rebuilt unchanged (nothing runs), rebuilt with
//! its last step changed (its three steps are one virt-customize run and one layer, so
//! the run goes again on the import's layer), killed in the middle of that run and
//! rebuilt correctly; the exported image holds every step's effect. Kept to one test so
//! the appliance boots are paid once: about 6 of them.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::guard::{Cleanup, KillOnDrop, IMAGES};

struct Maker {
    dir: PathBuf,
}

impl Maker {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_virt-maker"));
        cmd.args(args)
            .env("VIRTUP_CONFIG_HOME", self.dir.join("config"))
            .env("VIRTUP_SYSTEM_CONFIG", self.dir.join("no-system-config"))
            .env("VIRTUP_CACHE_HOME", self.dir.join("cache"));
        cmd
    }

    fn build(&self) -> String {
        let t = std::time::Instant::now();
        let out = self
            .command(&["build", "-f", self.dir.join("t.yml").to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "realvm: virt-maker build took {:.1} s:\n{stdout}",
            t.elapsed().as_secs_f64()
        );
        stdout
    }

    fn write_template(&self, index: &str, last: &str) {
        std::fs::write(
            self.dir.join("t.yml"),
            format!(
                "params:\n  last: {last}\nspec:\n  import:\n    virt-builder:\n      image: debian-12-local\n      source: file://{index}\n  steps:\n    - copy: {{dest: /etc/vm-step1, content: one}}\n    - run:\n        file: step2.sh\n    - copy: {{dest: /etc/vm-step3, content: '{{{{ last }}}}'}}\n  export:\n    qcow2:\n      path: out/t.qcow2\n      create_dir: true\n"
            ),
        )
        .unwrap();
    }

    fn layers(&self) -> usize {
        let out = self
            .command(&["cache", "usage", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["layers"].as_array().unwrap().len()
    }
}

/// virt-up with the test's directories, on the real libvirtd.
fn virt_up(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_virt-up"));
    cmd.env("VIRTUP_CONFIG_HOME", dir.join("config"))
        .env("VIRTUP_DATA_HOME", dir.join("data"))
        .env("VIRTUP_SYSTEM_CONFIG", dir.join("no-system-config"))
        .env("VIRTUP_CACHE_HOME", dir.join("cache"))
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .env("LIBVIRT_DEFAULT_URI", "qemu:///system");
    cmd
}

/// The content of files in an image, in one guestfish session (one appliance boot).
pub fn cat_files(image: &Path, files: &[&str]) -> Vec<String> {
    let mut args = vec!["--ro", "-a", image.to_str().unwrap(), "-i"];
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            args.push(":");
        }
        args.extend(["cat", f]);
    }
    let out = Command::new("guestfish")
        .args(&args)
        .env("LIBGUESTFS_BACKEND", "direct")
        .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
        .output()
        .expect("guestfish (libguestfs-tools)");
    assert!(
        out.status.success(),
        "guestfish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // guestfish ends each file with a newline unless it has one: drop the empty lines.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn m1_virt_maker_caches_steps_on_real_images() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let index = crate::world::base_image_index(root);
    let dir = std::env::temp_dir().join(format!("virt-maker-realvm-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("config/settings.cfg"),
        "[common]\nvirt-type = qemu\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("step2.sh"),
        "#!/bin/sh\necho two > /etc/vm-step2\n",
    )
    .unwrap();
    let m = Maker { dir: dir.clone() };
    // Run in reverse on drop: the instance through virt-up, what is left of it, the
    // template, the directory.
    let mut cleanup = Cleanup::new();
    cleanup
        .path(dir.clone())
        .path(Path::new(IMAGES).join("TEMPLATE-vut-mk.qcow2"))
        .domain("TEMPLATE-vut-mk")
        .instance_leftovers("vut-mk1");
    let for_cleanup = dir.clone();
    cleanup.then(move || {
        let _ = virt_up(&for_cleanup)
            .args(["vut-mk1", "--delete"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    });

    // 1. First build: everything runs.
    m.write_template(&index, "three-a");
    let out = m.build();
    assert!(!out.contains("(cached)"), "{out}");
    assert!(out.contains("steps 1..3: one virt-customize run"), "{out}");
    // The import's layer and the run's.
    assert_eq!(m.layers(), 2);

    // 2. Unchanged: nothing runs.
    let out = m.build();
    assert_eq!(out.matches("(cached)").count(), 5, "{out}");

    // 3. Last step changed: the run of steps 1..3 goes again on the import (and the
    //    export); only the import is cached.
    m.write_template(&index, "three-b");
    let out = m.build();
    assert_eq!(out.matches("(cached)").count(), 1, "{out}");
    assert_eq!(m.layers(), 3);

    // 4. Killed in the middle of the run: no layer appears for it.
    m.write_template(&index, "three-c");
    let mut child = KillOnDrop::group(
        m.command(&["build", "-f", dir.join("t.yml").to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.contains("three-c") && !line.contains("(cached)") {
            break; // virt-customize for steps 1..3 is starting
        }
    }
    // Wait until virt-customize really runs (its appliance is booting), then kill the
    // whole build (virt-maker and virt-customize).
    let pgid = child.id() as i32;
    loop {
        let kids = Command::new("pgrep")
            .args(["-g", &pgid.to_string(), "virt-customize"])
            .output()
            .unwrap();
        if kids.status.success() {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "build ended early");
        // A polling interval, not a wait for something to have happened.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill(2) on a process group we created.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-pgid, libc::SIGKILL)
    };
    child.wait().unwrap();
    assert_eq!(m.layers(), 3, "a killed run left a layer");

    // 5. Rebuilt correctly: the run goes again, the export has every step's effect.
    let out = m.build();
    assert_eq!(out.matches("(cached)").count(), 1, "{out}");
    let image = dir.join("out/t.qcow2");
    assert_eq!(
        cat_files(&image, &["/etc/vm-step1", "/etc/vm-step2", "/etc/vm-step3"]),
        ["one", "two", "three-c"]
    );

    // 6. virt-up builds a template from the same spec through the same cache (every
    //    layer cached: only its own customization runs), and an instance of it boots and
    //    shows every step's effect.
    let config = dir.join("config");
    std::fs::create_dir_all(config.join("templates.d")).unwrap();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::write(
        config.join("settings.cfg"),
        "[common]\nvirt-type = qemu\nmemory = 1024\nvcpus = 2\naddress-source = lease\naddress-timeout = 240\nssh-timeout = 240\n",
    )
    .unwrap();
    std::fs::write(
        config.join("templates.d/mk.cfg"),
        format!("[vut-mk]\ncustomize = {}\n", dir.join("t.yml").display()),
    )
    .unwrap();
    let vu = |args: &[&str]| {
        let out = virt_up(&dir).args(args).output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "virt-up {args:?}:\n{stdout}\n{stderr}"
        );
        (stdout, stderr)
    };
    let t = std::time::Instant::now();
    let (_, stderr) = vu(&["vut-mk1", "--template", "vut-mk"]);
    eprintln!(
        "realvm: virt-up template from the cache + instance took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(stderr.matches("(cached)").count(), 4, "{stderr}");
    let (stdout, _) = vu(&[
        "vut-mk1",
        "--login",
        "--command",
        // vm-step1 has no final newline.
        "cat /etc/vm-step1; echo; cat /etc/vm-step2 /etc/vm-step3",
    ]);
    let lines: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(lines, ["one", "two", "three-c"], "{stdout}");
    vu(&["vut-mk1", "--delete"]);
    let _ = Command::new("virsh")
        .args(["-c", "qemu:///system", "undefine", "TEMPLATE-vut-mk"])
        .output();
    let _ = std::fs::remove_file("/var/lib/libvirt/images/TEMPLATE-vut-mk.qcow2");
    let _ = std::fs::remove_dir_all(&dir);
}
