//! What is there: `--list`, `--show-templates`, `--show-paths`.

use crate::config::Config;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hypervisor::DomainNames;
use crate::instance;
use crate::paths::Paths;
use crate::records::{Phase, Record};
use std::collections::BTreeMap;

/// `--list [NAME...]`: the instances (with `--all`, the templates too), or only the named
/// ones (each must exist); `-q` prints the names only.
pub(super) fn list(
    ctx: &Context,
    names: &[String],
    all: bool,
    json: bool,
    names_only: bool,
) -> Result<()> {
    let (records, problems) = ctx.store.all()?;
    for p in problems {
        ctx.ui.warn(p);
    }
    if let Some(missing) = names
        .iter()
        .find(|n| !records.iter().any(|r| &r.name == *n))
    {
        return Err(Error::InstanceNotFound(missing.clone()));
    }
    let shown: Vec<&Record> = records
        .iter()
        .filter(|r| match names.is_empty() {
            true => all || !r.is_template(),
            false => names.contains(&r.name),
        })
        .collect();
    let configured = crate::config::plan::hosts(&ctx.config)?;
    let domains = domains_by_host(ctx, &shown, &configured)?;
    let rows: Vec<serde_json::Value> = shown
        .iter()
        .map(|r| {
            let mut row = match domains.get(r.uri.as_str()) {
                Some(Some(on_host)) => record_json(on_host, r),
                // Its host did not answer (said above): what the record says, state unknown.
                _ => {
                    let mut row = record_json(&DomainNames::default(), r);
                    row["state"] = "unknown".into();
                    row
                }
            };
            row["host_name"] = host_name(&configured, &r.uri).into();
            row
        })
        .collect();
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&rows).expect("json"));
    } else if names_only {
        for row in &rows {
            crate::outln!("{}", row["name"].as_str().unwrap_or(""));
        }
    } else {
        crate::out!("{}", table(&rows));
    }
    Ok(())
}

/// The domains of every libvirt host the records name, by URI; None (and a warning naming
/// it) for a host that does not answer, so the others' instances still list. The host
/// this run is connected to must answer.
fn domains_by_host<'r>(
    ctx: &Context,
    records: &[&'r Record],
    configured: &[crate::config::plan::HostEntry],
) -> Result<BTreeMap<&'r str, Option<DomainNames>>> {
    let mut by_host = BTreeMap::new();
    for r in records {
        if by_host.contains_key(r.uri.as_str()) {
            continue;
        }
        let domains = match ctx.is_here(&r.uri) {
            true => Some(ctx.hv.domains()?),
            false => match ctx.on(&r.uri).and_then(|there| there.hv.domains()) {
                Ok(domains) => Some(domains),
                Err(e) => {
                    let name = host_name(configured, &r.uri);
                    ctx.ui.warn(format!("host {name} did not answer: {e}"));
                    None
                }
            },
        };
        by_host.insert(r.uri.as_str(), domains);
    }
    Ok(by_host)
}

/// The name shown for the libvirt host of `uri`: its `[host NAME]`, else its host name,
/// else `local`.
fn host_name(configured: &[crate::config::plan::HostEntry], uri: &str) -> String {
    match configured.iter().find(|h| h.uri == uri) {
        Some(host) => host.name.clone(),
        None => crate::reach::host_label(uri).unwrap_or_else(|| "local".into()),
    }
}

/// The listing's columns, each as wide as its widest value.
const COLUMNS: [(&str, &str); 10] = [
    ("NAME", "name"),
    ("HOST", "host_name"),
    ("TEMPLATE", "template"),
    ("STATE", "state"),
    ("ADDRESS", "address"),
    ("VCPUS", "vcpus"),
    ("MEMORY", "memory"),
    ("USER", "user"),
    ("WARM", "warm"),
    ("CREATED", "created"),
];

fn table(rows: &[serde_json::Value]) -> String {
    let cell = |row: &serde_json::Value, key: &str| match &row[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) if key == "memory" => format!("{n}M"),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(true) => "yes".to_string(),
        _ => "-".to_string(),
    };
    let widths: Vec<usize> = COLUMNS
        .iter()
        .map(|(title, key)| {
            rows.iter()
                .map(|r| cell(r, key).len())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(COLUMNS.iter().map(|(t, _)| t.to_string()).collect());
    for row in rows {
        out.push_str(&line(COLUMNS.iter().map(|(_, k)| cell(row, k)).collect()));
    }
    out
}

/// A record and its live state, as `--list --json`, `--json` of the commands and `--info`
/// show it.
pub(super) fn record_json(domains: &DomainNames, r: &Record) -> serde_json::Value {
    serde_json::json!({
        "name": r.name,
        "host_name": host_name(&[], &r.uri),
        "uri": r.uri,
        "template": r.template,
        "state": state_of(domains, r),
        "address": r.address,
        "user": r.user.username,
        "mac": r.mac,
        "disk": r.disk,
        "vcpus": r.vcpus,
        "memory": r.memory,
        "created": r.created,
        "is_template": r.is_template(),
        // Templates: it has a warm image; instances: restored from one.
        "warm": r.warm.is_some(),
        "warm_image": r.warm.as_ref().filter(|_| r.is_template()),
        // Templates: the sha256 of the disk uploaded to its host (equal across hosts).
        "disk_digest": r.disk_digest,
    })
}

/// `--info NAME`: everything about one instance, its record and what libvirt says now.
pub(super) fn info(ctx: &Context, name: &str, json: bool) -> Result<()> {
    let record = ctx
        .store
        .load(name)?
        .ok_or_else(|| Error::InstanceNotFound(name.to_string()))?;
    let domains = ctx.hv.domains()?;
    let mut v = record_json(&domains, &record);
    let volume = ctx.hv.volume(&record.disk)?;
    // A domain removed outside virt-up has no snapshots to ask for (its state says missing).
    let snapshots = match ctx.hv.is_defined(&record.domain)? {
        true => super::snapshot::rows(ctx, &record)?,
        false => Vec::new(),
    };
    let extra = serde_json::json!({
        "hostname": record.hostname,
        "domain": record.domain,
        "host": record.uri,
        "key": record.user.ssh_identity,
        "format": record.format,
        "disk_size": volume.as_ref().map(|v| v.capacity),
        "disk_used": volume.as_ref().map(|v| v.allocation),
        "backing": record.from,
        "graphics": record.graphics,
        "identity": record.identity,
        "console_log": record.console_log,
        "inventory": record.inventory,
        "snapshots": super::snapshot::rows_json(&snapshots),
        "mounts": record.mounts,
        // Its DHCP reservation (fixed-address): the address it keeps, on which network.
        "reservation": record.reservation,
    });
    if let (Some(map), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
        map.extend(more);
    }
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    for (key, value) in v.as_object().into_iter().flatten() {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            // `s1 (2026-12-02T18:00:00Z)`
            serde_json::Value::Array(_) if key == "snapshots" => {
                cell_of(snapshots.iter().map(|(n, t)| format!("{n} ({t})")))
            }
            serde_json::Value::Null => "-".into(),
            serde_json::Value::Number(n) if key.starts_with("disk_") => {
                crate::size::human(n.as_u64().unwrap_or(0))
            }
            serde_json::Value::Object(_) if key == "reservation" => match &record.reservation {
                Some(r) => format!("{} on network {}", r.address, r.network),
                None => "-".into(),
            },
            // `HOST_DIR -> GUEST_DIR (tag)`
            serde_json::Value::Array(_) if key == "mounts" => cell_of(
                record
                    .mounts
                    .iter()
                    .map(|m| format!("{} -> {} ({})", m.host.display(), m.guest, m.tag)),
            ),
            other => other.to_string(),
        };
        crate::outln!("{key:<12} {text}");
    }
    Ok(())
}

/// Items as one `--info` cell: comma-separated, `-` for none.
fn cell_of(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.is_empty() {
        true => "-".into(),
        false => items.join(", "),
    }
}

/// running | shut off | creating | missing (the domain was removed outside virt-up).
fn state_of(domains: &DomainNames, r: &Record) -> &'static str {
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

/// `--show-templates`: every template's settings and what is built of it; `-q` prints
/// the names only (the shell completions call that: no libvirt connection, no records).
pub(super) fn show_templates(
    paths: &Paths,
    config: &Config,
    json: bool,
    names_only: bool,
) -> Result<()> {
    if names_only && !json {
        for name in config.template_names() {
            crate::outln!("{name}");
        }
        return Ok(());
    }
    let store = crate::records::Store::new(paths)?;
    let (records, _) = store.all()?;
    let configured = crate::config::plan::hosts(config)?;
    let mut all = serde_json::Map::new();
    for name in config.template_names() {
        let settings = config.resolve(name)?;
        let mut values: serde_json::Map<String, serde_json::Value> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        // What is built of it (records only: no libvirt connection for this listing), on
        // every libvirt host it is on: the first record's warm image is shown.
        let copies: Vec<&Record> = records
            .iter()
            .filter(|r| r.is_template() && r.template == name)
            .collect();
        values.insert("built".into(), (!copies.is_empty()).into());
        values.insert(
            "built-on".into(),
            copies
                .iter()
                .map(|r| host_name(&configured, &r.uri))
                .collect::<Vec<_>>()
                .into(),
        );
        let built = copies.first().map(|r| (*r).clone());
        values.insert(
            "warm-image".into(),
            serde_json::to_value(built.and_then(|r| r.warm))?,
        );
        all.insert(name.to_string(), values.into());
    }
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&all).expect("json"));
        return Ok(());
    }
    crate::outln!("{:<24} {:<24} DESCRIPTION", "TEMPLATE", "OS-VERSION");
    for (name, v) in &all {
        crate::outln!(
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
        crate::outln!("{}", serde_json::to_string_pretty(&map).expect("json"));
    } else {
        for (k, p) in items {
            crate::outln!("{k:<14} {}", p.display());
        }
    }
    Ok(())
}
