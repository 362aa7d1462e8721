#!/usr/bin/env python3
"""Benchmark `gen-vm-image single` with a sha256 check on a 1 GiB qcow2 input against a
plain `qemu-img convert -O qcow2` of the same input and against the Python gen-vm-image
0.0.8 (installed from PyPI into bench/.venv), side by side on this machine.

    bench/gen_vm_image.py [--runs N]        (standalone; `make bench` calls it too)

Writes bench/results/gen_vm_image.json with the medians and the ratios
`ours_over_qemu_img` and `ours_over_python`.

Method. The input is 1 GiB of random data in a qcow2 file (real data: nothing to skip),
made once and kept under $BENCH_WORK (default /var/tmp/virt-up-bench/gen-vm-image). Each
round runs the three commands in turn, in a rotating order; before every timed command
the previous output is removed and `sync` runs (not timed), so no command pays for
another's dirty pages. A command's time ends when its output is on disk: the file is
fsynced (timed) after the command returns. gen-vm-image fsyncs its output itself before
renaming it into place, as any atomic write must; qemu-img and the Python tool do not,
so without this the comparison would charge only one of them for the disk. The medians of
the same commands without the closing fsync are recorded too ("page_cache"), and so is
`openssl dgst -sha256` of the input alone: the hash is work a checked conversion cannot
skip, so the slower of it and the plain conversion is the floor ("ours_over_floor").
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"
RESULTS = ROOT / "bench" / "results" / "gen_vm_image.json"
PYTHON_TOOL_VERSION = "0.0.8"
SIZE = 1 << 30


def log(msg):
    print(f"bench/gen_vm_image: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_ours():
    run(["cargo", "build", "--release", "--locked", "--bin", "gen-vm-image"], cwd=ROOT,
        stdout=subprocess.DEVNULL)
    return ROOT / "target" / "release" / "gen-vm-image"


def ensure_python_tool():
    exe = VENV / "bin" / "gen-vm-image"
    if exe.exists():
        return exe
    log(f"installing gen-vm-image=={PYTHON_TOOL_VERSION} from PyPI into {VENV}")
    run([sys.executable, "-m", "venv", str(VENV)])
    run([str(VENV / "bin" / "pip"), "install", "-q", f"gen-vm-image=={PYTHON_TOOL_VERSION}"])
    return exe


def ensure_input(work):
    src = work / "input.qcow2"
    digest_file = work / "input.qcow2.sha256"
    if src.exists() and digest_file.exists():
        return src, digest_file.read_text().strip()
    log("making the 1 GiB input (random data, qcow2)")
    raw = work / "input.raw"
    with open(raw, "wb") as f:
        left = SIZE
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n
    tmp = work / "input.qcow2.tmp"
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(tmp)])
    raw.unlink()
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest_file.write_text(h.hexdigest() + "\n")
    os.replace(tmp, src)
    return src, h.hexdigest()


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(cmd, output, cwd):
    """(seconds until the command returns, seconds until its output is on disk)"""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    returned = time.perf_counter() - start
    if output is not None:
        fsync(output)
    durable = time.perf_counter() - start
    return returned, durable


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "5")))
    args = ap.parse_args()

    for tool in ("qemu-img", "cargo"):
        if not shutil.which(tool):
            sys.exit(f"bench/gen_vm_image: {tool} is needed (make host)")
    work = Path(os.environ.get("BENCH_WORK", "/var/tmp/virt-up-bench/gen-vm-image"))
    work.mkdir(parents=True, exist_ok=True)
    ours = ensure_ours()
    python_tool = ensure_python_tool()
    src, digest = ensure_input(work)
    out = work / "out"

    contenders = {
        "qemu_img": (
            ["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", str(src), str(out / "plain.qcow2")],
            out / "plain.qcow2",
        ),
        "ours": (
            [str(ours), "single", "ours", "1G", "-i", str(src), "-if", "qcow2",
             "-ict", "sha256", "-ic", digest, "-od", str(out)],
            out / "ours.qcow2",
        ),
        "python": (
            [str(python_tool), "single", "python", "1G", "-i", str(src), "-if", "qcow2",
             "-ict", "sha256", "-ic", digest, "-od", str(out)],
            out / "python.qcow2",
        ),
    }
    # The floor: sha256 of the input alone (OpenSSL, SHA-NI where the CPU has it). Ours
    # cannot be faster than the slower of this and the conversion.
    if shutil.which("openssl"):
        contenders["sha256_alone"] = (["openssl", "dgst", "-sha256", str(src)], None)
    names = list(contenders)
    times = {n: {"returned": [], "durable": []} for n in names}
    # A warm-up round: the input in the page cache, binaries loaded.
    for rnd in range(args.runs + 1):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            cmd, output = contenders[name]
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            subprocess.run(["sync"], check=True)
            returned, durable = timed(cmd, output, work)
            if rnd > 0:
                times[name]["returned"].append(returned)
                times[name]["durable"].append(durable)
            log(f"round {rnd}{' (warm-up)' if rnd == 0 else ''}: {name}: "
                f"{durable:.3f} s ({returned:.3f} s before the output's fsync)")
    shutil.rmtree(out, ignore_errors=True)

    med = {n: statistics.median(times[n]["durable"]) for n in names}
    med_cache = {n: statistics.median(times[n]["returned"]) for n in names}
    floor = max(med["qemu_img"], med.get("sha256_alone", 0.0))
    result = {
        "benchmark": "gen-vm-image single with a sha256 check, 1 GiB qcow2 input (random data) -> qcow2",
        "runs": args.runs,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "medians_seconds": {
            "qemu_img_convert": round(med["qemu_img"], 3),
            "ours": round(med["ours"], 3),
            "python_gen_vm_image_0_0_8": round(med["python"], 3),
        },
        "ours_over_qemu_img": round(med["ours"] / med["qemu_img"], 3),
        "ours_over_python": round(med["ours"] / med["python"], 3),
        "sha256_alone_seconds": round(med["sha256_alone"], 3) if "sha256_alone" in med else None,
        "ours_over_floor": round(med["ours"] / floor, 3),
        "floor_note": "floor = the slower of the plain conversion and the sha256 of the "
                      "input alone; both must be done, and ours does them at once",
        "page_cache": {
            "note": "time until the command returns, output possibly still in the page cache "
                    "(ours has fsynced it already; the others have not)",
            "medians_seconds": {
                "qemu_img_convert": round(med_cache["qemu_img"], 3),
                "ours": round(med_cache["ours"], 3),
                "python_gen_vm_image_0_0_8": round(med_cache["python"], 3),
            },
            "ours_over_qemu_img": round(med_cache["ours"] / med_cache["qemu_img"], 3),
            "ours_over_python": round(med_cache["ours"] / med_cache["python"], 3),
        },
        "samples_seconds": {n: [round(t, 3) for t in times[n]["durable"]] for n in names},
        "method": "medians; rotating order per round; sync before each command; a command's "
                  "time ends when its output file is fsynced",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, RESULTS)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
