//! Running ansible playbooks against instances through the generated inventory.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::runner::argv;
use std::path::{Path, PathBuf};

/// Find a playbook: the path as given, then `<user config>/playbooks/`, then
/// `<system config>/playbooks/`; in each, NAME, NAME.yml and NAME.yaml.
pub fn find(ctx: &Context, playbook: &str) -> Result<PathBuf> {
    let given = Path::new(playbook);
    let mut candidates = vec![given.to_path_buf()];
    if given.components().count() == 1 {
        for dir in [&ctx.paths.user_config, &ctx.paths.system_config] {
            for suffix in ["", ".yml", ".yaml"] {
                candidates.push(dir.join("playbooks").join(format!("{playbook}{suffix}")));
            }
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| Error::PlaybookNotFound {
            name: playbook.to_string(),
            looked_in: candidates.clone(),
        })
}

/// `ansible-playbook -i <inventory> --limit <name> <playbook>`; the playbook's own output is
/// shown; a failure is an error with its exit code. An instance left out of the inventory
/// (`--no-inventory`) gets a private one-host inventory, written by the same serializer:
/// `--limit` would find no host in the shared one.
pub fn run(ctx: &Context, name: &str, playbook: &str) -> Result<()> {
    match ctx.store.load(name)? {
        Some(record) if !record.inventory => {
            let mut host = record;
            host.inventory = true;
            let files = crate::identity::SecretFiles::new()?;
            let inventory = files.write(
                "inventory.yaml",
                &crate::records::inventory::render_inventory(std::slice::from_ref(&host)),
                0o600,
            )?;
            run_with_inventory(ctx, &inventory, name, playbook)
        }
        _ => run_with_inventory(ctx, &ctx.paths.inventory(), name, playbook),
    }
}

/// As [`run`], with another inventory (a template's, while it is being built).
pub fn run_with_inventory(
    ctx: &Context,
    inventory: &Path,
    name: &str,
    playbook: &str,
) -> Result<()> {
    let path = find(ctx, playbook)?;
    let args = argv([
        "-i".to_string(),
        inventory.display().to_string(),
        "--limit".to_string(),
        name.to_string(),
        path.display().to_string(),
    ]);
    let runner = crate::runner::Runner::default().debug(ctx.ui.debug);
    // ansible-playbook writes to the terminal itself: no status line is drawn meanwhile.
    let _paused = ctx.ui.lines.paused();
    runner
        .tool("ansible-playbook")
        .args(&args)
        .env("ANSIBLE_HOST_KEY_CHECKING", "True")
        .on_terminal()
        .context(format!("playbook {} on {name}", path.display()))
        .run()?;
    Ok(())
}
