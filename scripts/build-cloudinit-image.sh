#!/usr/bin/env bash
# Build a small Debian 12 qcow2 image with cloud-init (NoCloud) from the local base image
# (scripts/build-base-image.sh), for the real-VM tests of `gen-vm-image configure`.
#
#   scripts/build-cloudinit-image.sh     -> prints the path of the qcow2
#
# Cached in ${VIRTUP_BASE_CACHE:-/var/cache/virt-up-base}/cloudinit-<key>/, where <key> is
# derived from this file and from the base image it starts from: re-running an unchanged
# recipe returns at once; the entry appears by an atomic rename, complete or not at all.
#
# How: the base image's root file system is copied out (guestfish tar-out), cloud-init is
# installed into it with apt in a chroot on the host (native speed; installing it inside
# a libguestfs appliance under TCG takes a quarter of an hour here), and the result is
# copied back in (tar-in) and converted to qcow2. About 3 minutes.
#
# Needs root, guestfish, xz, qemu-img, and Debian's mirror (the one apt uses here).
# Progress goes to stderr; stdout carries only the image path.
set -euo pipefail

readonly IMAGE_NAME=debian-12-cloudinit.qcow2

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_NAME=build-cloudinit-image
# shellcheck source=scripts/image-build-lib.sh
. "$(dirname "$SCRIPT_PATH")/image-build-lib.sh"
SCRIPT_DIR=$(dirname "$SCRIPT_PATH")
CACHE_ROOT=${VIRTUP_BASE_CACHE:-/var/cache/virt-up-base}
WORK=""

cleanup() { remove_tree "$WORK"; }

# The base image: its index, and the compressed raw disk the index names.
BASE_INDEX=$("$SCRIPT_DIR/build-base-image.sh")
BASE_DIR=$(dirname "$BASE_INDEX")
BASE_FILE=$(awk -F= '$1 == "file" { print $2; exit }' "$BASE_INDEX")
{ [ -n "$BASE_FILE" ] && [ -f "$BASE_DIR/$BASE_FILE" ]; } || die "no image file in $BASE_INDEX"
KEY=$(cat "$SCRIPT_PATH" "$BASE_INDEX" | sha256sum | cut -c1-16)
OUT_DIR=$CACHE_ROOT/cloudinit-$KEY

cached() { [ -f "$OUT_DIR/$IMAGE_NAME" ]; }

# Run a command in the chroot with /proc, /sys and /dev mounted (unmounted by cleanup).
in_root() { chroot "$WORK/rootfs" "$@"; }

mount_chroot() {
  local r=$WORK/rootfs
  mount -t proc proc "$r/proc"
  mount -t sysfs sysfs "$r/sys"
  mount --bind /dev "$r/dev"
  mount --bind /dev/pts "$r/dev/pts"
}

umount_chroot() {
  local r=$WORK/rootfs m
  for m in dev/pts dev sys proc; do umount "$r/$m"; done
}

install_cloud_init() {
  local r=$WORK/rootfs
  cp -a "$r/etc/resolv.conf" "$WORK/resolv.conf.image"
  rm -f "$r/etc/resolv.conf"
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  # Packages must not start services in the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 755 "$r/usr/sbin/policy-rc.d"
  mount_chroot
  in_root apt-get update -qq >&2
  in_root apt-get install -y -qq --no-install-recommends cloud-init >&2
  in_root apt-get clean
  umount_chroot
  rm -f "$r/usr/sbin/policy-rc.d"
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/log/apt/*
  rm -f "$r/etc/resolv.conf"
  cp -a "$WORK/resolv.conf.image" "$r/etc/resolv.conf"
}

configure_cloud_init() {
  local r=$WORK/rootfs
  # Only NoCloud (no minutes of probing for cloud metadata services); the image's own
  # systemd-networkd DHCP setup stays in charge of the network; one SSH host key type
  # (RSA takes ~10 s under TCG).
  cat >"$r/etc/cloud/cloud.cfg.d/90-virt-up-test.cfg" <<'EOF'
datasource_list: [ NoCloud, None ]
network:
  config: disabled
ssh_genkeytypes: [ed25519]
EOF
  # The image has no 'locales' package, so the locale module could only fail.
  sed -i '/^ *- locale$/d' "$r/etc/cloud/cloud.cfg"
  # Every boot of a copy gets its own identity.
  : >"$r/etc/machine-id"
  rm -rf "$r/var/lib/cloud"/*
}

copy_out() {
  guestfish --ro --no-progress-bars -a "$WORK/disk.raw" -m /dev/sda1 \
    tar-out / "$WORK/rootfs.tar" numericowner:true xattrs:true >&2
  mkdir "$WORK/rootfs"
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$WORK/rootfs" -xpf "$WORK/rootfs.tar"
  rm -f "$WORK/rootfs.tar"
  # Everything changed after this is copied back in (dpkg keeps the packages' mtimes, so
  # the change time tells).
  touch "$WORK/unpacked"
}

copy_in() {
  (cd "$WORK/rootfs" && find . -cnewer "$WORK/unpacked" -print0) >"$WORK/changed"
  log "$(tr -cd '\0' <"$WORK/changed" | wc -c) files and directories changed"
  tar --numeric-owner --xattrs --xattrs-include='*' --no-recursion --null \
    -C "$WORK/rootfs" -T "$WORK/changed" -cf "$WORK/rootfs.tar"
  rm -rf --one-file-system "$WORK/rootfs"
  guestfish --no-progress-bars -a "$WORK/disk.raw" -m /dev/sda1 \
    tar-in "$WORK/rootfs.tar" / xattrs:true >&2
  rm -f "$WORK/rootfs.tar"
}

build() {
  local out=$WORK/out
  mkdir -p "$out"
  # shellcheck disable=SC2016 # $1 and $2 are the inner sh's arguments, expanded there
  timed "decompress $BASE_FILE" sh -c 'xz -dc "$1" | cp --sparse=always /dev/stdin "$2"' \
    sh "$BASE_DIR/$BASE_FILE" "$WORK/disk.raw"
  timed "copy the root file system out" copy_out
  timed "install cloud-init (chroot)" install_cloud_init
  configure_cloud_init
  timed "copy the root file system in" copy_in
  timed "convert to qcow2" qemu-img convert -f raw -O qcow2 -o compat=1.1 \
    "$WORK/disk.raw" "$out/$IMAGE_NAME"
  rm -f "$WORK/disk.raw"
  log "image: $(du -h "$out/$IMAGE_NAME" | cut -f1)"
  mv -T "$out" "$OUT_DIR"
}

main() {
  if cached; then echo "$OUT_DIR/$IMAGE_NAME"; return 0; fi
  [ "$(id -u)" = 0 ] || die "must run as root (chroot)"
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.cloudinit-$KEY.lock"
  flock 9
  if cached; then echo "$OUT_DIR/$IMAGE_NAME"; return 0; fi
  [ ! -e "$OUT_DIR" ] || rm -rf --one-file-system "$OUT_DIR"
  WORK=$(mktemp -d "$CACHE_ROOT/.build-cloudinit-$KEY.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  build
  echo "$OUT_DIR/$IMAGE_NAME"
}

main "$@"
