//! `virt-up`: parse the command line, call the library, map errors to exit codes.

use clap::{CommandFactory, Parser};
use virt_up::paths::{process_env, Paths};
use virt_up::virtup::cli::Cli;

fn main() {
    let cli = Cli::parse();
    if let Some(shell) = cli.completions {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "virt-up",
            &mut std::io::stdout(),
        );
        return;
    }
    if cli.man {
        let _ = clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout());
        return;
    }
    let run = Paths::from_env(&process_env).and_then(|paths| {
        virt_up::virtup::app::run(cli, paths, process_env("LIBVIRT_DEFAULT_URI"))
    });
    let code = match run {
        Ok(code) => code,
        Err(e) => {
            eprintln!("virt-up: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
