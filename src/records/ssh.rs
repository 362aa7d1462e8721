//! ssh and sftp command lines for an instance or template: its own key, its own
//! known_hosts entry (HostKeyAlias), host keys checked strictly.

use crate::paths::Paths;
use crate::records::{Login, Record};
use std::collections::BTreeMap;
use std::path::PathBuf;
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

/// `scp -r -i KEY -o ... [OPTIONS] SRC DST`; of `(remote, local)`, `remote` is the
/// instance's side of the copy (its path), `local` the other, `to_guest` which way the
/// copy goes.
pub fn scp(
    record: &Record,
    login: &Login,
    address: &str,
    (remote, local): (&str, &std::path::Path),
    to_guest: bool,
    options: &[String],
) -> Command {
    let host = match address.contains(':') {
        true => format!("[{address}]"),
        false => address.to_string(),
    };
    let remote = format!("{}@{host}:{remote}", login.username);
    let mut cmd = Command::new("scp");
    cmd.args(["-r", "-q", "-i"]).arg(&login.ssh_identity);
    cmd.args(ssh_option_args(&record.ssh_options));
    cmd.args(options);
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

/// How long a connection to an instance stays open after its last ssh session ends, for
/// the next `--login`, `--command` or `--copy` to reuse (no key exchange, no PAM session:
/// under emulation a new connection costs a second or more of the guest's CPU).
const MASTER_PERSIST: &str = "60";

/// The longest control socket path ssh can bind: sun_path holds 108 bytes, and ssh binds
/// a temporary name first (the path and 17 more characters).
const MAX_CONTROL_PATH: usize = 108 - 1 - 17;

/// The directory of the control sockets of the connections virt-up keeps to instances,
/// which only the user can enter.
fn control_dir(paths: &Paths) -> PathBuf {
    paths.data.join("ssh-mux")
}

/// The control socket of the connection virt-up keeps to instance `name` (a validated
/// name: letters, digits and '-') whose pinned host key is `pinned` (OpenSSH form): named
/// after both, so that a connection checked against one key never serves a login once
/// another key is pinned.
pub fn control_path(paths: &Paths, name: &str, pinned: &str) -> PathBuf {
    let key: Vec<&str> = pinned.split_whitespace().take(2).collect();
    let digest = crate::digest::sha256_hex(&key.join(" "));
    control_dir(paths).join(format!("{name}.{}", &digest[..12]))
}

/// The `-o` options that share one connection to the instance between virt-up's ssh, sftp
/// and scp runs: the first opens it and leaves it open for [`MASTER_PERSIST`] seconds, the
/// others use it. The connection was made with the host key checked strictly against
/// `pinned`, as every one is. None (each run connects on its own) when the socket's path
/// would be too long for ssh or its directory cannot be made.
pub fn shared_connection(paths: &Paths, name: &str, pinned: &str) -> Option<Vec<String>> {
    let path = control_path(paths, name, pinned);
    if path.as_os_str().len() > MAX_CONTROL_PATH {
        return None;
    }
    crate::fsutil::private_dir(path.parent()?).ok()?;
    let option = |kv: String| ["-o".to_string(), kv];
    Some(
        [
            option("ControlMaster=auto".into()),
            option(format!("ControlPath={}", path.display())),
            option(format!("ControlPersist={MASTER_PERSIST}")),
            // A guest turned off under the connection (virsh destroy) sends nothing: the
            // kept connection ends within 30 s instead of the TCP timeout.
            option("ServerAliveInterval=5".into()),
            option("ServerAliveCountMax=6".into()),
        ]
        .concat(),
    )
}

/// Forget the connections kept to instance `name`: its guest is stopping, starting again
/// or going away, and a later ssh must not be handed to a connection to the old one. Each
/// master is told to exit (`ssh -O exit`, answered by the master itself, whatever its
/// connection's state): left running, one whose guest went away without closing the
/// connection would, when its keepalives give up, remove the socket of the connection
/// opened since under the same name.
pub fn forget_connection(paths: &Paths, name: &str) {
    let Ok(entries) = std::fs::read_dir(control_dir(paths)) else {
        return;
    };
    let prefix = format!("{name}.");
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let path = entry.path();
        let _ = Command::new("ssh")
            .arg("-o")
            .arg(format!("ControlPath={}", path.display()))
            .args(["-O", "exit", "--", name])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_file(&path);
    }
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
                ("/tmp/x y", Path::new("-f")),
                to_guest,
                &["-o".into(), "ControlPath=/c".into()],
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
        assert!(up.contains(&"ControlPath=/c".to_string()), "{up:?}");
        let v6 = scp(&r, &r.user, "fe80::1", ("p", Path::new("l")), true, &[]);
        assert!(v6
            .get_args()
            .any(|a| a.to_string_lossy() == "virt@[fe80::1]:p"));
    }

    /// virt-up's own ssh runs to an instance share one connection, kept in a private
    /// directory of the data dir; a path ssh could not bind means no sharing, not an error.
    #[test]
    fn one_connection_is_shared_from_a_private_directory_when_its_path_fits() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let env = |k: &str| (k == "VIRTUP_DATA_HOME").then(|| data.display().to_string());
        let paths = Paths::from_env(&env).unwrap();
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA web1";
        let options = shared_connection(&paths, "web1", key).unwrap();
        let socket = control_path(&paths, "web1", key);
        assert!(options.contains(&format!("ControlPath={}", socket.display())));
        assert!(options.contains(&"ControlMaster=auto".to_string()));
        assert!(options.iter().any(|o| o.starts_with("ControlPersist=")));
        let mode = std::fs::metadata(socket.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        // Another pinned key, another connection: one checked against the old key is not
        // reused (the comment is not part of the key).
        let other = control_path(&paths, "web1", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB");
        assert_ne!(other, socket);
        assert_eq!(
            control_path(&paths, "web1", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"),
            socket
        );
        // Stale sockets are removed when the guest stops or goes; another instance's stay.
        let web10 = control_path(&paths, "web10", key);
        for path in [&socket, &other, &web10] {
            std::fs::write(path, "").unwrap();
        }
        forget_connection(&paths, "web1");
        assert!(!socket.exists() && !other.exists());
        assert!(web10.exists());

        let deep = dir.path().join("d".repeat(80));
        let env = |k: &str| (k == "VIRTUP_DATA_HOME").then(|| deep.display().to_string());
        let paths = Paths::from_env(&env).unwrap();
        assert_eq!(shared_connection(&paths, "web1", key), None);
        assert!(
            !deep.exists(),
            "nothing made for a connection that cannot be shared"
        );
    }
}
