complete -c virt-up -s n -l name -d 'Instance name (same as the positional <name>)' -r
complete -c virt-up -l snapshot -d 'Take a disk snapshot of the instance (libvirt, inside its qcow2 disk); a running instance is stopped for it and started again' -r
complete -c virt-up -l revert -d 'Put the instance\'s disk back as it was at a snapshot; a running instance is stopped first and started again' -r
complete -c virt-up -l delete-snapshot -d 'Delete one of the instance\'s snapshots' -r
complete -c virt-up -l copy -d 'Copy files into or out of an instance with scp (its key, its pinned host key; directories too): --copy SRC NAME:DST or --copy NAME:SRC DST' -r
complete -c virt-up -l playbook -d 'Run an ansible playbook on the instance' -r
complete -c virt-up -s t -l template -d 'Template name (default: <name>)' -r
complete -c virt-up -l root-password -d 'Root password of the new instance, set in the guest as a hash, never stored (default: none, root\'s password stays locked and root logs in with the instance\'s key)' -r
complete -c virt-up -l user -d 'Login user (default: the template\'s, \'virt\'); another name is created in the new instance, with passwordless sudo' -r
complete -c virt-up -l password -d 'Password of the login user, set in the guest as a hash, never stored (default: none, the user logs in with the instance\'s key only)' -r
complete -c virt-up -l password-file -d '--password read from the first line of this file (\'-\': standard input), so it is not in the process list' -r -F
complete -c virt-up -l root-password-file -d '--root-password read from the first line of this file (\'-\': standard input)' -r -F
complete -c virt-up -l size -d 'Instance disk size, e.g. 20G; not below the template\'s (default: the template\'s disk size)' -r
complete -c virt-up -l memory -d 'Instance memory in MiB (default: the template\'s \'memory\' setting, 512)' -r
complete -c virt-up -l vcpus -d 'Instance vcpus (default: the template\'s \'vcpus\' setting, 1)' -r
complete -c virt-up -l graphics -d 'Instance graphics type: none, vnc or spice (default: the template\'s \'graphics\' setting, none)' -r -f -a "none\t''
vnc\t''
spice\t''"
complete -c virt-up -l dns-domain -d 'DNS domain appended to the instance\'s host name (default: the \'dns-domain\' setting)' -r
complete -c virt-up -l mount -d 'Share a host directory with the new instance (virtiofs), mounted at GUEST_DIR (default: the same path as HOST_DIR) from its first boot on; repeatable. Needs qemu:///system and virtiofsd on the host' -r
complete -c virt-up -l host -d 'Create the new instances on this libvirt host, a [host NAME] section of settings.cfg (default: each is placed on the template\'s \'hosts\' with the most free memory, within their max-instances and keep-free-memory)' -r
complete -c virt-up -l command -d 'With --login: run this command over ssh and return its exit code' -r
complete -c virt-up -l init -d 'Install the shipped configuration files (settings.cfg, templates.d, scripts, playbooks): as root in /etc/virt-up, otherwise in the user\'s config directory'
complete -c virt-up -l list -d 'List instances'
complete -c virt-up -l show-templates -d 'Show template definitions'
complete -c virt-up -l show-paths -d 'Show configuration and data paths'
complete -c virt-up -l delete -d 'Delete the instance; with --all and a template name: that template; --all without a name: every instance, then every template (asks first, see --yes)'
complete -c virt-up -l login -d 'Login to the instance (a stopped one is started and waited for first)'
complete -c virt-up -l start -d 'Start the stopped instance(s) and wait until each is ready (host key checked)'
complete -c virt-up -l stop -d 'Stop the instance(s): ACPI power-off, then off after the \'stop-timeout\' setting'
complete -c virt-up -l restart -d 'Stop, then start the instance(s)'
complete -c virt-up -l reset -d 'Give the instance(s) a fresh disk cloned from the template, with the same identity (name, MAC, address, login key, host key), and wait until each is ready; its snapshots go with the old disk'
complete -c virt-up -l info -d 'Show one instance: its record and live state (state, address, disk use, ...)'
complete -c virt-up -l snapshots -d 'List the instance\'s snapshots with their creation time'
complete -c virt-up -l sftp -d 'With --login: use sftp'
complete -c virt-up -l no-clone -d 'Build the template instance only'
complete -c virt-up -l no-inventory -d 'Exclude the instance from the ansible inventory'
complete -c virt-up -l all -d 'With --list: include templates; with --delete: see --delete'
complete -c virt-up -l yes -d 'Answer yes to the question of --delete --all (needed without a terminal)'
complete -c virt-up -s q -l quiet -d 'Show less output; with --list and --show-templates: the names only'
complete -c virt-up -l debug -d 'Show debug tracing (commands run, phase durations)'
complete -c virt-up -l force -d 'With --init: overwrite files; with --no-clone: rebuild the template'
complete -c virt-up -l json -d 'Machine-readable output on stdout (JSON): with --list, --info, --snapshots and --show-*; with a create, --start, --stop, --restart, --reset and --delete, the records of the instances'
complete -c virt-up -s h -l help -d 'Print help'
complete -c virt-up -s V -l version -d 'Print version'
# Instance and template names, from virt-up itself (nothing when it fails).
complete -c virt-up -f -n 'not string match -q -- "-*" (commandline -ct)' -a '(virt-up --list -q 2>/dev/null)'
complete -c virt-up -s t -l template -f -r -a '(virt-up --show-templates -q 2>/dev/null)'
complete -c virt-up -s n -l name -f -r -a '(virt-up --list -q 2>/dev/null)'
