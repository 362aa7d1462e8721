//! The plan: settings.cfg, templates.d and the command line resolved once into typed
//! values (enums, sizes in bytes, durations, paths), every value checked before any work
//! (ripgrep's low-level args -> high-level args is the model). The stages below take a
//! plan; none of them reads a setting by its name.

pub use super::hosts::HostEntry;
use super::{schema, Config, Settings};
use crate::error::{Error, Result};
use crate::paths::Paths;
use crate::share::{self, Mount};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::choice::choice;
pub use crate::choice::{ImageFormat, VirtType};

choice!(
    /// Where an instance's address is looked for.
    AddressSource { Agent = "agent", Lease = "lease", Arp = "arp", Dns = "dns" }
);
choice!(
    /// How an instance gets its identity: a seed disk read at first boot, or virt-sysprep.
    Identity { Firstboot = "firstboot", Sysprep = "sysprep" }
);
choice!(
    /// The graphics console.
    Graphics { None = "none", Vnc = "vnc", Spice = "spice" }
);

/// A size as the user spelled it (passed on to tools that take it as text) and in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Size {
    pub bytes: u64,
    pub text: String,
}

/// Where guests live: the libvirt pool, network, domain type and architecture.
#[derive(Debug, Clone)]
pub struct Host {
    pub pool: String,
    pub network: String,
    pub virt_type: VirtType,
    pub arch: String,
}

/// How long readiness waits for each phase.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub address: Duration,
    pub ssh: Duration,
    /// How long a guest may take to power off when asked (ACPI) before it is turned off.
    pub stop: Duration,
}

/// A virt-builder image and how to fetch it.
#[derive(Debug, Clone)]
pub struct VirtBuilder {
    pub os_version: String,
    pub repository: Option<String>,
    pub fingerprint: Option<String>,
    pub args: Vec<String>,
}

/// What a template's disk is built from.
#[derive(Debug, Clone)]
pub enum TemplateSource {
    /// virt-builder's image with virt-up's customizations.
    VirtBuilder(VirtBuilder),
    /// A virt-maker YAML template, built through the step cache.
    Customize { file: PathBuf },
    /// virt-maker steps (one YAML mapping a line) over the virt-builder image; `file` is
    /// the templates.d file they were written in (relative paths resolve beside it).
    Steps {
        image: VirtBuilder,
        steps: String,
        file: PathBuf,
    },
}

/// Everything a template build needs.
#[derive(Debug, Clone)]
pub struct TemplatePlan {
    pub name: String,
    pub source: TemplateSource,
    pub format: ImageFormat,
    pub size: Option<Size>,
    pub username: String,
    /// Recorded: the virt-builder image name (empty for a `customize` template).
    pub os_version: String,
    pub os_variant: Option<String>,
    pub host: Host,
    /// The `[host NAME]`s its instances may be placed on (its `hosts` setting resolved,
    /// tags expanded), in name order; empty when settings.cfg has no `[host]` section:
    /// the one default connection.
    pub hosts: Vec<String>,
    /// Its `libvirt-uri` (or `[common]`'s): the libvirt connection its instances are made
    /// on when no `[host]` places them; None: the run's default connection.
    pub libvirt_uri: Option<String>,
    pub memory_mib: u64,
    pub vcpus: u64,
    pub graphics: Graphics,
    pub address_source: AddressSource,
    pub identity: Identity,
    /// Instances restored from the template's saved memory where they can be (`warm`).
    pub warm: bool,
    /// Each instance's address reserved on the network's DHCP server (`fixed-address`).
    pub fixed_address: bool,
    pub timeouts: Timeouts,
    pub playbook: Option<String>,
    /// The step cache directory (the `cache-dir` setting, else the paths' cache).
    pub cache_dir: PathBuf,
    /// The text whose digest tells whether a built template still matches its definition.
    pub definition: String,
}

/// What the command line says about new instances (None: the template's setting).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub root_password: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub size: Option<String>,
    pub memory: Option<u64>,
    pub vcpus: Option<u64>,
    pub graphics: Option<String>,
    pub dns_domain: Option<String>,
    pub no_inventory: bool,
    /// `--mount HOST_DIR[:GUEST_DIR]`, as given.
    pub mounts: Vec<String>,
    /// `--host NAME`: this command's instances go on that `[host NAME]`.
    pub host: Option<String>,
}

/// Everything an instance create needs (one plan serves every name of a command).
#[derive(Debug, Clone)]
pub struct InstancePlan {
    pub template: TemplatePlan,
    /// The `[host NAME]`s this command's instances may be placed on: the `--host` alone,
    /// else the template's `hosts`; empty: the one default connection (no `[host]`
    /// section). See [`crate::placement`] for choosing among them.
    pub hosts: Vec<String>,
    pub memory_mib: u64,
    pub vcpus: u64,
    pub graphics: Graphics,
    pub size: Option<Size>,
    pub dns_domain: Option<String>,
    /// The login user: given, else the template's.
    pub user: Option<String>,
    pub password: Option<String>,
    pub root_password: Option<String>,
    pub inventory: bool,
    pub virt_install_args: Vec<String>,
    pub virt_sysprep_args: Vec<String>,
    pub playbook: Option<String>,
    pub parallel: usize,
    /// Host directories shared with the instance (virtiofs), checked.
    pub mounts: Vec<Mount>,
    /// The virtiofsd libvirt runs for them (found when there are mounts).
    pub virtiofsd: Option<PathBuf>,
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

/// The plan for building `template`.
pub fn template(config: &Config, paths: &Paths, template: &str) -> Result<TemplatePlan> {
    let settings = config.resolve(template)?;
    template_of(config, &settings, paths, template)
}

fn template_of(config: &Config, s: &Settings, paths: &Paths, name: &str) -> Result<TemplatePlan> {
    Ok(TemplatePlan {
        name: name.to_string(),
        source: source(s, paths),
        format: choice(s, "image-format", ImageFormat::parse)?,
        size: s.get("size").map(|text| Size {
            bytes: parse_size(text).unwrap_or_default(),
            text: text.to_string(),
        }),
        username: s.text("username").to_string(),
        os_version: s.text("os-version").to_string(),
        os_variant: s.get("os-variant").map(str::to_string),
        host: Host {
            pool: s.text("pool").to_string(),
            network: s.text("network").to_string(),
            virt_type: choice(s, "virt-type", VirtType::parse)?,
            arch: s.text("arch").to_string(),
        },
        hosts: super::hosts::of_template(&hosts(config)?, s)?,
        libvirt_uri: s.get("libvirt-uri").map(str::to_string),
        memory_mib: s.int("memory"),
        vcpus: s.int("vcpus"),
        graphics: choice(s, "graphics", Graphics::parse)?,
        address_source: choice(s, "address-source", AddressSource::parse)?,
        identity: choice(s, "identity", Identity::parse)?,
        warm: s.text("warm") == "yes",
        fixed_address: s.text("fixed-address") == "yes",
        timeouts: Timeouts {
            address: Duration::from_secs(s.int("address-timeout")),
            ssh: Duration::from_secs(s.int("ssh-timeout")),
            stop: Duration::from_secs(s.int("stop-timeout")),
        },
        playbook: s.get("template-playbook").map(str::to_string),
        cache_dir: cache_dir(s, paths),
        definition: definition(s),
    })
}

/// The plan for creating instances of `template`, with the command line's choices.
pub fn instance(
    config: &Config,
    paths: &Paths,
    template: &str,
    given: &Overrides,
) -> Result<InstancePlan> {
    let settings = config.resolve(template)?;
    let plan = template_of(config, &settings, paths, template)?;
    let hosts = super::hosts::for_command(
        &hosts(config)?,
        template,
        &plan.hosts,
        given.host.as_deref(),
    )?;
    let flag = |name: &str, value: &dyn fmt::Display, kind| -> Result<()> {
        let value = value.to_string();
        match schema::problem(kind, &value) {
            None => Ok(()),
            Some(accepted) => Err(Error::Config(format!(
                "--{name} {value:?}: expected {accepted}"
            ))),
        }
    };
    let kind = |key: &str| schema::lookup(key).expect("a schema key").kind;
    if let Some(user) = &given.user {
        validate_username(user)?;
    }
    let login_user = given.user.as_deref().unwrap_or(&plan.username);
    if login_user == "root" && given.password.is_some() {
        // The login user is root, whose password is --root-password's: refused rather than
        // dropped.
        return Err(Error::Config(
            "--password sets the login user's password, and the login user is root: use --root-password".into(),
        ));
    }
    if let Some(m) = given.memory {
        flag("memory", &m, kind("memory"))?;
    }
    if let Some(v) = given.vcpus {
        flag("vcpus", &v, kind("vcpus"))?;
    }
    if let Some(size) = &given.size {
        flag("size", size, schema::Kind::Size)?;
    }
    if let Some(domain) = &given.dns_domain {
        flag("dns-domain", domain, schema::Kind::DnsDomain)?;
    }
    let (mounts, virtiofsd) = shares(&settings, given, login_user)?;
    let graphics = match &given.graphics {
        Some(g) => Graphics::parse(g).ok_or_else(|| {
            Error::Config(format!(
                "--graphics {g:?}: expected one of: none, vnc, spice"
            ))
        })?,
        None => plan.graphics,
    };
    Ok(InstancePlan {
        hosts,
        memory_mib: given.memory.unwrap_or(plan.memory_mib),
        vcpus: given.vcpus.unwrap_or(plan.vcpus),
        graphics,
        size: given.size.as_ref().map(|text| Size {
            bytes: parse_size(text).unwrap_or_default(),
            text: text.clone(),
        }),
        dns_domain: given
            .dns_domain
            .clone()
            .or_else(|| settings.get("dns-domain").map(str::to_string)),
        user: given.user.clone(),
        password: given.password.clone(),
        root_password: given.root_password.clone(),
        inventory: !given.no_inventory,
        virt_install_args: settings.args("virt-install-args"),
        virt_sysprep_args: settings.args("virt-sysprep-args"),
        playbook: settings.get("instance-playbook").map(str::to_string),
        parallel: settings.int("parallel") as usize,
        mounts,
        virtiofsd,
        template: plan,
    })
}

/// The `--mount` shares, checked (a relative host directory is taken from the working
/// directory), and the virtiofsd that serves them; none without `--mount`.
fn shares(
    settings: &Settings,
    given: &Overrides,
    login_user: &str,
) -> Result<(Vec<Mount>, Option<PathBuf>)> {
    if given.mounts.is_empty() {
        return Ok((Vec::new(), None));
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let home = match login_user {
        "root" => "/root".to_string(),
        user => format!("/home/{user}"),
    };
    let mounts = share::plan(&given.mounts, &cwd, &home)?;
    let virtiofsd = share::virtiofsd(settings.get("virtiofsd"))?;
    Ok((mounts, Some(virtiofsd)))
}

/// Login names as useradd accepts them by default.
fn validate_username(user: &str) -> Result<()> {
    let mut chars = user.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && user.len() <= 32 {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: user.to_string(),
            why: "a user name is a lower-case letter or '_' followed by lower-case letters, digits, '_' or '-' (at most 32)".into(),
        })
    }
}

/// A choice setting as its enum. The schema lists the same spellings, so resolve has
/// already refused any other; should the two lists ever differ, this says which key.
fn choice<T>(s: &Settings, key: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(s.text(key)).ok_or_else(|| {
        let at = s.origin(key).map(|o| format!("{o}: ")).unwrap_or_default();
        Error::Config(format!("{at}invalid value {:?} for '{key}'", s.text(key)))
    })
}

fn source(s: &Settings, paths: &Paths) -> TemplateSource {
    let image = || VirtBuilder {
        os_version: s.text("os-version").to_string(),
        repository: s.get("virt-builder-source").map(str::to_string),
        fingerprint: s.get("virt-builder-fingerprint").map(str::to_string),
        args: s.args("virt-builder-args"),
    };
    let templates_d = || paths.user_config.join("templates.d");
    if let Some(spec) = s.get("customize") {
        let file = customize_path(s).unwrap_or_else(|| resolve(&templates_d(), spec));
        return TemplateSource::Customize { file };
    }
    match s.get("steps") {
        Some(steps) => TemplateSource::Steps {
            image: image(),
            steps: steps.to_string(),
            file: s
                .origin("steps")
                .map(|o| o.path.clone())
                .unwrap_or_else(templates_d),
        },
        None => TemplateSource::VirtBuilder(image()),
    }
}

/// The template's `customize` file, relative to the templates.d file that names it.
fn customize_path(s: &Settings) -> Option<PathBuf> {
    let spec = s.get("customize")?;
    let base = s.origin("customize")?.path.parent()?.to_path_buf();
    Some(resolve(&base, spec))
}

/// What the template is built from: its defining settings and the content of its
/// customize file (files that file names are the step cache's business).
fn definition(s: &Settings) -> String {
    let mut text = String::new();
    for key in DEFINING_KEYS {
        text.push_str(&format!("{key}={}\n", s.get(key).unwrap_or("")));
    }
    if let Some(path) = customize_path(s) {
        text.push_str(&String::from_utf8_lossy(
            &std::fs::read(path).unwrap_or_default(),
        ));
    }
    text
}

/// The `[host NAME]` sections of settings.cfg, every value checked, in name order; none
/// without such a section. See [`super::hosts`].
pub fn hosts(config: &Config) -> Result<Vec<HostEntry>> {
    super::hosts::entries(config)
}

/// The `jump-host` setting of `[common]`: how guests are reached (see [`crate::reach`]).
pub fn jump_setting(config: &Config) -> Result<crate::reach::JumpSetting> {
    let common = config.common()?;
    let value = common.get("jump-host").unwrap_or("auto");
    crate::reach::JumpSetting::parse(value)
        .map_err(|why| Error::Config(format!("settings.cfg [common] jump-host: {why}")))
}

/// How many instances one command works on at once (`parallel` in `[common]`).
pub fn parallel(config: &Config) -> Result<usize> {
    Ok(config.common()?.int("parallel") as usize)
}

/// What virt-maker takes from settings.cfg's `[common]`: the step cache it shares with
/// virt-up's templates, and the virt type its libguestfs tools run under.
#[derive(Debug, Clone)]
pub struct MakerPlan {
    pub cache_dir: PathBuf,
    pub virt_type: VirtType,
}

pub fn maker(config: &Config, paths: &Paths) -> Result<MakerPlan> {
    let s = config.common()?;
    Ok(MakerPlan {
        cache_dir: cache_dir(&s, paths),
        virt_type: choice(&s, "virt-type", VirtType::parse)?,
    })
}

/// The step cache directory: the `cache-dir` setting, else the paths' cache directory.
/// The one place it is decided, for virt-up's templates and for virt-maker.
fn cache_dir(settings: &Settings, paths: &Paths) -> PathBuf {
    settings
        .get("cache-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.cache.clone())
}

/// A path written in a configuration or template file: relative to `base` (the file's
/// directory); if nothing is there but the working directory has it (the original tool
/// resolved paths that way), that.
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let beside = base.join(p);
    if !beside.exists() && p.exists() {
        return p.to_path_buf();
    }
    beside
}

/// A size in bytes, in the one size grammar of the project; the error says why not.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    crate::size::parse(text).map_err(|e| e.to_string())
}

/// Why `domain` is not a DNS domain (RFC 1035 labels, lower case), if it is not one.
pub fn dns_domain_problem(domain: &str) -> Option<String> {
    if domain.len() > 253 {
        return Some(format!("{} characters", domain.len()));
    }
    for label in domain.split('.') {
        let ok_chars = label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let why = if label.is_empty() {
            "an empty label".to_string()
        } else if label.len() > 63 {
            format!("label '{label}' has {} characters", label.len())
        } else if !ok_chars {
            format!("label '{label}' has a character other than a-z, 0-9 or '-'")
        } else if label.starts_with('-') || label.ends_with('-') {
            format!("label '{label}' starts or ends with '-'")
        } else {
            continue;
        };
        return Some(why);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::test_config as config;

    fn paths() -> Paths {
        Paths::from_env(&|k| (k == "HOME").then(|| "/h".to_string())).unwrap()
    }

    #[test]
    fn a_template_plan_has_typed_values() {
        let c = config(
            "[common]\nvirt-type = qemu\naddress-timeout = 7\n",
            "[deb]\nos-version = debian-12\nsize = 1.5G\nimage-format = raw\n",
        );
        let p = template(&c, &paths(), "deb").unwrap();
        assert_eq!(p.format, ImageFormat::Raw);
        assert_eq!(p.host.virt_type, VirtType::Qemu);
        assert_eq!(p.size.unwrap().bytes, 3 << 29);
        assert_eq!(p.timeouts.address, Duration::from_secs(7));
        assert_eq!(p.cache_dir, Path::new("/h/.cache/virt-up"));
        assert!(
            matches!(p.source, TemplateSource::VirtBuilder(ref b) if b.os_version == "debian-12")
        );
    }

    #[test]
    fn command_line_values_are_checked_and_named() {
        let c = config("", "[deb]\nos-version = x\n");
        let bad = |o: Overrides| instance(&c, &paths(), "deb", &o).unwrap_err().to_string();
        let err = bad(Overrides {
            memory: Some(0),
            ..Default::default()
        });
        assert_eq!(
            err,
            "--memory \"0\": expected a whole number from 64 to 16777216"
        );
        let err = bad(Overrides {
            size: Some("20GG".into()),
            ..Default::default()
        });
        assert!(
            err.starts_with("--size \"20GG\": expected a size like"),
            "{err}"
        );
        let ok = instance(
            &c,
            &paths(),
            "deb",
            &Overrides {
                size: Some("1.5G".into()),
                vcpus: Some(4),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ok.size.unwrap().bytes, 3 << 29);
        assert_eq!(ok.vcpus, 4);
        // Root's password is --root-password's: --password for a root login is refused.
        let err = bad(Overrides {
            user: Some("root".into()),
            password: Some("pw".into()),
            ..Default::default()
        });
        assert_eq!(
            err,
            "--password sets the login user's password, and the login user is root: use --root-password"
        );
        let c = config("", "[deb]\nos-version = x\nusername = root\n");
        let o = Overrides {
            password: Some("pw".into()),
            ..Default::default()
        };
        assert!(instance(&c, &paths(), "deb", &o).is_err());
    }

    #[test]
    fn the_schema_and_the_enums_spell_the_same_choices() {
        let parses = |key: &str, text: &str| match key {
            "image-format" => ImageFormat::parse(text).map(|v| v.as_str()),
            "virt-type" => VirtType::parse(text).map(|v| v.as_str()),
            "graphics" => Graphics::parse(text).map(|v| v.as_str()),
            "address-source" => AddressSource::parse(text).map(|v| v.as_str()),
            "identity" => Identity::parse(text).map(|v| v.as_str()),
            "warm" | "fixed-address" => ["yes", "no"].into_iter().find(|c| *c == text),
            other => panic!("choice key '{other}' has no enum in the plan"),
        };
        for key in schema::KEYS {
            if let schema::Kind::Choice(choices) = key.kind {
                for text in choices {
                    assert_eq!(parses(key.name, text), Some(*text), "{}", key.name);
                }
            }
        }
    }

    #[test]
    fn dns_domains() {
        for ok in ["example.com", "a", "x-1.y", &"a".repeat(63)] {
            assert_eq!(dns_domain_problem(ok), None, "{ok}");
        }
        for bad in [
            "bad domain!",
            "-a.com",
            "a-.com",
            "a..b",
            "A.com",
            &"a".repeat(64),
        ] {
            assert!(dns_domain_problem(bad).is_some(), "{bad}");
        }
        let long = vec!["a".repeat(63); 4].join(".");
        assert!(dns_domain_problem(&long).is_some());
    }

    #[test]
    fn a_bad_size_in_a_file_names_the_line() {
        let c = config("", "[deb]\nos-version = x\nsize = 0\n");
        let err = template(&c, &paths(), "deb").unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/virt-up/templates.d/t.cfg:3: invalid value \"0\" for 'size'"),
            "{err}"
        );
    }
}
