//! `--login`: ssh or sftp into an instance (started first when stopped).

use super::app::{bring_up, existing};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::records::{Phase, Record};
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;

/// What to run in the guest instead of a login shell.
pub(super) enum Remote<'a> {
    Shell,
    /// `--command`: a shell command line, as the user wrote it.
    Line(&'a str),
    /// After `--`: a command and its arguments, each passed as it is.
    Argv(&'a [String]),
}

pub(super) fn login(ctx: &Context, name: &str, sftp: bool, remote: Remote) -> Result<i32> {
    let command = match remote {
        Remote::Shell => None,
        Remote::Line(line) => Some(line.to_string()),
        Remote::Argv(argv) => Some(quoted(argv)?),
    };
    let (record, address) = reachable(ctx, name)?;
    let tool = if sftp { "sftp" } else { "ssh" };
    // A terminal for interactive logins only: a forced tty would mangle piped output.
    let interactive = command.is_none() && std::io::stdin().is_terminal();
    let tty: &[&str] = match (sftp, interactive) {
        (true, _) => &[],
        (false, true) => &["-t"],
        (false, false) => &["-T"],
    };
    let shared = shared_connection(ctx, name);
    let options: Vec<&str> = tty
        .iter()
        .copied()
        .chain(shared.iter().map(String::as_str))
        .collect();
    let mut cmd = crate::records::ssh::command(tool, &record, &record.user, &address, &options);
    if let Some(c) = command {
        // ssh sends the command as one string for the remote login shell to run.
        cmd.arg(c);
    }
    ctx.ui.debug(format!("exec {cmd:?}"));
    let err = cmd.exec();
    Err(crate::runner::spawn_error(tool, err).into())
}

/// The options of the connection kept to instance `name`, for its pinned host key; none
/// (ssh connects on its own, and finds no key to accept) when no key is pinned.
fn shared_connection(ctx: &Context, name: &str) -> Vec<String> {
    crate::records::inventory::known_host(&ctx.paths, name)
        .and_then(|pinned| crate::records::ssh::shared_connection(&ctx.paths, name, &pinned))
        .unwrap_or_default()
}

/// A made instance, started and waited for if it was stopped, and its address.
fn reachable(ctx: &Context, name: &str) -> Result<(Record, String)> {
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
            why: format!("it has no known address; restart it with: virt-up {name} --restart"),
        })?;
    Ok((record, address))
}

/// `--copy SRC DST`: one side is `NAME:PATH`, an instance's path, the other a local path;
/// scp's exit code is returned.
pub(super) fn copy(ctx: &Context, src: &str, dst: &str) -> Result<i32> {
    let (name, remote, local, to_guest) = match (instance_path(src), instance_path(dst)) {
        (None, Some((name, path))) => (name, path, src, true),
        (Some((name, path)), None) => (name, path, dst, false),
        _ => {
            return Err(Error::Usage(format!(
                "--copy {src} {dst}: exactly one side is NAME:PATH, an instance's path (the other a local one)"
            )))
        }
    };
    crate::names::validate_instance_name(name)?;
    let (record, address) = reachable(ctx, name)?;
    let shared = shared_connection(ctx, name);
    let mut cmd = crate::records::ssh::scp(
        &record,
        &record.user,
        &address,
        (remote, std::path::Path::new(local)),
        to_guest,
        &shared,
    );
    ctx.ui.debug(format!("run {cmd:?}"));
    let status = cmd
        .status()
        .map_err(|e| crate::runner::spawn_error("scp", e))?;
    Ok(status.code().unwrap_or(1))
}

/// `NAME:PATH` as (NAME, PATH); a path with a '/' before its first ':' is local.
fn instance_path(arg: &str) -> Option<(&str, &str)> {
    let (name, path) = arg.split_once(':')?;
    (!name.is_empty() && !name.contains('/')).then_some((name, path))
}

/// One line the remote (POSIX) shell splits back into exactly `argv`: ssh can only send
/// the guest a string, so each word is quoted for it.
fn quoted(argv: &[String]) -> Result<String> {
    let words = argv
        .iter()
        .map(|w| {
            shlex::try_quote(w)
                .map_err(|_| Error::Config(format!("the command's argument {w:?} has a NUL byte")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_path_is_name_colon_path_and_a_local_path_may_have_colons() {
        assert_eq!(
            instance_path("web1:/etc/hosts"),
            Some(("web1", "/etc/hosts"))
        );
        assert_eq!(instance_path("web1:"), Some(("web1", "")));
        assert_eq!(instance_path("./a:b"), None);
        assert_eq!(instance_path("/tmp/x"), None);
        assert_eq!(instance_path(":x"), None);
    }

    #[test]
    fn an_argv_survives_the_remote_shell_word_for_word() {
        let argv: Vec<String> = ["sh", "-c", "echo \"$1\"; exit 3", "-", "a b'c $HOME"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let line = quoted(&argv).unwrap();
        // What a POSIX shell makes of the line is the argv again.
        assert_eq!(shlex::split(&line).unwrap(), argv);
        let out = std::process::Command::new("sh")
            .args(["-c", &line])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b'c $HOME\n");
        assert_eq!(out.status.code(), Some(3));
    }
}
