#compdef gen-vm-image

autoload -U is-at-least

_gen-vm-image() {
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
'-h[Print help]' \
'--help[Print help]' \
":: :_gen-vm-image_commands" \
"*::: :->gen-vm-image" \
&& ret=0
    case $state in
    (gen-vm-image)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:gen-vm-image-command-$line[1]:"
        case $line[1] in
            (single)
_arguments "${_arguments_options[@]}" : \
'-i+[The path or URL of the input image the generated image is based on (.xz, .gz and .zst are decompressed)]:INPUT:_default' \
'--input=[The path or URL of the input image the generated image is based on (.xz, .gz and .zst are decompressed)]:INPUT:_default' \
'--input-format=[The format of the input image (default\: found out from its contents). \[-if\]]:INPUT_FORMAT:_default' \
'--input-checksum-type=[The checksum type used to validate the input image\: md5, sha1, sha224, sha256, sha384, sha512, blake2b, blake2s, sha3_224, sha3_256, sha3_384, sha3_512. \[-ict\]]:INPUT_CHECKSUM_TYPE:_default' \
'--input-checksum=[The expected checksum of the input image (hex, any case). \[-ic\]]:INPUT_CHECKSUM:_default' \
'--input-checksum-buffer-size=[The size of each read while hashing a local input (default 1 MiB). \[-icbs\]]:INPUT_CHECKSUM_BUFFER_SIZE:_default' \
'--input-checksum-read-bytes=[Hash only the first N bytes of the input. \[-icrb\]]:INPUT_CHECKSUM_READ_BYTES:_default' \
'--output-directory=[The directory the image is written to. \[-od\]]:OUTPUT_DIRECTORY:_files' \
'--output-format=[The format of the output image\: qcow2 (compat 1.1) or raw. \[-of\]]:OUTPUT_FORMAT:_default' \
'-V+[The version of the image (the output is <name>-<version>.<format>)]:VERSION:_default' \
'--version=[The version of the image (the output is <name>-<version>.<format>)]:VERSION:_default' \
'--overwrite[Replace the output image if it exists (otherwise it is left as it is)]' \
'--shrink[Allow a size below the input'\''s virtual size (the data beyond it is lost)]' \
'-v[Print verbose output]' \
'--verbose[Print verbose output]' \
'-h[Print help]' \
'--help[Print help]' \
':name -- The name of the image that will be generated:_default' \
':size -- The size of the image\: bytes, or with a k, M, G, T, P or E suffix (qemu-img'\''s syntax):_default' \
&& ret=0
;;
(multiple)
_arguments "${_arguments_options[@]}" : \
'--output-directory=[The directory the images are written to. \[-od, -iod\]]:OUTPUT_DIRECTORY:_files' \
'-j+[How many images are made at once (default\: the number of CPUs)]:JOBS:_default' \
'--jobs=[How many images are made at once (default\: the number of CPUs)]:JOBS:_default' \
'--overwrite[Replace existing images (otherwise they are left as they are)]' \
'-v[Print verbose output]' \
'--verbose[Print verbose output]' \
'-h[Print help]' \
'--help[Print help]' \
':architecture_path -- The path to the architecture file that defines the images that should be generated:_files' \
&& ret=0
;;
(configure)
_arguments "${_arguments_options[@]}" : \
'--image-input-path=[The image to configure (the original'\''s option) \[default\: generated-images/image.qcow2\]]:IMAGE_INPUT_PATH:_files' \
'--user-data=[The cloud-init user-data \[default\: cloud-init-config/user-data\]]:USER_DATA:_files' \
'--config-user-data-path=[The cloud-init user-data \[default\: cloud-init-config/user-data\]]:USER_DATA:_files' \
'--meta-data=[The cloud-init meta-data \[default\: cloud-init-config/meta-data if it exists, else an instance-id and a host name made up\]]:META_DATA:_files' \
'--config-meta-data-path=[The cloud-init meta-data \[default\: cloud-init-config/meta-data if it exists, else an instance-id and a host name made up\]]:META_DATA:_files' \
'--vendor-data=[The cloud-init vendor-data \[default\: cloud-init-config/vendor-data if it exists\]]:VENDOR_DATA:_files' \
'--config-vendor-data-path=[The cloud-init vendor-data \[default\: cloud-init-config/vendor-data if it exists\]]:VENDOR_DATA:_files' \
'--network-config=[The cloud-init network-config \[default\: cloud-init-config/network-config if it exists\]]:NETWORK_CONFIG:_files' \
'--seed-output=[Where the NoCloud seed image is written]:SEED_OUTPUT:_files' \
'--config-seed-output-path=[Where the NoCloud seed image is written]:SEED_OUTPUT:_files' \
'--virt-type=[kvm, or qemu (TCG\: slower, for hosts without a working KVM)]:VIRT_TYPE:(kvm qemu)' \
'--cpu-model=[The CPU model of the guest (\`host\` needs --virt-type kvm) \[default\: the hypervisor'\''s\]]:CPU_MODEL:_default' \
'--qemu-cpu-model=[The CPU model of the guest (\`host\` needs --virt-type kvm) \[default\: the hypervisor'\''s\]]:CPU_MODEL:_default' \
'-c+[The libvirt URI \[default\: \$LIBVIRT_DEFAULT_URI, else libvirt'\''s choice\: uri_default in libvirt.conf, else qemu\:///system for root and qemu\:///session for others\]]:CONNECT:_default' \
'--connect=[The libvirt URI \[default\: \$LIBVIRT_DEFAULT_URI, else libvirt'\''s choice\: uri_default in libvirt.conf, else qemu\:///system for root and qemu\:///session for others\]]:CONNECT:_default' \
'--network=[The libvirt network the guest is attached to (for packages the user-data installs)]:NETWORK:_default' \
'--memory=[Memory of the guest, MiB]:MEMORY:_default' \
'--vcpus=[Virtual CPUs of the guest]:VCPUS:_default' \
'--timeout=[Seconds cloud-init may take, counted from the guest'\''s start]:TIMEOUT:_default' \
'--domain-name=[The name of the temporary libvirt domain \[default\: gen-vm-image-<image>-<pid>\]]:DOMAIN_NAME:_default' \
'--console-log=[Where the guest'\''s serial console is logged \[default\: next to the seed, <image>-console.log\]]:CONSOLE_LOG:_files' \
'-v[Print verbose output]' \
'--verbose[Print verbose output]' \
'-h[Print help]' \
'--help[Print help]' \
'::image -- The image to configure (qcow2 or raw; changed in place):_files' \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
":: :_gen-vm-image__subcmd__help_commands" \
"*::: :->help" \
&& ret=0

    case $state in
    (help)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:gen-vm-image-help-command-$line[1]:"
        case $line[1] in
            (single)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(multiple)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(configure)
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

(( $+functions[_gen-vm-image_commands] )) ||
_gen-vm-image_commands() {
    local commands; commands=(
'single:Generate a single virtual machine image' \
'multiple:Generate the images an architecture file defines' \
'configure:Configure an image with cloud-init\: boot it once with a NoCloud seed, wait until cloud-init finished, power it off and reset its identity with virt-sysprep' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'gen-vm-image commands' commands "$@"
}
(( $+functions[_gen-vm-image__subcmd__configure_commands] )) ||
_gen-vm-image__subcmd__configure_commands() {
    local commands; commands=()
    _describe -t commands 'gen-vm-image configure commands' commands "$@"
}
(( $+functions[_gen-vm-image__subcmd__help_commands] )) ||
_gen-vm-image__subcmd__help_commands() {
    local commands; commands=(
'single:Generate a single virtual machine image' \
'multiple:Generate the images an architecture file defines' \
'configure:Configure an image with cloud-init\: boot it once with a NoCloud seed, wait until cloud-init finished, power it off and reset its identity with virt-sysprep' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'gen-vm-image help commands' commands "$@"
}
(( $+functions[_gen-vm-image__subcmd__help__subcmd__configure_commands] )) ||
_gen-vm-image__subcmd__help__subcmd__configure_commands() {
    local commands; commands=()
    _describe -t commands 'gen-vm-image help configure commands' commands "$@"
}
(( $+functions[_gen-vm-image__subcmd__help__subcmd__help_commands] )) ||
_gen-vm-image__subcmd__help__subcmd__help_commands() {
    local commands; commands=()
    _describe -t commands 'gen-vm-image help help commands' commands "$@"
}
(( $+functions[_gen-vm-image__subcmd__help__subcmd__multiple_commands] )) ||
_gen-vm-image__subcmd__help__subcmd__multiple_commands() {
    local commands; commands=()
    _describe -t commands 'gen-vm-image help multiple commands' commands "$@"
}
(( $+functions[_gen-vm-image__subcmd__help__subcmd__single_commands] )) ||
_gen-vm-image__subcmd__help__subcmd__single_commands() {
    local commands; commands=()
    _describe -t commands 'gen-vm-image help single commands' commands "$@"
}
(( $+functions[_gen-vm-image__subcmd__multiple_commands] )) ||
_gen-vm-image__subcmd__multiple_commands() {
    local commands; commands=()
    _describe -t commands 'gen-vm-image multiple commands' commands "$@"
}
(( $+functions[_gen-vm-image__subcmd__single_commands] )) ||
_gen-vm-image__subcmd__single_commands() {
    local commands; commands=()
    _describe -t commands 'gen-vm-image single commands' commands "$@"
}

if [ "$funcstack[1]" = "_gen-vm-image" ]; then
    _gen-vm-image "$@"
else
    compdef _gen-vm-image gen-vm-image
fi
