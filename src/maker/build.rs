//! `virt-maker build -f FILE... [-p KEY=VALUE]... [--force] [--force-export] [--dry-run]`.

use crate::config::plan::{self, MakerPlan};
use crate::config::Config;
use crate::error::Result;
use crate::paths::Paths;
use crate::runner::Runner;
use crate::status::Lines;
use crate::stepcache::Cache;
use crate::steps::build::{Builder, Options, StepStatus};
use crate::steps::template::parse_param;
use std::path::PathBuf;
use std::sync::Mutex;

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
    // A status line per spec on a terminal (the step and its seconds), not with -v (the
    // tools' own output would be cut up by the redraws) and not for a dry run (instant).
    let lines = Lines::on_stderr(flags.verbose == 0 && !flags.dry_run);
    let out = |line: &str| lines.print(|| crate::outln!("{line}"));
    // The spec being built (one at a time, its before and after specs too): its line.
    let current = Mutex::new(String::new());
    let status = |step: &StepStatus| {
        let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
        if *current != step.file {
            lines.remove(&current);
            *current = step.file.to_string();
        }
        match step.draws_bars {
            // Its own bars say how far it is; the line comes back at the next step.
            true => lines.remove(step.file),
            false => lines.show(step.file, &step.text()),
        }
    };
    let builder = Builder {
        cache,
        runner: tool_runner(&plan, flags.verbose),
        out: &out,
        status: &status,
    };
    if flags.dry_run {
        builder.dry_run(files, &opts)?;
    } else {
        let built = builder.build_files(files, &opts);
        lines.remove(&current.lock().unwrap_or_else(|e| e.into_inner()));
        built?;
    }
    Ok(0)
}

/// The runner for libguestfs tools under the settings' virt-type.
fn tool_runner(plan: &MakerPlan, verbose: u8) -> Runner {
    Runner::new(plan.virt_type)
        .show_output(verbose > 0)
        .debug(verbose > 1)
}
