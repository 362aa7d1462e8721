# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gen_vm_image_global_optspecs
    string join \n h/help
end

function __fish_gen_vm_image_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gen_vm_image_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gen_vm_image_using_subcommand
    set -l cmd (__fish_gen_vm_image_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gen-vm-image -n "__fish_gen_vm_image_needs_command" -s h -l help -d 'Print help'
complete -c gen-vm-image -n "__fish_gen_vm_image_needs_command" -f -a "single" -d 'Generate a single virtual machine image'
complete -c gen-vm-image -n "__fish_gen_vm_image_needs_command" -f -a "multiple" -d 'Generate the images an architecture file defines'
complete -c gen-vm-image -n "__fish_gen_vm_image_needs_command" -f -a "configure" -d 'Configure an image with cloud-init: boot it once with a NoCloud seed, wait until cloud-init finished, power it off and reset its identity with virt-sysprep'
complete -c gen-vm-image -n "__fish_gen_vm_image_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -s i -l input -d 'The path or URL of the input image the generated image is based on (.xz, .gz and .zst are decompressed)' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -l input-format -d 'The format of the input image (default: found out from its contents). [-if]' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -l input-checksum-type -d 'The checksum type used to validate the input image: md5, sha1, sha224, sha256, sha384, sha512, blake2b, blake2s, sha3_224, sha3_256, sha3_384, sha3_512. [-ict]' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -l input-checksum -d 'The expected checksum of the input image (hex, any case). [-ic]' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -l input-checksum-buffer-size -d 'The size of each read while hashing a local input (default 1 MiB). [-icbs]' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -l input-checksum-read-bytes -d 'Hash only the first N bytes of the input. [-icrb]' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -l output-directory -d 'The directory the image is written to. [-od]' -r -F
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -l output-format -d 'The format of the output image: qcow2 (compat 1.1) or raw. [-of]' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -s V -l version -d 'The version of the image (the output is <name>-<version>.<format>)' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -l overwrite -d 'Replace the output image if it exists (otherwise it is left as it is)'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -l shrink -d 'Allow a size below the input\'s virtual size (the data beyond it is lost)'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -s v -l verbose -d 'Print verbose output'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand single" -s h -l help -d 'Print help'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand multiple" -l output-directory -d 'The directory the images are written to. [-od, -iod]' -r -F
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand multiple" -s j -l jobs -d 'How many images are made at once (default: the number of CPUs)' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand multiple" -l overwrite -d 'Replace existing images (otherwise they are left as they are)'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand multiple" -s v -l verbose -d 'Print verbose output'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand multiple" -s h -l help -d 'Print help'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l image-input-path -d 'The image to configure (the original\'s option) [default: generated-images/image.qcow2]' -r -F
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l user-data -l config-user-data-path -d 'The cloud-init user-data [default: cloud-init-config/user-data]' -r -F
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l meta-data -l config-meta-data-path -d 'The cloud-init meta-data [default: cloud-init-config/meta-data if it exists, else an instance-id and a host name made up]' -r -F
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l vendor-data -l config-vendor-data-path -d 'The cloud-init vendor-data [default: cloud-init-config/vendor-data if it exists]' -r -F
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l network-config -d 'The cloud-init network-config [default: cloud-init-config/network-config if it exists]' -r -F
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l seed-output -l config-seed-output-path -d 'Where the NoCloud seed image is written' -r -F
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l virt-type -d 'kvm, or qemu (TCG: slower, for hosts without a working KVM)' -r -f -a "kvm\t''
qemu\t''"
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l cpu-model -l qemu-cpu-model -d 'The CPU model of the guest (`host` needs --virt-type kvm) [default: the hypervisor\'s]' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -s c -l connect -d 'The libvirt URI [default: $LIBVIRT_DEFAULT_URI, else libvirt\'s choice: uri_default in libvirt.conf, else qemu:///system for root and qemu:///session for others]' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l network -d 'The libvirt network the guest is attached to (for packages the user-data installs)' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l memory -d 'Memory of the guest, MiB' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l vcpus -d 'Virtual CPUs of the guest' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l timeout -d 'Seconds cloud-init may take, counted from the guest\'s start' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l domain-name -d 'The name of the temporary libvirt domain [default: gen-vm-image-<image>-<pid>]' -r
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -l console-log -d 'Where the guest\'s serial console is logged [default: next to the seed, <image>-console.log]' -r -F
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -s v -l verbose -d 'Print verbose output'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand configure" -s h -l help -d 'Print help'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand help; and not __fish_seen_subcommand_from single multiple configure help" -f -a "single" -d 'Generate a single virtual machine image'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand help; and not __fish_seen_subcommand_from single multiple configure help" -f -a "multiple" -d 'Generate the images an architecture file defines'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand help; and not __fish_seen_subcommand_from single multiple configure help" -f -a "configure" -d 'Configure an image with cloud-init: boot it once with a NoCloud seed, wait until cloud-init finished, power it off and reset its identity with virt-sysprep'
complete -c gen-vm-image -n "__fish_gen_vm_image_using_subcommand help; and not __fish_seen_subcommand_from single multiple configure help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
