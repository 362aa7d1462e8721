//! `virt-up`: parse the command line, call the library, map errors to exit codes.

use clap::Parser;
use virt_up::paths::{process_env, Paths};
use virt_up::virtup::cli::Cli;

fn main() {
    let cli = Cli::parse();
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
