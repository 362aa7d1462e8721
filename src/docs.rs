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
            let mut text = String::from_utf8_lossy(&out).into_owned();
            if name == "virt-up" {
                text = with_names(shell, &text);
            }
            files.push((format!("completions/{name}.{shell}"), text));
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

/// virt-up's generated completion, completing instance names (the positional names,
/// `--name`) and template names (`--template`) from `virt-up --list -q` and
/// `virt-up --show-templates -q` at the moment the user presses Tab. clap_complete only
/// completes fixed values, so its script is edited here; each edit must find its place
/// (a newer clap_complete that moved it fails the docs test instead of losing it).
fn with_names(shell: clap_complete::Shell, text: &str) -> String {
    use clap_complete::Shell;
    let edit = |from: &str, to: &str| (from.to_string(), to.to_string());
    let edits: Vec<(String, String)> = match shell {
        Shell::Bash => bash_name_edits(),
        Shell::Zsh => vec![
            edit(
                "autoload -U is-at-least\n",
                &format!("autoload -U is-at-least\n\n{ZSH_NAMES}"),
            ),
            edit(":name:_default'", ":name:_virt_up_instances'"),
            edit(":template:_default'", ":template:_virt_up_templates'"),
            edit(
                "instances at once:_default'",
                "instances at once:_virt_up_instances'",
            ),
        ],
        _ => vec![],
    };
    let mut text = text.to_string();
    for (from, to) in edits {
        assert!(
            text.contains(&from),
            "{shell} completion of virt-up: no {from:?}"
        );
        text = text.replace(&from, &to);
    }
    if shell == Shell::Fish {
        text.push_str(FISH_NAMES);
    }
    text
}

fn bash_name_edits() -> Vec<(String, String)> {
    let files = "COMPREPLY=($(compgen -f \"${cur}\"))";
    let names = |what: &str| {
        format!("COMPREPLY=($(compgen -W \"$(_virt_up_names {what})\" -- \"${{cur}}\"))")
    };
    let case = |flag: &str, what: &str| {
        (
            format!("                {flag})\n                    {files}"),
            format!(
                "                {flag})\n                    {}",
                names(what)
            ),
        )
    };
    vec![
        case("--name", "--list"),
        case("-n", "--list"),
        case("--template", "--show-templates"),
        case("-t", "--show-templates"),
        // The first word is usually an instance's name (`virt-up web1 --login`): only a
        // word starting with '-' is completed as a flag alone.
        (
            "if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then".into(),
            "if [[ ${cur} == -* ]] ; then".into(),
        ),
        (
            "            COMPREPLY=( $(compgen -W \"${opts}\" -- \"${cur}\") )\n            return 0\n            ;;\n    esac\n}".into(),
            "            COMPREPLY=( $(compgen -W \"$(_virt_up_names --list) ${opts}\" -- \"${cur}\") )\n            return 0\n            ;;\n    esac\n}".into(),
        ),
        ("_virt__up() {\n".into(), format!("{BASH_NAMES}_virt__up() {{\n")),
    ]
}

const BASH_NAMES: &str =
    "# Instance or template names, from virt-up itself (nothing when it fails).
_virt_up_names() {
    virt-up \"$@\" -q 2>/dev/null
}

";

const ZSH_NAMES: &str = "_virt_up_instances() {
    compadd -- ${(f)\"$(virt-up --list -q 2>/dev/null)\"}
}

_virt_up_templates() {
    compadd -- ${(f)\"$(virt-up --show-templates -q 2>/dev/null)\"}
}
";

const FISH_NAMES: &str = "# Instance and template names, from virt-up itself (nothing when it fails).
complete -c virt-up -f -n 'not string match -q -- \"-*\" (commandline -ct)' -a '(virt-up --list -q 2>/dev/null)'
complete -c virt-up -s t -l template -f -r -a '(virt-up --show-templates -q 2>/dev/null)'
complete -c virt-up -s n -l name -f -r -a '(virt-up --list -q 2>/dev/null)'
";
