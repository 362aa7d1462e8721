#!/usr/bin/env bash
# `make install` into a scratch root (DESTDIR), the installed binaries run, an install
# over edited configuration keeps the edits, and `make uninstall` leaves only the
# configuration. Run by `make test` (test-install).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "test-install: $*" >&2; exit 1; }

make -s install DESTDIR="$root" PREFIX=/usr >/dev/null
for b in virt-up virt-maker gen-vm-image; do
  [ -x "$root/usr/bin/$b" ] || fail "$b not installed"
  version=$("$root/usr/bin/$b" --version)
  grep -q "^$b " <<<"$version" || fail "$b --version"
  [ -f "$root/usr/share/man/man1/$b.1" ] || fail "man page of $b"
  [ -f "$root/usr/share/bash-completion/completions/$b" ] || fail "bash completion of $b"
  [ -f "$root/usr/share/zsh/vendor-completions/_$b" ] || fail "zsh completion of $b"
  [ -f "$root/usr/share/fish/vendor_completions.d/$b.fish" ] || fail "fish completion of $b"
done
[ -f "$root/etc/virt-up/settings.cfg" ] || fail "settings.cfg"
ls "$root"/etc/virt-up/templates.d/*.cfg >/dev/null || fail "templates.d"
[ -f "$root/etc/virt-up/playbooks/hello.yml" ] || fail "playbooks"
# The installed virt-up reads the installed configuration.
templates=$(VIRTUP_SYSTEM_CONFIG="$root/etc/virt-up" VIRTUP_CONFIG_HOME="$root/nothing" \
  "$root/usr/bin/virt-up" --show-templates)
grep -q debian-12 <<<"$templates" || fail "--show-templates"

# A second install keeps what the administrator changed.
echo "# edited" >> "$root/etc/virt-up/settings.cfg"
make -s install DESTDIR="$root" PREFIX=/usr >/dev/null
grep -q "^# edited" "$root/etc/virt-up/settings.cfg" || fail "install overwrote settings.cfg"

make -s uninstall DESTDIR="$root" PREFIX=/usr
left=$(cd "$root" && find . -type f | sort)
case $left in
  *usr/*) fail "uninstall left: $left" ;;
esac
[ -f "$root/etc/virt-up/settings.cfg" ] || fail "uninstall removed the configuration"
echo "test-install: install, run, reinstall over edits, uninstall: ok"
