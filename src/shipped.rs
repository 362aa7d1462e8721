//! The configuration files and playbooks shipped in etc/virt-up and playbooks/, embedded so
//! `virt-up --init` works wherever the binary is.

pub const FILES: &[(&str, &str)] = &[
    ("settings.cfg", include_str!("../etc/virt-up/settings.cfg")),
    (
        "templates.d/virt-builder.cfg",
        include_str!("../etc/virt-up/templates.d/virt-builder.cfg"),
    ),
    (
        "templates.d/local.cfg",
        include_str!("../etc/virt-up/templates.d/local.cfg"),
    ),
    (
        "playbooks/hello.yml",
        include_str!("../playbooks/hello.yml"),
    ),
    (
        "playbooks/template-motd.yml",
        include_str!("../playbooks/template-motd.yml"),
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
}
