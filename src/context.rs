//! What every operation needs, set up once by the front-end and passed down.

use crate::config::{Config, Settings};
use crate::error::Result;
use crate::hypervisor::{Hypervisor, Libvirt};
use crate::paths::Paths;
use crate::records::Store;
use crate::runner::{Runner, VirtType};
use std::sync::Arc;
use std::time::Duration;

/// How much the tool says.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    pub quiet: bool,
    pub debug: bool,
}

impl Ui {
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }
    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.debug {
            crate::log::debug(msg.as_ref());
        }
    }
    pub fn warn(&self, msg: impl AsRef<str>) {
        eprintln!("warning: {}", msg.as_ref());
    }
    /// Report how long a named phase took (`--debug`).
    pub fn phase(&self, name: &str, phase: &str, took: Duration) {
        self.debug(format!(
            "{name}: phase {phase} took {:.2} s",
            took.as_secs_f64()
        ));
    }
}

pub struct Context {
    pub paths: Paths,
    pub config: Config,
    pub hv: Arc<dyn Hypervisor>,
    pub store: Store,
    pub ui: Ui,
    /// The kernel's neighbour table, read for `address-source = arp`.
    pub neighbours: std::path::PathBuf,
}

impl Context {
    /// Load the configuration and connect to libvirt (URI: setting, else environment, else
    /// the default for this user).
    pub fn open(
        paths: Paths,
        config: Config,
        default_uri: Option<String>,
        ui: Ui,
    ) -> Result<Context> {
        let common = config.common()?;
        let uri = common
            .get("libvirt-uri")
            .map(str::to_string)
            .or(default_uri)
            .unwrap_or_else(default_uri_for_user);
        ui.debug(format!("connecting to {uri}"));
        let hv: Arc<dyn Hypervisor> = Arc::new(Libvirt::connect(&uri)?);
        let store = Store::new(&paths)?;
        Ok(Context {
            paths,
            config,
            hv,
            store,
            ui,
            neighbours: "/proc/net/arp".into(),
        })
    }

    /// The runner for libguestfs and other tools under `settings` (force_tcg for qemu).
    pub fn runner(&self, settings: &Settings) -> Runner {
        Runner::new(VirtType::from_setting(settings.text("virt-type")))
            .show_output(self.ui.debug)
            .debug(self.ui.debug)
    }
}

/// qemu:///system for root, qemu:///session for everyone else (as virsh does).
pub fn default_uri_for_user() -> String {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        "qemu:///system".into()
    } else {
        "qemu:///session".into()
    }
}
