#!/usr/bin/env bash
# Install the ORIGINAL Python virt-up 2.2.0 (PyPI `virt-up`) next to this project, for
# side-by-side benchmarks, and configure a template `peer-deb` that uses the same local
# Debian 12 image as our own tool (the local virt-builder repository made by
# scripts/build-base-image.sh).  Idempotent: re-running changes only what is out of date.
#
#   bench/peer-setup.sh          then   bench/peer.sh template|create NAME|delete NAME|list
#
# Nothing is written to /etc/virt-up (the original's `init config` would, as root: we
# write its two configuration files ourselves instead) nor into the repository.
#
# Environment (all optional):
#   PEER_VENV          venv for the original  (default /var/cache/virt-up-bench/peer-venv)
#   PEER_HOME          its config, data, ssh keys, caches
#                                             (default /var/cache/virt-up-bench/peer-home)
#   PEER_PYTHON        interpreter for the venv (default /usr/bin/python3, Debian's 3.11,
#                      which has headers via python3-dev; the pyenv one works too)
#   PEER_BASE_INDEX    the local virt-builder index (default: $VIRTUP_BASE_CACHE/current/index
#                      if present, else the newest $VIRTUP_BASE_CACHE/*/index)
#   VIRTUP_BASE_CACHE  default /var/cache/virt-up-base
#   PEER_ADDRESS_SOURCE  agent (default, the original's default) | lease
#   PEER_VIRT_TYPE     qemu (default: KVM does not work on these machines) | kvm
set -euo pipefail

PEER_VENV=${PEER_VENV:-/var/cache/virt-up-bench/peer-venv}
PEER_HOME=${PEER_HOME:-/var/cache/virt-up-bench/peer-home}
PEER_PYTHON=${PEER_PYTHON:-/usr/bin/python3}
BASE_CACHE=${VIRTUP_BASE_CACHE:-/var/cache/virt-up-base}
ADDRESS_SOURCE=${PEER_ADDRESS_SOURCE:-agent}
VIRT_TYPE=${PEER_VIRT_TYPE:-qemu}
readonly VIRTUP_VERSION=2.2.0

log() { printf 'peer-setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (the original must reach qemu:///system and write the default pool)"

# --- 1. Debian packages needed to build libvirt-python from source --------------------
apt_missing=()
for p in libvirt-dev pkg-config gcc python3-dev python3-venv; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || apt_missing+=("$p")
done
if [ ${#apt_missing[@]} -gt 0 ]; then
  log "installing ${apt_missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${apt_missing[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${apt_missing[@]}" >&2; }
fi
# The tools the original runs (installed by scripts/host-setup.sh, not here: qemu has a
# version trap there).
for c in virsh virt-builder virt-sysprep virt-install qemu-img ssh ssh-keygen; do
  command -v "$c" >/dev/null || die "'$c' not found: run scripts/host-setup.sh (make host) first"
done

# --- 2. The venv: virt-up==2.2.0 and libvirt-python matching the host's libvirt --------
LIBVIRT_VERSION=$(pkg-config --modversion libvirt 2>/dev/null || virsh --version)
[ -n "$LIBVIRT_VERSION" ] || die "cannot determine the host's libvirt version"

venv_ok() {
  [ -x "$PEER_VENV/bin/virt-up" ] || return 1
  "$PEER_VENV/bin/python" - "$VIRTUP_VERSION" "$LIBVIRT_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
import libvirt, virt_up
sys.exit(0 if (version("virt-up"), version("libvirt-python")) == tuple(sys.argv[1:3]) else 1)
EOF
}
if venv_ok; then
  log "venv $PEER_VENV: virt-up $VIRTUP_VERSION, libvirt-python $LIBVIRT_VERSION (up to date)"
else
  "$PEER_PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
    die "$PEER_PYTHON has no C headers (Python.h): set PEER_PYTHON or install its -dev package"
  [ -x "$PEER_VENV/bin/python" ] || { log "creating venv $PEER_VENV with $PEER_PYTHON"; mkdir -p "$(dirname "$PEER_VENV")"; "$PEER_PYTHON" -m venv "$PEER_VENV"; }
  log "installing virt-up==$VIRTUP_VERSION libvirt-python==$LIBVIRT_VERSION (libvirt-python compiles; ~20 s)"
  "$PEER_VENV/bin/pip" install --disable-pip-version-check -q \
    "virt-up==$VIRTUP_VERSION" "libvirt-python==$LIBVIRT_VERSION" >&2
  venv_ok || die "venv check failed after install"
fi

# --- 3. The local virt-builder repository --------------------------------------------
if [ -z "${PEER_BASE_INDEX:-}" ]; then
  if [ -f "$BASE_CACHE/current/index" ]; then
    PEER_BASE_INDEX=$(readlink -f "$BASE_CACHE/current/index")
  else
    # newest complete entry (index written last, by an atomic rename of the directory)
    # shellcheck disable=SC2012 # newest by mtime; the entries are named by hex keys
    PEER_BASE_INDEX=$(ls -1t "$BASE_CACHE"/*/index 2>/dev/null | head -n1 || true)
  fi
fi
{ [ -n "$PEER_BASE_INDEX" ] && [ -f "$PEER_BASE_INDEX" ]; } ||
  die "no local virt-builder index under $BASE_CACHE: run scripts/build-base-image.sh (make base-image)"
grep -q '^\[debian-12-local\]' "$PEER_BASE_INDEX" || die "$PEER_BASE_INDEX has no [debian-12-local] image"
log "local image index: $PEER_BASE_INDEX"

# --- 4. The original's configuration (VIRTUP_CONFIG_HOME) and data (VIRTUP_DATA_HOME) ---
# Empty dirs: VIRT_BUILDER_DIRS (skip /etc/virt-builder/repos.d, the unreachable public
# repositories) and XDG_CONFIG_HOME (skip ~/.config/virt-builder/repos.d): then
# virt-builder reads only the --source given in virt-builder-args.
mkdir -p "$PEER_HOME"/{config/templates.d,data,empty,xdg-config,cache,ssh}
chmod 700 "$PEER_HOME/data" "$PEER_HOME/ssh"

# Write a file only when its content changes (keeps mtimes stable across re-runs).
put() {
  local dest=$1 tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then rm -f "$tmp"; else mv -f "$tmp" "$dest"; log "wrote $dest"; fi
}

# configparser with interpolation: no '%' may appear in values.
put "$PEER_HOME/config/settings.cfg" <<EOF
# Written by bench/peer-setup.sh for the original virt-up $VIRTUP_VERSION.
[common]
pool = default
image-format = qcow2
# The original defaults the login user to the current user; as root that makes its
# template build run 'useradd root' and fail.
user = virt
address-source = $ADDRESS_SOURCE
graphics = none
EOF

put "$PEER_HOME/config/templates.d/peer-deb.cfg" <<EOF
# Written by bench/peer-setup.sh: the local Debian 12 image, the same as our tool uses.
[peer-deb]
desc = Debian 12 local image (bench peer)
os-version = debian-12-local
# osinfo-db on Debian 12 has no debian12
os-variant = debian11
arch = x86_64
pool = default
user = virt
image-format = qcow2
memory = 1024
vcpus = 2
graphics = none
address-source = $ADDRESS_SOURCE
virt-builder-args = --source file://$PEER_BASE_INDEX --no-check-signature --no-cache
# TCG: KVM is advertised but does not work on these machines.
virt-install-args = --virt-type $VIRT_TYPE --network network=default
EOF

# The environment peer.sh runs the original with (sourced by peer.sh; also handy for
# running $PEER_VENV/bin/virt-up by hand: `. $PEER_HOME/env`).
put "$PEER_HOME/env" <<EOF
# Written by bench/peer-setup.sh
export PEER_VENV='$PEER_VENV'
export PEER_HOME='$PEER_HOME'
export LIBVIRT_DEFAULT_URI=qemu:///system
export VIRTUP_CONFIG_HOME='$PEER_HOME/config'
export VIRTUP_DATA_HOME='$PEER_HOME/data'
export LIBGUESTFS_BACKEND=direct
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
export VIRT_BUILDER_DIRS='$PEER_HOME/empty'
export XDG_CONFIG_HOME='$PEER_HOME/xdg-config'
export XDG_CACHE_HOME='$PEER_HOME/cache'
EOF

# Sanity: the original sees exactly our template, and no /etc/virt-up interferes.
[ ! -e /etc/virt-up ] || log "warning: /etc/virt-up exists; the original merges it under our config"
(
  # shellcheck source=/dev/null # written by this script, above
  . "$PEER_HOME/env"
  "$PEER_VENV/bin/virt-up" show templates | grep -q '^peer-deb ' || die "the original does not see template peer-deb"
)
log "ready: $("$PEER_VENV/bin/virt-up" --version)"
