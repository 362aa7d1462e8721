//! What every operation needs, set up once by the front-end and passed down.

use crate::config::plan::{self, VirtType};
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

#[derive(Clone)]
pub struct Context {
    pub paths: Paths,
    pub config: Arc<Config>,
    pub hv: Arc<dyn Hypervisor>,
    pub store: Store,
    pub ui: Ui,
    /// The kernel's neighbour table, read for `address-source = arp`.
    pub neighbours: std::path::PathBuf,
    /// The ssh destination guests are reached through (ProxyJump), if not directly.
    pub jump: Option<String>,
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
            Some(uri) => connect(&ui, &uri)?,
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
        let jump = crate::reach::jump_for(&hv.uri(), &plan::jump_setting(&config)?);
        Ok(Context {
            paths,
            config: Arc::new(config),
            hv,
            store,
            ui,
            neighbours: "/proc/net/arp".into(),
            jump,
        })
    }

    /// The network `network`, made first when it is virt-up's own and missing (said so:
    /// it changes the host).
    pub fn ensure_network(&self, network: &str) -> Result<()> {
        if let Some(gateway) = self.hv.ensure_network(network)? {
            self.ui.info(format!(
                "made libvirt network '{network}' on {gateway}/24 (NAT, STP off, autostarted) on {}",
                self.hv.uri()
            ));
        }
        Ok(())
    }

    /// This context on the libvirt host `uri` (where an instance was made): itself if it is
    /// connected there, else a new connection (an error naming the host if it is down).
    pub fn on(&self, uri: &str) -> Result<Context> {
        if self.is_here(uri) {
            return Ok(self.clone());
        }
        // A configured host's own jump-host, else [common]'s.
        let setting = match plan::hosts(&self.config)?
            .into_iter()
            .find(|h| h.uri == uri)
        {
            Some(host) => host.jump,
            None => plan::jump_setting(&self.config)?,
        };
        self.connected(uri, &setting)
    }

    /// This context on the configured `[host NAME]` `host`.
    pub fn on_host(&self, host: &plan::HostEntry) -> Result<Context> {
        match self.is_here(&host.uri) {
            true => Ok(Context {
                jump: crate::reach::jump_for(&host.uri, &host.jump),
                ..self.clone()
            }),
            false => self.connected(&host.uri, &host.jump),
        }
    }

    fn connected(&self, uri: &str, jump: &crate::reach::JumpSetting) -> Result<Context> {
        let hv: Arc<dyn Hypervisor> = Arc::new(connect(&self.ui, uri)?);
        Ok(Context {
            hv,
            jump: crate::reach::jump_for(uri, jump),
            ..self.clone()
        })
    }

    /// True when `uri` (a record's) is this connection's: the URI libvirt reported when
    /// the record was made. (qemu:///system and qemu:///session are two daemons with two
    /// sets of domains; so are two hosts.)
    pub fn is_here(&self, uri: &str) -> bool {
        uri == self.hv.uri()
    }

    /// True when the libvirt host is another machine: its files are not ours to read.
    pub fn is_remote(&self) -> bool {
        crate::hypervisor::is_remote(&self.hv.uri())
    }

    /// The stem of `template`'s record (and login key and lock) on this libvirt host:
    /// `TEMPLATE-<name>` on qemu:///system, `TEMPLATE-<name>@<scope>` on any other daemon
    /// (a remote host by its name, a local session daemon as `session`), so that one
    /// template on several hosts has a record on each. A record made on another local
    /// daemon before records had a scope keeps its plain stem.
    pub fn template_stem(&self, template: &str) -> String {
        let uri = self.hv.uri();
        let Some(scope) = crate::reach::record_scope(&uri) else {
            return crate::names::template_stem(template);
        };
        let scoped = crate::names::template_stem_on(template, Some(&scope));
        let plain = crate::names::template_stem(template);
        let legacy = !self.is_remote()
            && matches!(self.store.load(&scoped), Ok(None))
            && matches!(self.store.load(&plain), Ok(Some(r)) if r.uri == uri);
        match legacy {
            true => plain,
            false => scoped,
        }
    }

    /// Where the serial console of `domain` is logged: under the data dir on this machine;
    /// on a remote host, beside libvirt's own domain logs there (virtlogd writes it, as
    /// root, on that host).
    pub fn console_log(&self, domain: &str) -> std::path::PathBuf {
        match self.is_remote() {
            true => format!("/var/log/libvirt/qemu/{domain}-console.log").into(),
            false => self.paths.console_logs().join(format!("{domain}.log")),
        }
    }

    /// The runner for libguestfs and other tools for guests of `virt_type` (force_tcg for
    /// qemu).
    pub fn runner(&self, virt_type: VirtType) -> Runner {
        Runner::new(virt_type)
            .show_output(self.ui.debug)
            .debug(self.ui.debug)
    }
}

fn connect(ui: &Ui, uri: &str) -> Result<Libvirt> {
    ui.debug(format!("connecting to {uri}"));
    Libvirt::connect(uri)
}
