#!/usr/bin/env bash
# Drive the ORIGINAL Python virt-up 2.2.0 (installed by bench/peer-setup.sh) for
# side-by-side benchmarks.
#
#   bench/peer.sh template        build the template `peer-deb` once (no-op if built)
#   bench/peer.sh create NAME     clone an instance from peer-deb; returns only when
#                                 `ssh NAME true` works (NAME must start with peer-)
#   bench/peer.sh delete NAME     destroy the instance and its disk
#   bench/peer.sh list            the original's `list` (instances, not the template)
#   bench/peer.sh ssh NAME [CMD]  ssh into an instance with the original's recorded
#                                 address/key/options (`virt-up show ssh-config`)
#   bench/peer.sh delete-template destroy the template domain VIRTUP-peer-deb and its disk
#
# The original's CLI (2.2.0, click): `virt-up create -t TEMPLATE [NAME...]` (builds the
# template domain VIRTUP-<TEMPLATE> if missing, then clones each NAME and waits for port
# 22), `virt-up destroy NAME...`, `virt-up list [-a]`, `virt-up show ssh-config NAME`.
# It exits 0 on every error, so each step here checks the outcome itself.
#
# Its lock: the original serialises its tool calls with flock on
# /run/user/<uid>/virt-up.lock if that directory exists, else /tmp/virt-up.lock -- the
# same file our Rust virt-up (and every other engineer's run on this machine) uses as
# root here.  So by default the original runs in a private mount namespace whose
# /run/user is $PEER_HOME/run-user: its lock is then $PEER_HOME/run-user/<uid>/virt-up.lock,
# shared by all peer.sh runs and by nobody else.  PEER_SHARED_LOCK=1 turns that off.
#
# Environment: PEER_HOME (default /var/cache/virt-up-bench/peer-home), written by
# peer-setup.sh, holds `env` (sourced here); PEER_SSH_TIMEOUT (default 180 s) bounds the
# wait for a working SSH login after the original returns; PEER_SHARED_LOCK (above).
set -euo pipefail

PEER_HOME=${PEER_HOME:-/var/cache/virt-up-bench/peer-home}
readonly TEMPLATE=peer-deb
readonly TEMPLATE_DOMAIN=VIRTUP-$TEMPLATE   # the original's fixed prefix, not settable

die() { printf 'peer.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ -f "$PEER_HOME/env" ] || die "$PEER_HOME/env missing: run bench/peer-setup.sh first"
# shellcheck source=/dev/null
. "$PEER_HOME/env"
[ -x "$PEER_VENV/bin/virt-up" ] || die "$PEER_VENV/bin/virt-up missing: run bench/peer-setup.sh first"

# Run the original (see "Its lock" above).
VU() {
  if [ "${PEER_SHARED_LOCK:-0}" = 1 ]; then
    "$PEER_VENV/bin/virt-up" "$@"
  else
    mkdir -p "$PEER_HOME/run-user/$(id -u)"
    chmod 700 "$PEER_HOME/run-user/$(id -u)"
    # shellcheck disable=SC2016 # $0 and $@ are the inner sh's, expanded there
    unshare --mount --propagation private -- \
      sh -c 'mount --bind "$0" /run/user && exec "$@"' \
      "$PEER_HOME/run-user" "$PEER_VENV/bin/virt-up" "$@"
  fi
}

domain_exists() { virsh -q domstate "$1" >/dev/null 2>&1; }
meta_exists() { [ -f "$VIRTUP_DATA_HOME/instance/$1.json" ]; }
check_name() {
  [[ $1 =~ ^peer-[A-Za-z0-9_.-]+$ ]] || die "instance name '$1' must start with peer- ([A-Za-z0-9_.-])"
}

template_built() { meta_exists "$TEMPLATE_DOMAIN" && domain_exists "$TEMPLATE_DOMAIN"; }

# The original's own connection data: `show ssh-config` prints Host/Hostname/User/
# IdentityFile plus the ssh_options recorded in the instance's metadata.
ssh_config() {
  local name=$1 cfg=$PEER_HOME/ssh/$1.config
  VU show ssh-config "$name" >"$cfg.tmp"
  grep -q '^    Hostname [0-9]' "$cfg.tmp" || { rm -f "$cfg.tmp"; die "no address recorded for '$name'"; }
  mv -f "$cfg.tmp" "$cfg"
  printf '%s\n' "$cfg"
}

ssh_to() {
  local name=$1 cfg
  shift
  cfg=$(ssh_config "$name")
  ssh -F "$cfg" -o BatchMode=yes -o ConnectTimeout=5 "$name" "$@"
}

cmd_template() {
  if template_built; then
    echo "template '$TEMPLATE' already built ($TEMPLATE_DOMAIN)"
    return 0
  fi
  VU create -t "$TEMPLATE"
  template_built || die "the original did not build $TEMPLATE_DOMAIN (see its output above)"
}

cmd_create() {
  local name=$1 cfg deadline
  check_name "$name"
  VU create -t "$TEMPLATE" "$name"
  { meta_exists "$name" && domain_exists "$name"; } || die "the original did not create '$name'"
  cfg=$(ssh_config "$name")
  deadline=$((SECONDS + ${PEER_SSH_TIMEOUT:-180}))
  until ssh -F "$cfg" -o BatchMode=yes -o ConnectTimeout=5 "$name" true 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "ssh into '$name' did not work within ${PEER_SSH_TIMEOUT:-180} s"
    sleep 0.5
  done
  echo "instance '$name' accepts ssh"
}

cmd_delete() {
  local name=$1
  check_name "$name"
  if ! meta_exists "$name"; then
    domain_exists "$name" && die "'$name' exists as a domain but not in the original's data"
    echo "instance '$name' not found"
    return 0
  fi
  VU destroy "$name"
  { ! domain_exists "$name" && ! meta_exists "$name"; } || die "the original did not delete '$name'"
  rm -f "$PEER_HOME/ssh/$name.config"
}

cmd_delete_template() {
  meta_exists "$TEMPLATE_DOMAIN" || { echo "template '$TEMPLATE' not built"; return 0; }
  VU destroy "$TEMPLATE_DOMAIN"   # refuses (exit 0!) while clones use it
  { ! domain_exists "$TEMPLATE_DOMAIN" && ! meta_exists "$TEMPLATE_DOMAIN"; } ||
    die "the original did not delete $TEMPLATE_DOMAIN (clones still use it?)"
}

[ $# -ge 1 ] || usage
sub=$1
shift
case $sub in
  template)        [ $# -eq 0 ] || usage; cmd_template ;;
  create)          [ $# -eq 1 ] || usage; cmd_create "$1" ;;
  delete)          [ $# -eq 1 ] || usage; cmd_delete "$1" ;;
  list)            [ $# -eq 0 ] || usage; VU list ;;
  ssh)             [ $# -ge 1 ] || usage; check_name "$1"; ssh_to "$@" ;;
  delete-template) [ $# -eq 0 ] || usage; cmd_delete_template ;;
  *)               usage ;;
esac
