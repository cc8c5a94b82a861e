"""Integration test harness: real kivad, real kiva, real LXC containers (root only).

A session-wide kivad runs on its own state dir (/var/tmp/kiva-it-<hex>), socket and raft port, so
it never touches a kivad the host may run. Tests that kill or restart kivad start a dedicated one
with `kivad_factory`. Every container a test creates gets a unique name from `names` and is
force-deleted afterwards, even when the test fails; every kivad is torn down at the end (its
containers killed, the daemon stopped, the pool unmounted, the state dir removed).
"""

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time

import pytest

KIVA = shutil.which("kiva") or "/usr/local/bin/kiva"
KIVAD = shutil.which("kivad") or "/usr/local/bin/kivad"


def pytest_collection_modifyitems(config, items):
    reason = None
    if os.geteuid() != 0:
        reason = "integration tests need root (real containers)"
    elif not (os.access(KIVA, os.X_OK) and os.access(KIVAD, os.X_OK)):
        reason = "kiva/kivad not installed: run `make install`"
    elif not shutil.which("lxc-ls"):
        reason = "lxc-utils missing (lxc-ls): run scripts/deps.sh"
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll predicate() until it returns a truthy value; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    """True while pid exists and is not a zombie (kivad --daemon is reparented to pid 1, which
    may reap it late)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def ismount(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


# ---------------------------------------------------------------------------------------------
# HTTP over the unix socket


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("kiva", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class Api:
    """A tiny LXD-API client: request() returns (status, json or bytes)."""

    def __init__(self, socket_path):
        self.socket_path = socket_path

    def request_ex(self, method, path, body=None, headers=None, timeout=60, **kw):
        """(status, json or bytes, response headers)."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        conn = UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers, **kw)
            resp = conn.getresponse()
            data = resp.read()
            rheaders = resp.headers  # case-insensitive
            status = resp.status
        finally:
            conn.close()
        if (rheaders.get("Content-Type") or "").startswith("application/json"):
            return status, json.loads(data), rheaders
        return status, data, rheaders

    def request(self, method, path, body=None, headers=None, timeout=60, **kw):
        """(status, json or bytes)."""
        status, data, _ = self.request_ex(method, path, body, headers, timeout, **kw)
        return status, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def alive(self):
        try:
            status, _ = self.get("/1.0", timeout=2)
            return status == 200
        except OSError:
            return False

    def wait(self, status_body, timeout=60):
        """Wait for the operation of an async (202) answer; return the operation object."""
        status, body = status_body
        assert status == 202, f"expected an async answer, got {status}: {body}"
        op = body["operation"]
        st, res = self.get(f"{op}/wait?timeout={timeout}", timeout=timeout + 10)
        assert st == 200, res
        return res["metadata"]

    def instances(self):
        status, body = self.get("/1.0/instances?recursion=1")
        assert status == 200, body
        return body["metadata"]

    def instance_names(self):
        return {i["name"] for i in self.instances()}

    def instance(self, name):
        status, body = self.get(f"/1.0/instances/{name}")
        assert status == 200, body
        return body["metadata"]

    def state(self, name):
        status, body = self.get(f"/1.0/instances/{name}/state")
        assert status == 200, body
        return body["metadata"]

    def pid(self, name):
        return self.state(name)["pid"]

    def exec(self, name, command, **extra):
        """Run a command with record-output; return (return code, stdout bytes, stderr bytes)."""
        body = {"command": command, "record-output": True, "wait-for-websocket": False}
        body.update(extra)
        op = self.wait(self.post(f"/1.0/instances/{name}/exec", body))
        assert op["status"] == "Success", op
        md = op["metadata"]
        out = {}
        for fd in ("1", "2"):
            st, data = self.get(md["output"][fd])
            assert st == 200, data
            out[fd] = data
        return md["return"], out["1"], out["2"]


# ---------------------------------------------------------------------------------------------
# A kivad of our own


class Kivad:
    """One kivad with its own state dir, socket and raft port."""

    def __init__(self, tag="it", extra_args=()):
        self.extra_args = list(extra_args)
        self.dir = f"/var/tmp/kiva-{tag}-{secrets.token_hex(4)}"
        os.makedirs(self.dir)
        # Unprivileged containers need o+x on every parent of their rootfs.
        os.chmod(self.dir, 0o711)
        self.socket = os.path.join(self.dir, "unix.socket")
        self.port = free_port()
        self.api = Api(self.socket)
        self.env = dict(os.environ, KIVA_SOCKET=self.socket)
        self.pool = os.path.join(self.dir, "storage-pools", "default")
        self.lxcpath = os.path.join(self.dir, "containers")
        self.log = os.path.join(self.dir, "kivad.log")

    def command(self):
        return [KIVAD, "--state-dir", self.dir, "--socket", self.socket,
                "--raft-address", f"127.0.0.1:{self.port}", "--pool-size", "3GiB", "--daemon",
                *self.extra_args]

    def start(self):
        r = subprocess.run(self.command(), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"kivad failed to start: {r.stderr}\n{self.log_tail()}"
        wait_until(self.api.alive, timeout=15, what="kivad to answer GET /1.0")

    def pids(self):
        """Pids holding STATE/kivad.lock (kivad itself)."""
        lock = os.path.join(self.dir, "kivad.lock")
        if not os.path.exists(lock):
            return []
        r = subprocess.run(["fuser", lock], capture_output=True, text=True)
        return [int(p) for p in r.stdout.split() if p.strip().isdigit()]

    def pid(self):
        pids = self.pids()
        assert len(pids) == 1, f"expected one kivad holding the lock, found {pids}"
        return pids[0]

    def signal(self, sig, timeout=30):
        """Send sig to kivad and wait until it has exited."""
        pid = self.pid()
        os.kill(pid, sig)
        wait_until(lambda: not pid_alive(pid), timeout=timeout, what=f"kivad {pid} to exit")

    def stop(self):
        self.signal(signal.SIGTERM)

    def kill(self):
        self.signal(signal.SIGKILL)

    def restart(self):
        self.stop()
        self.start()

    def kiva(self, *args, check=True, timeout=120):
        r = subprocess.run([KIVA, *args], capture_output=True, text=True, env=self.env,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kiva {' '.join(args)} exited {r.returncode}\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def lxc_ls(self):
        r = subprocess.run(["lxc-ls", "-P", self.lxcpath, "-1"], capture_output=True, text=True)
        return set(r.stdout.split())

    def lxc_running(self):
        r = subprocess.run(["lxc-ls", "-P", self.lxcpath, "-1", "--running"],
                           capture_output=True, text=True)
        return set(r.stdout.split())

    def volumes(self):
        path = os.path.join(self.pool, "containers")
        return set(os.listdir(path)) if os.path.isdir(path) else set()

    def image_dirs(self):
        path = os.path.join(self.pool, "images")
        return set(os.listdir(path)) if os.path.isdir(path) else set()

    def log_tail(self, n=40):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no kivad.log)"

    def force_delete(self, name):
        return self.kiva("delete", "--force", name, check=False, timeout=60)

    def teardown(self):
        """Always leaves the host clean: instances deleted, kivad stopped, pool unmounted."""
        # the log outlives the state dir, for a post-mortem (/var/tmp/kiva-logs/)
        try:
            os.makedirs("/var/tmp/kiva-logs", exist_ok=True)
            shutil.copy(self.log, os.path.join("/var/tmp/kiva-logs",
                                               os.path.basename(self.dir) + ".log"))
        except OSError:
            pass
        if self.pids() and self.api.alive():
            try:
                for name in self.api.instance_names():
                    self.force_delete(name)
            except Exception:
                pass
        # Containers kivad no longer knows about (or a dead kivad): kill them with liblxc.
        for name in self.lxc_running():
            subprocess.run(["lxc-stop", "-P", self.lxcpath, "-n", name, "-k"],
                           capture_output=True, timeout=60)
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGTERM)
                wait_until(lambda: not pid_alive(pid), timeout=30, what="kivad to exit")
            except (ProcessLookupError, AssertionError):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                wait_until(lambda: not pid_alive(pid), timeout=10, what="kivad to die")
        # kivad --purge: its bridges, veths, ifbs, nftables tables, pool and files go.
        subprocess.run([KIVAD, "--state-dir", self.dir, "--purge"], capture_output=True,
                       text=True, timeout=120)
        deadline = time.monotonic() + 10
        while ismount(self.pool):
            r = subprocess.run(["umount", self.pool], capture_output=True, text=True)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                subprocess.run(["umount", "-l", self.pool], capture_output=True)
                break
            time.sleep(0.1)
        # The loop device detaches itself on umount (autoclear); make sure of it.
        img = os.path.join(self.dir, "disks", "default.img")
        r = subprocess.run(["losetup", "-j", img], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            subprocess.run(["losetup", "-d", line.split(":")[0]], capture_output=True)
        if not ismount(self.pool):
            shutil.rmtree(self.dir, ignore_errors=True)


def running_kivad(tag, setup=None):
    """Generator for fixtures: a kivad with the busybox image built, torn down afterwards.
    setup(d), when given, runs before the start (files in d.dir, d.extra_args)."""
    d = Kivad(tag)
    try:
        if setup:
            setup(d)
        d.start()
        d.kiva("image", "build", "busybox")
        yield d
    finally:
        d.teardown()


@pytest.fixture(scope="session")
def kivad():
    """The shared kivad, with the busybox image built."""
    yield from running_kivad("it")


@pytest.fixture
def kivad_factory():
    """Dedicated kivads for tests that kill or restart the daemon; torn down afterwards."""
    made = []

    def make(build_busybox=True, extra_args=()):
        d = Kivad("it", extra_args)
        made.append(d)
        d.start()
        if build_busybox:
            d.kiva("image", "build", "busybox")
        return d

    try:
        yield make
    finally:
        for d in made:
            d.teardown()


@pytest.fixture
def api(kivad):
    return kivad.api


@pytest.fixture
def kiva(kivad):
    """kiva(*args, check=True) -> CompletedProcess (text) against the shared kivad."""
    return kivad.kiva


def unique_name(prefix="it"):
    return f"{prefix}-{secrets.token_hex(4)}"


def instance_names(d, default_prefix="it"):
    """Generator for fixtures: new(prefix) -> a fresh instance name on kivad d, force-deleted
    afterwards whatever happens."""
    made = []

    def new(prefix=default_prefix):
        name = unique_name(prefix)
        made.append(name)
        return name

    yield new
    for name in made:
        d.force_delete(name)


@pytest.fixture
def names(kivad):
    """names() -> a fresh instance name, force-deleted after the test whatever happens."""
    yield from instance_names(kivad)


# ---------------------------------------------------------------------------------------------
# cgroups of a running container


def cgroup_path(pid, controller):
    """Directory of pid's cgroup for a v1 controller (e.g. 'memory'), or the v2 one with ''."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        ctrls = controllers.split(",")
        if controller and controller in ctrls:
            for mount in (controllers.replace("name=", ""), controller.replace("name=", "")):
                base = os.path.join("/sys/fs/cgroup", mount)
                if os.path.isdir(base):
                    return base + path
        if not controller and controllers == "":
            base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") \
                else "/sys/fs/cgroup"
            return base + path
    raise LookupError(f"no {controller or 'v2'} cgroup for pid {pid}")


def read_cgroup(api, name, controller, filename):
    """Read a cgroup file of a running container: init pid from the API, then
    /proc/PID/cgroup -> /sys/fs/cgroup/<controller><path>/<file>."""
    pid = api.pid(name)
    assert pid > 0, f"{name} has no init pid"
    with open(os.path.join(cgroup_path(pid, controller), filename)) as f:
        return f.read().strip()


CGROUP_V1 = os.path.isdir("/sys/fs/cgroup/memory") and os.path.isdir("/sys/fs/cgroup/pids")


def memory_limit(api, name):
    """The running container's memory limit in bytes (None when unlimited)."""
    if CGROUP_V1:
        v = int(read_cgroup(api, name, "memory", "memory.limit_in_bytes"))
        return None if v >= 1 << 62 else v
    v = read_cgroup(api, name, "", "memory.max")
    return None if v == "max" else int(v)


def pids_max(api, name):
    if CGROUP_V1:
        return read_cgroup(api, name, "pids", "pids.max")
    return read_cgroup(api, name, "", "pids.max")


def cpuset_cpus(api, name):
    if CGROUP_V1:
        return read_cgroup(api, name, "cpuset", "cpuset.cpus")
    return read_cgroup(api, name, "", "cpuset.cpus.effective")


def frozen_in_cgroup(api, name):
    if CGROUP_V1:
        return read_cgroup(api, name, "freezer", "freezer.state")
    return "FROZEN" if read_cgroup(api, name, "", "cgroup.freeze") == "1" else "THAWED"


def cpu_list_count(text):
    """Number of CPUs in a cpuset list such as '0-1,3'."""
    n = 0
    for part in text.split(","):
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-")
            n += int(hi) - int(lo) + 1
        else:
            n += 1
    return n


def init_handles(pid, signum=30):
    """True once the process has a handler for signum (SIGPWR, liblxc's halt signal): busybox
    init only traps it after its shell has started."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except FileNotFoundError:
        return False
    return False


def wait_init_ready(api, name, timeout=10):
    pid = api.pid(name)
    wait_until(lambda: init_handles(pid), timeout=timeout, what=f"{name}'s init to trap SIGPWR")
    return pid


def host_uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise LookupError("no Uid line")


# ---------------------------------------------------------------------------------------------
# Networks (test_network*.py): networks, ACLs, netns and veths a test makes, removed afterwards.


def kivad_hex(d):
    """sha256 of the realpath of d's state dir: names its nftables tables and default bridge."""
    import hashlib
    return hashlib.sha256(os.path.realpath(d.dir).encode()).hexdigest()


def nft_table(d):
    return "kiva_" + kivad_hex(d)[:8]


def default_network(d):
    return "kivabr" + kivad_hex(d)[:6]


def sh(*cmd, check=True, timeout=60):
    """Run a host command; return its stdout (text)."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr}")
    return r.stdout


def host_ipv4_prefixes():
    """(network, prefix length) of every IPv4 address and route of the host, as ints."""
    import ipaddress
    out = []
    for line in sh("ip", "-4", "-o", "addr", "show").splitlines():
        out.append(ipaddress.ip_interface(line.split()[3]).network)
    for line in sh("ip", "-4", "route", "show", "table", "all").splitlines():
        dst = line.split()[0]
        if dst in ("default", "local", "broadcast", "unreachable", "blackhole", "prohibit"):
            dst = line.split()[1] if dst != "default" else "0.0.0.0/0"
        try:
            out.append(ipaddress.ip_network(dst, strict=False))
        except ValueError:
            pass
    return [n for n in out if n.prefixlen >= 8]


def free_subnet(api, prefixlen=24, avoid=()):
    """A random 10.X.Y.0/prefixlen (X in 20..99, below kivad's automatic 10.100+) that overlaps no
    host address or route, no network of api's kivad and nothing in avoid."""
    import ipaddress
    import random
    taken = host_ipv4_prefixes() + [ipaddress.ip_network(a, strict=False) for a in avoid]
    for n in api.get("/1.0/networks?recursion=1")[1]["metadata"]:
        a = n["config"].get("ipv4.address", "none")
        if a not in ("none", ""):
            taken.append(ipaddress.ip_interface(a).network)
    for _ in range(1000):
        base = ipaddress.ip_address(f"10.{random.randint(20, 99)}.{random.randint(0, 255)}.0")
        cand = ipaddress.ip_network(f"{base}/{prefixlen}", strict=False)
        if not any(cand.overlaps(t) for t in taken):
            return cand
    raise AssertionError("no free subnet")


class NetEnv:
    """Networks, ACLs, netns and veths of one test on kivad d, all removed by cleanup()."""

    def __init__(self, d):
        self.d, self.api = d, d.api
        self.networks, self.acls, self.netns, self.links = [], [], [], []

    def name(self, prefix="nt"):
        return f"{prefix}{secrets.token_hex(4)}"  # <= 15 characters: bridge and netns names

    def network(self, prefix="nt", **config):
        """Create a bridge network (ipv4.address=auto unless given); return its name."""
        name = self.name(prefix)
        self.networks.append(name)
        config = {k.replace("_", "."): v for k, v in config.items()}
        config.setdefault("ipv4.address", "auto")
        st, body = self.api.post("/1.0/networks", {"name": name, "config": config})
        assert st == 200, body
        return name

    def acl(self, ingress=(), egress=(), prefix="na"):
        name = self.name(prefix)
        self.acls.append(name)
        st, body = self.api.post("/1.0/network-acls", {"name": name, "ingress": list(ingress),
                                                       "egress": list(egress)})
        assert st == 200, body
        return name

    def new_netns(self, prefix="up"):
        name = self.name(prefix)
        self.netns.append(name)
        sh("ip", "netns", "add", name)
        return name

    def veth(self, host, peer, netns=None):
        """A veth pair host <-> peer (peer moved into netns)."""
        self.links.append(host)
        sh("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
        if netns:
            sh("ip", "link", "set", peer, "netns", netns)

    def _users(self, path):
        st, body = self.api.get(path)
        return body["metadata"].get("used_by", []) if st == 200 else []

    def cleanup(self):
        alive = self.d.pids() and self.api.alive()
        for acl in self.acls if alive else ():
            for user in self._users(f"/1.0/network-acls/{acl}"):
                kind, name = user.split("/")[-2:]
                if kind == "instances":
                    self.d.force_delete(name)
                else:
                    self.api.patch(f"/1.0/networks/{name}", {"config": {"security.acls": None}})
            self.api.delete(f"/1.0/network-acls/{acl}")
        for net in self.networks if alive else ():
            for user in self._users(f"/1.0/networks/{net}"):
                self.d.force_delete(user.split("/")[-1])
            self.api.delete(f"/1.0/networks/{net}")
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        for ns in self.netns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def net_factory():
    """net_factory(d) -> NetEnv on kivad d, cleaned up after the test."""
    made = []

    def make(d):
        made.append(NetEnv(d))
        return made[-1]

    try:
        yield make
    finally:
        for env in reversed(made):
            env.cleanup()


@pytest.fixture
def net(kivad, net_factory):
    return net_factory(kivad)


def nic_address(api, name, dev="eth0"):
    """The IPv4 address of a running instance's interface from GET .../state (None if none)."""
    iface = (api.state(name).get("network") or {}).get(dev) or {}
    for a in iface.get("addresses", []):
        if a["family"] == "inet":
            return a["address"]
    return None


def in_container(api, name, script):
    """sh -c script in the instance: (return code, stdout text, stderr text)."""
    rc, out, err = api.exec(name, ["sh", "-c", script])
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def can_ping(api, name, addr, wait=1):
    return in_container(api, name, f"ping -c 1 -W {wait} {addr}")[0] == 0


def http_get(api, name, addr, port=80, wait=1):
    """Text of an HTTP/1.0 GET from the instance with busybox nc ('' when it fails)."""
    rc, out, _ = in_container(
        api, name, f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w {wait} {addr} {port}")
    return out if rc == 0 else ""


def raw_request(d, head, body_parts, timeout=30):
    """Sends head (lines) and the body parts on a fresh connection; the answer until the server
    closes: (status, raw answer)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(d.socket)
    try:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for p in body_parts:
                s.sendall(p)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while True:
            try:
                part = s.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            data += part
    finally:
        s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1") else 0
    return status, data
