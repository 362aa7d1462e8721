//! `virt-maker runners steps|importers|exporters [-v]`: what each runner does and takes.

use super::cli::RunnerKind;
use crate::steps::runners::{self, Role};

/// `virt-maker runners KIND [-v]`.
pub(super) fn text(kind: RunnerKind, verbose: bool) -> String {
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
