#!/usr/bin/env python3
"""KIVA exec and events benchmark: warm `exec true` through the API vs lxc-attach vs LXD, and the
delivery delay of lifecycle events to many WebSocket subscribers, in one run.

Exec (a running busybox container, n samples of each, the order rotating every round):
  KIVA API over WebSockets, as an LXD client does it   (POST .../exec wait-for-websocket, the 4
                                                        sockets, the stdin barrier, operation wait;
                                                        target p50 <= 10 ms)
  KIVA API with record-output (no WebSocket), `kiva exec`, the stock `lxc exec` against kivad,
  `lxc-attach` into KIVA's own container
  anchors: raw `lxc-attach` into a raw liblxc container, LXD's `lxc exec` (and the same Python API
  client against LXD)
Events:
  S WebSocket subscribers on /1.0/events?type=lifecycle (one selector loop in a child process),
  C containers created and started concurrently through the API; delay = receive time (taken
  right after recv(), before any parsing) - the event's "timestamp" (CLOCK_REALTIME on both sides);
  p50/p99/max over events x subscribers, target p99 <= 5 ms, every subscriber must get every event.

Prints tables and the targets with PASS/FAIL. Not a test: it never fails because a number is bad,
only when KIVA cannot run (exit 1). Must run as root (`make bench` runs it after `make install`).
See bench/README.md.

Python 3 standard library only.
"""

import base64
import calendar
import hashlib
import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (BUSYBOX, PrivateKivad, PrivateLxd, Skip, clean_dir, exit_on_term, finish,  # noqa: E402
                      fmt_ms, kill_leftover_monitors, log, main_interruptible, median, parse_args, pct,
                      remove_cgroup, render_table, run, run_until_ok, tail, teardown_all, title_line, unix_request,
                      verdict, weighted_cgroup)

PID = os.getpid()
KIVA_STATE = "/var/tmp/kiva-benchexec-%d" % PID
LXC_PATH = "/var/tmp/kiva-benchexec-lxc-%d" % PID
LXD_DIR = "/var/tmp/kiva-benchexec-lxd-%d" % PID

TARGETS = {
    "exec_api_p50_ms": 10.0,  # KIVA API over WebSockets
    "events_p99_ms": 5.0,  # delivery delay over events x subscribers
}
# The numbers quoted in the issue (this host, an earlier measurement).
ISSUE_MS = {"lxd_exec": 33.0, "lxc_attach": 6.0}

WS_TIMEOUT = 30  # seconds, any socket operation of the exec client
EVENTS_PATH = "/1.0/events?type=lifecycle"
EXPECTED_ACTIONS = ("instance-created", "instance-started")


class ApiError(Exception):
    pass


# ---------------------------------------------------------------- the REST API over a unix socket


class Api:
    """LXD's REST API on a unix socket (kivad's or lxd's), a new connection per request as a CLI
    invocation has; the same code drives both systems."""

    def __init__(self, sock):
        self.sock = sock

    def request(self, method, path, body=None, timeout=WS_TIMEOUT):
        return unix_request(self.sock, method, path, body, timeout=timeout)

    def async_op(self, method, path, body=None):
        """The request, which must answer an operation; returns the operation's metadata."""
        status, doc = self.request(method, path, body)
        if status >= 400 or doc.get("type") != "async":
            raise ApiError("%s %s: %s %s" % (method, path, status, doc.get("error") or doc))
        return doc["metadata"]

    def wait(self, op_id, timeout=WS_TIMEOUT):
        """GET /1.0/operations/ID/wait; returns the operation, raises unless it succeeded."""
        status, w = self.request("GET", "/1.0/operations/%s/wait?timeout=%d" % (op_id, timeout),
                                 timeout=timeout + 10)
        md = w.get("metadata") or {}
        if status != 200 or md.get("status_code") != 200:
            raise ApiError("operation %s: %s" % (op_id, md.get("err") or md.get("status") or w.get("error") or w))
        return md

    def op(self, method, path, body=None):
        return self.wait(self.async_op(method, path, body)["id"], timeout=120)


# ---------------------------------------------------------------- a minimal RFC 6455 client

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WsError(Exception):
    pass


def xor_mask(data, key):
    if not data:
        return b""
    k = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(len(data), "big")


def take_frame(buf, pos=0):
    """The frame starting at buf[pos], if complete: ((fin, opcode, payload), end) or (None, pos)."""
    n = len(buf) - pos
    if n < 2:
        return None, pos
    b0, b1 = buf[pos], buf[pos + 1]
    ln, hdr = b1 & 0x7F, 2
    if ln == 126:
        if n < 4:
            return None, pos
        ln, hdr = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
    elif ln == 127:
        if n < 10:
            return None, pos
        ln, hdr = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
    key = None
    if b1 & 0x80:  # servers do not mask; accepted anyway
        if n < hdr + 4:
            return None, pos
        key, hdr = bytes(buf[pos + hdr:pos + hdr + 4]), hdr + 4
    if n < hdr + ln:
        return None, pos
    payload = bytes(buf[pos + hdr:pos + hdr + ln])
    if key:
        payload = xor_mask(payload, key)
    return (bool(b0 & 0x80), b0 & 0x0F, payload), pos + hdr + ln


def frame(opcode, payload=b""):
    """A client frame: FIN, masked (RFC 6455 §5.3: every client frame is masked)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + xor_mask(payload, key)


class WebSocket:
    def __init__(self, sock, rest=b""):
        self.sock = sock
        self.buf = bytearray(rest)
        self.closed = False

    @classmethod
    def connect(cls, sock_path, path, timeout=WS_TIMEOUT):
        """The HTTP/1.1 upgrade on a new unix-socket connection; checks 101 and the accept key."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(sock_path)
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                d = s.recv(4096)
                if not d:
                    raise WsError("GET %s: connection closed during the handshake" % path.split("?")[0])
                head += d
            hdr, rest = head.split(b"\r\n\r\n", 1)
            lines = hdr.decode(errors="replace").split("\r\n")
            if len(lines[0].split()) < 2 or lines[0].split()[1] != "101":
                raise WsError("GET %s: %s" % (path.split("?")[0], lines[0]))
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            if headers.get("sec-websocket-accept") != accept:
                raise WsError("GET %s: bad Sec-WebSocket-Accept %r" % (path.split("?")[0],
                                                                       headers.get("sec-websocket-accept")))
        except BaseException:
            s.close()
            raise
        return cls(s, rest)

    def send(self, opcode, payload=b""):
        self.sock.sendall(frame(opcode, payload))

    def recv_message(self):
        """The next text/binary message (fragments joined) or close: (opcode, payload). Pings are
        answered. Raises EOFError when the connection ends."""
        parts, first = [], None
        while True:
            f, end = take_frame(self.buf)
            if f is None:
                d = self.sock.recv(65536)
                if not d:
                    raise EOFError
                self.buf += d
                continue
            del self.buf[:end]
            fin, op, payload = f
            if op == OP_PING:
                try:
                    self.send(OP_PONG, payload)
                except OSError:
                    pass  # the server may have gone already: EOF comes next
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                return OP_CLOSE, payload
            if op != OP_CONT:
                first = op
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    def read_to_end(self):
        """Reads an output stream until its end: the empty text message (LXD's barrier), a close,
        or EOF. Returns the bytes of the binary messages."""
        out = []
        while True:
            try:
                op, payload = self.recv_message()
            except EOFError:
                return b"".join(out)
            if op == OP_CLOSE or (op == OP_TEXT and not payload):
                return b"".join(out)
            if op == OP_BINARY:
                out.append(payload)

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.send(OP_CLOSE, (1000).to_bytes(2, "big"))
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------- exec through the API


def api_exec_ws(api, name):
    """`exec true` as an LXD client drives it: POST .../exec wait-for-websocket, the control, 0, 1,
    2 sockets (in the order LXD's client opens them), an empty text message on stdin (the
    barrier: end of stdin), GET /1.0/operations/ID/wait, stdout and stderr read to their end.
    Returns (ms, {step: ms}); raises unless the command returned 0."""
    t0 = time.perf_counter()
    marks = [t0]
    op = api.async_op("POST", "/1.0/instances/%s/exec" % name,
                      {"command": ["true"], "environment": {}, "wait-for-websocket": True,
                       "interactive": False})
    fds = (op.get("metadata") or {}).get("fds") or {}
    socks = {}
    try:
        for fd in ("control", "0", "1", "2"):
            if fd not in fds:
                raise ApiError("exec operation metadata has no fd %r: %s" % (fd, op.get("metadata")))
            if fd == "control":
                marks.append(time.perf_counter())
            socks[fd] = WebSocket.connect(api.sock, "/1.0/operations/%s/websocket?secret=%s" % (op["id"], fds[fd]))
        socks["0"].send(OP_TEXT, b"")
        marks.append(time.perf_counter())
        md = api.wait(op["id"])
        marks.append(time.perf_counter())
        out = socks["1"].read_to_end() + socks["2"].read_to_end()
        marks.append(time.perf_counter())
        ms = (marks[-1] - t0) * 1000.0
    finally:
        for s in socks.values():
            s.close()
    rc = (md.get("metadata") or {}).get("return")
    if rc != 0:
        raise ApiError("exec true over WebSockets returned %r: %r" % (rc, out[:200]))
    return ms, dict(zip(WS_STEPS, ((b - a) * 1000.0 for a, b in zip(marks, marks[1:]))))


WS_STEPS = ("POST", "4 sockets + barrier", "wait", "streams")


def api_exec_record(api, name):
    """`exec true` with record-output and no WebSocket: POST .../exec, GET .../wait. Returns ms."""
    t0 = time.perf_counter()
    op = api.async_op("POST", "/1.0/instances/%s/exec" % name,
                      {"command": ["true"], "environment": {}, "record-output": True,
                       "wait-for-websocket": False, "interactive": False})
    md = api.wait(op["id"])
    ms = (time.perf_counter() - t0) * 1000.0
    rc = (md.get("metadata") or {}).get("return")
    if rc != 0:
        raise ApiError("exec true with record-output returned %r" % rc)
    return ms


def cli(argv, env=None):
    def fn():
        return run(argv, env=env)[2]
    return fn


def measure_exec(methods, args, results):
    """methods: [(key, label, fn)], fn() -> ms. args.warmup unmeasured rounds, then args.n
    rounds; a round runs every method once, the order rotating by one every round."""
    for key, label, _ in methods:
        results["exec"][key] = {"label": label, "samples_ms": []}
    m = len(methods)
    for i in range(args.warmup + args.n):
        order = methods[i % m:] + methods[:i % m]
        got, steps = {}, {}
        for key, _, fn in order:
            got[key] = fn()
            if isinstance(got[key], tuple):
                got[key], steps[key] = got[key]
        if i < args.warmup:
            continue
        for key in got:
            results["exec"][key]["samples_ms"].append(got[key])
            for step, ms in steps.get(key, {}).items():
                results["exec"][key].setdefault("steps_ms", {}).setdefault(step, []).append(ms)
        if (i - args.warmup + 1) % 10 == 0 or i - args.warmup + 1 == args.n:
            log("  exec round %2d: %s" % (i - args.warmup + 1, "  ".join(
                "%s %.1f" % (k, got[k]) for k, _, _ in methods)))
    for key, _, _ in methods:
        r = results["exec"][key]
        r["p50"], r["p95"] = median(r["samples_ms"]), pct(r["samples_ms"], 95)


# ---------------------------------------------------------------- events


def subscriber_child(sock_path, n, path):
    """The subscribers (a child process, so that the parent's threads never hold its GIL): n
    WebSockets on path, then one selector loop. Every recv() is stamped with time.time_ns()
    (CLOCK_REALTIME) right after it returns; the frames it completes get that stamp. Nothing is
    parsed as JSON here. Prints `ready` once all are connected; on `stop` (or EOF) on stdin,
    prints {"subs": [[[t_ns, text], ...], ...], "closed": [...]} and exits."""
    cg = os.environ.get("KIVA_BENCH_CGROUP")
    if cg:
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    subs = [WebSocket.connect(sock_path, path) for _ in range(n)]
    sel = selectors.DefaultSelector()
    got = [[] for _ in range(n)]
    closed = [None] * n
    for i, ws in enumerate(subs):
        ws.sock.setblocking(False)
        sel.register(ws.sock, selectors.EVENT_READ, i)
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, -1)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    stamp = time.time_ns
    pending = [[] for _ in range(n)]  # fragments of a message

    def frames(i, t):
        ws, pos = subs[i], 0
        while True:
            f, end = take_frame(ws.buf, pos)
            if f is None:
                break
            pos = end
            fin, op, payload = f
            if op in (OP_TEXT, OP_BINARY, OP_CONT):
                pending[i].append(payload)
                if fin:
                    got[i].append((t, b"".join(pending[i])))
                    pending[i] = []
            elif op == OP_PING:
                try:
                    ws.sock.sendall(frame(OP_PONG, payload))
                except OSError:
                    pass
            elif op == OP_CLOSE:
                closed[i] = t
        del ws.buf[:pos]

    for i in range(n):  # anything that came with the handshake's answer
        if subs[i].buf:
            frames(i, stamp())
    done = False
    while not done:
        for key, _ in sel.select():
            i = key.data
            if i < 0:
                line = os.read(key.fd, 4096)
                if not line or b"stop" in line:
                    done = True
                continue
            ws = subs[i]
            try:
                d = ws.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                d = b""
            t = stamp()
            if not d:
                sel.unregister(ws.sock)
                closed[i] = closed[i] or t
                continue
            ws.buf += d
            frames(i, t)
    out = {"subs": [[[t, p.decode(errors="replace")] for t, p in g] for g in got], "closed": closed}
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    for ws in subs:
        ws.close()
    return 0


RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")


def rfc3339_ns(s):
    """RFC 3339 (any number of fraction digits, Z or an offset) → ns since the epoch."""
    m = RFC3339.match(s)
    if not m:
        raise ValueError("not RFC 3339: %r" % s)
    secs = calendar.timegm(tuple(int(m.group(i)) for i in range(1, 7)) + (0, 0, 0))
    ns = int(((m.group(7) or "") + "000000000")[:9])
    off = m.group(8)
    if off not in ("Z", "z"):
        sign = -1 if off[0] == "-" else 1
        secs -= sign * (int(off[1:3]) * 3600 + int(off[4:6]) * 60)
    return secs * 1000000000 + ns


def create_start(api, name, alias):
    """POST /1.0/instances (wait) + PUT .../state start (wait), as `lxc launch` does. Returns ms."""
    t0 = time.perf_counter()
    api.op("POST", "/1.0/instances", {"name": name, "type": "container",
                                      "source": {"type": "image", "alias": alias}})
    api.op("PUT", "/1.0/instances/%s/state" % name, {"action": "start", "timeout": -1})
    return (time.perf_counter() - t0) * 1000.0


def measure_events(system, api, alias, args, r):
    """S subscribers (a child process) on /1.0/events?type=lifecycle, then C containers created and
    started concurrently (one thread each, released together); the delays of every lifecycle event
    every subscriber received."""
    names = ["ev%02d" % (i + 1) for i in range(args.containers)]
    env = dict(os.environ)
    cgroup = None
    if args.subscriber_weight > 0:
        cgroup, why = weighted_cgroup("kiva-bench-subscribers-%d" % PID, args.subscriber_weight)
        r["subscriber_cgroup"] = cgroup or "not made: %s" % why
        if cgroup:
            env["KIVA_BENCH_CGROUP"] = cgroup
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--subscriber-child", api.sock,
                              str(args.subscribers), EVENTS_PATH],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        line = child.stdout.readline()
        if line.strip() != b"ready":
            child.wait(timeout=10)
            raise RuntimeError("the subscriber process did not connect (exit %s)" % child.returncode)
        time.sleep(0.2)
        errors, times = [], {}
        barrier = threading.Barrier(len(names))

        def worker(name):
            try:
                barrier.wait()
                times[name] = create_start(api, name, alias)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("%s: %s: %s" % (name, type(e).__name__, e))

        probe, probing = [], [args.probe > 0]

        def prober():
            # --probe: GET /1.0 every PROBE ms while the containers start (how long kivad's loop
            # takes to answer anything, next to how long the events take)
            while probing[0]:
                t = time.perf_counter()
                try:
                    api.request("GET", "/1.0")
                except OSError as e:
                    errors.append("GET /1.0 (--probe): %s" % e)
                    return
                probe.append((time.perf_counter() - t) * 1000.0)
                time.sleep(args.probe / 1000.0)

        system.created.update(names)
        threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in names]
        if args.probe > 0:
            threads.append(threading.Thread(target=prober, daemon=True))
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads[:len(names)]:
            t.join()
        r["wall_ms"] = (time.perf_counter() - t0) * 1000.0
        probing[0] = False
        for t in threads[len(names):]:
            t.join()
        if probe:
            r["probe_ms"] = probe
            r["probe_p50"], r["probe_max"] = median(probe), max(probe)
        r["create_start_ms"] = [times[n] for n in names if n in times]
        time.sleep(args.grace)
        out, _ = child.communicate(b"stop\n", timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        remove_cgroup(cgroup)
    if errors:
        raise RuntimeError("create+start failed: " + "; ".join(errors[:3]))
    data = json.loads(out.decode())
    expected = {(a, n) for n in names for a in EXPECTED_ACTIONS}
    delays, firsts, spreads, per_event, by_action = [], [], [], {}, {}
    complete, missing_total, other, bad = 0, 0, 0, []
    for i, sub in enumerate(data["subs"]):
        seen = set()
        for t_ns, text in sub:
            try:
                ev = json.loads(text)
                ts = rfc3339_ns(ev["timestamp"])
            except (ValueError, KeyError) as e:
                bad.append(str(e)[:120])
                continue
            if ev.get("type") != "lifecycle":
                other += 1
                continue
            md = ev.get("metadata") or {}
            src = (md.get("source") or "").split("?")[0]
            key = (md.get("action"), src.rsplit("/", 1)[-1] if "/instances/" in src else src)
            delays.append((t_ns - ts) / 1e6)
            by_action.setdefault(key[0], []).append(delays[-1])
            seen.add(key)
            per_event.setdefault((key, ts), []).append(t_ns)
        if expected <= seen:
            complete += 1
        missing_total += len(expected - seen)
    events = []
    for (key, ts), ts_recv in sorted(per_event.items(), key=lambda kv: kv[0][1]):
        firsts.append((min(ts_recv) - ts) / 1e6)
        spreads.append((max(ts_recv) - min(ts_recv)) / 1e6)
        events.append({"action": key[0], "instance": key[1], "timestamp_ns": ts, "subscribers": len(ts_recv),
                       "first_ms": firsts[-1], "last_ms": (max(ts_recv) - ts) / 1e6})
    r.update({
        "subscribers": len(data["subs"]), "containers": len(names), "expected_per_subscriber": len(expected),
        "received": len(delays), "complete_subscribers": complete, "missing": missing_total,
        "closed_by_server": sum(1 for c in data["closed"] if c), "not_lifecycle": other, "unparsed": bad[:5],
        "distinct_events": len(per_event), "delays_ms": delays, "events": events,
        "by_action": {a: {"n": len(v), "p50": median(v), "p99": pct(v, 99), "max": max(v)}
                      for a, v in sorted(by_action.items())},
        "p50": median(delays), "p99": pct(delays, 99), "max": max(delays) if delays else None,
        "min": min(delays) if delays else None,
        "first_p50": median(firsts), "first_p99": pct(firsts, 99),
        "spread_p50": median(spreads), "spread_p99": pct(spreads, 99),
        "create_start_p50": median(r["create_start_ms"]),
    })
    log("  %s events: %d received by %d subscribers (%d complete), delay p50 %s p99 %s max %s; "
        "%d x create+start in %.0f ms" % (system.key, len(delays), len(data["subs"]), complete,
                                           fmt_ms(r["p50"]), fmt_ms(r["p99"]), fmt_ms(r["max"]),
                                           len(names), r["wall_ms"]))


# ---------------------------------------------------------------- systems


class RawLxc:
    """The anchor of launch.py: a raw liblxc busybox container in a private lxcpath."""
    key, label = "lxc", "raw liblxc"

    def __init__(self, args):
        self.lxcpath = LXC_PATH
        self.created = []
        self.problems = []
        self.note = ""

    def bench(self, args, results):
        for tool in ("lxc-create", "lxc-start", "lxc-attach", "lxc-stop", "lxc-destroy"):
            if not shutil.which(tool):
                raise Skip("%s not installed (Debian package lxc)" % tool)
        os.makedirs(self.lxcpath)
        self.created.append("ea")
        _, _, ms = run(["lxc-create", "-P", self.lxcpath, "-n", "ea", "-t", "busybox"])
        cfg = os.path.join(self.lxcpath, "ea", "config")
        with open(cfg) as f:
            lines = f.readlines()
        # as launch.py: no bridge (own netns, lo only) and no AppArmor (feasibility §1)
        keep = [l for l in lines if not l.lstrip().startswith(("lxc.net.", "lxc.apparmor."))]
        keep.append("lxc.net.0.type = empty\n")
        with open(cfg, "w") as f:
            f.writelines(keep)
        run(["lxc-start", "-P", self.lxcpath, "-n", "ea", "-d"])
        run_until_ok(["lxc-attach", "-P", self.lxcpath, "-n", "ea", "--", "true"])
        self.note = "busybox template container (privileged), created in %.0f ms" % ms
        measure_exec([("lxc_attach", "raw liblxc: lxc-attach -- true (privileged) [anchor]",
                       cli(["lxc-attach", "-P", self.lxcpath, "-n", "ea", "--", "true"]))], args, results)

    def teardown(self):
        for name in self.created:
            run(["lxc-stop", "-P", self.lxcpath, "-n", name, "-k"], check=False, timeout=30)
            run(["lxc-destroy", "-P", self.lxcpath, "-n", name], check=False, timeout=60)
        self.created = []
        kill_leftover_monitors(self.lxcpath, self.problems)
        clean_dir(self.lxcpath, self.problems)


class Kiva(PrivateKivad):
    key, label = "kiva", "KIVA"

    def __init__(self, args):
        # unix.socket in the state dir: the stock lxc client finds it with LXD_DIR=STATE
        super().__init__(args, KIVA_STATE, KIVA_STATE + "/unix.socket")
        self.api = Api(self.sock)
        self.created = set()
        self.lxc_env = dict(os.environ, LXD_DIR=self.state, LXD_CONF=self.state + "/lxc-conf")

    def bench(self, args, results):
        if not self.kivad or not self.kiva_bin:
            raise Skip("kivad/kiva not installed: run `make install`")
        self.start_kivad("--pool-size", "4GiB", "--daemon", "--default-network", "none")
        driver = ((self.api.request("GET", "/1.0")[1].get("metadata") or {}).get("environment") or {}).get(
            "storage", "?")
        self.note += "; pool %s (loop file), no NIC (--default-network none)" % driver
        if "exec" in args.parts:
            self.created.add("ex")
            self.kiva("launch", "busybox", "ex")
            run_until_ok([self.kiva_bin, "exec", "ex", "--", "true"], env=self.env)
            methods = [
                ("kiva_api_ws", "KIVA API, 4 WebSockets as an LXD client [target]",
                 lambda: api_exec_ws(self.api, "ex")),
                ("kiva_api_record", "KIVA API, record-output (no WebSocket)",
                 lambda: api_exec_record(self.api, "ex")),
                ("kiva_cli", "kiva exec ex -- true (CLI)", cli([self.kiva_bin, "exec", "ex", "--", "true"], self.env)),
            ]
            if shutil.which("lxc"):
                os.makedirs(self.state + "/lxc-conf", exist_ok=True)
                methods.append(("kiva_lxc", "lxc exec ex -- true, stock LXD client → kivad",
                                cli(["lxc", "exec", "ex", "--", "true"], self.lxc_env)))
            lxcpath = self.state + "/containers"
            if shutil.which("lxc-attach") and os.path.exists(lxcpath + "/ex/config"):
                methods.append(("kiva_attach", "lxc-attach into KIVA's container (unprivileged)",
                                cli(["lxc-attach", "-P", lxcpath, "-n", "ex", "--", "/bin/true"])))
            measure_exec(methods, args, results)
        if "events" in args.parts:
            measure_events(self, self.api, "busybox", args, results["events"].setdefault("kiva", {}))

    def teardown(self):
        self.stop_kivad(self.created)
        self.created.clear()
        clean_dir(self.state, self.problems)


class Lxd(PrivateLxd):
    key, label = "lxd", "LXD"

    def __init__(self, args):
        super().__init__(LXD_DIR)
        self.api = Api(self.dir + "/unix.socket")
        self.created = set()
        self.problems = []
        self.note = ""

    def _setup(self):
        ready_ms = self.start_lxd()
        # as launch.py's preseed (no network), with a dir pool: exec does not touch storage
        ok, out = self.lxd_init("- name: default\n  driver: dir\n", "default")
        if not ok:
            raise Skip("lxd init --preseed failed: " + out)
        self.import_busybox()
        rc, out, _ = run(["lxd", "--version"], check=False)
        self.label = "LXD %s" % out.strip() if rc == 0 else "LXD"
        self.note = "lxd ready in %.0f ms; storage dir; no NIC in the default profile" % ready_ms

    def bench(self, args, results):
        if not shutil.which("lxd") or not shutil.which("lxc"):
            raise Skip("lxd/lxc not installed: bash scripts/deps.sh --bench")
        self.setup()
        if "exec" in args.parts:
            self.created.add("ex")
            self.lxc("launch", "bb", "ex", "-q")
            run_until_ok(["lxc", "exec", "ex", "--", "true"], env=self.env)
            measure_exec([
                ("lxd_cli", "LXD: lxc exec ex -- true [anchor]", cli(["lxc", "exec", "ex", "--", "true"], self.env)),
                ("lxd_api_ws", "LXD API, 4 WebSockets (the same Python client)",
                 lambda: api_exec_ws(self.api, "ex")),
                ("lxd_api_record", "LXD API, record-output (the same Python client)",
                 lambda: api_exec_record(self.api, "ex")),
            ], args, results)
        if "events" in args.parts:
            measure_events(self, self.api, "bb", args, results["events"].setdefault("lxd", {}))


def bench_system(sysobj, args, results, failures):
    log("== %s" % sysobj.label)
    res = results["systems"][sysobj.key] = {}
    try:
        sysobj.bench(args, results)
        res["label"] = sysobj.label
        res["note"] = sysobj.note
    except Skip as e:
        res["skipped"] = str(e)
        log("   skipped: %s" % e)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - report and go on with the next system
        msg = "%s: %s" % (type(e).__name__, e)
        res["failed"] = msg
        if isinstance(sysobj, Kiva):
            path = sysobj.save_log()
            if path:
                res["kivad_log"] = path
                msg += "\n   kivad log (kept at %s), last lines:\n%s" % (path, tail(path, 20))
        failures.append((sysobj.label, msg))
        log("   FAILED: %s" % msg)
    finally:
        teardown_all(sysobj)
        res["cleanup_problems"] = sysobj.problems


# ---------------------------------------------------------------- report


EXEC_ROWS = ["kiva_api_ws", "kiva_api_record", "kiva_cli", "kiva_lxc", "kiva_attach", "lxc_attach",
             "lxd_cli", "lxd_api_ws", "lxd_api_record"]


def report(results, args):
    ex, evs, systems = results["exec"], results["events"], results["systems"]
    out = [title_line("exec + events", "n=%d (+%d warm-up), " % (args.n, args.warmup)), ""]

    def status_lines():
        lines = []
        for key, lbl in (("lxc", "raw liblxc"), ("kiva", "KIVA"), ("lxd", "LXD")):
            res = systems.get(key)
            if res is None:
                continue
            if "skipped" in res:
                lines.append("%s: skipped (%s)" % (lbl, res["skipped"]))
            elif "failed" in res:
                lines.append("%s: FAILED (%s)" % (lbl, res["failed"].splitlines()[0][:300]))
            elif res.get("note"):
                lines.append("%s: %s" % (res.get("label", lbl), res["note"]))
        return lines

    api = ex.get("kiva_api_ws", {}).get("p50")
    anchor = ex.get("lxc_attach", {}).get("p50")
    lxd = ex.get("lxd_cli", {}).get("p50")
    if "exec" in args.parts:
        table = [["exec true, warm container", "p50", "p95", "max", "÷ raw lxc-attach", "LXD lxc exec ÷"]]
        for key in EXEC_ROWS:
            r = ex.get(key)
            if not r or not r["samples_ms"]:
                continue
            p50 = r["p50"]
            table.append([r["label"], fmt_ms(p50), fmt_ms(r["p95"]), fmt_ms(max(r["samples_ms"])),
                          "%.2f×" % (p50 / anchor) if anchor else "—", "%.1f×" % (lxd / p50) if lxd else "—"])
        out += render_table(table)
        out.append("")
        for key in EXEC_ROWS:
            r = ex.get(key)
            if r and r.get("steps_ms"):
                out.append("%s, step p50s: %s" % (r["label"].split(" [")[0], " + ".join(
                    "%s %s" % (step, fmt_ms(median(v))) for step, v in r["steps_ms"].items())))
        out.append("API rows: request sent → operation done (GET /1.0/operations/ID/wait) and, over WebSockets, "
                   "stdout/stderr read to their end; a new connection per request. CLI rows: wall time of the "
                   "command, client start-up included. The methods of a system alternate, the order rotating "
                   "every round.")
    out += status_lines()
    out.append("")

    if "events" in args.parts:
        cols = [(k, lbl) for k, lbl in (("kiva", "KIVA"), ("lxd", "LXD")) if k in evs]
        if cols:
            table = [["lifecycle events: %d subscribers, %d containers created + started at once"
                      % (args.subscribers, args.containers)] + [lbl for _, lbl in cols]]

            def row(title, fn):
                table.append([title] + [fn(evs[k]) if "p50" in evs[k] else "—" for k, _ in cols])

            row("received (events × subscribers) / expected", lambda e: "%d / %d" % (
                e["received"], e["subscribers"] * e["expected_per_subscriber"]))
            row("subscribers with every created + started event", lambda e: "%d / %d" % (
                e["complete_subscribers"], e["subscribers"]))
            row("delivery delay p50", lambda e: fmt_ms(e["p50"]))
            row("delivery delay p99 [target]", lambda e: fmt_ms(e["p99"]))
            row("delivery delay max", lambda e: fmt_ms(e["max"]))
            for a in EXPECTED_ACTIONS:
                row("  %s: p50 / p99" % a, lambda e, a=a: "%s / %s" % (
                    fmt_ms(e["by_action"][a]["p50"]), fmt_ms(e["by_action"][a]["p99"]))
                    if a in e["by_action"] else "—")
            row("first subscriber's delay p50 / p99", lambda e: "%s / %s" % (fmt_ms(e["first_p50"]),
                                                                               fmt_ms(e["first_p99"])))
            row("first → last subscriber p50 / p99", lambda e: "%s / %s" % (fmt_ms(e["spread_p50"]),
                                                                             fmt_ms(e["spread_p99"])))
            row("create + start p50 / all %d done" % args.containers, lambda e: "%s / %s" % (
                fmt_ms(e["create_start_p50"]), fmt_ms(e["wall_ms"])))
            if any("probe_p50" in evs[k] for k, _ in cols):
                row("GET /1.0 meanwhile (--probe %g ms): p50 / max" % args.probe, lambda e: "%s / %s" % (
                    fmt_ms(e.get("probe_p50")), fmt_ms(e.get("probe_max"))))
            out += render_table(table)
            out.append("")
            out.append("Delay: recv() time of the frame (time.time_ns(), before any JSON parsing) − the event's "
                       "\"timestamp\"; both CLOCK_REALTIME on this host. The %d subscribers share one selector loop "
                       "in a child process." % args.subscribers)
            if args.subscriber_weight > 0:
                out.append("The subscriber process runs in a cgroup of its own with CPU weight %d, as kivad does "
                           "(kivad --cpu-weight, default 1000): liblxc gives each starting container two top-level "
                           "cgroups, each weighing as much as the one a process runs in, so a subscriber left in "
                           "the bench's cgroup measures its own wait for a CPU (--subscriber-weight 0 does that)."
                           % args.subscriber_weight)
            for k, lbl in cols:
                e = evs[k]
                extra = []
                if e.get("closed_by_server"):
                    extra.append("%d subscribers closed by the server" % e["closed_by_server"])
                if e.get("missing"):
                    extra.append("%d (subscriber, event) pairs missing" % e["missing"])
                if e.get("unparsed"):
                    extra.append("unparsed messages: %s" % "; ".join(e["unparsed"]))
                if e.get("min") is not None and e["min"] < 0:
                    extra.append("negative delays (min %.3f ms): clock or timestamp issue" % e["min"])
                if extra:
                    out.append("%s: %s" % (lbl, ", ".join(extra)))
            out.append("")

    def fmt_exact(v):  # the verdict lines: enough digits to see why 10.0 ms can FAIL
        return "—" if v is None else ("%.2f ms" % v if v < 100 else "%.0f ms" % v)

    checks = []
    if "exec" in args.parts:
        checks.append(("warm exec true p50 ≤ %.0f ms (API, WebSockets)" % TARGETS["exec_api_p50_ms"],
                       fmt_exact(api), verdict(api, TARGETS["exec_api_p50_ms"], fail="FAIL")))
    kev = evs.get("kiva", {})
    if "events" in args.parts:
        checks.append(("event delivery delay p99 ≤ %.0f ms (%d × %d)" % (
            TARGETS["events_p99_ms"], args.subscribers, args.containers), fmt_exact(kev.get("p99")),
            verdict(kev.get("p99"), TARGETS["events_p99_ms"], fail="FAIL")))
        if "p50" in kev:
            ok = kev["complete_subscribers"] == kev["subscribers"] == args.subscribers
            checks.append(("every subscriber got every event", "%d / %d" % (
                kev["complete_subscribers"], args.subscribers), "PASS" if ok else "FAIL"))
        else:
            checks.append(("every subscriber got every event", "—", "n/a"))
    verdicts = {}
    if checks:
        out.append("Targets (issue), KIVA:")
        w = max(len(c[0]) for c in checks)
        for title, val, v in checks:
            out.append("  %s  %9s  %s" % (title.ljust(w), val, v))
            verdicts[title] = v
    if api and (lxd or anchor):
        out.append("  KIVA API exec: %s LXD's lxc exec, %s raw lxc-attach" % (
            "%.1f× faster than" % (lxd / api) if lxd else "n/a vs",
            "%.2f× the time of" % (api / anchor) if anchor else "n/a vs"))
    if "exec" in args.parts:
        out.append("  (the issue measured LXD's lxc exec at %.0f ms and lxc-attach at %.0f ms on this host)"
                   % (ISSUE_MS["lxd_exec"], ISSUE_MS["lxc_attach"]))
    return "\n".join(out), verdicts


# ---------------------------------------------------------------- main


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--subscriber-child":
        return subscriber_child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    ap, args = parse_args(__doc__, [
        ("--n", dict(type=int, default=50, help="measured exec rounds (default 50)")),
        ("--warmup", dict(type=int, default=3, help="unmeasured exec rounds first (default 3)")),
        ("--subscribers", dict(type=int, default=50, help="event subscribers (default 50)")),
        ("--containers", dict(type=int, default=20, help="containers started at once (default 20)")),
        ("--grace", dict(type=float, default=1.0,
                         help="seconds the subscribers keep reading after the last start (default 1)")),
        ("--probe", dict(type=float, default=0, metavar="MS",
                         help="also time GET /1.0 every MS ms while the containers start (default 0: off)")),
        ("--subscriber-weight", dict(type=int, default=1000, metavar="W",
                                      help="CPU weight of the subscribers' own cgroup (default 1000, as kivad; "
                                           "0: the bench's cgroup)")),
        ("--parts", dict(default="exec,events", help="comma-separated subset of exec,events (default: both)")),
        ("--systems", dict(default="lxc,kiva,lxd", help="comma-separated subset of lxc,kiva,lxd (default: all)")),
    ])
    if args.n < 1 or args.warmup < 0 or args.subscribers < 1 or args.containers < 1:
        ap.error("--n, --subscribers and --containers must be ≥ 1, --warmup ≥ 0")
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    for p in args.parts:
        if p not in ("exec", "events"):
            ap.error("unknown part %r (exec, events)" % p)
    for s in wanted:
        if s not in ("lxc", "kiva", "lxd"):
            ap.error("unknown system %r (lxc, kiva, lxd)" % s)
    if os.geteuid() != 0:
        sys.exit("bench/exec_events.py must run as root (containers, loop mounts)")
    if not os.path.exists(BUSYBOX):
        sys.exit("%s missing: apt-get install busybox-static" % BUSYBOX)

    exit_on_term()
    results, failures = {"exec": {}, "events": {}, "systems": {}}, []
    t0 = time.time()
    if "lxc" in wanted and "exec" in args.parts:
        bench_system(RawLxc(args), args, results, failures)
    if "kiva" in wanted:
        bench_system(Kiva(args), args, results, failures)
    if "lxd" in wanted:
        bench_system(Lxd(args), args, results, failures)
    text, verdicts = report(results, args)
    finish(text, t0, args, failures, targets=TARGETS, issue_ms=ISSUE_MS, verdicts=verdicts, results=results)
    kiva = results["systems"].get("kiva", {})
    return 1 if "kiva" in wanted and ("failed" in kiva or "skipped" in kiva) else 0


if __name__ == "__main__":
    main_interruptible(main)
