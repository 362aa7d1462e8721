"""Remote and placed creates beside local ones, same guest, one run (bench.py calls it):

  W   warm create on this machine's qemu:///system, until --command true works;
  R   the same on a second libvirt host reached only through qemu+ssh:// (scripts/lab-host.sh:
      its own libvirtd, pool and NAT network in private namespaces on this machine), the
      guest reached through that host (ProxyJump);
  Wp  W with [host NAME] sections for this machine and the lab host: placement asks both
      for their free memory and running instances, then creates here (the lab host keeps
      all its memory free, so it is asked, never chosen).

Ratios: r_over_w (what remote costs), wp_over_w (what placement costs).
"""
import json
import os
import time
from pathlib import Path

LAB_DIR = Path("/var/cache/virt-up-bench/lab")
LAB_INDEX = "7"


def lab(bench, *args) -> str:
    return bench.run([str(bench.ROOT / "scripts" / "lab-host.sh"), *args]).stdout


def field(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.startswith(key + "="):
            return line[len(key) + 1:]
    raise SystemExit(f"bench: no {key}= in lab-host.sh output: {text}")


def trust_lab(bench, address: str):
    """root's ssh key accepted by the lab host and its host key in root's known_hosts: what
    qemu+ssh:// and ProxyJump need (host keys checked, as always)."""
    ssh = Path.home() / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    key = ssh / "id_ed25519"
    if not key.exists():
        bench.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    lab(bench, "authorize", str(LAB_DIR), f"{key}.pub")
    known = ssh / "known_hosts"
    kept = [l for l in (known.read_text().splitlines() if known.exists() else [])
            if not l.startswith(address + " ")]
    kept.append(lab(bench, "known-hosts", str(LAB_DIR)).strip())
    known.write_text("\n".join(kept) + "\n")
    known.chmod(0o600)


def create_once(bench, vu, name: str) -> dict:
    """One create until `--login --command true` works; its phases (--debug)."""
    t0 = time.monotonic()
    res = vu(name, "--template", bench.TEMPLATE, "--debug")
    t_created = time.monotonic()
    vu(name, "--login", "--command", "true")
    total = time.monotonic() - t0
    phases = bench.phases_of(res.stderr)
    phases["login"] = total - (t_created - t0)
    vu(name, "--delete")
    return {"total": total, "phases": phases}


def settings_with_hosts(vu, lab_uri: str):
    """Warm creates, with this machine and the lab host as [host]s; the lab keeps 1 TiB
    free, so no instance goes there."""
    vu.warm(True)
    path = vu.work / "config" / "settings.cfg"
    path.write_text(path.read_text() +
                    "[host here]\nuri = qemu:///system\n"
                    f"[host lab]\nuri = {lab_uri}\nkeep-free-memory = 1024G\n")


def rounds(bench, vu) -> dict:
    """The lab host up, the template there, then RUNS rounds of W, R and Wp; the lab down."""
    lab(bench, "down", str(LAB_DIR))
    up = lab(bench, "up", str(LAB_DIR), "benchlab", LAB_INDEX)
    uri, address = field(up, "uri"), field(up, "address")
    try:
        trust_lab(bench, address)
        remote = vu.on(uri)
        vu.warm(True)
        bench.log("the template on the lab host (uploaded, and its warm image made there)")
        t0 = time.monotonic()
        remote(bench.TEMPLATE, "--no-clone")
        remote_template = time.monotonic() - t0
        local, far, placed = [], [], []
        for i in range(bench.RUNS):
            vu.warm(True)
            bench.log(f"round {i + 1}/{bench.RUNS}: W (local)")
            local.append(create_once(bench, vu, f"bench-rw{i}"))
            bench.log(f"round {i + 1}/{bench.RUNS}: R (on the lab host)")
            far.append(create_once(bench, remote, f"bench-r{i}"))
            bench.log(f"round {i + 1}/{bench.RUNS}: Wp (placed over two hosts)")
            settings_with_hosts(vu, uri)
            placed.append(create_once(bench, vu, f"bench-wp{i}"))
        vu.warm(False)
        remote(bench.TEMPLATE, "--delete", "--all")
    finally:
        vu.warm(False)
        lab(bench, "down", str(LAB_DIR))

    def summary(results):
        return {"median": bench.median(results), "phases": bench.median_phases(results),
                "all": [r["total"] for r in results]}

    out = {"local_warm": summary(local), "remote_warm": summary(far),
           "placed_warm": summary(placed), "remote_template_s": remote_template}
    out["r_over_w"] = out["remote_warm"]["median"] / out["local_warm"]["median"]
    out["wp_over_w"] = out["placed_warm"]["median"] / out["local_warm"]["median"]
    return out


def report(out: dict):
    fmt = lambda d: json.dumps({k: round(v, 2) for k, v in d["phases"].items()})
    print(f"W  local warm create + login     median {out['local_warm']['median']:6.1f} s  {out['local_warm']['all']}")
    print(f"R  warm create on the lab host   median {out['remote_warm']['median']:6.1f} s  {out['remote_warm']['all']}")
    print(f"Wp placed over two hosts (here)  median {out['placed_warm']['median']:6.1f} s  {out['placed_warm']['all']}")
    print(f"R/W = {out['r_over_w']:.2f}   Wp/W = {out['wp_over_w']:.2f}   "
          f"template onto the lab host: {out['remote_template_s']:.1f} s")
    print(f"phases of R: {fmt(out['remote_warm'])}")
    print(f"phases of W: {fmt(out['local_warm'])}")
