//! A template's warm image: its disk booted once (through an overlay, so the template's
//! own disk is never written), parked by the identity agent with everything up but the
//! network (its NIC's link down) and no instance identity yet, then its memory saved
//! through libvirt.
//! Instances are restored from it (see `instance::warm`). Disk overlay, park seed and save
//! image are volumes in the template's pool, read-only from then on, removed with it.

use crate::clock::now_rfc3339;
use crate::config::plan::InstancePlan;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hypervisor::domain_xml::{Disk, DomainSpec, Nic};
use crate::hypervisor::save_image::{SaveHeader, HEADER_LEN};
use crate::hypervisor::{virt_install, NewVolume, VolumeSource};
use crate::identity::{self, Identity};
use crate::lock::Lock;
use crate::readiness::{wait_agent_hostname, AgentWait};
use crate::records::{Record, RetiredWarm, Warm};
use crate::sshkeys;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Why instances of `plan` cannot be restored from a warm image of `template`; None if
/// they can. Said to the user when an instance boots cold.
pub fn unusable(ctx: &Context, plan: &InstancePlan, template: &Record) -> Option<String> {
    let t = &plan.template;
    if !t.warm {
        return Some("warm = no".into());
    }
    if !plan.mounts.is_empty() {
        return Some(
            "--mount: a restored guest keeps the devices and the private memory it was saved with (a share needs a virtiofs device and shared memory)".into(),
        );
    }
    if t.identity != crate::config::plan::Identity::Firstboot {
        return Some("identity = sysprep edits each new disk before its first boot".into());
    }
    if ctx.hv.uri().starts_with("test:") {
        return Some("libvirt's test driver runs no guest whose memory could be saved".into());
    }
    if !template.parks {
        return Some(format!(
            "template {} was built by a virt-up without warm clones; rebuild it to get them (delete its instances, then 'virt-up {} --no-clone --force')",
            t.name, t.name
        ));
    }
    if t.format != crate::config::plan::ImageFormat::Qcow2 {
        return Some("image-format = raw: instances are full copies, not overlays".into());
    }
    if plan.size.is_some() {
        return Some("--size: a restored guest keeps the disk size it was saved with".into());
    }
    let differs = |what: &str, ours: String, its: String| {
        (ours != its).then(|| format!("{what} {ours} is not the template's {its}"))
    };
    differs(
        "--memory",
        plan.memory_mib.to_string(),
        t.memory_mib.to_string(),
    )
    .or_else(|| differs("--vcpus", plan.vcpus.to_string(), t.vcpus.to_string()))
    .or_else(|| {
        differs(
            "--graphics",
            plan.graphics.to_string(),
            t.graphics.to_string(),
        )
    })
}

/// The template's record with its warm image, made now if it has none (or none that fits
/// `plan`'s devices). Under the template's lock: concurrent creates wait and make it once.
/// A failure is returned (the caller creates cold); nothing of a failed attempt remains.
pub fn ensure(ctx: &Context, plan: &InstancePlan, template: &Record) -> Result<Record> {
    let stem = ctx.template_stem(&plan.template.name);
    let _lock = Lock::exclusive(&ctx.paths.locks().join(format!("{stem}.lock")))?;
    let mut record = ctx.store.load(&stem)?.unwrap_or_else(|| template.clone());
    let devices = devices_digest(plan);
    if let Some(warm) = &record.warm {
        let problem = match stale(warm, plan, &devices) {
            Some(why) => Some(why),
            None => damage(ctx, warm)?,
        };
        let Some(problem) = problem else {
            return Ok(record);
        };
        ctx.ui.warn(format!(
            "template {}: its warm image cannot be used ({problem}): making it again",
            plan.template.name
        ));
        let warm = warm.clone();
        record.warm = None;
        retire(ctx, &mut record, &warm)?;
        ctx.store.save(&stem, &record)?;
    }
    ctx.ui.info(format!(
        "template {}: making its warm image (one boot, once)",
        plan.template.name
    ));
    let started = Instant::now();
    let _line = ctx.ui.line(&plan.template.name);
    ctx.ui.begin(&plan.template.name, "warm-image");
    let parts = Parts::of(ctx, plan, &record)?;
    match make(ctx, plan, &record, &parts) {
        Ok(()) => {}
        Err(e) => {
            let _ = ctx.hv.destroy(&parts.domain);
            let _ = ctx.hv.undefine(&parts.domain);
            let _ = remove(ctx, &parts.warm(plan, &devices, 0.0));
            return Err(e);
        }
    }
    let took = started.elapsed();
    ctx.ui.phase(&plan.template.name, "warm-image", took);
    let mut warm = parts.warm(plan, &devices, took.as_secs_f64());
    warm.save_bytes = ctx.hv.volume(&parts.save)?.map(|v| v.capacity);
    record.warm = Some(warm);
    ctx.store.save(&stem, &record)?;
    Ok(record)
}

/// Why a warm image no longer fits the template's settings: a restored guest has the
/// memory, vCPUs, graphics and devices it was saved with, whatever the settings say now.
fn stale(warm: &Warm, plan: &InstancePlan, devices: &str) -> Option<String> {
    let t = &plan.template;
    let now = (t.memory_mib, t.vcpus, t.graphics.to_string());
    let then = (warm.memory, warm.vcpus, warm.graphics.clone());
    if now != then {
        return Some(format!(
            "it was made with memory {} MiB, {} vCPUs, graphics {}; the template now has {} MiB, {}, {}",
            then.0, then.1, then.2, now.0, now.1, now.2
        ));
    }
    (warm.devices != devices).then(|| "it was made for other virt-install-args".to_string())
}

/// What is wrong with a warm image: a volume missing, a save image of another size than
/// it was made (truncated, overwritten), or one whose header cannot be rewritten; None if
/// nothing is.
fn damage(ctx: &Context, warm: &Warm) -> Result<Option<String>> {
    for path in [&warm.disk, &warm.seed] {
        if ctx.hv.volume(path)?.is_none() {
            return Ok(Some(format!("{} is missing", path.display())));
        }
    }
    let Some(save) = ctx.hv.volume(&warm.save)? else {
        return Ok(Some(format!("{} is missing", warm.save.display())));
    };
    if let Some(made) = warm.save_bytes.filter(|made| *made != save.capacity) {
        return Ok(Some(format!(
            "{} is {} bytes, it was made {made} bytes",
            warm.save.display(),
            save.capacity
        )));
    }
    Ok(check_header(ctx, &warm.save).err().map(|e| e.to_string()))
}

/// An error unless the save image at `save` has a header clones can be made from.
fn check_header(ctx: &Context, save: &Path) -> Result<()> {
    let first = ctx.hv.read_volume_head(save, HEADER_LEN as u64)?;
    let region = SaveHeader::region_len(&first)?;
    SaveHeader::parse(&ctx.hv.read_volume_head(save, region as u64)?).map(|_| ())
}

/// Delete a warm image's volumes (no error for those already gone).
pub fn remove(ctx: &Context, warm: &Warm) -> Result<()> {
    for path in [&warm.save, &warm.disk, &warm.seed] {
        ctx.hv.delete_volume(path)?;
    }
    Ok(())
}

/// Put a warm image that is being replaced out of use: its save image goes, and so do its
/// disk and park seed unless instances were restored from it. Their disks are overlays of
/// its disk: deleting it, or making the new image under its name, would take away or
/// change what their disks are made of. Those two are then kept in `template`'s record
/// (the caller saves it), and deleted with the last such instance ([`release`]).
fn retire(ctx: &Context, template: &mut Record, warm: &Warm) -> Result<()> {
    ctx.hv.delete_volume(&warm.save)?;
    let clones = clones_of(ctx, &warm.disk)?;
    if clones.is_empty() {
        ctx.hv.delete_volume(&warm.disk)?;
        return ctx.hv.delete_volume(&warm.seed);
    }
    ctx.ui.info(format!(
        "template {}: its old warm disk {} stays while instances are made from it ({})",
        template.template,
        warm.disk.display(),
        clones.join(", ")
    ));
    template.retired_warm.push(RetiredWarm {
        disk: warm.disk.clone(),
        seed: warm.seed.clone(),
    });
    Ok(())
}

/// The instances (on this libvirt host) restored from the warm image whose disk is `disk`,
/// including those still being made.
fn clones_of(ctx: &Context, disk: &Path) -> Result<Vec<String>> {
    let (records, _) = ctx.store.all()?;
    Ok(records
        .into_iter()
        .filter(|r| !r.is_template() && ctx.is_here(&r.uri))
        .filter(|r| r.warm.as_ref().is_some_and(|w| w.disk == disk))
        .map(|r| r.name)
        .collect())
}

/// After `instance` (the record it had) is deleted or given a new disk: the replaced warm
/// image that disk was made from goes too, if no other instance was made from it.
pub fn release(ctx: &Context, instance: &Record) -> Result<()> {
    let Some(warm) = &instance.warm else {
        return Ok(());
    };
    let stem = ctx.template_stem(&instance.template);
    let _lock = Lock::exclusive(&ctx.paths.locks().join(format!("{stem}.lock")))?;
    let Some(mut template) = ctx.store.load(&stem)? else {
        return Ok(());
    };
    let Some(at) = template
        .retired_warm
        .iter()
        .position(|r| r.disk == warm.disk)
    else {
        return Ok(());
    };
    if !clones_of(ctx, &warm.disk)?.is_empty() {
        return Ok(());
    }
    let retired = template.retired_warm.remove(at);
    remove_retired(ctx, &retired)?;
    ctx.store.save(&stem, &template)
}

/// Delete a replaced warm image's disk and park seed (no error for those already gone).
pub fn remove_retired(ctx: &Context, retired: &RetiredWarm) -> Result<()> {
    ctx.hv.delete_volume(&retired.disk)?;
    ctx.hv.delete_volume(&retired.seed)
}

fn devices_digest(plan: &InstancePlan) -> String {
    crate::digest::sha256_hex(&plan.virt_install_args.join("\0"))
}

/// The names of a warm image's parts.
struct Parts {
    pool: String,
    domain: String,
    disk: PathBuf,
    seed: PathBuf,
    save: PathBuf,
    console_log: PathBuf,
    /// The template's agent takes a seed through the guest agent.
    agent_seed: bool,
    /// The parked boot's NIC's (the template's own MAC).
    mac: String,
}

impl Parts {
    /// The parts of `template`'s next warm image, under names that no replaced one still
    /// has (so the same names as a killed attempt's, which [`make`] removes first).
    fn of(ctx: &Context, plan: &InstancePlan, template: &Record) -> Result<Parts> {
        let pool = plan.template.host.pool.clone();
        let dir = ctx.hv.pool_path(&pool)?;
        let domain = format!("{}-warm", template.domain);
        let stem = free_stem(&domain, &dir, &template.retired_warm);
        Ok(Parts {
            disk: dir.join(format!("{stem}.qcow2")),
            seed: dir.join(format!("{stem}-seed.tar")),
            save: dir.join(format!("{stem}.save")),
            console_log: ctx.console_log(&domain),
            agent_seed: template.agent_seed,
            mac: template.mac.clone(),
            pool,
            domain,
        })
    }

    fn warm(&self, plan: &InstancePlan, devices: &str, build_seconds: f64) -> Warm {
        let t = &plan.template;
        Warm {
            disk: self.disk.clone(),
            seed: self.seed.clone(),
            save: self.save.clone(),
            memory: t.memory_mib,
            vcpus: t.vcpus,
            graphics: t.graphics.to_string(),
            devices: devices.to_string(),
            console_log: self.console_log.clone(),
            created: now_rfc3339(),
            build_seconds,
            save_bytes: None,
            agent_seed: self.agent_seed,
            parked_mac: self.agent_seed.then(|| self.mac.clone()),
        }
    }
}

/// `domain` (the first warm image's names), else `domain` followed by the first number
/// from 2 whose disk in `dir` is not one of the `retired`.
fn free_stem(domain: &str, dir: &Path, retired: &[RetiredWarm]) -> String {
    let taken = |stem: &str| {
        let disk = dir.join(format!("{stem}.qcow2"));
        retired.iter().any(|r| r.disk == disk)
    };
    std::iter::once(domain.to_string())
        .chain((2..).map(|n| format!("{domain}{n}")))
        .find(|stem| !taken(stem))
        .expect("an unbounded range has a free name")
}

fn name_of(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

fn make(ctx: &Context, plan: &InstancePlan, template: &Record, parts: &Parts) -> Result<()> {
    let hv = ctx.hv.as_ref();
    // A killed earlier attempt may have left parts behind (we hold the template's lock).
    hv.destroy(&parts.domain)?;
    hv.undefine(&parts.domain)?;
    remove(ctx, &parts.warm(plan, "", 0.0))?;

    let base = hv.volume(&template.disk)?.ok_or_else(|| Error::Libvirt {
        what: format!("template {}", template.template),
        message: format!("its disk {} is not in the pool", template.disk.display()),
        hint: String::new(),
    })?;
    hv.create_volume(&NewVolume {
        pool: &parts.pool,
        name: name_of(&parts.disk),
        format: crate::config::plan::ImageFormat::Qcow2,
        source: VolumeSource::Overlay {
            backing: &base,
            capacity: None,
        },
    })?;
    // The parked boot's own identity: a host key so that sshd is up when parked (the
    // instance's replaces it), no accounts.
    let park = Identity {
        instance_id: identity::random_id(),
        hostname: parts.domain.to_lowercase(),
        host_key: sshkeys::generate(&parts.domain)?,
        accounts: vec![],
        machine_id: identity::random_id(),
        mounts: Vec::new(),
        mac: None,
    };
    identity::upload_seed(hv, (&parts.pool, &parts.seed), &park)?;
    hv.create_volume(&NewVolume {
        pool: &parts.pool,
        name: name_of(&parts.save),
        format: crate::config::plan::ImageFormat::Raw,
        source: VolumeSource::Empty { capacity: 0 },
    })?;

    crate::fsutil::private_dir(&ctx.paths.console_logs())?;
    hv.define(&domain(plan, template, parts)?.to_xml())?;
    hv.start(&parts.domain)?;
    wait_parked(ctx, plan, parts)?;
    hv.save(&parts.domain, &parts.save)?;
    hv.undefine(&parts.domain)?;
    // Read back what clones will be made from: a header this code cannot rewrite is
    // found now, not at every create.
    check_header(ctx, &parts.save)
}

/// The parked boot's domain: the template's shape (memory, vCPUs, graphics,
/// virt-install-args), its overlay disk, its seed, a VM generation ID, and its NIC with
/// the template's MAC and the link down (so that no frame leaves it before a clone's
/// guest has its own MAC).
fn domain(plan: &InstancePlan, template: &Record, parts: &Parts) -> Result<DomainSpec> {
    let t = &plan.template;
    let mut shape = template.clone();
    shape.domain = parts.domain.clone();
    shape.disk = parts.disk.clone();
    shape.format = "qcow2".into();
    shape.memory = t.memory_mib;
    shape.vcpus = t.vcpus;
    shape.graphics = t.graphics.to_string();
    shape.console_log = parts.console_log.clone();
    let mut spec = super::domain_base(&shape, &t.host);
    // An agent that cannot give a clone's guest its MAC would let it ask for an address
    // with the template's.
    spec.nic = if parts.agent_seed {
        Nic::LinkDown
    } else {
        Nic::Absent
    };
    spec.genid = true;
    spec.disks.push(Disk {
        path: parts.seed.clone(),
        format: "raw".into(),
        readonly: true,
        serial: Some(identity::PARK_SERIAL.into()),
    });
    virt_install::apply(&mut spec, &plan.virt_install_args)?;
    Ok(spec)
}

/// Wait until the agent reports the parked host name (its boot finished, waiting for an
/// instance's seed), within the template's address and SSH timeouts together.
fn wait_parked(ctx: &Context, plan: &InstancePlan, parts: &Parts) -> Result<()> {
    let t = &plan.template;
    let limit = t.timeouts.address + t.timeouts.ssh;
    let parked = identity::PARKED_HOSTNAME;
    match wait_agent_hostname(ctx.hv.as_ref(), &parts.domain, parked, limit)? {
        AgentWait::Reported => Ok(()),
        AgentWait::Stopped => Err(Error::Guest {
            name: parts.domain.clone(),
            message: format!(
                "the warm boot stopped before it parked; console log: {}",
                parts.console_log.display()
            ),
        }),
        AgentWait::TimedOut => Err(Error::Timeout {
            name: parts.domain.clone(),
            phase: "park".into(),
            seconds: limit.as_secs(),
            console_log: parts.console_log.display().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{plan, test_config};
    use crate::paths::Paths;

    fn plan_with(common: &str) -> InstancePlan {
        let config = test_config(common, "[deb]\nos-version = x\n");
        let paths = Paths::from_env(&|k| (k == "HOME").then(|| "/h".to_string())).unwrap();
        plan::instance(&config, &paths, "deb", &Default::default()).unwrap()
    }

    fn warm(memory: u64, vcpus: u64, devices: &str) -> Warm {
        Warm {
            disk: "/pool/d.qcow2".into(),
            seed: "/pool/s.tar".into(),
            save: "/pool/s.save".into(),
            memory,
            vcpus,
            graphics: "none".into(),
            devices: devices.into(),
            console_log: "/logs/w.log".into(),
            created: String::new(),
            build_seconds: 0.0,
            save_bytes: None,
            agent_seed: true,
            parked_mac: None,
        }
    }

    #[test]
    fn a_template_parks_with_its_nic_link_down_only_if_its_agent_gives_clones_their_mac() {
        let plan = plan_with("[common]\nmemory = 1024\n");
        let mut template = crate::records::inventory::tests::record("TEMPLATE-deb", None);
        template.mac = "52:54:00:aa:bb:cc".into();
        let parts = |agent_seed| Parts {
            pool: "default".into(),
            domain: "TEMPLATE-deb-warm".into(),
            disk: "/pool/TEMPLATE-deb-warm.qcow2".into(),
            seed: "/pool/TEMPLATE-deb-warm-seed.tar".into(),
            save: "/pool/TEMPLATE-deb-warm.save".into(),
            console_log: "/logs/TEMPLATE-deb-warm.log".into(),
            agent_seed,
            mac: template.mac.clone(),
        };
        let xml = domain(&plan, &template, &parts(true)).unwrap().to_xml();
        assert!(xml.contains("<mac address='52:54:00:aa:bb:cc'/>"), "{xml}");
        assert!(xml.contains("<link state='down'/>"), "{xml}");
        let warm = parts(true).warm(&plan, "", 0.0);
        assert_eq!(warm.parked_mac.as_deref(), Some("52:54:00:aa:bb:cc"));
        let old = parts(false);
        assert!(!domain(&plan, &template, &old)
            .unwrap()
            .to_xml()
            .contains("<interface"));
        assert_eq!(old.warm(&plan, "", 0.0).parked_mac, None);
    }

    #[test]
    fn a_new_warm_image_never_takes_the_names_of_one_that_clones_are_made_from() {
        let dir = Path::new("/pool");
        let retired = |stems: &[&str]| -> Vec<RetiredWarm> {
            stems
                .iter()
                .map(|s| RetiredWarm {
                    disk: dir.join(format!("{s}.qcow2")),
                    seed: dir.join(format!("{s}-seed.tar")),
                })
                .collect()
        };
        let t = "TEMPLATE-deb-warm";
        assert_eq!(free_stem(t, dir, &[]), t);
        assert_eq!(free_stem(t, dir, &retired(&[t])), "TEMPLATE-deb-warm2");
        let both = retired(&[t, "TEMPLATE-deb-warm2"]);
        assert_eq!(free_stem(t, dir, &both), "TEMPLATE-deb-warm3");
        // The first name is free again once its clones are gone.
        let later = retired(&["TEMPLATE-deb-warm2"]);
        assert_eq!(free_stem(t, dir, &later), t);
    }

    #[test]
    fn a_warm_image_of_another_shape_than_the_templates_settings_is_made_again() {
        let plan = plan_with("[common]\nmemory = 1024\nvcpus = 2\n");
        let devices = devices_digest(&plan);
        assert_eq!(stale(&warm(1024, 2, &devices), &plan, &devices), None);
        let why = stale(&warm(512, 2, &devices), &plan, &devices).unwrap();
        assert!(
            why.contains("memory 512 MiB") && why.contains("now has 1024 MiB"),
            "{why}"
        );
        assert!(stale(&warm(1024, 1, &devices), &plan, &devices).is_some());
        let why = stale(&warm(1024, 2, "other"), &plan, &devices).unwrap();
        assert!(why.contains("virt-install-args"), "{why}");
    }
}
