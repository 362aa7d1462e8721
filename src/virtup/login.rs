//! `--login`: ssh or sftp into an instance (started first when stopped).

use super::app::{bring_up, existing};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::records::Phase;
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;

pub(super) fn login(ctx: &Context, name: &str, sftp: bool, command: Option<&str>) -> Result<i32> {
    let mut record = existing(ctx, name)?;
    if record.phase != Phase::Ready {
        return Err(Error::InstanceNotUsable {
            name: name.to_string(),
            why: "it is still being created; wait for that run to finish".into(),
        });
    }
    if !ctx.hv.is_running(&record.domain)? {
        record = bring_up(ctx, &record)?;
    }
    let address = record
        .address
        .clone()
        .ok_or_else(|| Error::InstanceNotUsable {
            name: name.to_string(),
            why: format!("it has no known address; restart it with: virt-up {name}"),
        })?;
    let tool = if sftp { "sftp" } else { "ssh" };
    // A terminal for interactive logins only: a forced tty would mangle piped output.
    let interactive = command.is_none() && std::io::stdin().is_terminal();
    let tty: &[&str] = match (sftp, interactive) {
        (true, _) => &[],
        (false, true) => &["-t"],
        (false, false) => &["-T"],
    };
    let mut cmd = crate::records::ssh::command(tool, &record, &record.user, &address, tty);
    if let Some(c) = command {
        // ssh sends the command as one string for the remote login shell to run.
        cmd.arg(c);
    }
    ctx.ui.debug(format!("exec {cmd:?}"));
    let err = cmd.exec();
    Err(crate::runner::spawn_error(tool, err).into())
}
