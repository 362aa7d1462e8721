//! `virt-maker`: the compatible front-end for virt-maker users. Parse, call the library,
//! map errors to exit codes.

use clap::Parser;
use virt_up::maker::cli::{run, Cli};
use virt_up::maker::verbosity::verbosity;
use virt_up::paths::{process_env, Paths};

fn main() {
    let mut cli = Cli::parse();
    let result = verbosity(cli.verbose, &process_env).and_then(|v| {
        cli.verbose = v;
        Paths::from_env(&process_env).and_then(|paths| run(cli, paths))
    });
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("virt-maker: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
