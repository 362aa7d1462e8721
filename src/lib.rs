//! virt-up: ready-to-use virtual machines on a libvirt host in seconds.
//!
//! Data flows one way through modules with one job each:
//! config -> template (image build) -> instance (clone + identity + domain)
//! -> readiness -> records and inventory. The binaries are thin front-ends.

pub mod config;
pub(crate) mod digest;
pub mod domain_xml;
pub mod error;
pub mod fsutil;
pub mod genvm;
// unsafe: geteuid, for the default libvirt URI.
#[allow(unsafe_code)]
pub mod hypervisor;
pub mod identity;
pub mod image;
pub mod inventory;
pub mod lock;
pub(crate) mod log;
pub mod mac;
pub mod names;
// unsafe: getuid, for the runtime directory.
#[allow(unsafe_code)]
pub mod paths;
pub mod random;
pub mod readiness;
pub mod records;
pub mod runner;
pub(crate) mod size;
pub mod ssh;
pub mod sshkeys;
pub mod stepcache;
pub mod steps;

pub use error::{Error, Result};
pub mod app;
pub mod cli;
pub mod context;
pub mod instance;
pub mod maker;
pub mod playbook;
pub mod shipped;
pub mod template;
pub mod virt_install;
