//! How this machine reaches a guest's SSH server: directly, or through the libvirt host
//! (OpenSSH's ProxyJump). A guest on a remote host's NAT network (`qemu+ssh://lab2/...`)
//! has an address only that host can reach; ssh, ansible and virt-up's own readiness
//! checks then go through the host, with the guest's host key still checked. This module
//! says through which host; `readiness` and `records::ssh` do the reaching.

/// The `jump-host` setting: through the libvirt host when it is another machine
/// (`auto`), never (`none`: the guests' network is routable from here), or through a
/// given `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq)]
pub enum JumpSetting {
    Auto,
    None,
    Host(String),
}

impl JumpSetting {
    pub fn parse(value: &str) -> Result<JumpSetting, String> {
        match value {
            "auto" => Ok(JumpSetting::Auto),
            "none" => Ok(JumpSetting::None),
            host => validate_destination(host).map(|_| JumpSetting::Host(host.to_string())),
        }
    }
}

/// The ProxyJump destination for guests of the libvirt connection `uri`, if any.
pub fn jump_for(uri: &str, setting: &JumpSetting) -> Option<String> {
    match setting {
        JumpSetting::None => None,
        JumpSetting::Host(host) => Some(host.clone()),
        JumpSetting::Auto => uri_host(uri),
    }
}

/// The host part of a libvirt URI as an ssh destination (`[user@]host[:port]`): None for a
/// local URI (`qemu:///system`, `test:///default`) or one whose host part is not a plain
/// user, host and port (nothing else may reach an ssh option or config file).
pub fn uri_host(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() {
        return None;
    }
    validate_destination(authority).ok()?;
    Some(authority.to_string())
}

/// The host of a remote libvirt URI, as a name for its records (`lab2`, `10.231.2.2`):
/// without user and port, plain characters only. None for a local URI.
pub fn host_label(uri: &str) -> Option<String> {
    let dest = uri_host(uri)?;
    let host_port = dest.rsplit_once('@').map_or(dest.as_str(), |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    Some(host.replace(':', "-"))
}

/// What tells the records of one libvirt daemon from another's: None for qemu:///system
/// (this machine's system daemon, the scope records had before there were others), the
/// host's label for a remote URI, `session` for qemu:///session, and a short digest of
/// the URI for any other local one (a test driver's node file).
pub fn record_scope(uri: &str) -> Option<String> {
    match uri {
        "qemu:///system" => None,
        "qemu:///session" => Some("session".into()),
        _ => host_label(uri).or_else(|| Some(crate::digest::sha256_hex(uri)[..8].to_string())),
    }
}

/// `[user@]host[:port]` with a user, host (name, IPv4, or `[IPv6]`) and port of plain
/// characters: it goes into `-o ProxyJump=`, ssh_config and the ansible inventory.
pub fn validate_destination(dest: &str) -> Result<(), String> {
    let bad = || {
        format!("'{dest}' is not an ssh destination of the form [user@]host[:port] (letters, digits, '.', '-', '_')")
    };
    let (user, host_port) = match dest.split_once('@') {
        Some((user, rest)) => (Some(user), rest),
        None => (None, dest),
    };
    let plain = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c) || extra.contains(&c))
    };
    if user.is_some_and(|u| !plain(u, &[]) || u.starts_with('-')) {
        return Err(bad());
    }
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
            if !plain(addr, &[':']) {
                return Err(bad());
            }
            (addr, after.strip_prefix(':'))
        }
        None => match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        },
    };
    if !plain(host, &[':']) || host.starts_with('-') {
        return Err(bad());
    }
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_uri_names_its_host_and_a_local_one_none() {
        assert_eq!(
            uri_host("qemu+ssh://root@lab2/system").as_deref(),
            Some("root@lab2")
        );
        assert_eq!(
            uri_host("qemu+ssh://root@10.231.2.2:2222/system?keyfile=/k").as_deref(),
            Some("root@10.231.2.2:2222")
        );
        assert_eq!(uri_host("qemu+tcp://lab3/system").as_deref(), Some("lab3"));
        assert_eq!(uri_host("qemu:///system"), None);
        assert_eq!(uri_host("test:///default"), None);
        assert_eq!(uri_host("qemu+ssh://a;b@lab2/system"), None);
        assert_eq!(uri_host("qemu+ssh://-oProxyCommand=x/system"), None);
    }

    #[test]
    fn each_daemon_has_its_own_record_scope_and_the_system_one_none() {
        assert_eq!(record_scope("qemu:///system"), None);
        assert_eq!(record_scope("qemu:///session").as_deref(), Some("session"));
        assert_eq!(
            record_scope("qemu+ssh://root@lab2/system").as_deref(),
            Some("lab2")
        );
        let a = record_scope("test:///tmp/a.xml").unwrap();
        assert_eq!(a.len(), 8);
        assert_ne!(Some(a), record_scope("test:///tmp/b.xml"));
    }

    #[test]
    fn a_host_label_has_neither_user_nor_port() {
        assert_eq!(
            host_label("qemu+ssh://root@lab2:2222/system").as_deref(),
            Some("lab2")
        );
        assert_eq!(
            host_label("qemu+ssh://u@[fe80::1]:22/system").as_deref(),
            Some("fe80--1")
        );
        assert_eq!(host_label("qemu:///system"), None);
    }

    #[test]
    fn only_plain_destinations_are_accepted() {
        for ok in [
            "lab2",
            "root@lab2",
            "root@10.0.0.2:22",
            "u@[fe80::1]:2222",
            "a.b-c_d",
        ] {
            assert_eq!(validate_destination(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "root@",
            "@lab2",
            "lab2:0",
            "lab2:99999",
            "lab 2",
            "lab2\nHost *",
            "-oProxyCommand=sh",
            "root@-x",
            "[::1",
        ] {
            assert!(validate_destination(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_setting_picks_the_jump() {
        let remote = "qemu+ssh://root@lab2/system";
        assert_eq!(
            jump_for(remote, &JumpSetting::Auto).as_deref(),
            Some("root@lab2")
        );
        assert_eq!(jump_for("qemu:///system", &JumpSetting::Auto), None);
        assert_eq!(jump_for(remote, &JumpSetting::None), None);
        assert_eq!(
            jump_for("qemu:///system", &JumpSetting::parse("gw:2222").unwrap()).as_deref(),
            Some("gw:2222")
        );
        assert!(JumpSetting::parse("a b").is_err());
    }
}
