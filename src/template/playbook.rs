//! `template-playbook`: boot a new template once (with an identity of its own, host key
//! checked), run the playbook on it, make it anonymous again and power it off, all before
//! any instance depends on its disk.

use crate::config::plan::TemplatePlan;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hypervisor::domain_xml::Disk;
use crate::identity::{self, Account, Identity, SecretFiles};
use crate::lock::Lock;
use crate::readiness::{self, Jump, Target};
use crate::records::inventory;
use crate::records::Record;
use crate::sshkeys;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub(super) fn run(
    ctx: &Context,
    template: &Record,
    plan: &TemplatePlan,
    playbook: &str,
) -> Result<()> {
    crate::playbook::find(ctx, playbook)?;
    let seed = template
        .disk
        .with_file_name(format!("{}-seed.tar", template.name));
    let result = boot_and_run(ctx, template, plan, playbook, &seed);
    // Whatever happened, the template is not left running or defined as writable.
    let _ = ctx.hv.destroy(&template.domain);
    let _ = ctx.hv.undefine(&template.domain);
    let _ = ctx.hv.delete_volume(&seed);
    let _lock = Lock::exclusive(&ctx.paths.lock_file)?;
    inventory::set_known_host(&ctx.paths, &template.name, None)?;
    result
}

fn boot_and_run(
    ctx: &Context,
    template: &Record,
    plan: &TemplatePlan,
    playbook: &str,
    seed: &std::path::Path,
) -> Result<()> {
    ctx.ui.info(format!(
        "running template-playbook {playbook} on template {}",
        template.template
    ));
    let login_key = sshkeys::public_of(&template.user.ssh_identity)?;
    let account = |username: &str| Account {
        username: username.to_string(),
        create: false,
        authorized_key: login_key.clone(),
        password: None,
    };
    let identity = Identity {
        instance_id: identity::random_id(),
        hostname: template.hostname.clone(),
        host_key: sshkeys::generate(&template.name)?,
        accounts: vec![account("root"), account(&template.user.username)],
        machine_id: identity::random_id(),
        mounts: Vec::new(),
        mac: None,
    };
    let seed = identity::upload_seed(ctx.hv.as_ref(), (&plan.host.pool, seed), &identity)?;
    {
        let _lock = Lock::exclusive(&ctx.paths.lock_file)?;
        inventory::set_known_host(
            &ctx.paths,
            &template.name,
            Some(&identity.host_key.public_openssh),
        )?;
    }
    crate::fsutil::private_dir(&ctx.paths.console_logs())?;
    let mut spec = super::template_domain(template, &plan.host);
    spec.disks[0].readonly = false;
    spec.disks.push(Disk {
        path: seed,
        format: "raw".into(),
        readonly: true,
        serial: Some(identity::SEED_SERIAL.into()),
    });
    ctx.ui.begin(&template.template, "boot");
    ctx.hv.define(&spec.to_xml())?;
    ctx.hv.start(&template.domain)?;

    let runner = ctx.runner(plan.host.virt_type);
    let target = Target {
        domain: &template.domain,
        mac: &spec.mac,
        hostname: &template.hostname,
        source: plan.address_source,
        address_timeout: plan.timeouts.address,
        ssh_timeout: plan.timeouts.ssh,
        console_log: &template.console_log,
        neighbours: ctx.neighbours.clone(),
        jump: Jump::of(template, &runner),
        sshd_listening: false,
    };
    let name = template.template.as_str();
    ctx.ui.begin(name, "address");
    let address = readiness::wait_ready(ctx.hv.as_ref(), &target, &mut |phase, took| {
        ctx.ui.phase(&template.name, phase, took);
        if phase == "address" {
            ctx.ui.begin(name, "ssh");
        }
    })?;
    readiness::verify_host_key(
        &runner,
        template,
        (&template.root, None),
        &address,
        &identity.host_key.public_openssh,
    )?;

    // A one-host inventory, written by the same serializer as the real one.
    let mut host = template.clone();
    host.address = Some(address.clone());
    host.inventory = true;
    let files = SecretFiles::new()?;
    let inventory_file = files.write(
        "inventory.yaml",
        &inventory::render_inventory(std::slice::from_ref(&host)),
        0o600,
    )?;
    ctx.ui.begin(name, "playbook");
    crate::playbook::run_with_inventory(ctx, &inventory_file, &template.name, playbook)?;
    ctx.ui.begin(name, "generalize");
    generalize_and_power_off(ctx, &host, &address, plan)
}

/// Send the generalize script over SSH (on stdin: nothing is pasted into a command line),
/// then wait until the guest has powered off.
fn generalize_and_power_off(
    ctx: &Context,
    host: &Record,
    address: &str,
    plan: &TemplatePlan,
) -> Result<()> {
    let mut cmd = crate::records::ssh::command("ssh", host, &host.root, address, &["-T"]);
    cmd.arg("sh -s");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| crate::runner::spawn_error("ssh", e))?;
    let script = format!("{}\nsystemctl poweroff --no-block\n", identity::GENERALIZE);
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| Error::Generalize(format!("generalizing {}: {e}", host.name)))?;
    let status = child
        .wait()
        .map_err(|e| Error::Generalize(format!("generalizing {}: {e}", host.name)))?;
    if !status.success() {
        return Err(Error::Generalize(format!(
            "generalizing template {} over ssh failed (exit {})",
            host.template,
            status.code().unwrap_or(-1)
        )));
    }
    let deadline = Instant::now() + plan.timeouts.ssh;
    while ctx.hv.is_running(&host.domain)? {
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                name: host.name.clone(),
                phase: "poweroff".into(),
                seconds: plan.timeouts.ssh.as_secs(),
                console_log: host.console_log.display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
