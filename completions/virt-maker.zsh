#compdef virt-maker

autoload -U is-at-least

_virt-maker() {
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
'*-v[More output (repeatable)\: tool output, commands run]' \
'*--verbose[More output (repeatable)\: tool output, commands run]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
":: :_virt-maker_commands" \
"*::: :->virt-maker" \
&& ret=0
    case $state in
    (virt-maker)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:virt-maker-command-$line[1]:"
        case $line[1] in
            (build)
_arguments "${_arguments_options[@]}" : \
'*-f+[Path to template file(s)]:FILES:_files' \
'*--file=[Path to template file(s)]:FILES:_files' \
'*-p+[Set or override template parameter(s), KEY=VALUE (VALUE parsed as JSON when it can be)]:PARAMS:_default' \
'*--param=[Set or override template parameter(s), KEY=VALUE (VALUE parsed as JSON when it can be)]:PARAMS:_default' \
'-F[Force build from scratch (this template'\''s layers are rebuilt)]' \
'--force[Force build from scratch (this template'\''s layers are rebuilt)]' \
'-X[Force export to re-run]' \
'--force-export[Force export to re-run]' \
'--dry-run[Validate and print the plan (each runner, its cache key, whether it is cached; the export); run nothing, write nothing]' \
'*-v[More output (repeatable)\: tool output, commands run]' \
'*--verbose[More output (repeatable)\: tool output, commands run]' \
'-h[Print help]' \
'--help[Print help]' \
&& ret=0
;;
(cache)
_arguments "${_arguments_options[@]}" : \
'--max-size=[gc\: remove least recently used layers until the cache is at most this big (e.g. 20G)]:MAX_SIZE:_default' \
'--max-age=[gc\: remove layers unused for longer than this (e.g. 30d, 12h)]:MAX_AGE:_default' \
'-H[Output as human-readable values]' \
'--human-readable[Output as human-readable values]' \
'--json[usage\: output JSON]' \
'--dry-run[clean, gc\: say what would be removed, remove nothing]' \
'*-v[More output (repeatable)\: tool output, commands run]' \
'*--verbose[More output (repeatable)\: tool output, commands run]' \
'-h[Print help]' \
'--help[Print help]' \
':action:(clean usage gc)' \
&& ret=0
;;
(runners)
_arguments "${_arguments_options[@]}" : \
'*-v[More output (repeatable)\: tool output, commands run]' \
'*--verbose[More output (repeatable)\: tool output, commands run]' \
'-h[Print help]' \
'--help[Print help]' \
':kind:(steps importers exporters)' \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
":: :_virt-maker__subcmd__help_commands" \
"*::: :->help" \
&& ret=0

    case $state in
    (help)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:virt-maker-help-command-$line[1]:"
        case $line[1] in
            (build)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(cache)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(runners)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
        esac
    ;;
esac
}

(( $+functions[_virt-maker_commands] )) ||
_virt-maker_commands() {
    local commands; commands=(
'build:Build template(s)' \
'cache:Cache management' \
'runners:Show the types of runners' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'virt-maker commands' commands "$@"
}
(( $+functions[_virt-maker__subcmd__build_commands] )) ||
_virt-maker__subcmd__build_commands() {
    local commands; commands=()
    _describe -t commands 'virt-maker build commands' commands "$@"
}
(( $+functions[_virt-maker__subcmd__cache_commands] )) ||
_virt-maker__subcmd__cache_commands() {
    local commands; commands=()
    _describe -t commands 'virt-maker cache commands' commands "$@"
}
(( $+functions[_virt-maker__subcmd__help_commands] )) ||
_virt-maker__subcmd__help_commands() {
    local commands; commands=(
'build:Build template(s)' \
'cache:Cache management' \
'runners:Show the types of runners' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'virt-maker help commands' commands "$@"
}
(( $+functions[_virt-maker__subcmd__help__subcmd__build_commands] )) ||
_virt-maker__subcmd__help__subcmd__build_commands() {
    local commands; commands=()
    _describe -t commands 'virt-maker help build commands' commands "$@"
}
(( $+functions[_virt-maker__subcmd__help__subcmd__cache_commands] )) ||
_virt-maker__subcmd__help__subcmd__cache_commands() {
    local commands; commands=()
    _describe -t commands 'virt-maker help cache commands' commands "$@"
}
(( $+functions[_virt-maker__subcmd__help__subcmd__help_commands] )) ||
_virt-maker__subcmd__help__subcmd__help_commands() {
    local commands; commands=()
    _describe -t commands 'virt-maker help help commands' commands "$@"
}
(( $+functions[_virt-maker__subcmd__help__subcmd__runners_commands] )) ||
_virt-maker__subcmd__help__subcmd__runners_commands() {
    local commands; commands=()
    _describe -t commands 'virt-maker help runners commands' commands "$@"
}
(( $+functions[_virt-maker__subcmd__runners_commands] )) ||
_virt-maker__subcmd__runners_commands() {
    local commands; commands=()
    _describe -t commands 'virt-maker runners commands' commands "$@"
}

if [ "$funcstack[1]" = "_virt-maker" ]; then
    _virt-maker "$@"
else
    compdef _virt-maker virt-maker
fi
