//! virt-up: ready-to-use virtual machines on a libvirt host in seconds.
//!
//! Data flows one way through modules with one job each (docs/design.md):
//! front-ends (`virtup`, `maker`, `genvm`) -> `config` (the typed plan) -> `image` sources
//! -> `steps` and `stepcache` -> `template` -> `instance` -> `readiness` -> `records` and
//! `inventory`; `hypervisor` is the seam to libvirt; `placement` picks a `[host]` for each
//! new instance; the rest are small utilities. The binaries are thin.

mod choice;
pub(crate) mod clock;
pub mod config;
pub(crate) mod digest;
pub mod docs;
pub mod error;
pub(crate) mod fsutil;
pub mod genvm;
// unsafe: virDomainSaveFlags, which the virt crate does not wrap (warm images).
#[allow(unsafe_code)]
pub mod hypervisor;
pub(crate) mod identity;
pub mod image;
pub(crate) mod lock;
pub(crate) mod log;
pub mod mac;
pub mod manpage;
pub(crate) mod names;
pub mod output;
// unsafe: getuid and geteuid, for the runtime directory and --init's destination.
#[allow(unsafe_code)]
pub mod paths;
pub mod placement;
pub mod random;
pub(crate) mod reach;
pub(crate) mod readiness;
pub mod records;
pub(crate) mod runner;
pub mod share;
pub(crate) mod size;
pub(crate) mod sshkeys;
pub mod status;
pub(crate) mod stepcache;
pub(crate) mod steps;

pub use error::{Error, Result};
pub mod context;
pub mod instance;
pub mod maker;
pub(crate) mod playbook;
pub(crate) mod template;
pub mod virtup;
