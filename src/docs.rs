//! The generated documentation of the three binaries: their man pages and bash, zsh and
//! fish completions, from their clap definitions. `cargo run --example docs` (`make man`)
//! writes them; a test compares them with the committed files. Not flags of the binaries:
//! hidden flags would show in the completions.

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
