#!/usr/bin/env bash
# make demo: one VM from the shipped local template, and a command run in it over SSH.
# A second run reuses the image, the template and the instance and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/virt-up
name=${DEMO_NAME:-demo1}
# The shipped configuration, as if installed in /etc/virt-up, plus one host setting kept
# in a demo config dir of its own so the user's own configuration is left alone.
export VIRTUP_SYSTEM_CONFIG=$PWD/etc/virt-up
export VIRTUP_CONFIG_HOME=${VIRTUP_CONFIG_HOME:-${XDG_CONFIG_HOME:-$HOME/.config}/virt-up-demo}
mkdir -p "$VIRTUP_CONFIG_HOME"
printf '[common]\nvirt-type = %s\nmemory = 1024\nvcpus = 2\n' "${VIRT_TYPE:-kvm}" \
    > "$VIRTUP_CONFIG_HOME/settings.cfg"

# Listed first, searched after: `grep -q` at the end of a pipe can stop early and, under
# pipefail, fail the whole pipe when the lister then gets SIGPIPE.
listed=$("$bin" --list --json)
if ! grep -q "\"name\": \"$name\"" <<<"$listed"; then
    "$bin" "$name" --template debian-12-local
fi
echo "--- $name says:"
"$bin" "$name" --login --command 'uname -a'
echo "--- log in with: VIRTUP_CONFIG_HOME=$VIRTUP_CONFIG_HOME $bin $name --login"
