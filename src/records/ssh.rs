//! ssh and sftp command lines for an instance or template: its own key, its own
//! known_hosts entry (HostKeyAlias), host keys checked strictly.

use crate::paths::Paths;
use crate::records::{Login, Record};
use std::collections::BTreeMap;
use std::process::Command;

/// `ssh|sftp -i KEY -o ... [OPTIONS] LOGIN@ADDRESS` (the caller adds a remote command;
/// options must come before the destination, where ssh stops parsing them).
pub fn command(
    tool: &str,
    record: &Record,
    login: &Login,
    address: &str,
    options: &[&str],
) -> Command {
    let mut cmd = Command::new(tool);
    cmd.arg("-i").arg(&login.ssh_identity);
    cmd.args(ssh_option_args(&record.ssh_options));
    // Errors only: no banner or diagnostics, but a refused host key still says why. (`-q`
    // silenced that too: a changed host key failed with exit 255 and no word.)
    cmd.args(["-o", "LogLevel=ERROR"]);
    cmd.args(options);
    cmd.arg(format!("{}@{address}", login.username));
    cmd
}

/// `scp -r -i KEY -o ... SRC DST`; `remote` is the instance's side of the copy (its path),
/// `local` the other, `to_guest` which way the copy goes.
pub fn scp(
    record: &Record,
    login: &Login,
    address: &str,
    remote: &str,
    local: &std::path::Path,
    to_guest: bool,
) -> Command {
    let host = match address.contains(':') {
        true => format!("[{address}]"),
        false => address.to_string(),
    };
    let remote = format!("{}@{host}:{remote}", login.username);
    let mut cmd = Command::new("scp");
    cmd.args(["-r", "-q", "-i"]).arg(&login.ssh_identity);
    cmd.args(ssh_option_args(&record.ssh_options));
    // After "--" nothing is an option, whatever the paths look like.
    cmd.arg("--");
    match to_guest {
        true => cmd.arg(local).arg(remote),
        false => cmd.arg(remote).arg(local),
    };
    cmd
}

/// The `-o` options every ssh to an instance uses: the instance's own known_hosts entry,
/// checked strictly, and the host to jump through when its network is not routable from
/// here (a validated `[user@]host[:port]`, see [`crate::reach`]).
pub fn ssh_options(paths: &Paths, name: &str, jump: Option<&str>) -> BTreeMap<String, String> {
    let mut options = BTreeMap::from([
        ("HostKeyAlias".to_string(), name.to_string()),
        (
            "UserKnownHostsFile".to_string(),
            paths.known_hosts().display().to_string(),
        ),
        ("StrictHostKeyChecking".to_string(), "yes".to_string()),
        ("IdentitiesOnly".to_string(), "yes".to_string()),
        ("ConnectTimeout".to_string(), "10".to_string()),
    ]);
    if let Some(jump) = jump {
        options.insert("ProxyJump".to_string(), jump.to_string());
    }
    options
}

/// `-o Key=Value` arguments from an options map.
pub fn ssh_option_args(options: &BTreeMap<String, String>) -> Vec<String> {
    options
        .iter()
        .flat_map(|(k, v)| ["-o".to_string(), format!("{k}={v}")])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn record(paths: &Paths) -> Record {
        serde_json::from_value(serde_json::json!({
            "name": "web1", "template": "t", "created": "", "phase": "ready", "pid": 1,
            "os_version": "x", "hostname": "web1", "domain": "web1", "disk": "/d",
            "format": "qcow2", "memory": 1, "vcpus": 1, "graphics": "none",
            "root": {"username": "root", "ssh_identity": "/k"},
            "user": {"username": "virt", "ssh_identity": "/k"}, "address-source": "lease",
            "ssh_options": ssh_options(paths, "web1", None), "mac": "m", "uri": "u",
            "identity": "firstboot", "console_log": "/c", "inventory": true
        }))
        .unwrap()
    }

    /// What a record gets from `ssh_options` makes every login check the instance's own
    /// pinned host key: never ssh's defaults (ask, or accept a new key).
    #[test]
    fn logins_check_the_pinned_host_key_strictly() {
        let paths =
            Paths::from_env(&|k| (k == "VIRTUP_DATA_HOME").then(|| "/d".to_string())).unwrap();
        let r = record(&paths);
        let cmd = command("ssh", &r, &r.user, "10.0.0.2", &["-T"]);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let known_hosts = format!("UserKnownHostsFile={}", paths.known_hosts().display());
        for option in [
            "StrictHostKeyChecking=yes",
            "HostKeyAlias=web1",
            known_hosts.as_str(),
            "IdentitiesOnly=yes",
            "LogLevel=ERROR",
        ] {
            let at = args.iter().position(|a| a == option);
            assert!(
                at.is_some_and(|i| i > 0 && args[i - 1] == "-o"),
                "-o {option} missing from {args:?}"
            );
        }
        assert!(!args.iter().any(|a| a == "-q"), "{args:?}");
        assert_eq!(args[..2], ["-i", "/k"]);
        // Options before the destination, where ssh stops reading them.
        assert_eq!(args.last().unwrap(), "virt@10.0.0.2");
        assert_eq!(args[args.len() - 2], "-T");
    }

    /// A guest behind a remote libvirt host is reached through it, by every ssh virt-up,
    /// ansible (the inventory's ssh args) and ssh_config run.
    #[test]
    fn a_jump_host_goes_into_the_options() {
        let paths =
            Paths::from_env(&|k| (k == "VIRTUP_DATA_HOME").then(|| "/d".to_string())).unwrap();
        let options = ssh_options(&paths, "web1", Some("root@lab2"));
        assert_eq!(options["ProxyJump"], "root@lab2");
        assert_eq!(options["StrictHostKeyChecking"], "yes");
        assert!(!ssh_options(&paths, "web1", None).contains_key("ProxyJump"));
    }

    #[test]
    fn scp_copies_with_the_instances_key_and_pinned_host_key_after_a_double_dash() {
        let paths =
            Paths::from_env(&|k| (k == "VIRTUP_DATA_HOME").then(|| "/d".to_string())).unwrap();
        let r = record(&paths);
        let args = |to_guest| -> Vec<String> {
            let cmd = scp(
                &r,
                &r.user,
                "192.168.122.5",
                "/tmp/x y",
                Path::new("-f"),
                to_guest,
            );
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let up = args(true);
        assert_eq!(up[..4], ["-r", "-q", "-i", "/k"]);
        assert!(
            up.contains(&"StrictHostKeyChecking=yes".to_string()),
            "{up:?}"
        );
        assert!(up.contains(&"HostKeyAlias=web1".to_string()), "{up:?}");
        assert_eq!(
            up[up.len() - 3..],
            ["--", "-f", "virt@192.168.122.5:/tmp/x y"]
        );
        let down = args(false);
        assert_eq!(
            down[down.len() - 2..],
            ["virt@192.168.122.5:/tmp/x y", "-f"]
        );
        let v6 = scp(&r, &r.user, "fe80::1", "p", Path::new("l"), true);
        assert!(v6
            .get_args()
            .any(|a| a.to_string_lossy() == "virt@[fe80::1]:p"));
    }
}
