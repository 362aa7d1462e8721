//! The `virt-up` commands: each a short function over the library's stages.

use crate::config::plan::{self, InstancePlan, Overrides};
use crate::config::Config;
use crate::context::{Context, Ui};
use crate::error::{Error, Result};
use crate::instance;
use crate::names::{template_stem, validate_instance_name};
use crate::paths::Paths;
use crate::records::{Phase, Record};
use crate::virtup::cli::Cli;
use crate::virtup::shipped;
use crate::{playbook, template};
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::sync::Mutex;

/// Run the command line; the value is the process exit code.
pub fn run(cli: Cli, paths: Paths, default_uri: Option<String>) -> Result<i32> {
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
        let is_template_delete = cli.delete && cli.all && config.has_template(name);
        if !is_template_delete {
            validate_instance_name(name)?;
        }
    }
    let ctx = Context::open(paths, config, default_uri, ui)?;
    if cli.list {
        return list(&ctx, cli.all, cli.json).map(|_| 0);
    }
    if cli.delete {
        return delete(&ctx, &names, cli.all).map(|_| 0);
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
        let record = existing(&ctx, name()?)?;
        playbook::run(&ctx, &record.name, pb)?;
        return Ok(0);
    }
    if names.is_empty() {
        return Err(Error::Config(
            "nothing to do: give an instance <name> (see --help)".into(),
        ));
    }
    create(&ctx, &cli, &names).map(|_| 0)
}

fn create(ctx: &Context, cli: &Cli, names: &[String]) -> Result<()> {
    let template_name = cli.template.clone().unwrap_or_else(|| names[0].clone());
    let plan = instance_plan(ctx, cli, &template_name)?;
    if cli.no_clone {
        template::ensure(ctx, &plan.template, cli.force)?;
        ctx.ui.info(format!("template {template_name} is ready"));
        return Ok(());
    }
    // Refuse existing names before building anything; a half-made instance of a dead run
    // does not count (creating it again cleans that up).
    for name in names {
        if let Some(r) = ctx.store.load(name)? {
            if r.phase != Phase::Creating || instance::process_alive(r.pid) {
                return Err(Error::InstanceExists(name.clone()));
            }
        }
    }
    let template = template::ensure(ctx, &plan.template, false)?;
    let failures = create_all(ctx, &plan, names, &template);
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
                    Ok(r) => ctx.ui.info(format!(
                        "{name} is ready at {} (login: virt-up {name} --login)",
                        r.address.as_deref().unwrap_or("?")
                    )),
                    Err(e) => failures.lock().expect("failures").push((name.clone(), e)),
                }
            });
        }
    });
    failures.into_inner().expect("failures")
}

fn existing(ctx: &Context, name: &str) -> Result<Record> {
    ctx.store
        .load(name)?
        .filter(|r| !r.is_template())
        .ok_or_else(|| Error::InstanceNotFound(name.to_string()))
}

fn delete(ctx: &Context, names: &[String], all: bool) -> Result<()> {
    if names.is_empty() {
        return Err(Error::Config(
            "--delete needs the <name> of an instance".into(),
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
    let record = existing(ctx, name)?;
    if record.phase != Phase::Ready {
        return Err(Error::Other(format!("{name} is still being created")));
    }
    if !ctx.hv.is_running(&record.domain)? {
        return Err(Error::Other(format!(
            "{name} is not running (start it with: virsh -c {} start {name})",
            record.uri
        )));
    }
    let address = record
        .address
        .clone()
        .ok_or_else(|| Error::Other(format!("{name} has no known address")))?;
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
