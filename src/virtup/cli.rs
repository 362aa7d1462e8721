//! The `virt-up` command line, as the original tool's (flag style, defaults), defined once:
//! `--help`, the man page and the shell completions are all generated from it.

use clap::{ArgAction, Parser};

#[derive(Debug, Parser)]
#[command(
    name = "virt-up",
    version,
    about = "Create ready-to-use virtual machines from templates on a libvirt host, in seconds",
    override_usage = "virt-up [--name] <name>... --template <template> [create-options]
       virt-up [--name] <name> --login [--sftp|--command \"<command>\"]
       virt-up [--name] <name> --playbook <playbook>
       virt-up [--name] <name> --delete | --delete --all
       virt-up --init [--force]
       virt-up --list [--all] [--json]
       virt-up --show-templates | --show-paths [--json]",
    after_help = "Environment: LIBVIRT_DEFAULT_URI, VIRTUP_CONFIG_HOME, XDG_CONFIG_HOME, VIRTUP_DATA_HOME, XDG_DATA_HOME."
)]
pub struct Cli {
    /// Instance name(s); several names create several instances at once
    #[arg(value_name = "name")]
    pub names: Vec<String>,

    /// Instance name (same as the positional <name>)
    #[arg(long = "name", value_name = "name", action = ArgAction::Append)]
    pub name_flag: Vec<String>,

    /// Initialize configuration files in the user's config directory
    #[arg(long, group = "mode")]
    pub init: bool,

    /// List instances
    #[arg(long, group = "mode")]
    pub list: bool,

    /// Show template definitions
    #[arg(long, group = "mode")]
    pub show_templates: bool,

    /// Show configuration and data paths
    #[arg(long, group = "mode")]
    pub show_paths: bool,

    /// Delete the instance (with --all and a template name: the template)
    #[arg(long, group = "mode")]
    pub delete: bool,

    /// Login to a running instance
    #[arg(long, group = "mode")]
    pub login: bool,

    /// Run an ansible playbook on the instance
    #[arg(long, value_name = "playbook", group = "mode")]
    pub playbook: Option<String>,

    /// Template name (default: <name>)
    #[arg(short = 't', long, value_name = "template")]
    pub template: Option<String>,

    /// Root password (default: random)
    #[arg(long, value_name = "root-password")]
    pub root_password: Option<String>,

    /// Username (default: the template's, 'virt')
    #[arg(long, value_name = "user")]
    pub user: Option<String>,

    /// Password (default: random)
    #[arg(long, value_name = "password")]
    pub password: Option<String>,

    /// Instance disk size, e.g. 20G (default: image size)
    #[arg(long, value_name = "size")]
    pub size: Option<String>,

    /// Instance memory in MiB (default: 512)
    #[arg(long, value_name = "memory")]
    pub memory: Option<u64>,

    /// Instance vcpus (default: 1)
    #[arg(long, value_name = "vcpus")]
    pub vcpus: Option<u64>,

    /// Instance graphics type: none, vnc or spice (default: none)
    #[arg(long, value_name = "graphics", value_parser = ["none", "vnc", "spice"])]
    pub graphics: Option<String>,

    /// DNS domain name
    #[arg(long, value_name = "dns-domain")]
    pub dns_domain: Option<String>,

    /// With --login: use sftp
    #[arg(long, requires = "login")]
    pub sftp: bool,

    /// With --login: run this command over ssh and return its exit code
    #[arg(
        long,
        value_name = "command",
        requires = "login",
        conflicts_with = "sftp"
    )]
    pub command: Option<String>,

    /// Build the template instance only
    #[arg(long)]
    pub no_clone: bool,

    /// Exclude the instance from the ansible inventory
    #[arg(long)]
    pub no_inventory: bool,

    /// Include template instances
    #[arg(long)]
    pub all: bool,

    /// Answer yes to interactive questions
    #[arg(long)]
    pub yes: bool,

    /// Show less output
    #[arg(long)]
    pub quiet: bool,

    /// Show debug tracing (commands run, phase durations)
    #[arg(long)]
    pub debug: bool,

    /// Overwrite files (--init), rebuild the template (--no-clone)
    #[arg(long)]
    pub force: bool,

    /// Machine-readable output for --list and --show-*
    #[arg(long)]
    pub json: bool,

    /// Print a shell completion script
    #[arg(long, value_name = "shell", hide = true)]
    pub completions: Option<clap_complete::Shell>,

    /// Print the man page
    #[arg(long, hide = true)]
    pub man: bool,
}

impl Cli {
    /// Positional names and --name values, in order.
    pub fn all_names(&self) -> Vec<String> {
        self.names
            .iter()
            .chain(self.name_flag.iter())
            .cloned()
            .collect()
    }
}
