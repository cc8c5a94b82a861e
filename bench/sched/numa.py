#!/usr/bin/env python3
"""KIVA sched benchmark, NUMA part: what pinning buys, local vs remote memory bandwidth.

On a host with 2+ NUMA nodes that have CPUs, runs `bench-sched --numa-bw CPU NODE` twice with the
same CPU (the first CPU of the first node): memory bound to that CPU's node (local, what KIVA's
placement gives a pinned instance: cpuset.cpus and cpuset.mems on one node) and to another node
(remote, what an unpinned instance can get). Each is a single-thread triad over ~512 MiB, median
of 5 passes, in GB/s; prints both and the ratio.

On a host with fewer than 2 such nodes it prints a SKIP line with the reason and exits 0.
`--local-only` measures the local case anyway (to try the path on a 1-node machine).
Exit status 1 only when a measurement could not run. See bench/README.md.

Python 3 standard library only; no root needed.
"""

import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BINARY = os.path.join(REPO, "build", "bench", "sched", "bench-sched")
SYS_NODE = "/sys/devices/system/node"


def parse_cpulist(text):
    """'0-5,12-17' -> [0, 1, ..., 17]; '' -> []."""
    cpus = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def read(path):
    with open(path) as f:
        return f.read()


def numa_nodes(sys_node=SYS_NODE):
    """({node: [cpus]} of the nodes with CPUs, [nodes with memory]). A kernel without NUMA
    (no node directory) is one node 0 with every online CPU."""
    if not os.path.isdir(sys_node):
        return {0: parse_cpulist(read("/sys/devices/system/cpu/online"))}, [0]
    cpus = {}
    for name in os.listdir(sys_node):
        if name.startswith("node") and name[4:].isdigit():
            c = parse_cpulist(read(os.path.join(sys_node, name, "cpulist")))
            if c:
                cpus[int(name[4:])] = c
    try:
        mem = parse_cpulist(read(os.path.join(sys_node, "has_memory")))
    except OSError:
        mem = sorted(cpus)
    return cpus, mem


def measure(binary, cpu, node, runs, mib):
    """Runs bench-sched --numa-bw; returns its JSON, with "warning" when not every sampled
    page was on the node. Raises RuntimeError when it could not run."""
    argv = [binary, "--numa-bw", str(cpu), str(node), "--runs", str(runs), "--mib", str(mib), "--json"]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode not in (0, 2):
        raise RuntimeError("`%s` exited %d: %s" % (" ".join(argv), p.returncode,
                                                    p.stderr.decode(errors="replace").strip()))
    r = json.loads(p.stdout)
    if p.returncode == 2:
        r["warning"] = "only %d of %d sampled pages were on node %d" % (
            r["pages_on_mem_node"], r["pages_checked"], node)
    return r


def run(args):
    """Returns (result dict, exit status); prints the text report unless args.json."""
    out = (lambda s: None) if args.json else print
    cpus, mem_nodes = numa_nodes()
    n = len(cpus)
    res = {"nodes_with_cpus": n}
    if n < 2:
        res["skip"] = ("SKIP numa: this host has %d NUMA node(s); the effect of pinning needs 2+ "
                       "(local vs remote memory bandwidth)" % n)
        out(res["skip"])
        if not args.local_only:
            return res, 0
    local = min(cpus)
    cpu = cpus[local][0]
    remote = next((m for m in mem_nodes if m != local), None) if n >= 2 else None
    try:
        res["local"] = measure(args.binary, cpu, local, args.runs, args.mib)
        if remote is not None:
            res["remote"] = measure(args.binary, cpu, remote, args.runs, args.mib)
    except (RuntimeError, OSError, ValueError) as e:
        res["error"] = str(e)
        print("numa: FAILED: %s" % e, file=sys.stderr)
        return res, 1
    if remote is None and n >= 2:
        res["skip"] = "SKIP numa remote: no node other than %d has memory" % local
        out(res["skip"])

    loc = res["local"]
    out("numa: CPU %d (node %d), single-thread triad over %.0f MiB, median of %d passes"
        % (cpu, local, loc["bytes_per_pass"] / 2**20, args.runs))
    for key, node in (("local", local), ("remote", remote)):
        if key not in res:
            continue
        r = res[key]
        out("  %-6s memory on node %d: %7.2f GB/s   (passes: %s)%s" % (
            key, node, r["triad_gbps_median"], " ".join("%.2f" % g for g in r["triad_gbps"]),
            "  WARNING: " + r["warning"] if "warning" in r else ""))
    if "remote" in res:
        res["remote_over_local"] = res["remote"]["triad_gbps_median"] / loc["triad_gbps_median"]
        out("  remote / local: %.2f (what an instance whose memory lands on the other node gets)"
            % res["remote_over_local"])
    return res, 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=DEFAULT_BINARY, help="bench-sched (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=5, help="measured passes per case (default 5)")
    ap.add_argument("--mib", type=int, default=512, help="memory of the three arrays together (default 512)")
    ap.add_argument("--local-only", action="store_true",
                    help="measure local memory even on a host with one node")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead")
    args = ap.parse_args()
    if not 1 <= args.runs <= 63 or args.mib < 3:
        ap.error("--runs must be 1 to 63 and --mib at least 3")
    if not os.access(args.binary, os.X_OK):
        sys.exit("numa: %s not found: build it first (make build, or ninja -C build)" % args.binary)
    res, status = run(args)
    if args.json:
        print(json.dumps(res))
    return status


if __name__ == "__main__":
    sys.exit(main())
