"""What bench/launch.py, bench/net.py and bench/snapshot.py share: running commands and timing
them, percentiles, /proc helpers, a private kivad, a private LXD, cleanup, the report helpers.

The scripts import it from their own directory (`sys.path` gets the script's directory first), so
they run from any working directory. Python 3 standard library only.
"""

import argparse
import contextlib
import datetime
import http.client
import io
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import time

BUSYBOX = "/bin/busybox"

CMD_TIMEOUT = 120  # seconds, any single command
EXEC_RETRY_TIMEOUT = 15.0  # seconds to wait for `exec true` to work after launch


class Skip(Exception):
    """The system (or a part of it) is not available on this machine: it says so, the run goes on."""


class CmdError(Exception):
    def __init__(self, argv, rc, out):
        self.argv, self.rc, self.out = argv, rc, out
        super().__init__("`%s` exited %s: %s" % (" ".join(argv), rc, out.strip()[-1500:]))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- commands and timing


def run(argv, env=None, check=True, timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL):
    """Runs argv; returns (rc, combined output, elapsed ms)."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(argv, env=env, stdin=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        rc, out = p.returncode, p.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout(%ss)" % timeout, (e.output or b"").decode(errors="replace")
    except FileNotFoundError as e:
        rc, out = "not-found", str(e)
    ms = (time.perf_counter() - t0) * 1000.0
    if check and rc != 0:
        raise CmdError(argv, rc, out)
    return rc, out, ms


def run_until_ok(argv, env=None, timeout=EXEC_RETRY_TIMEOUT):
    """Retries argv until it exits 0 (as waiting for RUNNING would); returns elapsed ms."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    while True:
        rc, out, _ = run(argv, env=env, check=False, timeout=timeout)
        if rc == 0:
            return (time.perf_counter() - t0) * 1000.0
        if time.perf_counter() > deadline:
            raise CmdError(argv, rc, out + " (still failing after %.0f s of retries)" % timeout)
        time.sleep(0.005)


def pct(samples, p):
    """Percentile with linear interpolation between closest ranks (numpy's default)."""
    s = sorted(samples)
    if not s:
        return None
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(samples):
    return statistics.median(samples) if samples else None


# ---------------------------------------------------------------- /proc, mounts, loop devices


def cmdline(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def lxc_monitors(lxcpath_prefix):
    """[(pid, lxcpath, name)] of the `[lxc monitor] LXCPATH NAME` processes whose lxcpath is
    lxcpath_prefix or below it."""
    res = []
    pre = lxcpath_prefix.rstrip("/")
    for pid in all_pids():
        c = cmdline(pid)
        if not c.startswith("[lxc monitor]"):
            continue
        parts = c[len("[lxc monitor]"):].split()
        if len(parts) < 2:
            continue
        path = parts[0].rstrip("/")
        if path == pre or path.startswith(pre + "/"):
            res.append((pid, path, parts[1]))
    return res


def proc_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def wait_gone(pid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not proc_alive(pid):
            return True
        time.sleep(0.05)
    return not proc_alive(pid)


def mounts_under(path):
    """Mount points at or under path, deepest first (from /proc/self/mountinfo)."""
    pre = path.rstrip("/")
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == pre or mp.startswith(pre + "/"):
                res.append(mp)
    return sorted(set(res), key=lambda m: (-m.count("/"), m))


def loops_under(path):
    """Loop devices whose backing file is under path."""
    rc, out, _ = run(["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], check=False)
    res = []
    if rc != 0:
        return res
    pre = path.rstrip("/") + "/"
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].strip().startswith(pre):
            res.append(parts[0])
    return res


def clean_dir(path, problems):
    """Unmounts everything under path, detaches its loop devices, removes it. Never removes a
    directory that still has a mount under it."""
    if not os.path.exists(path):
        return
    for mp in mounts_under(path):
        rc, out, _ = run(["umount", mp], check=False)
        if rc != 0:
            rc, out, _ = run(["umount", "-l", mp], check=False)
            if rc != 0:
                problems.append("umount %s: %s" % (mp, out.strip()))
    for dev in loops_under(path):
        run(["losetup", "-d", dev], check=False)
    left = mounts_under(path)
    if left:
        problems.append("not removing %s: still mounted: %s" % (path, ", ".join(left)))
        return
    try:
        shutil.rmtree(path)
    except OSError as e:
        problems.append("rm -rf %s: %s" % (path, e))


def kill_leftover_monitors(lxcpath_prefix, problems):
    """Force-stops containers whose monitor is still running under lxcpath_prefix."""
    for pid, path, name in lxc_monitors(lxcpath_prefix):
        problems.append("container %s/%s was still running; lxc-stop -k" % (path, name))
        run(["lxc-stop", "-P", path, "-n", name, "-k"], check=False, timeout=30)
        if not wait_gone(pid, 5):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


def read_sysctl(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


# ---------------------------------------------------------------- a private kivad


class PrivateKivad:
    """A private kivad on its own state dir (mode 0711), and the kiva client pointed at it.
    kivad.log is kept as STATE-kivad.log when a part fails (save_log)."""

    def __init__(self, args, state, sock):
        self.kivad = args.kivad or shutil.which("kivad")
        self.kiva_bin = args.kiva or shutil.which("kiva")
        self.state = state
        self.sock = sock
        self.env = dict(os.environ, KIVA_SOCKET=self.sock)
        self.pid = None
        self.problems = []  # cleanup warnings
        self.note = ""  # shown under the table
        self.log_copy = None

    def kiva(self, *a, check=True, timeout=CMD_TIMEOUT):
        return run([self.kiva_bin] + list(a), env=self.env, check=check, timeout=timeout)

    def start_kivad(self, *extra):
        """`kivad --state-dir STATE --socket SOCK --raft-address 127.0.0.1:<free port> EXTRA`,
        then `kiva image build busybox`; sets self.pid and self.note."""
        os.makedirs(self.state)
        os.chmod(self.state, 0o711)
        argv = [self.kivad, "--state-dir", self.state, "--socket", self.sock,
                "--raft-address", "127.0.0.1:%d" % free_port()] + list(extra)
        rc, out, ms = run(argv, check=False, timeout=90)
        self.pid = self.find_pid()
        if rc != 0:
            raise CmdError(argv, rc, out)
        if not self.pid:
            raise RuntimeError("kivad --daemon returned 0 but no kivad process holds %s/kivad.lock" % self.state)
        self.note = "kivad ready in %.0f ms" % ms
        _, _, ms = self.kiva("image", "build", "busybox")
        self.note += ", image build busybox %.0f ms" % ms

    def find_pid(self):
        # the holder of STATE/kivad.lock (flock), from /proc/locks ...
        try:
            ino = str(os.stat(self.state + "/kivad.lock").st_ino)
            with open("/proc/locks") as f:
                for line in f:
                    parts = line.split()
                    # 1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF
                    if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].split(":")[-1] == ino:
                        pid = int(parts[4])
                        if proc_alive(pid) and "kivad" in cmdline(pid):
                            return pid
        except OSError:
            pass
        # ... or the kivad process with our unique state dir on its command line
        for pid in all_pids():
            c = cmdline(pid)
            if "kivad" in c.split(" ", 1)[0] and self.state in c and proc_alive(pid):
                return pid
        return None

    def save_log(self):
        """Keeps STATE/kivad.log (the state dir is removed at teardown); returns its new path."""
        src = self.state + "/kivad.log"
        if self.log_copy is None and os.path.exists(src):
            self.log_copy = self.state + "-kivad.log"
            shutil.copyfile(src, self.log_copy)
        return self.log_copy

    def delete_all(self, names):
        """`kiva delete --force`, 25 names at a time (one by one when a batch fails)."""
        names = sorted(names)
        for i in range(0, len(names), 25):
            rc, _, _ = self.kiva("delete", "--force", *names[i:i + 25], check=False, timeout=120)
            if rc != 0:
                for n in names[i:i + 25]:
                    self.kiva("delete", "--force", n, check=False, timeout=60)

    def stop_kivad(self, names=()):
        """Force-deletes names and every instance kivad lists, SIGTERM kivad (SIGKILL after
        30 s), force-stops leftover monitors, `kivad --purge` (the pool, bridge, nftables
        tables and files go too). The caller removes or checks the state dir."""
        if not os.path.isdir(self.state):
            return
        if not self.pid:
            self.pid = self.find_pid()
        if self.pid and proc_alive(self.pid):
            names = set(names)
            rc, out, _ = self.kiva("list", "-f", "csv", check=False, timeout=60)
            if rc == 0:
                names.update(l.split(",")[0] for l in out.splitlines() if l.strip())
            self.delete_all(names)
            os.kill(self.pid, signal.SIGTERM)
            if not wait_gone(self.pid, 30):
                self.problems.append("kivad %d ignored SIGTERM for 30 s; SIGKILL" % self.pid)
                os.kill(self.pid, signal.SIGKILL)
                wait_gone(self.pid, 5)
        kill_leftover_monitors(self.state, self.problems)
        if self.kivad and os.path.isdir(self.state):
            rc, out, _ = run([self.kivad, "--state-dir", self.state, "--purge"], check=False, timeout=180)
            if rc != 0:
                self.problems.append("kivad --state-dir %s --purge exited %s: %s"
                                     % (self.state, rc, out.strip()[-500:]))


# ---------------------------------------------------------------- a private LXD


def build_busybox_rootfs_tar(path):
    """An LXD unified image: metadata.yaml + rootfs/ holding the host's busybox-static, one symlink
    per applet (`busybox --list-full`), busybox init with a minimal inittab/rcS, /etc/passwd and
    /etc/group. Same binary as KIVA's `image build busybox` and the raw liblxc busybox template."""
    rc, out, _ = run([BUSYBOX, "--list-full"])
    applets = out.split()
    now = int(time.time())
    meta = ("architecture: %s\ncreation_date: %d\nproperties:\n"
            "  description: busybox (kiva bench)\n  os: busybox\n  release: bench\n"
            "templates: {}\n") % (platform.machine(), now)
    with tarfile.open(path, "w:gz", compresslevel=1) as t:
        def add(name, data=None, mode=0o644, typ=tarfile.REGTYPE, link=""):
            ti = tarfile.TarInfo(name)
            ti.mode, ti.type, ti.linkname, ti.mtime = mode, typ, link, now
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)

        add("metadata.yaml", meta.encode())
        add("rootfs", mode=0o755, typ=tarfile.DIRTYPE)
        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "etc/init.d", "proc", "sys",
                  "dev", "root", "run", "var", "var/log", "mnt"):
            add("rootfs/" + d, mode=0o755, typ=tarfile.DIRTYPE)
        add("rootfs/tmp", mode=0o1777, typ=tarfile.DIRTYPE)
        with open(BUSYBOX, "rb") as f:
            add("rootfs/bin/busybox", f.read(), 0o755)
        seen = {"bin/busybox"}
        for a in applets + ["sbin/init"]:
            a = a.lstrip("/")
            if a in seen or "/" not in a:
                continue
            seen.add(a)
            add("rootfs/" + a, typ=tarfile.SYMTYPE, mode=0o777,
                link="../" * a.count("/") + "bin/busybox")
        add("rootfs/etc/inittab", b"::sysinit:/etc/init.d/rcS\n::shutdown:/bin/true\n")
        add("rootfs/etc/init.d/rcS", b"#!/bin/sh\n/bin/hostname -F /etc/hostname 2>/dev/null\nexit 0\n",
            0o755)
        add("rootfs/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        add("rootfs/etc/group", b"root:x:0:\n")
        add("rootfs/etc/hostname", b"busybox\n")


class PrivateLxd:
    """A private `lxd --group root` with LXD_DIR=dir (and LXD_CONF under it), no network. The
    subclass's _setup() calls start_lxd(), lxd_init() and import_busybox(); setup() turns any
    failure into Skip with the reason and the tail of lxd.log. self.created (names that may
    exist, a list or a set) is the subclass's."""

    # `lxd init --auto` fails here (no free subnet for lxdbr0): a preseed with no network and a
    # default profile with only a root disk on POOL.
    PRESEED = ("profiles:\n- name: default\n  devices:\n    root:\n      path: /\n"
               "      pool: %s\n      type: disk\n")

    def __init__(self, lxd_dir):
        self.dir = lxd_dir
        self.lxcpath = lxd_dir + "/containers"  # where its `[lxc monitor]` processes point
        self.env = dict(os.environ, LXD_DIR=self.dir, LXD_CONF=self.dir + "/client")
        self.proc = None

    def lxc(self, *a, check=True, timeout=CMD_TIMEOUT):
        return run(["lxc"] + list(a), env=self.env, check=check, timeout=timeout)

    def _setup(self):
        raise NotImplementedError

    def setup(self):
        try:
            self._setup()
        except Skip:
            raise
        except Exception as e:  # noqa: BLE001 - LXD's column says why, the run goes on
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            if os.path.exists(self.dir + "/lxd.log"):
                reason += "; lxd.log: " + " | ".join(tail(self.dir + "/lxd.log", 3).splitlines())
            raise Skip(reason[:400])

    def start_lxd(self):
        """Starts lxd and waits until it is ready; returns the ms that took."""
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o711)
        logf = open(self.dir + "/lxd.out", "wb")
        self.proc = subprocess.Popen(["lxd", "--group", "root", "--logfile", self.dir + "/lxd.log"],
                                     env=self.env, stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        rc, out, ms = run(["lxd", "waitready", "--timeout", "60"], env=self.env, check=False, timeout=90)
        if rc != 0 or self.proc.poll() is not None:
            raise Skip("lxd did not become ready: %s %s" % (out.strip(), tail(self.dir + "/lxd.out", 3).strip()))
        return ms

    def lxd_init(self, pools, root_pool):
        """`lxd init --preseed` with the storage_pools YAML list `pools` and the default profile's
        root disk on root_pool; returns (ok, output)."""
        preseed = "storage_pools:\n" + pools + self.PRESEED % root_pool
        p = subprocess.run(["lxd", "init", "--preseed"], input=preseed.encode(), env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        return p.returncode == 0, p.stdout.decode(errors="replace").strip()

    def import_busybox(self):
        """The busybox image (build_busybox_rootfs_tar), imported as `bb`."""
        img = self.dir + "/busybox-image.tar.gz"
        build_busybox_rootfs_tar(img)
        self.lxc("image", "import", img, "--alias", "bb")

    def teardown(self):
        if self.proc and self.proc.poll() is None:
            for name in sorted(self.created):
                self.lxc("delete", name, "--force", check=False, timeout=120)
            self.created.clear()
            run(["lxd", "shutdown", "--timeout", "60"], env=self.env, check=False, timeout=90)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.problems.append("lxd still running after `lxd shutdown`; SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)
        kill_leftover_monitors(self.lxcpath, self.problems)
        clean_dir(self.dir, self.problems)


# ---------------------------------------------------------------- cleanup and signals


def exit_on_term():
    """SIGTERM and SIGHUP raise SystemExit, so that the try/finally cleanups run."""
    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)


@contextlib.contextmanager
def signals_ignored():
    """A second Ctrl-C or SIGTERM must not cut the cleanup short."""
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def teardown_all(*objs):
    """obj.teardown() of each, with the signals ignored; an exception becomes one of its
    problems. Then logs every problem as `cleanup: …`."""
    with signals_ignored():
        for obj in objs:
            try:
                obj.teardown()
            except Exception as e:  # noqa: BLE001
                obj.problems.append("teardown: %s: %s" % (type(e).__name__, e))
    for obj in objs:
        for p in obj.problems:
            log("   cleanup: %s" % p)


def main_interruptible(main):
    """sys.exit(main()); Ctrl-C (after main's cleanup has run) exits 130 without a traceback."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


# ---------------------------------------------------------------- report


def parse_args(doc, args):
    """The command line: args is [(flag, add_argument keywords)], followed by --json, --kivad,
    --kiva; the description is the first line of doc. Returns (parser, parsed arguments)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, kw in args:
        ap.add_argument(flag, **kw)
    ap.add_argument("--json", metavar="FILE", help="also write all results and samples as JSON")
    ap.add_argument("--kivad", help="kivad binary (default: from PATH)")
    ap.add_argument("--kiva", help="kiva binary (default: from PATH)")
    return ap, ap.parse_args()


def fmt_ms(v):
    return "—" if v is None else ("%.1f ms" % v if v < 100 else "%.0f ms" % v)


def verdict(v, limit, higher_is_better=False, fail="MISS"):
    if v is None:
        return "n/a"
    return "PASS" if (v >= limit if higher_is_better else v <= limit) else fail


def title_line(what, detail):
    """`KIVA <what> benchmark — <date>, <detail>busybox, <kernel>, <n> CPUs`"""
    return "KIVA %s benchmark — %s, %sbusybox, %s, %d CPUs" % (
        what, datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), detail, platform.release(), os.cpu_count())


def render_table(table):
    """Lines of a table: the first column left-aligned, the others right-aligned, a rule of
    dashes under the head row."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    out = []
    for i, row in enumerate(table):
        line = row[0].ljust(widths[0]) + "  " + "  ".join(row[j].rjust(widths[j]) for j in range(1, len(row)))
        out.append(line.rstrip())
        if i == 0:
            out.append("-" * len(line))
    return out


def finish(text, t0, args, failures=(), **fields):
    """Prints the report text and the total time since t0, writes --json (the date, the host,
    the arguments, then fields), then prints each (label, message) of failures to stderr."""
    print(text)
    print("\n(total %.0f s)" % (time.time() - t0))
    if args.json:
        write_json(args.json, args, **fields)
    for label, msg in failures:
        print("\n%s FAILED:\n%s" % (label, msg), file=sys.stderr)


def write_json(path, args, **fields):
    """The date, the host, the arguments, then fields, as indented JSON."""
    doc = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "host": {"kernel": platform.release(), "cpus": os.cpu_count()},
           "args": vars(args)}
    doc.update(fields)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")


def weighted_cgroup(name, weight):
    """Creates the cgroup NAME at the top of the CPU controller with CPU weight WEIGHT (cgroup
    v2's scale, 100 = a default group; v1: cpu.shares = weight * 1024 / 100), as kivad's
    --cpu-weight does for itself. Returns (path, None), or (None, why) when it cannot."""
    try:
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            path, knob, value = "/sys/fs/cgroup/" + name, "cpu.weight", str(weight)
            with open("/sys/fs/cgroup/cgroup.subtree_control") as f:
                if "cpu" not in f.read().split():
                    return None, "the cpu controller is not enabled at the cgroup v2 root"
        else:
            path, knob, value = "/sys/fs/cgroup/cpu/" + name, "cpu.shares", str(weight * 1024 // 100)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, knob), "w") as f:
            f.write(value)
        return path, None
    except OSError as e:
        return None, str(e)


def remove_cgroup(path):
    """rmdir of a cgroup made by weighted_cgroup once its processes are gone (best effort)."""
    if path:
        for _ in range(50):
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (kivad's or lxd's API)."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout, blocksize=1 << 16)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def unix_request(sock, method, path, body=None, timeout=CMD_TIMEOUT, upload=None, headers=None):
    """One request on a new connection, as a CLI invocation makes: (HTTP status, decoded JSON
    answer). body: sent as JSON; upload: (file object, length), streamed as octet-stream."""
    conn = UnixHTTPConnection(sock, timeout)
    hdrs = dict(headers or {})
    data = None
    if upload is not None:
        data = upload[0]
        hdrs["Content-Type"] = "application/octet-stream"
        hdrs["Content-Length"] = str(upload[1])
    elif body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        doc = json.loads(raw.decode(errors="replace")) if raw else {}
    except ValueError:
        doc = {"raw": raw[:300].decode(errors="replace")}
    return resp.status, doc
