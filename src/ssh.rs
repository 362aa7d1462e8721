//! ssh and sftp command lines for an instance or template: its own key, its own
//! known_hosts entry (HostKeyAlias), host keys checked strictly.

use crate::inventory::ssh_option_args;
use crate::records::{Login, Record};
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
    cmd.arg("-q");
    cmd.args(options);
    cmd.arg(format!("{}@{address}", login.username));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_the_records_key_and_strict_options() {
        let mut r: Record = serde_json::from_value(serde_json::json!({
            "name": "web1", "template": "t", "created": "", "phase": "ready", "pid": 1,
            "os_version": "x", "hostname": "web1", "domain": "web1", "disk": "/d",
            "format": "qcow2", "memory": 1, "vcpus": 1, "graphics": "none",
            "root": {"username": "root", "ssh_identity": "/k"},
            "user": {"username": "virt", "ssh_identity": "/k"}, "address-source": "lease",
            "ssh_options": {}, "mac": "m", "uri": "u", "identity": "firstboot",
            "console_log": "/c", "inventory": true
        }))
        .unwrap();
        r.ssh_options
            .insert("StrictHostKeyChecking".into(), "yes".into());
        let cmd = command("ssh", &r, &r.user, "10.0.0.2", &["-T"]);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-i",
                "/k",
                "-o",
                "StrictHostKeyChecking=yes",
                "-q",
                "-T",
                "virt@10.0.0.2"
            ]
        );
    }
}
