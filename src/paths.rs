//! Every path the tool uses, resolved once from the environment into a struct that is
//! passed down: no other module reads environment variables, so tests need no globals.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    /// System-wide configuration, `/etc/virt-up` (`VIRTUP_SYSTEM_CONFIG` overrides, for tests).
    pub system_config: PathBuf,
    /// The user's configuration: `$VIRTUP_CONFIG_HOME`, else `$XDG_CONFIG_HOME/virt-up`.
    pub user_config: PathBuf,
    /// Run-time data: `$VIRTUP_DATA_HOME`, else `$XDG_DATA_HOME/virt-up`.
    pub data: PathBuf,
    /// The lock file: `$XDG_RUNTIME_DIR/virt-up.lock`, else `/run/user/<uid>/virt-up.lock`
    /// when that directory exists, else `/tmp/virt-up.lock` (the original tool's places).
    pub lock_file: PathBuf,
    /// Caches (the step cache): `$VIRTUP_CACHE_HOME`, else `$XDG_CACHE_HOME/virt-up`.
    pub cache: PathBuf,
}

/// A source of environment variables (the real environment, or a map in tests).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Read the process environment, treating empty values as unset (as XDG says).
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

impl Paths {
    pub fn from_env(env: Env) -> Paths {
        let home = env("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/root".into());
        let xdg = |var: &str, fallback: &str| {
            env(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(fallback))
        };
        let user_config = env("VIRTUP_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| xdg("XDG_CONFIG_HOME", ".config").join("virt-up"));
        let data = env("VIRTUP_DATA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| xdg("XDG_DATA_HOME", ".local/share").join("virt-up"));
        let system_config = env("VIRTUP_SYSTEM_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/etc/virt-up".into());
        let cache = env("VIRTUP_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| xdg("XDG_CACHE_HOME", ".cache").join("virt-up"));
        Paths {
            cache,
            system_config,
            user_config,
            data,
            lock_file: lock_file(env),
        }
    }

    pub fn sshkeys(&self) -> PathBuf {
        self.data.join("sshkeys")
    }
    pub fn instances(&self) -> PathBuf {
        self.data.join("instance")
    }
    pub fn instance_record(&self, name: &str) -> PathBuf {
        self.instances().join(format!("{name}.json"))
    }
    pub fn macaddrs(&self) -> PathBuf {
        self.data.join("macaddrs.json")
    }
    pub fn inventory(&self) -> PathBuf {
        self.data.join("inventory.yaml")
    }
    pub fn ssh_config(&self) -> PathBuf {
        self.data.join("ssh_config")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.data.join("known_hosts")
    }
    pub fn console_logs(&self) -> PathBuf {
        self.data.join("console")
    }
    pub fn locks(&self) -> PathBuf {
        self.data.join("locks")
    }
    /// Config directories in override order: system first, the user's last (wins).
    pub fn config_dirs(&self) -> [&Path; 2] {
        [&self.system_config, &self.user_config]
    }
}

fn lock_file(env: Env) -> PathBuf {
    if let Some(dir) = env("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("virt-up.lock");
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let run = PathBuf::from(format!("/run/user/{uid}"));
    if run.is_dir() {
        run.join("virt-up.lock")
    } else {
        PathBuf::from("/tmp/virt-up.lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn virtup_variables_win_over_xdg() {
        let m = env_of(&[
            ("HOME", "/h"),
            ("XDG_CONFIG_HOME", "/x/c"),
            ("VIRTUP_DATA_HOME", "/v/d"),
            ("XDG_DATA_HOME", "/x/d"),
            ("XDG_RUNTIME_DIR", "/r"),
        ]);
        let p = Paths::from_env(&|k| m.get(k).cloned());
        assert_eq!(p.user_config, Path::new("/x/c/virt-up"));
        assert_eq!(p.data, Path::new("/v/d"));
        assert_eq!(p.lock_file, Path::new("/r/virt-up.lock"));
        assert_eq!(p.system_config, Path::new("/etc/virt-up"));
    }

    #[test]
    fn falls_back_to_home() {
        let m = env_of(&[("HOME", "/h")]);
        let p = Paths::from_env(&|k| m.get(k).cloned());
        assert_eq!(p.user_config, Path::new("/h/.config/virt-up"));
        assert_eq!(p.data, Path::new("/h/.local/share/virt-up"));
    }
}
