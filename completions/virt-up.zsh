#compdef virt-up

autoload -U is-at-least

_virt_up_instances() {
    compadd -- ${(f)"$(virt-up --list -q 2>/dev/null)"}
}

_virt_up_templates() {
    compadd -- ${(f)"$(virt-up --show-templates -q 2>/dev/null)"}
}

_virt-up() {
    typeset -A opt_args
    typeset -a _arguments_options
    local ret=1

    if is-at-least 5.2; then
        _arguments_options=(-s -S -C)
    else
        _arguments_options=(-s -C)
    fi

    local context curcontext="$curcontext" state line
    _arguments "${_arguments_options[@]}" : \
'*-n+[Instance name (same as the positional <name>)]:name:_virt_up_instances' \
'*--name=[Instance name (same as the positional <name>)]:name:_virt_up_instances' \
'--snapshot=[Take a disk snapshot of the instance (libvirt, inside its qcow2 disk); a running instance is stopped for it and started again]:snap:_default' \
'--revert=[Put the instance'\''s disk back as it was at a snapshot; a running instance is stopped first and started again]:snap:_default' \
'--delete-snapshot=[Delete one of the instance'\''s snapshots]:snap:_default' \
'*--copy=[Copy files into or out of an instance with scp (its key, its pinned host key; directories too)\: --copy SRC NAME\:DST or --copy NAME\:SRC DST]:src:_default:src:_default' \
'--playbook=[Run an ansible playbook on the instance]:playbook:_default' \
'-t+[Template name (default\: <name>)]:template:_virt_up_templates' \
'--template=[Template name (default\: <name>)]:template:_virt_up_templates' \
'--root-password=[Root password of the new instance, set in the guest as a hash, never stored (default\: none, root'\''s password stays locked and root logs in with the instance'\''s key)]:root-password:_default' \
'--user=[Login user (default\: the template'\''s, '\''virt'\''); another name is created in the new instance, with passwordless sudo]:user:_default' \
'--password=[Password of the login user, set in the guest as a hash, never stored (default\: none, the user logs in with the instance'\''s key only)]:password:_default' \
'(--password)--password-file=[--password read from the first line of this file ('\''-'\''\: standard input), so it is not in the process list]:file:_files' \
'(--root-password)--root-password-file=[--root-password read from the first line of this file ('\''-'\''\: standard input)]:file:_files' \
'--size=[Instance disk size, e.g. 20G; not below the template'\''s (default\: the template'\''s disk size)]:size:_default' \
'--memory=[Instance memory in MiB (default\: the template'\''s '\''memory'\'' setting, 512)]:memory:_default' \
'--vcpus=[Instance vcpus (default\: the template'\''s '\''vcpus'\'' setting, 1)]:vcpus:_default' \
'--graphics=[Instance graphics type\: none, vnc or spice (default\: the template'\''s '\''graphics'\'' setting, none)]:graphics:(none vnc spice)' \
'--dns-domain=[DNS domain appended to the instance'\''s host name (default\: the '\''dns-domain'\'' setting)]:dns-domain:_default' \
'*--mount=[Share a host directory with the new instance (virtiofs), mounted at GUEST_DIR (default\: the same path as HOST_DIR) from its first boot on; repeatable. Needs qemu\:///system and virtiofsd on the host]:host-dir[:guest-dir]:_default' \
'--host=[Create the new instances on this libvirt host, a \[host NAME\] section of settings.cfg (default\: each is placed on the template'\''s '\''hosts'\'' with the most free memory, within their max-instances and keep-free-memory)]:host:_default' \
'(--sftp)--command=[With --login\: run this command over ssh and return its exit code]:command:_default' \
'--init[Install the shipped configuration files (settings.cfg, templates.d, scripts, playbooks)\: as root in /etc/virt-up, otherwise in the user'\''s config directory]' \
'--list[List instances]' \
'--show-templates[Show template definitions]' \
'--show-paths[Show configuration and data paths]' \
'--delete[Delete the instance; with --all and a template name\: that template; --all without a name\: every instance, then every template (asks first, see --yes)]' \
'--login[Login to the instance (a stopped one is started and waited for first)]' \
'--start[Start the stopped instance(s) and wait until each is ready (host key checked)]' \
'--stop[Stop the instance(s)\: ACPI power-off, then off after the '\''stop-timeout'\'' setting]' \
'--restart[Stop, then start the instance(s)]' \
'--reset[Give the instance(s) a fresh disk cloned from the template, with the same identity (name, MAC, address, login key, host key), and wait until each is ready; its snapshots go with the old disk]' \
'--info[Show one instance\: its record and live state (state, address, disk use, ...)]' \
'--snapshots[List the instance'\''s snapshots with their creation time]' \
'--sftp[With --login\: use sftp]' \
'--no-clone[Build the template instance only]' \
'--no-inventory[Exclude the instance from the ansible inventory]' \
'--all[With --list\: include templates; with --delete\: see --delete]' \
'--yes[Answer yes to the question of --delete --all (needed without a terminal)]' \
'-q[Show less output; with --list and --show-templates\: the names only]' \
'--quiet[Show less output; with --list and --show-templates\: the names only]' \
'--debug[Show debug tracing (commands run, phase durations)]' \
'--force[With --init\: overwrite files; with --no-clone\: rebuild the template]' \
'--json[Machine-readable output on stdout (JSON)\: with --list, --info, --snapshots and --show-*; with a create, --start, --stop, --restart, --reset and --delete, the records of the instances]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
'*::names -- Instance name(s); several names create several instances at once:_virt_up_instances' \
&& ret=0
}

(( $+functions[_virt-up_commands] )) ||
_virt-up_commands() {
    local commands; commands=()
    _describe -t commands 'virt-up commands' commands "$@"
}

if [ "$funcstack[1]" = "_virt-up" ]; then
    _virt-up "$@"
else
    compdef _virt-up virt-up
fi
