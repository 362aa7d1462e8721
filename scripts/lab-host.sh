#!/usr/bin/env bash
# A second libvirt host on this machine, reachable only through libvirt's remote protocol
# over SSH (qemu+ssh://), for the real-VM tests of remote hosts.
#
#   lab-host.sh up DIR NAME INDEX       start host NAME, number INDEX (1..9), state in DIR
#   lab-host.sh down DIR                kill everything of it, delete netns/veth, remove DIR
#   lab-host.sh stop-libvirtd DIR       stop only its libvirtd (a host whose libvirtd is down)
#   lab-host.sh start-libvirtd DIR      start it again
#   lab-host.sh authorize DIR PUBKEY    add a public key to its root's authorized keys
#   lab-host.sh known-hosts DIR         print a known_hosts line for its sshd's host key
#   lab-host.sh run DIR CMD [ARG...]    run a command inside it (as its root)
#
# `up` prints uri=, address=, pool=, network=, guest_subnet= lines (the same when it is
# already up). All subcommands need root; `up` and `down` are idempotent.
#
# How it is made (INDEX=N):
# - A network namespace vulabN and a veth pair: vulabN (host side, 10.231.N.1/24) and eth0
#   inside (10.231.N.2/24, the lab's address). The lab has no default route: neither it nor
#   its guests reach anything but this machine's 10.231.N.1.
# - A mount and a UTS namespace (host name NAME), held by ns files under DIR/ns (so that
#   stop/start and down find them with no process alive). In it the lab's own directories
#   under DIR are bind-mounted over the same paths: DIR/run on /run (so /var/run: the
#   daemons' pid files and sockets are under DIR/run, seen from outside), DIR/etc/libvirt,
#   DIR/etc/ssh, DIR/etc/resolv.conf, DIR/var/{lib,cache,log,tmp} (holding only libvirt's
#   directories), DIR/tmp, DIR/home and DIR/root; and a sysfs of the netns on /sys. The rest
#   (/usr, /etc, /dev, the users) is this machine's. So what a client keeps in its home, its
#   /tmp or /var/cache (virt-up's caches, base images) is not on the lab host, as it would
#   not be on a real one: a path that only exists on the client fails there too.
# - Inside them virtlogd, libvirtd and an sshd (/etc/ssh of its own: its host key, root by
#   key only from /root/.ssh/authorized_keys, listening on 10.231.N.2:22 only). libvirt's
#   client runs virt-ssh-helper (package libvirt-daemon) on the far side, so no netcat.
# - The lab's `default` network: NAT on 192.168.(240+N).0/24, its dnsmasq in the netns;
#   its `default` pool: /var/lib/libvirt/images inside, DIR/var/lib/libvirt/images
#   outside, unreadable to regular users (DIR is 0700 root).
#
# Two libvirtds on one kernel, and what keeps them apart:
# - cgroups (v1 here): libvirt would put both daemons' guests in the same per-controller
#   directories (machine/qemu-ID-NAME.libvirt-qemu under the daemon's own cgroup, which is
#   the same for both), where equal IDs and names collide. The lab sees no cgroup at all (the
#   fresh sysfs has none mounted, and cgroup_controllers is empty): its guests stay in the
#   cgroups libvirtd was started in, with no per-guest resource control.
# - firewall: libvirt's iptables/ebtables rules and ip_forward are per network namespace.
# - pid files: libvirtd and virtlogd lock /run/libvirtd.pid and /run/virtlogd.pid, which
#   the host's daemons hold: hence a /run of its own, not only /run/libvirt.
# - host UUID: both would read the same SMBIOS/machine-id; the lab gets its own host_uuid.
# - DNS: the lab's dnsmasq would forward to the host's resolvers, which it cannot reach; an
#   empty resolv.conf of its own makes that (and the daemons' own look-ups) fail at once.
set -euo pipefail

PROG=${0##*/}
SELF=$(readlink -f "$0")
LAB_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '5,11s/^#   //p' "$SELF" >&2; exit 2; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# Absolute, normalised DIR of plain characters (it is matched in mountinfo); refuses the
# system's own directories (down removes DIR).
set_dir() {
  [ -n "${1:-}" ] || usage
  case "$1" in /*) ;; *) die "DIR must be an absolute path: $1" ;; esac
  DIR=$(realpath -m "$1")
  [[ $DIR =~ ^/[A-Za-z0-9._/-]+$ ]] || die "DIR may have only letters, digits and ._-/: $DIR"
  case "$DIR" in
    /tmp | /var | /var/tmp | /var/lib | /var/cache | /var/log | /home | /root | /run | /run/* | \
      /etc | /etc/* | /usr | /usr/* | /boot | /boot/* | /proc/* | /sys/* | /dev/*)
      die "refusing DIR $DIR" ;;
  esac
}

# Names and addresses of lab INDEX.
set_index() {
  INDEX=$1
  NS=vulab$INDEX
  VETH=vulab$INDEX
  HOST_ADDR=10.231.$INDEX.1
  ADDR=10.231.$INDEX.2
  GUEST_NET=192.168.$((240 + INDEX))
}

load() {
  [ -f "$DIR/lab.env" ] || die "$DIR is not a lab host (no lab.env)"
  local name index
  name=$(sed -n 's/^name=//p' "$DIR/lab.env")
  index=$(sed -n 's/^index=//p' "$DIR/lab.env")
  [[ $index =~ ^[1-9]$ ]] || die "bad index in $DIR/lab.env"
  NAME=$name
  set_index "$index"
}

# A command inside the lab's namespaces, with a clean environment.
in_lab() {
  nsenter --mount="$DIR/ns/mnt" --uts="$DIR/ns/uts" --net="/run/netns/$NS" -- \
    env -i PATH="$LAB_PATH" HOME=/root LANG=C.UTF-8 "$@"
}

lab_virsh() { in_lab virsh -q -c qemu:///system "$@"; }

is_mountpoint() { findmnt -n --mountpoint "$1" >/dev/null 2>&1; }

# Whether process $1 is alive: not a zombie either, which this machine's pid 1 (no init)
# reaps only some time later.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# Whether the process in pid file $1 is alive and is $2.
pid_alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && alive "$pid"
}

# ---------------------------------------------------------------------------------------
# up

# Directories like $1's children (owner, mode), empty, under $2.
mirror_dirs() {
  local src=$1 dst=$2 d
  mkdir -p "$dst"
  chown --reference="$src" "$dst"
  chmod --reference="$src" "$dst"
  for d in "$src"/*/; do
    [ -d "$d" ] || continue
    d=${d%/}
    mkdir -p "$dst/${d##*/}"
    chown --reference="$d" "$dst/${d##*/}"
    chmod --reference="$d" "$dst/${d##*/}"
  done
}

# key = value in a libvirt config file, replacing an uncommented one.
set_conf() {
  local file=$1 key=$2 value=$3
  sed -i "/^[[:space:]]*${key}[[:space:]]*=/d" "$file"
  printf '%s = %s\n' "$key" "$value" >>"$file"
}

make_state() {
  [ -f "$DIR/lab.env" ] && return 0
  [ ! -e "$DIR" ] || [ -z "$(ls -A "$DIR")" ] || die "$DIR exists and is not a lab host"
  log "creating $DIR"
  # Made under another name and renamed at the end: a DIR is whole or absent.
  local T=$DIR.new
  rm -rf "$T"
  mkdir -p "$T"
  chown root:root "$T"
  chmod 0700 "$T"
  mkdir -p "$T/ns" "$T/run/libvirt" "$T/run/sshd" "$T/etc" "$T/var/lib" "$T/var/cache" \
    "$T/var/log" "$T/var/tmp" "$T/tmp" "$T/home" "$T/root/.ssh"
  chmod 0755 "$T/run" "$T/run/libvirt" "$T/run/sshd" "$T/etc" "$T/var" "$T/var/lib" \
    "$T/var/cache" "$T/var/log" "$T/home"
  chmod 1777 "$T/tmp" "$T/var/tmp"
  chmod 0700 "$T/root" "$T/root/.ssh"
  mirror_dirs /var/lib/libvirt "$T/var/lib/libvirt"
  mirror_dirs /var/cache/libvirt "$T/var/cache/libvirt"
  mirror_dirs /var/log/libvirt "$T/var/log/libvirt"
  # The host's probes of the same qemu binaries on the same kernel: without them libvirtd
  # runs every qemu-system-* before it answers (8 s here, under TCG). libvirt checks each
  # file's validity itself (binary and libvirtd ctimes, kernel, microcode, host CPUID: see
  # probe_cpu).
  local caps=/var/cache/libvirt/qemu/capabilities
  if [ -d "$caps" ]; then
    mkdir -p "$T/var/cache/libvirt/qemu"
    cp -a "$caps" "$T/var/cache/libvirt/qemu/"
  fi
  # The pool: a regular user must not read it from outside (DIR is 0700 root as well).
  mkdir -p "$T/var/lib/libvirt/images"
  chmod 0711 "$T/var/lib/libvirt/images"

  # The host's libvirt configuration files, none of its objects: its domains, networks,
  # pools, secrets, node devices and hooks belong to the host, not to this one.
  local etc=$T/etc/libvirt
  mkdir -p "$etc"
  chmod --reference=/etc/libvirt "$etc"
  find /etc/libvirt -maxdepth 1 -type f -exec cp -a {} "$etc/" \;
  [ -d /etc/libvirt/nwfilter ] && cp -a /etc/libvirt/nwfilter "$etc/"
  mkdir -p "$etc/hooks" "$etc/qemu/networks/autostart" "$etc/storage/autostart"
  touch "$etc/qemu.conf" "$etc/libvirtd.conf"
  set_conf "$etc/qemu.conf" cgroup_controllers '[ ]'
  set_conf "$etc/libvirtd.conf" host_uuid "\"$(cat /proc/sys/kernel/random/uuid)\""

  printf '# %s: no upstream DNS\n' "$NAME" >"$T/etc/resolv.conf"
  chmod 0644 "$T/etc/resolv.conf"

  mkdir -p "$T/etc/ssh"
  chmod 0755 "$T/etc/ssh"
  [ ! -f /etc/ssh/moduli ] || cp -a /etc/ssh/moduli "$T/etc/ssh/"
  ssh-keygen -q -t ed25519 -N '' -C "root@$NAME" -f "$T/etc/ssh/ssh_host_ed25519_key"
  : >"$T/root/.ssh/authorized_keys"
  chmod 0600 "$T/root/.ssh/authorized_keys"
  # Paths as the lab's sshd sees them.
  cat >"$T/etc/ssh/sshd_config" <<EOF
# sshd of lab host $NAME (scripts/lab-host.sh)
ListenAddress $ADDR:22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin prohibit-password
AllowUsers root
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
X11Forwarding no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
  printf 'name=%s\nindex=%s\n' "$NAME" "$INDEX" >"$T/lab.env"
  mv -T "$T" "$DIR"
}

make_net() {
  if [ ! -e "/run/netns/$NS" ]; then
    local other
    other=$(ip -o route show "10.231.$INDEX.0/24" | grep -v " dev $VETH " || true)
    [ -z "$other" ] || die "10.231.$INDEX.0/24 is routed elsewhere: $other"
    ip netns add "$NS"
  fi
  ip link show "$VETH" >/dev/null 2>&1 ||
    ip link add "$VETH" type veth peer name eth0 netns "$NS"
  # Captured first: with pipefail, grep -q closing the pipe early would fail the test.
  local addrs
  addrs=$(ip -o addr show dev "$VETH")
  grep -qF " $HOST_ADDR/24 " <<<"$addrs" || ip addr add "$HOST_ADDR/24" dev "$VETH"
  ip link set "$VETH" up
  ip -n "$NS" link set lo up
  addrs=$(ip -n "$NS" -o addr show dev eth0)
  grep -qF " $ADDR/24 " <<<"$addrs" || ip -n "$NS" addr add "$ADDR/24" dev eth0
  ip -n "$NS" link set eth0 up
}

make_mounts() {
  is_mountpoint "$DIR/ns/mnt" && is_mountpoint "$DIR/ns/uts" && return 0
  # unshare binds the ns files in this (the host's) mount namespace, which needs them on a
  # private mount.
  if ! is_mountpoint "$DIR/ns"; then
    mount --bind "$DIR/ns" "$DIR/ns"
    mount --make-private "$DIR/ns"
  fi
  umount "$DIR/ns/mnt" 2>/dev/null || true
  umount "$DIR/ns/uts" 2>/dev/null || true
  touch "$DIR/ns/mnt" "$DIR/ns/uts"
  unshare --mount="$DIR/ns/mnt" --uts="$DIR/ns/uts" --propagation private -- \
    nsenter --net="/run/netns/$NS" -- "$SELF" __init-mounts "$DIR"
}

# Run inside the new mount, UTS and net namespaces by make_mounts.
init_mounts() {
  load
  # The copies of the host's namespace files (/run/netns/*, other labs' DIR/ns/*): they
  # would keep those namespaces alive after their own down, as long as this lab lives.
  local m
  while IFS= read -r m; do
    umount -l "$(printf '%b' "$m")"
  done < <(findmnt -rn -t nsfs -o TARGET)
  # A sysfs of this netns (its /sys/class/net), with no cgroup mounted under it.
  umount -l /sys
  mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
  # Sources relative to DIR, which stays the working directory when a mount covers the
  # path to it (DIR may be under /tmp, say).
  cd "$DIR"
  local d
  for d in run etc/libvirt etc/ssh etc/resolv.conf var/lib var/cache var/log var/tmp home root tmp; do
    mount --bind "$d" "/$d"
  done
  hostname "$NAME"
}

wait_for() {
  local what=$1 _
  shift
  for _ in $(seq 1 200); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "$what did not come up (logs under $DIR/var/log, $DIR/daemons.log)"
}

start_virtlogd() {
  pid_alive "$DIR/run/virtlogd.pid" virtlogd && return 0
  in_lab virtlogd -d </dev/null >/dev/null 2>>"$DIR/daemons.log" || die "virtlogd failed: $DIR/daemons.log"
}

# The CPU on which the host's libvirtd probed qemu-system-x86_64, or nothing. The probe
# records KVM_GET_SUPPORTED_CPUID, whose leaf 0x1f (or 0xb) holds the x2APIC ID of the
# CPU it ran on, and libvirt finds a cached probe outdated ("host cpuid changed") when
# the daemon's own call runs on another CPU: a coin toss on 2 CPUs, and a lost toss costs
# 8 s of probing every qemu-system-* under TCG.
probe_cpu() {
  local f apic leaf
  # (No pipes into head here: with pipefail, head's early exit could fail them.)
  f=$(grep -l '<emulator>/usr/bin/qemu-system-x86_64<' "$DIR"/var/cache/libvirt/qemu/capabilities/*.xml \
    2>/dev/null) || return 0
  f=${f%%$'\n'*}
  apic=
  for leaf in 0x0000001f 0x0000000b; do
    apic=$(sed -n "s/.*eax_in='$leaf' ecx_in='0x00000000' .* edx='\(0x[0-9a-f]*\)'.*/\1/p;T;q" "$f")
    [ -z "$apic" ] || break
  done
  # No such leaf: libvirt leaves out an all-zero entry, which is the x2APIC ID 0.
  apic=$((${apic:-0}))
  awk -v a="$apic" '/^processor/ { p = $3 } /^apicid/ && $3 == a { print p; exit }' /proc/cpuinfo
}

start_libvirtd() {
  if ! pid_alive "$DIR/run/libvirtd.pid" libvirtd; then
    local cpu pin=()
    cpu=$(probe_cpu)
    [ -z "$cpu" ] || pin=(taskset -c "$cpu")
    in_lab "${pin[@]}" libvirtd -d </dev/null >/dev/null 2>>"$DIR/daemons.log" ||
      die "libvirtd failed: $DIR/daemons.log"
    wait_for libvirtd lab_virsh version
    if [ -n "$cpu" ]; then
      # Unpinned once it has probed: all its threads, and the dnsmasqs it started (its
      # guests get all CPUs from libvirt itself).
      local all p
      all=$(taskset -pc $$ | sed 's/.*: //')
      for p in $(lab_pids); do taskset -a -p -c "$all" "$p" >/dev/null 2>&1 || true; done
    fi
  fi
  wait_for libvirtd lab_virsh version
}

sshd_listening() {
  local socks
  socks=$(in_lab ss -Hltn "src $ADDR:22")
  grep -q LISTEN <<<"$socks"
}

start_sshd() {
  if ! pid_alive "$DIR/run/sshd.pid" sshd; then
    in_lab /usr/sbin/sshd -E /var/log/sshd.log </dev/null >/dev/null 2>>"$DIR/daemons.log" ||
      die "sshd failed: $DIR/var/log/sshd.log"
  fi
  wait_for sshd sshd_listening
}

ensure_network() {
  if ! lab_virsh net-info default >/dev/null 2>&1; then
    # On stdin: no path under DIR is seen inside.
    lab_virsh net-define /dev/stdin >/dev/null <<EOF
<network>
  <name>default</name>
  <bridge name='virbr0'/>
  <forward mode='nat'/>
  <ip address='$GUEST_NET.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='$GUEST_NET.2' end='$GUEST_NET.254'/>
    </dhcp>
  </ip>
</network>
EOF
    lab_virsh net-autostart default >/dev/null
  fi
  local info
  info=$(lab_virsh net-info default)
  grep -q '^Active:.*yes' <<<"$info" || lab_virsh net-start default >/dev/null
}

ensure_pool() {
  if ! lab_virsh pool-info default >/dev/null 2>&1; then
    lab_virsh pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
    lab_virsh pool-autostart default >/dev/null
  fi
  local info
  info=$(lab_virsh pool-info default)
  grep -q '^State:.*running' <<<"$info" || lab_virsh pool-start default >/dev/null
}

print_info() {
  printf 'uri=qemu+ssh://root@%s/system\n' "$ADDR"
  printf 'address=%s\n' "$ADDR"
  printf 'pool=/var/lib/libvirt/images\n'
  printf 'network=default\n'
  printf 'guest_subnet=%s.0/24\n' "$GUEST_NET"
}

cmd_up() {
  [ $# = 3 ] || usage
  set_dir "$1"
  [[ $2 =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "NAME must be a host name like lab2: $2"
  [[ $3 =~ ^[1-9]$ ]] || die "INDEX must be 1..9: $3"
  if [ -f "$DIR/lab.env" ]; then
    load
    if [ "$NAME" != "$2" ] || [ "$INDEX" != "$3" ]; then
      die "$DIR is lab host $NAME, index $INDEX"
    fi
  else
    NAME=$2
    set_index "$3"
  fi
  make_state
  make_net
  make_mounts
  start_virtlogd
  start_libvirtd
  ensure_network
  ensure_pool
  start_sshd
  print_info
}

# ---------------------------------------------------------------------------------------
# down, stop-libvirtd, start-libvirtd

# Pids of every process in the lab's network or mount namespace (its qemus have mount
# namespaces of their own, but the lab's network namespace).
lab_pids() {
  local net mnt p
  net=$(stat -L -c %i "/run/netns/$NS" 2>/dev/null || echo none)
  mnt=$(stat -L -c %i "$DIR/ns/mnt" 2>/dev/null || echo none)
  is_mountpoint "$DIR/ns/mnt" || mnt=none
  for p in /proc/[0-9]*; do
    case "$(readlink "$p/ns/net" 2>/dev/null)" in "net:[$net]") echo "${p#/proc/}"; continue ;; esac
    case "$(readlink "$p/ns/mnt" 2>/dev/null)" in "mnt:[$mnt]") echo "${p#/proc/}" ;; esac
  done
}

kill_lab() {
  local pids _
  pids=$(lab_pids)
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 1 100); do
    pids=$(lab_pids)
    [ -n "$pids" ] || return 0
    sleep 0.05
  done
  log "killing what is left: $pids"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 1 100); do
    [ -n "$(lab_pids)" ] || return 0
    sleep 0.05
  done
  die "processes of $DIR did not die: $(lab_pids)"
}

cmd_down() {
  [ $# = 1 ] || usage
  set_dir "$1"
  [ -e "$DIR" ] || return 0
  load
  kill_lab
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$VETH" 2>/dev/null || true
  local m
  for m in "$DIR/ns/mnt" "$DIR/ns/uts" "$DIR/ns"; do
    if is_mountpoint "$m"; then umount "$m"; fi
  done
  ! awk -v d="$DIR" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' \
    /proc/self/mountinfo || die "still mounted under $DIR"
  rm -rf "$DIR"
}

cmd_stop_libvirtd() {
  [ $# = 1 ] || usage
  set_dir "$1"
  load
  pid_alive "$DIR/run/libvirtd.pid" libvirtd || return 0
  local pid _
  pid=$(cat "$DIR/run/libvirtd.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 200); do
    alive "$pid" || return 0
    sleep 0.05
  done
  die "libvirtd ($pid) did not stop"
}

cmd_start_libvirtd() {
  [ $# = 1 ] || usage
  set_dir "$1"
  load
  is_mountpoint "$DIR/ns/mnt" || die "lab host $NAME is not up"
  start_virtlogd
  start_libvirtd
}

# ---------------------------------------------------------------------------------------
# authorize, known-hosts, run

cmd_authorize() {
  [ $# = 2 ] || usage
  set_dir "$1"
  load
  ssh-keygen -l -f "$2" >/dev/null 2>&1 || die "not a public key: $2"
  local line
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    grep -qxF "$line" "$DIR/root/.ssh/authorized_keys" ||
      printf '%s\n' "$line" >>"$DIR/root/.ssh/authorized_keys"
  done <"$2"
}

cmd_known_hosts() {
  [ $# = 1 ] || usage
  set_dir "$1"
  load
  local type key _
  read -r type key _ <"$DIR/etc/ssh/ssh_host_ed25519_key.pub"
  printf '%s %s %s\n' "$ADDR" "$type" "$key"
}

cmd_run() {
  [ $# -ge 2 ] || usage
  set_dir "$1"
  shift
  load
  in_lab "$@"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
need_root
case "$cmd" in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  stop-libvirtd) cmd_stop_libvirtd "$@" ;;
  start-libvirtd) cmd_start_libvirtd "$@" ;;
  authorize) cmd_authorize "$@" ;;
  known-hosts) cmd_known_hosts "$@" ;;
  run) cmd_run "$@" ;;
  __init-mounts) set_dir "$1" && init_mounts ;;
  *) usage ;;
esac
