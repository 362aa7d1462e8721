//! `virt-maker cache usage|clean|gc`: the step cache's layers, what they take, and removing
//! them (all, or by size and age).

use super::cli::CacheAction;
use crate::config::plan;
use crate::config::Config;
use crate::error::Result;
use crate::paths::Paths;
use crate::size::human_short;
use crate::stepcache::{Cache, GcPolicy, Manifest};

/// The command's flags.
pub(super) struct Flags {
    pub human: bool,
    pub json: bool,
    pub dry_run: bool,
    pub max_size: Option<u64>,
    pub max_age: Option<u64>,
}

pub(super) fn run(paths: &Paths, action: CacheAction, flags: Flags) -> Result<i32> {
    let plan = plan::maker(&Config::load(paths)?, paths)?;
    let cache = Cache::open(&plan.cache_dir)?;
    let size = |b: u64| {
        if flags.human {
            human_short(b)
        } else {
            b.to_string()
        }
    };
    match action {
        CacheAction::Usage => {
            let layers = cache.layers()?;
            let total = Cache::total(&layers);
            if flags.json {
                let v = serde_json::json!({"layers": layers, "total": total, "dir": cache.dir()});
                crate::outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                for m in &layers {
                    crate::outln!("{}", layer_line(m, &size));
                }
                crate::outln!(
                    "{:>10}  total ({} layers) in {}",
                    size(total),
                    layers.len(),
                    cache.dir().display()
                );
            }
        }
        CacheAction::Clean | CacheAction::Gc => {
            let removed = match action {
                CacheAction::Clean => cache.clean(flags.dry_run)?,
                _ => {
                    if flags.max_size.is_none() && flags.max_age.is_none() {
                        return Err(crate::Error::Usage(
                            "cache gc needs --max-size and/or --max-age".into(),
                        ));
                    }
                    let policy = GcPolicy {
                        max_size: flags.max_size,
                        max_age: flags.max_age,
                    };
                    cache.gc(policy, flags.dry_run)?
                }
            };
            let verb = if flags.dry_run {
                "would remove"
            } else {
                "removed"
            };
            for m in &removed {
                crate::outln!("{verb} {}", layer_line(m, &size));
            }
            crate::outln!(
                "{verb} {} layers, {}",
                removed.len(),
                size(Cache::total(&removed))
            );
        }
    }
    Ok(0)
}

fn layer_line(m: &Manifest, size: &dyn Fn(u64) -> String) -> String {
    let age = crate::clock::now().saturating_sub(m.last_used);
    format!(
        "{:>10}  {}  used {} ago  {}: {}",
        size(m.size),
        &m.key[..16.min(m.key.len())],
        ago(age),
        m.step,
        m.summary
    )
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
