complete -c virt-up -l name -d 'Instance name (same as the positional <name>)' -r
complete -c virt-up -l playbook -d 'Run an ansible playbook on the instance' -r
complete -c virt-up -s t -l template -d 'Template name (default: <name>)' -r
complete -c virt-up -l root-password -d 'Root password (default: random)' -r
complete -c virt-up -l user -d 'Username (default: the template\'s, \'virt\')' -r
complete -c virt-up -l password -d 'Password (default: random)' -r
complete -c virt-up -l size -d 'Instance disk size, e.g. 20G (default: image size)' -r
complete -c virt-up -l memory -d 'Instance memory in MiB (default: 512)' -r
complete -c virt-up -l vcpus -d 'Instance vcpus (default: 1)' -r
complete -c virt-up -l graphics -d 'Instance graphics type: none, vnc or spice (default: none)' -r -f -a "none\t''
vnc\t''
spice\t''"
complete -c virt-up -l dns-domain -d 'DNS domain name' -r
complete -c virt-up -l command -d 'With --login: run this command over ssh and return its exit code' -r
complete -c virt-up -l completions -d 'Print a shell completion script' -r -f -a "bash\t''
elvish\t''
fish\t''
powershell\t''
zsh\t''"
complete -c virt-up -l init -d 'Initialize configuration files in the user\'s config directory'
complete -c virt-up -l list -d 'List instances'
complete -c virt-up -l show-templates -d 'Show template definitions'
complete -c virt-up -l show-paths -d 'Show configuration and data paths'
complete -c virt-up -l delete -d 'Delete the instance (with --all and a template name: the template)'
complete -c virt-up -l login -d 'Login to a running instance'
complete -c virt-up -l sftp -d 'With --login: use sftp'
complete -c virt-up -l no-clone -d 'Build the template instance only'
complete -c virt-up -l no-inventory -d 'Exclude the instance from the ansible inventory'
complete -c virt-up -l all -d 'Include template instances'
complete -c virt-up -l yes -d 'Answer yes to interactive questions'
complete -c virt-up -l quiet -d 'Show less output'
complete -c virt-up -l debug -d 'Show debug tracing (commands run, phase durations)'
complete -c virt-up -l force -d 'Overwrite files (--init), rebuild the template (--no-clone)'
complete -c virt-up -l json -d 'Machine-readable output for --list and --show-*'
complete -c virt-up -l man -d 'Print the man page'
complete -c virt-up -s h -l help -d 'Print help'
complete -c virt-up -s V -l version -d 'Print version'
