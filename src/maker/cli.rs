//! The `virt-maker` command line (the original tool's commands and flags) and what each
//! command does. The binary only parses and maps errors to exit codes.

use crate::clock::parse_age;
use crate::config::plan::{self, MakerPlan};
use crate::config::Config;
use crate::error::Result;
use crate::paths::Paths;
use crate::runner::Runner;
use crate::size::human_short;
use crate::stepcache::{Cache, GcPolicy, Manifest};
use crate::steps::build::{Builder, Options};
use crate::steps::runners::{self, Role};
use crate::steps::template::parse_param;
use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "virt-maker",
    version,
    about = "Build disk images from YAML templates, every step a cached layer"
)]
pub struct Cli {
    /// More output (repeatable): tool output, commands run.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build template(s).
    Build {
        /// Path to template file(s).
        #[arg(short = 'f', long = "file", num_args = 1.., required = true)]
        files: Vec<PathBuf>,
        /// Set or override template parameter(s), KEY=VALUE (VALUE parsed as JSON when it can be).
        #[arg(short = 'p', long = "param", num_args = 1..)]
        params: Vec<String>,
        /// Force build from scratch (this template's layers are rebuilt).
        #[arg(short = 'F', long)]
        force: bool,
        /// Force export to re-run.
        #[arg(short = 'X', long = "force-export")]
        force_export: bool,
        /// Validate and print the plan (each runner, its cache key, whether it is cached;
        /// the export); run nothing, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Cache management.
    Cache {
        action: CacheAction,
        /// Output as human-readable values.
        #[arg(short = 'H', long = "human-readable")]
        human: bool,
        /// usage: output JSON.
        #[arg(long)]
        json: bool,
        /// clean, gc: say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// gc: remove least recently used layers until the cache is at most this big (e.g. 20G).
        #[arg(long, value_parser = size_arg)]
        max_size: Option<u64>,
        /// gc: remove layers unused for longer than this (e.g. 30d, 12h).
        #[arg(long, value_parser = age_arg)]
        max_age: Option<u64>,
    },
    /// Show the types of runners.
    Runners { kind: RunnerKind },
}

fn size_arg(s: &str) -> std::result::Result<u64, String> {
    crate::size::parse(s).map_err(|_| format!("'{s}' is not a size (e.g. 512M, 20G, 1.5T)"))
}

fn age_arg(s: &str) -> std::result::Result<u64, String> {
    parse_age(s).ok_or_else(|| format!("'{s}' is not an age (e.g. 30d, 12h, 90m)"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CacheAction {
    Clean,
    Usage,
    Gc,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RunnerKind {
    Steps,
    Importers,
    Exporters,
}

/// The runner for libguestfs tools under the settings' virt-type.
fn tool_runner(plan: &MakerPlan, verbose: u8) -> Runner {
    Runner::new(plan.virt_type)
        .show_output(verbose > 0)
        .debug(verbose > 1)
}

pub fn run(cli: Cli, paths: Paths) -> Result<i32> {
    match cli.command {
        Command::Runners { kind } => {
            print!("{}", runners_text(kind, cli.verbose > 0));
            Ok(0)
        }
        Command::Build {
            files,
            params,
            force,
            force_export,
            dry_run,
        } => {
            let plan = plan::maker(&Config::load(&paths)?, &paths)?;
            let cache = if dry_run {
                Cache::at(&plan.cache_dir)
            } else {
                Cache::open(&plan.cache_dir)?
            };
            let opts = Options {
                force,
                force_export,
                params: params
                    .iter()
                    .map(|p| parse_param(p))
                    .collect::<Result<_>>()?,
            };
            let out = |line: &str| println!("{line}");
            let builder = Builder {
                cache,
                runner: tool_runner(&plan, cli.verbose),
                out: &out,
            };
            if dry_run {
                builder.dry_run(&files, &opts)?;
            } else {
                builder.build_files(&files, &opts)?;
            }
            Ok(0)
        }
        Command::Cache {
            action,
            human: h,
            json,
            dry_run,
            max_size,
            max_age,
        } => {
            let plan = plan::maker(&Config::load(&paths)?, &paths)?;
            let cache = Cache::open(&plan.cache_dir)?;
            let size = |b: u64| if h { human_short(b) } else { b.to_string() };
            match action {
                CacheAction::Usage => {
                    let layers = cache.layers()?;
                    let total = Cache::total(&layers);
                    if json {
                        let v = serde_json::json!({"layers": layers, "total": total, "dir": cache.dir()});
                        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    } else {
                        for m in &layers {
                            println!("{}", layer_line(m, &size));
                        }
                        println!(
                            "{:>10}  total ({} layers) in {}",
                            size(total),
                            layers.len(),
                            cache.dir().display()
                        );
                    }
                }
                CacheAction::Clean | CacheAction::Gc => {
                    let removed = match action {
                        CacheAction::Clean => cache.clean(dry_run)?,
                        _ => {
                            if max_size.is_none() && max_age.is_none() {
                                return Err(crate::Error::Usage(
                                    "cache gc needs --max-size and/or --max-age".into(),
                                ));
                            }
                            cache.gc(GcPolicy { max_size, max_age }, dry_run)?
                        }
                    };
                    let verb = if dry_run { "would remove" } else { "removed" };
                    for m in &removed {
                        println!("{verb} {}", layer_line(m, &size));
                    }
                    println!(
                        "{verb} {} layers, {}",
                        removed.len(),
                        size(Cache::total(&removed))
                    );
                }
            }
            Ok(0)
        }
    }
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

/// `virt-maker runners KIND [-v]`.
pub fn runners_text(kind: RunnerKind, verbose: bool) -> String {
    let role = match kind {
        RunnerKind::Steps => Role::Step,
        RunnerKind::Importers => Role::Importer,
        RunnerKind::Exporters => Role::Exporter,
    };
    let mut out = String::new();
    for r in runners::of_role(role) {
        if !verbose {
            out.push_str(&format!("{:<18} {}\n", r.name, r.doc));
            continue;
        }
        out.push_str(&format!("{}\n  {}\n", r.name, r.doc));
        if let Some(why) = r.unsupported {
            out.push_str(&format!("  not supported: {why}\n\n"));
            continue;
        }
        out.push_str("  arguments:\n");
        if r.args.is_empty() {
            out.push_str("    (none)\n");
        }
        for a in r.args {
            out.push_str(&format!(
                "    {:<12} {:<18} {}{}\n",
                a.name,
                a.ty.name(),
                if a.required { "required. " } else { "" },
                a.doc
            ));
        }
        if r.role != Role::Exporter {
            out.push_str("    (and pre_script, post_script: host scripts before/after it, through their #! line)\n");
        }
        if let Some(p) = r.primary {
            out.push_str(&format!("  a single value sets '{p}'\n"));
        }
        out.push_str("  example:\n");
        for l in r.example.lines() {
            out.push_str(&format!("    {l}\n"));
        }
        out.push_str(&format!("  commands: {}\n\n", r.commands.join(", ")));
    }
    out
}
