//! settings.cfg's `[host NAME]` sections, the libvirt hosts new instances may be placed on,
//! each resolved into a [`HostEntry`]; and a template's `hosts` setting (host names and
//! `tag:WORD` items) resolved against them into host names.
//!
//! A host's keys are its own ([`schema::HOST_KEYS`]) and fall back neither to `[DEFAULT]`
//! nor to `[common]`: `pool`, `network` and `jump-host` there are the templates' settings,
//! and a host that sets none of its own takes the template's at placement
//! ([`HostEntry::guest_host`]) and `[common]`'s `jump-host`. The user's settings.cfg
//! overrides the system's key by key, as for `[common]`; `%(key)s` interpolates from the
//! section itself, then `[DEFAULT]`, as configparser does.

use super::plan::Host;
use super::{ini, schema, validate, Config, Layer, Origin, Settings};
use crate::error::{Error, Result};
use crate::reach::JumpSetting;
use std::collections::BTreeSet;

/// One `[host NAME]` section, every value checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HostEntry {
    /// NAME, valid as an instance name.
    pub name: String,
    /// Its libvirt connection URI.
    pub uri: String,
    /// Its storage pool; None: the template's `pool`.
    pub pool: Option<String>,
    /// Its network; None: the template's `network`.
    pub network: Option<String>,
    /// The most instances placed on it; None: no limit.
    pub max_instances: Option<usize>,
    /// Memory it keeps for itself: an instance goes there only if free memory less this
    /// holds it.
    pub keep_free_bytes: u64,
    /// What `tag:WORD` in a template's `hosts` matches.
    pub tags: Vec<String>,
    /// How its guests are reached (its `jump-host`, else `[common]`'s).
    pub jump: JumpSetting,
}

impl HostEntry {
    /// Where a template's instances live on this host: the template's pool and network
    /// unless the host names its own.
    pub fn guest_host(&self, template: &Host) -> Host {
        Host {
            pool: self.pool.clone().unwrap_or_else(|| template.pool.clone()),
            network: self
                .network
                .clone()
                .unwrap_or_else(|| template.network.clone()),
            ..template.clone()
        }
    }
}

/// The host NAME of a section header `host NAME` (`""` for a bare `[host]`); None for
/// any other section.
pub(super) fn section_host(section: &str) -> Option<&str> {
    let rest = section.strip_prefix("host")?;
    if rest.is_empty() {
        return Some("");
    }
    rest.starts_with(char::is_whitespace).then(|| rest.trim())
}

/// A host's name is checked as an instance name: it is shown in a HOST column, given to
/// `--host` and may name records, so it has to be as plain as one.
pub(super) fn validate_name(name: &str, origin: &Origin) -> Result<()> {
    if name.is_empty() {
        return Err(Error::Config(format!(
            "{origin}: [host] needs a name: [host NAME], e.g. [host lab2]"
        )));
    }
    crate::names::validate_instance_name(name)
        .map_err(|e| Error::Config(format!("{origin}: [host {name}]: {e}")))
}

/// Every `[host NAME]` section of settings.cfg, in name order.
pub fn entries(config: &Config) -> Result<Vec<HostEntry>> {
    if config.hosts.is_empty() {
        return Ok(Vec::new());
    }
    let common_jump = super::plan::jump_setting(config)?;
    let mut entries = Vec::new();
    for (name, (layer, origin)) in &config.hosts {
        let entry = entry(config, name, layer, origin, &common_jump)?;
        // One daemon in two sections would have its memory and instances counted twice.
        if let Some(other) = entries.iter().find(|e: &&HostEntry| e.uri == entry.uri) {
            return Err(Error::Config(format!(
                "{origin}: [host {name}] has the uri of [host {}] ({}): a libvirt host is one section",
                other.name, entry.uri
            )));
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn entry(
    config: &Config,
    name: &str,
    layer: &Layer,
    origin: &Origin,
    common_jump: &JumpSetting,
) -> Result<HostEntry> {
    // A key's value, interpolated and checked against its kind; None when unset or empty
    // and without a default. With the line it was set on, for the messages below.
    let get = |key: &str| -> Result<Option<(String, Option<Origin>)>> {
        let key = schema::lookup_host(key).expect("a host key");
        let Some(v) = layer.get(key.name) else {
            return Ok(key.default.map(|d| (d.to_string(), None)));
        };
        let lookup = |n: &str| {
            layer
                .get(n)
                .or_else(|| config.defaults.get(n))
                .map(|v| v.raw.clone())
        };
        let text = ini::interpolate(key.name, &v.raw, &lookup)
            .map_err(|e| Error::Config(format!("{}: {e}", v.origin)))?;
        validate(key, &text, Some(&v.origin))?;
        let text = text.trim();
        Ok((!text.is_empty()).then(|| (text.to_string(), Some(v.origin.clone()))))
    };
    let text = |key: &str| -> Result<Option<String>> { Ok(get(key)?.map(|(v, _)| v)) };
    let uri = text("uri")?.ok_or_else(|| {
        Error::Config(format!(
            "{origin}: [host {name}] has no 'uri': the host's libvirt URI, e.g. uri = qemu+ssh://root@{name}/system"
        ))
    })?;
    let jump = match get("jump-host")? {
        None => common_jump.clone(),
        Some((value, at)) => JumpSetting::parse(&value).map_err(|why| {
            let at = at.as_ref().unwrap_or(origin);
            Error::Config(format!(
                "{at}: invalid value {value:?} for 'jump-host': {why}"
            ))
        })?,
    };
    // Validated above, so these parse.
    let max_instances = text("max-instances")?.and_then(|v| v.parse().ok());
    let keep_free_bytes = text("keep-free-memory")?
        .and_then(|v| super::plan::parse_size(&v).ok())
        .unwrap_or(0);
    let tags = text("tags")?
        .map(|v| schema::words(&v).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(HostEntry {
        name: name.to_string(),
        uri,
        pool: text("pool")?,
        network: text("network")?,
        max_instances,
        keep_free_bytes,
        tags,
        jump,
    })
}

/// The hosts a template's instances may be placed on, by name: its `hosts` setting (from
/// its section or `[common]`) with each `tag:WORD` expanded, in name order; unset or empty,
/// every host. With no `[host]` section that is none: the one default connection.
pub(super) fn of_template(hosts: &[HostEntry], settings: &Settings) -> Result<Vec<String>> {
    let all = || hosts.iter().map(|h| h.name.clone()).collect();
    let Some(value) = settings.get("hosts") else {
        return Ok(all());
    };
    let bad = |why: String| {
        let at = settings
            .origin("hosts")
            .map(|o| format!("{o}: "))
            .unwrap_or_default();
        let whose = match &settings.template {
            Some(t) => format!("template [{t}]"),
            None => "[common]".to_string(),
        };
        Error::Config(format!("{at}{whose}: hosts = {value:?}: {why}"))
    };
    let mut names = BTreeSet::new();
    for item in schema::words(value) {
        if let Some(tag) = item.strip_prefix("tag:") {
            let tagged: Vec<&HostEntry> = hosts
                .iter()
                .filter(|h| h.tags.iter().any(|t| t == tag))
                .collect();
            if tagged.is_empty() {
                let known: BTreeSet<&str> = hosts
                    .iter()
                    .flat_map(|h| h.tags.iter().map(String::as_str))
                    .collect();
                let known = match known.is_empty() {
                    true => "no host has tags".to_string(),
                    false => format!("tags: {}", known.into_iter().collect::<Vec<_>>().join(", ")),
                };
                return Err(bad(format!("no host has the tag '{tag}' ({known})")));
            }
            names.extend(tagged.into_iter().map(|h| h.name.clone()));
        } else if hosts.iter().any(|h| h.name == item) {
            names.insert(item.to_string());
        } else {
            let hint = schema::nearest(item, hosts.iter().map(|h| h.name.as_str()))
                .map(|n| format!(" (did you mean '{n}'?)"))
                .unwrap_or_default();
            return Err(bad(format!(
                "no host '{item}'{hint}; {}",
                configured(hosts)
            )));
        }
    }
    if names.is_empty() {
        return Ok(all());
    }
    Ok(names.into_iter().collect())
}

/// Where one command's instances may go: the `--host` given, alone, if it is a configured
/// host the template may use; else the template's hosts.
pub(super) fn for_command(
    hosts: &[HostEntry],
    template: &str,
    template_hosts: &[String],
    pin: Option<&str>,
) -> Result<Vec<String>> {
    let Some(pin) = pin else {
        return Ok(template_hosts.to_vec());
    };
    if !hosts.iter().any(|h| h.name == pin) {
        return Err(Error::Config(format!(
            "--host {pin}: no such host; {}",
            configured(hosts)
        )));
    }
    if !template_hosts.iter().any(|h| h == pin) {
        return Err(Error::Config(format!(
            "--host {pin}: template [{template}] is placed only on {} (its 'hosts' setting)",
            template_hosts.join(", ")
        )));
    }
    Ok(vec![pin.to_string()])
}

/// The configured hosts, for a message about one that is not.
fn configured(hosts: &[HostEntry]) -> String {
    match hosts {
        [] => "settings.cfg has no [host NAME] section".to_string(),
        _ => format!(
            "configured hosts ([host NAME] in settings.cfg): {}",
            hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::plan::{self, Overrides};
    use crate::config::test_config;
    use crate::paths::Paths;
    use std::path::Path;

    const SYSTEM: &str = "/etc/virt-up/settings.cfg";
    const G: u64 = 1 << 30;

    fn settings(text: &str) -> Config {
        test_config(text, "[deb]\nos-version = x\n")
    }

    /// The error of reading `text` as the system's settings.cfg.
    fn refused(text: &str) -> Error {
        let mut c = Config::default();
        c.add_text(Path::new(SYSTEM), text, false).unwrap_err()
    }

    /// The error of resolving the hosts of settings.cfg `text`.
    fn bad_hosts(text: &str) -> String {
        let err = plan::hosts(&settings(text)).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        err.to_string()
    }

    fn paths() -> Paths {
        Paths::from_env(&|k| (k == "HOME").then(|| "/h".to_string())).unwrap()
    }

    #[test]
    fn host_sections_are_typed_entries_in_name_order() {
        let c = settings(
            "[common]\njump-host = none\n\
             [host lab3]\nuri = qemu+ssh://root@lab3/system\npool = fast\nnetwork = br0\n\
             max-instances = 4\nkeep-free-memory = 1.5G\ntags = ssd, gpu big\njump-host = gw:2222\n\
             [host  lab2 ]\nuri = qemu+ssh://root@lab2/system\n",
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let hosts = plan::hosts(&c).unwrap();
        assert_eq!(
            hosts,
            [
                HostEntry {
                    name: "lab2".into(),
                    uri: "qemu+ssh://root@lab2/system".into(),
                    pool: None,
                    network: None,
                    max_instances: None,
                    keep_free_bytes: 0,
                    tags: vec![],
                    // [common]'s.
                    jump: JumpSetting::None,
                },
                HostEntry {
                    name: "lab3".into(),
                    uri: "qemu+ssh://root@lab3/system".into(),
                    pool: Some("fast".into()),
                    network: Some("br0".into()),
                    max_instances: Some(4),
                    keep_free_bytes: 3 * G / 2,
                    tags: vec!["ssd".into(), "gpu".into(), "big".into()],
                    jump: JumpSetting::Host("gw:2222".into()),
                },
            ]
        );
        // Without [common]'s jump-host, its default.
        let c = settings("[host lab2]\nuri = qemu:///system\nkeep-free-memory = 0\n");
        let hosts = plan::hosts(&c).unwrap();
        assert_eq!(hosts[0].jump, JumpSetting::Auto);
        assert_eq!(hosts[0].keep_free_bytes, 0);
        assert_eq!(plan::hosts(&settings("[common]\n")).unwrap(), []);
    }

    #[test]
    fn a_hosts_pool_and_network_replace_the_templates_where_it_sets_them() {
        let c = settings("[host a]\nuri = test:///default\npool = fast\n");
        let t = plan::template(&c, &paths(), "deb").unwrap();
        let on = plan::hosts(&c).unwrap()[0].guest_host(&t.host);
        assert_eq!((on.pool.as_str(), on.network.as_str()), ("fast", "virt-up"));
        assert_eq!(on.arch, t.host.arch);
    }

    #[test]
    fn the_users_host_section_overrides_the_systems_key_by_key() {
        let mut c = settings(
            "[host lab2]\nuri = qemu+ssh://root@lab2/system\nmax-instances = 3\ntags = a\n",
        );
        c.add_text(
            Path::new("/home/u/.config/virt-up/settings.cfg"),
            "[common]\n[host lab2]\nmax-instances = 5\n[host lab9]\nuri = test:///default\n",
            false,
        )
        .unwrap();
        let hosts = plan::hosts(&c).unwrap();
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["lab2", "lab9"]);
        assert_eq!(hosts[0].uri, "qemu+ssh://root@lab2/system");
        assert_eq!(hosts[0].max_instances, Some(5));
        assert_eq!(hosts[0].tags, ["a"]);
        // A bad value names the file and line it came from, the user's here.
        c.add_text(
            Path::new("/home/u/.config/virt-up/templates.d/x.cfg"),
            "[x]\nos-version = x\n",
            true,
        )
        .unwrap();
        let mut c2 = settings("[host lab2]\nuri = test:///default\n");
        c2.add_text(
            Path::new("/u/settings.cfg"),
            "[host lab2]\n\nmax-instances = many\n",
            false,
        )
        .unwrap();
        let err = plan::hosts(&c2).unwrap_err().to_string();
        assert!(
            err.starts_with("/u/settings.cfg:3: invalid value \"many\" for 'max-instances'"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_host_name_or_a_repeated_section_names_the_file_and_line() {
        let cases = [
            ("[common]\n[host]\nuri = x\n", "/etc/virt-up/settings.cfg:2: [host] needs a name: [host NAME], e.g. [host lab2]"),
            ("[host a_b]\n", "/etc/virt-up/settings.cfg:1: [host a_b]: invalid name 'a_b': character '_' is not allowed (use letters, digits and '-')"),
            ("[host a b]\n", "/etc/virt-up/settings.cfg:1: [host a b]: invalid name 'a b': character ' ' is not allowed (use letters, digits and '-')"),
            ("[host -x]\n", "/etc/virt-up/settings.cfg:1: [host -x]: invalid name '-x': it must not start or end with '-'"),
            ("[host lab2]\nuri = a\n\n[host  lab2]\n", "/etc/virt-up/settings.cfg:4: host [host  lab2] repeats [host lab2] of line 1: one section per host"),
            ("[host lab2]\n[host lab2]\n", "/etc/virt-up/settings.cfg:2: duplicate section [host lab2], first defined on line 1"),
        ];
        for (text, message) in cases {
            let err = refused(text);
            assert_eq!(err.to_string(), message, "{text:?}");
            assert_eq!(err.exit_code(), 2);
        }
        // A host section belongs in settings.cfg, not with the templates.
        let mut c = Config::default();
        let err = c
            .add_text(
                Path::new("/t/templates.d/t.cfg"),
                "[host lab2]\nuri = x\n",
                true,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/t/templates.d/t.cfg:1: [host lab2] is a host section: [host NAME] sections go in settings.cfg"
        );
    }

    #[test]
    fn a_bad_host_value_names_the_file_line_and_what_is_accepted() {
        let err = bad_hosts("[common]\n[host lab2]\npool = p\n");
        assert_eq!(
            err,
            "/etc/virt-up/settings.cfg:2: [host lab2] has no 'uri': the host's libvirt URI, e.g. uri = qemu+ssh://root@lab2/system"
        );
        // An empty uri is none.
        assert!(bad_hosts("[host lab2]\nuri =\n").contains("has no 'uri'"));
        let host = |rest: &str| bad_hosts(&format!("[host lab2]\nuri = test:///default\n{rest}"));
        let err = host("max-instances = 0\n");
        assert!(
            err.starts_with("/etc/virt-up/settings.cfg:3: invalid value \"0\" for 'max-instances': expected a whole number from 1 to 100000\n  max-instances: "),
            "{err}"
        );
        let err = host("keep-free-memory = 2GB\n");
        assert!(
            err.starts_with("/etc/virt-up/settings.cfg:3: invalid value \"2GB\" for 'keep-free-memory': expected a size like 2G, 1.5G, 512M or 0"),
            "{err}"
        );
        let err = host("\ntags = ssd;fast\n");
        assert!(
            err.starts_with("/etc/virt-up/settings.cfg:4: invalid value \"ssd;fast\" for 'tags': expected words of letters"),
            "{err}"
        );
        let err = host("jump-host = a b\n");
        assert!(
            err.starts_with("/etc/virt-up/settings.cfg:3: invalid value \"a b\" for 'jump-host': 'a b' is not an ssh destination"),
            "{err}"
        );
        let err = host("pool = %(nope)s\n");
        assert!(err.starts_with("/etc/virt-up/settings.cfg:3: "), "{err}");
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn values_interpolate_from_the_section_and_default() {
        let c = settings(
            "[DEFAULT]\nlogin = root\n[host lab2]\naddr = 10.0.0.2\nuri = qemu+ssh://%(login)s@%(addr)s/system\n",
        );
        assert_eq!(
            plan::hosts(&c).unwrap()[0].uri,
            "qemu+ssh://root@10.0.0.2/system"
        );
        // [DEFAULT]'s keys are the templates': they do not become a host's values.
        let c = settings("[DEFAULT]\npool = p\n[host lab2]\nuri = test:///default\n");
        assert_eq!(plan::hosts(&c).unwrap()[0].pool, None);
    }

    #[test]
    fn unknown_host_keys_warn_with_a_hint_from_the_host_keys() {
        let c = settings(
            "[host lab2]\nuri = test:///default\nmax-instance = 3\nmemory = 1024\ncp-args = -a\n",
        );
        assert_eq!(
            c.warnings,
            [
                "/etc/virt-up/settings.cfg:3: unknown key 'max-instance' in [host lab2] is ignored (did you mean 'max-instances'?)",
                "/etc/virt-up/settings.cfg:4: unknown key 'memory' in [host lab2] is ignored",
                "/etc/virt-up/settings.cfg:5: unknown key 'cp-args' in [host lab2] is ignored",
            ]
        );
        let c = settings("[hostlab2]\nuri = x\n");
        assert_eq!(
            c.warnings,
            ["/etc/virt-up/settings.cfg:1: section [hostlab2] is ignored: settings.cfg has only [common] and [host NAME]; templates go in templates.d/*.cfg"]
        );
    }

    const THREE: &str = "[host lab2]\nuri = test:///a\ntags = ssd\n\
                         [host lab3]\nuri = test:///b\ntags = ssd, gpu\n\
                         [host lab4]\nuri = test:///c\n";

    /// The template plan's hosts with settings.cfg `text` and template `deb` as `template`.
    fn template_hosts(text: &str, template: &str) -> Result<Vec<String>> {
        let c = test_config(text, template);
        plan::template(&c, &paths(), "deb").map(|t| t.hosts)
    }

    #[test]
    fn a_templates_hosts_are_names_and_tags_expanded() {
        let deb = |hosts: &str| format!("[deb]\nos-version = x\n{hosts}");
        let hosts = |value: &str| template_hosts(THREE, &deb(&format!("hosts = {value}\n")));
        assert_eq!(hosts("tag:ssd").unwrap(), ["lab2", "lab3"]);
        assert_eq!(hosts("lab4, tag:gpu").unwrap(), ["lab3", "lab4"]);
        assert_eq!(
            hosts("lab4 lab4 tag:ssd lab2").unwrap(),
            ["lab2", "lab3", "lab4"]
        );
        // Unset or empty: every host.
        let all = ["lab2", "lab3", "lab4"];
        assert_eq!(template_hosts(THREE, &deb("")).unwrap(), all);
        assert_eq!(hosts(" , ").unwrap(), all);
        // In [common], for every template; a template's own wins.
        let common = format!("[common]\nhosts = tag:gpu\n{THREE}");
        assert_eq!(template_hosts(&common, &deb("")).unwrap(), ["lab3"]);
        assert_eq!(
            template_hosts(&common, &deb("hosts = lab2\n")).unwrap(),
            ["lab2"]
        );
        // No [host] section: the one default connection, as before.
        assert!(template_hosts("[common]\n", &deb("")).unwrap().is_empty());
    }

    #[test]
    fn an_unknown_host_or_tag_in_hosts_names_the_template_and_the_value() {
        let deb = "[deb]\nos-version = x\nhosts = lab2 lab5\n";
        let err = template_hosts(THREE, deb).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "/etc/virt-up/templates.d/t.cfg:3: template [deb]: hosts = \"lab2 lab5\": no host 'lab5' (did you mean 'lab2'?); configured hosts ([host NAME] in settings.cfg): lab2, lab3, lab4"
        );
        let err = template_hosts(THREE, "[deb]\nos-version = x\nhosts = tag:fast\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/virt-up/templates.d/t.cfg:3: template [deb]: hosts = \"tag:fast\": no host has the tag 'fast' (tags: gpu, ssd)"
        );
        let common = "[common]\nhosts = tag:\n[host a]\nuri = test:///a\n";
        let err = template_hosts(common, "[deb]\nos-version = x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/virt-up/settings.cfg:2: template [deb]: hosts = \"tag:\": no host has the tag '' (no host has tags)"
        );
        let err =
            template_hosts("[common]\n", "[deb]\nos-version = x\nhosts = lab2\n").unwrap_err();
        assert!(
            err.to_string().ends_with(
                "hosts = \"lab2\": no host 'lab2'; settings.cfg has no [host NAME] section"
            ),
            "{err}"
        );
    }

    #[test]
    fn host_pins_the_command_to_one_configured_host_the_template_may_use() {
        let c = test_config(THREE, "[deb]\nos-version = x\nhosts = tag:ssd\n");
        let with = |host: Option<&str>| {
            let given = Overrides {
                host: host.map(str::to_string),
                ..Default::default()
            };
            plan::instance(&c, &paths(), "deb", &given).map(|p| p.hosts)
        };
        assert_eq!(with(None).unwrap(), ["lab2", "lab3"]);
        assert_eq!(with(Some("lab3")).unwrap(), ["lab3"]);
        let err = with(Some("lab9")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "--host lab9: no such host; configured hosts ([host NAME] in settings.cfg): lab2, lab3, lab4"
        );
        let err = with(Some("lab4")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--host lab4: template [deb] is placed only on lab2, lab3 (its 'hosts' setting)"
        );
        let c = test_config("", "[deb]\nos-version = x\n");
        let given = Overrides {
            host: Some("lab2".into()),
            ..Default::default()
        };
        let err = plan::instance(&c, &paths(), "deb", &given).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--host lab2: no such host; settings.cfg has no [host NAME] section"
        );
        let plain = plan::instance(&c, &paths(), "deb", &Overrides::default()).unwrap();
        assert!(plain.hosts.is_empty());
    }
}
