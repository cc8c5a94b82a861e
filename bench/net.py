#!/usr/bin/env python3
"""KIVA network benchmark: bridge throughput, the launch cost of a NIC, ACL apply time.

Measures, in one run, on a private kivad:
  1. container-to-container TCP throughput over a KIVA bridge (iperf3 in the two containers'
     network namespaces) vs a raw veth pair between two network namespaces made by this script
     (median of R runs of S seconds each; target: bridge >= 90% of raw veth);
  2. launch -> `exec true` p50 with the default profile's eth0 vs `--no-profiles` (no NIC)
     (N each; target: the NIC adds <= 10 ms at p50);
  3. the wall time of `kiva network acl rule add|remove` on an ACL attached to the default
     network while 50 instances run (median of C cycles), and the size of the resulting
     `nft list table bridge <KIVA's table>`.

Prints a table and the targets of issue 3 (item 9) with PASS/MISS. Not a test: it never fails
because a number is bad, only when a part cannot run (exit 1). Must run as root. Traffic stays
inside the containers' and this script's own network namespaces. See bench/README.md.

Python 3 standard library only.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (CmdError, PrivateKivad, exit_on_term, finish, fmt_ms, log, main_interruptible,  # noqa: E402
                      median, parse_args, pct, read_sysctl, run, run_until_ok, tail, teardown_all,
                      title_line, verdict)

PID = os.getpid()
STATE = "/var/tmp/kiva-benchnet-%d" % PID
# the raw baseline: two netns and a veth pair, names unique to this run (IFNAMSIZ 15)
NS_A, NS_B = "kbn%d-a" % PID, "kbn%d-b" % PID
VETH_A, VETH_B = "kbn%da" % PID, "kbn%db" % PID
RAW_NET = "10.199.%d" % (PID % 254 + 1)  # only ever configured inside NS_A / NS_B
IPERF_PORT = 5201  # inside the containers' / the script's namespaces only

TARGETS = {
    "tcp_ratio_pct": 90.0,  # bridge >= 90% of the raw veth pair
    "nic_launch_added_ms": 10.0,  # p50(with eth0) - p50(without NIC) <= 10 ms
}


# ---------------------------------------------------------------- helpers


def listening(pid, port):
    """True when a TCP socket listens on port in the network namespace of process pid."""
    want = ":%04X" % port
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[1].endswith(want) and parts[3] == "0A":
                        return True
        except OSError:
            pass
    return False


# ---------------------------------------------------------------- KIVA


class Kivad(PrivateKivad):
    """A private kivad on STATE, and the kiva client pointed at it."""

    def __init__(self, args):
        super().__init__(args, STATE, STATE + "/s.sock")
        self.instances = set()  # names that may exist
        self.network = None  # the default network (the default profile's eth0)
        self.table = None  # KIVA's nftables table name (bridge and inet families)

    def start(self):
        if not self.kivad or not self.kiva_bin:
            raise RuntimeError("kivad/kiva not installed: run `make install`")
        self.start_kivad("--pool-size", "4GiB", "--daemon")
        self.network = self.default_network()
        # kivad names its tables kiva_<first 8 hex of sha256(realpath(state dir))> off
        # /var/lib/kiva; check that against the kernel's table list
        tid = hashlib.sha256(os.path.realpath(STATE).encode()).hexdigest()[:8]
        _, out, _ = run(["nft", "list", "tables"], check=False)
        bridge_tables = [l.split()[2] for l in out.splitlines()
                         if l.startswith("table bridge ") and len(l.split()) == 3]
        self.table = "kiva_" + tid
        if self.table not in bridge_tables:
            self.note += "; table bridge %s not found (tables: %s)" % (self.table, ", ".join(bridge_tables))

    def query(self, path):
        return json.loads(self.kiva("query", path)[1])

    def default_network(self):
        """The network of the default profile's eth0: the one managed bridge of a fresh kivad."""
        nets = self.query("/1.0/networks?recursion=1")
        if isinstance(nets, dict) and "metadata" in nets:
            nets = nets["metadata"]
        managed = [n["name"] for n in nets if n.get("managed")]
        if len(managed) != 1:
            raise RuntimeError("expected one managed network on a fresh kivad, found %r" % managed)
        return managed[0]

    def instance_state(self, name):
        st = self.query("/1.0/instances/%s/state" % name)
        return st.get("metadata", st) if isinstance(st, dict) else st

    def launch(self, name, *flags):
        """kiva launch busybox NAME FLAGS + kiva exec NAME -- true; returns (launch ms, exec ms)."""
        self.instances.add(name)
        ms_launch = self.kiva("launch", "busybox", name, *flags)[2]
        ms_exec = run_until_ok([self.kiva_bin, "exec", name, "--", "true"], env=self.env)
        return ms_launch, ms_exec

    def delete(self, *names):
        if names:
            self.kiva("delete", "--force", *names)
            self.instances.difference_update(names)

    def teardown(self):
        """Force-deletes every instance, SIGTERM kivad, `kivad --purge`; says what is left."""
        if not os.path.isdir(STATE):
            return
        self.stop_kivad(self.instances)
        self.instances.clear()
        if os.path.exists(STATE):
            self.problems.append("%s still exists after --purge (left in place)" % STATE)
        if self.network and os.path.exists("/sys/class/net/" + self.network):
            self.problems.append("bridge %s still there after --purge" % self.network)
        _, out, _ = run(["nft", "list", "tables"], check=False)
        if self.table and (" %s\n" % self.table) in out + "\n":
            self.problems.append("nftables table %s still there after --purge" % self.table)


# ---------------------------------------------------------------- raw veth baseline


class RawPair:
    """Two network namespaces joined by a veth pair, RAW_NET.1/30 and .2/30 (inside them only)."""

    def __init__(self):
        self.made = False
        self.problems = []

    def setup(self):
        self.made = True
        for ns in (NS_A, NS_B):
            run(["ip", "netns", "add", ns])
        # create the pair directly in the namespaces: never visible in the host's netns
        run(["ip", "link", "add", VETH_A, "netns", NS_A, "type", "veth", "peer", "name", VETH_B, "netns", NS_B])
        for ns, dev, addr in ((NS_A, VETH_A, RAW_NET + ".1/30"), (NS_B, VETH_B, RAW_NET + ".2/30")):
            run(["ip", "-n", ns, "addr", "add", addr, "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def teardown(self):
        if not self.made:
            return
        _, out, _ = run(["ip", "netns", "list"], check=False)
        present = {l.split()[0] for l in out.splitlines() if l.strip()}
        for ns in (NS_A, NS_B):
            if ns in present:
                rc, out, _ = run(["ip", "netns", "del", ns], check=False)
                if rc != 0:
                    self.problems.append("ip netns del %s: %s" % (ns, out.strip()))
        for dev in (VETH_A, VETH_B):  # only there if a step failed half-way
            if os.path.exists("/sys/class/net/" + dev):
                rc, out, _ = run(["ip", "link", "del", dev], check=False)
                if rc != 0:
                    self.problems.append("ip link del %s: %s" % (dev, out.strip()))


# ---------------------------------------------------------------- measurements


def iperf(server_prefix, client_prefix, addr, seconds):
    """iperf3 server (one test) under server_prefix, client under client_prefix to addr:
    returns the receiver's bits/s."""
    srv = subprocess.Popen(server_prefix + ["iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while not listening(srv.pid, IPERF_PORT):
            if srv.poll() is not None:
                raise RuntimeError("iperf3 server exited %s: %s" % (srv.returncode, srv.stderr.read().decode(errors="replace")))
            if time.time() > deadline:
                raise RuntimeError("iperf3 server not listening after 10 s")
            time.sleep(0.01)
        argv = client_prefix + ["iperf3", "-c", addr, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"]
        rc, out, _ = run(argv, check=False, timeout=seconds + 30)
        try:
            doc = json.loads(out)
        except ValueError:
            raise CmdError(argv, rc, out)
        if doc.get("error") or rc != 0:
            raise CmdError(argv, rc, doc.get("error") or out)
        return float(doc["end"]["sum_received"]["bits_per_second"])
    finally:
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait(timeout=5)
        srv.stderr.close()


def measure_tcp(k, raw, args, r):
    """Part 1: KIVA bridge vs raw veth, interleaved, R runs each."""
    r["bridge_bps"], r["raw_bps"] = [], []
    k.launch("ta")
    k.launch("tb")
    sa, sb = k.instance_state("ta"), k.instance_state("tb")
    addr = [a["address"] for a in sa["network"]["eth0"]["addresses"] if a["family"] == "inet"][0]
    pa, pb = sa["pid"], sb["pid"]
    raw.setup()
    kiva_srv, kiva_cli = ["nsenter", "-t", str(pa), "-n"], ["nsenter", "-t", str(pb), "-n"]
    raw_srv, raw_cli = ["ip", "netns", "exec", NS_A], ["ip", "netns", "exec", NS_B]
    for i in range(args.runs):
        order = (("bridge", kiva_srv, kiva_cli, addr), ("raw", raw_srv, raw_cli, RAW_NET + ".1"))
        for what, s, c, a in (order if i % 2 == 0 else order[::-1]):
            bps = iperf(s, c, a, args.seconds)
            r[what + "_bps"].append(bps)
            log("  tcp run %d %-6s %6.2f Gbit/s" % (i + 1, what, bps / 1e9))
    # The host-wide br_netfilter switch sends every bridged frame through the inet hooks; KIVA
    # itself only needs it per bridge, for bridges with ACLs. Measure with it off as well.
    sw = "/proc/sys/net/bridge/bridge-nf-call-iptables"
    if read_sysctl(sw) == "1":
        r["bridge_off_bps"], r["raw_off_bps"] = [], []
        try:
            with open(sw, "w") as f:
                f.write("0")
            for i in range(args.runs):
                order = (("bridge_off", kiva_srv, kiva_cli, addr),
                         ("raw_off", raw_srv, raw_cli, RAW_NET + ".1"))
                for what, s_, c, a in (order if i % 2 == 0 else order[::-1]):
                    bps = iperf(s_, c, a, args.seconds)
                    r[what + "_bps"].append(bps)
                    log("  tcp run %d %-10s %6.2f Gbit/s (host switch off)" % (i + 1, what, bps / 1e9))
        finally:
            with open(sw, "w") as f:
                f.write("1")
        r["ratio_off_pct"] = 100.0 * median(r["bridge_off_bps"]) / median(r["raw_off_bps"])
    k.delete("ta", "tb")
    raw.teardown()
    raw.made = False
    r["bridge_bps_median"] = median(r["bridge_bps"])
    r["raw_bps_median"] = median(r["raw_bps"])
    r["ratio_pct"] = 100.0 * r["bridge_bps_median"] / r["raw_bps_median"]
    r["tcp_note"] = "%s, iperf3 -t %d, %d runs each, interleaved; bridge-nf-call-iptables=%s" % (
        k.network, args.seconds, args.runs,
        read_sysctl("/proc/sys/net/bridge/bridge-nf-call-iptables") or "n/a (br_netfilter not loaded)")


def measure_launch(k, args, r):
    """Part 2: launch + exec true with the default profile's eth0 vs --no-profiles, interleaved."""
    for kind in ("nic", "nonic"):
        for step in ("launch", "exec", "total"):
            r["%s_%s_ms" % (kind, step)] = []
    flags = {"nic": (), "nonic": ("--no-profiles",)}
    for i in range(args.warmup + args.n):
        kinds = ("nic", "nonic") if i % 2 == 0 else ("nonic", "nic")
        got = {}
        for kind in kinds:
            name = "%s%d" % ("x" if kind == "nic" else "y", i)
            got[kind] = k.launch(name, *flags[kind])
            k.delete(name)
        if i < args.warmup:
            continue
        for kind, (ml, me) in got.items():
            r[kind + "_launch_ms"].append(ml)
            r[kind + "_exec_ms"].append(me)
            r[kind + "_total_ms"].append(ml + me)
        log("  launch %2d  with eth0 %6.1f ms   no NIC %6.1f ms"
            % (i - args.warmup + 1, sum(got["nic"]), sum(got["nonic"])))
    for kind in ("nic", "nonic"):
        for step in ("launch", "exec", "total"):
            s = r["%s_%s_ms" % (kind, step)]
            r["%s_%s_p50" % (kind, step)] = median(s)
        r[kind + "_total_p95"] = pct(r[kind + "_total_ms"], 95)
    r["nic_added_ms"] = r["nic_total_p50"] - r["nonic_total_p50"]


def nft_table(table):
    rc, out, _ = run(["nft", "list", "table", "bridge", table], check=False)
    if rc != 0:
        return None, None, None
    lines = out.splitlines()
    rules = [l for l in lines if l.strip() and not l.strip().startswith(("table ", "chain ", "type ", "}"))]
    return len(lines), len(rules), sum(1 for l in rules if "dport 80" in l)


def measure_acl(k, args, r):
    """Part 3: rule add/remove on an ACL attached to the default network, with M instances running."""
    names = ["n%02d" % (i + 1) for i in range(args.instances)]
    t0 = time.perf_counter()
    for n in names:
        k.instances.add(n)
        k.kiva("launch", "busybox", n, "-c", "user.app=bench")
    r["acl_launch_all_s"] = time.perf_counter() - t0
    running = sum(1 for l in k.kiva("list", "-f", "csv")[1].splitlines() if ",RUNNING," in l)
    r["acl_running"] = running
    log("  %d instances launched in %.1f s (%d running)" % (len(names), r["acl_launch_all_s"], running))
    acl = "benchacl"
    k.kiva("network", "acl", "create", acl)
    r["acl_attach_ms"] = k.kiva("network", "set", k.network, "security.acls=" + acl)[2]
    r["nft_lines_empty_acl"], r["nft_rules_empty_acl"], _ = nft_table(k.table)
    rule = ["ingress", "action=allow", "source=@app=bench", "destination_port=80", "protocol=tcp"]
    r["acl_add_ms"], r["acl_remove_ms"] = [], []
    for i in range(args.cycles):
        ms_add = k.kiva("network", "acl", "rule", "add", acl, *rule)[2]
        lines, rules, dport = nft_table(k.table)
        ms_rm = k.kiva("network", "acl", "rule", "remove", acl, *rule)[2]
        r["acl_add_ms"].append(ms_add)
        r["acl_remove_ms"].append(ms_rm)
        if i == 0:
            r["nft_lines"], r["nft_rules"], r["nft_dport80_rules"] = lines, rules, dport
            _, _, r["nft_dport80_after_remove"] = nft_table(k.table)
        log("  acl cycle %d  rule add %6.1f ms   rule remove %6.1f ms" % (i + 1, ms_add, ms_rm))
    r["acl_add_p50"] = median(r["acl_add_ms"])
    r["acl_remove_p50"] = median(r["acl_remove_ms"])
    k.kiva("network", "unset", k.network, "security.acls")
    k.kiva("network", "acl", "delete", acl)
    for i in range(0, len(names), 25):
        k.delete(*names[i:i + 25])


# ---------------------------------------------------------------- report


def fmt_gbit(v):
    return "—" if v is None else "%.2f Gbit/s" % (v / 1e9)


def report(r, args, failed, k):
    def val(part, key, fmt):
        if part in failed:
            return "not run" if failed[part].startswith("not run") else "FAILED"
        return fmt(r.get(key))

    rows = [
        ("TCP container → container over %s, median of %d × %d s" % (k.network or "the bridge", args.runs, args.seconds),
         val("tcp", "bridge_bps_median", fmt_gbit),
         "" if "tcp" in failed else " ".join("%.2f" % (v / 1e9) for v in r.get("bridge_bps", []))),
        ("TCP netns → netns over a raw veth pair, median of %d × %d s" % (args.runs, args.seconds),
         val("tcp", "raw_bps_median", fmt_gbit),
         "" if "tcp" in failed else " ".join("%.2f" % (v / 1e9) for v in r.get("raw_bps", []))),
        ("  bridge / raw veth", val("tcp", "ratio_pct", lambda v: "%.1f %%" % v), ""),
        ("  bridge / raw veth, host bridge-nf-call-iptables=0",
         val("tcp", "ratio_off_pct",
             lambda v: "%.1f %%" % v if v is not None else "(switch was 0)"), ""),
        ("launch → exec true, eth0 on %s, p50 (n=%d)" % (k.network or "the default network", args.n),
         val("launch", "nic_total_p50", fmt_ms),
         "" if "launch" in failed else "p95 %s" % fmt_ms(r.get("nic_total_p95"))),
        ("launch → exec true, --no-profiles (no NIC), p50 (n=%d)" % args.n,
         val("launch", "nonic_total_p50", fmt_ms),
         "" if "launch" in failed else "p95 %s" % fmt_ms(r.get("nonic_total_p95"))),
        ("  the NIC adds (p50 difference)", val("launch", "nic_added_ms", fmt_ms), ""),
        ("network set security.acls=ACL (empty ACL), %d running" % args.instances,
         val("acl", "acl_attach_ms", fmt_ms), ""),
        ("acl rule add, %d running, median of %d" % (args.instances, args.cycles),
         val("acl", "acl_add_p50", fmt_ms),
         "" if "acl" in failed else " ".join("%.1f" % v for v in r.get("acl_add_ms", []))),
        ("acl rule remove, %d running, median of %d" % (args.instances, args.cycles),
         val("acl", "acl_remove_p50", fmt_ms),
         "" if "acl" in failed else " ".join("%.1f" % v for v in r.get("acl_remove_ms", []))),
        ("nft list table bridge %s after rule add" % (k.table or "?"),
         val("acl", "nft_lines", lambda v: "—" if v is None else "%d lines" % v),
         "" if "acl" in failed else "%s rules, %s with dport 80" % (r.get("nft_rules"), r.get("nft_dport80_rules"))),
    ]
    table = [("", "value", "samples")] + rows
    w = [max(len(row[i]) for row in table) for i in range(3)]
    out = [title_line("network", ""), ""]
    for i, row in enumerate(table):
        line = "%s  %s  %s" % (row[0].ljust(w[0]), row[1].rjust(w[1]), row[2])
        out.append(line.rstrip())
        if i == 0:
            out.append("-" * (w[0] + w[1] + w[2] + 4))
    out.append("")
    notes = []
    if k.note:
        notes.append(k.note)
    if "tcp" not in failed and r.get("tcp_note"):
        notes.append("TCP: " + r["tcp_note"])
    if "launch" not in failed and r.get("nic_launch_p50") is not None:
        notes.append("launch steps p50: with eth0 kiva launch %s + exec %s; no NIC kiva launch %s + exec %s"
                     % (fmt_ms(r["nic_launch_p50"]), fmt_ms(r["nic_exec_p50"]),
                        fmt_ms(r["nonic_launch_p50"]), fmt_ms(r["nonic_exec_p50"])))
    if "acl" not in failed and r.get("acl_launch_all_s") is not None:
        notes.append("ACL: %d instances (user.app=bench) launched in %.1f s, %d running; empty ACL attached: "
                     "%s table lines, %s rules; dport-80 rules after remove: %s"
                     % (args.instances, r["acl_launch_all_s"], r.get("acl_running", 0),
                        r.get("nft_lines_empty_acl"), r.get("nft_rules_empty_acl"),
                        r.get("nft_dport80_after_remove")))
    for part, msg in failed.items():
        if msg.startswith("not run"):
            continue
        notes.append("%s: FAILED (%s)" % (part, msg.splitlines()[0][:300]))
    out += notes + [""]
    checks = [
        ("TCP over the bridge ≥ %.0f %% of a raw veth pair" % TARGETS["tcp_ratio_pct"],
         val("tcp", "ratio_pct", lambda v: "%.1f %%" % v),
         verdict(r.get("ratio_pct"), TARGETS["tcp_ratio_pct"], True)),
        ("  the same with the host's br_netfilter switch off",
         val("tcp", "ratio_off_pct",
             lambda v: "%.1f %%" % v if v is not None else "(switch was 0)"),
         verdict(r.get("ratio_off_pct"), TARGETS["tcp_ratio_pct"], True)
         if r.get("ratio_off_pct") is not None else ""),
        ("a NIC adds ≤ %.0f ms to launch p50" % TARGETS["nic_launch_added_ms"],
         val("launch", "nic_added_ms", fmt_ms),
         verdict(r.get("nic_added_ms"), TARGETS["nic_launch_added_ms"])),
        ("ACL change applied to %d running instances (no target)" % args.instances,
         val("acl", "acl_add_p50", fmt_ms), "—"),
    ]
    out.append("Targets (issue 3, item 9):")
    cw = max(len(c[0]) for c in checks)
    vw = max(len(c[1]) for c in checks)
    verdicts = {}
    for title, v, vd in checks:
        out.append("  %s  %s  %s" % (title.ljust(cw), v.rjust(vw), vd))
        verdicts[title] = vd
    return "\n".join(out), verdicts


# ---------------------------------------------------------------- main


def main():
    ap, args = parse_args(__doc__, [
        ("--runs", dict(type=int, default=3, help="iperf3 runs per path (default 3)")),
        ("--seconds", dict(type=int, default=5, help="seconds per iperf3 run (default 5)")),
        ("--n", dict(type=int, default=20, help="measured launches with and without a NIC (default 20)")),
        ("--warmup", dict(type=int, default=1, help="unmeasured launch pairs first (default 1)")),
        ("--instances", dict(type=int, default=50, help="running instances for the ACL part (default 50)")),
        ("--cycles", dict(type=int, default=5, help="ACL rule add/remove cycles (default 5)")),
        ("--parts", dict(default="tcp,launch,acl", help="comma-separated subset of tcp,launch,acl")),
    ])
    if min(args.runs, args.seconds, args.n, args.instances, args.cycles) < 1:
        ap.error("--runs, --seconds, --n, --instances and --cycles must be ≥ 1")
    if os.geteuid() != 0:
        sys.exit("bench/net.py must run as root (containers, network namespaces, nftables)")
    for tool in ("iperf3", "nsenter", "ip", "nft"):
        if not shutil.which(tool):
            sys.exit("%s not found (apt-get install iperf3 util-linux iproute2 nftables)" % tool)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]

    exit_on_term()

    t0 = time.time()
    k, raw = Kivad(args), RawPair()
    r, failed = {}, {}
    try:
        try:
            log("== kivad on %s" % STATE)
            k.start()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001
            for p in parts:
                failed[p] = "kivad: %s: %s" % (type(e).__name__, e)
            log("   FAILED: %s" % e)
        measures = (("tcp", lambda: measure_tcp(k, raw, args, r)),
                    ("launch", lambda: measure_launch(k, args, r)),
                    ("acl", lambda: measure_acl(k, args, r)))
        for part, fn in measures:
            if part not in parts or part in failed:
                continue
            log("== %s" % part)
            try:
                fn()
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # noqa: BLE001 - report and go on with the next part
                failed[part] = "%s: %s" % (type(e).__name__, e)
                log("   FAILED: %s" % failed[part])
                # leave no instance of the failed part behind for the next one
                k.delete_all(k.instances)
                k.instances.clear()
                raw.teardown()
                raw.made = False
        if failed:
            path = k.save_log()
            if path:
                log("   kivad log kept at %s, last lines:\n%s" % (path, tail(path, 20)))
    finally:
        log("== cleanup")
        teardown_all(k, raw)
    for p in parts:
        if p not in failed and p not in ("tcp", "launch", "acl"):
            failed[p] = "unknown part"
    for p in ("tcp", "launch", "acl"):
        if p not in parts:
            failed.setdefault(p, "not run (--parts)")
    text, verdicts = report(r, args, failed, k)
    finish(text, t0, args, targets=TARGETS, verdicts=verdicts, network=k.network, nft_table=k.table,
           results=r, failed=failed, cleanup_problems=k.problems + raw.problems)
    return 1 if any(not m.startswith("not run") for m in failed.values()) else 0


if __name__ == "__main__":
    main_interruptible(main)  # on Ctrl-C, cleanup has run (finally in main)
