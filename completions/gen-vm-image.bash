_gen__vm__image() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="gen__vm__image"
                ;;
            gen__vm__image,configure)
                cmd="gen__vm__image__subcmd__configure"
                ;;
            gen__vm__image,help)
                cmd="gen__vm__image__subcmd__help"
                ;;
            gen__vm__image,multiple)
                cmd="gen__vm__image__subcmd__multiple"
                ;;
            gen__vm__image,single)
                cmd="gen__vm__image__subcmd__single"
                ;;
            gen__vm__image__subcmd__help,configure)
                cmd="gen__vm__image__subcmd__help__subcmd__configure"
                ;;
            gen__vm__image__subcmd__help,help)
                cmd="gen__vm__image__subcmd__help__subcmd__help"
                ;;
            gen__vm__image__subcmd__help,multiple)
                cmd="gen__vm__image__subcmd__help__subcmd__multiple"
                ;;
            gen__vm__image__subcmd__help,single)
                cmd="gen__vm__image__subcmd__help__subcmd__single"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        gen__vm__image)
            opts="-h --help single multiple configure help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        gen__subcmd__vm__subcmd__image__subcmd__configure)
            opts="-c -v -h --image-input-path --config-user-data-path --user-data --config-meta-data-path --meta-data --config-vendor-data-path --vendor-data --network-config --config-seed-output-path --seed-output --virt-type --qemu-cpu-model --cpu-model --connect --network --memory --vcpus --timeout --domain-name --console-log --verbose --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --image-input-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --user-data)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config-user-data-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --meta-data)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config-meta-data-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --vendor-data)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config-vendor-data-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --network-config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --seed-output)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config-seed-output-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --virt-type)
                    COMPREPLY=($(compgen -W "kvm qemu" -- "${cur}"))
                    return 0
                    ;;
                --cpu-model)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --qemu-cpu-model)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --connect)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -c)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --network)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --memory)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --vcpus)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --domain-name)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --console-log)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        gen__subcmd__vm__subcmd__image__subcmd__help)
            opts="single multiple configure help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        gen__subcmd__vm__subcmd__image__subcmd__help__subcmd__configure)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        gen__subcmd__vm__subcmd__image__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        gen__subcmd__vm__subcmd__image__subcmd__help__subcmd__multiple)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        gen__subcmd__vm__subcmd__image__subcmd__help__subcmd__single)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        gen__subcmd__vm__subcmd__image__subcmd__multiple)
            opts="-j -v -h --output-directory --overwrite --jobs --verbose --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --output-directory)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --jobs)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -j)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        gen__subcmd__vm__subcmd__image__subcmd__single)
            opts="-i -V -v -h --input --input-format --input-checksum-type --input-checksum --input-checksum-buffer-size --input-checksum-read-bytes --output-directory --output-format --version --overwrite --shrink --verbose --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --input)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -i)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --input-format)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --input-checksum-type)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --input-checksum)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --input-checksum-buffer-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --input-checksum-read-bytes)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --output-directory)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --output-format)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --version)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -V)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _gen__vm__image -o nosort -o bashdefault -o default gen-vm-image
else
    complete -F _gen__vm__image -o bashdefault -o default gen-vm-image
fi
