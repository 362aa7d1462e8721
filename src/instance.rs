//! Instances: a linked clone of the template disk, a new identity, a libvirt domain, and
//! the wait until SSH answers. Records are written while the guest boots; a record stays in
//! phase `creating` until the instance is ready, so a killed run is cleaned up by the next.

use crate::config::Settings;
use crate::context::Context;
use crate::domain_xml::{Disk, DomainSpec};
use crate::error::{Error, Result};
use crate::fsutil::remove_if_exists;
use crate::identity::{self, Account, Identity};
use crate::inventory;
use crate::lock::Lock;
use crate::readiness::{self, AddressSource, Target};
use crate::records::{now_rfc3339, Login, Phase, Record};
use crate::runner::argv;
use crate::sshkeys;
use crate::virt_install;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Per-instance choices from the command line (None: the template's setting).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub root_password: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub size: Option<String>,
    pub memory: Option<u64>,
    pub vcpus: Option<u64>,
    pub graphics: Option<String>,
    pub dns_domain: Option<String>,
    pub no_inventory: bool,
}

/// Create one instance from an already built template.
pub fn create(
    ctx: &Context,
    name: &str,
    template: &Record,
    settings: &Settings,
    opts: &CreateOptions,
) -> Result<Record> {
    let mut record = reserve(ctx, name, template, settings, opts)?;
    match build(ctx, &mut record, template, settings, opts) {
        Ok(()) => Ok(record),
        Err(e) => {
            ctx.ui.debug(format!("{name}: cleaning up after: {e}"));
            if let Err(cleanup) = remove(ctx, &record) {
                ctx.ui.warn(format!("{name}: cleanup failed: {cleanup}"));
            }
            Err(e)
        }
    }
}

/// Under the global lock: clean up half-made instances of dead runs, refuse an existing
/// name, and write the `creating` record that claims the name.
fn reserve(
    ctx: &Context,
    name: &str,
    template: &Record,
    settings: &Settings,
    opts: &CreateOptions,
) -> Result<Record> {
    let _lock = Lock::exclusive(&ctx.paths.lock_file)?;
    clean_abandoned(ctx)?;
    if ctx.store.load(name)?.is_some() || ctx.hv.is_defined(name)? {
        return Err(Error::InstanceExists(name.to_string()));
    }
    let pool_dir = ctx.hv.pool_path(settings.text("pool"))?;
    ctx.hv.check_network(settings.text("network"))?;
    let format = template.format.clone();
    let key = ctx.paths.sshkeys().join(name);
    let username = opts
        .user
        .clone()
        .unwrap_or_else(|| template.user.username.clone());
    let hostname = match opts.dns_domain.as_deref().or(settings.get("dns-domain")) {
        Some(domain) => format!("{name}.{domain}"),
        None => name.to_string(),
    };
    let record = Record {
        name: name.to_string(),
        template: template.template.clone(),
        created: now_rfc3339(),
        phase: Phase::Creating,
        pid: std::process::id(),
        os_version: template.os_version.clone(),
        os_variant: template.os_variant.clone(),
        hostname,
        domain: name.to_string(),
        disk: pool_dir.join(format!("{name}.{format}")),
        format,
        memory: opts.memory.unwrap_or(settings.int("memory")),
        vcpus: opts.vcpus.unwrap_or(settings.int("vcpus")),
        graphics: opts
            .graphics
            .clone()
            .unwrap_or_else(|| settings.text("graphics").to_string()),
        size: opts.size.clone(),
        root: Login {
            username: "root".into(),
            password: None,
            ssh_identity: key.clone(),
        },
        user: Login {
            username,
            password: None,
            ssh_identity: key,
        },
        address_source: settings.text("address-source").to_string(),
        ssh_options: inventory::ssh_options(&ctx.paths, name),
        address: None,
        mac: ctx.store.mac_for(name)?,
        uri: ctx.hv.uri(),
        identity: settings.text("identity").to_string(),
        console_log: ctx.paths.console_logs().join(format!("{name}.log")),
        extra_files: vec![pool_dir.join(format!("{name}-seed.tar"))],
        inventory: !opts.no_inventory,
        cloned: Some(true),
        from: Some(template.disk.clone()),
        definition: None,
    };
    ctx.store.save(name, &record)?;
    Ok(record)
}

fn build(
    ctx: &Context,
    record: &mut Record,
    template: &Record,
    settings: &Settings,
    opts: &CreateOptions,
) -> Result<()> {
    let name = record.name.clone();
    let mut timer = PhaseTimer::new(ctx, &name);
    clone_disk(ctx, settings, template, record)?;
    timer.done("clone");

    let identity = new_identity(ctx, record, template, opts)?;
    apply_identity(ctx, settings, record, &identity)?;
    timer.done("identity");

    crate::fsutil::private_dir(&ctx.paths.console_logs())?;
    let spec = domain_spec(record, settings)?;
    ctx.hv.define(&spec.to_xml())?;
    ctx.hv.set_autostart(&name, true)?;
    timer.done("define");
    ctx.hv.start(&name)?;
    timer.done("boot");

    // While the guest boots: everything that does not depend on it.
    {
        let _lock = Lock::exclusive(&ctx.paths.lock_file)?;
        inventory::set_known_host(&ctx.paths, &name, Some(&identity.host_key.public_openssh))?;
        ctx.store.save(&name, record)?;
    }

    let source = AddressSource::parse(&record.address_source).expect("validated setting");
    let target = Target {
        domain: &name,
        mac: &record.mac,
        hostname: &record.hostname,
        source,
        address_timeout: Duration::from_secs(settings.int("address-timeout")),
        ssh_timeout: Duration::from_secs(settings.int("ssh-timeout")),
        console_log: &record.console_log,
        neighbours: ctx.neighbours.clone(),
    };
    let address = readiness::wait_ready(ctx.hv.as_ref(), &target, &mut |phase, took| {
        ctx.ui.phase(&name, phase, took)
    })?;
    timer.restart();
    readiness::verify_host_key(
        &ctx.runner(settings),
        &name,
        &address,
        &identity.host_key.public_openssh,
        &record.console_log,
    )?;
    timer.done("hostkey");
    record.address = Some(address);
    record.phase = Phase::Ready;
    save_and_publish(ctx, record)?;
    if let Some(playbook) = settings.get("instance-playbook") {
        crate::playbook::run(ctx, &name, playbook)?;
    }
    Ok(())
}

/// Write the record and regenerate the inventory and ssh_config (under the global lock).
pub fn save_and_publish(ctx: &Context, record: &Record) -> Result<()> {
    let _lock = Lock::exclusive(&ctx.paths.lock_file)?;
    ctx.store.save(&record.name, record)?;
    publish(ctx)
}

/// Regenerate the inventory and ssh_config from the records (caller holds the lock).
pub fn publish(ctx: &Context) -> Result<()> {
    let (records, _) = ctx.store.all()?;
    inventory::write_all(&ctx.paths, &records)
}

struct PhaseTimer<'a> {
    ctx: &'a Context,
    name: &'a str,
    last: Instant,
}

impl<'a> PhaseTimer<'a> {
    fn new(ctx: &'a Context, name: &'a str) -> Self {
        PhaseTimer {
            ctx,
            name,
            last: Instant::now(),
        }
    }
    fn restart(&mut self) {
        self.last = Instant::now();
    }
    fn done(&mut self, phase: &str) {
        self.ctx.ui.phase(self.name, phase, self.last.elapsed());
        self.last = Instant::now();
    }
}

/// qcow2: a linked clone backed by the template (instant); raw: a full sparse copy.
fn clone_disk(
    ctx: &Context,
    settings: &Settings,
    template: &Record,
    record: &Record,
) -> Result<()> {
    remove_if_exists(&record.disk)?;
    let runner = ctx.runner(settings);
    let disk = record.disk.display().to_string();
    let base = template.disk.display().to_string();
    let args = if record.format == "qcow2" {
        argv([
            "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", &base, &disk,
        ])
    } else {
        argv(["convert", "-q", "-f", "raw", "-O", "raw", &base, &disk])
    };
    runner
        .tool("qemu-img")
        .args(&args)
        .context(format!("cloning {}", record.name))
        .run()?;
    if let Some(size) = &record.size {
        let args = argv(["resize", "-q", "-f", &record.format, &disk, size]);
        runner
            .tool("qemu-img")
            .args(&args)
            .context(format!("resizing {}", record.name))
            .run()?;
    }
    ctx.hv.refresh_pool(settings.text("pool"));
    Ok(())
}

fn new_identity(
    ctx: &Context,
    record: &Record,
    template: &Record,
    opts: &CreateOptions,
) -> Result<Identity> {
    let login = sshkeys::generate(&format!("virt-up {}", record.name))?;
    sshkeys::write_login_key(&ctx.paths.sshkeys(), &record.name, &login)?;
    // Passwords are set only when given: a random one that is never shown or stored is no
    // better than a locked password, and hashing it costs boot time.
    let password = |given: &Option<String>| given.clone();
    let user = &record.user.username;
    let mut accounts = vec![Account {
        username: "root".into(),
        create: false,
        authorized_key: login.public_openssh.clone(),
        password: password(&opts.root_password),
    }];
    if user != "root" {
        accounts.push(Account {
            username: user.clone(),
            create: *user != template.user.username,
            authorized_key: login.public_openssh.clone(),
            password: password(&opts.password),
        });
    }
    Ok(Identity {
        instance_id: identity::random_id(),
        hostname: record.hostname.clone(),
        host_key: sshkeys::generate(&record.name)?,
        accounts,
    })
}

fn apply_identity(
    ctx: &Context,
    settings: &Settings,
    record: &Record,
    identity: &Identity,
) -> Result<()> {
    match record.identity.as_str() {
        "sysprep" => identity::sysprep(
            &ctx.runner(settings),
            &record.disk,
            identity,
            &settings.args("virt-sysprep-args"),
        ),
        _ => identity::write_seed(seed_path(record), identity),
    }
}

fn seed_path(record: &Record) -> &Path {
    &record.extra_files[0]
}

fn domain_spec(record: &Record, settings: &Settings) -> Result<DomainSpec> {
    let mut spec = domain_base(record, settings);
    if record.identity == "firstboot" {
        spec.disks.push(Disk {
            path: seed_path(record).to_path_buf(),
            format: "raw".into(),
            readonly: true,
            serial: Some(identity::SEED_SERIAL.into()),
        });
    }
    virt_install::apply(&mut spec, &settings.args("virt-install-args"))?;
    Ok(spec)
}

/// The domain of an instance or template record: its disk, memory, vCPUs, network, MAC,
/// console log; virt-install-args are applied by the caller where they apply.
pub(crate) fn domain_base(record: &Record, settings: &Settings) -> DomainSpec {
    DomainSpec {
        name: record.domain.clone(),
        virt_type: settings.text("virt-type").to_string(),
        arch: settings.text("arch").to_string(),
        machine: None,
        cpu: None,
        memory_mib: record.memory,
        vcpus: record.vcpus,
        disks: vec![Disk {
            path: record.disk.clone(),
            format: record.format.clone(),
            readonly: false,
            serial: None,
        }],
        network: settings.text("network").to_string(),
        mac: record.mac.clone(),
        graphics: record.graphics.clone(),
        video: None,
        rng: true,
        console_log: record.console_log.clone(),
        template: record.template.clone(),
    }
}

/// Stop and undefine the domain; remove disks, seed, keys, known_hosts entry, console log
/// and record; regenerate the inventory. The MAC stays reserved for the name.
pub fn remove(ctx: &Context, record: &Record) -> Result<()> {
    discard_resources(ctx, record)?;
    let _lock = Lock::exclusive(&ctx.paths.lock_file)?;
    forget(ctx, record)
}

fn discard_resources(ctx: &Context, record: &Record) -> Result<()> {
    ctx.hv.destroy(&record.domain)?;
    ctx.hv.undefine(&record.domain)?;
    let keys = ctx.paths.sshkeys();
    let mut files: Vec<PathBuf> = vec![
        record.disk.clone(),
        record.console_log.clone(),
        keys.join(&record.name),
        keys.join(format!("{}.pub", record.name)),
    ];
    files.extend(record.extra_files.iter().cloned());
    for f in &files {
        remove_if_exists(f)?;
    }
    Ok(())
}

/// Drop the record and its known_hosts entry and republish (caller holds the global lock).
fn forget(ctx: &Context, record: &Record) -> Result<()> {
    inventory::set_known_host(&ctx.paths, &record.name, None)?;
    ctx.store.remove(&record.name)?;
    publish(ctx)
}

/// Remove instances whose creating process died (Ctrl-C, kill, crash). Caller holds the
/// global lock.
fn clean_abandoned(ctx: &Context) -> Result<()> {
    let (records, _) = ctx.store.all()?;
    let abandoned = records
        .into_iter()
        .filter(|r| r.phase == Phase::Creating && !process_alive(r.pid));
    for r in abandoned {
        ctx.ui.info(format!(
            "cleaning up {}, left half-made by an interrupted run (pid {})",
            r.name, r.pid
        ));
        discard_resources(ctx, &r)?;
        forget(ctx, &r)?;
    }
    Ok(())
}

/// True if `pid` is a live virt-up process (a recycled PID of another program is not).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim_end().starts_with("virt-up"))
        .unwrap_or(false)
}
