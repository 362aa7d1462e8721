//! A warm create: the instance is restored from its template's saved memory instead of
//! booted. Its disk is an overlay of the template's warm disk (the disk state the memory
//! belongs to); its save image is the template's with the domain XML of the header
//! replaced (name, UUID, disk, console log, VM generation ID), made server-side: a copy of
//! the template's save volume, then only its header region uploaded; its NIC (parked with
//! its link down) gets the instance's MAC and network there. Once restored, the
//! instance's seed is written into the guest through its guest agent (or, where that
//! agent refuses, plugged in as a disk); the parked agent applies the identity (host key,
//! users, machine-id, the NIC's MAC, clock) and reports the instance's host name, and only
//! then does the NIC's link come up, so its first DHCP request already carries its own
//! name and MAC. The persistent definition is the one a cold create makes, so a later
//! stop and start boots it cold with the same identity.

use super::PhaseTimer;
use crate::config::plan::{ImageFormat, InstancePlan, TemplatePlan};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hypervisor::domain_xml::{escape, interface_xml_link, Disk, DomainSpec};
use crate::hypervisor::save_image::{SaveHeader, HEADER_LEN};
use crate::hypervisor::{NewVolume, VolumeSource};
use crate::identity::{self, Identity};
use crate::readiness::{wait_agent_hostname, AgentWait};
use crate::records::{Record, Warm};
use std::path::{Path, PathBuf};

/// Where a clone's save image goes: next to its disk, removed once it is restored.
pub(super) fn save_path(record: &Record) -> PathBuf {
    record.disk.with_file_name(format!("{}.save", record.name))
}

/// Restore `record`'s instance from `warm` and give it `identity`, up to the moment its
/// NIC's link is up (`before_network` is called just before: the guest asks for its
/// address then); the caller waits for SSH. `persistent` is the definition a cold create
/// would make (its UUID is set here). On error the caller undoes it all with [`undo`] and
/// creates the instance cold.
pub(super) fn create(
    ctx: &Context,
    plan: &InstancePlan,
    record: &Record,
    (warm, identity): (&Warm, &Identity),
    mut persistent: DomainSpec,
    before_network: &mut dyn FnMut(),
) -> Result<()> {
    let uuid = random_uuid();
    let seed = identity::seed_archive(identity)?;
    restore(ctx, &plan.template, record, warm, Some(&seed), &uuid)?;
    // The same archive as the seed volume's (it has random bytes and password salts).
    let by_agent = warm.agent_seed.then_some(seed.as_slice());
    let parked_nic = warm.parked_mac.as_deref();
    let mut timer = identify(
        ctx,
        &plan.template,
        record,
        (parked_nic, by_agent),
        before_network,
    )?;
    persistent.uuid = Some(uuid);
    persistent.genid = true;
    ctx.hv.define(&persistent.to_xml())?;
    ctx.hv.set_autostart(&record.domain, true)?;
    timer.done();
    Ok(())
}

/// A warm `--reset`: the instance's stopped domain (kept defined, with its UUID) restored
/// from `warm` onto a new overlay, and given the identity its kept seed holds. Its disk must
/// be gone already; on error the caller undoes it with [`undo_reset`].
pub(super) fn reset(
    ctx: &Context,
    plan: &TemplatePlan,
    record: &Record,
    warm: &Warm,
) -> Result<()> {
    let uuid = ctx.hv.uuid(&record.domain)?;
    // One a killed reset left behind.
    ctx.hv.delete_volume(&save_path(record))?;
    restore(ctx, plan, record, warm, None, &uuid)?;
    // Its kept seed volume is plugged in (what the host would send is in there).
    identify(
        ctx,
        plan,
        record,
        (warm.parked_mac.as_deref(), None),
        &mut || {},
    )?
    .done();
    Ok(())
}

/// The instance's overlay of the warm disk (and its seed volume, when the `seed` archive
/// is given), its save image made from the template's with the domain `uuid`, and the
/// restore.
fn restore(
    ctx: &Context,
    plan: &TemplatePlan,
    record: &Record,
    warm: &Warm,
    seed: Option<&[u8]>,
    uuid: &str,
) -> Result<()> {
    let hv = ctx.hv.as_ref();
    let name = &record.name;
    let pool = plan.host.pool.as_str();
    let mut timer = PhaseTimer::new(ctx, name);
    timer.begin("clone");
    let warm_disk = hv
        .volume(&warm.disk)?
        .ok_or_else(|| missing(warm, &warm.disk))?;
    let warm_save = hv
        .volume(&warm.save)?
        .ok_or_else(|| missing(warm, &warm.save))?;
    hv.create_volume(&NewVolume {
        pool,
        name: file_name(&record.disk),
        format: ImageFormat::Qcow2,
        source: VolumeSource::Overlay {
            backing: &warm_disk,
            capacity: None,
        },
    })?;
    if let Some(seed) = seed {
        identity::upload_archive(hv, (pool, &record.extra_files[0]), seed)?;
    }
    timer.done();

    timer.begin("save-image");
    let save = save_path(record);
    hv.create_volume(&NewVolume {
        pool,
        name: file_name(&save),
        format: ImageFormat::Raw,
        source: VolumeSource::Copy {
            from: &warm_save,
            capacity: None,
        },
    })?;
    let first = hv.read_volume_head(&save, HEADER_LEN as u64)?;
    let header =
        SaveHeader::parse(&hv.read_volume_head(&save, SaveHeader::region_len(&first)? as u64)?)?;
    let xml = clone_xml(
        &header.xml,
        &Clone {
            name,
            uuid,
            genid: &random_uuid(),
            disk: (&warm.disk, &record.disk),
            console_log: (&warm.console_log, &record.console_log),
            nic: warm
                .parked_mac
                .as_deref()
                .map(|parked| (parked, record.mac.as_str(), plan.host.network.as_str())),
        },
    )?;
    hv.write_volume_head(&save, &header.with_xml(&xml)?)?;
    timer.done();

    timer.begin("restore");
    hv.restore(&save)?;
    // The running guest no longer reads it.
    hv.delete_volume(&save)?;
    timer.done();
    Ok(())
}

/// The restored guest's NIC plugged in with its MAC and its link down (unless it was
/// parked with one: `warm_parked_nic`), its seed handed over (the `by_agent` archive
/// through the guest agent, else the seed volume plugged in as a disk), its identity
/// waited for, then the NIC's link up; the timer of that last phase, still running.
fn identify<'a>(
    ctx: &'a Context,
    plan: &TemplatePlan,
    record: &'a Record,
    (warm_parked_nic, by_agent): (Option<&str>, Option<&[u8]>),
    before_network: &mut dyn FnMut(),
) -> Result<PhaseTimer<'a>> {
    let hv = ctx.hv.as_ref();
    let mut timer = PhaseTimer::new(ctx, &record.name);
    timer.begin("plug");
    // The NIC's link stays down for the guest until its identity is applied: the guest
    // starts DHCP when the link comes up, with the instance's identity in place. Its tap
    // joined the network's bridge at the restore (or joins it now), and a bridge with STP
    // on (libvirt's default network) forwards a new port's frames only after 2 x 2 s (the
    // kernel's smallest forward delay), which then pass while the identity is applied.
    let nic = |up| interface_xml_link(&plan.host.network, &record.mac, up);
    // Parked with a NIC, the guest has it already and its agent gives it the instance's
    // MAC. A hot-plugged one (images parked without) costs the guest's PCI hot-plug,
    // driver and udev about a second under TCG, the longest wait of a warm create.
    if warm_parked_nic.is_none() {
        hv.attach_live(&record.domain, &nic(false))?;
    }
    let handed = by_agent.is_some_and(|archive| match hand_over(hv, &record.domain, archive) {
        Ok(()) => true,
        Err(e) => {
            ctx.ui.debug(format!(
                "{}: seed not handed over through the guest agent ({e}); plugging in its seed disk",
                record.name
            ));
            false
        }
    });
    if !handed {
        let seed = Disk {
            path: record.extra_files[0].clone(),
            format: "raw".into(),
            readonly: true,
            serial: Some(identity::SEED_SERIAL.into()),
        };
        // vda and vdb are the warm disk and the parked boot's seed.
        hv.attach_live(&record.domain, &seed.to_xml(2))?;
    }
    timer.done();
    timer.begin("identity");
    wait_applied(ctx, plan, record)?;
    if let Some(parked) = warm_parked_nic {
        check_mac(hv, record, parked)?;
    }
    timer.done();
    timer.begin("nic");
    wait_forwarding(hv, record);
    before_network();
    hv.update_live(&record.domain, &nic(true))?;
    Ok(timer)
}

/// An error unless the guest's NIC has the instance's MAC now (its link is still down: no
/// frame has left it). An agent that does not give it (a template's disk from an older
/// virt-up) would let it ask for an address with the template's `parked` MAC.
fn check_mac(hv: &dyn crate::hypervisor::Hypervisor, record: &Record, parked: &str) -> Result<()> {
    let macs = hv.agent_macs(&record.domain)?;
    let has = |mac: &str| macs.iter().any(|m| m.eq_ignore_ascii_case(mac));
    if has(&record.mac) {
        return Ok(());
    }
    Err(Error::Guest {
        name: record.name.clone(),
        message: format!(
            "its agent applied the identity but did not give the NIC its MAC {} (the guest has {})",
            record.mac,
            if has(parked) { parked } else { "neither" }
        ),
    })
}

/// The seed `archive` written into the parked guest through its guest agent, then
/// announced on the FIFO its agent waits on. A disk plugged in takes the guest's udev half a
/// second to show under TCG, and the guest's PCI hot-plug work; this takes six agent
/// commands. Where the agent refuses (RHEL's blocks guest-file-*), the caller plugs the disk
/// in instead: the parked guest waits for either.
fn hand_over(hv: &dyn crate::hypervisor::Hypervisor, domain: &str, archive: &[u8]) -> Result<()> {
    hv.agent_write(domain, (identity::AGENT_SEED_FILE, true), archive)?;
    hv.agent_write(domain, (identity::AGENT_SEED_FIFO, false), b"agent\n")
}

/// Wait, for at most a few seconds, until the NIC's bridge port forwards: the guest's
/// first DHCP request, sent as soon as its link is up, is then not lost in a port that
/// STP still holds back (its client would ask again only 1-3 s later). Where the port
/// cannot be seen (a remote host), the link comes up at once.
fn wait_forwarding(hv: &dyn crate::hypervisor::Hypervisor, record: &Record) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    while let Ok(Some(false)) = hv.nic_forwarding(&record.domain, &record.mac) {
        if std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Remove what a failed warm create made (domain, save image, disk), so that the instance
/// can be created cold under the same name.
pub(super) fn undo(ctx: &Context, record: &Record) -> Result<()> {
    ctx.hv.destroy(&record.domain)?;
    ctx.hv.undefine(&record.domain)?;
    ctx.hv.delete_volume(&save_path(record))?;
    ctx.hv.delete_volume(&record.disk)
}

/// Remove what a failed warm reset made (the running restore, save image, disk) and keep
/// the domain's definition, so that the instance can be reset cold.
pub(super) fn undo_reset(ctx: &Context, record: &Record) -> Result<()> {
    ctx.hv.destroy(&record.domain)?;
    ctx.hv.delete_volume(&save_path(record))?;
    ctx.hv.delete_volume(&record.disk)
}

fn missing(warm: &Warm, part: &Path) -> Error {
    Error::SaveImage(format!(
        "the warm image's {} is not in the pool (made {})",
        part.display(),
        warm.created
    ))
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

/// Wait until the guest agent reports the instance's host name: the parked agent sets it
/// last, once the whole identity is applied.
fn wait_applied(ctx: &Context, plan: &TemplatePlan, record: &Record) -> Result<()> {
    let limit = plan.timeouts.ssh;
    match wait_agent_hostname(ctx.hv.as_ref(), &record.domain, &record.hostname, limit)? {
        AgentWait::Reported => Ok(()),
        AgentWait::Stopped => Err(Error::Guest {
            name: record.name.clone(),
            message: format!(
                "it stopped before its identity was applied; console log: {}",
                record.console_log.display()
            ),
        }),
        AgentWait::TimedOut => Err(Error::Timeout {
            name: record.name.clone(),
            phase: "warm identity".into(),
            seconds: limit.as_secs(),
            console_log: record.console_log.display().to_string(),
        }),
    }
}

fn random_uuid() -> String {
    let mut b: [u8; 16] = crate::random::bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// What a clone's domain changes in the saved one: (saved, clone's) for paths.
struct Clone<'a> {
    name: &'a str,
    uuid: &'a str,
    genid: &'a str,
    disk: (&'a Path, &'a Path),
    console_log: (&'a Path, &'a Path),
    /// The parked NIC's MAC, the clone's MAC and its network.
    nic: Option<(&'a str, &'a str, &'a str)>,
}

/// The text between `<tag>` and `</tag>`, once.
fn element<'x>(xml: &'x str, tag: &str) -> Result<&'x str> {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .ok_or_else(|| Error::SaveImage(format!("its domain XML has no <{tag}>")))?
        + open.len();
    let end = xml[start..]
        .find(&format!("</{tag}>"))
        .ok_or_else(|| Error::SaveImage(format!("its domain XML has no </{tag}>")))?;
    Ok(&xml[start..start + end])
}

/// Replace every `from` in `xml` by `to`; an error if there is none (the saved domain is
/// not the one this code made, and a clone would share its disk or identity).
fn replace_all(xml: &str, from: &str, to: &str, what: &str) -> Result<String> {
    if !xml.contains(from) {
        return Err(Error::SaveImage(format!(
            "its domain XML does not have the {what} ({from})"
        )));
    }
    Ok(xml.replace(from, to))
}

/// The saved domain's XML (as libvirt wrote it in the save image) made the clone's. The
/// device set and addresses stay as they were: that is what the saved memory expects.
fn clone_xml(xml: &str, clone: &Clone) -> Result<String> {
    let e = escape;
    let path = |p: &Path| format!("file='{}'", e(&p.display().to_string()));
    let name = element(xml, "name")?;
    let uuid = element(xml, "uuid")?;
    let genid = element(xml, "genid").map_err(|_| {
        Error::SaveImage("its domain has no VM generation ID (<genid>) to renew".into())
    })?;
    let xml = replace_all(
        xml,
        &format!("<name>{name}</name>"),
        &format!("<name>{}</name>", e(clone.name)),
        "name",
    )?;
    let xml = replace_all(
        &xml,
        &format!("<uuid>{uuid}</uuid>"),
        &format!("<uuid>{}</uuid>", clone.uuid),
        "UUID",
    )?;
    let xml = replace_all(
        &xml,
        &format!("<genid>{genid}</genid>"),
        &format!("<genid>{}</genid>", clone.genid),
        "VM generation ID",
    )?;
    let xml = replace_all(&xml, &path(clone.disk.0), &path(clone.disk.1), "warm disk")?;
    let xml = replace_all(
        &xml,
        &path(clone.console_log.0),
        &path(clone.console_log.1),
        "console log",
    )?;
    match clone.nic {
        Some(nic) => clone_nic(&xml, nic),
        None => Ok(xml),
    }
}

/// The saved domain's NIC (the one with the `parked` MAC) made the clone's: its MAC (the
/// host side's: the guest is given it by its agent) and its network, with nothing of the
/// saved host side's port or tap device.
fn clone_nic(xml: &str, (parked, mac, network): (&str, &str, &str)) -> Result<String> {
    let missing = || Error::SaveImage(format!("its domain XML has no NIC with MAC {parked}"));
    let at = xml
        .find(&format!("<mac address='{parked}'/>"))
        .ok_or_else(missing)?;
    let open = xml[..at].rfind("<interface ").ok_or_else(missing)?;
    let close = at + xml[at..].find("</interface>").ok_or_else(missing)?;
    let mut nic = String::new();
    for line in xml[open..close].split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("<mac ") {
            nic.push_str(&format!("{indent}<mac address='{}'/>\n", escape(mac)));
        } else if trimmed.starts_with("<source ") {
            nic.push_str(&format!(
                "{indent}<source network='{}'/>\n",
                escape(network)
            ));
        } else if !trimmed.starts_with("<target dev=") {
            nic.push_str(line);
        }
    }
    if nic.contains(&format!("'{parked}'")) || !nic.contains("<source network=") {
        return Err(Error::SaveImage(format!(
            "its NIC is not written one element per line: {nic}"
        )));
    }
    Ok(format!("{}{nic}{}", &xml[..open], &xml[close..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A warm template's domain as libvirt 9 writes it into a save image (trimmed).
    const SAVED: &str = "<domain type='qemu'>
  <name>TEMPLATE-deb-warm</name>
  <uuid>5f1398cf-ba61-4033-9db5-30e2dc8d46cf</uuid>
  <genid>d8d56e69-eee3-45be-bf58-9e1888db3ae3</genid>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/pool/TEMPLATE-deb-warm.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/pool/TEMPLATE-deb-warm-seed.tar'/>
      <serial>virtup-park</serial>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:a3:9a:a9'/>
      <source network='virt-up'/>
      <model type='virtio'/>
      <link state='down'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </interface>
    <serial type='pty'>
      <log file='/logs/TEMPLATE-deb-warm.log' append='off'/>
    </serial>
    <console type='pty'>
      <log file='/logs/TEMPLATE-deb-warm.log' append='off'/>
    </console>
  </devices>
</domain>";

    fn clone<'a>(disk: &'a Path, log: &'a Path) -> Clone<'a> {
        Clone {
            name: "web1",
            uuid: "11111111-2222-4333-8444-555555555555",
            genid: "66666666-7777-4888-9999-000000000000",
            disk: (Path::new("/pool/TEMPLATE-deb-warm.qcow2"), disk),
            console_log: (Path::new("/logs/TEMPLATE-deb-warm.log"), log),
            nic: Some(("52:54:00:a3:9a:a9", "52:54:00:01:02:03", "lab")),
        }
    }

    #[test]
    fn a_clone_gets_its_own_name_uuid_genid_disk_and_console_log_and_keeps_the_park_seed() {
        let xml = clone_xml(
            SAVED,
            &clone(Path::new("/pool/web1.qcow2"), Path::new("/logs/web1.log")),
        )
        .unwrap();
        assert!(xml.contains("<name>web1</name>"), "{xml}");
        assert!(xml.contains("<uuid>11111111-2222-4333-8444-555555555555</uuid>"));
        assert!(xml.contains("<genid>66666666-7777-4888-9999-000000000000</genid>"));
        assert!(xml.contains("<source file='/pool/web1.qcow2'/>"));
        assert_eq!(xml.matches("<log file='/logs/web1.log'").count(), 2);
        for saved in [
            "TEMPLATE-deb-warm.qcow2",
            "5f1398cf",
            "d8d56e69",
            "TEMPLATE-deb-warm.log",
        ] {
            assert!(!xml.contains(saved), "{saved} left in {xml}");
        }
        assert!(
            xml.contains("<source file='/pool/TEMPLATE-deb-warm-seed.tar'/>"),
            "the parked boot's seed stays: the saved memory has its device"
        );
    }

    #[test]
    fn a_clones_nic_has_its_mac_and_network_and_keeps_its_device_and_link_down() {
        let with_tap = SAVED.replace(
            "<model type='virtio'/>",
            "<target dev='vnet7'/>\n      <model type='virtio'/>",
        );
        let c = clone(Path::new("/pool/web1.qcow2"), Path::new("/logs/web1.log"));
        let xml = clone_xml(&with_tap, &c).unwrap();
        let nic = &xml[xml.find("<interface").unwrap()..xml.find("</interface>").unwrap()];
        assert!(nic.contains("<mac address='52:54:00:01:02:03'/>"), "{nic}");
        assert!(nic.contains("<source network='lab'/>"), "{nic}");
        assert!(nic.contains("<link state='down'/>"), "{nic}");
        assert!(nic.contains("slot='0x02'"), "{nic}");
        assert!(!nic.contains("a3:9a:a9") && !nic.contains("vnet7"), "{nic}");
        // Saved without a NIC (older images): nothing to change; a parked MAC that is not
        // there is refused.
        let old = Clone { nic: None, ..c };
        assert!(clone_xml(SAVED, &old).is_ok());
        let other = Clone {
            nic: Some(("52:54:00:ff:ff:ff", "52:54:00:01:02:03", "lab")),
            ..old
        };
        let err = clone_xml(SAVED, &other).unwrap_err().to_string();
        assert!(err.contains("no NIC with MAC 52:54:00:ff:ff:ff"), "{err}");
    }

    #[test]
    fn a_saved_domain_that_is_not_a_warm_templates_is_refused() {
        let no_genid = SAVED.replace(
            "  <genid>d8d56e69-eee3-45be-bf58-9e1888db3ae3</genid>\n",
            "",
        );
        let clone = clone(Path::new("/pool/web1.qcow2"), Path::new("/logs/web1.log"));
        let err = clone_xml(&no_genid, &clone).unwrap_err().to_string();
        assert!(err.contains("no VM generation ID"), "{err}");
        let other_disk = SAVED.replace("TEMPLATE-deb-warm.qcow2", "other.qcow2");
        let err = clone_xml(&other_disk, &clone).unwrap_err().to_string();
        assert!(err.contains("does not have the warm disk"), "{err}");
    }

    #[test]
    fn uuids_are_random_version_4() {
        let a = random_uuid();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, random_uuid());
    }
}
