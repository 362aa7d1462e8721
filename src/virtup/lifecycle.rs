//! `--start`, `--stop`, `--restart`, `--reset`: the instances' lifecycle, several names at
//! once.

use super::app::{bring_up, concurrently, existing, finish, print_records, template_plan};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::instance::{self, Stopped};
use crate::records::{Phase, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verb {
    Start,
    Stop,
    Restart,
    Reset,
}

/// Apply `verb` to every name, concurrently; every name is looked up first, so a typo
/// changes nothing.
pub(super) fn run(ctx: &Context, verb: Verb, names: &[String], json: bool) -> Result<()> {
    if names.is_empty() {
        return Err(Error::Config(format!(
            "{} needs the <name> of an instance",
            label(verb)
        )));
    }
    let records = names
        .iter()
        .map(|name| usable(ctx, name))
        .collect::<Result<Vec<Record>>>()?;
    let (done, failures) = concurrently(
        ctx,
        &records,
        |r| r.name.clone(),
        |r| apply(&ctx.on(&r.uri)?, verb, r),
    )?;
    if json {
        print_records(ctx, &done)?;
    }
    finish(names.len(), failures)
}

fn label(verb: Verb) -> &'static str {
    match verb {
        Verb::Start => "--start",
        Verb::Stop => "--stop",
        Verb::Restart => "--restart",
        Verb::Reset => "--reset",
    }
}

/// A made instance of `name`, refusing a template and one still being created.
pub(super) fn usable(ctx: &Context, name: &str) -> Result<Record> {
    let record = existing(ctx, name)?;
    if record.phase == Phase::Creating {
        return Err(Error::InstanceNotUsable {
            name: name.to_string(),
            why: "it is still being created".into(),
        });
    }
    Ok(record)
}

fn apply(ctx: &Context, verb: Verb, record: &Record) -> Result<Record> {
    if verb == Verb::Reset {
        return reset(ctx, record);
    }
    if verb != Verb::Start {
        stop(ctx, record)?;
    }
    if verb == Verb::Stop {
        return Ok(record.clone());
    }
    let ready = bring_up(ctx, record)?;
    ctx.ui.info(format!(
        "{} is ready at {}",
        ready.name,
        ready.address.as_deref().unwrap_or("?")
    ));
    Ok(ready)
}

/// A fresh disk and the same identity; the old disk's state is thrown away, so the guest
/// is turned off rather than asked to shut down.
fn reset(ctx: &Context, record: &Record) -> Result<Record> {
    let plan = template_plan(ctx, record)?;
    ctx.ui.info(format!("resetting {}", record.name));
    let ready = instance::reset(ctx, &plan, record)?;
    ctx.ui.info(format!(
        "{} is reset and ready at {}",
        ready.name,
        ready.address.as_deref().unwrap_or("?")
    ));
    Ok(ready)
}

pub(super) fn stop(ctx: &Context, record: &Record) -> Result<()> {
    let name = &record.name;
    instance::require_domain(ctx, record)?;
    let timeout = template_plan(ctx, record)?.timeouts.stop;
    match instance::stop(ctx, record, timeout)? {
        Stopped::Already => ctx.ui.info(format!("{name} is not running")),
        Stopped::PoweredOff => ctx.ui.info(format!("{name} is stopped")),
        Stopped::TurnedOff => ctx.ui.warn(format!(
            "{name} did not power off within {} s (the 'stop-timeout' setting), so it was turned off",
            timeout.as_secs()
        )),
    }
    Ok(())
}
