//! Applying one runner to a layer file: the tool runs it maps to (argument vectors only;
//! user values reach the guest as uploaded files, never inside a shell string), and the
//! host files each runner reads (they are part of its layer key).
//!
//! A step that is nothing but virt-customize operations (`customize_ops`) may share one
//! virt-customize run with its neighbours (`apply_group`; which ones: `group`): one
//! libguestfs appliance boot instead of one per step. Operations of one step are always
//! one run.

use super::template::Step;
use crate::error::{Error, IoContext, Result};
use crate::identity::SecretFiles;
use crate::image::cancel::Cancel;
use crate::image::debootstrap;
use crate::image::qemu_img::{parse_format, ImageFormat, QemuImg};
use crate::image::source::{Input, Job};
use crate::runner::{argv, Runner};
use serde_json::{Map, Value};
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

const SSH_KEYGEN: &str = r#"#!/bin/sh
# virt-maker ssh_keygen: the user's key pair, as the original (RSA 2048, no passphrase,
# ~/.ssh/id_rsa, replaced when there). The user name comes from a file.
set -e
user=$(cat /var/lib/virt-maker/ssh-keygen)
rm -f /var/lib/virt-maker/ssh-keygen
home=$(getent passwd "$user" | cut -d: -f6)
[ -n "$home" ] || { echo "ssh_keygen: no user '$user' in the image" >&2; exit 1; }
group=$(id -gn "$user")
mkdir -p "$home/.ssh"
rm -f "$home/.ssh/id_rsa" "$home/.ssh/id_rsa.pub"
ssh-keygen -q -t rsa -b 2048 -N '' -C "$user" -f "$home/.ssh/id_rsa"
chown -R "$user:$group" "$home/.ssh"
chmod 700 "$home/.ssh"
"#;

const SELINUX_MODE: &str = r#"#!/bin/sh
# virt-maker selinux: SELINUX=<mode> in /etc/selinux/config (written when missing).
set -e
mode=$(cat /var/lib/virt-maker/selinux)
rm -f /var/lib/virt-maker/selinux
f=/etc/selinux/config
mkdir -p /etc/selinux
if [ -f "$f" ] && grep -q '^SELINUX=' "$f"; then
    sed -i "s/^SELINUX=.*/SELINUX=$mode/" "$f"
else
    echo "SELINUX=$mode" >> "$f"
fi
"#;

const PERMS: &str = r#"#!/bin/sh
# virt-maker copy (simple): mode, owner and path come from a file, applied at first boot.
set -e
mode=$(sed -n 1p /var/lib/virt-maker/perms)
owner=$(sed -n 2p /var/lib/virt-maker/perms)
path=$(sed -n 3p /var/lib/virt-maker/perms)
rm -f /var/lib/virt-maker/perms
[ -z "$mode" ] || chmod "$mode" "$path"
[ -z "$owner" ] || chown "$owner" "$path"
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
        "copy" => s(step, "src")
            .map(r)
            .or_else(|| content_file(step, dir))
            .into_iter()
            .collect(),
        "rootpass" => root_password_file(s(step, "password").unwrap_or(""))
            .map(r)
            .into_iter()
            .collect(),
        "inject_virtio_win" => s(step, "path")
            .map(r)
            .filter(|p| p.is_file())
            .into_iter()
            .collect(),
        "download" if s(step, "checksum").is_none() => vec![],
        _ => vec![],
    }
}

/// A copy's `content` naming a host file that exists (the original copies the file then).
fn content_file(step: &Step, dir: &Path) -> Option<PathBuf> {
    let c = s(step, "content")?;
    if c.contains('\n') || c.is_empty() {
        return None;
    }
    Some(super::render::resolve(dir, c)).filter(|p| p.is_file())
}

/// The host file of a `file:` (or `locked:file:`) root password selector.
fn root_password_file(sel: &str) -> Option<&str> {
    sel.strip_prefix("locked:")
        .unwrap_or(sel)
        .strip_prefix("file:")
}

/// virt-customize's --root-password value for a selector: a password goes through a 0600
/// file (never on a command line), a file is resolved against the template.
fn root_password_arg(sel: &str, dir: &Path, files: &SecretFiles) -> Result<String> {
    let (locked, inner) = match sel.strip_prefix("locked:") {
        Some(inner) => ("locked:", inner),
        None => ("", sel),
    };
    let inner = if let Some(pw) = inner.strip_prefix("password:") {
        format!("file:{}", files.write("rootpass", pw, 0o600)?.display())
    } else if let Some(f) = inner.strip_prefix("file:") {
        format!("file:{}", super::render::resolve(dir, f).display())
    } else {
        inner.to_string()
    };
    Ok(format!("{locked}{inner}"))
}

/// qemu's arguments for the boot step: the original's options (display, cpu, cpus,
/// memory, serial, opts) over our defaults (no display, 1 CPU, 1024 MiB).
fn boot_args(step: &Step, image: &Path, tcg: bool) -> Vec<OsString> {
    let int = |k: &str| step.args.get(k).and_then(Value::as_i64);
    let mem = int("memory").unwrap_or(1024);
    let cpus = int("cpus").or(int("vcpus")).unwrap_or(1);
    let serial = step.args.get("serial").and_then(Value::as_bool) == Some(true);
    let mut a = vec![
        "-machine".to_string(),
        format!("accel={}", if tcg { "tcg" } else { "kvm:tcg" }),
        "-m".to_string(),
        mem.to_string(),
        "-smp".to_string(),
        cpus.to_string(),
    ];
    if let Some(cpu) = s(step, "cpu") {
        a.extend(["-cpu".to_string(), cpu.to_string()]);
    }
    a.extend([
        "-display".to_string(),
        s(step, "display").unwrap_or("none").to_string(),
        "-serial".to_string(),
        if serial { "mon:stdio" } else { "null" }.to_string(),
    ]);
    if !serial {
        a.extend(["-monitor".to_string(), "none".to_string()]);
    }
    a.extend([
        "-no-reboot".to_string(),
        "-drive".to_string(),
        format!(
            "file={},format=qcow2,if=virtio",
            image.display().to_string().replace(',', ",,")
        ),
    ]);
    a.extend(list(step, "opts"));
    argv(a)
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

/// The virt-customize operations of a step that is nothing but those (None: a step that
/// runs another tool). `files` holds the files they upload or run: it must outlive the
/// run, and each step needs its own (two steps of one kind write files of one name).
pub fn customize_ops(
    step: &Step,
    dir: &Path,
    files: &SecretFiles,
) -> Result<Option<Vec<OsString>>> {
    let ctx = format!("{} {}", step.location, step.runner);
    let resolve = |p: &str| super::render::resolve(dir, p);
    let mut vc: Vec<OsString> = vec![];
    match step.runner.as_str() {
        "run" => vc.extend([
            "--run".into(),
            path_arg(&script_file(step, dir, files, "run.sh")?),
        ]),
        "firstboot" => vc.extend([
            "--firstboot".into(),
            path_arg(&script_file(step, dir, files, "firstboot.sh")?),
        ]),
        "install" => vc.extend(argv([
            "--install".to_string(),
            list(step, "packages").join(","),
        ])),
        "inject_qemu_ga" => match s(step, "source") {
            Some(src) => vc.extend(argv(["--inject-qemu-ga", src])),
            None => vc.extend(argv(["--install", "qemu-guest-agent"])),
        },
        "hostname" => vc.extend(argv(["--hostname", s(step, "name").unwrap_or("")])),
        "rootpass" => {
            let sel = root_password_arg(s(step, "password").unwrap_or(""), dir, files)?;
            vc.extend(argv(["--root-password".to_string(), sel]));
        }
        "ssh_keygen" => {
            let user = s(step, "user").unwrap_or("root");
            vc.extend(upload_and_run(files, "ssh-keygen", user, SSH_KEYGEN)?);
        }
        "ssh_hostkeys" => vc.extend(argv(["--run-command", "ssh-keygen -A"])),
        "selinux" => match s(step, "mode").unwrap_or("relabel") {
            "relabel" => vc.extend(argv(["--selinux-relabel"])),
            mode => vc.extend(upload_and_run(files, "selinux", mode, SELINUX_MODE)?),
        },
        "grub_append" => {
            let args = list(step, "args").join(" ");
            vc.extend(upload_and_run(files, "grub-append", &args, GRUB_APPEND)?);
        }
        "copy" => {
            let dest = s(step, "dest").unwrap_or("");
            let src = match (s(step, "content"), s(step, "src")) {
                (Some(_), _) if content_file(step, dir).is_some() => {
                    content_file(step, dir).expect("checked")
                }
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
            let simple = step.args.get("simple").and_then(Value::as_bool) == Some(true);
            let perms = (s(step, "chmod"), s(step, "chown"));
            if simple && perms != (None, None) {
                let data = format!(
                    "{}\n{}\n{dest}\n",
                    perms.0.unwrap_or(""),
                    perms.1.unwrap_or("")
                );
                let mut ops = upload_and_run(files, "perms", &data, PERMS)?;
                // The same upload; the script runs at first boot instead of now.
                let n = ops.len();
                ops[n - 2] = "--firstboot".into();
                vc.extend(ops);
            } else if let Some(mode) = s(step, "chmod") {
                vc.extend(argv(["--chmod".to_string(), format!("{mode}:{dest}")]));
            }
            if let Some(owner) = s(step, "chown").filter(|_| !simple) {
                let data = format!("{owner}\n{dest}\n");
                vc.extend(upload_and_run(files, "chown", &data, CHOWN)?);
            }
        }
        "inject_virtio_win" => {
            vc.extend(argv(["--inject-virtio-win", s(step, "path").unwrap_or("")]))
        }
        "virtcustomize" => vc.extend(argv(list(step, "args"))),
        _ => return Ok(None),
    }
    Ok(Some(vc))
}

/// A `run`/`firstboot`/`local_run` step's script: its `script` text written to `name` in
/// `files`, or its `file`.
fn script_file(step: &Step, dir: &Path, files: &SecretFiles, name: &str) -> Result<PathBuf> {
    match (s(step, "script"), s(step, "file")) {
        (Some(text), _) => files.write(name, text, 0o755),
        (None, Some(f)) => Ok(super::render::resolve(dir, f)),
        _ => Err(step_error(
            &format!("{} {}", step.location, step.runner),
            "no script",
        )),
    }
}

/// virt-customize's whole argument vector on `image` for `ops`.
fn customize_argv(image: &Path, ops: Vec<OsString>) -> Vec<OsString> {
    // --format must come before -a.
    let mut vc: Vec<OsString> = argv(["--format", "qcow2"]);
    vc.extend(argv(["-a".as_ref(), image.as_os_str()]));
    vc.extend(ops);
    vc
}

/// The one virt-customize argument vector of several steps on `image`: each step's
/// operations, in step order (virt-customize applies them in command-line order), each
/// step's files in its own entry of the returned list (keep it until the run ends).
pub fn group_argv(
    steps: &[&Step],
    dir: &Path,
    image: &Path,
) -> Result<(Vec<OsString>, Vec<SecretFiles>)> {
    let mut ops = vec![];
    let mut held = vec![];
    for step in steps {
        let files = SecretFiles::new()?;
        match customize_ops(step, dir, &files)? {
            Some(o) => ops.extend(o),
            None => {
                return Err(step_error(
                    &format!("{} {}", step.location, step.runner),
                    "is not a virt-customize step",
                ))
            }
        }
        held.push(files);
    }
    Ok((customize_argv(image, ops), held))
}

/// Run several steps on `image` (an overlay already backed by the parent layer): one
/// step as `apply_step`; more (each nothing but virt-customize operations, see
/// `group::runs`) as one virt-customize run.
pub fn apply_group(steps: &[&Step], dir: &Path, image: &Path, runner: &Runner) -> Result<()> {
    if let [step] = steps {
        return apply_step(step, dir, image, runner);
    }
    let (vc, _files) = group_argv(steps, dir, image)?;
    runner
        .tool("virt-customize")
        .args(&vc)
        .context(super::group::span(steps))
        .run()?;
    Ok(())
}

/// Run a step on `image` (an overlay already backed by the parent layer).
pub fn apply_step(step: &Step, dir: &Path, image: &Path, runner: &Runner) -> Result<()> {
    let files = SecretFiles::new()?;
    let ctx = format!("{} {}", step.location, step.runner);
    if let Some(ops) = customize_ops(step, dir, &files)? {
        runner
            .tool("virt-customize")
            .args(customize_argv(image, ops))
            .context(&ctx)
            .run()?;
        return Ok(());
    }
    match step.runner.as_str() {
        "sysprep" => {
            let mut a: Vec<OsString> = argv(["--format", "qcow2"]);
            a.extend(argv(["-a".as_ref(), image.as_os_str()]));
            if let Some(ops) = s(step, "operations") {
                a.extend(argv(["--operations", ops]));
            }
            runner.tool("virt-sysprep").args(&a).context(&ctx).run()?;
            Ok(())
        }
        "local_run" => {
            let (tool, args) = match s(step, "script").or(s(step, "file")) {
                Some(_) => (
                    "sh".to_string(),
                    vec![path_arg(&script_file(step, dir, &files, "local.sh")?)],
                ),
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
            Ok(())
        }
        "boot" => {
            let a = boot_args(step, image, runner.is_tcg());
            let qemu = runner.tool("qemu-system-x86_64").args(&a).context(&ctx);
            // serial: the guest's console is virt-maker's own output (-serial mon:stdio),
            // not captured and dropped.
            let serial = step.args.get("serial").and_then(Value::as_bool) == Some(true);
            if serial { qemu.on_terminal() } else { qemu }.run()?;
            Ok(())
        }
        other => Err(step_error(&ctx, format!("'{other}' is not a step"))),
    }
}

/// A step that cannot run as written, named by `ctx`.
fn step_error(ctx: &str, message: impl Into<String>) -> Error {
    Error::Step {
        context: ctx.to_string(),
        message: message.into(),
    }
}

/// A runner's `pre_script`/`post_script` on the host, `$IMAGE` the image file: through the
/// interpreter its `#!` line names (as the kernel would, so the file needs no exec
/// permission where it is written), or `sh` without one.
pub fn host_script(runner: &Runner, name: &str, text: &str, image: &Path, ctx: &str) -> Result<()> {
    let files = SecretFiles::new()?;
    let f = files.write(name, text, 0o755)?;
    let (tool, mut args) = interpreter(text);
    args.push(f.into_os_string());
    (runner.tool(tool).args(&args))
        .env("IMAGE", image.display().to_string())
        .context(ctx)
        .run()?;
    Ok(())
}

/// The program and its optional argument from a script's `#!` line (`sh` without one).
fn interpreter(text: &str) -> (String, Vec<OsString>) {
    let Some(line) = text.strip_prefix("#!").and_then(|t| t.lines().next()) else {
        return ("sh".into(), vec![]);
    };
    let line = line.trim();
    match line.split_once(char::is_whitespace) {
        Some((prog, arg)) => (prog.to_string(), vec![arg.trim().into()]),
        None if line.is_empty() => ("sh".into(), vec![]),
        None => (line.to_string(), vec![]),
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
        ImageFormat::Qcow2,
        Path::new(debootstrap::HOST_APT_DIR),
    )?)
}

/// What a step's layer key covers besides its parent and host files: its arguments; for
/// a debootstrap import, its resolved recipe instead: every argument with its default
/// filled in and normalized, the resolved mirror (the same template on a host with
/// another mirror makes another disk) and the recipe's version.
pub fn key_args(step: &Step) -> Result<Value> {
    if step.runner == "debootstrap" {
        let mut key = debootstrap_recipe(step)?.key();
        // Its host scripts change the layer too (absent: the key is as before).
        for hook in ["pre_script", "post_script"] {
            if let (Some(v), Some(m)) = (step.args.get(hook), key.as_object_mut()) {
                m.insert(hook.into(), v.clone());
            }
        }
        return Ok(key);
    }
    let mut args = step.args.clone();
    if ["rootpass", "ssh_keygen"].contains(&step.runner.as_str()) {
        // Their values mean what they mean in the original since this (a key computed
        // when `random` was a literal password, or ssh_keygen made host keys, must not match).
        args.insert("semantics".into(), Value::from("original"));
    }
    Ok(Value::Object(args))
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
    // The original's resize mapping goes through virt-resize after the pipeline.
    let resize = step.args.get("resize").and_then(Value::as_object);
    let staged = PathBuf::from(format!("{}.src", image.display()));
    let size = s(step, "resize")
        .map(crate::size::parse)
        .transpose()
        .map_err(crate::image::Error::from)?;
    let job = Job {
        input: Some(&input),
        output: if resize.is_some() { &staged } else { image },
        format: ImageFormat::Qcow2,
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
    let Some(resize) = resize else {
        return Ok(());
    };
    let result = virt_resize(resize, &staged, image, runner);
    let _ = crate::fsutil::remove_if_exists(&staged);
    result
}

/// `resize: {size, expand, /dev/sdaN: op}` as the original: a new disk of `size`, the
/// image's partitions copied into it by virt-resize.
fn virt_resize(resize: &Map<String, Value>, src: &Path, dst: &Path, runner: &Runner) -> Result<()> {
    let size = crate::size::parse(resize.get("size").and_then(Value::as_str).unwrap_or(""))
        .map_err(crate::image::Error::from)?;
    let create = argv([
        "create".as_ref(),
        "-q".as_ref(),
        "-f".as_ref(),
        "qcow2".as_ref(),
        dst.as_os_str(),
        size.to_string().as_ref(),
    ]);
    let ctx = "import download: resize";
    runner.tool("qemu-img").args(&create).context(ctx).run()?;
    (runner
        .tool("virt-resize")
        .args(virt_resize_args(resize, src, dst)))
    .context(ctx)
    .run()?;
    Ok(())
}

/// virt-resize's arguments for the original's resize mapping: `expand` is `--expand`,
/// each `/dev/...` key a `--resize PART=OP`.
fn virt_resize_args(resize: &Map<String, Value>, src: &Path, dst: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = argv(["--format", "qcow2", "--output-format", "qcow2"]);
    if let Some(e) = resize.get("expand").and_then(Value::as_str) {
        a.push(format!("--expand={e}").into());
    }
    for (k, v) in resize.iter().filter(|(k, _)| k.starts_with("/dev/")) {
        a.push(format!("--resize={k}={}", v.as_str().unwrap_or("")).into());
    }
    a.extend(argv([src.as_os_str(), dst.as_os_str()]));
    a
}

/// The `libvirt` exporter: the final layer converted here (beside it, in the cache), then
/// uploaded as a volume of a libvirt pool through the storage API, so that a pool this
/// user cannot write, or another host's, is filled the same way. A volume of that name is
/// replaced (as the file exporters replace their file); a failed upload leaves none.
pub fn export_to_pool(step: &Step, layer: &Path, runner: &Runner) -> Result<PathBuf> {
    use crate::hypervisor::{Hypervisor, Libvirt, NewVolume, VolumeSource};
    let ctx = "export libvirt";
    let name = s(step, "name").unwrap_or("");
    crate::names::validate_volume_name(name).map_err(|e| step_error(ctx, e.to_string()))?;
    let pool = s(step, "pool").unwrap_or("default");
    let format = s(step, "format").unwrap_or("qcow2");
    let fmt = match format {
        "qcow2" | "raw" => parse_format(format)?,
        other => return Err(step_error(ctx, format!("format {other:?}: qcow2 or raw"))),
    };
    let hv = match s(step, "uri") {
        Some(uri) => Libvirt::connect(uri)?,
        None => Libvirt::connect_default()?,
    };
    let dir = layer.parent().unwrap_or(Path::new("."));
    let staged = crate::fsutil::TempPath::fresh(
        dir.join(format!(".export-{}.{format}.tmp", std::process::id())),
    )?;
    let img = QemuImg::new(runner);
    img.convert(layer, "qcow2", staged.path(), fmt, &Cancel::new(), true)?;
    let info = img.info(staged.path(), Some(format))?;
    let existing = hv.pool_path(pool)?.join(name);
    if hv.volume(&existing)?.is_some() {
        hv.delete_volume(&existing)?;
    }
    let volume = hv.create_volume(&NewVolume {
        pool,
        name,
        format: fmt,
        source: VolumeSource::Empty {
            capacity: info.virtual_size,
        },
    })?;
    if let Err(e) = hv.upload_volume(&volume.path, staged.path()) {
        let _ = hv.delete_volume(&volume.path);
        return Err(e);
    }
    Ok(volume.path)
}

/// Write the final layer to the exporter's file: pre_script, convert (or sparsify),
/// compress, rename into place, post_script.
pub fn export(step: &Step, dir: &Path, layer: &Path, runner: &Runner) -> Result<PathBuf> {
    if step.runner == "libvirt" {
        return export_to_pool(step, layer, runner);
    }
    let ctx = format!("export {}", step.runner);
    let fmt = step.runner.as_str();
    let compress = s(step, "compress");
    let out = export_path(dir, s(step, "path").unwrap_or(""));
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
    let host_script = |name: &str, text: &str, image: &Path| -> Result<()> {
        host_script(runner, name, text, image, &format!("{ctx} {name}"))
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
            // As the original: a qcow2 not compressed afterwards is written with qcow2's
            // own compression (virt-sparsify --compress); raw cannot be (the original
            // asked for it there too, which virt-sparsify refuses).
            let mut a: Vec<&std::ffi::OsStr> = vec![];
            if compress.is_none() && fmt == "qcow2" {
                a.push("--compress".as_ref());
            }
            a.extend([layer.as_os_str(), "--convert".as_ref(), fmt.as_ref()]);
            runner
                .tool("virt-sparsify")
                .args(a)
                .arg(target)
                .context(&ctx)
                .run()?;
        } else {
            // Layers are qcow2; a bar on a terminal for this long copy.
            QemuImg::new(runner).convert(
                layer,
                "qcow2",
                target,
                parse_format(fmt)?,
                &Cancel::new(),
                true,
            )?;
        }
        if let Some(c) = compress {
            let level = step
                .args
                .get("level")
                .and_then(Value::as_i64)
                .unwrap_or(DEFAULT_LEVEL);
            let mut a: Vec<OsString> = vec![format!("-{level}").into()];
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

/// Where an exporter writes: `path` under the template's directory, as it is: the
/// original moves the (compressed) image to `path` without adding or changing a suffix
/// (runners/exporters/qcow2.py), so `path: x.qcow2.lz` with `compress: lz4` is
/// `x.qcow2.lz`, and `path: x.img` with `compress: gzip` is gzip data in `x.img`.
pub fn export_path(dir: &Path, path: &str) -> PathBuf {
    dir.join(path)
}

/// The compression level when the template gives none: the original's schema default,
/// 1, for every compressor (qcow2.py's `level` default; lz4's explicit `level = 1`).
pub const DEFAULT_LEVEL: i64 = 1;

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

    fn strs(a: &[OsString]) -> Vec<&str> {
        a.iter().map(|s| s.to_str().unwrap()).collect()
    }

    #[test]
    fn root_password_selectors_reach_virt_customize_and_passwords_go_through_a_file() {
        let files = SecretFiles::new().unwrap();
        let dir = Path::new("/t");
        for sel in ["random", "disabled", "locked", "locked:random"] {
            assert_eq!(root_password_arg(sel, dir, &files).unwrap(), sel);
        }
        assert_eq!(
            root_password_arg("file:pw.txt", dir, &files).unwrap(),
            "file:/t/pw.txt"
        );
        assert_eq!(
            root_password_arg("locked:file:/abs/pw", dir, &files).unwrap(),
            "locked:file:/abs/pw"
        );
        for (sel, prefix) in [
            ("password:s3cret", "file:"),
            ("locked:password:s3cret", "locked:file:"),
        ] {
            let a = root_password_arg(sel, dir, &files).unwrap();
            assert!(a.starts_with(prefix) && !a.contains("s3cret"), "{a}");
            let f = a.strip_prefix(prefix).unwrap();
            assert_eq!(std::fs::read_to_string(f).unwrap(), "s3cret");
        }
        let s = step("rootpass", json!({"password": "file:pw.txt"}));
        assert_eq!(input_files(&s, dir), [PathBuf::from("/t/pw.txt")]);
    }

    #[test]
    fn scripts_run_through_their_own_shebang() {
        assert_eq!(interpreter("echo hi\n"), ("sh".to_string(), vec![]));
        assert_eq!(
            interpreter("#!/bin/bash\nx"),
            ("/bin/bash".to_string(), vec![])
        );
        assert_eq!(
            interpreter("#! /usr/bin/env python3\nprint(1)"),
            ("/usr/bin/env".to_string(), vec![OsString::from("python3")])
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let text = format!(
            "#!/bin/sh -e\nprintf '%s' \"$0:$IMAGE\" > {}\n",
            out.display()
        );
        host_script(&Runner::default(), "post", &text, Path::new("/img"), "t").unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        assert!(got.ends_with("/post:/img"), "{got}");
    }

    #[test]
    fn boot_takes_the_originals_options() {
        let img = Path::new("/l/x.qcow2");
        let plain = boot_args(&step("boot", json!({})), img, true);
        assert_eq!(
            strs(&plain),
            [
                "-machine",
                "accel=tcg",
                "-m",
                "1024",
                "-smp",
                "1",
                "-display",
                "none",
                "-serial",
                "null",
                "-monitor",
                "none",
                "-no-reboot",
                "-drive",
                "file=/l/x.qcow2,format=qcow2,if=virtio"
            ]
        );
        let s = step(
            "boot",
            json!({"display": "curses", "cpu": "max", "cpus": 2, "memory": 2048,
                   "serial": true, "opts": ["-device", "virtio-rng-pci", "-snapshot"]}),
        );
        assert_eq!(
            strs(&boot_args(&s, img, false)),
            [
                "-machine",
                "accel=kvm:tcg",
                "-m",
                "2048",
                "-smp",
                "2",
                "-cpu",
                "max",
                "-display",
                "curses",
                "-serial",
                "mon:stdio",
                "-no-reboot",
                "-drive",
                "file=/l/x.qcow2,format=qcow2,if=virtio",
                "-device",
                "virtio-rng-pci",
                "-snapshot"
            ]
        );
    }

    #[test]
    fn a_copy_content_naming_a_host_file_copies_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("motd"), "hi").unwrap();
        let s = step("copy", json!({"dest": "/etc/motd", "content": "motd"}));
        assert_eq!(input_files(&s, dir.path()), [dir.path().join("motd")]);
        let s = step("copy", json!({"dest": "/etc/motd", "content": "just text"}));
        assert!(input_files(&s, dir.path()).is_empty());
    }

    #[test]
    fn changed_semantics_change_the_key() {
        let old = json!({"password": "random"});
        let k = key_args(&step("rootpass", old.clone())).unwrap();
        assert_ne!(k, old);
        assert_eq!(
            key_args(&step("run", json!({"script": "x"}))).unwrap(),
            json!({"script": "x"})
        );
    }

    #[test]
    fn the_originals_resize_mapping_is_virt_resize_arguments() {
        let m = json!({"size": "10G", "expand": "/dev/sda5", "/dev/sda1": "+200M"});
        let a = virt_resize_args(
            m.as_object().unwrap(),
            Path::new("/l/src"),
            Path::new("/l/dst"),
        );
        let a: Vec<_> = a.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(
            a,
            [
                "--format",
                "qcow2",
                "--output-format",
                "qcow2",
                "--expand=/dev/sda5",
                "--resize=/dev/sda1=+200M",
                "/l/src",
                "/l/dst"
            ]
        );
    }

    #[test]
    fn a_group_is_one_argv_of_each_steps_operations_in_order_with_its_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut steps = [
            step("ssh_keygen", json!({"user": "alice"})),
            step("hostname", json!({"name": "h1"})),
            step("ssh_keygen", json!({"user": "bob"})),
            step("rootpass", json!({"password": "random"})),
        ];
        for (i, s) in steps.iter_mut().enumerate() {
            s.location = format!("step {}", i + 1);
        }
        let refs: Vec<&Step> = steps.iter().collect();
        let img = Path::new("/l/layer.qcow2");
        let (a, files) = group_argv(&refs, dir.path(), img).unwrap();
        assert_eq!(files.len(), 4);
        let a = strs(&a);
        assert_eq!(a[..4], ["--format", "qcow2", "-a", "/l/layer.qcow2"]);
        let ops: Vec<&str> = a[4..]
            .iter()
            .copied()
            .filter(|o| o.starts_with("--"))
            .collect();
        assert_eq!(
            ops,
            [
                "--mkdir",
                "--upload",
                "--run",
                "--hostname",
                "--mkdir",
                "--upload",
                "--run",
                "--root-password"
            ]
        );
        assert_eq!(a[a.len() - 1], "random");
        // Each ssh_keygen uploads its own user's file: the second did not overwrite the first.
        let uploads: Vec<String> = a
            .windows(2)
            .filter(|w| w[0] == "--upload")
            .map(|w| {
                let (host, guest) = w[1].split_once(':').unwrap();
                assert_eq!(guest, "/var/lib/virt-maker/ssh-keygen");
                std::fs::read_to_string(host).unwrap()
            })
            .collect();
        assert_eq!(uploads, ["alice", "bob"]);
        // A step that is not only virt-customize operations cannot be in one.
        let boot = step("boot", json!({}));
        let Err(e) = group_argv(&[refs[1], &boot], dir.path(), img) else {
            panic!("boot in a group");
        };
        assert!(e.to_string().contains("step 1 boot"), "{e}");
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
