//! virt-maker: templates (YAML) built through the step cache. `template` loads and
//! validates, `runners` is the runner table, `render` the Jinja rendering, `apply` turns
//! a step into tool runs on a layer, `build` walks a template's chain through the cache.

pub mod apply;
pub mod build;
pub mod cli;
pub mod fetch;
pub mod render;
pub mod runners;
pub mod template;
