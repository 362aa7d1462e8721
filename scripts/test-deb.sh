#!/usr/bin/env bash
# `make deb`, then the package installed by dpkg into a scratch root (its own dpkg
# database): the installed binaries run and read the installed configuration, an upgrade
# over an edited conffile keeps the edit, and removal takes everything but the
# configuration. Run by `make test` (test-deb).
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "test-deb: $*" >&2; exit 1; }

deb=$(scripts/make-deb.sh)
info=$(dpkg-deb --info "$deb")
grep -q '^ Package: virt-up$' <<<"$info" || fail "no Package field: $info"
grep -q '^ Depends: .*libvirt0 (>= ' <<<"$info" || fail "no libvirt0 dependency: $info"
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/virt-up ./usr/bin/virt-maker ./usr/bin/gen-vm-image \
    ./usr/share/man/man1/virt-up.1 ./usr/share/bash-completion/completions/virt-up \
    ./usr/share/virt-up/guest/virt-up-identity ./etc/virt-up/settings.cfg; do
    grep -q " $f\$" <<<"$contents" || fail "$f is not in the package"
done
grep -q ' root/root ' <<<"$contents" || fail "files not owned by root"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
: > "$root/var/lib/dpkg/status"
# The scratch root has no other package: its dependencies are this machine's.
# dpkg's warnings about them are shown only when it fails.
in_root() {
    dpkg --root="$root" --force-depends --force-not-root "$@" >"$root/dpkg.log" 2>&1 ||
        { cat "$root/dpkg.log" >&2; fail "dpkg $*"; }
}
in_root -i "$deb"
# Outputs are read whole, then searched: with pipefail, `cmd | grep -q` fails whenever
# grep exits at its match before cmd has written the rest (a broken pipe; virt-up's
# --show-templates panicked so once).
listed=$(dpkg --root="$root" -L virt-up)
grep -q '^/etc/virt-up/settings.cfg$' <<<"$listed" || fail "dpkg -L"
conffiles=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Conffiles}' virt-up)
grep -q '/etc/virt-up/settings.cfg' <<<"$conffiles" || fail "settings.cfg is not a conffile"
for b in virt-up virt-maker gen-vm-image; do
    version=$("$root/usr/bin/$b" --version)
    grep -q "^$b " <<<"$version" || fail "$b --version"
done
templates=$(VIRTUP_SYSTEM_CONFIG="$root/etc/virt-up" VIRTUP_CONFIG_HOME="$root/nothing" \
    "$root/usr/bin/virt-up" --show-templates -q)
grep -qx debian-12-local <<<"$templates" ||
    fail "the installed virt-up does not read the installed templates: $templates"

# An upgrade (the same package again) keeps an edited conffile.
echo "# edited" >> "$root/etc/virt-up/settings.cfg"
in_root --force-confold -i "$deb"
grep -q '^# edited' "$root/etc/virt-up/settings.cfg" || fail "upgrade overwrote settings.cfg"

in_root -r virt-up
[ ! -e "$root/usr/bin/virt-up" ] || fail "remove left /usr/bin/virt-up"
[ -f "$root/etc/virt-up/settings.cfg" ] || fail "remove took the configuration"
echo "test-deb: ok ($deb)"
