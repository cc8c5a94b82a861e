#!/usr/bin/env python3
"""KIVA launch benchmark: KIVA vs raw liblxc vs LXD (vs Docker), side by side in one run.

Measures, per system, over N iterations of the same busybox container:
  launch -> `exec true` works   (p50, p95)
  forced stop                   (p50, p95)
  delete                        (p50)
and the memory of the control plane:
  idle daemon PSS               (daemon only, after start-up and image import, no container)
  control plane PSS, 20 running (daemon + the `[lxc monitor]` process of each container)

Prints a table and the targets of the launch-performance issue with PASS/MISS. Not a test: it
never fails because a number is bad, only when a system under test cannot run (exit 1 if KIVA
failed). Must run as root (`make bench` runs it after `make install`). See bench/README.md.

Python 3 standard library only.
"""

import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (BUSYBOX, PrivateKivad, PrivateLxd, Skip, clean_dir, exit_on_term, finish,  # noqa: E402
                      fmt_ms, kill_leftover_monitors, log, lxc_monitors, parse_args, pct,
                      render_table, run, run_until_ok, tail, teardown_all, title_line, verdict)

PID = os.getpid()
KIVA_STATE = "/var/tmp/kiva-bench-%d" % PID
LXC_PATH = "/var/tmp/kiva-bench-lxc-%d" % PID
LXD_DIR = "/var/tmp/kiva-bench-lxd-%d" % PID

# The targets of the launch-performance issue (PASS/MISS) and DESIGN.md §11's tighter budgets.
TARGETS = {
    "launch_p50_ms": 40.0,
    "launch_vs_lxd": 5.0,
    "stop_p50_ms": 20.0,
    "idle_pss_mib": 8.0,
    "cp_pss_mib": 20.0,
}
DESIGN_BUDGETS = {
    "launch_p50_ms": 25.0,
    "stop_p50_ms": 15.0,
    "idle_pss_mib": 5.0,
    "cp_pss_mib": 15.0,
}


def pss_kib(pid):
    """Sum of Pss from /proc/PID/smaps_rollup, in KiB (None if the process is gone)."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None



# ---------------------------------------------------------------- systems


class System:
    key = ""
    label = ""
    lxcpath = ""  # where this system's `[lxc monitor]` processes point

    def __init__(self):
        self.created = []  # names of containers that may exist
        self.problems = []  # cleanup warnings
        self.note = ""  # shown under the table
        self.last_steps = []  # [(label, ms)] of the last launch

    def setup(self):
        raise NotImplementedError

    def launch(self, name):
        """Creates and starts name, returns ms until `exec true` works in it."""
        raise NotImplementedError

    def stop(self, name):
        raise NotImplementedError

    def delete(self, name):
        raise NotImplementedError

    def daemon_pids(self):
        return []

    def teardown(self):
        raise NotImplementedError

    def steps(self, *steps):
        """Records the (label, ms) steps of the last launch; returns their sum."""
        self.last_steps = list(steps)
        return sum(ms for _, ms in steps)

    def forget(self, name):
        if name in self.created:
            self.created.remove(name)


class Kiva(System, PrivateKivad):
    key, label = "kiva", "KIVA"

    def __init__(self, args):
        System.__init__(self)
        PrivateKivad.__init__(self, args, KIVA_STATE, KIVA_STATE + "/s.sock")
        self.lxcpath = KIVA_STATE

    def setup(self):
        if not self.kivad or not self.kiva_bin:
            raise Skip("kivad/kiva not installed: run `make install`")
        self.start_kivad("--daemon")

    def daemon_pids(self):
        return [self.pid] if self.pid else []

    def launch(self, name):
        # --no-profiles: no NIC, like the raw liblxc (lxc.net type empty) and LXD (no NIC in its
        # default profile) containers of this benchmark; bench/net.py measures what a NIC adds.
        self.created.append(name)
        return self.steps(("kiva launch", self.kiva("launch", "busybox", name, "--no-profiles")[2]),
                          ("kiva exec true", run_until_ok([self.kiva_bin, "exec", name, "--", "true"],
                                                          env=self.env)))

    def stop(self, name):
        return self.kiva("stop", name, "--force")[2]

    def delete(self, name):
        ms = self.kiva("delete", name)[2]
        self.forget(name)
        return ms

    def teardown(self):
        self.stop_kivad(self.created)
        self.created = []
        clean_dir(self.state, self.problems)


class RawLxc(System):
    key, label = "lxc", "raw liblxc"

    def __init__(self, args):
        super().__init__()
        self.lxcpath = LXC_PATH

    def setup(self):
        for tool in ("lxc-create", "lxc-copy", "lxc-start", "lxc-attach", "lxc-stop", "lxc-destroy"):
            if not shutil.which(tool):
                raise Skip("%s not installed (Debian package lxc)" % tool)
        os.makedirs(self.lxcpath)
        self.created.append("base")
        _, _, ms = run(["lxc-create", "-P", self.lxcpath, "-n", "base", "-t", "busybox"])
        cfg = os.path.join(self.lxcpath, "base", "config")
        with open(cfg) as f:
            lines = f.readlines()
        # no bridge needed (own netns, lo only) and no AppArmor (this kernel has none, feasibility §1)
        keep = [l for l in lines
                if not l.lstrip().startswith(("lxc.net.", "lxc.apparmor."))]
        keep.append("lxc.net.0.type = empty\n")
        with open(cfg, "w") as f:
            f.writelines(keep)
        self.note = "base created with the busybox template in %.0f ms (once); clones: overlayfs snapshots" % ms

    def launch(self, name):
        L = self.lxcpath
        self.created.append(name)
        return self.steps(
            ("lxc-copy", run(["lxc-copy", "-P", L, "-n", "base", "-N", name, "-B", "overlayfs", "-s"])[2]),
            ("lxc-start", run(["lxc-start", "-P", L, "-n", name, "-d"])[2]),
            ("lxc-attach true", run_until_ok(["lxc-attach", "-P", L, "-n", name, "--", "true"])))

    def stop(self, name):
        return run(["lxc-stop", "-P", self.lxcpath, "-n", name, "-k"])[2]

    def delete(self, name):
        ms = run(["lxc-destroy", "-P", self.lxcpath, "-n", name])[2]
        self.forget(name)
        return ms

    def teardown(self):
        for name in [n for n in self.created if n != "base"] + [n for n in self.created if n == "base"]:
            run(["lxc-stop", "-P", self.lxcpath, "-n", name, "-k"], check=False, timeout=30)
            run(["lxc-destroy", "-P", self.lxcpath, "-n", name], check=False, timeout=60)
        self.created = []
        kill_leftover_monitors(self.lxcpath, self.problems)
        clean_dir(self.lxcpath, self.problems)


class Lxd(PrivateLxd, System):
    key, label = "lxd", "LXD"

    def __init__(self, args):
        System.__init__(self)
        PrivateLxd.__init__(self, LXD_DIR)
        self.backend = None

    def setup(self):
        if not shutil.which("lxd") or not shutil.which("lxc"):
            raise Skip("lxd/lxc not installed: bash scripts/deps.sh --bench")
        PrivateLxd.setup(self)

    def _setup(self):
        ready_ms = self.start_lxd()
        # the `nonet` setup (PrivateLxd.PRESEED); btrfs on a loop file like KIVA's pool, the dir
        # backend if btrfs fails
        for driver, cfg in (("btrfs", "  config:\n    size: 4GiB\n"), ("dir", "")):
            ok, out = self.lxd_init("- name: default\n  driver: %s\n%s" % (driver, cfg), "default")
            if ok:
                self.backend = driver
                break
            self.note += "lxd init with %s failed: %s; " % (driver, out)
        if not self.backend:
            raise Skip("lxd init --preseed failed: " + self.note)
        self.import_busybox()
        rc, out, _ = run(["lxd", "--version"], check=False)
        self.label = "LXD %s (%s)" % (out.strip(), self.backend) if rc == 0 else "LXD (%s)" % self.backend
        self.note += "lxd ready in %.0f ms; storage %s%s; no NIC in the default profile" % (
            ready_ms, self.backend, " (loop file)" if self.backend == "btrfs" else "")

    def daemon_pids(self):
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []

    def launch(self, name):
        self.created.append(name)
        return self.steps(("lxc launch", self.lxc("launch", "bb", name, "-q")[2]),
                          ("lxc exec true", run_until_ok(["lxc", "exec", name, "--", "true"], env=self.env)))

    def stop(self, name):
        return self.lxc("stop", name, "--force")[2]

    def delete(self, name):
        ms = self.lxc("delete", name)[2]
        self.forget(name)
        return ms


# ---------------------------------------------------------------- measurement


def pss_mib(pids):
    total = 0
    for pid in pids:
        v = pss_kib(pid)
        if v is None:
            raise RuntimeError("process %d vanished while reading its PSS" % pid)
        total += v
    return total / 1024.0


def measure(sysobj, args):
    r = {"system": sysobj.key, "n": args.n, "warmup": args.warmup, "running": args.running,
         "launch_ms": [], "stop_ms": [], "delete_ms": []}
    sysobj.setup()
    r["label"] = sysobj.label
    if sysobj.daemon_pids():
        time.sleep(1.0)
        r["idle_pss_mib"] = pss_mib(sysobj.daemon_pids())
    for i in range(args.warmup):
        name = "w%d" % (i + 1)
        sysobj.launch(name)
        sysobj.stop(name)
        sysobj.delete(name)
    for i in range(args.n):
        name = "b%d" % (i + 1)
        r["launch_ms"].append(sysobj.launch(name))
        for label, ms in sysobj.last_steps:
            r.setdefault("launch_steps_ms", {}).setdefault(label, []).append(ms)
        r["stop_ms"].append(sysobj.stop(name))
        r["delete_ms"].append(sysobj.delete(name))
        log("  %-10s %-4s launch->exec %7.1f ms  stop %7.1f ms  delete %7.1f ms"
            % (sysobj.key, name, r["launch_ms"][-1], r["stop_ms"][-1], r["delete_ms"][-1]))
    if args.running:
        names = ["p%d" % (i + 1) for i in range(args.running)]
        for name in names:
            sysobj.launch(name)
        time.sleep(1.0)
        mons = lxc_monitors(sysobj.lxcpath)
        r["monitors_found"] = len(mons)
        mon_mib = pss_mib([m[0] for m in mons])
        daemon_mib = pss_mib(sysobj.daemon_pids()) if sysobj.daemon_pids() else 0.0
        r["monitors_pss_mib"] = mon_mib
        r["daemon_pss_running_mib"] = daemon_mib if sysobj.daemon_pids() else None
        r["cp_pss_mib"] = daemon_mib + mon_mib
        if len(mons) != args.running:
            sysobj.note += "; %d [lxc monitor] processes found for %d containers" % (len(mons), args.running)
        for name in names:
            sysobj.stop(name)
            sysobj.delete(name)
        if sysobj.daemon_pids():
            time.sleep(0.5)
            r["idle_after_pss_mib"] = pss_mib(sysobj.daemon_pids())
    steps = r.get("launch_steps_ms", {})
    if steps:
        sysobj.note += "%slaunch steps p50: %s" % ("; " if sysobj.note else "", " + ".join(
            "%s %s" % (label, fmt_ms(statistics.median(v))) for label, v in steps.items()))
    for k in ("launch", "stop", "delete"):
        s = r[k + "_ms"]
        r[k + "_p50"] = statistics.median(s) if s else None
        r[k + "_p95"] = pct(s, 95) if s else None
    return r


def bench_one(sysobj, args, results, failures):
    log("== %s" % sysobj.label)
    try:
        results[sysobj.key] = measure(sysobj, args)
        results[sysobj.key]["note"] = sysobj.note
    except Skip as e:
        results[sysobj.key] = {"skipped": str(e)}
        log("   skipped: %s" % e)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - report and go on with the next system
        msg = "%s: %s" % (type(e).__name__, e)
        results[sysobj.key] = {"failed": msg, "label": sysobj.label}
        if isinstance(sysobj, Kiva):
            path = sysobj.save_log()
            if path:
                results[sysobj.key]["kivad_log"] = path
                msg += "\n   kivad log (kept at %s), last lines:\n%s" % (path, tail(path))
        failures.append((sysobj.label, msg))
        log("   FAILED: %s" % msg)
    finally:
        teardown_all(sysobj)
        if sysobj.key in results:
            results[sysobj.key]["cleanup_problems"] = sysobj.problems


def docker_result():
    if not shutil.which("docker"):
        return {"skipped": "no engine on this machine"}
    rc, _, _ = run(["docker", "info"], check=False, timeout=30)
    if rc != 0:
        return {"skipped": "no engine on this machine"}
    return {"skipped": "engine found, but this benchmark has no Docker driver yet"}


# ---------------------------------------------------------------- report


def fmt_mib(v):
    return "—" if v is None else "%.1f MiB" % v


def cell(res, key, fmt):
    if "skipped" in res:
        return "skipped"
    if "failed" in res:
        return "FAILED"
    return fmt(res.get(key))


def report(results, args):
    cols = [("kiva", "KIVA"), ("lxc", "raw liblxc"), ("lxd", "LXD"), ("docker", "Docker")]
    cols = [(k, results[k].get("label", lbl) if "skipped" not in results[k] else lbl)
            for k, lbl in cols if k in results]
    rows = [
        ("launch → exec true, p50", "launch_p50", fmt_ms),
        ("launch → exec true, p95", "launch_p95", fmt_ms),
        ("forced stop, p50", "stop_p50", fmt_ms),
        ("forced stop, p95", "stop_p95", fmt_ms),
        ("delete, p50", "delete_p50", fmt_ms),
        ("idle daemon PSS", "idle_pss_mib", fmt_mib),
        ("control plane PSS, %d running" % args.running, "cp_pss_mib", fmt_mib),
    ]
    table = [[""] + [c[1] for c in cols]]
    for title, key, fmt in rows:
        table.append([title] + [cell(results[k], key, fmt) for k, _ in cols])
    out = [title_line("launch", "n=%d (+%d warm-up), " % (args.n, args.warmup)), ""]
    out += render_table(table)
    out.append("")
    for k, lbl in cols:
        res = results[k]
        name = lbl.split(" ")[0] if k != "lxc" else "raw liblxc"
        if "skipped" in res:
            out.append("%s: skipped (%s)" % (name if k != "lxd" else "LXD", res["skipped"]))
        elif "failed" in res:
            out.append("%s: FAILED (%s)" % (name, res["failed"].splitlines()[0]))
        elif res.get("note"):
            out.append("%s: %s" % (lbl, res["note"]))
    out.append("")

    kiva, lxc, lxd = (results.get(k, {}) for k in ("kiva", "lxc", "lxd"))
    kl = kiva.get("launch_p50")

    def ratio(other):
        o = other.get("launch_p50")
        return o / kl if (kl and o) else None

    r_lxd, r_lxc = ratio(lxd), ratio(lxc)
    if kl:
        def x(r):
            return "n/a×" if not r else ("%.1f×" % r if r >= 1 else "%.1f× (KIVA slower)" % r)
        out.append("KIVA launch is %s faster than LXD, %s vs raw liblxc" % (x(r_lxd), x(r_lxc)))
        out.append("")

    checks = [
        ("launch p50 ≤ %.0f ms" % TARGETS["launch_p50_ms"], fmt_ms(kl),
         verdict(kl, TARGETS["launch_p50_ms"]), "launch_p50_ms", kl),
        ("launch ≥ %.0f× faster than LXD" % TARGETS["launch_vs_lxd"],
         "%.1f×" % r_lxd if r_lxd else "—", verdict(r_lxd, TARGETS["launch_vs_lxd"], True), None, None),
        ("forced stop p50 ≤ %.0f ms" % TARGETS["stop_p50_ms"], fmt_ms(kiva.get("stop_p50")),
         verdict(kiva.get("stop_p50"), TARGETS["stop_p50_ms"]), "stop_p50_ms", kiva.get("stop_p50")),
        ("kivad idle PSS ≤ %.0f MiB" % TARGETS["idle_pss_mib"], fmt_mib(kiva.get("idle_pss_mib")),
         verdict(kiva.get("idle_pss_mib"), TARGETS["idle_pss_mib"]), "idle_pss_mib", kiva.get("idle_pss_mib")),
        ("control plane, %d running ≤ %.0f MiB" % (args.running, TARGETS["cp_pss_mib"]),
         fmt_mib(kiva.get("cp_pss_mib")), verdict(kiva.get("cp_pss_mib"), TARGETS["cp_pss_mib"]),
         "cp_pss_mib", kiva.get("cp_pss_mib")),
    ]
    out.append("Targets (issue), KIVA:")
    w = max(len(c[0]) for c in checks)
    verdicts = {}
    for title, val, v, dkey, dval in checks:
        extra = ""
        if dkey:
            b = DESIGN_BUDGETS[dkey]
            unit = "ms" if dkey.endswith("_ms") else "MiB"
            extra = "   (DESIGN §11 budget ≤ %g %s: %s)" % (b, unit, verdict(dval, b))
        out.append("  %s  %10s  %s%s" % (title.ljust(w), val, v, extra))
        verdicts[title] = v
    return "\n".join(out), verdicts


# ---------------------------------------------------------------- main


def main():
    ap, args = parse_args(__doc__, [
        ("--n", dict(type=int, default=20, help="measured iterations per system (default 20)")),
        ("--warmup", dict(type=int, default=1,
                          help="unmeasured launch/stop/delete cycles first (default 1)")),
        ("--running", dict(type=int, default=20,
                           help="containers running for the control-plane PSS (default 20, 0 to skip)")),
        ("--systems", dict(default="lxc,kiva,lxd,docker",
                           help="comma-separated subset of lxc,kiva,lxd,docker (default: all)")),
    ])
    if args.n < 1:
        ap.error("--n must be ≥ 1")
    if os.geteuid() != 0:
        sys.exit("bench/launch.py must run as root (containers, mounts, /proc/*/smaps_rollup)")
    if not os.path.exists(BUSYBOX):
        sys.exit("%s missing: apt-get install busybox-static" % BUSYBOX)
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]

    exit_on_term()

    results, failures = {}, []
    t0 = time.time()
    ctors = {"lxc": RawLxc, "kiva": Kiva, "lxd": Lxd}
    for key in ("lxc", "kiva", "lxd"):
        if key in wanted:
            bench_one(ctors[key](args), args, results, failures)
    if "docker" in wanted:
        results["docker"] = docker_result()
    text, verdicts = report(results, args)
    finish(text, t0, args, failures, targets=TARGETS, design_budgets=DESIGN_BUDGETS,
           verdicts=verdicts, results=results)
    return 1 if any(label == "KIVA" for label, _ in failures) else 0


if __name__ == "__main__":
    sys.exit(main())
