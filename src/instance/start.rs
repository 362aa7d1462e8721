//! Starting an instance made earlier, checked as a new one is.

use super::{save_and_publish, wait_ready};
use crate::config::plan::{AddressSource, TemplatePlan};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::records::inventory;
use crate::records::Record;

/// Start the made instance `record` if it is stopped, and wait until it is ready as a new
/// one is (address, SSH, its own host key). `plan` is its template's, for the timeouts.
/// The instance is kept whatever happens: a start that times out leaves it running.
pub fn start(ctx: &Context, plan: &TemplatePlan, record: &Record) -> Result<Record> {
    let name = &record.name;
    let _line = ctx.ui.line(name);
    super::require_domain(ctx, record)?;
    let host_key = inventory::known_host(&ctx.paths, name).ok_or_else(|| {
        Error::InstanceNotUsable {
            name: name.clone(),
            why: format!(
                "no host key recorded in {}, so its SSH server cannot be checked; recreate it (virt-up {name} --delete first)",
                ctx.paths.known_hosts().display()
            ),
        }
    })?;
    if !ctx.hv.is_running(&record.domain)? {
        // A connection kept to the guest before it stopped leads nowhere now.
        crate::records::ssh::forget_connection(&ctx.paths, name);
        ctx.ui.info(format!("starting {name}"));
        ctx.ui.begin(name, "boot");
        // Another run may have started it meanwhile: only a domain still stopped fails.
        if let Err(e) = ctx.hv.start(&record.domain) {
            if !ctx.hv.is_running(&record.domain)? {
                return Err(e);
            }
        }
    }
    let source = AddressSource::parse(&record.address_source).unwrap_or(plan.address_source);
    let address = wait_ready(ctx, plan, record, (source, false), &host_key)?;
    let mut record = record.clone();
    if record.address.as_deref() != Some(address.as_str()) {
        record.address = Some(address);
        save_and_publish(ctx, &record)?;
    }
    Ok(record)
}
