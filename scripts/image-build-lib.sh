# shellcheck shell=bash
# Shared by the image build scripts (scripts/build-*-image.sh); sourced, not run.
# The caller sets SCRIPT_NAME first (the prefix of its log lines).

# This machine has no usable KVM; libguestfs must use TCG.  (Honour a caller's choice.)
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Time a step and report it, so slow steps are visible in the build log.
timed() {
  local what=$1 start=$SECONDS
  shift
  log "$what..."
  "$@"
  log "$what: done in $((SECONDS - start)) s"
}

# Delete a build directory.  Unmount anything left mounted under it first (debootstrap
# and chroot builds mount /proc and /sys in the target and may bind /dev), and never let
# rm cross into another file system: deleting through a bind of /dev hurts the host.
remove_tree() {
  local dir=$1 m
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v w="$dir/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "$dir"
}
