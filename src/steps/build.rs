//! Building a template through the step cache: the import, then each step as a layer on
//! its parent, resuming from the deepest cached layer, then the export. One output line
//! per runner, `[ TAG  ] <file>: <message>`, cached runners marked as such.

use super::apply;
use super::template::{Downloads, Step, Template};
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::lock::Lock;
use crate::runner::Runner;
use crate::stepcache::{layer_key, Cache, KeyInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What a dry run found for one template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub cached: usize,
    pub build: usize,
    /// Runners whose key depends on a download not fetched yet.
    pub unknown: usize,
    /// Some(whether the export would run) when there is one.
    pub export: Option<bool>,
}

impl Plan {
    fn count(&mut self, action: &str) {
        match action {
            "skip" => self.cached += 1,
            "build" => self.build += 1,
            _ => self.unknown += 1,
        }
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let export = match self.export {
            None => "none",
            Some(true) => "export",
            Some(false) => "skip",
        };
        write!(
            f,
            "runners={} cached={} build={} unknown={} export={export}",
            self.cached + self.build + self.unknown,
            self.cached,
            self.build,
            self.unknown
        )
    }
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

/// (step, its key if it can be known without fetching anything, its parent's key).
type ChainKeys<'t> = Vec<(&'t Step, Option<String>, Option<String>)>;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub force: bool,
    pub force_export: bool,
    pub params: Vec<(String, Value)>,
}

pub struct Builder<'a> {
    pub cache: Cache,
    pub runner: Runner,
    /// Where the output lines go.
    pub out: &'a dyn Fn(&str),
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The final layer's key and file.
    pub key: String,
    pub layer: PathBuf,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct ExportRecord {
    key: String,
    path: PathBuf,
    size: u64,
    modified: u64,
}

fn modified(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    let t = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos() as u64;
    Some((m.len(), t))
}

/// Only rewrite a manifest's last-used time when it is older than this (seconds): a
/// rebuild with nothing changed then writes nothing.
const TOUCH_AFTER: u64 = 3600;

impl Builder<'_> {
    fn line(&self, runner: &str, file: &str, msg: &str) {
        (self.out)(&format!("[{}] {file}: {msg}", super::runners::tag(runner)));
    }

    /// Load and validate every template (with its before/after templates) first, so
    /// nothing is built when any of them is invalid; then build them in order.
    pub fn build_files(&self, files: &[PathBuf], opts: &Options) -> Result<Vec<Built>> {
        let mut order = vec![];
        for f in files {
            self.plan(f, opts, Downloads::Fetch, &mut order, 0)?;
        }
        let mut built = vec![];
        for t in &order {
            if t.import.is_none() {
                // Only names others (before/after), which are in `order` themselves.
                self.line("file", &t.file.display().to_string(), "Nothing to build");
                continue;
            }
            built.push(self.build(t, opts)?);
        }
        Ok(built)
    }

    fn plan(
        &self,
        file: &Path,
        opts: &Options,
        downloads: Downloads,
        order: &mut Vec<Template>,
        depth: usize,
    ) -> Result<()> {
        if depth > 16 {
            return Err(Error::Template {
                file: file.to_path_buf(),
                location: String::new(),
                message: "'before'/'after' nest too deep (a cycle?)".into(),
            });
        }
        let t = Template::load_with(file, &opts.params, self.cache.dir(), downloads)?;
        for b in &t.before {
            self.plan(b, opts, downloads, order, depth + 1)?;
        }
        let after = t.after.clone();
        if !order.iter().any(|o| o.file == t.file) {
            order.push(t);
        }
        for a in &after {
            self.plan(a, opts, downloads, order, depth + 1)?;
        }
        Ok(())
    }

    /// The chain of (step, key, parent key) for a template. A download without a
    /// checksum is fetched here: its content is part of its key.
    pub fn chain<'t>(&self, t: &'t Template) -> Result<Vec<(&'t Step, String, Option<String>)>> {
        let mut log = |m: String| {
            if self.runner.shows_output() {
                eprintln!("{m}");
            }
        };
        let mut fetch = |url: &str| {
            super::fetch::local_file(url, &t.dir, &self.downloads(), &mut log).map(Some)
        };
        let keys = self.keys(t, &mut fetch)?;
        Ok(keys
            .into_iter()
            .map(|(step, key, parent)| (step, key.expect("every key known"), parent))
            .collect())
    }

    /// Every runner's key, computed with `content` giving the local file of a download
    /// without a checksum (None: unknown, and so are the keys after it).
    fn keys<'t>(
        &self,
        t: &'t Template,
        content: &mut dyn FnMut(&str) -> Result<Option<PathBuf>>,
    ) -> Result<ChainKeys<'t>> {
        let mut out = vec![];
        let mut parent: Option<String> = None;
        let mut known = true;
        for step in t.import.iter().chain(t.steps.iter()) {
            let mut files = apply::input_files(step, &t.dir);
            if step.runner == "download" && !step.args.contains_key("checksum") {
                // No checksum: the downloaded content itself is the key's input.
                let url = step.args.get("url").and_then(Value::as_str).unwrap_or("");
                match content(url)? {
                    Some(f) => files.push(f),
                    None => known = false,
                }
            }
            if !known {
                out.push((step, None, parent.clone()));
                continue;
            }
            let template_error = |e: Error| Error::Template {
                file: t.file.clone(),
                location: format!("{}: ", step.location),
                message: e.to_string(),
            };
            let args = apply::key_args(step).map_err(template_error)?;
            let key = layer_key(&KeyInput {
                parent: parent.as_deref(),
                kind: &step.runner,
                args: &args,
                files: &files,
            })
            .map_err(template_error)?;
            out.push((step, Some(key.clone()), parent.replace(key)));
        }
        Ok(out)
    }

    /// A dry run: load, render and validate every template (with its before/after
    /// templates) and print each one's plan: a line per runner with its key and whether
    /// the cache has it, the export, and a summary. Runs no tool, fetches nothing,
    /// writes nothing (the cache is only looked into). Returns the templates' plans.
    pub fn dry_run(&self, files: &[PathBuf], opts: &Options) -> Result<Vec<Plan>> {
        let mut order = vec![];
        for f in files {
            self.plan(f, opts, Downloads::Skip, &mut order, 0)?;
        }
        order.iter().map(|t| self.dry_run_one(t, opts)).collect()
    }

    fn dry_run_one(&self, t: &Template, opts: &Options) -> Result<Plan> {
        let display = t.file.display().to_string();
        let mut plan = Plan::default();
        if t.import.is_none() {
            self.line("file", &display, "Nothing to build (before/after only)");
            return Ok(plan);
        }
        self.line("file", &display, "Dry run");
        // Only a download already in the downloads directory is hashed; nothing is fetched.
        let mut content = |url: &str| -> Result<Option<PathBuf>> {
            match super::fetch::location(url, &t.dir) {
                crate::image::source::Location::Path(p) if p.is_file() => Ok(Some(p)),
                crate::image::source::Location::Path(p) => Err(Error::Template {
                    file: t.file.clone(),
                    location: "import (download): key 'url': ".into(),
                    message: format!("{url}: no such file ({})", p.display()),
                }),
                crate::image::source::Location::Url(u) => {
                    let f = crate::image::download_cache::path_for(&self.downloads(), &u);
                    Ok(f.is_file().then_some(f))
                }
            }
        };
        let chain = self.keys(t, &mut content)?;
        for (step, key, _) in &chain {
            let tag = if step.location == "import" {
                "import"
            } else {
                step.runner.as_str()
            };
            let cached = match key {
                Some(k) => Some(self.cache.lookup(k)?.is_some()),
                None => None,
            };
            let action = match cached {
                Some(true) if !opts.force => "skip",
                None => "unknown",
                _ => "build",
            };
            plan.count(action);
            let msg = format!(
                "step={} runner={} key={} cached={} action={action}: {}",
                step.location.replace(' ', "-"),
                step.runner,
                key.as_deref().unwrap_or("unknown"),
                yes_no(cached),
                apply::summary(step)
            );
            self.line(tag, &display, &msg);
        }
        let last = chain.last().and_then(|(_, k, _)| k.clone());
        if let Some(step) = &t.export {
            let cached = last.as_deref().map(|k| self.exported(step, t, k).is_some());
            let action = match cached {
                Some(true) if !opts.force_export && plan.build == 0 => "skip",
                _ => "export",
            };
            plan.export = Some(action == "export");
            let path = step.args.get("path").and_then(Value::as_str).unwrap_or("");
            let msg = format!(
                "step=export runner={} key={} cached={} action={action} path={}: {}",
                step.runner,
                last.as_deref().unwrap_or("unknown"),
                yes_no(cached),
                apply::export_path(&t.dir, path).display(),
                apply::summary(step)
            );
            self.line("export", &display, &msg);
        }
        self.line("plan", &display, &plan.to_string());
        Ok(plan)
    }

    fn downloads(&self) -> PathBuf {
        self.cache.dir().join("downloads")
    }

    pub fn build(&self, t: &Template, opts: &Options) -> Result<Built> {
        let display = t.file.display().to_string();
        if t.import.is_none() {
            return Err(Error::Template {
                file: t.file.clone(),
                location: "spec: ".into(),
                message: "'import' is required to build an image".into(),
            });
        }
        self.line("file", &display, "Starting");
        let chain = self.chain(t)?;
        if opts.force {
            let keys: Vec<String> = chain.iter().map(|(_, k, _)| k.clone()).collect();
            self.cache.remove_with_descendants(&keys)?;
        }
        let mut held: Vec<Lock> = vec![];
        for (step, key, parent) in &chain {
            let tag = if step.location == "import" {
                "import"
            } else {
                step.runner.as_str()
            };
            let summary = apply::summary(step);
            held.push(self.cache.use_lock(key)?);
            if let Some(m) = self.cache.lookup(key)? {
                self.line(tag, &display, &format!("{summary} (cached)"));
                if crate::clock::now().saturating_sub(m.last_used) > TOUCH_AFTER {
                    self.cache.touch(key)?;
                }
                continue;
            }
            self.line(tag, &display, &summary);
            self.cache.get_or_build(
                key,
                parent.as_deref(),
                &step.runner,
                &summary,
                &self.runner,
                |tmp| {
                    // The original's pre_script/post_script, on every runner.
                    let hook = |name: &str| match step.args.get(name).and_then(Value::as_str) {
                        Some(text) => {
                            let ctx = format!("{} {} {name}", step.location, step.runner);
                            apply::host_script(&self.runner, name, text, tmp, &ctx)
                        }
                        None => Ok(()),
                    };
                    hook("pre_script")
                        .and_then(|_| {
                            if step.location == "import" {
                                let progress = |msg: &str| self.line(tag, &display, msg);
                                let cache = self.cache.dir();
                                apply::import(step, &t.dir, tmp, &self.runner, cache, &progress)
                            } else {
                                apply::apply_step(step, &t.dir, tmp, &self.runner)
                            }
                        })
                        .and_then(|_| hook("post_script"))
                        .map_err(|e| {
                            step_failed(&t.file, &format!("{} ({})", step.location, step.runner), e)
                        })
                },
            )?;
        }
        let (_, key, _) = chain.last().expect("an import at least");
        let layer = self.cache.layer_path(key);
        if let Some(step) = &t.export {
            let summary = apply::summary(step);
            let path = self.exported(step, t, key);
            match path.filter(|_| !opts.force_export) {
                Some(_) => self.line("export", &display, &format!("{summary} (cached)")),
                None => {
                    self.line("export", &display, &summary);
                    let out = apply::export(step, &t.dir, &layer, &self.runner).map_err(|e| {
                        step_failed(&t.file, &format!("export ({})", step.runner), e)
                    })?;
                    self.record_export(&out, key)?;
                }
            }
        }
        drop(held);
        Ok(Built {
            key: key.clone(),
            layer,
        })
    }

    fn export_record_path(&self, out: &Path) -> PathBuf {
        let abs = crate::fsutil::absolute(out);
        self.cache
            .dir()
            .join("exports")
            .join(format!("{}.json", sha256_hex(&abs.to_string_lossy())))
    }

    /// The export's file if it is there, unchanged since it was written from `key`.
    fn exported(&self, step: &Step, t: &Template, key: &str) -> Option<PathBuf> {
        let out = apply::export_path(&t.dir, step.args.get("path")?.as_str()?);
        let record: ExportRecord =
            serde_json::from_slice(&std::fs::read(self.export_record_path(&out)).ok()?).ok()?;
        let (size, modified) = modified(&out)?;
        (record.key == key && record.size == size && record.modified == modified).then_some(out)
    }

    fn record_export(&self, out: &Path, key: &str) -> Result<()> {
        let (size, modified) = modified(out).unwrap_or_default();
        let rec = ExportRecord {
            key: key.to_string(),
            path: out.to_path_buf(),
            size,
            modified,
        };
        let path = self.export_record_path(out);
        crate::fsutil::private_dir(path.parent().expect("exports dir"))?;
        Ok(write_atomic(
            &path,
            &serde_json::to_vec_pretty(&rec)?,
            0o644,
        )?)
    }
}

/// A runner that failed while building (exit code 1, unlike an invalid template's 2). A
/// Ctrl-C stays what it is (exit code 130).
fn step_failed(file: &Path, location: &str, e: Error) -> Error {
    if e.is_interrupted() {
        return e;
    }
    Error::StepFailed {
        file: file.to_path_buf(),
        location: location.to_string(),
        source: Box::new(e),
    }
}
