//! Applying one runner to a layer file: the tool runs it maps to (argument vectors only;
//! user values reach the guest as uploaded files, never inside a shell string), and the
//! host files each runner reads (they are part of its layer key).
//!
//! One libguestfs appliance boot per step: virt-customize cannot stop half-way through a
//! run and hand back the disk state after each operation, so applying several steps in
//! one boot would leave only the last of them cached (an edit to an earlier one would
//! re-run the whole stretch). Keeping every step's result cached is what makes "edit step
//! k, re-run k..n" hold, so each step is its own run on its own overlay. Operations of one
//! step are always one run.

use super::template::Step;
use crate::error::{Error, IoContext, Result};
use crate::identity::SecretFiles;
use crate::image::cancel::Cancel;
use crate::image::debootstrap;
use crate::image::qemu_img::{Format, QemuImg};
use crate::image::source::{Input, Job};
use crate::runner::{argv, Runner};
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

const GRUB_APPEND: &str = r#"#!/bin/sh
# virt-maker grub_append: the arguments come from a file, never through a shell string.
set -e
args=$(cat /var/lib/virt-maker/grub-append)
rm -f /var/lib/virt-maker/grub-append
f=/etc/default/grub
grep -q '^GRUB_CMDLINE_LINUX=' "$f" || echo 'GRUB_CMDLINE_LINUX=""' >> "$f"
ARGS="$args" awk '/^GRUB_CMDLINE_LINUX=/ { sub(/"$/, " " ENVIRON["ARGS"] "\"") } { print }' "$f" > "$f.new"
mv "$f.new" "$f"
if command -v update-grub >/dev/null 2>&1; then update-grub
elif command -v grub2-mkconfig >/dev/null 2>&1; then grub2-mkconfig -o /boot/grub2/grub.cfg
fi
"#;

const CHOWN: &str = r#"#!/bin/sh
# virt-maker copy/chown: owner and path come from a file, never through a shell string.
set -e
owner=$(sed -n 1p /var/lib/virt-maker/chown)
path=$(sed -n 2p /var/lib/virt-maker/chown)
rm -f /var/lib/virt-maker/chown
chown "$owner" "$path"
"#;

fn s<'a>(step: &'a Step, key: &str) -> Option<&'a str> {
    step.args.get(key).and_then(Value::as_str)
}

fn list(step: &Step, key: &str) -> Vec<String> {
    step.args
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Host files the step reads, whose content is part of its key.
pub fn input_files(step: &Step, dir: &Path) -> Vec<PathBuf> {
    let r = |p: &str| super::render::resolve(dir, p);
    match step.runner.as_str() {
        "run" | "firstboot" | "local_run" => s(step, "file").map(r).into_iter().collect(),
        "copy" => s(step, "src").map(r).into_iter().collect(),
        "inject_virtio_win" => s(step, "path")
            .map(r)
            .filter(|p| p.is_file())
            .into_iter()
            .collect(),
        "download" if s(step, "checksum").is_none() => vec![],
        _ => vec![],
    }
}

/// A one-line description for the output (secrets hidden).
pub fn summary(step: &Step) -> String {
    if step.runner == "rootpass" {
        return "********".into();
    }
    let def = super::runners::find(&step.runner);
    if let Some(p) = def.and_then(|d| d.primary) {
        if step.args.len() == 1 {
            if let Some(v) = step.args.get(p) {
                return match v {
                    Value::String(t) => t.lines().next().unwrap_or("").to_string(),
                    Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    other => other.to_string(),
                };
            }
        }
    }
    // The original printed a Python dict.
    let parts: Vec<String> = step
        .args
        .iter()
        .map(|(k, v)| match v {
            Value::String(t) => format!("'{k}': '{}'", t.lines().next().unwrap_or("")),
            other => format!("'{k}': {other}"),
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn path_arg(p: &Path) -> OsString {
    p.as_os_str().to_owned()
}

/// Run a step on `image` (an overlay already backed by the parent layer).
pub fn apply_step(step: &Step, dir: &Path, image: &Path, runner: &Runner) -> Result<()> {
    let files = SecretFiles::new()?;
    let ctx = format!("{} {}", step.location, step.runner);
    let resolve = |p: &str| super::render::resolve(dir, p);
    // --format must come before -a.
    let mut vc: Vec<OsString> = argv(["--format", "qcow2"]);
    vc.extend(argv(["-a".as_ref(), image.as_os_str()]));
    let script_file = |name: &str| -> Result<PathBuf> {
        match (s(step, "script"), s(step, "file")) {
            (Some(text), _) => files.write(name, text, 0o755),
            (None, Some(f)) => Ok(resolve(f)),
            _ => Err(step_error(&ctx, "no script")),
        }
    };
    match step.runner.as_str() {
        "run" => vc.extend(["--run".into(), path_arg(&script_file("run.sh")?)]),
        "firstboot" => vc.extend([
            "--firstboot".into(),
            path_arg(&script_file("firstboot.sh")?),
        ]),
        "install" => vc.extend(argv([
            "--install".to_string(),
            list(step, "packages").join(","),
        ])),
        "inject_qemu_ga" => vc.extend(argv(["--install", "qemu-guest-agent"])),
        "hostname" => vc.extend(argv(["--hostname", s(step, "name").unwrap_or("")])),
        "rootpass" => {
            let f = files.write("rootpass", s(step, "password").unwrap_or(""), 0o600)?;
            vc.extend(argv([
                "--root-password".to_string(),
                format!("file:{}", f.display()),
            ]));
        }
        "ssh_keygen" => vc.extend(argv(["--run-command", "ssh-keygen -A"])),
        "selinux" => vc.extend(argv(["--selinux-relabel"])),
        "grub_append" => {
            let args = s(step, "args").unwrap_or("");
            vc.extend(upload_and_run(&files, "grub-append", args, GRUB_APPEND)?);
        }
        "copy" => {
            let dest = s(step, "dest").unwrap_or("");
            let src = match (s(step, "content"), s(step, "src")) {
                (Some(c), _) => files.write("content", c, 0o644)?,
                (None, Some(p)) => resolve(p),
                _ => return Err(step_error(&ctx, "nothing to copy")),
            };
            if !src.is_file() {
                return Err(step_error(&ctx, format!("no such file {}", src.display())));
            }
            vc.extend(argv([
                "--upload".to_string(),
                format!("{}:{dest}", src.display()),
            ]));
            if let Some(mode) = s(step, "chmod") {
                vc.extend(argv(["--chmod".to_string(), format!("{mode}:{dest}")]));
            }
            if let Some(owner) = s(step, "chown") {
                let data = format!("{owner}\n{dest}\n");
                vc.extend(upload_and_run(&files, "chown", &data, CHOWN)?);
            }
        }
        "inject_virtio_win" => {
            vc.extend(argv(["--inject-virtio-win", s(step, "path").unwrap_or("")]))
        }
        "virtcustomize" => vc.extend(argv(list(step, "args"))),
        "sysprep" => {
            let mut a: Vec<OsString> = argv(["--format", "qcow2"]);
            a.extend(argv(["-a".as_ref(), image.as_os_str()]));
            if let Some(ops) = s(step, "operations") {
                a.extend(argv(["--operations", ops]));
            }
            runner.tool("virt-sysprep").args(&a).context(&ctx).run()?;
            return Ok(());
        }
        "local_run" => {
            let (tool, args) = match s(step, "script").or(s(step, "file")) {
                Some(_) => ("sh".to_string(), vec![path_arg(&script_file("local.sh")?)]),
                None => {
                    let cmd = list(step, "command");
                    let (first, rest) = cmd
                        .split_first()
                        .ok_or_else(|| step_error(&ctx, "empty command"))?;
                    (first.clone(), argv(rest))
                }
            };
            (runner.tool(tool).args(&args))
                .env("IMAGE", image.display().to_string())
                .context(&ctx)
                .run()?;
            return Ok(());
        }
        "boot" => {
            let tcg = runner.is_tcg();
            let mem = step
                .args
                .get("memory")
                .and_then(Value::as_i64)
                .unwrap_or(1024);
            let cpus = step.args.get("vcpus").and_then(Value::as_i64).unwrap_or(1);
            let a = argv([
                "-machine".to_string(),
                format!("accel={}", if tcg { "tcg" } else { "kvm:tcg" }),
                "-m".to_string(),
                mem.to_string(),
                "-smp".to_string(),
                cpus.to_string(),
                "-display".to_string(),
                "none".to_string(),
                "-serial".to_string(),
                "null".to_string(),
                "-monitor".to_string(),
                "none".to_string(),
                "-no-reboot".to_string(),
                "-drive".to_string(),
                format!(
                    "file={},format=qcow2,if=virtio",
                    image.display().to_string().replace(',', ",,")
                ),
            ]);
            runner
                .tool("qemu-system-x86_64")
                .args(&a)
                .context(&ctx)
                .run()?;
            return Ok(());
        }
        other => return Err(step_error(&ctx, format!("'{other}' is not a step"))),
    }
    runner
        .tool("virt-customize")
        .args(&vc)
        .context(&ctx)
        .run()?;
    Ok(())
}

/// A step that cannot run as written, named by `ctx`.
fn step_error(ctx: &str, message: impl Into<String>) -> Error {
    Error::Step {
        context: ctx.to_string(),
        message: message.into(),
    }
}

/// Run `tool` with stdout written to `out`.
fn run_to_file(
    runner: &Runner,
    tool: &str,
    args: &[OsString],
    out: &Path,
    ctx: &str,
) -> Result<()> {
    let file = std::fs::File::create(out).at(out)?;
    runner
        .tool(tool)
        .args(args)
        .stdout_to(file)
        .context(ctx)
        .run()?;
    Ok(())
}

/// The debootstrap importer's recipe: its arguments with their defaults, the mirror
/// resolved from the host's apt sources when not given. Layers are qcow2.
pub fn debootstrap_recipe(step: &Step) -> Result<debootstrap::Recipe> {
    Ok(debootstrap::Recipe::new(
        s(step, "suite").unwrap_or(debootstrap::DEFAULT_SUITE),
        s(step, "mirror"),
        &list(step, "packages"),
        s(step, "size").unwrap_or(debootstrap::DEFAULT_SIZE),
        Format::Qcow2,
        Path::new(debootstrap::HOST_APT_DIR),
    )?)
}

/// What a step's layer key covers besides its parent and host files: its arguments; for
/// a debootstrap import, its resolved recipe instead: every argument with its default
/// filled in and normalized, the resolved mirror (the same template on a host with
/// another mirror makes another disk) and the recipe's version.
pub fn key_args(step: &Step) -> Result<Value> {
    if step.runner == "debootstrap" {
        return Ok(debootstrap_recipe(step)?.key());
    }
    Ok(Value::Object(step.args.clone()))
}

/// Build the first layer (`image`, not yet existing) from the importer. `cache` is the
/// step cache's directory (downloads and .debs are kept there); `progress` gets a line
/// per phase of a long import.
pub fn import(
    step: &Step,
    dir: &Path,
    image: &Path,
    runner: &Runner,
    cache: &Path,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let ctx = format!("import {}", step.runner);
    let downloads = cache.join("downloads");
    match step.runner.as_str() {
        "debootstrap" => {
            let recipe = debootstrap_recipe(step)?;
            let dirs = debootstrap::Dirs::under(cache);
            Ok(debootstrap::build(&recipe, image, &dirs, runner, progress)?)
        }
        "virt-builder" => {
            let mut a: Vec<OsString> = argv([s(step, "image").unwrap_or("")]);
            a.extend(argv([
                "--output".as_ref(),
                image.as_os_str(),
                "--format".as_ref(),
                "qcow2".as_ref(),
            ]));
            let mut r = runner.clone();
            let files = SecretFiles::new()?;
            if let Some(src) = s(step, "source") {
                // A local repository: virt-builder's own cache adds nothing but the risk
                // of a stale image under the same name and revision.
                a.extend(argv([
                    "--source",
                    src,
                    "--no-check-signature",
                    "--no-cache",
                ]));
                let empty = files.dir("no-system-repos")?;
                r = r.with_env("VIRT_BUILDER_DIRS", empty.display().to_string());
            }
            if let Some(size) = s(step, "size") {
                a.extend(argv(["--size", size]));
            }
            a.extend(argv(list(step, "args")));
            r.tool("virt-builder").args(&a).context(&ctx).run()?;
            Ok(())
        }
        "download" => download(step, dir, image, runner, &downloads),
        other => Err(step_error(&format!("'{other}'"), "is not an importer")),
    }
}

/// The `download` importer: the image pipeline gen-vm-image uses (download into the
/// shared cache hashed as it arrives, or a local file hashed while it is converted;
/// decompression by magic number; qemu-img convert to qcow2; resize; check), written to
/// the layer file.
fn download(
    step: &Step,
    dir: &Path,
    image: &Path,
    runner: &Runner,
    downloads: &Path,
) -> Result<()> {
    let input = Input {
        location: super::fetch::location(s(step, "url").unwrap_or(""), dir),
        format: None,
        checksum: s(step, "checksum")
            .map(super::fetch::checksum)
            .transpose()?,
    };
    let size = s(step, "resize")
        .map(crate::size::parse)
        .transpose()
        .map_err(crate::image::Error::from)?;
    let job = Job {
        input: Some(&input),
        output: image,
        format: Format::Qcow2,
        size,
        shrink: false,
        overwrite: true,
        runner,
        cancel: &Cancel::new(),
        progress: true,
        downloads: Some(downloads),
    };
    // The pipeline's step messages are what -v shows, like the tools' own output.
    let mut log = |m: String| {
        if runner.shows_output() {
            eprintln!("{m}");
        }
    };
    crate::image::source::make(&job, &mut log)?;
    Ok(())
}

/// Write the final layer to the exporter's file: pre_script, convert (or sparsify),
/// compress, rename into place, post_script.
pub fn export(step: &Step, dir: &Path, layer: &Path, runner: &Runner) -> Result<PathBuf> {
    let ctx = format!("export {}", step.runner);
    let fmt = step.runner.as_str();
    let compress = s(step, "compress");
    let out = export_path(dir, s(step, "path").unwrap_or(""), compress);
    let parent = out.parent().unwrap_or(Path::new(".")).to_path_buf();
    if !parent.is_dir() {
        if step.args.get("create_dir").and_then(Value::as_bool) == Some(true) {
            std::fs::create_dir_all(&parent).at(&parent)?;
        } else {
            return Err(step_error(
                &ctx,
                format!(
                    "directory {} does not exist (set create_dir: true)",
                    parent.display()
                ),
            ));
        }
    }
    let files = SecretFiles::new()?;
    let host_script = |name: &str, text: &str, image: &Path| -> Result<()> {
        let f = files.write(name, text, 0o755)?;
        (runner.tool("sh").arg(f))
            .env("IMAGE", image.display().to_string())
            .context(format!("{ctx} {name}"))
            .run()?;
        Ok(())
    };
    if let Some(pre) = s(step, "pre_script") {
        host_script("pre_script", pre, layer)?;
    }
    let name = out
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let conv = parent.join(format!(".{name}.{}.conv.tmp", std::process::id()));
    let result = (|| {
        let target = if compress.is_some() { &conv } else { &tmp };
        if step.args.get("sparsify").and_then(Value::as_bool) == Some(true) {
            runner
                .tool("virt-sparsify")
                .args([layer.as_os_str(), "--convert".as_ref(), fmt.as_ref()])
                .arg(target)
                .context(&ctx)
                .run()?;
        } else {
            // Layers are qcow2; a bar on a terminal for this long copy.
            QemuImg::new(runner).convert(
                layer,
                "qcow2",
                target,
                Format::parse(fmt)?,
                &Cancel::new(),
                true,
            )?;
        }
        if let Some(c) = compress {
            let mut a: Vec<OsString> = vec![];
            if let Some(level) = step.args.get("level").and_then(Value::as_i64) {
                a.push(format!("-{level}").into());
            }
            if c == "xz" || c == "zstd" {
                a.push("-T0".into());
            }
            a.extend(argv(["-c".as_ref(), conv.as_os_str()]));
            run_to_file(runner, c, &a, &tmp, &ctx)?;
        }
        std::fs::rename(&tmp, &out).at(&out)
    })();
    let _ = crate::fsutil::remove_if_exists(&conv);
    if result.is_err() {
        let _ = crate::fsutil::remove_if_exists(&tmp);
    }
    result?;
    if let Some(post) = s(step, "post_script") {
        host_script("post_script", post, &out)?;
    }
    Ok(out)
}

/// Where an exporter writes: `path` under the template's directory, with the compressor's
/// extension added when `path` lacks it.
pub fn export_path(dir: &Path, path: &str, compress: Option<&str>) -> PathBuf {
    let out = dir.join(path);
    let Some(c) = compress else { return out };
    let ext = match c {
        "xz" => ".xz",
        "gzip" => ".gz",
        "lz4" => ".lz4",
        _ => ".zst",
    };
    if out.to_string_lossy().ends_with(ext) {
        out
    } else {
        PathBuf::from(format!("{}{ext}", out.display()))
    }
}

/// virt-customize operations that hand `data` to `script` through a file in the guest
/// (/var/lib/virt-maker/<name>): user values reach the script as data, never as shell text.
fn upload_and_run(
    files: &SecretFiles,
    name: &str,
    data: &str,
    script: &str,
) -> Result<Vec<OsString>> {
    let data_file = files.write(name, data, 0o644)?;
    let script_file = files.write(&format!("{name}.sh"), script, 0o755)?;
    Ok(argv([
        "--mkdir".to_string(),
        "/var/lib/virt-maker".to_string(),
        "--upload".to_string(),
        format!("{}:/var/lib/virt-maker/{name}", data_file.display()),
        "--run".to_string(),
        script_file.display().to_string(),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(runner: &str, args: Value) -> Step {
        Step {
            runner: runner.into(),
            args: args.as_object().unwrap().clone(),
            location: "step 1".into(),
        }
    }

    #[test]
    fn summaries_show_the_value_and_hide_passwords() {
        assert_eq!(summary(&step("run", json!({"script": "a\nb"}))), "a");
        assert_eq!(
            summary(&step("rootpass", json!({"password": "s3cret"}))),
            "********"
        );
        assert_eq!(
            summary(&step("copy", json!({"dest": "/x", "content": "y"}))),
            "{'content': 'y', 'dest': '/x'}"
        );
    }

    #[test]
    fn script_and_copied_files_are_key_inputs() {
        let dir = Path::new("/t");
        assert_eq!(
            input_files(&step("run", json!({"file": "s.sh"})), dir),
            [PathBuf::from("/t/s.sh")]
        );
        assert_eq!(
            input_files(&step("copy", json!({"src": "/abs/f", "dest": "/x"})), dir),
            [PathBuf::from("/abs/f")]
        );
        assert!(input_files(&step("run", json!({"script": "x"})), dir).is_empty());
    }

    #[test]
    fn a_failing_tool_names_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let s = step("local_run", json!({"command": ["false"]}));
        let e = apply_step(&s, dir.path(), &dir.path().join("x"), &Runner::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("step 1 local_run"), "{e}");
    }
}
