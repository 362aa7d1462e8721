//! virt-up's own front-end: the command line (`cli`), what each command does (`app`), and
//! the configuration it ships and installs with `--init` (`shipped`).

pub mod app;
pub mod cli;
mod create;
mod delete;
mod init;
mod lifecycle;
mod login;
pub(crate) mod shipped;
mod show;
mod snapshot;
