//! `multiple`: every image of an architecture file, independent ones concurrently (at most
//! `jobs` at a time). An image whose input is another image's output waits for it. Every
//! entry is checked before any work starts; an image that fails does not stop the others.

use super::architecture::{self, Architecture, ImageSpec};
use super::generate::{self, Env, ImageRequest, Plan};
use super::{Failure, ReturnCode, Verbose};
use crate::fsutil::absolute;
use crate::image::source::Location;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

pub struct MultipleOptions {
    pub architecture: PathBuf,
    pub output_directory: PathBuf,
    pub overwrite: bool,
    /// How many images are made at once (at least 1).
    pub jobs: usize,
}

/// The request for one architecture entry.
pub fn request(spec: &ImageSpec, output_directory: &Path, overwrite: bool) -> ImageRequest {
    let input = spec.input.as_ref();
    let checksum = input.and_then(|i| i.checksum.as_ref());
    ImageRequest {
        name: spec.name.clone(),
        version: spec.version.clone(),
        size: spec.size.clone(),
        format: spec.format.clone(),
        input: input.map(|i| i.location.clone()),
        input_format: input.and_then(|i| i.format.clone()),
        checksum_type: checksum.map(|c| c.kind.clone()),
        checksum: checksum.map(|c| c.value.clone()),
        buffer_size: checksum.and_then(|c| c.buffer_size),
        read_bytes: checksum.and_then(|c| c.read_bytes),
        output_directory: output_directory.to_path_buf(),
        overwrite,
        shrink: spec.shrink,
    }
}

/// Plans for every image, and for each the images it waits for (by index).
pub fn plan(
    arch: &Architecture,
    output_directory: &Path,
    overwrite: bool,
) -> Result<(Vec<Plan>, Vec<Vec<usize>>), Failure> {
    let mut plans = Vec::with_capacity(arch.images.len());
    for spec in &arch.images {
        let plan = request(spec, output_directory, overwrite)
            .plan()
            .map_err(|f| Failure::new(f.code, format!("image '{}': {}", spec.key, f.message)))?;
        plans.push(plan);
    }
    let outputs: Vec<PathBuf> = plans.iter().map(|p| normal(&p.output)).collect();
    for (i, out) in outputs.iter().enumerate() {
        if let Some(j) = outputs[..i].iter().position(|o| o == out) {
            return Err(Failure::new(
                ReturnCode::InvalidAttribute,
                format!(
                    "images '{}' and '{}' would both be written to {}",
                    arch.images[j].key,
                    arch.images[i].key,
                    plans[i].output.display()
                ),
            ));
        }
    }
    let mut waits = vec![vec![]; plans.len()];
    for (i, p) in plans.iter().enumerate() {
        if let Some(Location::Path(input)) = p.input.as_ref().map(|i| &i.location) {
            let input = normal(input);
            if let Some(j) = outputs.iter().position(|o| *o == input) {
                if j == i {
                    return Err(Failure::new(
                        ReturnCode::InvalidAttribute,
                        format!("image '{}' is its own input", arch.images[i].key),
                    ));
                }
                waits[i].push(j);
            }
        }
    }
    if let Some(i) = cycle(&waits) {
        return Err(Failure::new(
            ReturnCode::InvalidAttribute,
            format!(
                "image '{}' depends on itself through other images' inputs",
                arch.images[i].key
            ),
        ));
    }
    Ok((plans, waits))
}

/// An image on a dependency cycle, if there is one.
fn cycle(waits: &[Vec<usize>]) -> Option<usize> {
    fn visit(i: usize, waits: &[Vec<usize>], state: &mut [u8]) -> bool {
        match state[i] {
            1 => return true,
            2 => return false,
            _ => {}
        }
        state[i] = 1;
        if waits[i].iter().any(|&j| visit(j, waits, state)) {
            return true;
        }
        state[i] = 2;
        false
    }
    let mut state = vec![0u8; waits.len()];
    (0..waits.len()).find(|&i| visit(i, waits, &mut state))
}

/// An absolute, lexically normal path, to compare outputs with inputs.
fn normal(p: &Path) -> PathBuf {
    let abs = absolute(p);
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Waiting,
    Running,
    Done(Result<String, Failure>),
}

/// Run the architecture file; the value is the response for the JSON document.
pub fn run(opts: &MultipleOptions, env: &Env, verbose: &mut Verbose) -> Result<String, Failure> {
    let arch = architecture::load(&opts.architecture)?;
    // On stderr: stdout is the JSON document scripts read.
    for w in &arch.warnings {
        eprintln!("gen-vm-image: warning: {w}");
    }
    let (plans, waits) = plan(&arch, &opts.output_directory, opts.overwrite)?;
    std::fs::create_dir_all(&opts.output_directory).map_err(|e| {
        Failure::new(
            ReturnCode::Create,
            format!(
                "Failed to create path: {} - error: cannot create the output directory: {e}",
                opts.output_directory.display()
            ),
        )
    })?;
    let n = plans.len();
    let logs: Mutex<Vec<Vec<String>>> = Mutex::new(vec![vec![]; n]);
    let workers = opts.jobs.clamp(1, n);
    // Progress bars of concurrent downloads would overwrite each other.
    let env = &Env {
        runner: env.runner,
        cancel: env.cancel,
        progress: env.progress && workers == 1,
    };
    let results = schedule(
        &waits,
        workers,
        |i| {
            let mut own = Verbose::new(true);
            let result = if env.cancel.is_cancelled() {
                Err(Failure::new(ReturnCode::Interrupted, "interrupted"))
            } else {
                generate::run_plan(&plans[i], env, &mut own)
            };
            logs.lock().unwrap_or_else(|p| p.into_inner())[i] = own.messages;
            result
        },
        |j| {
            Failure::new(
                ReturnCode::Create,
                format!(
                    "not made: its input, image '{}', failed",
                    arch.images[j].key
                ),
            )
        },
    );
    let logs = logs.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut failures = vec![];
    for (i, (result, lines)) in results.into_iter().zip(logs).enumerate() {
        let key = &arch.images[i].key;
        for line in lines {
            verbose.push(format!("{key}: {line}"));
        }
        match result {
            Ok(response) => verbose.push(format!("{key}: {response}")),
            Err(f) => failures.push((key.clone(), f)),
        }
    }
    if let Some((key, first)) = failures.first() {
        let mut message = format!("image '{key}': {}", first.message);
        for (key, f) in &failures[1..] {
            message.push_str(&format!(
                "\nimage '{key}' (return code {}): {}",
                f.code.code(),
                f.message
            ));
        }
        return Err(Failure::new(first.code, message));
    }
    Ok(format!(
        "Successfully built the images in: {}",
        absolute(&opts.output_directory).display()
    ))
}

/// Run jobs `0..waits.len()` on `workers` threads, in order as far as their inputs allow:
/// job `i` starts once every job in `waits[i]` succeeded; a job one of whose inputs failed
/// is not run, its result is `not_run(that input)`.
pub fn schedule(
    waits: &[Vec<usize>],
    workers: usize,
    run_one: impl Fn(usize) -> Result<String, Failure> + Sync,
    not_run: impl Fn(usize) -> Failure + Sync,
) -> Vec<Result<String, Failure>> {
    let n = waits.len();
    let states = Mutex::new(vec![State::Waiting; n]);
    let changed = Condvar::new();
    let lock = || states.lock().unwrap_or_else(|p| p.into_inner());
    // The next job to run, or None when nothing is left; waits while inputs are made.
    let pick = || -> Option<usize> {
        let mut st = lock();
        loop {
            let mut runnable = None;
            let mut pending = false;
            let mut settled = false;
            for i in 0..n {
                if st[i] != State::Waiting {
                    continue;
                }
                if let Some(&j) = waits[i]
                    .iter()
                    .find(|&&j| matches!(st[j], State::Done(Err(_))))
                {
                    st[i] = State::Done(Err(not_run(j)));
                    settled = true;
                    continue;
                }
                pending = true;
                if waits[i]
                    .iter()
                    .all(|&j| matches!(st[j], State::Done(Ok(_))))
                {
                    runnable = Some(i);
                    break;
                }
            }
            if let Some(i) = runnable {
                st[i] = State::Running;
                return Some(i);
            }
            if settled {
                // Jobs waiting on those may be settled now too: look again.
                changed.notify_all();
                continue;
            }
            if !pending {
                return None;
            }
            st = changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    };
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            s.spawn(|| {
                while let Some(i) = pick() {
                    let result = run_one(i);
                    lock()[i] = State::Done(result);
                    changed.notify_all();
                }
            });
        }
    });
    states
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|s| match s {
            State::Done(r) => r,
            _ => Err(Failure::new(ReturnCode::Interrupted, "not made")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(text: &str) -> Architecture {
        architecture::parse(text).unwrap()
    }

    #[test]
    fn an_image_made_from_another_waits_for_it() {
        let a = arch(
            "owner: o\nimages:\n  derived:\n    name: d\n    size: 2G\n    input: out/base.qcow2\n  base:\n    name: base\n    size: 1G\n  other:\n    name: x\n    size: 1G\n",
        );
        let (plans, waits) = plan(&a, Path::new("out"), false).unwrap();
        assert_eq!(plans.len(), 3);
        assert_eq!(waits, vec![vec![1], vec![], vec![]]);
    }

    #[test]
    fn schedule_runs_everything_once_and_skips_what_depends_on_a_failure() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // 0 fails; 1 waits on 0; 2 waits on 1; 3 waits on 4 (later in the list); 4 is fine.
        let waits = vec![vec![], vec![0], vec![1], vec![4], vec![]];
        for workers in [1, 2, 8] {
            let runs = AtomicUsize::new(0);
            let results = schedule(
                &waits,
                workers,
                |i| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    if i == 0 {
                        Err(Failure::new(ReturnCode::Checksum, "bad"))
                    } else {
                        Ok(format!("made {i}"))
                    }
                },
                |j| Failure::new(ReturnCode::Create, format!("input {j} failed")),
            );
            assert_eq!(runs.load(Ordering::SeqCst), 3, "workers {workers}");
            assert_eq!(results[0].as_ref().unwrap_err().code, ReturnCode::Checksum);
            assert_eq!(results[1].as_ref().unwrap_err().message, "input 0 failed");
            assert_eq!(results[2].as_ref().unwrap_err().message, "input 1 failed");
            assert_eq!(results[3].as_deref(), Ok("made 3"));
            assert_eq!(results[4].as_deref(), Ok("made 4"));
        }
        // A dependency is made before what needs it, whatever the order in the list.
        let order = Mutex::new(vec![]);
        schedule(
            &[vec![1], vec![]],
            1,
            |i| {
                order.lock().unwrap().push(i);
                Ok(String::new())
            },
            |_| unreachable!(),
        );
        assert_eq!(*order.lock().unwrap(), [1, 0]);
    }

    #[test]
    fn same_output_twice_and_cycles_are_refused() {
        let dup = arch(
            "owner: o\nimages:\n  a:\n    name: n\n    size: 1G\n  b:\n    name: n\n    size: 2G\n",
        );
        let f = plan(&dup, Path::new("out"), false).unwrap_err();
        assert_eq!(f.code, ReturnCode::InvalidAttribute);
        assert!(f.message.contains("'a' and 'b'"), "{}", f.message);
        let cyc = arch(
            "owner: o\nimages:\n  a:\n    name: a\n    size: 1G\n    input: out/b.qcow2\n  b:\n    name: b\n    size: 1G\n    input: ./out/a.qcow2\n",
        );
        let f = plan(&cyc, Path::new("out"), false).unwrap_err();
        assert!(f.message.contains("depends on itself"), "{}", f.message);
        let own =
            arch("owner: o\nimages:\n  a:\n    name: a\n    size: 1G\n    input: out/a.qcow2\n");
        assert!(plan(&own, Path::new("out"), true)
            .unwrap_err()
            .message
            .contains("its own input"));
    }

    #[test]
    fn a_bad_entry_is_reported_before_any_work_with_its_key() {
        let a = arch(
            "owner: o\nimages:\n  good:\n    name: g\n    size: 1G\n  bad:\n    name: b\n    size: 1G\n    input:\n      path: /x\n      checksum:\n        type: nosuch\n        value: ab\n",
        );
        let f = plan(&a, Path::new("out"), false).unwrap_err();
        assert_eq!(f.code, ReturnCode::Checksum);
        assert!(f.message.starts_with("image 'bad': "), "{}", f.message);
    }
}
