//! `--init`: the shipped configuration written where virt-up reads it.

use crate::context::Ui;
use crate::error::{Error, Result};
use crate::paths::Paths;
use crate::virtup::shipped;

pub(super) fn init(paths: &Paths, force: bool, ui: &Ui) -> Result<()> {
    let dir = &paths.user_config;
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
    for (rel, contents) in shipped::FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        crate::fsutil::write_atomic(&path, contents.as_bytes(), 0o644)?;
        ui.info(format!("wrote {}", path.display()));
    }
    Ok(())
}
