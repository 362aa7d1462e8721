//! `--snapshot`, `--snapshots`, `--revert`, `--delete-snapshot`: disk snapshots of one
//! instance through libvirt (internal qcow2 snapshots, taken and reverted while it is
//! stopped; see hypervisor/snapshot.rs for why).

use super::app::bring_up;
use super::lifecycle::{stop, usable};
use crate::clock;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::instance;
use crate::names::validate_snapshot_name;
use crate::records::Record;

/// What to do with the instance's snapshots.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action<'a> {
    Create(&'a str),
    List { json: bool },
    Revert(&'a str),
    Delete(&'a str),
}

pub(super) fn run(ctx: &Context, name: &str, action: Action) -> Result<()> {
    if let Action::Create(s) | Action::Revert(s) | Action::Delete(s) = action {
        validate_snapshot_name(s)?;
    }
    let record = usable(ctx, name)?;
    instance::require_domain(ctx, &record)?;
    match action {
        Action::Create(snap) => create(ctx, &record, snap),
        Action::List { json } => list(ctx, &record, json),
        Action::Revert(snap) => revert(ctx, &record, snap),
        Action::Delete(snap) => {
            known(ctx, &record, snap)?;
            ctx.hv.delete_snapshot(&record.domain, snap)?;
            ctx.ui.info(format!("deleted snapshot {snap} of {name}"));
            Ok(())
        }
    }
}

/// A snapshot is taken of the stopped disk (libvirt takes a running qcow2 domain's
/// internal snapshot only with its memory, which the raw seed disk cannot hold); a
/// running instance is stopped for it and started again afterwards.
fn create(ctx: &Context, record: &Record, snap: &str) -> Result<()> {
    let name = &record.name;
    if ctx
        .hv
        .snapshots(&record.domain)?
        .iter()
        .any(|s| s.name == snap)
    {
        return Err(Error::InstanceNotUsable {
            name: name.clone(),
            why: format!("it already has a snapshot '{snap}' (--delete-snapshot {snap} first)"),
        });
    }
    let was_running = stop_for(ctx, record, "the snapshot")?;
    ctx.hv.create_snapshot(&record.domain, snap, &record.disk)?;
    ctx.ui.info(format!("snapshot {snap} of {name} taken"));
    restart_if(ctx, record, was_running)
}

fn revert(ctx: &Context, record: &Record, snap: &str) -> Result<()> {
    known(ctx, record, snap)?;
    let was_running = stop_for(ctx, record, "the revert")?;
    ctx.hv.revert_snapshot(&record.domain, snap)?;
    // The guest is back where it was: a connection kept to it since is gone.
    crate::records::ssh::forget_connection(&ctx.paths, &record.name);
    ctx.ui
        .info(format!("{} reverted to snapshot {snap}", record.name));
    restart_if(ctx, record, was_running)
}

/// The instance's snapshots, oldest first: (name, creation time as RFC 3339).
pub(super) fn rows(ctx: &Context, record: &Record) -> Result<Vec<(String, String)>> {
    let snapshots = ctx.hv.snapshots(&record.domain)?;
    Ok(snapshots
        .iter()
        .map(|s| (s.name.clone(), clock::format_rfc3339(s.created)))
        .collect())
}

/// The rows as `--snapshots --json` and `--info --json` show them.
pub(super) fn rows_json(rows: &[(String, String)]) -> serde_json::Value {
    rows.iter()
        .map(|(n, t)| serde_json::json!({"name": n, "created": t}))
        .collect()
}

fn list(ctx: &Context, record: &Record, json: bool) -> Result<()> {
    let rows = rows(ctx, record)?;
    if json {
        let v = rows_json(&rows);
        crate::outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    if rows.is_empty() {
        ctx.ui.info(format!("{} has no snapshots", record.name));
        return Ok(());
    }
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(4);
    crate::outln!("{:width$}  CREATED", "NAME");
    for (n, t) in rows {
        crate::outln!("{n:width$}  {t}");
    }
    Ok(())
}

/// Refuse a snapshot the instance does not have, before anything is stopped.
fn known(ctx: &Context, record: &Record, snap: &str) -> Result<()> {
    if ctx
        .hv
        .snapshots(&record.domain)?
        .iter()
        .any(|s| s.name == snap)
    {
        return Ok(());
    }
    Err(Error::SnapshotNotFound {
        instance: record.name.clone(),
        snapshot: snap.to_string(),
    })
}

/// Stop a running instance, saying why; whether it was running.
fn stop_for(ctx: &Context, record: &Record, why: &str) -> Result<bool> {
    if !ctx.hv.is_running(&record.domain)? {
        return Ok(false);
    }
    ctx.ui
        .info(format!("{} is running: stopping it for {why}", record.name));
    stop(ctx, record)?;
    Ok(true)
}

fn restart_if(ctx: &Context, record: &Record, was_running: bool) -> Result<()> {
    if was_running {
        let ready = bring_up(ctx, record)?;
        ctx.ui.info(format!(
            "{} is running again at {}",
            ready.name,
            ready.address.as_deref().unwrap_or("?")
        ));
    }
    Ok(())
}
