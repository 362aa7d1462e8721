//! The last disk built for a template, kept in the cache with the login key built into it,
//! so that the same template on another libvirt host is uploaded there instead of built
//! again: the same definition gives the same disk. Kept only where another host can use
//! it (a remote connection, or `[host NAME]`s configured) and only for virt-builder templates (a customized one comes
//! from the step cache, which is quick and knows when a step's files change); one per
//! template, replaced by the next build and removed with `--force` (a rebuild means a new
//! disk).

use crate::config::plan::TemplatePlan;
use crate::error::Result;
use crate::fsutil::{remove_if_exists, write_atomic, TempPath};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A kept build: its disk, and the private login key its authorized_keys has.
pub struct Kept {
    pub disk: PathBuf,
    pub key: PathBuf,
    pub final_layer: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    /// The digest of the definition it was built from.
    definition: String,
    final_layer: Option<String>,
    /// The digest of virt-up's guest files built into it ([`crate::identity::agent_digest`]):
    /// a disk with another virt-up's agent is not this one's template (a record made for it
    /// would promise what that agent cannot do). None of older kept builds.
    #[serde(default)]
    agent: String,
}

struct Files {
    disk: PathBuf,
    key: PathBuf,
    meta: PathBuf,
}

fn files(plan: &TemplatePlan) -> Files {
    let dir = plan.cache_dir.join("builds");
    let stem = crate::names::template_stem(&plan.name);
    Files {
        disk: dir.join(format!("{stem}.kept.{}", plan.format)),
        key: dir.join(format!("{stem}.kept.key")),
        meta: dir.join(format!("{stem}.kept.json")),
    }
}

/// The kept build of `plan`'s template if it was built from `definition` and is whole.
pub fn find(plan: &TemplatePlan, definition: &str) -> Option<Kept> {
    let f = files(plan);
    let meta: Meta = serde_json::from_slice(&std::fs::read(&f.meta).ok()?).ok()?;
    let same = meta.definition == definition && meta.agent == crate::identity::agent_digest();
    (same && f.disk.is_file() && f.key.is_file()).then_some(Kept {
        disk: f.disk,
        key: f.key,
        final_layer: meta.final_layer,
    })
}

/// Keep `staged` (moved) with a copy of the login key `key`. The description is written
/// last and removed first, so a half-kept build is never found.
pub fn keep(
    plan: &TemplatePlan,
    definition: &str,
    staged: TempPath,
    key: &Path,
    final_layer: Option<String>,
) -> Result<()> {
    discard(plan)?;
    let f = files(plan);
    let private = std::fs::read(key).map_err(|e| crate::error::Error::io(key, e))?;
    write_atomic(&f.key, &private, 0o600)?;
    staged.persist(&f.disk)?;
    let meta = Meta {
        definition: definition.to_string(),
        final_layer,
        agent: crate::identity::agent_digest(),
    };
    write_atomic(&f.meta, &serde_json::to_vec_pretty(&meta)?, 0o600)?;
    Ok(())
}

/// Remove the kept build of `plan`'s template, if any.
pub fn discard(plan: &TemplatePlan) -> Result<()> {
    let f = files(plan);
    for path in [&f.meta, &f.disk, &f.key] {
        remove_if_exists(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{plan, test_config};
    use crate::paths::Paths;

    #[test]
    fn a_kept_disk_with_another_virt_ups_agent_is_not_reused() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().display().to_string();
        let paths = Paths::from_env(&|k| (k == "HOME").then(|| h.clone())).unwrap();
        let config = test_config("", "[deb]\nos-version = x\n");
        let plan = plan::instance(&config, &paths, "deb", &Default::default())
            .unwrap()
            .template;
        std::fs::create_dir_all(plan.cache_dir.join("builds")).unwrap();
        let staged = plan.cache_dir.join("builds/staged");
        std::fs::write(&staged, "disk").unwrap();
        let key = home.path().join("key");
        std::fs::write(&key, "private").unwrap();
        keep(&plan, "def", TempPath::adopt(staged), &key, None).unwrap();
        assert!(find(&plan, "def").is_some());
        assert!(find(&plan, "other").is_none());
        // As an older virt-up kept it: no agent digest.
        let meta = files(&plan).meta;
        let text = std::fs::read_to_string(&meta).unwrap();
        let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
        old.as_object_mut().unwrap().remove("agent");
        std::fs::write(&meta, old.to_string()).unwrap();
        assert!(find(&plan, "def").is_none());
    }
}
