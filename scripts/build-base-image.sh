#!/usr/bin/env bash
# Publish a minimal bootable Debian 12 (bookworm) disk image, made from Debian packages,
# as a local virt-builder repository (no internet needed beyond the Debian mirror apt
# already uses).
#
#   scripts/build-base-image.sh        -> prints the path of the repository's index
#
# The disk is made by virt-maker's debootstrap importer (src/image/debootstrap/) from
# scripts/base-image.yml, which is the shipped template debian-12-local's import: the
# recipe exists once, in Rust. This script adds the cache, xz and the index.
#
# The result is cached in ${VIRTUP_BASE_CACHE:-/var/cache/virt-up-base}/<key>/, where
# <key> is derived from the recipe (this file, the two YAML files and the Rust recipe):
# editing the recipe rebuilds, re-running an unchanged recipe returns at once.  Use it as:
#
#   virt-builder --source file://<dir>/index --no-check-signature debian-12-local ...
#
# Environment:
#   VIRTUP_BASE_CACHE     cache root (default /var/cache/virt-up-base)
#   VIRTUP_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the one apt uses here)
#
# Needs root, target/release/virt-maker (make build), debootstrap, guestfish
# (libguestfs), xz, virt-index-validate.  Progress goes to stderr; stdout carries only
# the index path.
set -euo pipefail

readonly IMAGE_NAME=debian-12-local
readonly IMAGE_FILE=$IMAGE_NAME.raw.xz

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_NAME=build-base-image
# shellcheck source=scripts/image-build-lib.sh
. "$(dirname "$SCRIPT_PATH")/image-build-lib.sh"

TOP=$(dirname "$(dirname "$SCRIPT_PATH")")
VIRT_MAKER=$TOP/target/release/virt-maker
SPEC=$TOP/scripts/base-image.yml
# Everything the disk depends on: this script, the YAML files and the Rust recipe.
RECIPE_FILES=(
  "$SCRIPT_PATH" "$SPEC" "$TOP/etc/virt-up/templates.d/debian-12-local.yml"
  "$TOP"/src/image/debootstrap/*.rs
)
CACHE_ROOT=${VIRTUP_BASE_CACHE:-/var/cache/virt-up-base}
KEY=$(cat "${RECIPE_FILES[@]}" | sha256sum | cut -c1-16)
OUT_DIR=$CACHE_ROOT/$KEY
WORK=""

# A cache entry is complete only if both files exist: the directory appears by an
# atomic rename at the very end of a build, so a partial build never matches.
cached() { [ -f "$OUT_DIR/index" ] && [ -f "$OUT_DIR/$IMAGE_FILE" ]; }

cleanup() { [ -z "$WORK" ] || remove_tree "$WORK"; }

# The disk, by virt-maker in a private configuration and step cache inside the work
# tree (the step cache's layer would only duplicate this script's cache), with the .deb
# cache kept across builds and recipe changes, so a rebuild downloads nothing.
make_disk() {
  local disk=$1 spec=$SPEC
  local stepcache=$WORK/stepcache config=$WORK/config
  mkdir -p "$stepcache" "$config" "$CACHE_ROOT/debootstrap-debs"
  ln -s "$CACHE_ROOT/debootstrap-debs" "$stepcache/debootstrap-debs"
  if [ -n "${VIRTUP_DEBIAN_MIRROR:-}" ]; then
    # YAML single quotes: a quote is doubled.  virt-maker validates the URL.
    spec=$WORK/mirror.yml
    printf "from: '%s'\nspec:\n  import:\n    debootstrap:\n      mirror: '%s'\n" \
      "${SPEC//\'/\'\'}" "${VIRTUP_DEBIAN_MIRROR//\'/\'\'}" >"$spec"
  fi
  VIRTUP_CACHE_HOME=$stepcache VIRTUP_CONFIG_HOME=$config VIRTUP_SYSTEM_CONFIG=$config \
    "$VIRT_MAKER" -v build -f "$spec" -p out="$disk" >&2
}

compress_disk() {
  xz -T2 -6 -c "$1" >"$2"
}

write_index() {
  local dir=$1 xzfile=$2 size=$3
  local sha compressed
  sha=$(sha512sum "$xzfile" | cut -d' ' -f1)
  compressed=$(stat -c %s "$xzfile")
  cat >"$dir/index" <<EOF
[$IMAGE_NAME]
name=Debian 12 minimal (local build $KEY)
osinfo=debian12
arch=x86_64
file=$IMAGE_FILE
checksum[sha512]=$sha
format=raw
size=$size
compressed_size=$compressed
expand=/dev/sda1
revision=1
notes=Built by virt-up scripts/build-base-image.sh (virt-maker's debootstrap importer)
EOF
  virt-index-validate "$dir/index" >&2
  # virt-builder reads <D>/virt-builder/repos.d/*.conf for each D in VIRT_BUILDER_DIRS
  # (or XDG_CONFIG_HOME); repos.d/ at the top is a shortcut to the same file.
  mkdir -p "$dir/virt-builder/repos.d"
  printf '[local]\nuri=file://%s/index\n' "$OUT_DIR" >"$dir/virt-builder/repos.d/local.conf"
  ln -s virt-builder/repos.d "$dir/repos.d"
}

build() {
  local out=$WORK/out disk=$WORK/disk.raw
  mkdir -p "$out"
  timed "virt-maker: debootstrap import, raw export" make_disk "$disk"
  timed "xz" compress_disk "$disk" "$out/$IMAGE_FILE"
  timed "index" write_index "$out" "$out/$IMAGE_FILE" "$(stat -c %s "$disk")"
  log "image: $(du -h --apparent-size "$out/$IMAGE_FILE" | cut -f1) compressed, $(($(stat -c %s "$disk") >> 20)) MiB raw"
  # The atomic step: the entry appears complete or not at all.
  mv -T "$out" "$OUT_DIR"
}

# `current` names the entry of this recipe, so configuration can use a stable path
# (virt-builder-source = file:///var/cache/virt-up-base/current/index); switched
# atomically with a rename.
publish_current() {
  ln -sfn "$KEY" "$CACHE_ROOT/.current.$$"
  mv -T "$CACHE_ROOT/.current.$$" "$CACHE_ROOT/current"
}

main() {
  if cached; then publish_current; echo "$OUT_DIR/index"; return 0; fi
  [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
  [ -x "$VIRT_MAKER" ] || die "$VIRT_MAKER is missing: run 'make build' first"
  mkdir -p "$CACHE_ROOT"
  # One build at a time (they share the .deb cache, and each wants both cores);
  # a caller that waited here usually finds its entry built by the other one.
  exec 9>"$CACHE_ROOT/.lock"
  flock 9
  if cached; then publish_current; echo "$OUT_DIR/index"; return 0; fi
  # Holding the lock, any .build-* left is from a killed build (SIGKILL skips traps).
  local stale
  for stale in "$CACHE_ROOT"/.build-*; do remove_tree "$stale"; done
  remove_tree "$OUT_DIR"    # incomplete without its files (cannot happen with mv -T)
  WORK=$(mktemp -d "$CACHE_ROOT/.build-$KEY.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  build
  publish_current
  echo "$OUT_DIR/index"
}

main "$@"
