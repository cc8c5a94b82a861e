"""Backups in LXD's layout, against a real LXD: a `kiva export` imports into LXD with `lxc import`
and starts there, an `lxc export` imports into KIVA with `kiva import` and starts here, files,
owners and snapshots intact, in both directions, and --instance-only.

LXD runs as a private daemon of this module (LXD_DIR and LXD_CONF under /var/tmp/kiva-itlxd-*),
never touching the host's LXD (/var/lib/lxd): a dir storage pool, a default profile with only a
root disk and no managed network at all (no lxdbr0, no firewall rules: LXD only adds those for
managed networks and NICs). Its busybox image is KIVA's busybox image volume, tarred as an LXD
unified image with the owners unshifted. Whatever happens, teardown shuts LXD down, kills what
is left of it, unmounts everything under the temporary directory and removes it; it then checks
that nothing of LXD is left on the host.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from conftest import instance_names, running_kivad, wait_until

pytestmark = pytest.mark.skipif(
    not (shutil.which("lxd") and shutil.which("lxc")),
    reason="LXD is not installed (apt-get install lxd lxd-client)")

IDMAP_BASE = 100000  # KIVA's (daemon.c: idmap_base)
HOST_LXD_DIR = "/var/lib/lxd"


def mounts_under(path):
    """Mount points at or under path, deepest first."""
    pre = path.rstrip("/")
    res = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == pre or mp.startswith(pre + "/"):
                res.add(mp)
    return sorted(res, key=lambda m: (-m.count("/"), m))


def pids_mentioning(path):
    """Processes whose command line names a path under `path` (LXD's forkstart, lxc monitors,
    the daemon itself through its --logfile)."""
    me = os.getpid()
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == me:
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if path in cmd:
            found.append(int(p))
    return found


def lxd_host_traces():
    """What a (non-private) LXD would leave on the host: network links and nftables tables
    named lxd*, and the host's state dir."""
    traces = set()
    r = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith("lxd"):
            traces.add(f"link {name}")
    if shutil.which("nft"):
        r = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if "lxd" in line:
                traces.add(f"nft {line.strip()}")
    if os.path.exists(HOST_LXD_DIR):
        traces.add(f"dir {HOST_LXD_DIR}")
    return traces


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(line.strip() for line in f.readlines()[-n:])
    except OSError:
        return f"(no {os.path.basename(path)})"


def image_tarball(kivad, path):
    """KIVA's busybox image volume as an LXD unified image (metadata.yaml + rootfs/), owners
    unshifted to 0+ as LXD wants them in an image."""
    images = os.path.join(kivad.pool, "images")
    [fp] = os.listdir(images)
    vol = os.path.join(images, fp)

    def unshift(ti):
        ti.uid = ti.uid - IDMAP_BASE if ti.uid >= IDMAP_BASE else ti.uid
        ti.gid = ti.gid - IDMAP_BASE if ti.gid >= IDMAP_BASE else ti.gid
        ti.uname = ti.gname = ""
        return ti

    with tarfile.open(path, "w:gz", compresslevel=1) as t:
        t.add(os.path.join(vol, "metadata.yaml"), "metadata.yaml", filter=unshift)
        t.add(os.path.join(vol, "rootfs"), "rootfs", filter=unshift)


class PrivateLxd:
    """An LXD daemon of our own: LXD_DIR and LXD_CONF under a fresh /var/tmp directory."""

    def __init__(self):
        self.base = f"/var/tmp/kiva-itlxd-{secrets.token_hex(4)}"
        self.dir = os.path.join(self.base, "lxd")
        self.xfer = os.path.join(self.base, "xfer")  # backups going from one side to the other
        self.env = dict(os.environ, LXD_DIR=self.dir, LXD_CONF=os.path.join(self.base, "client"))
        self.log = os.path.join(self.base, "lxd.log")
        self.proc = None
        self.problems = []

    def run(self, *argv, check=True, timeout=120, input=None):
        r = subprocess.run(list(argv), capture_output=True, text=True, env=self.env,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {r.returncode}\nstdout: {r.stdout}\n"
                                 f"stderr: {r.stderr}\nlxd.log: {tail(self.log)}")
        return r

    def lxc(self, *args, **kw):
        return self.run("lxc", *args, **kw)

    def query(self, path):
        return json.loads(self.lxc("query", path).stdout)

    def start(self, kivad):
        """Start LXD, init it, import the busybox image as `bb`; pytest.skip with the reason when
        LXD itself cannot run here."""
        os.makedirs(self.dir)
        os.makedirs(self.xfer)
        # Unprivileged containers need o+x on every parent of their rootfs.
        os.chmod(self.base, 0o711)
        os.chmod(self.dir, 0o711)
        with open(os.path.join(self.base, "lxd.out"), "wb") as out:
            self.proc = subprocess.Popen(["lxd", "--group", "root", "--logfile", self.log],
                                         env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        r = self.run("lxd", "waitready", "--timeout", "60", check=False, timeout=90)
        if r.returncode != 0 or self.proc.poll() is not None:
            pytest.skip(f"the private LXD did not start: {r.stderr.strip()} "
                        f"{tail(os.path.join(self.base, 'lxd.out'))} {tail(self.log)}")
        # No `lxd init --auto`: it would create lxdbr0 (a bridge, NAT and firewall rules on the
        # host). A dir pool and a default profile with only a root disk, no network.
        preseed = ("config: {}\nnetworks: []\n"
                   "storage_pools:\n- name: default\n  driver: dir\n  config: {}\n"
                   "profiles:\n- name: default\n  devices:\n    root:\n      path: /\n"
                   "      pool: default\n      type: disk\n")
        r = self.run("lxd", "init", "--preseed", input=preseed, check=False)
        if r.returncode != 0:
            pytest.skip("LXD cannot be initialised without touching host networking "
                        f"(lxd init --preseed, dir pool, no network): {r.stderr.strip()}")
        img = os.path.join(self.xfer, "busybox-lxd-image.tar.gz")
        image_tarball(kivad, img)
        self.lxc("image", "import", img, "--alias", "bb")

    def exec_ok(self, name, *cmd):
        """`lxc exec`, retried for a moment after a start (the init may not be up yet)."""
        last = None

        def attempt():
            nonlocal last
            last = self.lxc("exec", name, "--", *cmd, check=False)
            return last.returncode == 0

        wait_until(attempt, timeout=20, interval=0.1, what=f"lxc exec {name} {cmd}: {last}")
        return last.stdout

    def snapshots(self, name):
        return {s["name"] for s in self.query(f"/1.0/instances/{name}/snapshots?recursion=1")}

    def assert_no_nic(self, name):
        """An imported instance must not get a NIC (a veth on some host bridge) before it
        starts."""
        inst = self.query(f"/1.0/instances/{name}")
        nics = {k: v for k, v in inst["expanded_devices"].items() if v.get("type") == "nic"}
        assert not nics, f"{name} would start with NICs in LXD: {nics}"
        return inst

    def teardown(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                for inst in self.query("/1.0/instances"):
                    self.lxc("delete", "--force", inst.rsplit("/", 1)[1], check=False,
                             timeout=60)
            except Exception as e:  # noqa: BLE001 - shutting down anyway
                self.problems.append(f"listing LXD's instances: {e}")
            self.run("lxd", "shutdown", "--timeout", "30", check=False, timeout=60)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.problems.append("lxd still running after `lxd shutdown`: SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)
        # Whatever of it is left (an lxc monitor, a forkexec) names our directory.
        for pid in pids_mentioning(self.base):
            self.problems.append(f"leftover LXD process {pid}: SIGKILL")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while pids_mentioning(self.base) and time.monotonic() < deadline:
            time.sleep(0.05)
        for mp in mounts_under(self.base):
            if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mp], capture_output=True)
        left = mounts_under(self.base)
        if left:
            self.problems.append(f"still mounted, {self.base} kept: {left}")
        elif os.path.exists(self.base):
            shutil.rmtree(self.base, ignore_errors=True)
            if os.path.exists(self.base):
                self.problems.append(f"could not remove {self.base}")


@pytest.fixture(scope="module")
def bd():
    yield from running_kivad("itbk")


@pytest.fixture(scope="module")
def lxd(bd):
    before = lxd_host_traces()
    t0 = time.monotonic()
    lx = PrivateLxd()
    try:
        lx.start(bd)
        lx.ready_s = time.monotonic() - t0
        yield lx
    finally:
        lx.teardown()
        new = lxd_host_traces() - before
        assert not lx.problems and not new, (lx.problems, f"LXD left on the host: {new}")


@pytest.fixture
def nn(bd):
    yield from instance_names(bd, "bk")


def kiva_out(d, name, *cmd):
    return d.kiva("exec", name, "--", *cmd).stdout


def kiva_snapshots(d, name):
    st, body = d.api.get(f"/1.0/instances/{name}/snapshots")
    assert st == 200, body
    return {u.rsplit("/", 1)[1] for u in body["metadata"]}


def test_kiva_backup_imports_and_starts_in_lxd(bd, lxd, nn):
    k1 = nn()
    bd.kiva("launch", "busybox", k1)
    bd.kiva("exec", k1, "--", "sh", "-c", "echo from-kiva > /root/marker")
    bd.kiva("snapshot", k1, "s1")
    full = os.path.join(lxd.xfer, f"{k1}.tar.gz")
    bd.kiva("export", k1, full)

    lxd.lxc("import", "-q", full)
    inst = lxd.assert_no_nic(k1)
    assert inst["status"] == "Stopped"
    assert lxd.snapshots(k1) == {"s1"}
    assert "s1" in lxd.lxc("info", k1).stdout
    lxd.lxc("start", k1)
    assert lxd.exec_ok(k1, "cat", "/root/marker") == "from-kiva\n"
    # root inside LXD's container, whatever LXD's own map on the host
    assert lxd.exec_ok(k1, "stat", "-c", "%u %g", "/root/marker") == "0 0\n"
    assert lxd.exec_ok(k1, "id", "-u") == "0\n"
    lxd.lxc("delete", "--force", k1)

    # --instance-only: the same instance, no snapshots on the other side
    only = os.path.join(lxd.xfer, f"{k1}-only.tar.gz")
    bd.kiva("export", k1, only, "--instance-only")
    lxd.lxc("import", "-q", only)
    lxd.assert_no_nic(k1)
    assert lxd.snapshots(k1) == set()
    lxd.lxc("delete", "--force", k1)


def test_lxd_backup_imports_and_starts_in_kiva(bd, lxd, nn):
    c = f"lx-{secrets.token_hex(4)}"
    lxd.lxc("launch", "-q", "bb", c)
    lxd.exec_ok(c, "sh", "-c", "echo from-lxd > /root/marker")
    lxd.lxc("snapshot", c, "snap0")
    full = os.path.join(lxd.xfer, f"{c}.tar.gz")
    only = os.path.join(lxd.xfer, f"{c}-only.tar.gz")
    lxd.lxc("export", "-q", c, full)
    lxd.lxc("export", "-q", c, only, "--instance-only")
    lxd.lxc("delete", "--force", c)

    lx1 = nn("lx1")
    bd.kiva("import", full, lx1)
    assert bd.api.state(lx1)["status"] == "Stopped"
    assert kiva_snapshots(bd, lx1) == {"snap0"}
    # on the host, under KIVA's pool, the files are shifted to KIVA's map
    st = os.stat(os.path.join(bd.pool, "containers", lx1, "rootfs", "root", "marker"))
    assert (st.st_uid, st.st_gid) == (IDMAP_BASE, IDMAP_BASE)
    bd.kiva("start", lx1)
    assert kiva_out(bd, lx1, "cat", "/root/marker") == "from-lxd\n"
    assert kiva_out(bd, lx1, "id", "-u") == "0\n"
    assert kiva_out(bd, lx1, "stat", "-c", "%u %g", "/root/marker") == "0 0\n"
    # the snapshot is a usable volume: a copy of it holds the marker
    snap_copy = nn("lx1s")
    bd.kiva("copy", f"{lx1}/snap0", snap_copy)
    with open(os.path.join(bd.pool, "containers", snap_copy, "rootfs", "root", "marker")) as f:
        assert f.read() == "from-lxd\n"

    lx2 = nn("lx2")
    bd.kiva("import", only, lx2)
    assert kiva_snapshots(bd, lx2) == set()
    bd.kiva("start", lx2)
    assert kiva_out(bd, lx2, "cat", "/root/marker") == "from-lxd\n"
