//! `--delete`: instances by name, a template with `--all`, or everything after a question.

use super::show::record_json;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hypervisor::DomainNames;
use crate::instance;
use crate::records::Record;
use crate::template;
use std::io::IsTerminal;

pub(super) fn delete(
    ctx: &Context,
    names: &[String],
    all: bool,
    yes: bool,
    json: bool,
) -> Result<()> {
    if names.is_empty() {
        if all {
            return delete_everything(ctx, yes, json);
        }
        return Err(Error::Config(
            "--delete needs the <name> of an instance (--delete --all without a name: every instance and template)".into(),
        ));
    }
    let mut deleted = Vec::new();
    for name in names {
        match ctx.store.load(name)? {
            Some(record) => {
                instance::remove(&ctx.on(&record.uri)?, &record)?;
                ctx.ui.info(format!("deleted {name}"));
                deleted.push(record);
            }
            None if all && ctx.config.has_template(name) => {
                delete_template(ctx, name)?;
            }
            None => return Err(Error::InstanceNotFound(name.clone())),
        }
    }
    if json {
        print_deleted(&deleted);
    }
    Ok(())
}

/// `--json`: the records of the deleted instances, as they were, in state `deleted`.
fn print_deleted(records: &[Record]) {
    let none = DomainNames::default();
    let rows: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut row = record_json(&none, r);
            row["state"] = "deleted".into();
            row
        })
        .collect();
    crate::outln!("{}", serde_json::to_string_pretty(&rows).expect("json"));
}

/// `--delete --all` without a name: every instance, then every template (clones first,
/// so no template is in use), once the user said yes.
fn delete_everything(ctx: &Context, yes: bool, json: bool) -> Result<()> {
    let (records, problems) = ctx.store.all()?;
    for p in problems {
        ctx.ui.warn(p);
    }
    let (templates, instances): (Vec<Record>, Vec<Record>) =
        records.into_iter().partition(|r| r.is_template());
    let mut listed: Vec<String> = instances.iter().map(|r| r.name.clone()).collect();
    listed.extend(templates.iter().map(|t| format!("template {}", t.template)));
    if listed.is_empty() || (!yes && !confirm(&listed.join(", "))?) {
        ctx.ui.info(match listed.is_empty() {
            true => "nothing to delete",
            false => "nothing deleted",
        });
        if json {
            print_deleted(&[]);
        }
        return Ok(());
    }
    for record in &instances {
        instance::remove(&ctx.on(&record.uri)?, record)?;
        ctx.ui.info(format!("deleted {}", record.name));
    }
    for t in &templates {
        delete_template(ctx, &t.template)?;
    }
    if json {
        print_deleted(&instances);
    }
    Ok(())
}

/// Ask on the terminal; without one, refuse (a script must say --yes).
fn confirm(what: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::Config(format!(
            "--delete --all would delete: {what}; no terminal to ask on, so nothing was deleted (add --yes to confirm)"
        )));
    }
    eprint!("About to delete: {what}\nContinue? [y/n] > ");
    let mut answer = String::new();
    stdin
        .read_line(&mut answer)
        .map_err(|e| Error::io("standard input (the answer)", e))?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

fn delete_template(ctx: &Context, name: &str) -> Result<()> {
    let _lock = crate::lock::Lock::exclusive(
        &ctx.paths
            .locks()
            .join(format!("{}.lock", ctx.template_stem(name))),
    )?;
    let users = template::dependents(ctx, name)?;
    if !users.is_empty() {
        return Err(Error::TemplateInUse {
            template: name.to_string(),
            instances: users,
        });
    }
    template::remove(ctx, name)?;
    ctx.ui.info(format!("deleted template {name}"));
    Ok(())
}
