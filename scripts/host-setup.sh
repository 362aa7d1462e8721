#!/usr/bin/env bash
# Prepare this host for virt-up: packages, libvirt daemons, the default network and pool.
# Idempotent: every step checks first, so a second run takes about a second.
# Runs as root (the project's machines are root); on a normal workstation run it with sudo.
set -euo pipefail

log() { printf 'host-setup: %s\n' "$*" >&2; }

# openssh-server: the sshd of scripts/lab-host.sh's second libvirt host (started by that
# script with its own config; on a machine with an init system the package also starts
# the machine's own sshd, here nothing does). The far side of qemu+ssh:// runs
# virt-ssh-helper (package libvirt-daemon), so no netcat is needed.
PACKAGES=(libvirt-daemon-system libvirt-clients libvirt-dev pkg-config qemu-system-x86
  qemu-utils guestfs-tools libguestfs-tools virtinst debootstrap linux-image-amd64
  supermin dnsmasq-base genisoimage xorriso openssh-client ansible python3-venv xz-utils
  shellcheck zsh fish openssh-server)

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || echo "$p"
  done
}

install_packages() {
  local missing
  missing=$(missing_packages)
  [ -z "$missing" ] && return 0
  log "installing: ${missing//$'\n'/ }"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # qemu-utils may come from backports at a version that conflicts with bookworm's
  # qemu-system-x86; pin both to the same (candidate) version of qemu-system-x86.
  local qver p others=()
  for p in "${PACKAGES[@]}"; do case "$p" in qemu-*) ;; *) others+=("$p") ;; esac; done
  qver=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
  apt-get install -y -qq --no-install-recommends --allow-downgrades \
    "qemu-utils=$qver" "qemu-system-x86=$qver" "qemu-system-common=$qver" \
    "qemu-block-extra=$qver" "${others[@]}" >/dev/null
  local still
  still=$(missing_packages)
  [ -z "$still" ] || { log "still missing after install: $still"; exit 1; }
}

# What polkit grants group libvirt on a Debian desktop (qemu:///system without root), on a
# host without dbus: the read-write socket open to the group, no further authentication.
# Set before libvirtd starts; a running libvirtd is restarted once to read it (its guests
# keep running).
LIBVIRTD_CONF=/etc/libvirt/libvirtd.conf
GROUP_ACCESS=('unix_sock_group = "libvirt"' 'unix_sock_rw_perms = "0770"' 'auth_unix_rw = "none"')

# This machine's own daemons only, those of the /run/libvirt this script sees: a lab host
# of scripts/lab-host.sh runs a libvirtd and a virtlogd of its own in another mount
# namespace, which plain pgrep -x would take for these (and pkill -x kill).
own_pgrep() { pgrep --ns $$ --nslist mnt "$@"; }
own_pkill() { pkill --ns $$ --nslist mnt "$@"; }

allow_group_libvirt() {
  local line changed=
  for line in "${GROUP_ACCESS[@]}"; do
    grep -qxF "$line" "$LIBVIRTD_CONF" && continue
    printf '%s\n' "$line" >>"$LIBVIRTD_CONF"
    changed=yes
  done
  if [ -n "$changed" ] && own_pgrep -x libvirtd >/dev/null; then
    log "restarting libvirtd for group libvirt's socket access"
    own_pkill -x libvirtd
    local _
    for _ in $(seq 1 100); do own_pgrep -x libvirtd >/dev/null || return 0; sleep 0.1; done
    log "libvirtd did not stop"; exit 1
  fi
}

start_daemons() {
  own_pgrep -x virtlogd >/dev/null || virtlogd -d
  own_pgrep -x libvirtd >/dev/null || libvirtd -d
  local _
  for _ in $(seq 1 100); do
    virsh -c qemu:///system version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "libvirtd did not answer on qemu:///system"; exit 1
}

ensure_network() {
  local v="virsh -c qemu:///system"
  if ! $v net-info default >/dev/null 2>&1; then
    $v net-define /usr/share/libvirt/networks/default.xml >/dev/null
  fi
  # Capture first: with pipefail, grep -q closing the pipe early would fail the test.
  local info
  info=$($v net-info default)
  grep -q '^Active:.*yes' <<<"$info" || $v net-start default >/dev/null
}

ensure_pool() {
  local v="virsh -c qemu:///system"
  mkdir -p /var/lib/libvirt/images
  if ! $v pool-info default >/dev/null 2>&1; then
    $v pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
  fi
  local info
  info=$($v pool-info default)
  grep -q '^State:.*running' <<<"$info" || $v pool-start default >/dev/null
}

install_packages
allow_group_libvirt
start_daemons
ensure_network
ensure_pool
log "ready"
