//! The configuration files and playbooks shipped in etc/virt-up and playbooks/, embedded so
//! `virt-up --init` works wherever the binary is.

/// The mode `--init` gives a shipped file: scripts are executable.
pub fn mode(rel: &str) -> u32 {
    if rel.starts_with("scripts/") {
        0o755
    } else {
        0o644
    }
}

pub const FILES: &[(&str, &str)] = &[
    (
        "settings.cfg",
        include_str!("../../etc/virt-up/settings.cfg"),
    ),
    (
        "templates.d/virt-builder.cfg",
        include_str!("../../etc/virt-up/templates.d/virt-builder.cfg"),
    ),
    (
        "templates.d/local.cfg",
        include_str!("../../etc/virt-up/templates.d/local.cfg"),
    ),
    // local.cfg's `customize`, resolved next to it (in /etc/virt-up or an --init copy).
    (
        "templates.d/debian-12-local.yml",
        include_str!("../../etc/virt-up/templates.d/debian-12-local.yml"),
    ),
    // The original's first-boot scripts, for templates that say {scripts}/NAME.
    (
        "scripts/fixup-network-interfaces.sh",
        include_str!("../../etc/virt-up/scripts/fixup-network-interfaces.sh"),
    ),
    (
        "scripts/fixup-netplan-netcfg.sh",
        include_str!("../../etc/virt-up/scripts/fixup-netplan-netcfg.sh"),
    ),
    (
        "playbooks/hello.yml",
        include_str!("../../playbooks/hello.yml"),
    ),
    (
        "playbooks/template-motd.yml",
        include_str!("../../playbooks/template-motd.yml"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{schema, Config};
    use std::path::Path;

    #[test]
    fn shipped_settings_document_every_key() {
        let settings = FILES[0].1;
        for key in schema::KEYS {
            if ["desc", "os-version", "os-variant", "os-type", "arch"].contains(&key.name) {
                continue; // template-only keys
            }
            assert!(
                settings.contains(&format!("#{} =", key.name)),
                "settings.cfg does not document '{}'",
                key.name
            );
        }
    }

    /// The example `[host lab2]` block, commented out, has every host key; uncommented, it
    /// is a host without a warning.
    #[test]
    fn shipped_settings_document_every_host_key_in_an_example_that_parses() {
        let settings = FILES[0].1;
        let (_, example) = settings
            .split_once("\n#[host lab2]\n")
            .expect("an example [host lab2] block");
        for key in schema::HOST_KEYS {
            assert!(
                example.contains(&format!("\n#{} =", key.name)),
                "the [host lab2] example does not document '{}'",
                key.name
            );
        }
        // Its settings are the lines commented out with '#' alone; explanations have "# ".
        let uncommented: String = std::iter::once("[host lab2]")
            .chain(example.lines().filter_map(|l| l.strip_prefix('#')))
            .filter(|l| !l.starts_with(' '))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut c = Config::default();
        c.add_text(Path::new("settings.cfg"), &uncommented, false)
            .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let hosts = crate::config::plan::hosts(&c).unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].uri, "qemu+ssh://root@lab2/system");
        assert_eq!(hosts[0].tags, ["ssd", "fast"]);
    }

    #[test]
    fn shipped_templates_parse_without_warnings() {
        let mut c = Config::default();
        c.add_text(Path::new("settings.cfg"), FILES[0].1, false)
            .unwrap();
        for (rel, text) in &FILES[1..3] {
            c.add_text(Path::new(rel), text, true).unwrap();
        }
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for name in [
            "debian-12",
            "ubuntu-22.04",
            "fedora-40",
            "centosstream-9",
            "debian-12-local",
        ] {
            c.resolve(name).unwrap();
        }
    }

    #[test]
    fn the_local_template_is_a_debootstrap_import_next_to_its_cfg() {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in FILES {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let mut c = Config::default();
        let cfg = dir.path().join("templates.d/local.cfg");
        c.add_text(&cfg, FILES[2].1, true).unwrap();
        let s = c.resolve("debian-12-local").unwrap();
        let spec = s.get("customize").unwrap();
        let file = crate::steps::render::resolve(cfg.parent().unwrap(), spec);
        let t = crate::steps::template::Template::load(&file, &[], dir.path()).unwrap();
        let import = t.import.as_ref().unwrap();
        assert_eq!(import.runner, "debootstrap");
        assert_eq!(import.args["suite"], "bookworm");
    }
}
