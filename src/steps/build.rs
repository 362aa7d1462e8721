//! Building a template through the step cache: the import, then the steps as layers on
//! their parents, resuming after the newest cached layer of the chain, then the export.
//! Consecutive steps that are only virt-customize operations are one run and one layer,
//! stored under the last one's key (`group`): their intermediate layers are not kept. One
//! output line per runner, `[ TAG  ] <file>: <message>`, cached runners marked as such.

use super::apply;
use super::group;
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
    /// Told when a step that is not cached starts (a status line on a terminal).
    pub status: &'a dyn Fn(&StepStatus),
}

/// A step that starts: the `number`th of `of` in its spec (the import is the first, the
/// export the last), and what it is ("step 3 (install)", "steps 3..5 (copy, install)").
#[derive(Debug, PartialEq)]
pub struct StepStatus<'s> {
    pub file: &'s str,
    pub number: usize,
    pub of: usize,
    pub what: String,
    /// The step draws its own progress bars on the terminal (a download, a conversion):
    /// a status line would fight them for the line.
    pub draws_bars: bool,
}

impl StepStatus<'_> {
    /// What a status line says: `3/7 step 3 (install)`.
    pub fn text(&self) -> String {
        format!("{}/{} {}", self.number, self.of, self.what)
    }
}

/// Whether a step's runner draws progress bars of its own: an import of a file or URL
/// (download, decompression, conversion) and an export (conversion).
fn draws_bars(step: &Step) -> bool {
    match step.location.as_str() {
        "import" => !matches!(step.runner.as_str(), "virt-builder" | "debootstrap"),
        "export" => true,
        _ => false,
    }
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
        let cached = chain
            .iter()
            .map(|(_, key, _)| match key {
                Some(k) => Ok(Some(self.cache.lookup(k)?.is_some())),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        // As the build: everything up to the newest cached layer is in that layer.
        let newest = cached.iter().rposition(|c| *c == Some(true));
        let start = match newest {
            Some(i) if !opts.force => i + 1,
            _ => 0,
        };
        let steps: Vec<&Step> = chain.iter().map(|(s, _, _)| *s).collect();
        let mut groups = vec![None; chain.len()];
        for run in group::runs(&steps[start..])
            .into_iter()
            .filter(|r| r.len() > 1)
        {
            let members = &steps[start + run.start..start + run.end];
            let span = format!(
                "{}..{}",
                members[0].location.replace(' ', "-"),
                members[members.len() - 1].location.replace(' ', "-")
            );
            for g in &mut groups[start + run.start..start + run.end] {
                *g = Some(span.clone());
            }
        }
        for (i, (step, key, _)) in chain.iter().enumerate() {
            let covered = newest.is_some_and(|n| i <= n);
            let action = match cached[i] {
                _ if covered && !opts.force => "skip",
                None => "unknown",
                _ => "build",
            };
            plan.count(action);
            // A step of a run stored as one layer: the layer that holds its effect (the
            // next one in the cache).
            let holder = (i..chain.len()).find(|&j| cached[j] == Some(true));
            let layer = match holder {
                Some(j) if covered && j != i => {
                    format!(" layer={}", chain[j].1.as_deref().unwrap_or("unknown"))
                }
                _ => String::new(),
            };
            let group = groups[i]
                .as_ref()
                .map(|g| format!(" group={g}"))
                .unwrap_or_default();
            let msg = format!(
                "step={} runner={} key={} cached={} action={action}{layer}{group}: {}",
                step.location.replace(' ', "-"),
                step.runner,
                key.as_deref().unwrap_or("unknown"),
                yes_no(if covered { Some(true) } else { cached[i] }),
                apply::summary(step)
            );
            self.line(tag(step), &display, &msg);
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
        // The newest layer of the chain in the cache (held against removal): every step up
        // to it is in it. Steps of a run stored as one layer have no layer of their own.
        let mut done = 0;
        for (i, (_, key, _)) in chain.iter().enumerate().rev() {
            if self.cache.lookup(key)?.is_some() {
                let lock = self.cache.use_lock(key)?;
                if self.cache.lookup(key)?.is_some() {
                    held.push(lock);
                    done = i + 1;
                    break;
                }
            }
        }
        for (step, key, _) in &chain[..done] {
            self.line(
                tag(step),
                &display,
                &format!("{} (cached)", apply::summary(step)),
            );
            if let Some(m) = self.cache.lookup(key)? {
                if crate::clock::now().saturating_sub(m.last_used) > TOUCH_AFTER {
                    self.cache.touch(key)?;
                }
            }
        }
        let of = chain.len() + usize::from(t.export.is_some());
        let rest: Vec<&Step> = chain[done..].iter().map(|(s, _, _)| *s).collect();
        for run in group::runs(&rest) {
            let members = &chain[done + run.start..done + run.end];
            let steps: Vec<&Step> = members.iter().map(|(s, _, _)| *s).collect();
            (self.status)(&StepStatus {
                file: &display,
                number: done + run.start + 1,
                of,
                what: group::label(&steps),
                draws_bars: steps.iter().any(|s| draws_bars(s)),
            });
            held.push(self.build_run(t, members)?);
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
                    (self.status)(&StepStatus {
                        file: &display,
                        number: of,
                        of,
                        what: format!("export ({})", step.runner),
                        draws_bars: draws_bars(step),
                    });
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

    /// Build one run of the chain (one step, or consecutive virt-customize steps in one
    /// invocation) as one layer under its last step's key, on the layer before it.
    /// Returns the lock that holds the new layer against removal.
    fn build_run(&self, t: &Template, members: &[(&Step, String, Option<String>)]) -> Result<Lock> {
        let display = t.file.display().to_string();
        let (step, key, _) = &members[members.len() - 1];
        let parent = members[0].2.as_deref();
        let steps: Vec<&Step> = members.iter().map(|(s, _, _)| *s).collect();
        if steps.len() > 1 {
            let msg = format!("{}: one virt-customize run", group::span(&steps));
            self.line("file", &display, &msg);
        }
        for s in &steps {
            self.line(tag(s), &display, &apply::summary(s));
        }
        let lock = self.cache.use_lock(key)?;
        if let [_, _, ..] = steps[..] {
            let kinds: Vec<&str> = steps.iter().map(|s| s.runner.as_str()).collect();
            let summaries: Vec<String> = steps.iter().map(|s| apply::summary(s)).collect();
            let location = format!("one of {}", group::label(&steps));
            self.cache.get_or_build(
                key,
                parent,
                &kinds.join("+"),
                &summaries.join("; "),
                &self.runner,
                |tmp| {
                    apply::apply_group(&steps, &t.dir, tmp, &self.runner)
                        .map_err(|e| step_failed(&t.file, &location, e))
                },
            )?;
            return Ok(lock);
        }
        let summary = apply::summary(step);
        self.cache
            .get_or_build(key, parent, &step.runner, &summary, &self.runner, |tmp| {
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
                            let progress = |msg: &str| self.line(tag(step), &display, msg);
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
            })?;
        Ok(lock)
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

/// A runner's output tag: its name, `import` for the importer.
fn tag(step: &Step) -> &str {
    if step.location == "import" {
        "import"
    } else {
        step.runner.as_str()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake virt-builder (a 16M qcow2 at --output) and virt-customize (its arguments,
    /// one a line, then `--`, appended to vc.log), first on the runner's PATH.
    fn fake_tools(dir: &Path) -> Runner {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let tools = [
            (
                "virt-builder",
                "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --output ] && out=$2; shift; done\nqemu-img create -q -f qcow2 \"$out\" 16M\n".to_string(),
            ),
            (
                "virt-customize",
                format!(
                    "#!/bin/sh\n{{ for a in \"$@\"; do printf '%s\\n' \"$a\"; done; echo --; }} >> {}/vc.log\n",
                    dir.display()
                ),
            ),
        ];
        for (name, text) in tools {
            let p = bin.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Runner::default().with_env("PATH", path)
    }

    /// virt-customize's runs so far, each its arguments.
    fn vc_runs(dir: &Path) -> Vec<Vec<String>> {
        std::fs::read_to_string(dir.join("vc.log"))
            .unwrap_or_default()
            .split("--\n")
            .filter(|r| !r.is_empty())
            .map(|r| r.lines().map(str::to_string).collect())
            .collect()
    }

    const T: &str = "spec:\n  import:\n    virt-builder: debian-12\n  steps:\n    - run: echo one\n    - hostname: h1\n    - copy: {dest: /etc/motd, content: hi}\n    - rootpass: random\n    - hostname: h2\n";

    #[test]
    fn a_run_of_steps_is_one_layer_stored_under_the_last_steps_key() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let runner = fake_tools(dir);
        let file = dir.join("t.yml");
        std::fs::write(&file, T).unwrap();
        let lines = std::sync::Mutex::new(vec![]);
        let out = |l: &str| lines.lock().unwrap().push(l.to_string());
        let started = std::sync::Mutex::new(vec![]);
        let status = |s: &StepStatus| started.lock().unwrap().push(s.text());
        let builder = Builder {
            cache: Cache::open(&dir.join("cache")).unwrap(),
            runner,
            out: &out,
            status: &status,
        };
        let load = || Template::load_with(&file, &[], &dir.join("cache"), Downloads::Fetch);
        let t = load().unwrap();
        let built = builder.build(&t, &Options::default()).unwrap();
        // A status line for each run as it starts: the import, then the two runs.
        assert_eq!(
            *started.lock().unwrap(),
            [
                "1/6 import (virt-builder)",
                "2/6 steps 1..4 (run, hostname, copy, rootpass)",
                "6/6 step 5 (hostname)"
            ]
        );
        // Steps 1..4 in one run (rootpass ends it: virt-customize sets passwords last),
        // step 5 in another.
        let runs = vc_runs(dir);
        assert_eq!(runs.len(), 2, "{runs:?}");
        let ops = |r: &[String]| -> Vec<String> {
            r.iter().filter(|a| a.starts_with("--")).cloned().collect()
        };
        assert_eq!(
            ops(&runs[0]),
            [
                "--format",
                "--run",
                "--hostname",
                "--upload",
                "--root-password"
            ]
        );
        assert_eq!(ops(&runs[1]), ["--format", "--hostname"]);
        assert_eq!(runs[1].last().unwrap(), "h2");
        // The layers: the import, the run's under step 4's key (on the import), step 5's.
        let chain = builder.chain(&t).unwrap();
        let keys: Vec<&str> = chain.iter().map(|(_, k, _)| k.as_str()).collect();
        let mut stored: Vec<String> = builder
            .cache
            .layers()
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        stored.sort();
        let mut want = vec![
            keys[0].to_string(),
            keys[4].to_string(),
            keys[5].to_string(),
        ];
        want.sort();
        assert_eq!(stored, want);
        let m = builder.cache.lookup(keys[4]).unwrap().unwrap();
        assert_eq!(m.parent.as_deref(), Some(keys[0]));
        assert_eq!(m.step, "run+hostname+copy+rootpass");
        assert_eq!(built.key, keys[5]);
        // Unchanged: every step is cached, nothing runs.
        lines.lock().unwrap().clear();
        builder
            .build(&load().unwrap(), &Options::default())
            .unwrap();
        assert_eq!(vc_runs(dir).len(), 2);
        let cached = lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with("(cached)"))
            .count();
        assert_eq!(cached, 6, "{:?}", lines.lock().unwrap());
        assert_eq!(
            started.lock().unwrap().len(),
            3,
            "nothing starts when cached"
        );
        // Step 2 changed: the run is rebuilt from the import (its steps 1..3 have no
        // layers of their own), then step 5 on it.
        std::fs::write(&file, T.replace("h1", "h1b")).unwrap();
        builder
            .build(&load().unwrap(), &Options::default())
            .unwrap();
        let runs = vc_runs(dir);
        assert_eq!(runs.len(), 4, "{runs:?}");
        assert_eq!(ops(&runs[2]), ops(&runs[0]));
        assert!(runs[2].contains(&"h1b".to_string()), "{:?}", runs[2]);
        assert_eq!(ops(&runs[3]), ["--format", "--hostname"]);
        // Step 5 changed: only it runs, on the run's layer.
        std::fs::write(&file, T.replace("h1", "h1b").replace("h2", "h2b")).unwrap();
        builder
            .build(&load().unwrap(), &Options::default())
            .unwrap();
        let runs = vc_runs(dir);
        assert_eq!(runs.len(), 5, "{runs:?}");
        assert_eq!(ops(&runs[4]), ["--format", "--hostname"]);
    }
}
