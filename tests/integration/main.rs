//! The integration tier: the real `virt-up` binary against libvirt's test driver and fake
//! libguestfs tools. Every CLI path, bad input, exit code and file mode a user would notice.

#[path = "../common/run.rs"]
mod run;

mod harness;
mod http;

mod cli_errors;
mod config_files;
mod debootstrap;
mod gen_vm_image;
mod gvi_compat;
mod hosts;
mod lifecycle;
mod maker_dry_run;
mod maker_step_forms;
mod module_graph;
mod mounts;
mod original_config;
mod plan_errors;
mod sizes;
mod status_lines;
mod storage;
mod virt_maker;
mod virtup_cli;
