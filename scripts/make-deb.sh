#!/usr/bin/env bash
# make deb: a Debian package of what `make install PREFIX=/usr` installs, built with
# dpkg-deb from that tree (no packaging tool beyond dpkg). The files under /etc/virt-up
# are conffiles: an upgrade keeps the administrator's edits, as `make install` does.
#
#   scripts/make-deb.sh            -> prints the path of the .deb (target/debian/)
#
# Depends are what virt-up links (libc6, libgcc-s1 for unwinding, libvirt0: at least the versions it was built
# against) and the tools it runs on every create or template build; Recommends are those
# only some features run (ansible for --playbook, debootstrap for local templates,
# virt-install for virt-install-args, zstd/xorriso for gen-vm-image and virt-maker steps).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
out=target/debian
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT

make -s install DESTDIR="$tree" PREFIX=/usr SYSCONFDIR=/etc >/dev/null

# The upstream part of an installed package's version ("9.0.0" of "9.0.0-4+deb12u2").
upstream() {
    local v
    v=$(dpkg-query -W -f='${Version}' "$1")
    v=${v#*:}
    printf '%s' "${v%%-*}"
}

mkdir -p "$tree/DEBIAN" "$out"
(cd "$tree" && find etc -type f | sort | sed 's|^|/|') > "$tree/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
cat > "$tree/DEBIAN/control" <<EOF
Package: virt-up
Version: $version
Architecture: $arch
Maintainer: virt-up developers <virt-up@localhost>
Installed-Size: $size
Section: admin
Priority: optional
Depends: libc6 (>= $(upstream libc6)), libgcc-s1, libvirt0 (>= $(upstream libvirt0)), qemu-utils, guestfs-tools, openssh-client, xz-utils
Recommends: libvirt-daemon-system, ansible, debootstrap, virtinst, zstd, xorriso
Description: ready-to-use virtual machines on a libvirt host in seconds
 virt-up creates virtual machines from templates (linked qcow2 clones, an
 identity applied at first boot, SSH keys and pinned host keys, an ansible
 inventory), with the drop-in virt-maker and gen-vm-image commands.
EOF
deb=$out/virt-up_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$tree" "$deb" >/dev/null
printf '%s\n' "$deb"
