"""kivad's CPU weight (kivad --cpu-weight): kivad runs in kiva.daemon/daemon, its helpers in
kiva.daemon/helpers, the containers in liblxc's own cgroups at the default nice; bad values are
refused; 0 leaves kivad where it was started."""

import os
import signal
import subprocess
import time

from conftest import CGROUP_V1, KIVA, KIVAD, Kivad, cgroup_path, wait_until

CPU = "cpu" if CGROUP_V1 else ""


def weight_of(path):
    """cpu.shares (v1) or cpu.weight (v2) of a cgroup directory."""
    with open(os.path.join(path, "cpu.shares" if CGROUP_V1 else "cpu.weight")) as f:
        return int(f.read())


def nice_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


def children_named(ppid, comm):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read()
        except OSError:
            continue
        name = fields[fields.index("(") + 1:fields.rindex(")")]
        if name == comm and int(fields.rsplit(")", 1)[1].split()[1]) == ppid:
            out.append(int(p))
    return out


def test_kivad_its_helpers_and_containers_cgroups(kivad, kiva, api, names):
    pid = kivad.pid()
    mine = cgroup_path(pid, CPU)
    assert mine.endswith("/kiva.daemon/daemon"), mine
    top = os.path.dirname(mine)
    assert weight_of(top) == (10240 if CGROUP_V1 else 1000)
    assert weight_of(os.path.join(top, "helpers")) == (1024 if CGROUP_V1 else 100)
    with open(kivad.log) as f:
        assert "Running in the cgroup kiva.daemon/daemon, CPU weight 1000" in f.read()

    c = names("cg")
    kiva("launch", "busybox", c)
    init = api.pid(c)
    assert "kiva.daemon" not in cgroup_path(init, CPU)
    assert nice_of(init) == 0, "containers run at the default nice"
    # a helper while it works: `kiva exec` of a sleep
    p = subprocess.Popen([KIVA, "exec", c, "--", "sleep", "3"], env=kivad.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        helpers = []
        wait_until(lambda: helpers.extend(children_named(pid, "kiva-helper")) or helpers,
                   timeout=5, what="kiva-helper exec to run")
        h = helpers[0]
        assert cgroup_path(h, CPU) == os.path.join(top, "helpers")
        assert nice_of(h) == 0
        assert nice_of(pid) == 0, "kivad's loop thread keeps the default nice"
    finally:
        p.wait(timeout=30)
    assert p.returncode == 0


def test_cpu_weight_flag():
    for bad in ("abc", "-1", "10001", "1.5", ""):
        # --version after it: were the value taken, kivad would print its version and stop
        r = subprocess.run([KIVAD, "--cpu-weight", bad, "--version"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 1, bad
        assert f"invalid --cpu-weight '{bad}': 0 (off) or 1-10000" in r.stderr
    d = Kivad("cgz", ["--cpu-weight", "0", "--default-network", "none"])
    try:
        d.start()
        assert cgroup_path(d.pid(), CPU) == cgroup_path(os.getpid(), CPU)
        time.sleep(0.1)
        with open(d.log) as f:
            assert "kiva.daemon" not in f.read()
    finally:
        d.teardown()


def standby_helpers(kivad_pid):
    out = []
    for p in children_named(kivad_pid, "kiva-helper"):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if f.read().split(b"\0")[1:2] == [b"standby"]:
                    out.append(p)
        except OSError:
            pass
    return out


def gone(pid):
    """Exited (a zombie not yet reaped by whoever inherited it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_exec_helper_on_standby_comes_and_goes_with_kivad(kivad_factory):
    """After an exec, one kiva-helper waits on standby for the next; it leaves with kivad,
    stopped or killed, and execs through it keep their streams and exit codes."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        d = kivad_factory()
        c = f"sb-{sig.name.lower()}"
        d.kiva("launch", "busybox", c)
        pid = d.pid()
        for _ in range(3):
            r = d.kiva("exec", c, "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                       check=False)
            assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
        wait_until(lambda: len(standby_helpers(pid)) == 1, timeout=5,
                   what="one kiva-helper on standby")
        sb = standby_helpers(pid)[0]
        assert cgroup_path(sb, CPU).endswith("/kiva.daemon/helpers")
        d.signal(sig)
        wait_until(lambda: gone(sb), timeout=5,
                   what=f"the standby helper to leave after {sig.name}")
