//! `virt-maker build -f FILE... [-p KEY=VALUE]... [--force] [--force-export] [--dry-run]`.

use crate::config::plan::{self, MakerPlan};
use crate::config::Config;
use crate::error::Result;
use crate::paths::Paths;
use crate::runner::Runner;
use crate::stepcache::Cache;
use crate::steps::build::{Builder, Options};
use crate::steps::template::parse_param;
use std::path::PathBuf;

/// The command's flags.
pub(super) struct Flags {
    pub force: bool,
    pub force_export: bool,
    pub dry_run: bool,
    pub verbose: u8,
}

pub(super) fn run(
    paths: &Paths,
    files: &[PathBuf],
    params: &[String],
    flags: Flags,
) -> Result<i32> {
    let plan = plan::maker(&Config::load(paths)?, paths)?;
    // A dry run writes nothing, not even the cache's directories.
    let cache = if flags.dry_run {
        Cache::at(&plan.cache_dir)
    } else {
        Cache::open(&plan.cache_dir)?
    };
    let opts = Options {
        force: flags.force,
        force_export: flags.force_export,
        params: params
            .iter()
            .map(|p| parse_param(p))
            .collect::<Result<_>>()?,
    };
    let out = |line: &str| println!("{line}");
    let builder = Builder {
        cache,
        runner: tool_runner(&plan, flags.verbose),
        out: &out,
    };
    if flags.dry_run {
        builder.dry_run(files, &opts)?;
    } else {
        builder.build_files(files, &opts)?;
    }
    Ok(0)
}

/// The runner for libguestfs tools under the settings' virt-type.
fn tool_runner(plan: &MakerPlan, verbose: u8) -> Runner {
    Runner::new(plan.virt_type)
        .show_output(verbose > 0)
        .debug(verbose > 1)
}
