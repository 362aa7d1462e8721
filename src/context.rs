//! What every operation needs, set up once by the front-end and passed down.

use crate::config::plan::VirtType;
use crate::config::Config;
use crate::error::Result;
use crate::hypervisor::{Hypervisor, Libvirt};
use crate::paths::Paths;
use crate::records::Store;
use crate::runner::Runner;
use crate::status::{LineGuard, Lines};
use std::sync::Arc;
use std::time::Duration;

/// How much the tool says, and its status lines on a terminal.
///
/// The status lines ([`Lines`]) say what each instance or template is at while it works;
/// they are drawn only when stderr is a terminal, and never with `--quiet` or `--debug`
/// (the debug lines, one per finished phase, would be cut up by the redraws).
#[derive(Debug, Clone, Default)]
pub struct Ui {
    pub quiet: bool,
    pub debug: bool,
    pub lines: Lines,
}

impl Ui {
    /// The front-end's: status lines when stderr is a terminal, unless `quiet` or `debug`.
    pub fn new(quiet: bool, debug: bool) -> Ui {
        Ui {
            quiet,
            debug,
            lines: Lines::on_stderr(!quiet && !debug),
        }
    }
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            self.lines.print(|| eprintln!("{}", msg.as_ref()));
        }
    }
    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.debug {
            crate::log::debug(msg.as_ref());
        }
    }
    pub fn warn(&self, msg: impl AsRef<str>) {
        self.lines.print(|| eprintln!("warning: {}", msg.as_ref()));
    }
    /// `name` (an instance, a template) starts `phase`: its status line says so.
    pub fn begin(&self, name: &str, phase: &str) {
        self.lines.show(name, phase);
    }
    /// `name`'s status line while the guard lives (see [`Lines::line`]).
    pub fn line(&self, name: &str) -> LineGuard {
        self.lines.line(name)
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
    /// Load the configuration and connect to libvirt (URI: the libvirt-uri setting, else
    /// LIBVIRT_DEFAULT_URI, else the one libvirt picks by its own rules).
    pub fn open(
        paths: Paths,
        config: Config,
        default_uri: Option<String>,
        ui: Ui,
    ) -> Result<Context> {
        let hv = match config.libvirt_uri()?.or(default_uri) {
            Some(uri) => {
                ui.debug(format!("connecting to {uri}"));
                Libvirt::connect(&uri)?
            }
            None => {
                let hv = Libvirt::connect_default()?;
                ui.debug(format!("connected to libvirt's default URI, {}", hv.uri()));
                hv
            }
        };
        let hv: Arc<dyn Hypervisor> = Arc::new(hv);
        Context::with_hypervisor(paths, config, hv, ui)
    }

    /// A context on a given hypervisor (a test's, or one connected by the caller).
    pub fn with_hypervisor(
        paths: Paths,
        config: Config,
        hv: Arc<dyn Hypervisor>,
        ui: Ui,
    ) -> Result<Context> {
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

    /// The runner for libguestfs and other tools for guests of `virt_type` (force_tcg for
    /// qemu).
    pub fn runner(&self, virt_type: VirtType) -> Runner {
        Runner::new(virt_type)
            .show_output(self.ui.debug)
            .debug(self.ui.debug)
    }
}
