//! Building a template through the step cache: the import, then each step as a layer on
//! its parent, resuming from the deepest cached layer, then the export. One output line
//! per runner, `[ TAG  ] <file>: <message>`, cached runners marked as such.

use super::apply;
use super::template::{Step, Template};
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::lock::Lock;
use crate::runner::Runner;
use crate::stepcache::{layer_key, Cache, KeyInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

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
    pub file: PathBuf,
    /// The final layer's key and file.
    pub key: String,
    pub layer: PathBuf,
    pub export: Option<PathBuf>,
    /// Locations ("import", "step 2", "export") of the runners that ran (not cached).
    pub ran: Vec<String>,
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
            self.plan(f, opts, &mut order, 0)?;
        }
        order
            .iter()
            .map(|t| self.build(t, opts))
            .collect::<Result<Vec<_>>>()
    }

    fn plan(
        &self,
        file: &Path,
        opts: &Options,
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
        let t = Template::load(file, &opts.params, self.cache.dir())?;
        for b in &t.before {
            self.plan(b, opts, order, depth + 1)?;
        }
        let after = t.after.clone();
        if !order.iter().any(|o| o.file == t.file) {
            order.push(t);
        }
        for a in &after {
            self.plan(a, opts, order, depth + 1)?;
        }
        Ok(())
    }

    /// The chain of (step, key, parent key) for a template.
    pub fn chain<'t>(&self, t: &'t Template) -> Result<Vec<(&'t Step, String, Option<String>)>> {
        let mut out = vec![];
        let mut parent: Option<String> = None;
        for step in std::iter::once(&t.import).chain(t.steps.iter()) {
            let mut files = apply::input_files(step, &t.dir);
            if step.runner == "download" && !step.args.contains_key("checksum") {
                // No checksum: the downloaded content itself is the key's input.
                let url = step.args.get("url").and_then(Value::as_str).unwrap_or("");
                let mut log = |m: String| {
                    if self.runner.shows_output() {
                        eprintln!("{m}");
                    }
                };
                files.push(super::fetch::local_file(
                    url,
                    &t.dir,
                    &self.downloads(),
                    &mut log,
                )?);
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
            out.push((step, key.clone(), parent.replace(key)));
        }
        Ok(out)
    }

    fn downloads(&self) -> PathBuf {
        self.cache.dir().join("downloads")
    }

    pub fn build(&self, t: &Template, opts: &Options) -> Result<Built> {
        let display = t.file.display().to_string();
        self.line("file", &display, "Starting");
        let chain = self.chain(t)?;
        if opts.force {
            let keys: Vec<String> = chain.iter().map(|(_, k, _)| k.clone()).collect();
            self.cache.remove_with_descendants(&keys)?;
        }
        let mut ran = vec![];
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
                if crate::stepcache::now().saturating_sub(m.last_used) > TOUCH_AFTER {
                    self.cache.touch(key)?;
                }
                continue;
            }
            self.line(tag, &display, &summary);
            let (_, built) = self.cache.get_or_build(
                key,
                parent.as_deref(),
                &step.runner,
                &summary,
                &self.runner,
                |tmp| {
                    if step.location == "import" {
                        let progress = |msg: &str| self.line(tag, &display, msg);
                        apply::import(step, &t.dir, tmp, &self.runner, self.cache.dir(), &progress)
                    } else {
                        apply::apply_step(step, &t.dir, tmp, &self.runner)
                    }
                    .map_err(|e| {
                        step_failed(&t.file, &format!("{} ({})", step.location, step.runner), e)
                    })
                },
            )?;
            if built {
                ran.push(step.location.clone());
            }
        }
        let (_, key, _) = chain.last().expect("an import at least");
        let layer = self.cache.layer_path(key);
        let mut export = None;
        if let Some(step) = &t.export {
            let summary = apply::summary(step);
            let path = self.exported(step, t, key);
            match path.filter(|_| !opts.force_export) {
                Some(p) => {
                    self.line("export", &display, &format!("{summary} (cached)"));
                    export = Some(p);
                }
                None => {
                    self.line("export", &display, &summary);
                    let out = apply::export(step, &t.dir, &layer, &self.runner).map_err(|e| {
                        step_failed(&t.file, &format!("export ({})", step.runner), e)
                    })?;
                    self.record_export(&out, key)?;
                    ran.push("export".into());
                    export = Some(out);
                }
            }
        }
        drop(held);
        Ok(Built {
            file: t.file.clone(),
            key: key.clone(),
            layer,
            export,
            ran,
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
        let compress = step.args.get("compress").and_then(Value::as_str);
        let out = apply::export_path(&t.dir, step.args.get("path")?.as_str()?, compress);
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
