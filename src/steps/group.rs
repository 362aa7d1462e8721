//! Which steps of a build share one virt-customize run.
//!
//! Every virt-customize run boots a libguestfs appliance (most of a step's time without
//! KVM), so consecutive steps that are nothing but virt-customize operations run as one
//! invocation, their operations concatenated in step order. virt-customize applies its
//! operations in command-line order, with two exceptions: it sets every password
//! (`--root-password`, `--password`) and does `--selinux-relabel` after all other
//! operations, and it refuses two passwords for one user in one run. A step with such an
//! operation may therefore only be the last of its run. Options that change the whole run
//! (`--no-network`, `--memsize`, `--smp`, `--password-crypto`, ...) and host-side work
//! (`pre_script`/`post_script`, sysprep, local_run, boot, importers) make a step run on
//! its own.
//!
//! The run's layer is stored under its last step's key (each key chains its
//! predecessors'), so an unchanged rebuild finds it; the intermediate layers of a run are
//! not kept, so a change to step k of a run rebuilds the run from its first step (from
//! the newest cached layer before it).

use super::template::Step;
use serde_json::Value;
use std::ops::Range;

/// How a step may share a virt-customize run with its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// In its own run (another tool, host-side work, or an option of the whole run).
    Alone,
    /// Anywhere in a run.
    Any,
    /// Only as the last of a run: virt-customize defers its effect to the run's end.
    Last,
}

/// The steps that are nothing but virt-customize operations (`apply::customize_ops`).
pub const CUSTOMIZE_RUNNERS: &[&str] = &[
    "run",
    "firstboot",
    "install",
    "inject_qemu_ga",
    "hostname",
    "rootpass",
    "ssh_keygen",
    "ssh_hostkeys",
    "selinux",
    "grub_append",
    "copy",
    "inject_virtio_win",
    "virtcustomize",
];

/// virt-customize options that are not operations but settings of the whole run (or,
/// for `--commands-from-file`, operations virt-maker cannot see).
const WHOLE_RUN_OPTIONS: &[&str] = &[
    "-a",
    "--add",
    "--attach",
    "--attach-format",
    "-c",
    "--connect",
    "--color",
    "--colors",
    "--colour",
    "--colours",
    "--commands-from-file",
    "-d",
    "--domain",
    "-n",
    "--dryrun",
    "--dry-run",
    "--echo-keys",
    "--format",
    "--help",
    "--key",
    "--keys-from-stdin",
    "-m",
    "--memsize",
    "--machine-readable",
    "--network",
    "--no-logfile",
    "--no-network",
    "--no-selinux-relabel",
    "--password-crypto",
    "-q",
    "--quiet",
    "--sm-credentials",
    "--smp",
    "-V",
    "--version",
    "-v",
    "--verbose",
    "--wrap",
    "-x",
];

/// virt-customize operations it applies at the end of a run, whatever their position.
const DEFERRED_OPTIONS: &[&str] = &["--root-password", "--password", "--selinux-relabel"];

/// An argument naming `option`, as `--opt` or `--opt=value`.
fn names(arg: &str, option: &str) -> bool {
    arg == option
        || arg
            .strip_prefix(option)
            .is_some_and(|rest| option.starts_with("--") && rest.starts_with('='))
}

pub fn sharing(step: &Step) -> Sharing {
    let hooks = ["pre_script", "post_script"]
        .iter()
        .any(|h| step.args.contains_key(*h));
    if step.location == "import" || hooks || !CUSTOMIZE_RUNNERS.contains(&step.runner.as_str()) {
        return Sharing::Alone;
    }
    match step.runner.as_str() {
        "rootpass" => Sharing::Last,
        "selinux" => match step.args.get("mode").and_then(Value::as_str) {
            None | Some("relabel") => Sharing::Last,
            Some(_) => Sharing::Any,
        },
        "virtcustomize" => {
            let args: Vec<&str> = step
                .args
                .get("args")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let any = |set: &[&str]| args.iter().any(|a| set.iter().any(|o| names(a, o)));
            // Bundled short options (-vx) are settings too.
            let bundled = args
                .iter()
                .any(|a| a.len() > 2 && a.starts_with('-') && !a.starts_with("--"));
            if any(WHOLE_RUN_OPTIONS) || bundled {
                Sharing::Alone
            } else if any(DEFERRED_OPTIONS) {
                Sharing::Last
            } else {
                Sharing::Any
            }
        }
        _ => Sharing::Any,
    }
}

/// The runs `steps` are built in, in order: index ranges, each one tool run (a range of
/// more than one is one virt-customize invocation).
pub fn runs(steps: &[&Step]) -> Vec<Range<usize>> {
    let mut out = vec![];
    let mut i = 0;
    while i < steps.len() {
        let start = i;
        i += 1;
        if sharing(steps[start]) == Sharing::Any {
            while i < steps.len() {
                match sharing(steps[i]) {
                    Sharing::Any => i += 1,
                    Sharing::Last => {
                        i += 1;
                        break;
                    }
                    Sharing::Alone => break,
                }
            }
        }
        out.push(start..i);
    }
    out
}

/// The steps' locations as a range ("steps 3..12", or "step 3" for one).
pub fn span(steps: &[&Step]) -> String {
    let (first, last) = (&steps[0].location, &steps[steps.len() - 1].location);
    if steps.len() == 1 {
        return first.clone();
    }
    match (first.strip_prefix("step "), last.strip_prefix("step ")) {
        (Some(a), Some(b)) => format!("steps {a}..{b}"),
        _ => format!("{first}..{last}"),
    }
}

/// The steps for a message: "steps 3..5 (copy, install, hostname)".
pub fn label(steps: &[&Step]) -> String {
    let runners: Vec<&str> = steps.iter().map(|s| s.runner.as_str()).collect();
    format!("{} ({})", span(steps), runners.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(i: usize, runner: &str, args: Value) -> Step {
        Step {
            runner: runner.into(),
            args: args.as_object().unwrap().clone(),
            location: format!("step {i}"),
        }
    }

    fn vc(i: usize, args: &[&str]) -> Step {
        step(i, "virtcustomize", json!({ "args": args }))
    }

    #[test]
    fn customization_steps_share_a_run_and_others_end_it() {
        let steps = [
            step(1, "run", json!({"script": "x"})),
            step(2, "hostname", json!({"name": "h"})),
            step(3, "copy", json!({"dest": "/x", "content": "y"})),
            step(4, "sysprep", json!({"operations": "tmp-files"})),
            step(5, "install", json!({"packages": ["a"]})),
            step(6, "ssh_keygen", json!({"user": "alice"})),
            step(7, "local_run", json!({"command": ["true"]})),
            step(8, "grub_append", json!({"args": ["quiet"]})),
            step(9, "boot", json!({})),
        ];
        let refs: Vec<&Step> = steps.iter().collect();
        assert_eq!(runs(&refs), [0..3, 3..4, 4..6, 6..7, 7..8, 8..9]);
        assert_eq!(label(&refs[0..3]), "steps 1..3 (run, hostname, copy)");
        assert_eq!(label(&refs[3..4]), "step 4 (sysprep)");
    }

    #[test]
    fn deferred_operations_end_a_run_and_hooks_or_whole_run_options_stand_alone() {
        let steps = [
            step(1, "hostname", json!({"name": "h"})),
            step(2, "rootpass", json!({"password": "random"})),
            // A second password in the same run would be refused by virt-customize.
            step(3, "rootpass", json!({"password": "disabled"})),
            step(4, "selinux", json!({"mode": "permissive"})),
            step(5, "selinux", json!({})),
            step(6, "run", json!({"script": "x", "post_script": "echo"})),
            vc(7, &["--mkdir", "/d"]),
            vc(8, &["--no-network", "--mkdir", "/e"]),
            vc(9, &["--touch", "/f"]),
            vc(10, &["--password=alice:random"]),
            vc(11, &["-vx", "--touch", "/g"]),
            vc(12, &["--smp=2"]),
            step(13, "firstboot", json!({"script": "x"})),
        ];
        let refs: Vec<&Step> = steps.iter().collect();
        assert_eq!(
            runs(&refs),
            [
                0..2,
                2..3,
                3..5,
                5..6,
                6..7,
                7..8,
                8..10,
                10..11,
                11..12,
                12..13
            ]
        );
        let import = Step {
            location: "import".into(),
            ..step(0, "virt-builder", json!({"image": "d"}))
        };
        assert_eq!(sharing(&import), Sharing::Alone);
    }
}
