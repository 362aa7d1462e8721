#!/usr/bin/env bash
# Build a minimal bootable Debian 12 (bookworm) disk image from Debian packages and
# publish it as a local virt-builder repository (no internet needed beyond the Debian
# mirror apt already uses).
#
#   scripts/build-base-image.sh        -> prints the path of the repository's index
#
# The result is cached in ${VIRTUP_BASE_CACHE:-/var/cache/virt-up-base}/<key>/, where
# <key> is derived from this file's contents: editing the recipe rebuilds, re-running
# an unchanged recipe returns at once.  Use it as:
#
#   virt-builder --source file://<dir>/index --no-check-signature debian-12-local ...
#
# Environment:
#   VIRTUP_BASE_CACHE     cache root (default /var/cache/virt-up-base)
#   VIRTUP_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the one apt uses here)
#
# Needs root, debootstrap, guestfish (libguestfs), xz, virt-index-validate.
# Progress goes to stderr; stdout carries only the index path.
set -euo pipefail

readonly SUITE=bookworm
readonly IMAGE_NAME=debian-12-local
readonly IMAGE_FILE=$IMAGE_NAME.raw.xz
readonly DISK_MIB=1536       # the rootfs is ~0.5 GiB; leave room for the first apt run
readonly PACKAGES=(
  linux-image-cloud-amd64 grub-pc systemd-sysv udev dbus openssh-server
  qemu-guest-agent sudo iproute2 kmod initramfs-tools python3 ca-certificates
)

# This machine has no usable KVM; libguestfs must use TCG.  (Honour a caller's choice.)
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

log() { printf 'build-base-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Time a step and report it, so slow steps are visible in the build log.
timed() {
  local what=$1 start=$SECONDS
  shift
  log "$what..."
  "$@"
  log "$what: done in $((SECONDS - start)) s"
}

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
CACHE_ROOT=${VIRTUP_BASE_CACHE:-/var/cache/virt-up-base}
KEY=$(sha256sum "$SCRIPT_PATH" | cut -c1-16)
OUT_DIR=$CACHE_ROOT/$KEY
WORK=""

# A cache entry is complete only if both files exist: the directory appears by an
# atomic rename at the very end of a build, so a partial build never matches.
cached() { [ -f "$OUT_DIR/index" ] && [ -f "$OUT_DIR/$IMAGE_FILE" ]; }

# Delete a build directory.  Unmount anything left mounted under it first
# (debootstrap mounts /proc and /sys in the target and may bind /dev), and never let
# rm cross into another file system: deleting through a bind of /dev hurts the host.
remove_tree() {
  local dir=$1 m
  [ -d "$dir" ] || return 0
  for m in $(awk -v w="$dir/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$dir"
}

cleanup() { [ -z "$WORK" ] || remove_tree "$WORK"; }

# The mirror apt uses on this host: first "deb" line (one-line format) or deb822
# stanza (debian.sources) that serves $SUITE itself, not -security/-updates.
host_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # "deb [options] URI suite components": drop the options, then match the suite.
    awk -v s="$SUITE" '$1 == "deb" { sub(/\[[^]]*\][ \t]*/, "")
        if ($3 == s) { print $2; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: stanzas are separated by blank lines; fields are "Name: value...".
    awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" } {
        uri = ""; ok = 0; deb = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)   { split($i, a, /[ \t]+/); uri = a[2] }
          if ($i ~ /^Types:/   && $i ~ /[ \t]deb([ \t]|$)/) deb = 1
          if ($i ~ /^Suites:/) { n = split($i, a, /[ \t]+/); for (j = 2; j <= n; j++) if (a[j] == s) ok = 1 }
        }
        if (deb && ok && uri != "") { print uri; exit } }' "$f"
  done
}

mirror() {
  local m=${VIRTUP_DEBIAN_MIRROR:-}
  [ -n "$m" ] || m=$(host_mirror | head -n1)
  [ -n "$m" ] || die "no Debian mirror for $SUITE in /etc/apt; set VIRTUP_DEBIAN_MIRROR"
  printf '%s\n' "${m%/}"
}

run_debootstrap() {
  local rootfs=$1 mirror=$2 packages
  packages=$(IFS=,; echo "${PACKAGES[*]}")
  # .debs are kept across recipe changes, so a rebuild does not download them again.
  mkdir -p "$CACHE_ROOT/debootstrap-debs"
  debootstrap --variant=minbase --include="$packages" \
    --cache-dir="$CACHE_ROOT/debootstrap-debs" \
    "$SUITE" "$rootfs" "$mirror" >&2
}

# Write a file inside the rootfs from stdin.
put() { mkdir -p "$(dirname "$1")"; cat >"$1"; }

configure_network() {
  local r=$1
  # DHCP on every ethernet interface, whatever the naming scheme.  The client
  # identifier is the MAC, not the machine-id, so clones that still share the
  # template's machine-id do not end up with the same address.
  put "$r/etc/systemd/network/80-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=yes

[DHCPv4]
ClientIdentifier=mac
EOF
  # debootstrap copied the host's resolv.conf and hostname.  Bookworm's systemd has
  # no resolved in the base package, so point at libvirt's default-network dnsmasq.
  rm -f "$r/etc/resolv.conf"
  echo "nameserver 192.168.122.1" >"$r/etc/resolv.conf"
  echo localhost >"$r/etc/hostname"
  put "$r/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
  put "$r/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
}

configure_boot() {
  local r=$1
  echo 'LABEL=root / ext4 errors=remount-ro 0 1' >"$r/etc/fstab"
  # Kernel and GRUB on the serial port: `virsh console` and the domain's serial log
  # then show the whole boot.  No "quiet", no menu delay.
  put "$r/etc/default/grub" <<'EOF'
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"
GRUB_DISABLE_OS_PROBER=true
EOF
}

configure_identity() {
  local r=$1
  # Empty (not missing) machine-id: systemd generates a fresh one on first boot.
  : >"$r/etc/machine-id"
  rm -f "$r/var/lib/dbus/machine-id"
  mkdir -p "$r/var/lib/dbus"
  ln -s /etc/machine-id "$r/var/lib/dbus/machine-id"
  # Every instance needs its own host keys; Debian does not regenerate missing ones
  # (virt-sysprep deletes them too), so a oneshot unit does it before sshd starts.
  # Only Ed25519 and ECDSA: `ssh-keygen -A` also makes an RSA-3072 key, which takes
  # ~12 s of first boot under TCG and delays sshd by as much.
  rm -f "$r"/etc/ssh/ssh_host_*
  put "$r/etc/ssh/sshd_config.d/10-hostkeys.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
EOF
  put "$r/etc/systemd/system/ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Generate missing SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStartPre=/bin/rm -f /etc/ssh/ssh_host_ecdsa_key /etc/ssh/ssh_host_ecdsa_key.pub
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key

[Install]
WantedBy=multi-user.target
EOF
  # An empty seed file: virt-builder and virt-sysprep fill an existing one with fresh
  # random data per instance (and warn if there is none); systemd refreshes it later.
  install -m 600 /dev/null "$r/var/lib/systemd/random-seed"
}

enable_units() {
  local r=$1
  # Debian's qemu-guest-agent unit has an empty [Install]: udev starts it when the
  # agent's virtio port appears.  Enable it the same way (wanted by that device):
  # WantedBy=multi-user.target would leave a start job waiting 90 s for the device
  # in domains without an agent channel, holding `is-system-running` at "starting".
  put "$r/etc/systemd/system/qemu-guest-agent.service.d/install.conf" <<'EOF'
[Install]
WantedBy=dev-virtio\x2dports-org.qemu.guest_agent.0.device
EOF
  # Offline enable inside the chroot: only creates symlinks, starts nothing.
  chroot "$r" systemctl enable --quiet systemd-networkd.service ssh.service \
    ssh-hostkeys.service qemu-guest-agent.service serial-getty@ttyS0.service >&2
  # e2scrub only checks LVM-backed ext4 (there is none); it costs CPU during boot.
  chroot "$r" systemctl disable --quiet e2scrub_reap.service e2scrub_all.timer >&2
}

shrink_rootfs() {
  local r=$1
  chroot "$r" apt-get clean
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/log/*.log \
    "$r"/var/log/apt/* "$r"/tmp/* "$r"/var/tmp/*
}

configure_rootfs() {
  local r=$1
  configure_network "$r"
  configure_boot "$r"
  configure_identity "$r"
  enable_units "$r"
  shrink_rootfs "$r"
}

make_tarball() {
  # Numeric owners and xattrs (file capabilities) survive the trip into the disk.
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$1" -cf "$2" .
}

# One libguestfs appliance for everything: partition, format, unpack, install GRUB.
# `command`/`sh` run chrooted into the guest's root with /dev, /proc and /sys bound in.
# /dev/sda in guestfish's API is always our disk, but the kernel's name for it is not:
# the appliance's own disk is probed concurrently and sometimes gets sda (grub-install
# then fails with "ext2 doesn't support embedding ... cross-disk install").  So
# grub-install gets the kernel's name of the disk holding the mounted root.
make_disk() {
  local tarball=$1 disk=$2 grubcfg=$3
  guestfish --no-progress-bars <<EOF >&2
sparse $disk ${DISK_MIB}M
run
part-disk /dev/sda mbr
part-set-bootable /dev/sda 1 true
mkfs ext4 /dev/sda1 label:root
mount /dev/sda1 /
tar-in $tarball / xattrs:true
sh "grub-install --target=i386-pc /dev/\$(lsblk -ndo PKNAME \$(findmnt -nvo SOURCE /))"
command "update-grub"
download /boot/grub/grub.cfg $grubcfg
df-h
umount-all
EOF
}

# GRUB must be in our disk's MBR; update-grub ran in the appliance, where the disk
# is /dev/sd?, so the guest must find its root by UUID/label (it is /dev/vda there),
# and the kernel must log to the serial console.
check_boot() {
  local disk=$1 cfg=$2
  [[ $(head -c 512 "$disk" | tr -d '\0') == *GRUB* ]] || die "no GRUB boot code in the disk's MBR"
  grep -Eq '^[[:space:]]*linux[[:space:]].*root=(UUID|LABEL)=' "$cfg" ||
    die "grub.cfg does not name the root by UUID or label"
  grep -Eq '^[[:space:]]*linux[[:space:]].*console=ttyS0' "$cfg" ||
    die "grub.cfg kernel command line lacks console=ttyS0"
  log "grub.cfg: $(grep -Em1 '^[[:space:]]*linux[[:space:]]' "$cfg" | sed 's/^[[:space:]]*//')"
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
notes=Built by virt-up scripts/build-base-image.sh with debootstrap from $MIRROR
EOF
  virt-index-validate "$dir/index" >&2
  # virt-builder reads <D>/virt-builder/repos.d/*.conf for each D in VIRT_BUILDER_DIRS
  # (or XDG_CONFIG_HOME); repos.d/ at the top is a shortcut to the same file.
  mkdir -p "$dir/virt-builder/repos.d"
  printf '[local]\nuri=file://%s/index\n' "$OUT_DIR" >"$dir/virt-builder/repos.d/local.conf"
  ln -s virt-builder/repos.d "$dir/repos.d"
}

build() {
  local rootfs=$WORK/rootfs out=$WORK/out disk=$WORK/disk.raw
  mkdir -p "$out"
  timed "debootstrap $SUITE from $MIRROR" run_debootstrap "$rootfs" "$MIRROR"
  timed "configure rootfs" configure_rootfs "$rootfs"
  timed "tar rootfs ($(du -sh --one-file-system "$rootfs" | cut -f1))" \
    make_tarball "$rootfs" "$WORK/rootfs.tar"
  rm -rf --one-file-system "$rootfs"
  timed "guestfish: ${DISK_MIB} MiB disk, ext4, GRUB" \
    make_disk "$WORK/rootfs.tar" "$disk" "$WORK/grub.cfg"
  check_boot "$disk" "$WORK/grub.cfg"
  rm -f "$WORK/rootfs.tar"
  timed "xz" compress_disk "$disk" "$out/$IMAGE_FILE"
  timed "index" write_index "$out" "$out/$IMAGE_FILE" "$(stat -c %s "$disk")"
  log "image: $(du -h --apparent-size "$out/$IMAGE_FILE" | cut -f1) compressed, ${DISK_MIB} MiB raw"
  # The atomic step: the entry appears complete or not at all.
  mv -T "$out" "$OUT_DIR"
}

# `current` names the entry of this recipe, so configuration can use a stable path
# (the shipped template debian-12-local does); switched atomically with a rename.
publish_current() {
  ln -sfn "$KEY" "$CACHE_ROOT/.current.$$"
  mv -T "$CACHE_ROOT/.current.$$" "$CACHE_ROOT/current"
}

main() {
  if cached; then publish_current; echo "$OUT_DIR/index"; return 0; fi
  [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
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
  MIRROR=$(mirror)
  WORK=$(mktemp -d "$CACHE_ROOT/.build-$KEY.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  build
  publish_current
  echo "$OUT_DIR/index"
}

main "$@"
