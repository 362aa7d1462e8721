#!/usr/bin/env python3
"""virt-up benchmark: side by side, in one run, with the same template image, memory and
vCPUs:

  F  floor: a hand-made linked clone of the template disk, defined and started, polled for
     an SSH banner (the guest's own boot time);
  U  us:    `virt-up NAME --template T` until `virt-up NAME --login --command true` works,
     booted cold (warm = no);
  W  warm:  the same, restored from the template's warm image (warm = yes, the default);
     W4 four warm instances in one command;
     Wd the same as W on libvirt's `default` network, whose bridge runs STP (what virt-up's
        own network, STP off, saves);
  P  peer:  the original Python virt-up 2.2.0 (bench/peer.sh), same image;
  N  N instances in one virt-up command (N = 1, 2, 4);
  L  `virt-up --list` with 50 instances;
  R, Wp  a warm create on a second libvirt host (qemu+ssh://) and one placed over two
     [host]s, beside W (bench/remote.py).

Prints medians and ratios, writes bench/results/bench.json and a PNG chart of the phase
times per tool. Speed is measured here, never asserted in tests.
"""
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import remote  # noqa: E402  (bench/remote.py: R and Wp, beside W)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VIRT_UP = ROOT / "target" / "release" / "virt-up"
POOL = Path("/var/lib/libvirt/images")
URI = "qemu:///system"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
MEMORY = int(os.environ.get("BENCH_MEMORY", "1024"))
VCPUS = int(os.environ.get("BENCH_VCPUS", "2"))
# The N series (N instances in one command) runs at virt-up's default of 1 vCPU: under TCG
# a 2-vCPU guest keeps both host cores busy while it boots, so on a 2-core host N guests
# need N times the CPU of one whatever the tool does (see cores_used below).
N_VCPUS = int(os.environ.get("BENCH_N_VCPUS", "1"))
WITH_PEER = os.environ.get("BENCH_PEER", "1") == "1"
# BENCH_ONLY=remote: the template, its warm image and the remote rounds only (remote.json).
ONLY = os.environ.get("BENCH_ONLY", "")
TEMPLATE = "bench-deb"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(args, env=None, check=True, capture=True):
    res = subprocess.run(args, env=env, capture_output=capture, text=True)
    if check and res.returncode != 0:
        raise SystemExit(f"bench: {' '.join(map(str, args))} failed ({res.returncode}):\n{res.stderr}")
    return res


def virsh(*args, check=False):
    return run(["virsh", "-c", URI, *args], check=check)


class VirtUp:
    """virt-up with its own config and data dirs, and the local base image template."""

    def __init__(self, work: Path, index: str):
        self.work = work
        self.env = dict(os.environ)
        self.env.update(
            VIRTUP_CONFIG_HOME=str(work / "config"),
            VIRTUP_DATA_HOME=str(work / "data"),
            VIRTUP_SYSTEM_CONFIG=str(work / "no-system"),
            XDG_RUNTIME_DIR=str(work / "run"),
            LIBVIRT_DEFAULT_URI=URI,
        )
        (work / "config" / "templates.d").mkdir(parents=True, exist_ok=True)
        # As in a login session: libguestfs resolves XDG_RUNTIME_DIR and needs it to exist.
        (work / "run").mkdir(mode=0o700, exist_ok=True)
        self.warm(False)
        (work / "config" / "templates.d" / "bench.cfg").write_text(
            f"[{TEMPLATE}]\nos-version = debian-12-local\nvirt-builder-source = file://{index}\n"
        )

    def warm(self, on: bool, network: str = "virt-up"):
        """Cold creates (U, N) or warm ones (W), and whether --no-clone makes the warm image;
        instances on `network`."""
        (self.work / "config" / "settings.cfg").write_text(
            f"[common]\nvirt-type = qemu\nmemory = {MEMORY}\nvcpus = {VCPUS}\n"
            f"address-source = lease\nparallel = 4\nwarm = {'yes' if on else 'no'}\n"
            f"network = {network}\n"
        )

    def on(self, uri: str) -> "VirtUp":
        """The same virt-up (config, data) connected to `uri`."""
        other = VirtUp.__new__(VirtUp)
        other.work, other.env = self.work, dict(self.env, LIBVIRT_DEFAULT_URI=uri)
        return other

    def __call__(self, *args, check=True):
        return run([str(VIRT_UP), *args], env=self.env, check=check)

    def template_disk(self) -> Path:
        rec = json.loads((self.work / "data" / "instance" / f"TEMPLATE-{TEMPLATE}.json").read_text())
        return Path(rec["disk"])


# Every case runs on virt-up's default network, `virt-up` (NAT, STP off; virt-up makes it
# at the template build), the floor too; Wd repeats W on libvirt's `default` (STP on).
NETWORK = "virt-up"


def bridge_of(network: str) -> str:
    """The bridge of a libvirt network (its dnsmasq lease file is named after it)."""
    out = virsh("net-info", network, check=True).stdout
    return re.search(r"^Bridge:\s+(\S+)", out, re.M).group(1)


def phases_of(stderr: str) -> dict:
    """Phase durations from `virt-up --debug` ("NAME: phase X took S s")."""
    out = {}
    for m in re.finditer(r": phase ([\w-]+) took ([0-9.]+) s", stderr):
        out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def ssh_banner(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=1) as s:
            s.settimeout(1)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def lease_ip(leases_file: Path, mac: str):
    """The address dnsmasq leased to `mac`, read from libvirt's lease file in this process
    (as virt-up reads it): a `virsh domifaddr` every 0.1 s would spawn processes on a
    2-core host while the guest it waits for boots, and slow the floor down."""
    try:
        leases = json.loads(leases_file.read_text() or "[]")
    except (OSError, ValueError):
        return None
    for lease in leases:
        if lease.get("mac-address", "").lower() == mac and "." in lease.get("ip-address", ""):
            return lease["ip-address"]
    return None


def floor_once(template_disk: Path, n: int) -> dict:
    """F: hand-made linked clone + define + start, until an SSH banner answers."""
    name = f"bench-floor{n}"
    disk = POOL / f"{name}.qcow2"
    mac = "52:54:00:be:0f:%02x" % n
    xml = f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>{MEMORY}</memory>
<vcpu>{VCPUS}</vcpu><os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
<features><acpi/><apic/></features><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
<interface type='network'><source network='{NETWORK}'/><mac address='{mac}'/><model type='virtio'/></interface>
<serial type='pty'><target port='0'/></serial><console type='pty'><target type='serial' port='0'/></console>
<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng></devices></domain>"""
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
    leases_file = Path(f"/var/lib/libvirt/dnsmasq/{bridge_of(NETWORK)}.status")
    t0 = time.monotonic()
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(template_disk), str(disk)])
    virsh("define", f.name, check=True)
    virsh("start", name, check=True)
    t_start = time.monotonic()
    ip = None
    while time.monotonic() - t0 < 600:
        ip = ip or lease_ip(leases_file, mac)
        if ip and ssh_banner(ip):
            break
        time.sleep(0.1)
    else:
        raise SystemExit(f"bench: floor guest {name} never answered")
    total = time.monotonic() - t0
    virsh("destroy", name)
    virsh("undefine", name)
    disk.unlink(missing_ok=True)
    os.unlink(f.name)
    return {"total": total, "phases": {"clone+define+start": t_start - t0, "boot to banner": total - (t_start - t0)}}


def guest_cpu_seconds(domain: str) -> float:
    """CPU time (user + system) the domain's QEMU process has used so far."""
    pid = Path(f"/run/libvirt/qemu/{domain}.pid").read_text().strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def us_once(vu: VirtUp, names: list, vcpus: int = VCPUS) -> dict:
    """U: virt-up create (N names in one command) until --command true works in each."""
    t0 = time.monotonic()
    res = vu(*names, "--template", TEMPLATE, "--vcpus", str(vcpus), "--debug")
    t_created = time.monotonic()
    # One login per instance, side by side, as a user's ansible run would do them.
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(lambda name: vu(name, "--login", "--command", "true"), names))
    total = time.monotonic() - t0
    # Host cores one guest kept busy from start to login: the CPU-bound limit of N guests
    # on this host is N * cores_used / host cores times one guest's time.
    cpu = statistics.mean(guest_cpu_seconds(name) for name in names)
    phases = phases_of(res.stderr)
    if len(names) > 1:
        phases = {k: v / len(names) for k, v in phases.items()}
    phases["login"] = total - (t_created - t0)
    for name in names:
        vu(name, "--delete")
    return {"total": total, "phases": phases, "cores_used": cpu / total}


def peer_once(n: int) -> dict:
    name = f"peer-bench{n}"
    t0 = time.monotonic()
    run([str(ROOT / "bench" / "peer.sh"), "create", name], capture=True)
    total = time.monotonic() - t0
    run([str(ROOT / "bench" / "peer.sh"), "delete", name], check=False)
    return {"total": total, "phases": {}}


def list_time(vu: VirtUp, count: int = 50, repeats: int = 20) -> float:
    """Median wall time of `virt-up --list` with `count` instances (records + defined,
    shut-off domains)."""
    data = vu.work / "data" / "instance"
    template = json.loads((data / f"TEMPLATE-{TEMPLATE}.json").read_text())
    names = [f"bench-list{i:02d}" for i in range(count)]
    for name in names:
        rec = dict(template, name=name, domain=name, cloned=True, phase="ready", inventory=True)
        (data / f"{name}.json").write_text(json.dumps(rec))
        xml = f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>"
        with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
            f.write(xml)
        virsh("define", f.name, check=True)
        os.unlink(f.name)
    times = []
    try:
        for _ in range(repeats):
            t0 = time.monotonic()
            out = vu("--list").stdout
            times.append(time.monotonic() - t0)
        assert out.count("bench-list") == count, out
    finally:
        for name in names:
            virsh("undefine", name)
            (data / f"{name}.json").unlink(missing_ok=True)
    return statistics.median(times)


def median(results):
    return statistics.median(r["total"] for r in results)


def median_phases(results):
    keys = {k for r in results for k in r["phases"]}
    return {k: statistics.median(r["phases"].get(k, 0.0) for r in results) for k in sorted(keys)}


def chart(summary, path: Path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no chart (bench/run.sh installs it)")
        return
    tools = [("F (floor)", summary["floor"]), ("U (virt-up, cold)", summary["us"]),
             ("W (virt-up, warm)", summary["warm"])]
    if summary.get("peer"):
        tools.append(("P (virt-up 2.2.0)", summary["peer"]))
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for i, (label, case) in enumerate(tools):
        left = 0.0
        phases = case["phases"] or {"total": case["median"]}
        for phase, secs in phases.items():
            ax.barh(i, secs, left=left)
            if secs > 1.5:
                ax.text(left + secs / 2, i, phase, ha="center", va="center", fontsize=7)
            left += secs
        ax.text(left + 0.5, i, f"{case['median']:.1f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(tools)), [t[0] for t in tools])
    ax.set_xlabel("seconds (median) until a login works")
    ax.set_title("One instance, TCG guest, same template image")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    if not VIRT_UP.exists():
        raise SystemExit("bench: build first (make build)")
    index = run([str(ROOT / "scripts" / "build-base-image.sh")]).stdout.strip().splitlines()[-1]
    work = Path(os.environ.get("BENCH_WORK", "/var/cache/virt-up-bench/work"))
    if work.exists():
        shutil.rmtree(work)
    vu = VirtUp(work, index)
    for stale in virsh("list", "--all", "--name").stdout.split():
        if stale.startswith("bench-") or stale.startswith("TEMPLATE-bench-"):
            virsh("destroy", stale)
            virsh("undefine", stale)
    for stale in POOL.glob("TEMPLATE-bench-*"):
        stale.unlink()
    log(f"building template {TEMPLATE}")
    t0 = time.monotonic()
    vu(TEMPLATE, "--no-clone")
    template_build = time.monotonic() - t0
    log(f"making the warm image of {TEMPLATE}")
    vu.warm(True)
    t0 = time.monotonic()
    vu(TEMPLATE, "--no-clone")
    warm_build = time.monotonic() - t0
    if ONLY == "remote":
        # The remote and placement rounds alone (bench/remote.py), in their own file.
        out = dict(remote.rounds(sys.modules[__name__], vu), runs=RUNS, memory_mib=MEMORY, vcpus=VCPUS)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "remote.json").write_text(json.dumps(out, indent=2) + "\n")
        remote.report(out)
        return
    if WITH_PEER:
        log("building the peer's template")
        run([str(ROOT / "bench" / "peer.sh"), "template"])
        # The original leaves its template running after a build: the first create would
        # also pay for its shutdown. One throwaway create keeps that out of the figures.
        peer_once(99)

    floor, us, warm, warm4, warm_default_net, peer = [], [], [], [], [], []
    for i in range(RUNS):
        log(f"round {i + 1}/{RUNS}: F")
        floor.append(floor_once(vu.template_disk(), i))
        log(f"round {i + 1}/{RUNS}: U")
        vu.warm(False)
        us.append(us_once(vu, [f"bench-u{i}"]))
        log(f"round {i + 1}/{RUNS}: W")
        vu.warm(True)
        warm.append(us_once(vu, [f"bench-w{i}"]))
        log(f"round {i + 1}/{RUNS}: W4")
        warm4.append(us_once(vu, [f"bench-w4-{i}-{j}" for j in range(4)]))
        log(f"round {i + 1}/{RUNS}: W on libvirt's default network (STP on)")
        vu.warm(True, network="default")
        warm_default_net.append(us_once(vu, [f"bench-wd{i}"]))
        vu.warm(False)
        if WITH_PEER:
            log(f"round {i + 1}/{RUNS}: P")
            peer.append(peer_once(i))
    multi, cores = {}, {}
    for n in (1, 2, 4):
        runs = []
        for i in range(RUNS):
            log(f"round {i + 1}/{RUNS}: {n} instance(s) in one command, {N_VCPUS} vCPU")
            runs.append(us_once(vu, [f"bench-n{n}-{j}" for j in range(n)], N_VCPUS))
        multi[n] = median(runs)
        cores[n] = statistics.median(r["cores_used"] for r in runs)
    log("--list with 50 instances")
    list_50 = list_time(vu)
    log("remote and placed creates (bench/remote.py)")
    remote_summary = remote.rounds(sys.modules[__name__], vu)

    summary = {
        "runs": RUNS,
        "memory_mib": MEMORY,
        "vcpus": VCPUS,
        "template_build_s": template_build,
        "floor": {"median": median(floor), "phases": median_phases(floor), "all": [r["total"] for r in floor]},
        "us": {"median": median(us), "phases": median_phases(us), "all": [r["total"] for r in us]},
        "warm": {"median": median(warm), "phases": median_phases(warm), "all": [r["total"] for r in warm]},
        "warm_4": {"median": median(warm4), "all": [r["total"] for r in warm4]},
        "warm_default_network": {"median": median(warm_default_net), "phases": median_phases(warm_default_net), "all": [r["total"] for r in warm_default_net]},
        "warm_image_build_s": warm_build,
        "peer": {"median": median(peer), "phases": {}, "all": [r["total"] for r in peer]} if peer else None,
        "instances_in_one_command": {"vcpus": N_VCPUS, "1": multi[1], "2": multi[2], "4": multi[4]},
        "cores_used_by_one_boot": {f"{VCPUS}_vcpus": statistics.median(r["cores_used"] for r in us),
                                   f"{N_VCPUS}_vcpus": cores[1]},
        "host_cores": os.cpu_count(),
        "list_50_s": list_50,
        "remote": remote_summary,
    }
    summary["u_over_f"] = summary["us"]["median"] / summary["floor"]["median"]
    summary["u_over_p"] = summary["us"]["median"] / peer_median if (peer_median := (summary["peer"] or {}).get("median")) else None
    summary["n4_over_n1"] = multi[4] / multi[1]
    summary["w_over_f"] = summary["warm"]["median"] / summary["floor"]["median"]
    summary["w4_over_w1"] = summary["warm_4"]["median"] / summary["warm"]["median"]
    summary["w_default_network_over_f"] = summary["warm_default_network"]["median"] / summary["floor"]["median"]
    summary["warm_image_build_over_f"] = warm_build / summary["floor"]["median"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    chart(summary, RESULTS / "bench.png")

    print(f"F  floor (boot to SSH banner)    median {summary['floor']['median']:6.1f} s  {summary['floor']['all']}")
    print(f"U  virt-up create + login        median {summary['us']['median']:6.1f} s  {summary['us']['all']}")
    if peer:
        print(f"P  virt-up 2.2.0 create + login  median {summary['peer']['median']:6.1f} s  {summary['peer']['all']}")
    print(f"W  virt-up warm create + login   median {summary['warm']['median']:6.1f} s  {summary['warm']['all']}")
    print(f"W4 four warm in one command      median {summary['warm_4']['median']:6.1f} s  {summary['warm_4']['all']}")
    print(f"U/F = {summary['u_over_f']:.2f}   (target <= 1.10)")
    print(f"W/F = {summary['w_over_f']:.2f}   (target <= 0.15)   W4/W1 = {summary['w4_over_w1']:.2f} (target <= 2)")
    wd = summary["warm_default_network"]
    print(f"Wd W on libvirt's default network (STP on): median {wd['median']:.1f} s, W/F = {summary['w_default_network_over_f']:.2f}; phases {json.dumps({k: round(v, 2) for k, v in wd['phases'].items()})}")
    print(f"warm image made in {warm_build:.1f} s = {summary['warm_image_build_over_f']:.2f} x F")
    print(f"phases of W (median): {json.dumps({k: round(v, 2) for k, v in summary['warm']['phases'].items()})}")
    if summary["u_over_p"] is not None:
        print(f"U/P = {summary['u_over_p']:.2f}   (target <= 0.50)")
    print(f"N=1,2,4 in one command ({N_VCPUS} vCPU each): {multi[1]:.1f} / {multi[2]:.1f} / {multi[4]:.1f} s;"
          f" N4/N1 = {summary['n4_over_n1']:.2f} (target <= 2.5)")
    print(f"host cores one booting guest keeps busy: {json.dumps(summary['cores_used_by_one_boot'])}"
          f" (CPU-bound limit of N4/N1 = 4 * that / {os.cpu_count()} cores)")
    print(f"--list with 50 instances: {list_50 * 1000:.1f} ms (target < 50 ms)")
    print(f"phases of U (median): {json.dumps({k: round(v, 2) for k, v in summary['us']['phases'].items()})}")
    remote.report(remote_summary)
    print(f"results: {RESULTS / 'bench.json'}, chart: {RESULTS / 'bench.png'}")


if __name__ == "__main__":
    main()
