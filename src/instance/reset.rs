//! Resetting an instance: its disk thrown away and cloned again from its template, and the
//! identity it was given at creation applied again at the next boot. The identity lives in
//! the instance's seed volume (host name, host key, machine-id, users, authorized keys,
//! password hashes), which is kept: so the instance comes back with the same name, MAC
//! (hence the same DHCP lease), login key and pinned host key. A warm reset writes the
//! seed's machine-id again too; a cold one's systemd makes a new one, as at a cold create. The domain
//! definition is kept too. An instance made warm is reset warm: restored from its
//! template's warm image onto a new overlay, in the time of a warm create; otherwise (or if
//! that fails, said) the new disk is a clone of the template's and boots cold.

use super::create::{clone_volume, template_volume};
use super::start;
use crate::config::plan::{self, TemplatePlan};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::records::inventory;
use crate::records::{Record, Warm};

/// Reset `record`'s instance (its template's plan: pool, timeouts) and wait until it is
/// ready; its record after it. Everything is checked before anything is removed.
pub fn reset(ctx: &Context, plan: &TemplatePlan, record: &Record) -> Result<Record> {
    super::require_domain(ctx, record)?;
    refuse_unresettable(ctx, record)?;
    let template_disk = record.from.clone().ok_or_else(|| {
        not_usable(
            record,
            "its record does not say which template disk it was cloned from",
        )
    })?;
    let base = template_volume(ctx, &record.template, &template_disk)?;
    let capacity = record
        .size
        .as_deref()
        .map(plan::parse_size)
        .transpose()
        .map_err(|e| not_usable(record, &format!("its recorded size: {e}")))?;

    ctx.hv.destroy(&record.domain)?;
    crate::records::ssh::forget_connection(&ctx.paths, &record.name);
    // The snapshots are inside the disk about to be removed: their metadata goes with it.
    for snapshot in ctx.hv.snapshots(&record.domain)? {
        ctx.hv.delete_snapshot(&record.domain, &snapshot.name)?;
    }
    let mut fresh = record.clone();
    fresh.warm = reset_warm(ctx, plan, record)?;
    if fresh.warm.is_none() {
        clone_volume(ctx, &plan.host.pool, &base, capacity, record)?;
    }
    super::save_and_publish(ctx, &fresh)?;
    // Its old disk was an overlay of a warm image that may have been replaced since.
    crate::template::warm::release(ctx, record)?;
    // A warm reset left it running: this only waits for it.
    start(ctx, plan, &fresh)
}

/// Restore the stopped instance from its template's warm image if it was made warm (so
/// its devices and settings are the warm image's); the image used, or None when the
/// instance is to boot cold (a failed attempt is said, and undone).
fn reset_warm(ctx: &Context, plan: &TemplatePlan, record: &Record) -> Result<Option<Warm>> {
    let template = ctx.store.load(&ctx.template_stem(&record.template))?;
    let Some(warm) = template
        .and_then(|t| t.warm)
        .filter(|_| record.warm.is_some())
    else {
        return Ok(None);
    };
    if !plan.warm {
        ctx.ui
            .debug(format!("{}: resetting cold: warm = no", record.name));
        return Ok(None);
    }
    ctx.hv.delete_volume(&record.disk)?;
    match super::warm::reset(ctx, plan, record, &warm) {
        Ok(()) => Ok(Some(warm)),
        Err(e) if e.is_interrupted() => Err(e),
        Err(e) => {
            ctx.ui.warn(format!(
                "{}: not restored warm ({e}); booting it cold",
                record.name
            ));
            super::warm::undo_reset(ctx, record)?;
            Ok(None)
        }
    }
}

/// An instance whose identity cannot be applied again by its next boot is refused, before
/// anything changes.
fn refuse_unresettable(ctx: &Context, record: &Record) -> Result<()> {
    if record.identity != plan::Identity::Firstboot.to_string() {
        return Err(not_usable(
            record,
            &format!(
                "its identity was written into its disk by virt-sysprep (identity = {}), so a new disk would lose it; delete it and create it again",
                record.identity
            ),
        ));
    }
    let seed = record
        .extra_files
        .first()
        .ok_or_else(|| not_usable(record, "its record lists no identity seed"))?;
    if ctx.hv.volume(seed)?.is_none() {
        return Err(not_usable(
            record,
            &format!(
                "its identity seed {} is not in the pool; delete it and create it again",
                seed.display()
            ),
        ));
    }
    if inventory::known_host(&ctx.paths, &record.name).is_none() {
        return Err(not_usable(
            record,
            &format!(
                "no host key is recorded in {}; delete it and create it again",
                ctx.paths.known_hosts().display()
            ),
        ));
    }
    Ok(())
}

fn not_usable(record: &Record, why: &str) -> Error {
    Error::InstanceNotUsable {
        name: record.name.clone(),
        why: why.to_string(),
    }
}
