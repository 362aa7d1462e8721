//! Removing an instance, and cleaning up those a killed run left half-made.

use super::{process_alive, publish};
use crate::context::Context;
use crate::error::Result;
use crate::fsutil::remove_if_exists;
use crate::lock::Lock;
use crate::records::inventory;
use crate::records::{Phase, Record};
use std::path::PathBuf;

/// Stop and undefine the domain; remove disks, seed, keys, known_hosts entry, console log,
/// DHCP reservation and record; regenerate the inventory. The MAC stays reserved for the
/// name.
pub fn remove(ctx: &Context, record: &Record) -> Result<()> {
    discard_resources(ctx, record)?;
    {
        let _lock = Lock::exclusive(&ctx.paths.lock_file)?;
        forget(ctx, record)?;
    }
    // After the global lock: the template's lock is taken before it elsewhere.
    crate::template::warm::release(ctx, record)
}

fn discard_resources(ctx: &Context, record: &Record) -> Result<()> {
    ctx.hv.destroy(&record.domain)?;
    crate::records::ssh::forget_connection(&ctx.paths, &record.name);
    // libvirt refuses to undefine a domain that has snapshots; their data is in the disk
    // removed below anyway.
    if ctx.hv.is_defined(&record.domain)? {
        for snapshot in ctx.hv.snapshots(&record.domain)? {
            ctx.hv.delete_snapshot(&record.domain, &snapshot.name)?;
        }
    }
    ctx.hv.undefine(&record.domain)?;
    for volume in std::iter::once(&record.disk).chain(&record.extra_files) {
        ctx.hv.delete_volume(volume)?;
    }
    if let Some(reservation) = &record.reservation {
        // A reservation left behind costs an address, not the instance's removal.
        if let Err(e) = ctx.hv.release_address(&reservation.network, &record.mac) {
            ctx.ui.warn(format!(
                "{}: its address {} stays reserved on network '{}': {e}",
                record.name, reservation.address, reservation.network
            ));
        }
    }
    let keys = ctx.paths.sshkeys();
    let mut files: Vec<PathBuf> = vec![
        keys.join(&record.name),
        keys.join(format!("{}.pub", record.name)),
    ];
    // A remote host's console log is that host's file, not one here (virtlogd there
    // truncates it when the name is used again).
    if !crate::hypervisor::is_remote(&record.uri) {
        files.push(record.console_log.clone());
    }
    for f in &files {
        remove_if_exists(f)?;
    }
    Ok(())
}

/// Drop the record and its known_hosts entry and republish (caller holds the global lock).
fn forget(ctx: &Context, record: &Record) -> Result<()> {
    inventory::set_known_host(&ctx.paths, &record.name, None)?;
    ctx.store.remove(&record.name)?;
    publish(ctx)
}

/// Remove instances whose creating process died (Ctrl-C, kill, crash). Caller holds the
/// global lock, and calls [`release_abandoned`] with the result once it no longer does.
pub(super) fn clean_abandoned(ctx: &Context) -> Result<Vec<Record>> {
    let (records, _) = ctx.store.all()?;
    let abandoned: Vec<Record> = records
        .into_iter()
        .filter(|r| r.phase == Phase::Creating && !process_alive(r.pid))
        .collect();
    for r in &abandoned {
        ctx.ui.info(format!(
            "cleaning up {}, left half-made by an interrupted run (pid {})",
            r.name, r.pid
        ));
        discard_resources(ctx, r)?;
        forget(ctx, r)?;
    }
    Ok(abandoned)
}

/// The replaced warm images that instances [`clean_abandoned`] removed were made from, if
/// nothing else was made from them (without the global lock).
pub(super) fn release_abandoned(ctx: &Context, abandoned: &[Record]) -> Result<()> {
    for r in abandoned {
        crate::template::warm::release(ctx, r)?;
    }
    Ok(())
}
