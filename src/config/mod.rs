//! Configuration: `settings.cfg` (section `[common]`, and a `[host NAME]` section per
//! libvirt host instances may be placed on) and `templates.d/*.cfg` (a section per
//! template), system files in /etc/virt-up overridden key by key by the user's. Values
//! resolve as template key, then `[common]`, then the built-in default; a host's keys are
//! its own (see [`hosts`]).

pub mod hosts;
pub(crate) mod ini;
pub mod plan;
pub(crate) mod schema;

use crate::error::{Error, Result};
use crate::paths::Paths;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a value was set, for messages that point at the line to fix.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub path: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

#[derive(Debug, Clone)]
struct Value {
    raw: String,
    origin: Origin,
}

type Layer = BTreeMap<String, Value>;

/// All configuration files, merged.
#[derive(Debug, Default)]
pub struct Config {
    common: Layer,
    defaults: Layer,
    templates: BTreeMap<String, (Layer, Origin)>,
    /// settings.cfg's `[host NAME]` sections by NAME, with the first header's place.
    hosts: BTreeMap<String, (Layer, Origin)>,
    /// Problems that do not stop the tool (unknown keys): shown to the user.
    pub warnings: Vec<String>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The configuration directories `{scripts}` and `{playbooks}` are looked up in, the
    /// user's first (its files override the system's): set by [`Config::load`].
    pub dirs: Vec<PathBuf>,
}

impl Config {
    /// Read the system files, then the user's (the user's keys win).
    pub fn load(paths: &Paths) -> Result<Config> {
        let mut config = Config {
            dirs: paths
                .config_dirs()
                .iter()
                .rev()
                .map(|d| d.to_path_buf())
                .collect(),
            ..Config::default()
        };
        for dir in paths.config_dirs() {
            config.read_file(&dir.join("settings.cfg"), FileKind::Settings)?;
            for file in cfg_files(&dir.join("templates.d"))? {
                config.read_file(&file, FileKind::Templates)?;
            }
        }
        Ok(config)
    }

    /// Parse a settings or templates file given as text (used by `load` and by tests).
    pub fn add_text(&mut self, path: &Path, text: &str, templates: bool) -> Result<()> {
        let kind = if templates {
            FileKind::Templates
        } else {
            FileKind::Settings
        };
        let file = ini::parse(path, text).map_err(|e| Error::Config(e.to_string()))?;
        self.files.push(path.to_path_buf());
        // Host names of this file and their lines: ini refuses a repeated header only when
        // it is spelled the same, and `[host a]` and `[host  a]` are one host.
        let mut hosts_here: BTreeMap<String, usize> = BTreeMap::new();
        for section in &file.sections {
            let origin = Origin {
                path: path.to_path_buf(),
                line: section.line,
            };
            let host = hosts::section_host(&section.name);
            let keys = match host {
                Some(_) => schema::HOST_KEYS,
                None => schema::KEYS,
            };
            let layer = match (kind, section.name.as_str()) {
                (_, "DEFAULT") => &mut self.defaults,
                (FileKind::Settings, "common") => &mut self.common,
                (FileKind::Settings, other) => match host {
                    Some(name) => {
                        hosts::validate_name(name, &origin)?;
                        if let Some(first) = hosts_here.insert(name.to_string(), origin.line) {
                            return Err(Error::Config(format!(
                                "{origin}: host [{other}] repeats [host {name}] of line {first}: one section per host"
                            )));
                        }
                        &mut self
                            .hosts
                            .entry(name.to_string())
                            .or_insert_with(|| (Layer::new(), origin.clone()))
                            .0
                    }
                    None => {
                        self.warnings.push(format!(
                            "{origin}: section [{other}] is ignored: settings.cfg has only [common] and [host NAME]; templates go in templates.d/*.cfg"
                        ));
                        continue;
                    }
                },
                (FileKind::Templates, name) if host.is_some() => {
                    return Err(Error::Config(format!(
                        "{origin}: [{name}] is a host section: [host NAME] sections go in settings.cfg"
                    )));
                }
                (FileKind::Templates, name) => {
                    crate::names::validate_template_name(name)
                        .map_err(|e| Error::Config(format!("{origin}: {e}")))?;
                    self.refuse_shared_disk(name, &origin)?;
                    &mut self
                        .templates
                        .entry(name.to_string())
                        .or_insert_with(|| (Layer::new(), origin.clone()))
                        .0
                }
            };
            for entry in &section.entries {
                let origin = Origin {
                    path: path.to_path_buf(),
                    line: entry.line,
                };
                let known = match host {
                    Some(_) => schema::lookup_host(&entry.key).is_some(),
                    None => schema::lookup(&entry.key).is_some(),
                };
                if let Some(why) = schema::ignored(&entry.key).filter(|_| host.is_none()) {
                    self.warnings.push(format!(
                        "{origin}: '{}' in [{}] is ignored: {why}",
                        entry.key, section.name
                    ));
                } else if !known {
                    let hint = schema::nearest(&entry.key, keys.iter().map(|k| k.name))
                        .map(|k| format!(" (did you mean '{k}'?)"))
                        .unwrap_or_default();
                    self.warnings.push(format!(
                        "{origin}: unknown key '{}' in [{}] is ignored{hint}",
                        entry.key, section.name
                    ));
                    // Kept: configparser lets other values interpolate any key.
                }
                let key = match host {
                    Some(_) => entry.key.as_str(),
                    None => schema::canonical(&entry.key),
                };
                layer.insert(
                    key.to_string(),
                    Value {
                        raw: entry.value.clone(),
                        origin,
                    },
                );
            }
        }
        Ok(())
    }

    /// Two templates whose names map to one disk name would share one disk (the clones
    /// of one would get the other's OS): refused, naming both.
    fn refuse_shared_disk(&self, name: &str, origin: &Origin) -> Result<()> {
        let stem = crate::names::template_stem(name);
        let other = self
            .templates
            .iter()
            .find(|(other, _)| *other != name && crate::names::template_stem(other) == stem);
        match other {
            None => Ok(()),
            Some((other, (_, first))) => Err(Error::Config(format!(
                "{origin}: template [{name}] and template [{other}] ({first}) both have the disk name '{stem}': rename one of them"
            ))),
        }
    }

    fn read_file(&mut self, path: &Path, kind: FileKind) -> Result<()> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::Config(format!(
                    "{}: cannot read configuration: {e}",
                    path.display()
                )))
            }
        };
        self.add_text(path, &text, kind == FileKind::Templates)
    }

    pub fn template_names(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }

    pub fn has_template(&self, name: &str) -> bool {
        self.templates.contains_key(name)
    }

    /// The settings for `template`, every value resolved, interpolated and validated.
    pub fn resolve(&self, template: &str) -> Result<Settings> {
        let (layer, origin) = self.templates.get(template).ok_or_else(|| {
            let hint = schema::nearest(template, self.template_names())
                .map(|t| format!(" (did you mean '{t}'?)"))
                .unwrap_or_default();
            Error::UnknownTemplate {
                name: template.to_string(),
                hint,
            }
        })?;
        let mut settings = self.resolve_layers(&[layer, &self.common], Some(template))?;
        settings.sysprep_for_its_args();
        if settings.get("os-version").is_none() && settings.get("customize").is_none() {
            return Err(Error::Config(format!(
                "{origin}: template [{template}] has no 'os-version' (the virt-builder image name) or 'customize' (a virt-maker template)"
            )));
        }
        if settings.get("customize").is_some() && settings.get("steps").is_some() {
            return Err(Error::Config(format!(
                "{origin}: template [{template}] has both 'customize' (a virt-maker template) and 'steps' (steps for its os-version image): use one"
            )));
        }
        Ok(settings)
    }

    /// The `libvirt-uri` setting of `[common]`, if there is one.
    pub fn libvirt_uri(&self) -> Result<Option<String>> {
        Ok(self.common()?.get("libvirt-uri").map(str::to_string))
    }

    /// The `[common]` settings alone, for commands that use no template.
    pub fn common(&self) -> Result<Settings> {
        self.resolve_layers(&[&self.common], None)
    }

    fn resolve_layers(&self, layers: &[&Layer], template: Option<&str>) -> Result<Settings> {
        let mut values = BTreeMap::new();
        for key in schema::KEYS {
            let found = layers
                .iter()
                .find_map(|layer| layer.get(key.name).map(|v| (layer, v)));
            let (value, origin) = match found {
                Some((layer, v)) => {
                    let lookup = |name: &str| {
                        layer
                            .get(schema::canonical(name))
                            .or_else(|| self.defaults.get(name))
                            .map(|v| v.raw.clone())
                    };
                    let value = ini::interpolate(key.name, &v.raw, &lookup)
                        .map_err(|e| Error::Config(format!("{}: {e}", v.origin)))?;
                    let value = self.expand_dirs(key.name, value, &v.origin)?;
                    (value, Some(v.origin.clone()))
                }
                None => match self.defaults.get(key.name) {
                    Some(v) => (v.raw.clone(), Some(v.origin.clone())),
                    None => match key.default {
                        Some(d) => (d.to_string(), None),
                        None => continue,
                    },
                },
            };
            validate(key, &value, origin.as_ref())?;
            values.insert(key.name, (value, origin));
        }
        Ok(Settings {
            template: template.map(str::to_string),
            values,
        })
    }
}

impl Config {
    /// The original tool's placeholders `{scripts}` and `{playbooks}` (its `--init` wrote
    /// them as `<config>/scripts` and `<config>/playbooks`; virt_up/config.py,
    /// create_files) resolved here, file by file, so the user's `scripts/NAME` overrides
    /// the system's: `{scripts}/NAME` is the first of `<user config>/scripts/NAME` and
    /// `/etc/virt-up/scripts/NAME` that exists; a bare `{scripts}` the first such
    /// directory. Nothing else in braces is touched.
    fn expand_dirs(&self, key: &str, value: String, origin: &Origin) -> Result<String> {
        const NAMES: [&str; 2] = ["scripts", "playbooks"];
        let next = |text: &str| {
            NAMES
                .iter()
                .filter_map(|n| text.find(&format!("{{{n}}}")).map(|i| (i, *n)))
                .min()
        };
        if next(&value).is_none() {
            return Ok(value);
        }
        let mut out = String::new();
        let mut rest = value.as_str();
        while let Some((i, name)) = next(rest) {
            out.push_str(&rest[..i]);
            rest = &rest[i + name.len() + 2..];
            let rel = rest
                .strip_prefix('/')
                .map(|r| {
                    let end = r
                        .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                        .unwrap_or(r.len());
                    &r[..end]
                })
                .unwrap_or("");
            let dirs: Vec<PathBuf> = self.dirs.iter().map(|d| d.join(name)).collect();
            let found = dirs.iter().find(|d| match rel {
                "" => d.is_dir(),
                rel => d.join(rel).exists(),
            });
            let Some(dir) = found else {
                let wanted = if rel.is_empty() {
                    format!("a {name}/ directory")
                } else {
                    format!("{name}/{rel}")
                };
                let places: Vec<String> =
                    self.dirs.iter().map(|d| d.display().to_string()).collect();
                return Err(Error::Config(format!(
                    "{origin}: '{key}' uses {{{name}}}, but no configuration directory has {wanted} (looked in: {}; 'virt-up --init' installs the shipped ones)",
                    if places.is_empty() { "none".to_string() } else { places.join(", ") }
                )));
            };
            out.push_str(&dir.display().to_string());
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FileKind {
    Settings,
    Templates,
}

/// `templates.d/*.cfg`, sorted by name so the override order is predictable.
fn cfg_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();
    Ok(files)
}

fn validate(key: &schema::Key, value: &str, origin: Option<&Origin>) -> Result<()> {
    let at = origin
        .map(|o| format!("{o}: "))
        .unwrap_or_else(|| "built-in default: ".into());
    match schema::problem(key.kind, value) {
        None => Ok(()),
        // The key's own description, so the user sees what it is for as well.
        Some(accepted) => Err(Error::Config(format!(
            "{at}invalid value {value:?} for '{}': expected {accepted}\n  {}: {}",
            key.name, key.name, key.doc
        ))),
    }
}

/// Resolved, validated settings for one template (or `[common]` alone).
#[derive(Debug, Clone)]
pub struct Settings {
    pub template: Option<String>,
    values: BTreeMap<&'static str, (String, Option<Origin>)>,
}

impl Settings {
    /// `virt-sysprep-args` run only with `identity = sysprep`; the original ran
    /// virt-sysprep, with them, on every clone (virt_up/instance.py, clone). So a template
    /// that has them and says nothing of `identity` gets `sysprep`, set where the
    /// arguments are: they reach virt-sysprep instead of being dropped. An explicit
    /// `identity = firstboot` keeps the fast path (and the arguments are unused).
    fn sysprep_for_its_args(&mut self) {
        let explicit = self.origin("identity").is_some();
        if explicit || self.get("virt-sysprep-args").is_none() {
            return;
        }
        let origin = self.origin("virt-sysprep-args").cloned();
        self.values
            .insert("identity", ("sysprep".to_string(), origin));
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(schema::canonical(key))
            .map(|(v, _)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A key that has a built-in default, so it always has a value.
    pub fn text(&self, key: &str) -> &str {
        self.get(key).unwrap_or_default()
    }

    /// An integer key (validated at resolve time, so parsing cannot fail here).
    pub fn int(&self, key: &str) -> u64 {
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// A shell-style argument list, split without ever running a shell.
    pub fn args(&self, key: &str) -> Vec<String> {
        self.get(key).and_then(shlex::split).unwrap_or_default()
    }

    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.values.get(key).and_then(|(_, o)| o.as_ref())
    }

    /// Every resolved key and value, for `--show-templates`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.values.iter().map(|(k, (v, _))| (*k, v.as_str()))
    }
}

/// A configuration from the text of a system settings.cfg and one templates.d file.
#[cfg(test)]
pub(crate) fn test_config(settings: &str, templates: &str) -> Config {
    let mut c = Config::default();
    c.add_text(Path::new("/etc/virt-up/settings.cfg"), settings, false)
        .unwrap();
    c.add_text(Path::new("/etc/virt-up/templates.d/t.cfg"), templates, true)
        .unwrap();
    c
}

#[cfg(test)]
mod tests {
    use super::test_config as config;
    use super::*;

    #[test]
    fn template_overrides_common_overrides_default() {
        let c = config(
            "[common]\nmemory = 2048\nvcpus = 2\n",
            "[deb]\nos-version = debian-12\nvcpus = 4\n",
        );
        let s = c.resolve("deb").unwrap();
        assert_eq!(s.text("vcpus"), "4");
        assert_eq!(s.text("memory"), "2048");
        assert_eq!(s.text("pool"), "default");
        assert_eq!(s.text("username"), "virt");
    }

    #[test]
    fn multi_line_args_and_interpolation() {
        let c = config(
            "",
            "[deb]\nos-version = debian-12\npkgs = sudo,python3\nvirt-builder-args = --install \"%(pkgs)s\"\n    --selinux-relabel\n",
        );
        let s = c.resolve("deb").unwrap();
        assert_eq!(
            s.args("virt-builder-args"),
            ["--install", "sudo,python3", "--selinux-relabel"]
        );
        assert!(
            c.warnings[0].contains("t.cfg:3: unknown key 'pkgs'"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn unknown_key_warns_with_file_line_and_hint() {
        let c = config("[common]\nmemroy = 1\n", "");
        assert_eq!(
            c.warnings,
            ["/etc/virt-up/settings.cfg:2: unknown key 'memroy' in [common] is ignored (did you mean 'memory'?)"]
        );
    }

    #[test]
    fn invalid_value_names_file_line_and_accepted_values() {
        let c = config("", "[deb]\nos-version = x\nimage-format = vmdk\n");
        let err = c.resolve("deb").unwrap_err().to_string();
        assert_eq!(
            err,
            "/etc/virt-up/templates.d/t.cfg:3: invalid value \"vmdk\" for 'image-format': expected one of: qcow2, raw\n  image-format: Disk format: qcow2 instances are linked clones; raw instances are full copies."
        );
        let c = config("[common]\nvcpus = many\n", "[deb]\nos-version = x\n");
        let err = c.resolve("deb").unwrap_err().to_string();
        assert!(err.contains("settings.cfg:2: invalid value \"many\" for 'vcpus': expected a whole number from 1 to 512"), "{err}");
    }

    #[test]
    fn unknown_template_suggests_nearest() {
        let c = config("", "[debian-12]\nos-version = x\n");
        let err = c.resolve("debian-13").unwrap_err().to_string();
        assert!(
            err.contains("unknown template 'debian-13' (did you mean 'debian-12'?)"),
            "{err}"
        );
    }

    #[test]
    fn template_without_os_version_is_an_error() {
        let c = config("", "[deb]\ndesc = x\n");
        let err = c.resolve("deb").unwrap_err().to_string();
        assert!(
            err.contains("t.cfg:1: template [deb] has no 'os-version'"),
            "{err}"
        );
    }

    #[test]
    fn templates_that_share_a_disk_name_are_refused() {
        let mut c = config("", "[a/b]\nos-version = x\n");
        let err = c
            .add_text(
                Path::new("/u/templates.d/u.cfg"),
                "\n[a-b]\nos-version = y\n",
                true,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/u/templates.d/u.cfg:2: template [a-b] and template [a/b] (/etc/virt-up/templates.d/t.cfg:1) both have the disk name 'TEMPLATE-a-b': rename one of them"
        );
        assert_eq!(err.exit_code(), 2);
    }

    /// `{scripts}/NAME`: the user's scripts/NAME if there is one, else the system's.
    #[test]
    fn scripts_placeholder_resolves_file_by_file_user_first() {
        let sys = tempfile::tempdir().unwrap();
        let user = tempfile::tempdir().unwrap();
        for (dir, name) in [(&sys, "both.sh"), (&user, "both.sh"), (&sys, "sys.sh")] {
            std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
            std::fs::write(dir.path().join("scripts").join(name), "#!/bin/sh\n").unwrap();
        }
        let mut c = config(
            "",
            "[deb]\nos-version = x\nvirt-builder-args = --firstboot \"{scripts}/both.sh\"\n  --run {scripts}/sys.sh --write '/etc/x:{y}'\ninstance-playbook = {playbooks}/p.yml\n",
        );
        c.dirs = vec![user.path().into(), sys.path().into()];
        let err = c.resolve("deb").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            format!(
                "/etc/virt-up/templates.d/t.cfg:5: 'instance-playbook' uses {{playbooks}}, but no configuration directory has playbooks/p.yml (looked in: {}, {}; 'virt-up --init' installs the shipped ones)",
                user.path().display(),
                sys.path().display()
            )
        );
        std::fs::create_dir_all(sys.path().join("playbooks")).unwrap();
        std::fs::write(sys.path().join("playbooks/p.yml"), "").unwrap();
        let s = c.resolve("deb").unwrap();
        let u = user.path().join("scripts");
        let y = sys.path().join("scripts");
        assert_eq!(
            s.args("virt-builder-args"),
            [
                "--firstboot".to_string(),
                format!("{}/both.sh", u.display()),
                "--run".into(),
                format!("{}/sys.sh", y.display()),
                "--write".into(),
                "/etc/x:{y}".into(),
            ]
        );
        assert_eq!(
            s.get("instance-playbook").unwrap(),
            format!("{}/playbooks/p.yml", sys.path().display())
        );
    }

    #[test]
    fn virt_sysprep_args_choose_sysprep_unless_identity_is_set() {
        let c = config(
            "",
            "[a]\nos-version = x\nvirt-sysprep-args = --selinux-relabel\n[b]\nos-version = x\n[c]\nos-version = x\nidentity = firstboot\nvirt-sysprep-args = --selinux-relabel\n",
        );
        let a = c.resolve("a").unwrap();
        assert_eq!(a.text("identity"), "sysprep");
        assert_eq!(a.origin("identity").unwrap().line, 3);
        assert_eq!(c.resolve("b").unwrap().text("identity"), "firstboot");
        assert_eq!(c.resolve("c").unwrap().text("identity"), "firstboot");
    }

    #[test]
    fn user_file_overrides_system_file_key_by_key() {
        let mut c = config("", "[deb]\nos-version = debian-12\nmemory = 700\n");
        c.add_text(
            Path::new("/home/u/.config/virt-up/templates.d/t.cfg"),
            "[deb]\nmemory = 900\n",
            true,
        )
        .unwrap();
        let s = c.resolve("deb").unwrap();
        assert_eq!(s.text("memory"), "900");
        assert_eq!(s.text("os-version"), "debian-12");
        assert_eq!(s.origin("memory").unwrap().line, 2);
    }
}
