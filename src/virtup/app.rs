//! The `virt-up` commands: each a short function over the library's stages.

use crate::config::plan::{self, InstancePlan, Overrides};
use crate::config::Config;
use crate::context::{Context, Ui};
use crate::error::{Error, Result};
use crate::instance;
use crate::names::{template_stem, validate_instance_name};
use crate::paths::Paths;
use crate::records::{Phase, Record};
use crate::virtup::cli::{Cli, Mode};
use crate::virtup::shipped;
use crate::{playbook, template};
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::sync::Mutex;

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

/// `--no-clone`: the template is the <name> or `--template` (as the original tool took it).
fn build_template(ctx: &Context, cli: &Cli, names: &[String]) -> Result<()> {
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
    template::ensure(ctx, &plan.template, cli.force)?;
    ctx.ui.info(format!("template {template_name} is ready"));
    Ok(())
}

/// Create the names that do not exist; start (if stopped) and wait for those that do, as
/// the original tool did ("just start the instance if it already exists").
fn create(ctx: &Context, cli: &Cli, names: &[String]) -> Result<()> {
    let mut fresh = Vec::new();
    let mut made = Vec::new();
    for name in names {
        match made_instance(ctx, name, cli.template.as_deref())? {
            Some(record) => made.push(record),
            None => fresh.push(name.clone()),
        }
    }
    // Every value is checked, and the template built, before any instance is touched.
    let mut fresh_plan = None;
    if !fresh.is_empty() {
        let template_name = cli.template.clone().unwrap_or_else(|| names[0].clone());
        let plan = instance_plan(ctx, cli, &template_name)?;
        let template = template::ensure(ctx, &plan.template, false)?;
        fresh_plan = Some((plan, template));
    }
    warn_unapplied(ctx, cli, &made);
    let mut failures = Vec::new();
    for record in &made {
        match bring_up(ctx, record) {
            Ok(r) => report_ready(ctx, &r),
            Err(e) => failures.push((record.name.clone(), e)),
        }
    }
    if let Some((plan, template)) = &fresh_plan {
        failures.extend(create_all(ctx, plan, &fresh, template));
    }
    match failures.len() {
        0 => Ok(()),
        1 if names.len() == 1 => Err(failures.into_iter().next().expect("one").1),
        n => {
            for (name, e) in &failures {
                eprintln!("virt-up: {name}: {e}");
            }
            Err(Error::SomeFailed {
                failed: n,
                total: names.len(),
            })
        }
    }
}

/// The plan for the instances, every value checked before anything is built.
fn instance_plan(ctx: &Context, cli: &Cli, template: &str) -> Result<InstancePlan> {
    let given = Overrides {
        root_password: cli.root_password.clone(),
        user: cli.user.clone(),
        password: cli.password.clone(),
        size: cli.size.clone(),
        memory: cli.memory,
        vcpus: cli.vcpus,
        graphics: cli.graphics.clone(),
        dns_domain: cli.dns_domain.clone(),
        no_inventory: cli.no_inventory,
    };
    let plan = plan::instance(&ctx.config, &ctx.paths, template, &given)?;
    crate::hypervisor::virt_install::validate(&plan.virt_install_args)?;
    if let Some(pb) = &plan.playbook {
        playbook::find(ctx, pb)?;
    }
    Ok(plan)
}

/// Create the instances concurrently, at most `parallel` at a time.
fn create_all(
    ctx: &Context,
    plan: &InstancePlan,
    names: &[String],
    template: &Record,
) -> Vec<(String, Error)> {
    let queue = Mutex::new(names.iter());
    let failures = Mutex::new(Vec::new());
    let workers = plan.parallel.clamp(1, names.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let Some(name) = queue.lock().expect("queue").next() else {
                    break;
                };
                match instance::create(ctx, plan, name, template) {
                    Ok(r) => report_ready(ctx, &r),
                    Err(e) => failures.lock().expect("failures").push((name.clone(), e)),
                }
            });
        }
    });
    failures.into_inner().expect("failures")
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

/// Start a made instance if it is stopped and wait until it is ready.
fn bring_up(ctx: &Context, record: &Record) -> Result<Record> {
    let plan = plan::template(&ctx.config, &ctx.paths, &record.template).map_err(|e| {
        Error::Config(format!(
            "{}: made from template '{}': {e}",
            record.name, record.template
        ))
    })?;
    instance::start(ctx, &plan, record)
}

fn existing(ctx: &Context, name: &str) -> Result<Record> {
    ctx.store
        .load(name)?
        .filter(|r| !r.is_template())
        .ok_or_else(|| Error::InstanceNotFound(name.to_string()))
}

fn delete(ctx: &Context, names: &[String], all: bool, yes: bool) -> Result<()> {
    if names.is_empty() {
        if all {
            return delete_everything(ctx, yes);
        }
        return Err(Error::Config(
            "--delete needs the <name> of an instance (--delete --all without a name: every instance and template)".into(),
        ));
    }
    for name in names {
        match ctx.store.load(name)? {
            Some(record) => {
                instance::remove(ctx, &record)?;
                ctx.ui.info(format!("deleted {name}"));
            }
            None if all && ctx.config.has_template(name) => {
                delete_template(ctx, name)?;
            }
            None => return Err(Error::InstanceNotFound(name.clone())),
        }
    }
    Ok(())
}

/// `--delete --all` without a name: every instance, then every template (clones first,
/// so no template is in use), once the user said yes.
fn delete_everything(ctx: &Context, yes: bool) -> Result<()> {
    let (records, problems) = ctx.store.all()?;
    for p in problems {
        ctx.ui.warn(p);
    }
    let (templates, instances): (Vec<Record>, Vec<Record>) =
        records.into_iter().partition(|r| r.is_template());
    let mut listed: Vec<String> = instances.iter().map(|r| r.name.clone()).collect();
    listed.extend(templates.iter().map(|t| format!("template {}", t.template)));
    if listed.is_empty() {
        ctx.ui.info("nothing to delete");
        return Ok(());
    }
    if !yes && !confirm(&listed.join(", "))? {
        ctx.ui.info("nothing deleted");
        return Ok(());
    }
    for record in &instances {
        instance::remove(ctx, record)?;
        ctx.ui.info(format!("deleted {}", record.name));
    }
    for t in &templates {
        delete_template(ctx, &t.template)?;
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
            .join(format!("{}.lock", template_stem(name))),
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

fn login(ctx: &Context, name: &str, sftp: bool, command: Option<&str>) -> Result<i32> {
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
    let mut cmd = crate::ssh::command(tool, &record, &record.user, &address, tty);
    if let Some(c) = command {
        // ssh sends the command as one string for the remote login shell to run.
        cmd.arg(c);
    }
    ctx.ui.debug(format!("exec {cmd:?}"));
    let err = cmd.exec();
    Err(crate::runner::spawn_error(tool, err).into())
}

fn list(ctx: &Context, all: bool, json: bool) -> Result<()> {
    let (records, problems) = ctx.store.all()?;
    for p in problems {
        ctx.ui.warn(p);
    }
    let domains = ctx.hv.domains()?;
    let rows: Vec<serde_json::Value> = records
        .iter()
        .filter(|r| all || !r.is_template())
        .map(|r| {
            let state = state_of(&domains, r);
            serde_json::json!({
                "name": r.name,
                "template": r.template,
                "state": state,
                "address": r.address,
                "user": r.user.username,
                "mac": r.mac,
                "disk": r.disk,
                "created": r.created,
                "is_template": r.is_template(),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:<10} {:<16} CREATED",
        "NAME", "TEMPLATE", "STATE", "ADDRESS"
    );
    for row in &rows {
        let s = |k: &str| row[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<24} {:<20} {:<10} {:<16} {}",
            s("name"),
            s("template"),
            s("state"),
            s("address"),
            s("created")
        );
    }
    Ok(())
}

/// running | shut off | creating | missing (the domain was removed outside virt-up).
fn state_of(domains: &crate::hypervisor::DomainNames, r: &Record) -> &'static str {
    if r.phase == Phase::Creating {
        return if instance::process_alive(r.pid) {
            "creating"
        } else {
            "abandoned"
        };
    }
    if domains.running.contains(&r.domain) {
        "running"
    } else if domains.defined.contains(&r.domain) {
        "shut off"
    } else {
        "missing"
    }
}

fn show_templates(config: &Config, json: bool) -> Result<()> {
    let mut all = serde_json::Map::new();
    for name in config.template_names() {
        let settings = config.resolve(name)?;
        let values: serde_json::Map<String, serde_json::Value> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        all.insert(name.to_string(), values.into());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all).expect("json"));
        return Ok(());
    }
    println!("{:<24} {:<24} DESCRIPTION", "TEMPLATE", "OS-VERSION");
    for (name, v) in &all {
        println!(
            "{:<24} {:<24} {}",
            name,
            v["os-version"].as_str().unwrap_or("-"),
            v.get("desc").and_then(|d| d.as_str()).unwrap_or("")
        );
    }
    Ok(())
}

fn show_paths(paths: &Paths, json: bool) -> Result<()> {
    let items = [
        ("system-config", paths.system_config.clone()),
        ("user-config", paths.user_config.clone()),
        ("data", paths.data.clone()),
        ("instances", paths.instances()),
        ("sshkeys", paths.sshkeys()),
        ("macaddrs", paths.macaddrs()),
        ("inventory", paths.inventory()),
        ("ssh-config", paths.ssh_config()),
        ("known-hosts", paths.known_hosts()),
        ("console-logs", paths.console_logs()),
        ("lock", paths.lock_file.clone()),
    ];
    if json {
        let map: serde_json::Map<String, serde_json::Value> = items
            .iter()
            .map(|(k, p)| (k.to_string(), p.display().to_string().into()))
            .collect();
        println!("{}", serde_json::to_string_pretty(&map).expect("json"));
    } else {
        for (k, p) in items {
            println!("{k:<14} {}", p.display());
        }
    }
    Ok(())
}

fn init(paths: &Paths, force: bool, ui: &Ui) -> Result<()> {
    let dir = &paths.user_config;
    let existing: Vec<String> = shipped::FILES
        .iter()
        .map(|(rel, _)| dir.join(rel))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() && !force {
        return Err(Error::Config(format!(
            "not overwriting existing files (use --force): {}",
            existing.join(", ")
        )));
    }
    for (rel, contents) in shipped::FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        crate::fsutil::write_atomic(&path, contents.as_bytes(), 0o644)?;
        ui.info(format!("wrote {}", path.display()));
    }
    Ok(())
}
