//! The `virt-maker` command line (the original tool's commands and flags), dispatched to
//! one file per command. The binary only parses and maps errors to exit codes.

use crate::clock::parse_age;
use crate::error::Result;
use crate::paths::Paths;
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

/// The man page: the command line, exit codes, environment and files.
pub fn man_page() -> String {
    use crate::manpage::{render, Section, PATH_VARIABLES};
    use clap::CommandFactory;
    let mut environment = vec![
        (
            "VERBOSE, VERBOSITY",
            "The verbosity instead of the -v count, as the original's (VERBOSE first).",
        ),
        (
            "LIBGUESTFS_BACKEND",
            "Set to direct (with force_tcg) by virt-maker itself for virt-type = qemu.",
        ),
    ];
    environment.extend_from_slice(PATH_VARIABLES);
    render(
        Cli::command(),
        &[
            Section {
                title: "EXIT STATUS",
                items: &[
                    ("0", "Success."),
                    ("1", "A step or tool failed (its output is shown)."),
                    (
                        "2",
                        "A template error (file and step named), bad usage or configuration.",
                    ),
                    ("3", "A cache layer is in use by another build."),
                    ("4", "A tool is missing."),
                    ("130", "Interrupted (Ctrl-C); nothing half-written is left."),
                ],
            },
            Section {
                title: "ENVIRONMENT",
                items: &environment,
            },
            Section {
                title: "FILES",
                items: &[
                    (
                        "/etc/virt-up/settings.cfg, ~/.config/virt-up/settings.cfg",
                        "[common] cache-dir and virt-type, shared with virt-up.",
                    ),
                    (
                        "~/.cache/virt-up/layers",
                        "The step cache: one qcow2 overlay and one JSON manifest per layer.",
                    ),
                ],
            },
        ],
    )
}

pub fn run(cli: Cli, paths: Paths) -> Result<i32> {
    match cli.command {
        Command::Runners { kind } => {
            crate::out!("{}", super::runners::text(kind, cli.verbose > 0));
            Ok(0)
        }
        Command::Build {
            files,
            params,
            force,
            force_export,
            dry_run,
        } => super::build::run(
            &paths,
            &files,
            &params,
            super::build::Flags {
                force,
                force_export,
                dry_run,
                verbose: cli.verbose,
            },
        ),
        Command::Cache {
            action,
            human,
            json,
            dry_run,
            max_size,
            max_age,
        } => super::cache::run(
            &paths,
            action,
            super::cache::Flags {
                human,
                json,
                dry_run,
                max_size,
                max_age,
            },
        ),
    }
}
