//! The `virt-up` command line, as the original tool's (flag style, defaults), defined once:
//! `--help`, the man page and the shell completions are all generated from it.

use clap::{ArgAction, Parser};

#[derive(Debug, Parser)]
#[command(
    name = "virt-up",
    version,
    about = "Create ready-to-use virtual machines from templates on a libvirt host, in seconds",
    override_usage = "virt-up [--name] <name>... --template <template> [create-options] [--mount <host-dir>[:<guest-dir>]]...
       virt-up [--name] <template> --no-clone [--force] | --template <template> --no-clone [--force]
       virt-up [--name] <name> --login [--sftp | --command \"<command>\" | -- <command> <arg>...]
       virt-up [--name] <name> --playbook <playbook>
       virt-up [--name] <name>... --start | --stop | --restart | --reset [--json]
       virt-up [--name] <name> --info [--json]
       virt-up [--name] <name> --snapshot <snap> | --snapshots [--json] | --revert <snap> | --delete-snapshot <snap>
       virt-up --copy <src> <name>:<dst> | --copy <name>:<src> <dst>
       virt-up [--name] <name>... --delete [--all] [--json]
       virt-up --delete --all [--yes]
       virt-up --init [--force]
       virt-up --list [<name>...] [--all] [-q|--json]
       virt-up --show-templates | --show-paths [--json]",
    after_help = "Environment: LIBVIRT_DEFAULT_URI, VIRTUP_CONFIG_HOME, XDG_CONFIG_HOME, VIRTUP_DATA_HOME, XDG_DATA_HOME, VIRTUP_CACHE_HOME, XDG_CACHE_HOME, XDG_RUNTIME_DIR, VIRTUP_SYSTEM_CONFIG (replaces /etc/virt-up)."
)]
pub struct Cli {
    /// Instance name(s); several names create several instances at once
    #[arg(value_name = "name")]
    pub names: Vec<String>,

    /// Instance name (same as the positional <name>)
    #[arg(short = 'n', long = "name", value_name = "name", action = ArgAction::Append)]
    pub name_flag: Vec<String>,

    /// Install the shipped configuration files (settings.cfg, templates.d, scripts, playbooks):
    /// as root in /etc/virt-up, otherwise in the user's config directory
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

    /// Delete the instance; with --all and a template name: that template; --all without
    /// a name: every instance, then every template (asks first, see --yes)
    #[arg(long, group = "mode")]
    pub delete: bool,

    /// Login to the instance (a stopped one is started and waited for first)
    #[arg(long, group = "mode")]
    pub login: bool,

    /// Start the stopped instance(s) and wait until each is ready (host key checked)
    #[arg(long, group = "mode")]
    pub start: bool,

    /// Stop the instance(s): ACPI power-off, then off after the 'stop-timeout' setting
    #[arg(long, group = "mode")]
    pub stop: bool,

    /// Stop, then start the instance(s)
    #[arg(long, group = "mode")]
    pub restart: bool,

    /// Give the instance(s) a fresh disk cloned from the template, with the same identity
    /// (name, MAC, address, login key, host key), and wait until each is ready; its
    /// snapshots go with the old disk
    #[arg(long, group = "mode")]
    pub reset: bool,

    /// Show one instance: its record and live state (state, address, disk use, ...)
    #[arg(long, group = "mode")]
    pub info: bool,

    /// Take a disk snapshot of the instance (libvirt, inside its qcow2 disk); a running
    /// instance is stopped for it and started again
    #[arg(long, value_name = "snap", group = "mode")]
    pub snapshot: Option<String>,

    /// List the instance's snapshots with their creation time
    #[arg(long, group = "mode")]
    pub snapshots: bool,

    /// Put the instance's disk back as it was at a snapshot; a running instance is
    /// stopped first and started again
    #[arg(long, value_name = "snap", group = "mode")]
    pub revert: Option<String>,

    /// Delete one of the instance's snapshots
    #[arg(long, value_name = "snap", group = "mode")]
    pub delete_snapshot: Option<String>,

    /// Copy files into or out of an instance with scp (its key, its pinned host key;
    /// directories too): --copy SRC NAME:DST or --copy NAME:SRC DST
    #[arg(long, num_args = 2, value_names = ["src", "dst"], group = "mode")]
    pub copy: Vec<String>,

    /// Run an ansible playbook on the instance
    #[arg(long, value_name = "playbook", group = "mode")]
    pub playbook: Option<String>,

    /// Template name (default: <name>)
    #[arg(short = 't', long, value_name = "template")]
    pub template: Option<String>,

    /// Root password of the new instance, set in the guest as a hash, never stored
    /// (default: none, root's password stays locked and root logs in with the instance's key)
    #[arg(long, value_name = "root-password")]
    pub root_password: Option<String>,

    /// Login user (default: the template's, 'virt'); another name is created in the new
    /// instance, with passwordless sudo
    #[arg(long, value_name = "user")]
    pub user: Option<String>,

    /// Password of the login user, set in the guest as a hash, never stored
    /// (default: none, the user logs in with the instance's key only)
    #[arg(long, value_name = "password")]
    pub password: Option<String>,

    /// --password read from the first line of this file ('-': standard input), so it is
    /// not in the process list
    #[arg(long, value_name = "file", conflicts_with = "password")]
    pub password_file: Option<std::path::PathBuf>,

    /// --root-password read from the first line of this file ('-': standard input)
    #[arg(long, value_name = "file", conflicts_with = "root_password")]
    pub root_password_file: Option<std::path::PathBuf>,

    /// Instance disk size, e.g. 20G; not below the template's (default: the template's disk size)
    #[arg(long, value_name = "size")]
    pub size: Option<String>,

    /// Instance memory in MiB (default: the template's 'memory' setting, 512)
    #[arg(long, value_name = "memory")]
    pub memory: Option<u64>,

    /// Instance vcpus (default: the template's 'vcpus' setting, 1)
    #[arg(long, value_name = "vcpus")]
    pub vcpus: Option<u64>,

    /// Instance graphics type: none, vnc or spice (default: the template's 'graphics' setting, none)
    #[arg(long, value_name = "graphics", value_parser = ["none", "vnc", "spice"])]
    pub graphics: Option<String>,

    /// DNS domain appended to the instance's host name (default: the 'dns-domain' setting)
    #[arg(long, value_name = "dns-domain")]
    pub dns_domain: Option<String>,

    /// Share a host directory with the new instance (virtiofs), mounted at GUEST_DIR (default:
    /// the same path as HOST_DIR) from its first boot on; repeatable. Needs qemu:///system
    /// and virtiofsd on the host
    #[arg(long = "mount", value_name = "host-dir[:guest-dir]", action = ArgAction::Append)]
    pub mounts: Vec<String>,

    /// Create the new instances on this libvirt host, a [host NAME] section of settings.cfg
    /// (default: each is placed on the template's 'hosts' with the most free memory, within
    /// their max-instances and keep-free-memory)
    #[arg(long, value_name = "host")]
    pub host: Option<String>,

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

    /// With --login: after '--', a command and its arguments, run as they are (no shell
    /// string to quote); its exit code is returned
    #[arg(
        last = true,
        value_name = "argv",
        requires = "login",
        conflicts_with_all = ["sftp", "command"]
    )]
    pub argv: Vec<String>,

    /// Build the template instance only
    #[arg(long)]
    pub no_clone: bool,

    /// Exclude the instance from the ansible inventory
    #[arg(long)]
    pub no_inventory: bool,

    /// With --list: include templates; with --delete: see --delete
    #[arg(long)]
    pub all: bool,

    /// Answer yes to the question of --delete --all (needed without a terminal)
    #[arg(long)]
    pub yes: bool,

    /// Show less output; with --list and --show-templates: the names only
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Show debug tracing (commands run, phase durations)
    #[arg(long)]
    pub debug: bool,

    /// With --init: overwrite files; with --no-clone: rebuild the template
    #[arg(long)]
    pub force: bool,

    /// Machine-readable output on stdout (JSON): with --list, --info, --snapshots and --show-*; with a
    /// create, --start, --stop, --restart, --reset and --delete, the records of the instances
    #[arg(long)]
    pub json: bool,
}

/// The man page: the command line, exit codes, environment and files.
pub fn man_page() -> String {
    use crate::manpage::{render, Section, PATH_VARIABLES};
    use clap::CommandFactory;
    let mut environment = vec![(
        "LIBVIRT_DEFAULT_URI",
        "The libvirt connection when no libvirt-uri setting gives one; else libvirt's own choice: uri_default in libvirt.conf, else qemu:///system as root and qemu:///session otherwise.",
    )];
    environment.extend_from_slice(PATH_VARIABLES);
    render(
        Cli::command(),
        &[
            Section {
                title: "EXIT STATUS",
                items: &[
                    ("0", "Success."),
                    ("1", "Anything else (a tool failed, an I/O error)."),
                    ("2", "Bad input or configuration; nothing was done."),
                    ("3", "Instance or template state: exists, not found, in use, not usable."),
                    ("4", "Host not ready: a missing tool, libvirtd, pool or network, no room in the pool."),
                    ("5", "Timeout waiting for an address or SSH (the phase and console log are named)."),
                    ("130", "Interrupted."),
                    ("--login --command, --login --", "The remote command's exit code."),
                ],
            },
            Section {
                title: "ENVIRONMENT",
                items: &environment,
            },
            Section {
                title: "FILES",
                items: &[
                    (
                        "/etc/virt-up/settings.cfg, /etc/virt-up/templates.d/*.cfg",
                        "System-wide settings and templates; the user's files override them key by key.",
                    ),
                    (
                        "~/.config/virt-up/settings.cfg, ~/.config/virt-up/templates.d/*.cfg",
                        "The user's settings and templates (virt-up --init writes them).",
                    ),
                    (
                        "~/.config/virt-up/playbooks, ~/.config/virt-up/scripts",
                        "Playbooks (--playbook, template-playbook, instance-playbook) and {scripts}.",
                    ),
                    (
                        "~/.local/share/virt-up/instance/NAME.json",
                        "Each instance's and template's record (0600).",
                    ),
                    (
                        "~/.local/share/virt-up/sshkeys",
                        "Each instance's login key (0600).",
                    ),
                    (
                        "~/.local/share/virt-up/inventory.yaml, ssh_config, known_hosts",
                        "The ansible inventory, an ssh_config to Include, and the pinned host keys.",
                    ),
                ],
            },
        ],
    )
}

/// What a command line asks for; each flag applies to some of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Init,
    ShowPaths,
    ShowTemplates,
    List,
    Delete,
    Login,
    Start,
    Stop,
    Restart,
    Reset,
    Info,
    Snapshot,
    Snapshots,
    Revert,
    DeleteSnapshot,
    Copy,
    Playbook,
    /// Build a template only (`--no-clone`).
    Template,
    Create,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Init => "--init",
            Mode::ShowPaths => "--show-paths",
            Mode::ShowTemplates => "--show-templates",
            Mode::List => "--list",
            Mode::Delete => "--delete",
            Mode::Login => "--login",
            Mode::Start => "--start",
            Mode::Stop => "--stop",
            Mode::Restart => "--restart",
            Mode::Reset => "--reset",
            Mode::Info => "--info",
            Mode::Snapshot => "--snapshot",
            Mode::Snapshots => "--snapshots",
            Mode::Revert => "--revert",
            Mode::DeleteSnapshot => "--delete-snapshot",
            Mode::Copy => "--copy",
            Mode::Playbook => "--playbook",
            Mode::Template => "--no-clone",
            Mode::Create => "creating instances",
        }
    }

    /// Whether the mode works on named instances or templates.
    fn takes_names(self) -> bool {
        !matches!(
            self,
            Mode::Init | Mode::ShowPaths | Mode::ShowTemplates | Mode::Copy
        )
    }
}

impl Cli {
    pub fn mode(&self) -> Mode {
        if self.init {
            Mode::Init
        } else if self.show_paths {
            Mode::ShowPaths
        } else if self.show_templates {
            Mode::ShowTemplates
        } else if self.list {
            Mode::List
        } else if self.delete {
            Mode::Delete
        } else if self.login {
            Mode::Login
        } else if self.start {
            Mode::Start
        } else if self.stop {
            Mode::Stop
        } else if self.restart {
            Mode::Restart
        } else if self.reset {
            Mode::Reset
        } else if self.info {
            Mode::Info
        } else if self.snapshot.is_some() {
            Mode::Snapshot
        } else if self.snapshots {
            Mode::Snapshots
        } else if self.revert.is_some() {
            Mode::Revert
        } else if self.delete_snapshot.is_some() {
            Mode::DeleteSnapshot
        } else if !self.copy.is_empty() {
            Mode::Copy
        } else if self.playbook.is_some() {
            Mode::Playbook
        } else if self.no_clone {
            Mode::Template
        } else {
            Mode::Create
        }
    }

    /// Refuse a flag the mode would not use: a flag that is accepted and then ignored
    /// would let the user believe it did something.
    pub fn check_flags(&self) -> Result<(), String> {
        let mode = self.mode();
        if !mode.takes_names() && !self.all_names().is_empty() {
            return Err(format!("{} takes no <name>", mode.label()));
        }
        for (flag, given, applies) in self.scoped_flags() {
            if given && !applies.contains(&mode) {
                let to: Vec<&str> = applies.iter().map(|m| m.label()).collect();
                return Err(format!(
                    "{flag} does not apply to {} (it applies to {})",
                    mode.label(),
                    to.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The flags that mean something only in some modes: each with whether it was given.
    fn scoped_flags(&self) -> [(&'static str, bool, &'static [Mode]); 19] {
        use Mode::*;
        const INSTANCE: &[Mode] = &[Create];
        [
            ("--no-clone", self.no_clone, &[Template]),
            ("--template", self.template.is_some(), &[Create, Template]),
            ("--root-password", self.root_password.is_some(), INSTANCE),
            ("--user", self.user.is_some(), INSTANCE),
            ("--password", self.password.is_some(), INSTANCE),
            ("--password-file", self.password_file.is_some(), INSTANCE),
            (
                "--root-password-file",
                self.root_password_file.is_some(),
                INSTANCE,
            ),
            ("--size", self.size.is_some(), INSTANCE),
            ("--memory", self.memory.is_some(), INSTANCE),
            ("--vcpus", self.vcpus.is_some(), INSTANCE),
            ("--graphics", self.graphics.is_some(), INSTANCE),
            ("--dns-domain", self.dns_domain.is_some(), INSTANCE),
            ("--mount", !self.mounts.is_empty(), INSTANCE),
            ("--host", self.host.is_some(), INSTANCE),
            ("--no-inventory", self.no_inventory, INSTANCE),
            ("--all", self.all, &[List, Delete]),
            ("--yes", self.yes, &[Delete]),
            ("--force", self.force, &[Init, Template]),
            (
                "--json",
                self.json,
                &[
                    List,
                    ShowTemplates,
                    ShowPaths,
                    Info,
                    Snapshots,
                    Create,
                    Start,
                    Stop,
                    Restart,
                    Reset,
                    Delete,
                ],
            ),
        ]
    }

    /// Positional names and --name values, in order.
    pub fn all_names(&self) -> Vec<String> {
        self.names
            .iter()
            .chain(self.name_flag.iter())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A new flag must say where it applies (or be a mode or apply everywhere), so that no
    /// flag is parsed and then ignored.
    #[test]
    fn every_flag_is_a_mode_global_or_scoped() {
        let cli = Cli::parse_from(["virt-up"]);
        let scoped: Vec<&str> = cli.scoped_flags().iter().map(|f| f.0).collect();
        let modes = [
            "--init",
            "--list",
            "--show-templates",
            "--show-paths",
            "--delete",
            "--start",
            "--stop",
            "--restart",
            "--reset",
            "--info",
            "--snapshot",
            "--snapshots",
            "--revert",
            "--delete-snapshot",
            "--copy",
        ];
        let other = ["--login", "--playbook", "--name", "--quiet", "--debug"];
        // Checked by clap: they require --login.
        let login_only = ["--sftp", "--command"];
        for arg in Cli::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let flag = format!("--{long}");
            let known = [&scoped[..], &modes, &other, &login_only]
                .iter()
                .any(|list| list.contains(&flag.as_str()));
            assert!(
                known || arg.is_hide_set(),
                "{flag} has no place in check_flags"
            );
        }
    }

    #[test]
    fn a_flag_outside_its_mode_is_refused() {
        let check = |args: &[&str]| Cli::parse_from(args).check_flags();
        assert!(check(&["virt-up", "w", "--template", "t", "--memory", "1024"]).is_ok());
        assert!(check(&["virt-up", "--delete", "--all", "--yes"]).is_ok());
        assert_eq!(
            check(&["virt-up", "w", "--login", "--vcpus", "2"]).unwrap_err(),
            "--vcpus does not apply to --login (it applies to creating instances)"
        );
    }
}
