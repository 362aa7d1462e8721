//! The `virt-up` command line dispatched to its commands, one file each (create, delete,
//! login, show, init), and what several of them share.

use super::create::{build_template, create};
use super::delete::delete;
use super::init::init;
use super::lifecycle::{self, Verb};
use super::login::{copy, login, Remote};
use super::show::{info, list, record_json, show_paths, show_templates};
use super::snapshot::{self, Action};
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
use std::sync::Mutex;

/// Run the command line; the value is the process exit code.
pub fn run(cli: Cli, paths: Paths, default_uri: Option<String>) -> Result<i32> {
    cli.check_flags().map_err(Error::Config)?;
    let ui = Ui::new(cli.quiet, cli.debug);
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
        return show_templates(&paths, &config, cli.json, cli.quiet).map(|_| 0);
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
        return list(&ctx, &names, cli.all, cli.json, cli.quiet).map(|_| 0);
    }
    if cli.delete {
        return delete(&ctx, &names, cli.all, cli.yes, cli.json).map(|_| 0);
    }
    let verb = match cli.mode() {
        Mode::Start => Some(Verb::Start),
        Mode::Stop => Some(Verb::Stop),
        Mode::Restart => Some(Verb::Restart),
        Mode::Reset => Some(Verb::Reset),
        _ => None,
    };
    if let Some(verb) = verb {
        return lifecycle::run(&ctx, verb, &names, cli.json).map(|_| 0);
    }
    // One instance is worked on where it lives, whatever libvirt host this run names.
    let ctx = match names.as_slice() {
        [one] => match ctx.store.load(one)? {
            Some(record) if !record.is_template() => ctx.on(&record.uri)?,
            _ => ctx,
        },
        _ => ctx,
    };
    let name = || -> Result<&String> {
        match names.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::Config("a <name> is required".into())),
            _ => Err(Error::Config("this option takes exactly one <name>".into())),
        }
    };
    if cli.login {
        let remote = match (&cli.command, cli.argv.is_empty()) {
            (Some(line), _) => Remote::Line(line),
            (None, false) => Remote::Argv(&cli.argv),
            (None, true) => Remote::Shell,
        };
        return login(&ctx, name()?, cli.sftp, remote);
    }
    if let [src, dst] = cli.copy.as_slice() {
        return copy(&ctx, src, dst);
    }
    let action = match (&cli.snapshot, &cli.revert, &cli.delete_snapshot) {
        (Some(s), _, _) => Some(Action::Create(s)),
        (_, Some(s), _) => Some(Action::Revert(s)),
        (_, _, Some(s)) => Some(Action::Delete(s)),
        _ if cli.snapshots => Some(Action::List { json: cli.json }),
        _ => None,
    };
    if let Some(action) = action {
        return snapshot::run(&ctx, name()?, action).map(|_| 0);
    }
    if cli.info {
        return info(&ctx, name()?, cli.json).map(|_| 0);
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
    instance::start(ctx, &template_plan(ctx, record)?, record)
}

/// The plan of the template `record` was made from (its pool, its timeouts).
pub(super) fn template_plan(ctx: &Context, record: &Record) -> Result<plan::TemplatePlan> {
    plan::template(&ctx.config, &ctx.paths, &record.template).map_err(|e| {
        Error::Config(format!(
            "{}: made from template '{}': {e}",
            record.name, record.template
        ))
    })
}

pub(super) fn existing(ctx: &Context, name: &str) -> Result<Record> {
    ctx.store
        .load(name)?
        .filter(|r| !r.is_template())
        .ok_or_else(|| Error::InstanceNotFound(name.to_string()))
}

/// The names a command failed on, each with its error.
pub(super) type Failures = Vec<(String, Error)>;

/// Run `work` on every item, at most `parallel` (the setting) at a time: the records it
/// made, in the items' order, and the failures with the name each belongs to.
pub(super) fn concurrently<T: Sync>(
    ctx: &Context,
    items: &[T],
    name_of: impl Fn(&T) -> String + Sync,
    work: impl Fn(&T) -> Result<Record> + Sync,
) -> Result<(Vec<Record>, Failures)> {
    let workers = plan::parallel(&ctx.config)?.clamp(1, items.len().max(1));
    let queue = Mutex::new(items.iter().enumerate());
    let done = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let Some((i, item)) = queue.lock().expect("queue").next() else {
                    break;
                };
                match work(item) {
                    Ok(r) => done.lock().expect("done").push((i, r)),
                    Err(e) => failures.lock().expect("failures").push((name_of(item), e)),
                }
            });
        }
    });
    let mut done = done.into_inner().expect("done");
    done.sort_by_key(|(i, _)| *i);
    Ok((
        done.into_iter().map(|(_, r)| r).collect(),
        failures.into_inner().expect("failures"),
    ))
}

/// The outcome of a command on `total` names: one failure of one name is that error;
/// otherwise each failure is printed and the error says how many.
pub(super) fn finish(total: usize, failures: Failures) -> Result<()> {
    match failures.len() {
        0 => Ok(()),
        1 if total == 1 => Err(failures.into_iter().next().expect("one").1),
        n => {
            for (name, e) in &failures {
                eprintln!("virt-up: {name}: {e}");
            }
            Err(Error::SomeFailed { failed: n, total })
        }
    }
}

/// `--json` of a command on instances: their records and live state, one array on stdout.
pub(super) fn print_records(ctx: &Context, records: &[Record]) -> Result<()> {
    let domains = ctx.hv.domains()?;
    let rows: Vec<serde_json::Value> = records.iter().map(|r| record_json(&domains, r)).collect();
    crate::outln!("{}", serde_json::to_string_pretty(&rows).expect("json"));
    Ok(())
}
