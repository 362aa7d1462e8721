//! Every path the tool uses, resolved once from the environment into a struct that is
//! passed down: no other module reads environment variables, so tests need no globals.

use crate::error::{Error, Result};
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
    /// The paths of this environment. A relative `VIRTUP_*` directory is refused (it would
    /// put data under whatever the working directory is); a relative `XDG_*` one is
    /// ignored, as the XDG Base Directory specification says.
    pub fn from_env(env: Env) -> Result<Paths> {
        let home = env("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/root".into());
        let xdg = |var: &str, fallback: &str| {
            env(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(fallback))
        };
        let own = |var: &str| -> Result<Option<PathBuf>> {
            match env(var).map(PathBuf::from) {
                Some(p) if !p.is_absolute() => Err(Error::Config(format!(
                    "{var}={:?}: expected an absolute path",
                    p.display().to_string()
                ))),
                other => Ok(other),
            }
        };
        let user_config = own("VIRTUP_CONFIG_HOME")?
            .unwrap_or_else(|| xdg("XDG_CONFIG_HOME", ".config").join("virt-up"));
        let data = own("VIRTUP_DATA_HOME")?
            .unwrap_or_else(|| xdg("XDG_DATA_HOME", ".local/share").join("virt-up"));
        let system_config = own("VIRTUP_SYSTEM_CONFIG")?.unwrap_or_else(|| "/etc/virt-up".into());
        let cache = own("VIRTUP_CACHE_HOME")?
            .unwrap_or_else(|| xdg("XDG_CACHE_HOME", ".cache").join("virt-up"));
        Ok(Paths {
            cache,
            system_config,
            user_config,
            data,
            lock_file: lock_file(env),
        })
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

/// The effective user id (`--init` as root writes the system directory).
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn lock_file(env: Env) -> PathBuf {
    if let Some(dir) = env("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_absolute()) {
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
        let p = Paths::from_env(&|k| m.get(k).cloned()).unwrap();
        assert_eq!(p.user_config, Path::new("/x/c/virt-up"));
        assert_eq!(p.data, Path::new("/v/d"));
        assert_eq!(p.lock_file, Path::new("/r/virt-up.lock"));
        assert_eq!(p.system_config, Path::new("/etc/virt-up"));
    }

    #[test]
    fn falls_back_to_home() {
        let m = env_of(&[("HOME", "/h")]);
        let p = Paths::from_env(&|k| m.get(k).cloned()).unwrap();
        assert_eq!(p.user_config, Path::new("/h/.config/virt-up"));
        assert_eq!(p.data, Path::new("/h/.local/share/virt-up"));
    }

    #[test]
    fn relative_xdg_is_ignored_and_relative_virtup_refused() {
        let m = env_of(&[
            ("HOME", "/h"),
            ("XDG_DATA_HOME", "rel"),
            ("XDG_CONFIG_HOME", "c"),
        ]);
        let p = Paths::from_env(&|k| m.get(k).cloned()).unwrap();
        assert_eq!(p.data, Path::new("/h/.local/share/virt-up"));
        assert_eq!(p.user_config, Path::new("/h/.config/virt-up"));
        for var in ["VIRTUP_DATA_HOME", "VIRTUP_CONFIG_HOME"] {
            let m = env_of(&[("HOME", "/h"), (var, "data")]);
            let err = Paths::from_env(&|k| m.get(k).cloned()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{var}=\"data\": expected an absolute path")
            );
            assert_eq!(err.exit_code(), 2);
        }
    }
}
