//! Man pages and shell completions of the three binaries from their clap definitions, with
//! the sections clap does not know: EXIT STATUS, ENVIRONMENT and FILES (each a list of term
//! and text). `cargo run --example docs` (`make man`) writes them; a test compares them
//! with the committed files. Not flags of the binaries: hidden flags would show in the
//! completions.

/// A section of terms and what each means.
pub struct Section<'a> {
    pub title: &'a str,
    pub items: &'a [(&'a str, &'a str)],
}

/// The man page of `command` followed by `sections`, as roff.
pub fn render(command: clap::Command, sections: &[Section]) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = clap_mangen::Man::new(command).render(&mut out);
    let mut page = String::from_utf8_lossy(&out).into_owned();
    for section in sections {
        page.push_str(&format!(".SH \"{}\"\n", section.title));
        for (term, text) in section.items {
            page.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(term), roff(text)));
        }
    }
    page
}

/// Text safe in a roff line: backslashes and hyphens escaped, no line starting a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.starts_with('.') || escaped.starts_with('\'') {
        true => format!("\\&{escaped}"),
        false => escaped,
    }
}

/// Every generated file (its path in the repository) and its text.
pub fn files() -> Vec<(String, String)> {
    use clap::CommandFactory;
    let mut files = vec![
        ("man/virt-up.1".to_string(), crate::virtup::cli::man_page()),
        (
            "man/virt-maker.1".to_string(),
            crate::maker::cli::man_page(),
        ),
        (
            "man/gen-vm-image.1".to_string(),
            crate::genvm::cli::man_page(),
        ),
    ];
    let commands = [
        ("virt-up", crate::virtup::cli::Cli::command()),
        ("virt-maker", crate::maker::cli::Cli::command()),
        ("gen-vm-image", crate::genvm::cli::Cli::command()),
    ];
    for (name, command) in commands {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut visible(&command, name), name, &mut out);
            files.push((
                format!("completions/{name}.{shell}"),
                String::from_utf8_lossy(&out).into_owned(),
            ));
        }
    }
    files
}

/// `command` (named `name`) without its hidden subcommands, which clap_complete would
/// offer (gen-vm-image's older command line is one).
fn visible(command: &clap::Command, name: &'static str) -> clap::Command {
    if !command.get_subcommands().any(|c| c.is_hide_set()) {
        return command.clone();
    }
    // A command's subcommands cannot be removed, only given anew.
    clap::Command::new(name)
        .about(command.get_about().cloned().unwrap_or_default())
        .args(command.get_arguments().cloned())
        .subcommands(
            command
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .cloned(),
        )
}

/// The variables every binary reads to find its files.
pub const PATH_VARIABLES: &[(&str, &str)] = &[
    (
        "VIRTUP_CONFIG_HOME",
        "The user's configuration directory (default: $XDG_CONFIG_HOME/virt-up, ~/.config/virt-up).",
    ),
    ("VIRTUP_SYSTEM_CONFIG", "Replaces /etc/virt-up, the system-wide configuration."),
    (
        "VIRTUP_DATA_HOME",
        "Records, keys, inventory, ssh_config, known_hosts (default: $XDG_DATA_HOME/virt-up, ~/.local/share/virt-up).",
    ),
    (
        "VIRTUP_CACHE_HOME",
        "The step cache and template builds (default: $XDG_CACHE_HOME/virt-up, ~/.cache/virt-up).",
    ),
    ("XDG_RUNTIME_DIR", "Where the lock file is (else /tmp)."),
    ("HOME", "The base of the default directories."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_sections_follow_the_generated_page_escaped() {
        let cmd = clap::Command::new("tool").about("does things");
        let page = render(
            cmd,
            &[Section {
                title: "EXIT STATUS",
                items: &[("2", ".bad input -x")],
            }],
        );
        assert!(page.contains(".SH NAME"), "{page}");
        assert!(
            page.ends_with(".SH \"EXIT STATUS\"\n.TP\n\\fB2\\fR\n\\&.bad input \\-x\n"),
            "{page}"
        );
    }
}
