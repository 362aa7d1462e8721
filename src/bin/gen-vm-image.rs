//! `gen-vm-image`: parse the command line, call the library, print the JSON document (on
//! stdout on success, on stderr on failure, as the original did) and exit with its return
//! code.

use clap::Parser;
use virt_up::genvm::cli::{normalize_args, run, Cli};
use virt_up::paths::process_env;

fn main() {
    virt_up::image::cancel::install_interrupt_handler();
    let cli = Cli::parse_from(normalize_args(std::env::args_os()));
    let document = run(cli, &process_env);
    if document.is_success() {
        virt_up::outln!("{}", document.to_json());
    } else {
        eprintln!("{}", document.to_json());
    }
    std::process::exit(document.return_code);
}
