#!/usr/bin/env bash
# `cargo deny check` for `make lint`: advisories, licenses, bans (duplicates) and sources,
# as deny.toml says. The advisory database is a git repository fetched from GitHub; where
# it cannot be fetched (a machine that reaches only package registries), the other checks
# still run and the missing one is reported loudly: not a silent failure, not a silent pass.
set -euo pipefail
cd "$(dirname "$0")/.."

if fetch_error=$(cargo deny fetch db 2>&1 >/dev/null); then
  exec cargo deny --locked check advisories licenses bans sources
fi

cat >&2 <<MSG

  ********************************************************************************
  *  cargo deny: ADVISORIES NOT CHECKED. The RustSec advisory database           *
  *  (github.com/rustsec/advisory-db) could not be fetched:                      *
  *    $(printf '%s' "$fetch_error" | tail -n1 | cut -c1-74)
  *  Licenses, bans (duplicates) and sources are checked below; run \`make lint\`  *
  *  where GitHub is reachable to check the advisories too.                      *
  ********************************************************************************

MSG
cargo deny --locked check licenses bans sources
