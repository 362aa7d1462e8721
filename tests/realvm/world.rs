//! The shared environment of the real-VM tier: private config and data dirs, the real
//! libvirtd, and a template built once from the local base image.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::guard::Cleanup;
pub use crate::run::Run;
use std::process::Stdio;
use std::sync::OnceLock;

pub struct World {
    dir: PathBuf,
    index: String,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// The world, set up on first use: preconditions checked, leftovers of earlier runs
/// removed, the template built.
pub fn world() -> &'static World {
    WORLD.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        require_libvirtd();
        let index = base_image_index(root);
        let dir = std::env::temp_dir().join(format!("virt-up-realvm-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("config/templates.d")).unwrap();
        std::fs::create_dir_all(dir.join("config/playbooks")).unwrap();
        // Like a login session's: libguestfs resolves XDG_RUNTIME_DIR and needs it to exist.
        std::fs::create_dir_all(dir.join("run")).unwrap();
        for pb in ["hello.yml", "template-motd.yml"] {
            let to = dir.join("config/playbooks").join(pb);
            std::fs::copy(root.join("playbooks").join(pb), to).unwrap();
        }
        let w = World { dir, index };
        w.set_common("");
        w.remove_leftovers();
        eprintln!("realvm: building template vut-deb from {}", w.index);
        let t = std::time::Instant::now();
        w.vu(&["vut-deb", "--no-clone"]).ok();
        eprintln!(
            "realvm: template built in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        w
    })
}

fn require_libvirtd() {
    let out = Command::new("virsh")
        .args(["-c", "qemu:///system", "version"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the real-VM tier needs libvirtd on qemu:///system (run 'make host'): {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("the real-VM tier needs virsh (run 'make host'): {e}"),
    }
}

/// The local virt-builder repository (built once and cached by the script).
pub fn base_image_index(root: &Path) -> String {
    let out = Command::new(root.join("scripts/build-base-image.sh"))
        .output()
        .expect("run scripts/build-base-image.sh");
    assert!(
        out.status.success(),
        "the real-VM tier needs the base image; scripts/build-base-image.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("index path")
        .trim()
        .to_string()
}

impl World {
    pub fn vu_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_virt-up"));
        cmd.args(args);
        self.environment(&mut cmd);
        cmd
    }

    /// virt-up in a mount namespace of its own where /etc/resolv.conf is `resolv_conf`:
    /// host names resolve as on a host whose DNS is that file's, nothing else changes.
    pub fn vu_command_with_resolver(&self, resolv_conf: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--", "sh", "-c"])
            .arg(r#"mount --bind "$1" /etc/resolv.conf && shift && exec "$@""#)
            .arg("sh")
            .arg(resolv_conf)
            .arg(env!("CARGO_BIN_EXE_virt-up"))
            .args(args);
        self.environment(&mut cmd);
        cmd
    }

    /// Another virt-up binary (an installed one), with this world's configuration and data
    /// but `system_config` as its system-wide configuration.
    pub fn vu_installed(&self, bin: &Path, system_config: &Path, args: &[&str]) -> Run {
        eprintln!("realvm: {} {}", bin.display(), args.join(" "));
        let mut cmd = Command::new(bin);
        cmd.args(args);
        self.environment(&mut cmd);
        cmd.env("VIRTUP_SYSTEM_CONFIG", system_config);
        Run::from(cmd.output().unwrap())
    }

    fn environment(&self, cmd: &mut Command) {
        cmd.env("VIRTUP_CONFIG_HOME", self.dir.join("config"))
            .env("VIRTUP_DATA_HOME", self.dir.join("data"))
            .env("VIRTUP_SYSTEM_CONFIG", self.dir.join("no-system-config"))
            .env("XDG_RUNTIME_DIR", self.dir.join("run"))
            .env("LIBVIRT_DEFAULT_URI", "qemu:///system");
    }

    /// A path in this test run's private directory.
    pub fn own_path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// A file of this test run's own (in its private directory).
    pub fn own_file(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.own_path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The local virt-builder repository's index (for more templates of the same image).
    pub fn index(&self) -> &str {
        &self.index
    }

    /// An instance's record, as virt-up wrote it.
    pub fn record(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.data(&format!("instance/{name}.json")))
            .unwrap_or_else(|e| panic!("record of {name}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    pub fn vu(&self, args: &[&str]) -> Run {
        eprintln!("realvm: virt-up {}", args.join(" "));
        Run::from(self.vu_command(args).output().unwrap())
    }

    pub fn run(&self, tool: &str, args: &[&str]) -> Run {
        Run::from(
            Command::new(tool)
                .args(args)
                .env("LIBGUESTFS_BACKEND", "direct")
                .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
                .output()
                .unwrap_or_else(|e| panic!("{tool}: {e}")),
        )
    }

    /// Run a command in an instance through `virt-up --login --command`; its stdout.
    #[track_caller]
    pub fn ssh(&self, name: &str, command: &str) -> String {
        self.vu(&[name, "--login", "--command", command])
            .ok()
            .stdout
            .trim()
            .to_string()
    }

    pub fn virsh(&self, args: &[&str]) -> String {
        let mut full = vec!["-c", "qemu:///system"];
        full.extend_from_slice(args);
        let out = self.run("virsh", &full);
        format!("{}{}", out.stdout, out.stderr)
    }

    pub fn data(&self, rel: &str) -> String {
        self.dir.join("data").join(rel).display().to_string()
    }

    pub fn list(&self) -> Vec<serde_json::Value> {
        let out = self.vu(&["--list", "--json"]).ok().stdout;
        serde_json::from_str(&out).unwrap()
    }

    /// Rewrite the configuration: base settings, and `extra` lines in the template's section
    /// (they override [common]; read at create time, so the template is not rebuilt).
    pub fn set_common(&self, extra: &str) {
        self.write_config("", extra).unwrap();
    }

    /// As [`World::set_common`], with `common` lines added to `[common]` too.
    pub fn set_config(&self, common: &str, extra: &str) {
        self.write_config(common, extra).unwrap();
    }

    fn write_config(&self, common: &str, extra: &str) -> std::io::Result<()> {
        let config = self.dir.join("config");
        std::fs::write(
            config.join("settings.cfg"),
            format!("[common]\nvirt-type = qemu\nmemory = 1024\nvcpus = 2\naddress-source = lease\naddress-timeout = 240\nssh-timeout = 240\n{common}"),
        )?;
        std::fs::write(
            config.join("templates.d/vut.cfg"),
            format!(
                "[vut-deb]\nos-version = debian-12-local\nvirt-builder-source = file://{}\ntemplate-playbook = template-motd\n{extra}\n",
                self.index
            ),
        )
    }

    /// A guard for a test's instances: when it drops (at the end of the test, or when an
    /// assertion fails) each instance is deleted through virt-up, what is left of it
    /// (domain, disks, record) is removed directly, and the base configuration is put
    /// back (a test that changed it with [`World::set_common`] may not have).
    pub fn cleanup(&'static self, names: &[&str]) -> Cleanup {
        let mut cleanup = Cleanup::new();
        cleanup.then(move || {
            let _ = self.write_config("", "");
        });
        for name in names {
            cleanup.instance_leftovers(name);
            cleanup.path(self.dir.join(format!("data/instance/{name}.json")));
            let name = name.to_string();
            cleanup.then(move || {
                let _ = self
                    .vu_command(&[&name, "--delete"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            });
        }
        cleanup
    }

    /// No domain, disk, seed or record is left of `name`.
    #[track_caller]
    pub fn assert_gone(&self, name: &str) {
        assert!(
            self.virsh(&["dominfo", name])
                .contains("failed to get domain"),
            "domain {name} still defined"
        );
        for f in [format!("{name}.qcow2"), format!("{name}-seed.tar")] {
            let p = Path::new("/var/lib/libvirt/images").join(&f);
            assert!(!p.exists(), "{} left behind", p.display());
        }
        assert!(!self.dir.join(format!("data/instance/{name}.json")).exists());
        assert!(!std::fs::read_to_string(self.data("inventory.yaml"))
            .unwrap_or_default()
            .contains(name));
    }

    /// Domains and disks named vut-* are this tier's own; remove those of earlier runs.
    fn remove_leftovers(&self) {
        let names = self.virsh(&["list", "--all", "--name"]);
        for name in names
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with("vut-") || n.starts_with("TEMPLATE-vut-"))
        {
            self.virsh(&["destroy", name]);
            self.virsh(&["undefine", name]);
        }
        if let Ok(entries) = std::fs::read_dir("/var/lib/libvirt/images") {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("vut-")
                    || n.starts_with("TEMPLATE-vut-")
                    || n.starts_with(".TEMPLATE-vut-")
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}
