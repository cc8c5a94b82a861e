#!/usr/bin/env python3
"""KIVA allocator benchmark: placement decision time with 500 instances placed, and pinning.

Runs, from the build tree:
  1. build/bench/sched/bench-sched: sched_place / sched_add+sched_remove / sched_resize of
     src/sched, each call timed alone, with 500 instances placed, on the HP Z600 fixture
     (tests/fixtures/sched/z600) and on this host's own topology (target: sched_place
     p99 < 50 µs);
  2. bench/sched/numa.py: local vs remote memory bandwidth with the thread pinned, on hosts with
     2+ NUMA nodes (a SKIP line with the reason elsewhere).

Prints their tables. With --json FILE it runs both in JSON mode instead, writes the combined
results to FILE and prints a summary. Not a test: a number that misses its target does not fail
the run; the exit status is 1 only when a part could not run. No root needed. See
bench/README.md.

Python 3 standard library only.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BINARY = os.path.join(os.path.dirname(HERE), "build", "bench", "sched", "bench-sched")
NUMA_PY = os.path.join(HERE, "sched", "numa.py")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=DEFAULT_BINARY, help="bench-sched (default: %(default)s)")
    ap.add_argument("--instances", type=int, default=500, help="instances placed before timing (default 500)")
    ap.add_argument("--decisions", type=int, default=20000, help="timed calls per operation (default 20000)")
    ap.add_argument("--runs", type=int, default=5, help="bandwidth passes per NUMA case (default 5)")
    ap.add_argument("--parts", default="place,numa", help="comma-separated subset of place,numa")
    ap.add_argument("--json", metavar="FILE", help="run in JSON mode and write all results to FILE")
    args = ap.parse_args()
    if args.instances < 1 or args.decisions < 2 or not 1 <= args.runs <= 63:
        ap.error("--instances must be ≥ 1, --decisions ≥ 2, --runs 1 to 63")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not os.access(args.binary, os.X_OK):
        sys.exit("%s not found: build it first (make build, or ninja -C build)" % args.binary)

    place_argv = [args.binary, "--instances", str(args.instances), "--decisions", str(args.decisions)]
    numa_argv = [sys.executable, NUMA_PY, "--binary", args.binary, "--runs", str(args.runs)]
    failed = {}

    if not args.json:
        for part, argv in (("place", place_argv), ("numa", numa_argv)):
            if part not in parts:
                continue
            sys.stdout.flush()
            rc = subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
            if rc != 0:
                failed[part] = "`%s` exited %d" % (" ".join(argv), rc)
            print()
    else:
        results = {}
        for part, argv in (("place", place_argv), ("numa", numa_argv)):
            if part not in parts:
                continue
            p = subprocess.run(argv + ["--json"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            try:
                results[part] = json.loads(p.stdout)
            except ValueError:
                results[part] = None
            if p.returncode != 0:
                failed[part] = "`%s --json` exited %d" % (" ".join(argv), p.returncode)
        for h in (results.get("place") or {}).get("hosts", []):
            if not h["ok"]:
                print("%-16s FAILED: %s" % (h["label"], h["error"]))
                continue
            pl = h["ops"]["sched_place"]
            print("%-16s sched_place p50 %.2f µs, p99 %.2f µs (target < %.0f µs): %s; "
                  "add+remove p99 %.2f µs; resize p99 %.2f µs"
                  % (h["label"], pl["p50_usec"], pl["p99_usec"], results["place"]["target_p99_usec"],
                     "PASS" if h["pass"] else "FAIL", h["ops"]["sched_add_remove"]["p99_usec"],
                     h["ops"]["sched_resize"]["p99_usec"]))
        numa = results.get("numa") or {}
        if "skip" in numa:
            print(numa["skip"])
        if "remote_over_local" in numa:
            print("numa: local %.2f GB/s, remote %.2f GB/s, remote/local %.2f"
                  % (numa["local"]["triad_gbps_median"], numa["remote"]["triad_gbps_median"],
                     numa["remote_over_local"]))
        results["failed"] = failed
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print("results written to %s" % args.json)

    for part, why in failed.items():
        log("%s: could not run: %s" % (part, why))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
