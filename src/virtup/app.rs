//! The `virt-up` command line dispatched to its commands, one file each (create, delete,
//! login, show, init), and what several of them share.

use super::create::{build_template, create};
use super::delete::delete;
use super::init::init;
use super::login::login;
use super::show::{list, show_paths, show_templates};
use crate::config::plan::{self};
use crate::config::Config;
use crate::context::{Context, Ui};
use crate::error::{Error, Result};
use crate::instance;
use crate::names::validate_instance_name;
use crate::paths::Paths;
use crate::playbook;
use crate::records::{Phase, Record};
use crate::virtup::cli::{Cli, Mode};
/// Run the command line; the value is the process exit code.
pub fn run(cli: Cli, paths: Paths, default_uri: Option<String>) -> Result<i32> {
    cli.check_flags().map_err(Error::Config)?;
    let ui = Ui {
        quiet: cli.quiet,
        debug: cli.debug,
    };
    if cli.init {
        return init(&paths, cli.force, &ui).map(|_| 0);
    }
    if cli.show_paths {
        return show_paths(&paths, cli.json).map(|_| 0);
    }
    let config = Config::load(&paths)?;
    for warning in &config.warnings {
        ui.warn(warning);
    }
    if cli.show_templates {
        return show_templates(&config, cli.json).map(|_| 0);
    }
    let names = cli.all_names();
    for name in &names {
        let is_template =
            cli.mode() == Mode::Template || (cli.delete && cli.all && config.has_template(name));
        if !is_template {
            validate_instance_name(name)?;
        }
    }
    let ctx = Context::open(paths, config, default_uri, ui)?;
    if cli.list {
        return list(&ctx, cli.all, cli.json).map(|_| 0);
    }
    if cli.delete {
        return delete(&ctx, &names, cli.all, cli.yes).map(|_| 0);
    }
    let name = || -> Result<&String> {
        match names.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::Config("a <name> is required".into())),
            _ => Err(Error::Config("this option takes exactly one <name>".into())),
        }
    };
    if cli.login {
        return login(&ctx, name()?, cli.sftp, cli.command.as_deref());
    }
    if let Some(pb) = &cli.playbook {
        let mut record = existing(&ctx, name()?)?;
        if record.phase == Phase::Ready && !ctx.hv.is_running(&record.domain)? {
            record = bring_up(&ctx, &record)?;
        }
        playbook::run(&ctx, &record.name, pb)?;
        return Ok(0);
    }
    if cli.no_clone {
        return build_template(&ctx, &cli, &names).map(|_| 0);
    }
    if names.is_empty() {
        return Err(Error::Config(
            "nothing to do: give an instance <name> (see --help)".into(),
        ));
    }
    create(&ctx, &cli, &names).map(|_| 0)
}

/// Start a made instance if it is stopped and wait until it is ready.
pub(super) fn bring_up(ctx: &Context, record: &Record) -> Result<Record> {
    let plan = plan::template(&ctx.config, &ctx.paths, &record.template).map_err(|e| {
        Error::Config(format!(
            "{}: made from template '{}': {e}",
            record.name, record.template
        ))
    })?;
    instance::start(ctx, &plan, record)
}

pub(super) fn existing(ctx: &Context, name: &str) -> Result<Record> {
    ctx.store
        .load(name)?
        .filter(|r| !r.is_template())
        .ok_or_else(|| Error::InstanceNotFound(name.to_string()))
}
