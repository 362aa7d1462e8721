//! Creating an instance: reserve the name, clone the template's disk, give it an identity,
//! define and boot the domain, wait until it is ready; undo all of it on failure.

use super::remove::{clean_abandoned, release_abandoned, remove};
use super::{save_and_publish, wait_ready, PhaseTimer};
use crate::clock::now_rfc3339;
use crate::config::plan::{self, ImageFormat, InstancePlan};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hypervisor::domain_xml::{Disk, DomainSpec, Filesystem};
use crate::hypervisor::virt_install;
use crate::hypervisor::{NewVolume, Volume, VolumeSource};
use crate::identity::{self, Account, Identity};
use crate::lock::Lock;
use crate::records::inventory;
use crate::records::{Login, Phase, Record, Reservation, Warm};
use crate::sshkeys;
use std::path::Path;

/// Create the instance `name` of `plan` from its already built template.
pub fn create(ctx: &Context, plan: &InstancePlan, name: &str, template: &Record) -> Result<Record> {
    // Gone when this returns, before the caller says the instance is ready (or failed).
    let _line = ctx.ui.line(name);
    let warm = match crate::template::warm::unusable(ctx, plan, template) {
        None => template.warm.clone(),
        Some(why) => {
            ctx.ui.debug(format!("{name}: booting cold: {why}"));
            None
        }
    };
    let mut record = reserve(ctx, plan, name, template, warm)?;
    match build(ctx, plan, &mut record, template) {
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
/// name, and write the `creating` record that claims the name (with the `warm` image it
/// is to be restored from: a clone of it from then on, for whoever replaces that image).
fn reserve(
    ctx: &Context,
    plan: &InstancePlan,
    name: &str,
    template: &Record,
    warm: Option<Warm>,
) -> Result<Record> {
    local_only(ctx, plan, name)?;
    let (record, abandoned) = {
        let _lock = Lock::exclusive(&ctx.paths.lock_file)?;
        let abandoned = clean_abandoned(ctx)?;
        (claim(ctx, plan, template, (name, warm))?, abandoned)
    };
    release_abandoned(ctx, &abandoned)?;
    Ok(record)
}

/// The `creating` record of `name`, to be restored from `warm` if given (caller holds the
/// global lock).
fn claim(
    ctx: &Context,
    plan: &InstancePlan,
    template: &Record,
    (name, warm): (&str, Option<Warm>),
) -> Result<Record> {
    if ctx.store.load(name)?.is_some() || ctx.hv.is_defined(name)? {
        return Err(Error::InstanceExists(name.to_string()));
    }
    let host = &plan.template.host;
    let pool_dir = ctx.hv.pool_path(&host.pool)?;
    ctx.ensure_network(&host.network)?;
    let format = template.format.clone();
    let key = ctx.paths.sshkeys().join(name);
    let username = plan
        .user
        .clone()
        .unwrap_or_else(|| template.user.username.clone());
    let hostname = match plan.dns_domain.as_deref() {
        Some(domain) => format!("{name}.{domain}"),
        None => name.to_string(),
    };
    let mut record = Record {
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
        memory: plan.memory_mib,
        vcpus: plan.vcpus,
        graphics: plan.graphics.to_string(),
        size: plan.size.as_ref().map(|s| s.text.clone()),
        root: Login::with_key("root", key.clone()),
        user: Login::with_key(username, key),
        address_source: plan.template.address_source.to_string(),
        ssh_options: inventory::ssh_options(&ctx.paths, name, ctx.jump.as_deref()),
        address: None,
        mac: ctx.store.mac_for(name)?,
        uri: ctx.hv.uri(),
        identity: plan.template.identity.to_string(),
        console_log: ctx.console_log(name),
        extra_files: vec![pool_dir.join(format!("{name}-seed.tar"))],
        inventory: plan.inventory,
        cloned: Some(true),
        from: Some(template.disk.clone()),
        definition: None,
        parks: false,
        agent_mounts: false,
        agent_seed: false,
        mounts: plan.mounts.clone(),
        warm,
        reservation: None,
        retired_warm: Vec::new(),
        disk_digest: None,
    };
    if record.warm.is_some() {
        // Listed before it exists, so that the cleanup of a killed create removes it.
        record.extra_files.push(super::warm::save_path(&record));
    }
    ctx.store.save(name, &record)?;
    Ok(record)
}

/// Refuse, before anything is made, what works only when the libvirt host is this machine:
/// its neighbour table and its disk files are not the remote host's.
fn local_only(ctx: &Context, plan: &InstancePlan, name: &str) -> Result<()> {
    if !ctx.is_remote() {
        return Ok(());
    }
    let uri = ctx.hv.uri();
    let why = match (plan.template.address_source, plan.template.identity) {
        (plan::AddressSource::Arp, _) => format!(
            "address-source = arp reads this machine's neighbour table, which has no entries for guests on {uri}: use lease or agent"
        ),
        (_, plan::Identity::Sysprep) => format!(
            "identity = sysprep runs virt-sysprep on the disk's file, which is on {uri}, not here: use identity = firstboot"
        ),
        _ => return Ok(()),
    };
    Err(Error::Config(format!(
        "{name} (template {}): {why}",
        plan.template.name
    )))
}

/// The instance's address reserved on the network's DHCP server; None, with a warning, if
/// the network cannot take one (the instance then gets a dynamic address, more slowly).
/// Killed before its record is saved, the reservation stays, and the next create of the
/// name (same MAC) takes it up again.
fn reserve_address(ctx: &Context, network: &str, name: &str, mac: &str) -> Option<Reservation> {
    match ctx.hv.reserve_address(network, mac) {
        Ok(Some(address)) => {
            ctx.ui.debug(format!(
                "{name}: address {address} reserved on network '{network}'"
            ));
            Some(Reservation {
                network: network.to_string(),
                address,
            })
        }
        Ok(None) => {
            ctx.ui.debug(format!(
                "{name}: network '{network}' has no free address in an IPv4 DHCP range to reserve"
            ));
            None
        }
        Err(e) => {
            ctx.ui.warn(format!(
                "{name}: no fixed address ({e}); it gets a dynamic one"
            ));
            None
        }
    }
}

/// The address reservation, made on another thread while the disk is cloned and the guest
/// restored or defined (libvirt takes a few tenths of a second to update the network),
/// waited for before the guest can ask for an address.
struct Reserving<'scope> {
    thread: Option<std::thread::ScopedJoinHandle<'scope, Option<Reservation>>>,
    got: Option<Reservation>,
}

impl Reserving<'_> {
    /// The reservation, once it is made (None: the instance gets a dynamic address).
    fn wait(&mut self) -> Option<Reservation> {
        if let Some(thread) = self.thread.take() {
            self.got = thread.join().unwrap_or(None);
        }
        self.got.clone()
    }
}

/// Build the instance, its address reserved alongside when the plan wants a fixed one;
/// the reservation is in the record whatever happens, so that a cleanup releases it.
fn build(ctx: &Context, plan: &InstancePlan, record: &mut Record, template: &Record) -> Result<()> {
    std::thread::scope(|scope| {
        let (network, name, mac) = (
            plan.template.host.network.clone(),
            record.name.clone(),
            record.mac.clone(),
        );
        let mut reserving = Reserving {
            thread: plan
                .template
                .fixed_address
                .then(|| scope.spawn(move || reserve_address(ctx, &network, &name, &mac))),
            got: None,
        };
        let built = build_reserving(ctx, plan, record, template, &mut reserving);
        record.reservation = reserving.wait();
        built
    })
}

fn build_reserving(
    ctx: &Context,
    plan: &InstancePlan,
    record: &mut Record,
    template: &Record,
    reserving: &mut Reserving,
) -> Result<()> {
    let name = record.name.clone();
    let identity = new_identity(ctx, plan, record, template)?;
    crate::fsutil::private_dir(&ctx.paths.console_logs())?;
    let spec = domain_spec(plan, record)?;
    if let Some(image) = record.warm.clone() {
        ctx.ui
            .debug(format!("{name}: restoring from the warm image"));
        let mut before_network = || {
            reserving.wait();
        };
        let made = super::warm::create(
            ctx,
            plan,
            record,
            (&image, &identity),
            spec.clone(),
            &mut before_network,
        );
        record.reservation = reserving.wait();
        match made {
            Ok(()) => {}
            Err(e) if e.is_interrupted() => return Err(e),
            Err(e) => {
                ctx.ui
                    .warn(format!("{name}: not restored warm ({e}); booting it cold"));
                super::warm::undo(ctx, record)?;
                record.warm = None;
            }
        }
    }
    if record.warm.is_none() {
        record.reservation = reserving.wait();
        boot_cold(ctx, plan, record, template, &identity, &spec)?;
    }

    // While the guest boots: everything that does not depend on it.
    {
        let _lock = Lock::exclusive(&ctx.paths.lock_file)?;
        inventory::set_known_host(&ctx.paths, &name, Some(&identity.host_key.public_openssh))?;
        ctx.store.save(&name, record)?;
    }

    // A warm clone's sshd was started before its template was saved.
    let sshd_listening = record.warm.is_some();
    let address = wait_ready(
        ctx,
        &plan.template,
        record,
        (plan.template.address_source, sshd_listening),
        &identity.host_key.public_openssh,
    )?;
    record.address = Some(address);
    record.phase = Phase::Ready;
    save_and_publish(ctx, record)?;
    if let Some(playbook) = &plan.playbook {
        ctx.ui.begin(&name, "playbook");
        crate::playbook::run(ctx, &name, playbook)?;
    }
    Ok(())
}

fn boot_cold(
    ctx: &Context,
    plan: &InstancePlan,
    record: &Record,
    template: &Record,
    identity: &Identity,
    spec: &DomainSpec,
) -> Result<()> {
    let name = &record.name;
    let mut timer = PhaseTimer::new(ctx, name);
    timer.begin("clone");
    clone_disk(ctx, plan, template, record)?;
    timer.done();
    timer.begin("identity");
    apply_identity(ctx, plan, record, identity)?;
    timer.done();
    timer.begin("define");
    ctx.hv.define(&spec.to_xml())?;
    ctx.hv.set_autostart(name, true)?;
    timer.done();
    timer.begin("boot");
    ctx.hv.start(name)?;
    timer.done();
    Ok(())
}

/// The template's disk cloned as the instance's, checked against `--size`.
fn clone_disk(
    ctx: &Context,
    plan: &InstancePlan,
    template: &Record,
    record: &Record,
) -> Result<()> {
    let base = template_volume(ctx, &template.template, &template.disk)?;
    if let Some(size) = plan.size.as_ref().filter(|s| s.bytes < base.capacity) {
        return Err(Error::Config(format!(
            "--size {:?}: expected at least the template's disk size, {} bytes (a disk cannot shrink)",
            size.text, base.capacity
        )));
    }
    let capacity = plan.size.as_ref().map(|s| s.bytes);
    clone_volume(ctx, &plan.template.host.pool, &base, capacity, record)
}

/// The template's disk volume; an error saying how to rebuild it if it is gone.
pub(super) fn template_volume(ctx: &Context, template: &str, disk: &Path) -> Result<Volume> {
    ctx.hv.volume(disk)?.ok_or_else(|| Error::Libvirt {
        what: format!("template {template}"),
        message: format!("its disk {} is not in the pool", disk.display()),
        hint: format!(
            "\nrebuild it: delete its instances, then 'virt-up {template} --no-clone --force'"
        ),
    })
}

/// `record`'s disk made anew from `base` (any old one removed first). qcow2: a linked
/// clone backed by the template (instant); raw: a full sparse copy. Both are volumes made
/// by the hypervisor in the instance's pool.
pub(super) fn clone_volume(
    ctx: &Context,
    pool: &str,
    base: &Volume,
    capacity: Option<u64>,
    record: &Record,
) -> Result<()> {
    ctx.hv.delete_volume(&record.disk)?;
    let name = record
        .disk
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let format = ImageFormat::parse(&record.format).unwrap_or(ImageFormat::Qcow2);
    let source = match format {
        ImageFormat::Qcow2 => VolumeSource::Overlay {
            backing: base,
            capacity,
        },
        ImageFormat::Raw => VolumeSource::Copy {
            from: base,
            capacity,
        },
    };
    ctx.hv.create_volume(&NewVolume {
        pool,
        name,
        format,
        source,
    })?;
    Ok(())
}

fn new_identity(
    ctx: &Context,
    plan: &InstancePlan,
    record: &Record,
    template: &Record,
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
        password: password(&plan.root_password),
    }];
    if user != "root" {
        accounts.push(Account {
            username: user.clone(),
            create: *user != template.user.username,
            authorized_key: login.public_openssh.clone(),
            password: password(&plan.password),
        });
    }
    Ok(Identity {
        instance_id: identity::random_id(),
        hostname: record.hostname.clone(),
        host_key: sshkeys::generate(&record.name)?,
        accounts,
        machine_id: identity::random_id(),
        mounts: record.mounts.clone(),
        mac: record
            .warm
            .as_ref()
            .and_then(|w| w.parked_mac.clone())
            .map(|parked| (parked, record.mac.clone())),
    })
}

fn apply_identity(
    ctx: &Context,
    plan: &InstancePlan,
    record: &Record,
    identity: &Identity,
) -> Result<()> {
    match plan.template.identity {
        plan::Identity::Sysprep => identity::sysprep(
            &ctx.runner(plan.template.host.virt_type),
            &record.disk,
            identity,
            &plan.virt_sysprep_args,
        ),
        plan::Identity::Firstboot => {
            let volume = (plan.template.host.pool.as_str(), seed_path(record));
            identity::upload_seed(ctx.hv.as_ref(), volume, identity).map(|_| ())
        }
    }
}

fn seed_path(record: &Record) -> &Path {
    &record.extra_files[0]
}

fn domain_spec(plan: &InstancePlan, record: &Record) -> Result<DomainSpec> {
    let mut spec = crate::template::domain_base(record, &plan.template.host);
    if plan.template.identity == plan::Identity::Firstboot {
        spec.disks.push(Disk {
            path: seed_path(record).to_path_buf(),
            format: "raw".into(),
            readonly: true,
            serial: Some(identity::SEED_SERIAL.into()),
        });
    }
    if let Some(binary) = &plan.virtiofsd {
        spec.filesystems = plan
            .mounts
            .iter()
            .map(|m| Filesystem {
                binary: binary.clone(),
                source: m.host.clone(),
                tag: m.tag.clone(),
            })
            .collect();
    }
    virt_install::apply(&mut spec, &plan.virt_install_args)?;
    Ok(spec)
}
