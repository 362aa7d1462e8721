//! A test environment: private config, data, pool and lock dirs, fake libguestfs tools on
//! PATH, and libvirt's test driver with a fixture that has a `default` network and a
//! `default` pool in the environment's own directory. No daemon, nothing outside the tempdir.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::run::Run;

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    extra_env: Vec<(String, String)>,
}

const SETTINGS: &str =
    "[common]\nvirt-type = qemu\naddress-source = arp\naddress-timeout = 1\nssh-timeout = 1\n";
const TEMPLATES: &str = "[deb]\ndesc = test template\nos-version = debian-12-local\nvirt-builder-source = file:///nonexistent/index\n";

impl TestEnv {
    pub fn new() -> TestEnv {
        let env = TestEnv {
            dir: tempfile::tempdir().unwrap(),
            extra_env: vec![],
        };
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
        env
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

    pub fn set(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.into(), value.into()));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(env!("CARGO_BIN_EXE_virt-up"), args)
    }

    /// The `virt-maker` binary in this environment.
    pub fn maker(&self, args: &[&str]) -> Run {
        Run::from(
            self.command_of(env!("CARGO_BIN_EXE_virt-maker"), args)
                .output()
                .unwrap(),
        )
    }

    /// `virt-maker build -f <file>` in the background, returned once the fake `tool` it
    /// runs has started (its `log/<tool>.started` marker exists): a build caught mid-step.
    pub fn spawn_build_until_started(&self, file: &Path, tool: &str) -> std::process::Child {
        let mut child = self
            .command_of(
                env!("CARGO_BIN_EXE_virt-maker"),
                &["build", "-f", file.to_str().unwrap()],
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = self.path(&format!("log/{tool}.started"));
        while !started.exists() {
            assert!(child.try_wait().unwrap().is_none(), "build ended early");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child
    }

    pub fn command_of(&self, program: &str, args: &[&str]) -> Command {
        let fake_bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin");
        let path = format!(
            "{}:{}",
            fake_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.path("home"))
            .env("VIRTUP_CONFIG_HOME", self.path("config"))
            .env("VIRTUP_SYSTEM_CONFIG", self.path("system"))
            .env("VIRTUP_DATA_HOME", self.path("data"))
            .env("VIRTUP_CACHE_HOME", self.path("cache"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env(
                "LIBVIRT_DEFAULT_URI",
                format!("test://{}", self.path("node.xml").display()),
            )
            .env("FAKE_LOG", self.path("log"));
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
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
