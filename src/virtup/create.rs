//! Creating instances (and `--no-clone` templates); existing ones are started instead.

use super::app::{bring_up, concurrently, finish, print_records};
use crate::config::plan::{self, InstancePlan, Overrides};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::instance;
use crate::placement::{self, Candidate, Instance, Load};
use crate::records::{Phase, Record};
use crate::virtup::cli::Cli;
use crate::{playbook, template};
use std::path::{Path, PathBuf};

/// `--no-clone`: the template is the <name> or `--template` (as the original tool took it).
pub(super) fn build_template(ctx: &Context, cli: &Cli, names: &[String]) -> Result<()> {
    let template_name = match (cli.template.as_deref(), names) {
        (Some(t), []) => t,
        (None, [one]) => one.as_str(),
        (Some(t), [one]) if t == one => t,
        (None, []) => {
            return Err(Error::Config(
                "--no-clone builds a template: give its name as <name> or --template".into(),
            ))
        }
        _ => {
            return Err(Error::Config(
                "--no-clone builds one template: give its name once, as <name> or --template"
                    .into(),
            ))
        }
    };
    let plan = instance_plan(ctx, cli, template_name)?;
    let on = template_home(ctx, &plan)?;
    let record = template::ensure(&on, &plan.template, cli.force)?;
    with_warm_image(&on, &plan, record)?;
    ctx.ui.info(format!("template {template_name} is ready"));
    Ok(())
}

/// Create the names that do not exist; start (if stopped) and wait for those that do, as
/// the original tool did ("just start the instance if it already exists").
pub(super) fn create(ctx: &Context, cli: &Cli, names: &[String]) -> Result<()> {
    let mut fresh = Vec::new();
    let mut made = Vec::new();
    for name in names {
        match made_instance(ctx, name, cli.template.as_deref())? {
            Some(record) => made.push(record),
            None => fresh.push(name.clone()),
        }
    }
    // Every value is checked, and the template built (on every host that gets an
    // instance), before any instance is touched.
    let mut groups = Vec::new();
    if !fresh.is_empty() {
        let template_name = cli.template.clone().unwrap_or_else(|| names[0].clone());
        let plan = instance_plan(ctx, cli, &template_name)?;
        for (on, plan, names) in placed(ctx, plan, &fresh)? {
            let template = template::ensure(&on, &plan.template, false)?;
            mounts_possible(&plan, &template)?;
            let template = with_warm_image(&on, &plan, template)?;
            groups.push(Group {
                ctx: on,
                plan,
                template,
                names,
            });
        }
    }
    warn_unapplied(ctx, cli, &made);
    let mut ready = Vec::new();
    let mut failures = Vec::new();
    for record in &made {
        match bring_up(ctx, record) {
            Ok(r) => {
                report_ready(ctx, &r);
                ready.push(r);
            }
            Err(e) => failures.push((record.name.clone(), e)),
        }
    }
    let work: Vec<(&Group, &String)> = groups
        .iter()
        .flat_map(|g| g.names.iter().map(move |n| (g, n)))
        .collect();
    let (made, failed) = concurrently(
        ctx,
        &work,
        |(_, name)| name.to_string(),
        |(g, name)| {
            let r = instance::create(&g.ctx, &g.plan, name, &g.template)?;
            report_ready(ctx, &r);
            Ok(r)
        },
    )?;
    ready.extend(made);
    failures.extend(failed);
    // The records in the order the names were given, whatever host each went to.
    ready.sort_by_key(|r| names.iter().position(|n| *n == r.name));
    if cli.json {
        print_records(ctx, &ready)?;
    }
    finish(names.len(), failures)
}

/// New instances of one template on one libvirt host: the connection, the plan with that
/// host's pool and network, the template's record there, the names.
struct Group {
    ctx: Context,
    plan: InstancePlan,
    template: Record,
    names: Vec<String>,
}

/// Where the new `names` go: all on this run's connection (or the template's own
/// `libvirt-uri`) without `[host NAME]` sections;
/// else placed across the plan's hosts by their free memory and capacity (see
/// [`crate::placement`]), a host that does not answer left out (and named if nothing
/// fits), nothing created unless every instance has a place.
fn placed(
    ctx: &Context,
    plan: InstancePlan,
    names: &[String],
) -> Result<Vec<(Context, InstancePlan, Vec<String>)>> {
    if plan.hosts.is_empty() {
        return Ok(vec![(template_home(ctx, &plan)?, plan, names.to_vec())]);
    }
    let entries = plan::hosts(&ctx.config)?;
    let (records, _) = ctx.store.all()?;
    let mut candidates = Vec::new();
    let mut answered = Vec::new();
    for entry in entries.iter().filter(|e| plan.hosts.contains(&e.name)) {
        let load = ctx.on_host(entry).and_then(|on| {
            let load = load_of(&on, &records)?;
            answered.push((entry, on));
            Ok(load)
        });
        if let Err(e) = &load {
            ctx.ui.debug(format!("host {}: {e}", entry.name));
        }
        candidates.push(Candidate {
            name: entry.name.clone(),
            max_instances: entry.max_instances,
            keep_free_bytes: entry.keep_free_bytes,
            load: load.map_err(|e| e.to_string()),
        });
    }
    let wanted: Vec<Instance> = names
        .iter()
        .map(|name| Instance {
            name: name.clone(),
            memory_bytes: plan.memory_mib << 20,
        })
        .collect();
    let placed = placement::place(&wanted, &candidates)?;
    let mut groups = Vec::new();
    for (entry, on) in answered {
        let here: Vec<String> = placed
            .iter()
            .filter(|p| p.host == entry.name)
            .map(|p| p.instance.clone())
            .collect();
        if here.is_empty() {
            continue;
        }
        ctx.ui
            .debug(format!("host {}: {}", entry.name, here.join(", ")));
        let mut plan = plan.clone();
        plan.template.host = entry.guest_host(&plan.template.host);
        groups.push((on, plan, here));
    }
    Ok(groups)
}

/// The connection of a template without `[host]`s: its own `libvirt-uri` if it has one
/// (its instances live there), else this run's.
fn template_home(ctx: &Context, plan: &InstancePlan) -> Result<Context> {
    match &plan.template.libvirt_uri {
        Some(uri) => ctx.on(uri),
        None => Ok(ctx.clone()),
    }
}

/// What a host has now: its free memory, and the instances of ours it runs.
fn load_of(on: &Context, records: &[Record]) -> Result<Load> {
    let running = on.hv.domains()?.running;
    Ok(Load {
        free_bytes: on.hv.free_memory()?,
        running: records
            .iter()
            .filter(|r| !r.is_template() && on.is_here(&r.uri) && running.contains(&r.domain))
            .count(),
    })
}

/// The template's record with its warm image where the plan's instances can use one (made
/// now if missing). A warm image that cannot be made is said, and instances boot cold.
fn with_warm_image(ctx: &Context, plan: &InstancePlan, template: Record) -> Result<Record> {
    if template::warm::unusable(ctx, plan, &template).is_some() {
        return Ok(template);
    }
    match template::warm::ensure(ctx, plan, &template) {
        Ok(warm) => Ok(warm),
        Err(e) if e.is_interrupted() => Err(e),
        Err(e) => {
            ctx.ui.warn(format!(
                "template {}: no warm image ({e}); instances boot cold",
                plan.template.name
            ));
            Ok(template)
        }
    }
}

/// A template built before `--mount` existed has an identity agent that does not mount
/// shares: refused (with how to rebuild it) rather than made without them.
fn mounts_possible(plan: &InstancePlan, template: &Record) -> Result<()> {
    let firstboot = plan.template.identity == plan::Identity::Firstboot;
    if plan.mounts.is_empty() || !firstboot || template.agent_mounts {
        return Ok(());
    }
    let t = &plan.template.name;
    Err(Error::InstanceNotUsable {
        name: format!("template {t}"),
        why: format!("it was built by a virt-up whose guest agent does not mount --mount shares; rebuild it (delete its instances, then 'virt-up {t} --no-clone --force')"),
    })
}

/// The plan for the instances, every value checked before anything is built.
fn instance_plan(ctx: &Context, cli: &Cli, template: &str) -> Result<InstancePlan> {
    if cli.password_file.as_deref() == Some(Path::new("-"))
        && cli.root_password_file.as_deref() == Some(Path::new("-"))
    {
        return Err(Error::Usage(
            "--password-file and --root-password-file cannot both read standard input".into(),
        ));
    }
    let given = Overrides {
        root_password: password(
            &cli.root_password,
            &cli.root_password_file,
            "--root-password-file",
        )?,
        user: cli.user.clone(),
        password: password(&cli.password, &cli.password_file, "--password-file")?,
        size: cli.size.clone(),
        memory: cli.memory,
        vcpus: cli.vcpus,
        graphics: cli.graphics.clone(),
        dns_domain: cli.dns_domain.clone(),
        no_inventory: cli.no_inventory,
        mounts: cli.mounts.clone(),
        host: cli.host.clone(),
    };
    let plan = plan::instance(&ctx.config, &ctx.paths, template, &given)?;
    if let Some(why) = plan
        .mounts
        .first()
        .and_then(|_| crate::share::uri_problem(&ctx.hv.uri()))
    {
        return Err(Error::Config(why));
    }
    crate::hypervisor::virt_install::validate(&plan.virt_install_args)?;
    if let Some(pb) = &plan.playbook {
        playbook::find(ctx, pb)?;
    }
    Ok(plan)
}

fn report_ready(ctx: &Context, r: &Record) {
    let name = &r.name;
    ctx.ui.info(format!(
        "{name} is ready at {} (login: virt-up {name} --login)",
        r.address.as_deref().unwrap_or("?")
    ));
}

/// The record of `name` if it is a made instance whose domain exists: creating it again
/// starts it. None if the name is free, or holds a half-made instance of a dead run
/// (creating it again cleans that up). Refused: one being created by a live run, one whose
/// domain was removed outside virt-up, and one made from another template than `--template`.
fn made_instance(ctx: &Context, name: &str, template: Option<&str>) -> Result<Option<Record>> {
    let Some(record) = ctx.store.load(name)? else {
        return Ok(None);
    };
    if record.phase == Phase::Creating {
        return match instance::process_alive(record.pid) {
            true => Err(Error::InstanceExists(name.to_string())),
            false => Ok(None),
        };
    }
    if record.is_template() || !ctx.hv.is_defined(&record.domain)? {
        return Err(Error::InstanceExists(name.to_string()));
    }
    if let Some(t) = template.filter(|t| *t != record.template) {
        ctx.ui.warn(format!(
            "{name} was made from template '{}', not '{t}'",
            record.template
        ));
        return Err(Error::InstanceExists(name.to_string()));
    }
    Ok(Some(record))
}

/// Options that shape a new instance do nothing to one that exists: say so.
fn warn_unapplied(ctx: &Context, cli: &Cli, made: &[Record]) {
    if made.is_empty() {
        return;
    }
    let given: Vec<&str> = [
        ("--root-password", cli.root_password.is_some()),
        ("--user", cli.user.is_some()),
        ("--password", cli.password.is_some()),
        ("--size", cli.size.is_some()),
        ("--memory", cli.memory.is_some()),
        ("--vcpus", cli.vcpus.is_some()),
        ("--graphics", cli.graphics.is_some()),
        ("--dns-domain", cli.dns_domain.is_some()),
        ("--no-inventory", cli.no_inventory),
        ("--mount", !cli.mounts.is_empty()),
        ("--host", cli.host.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, on)| on.then_some(flag))
    .collect();
    if !given.is_empty() {
        let names: Vec<&str> = made.iter().map(|r| r.name.as_str()).collect();
        ctx.ui.warn(format!(
            "{} already made: {} not applied (they apply when an instance is made)",
            names.join(", "),
            given.join(", ")
        ));
    }
}

/// The password given on the command line, or the first line of `file` (`-`: standard
/// input), so that it need not be in the process list. An empty one is refused.
fn password(given: &Option<String>, file: &Option<PathBuf>, flag: &str) -> Result<Option<String>> {
    let Some(file) = file else {
        return Ok(given.clone());
    };
    let text = if file == Path::new("-") {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Error::Usage(format!("{flag} -: {e}")))?;
        line
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| Error::Usage(format!("{flag} {}: {e}", file.display())))?
    };
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(Error::Usage(format!(
            "{flag} {}: the first line is empty (it is the password)",
            file.display()
        )));
    }
    Ok(Some(first.to_string()))
}
