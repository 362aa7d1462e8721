//! `--init`: the shipped configuration written where virt-up reads it.

use crate::context::Ui;
use crate::error::{Error, Result};
use crate::paths::Paths;
use crate::virtup::shipped;
use std::path::Path;

pub(super) fn init(paths: &Paths, force: bool, ui: &Ui) -> Result<()> {
    let dir = destination(paths, crate::paths::euid());
    let existing: Vec<String> = shipped::FILES
        .iter()
        .map(|(rel, _)| dir.join(rel))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() && !force {
        return Err(Error::Config(format!(
            "not overwriting existing files (use --force): {}",
            existing.join(", ")
        )));
    }
    ui.info(format!("initializing files in {}", dir.display()));
    for (rel, contents) in shipped::FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        crate::fsutil::write_atomic(&path, contents.as_bytes(), shipped::mode(rel))?;
        ui.info(format!("wrote {}", path.display()));
    }
    Ok(())
}

/// Where `--init` writes: the system directory (`/etc/virt-up`, or
/// `VIRTUP_SYSTEM_CONFIG`) for root, the user's configuration directory otherwise, as the
/// original did (virt_up/__main__.py `init` in 1.x, virt_up/cli.py `init_config` in 2.x).
fn destination(paths: &Paths, euid: u32) -> &Path {
    if euid == 0 {
        &paths.system_config
    } else {
        &paths.user_config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_writes_the_system_directory_others_their_own() {
        let env = |k: &str| match k {
            "VIRTUP_SYSTEM_CONFIG" => Some("/s/virt-up".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        let paths = Paths::from_env(&env).unwrap();
        assert_eq!(destination(&paths, 0), Path::new("/s/virt-up"));
        assert_eq!(
            destination(&paths, 1000),
            Path::new("/home/u/.config/virt-up")
        );
        let paths = Paths::from_env(&|_| None).unwrap();
        assert_eq!(destination(&paths, 0), Path::new("/etc/virt-up"));
    }
}
