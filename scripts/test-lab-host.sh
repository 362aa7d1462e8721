#!/usr/bin/env bash
# Check scripts/lab-host.sh by hand, as root: a lab host from nothing, a regular user
# (vut-rig, made if missing) using it over qemu+ssh:// with strict host key checking, a
# TCG guest on it, its libvirtd stopped and started, down and up again, and down leaving
# nothing behind. Prints each check and ends with "N passed, N failed".
#
#   scripts/test-lab-host.sh [INDEX]      (default 9; its state in /tmp/vulab-test-INDEX)
set -uo pipefail

INDEX=${1:-9}
LAB=$(dirname "$(readlink -f "$0")")/lab-host.sh
DIR=/tmp/vulab-test-$INDEX
NAME=labtest$INDEX
USER_NAME=vut-rig
passed=0
failed=0

ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
as_user() { runuser -u "$USER_NAME" -- env -i HOME="/home/$USER_NAME" PATH=/usr/bin:/bin "$@"; }
now() { date +%s.%N; }
since() { printf '%.2f' "$(echo "$(now) - $1" | bc)"; }

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
"$LAB" down "$DIR"

# --- up from nothing ----------------------------------------------------------------------
t=$(now)
out=$("$LAB" up "$DIR" "$NAME" "$INDEX") || { echo "up failed" >&2; exit 1; }
up_time=$(since "$t")
echo "up from nothing: $up_time s"
uri=$(sed -n 's/^uri=//p' <<<"$out")
addr=$(sed -n 's/^address=//p' <<<"$out")
check "up prints uri, address, pool, network, guest_subnet" \
  test "$(cut -d= -f1 <<<"$out" | tr '\n' ' ')" = "uri address pool network guest_subnet "
check "up again prints the same" test "$("$LAB" up "$DIR" "$NAME" "$INDEX")" = "$out"

# --- a regular user's client ----------------------------------------------------------------
id "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$USER_NAME"
as_user mkdir -p -m 0700 "/home/$USER_NAME/.ssh"
[ -f "/home/$USER_NAME/.ssh/id_ed25519" ] ||
  as_user ssh-keygen -q -t ed25519 -N '' -f "/home/$USER_NAME/.ssh/id_ed25519"
"$LAB" authorize "$DIR" "/home/$USER_NAME/.ssh/id_ed25519.pub"
"$LAB" known-hosts "$DIR" | as_user tee "/home/$USER_NAME/.ssh/known_hosts" >/dev/null
v() { as_user virsh -q -c "$uri" "$@"; }

check "list --all" v list --all
check "hostname is $NAME" test "$(v hostname)" = "$NAME"
check "pool default active" grep -q '^ default *active' <<<"$(v pool-list --all)"
check "network default active" grep -q '^ default *active' <<<"$(v net-list --all)"
blob=$(as_user mktemp)
as_user dd if=/dev/urandom of="$blob" bs=64k count=16 status=none
check "vol-create-as" v vol-create-as default t.qcow2 10M --format qcow2
check "vol-upload" v vol-upload --pool default t.qcow2 "$blob"
check "vol-download gives it back" sh -c "runuser -u $USER_NAME -- virsh -q -c $uri \
  vol-download --pool default t.qcow2 $blob.back && cmp -s $blob $blob.back"
check "vol-delete" v vol-delete --pool default t.qcow2
rm -f "$blob" "$blob.back"
check "the user cannot read $DIR" sh -c "! runuser -u $USER_NAME -- ls $DIR >/dev/null 2>&1"
check "the lab host does not see the client's home" "$LAB" run "$DIR" test ! -e "/home/$USER_NAME"
check "nor its /tmp" "$LAB" run "$DIR" test ! -e "$DIR"
check "nor /var/cache" sh -c "[ \"\$('$LAB' run '$DIR' ls /var/cache)\" = libvirt ]"

# Strict host key checking: a wrong key in known_hosts is refused.
sed 's/ AAAA[^ ]*/ AAAAC3NzaC1lZDI1NTE5AAAAIBJHOF6BCXPYpafhKb5bEDPZJq2ezzPJ1GaYzwGwcQKR/' \
  "/home/$USER_NAME/.ssh/known_hosts" >"/home/$USER_NAME/.ssh/known_hosts.wrong"
check "a wrong host key is refused" sh -c "! runuser -u $USER_NAME -- ssh -o BatchMode=yes \
  -o UserKnownHostsFile=/home/$USER_NAME/.ssh/known_hosts.wrong root@$addr true 2>/dev/null"
rm -f "/home/$USER_NAME/.ssh/known_hosts.wrong"

# --- a TCG guest -----------------------------------------------------------------------------
xml=$(mktemp)
chmod 0644 "$xml"
cat >"$xml" <<EOF
<domain type='qemu'>
  <name>lab-tiny</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>
  <devices><interface type='network'><source network='default'/></interface></devices>
</domain>
EOF
check "define a TCG domain" v define "$xml"
check "start it" v start lab-tiny
check "it runs" test "$(v domstate lab-tiny)" = running
tap=$(v domiflist lab-tiny | awk '{print $1}')
check "its tap $tap is in the lab's netns" sh -c "ip -n vulab$INDEX link show $tap >/dev/null"
check "and not in the host's" sh -c "! ip link show $tap >/dev/null 2>&1"
check "the host's libvirtd does not list it" \
  sh -c "! virsh -q -c qemu:///system list --all --name | grep -qx lab-tiny"
check "destroy" v destroy lab-tiny
check "undefine" v undefine lab-tiny

# --- libvirtd down and up ------------------------------------------------------------------
"$LAB" stop-libvirtd "$DIR"
t=$(now)
err=$(v list 2>&1)
rc=$?
echo "client error with libvirtd stopped ($(since "$t") s): $(tr '\n' ' ' <<<"$err")"
check "with libvirtd stopped the client fails" test "$rc" != 0
check "saying it cannot connect to the socket" grep -q 'libvirt-sock' <<<"$err"
"$LAB" start-libvirtd "$DIR"
check "start-libvirtd: network still active" grep -q '^ default *active' <<<"$(v net-list --all)"
check "start-libvirtd: pool still active" grep -q '^ default *active' <<<"$(v pool-list --all)"
check "the host's own libvirtd answers" sh -c 'virsh -q -c qemu:///system version >/dev/null'

# --- down and up again ---------------------------------------------------------------------
check "a guest running when it goes down" v create "$xml"
rm -f "$xml"
pids=$(ip netns pids "vulab$INDEX" | tr '\n' ' ')
echo "its processes: $pids"
"$LAB" down "$DIR"
check "down: no netns" sh -c "! ip netns list | grep -q 'vulab$INDEX\b'"
check "down: no veth" sh -c "! ip link show vulab$INDEX >/dev/null 2>&1"
check "down: no mount" sh -c "! grep -qF '$DIR' /proc/self/mountinfo"
check "down: no directory" test ! -e "$DIR"
# Dead is enough: this machine's pid 1 reaps orphans some time later (zombies hold no
# namespace).
gone() {
  local p
  for p in $pids; do
    [ ! -e "/proc/$p" ] || [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] || return 1
  done
}
check "down: none of its processes left (qemu too)" gone
check "down again" "$LAB" down "$DIR"
t=$(now)
check "up again" "$LAB" up "$DIR" "$NAME" "$INDEX" >/dev/null
echo "up again from nothing: $(since "$t") s"
"$LAB" known-hosts "$DIR" | as_user tee "/home/$USER_NAME/.ssh/known_hosts" >/dev/null
"$LAB" authorize "$DIR" "/home/$USER_NAME/.ssh/id_ed25519.pub"
check "and used" v list --all
"$LAB" down "$DIR"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
