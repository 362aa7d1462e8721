//! Stopping an instance: ask the guest to power off (ACPI), and turn it off when it has
//! not done so in time.

use crate::context::Context;
use crate::error::Result;
use crate::records::Record;
use std::time::{Duration, Instant};

/// How often the domain's state is looked at while it shuts down.
const POLL: Duration = Duration::from_millis(100);

/// How an instance came to be stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running.
    Already,
    /// The guest powered itself off when asked.
    PoweredOff,
    /// It did not within the timeout, and was turned off.
    TurnedOff,
}

/// Stop the instance: an ACPI power-off, then, if it still runs after `timeout`, off.
pub fn stop(ctx: &Context, record: &Record, timeout: Duration) -> Result<Stopped> {
    let domain = &record.domain;
    // Whatever the guest does now, a connection kept to it must not serve the next ssh.
    crate::records::ssh::forget_connection(&ctx.paths, &record.name);
    if !ctx.hv.is_running(domain)? {
        return Ok(Stopped::Already);
    }
    // A guest that powers off between the look and the request is stopped all the same.
    if let Err(e) = ctx.hv.shutdown(domain) {
        if ctx.hv.is_running(domain)? {
            return Err(e);
        }
        return Ok(Stopped::PoweredOff);
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !ctx.hv.is_running(domain)? {
            return Ok(Stopped::PoweredOff);
        }
        std::thread::sleep(POLL);
    }
    ctx.hv.destroy(domain)?;
    Ok(Stopped::TurnedOff)
}
