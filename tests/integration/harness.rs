//! The one harness of the integration tier, for the three binaries (ripgrep's
//! `tests/util.rs` `Dir`/`TestCommand` and just's `Test` are the models): a private
//! directory, fake tools on PATH, the binary to run with its environment, and a [`Run`]
//! result with `ok()` and `fails(code, text)`.
//!
//! Two flavours set a [`Dir`] up the way their binaries are used:
//! - [`TestEnv`], for virt-up and virt-maker: private config, data, cache, pool and lock
//!   dirs, a clean environment, fake libguestfs tools on PATH, and libvirt's test driver
//!   with a fixture that has a `default` network and a `default` pool in the directory.
//!   No daemon, nothing outside the tempdir.
//! - [`Gvi`], for gen-vm-image: run in the directory (its paths are relative, as users
//!   give them), in the caller's environment less `LIBVIRT_DEFAULT_URI`, with the real
//!   qemu-img; its results check the JSON document gen-vm-image prints.

use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use crate::run::Run;

/// The binaries under test.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    VirtUp,
    VirtMaker,
    GenVmImage,
}

impl Bin {
    pub fn program(self) -> &'static str {
        match self {
            Bin::VirtUp => env!("CARGO_BIN_EXE_virt-up"),
            Bin::VirtMaker => env!("CARGO_BIN_EXE_virt-maker"),
            Bin::GenVmImage => env!("CARGO_BIN_EXE_gen-vm-image"),
        }
    }
}

/// The fake tools (tests/fixtures/bin): they log their arguments under `FAKE_LOG`.
fn fake_tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin")
}

/// A test's private directory and the environment its commands run in. By default the
/// environment is clean (only what is set here), with the fake tools first on PATH and
/// `FAKE_LOG` pointing at `log/`.
pub struct Dir {
    pub dir: tempfile::TempDir,
    inherit_env: bool,
    in_dir: bool,
    fake_tools: bool,
    /// Directories in front of PATH (and of the fake tools), the last added first.
    path: Vec<PathBuf>,
    unset: Vec<&'static str>,
    /// Set on every command, in order (a later one wins).
    env: Vec<(String, String)>,
}

impl Dir {
    pub fn new() -> Dir {
        let dir = Dir {
            dir: tempfile::tempdir().unwrap(),
            inherit_env: false,
            in_dir: false,
            fake_tools: true,
            path: vec![],
            unset: vec![],
            env: vec![],
        };
        std::fs::create_dir_all(dir.path("log")).unwrap();
        dir
    }

    /// Commands get the test process's environment (not a clean one).
    pub fn inherit_env(mut self) -> Dir {
        self.inherit_env = true;
        self
    }

    /// Commands run in the directory.
    pub fn in_dir(mut self) -> Dir {
        self.in_dir = true;
        self
    }

    /// The real tools only: no fake ones on PATH.
    pub fn without_fake_tools(mut self) -> Dir {
        self.fake_tools = false;
        self
    }

    /// The fake tools on PATH, in front of the real ones.
    pub fn with_fake_tools(&mut self) {
        self.fake_tools = true;
    }

    /// A variable commands do not get.
    pub fn unset(mut self, key: &'static str) -> Dir {
        self.unset.push(key);
        self
    }

    /// The libvirt URI every command connects to: the test driver on `node.xml`.
    pub fn uri(&self) -> String {
        format!("test://{}", self.path("node.xml").display())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// An environment variable for every command from now on.
    pub fn set(&mut self, key: &str, value: &str) {
        self.env.push((key.into(), value.into()));
    }

    /// Tools in `dir` are found before any other (the fake ones included).
    pub fn prepend_path(&mut self, dir: &Path) {
        self.path.push(dir.to_path_buf());
    }

    /// A program (one of the binaries, or another) with this directory's environment.
    pub fn command_of(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args);
        if !self.inherit_env {
            cmd.env_clear();
        }
        if self.in_dir {
            cmd.current_dir(self.dir.path());
        }
        if let Some(path) = self.search_path() {
            cmd.env("PATH", path);
        }
        cmd.env("FAKE_LOG", self.path("log"));
        for key in &self.unset {
            cmd.env_remove(key);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// PATH for the commands; none where the inherited one is used as it is.
    fn search_path(&self) -> Option<String> {
        let mut dirs: Vec<PathBuf> = self.path.iter().rev().cloned().collect();
        if self.fake_tools {
            dirs.push(fake_tools());
        }
        if dirs.is_empty() && self.inherit_env {
            return None;
        }
        let mut path: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        path.push(std::env::var("PATH").unwrap_or_default());
        Some(path.join(":"))
    }

    pub fn command_for(&self, bin: Bin, args: &[&str]) -> Command {
        self.command_of(bin.program(), args)
    }

    /// Run a binary to its end.
    pub fn run_for(&self, bin: Bin, args: &[&str]) -> Run {
        let out = self.command_for(bin, args).output().unwrap();
        match bin {
            Bin::GenVmImage => Run::document(out),
            Bin::VirtUp | Bin::VirtMaker => Run::from(out),
        }
    }

    /// A binary in the background, returned once the fake `tool` it runs has started
    /// (its `log/<tool>.started` marker exists): a command caught in the middle.
    pub fn spawn_until_started(&self, bin: Bin, args: &[&str], tool: &str) -> Child {
        let mut child = self
            .command_for(bin, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = self.path(&format!("log/{tool}.started"));
        while !started.exists() {
            assert!(child.try_wait().unwrap().is_none(), "ended early");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child
    }

    /// Files in a directory of the environment, sorted (hidden ones too).
    pub fn ls(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(rel))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The record stem of the built template `name` (`TEMPLATE-<name>`, with the libvirt
    /// daemon's scope after an `@` on any but qemu:///system, as here).
    pub fn template_stem(&self, name: &str) -> String {
        let prefix = format!("TEMPLATE-{}", name.replace('/', "-"));
        self.ls("data/instance")
            .into_iter()
            .filter_map(|f| f.strip_suffix(".json").map(str::to_string))
            .find(|stem| stem == &prefix || stem.starts_with(&format!("{prefix}@")))
            .unwrap_or_else(|| panic!("no record of template {name}"))
    }

    pub fn mode(&self, rel: &str) -> u32 {
        std::fs::metadata(self.path(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    /// How many times a fake tool ran.
    pub fn tool_runs(&self, tool: &str) -> usize {
        self.read(&format!("log/{tool}.log"))
            .lines()
            .filter(|l| *l == "--")
            .count()
    }
}

/// Run a host tool (qemu-img, python3, isoinfo…) that must succeed; its stdout.
#[track_caller]
pub fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------
// virt-up and virt-maker

/// virt-up's and virt-maker's environment: see the module's documentation.
pub struct TestEnv(Dir);

impl Deref for TestEnv {
    type Target = Dir;
    fn deref(&self) -> &Dir {
        &self.0
    }
}

impl DerefMut for TestEnv {
    fn deref_mut(&mut self) -> &mut Dir {
        &mut self.0
    }
}

const SETTINGS: &str =
    "[common]\nvirt-type = qemu\naddress-source = arp\naddress-timeout = 1\nssh-timeout = 1\n";
const TEMPLATES: &str = "[deb]\ndesc = test template\nos-version = debian-12-local\nvirt-builder-source = file:///nonexistent/index\n";

impl TestEnv {
    pub fn new() -> TestEnv {
        let mut env = TestEnv(Dir::new());
        for d in ["config/templates.d", "system", "data", "pool", "run", "log"] {
            std::fs::create_dir_all(env.path(d)).unwrap();
        }
        env.write("config/settings.cfg", SETTINGS);
        env.write("config/templates.d/test.cfg", TEMPLATES);
        let fixture = format!(
            "<node>\n<network><name>default</name><bridge name='virbr0'/><forward/>\
             <ip address='192.168.122.1' netmask='255.255.255.0'/></network>\n\
             <pool type='dir'><name>default</name><uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>\
             <target><path>{}</path></target></pool>\n</node>\n",
            env.path("pool").display()
        );
        env.write("node.xml", &fixture);
        let uri = format!("test://{}", env.path("node.xml").display());
        for (key, rel) in [
            ("HOME", "home"),
            ("VIRTUP_CONFIG_HOME", "config"),
            ("VIRTUP_SYSTEM_CONFIG", "system"),
            ("VIRTUP_DATA_HOME", "data"),
            ("VIRTUP_CACHE_HOME", "cache"),
            ("XDG_RUNTIME_DIR", "run"),
        ] {
            let path = env.path(rel).display().to_string();
            env.set(key, &path);
        }
        env.set("LIBVIRT_DEFAULT_URI", &uri);
        env
    }

    /// An environment variable for every command from now on. (Here, not only on
    /// [`Dir`], so `env.set(key, &env.path(…))` borrows as a method of this type does.)
    pub fn set(&mut self, key: &str, value: &str) {
        self.0.set(key, value);
    }

    /// The `virt-up` binary in this environment.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_for(Bin::VirtUp, args)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_for(Bin::VirtUp, args)
    }

    /// The `virt-maker` binary in this environment.
    pub fn maker(&self, args: &[&str]) -> Run {
        self.run_for(Bin::VirtMaker, args)
    }

    /// `virt-maker build -f <file>` in the background, returned once the fake `tool` it
    /// runs has started (its `log/<tool>.started` marker exists): a build caught mid-step.
    pub fn spawn_build_until_started(&self, file: &Path, tool: &str) -> Child {
        let args = ["build", "-f", path_str(file)];
        self.spawn_until_started(Bin::VirtMaker, &args, tool)
    }
}

// ---------------------------------------------------------------------------------------
// gen-vm-image

/// gen-vm-image's environment: see the module's documentation.
pub struct Gvi(Dir);

impl Deref for Gvi {
    type Target = Dir;
    fn deref(&self) -> &Dir {
        &self.0
    }
}

impl DerefMut for Gvi {
    fn deref_mut(&mut self) -> &mut Dir {
        &mut self.0
    }
}

impl Gvi {
    pub fn new() -> Gvi {
        let dir = Dir::new()
            .inherit_env()
            .in_dir()
            .without_fake_tools()
            .unset("LIBVIRT_DEFAULT_URI");
        Gvi(dir)
    }

    /// The `gen-vm-image` binary in this environment.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_for(Bin::GenVmImage, args)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_for(Bin::GenVmImage, args)
    }

    /// A raw image of `mib` MiB with varied (not zero) data, and the same as qcow2.
    pub fn make_input(&self, stem: &str, mib: usize) -> (PathBuf, PathBuf) {
        let raw = self.path(&format!("{stem}.raw"));
        let mut data = vec![0u8; mib << 20];
        let mut x: u32 = 0x1234_5678 ^ (stem.len() as u32);
        for chunk in data.chunks_mut(4096).step_by(3) {
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
        }
        std::fs::write(&raw, &data).unwrap();
        let qcow2 = self.path(&format!("{stem}.qcow2"));
        let args = ["convert", "-f", "raw", "-O", "qcow2"];
        let paths = [path_str(&raw), path_str(&qcow2)];
        tool("qemu-img", &[&args[..], &paths[..]].concat());
        (raw, qcow2)
    }
}
