//! What is there: `--list`, `--show-templates`, `--show-paths`.

use crate::config::Config;
use crate::context::Context;
use crate::error::Result;
use crate::instance;
use crate::paths::Paths;
use crate::records::{Phase, Record};

pub(super) fn list(ctx: &Context, all: bool, json: bool) -> Result<()> {
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

pub(super) fn show_templates(config: &Config, json: bool) -> Result<()> {
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

pub(super) fn show_paths(paths: &Paths, json: bool) -> Result<()> {
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
