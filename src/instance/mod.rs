//! Instances: a linked clone of the template disk, a new identity, a libvirt domain, and
//! the wait until SSH answers. Records are written while the guest boots; a record stays in
//! phase `creating` until the instance is ready, so a killed run is cleaned up by the next.

mod create;
mod remove;
mod reset;
mod start;
mod stop;
mod warm;

pub use create::create;
pub use remove::remove;
pub use reset::reset;
pub use start::start;
pub use stop::{stop, Stopped};

use crate::config::plan::{AddressSource, TemplatePlan};
use crate::context::Context;
use crate::error::Result;
use crate::lock::Lock;
use crate::readiness::{self, Jump, Target};
use crate::records::inventory;
use crate::records::Record;
use std::time::Instant;

/// An error unless the instance's domain is still defined (it may have been removed outside
/// virt-up), saying how to remove the rest.
pub fn require_domain(ctx: &Context, record: &Record) -> Result<()> {
    if ctx.hv.is_defined(&record.domain)? {
        return Ok(());
    }
    let name = &record.name;
    Err(crate::error::Error::InstanceNotUsable {
        name: name.clone(),
        why: format!(
            "its domain '{}' was removed outside virt-up; remove the rest with: virt-up {name} --delete",
            record.domain
        ),
    })
}

/// Wait until the booting guest has an address and answers SSH with the host key virt-up
/// made for it (`host_key`, OpenSSH public key form); its address. `sshd_listening`: the
/// guest's SSH server is known to listen already (a warm clone just restored).
fn wait_ready(
    ctx: &Context,
    plan: &TemplatePlan,
    record: &Record,
    (source, sshd_listening): (AddressSource, bool),
    host_key: &str,
) -> Result<String> {
    let name = &record.name;
    let runner = ctx.runner(plan.host.virt_type);
    let target = Target {
        domain: &record.domain,
        mac: &record.mac,
        hostname: &record.hostname,
        source,
        address_timeout: plan.timeouts.address,
        ssh_timeout: plan.timeouts.ssh,
        console_log: &record.console_log,
        neighbours: ctx.neighbours.clone(),
        jump: Jump::of(record, &runner),
        sshd_listening,
    };
    let address = wait_shown(ctx, name, &target)?;
    let mut timer = PhaseTimer::new(ctx, name);
    timer.begin("hostkey");
    // The first login opens the connection the user's first --login or --command uses.
    let shared = crate::records::ssh::shared_connection(&ctx.paths, name, host_key);
    readiness::verify_host_key(
        &runner,
        record,
        (&record.user, shared.as_deref()),
        &address,
        host_key,
    )?;
    timer.done();
    Ok(address)
}

/// [`readiness::wait_ready`] with its phases (address, then ssh) on `name`'s status line
/// and their durations reported.
fn wait_shown(ctx: &Context, name: &str, target: &Target) -> Result<String> {
    ctx.ui.begin(name, "address");
    readiness::wait_ready(ctx.hv.as_ref(), target, &mut |phase, took| {
        ctx.ui.phase(name, phase, took);
        if phase == "address" {
            ctx.ui.begin(name, "ssh");
        }
    })
}

/// Write the record and regenerate the inventory and ssh_config (under the global lock).
pub fn save_and_publish(ctx: &Context, record: &Record) -> Result<()> {
    let _lock = Lock::exclusive(&ctx.paths.lock_file)?;
    ctx.store.save(&record.name, record)?;
    publish(ctx)
}

/// Regenerate the inventory and ssh_config from the records (caller holds the lock).
pub fn publish(ctx: &Context) -> Result<()> {
    let (records, _) = ctx.store.all()?;
    inventory::write_all(&ctx.paths, &records)
}

/// The phases of one instance: each is shown on its status line while it runs and its
/// duration reported (`--debug`) when it is over.
struct PhaseTimer<'a> {
    ctx: &'a Context,
    name: &'a str,
    phase: &'static str,
    last: Instant,
}

impl<'a> PhaseTimer<'a> {
    fn new(ctx: &'a Context, name: &'a str) -> Self {
        PhaseTimer {
            ctx,
            name,
            phase: "",
            last: Instant::now(),
        }
    }
    /// `phase` starts now.
    fn begin(&mut self, phase: &'static str) {
        self.ctx.ui.begin(self.name, phase);
        self.phase = phase;
        self.last = Instant::now();
    }
    /// The phase begun last is over.
    fn done(&mut self) {
        self.ctx
            .ui
            .phase(self.name, self.phase, self.last.elapsed());
    }
}

/// True if `pid` is a live virt-up process (a recycled PID of another program is not).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim_end().starts_with("virt-up"))
        .unwrap_or(false)
}
