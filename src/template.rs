//! Templates: a read-only base disk built once by virt-builder (plus the first-boot identity
//! agent and the login user), its record, and a libvirt domain whose disk is read-only, so
//! nothing can write a disk that clones depend on.

use crate::config::Settings;
use crate::context::Context;
use crate::domain_xml::DomainSpec;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::remove_if_exists;
use crate::identity::{self, SecretFiles};
use crate::lock::Lock;
use crate::names::template_stem;
use crate::records::{now_rfc3339, Login, Phase, Record};
use crate::runner::argv;
use crate::sshkeys;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The template's record if it is built and its disk is there.
pub fn built(ctx: &Context, template: &str) -> Result<Option<Record>> {
    let stem = template_stem(template);
    Ok(ctx
        .store
        .load(&stem)?
        .filter(|r| r.phase == Phase::Ready && r.disk.exists()))
}

/// Instances whose disks are backed by this template.
pub fn dependents(ctx: &Context, template: &str) -> Result<Vec<String>> {
    let (records, _) = ctx.store.all()?;
    Ok(records
        .into_iter()
        .filter(|r| !r.is_template() && r.template == template)
        .map(|r| r.name)
        .collect())
}

/// Build the template unless it is built (or rebuild it with `force`). Concurrent callers
/// wait on the template's lock, so it is built once.
pub fn ensure(ctx: &Context, template: &str, settings: &Settings, force: bool) -> Result<Record> {
    let stem = template_stem(template);
    let _lock = Lock::exclusive(&ctx.paths.locks().join(format!("{stem}.lock")))?;
    if !force {
        if let Some(record) = built(ctx, template)? {
            warn_if_redefined(ctx, template, settings, &record);
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
    if let Some(playbook) = settings.get("template-playbook") {
        crate::playbook::find(ctx, playbook)?;
    }
    // An invalid customization is an error before the old template is removed.
    let cache = crate::stepcache::Cache::open(&cache_dir(ctx, settings))?;
    let spec = customization(ctx, settings, cache.dir())?;
    remove(ctx, template)?;
    build(ctx, template, settings, spec.map(|spec| (spec, cache)))
}

/// The settings that decide what a template's disk holds (instance settings such as
/// memory or network do not), with the content of its `customize` file.
const DEFINING_KEYS: &[&str] = &[
    "os-version",
    "virt-builder-source",
    "virt-builder-fingerprint",
    "virt-builder-args",
    "size",
    "image-format",
    "arch",
    "username",
    "customize",
    "steps",
    "template-playbook",
];

/// A fingerprint of what the template is built from: its defining settings and the
/// content of its customize file (files that file names are the step cache's business).
pub fn definition(settings: &Settings) -> String {
    let mut text = String::new();
    for key in DEFINING_KEYS {
        text.push_str(&format!("{key}={}\n", settings.get(key).unwrap_or("")));
    }
    if let Some(path) = customize_path(settings) {
        text.push_str(&String::from_utf8_lossy(
            &std::fs::read(path).unwrap_or_default(),
        ));
    }
    crate::digest::sha256_hex(&text)
}

/// A built template is reused as it is (clones may depend on it); say so when its
/// definition has changed since, and how to rebuild it.
fn warn_if_redefined(ctx: &Context, template: &str, settings: &Settings, record: &Record) {
    if record
        .definition
        .as_deref()
        .is_some_and(|built_from| built_from != definition(settings))
    {
        ctx.ui.warn(format!(
            "template {template} was built from a different definition than its current one in templates.d; using the built one. To rebuild it: delete its instances, then 'virt-up {template} --no-clone --force'"
        ));
    }
}

/// Undefine the template's domain and remove its disk and record (no dependents checked).
pub fn remove(ctx: &Context, template: &str) -> Result<()> {
    let stem = template_stem(template);
    if let Some(old) = ctx.store.load(&stem)? {
        ctx.hv.destroy(&old.domain)?;
        ctx.hv.undefine(&old.domain)?;
        remove_if_exists(&old.disk)?;
    }
    ctx.store.remove(&stem)
}

/// Build the template's disk: through the step cache when it has a virt-maker `spec`
/// (loaded and validated by the caller), else with virt-builder.
fn build(
    ctx: &Context,
    template: &str,
    settings: &Settings,
    spec: Option<(crate::maker::template::Template, crate::stepcache::Cache)>,
) -> Result<Record> {
    let stem = template_stem(template);
    let pool = settings.text("pool");
    let format = settings.text("image-format").to_string();
    let pool_dir = ctx.hv.pool_path(pool)?;
    ctx.hv.check_network(settings.text("network"))?;
    let disk = pool_dir.join(format!("{stem}.{format}"));
    // A domain or disk of this name that our records do not know belongs to someone else
    // (another data dir): never overwrite it, clones elsewhere may depend on it.
    if ctx.hv.is_defined(&stem)? || disk.exists() {
        return Err(Error::Other(format!(
            "template {template}: domain or disk '{stem}' exists but is not recorded in {}; it may belong to another virt-up data dir. Remove it (virsh undefine {stem}; rm {}) if it is unused",
            ctx.paths.data.display(),
            disk.display()
        )));
    }
    // Built under a temporary name and renamed into place only when complete, so a killed
    // build never leaves a disk that looks like a template.
    let partial = pool_dir.join(format!(".{stem}.{format}.part"));
    remove_if_exists(&partial)?;

    let key_pair = sshkeys::generate(&format!("virt-up template {template}"))?;
    let key = sshkeys::write_login_key(&ctx.paths.sshkeys(), &stem, &key_pair)?;
    let username = settings.text("username").to_string();
    let started = std::time::Instant::now();
    ctx.ui.info(format!(
        "building template {template} from {} (this takes a few minutes, once)",
        spec.as_ref()
            .map(|(s, _)| s.file.display().to_string())
            .unwrap_or_else(|| settings.text("os-version").to_string())
    ));
    let result = match spec {
        Some((spec, cache)) => build_customized(
            ctx,
            settings,
            spec,
            cache,
            &partial,
            &username,
            &key_pair.public_openssh,
        )
        .and_then(|final_layer| {
            std::fs::rename(&partial, &disk).at(&disk)?;
            // The template's layers stay in the cache while the template exists.
            let cache = crate::stepcache::Cache::open(&cache_dir(ctx, settings))?;
            cache.pin(&format!("virt-up template {template}"), &final_layer, &disk)
        }),
        None => run_virt_builder(ctx, settings, &partial, &username, &key_pair.public_openssh)
            .and_then(|_| std::fs::rename(&partial, &disk).at(&disk)),
    };
    if let Err(e) = result {
        let _ = remove_if_exists(&partial);
        return Err(e);
    }
    ctx.ui.phase(template, "build", started.elapsed());
    ctx.hv.refresh_pool(pool);

    let record = template_record(ctx, template, settings, &disk, &key, &username);
    if let Some(playbook) = settings.get("template-playbook") {
        // A failed playbook leaves no template behind: the next run builds it afresh.
        if let Err(e) = crate::template_playbook::run(ctx, &record, settings, playbook) {
            let _ = remove_if_exists(&disk);
            return Err(e);
        }
    }
    ctx.hv
        .define(&template_domain(&record, settings).to_xml())?;
    ctx.store.save(&stem, &record)?;
    Ok(record)
}

fn template_record(
    ctx: &Context,
    template: &str,
    settings: &Settings,
    disk: &Path,
    key: &Path,
    username: &str,
) -> Record {
    let stem = template_stem(template);
    Record {
        name: stem.clone(),
        template: template.to_string(),
        created: now_rfc3339(),
        phase: Phase::Ready,
        pid: std::process::id(),
        os_version: settings.text("os-version").to_string(),
        os_variant: settings.get("os-variant").map(str::to_string),
        hostname: stem.to_lowercase(),
        domain: stem.clone(),
        disk: disk.to_path_buf(),
        format: settings.text("image-format").to_string(),
        memory: settings.int("memory"),
        vcpus: settings.int("vcpus"),
        graphics: settings.text("graphics").to_string(),
        size: settings.get("size").map(str::to_string),
        root: Login {
            username: "root".into(),
            password: None,
            ssh_identity: key.to_path_buf(),
        },
        user: Login {
            username: username.to_string(),
            password: None,
            ssh_identity: key.to_path_buf(),
        },
        address_source: settings.text("address-source").to_string(),
        ssh_options: crate::inventory::ssh_options(&ctx.paths, &stem),
        address: None,
        // Templates boot only for a template-playbook; a fresh MAC each time is fine.
        mac: crate::records::random_mac(),
        uri: ctx.hv.uri(),
        identity: settings.text("identity").to_string(),
        console_log: ctx.paths.console_logs().join(format!("{stem}.log")),
        extra_files: vec![],
        inventory: false,
        cloned: None,
        from: None,
        definition: Some(definition(settings)),
    }
}

/// The template's domain: its disk is read-only, so even a start by hand cannot write it.
pub(crate) fn template_domain(record: &Record, settings: &Settings) -> DomainSpec {
    let mut spec = crate::instance::domain_base(record, settings);
    spec.disks[0].readonly = true;
    spec
}

/// The template's `customize` file, relative to the templates.d file that names it.
fn customize_path(settings: &Settings) -> Option<PathBuf> {
    let spec = settings.get("customize")?;
    let base = settings.origin("customize")?.path.parent()?.to_path_buf();
    Some(crate::maker::render::resolve(&base, spec))
}

/// The step cache directory: the `cache-dir` setting, else the paths' cache directory.
fn cache_dir(ctx: &Context, settings: &Settings) -> PathBuf {
    settings
        .get("cache-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.paths.cache.clone())
}

/// The template's virt-maker spec: its `customize` file, or its `steps` applied to its
/// os-version image; None for a plain virt-builder template. Loaded (and so validated)
/// before anything is built.
fn customization(
    ctx: &Context,
    settings: &Settings,
    cache_dir: &Path,
) -> Result<Option<crate::maker::template::Template>> {
    use crate::maker::template::Template;
    if let Some(spec) = settings.get("customize") {
        let path = customize_path(settings).unwrap_or_else(|| {
            crate::maker::render::resolve(&ctx.paths.user_config.join("templates.d"), spec)
        });
        return Template::load(&path, &[], cache_dir).map(Some);
    }
    let Some(text) = settings.get("steps") else {
        return Ok(None);
    };
    let file = settings
        .origin("steps")
        .map(|o| o.path.clone())
        .unwrap_or_else(|| ctx.paths.user_config.join("templates.d"));
    let doc = steps_document(settings, text, &file)?;
    Template::from_doc(&file, doc, &[], cache_dir).map(Some)
}

/// A virt-maker template document for `steps = ...`: the os-version image imported with
/// virt-builder (its source, size and arguments), then one step per non-empty line, each
/// line a YAML single-key mapping as in a template's `steps` list.
fn steps_document(
    settings: &Settings,
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
        let step: Value = serde_yaml_ng::from_str(line).map_err(|e| Error::Template {
            file: file.to_path_buf(),
            location: format!("steps, step {}: ", i + 1),
            message: format!("'{line}' is not a YAML mapping like 'install: [nginx]': {e}"),
        })?;
        steps.push(step);
    }
    let mut import = json!({ "image": settings.text("os-version") });
    if let Some(source) = settings.get("virt-builder-source") {
        import["source"] = json!(source);
    }
    if let Some(size) = settings.get("size") {
        import["size"] = json!(size);
    }
    let args = settings.args("virt-builder-args");
    if !args.is_empty() {
        import["args"] = json!(args);
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
    settings: &Settings,
    mut spec: crate::maker::template::Template,
    cache: crate::stepcache::Cache,
    output: &Path,
    username: &str,
    public_key: &str,
) -> Result<String> {
    spec.export = None;
    let spec_path = spec.file.clone();
    let ui = ctx.ui;
    let out = move |line: &str| ui.info(line);
    let runner = ctx.runner(settings);
    let builder = crate::maker::build::Builder {
        cache,
        runner: runner.clone(),
        out: &out,
    };
    let built = builder.build(&spec, &Default::default())?;
    let format = crate::image::qemu_img::Format::parse(settings.text("image-format"))?;
    // Layers are qcow2; a bar on a terminal for this long copy.
    crate::image::qemu_img::QemuImg::new(&runner).convert(
        &built.layer,
        "qcow2",
        output,
        format,
        &crate::image::cancel::Cancel::new(),
        true,
    )?;
    let files = SecretFiles::new()?;
    // --format must come before -a.
    let mut args = argv([
        "--format".as_ref(),
        settings.text("image-format").as_ref(),
        "-a".as_ref(),
        output.as_os_str(),
    ]);
    args.extend(virt_up_customizations(&files, username, public_key)?);
    args.extend(argv([
        "--truncate",
        "/etc/machine-id",
        "--delete",
        "/etc/ssh/ssh_host_*",
    ]));
    if let (Some(size), Some(_)) = (settings.get("size"), settings.get("customize")) {
        ctx.ui.warn(format!(
            "'size = {size}' is ignored for a customized template (set it in its import)"
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
    settings: &Settings,
    output: &Path,
    username: &str,
    public_key: &str,
) -> Result<()> {
    let files = SecretFiles::new()?;
    let mut args: Vec<OsString> = argv([settings.text("os-version")]);
    if let Some(source) = settings.get("virt-builder-source") {
        // A local repository gains nothing from virt-builder's download cache, and a
        // rebuilt image that kept its name and revision would fail the cached checksum.
        args.extend(argv(["--source", source, "--no-cache"]));
        match settings.get("virt-builder-fingerprint") {
            Some(fp) => args.extend(argv(["--fingerprint", fp])),
            None => args.extend(argv(["--no-check-signature"])),
        }
    }
    args.extend(argv([
        "--output".to_string(),
        output.display().to_string(),
        "--format".to_string(),
        settings.text("image-format").to_string(),
        "--arch".to_string(),
        settings.text("arch").to_string(),
    ]));
    if let Some(size) = settings.get("size") {
        args.extend(argv(["--size", size]));
    }
    args.extend(virt_up_customizations(&files, username, public_key)?);
    args.extend(argv(settings.args("virt-builder-args")));
    // Generalize last, whatever the extra arguments did: clones get their own identity.
    args.extend(argv([
        "--truncate",
        "/etc/machine-id",
        "--delete",
        "/etc/ssh/ssh_host_*",
    ]));
    let mut runner = ctx.runner(settings);
    if settings.get("virt-builder-source").is_some() {
        // --source adds to the repositories of /etc/virt-builder/repos.d, which a host
        // without internet cannot reach: an empty VIRT_BUILDER_DIRS leaves only ours.
        let empty = files.dir("no-system-repos")?;
        runner = runner.with_env("VIRT_BUILDER_DIRS", empty.display().to_string());
    }
    runner
        .tool("virt-builder")
        .args(&args)
        .context(format!(
            "building template {}",
            settings.template.as_deref().unwrap_or("?")
        ))
        .run()?;
    Ok(())
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
        format!("{}:/var/lib/virt-up/template-user", p(&user_file)),
        "--run".to_string(),
        p(&setup),
        "--ssh-inject".to_string(),
        format!("{username}:file:{}", p(&pubkey)),
        "--ssh-inject".to_string(),
        format!("root:file:{}", p(&pubkey)),
    ]))
}
