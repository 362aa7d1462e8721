//! virt-maker: the front-end of the customization-steps stage ([`crate::steps`]): build,
//! cache and runners commands.

mod build;
mod cache;
pub mod cli;
mod runners;
pub mod verbosity;
