//! Templates: a read-only base disk built once by virt-builder (plus the first-boot identity
//! agent and the login user), its record, and a libvirt domain whose disk is read-only, so
//! nothing can write a disk that clones depend on.

mod kept;
mod playbook;
pub mod warm;

use crate::clock::now_rfc3339;
use crate::config::plan::{Host, TemplatePlan, TemplateSource, VirtBuilder};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fsutil::TempPath;
use crate::hypervisor::domain_xml::{Disk, DomainSpec};
use crate::hypervisor::{NewVolume, PoolCapacity, VolumeSource};
use crate::identity::{self, SecretFiles};
use crate::image::qemu_img::QemuImg;
use crate::lock::Lock;
use crate::records::{Login, Phase, Record};
use crate::runner::argv;
use crate::size;
use crate::sshkeys;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The template's record if it is built and its disk is there.
pub fn built(ctx: &Context, template: &str) -> Result<Option<Record>> {
    let stem = ctx.template_stem(template);
    match ctx.store.load(&stem)? {
        Some(r)
            if r.phase == Phase::Ready
                && ctx.is_here(&r.uri)
                && ctx.hv.volume(&r.disk)?.is_some() =>
        {
            Ok(Some(r))
        }
        _ => Ok(None),
    }
}

/// Instances whose disks are backed by this template (its copy on this libvirt host).
pub fn dependents(ctx: &Context, template: &str) -> Result<Vec<String>> {
    let (records, _) = ctx.store.all()?;
    Ok(records
        .into_iter()
        .filter(|r| !r.is_template() && r.template == template)
        .filter(|r| ctx.is_here(&r.uri))
        .map(|r| r.name)
        .collect())
}

/// Build the template unless it is built (or rebuild it with `force`). Concurrent callers
/// wait on the template's lock, so it is built once.
pub fn ensure(ctx: &Context, plan: &TemplatePlan, force: bool) -> Result<Record> {
    let template = plan.name.as_str();
    let stem = ctx.template_stem(template);
    let _lock = Lock::exclusive(&ctx.paths.locks().join(format!("{stem}.lock")))?;
    if !force {
        if let Some(record) = built(ctx, template)? {
            warn_if_redefined(ctx, plan, &record);
            return Ok(record);
        }
    }
    let users = dependents(ctx, template)?;
    if !users.is_empty() {
        return Err(Error::TemplateInUse {
            template: template.to_string(),
            instances: users,
        });
    }
    if let Some(playbook) = &plan.playbook {
        crate::playbook::find(ctx, playbook)?;
    }
    // An invalid customization is an error before the old template is removed.
    let cache = crate::stepcache::Cache::open(&plan.cache_dir)?;
    let spec = customization(plan, cache.dir())?;
    if force {
        // A rebuild asked for is a new disk, not the one kept from the last build.
        kept::discard(plan)?;
    }
    remove(ctx, template)?;
    build(ctx, plan, spec.map(|spec| (spec, cache)))
}

/// A fingerprint of what the template is built from (see [`TemplatePlan::definition`]).
fn definition(plan: &TemplatePlan) -> String {
    crate::digest::sha256_hex(&plan.definition)
}

/// A built template is reused as it is (clones may depend on it); say so when its
/// definition has changed since, and how to rebuild it.
fn warn_if_redefined(ctx: &Context, plan: &TemplatePlan, record: &Record) {
    let template = &plan.name;
    if record
        .definition
        .as_deref()
        .is_some_and(|built_from| built_from != definition(plan))
    {
        ctx.ui.warn(format!(
            "template {template} was built from a different definition than its current one in templates.d; using the built one. To rebuild it: delete its instances, then 'virt-up {template} --no-clone --force'"
        ));
    }
}

/// Undefine the template's domain and remove its disk and record (no dependents checked).
pub fn remove(ctx: &Context, template: &str) -> Result<()> {
    let stem = ctx.template_stem(template);
    if let Some(old) = ctx.store.load(&stem)? {
        ctx.hv.destroy(&old.domain)?;
        ctx.hv.undefine(&old.domain)?;
        if let Some(image) = &old.warm {
            warm::remove(ctx, image)?;
        }
        for retired in &old.retired_warm {
            warm::remove_retired(ctx, retired)?;
        }
        ctx.hv.delete_volume(&old.disk)?;
    }
    ctx.store.remove(&stem)
}

/// Build the template's disk: through the step cache when it has a virt-maker `spec`
/// (loaded and validated by the caller), else with virt-builder.
///
/// The disk is built here, in the cache directory (virt-builder -o takes a local path), and
/// then uploaded into the pool through libvirt's storage API: the pool may be one this user
/// cannot write, or on another host. Nothing is written to the pool's directory by a file
/// operation.
fn build(
    ctx: &Context,
    plan: &TemplatePlan,
    spec: Option<(crate::steps::template::Template, crate::stepcache::Cache)>,
) -> Result<Record> {
    let template = plan.name.as_str();
    // The record's stem names the host too; the domain and disk on that host need not.
    let stem = ctx.template_stem(template);
    let domain = crate::names::template_stem(template);
    let pool = plan.host.pool.as_str();
    let format = plan.format;
    let pool_dir = ctx.hv.pool_path(pool)?;
    ctx.ensure_network(&plan.host.network)?;
    let volume_name = format!("{domain}.{format}");
    let disk = pool_dir.join(&volume_name);
    // A domain or disk of this name that our records do not know belongs to someone else
    // (another data dir): never overwrite it, clones elsewhere may depend on it.
    if ctx.hv.is_defined(&domain)? || ctx.hv.volume(&disk)?.is_some() {
        return Err(Error::Unrecorded {
            template: template.to_string(),
            stem: domain,
            data_dir: ctx.paths.data.clone(),
            disk,
        });
    }
    // Gone when this returns, before the caller says the template is ready (or failed).
    let _line = ctx.ui.line(template);
    // A customized template's disk comes from the step cache, which knows when a step's
    // files changed (its definition does not): only virt-builder's are reused.
    let kept = spec
        .is_none()
        .then(|| kept::find(plan, &definition(plan)))
        .flatten();
    let (disk, key, final_layer, digest) = match kept {
        Some(kept) => upload_kept(ctx, plan, kept, &stem, &volume_name)?,
        None => build_and_upload(ctx, plan, spec, &stem, &volume_name)?,
    };
    let login = Login::with_key(plan.username.clone(), key);
    if let Some(final_layer) = final_layer {
        // The template's layers stay in the cache while the template exists.
        let cache = crate::stepcache::Cache::open(&plan.cache_dir)?;
        if let Err(e) = cache.pin(&format!("virt-up template {template}"), &final_layer, &disk) {
            let _ = ctx.hv.delete_volume(&disk);
            return Err(e);
        }
    }

    let mut record = template_record(ctx, plan, &disk, login);
    record.disk_digest = Some(digest);
    if let Some(playbook) = &plan.playbook {
        // A failed playbook leaves no template behind: the next run builds it afresh.
        if let Err(e) = playbook::run(ctx, &record, plan, playbook) {
            let _ = ctx.hv.delete_volume(&disk);
            return Err(e);
        }
    }
    ctx.hv
        .define(&template_domain(&record, &plan.host).to_xml())?;
    ctx.store.save(&stem, &record)?;
    Ok(record)
}

/// Build the template's disk here, in the cache directory (virt-builder -o takes a local
/// path), with a new login key, and upload it as volume `volume_name`: the volume, the
/// login key and the step cache's final layer, if it has one. Kept for other hosts when
/// the connection is remote.
fn build_and_upload(
    ctx: &Context,
    plan: &TemplatePlan,
    spec: Option<(crate::steps::template::Template, crate::stepcache::Cache)>,
    stem: &str,
    volume_name: &str,
) -> Result<(PathBuf, PathBuf, Option<String>, String)> {
    let template = plan.name.as_str();
    // Built locally under a temporary name (removed whatever happens) and uploaded only
    // when complete, so a killed build never leaves a volume that looks like a template.
    let staging = plan.cache_dir.join("builds");
    crate::fsutil::private_dir(&staging)?;
    let staged = TempPath::fresh(staging.join(format!("{stem}.{}.part", plan.format)))?;
    let key_pair = sshkeys::generate(&format!("virt-up template {template}"))?;
    let key = sshkeys::write_login_key(&ctx.paths.sshkeys(), stem, &key_pair)?;
    let started = std::time::Instant::now();
    ctx.ui.begin(template, "build");
    ctx.ui.info(format!(
        "building template {template} from {} (this takes a few minutes, once)",
        spec.as_ref()
            .map(|(s, _)| s.file.display().to_string())
            .unwrap_or_else(|| plan.os_version.clone())
    ));
    let output = Output {
        disk: staged.path(),
        public_key: &key_pair.public_openssh,
    };
    let final_layer = match (spec, &plan.source) {
        (Some((spec, cache)), _) => Some(build_customized(ctx, plan, (spec, cache), &output)?),
        (None, TemplateSource::VirtBuilder(image)) => {
            run_virt_builder(ctx, plan, image, &output)?;
            None
        }
        (None, _) => unreachable!("a customized template is built from its spec"),
    };
    ctx.ui.phase(template, "build", started.elapsed());
    let started = std::time::Instant::now();
    ctx.ui.begin(template, "upload");
    let (disk, digest) = upload(ctx, plan, staged.path(), volume_name)?;
    ctx.ui.phase(template, "upload", started.elapsed());
    if (ctx.is_remote() || !plan.hosts.is_empty()) && final_layer.is_none() {
        // Another host may want the same disk: kept; a failure to keep it costs a build.
        let kept = kept::keep(plan, &definition(plan), staged, &key, final_layer.clone());
        if let Err(e) = kept {
            ctx.ui.warn(format!(
                "template {template}: its disk is not kept for other hosts: {e}"
            ));
        }
    }
    Ok((disk, key, final_layer, digest))
}

/// Upload the disk kept from the template's build for another host, with its login key
/// (built into it) copied as this host's template key: no build.
fn upload_kept(
    ctx: &Context,
    plan: &TemplatePlan,
    kept: kept::Kept,
    stem: &str,
    volume_name: &str,
) -> Result<(PathBuf, PathBuf, Option<String>, String)> {
    let template = plan.name.as_str();
    ctx.ui.info(format!(
        "template {template}: uploading the disk built for another host (same definition)"
    ));
    let private = std::fs::read_to_string(&kept.key).map_err(|e| Error::io(&kept.key, e))?;
    let key_pair = sshkeys::KeyPair {
        public_openssh: sshkeys::public_of(&kept.key)?,
        private_openssh: private,
    };
    let key = sshkeys::write_login_key(&ctx.paths.sshkeys(), stem, &key_pair)?;
    let started = std::time::Instant::now();
    ctx.ui.begin(template, "upload");
    let (disk, digest) = upload(ctx, plan, &kept.disk, volume_name)?;
    ctx.ui.phase(template, "upload", started.elapsed());
    Ok((disk, key, kept.final_layer, digest))
}

/// Put the disk built at `built` into the template's pool as volume `name`: an empty volume
/// of the disk's size, then its bytes (virStorageVolUpload). The volume's path and the
/// sha256 of what was uploaded (the same on every host that got the same disk). Refused, before anything is
/// written, when the pool has less room than the file takes. A failed upload deletes the
/// volume.
fn upload(
    ctx: &Context,
    plan: &TemplatePlan,
    built: &Path,
    name: &str,
) -> Result<(PathBuf, String)> {
    let pool = plan.host.pool.as_str();
    let runner = ctx.runner(plan.host.virt_type);
    let info = QemuImg::new(&runner).info(built, Some(plan.format.as_str()))?;
    let bytes = crate::fsutil::allocated_bytes(built)?;
    room_for(&plan.name, pool, bytes, ctx.hv.pool_capacity(pool)?)?;
    let volume = ctx.hv.create_volume(&NewVolume {
        pool,
        name,
        format: plan.format,
        source: VolumeSource::Empty {
            capacity: info.virtual_size,
        },
    })?;
    let digest = crate::digest::file_sha256(built).map(|d| crate::digest::hex(&d));
    let uploaded = digest
        .map_err(Error::from)
        .and_then(|d| ctx.hv.upload_volume(&volume.path, built).map(|_| d));
    match uploaded {
        Ok(digest) => Ok((volume.path, digest)),
        Err(e) => {
            let _ = ctx.hv.delete_volume(&volume.path);
            Err(e)
        }
    }
}

/// An error naming the pool and both figures when `bytes` do not fit in it.
fn room_for(template: &str, pool: &str, bytes: u64, room: PoolCapacity) -> Result<()> {
    if room.available >= bytes {
        return Ok(());
    }
    Err(Error::Libvirt {
        what: format!("storage pool '{pool}'"),
        message: format!(
            "template {template} needs {} and the pool has {} available",
            size::human(bytes),
            size::human(room.available)
        ),
        hint: "\nfree space in the pool, or set 'pool' to another one".into(),
    })
}

fn template_record(ctx: &Context, plan: &TemplatePlan, disk: &Path, login: Login) -> Record {
    let stem = ctx.template_stem(&plan.name);
    let domain = crate::names::template_stem(&plan.name);
    Record {
        name: stem.clone(),
        template: plan.name.clone(),
        created: now_rfc3339(),
        phase: Phase::Ready,
        pid: std::process::id(),
        os_version: plan.os_version.clone(),
        os_variant: plan.os_variant.clone(),
        hostname: domain.to_lowercase(),
        domain: domain.clone(),
        disk: disk.to_path_buf(),
        format: plan.format.to_string(),
        memory: plan.memory_mib,
        vcpus: plan.vcpus,
        graphics: plan.graphics.to_string(),
        size: plan.size.as_ref().map(|s| s.text.clone()),
        root: Login::with_key("root", login.ssh_identity.clone()),
        user: login,
        address_source: plan.address_source.to_string(),
        ssh_options: crate::records::inventory::ssh_options(&ctx.paths, &stem, ctx.jump.as_deref()),
        address: None,
        // Templates boot only for a template-playbook; a fresh MAC each time is fine.
        mac: crate::mac::random(),
        uri: ctx.hv.uri(),
        identity: plan.identity.to_string(),
        console_log: ctx.console_log(&domain),
        extra_files: vec![],
        inventory: false,
        cloned: None,
        from: None,
        definition: Some(definition(plan)),
        parks: true,
        agent_mounts: true,
        agent_seed: true,
        mounts: Vec::new(),
        warm: None,
        reservation: None,
        retired_warm: Vec::new(),
        disk_digest: None,
    }
}

/// The template's domain: its disk is read-only, so even a start by hand cannot write it.
fn template_domain(record: &Record, host: &Host) -> DomainSpec {
    let mut spec = domain_base(record, host);
    spec.disks[0].readonly = true;
    spec
}

/// The domain of an instance or template record: its disk, memory, vCPUs, network, MAC,
/// console log; virt-install-args are applied by the caller where they apply.
pub(crate) fn domain_base(record: &Record, host: &Host) -> DomainSpec {
    DomainSpec {
        name: record.domain.clone(),
        uuid: None,
        virt_type: host.virt_type.to_string(),
        arch: host.arch.clone(),
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
        network: host.network.clone(),
        mac: record.mac.clone(),
        nic: crate::hypervisor::domain_xml::Nic::Up,
        genid: false,
        graphics: record.graphics.clone(),
        video: None,
        rng: true,
        console_log: record.console_log.clone(),
        template: record.template.clone(),
        filesystems: Vec::new(),
        extra: Default::default(),
    }
}

/// Where a build writes the template's disk, and the login key it puts in.
#[derive(Clone, Copy)]
struct Output<'a> {
    disk: &'a Path,
    public_key: &'a str,
}

/// The template's virt-maker spec: its `customize` file, or its `steps` applied to its
/// os-version image; None for a plain virt-builder template. Loaded (and so validated)
/// before anything is built.
fn customization(
    plan: &TemplatePlan,
    cache_dir: &Path,
) -> Result<Option<crate::steps::template::Template>> {
    use crate::steps::template::Template;
    match &plan.source {
        TemplateSource::VirtBuilder(_) => Ok(None),
        TemplateSource::Customize { file } => Template::load(file, &[], cache_dir).map(Some),
        TemplateSource::Steps { image, steps, file } => {
            let doc = steps_document(image, plan, steps, file)?;
            Template::from_doc(file, doc, &[], cache_dir).map(Some)
        }
    }
}

/// A virt-maker template document for `steps = ...`: the os-version image imported with
/// virt-builder (its source, size and arguments), then one step per non-empty line, each
/// line a YAML single-key mapping as in a template's `steps` list.
fn steps_document(
    image: &VirtBuilder,
    plan: &TemplatePlan,
    text: &str,
    file: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    use serde_json::{json, Value};
    let mut steps = vec![];
    for (i, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let step: Value = yaml_serde::from_str(line).map_err(|e| Error::Template {
            file: file.to_path_buf(),
            location: format!("steps, step {}: ", i + 1),
            message: format!("'{line}' is not a YAML mapping like 'install: [nginx]': {e}"),
        })?;
        steps.push(step);
    }
    let mut import = json!({ "image": image.os_version });
    if let Some(source) = &image.repository {
        import["source"] = json!(source);
    }
    if let Some(size) = &plan.size {
        import["size"] = json!(size.text);
    }
    if !image.args.is_empty() {
        import["args"] = json!(image.args);
    }
    let doc = json!({ "spec": { "import": { "virt-builder": import }, "steps": steps } });
    match doc {
        Value::Object(map) => Ok(map),
        _ => unreachable!("a JSON object literal"),
    }
}

/// A template whose disk comes from a virt-maker spec (`customize` or `steps`): its import
/// and steps are built through the step cache (its export is not used), the final layer is
/// copied to `output` (so the template does not depend on the cache's files), and virt-up's
/// own customizations are applied to the copy in one virt-customize run. Returns the key
/// of the final layer.
fn build_customized(
    ctx: &Context,
    plan: &TemplatePlan,
    (mut spec, cache): (crate::steps::template::Template, crate::stepcache::Cache),
    output: &Output,
) -> Result<String> {
    let Output {
        disk: output,
        public_key,
    } = *output;
    spec.export = None;
    let spec_path = spec.file.clone();
    let ui = &ctx.ui;
    let out = |line: &str| ui.info(line);
    let name = plan.name.as_str();
    let status = |step: &crate::steps::build::StepStatus| match step.draws_bars {
        // Its own bars say how far it is; the line comes back at the next step.
        true => ui.lines.remove(name),
        false => ui.begin(name, &format!("build {}", step.text())),
    };
    let runner = ctx.runner(plan.host.virt_type);
    let builder = crate::steps::build::Builder {
        cache,
        runner: runner.clone(),
        out: &out,
        status: &status,
    };
    let built = builder.build(&spec, &Default::default())?;
    // The conversion draws its own bar.
    ui.lines.remove(name);
    // Layers are qcow2; a bar on a terminal for this long copy.
    QemuImg::new(&runner).convert(
        &built.layer,
        "qcow2",
        output,
        plan.format,
        &crate::image::cancel::Cancel::new(),
        true,
    )?;
    let files = SecretFiles::new()?;
    // --format must come before -a.
    let mut args = argv([
        "--format".as_ref(),
        plan.format.as_str().as_ref(),
        "-a".as_ref(),
        output.as_os_str(),
    ]);
    args.extend(virt_up_customizations(&files, &plan.username, public_key)?);
    args.extend(argv([
        "--truncate",
        "/etc/machine-id",
        "--delete",
        "/etc/ssh/ssh_host_*",
    ]));
    if let (Some(size), TemplateSource::Customize { .. }) = (&plan.size, &plan.source) {
        ctx.ui.warn(format!(
            "'size = {}' is ignored for a customized template (set it in its import)",
            size.text
        ));
    }
    runner
        .tool("virt-customize")
        .args(&args)
        .context(format!(
            "adding virt-up's agent and login to {}",
            spec_path.display()
        ))
        .run()?;
    Ok(built.key)
}

/// virt-builder with the template's image, the identity agent, the login user and keys.
/// Secrets go through 0600 files, never on the command line.
fn run_virt_builder(
    ctx: &Context,
    plan: &TemplatePlan,
    image: &VirtBuilder,
    output: &Output,
) -> Result<()> {
    let Output {
        disk: output,
        public_key,
    } = *output;
    let files = SecretFiles::new()?;
    let mut args: Vec<OsString> = argv([&image.os_version]);
    if let Some(source) = &image.repository {
        // A local repository gains nothing from virt-builder's download cache, and a
        // rebuilt image that kept its name and revision would fail the cached checksum.
        args.extend(argv(["--source", source, "--no-cache"]));
        match &image.fingerprint {
            Some(fp) => args.extend(argv(["--fingerprint", fp])),
            None => args.extend(argv(["--no-check-signature"])),
        }
    }
    args.extend(argv([
        "--output".to_string(),
        output.display().to_string(),
        "--format".to_string(),
        plan.format.to_string(),
        "--arch".to_string(),
        plan.host.arch.clone(),
    ]));
    if let Some(size) = &plan.size {
        args.extend(argv(["--size", &size.text]));
    }
    args.extend(virt_up_customizations(&files, &plan.username, public_key)?);
    args.extend(argv(&image.args));
    // Generalize last, whatever the extra arguments did: clones get their own identity.
    args.extend(argv([
        "--truncate",
        "/etc/machine-id",
        "--delete",
        "/etc/ssh/ssh_host_*",
    ]));
    let mut runner = ctx.runner(plan.host.virt_type);
    if image.repository.is_some() {
        // --source adds to the repositories of /etc/virt-builder/repos.d, which a host
        // without internet cannot reach: an empty VIRT_BUILDER_DIRS leaves only ours.
        let empty = files.dir("no-system-repos")?;
        runner = runner.with_env("VIRT_BUILDER_DIRS", empty.display().to_string());
    }
    // Its stage messages ("[  12.3] Installing packages") on stdout, as they come, say
    // what it is at on the template's status line.
    let lines = crate::status::LineSplitter::default();
    let stage = |chunk: &[u8]| {
        if let Some(stage) = lines
            .feed(chunk)
            .iter()
            .rev()
            .find_map(|l| virt_builder_stage(l))
        {
            ctx.ui.lines.detail(&plan.name, stage);
        }
    };
    runner
        .tool("virt-builder")
        .args(&args)
        .context(format!("building template {}", plan.name))
        .watch(&stage)
        .run()?;
    Ok(())
}

/// The stage a line of virt-builder's output names: `[   3.1] Planning how to build this
/// image` -> `Planning how to build this image`.
fn virt_builder_stage(line: &str) -> Option<&str> {
    let (seconds, stage) = line.trim_start().strip_prefix('[')?.split_once(']')?;
    seconds.trim().parse::<f64>().ok()?;
    Some(stage.trim()).filter(|s| !s.is_empty())
}

/// The customization operations virt-up adds to every template (virt-builder and
/// virt-customize take the same ones): the identity agent, the login user and keys.
/// For a customized template, generalization is part of them too.
fn virt_up_customizations(
    files: &SecretFiles,
    username: &str,
    public_key: &str,
) -> Result<Vec<OsString>> {
    let agent = files.write("virt-up-identity", identity::AGENT_SCRIPT, 0o755)?;
    let unit = files.write("virt-up-identity.service", identity::AGENT_UNIT, 0o644)?;
    let park = files.write("virt-up-park.service", identity::PARK_UNIT, 0o644)?;
    let motd = files.write("virt-up-motd.service", identity::MOTD_UNIT, 0o644)?;
    let setup = files.write("template-setup", identity::TEMPLATE_SETUP, 0o755)?;
    let user_file = files.write("template-user", username, 0o644)?;
    let pubkey = files.write("key.pub", public_key, 0o644)?;
    let p = |path: &PathBuf| path.display().to_string();
    Ok(argv([
        "--hostname".to_string(),
        "localhost".to_string(),
        // Locked: clones log in with their own keys; --root-password sets one per instance.
        "--root-password".to_string(),
        "disabled".to_string(),
        "--mkdir".to_string(),
        "/var/lib/virt-up".to_string(),
        "--upload".to_string(),
        format!("{}:/usr/local/sbin/virt-up-identity", p(&agent)),
        "--chmod".to_string(),
        "0755:/usr/local/sbin/virt-up-identity".to_string(),
        "--upload".to_string(),
        format!("{}:/etc/systemd/system/virt-up-identity.service", p(&unit)),
        "--link".to_string(),
        "/etc/systemd/system/virt-up-identity.service:/etc/systemd/system/sysinit.target.wants/virt-up-identity.service".to_string(),
        "--upload".to_string(),
        format!("{}:/etc/systemd/system/virt-up-park.service", p(&park)),
        "--link".to_string(),
        "/etc/systemd/system/virt-up-park.service:/etc/systemd/system/multi-user.target.wants/virt-up-park.service".to_string(),
        "--upload".to_string(),
        format!("{}:/etc/systemd/system/virt-up-motd.service", p(&motd)),
        "--link".to_string(),
        "/etc/systemd/system/virt-up-motd.service:/etc/systemd/system/multi-user.target.wants/virt-up-motd.service".to_string(),
        "--upload".to_string(),
        format!("{}:/var/lib/virt-up/template-user", p(&user_file)),
        "--run".to_string(),
        p(&setup),
        "--ssh-inject".to_string(),
        format!("{username}:file:{}", p(&pubkey)),
        "--ssh-inject".to_string(),
        format!("root:file:{}", p(&pubkey)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virt_builder_stages_are_read_from_its_time_stamped_lines() {
        assert_eq!(
            virt_builder_stage("[   3.1] Planning how to build this image"),
            Some("Planning how to build this image")
        );
        assert_eq!(
            virt_builder_stage("[  12.0] Installing packages: nginx"),
            Some("Installing packages: nginx")
        );
        assert_eq!(virt_builder_stage("Output file: /x.qcow2"), None);
        assert_eq!(virt_builder_stage("[x] not a time"), None);
        assert_eq!(virt_builder_stage("[ 1.0]"), None);
    }

    #[test]
    fn a_template_that_does_not_fit_in_its_pool_is_refused_with_both_figures() {
        let room = |available| PoolCapacity {
            capacity: 10 << 30,
            allocation: (10 << 30) - available,
            available,
        };
        assert!(room_for("deb", "default", 1 << 30, room(1 << 30)).is_ok());
        let err = room_for("deb", "default", 3 << 29, room(1 << 30)).unwrap_err();
        assert_eq!(err.exit_code(), 4, "the host is not ready for it");
        let text = err.to_string();
        assert!(text.contains("storage pool 'default'"), "{text}");
        assert!(
            text.contains("template deb needs 1.5 GiB and the pool has 1 GiB available"),
            "{text}"
        );
    }
}
