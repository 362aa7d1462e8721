//! virt-maker: the front-end of the customization-steps stage ([`crate::steps`]): build,
//! cache and runners commands.

pub mod cli;
pub mod verbosity;
