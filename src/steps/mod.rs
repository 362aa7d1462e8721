//! The customization-steps stage: virt-maker templates (YAML) built through the step cache.
//! `template` loads and validates, `runners` is the runner table, `render` the Jinja
//! rendering, `apply` turns a step into tool runs on a layer, `group` says which steps
//! share one virt-customize run, `build` walks a template's chain through the cache. The
//! `virt-maker` front-end (`maker/`) and virt-up's templates (`template/`) both drive it.

pub mod apply;
pub mod build;
pub mod fetch;
pub mod group;
pub mod render;
pub mod runners;
pub mod template;
