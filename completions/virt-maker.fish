# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_virt_maker_global_optspecs
    string join \n v/verbose h/help V/version
end

function __fish_virt_maker_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_virt_maker_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_virt_maker_using_subcommand
    set -l cmd (__fish_virt_maker_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c virt-maker -n "__fish_virt_maker_needs_command" -s v -l verbose -d 'More output (repeatable): tool output, commands run'
complete -c virt-maker -n "__fish_virt_maker_needs_command" -s h -l help -d 'Print help'
complete -c virt-maker -n "__fish_virt_maker_needs_command" -s V -l version -d 'Print version'
complete -c virt-maker -n "__fish_virt_maker_needs_command" -f -a "build" -d 'Build template(s)'
complete -c virt-maker -n "__fish_virt_maker_needs_command" -f -a "cache" -d 'Cache management'
complete -c virt-maker -n "__fish_virt_maker_needs_command" -f -a "runners" -d 'Show the types of runners'
complete -c virt-maker -n "__fish_virt_maker_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand build" -s f -l file -d 'Path to template file(s)' -r -F
complete -c virt-maker -n "__fish_virt_maker_using_subcommand build" -s p -l param -d 'Set or override template parameter(s), KEY=VALUE (VALUE parsed as JSON when it can be)' -r
complete -c virt-maker -n "__fish_virt_maker_using_subcommand build" -s F -l force -d 'Force build from scratch (this template\'s layers are rebuilt)'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand build" -s X -l force-export -d 'Force export to re-run'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand build" -l dry-run -d 'Validate and print the plan (each runner, its cache key, whether it is cached; the export); run nothing, write nothing'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand build" -s v -l verbose -d 'More output (repeatable): tool output, commands run'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand build" -s h -l help -d 'Print help'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand cache" -l max-size -d 'gc: remove least recently used layers until the cache is at most this big (e.g. 20G)' -r
complete -c virt-maker -n "__fish_virt_maker_using_subcommand cache" -l max-age -d 'gc: remove layers unused for longer than this (e.g. 30d, 12h)' -r
complete -c virt-maker -n "__fish_virt_maker_using_subcommand cache" -s H -l human-readable -d 'Output as human-readable values'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand cache" -l json -d 'usage: output JSON'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand cache" -l dry-run -d 'clean, gc: say what would be removed, remove nothing'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand cache" -s v -l verbose -d 'More output (repeatable): tool output, commands run'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand cache" -s h -l help -d 'Print help'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand runners" -s v -l verbose -d 'More output (repeatable): tool output, commands run'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand runners" -s h -l help -d 'Print help'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand help; and not __fish_seen_subcommand_from build cache runners help" -f -a "build" -d 'Build template(s)'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand help; and not __fish_seen_subcommand_from build cache runners help" -f -a "cache" -d 'Cache management'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand help; and not __fish_seen_subcommand_from build cache runners help" -f -a "runners" -d 'Show the types of runners'
complete -c virt-maker -n "__fish_virt_maker_using_subcommand help; and not __fish_seen_subcommand_from build cache runners help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
