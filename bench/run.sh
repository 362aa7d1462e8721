#!/usr/bin/env bash
# make bench: the side-by-side benchmark (see bench/bench.py). Needs the host set up, the
# release build and the base image (the Makefile's bench target does those first).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BENCH_VENV:-/var/cache/virt-up-bench/venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q matplotlib
fi
if [ "${BENCH_PEER:-1}" = 1 ]; then
    bench/peer-setup.sh
fi
# The step cache (virt-maker) and gen-vm-image figures, each in its own JSON file.
if [ "${BENCH_ALL:-1}" = 1 ]; then
    bench/virt_maker.sh
    bench/gen_vm_image.py
fi
exec "$venv/bin/python" bench/bench.py "$@"
