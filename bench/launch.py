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

import argparse
import datetime
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

PID = os.getpid()
KIVA_STATE = "/var/tmp/kiva-bench-%d" % PID
LXC_PATH = "/var/tmp/kiva-bench-lxc-%d" % PID
LXD_DIR = "/var/tmp/kiva-bench-lxd-%d" % PID
BUSYBOX = "/bin/busybox"

CMD_TIMEOUT = 120  # seconds, any single command
EXEC_RETRY_TIMEOUT = 15.0  # seconds to wait for `exec true` to work after launch

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


class Skip(Exception):
    """The system is not available on this machine: its column says so, the run goes on."""


class CmdError(Exception):
    def __init__(self, argv, rc, out):
        self.argv, self.rc, self.out = argv, rc, out
        super().__init__("`%s` exited %s: %s" % (" ".join(argv), rc, out.strip()[-1500:]))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- helpers


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


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


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


class Kiva(System):
    key, label = "kiva", "KIVA"

    def __init__(self, args):
        super().__init__()
        self.kivad = args.kivad or shutil.which("kivad")
        self.kiva = args.kiva or shutil.which("kiva")
        self.state = KIVA_STATE
        self.sock = KIVA_STATE + "/s.sock"
        self.lxcpath = KIVA_STATE
        self.env = dict(os.environ, KIVA_SOCKET=self.sock)
        self.pid = None
        self.log_copy = None

    def setup(self):
        if not self.kivad or not self.kiva:
            raise Skip("kivad/kiva not installed: run `make install`")
        os.makedirs(self.state)
        os.chmod(self.state, 0o711)
        argv = [self.kivad, "--state-dir", self.state, "--socket", self.sock,
                "--raft-address", "127.0.0.1:%d" % free_port(), "--daemon"]
        rc, out, ms = run(argv, check=False, timeout=90)
        if rc != 0:
            raise CmdError(argv, rc, out)
        self.pid = self.find_pid()
        if not self.pid:
            raise RuntimeError("kivad --daemon returned 0 but no kivad process holds %s/kivad.lock"
                               % self.state)
        self.note = "kivad ready in %.0f ms" % ms
        _, _, ms = run([self.kiva, "image", "build", "busybox"], env=self.env)
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

    def daemon_pids(self):
        return [self.pid] if self.pid else []

    def launch(self, name):
        # --no-profiles: no NIC, like the raw liblxc (lxc.net type empty) and LXD (no NIC in its
        # default profile) containers of this benchmark; bench/net.py measures what a NIC adds.
        self.created.append(name)
        return self.steps(("kiva launch", run([self.kiva, "launch", "busybox", name, "--no-profiles"],
                                              env=self.env)[2]),
                          ("kiva exec true", run_until_ok([self.kiva, "exec", name, "--", "true"], env=self.env)))

    def stop(self, name):
        return run([self.kiva, "stop", name, "--force"], env=self.env)[2]

    def delete(self, name):
        ms = run([self.kiva, "delete", name], env=self.env)[2]
        self.forget(name)
        return ms

    def save_log(self):
        """Keeps STATE/kivad.log (the state dir is removed at teardown); returns its new path."""
        src = self.state + "/kivad.log"
        if self.log_copy is None and os.path.exists(src):
            self.log_copy = "/var/tmp/kiva-bench-%d-kivad.log" % PID
            shutil.copyfile(src, self.log_copy)
        return self.log_copy

    def teardown(self):
        if self.pid and proc_alive(self.pid):
            for name in list(self.created):
                run([self.kiva, "delete", name, "--force"], env=self.env, check=False, timeout=60)
            self.created = []
            os.kill(self.pid, signal.SIGTERM)
            if not wait_gone(self.pid, 30):
                self.problems.append("kivad %d ignored SIGTERM for 30 s; SIGKILL" % self.pid)
                os.kill(self.pid, signal.SIGKILL)
                wait_gone(self.pid, 5)
        elif not self.pid:
            # kivad --daemon failed or we never found it: make sure none is left on our state dir
            pid = self.find_pid() if os.path.isdir(self.state) else None
            if pid:
                os.kill(pid, signal.SIGTERM)
                wait_gone(pid, 30)
        kill_leftover_monitors(self.state, self.problems)
        # kivad --purge: the state dir's bridge, veths and nftables tables go too
        if os.path.isdir(self.state):
            rc, out, _ = run([self.kivad, "--state-dir", self.state, "--purge"], check=False,
                             timeout=120)
            if rc != 0:
                self.problems.append("kivad --purge: " + out.strip())
        if os.path.ismount(self.state + "/storage-pools/default"):
            rc, out, _ = run(["umount", self.state + "/storage-pools/default"], check=False)
            if rc != 0:
                self.problems.append("umount storage-pools/default: " + out.strip())
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


class Lxd(System):
    key, label = "lxd", "LXD"

    def __init__(self, args):
        super().__init__()
        self.dir = LXD_DIR
        self.lxcpath = LXD_DIR + "/containers"
        self.env = dict(os.environ, LXD_DIR=self.dir, LXD_CONF=self.dir + "/client")
        self.proc = None
        self.backend = None

    def lxc(self, *a, check=True, timeout=CMD_TIMEOUT):
        return run(["lxc"] + list(a), env=self.env, check=check, timeout=timeout)

    def setup(self):
        if not shutil.which("lxd") or not shutil.which("lxc"):
            raise Skip("lxd/lxc not installed: bash scripts/deps.sh --bench")
        try:
            self._setup()
        except Skip:
            raise
        except Exception as e:
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            if os.path.exists(self.dir + "/lxd.log"):
                reason += "; lxd.log: " + " | ".join(tail(self.dir + "/lxd.log", 3).splitlines())
            raise Skip(reason[:400])

    def _setup(self):
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
        ready_ms = ms
        # `lxd init --auto` fails here (no free subnet for lxdbr0); a preseed with no network and a
        # default profile with only a root disk is the `nonet` setup. btrfs on a loop file like
        # KIVA's pool; the dir backend if btrfs fails.
        for driver, cfg in (("btrfs", "  config:\n    size: 4GiB\n"), ("dir", "")):
            preseed = ("storage_pools:\n- name: default\n  driver: %s\n%s"
                       "profiles:\n- name: default\n  devices:\n    root:\n      path: /\n"
                       "      pool: default\n      type: disk\n") % (driver, cfg)
            p = subprocess.run(["lxd", "init", "--preseed"], input=preseed.encode(), env=self.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            if p.returncode == 0:
                self.backend = driver
                break
            self.note += "lxd init with %s failed: %s; " % (driver, p.stdout.decode(errors="replace").strip())
        if not self.backend:
            raise Skip("lxd init --preseed failed: " + self.note)
        img = self.dir + "/busybox-image.tar.gz"
        build_busybox_rootfs_tar(img)
        self.lxc("image", "import", img, "--alias", "bb")
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

    def teardown(self):
        if self.proc and self.proc.poll() is None:
            for name in list(self.created):
                self.lxc("delete", name, "--force", check=False, timeout=60)
            self.created = []
            run(["lxd", "shutdown", "--timeout", "60"], env=self.env, check=False, timeout=90)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.problems.append("lxd still running after `lxd shutdown`; SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)
        kill_leftover_monitors(self.lxcpath, self.problems)
        clean_dir(self.dir, self.problems)


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
        # a second Ctrl-C or SIGTERM must not cut the cleanup short
        saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            sysobj.teardown()
        except Exception as e:  # noqa: BLE001
            sysobj.problems.append("teardown: %s: %s" % (type(e).__name__, e))
        finally:
            for s, h in saved.items():
                signal.signal(s, h)
        for p in sysobj.problems:
            log("   cleanup: %s" % p)
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


def fmt_ms(v):
    return "—" if v is None else ("%.1f ms" % v if v < 100 else "%.0f ms" % v)


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
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    out = []
    out.append("KIVA launch benchmark — %s, n=%d (+%d warm-up), busybox, %s, %d CPUs"
               % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), args.n, args.warmup,
                  platform.release(), os.cpu_count()))
    out.append("")
    for i, r in enumerate(table):
        line = r[0].ljust(widths[0]) + "  " + "  ".join(r[j].rjust(widths[j]) for j in range(1, len(r)))
        out.append(line.rstrip())
        if i == 0:
            out.append("-" * len(line))
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

    def verdict(v, limit, higher_is_better=False):
        if v is None:
            return "n/a"
        ok = v >= limit if higher_is_better else v <= limit
        return "PASS" if ok else "MISS"

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
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="measured iterations per system (default 20)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="unmeasured launch/stop/delete cycles first (default 1)")
    ap.add_argument("--running", type=int, default=20,
                    help="containers running for the control-plane PSS (default 20, 0 to skip)")
    ap.add_argument("--systems", default="lxc,kiva,lxd,docker",
                    help="comma-separated subset of lxc,kiva,lxd,docker (default: all)")
    ap.add_argument("--json", metavar="FILE", help="also write all results and samples as JSON")
    ap.add_argument("--kivad", help="kivad binary (default: from PATH)")
    ap.add_argument("--kiva", help="kiva binary (default: from PATH)")
    args = ap.parse_args()
    if args.n < 1:
        ap.error("--n must be ≥ 1")
    if os.geteuid() != 0:
        sys.exit("bench/launch.py must run as root (containers, mounts, /proc/*/smaps_rollup)")
    if not os.path.exists(BUSYBOX):
        sys.exit("%s missing: apt-get install busybox-static" % BUSYBOX)
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    results, failures = {}, []
    t0 = time.time()
    ctors = {"lxc": RawLxc, "kiva": Kiva, "lxd": Lxd}
    for key in ("lxc", "kiva", "lxd"):
        if key in wanted:
            bench_one(ctors[key](args), args, results, failures)
    if "docker" in wanted:
        results["docker"] = docker_result()
    text, verdicts = report(results, args)
    print(text)
    print("\n(total %.0f s)" % (time.time() - t0))
    if args.json:
        doc = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": {"kernel": platform.release(), "cpus": os.cpu_count()},
               "args": vars(args), "targets": TARGETS, "design_budgets": DESIGN_BUDGETS,
               "verdicts": verdicts, "results": results}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2, ensure_ascii=False)
            f.write("\n")
    for label, msg in failures:
        print("\n%s FAILED:\n%s" % (label, msg), file=sys.stderr)
    return 1 if any(label == "KIVA" for label, _ in failures) else 0


if __name__ == "__main__":
    sys.exit(main())
