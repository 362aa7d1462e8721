//! The step cache: every completed build step is a layer, a qcow2 overlay on its parent
//! layer, named by its key (see `key`), with a JSON manifest beside it.
//!
//! Layout under the cache directory (never found by walking up from the working directory):
//!
//! ```text
//! layers/<key>.qcow2   the layer (backing file: layers/<parent>.qcow2)
//! layers/<key>.json    its manifest
//! locks/<key>.build    held (exclusive) while the layer is being built
//! locks/<key>.use      held shared by builds standing on the layer; exclusive by removal
//! pins/<name>.json     a layer something outside the cache depends on (a template disk)
//! ```
//!
//! A layer is built into `layers/.<key>.qcow2.<pid>.tmp` and renamed into place only when
//! its step succeeded: the rename is the commit point, so a killed build never leaves a
//! layer that looks complete. Two builds of the same chain serialize on each layer's build
//! lock and build it once; different chains do not share locks and run in parallel.

pub mod key;

use crate::clock::now;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{remove_if_exists, write_atomic};
use crate::lock::Lock;
use crate::runner::Runner;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub use key::{layer_key, KeyInput};

/// The manifest format version.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub key: String,
    pub parent: Option<String>,
    /// The step's kind (runner name).
    pub step: String,
    /// A one-line description of the step, for `cache usage`.
    pub summary: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Bytes the layer's file takes on disk.
    pub size: u64,
    pub last_used: u64,
}

/// A pin: `path` (a template disk, an instance) depends on `key`; it stops counting once
/// `path` is gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pin {
    pub key: String,
    pub path: PathBuf,
}

/// What garbage collection may remove.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcPolicy {
    /// Remove least recently used layers until the cache is at most this many bytes.
    pub max_size: Option<u64>,
    /// Remove layers not used for longer than this many seconds.
    pub max_age: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Open (creating if needed) the cache in `dir`.
    pub fn open(dir: &Path) -> Result<Cache> {
        for sub in ["layers", "locks", "pins"] {
            crate::fsutil::private_dir(&dir.join(sub))?;
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
    }

    /// The cache in `dir` as it is, creating nothing (for a dry run: lookups only; a
    /// missing directory is an empty cache).
    pub fn at(dir: &Path) -> Cache {
        Cache {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn layer_path(&self, key: &str) -> PathBuf {
        self.dir.join("layers").join(format!("{key}.qcow2"))
    }

    fn manifest_path(&self, key: &str) -> PathBuf {
        self.dir.join("layers").join(format!("{key}.json"))
    }

    fn lock_path(&self, key: &str, what: &str) -> PathBuf {
        self.dir.join("locks").join(format!("{key}.{what}"))
    }

    /// The manifest of a complete layer (its file renamed into place), if there is one.
    pub fn lookup(&self, key: &str) -> Result<Option<Manifest>> {
        if !self.layer_path(key).exists() {
            return Ok(None);
        }
        let path = self.manifest_path(key);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice::<Manifest>(&bytes)
                .ok()
                .filter(|m| m.key == key && m.format == MANIFEST_FORMAT)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Record that a layer was used now (for least-recently-used collection).
    pub fn touch(&self, key: &str) -> Result<()> {
        if let Some(mut m) = self.lookup(key)? {
            m.last_used = now();
            self.write_manifest(&m)?;
        }
        Ok(())
    }

    fn write_manifest(&self, m: &Manifest) -> Result<()> {
        let text = serde_json::to_vec_pretty(m)?;
        Ok(write_atomic(&self.manifest_path(&m.key), &text, 0o644)?)
    }

    /// Hold the layer against removal while a build stands on it (shared).
    pub fn use_lock(&self, key: &str) -> Result<Lock> {
        Ok(Lock::shared(&self.lock_path(key, "use"))?)
    }

    /// The layer `key` on top of `parent` (None: a first layer, an import): returned from
    /// the cache if it is there; otherwise built by `build`, which gets the temporary
    /// file to write (already an overlay on `parent` when there is one). Returns the
    /// manifest and whether it was built now.
    pub fn get_or_build(
        &self,
        key: &str,
        parent: Option<&str>,
        step: &str,
        summary: &str,
        runner: &Runner,
        build: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<(Manifest, bool)> {
        if let Some(m) = self.lookup(key)? {
            return Ok((m, false));
        }
        let lock_path = self.lock_path(key, "build");
        let lock = Lock::exclusive(&lock_path)?;
        // Someone else may have built it while we waited.
        if let Some(m) = self.lookup(key)? {
            return Ok((m, false));
        }
        let tmp = self
            .dir
            .join("layers")
            .join(format!(".{key}.qcow2.{}.tmp", std::process::id()));
        remove_if_exists(&tmp)?;
        let result = (|| {
            if let Some(parent) = parent {
                let backing = self.layer_path(parent);
                if !backing.exists() {
                    return Err(Error::StepCache(format!(
                        "step cache: parent layer {parent} of {key} is missing"
                    )));
                }
                runner
                    .tool("qemu-img")
                    .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
                    .args([backing.as_os_str(), tmp.as_os_str()])
                    .context("creating a cache layer")
                    .run()?;
            }
            build(&tmp)?;
            if !tmp.exists() {
                return Err(Error::StepCache(format!("step {step} produced no image")));
            }
            let size = crate::fsutil::allocated_bytes(&tmp).unwrap_or(0);
            let t = now();
            let m = Manifest {
                format: MANIFEST_FORMAT,
                key: key.to_string(),
                parent: parent.map(str::to_string),
                step: step.to_string(),
                summary: summary.to_string(),
                created: t,
                size,
                last_used: t,
            };
            self.write_manifest(&m)?;
            // The commit point.
            std::fs::rename(&tmp, self.layer_path(key)).at(self.layer_path(key))?;
            Ok(m)
        })();
        if result.is_err() {
            let _ = remove_if_exists(&tmp);
        }
        drop(lock);
        result.map(|m| (m, true))
    }

    /// Every complete layer's manifest, sorted by key.
    pub fn layers(&self) -> Result<Vec<Manifest>> {
        let mut out = vec![];
        for (_, name) in named_entries(&self.dir.join("layers"))? {
            if let Some(key) = name.strip_suffix(".qcow2") {
                if !name.starts_with('.') {
                    if let Some(m) = self.lookup(key)? {
                        out.push(m);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Total bytes of the layers.
    pub fn total(layers: &[Manifest]) -> u64 {
        layers.iter().map(|m| m.size).sum()
    }

    /// Record that `path` depends on layer `key` (under the pin's `name`).
    pub fn pin(&self, name: &str, key: &str, path: &Path) -> Result<()> {
        let pin = Pin {
            key: key.to_string(),
            path: path.to_path_buf(),
        };
        let text = serde_json::to_vec_pretty(&pin)?;
        let file = self
            .dir
            .join("pins")
            .join(format!("{}.json", crate::digest::sha256_hex(name)));
        Ok(write_atomic(&file, &text, 0o644)?)
    }

    /// Layers that must stay: pinned layers whose dependent still exists, layers a build
    /// stands on or is building, and all their ancestors.
    pub fn in_use(&self, layers: &[Manifest]) -> Result<HashSet<String>> {
        let by_key: HashMap<&str, &Manifest> = layers.iter().map(|m| (m.key.as_str(), m)).collect();
        let mut roots = vec![];
        let pins = self.dir.join("pins");
        for entry in std::fs::read_dir(&pins).at(&pins)? {
            let path = entry.at(&pins)?.path();
            if let Some(pin) = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Pin>(&b).ok())
            {
                if pin.path.exists() {
                    roots.push(pin.key);
                } else {
                    let _ = remove_if_exists(&path);
                }
            }
        }
        for m in layers {
            if self.is_locked(&m.key, "use")? {
                roots.push(m.key.clone());
            }
        }
        let mut keep = HashSet::new();
        for root in roots {
            let mut cur = Some(root);
            while let Some(k) = cur {
                if !keep.insert(k.clone()) {
                    break;
                }
                cur = by_key.get(k.as_str()).and_then(|m| m.parent.clone());
            }
        }
        Ok(keep)
    }

    fn is_locked(&self, key: &str, what: &str) -> Result<bool> {
        let path = self.lock_path(key, what);
        if !path.exists() {
            return Ok(false);
        }
        Ok(Lock::try_exclusive(&path)?.is_none())
    }

    /// Remove one layer, unless a build holds it. Returns whether it was removed.
    fn remove_layer(&self, key: &str) -> Result<bool> {
        let path = self.lock_path(key, "use");
        let Some(_held) = Lock::try_exclusive(&path)? else {
            return Ok(false);
        };
        // The layer file first: without it the manifest no longer describes a layer.
        remove_if_exists(&self.layer_path(key))?;
        remove_if_exists(&self.manifest_path(key))?;
        remove_if_exists(&self.lock_path(key, "build"))?;
        remove_if_exists(&path)?;
        Ok(true)
    }

    /// Layers to remove under `policy`, least recently used first, leaves before their
    /// parents, never one in use. With `dry_run` nothing is removed.
    pub fn gc(&self, policy: GcPolicy, dry_run: bool) -> Result<Vec<Manifest>> {
        let layers = self.layers()?;
        let keep = self.in_use(&layers)?;
        Ok(plan_gc(&layers, &keep, policy, now())
            .into_iter()
            .filter(|m| dry_run || self.remove_layer(&m.key).unwrap_or(false))
            .collect())
    }

    /// Remove `keys` and every layer built on them (for a forced rebuild); a layer in use
    /// (pinned or held by a build) is an error.
    pub fn remove_with_descendants(&self, keys: &[String]) -> Result<()> {
        let layers = self.layers()?;
        let mut doomed: HashSet<String> = keys.iter().cloned().collect();
        loop {
            let before = doomed.len();
            for m in &layers {
                if m.parent.as_ref().is_some_and(|p| doomed.contains(p)) {
                    doomed.insert(m.key.clone());
                }
            }
            if doomed.len() == before {
                break;
            }
        }
        let keep = self.in_use(&layers)?;
        if let Some(k) = doomed
            .iter()
            .find(|k| keep.contains(*k) && self.lookup(k).ok().flatten().is_some())
        {
            return Err(Error::LayerInUse { key: k.clone() });
        }
        // Children before parents.
        let mut order: Vec<&Manifest> = layers.iter().filter(|m| doomed.contains(&m.key)).collect();
        let depth = |m: &Manifest| {
            let mut d = 0;
            let mut cur = m.parent.clone();
            while let Some(p) = cur {
                d += 1;
                cur = layers
                    .iter()
                    .find(|l| l.key == p)
                    .and_then(|l| l.parent.clone());
            }
            d
        };
        order.sort_by_key(|m| std::cmp::Reverse(depth(m)));
        for m in order {
            self.remove_layer(&m.key)?;
        }
        Ok(())
    }

    /// Remove every layer not in use, and leftovers of killed builds.
    pub fn clean(&self, dry_run: bool) -> Result<Vec<Manifest>> {
        let removed = self.gc(
            GcPolicy {
                max_size: Some(0),
                max_age: None,
            },
            dry_run,
        )?;
        if !dry_run {
            self.remove_stale_temporaries()?;
        }
        Ok(removed)
    }

    /// Temporary layer files whose builder is gone (its build lock is free), and lock
    /// files of layers that do not exist and that nobody holds.
    fn remove_stale_temporaries(&self) -> Result<()> {
        for (path, name) in named_entries(&self.dir.join("locks"))? {
            if let Some((key, what)) = name.rsplit_once('.') {
                if !self.layer_path(key).exists() {
                    // Held while the file is removed: nobody takes it meanwhile.
                    let held = Lock::try_exclusive(&path)?;
                    if held.is_some() && (what == "use" || what == "build") {
                        remove_if_exists(&path)?;
                    }
                }
            }
        }
        for (path, name) in named_entries(&self.dir.join("layers"))? {
            if let Some(rest) = name.strip_prefix('.').filter(|_| name.ends_with(".tmp")) {
                let key = rest.split('.').next().unwrap_or("");
                if !self.is_locked(key, "build")? {
                    remove_if_exists(&path)?;
                }
            }
        }
        Ok(())
    }
}

/// The entries of `dir` with their file names (lossy: ours are ASCII).
fn named_entries(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push((entry.path(), name));
    }
    Ok(out)
}

/// The pure part of garbage collection: which layers go, in order.
pub fn plan_gc(
    layers: &[Manifest],
    keep: &HashSet<String>,
    policy: GcPolicy,
    now: u64,
) -> Vec<Manifest> {
    let mut alive: Vec<&Manifest> = layers.iter().collect();
    let mut total: u64 = Cache::total(layers);
    let mut removed = vec![];
    loop {
        let parents: HashSet<&str> = alive.iter().filter_map(|m| m.parent.as_deref()).collect();
        let mut leaves: Vec<&&Manifest> = alive
            .iter()
            .filter(|m| !parents.contains(m.key.as_str()) && !keep.contains(&m.key))
            .collect();
        leaves.sort_by_key(|m| (m.last_used, m.created));
        let victim = leaves.into_iter().find(|m| {
            let too_old = policy
                .max_age
                .is_some_and(|age| now.saturating_sub(m.last_used) > age);
            let too_big = policy.max_size.is_some_and(|cap| total > cap);
            too_old || too_big
        });
        let Some(victim) = victim.map(|m| (*m).clone()) else {
            break;
        };
        total -= victim.size;
        alive.retain(|m| m.key != victim.key);
        removed.push(victim);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str, parent: Option<&str>, size: u64, last_used: u64) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            key: key.into(),
            parent: parent.map(Into::into),
            step: "run".into(),
            summary: String::new(),
            created: last_used,
            size,
            last_used,
        }
    }

    fn keys(v: &[Manifest]) -> Vec<&str> {
        v.iter().map(|m| m.key.as_str()).collect()
    }

    #[test]
    fn gc_removes_lru_leaves_first_until_under_the_cap() {
        // a <- b <- c, a <- d (d used least recently).
        let layers = [
            m("a", None, 10, 100),
            m("b", Some("a"), 10, 300),
            m("c", Some("b"), 10, 300),
            m("d", Some("a"), 10, 200),
        ];
        let policy = GcPolicy {
            max_size: Some(25),
            max_age: None,
        };
        let out = plan_gc(&layers, &HashSet::new(), policy, 1000);
        assert_eq!(keys(&out), ["d", "c"]);
    }

    #[test]
    fn gc_never_removes_kept_layers_or_their_ancestors() {
        let layers = [m("a", None, 10, 1), m("b", Some("a"), 10, 1)];
        let keep: HashSet<String> = ["a".to_string(), "b".to_string()].into();
        let out = plan_gc(
            &layers,
            &keep,
            GcPolicy {
                max_size: Some(0),
                max_age: Some(0),
            },
            1000,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn gc_by_age_keeps_recent_layers() {
        let layers = [m("a", None, 10, 100), m("b", Some("a"), 10, 990)];
        let policy = GcPolicy {
            max_size: None,
            max_age: Some(500),
        };
        // a is old but b (recent) stands on it.
        assert!(plan_gc(&layers, &HashSet::new(), policy, 1000).is_empty());
        let layers = [m("a", None, 10, 100), m("b", Some("a"), 10, 200)];
        assert_eq!(
            keys(&plan_gc(&layers, &HashSet::new(), policy, 1000)),
            ["b", "a"]
        );
    }

    #[test]
    fn sizes_and_ages_parse() {}

    fn fake_build(tmp: &Path) -> Result<()> {
        if !tmp.exists() {
            std::fs::write(tmp, b"layer").unwrap();
        }
        Ok(())
    }

    #[test]
    fn layers_are_built_once_and_committed_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let r = Runner::default();
        let (m1, built) = cache
            .get_or_build("k1", None, "import", "base", &r, fake_build)
            .unwrap();
        assert!(built);
        let (m2, built) = cache
            .get_or_build("k1", None, "import", "base", &r, |_| panic!("rebuilt"))
            .unwrap();
        assert!(!built);
        assert_eq!(m1, m2);
        assert_eq!(cache.layers().unwrap().len(), 1);
    }

    #[test]
    fn a_failed_step_leaves_no_layer_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let err = cache
            .get_or_build("k1", None, "import", "", &Runner::default(), |tmp| {
                std::fs::write(tmp, b"half").unwrap();
                Err(Error::StepCache("step failed".into()))
            })
            .unwrap_err();
        assert!(err.to_string().contains("step failed"));
        assert!(cache.lookup("k1").unwrap().is_none());
        let names: Vec<_> = std::fs::read_dir(dir.path().join("layers"))
            .unwrap()
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn a_killed_build_never_looks_complete_and_clean_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        // What a build killed before the rename leaves behind.
        std::fs::write(dir.path().join("layers/.k1.qcow2.999.tmp"), b"x").unwrap();
        std::fs::write(dir.path().join("layers/k1.json"), b"{}").unwrap();
        assert!(cache.lookup("k1").unwrap().is_none());
        cache.clean(false).unwrap();
        assert!(!dir.path().join("layers/.k1.qcow2.999.tmp").exists());
    }

    #[test]
    fn overlays_are_backed_by_their_parent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let r = Runner::default();
        cache
            .get_or_build("base", None, "import", "", &r, |tmp| {
                r.tool("qemu-img")
                    .args(["create", "-q", "-f", "qcow2"])
                    .args([tmp.as_os_str(), "16M".as_ref()])
                    .run()?;
                Ok(())
            })
            .unwrap();
        let (m, _) = cache
            .get_or_build("top", Some("base"), "run", "", &r, |_| Ok(()))
            .unwrap();
        assert_eq!(m.parent.as_deref(), Some("base"));
        let info = r
            .tool("qemu-img")
            .args(["info", "--output=json"])
            .arg(cache.layer_path("top"))
            .run()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(info.contains("base.qcow2"), "{info}");
        // The base is in use by a pin whose path exists; the top is not.
        let pinned = dir.path().join("template.qcow2");
        std::fs::write(&pinned, b"").unwrap();
        cache.pin("template", "base", &pinned).unwrap();
        let removed = cache.clean(false).unwrap();
        assert_eq!(keys(&removed), ["top"]);
        assert!(cache.lookup("base").unwrap().is_some());
        // Once the dependent is gone, the pin no longer counts.
        std::fs::remove_file(&pinned).unwrap();
        assert_eq!(keys(&cache.clean(true).unwrap()), ["base"]);
        assert!(
            cache.lookup("base").unwrap().is_some(),
            "dry run removed it"
        );
    }

    #[test]
    fn concurrent_builders_of_one_layer_build_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let builds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (dir, builds) = (dir.path().to_path_buf(), builds.clone());
                std::thread::spawn(move || {
                    let cache = Cache::open(&dir).unwrap();
                    cache
                        .get_or_build("k", None, "import", "", &Runner::default(), |tmp| {
                            builds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            fake_build(tmp)
                        })
                        .unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_layer_in_use_by_a_build_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache
            .get_or_build("k", None, "import", "", &Runner::default(), fake_build)
            .unwrap();
        let held = cache.use_lock("k").unwrap();
        assert!(cache.clean(false).unwrap().is_empty());
        drop(held);
        assert_eq!(keys(&cache.clean(false).unwrap()), ["k"]);
    }
}
