//! Validation of names before they touch a path, a libvirt domain name or XML.

use crate::error::{Error, Result};

/// Longest instance name: a hostname label is at most 63 bytes.
pub const MAX_NAME_LEN: usize = 63;

/// An instance name becomes a hostname, a file name and a domain name, so it must be a
/// valid DNS label: letters, digits and '-', not starting or ending with '-'.
pub fn validate_instance_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad(&format!("it is longer than {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return bad(&format!(
            "character {c:?} is not allowed (use letters, digits and '-')"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("it must not start or end with '-'");
    }
    if name.starts_with("TEMPLATE-") {
        return bad("the prefix 'TEMPLATE-' is reserved for templates");
    }
    Ok(())
}

/// Template names come from config section names and may contain '/' (`generic/centos8`).
/// They are mapped to a file- and domain-safe stem by [`template_stem`].
pub fn validate_template_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad("a template name must have 1 to 63 characters");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
    {
        return bad(&format!(
            "character {c:?} is not allowed in a template name"
        ));
    }
    if name
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return bad("empty, '.' or '..' path components are not allowed");
    }
    Ok(())
}

/// A snapshot name goes into libvirt's snapshot XML and into qcow2's snapshot table:
/// letters, digits, '-', '_' and '.', 1 to 63 characters, not starting with '-' or '.'
/// (so it is never read as an option or a hidden name).
pub fn validate_snapshot_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return bad("a snapshot name must have 1 to 63 characters");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return bad(&format!(
            "character {c:?} is not allowed in a snapshot name (use letters, digits, '-', '_' and '.')"
        ));
    }
    if name.starts_with(['-', '.']) {
        return bad("a snapshot name must not start with '-' or '.'");
    }
    Ok(())
}

/// A storage volume's name (virt-maker's `libvirt` exporter): a file name in the pool, so
/// letters, digits, '-', '_' and '.', not starting with '.' or '-'.
pub fn validate_volume_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() || name.len() > 255 {
        return bad("a volume name has 1 to 255 characters");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return bad(&format!(
            "character {c:?} is not allowed in a volume name (use letters, digits, '-', '_' and '.')"
        ));
    }
    if name.starts_with(['-', '.']) {
        return bad("a volume name must not start with '-' or '.'");
    }
    Ok(())
}

/// The domain and disk name of a template: `TEMPLATE-<name>` with '/' mapped to '-'.
pub fn template_stem(name: &str) -> String {
    format!("TEMPLATE-{}", name.replace('/', "-"))
}

/// The stem of a template on a libvirt host: [`template_stem`] on this machine's own,
/// `TEMPLATE-<name>@<host>` on a remote one (`host` from [`crate::reach::host_label`]), so
/// the records, keys and locks of one template on several hosts are apart.
pub fn template_stem_on(name: &str, host: Option<&str>) -> String {
    match host {
        None => template_stem(name),
        Some(host) => format!("{}@{host}", template_stem(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_are_checked_before_they_reach_xml() {
        for ok in ["before-upgrade", "s1", "v1.2_ok"] {
            assert!(validate_snapshot_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "<x>", "a'b", "-s", ".s", "a/b", &"x".repeat(64)] {
            assert!(validate_snapshot_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn accepts_hostname_labels() {
        for ok in ["web1", "a", "db-2", &"x".repeat(63)] {
            validate_instance_name(ok).unwrap();
        }
    }

    #[test]
    fn rejects_what_could_escape_a_path_or_xml() {
        for bad in [
            "",
            "../etc",
            "a/b",
            "a b",
            "a<b",
            "-a",
            "a-",
            "a.b",
            "TEMPLATE-x",
            &"x".repeat(64),
        ] {
            let err = validate_instance_name(bad).unwrap_err().to_string();
            assert!(err.contains("invalid name"), "{bad}: {err}");
        }
    }

    #[test]
    fn template_names_may_have_slashes_but_not_dotdot() {
        validate_volume_name("web.qcow2").unwrap();
        for bad in ["", ".x", "-x", "a/b", "a b", "../x"] {
            assert!(validate_volume_name(bad).is_err(), "{bad:?}");
        }
        validate_template_name("generic/centos8").unwrap();
        validate_template_name("debian-12").unwrap();
        assert!(validate_template_name("../x").is_err());
        assert!(validate_template_name("a//b").is_err());
        assert!(validate_template_name("a b").is_err());
        assert_eq!(template_stem("generic/centos8"), "TEMPLATE-generic-centos8");
    }
}
