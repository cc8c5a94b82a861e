"""The scheduler on this host: admission with numbers, dedicated CPUs, the shared set, live
re-pinning, the capacity file and its reload, rebuild after a kivad restart (with drift), and
/1.0/resources. A kivad of its own (module-scoped) so no other test's instances hold CPUs; the
fixture-tree tests (a two-socket Z600 under --sys-root) are in test_sched_fixture.py.

This host's CPUs are read from /sys, as kivad reads them; the tests need two.
"""

import os
import signal
import subprocess

import pytest

from conftest import (Kivad, cgroup_path, instance_names, running_kivad, wait_init_ready,
                      wait_until)

ONLINE = os.sched_getaffinity(0)
NCPU = len(ONLINE)
CGROUP_V1 = os.path.isdir("/sys/fs/cgroup/cpuset")

pytestmark = pytest.mark.skipif(NCPU < 2, reason=f"needs 2 CPUs, this host has {NCPU}")


def cpu_list(s):
    """'0-1,3' -> {0, 1, 3}"""
    out = set()
    for part in filter(None, s.strip().split(",")):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def fmt(cpus):
    return ",".join(str(c) for c in sorted(cpus))


ALL = fmt(ONLINE)


def _capacity_args(d):
    d.cap = os.path.join(d.dir, "capacity.yaml")
    d.extra_args = ["--capacity", d.cap, "--default-network", "none"]


@pytest.fixture(scope="module")
def sk():
    yield from running_kivad("its", _capacity_args)


@pytest.fixture
def sn(sk):
    """Names of instances on sk, force-deleted afterwards; the capacity file removed."""
    yield from instance_names(sk, "sc")
    if os.path.exists(sk.cap):
        os.unlink(sk.cap)
        sk.api.post("/1.0/resources/capacity")


def cg(d, name, filename):
    """A cpuset file of the running container (v1 cpuset controller or v2)."""
    st, state = d.api.get(f"/1.0/instances/{name}/state")
    assert st == 200, state
    pid = state["metadata"]["pid"]
    assert pid > 0, state
    base = cgroup_path(pid, "cpuset" if CGROUP_V1 else "")
    if not CGROUP_V1 and filename == "cpuset.cpus":
        filename = "cpuset.cpus.effective"
    with open(os.path.join(base, filename)) as f:
        return f.read().strip()


def cpus_of(d, name):
    return cpu_list(cg(d, name, "cpuset.cpus"))


def capacity(d):
    st, body = d.api.get("/1.0/resources/capacity")
    assert st == 200, body
    return body["metadata"]


def placement(d, name):
    return d.api.state(name)["kiva"]


def launch(d, name, *config, check=True):
    args = ["launch", "busybox", name]
    for c in config:
        args += ["-c", c]
    return d.kiva(*args, check=check)


def refused(r, *parts):
    assert r.returncode != 0, r.stdout
    for p in parts:
        assert p in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------


def test_count_gets_dedicated_cpus_and_the_shared_set_follows(sk, sn):
    s, a, c = sn(), sn(), sn()
    launch(sk, s)
    assert cpus_of(sk, s) == ONLINE
    assert placement(sk, s)["placement"] == "shared"
    s_pid = sk.api.pid(s)

    launch(sk, a, "limits.cpu=1")
    a_cpus = cpus_of(sk, a)
    assert len(a_cpus) == 1
    p = placement(sk, a)
    assert (p["placement"], p["cpus"], p["node"]) == ("dedicated", fmt(a_cpus), 0), p
    if CGROUP_V1:
        assert cg(sk, a, "cpuset.mems") == "0"
    # the unpinned instance left a's CPU, live (same init)
    assert cpus_of(sk, s) == ONLINE - a_cpus
    assert sk.api.pid(s) == s_pid
    assert capacity(sk)["cpus_committed"] == 1
    info = sk.kiva("info", a).stdout
    assert "dedicated" in info and fmt(a_cpus) in info, info

    # fill the host (NCPU - 1 more), then one more is refused with the numbers
    rest = []
    for _ in range(NCPU - 1):
        rest.append(sn())
        launch(sk, rest[-1], "limits.cpu=1")
    dedicated = a_cpus.union(*(cpus_of(sk, n) for n in rest))
    assert dedicated == ONLINE, "dedicated CPUs overlap"
    # every CPU dedicated: unpinned instances run on all of them rather than on none
    assert cpus_of(sk, s) == ONLINE
    r = launch(sk, c, "limits.cpu=1", check=False)
    refused(r, f"needs 1 CPUs, host has {NCPU} (target 1 → {NCPU} usable, {NCPU} committed)")
    assert c not in sk.api.instance_names() and c not in sk.lxc_ls()

    # stopping one gives its CPU back: the shared set has it again, and c fits
    sk.kiva("stop", "--force", a)
    assert capacity(sk)["cpus_committed"] == NCPU - 1
    assert cpus_of(sk, s) == a_cpus
    launch(sk, c, "limits.cpu=1")
    assert cpus_of(sk, c) == a_cpus
    # and a cannot start again while c holds the last CPU
    refused(sk.kiva("start", a, check=False), "needs 1 CPUs", f"{NCPU} committed")
    assert sk.api.state(a)["status"] == "Stopped"
    # deleting gives CPUs back too
    freed = cpus_of(sk, rest[0])
    sk.kiva("delete", "--force", rest[0])
    assert capacity(sk)["cpus_committed"] == NCPU - 1
    assert cpus_of(sk, s) == freed


def test_explicit_list_is_exact_and_exclusive(sk, sn):
    p, q, r = sn(), sn(), sn()
    last = max(ONLINE)
    launch(sk, p, f"limits.cpu={last}-{last}")
    assert cpus_of(sk, p) == {last}
    assert placement(sk, p)["placement"] == "dedicated"
    res = launch(sk, q, f"limits.cpu=0-{last}", check=False)
    refused(res, f"CPU {last} is already dedicated to instance '{p}'")
    assert q not in sk.api.instance_names()
    # a count takes what is left
    launch(sk, r, "limits.cpu=1")
    assert cpus_of(sk, r) != {last} and len(cpus_of(sk, r)) == 1
    # a list naming a CPU that does not exist
    bad = sn()
    refused(launch(sk, bad, "limits.cpu=0,200", check=False), "limits.cpu")


def test_live_resize_repins_without_restart(sk, sn):
    a, b = sn(), sn()
    launch(sk, a, "limits.cpu=1")
    pid = sk.api.pid(a)
    sk.kiva("config", "set", a, "limits.cpu", str(NCPU))
    assert cpus_of(sk, a) == ONLINE
    assert sk.api.pid(a) == pid
    assert sk.kiva("exec", a, "--", "nproc").stdout.strip() == str(NCPU)
    assert capacity(sk)["cpus_committed"] == NCPU
    sk.kiva("config", "set", a, "limits.cpu", "1")
    kept = cpus_of(sk, a)
    assert len(kept) == 1 and sk.api.pid(a) == pid
    assert capacity(sk)["cpus_committed"] == 1

    launch(sk, b, "limits.cpu=1")
    r = sk.kiva("config", "set", a, "limits.cpu", str(NCPU), check=False)
    refused(r, f"needs {NCPU} CPUs, host has {NCPU} (target 1 → {NCPU} usable, 1 committed)")
    # nothing changed: record, cgroups
    assert sk.api.instance(a)["config"]["limits.cpu"] == "1"
    assert cpus_of(sk, a) == kept
    assert len(cpus_of(sk, b)) == 1 and not cpus_of(sk, b) & kept


def test_stopped_instances_hold_nothing_unless_reserved(sk, sn):
    a, b, x = sn(), sn(), sn()
    launch(sk, a, f"limits.cpu={NCPU}")
    sk.kiva("stop", "--force", a)
    assert capacity(sk)["cpus_committed"] == 0
    assert placement(sk, a)["placement"] == "none"
    launch(sk, b, "limits.cpu=1")
    # a stopped instance whose CPUs are taken is refused at start, not at stop
    refused(sk.kiva("start", a, check=False), f"needs {NCPU} CPUs")
    # creating one that could not start now is refused too (it would never fit)
    refused(sk.kiva("init", "busybox", x, "-c", f"limits.cpu={NCPU}", check=False),
            f"needs {NCPU} CPUs")
    assert x not in sk.api.instance_names()
    # reserving while b holds a CPU is refused; once b is gone it holds while stopped
    refused(sk.kiva("config", "set", a, "limits.cpu.reserve", "true", check=False),
            f"needs {NCPU} CPUs")
    assert "limits.cpu.reserve" not in sk.api.instance(a)["config"]
    sk.kiva("delete", "--force", b)
    sk.kiva("config", "set", a, "limits.cpu.reserve", "true")
    assert capacity(sk)["cpus_committed"] == NCPU
    assert placement(sk, a)["placement"] == "dedicated"
    refused(launch(sk, b, "limits.cpu=1", check=False), "needs 1 CPUs")
    sk.kiva("start", a)
    assert cpus_of(sk, a) == ONLINE
    sk.kiva("stop", "--force", a)
    assert capacity(sk)["cpus_committed"] == NCPU
    sk.kiva("config", "unset", a, "limits.cpu.reserve")
    assert capacity(sk)["cpus_committed"] == 0


def test_instance_that_stops_by_itself_releases_its_cpus(sk, sn):
    a = sn()
    launch(sk, a, "limits.cpu=1")
    assert capacity(sk)["cpus_committed"] == 1
    # busybox init halts on SIGPWR; sent from the host (an exec'd kill is itself killed by the
    # halt, racing its own exit code) once init traps it.
    os.kill(wait_init_ready(sk.api, a), signal.SIGPWR)
    wait_until(lambda: sk.api.state(a)["status"] == "Stopped", timeout=15, what="halt")
    wait_until(lambda: capacity(sk)["cpus_committed"] == 0, timeout=10,
               what="kivad's watch to release the CPU")


def write_capacity(d, text):
    with open(d.cap, "w") as f:
        f.write(text)


def test_capacity_file_sighup_api_reload_and_bad_values(sk, sn):
    a, m = sn(), sn()
    write_capacity(sk, f"z600_capacity:\n  cpu_total: {NCPU}\n  target_utilization: 0.5\n")
    os.kill(sk.pid(), signal.SIGHUP)
    wait_until(lambda: capacity(sk)["target_utilization"] == 0.5, what="SIGHUP reload")
    cap = capacity(sk)
    assert cap["source"] == sk.cap and cap["cpus_usable"] == NCPU // 2
    refused(launch(sk, a, f"limits.cpu={NCPU}", check=False),
            f"needs {NCPU} CPUs, host has {NCPU} (target 0.5 → {NCPU // 2} usable, 0 committed)")
    big = cap["memory_usable"] + 64 * 1024 * 1024
    refused(launch(sk, m, f"limits.memory={big}", check=False), "GiB of memory",
            "target 0.5")
    assert not {a, m} & sk.api.instance_names()

    # bad files are refused with the key named, and the capacity in force stays
    for text, words in [
        ("z600_capacity:\n  target_utilization: 1.5\n", ["target_utilization", "1.5"]),
        ("z600_capacity:\n  target_utilization: 0\n", ["target_utilization"]),
        (f"z600_capacity:\n  cpu_total: {NCPU + 62}\n", ["cpu_total", str(NCPU + 62)]),
        ("z600_capacity:\n  ram_total_gb: lots\n", ["ram_total_gb"]),
        ("z600_capacity:\n  cpu_totl: 2\n", ["cpu_totl"]),
        ("capacity:\n  cpu_total: 2\n", ["z600_capacity"]),
    ]:
        write_capacity(sk, text)
        st, body = sk.api.post("/1.0/resources/capacity")
        assert st == 400, body
        for w in words:
            assert w in body["error"], (text, body)
        assert capacity(sk)["target_utilization"] == 0.5
    # the API reload takes a good file at once
    write_capacity(sk, "z600_capacity:\n  target_utilization: 1.0\n")
    st, body = sk.api.post("/1.0/resources/capacity")
    assert st == 200 and body["metadata"]["target_utilization"] == 1.0, body
    launch(sk, a, f"limits.cpu={NCPU}")
    assert cpus_of(sk, a) == ONLINE


def test_kivad_refuses_to_start_on_a_bad_capacity_file():
    d = Kivad("its")
    try:
        cap = os.path.join(d.dir, "capacity.yaml")
        with open(cap, "w") as f:
            f.write("z600_capacity:\n  target_utilization: 2\n")
        d.extra_args = ["--capacity", cap, "--default-network", "none"]
        r = subprocess.run(d.command(), capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        assert "target_utilization" in r.stderr and "line 2" in r.stderr, r.stderr
        assert not d.pids()
    finally:
        d.teardown()


def test_restart_keeps_valid_cpus_and_fixes_drift(sk, sn):
    a, s, gone = sn(), sn(), sn()
    launch(sk, a, "limits.cpu=1")
    launch(sk, s)
    launch(sk, gone, "limits.cpu=1") if NCPU > 2 else launch(sk, gone)
    a_cpus = cpus_of(sk, a)
    # a plain restart (kill -9): a keeps its CPU
    sk.kill()
    sk.start()
    assert cpus_of(sk, a) == a_cpus
    assert placement(sk, a)["cpus"] == fmt(a_cpus)

    # drift while kivad is down: a spread over every CPU, the shared one squeezed onto a's
    sk.kill()
    pid_a = read_pid(sk, a)
    pid_s = read_pid(sk, s)
    base_a = cgroup_path(pid_a, "cpuset" if CGROUP_V1 else "")
    base_s = cgroup_path(pid_s, "cpuset" if CGROUP_V1 else "")
    write(os.path.join(base_a, "cpuset.cpus"), ALL)
    write(os.path.join(base_s, "cpuset.cpus"), fmt(a_cpus))
    # and one stops while kivad is down: its CPUs must not be counted
    subprocess.run(["lxc-stop", "-P", sk.lxcpath, "-n", gone, "-k"], check=True,
                   capture_output=True, timeout=60)
    sk.start()
    new_a = cpus_of(sk, a)
    assert len(new_a) == 1, new_a
    assert cpus_of(sk, s) == ONLINE - new_a
    assert capacity(sk)["cpus_committed"] == 1
    assert "re-pinned" in sk.log_tail(80)


def read_pid(d, name):
    r = subprocess.run(["lxc-info", "-P", d.lxcpath, "-n", name, "-p", "-H"],
                       capture_output=True, text=True, check=True)
    return int(r.stdout.strip())


def write(path, value):
    with open(path, "w") as f:
        f.write(value)


def test_resources_api_and_cli(sk, sn):
    a = sn()
    launch(sk, a, "limits.cpu=1", "limits.memory=64MB")
    st, body = sk.api.get("/1.0/resources")
    assert st == 200, body
    res = body["metadata"]
    assert res["cpu"]["total"] == NCPU
    threads = [t for s in res["cpu"]["sockets"] for c in s["cores"] for t in c["threads"]]
    assert {t["id"] for t in threads} == ONLINE
    assert res["memory"]["total"] > 0 and res["memory"]["nodes"][0]["numa_node"] == 0
    node0 = res["numa"][0]
    assert cpu_list(node0["cpus"]) == ONLINE
    assert node0["cpus_dedicated_count"] == 1 and cpu_list(node0["cpus_dedicated"]) == \
        cpus_of(sk, a)
    assert node0["memory_committed"] == 64_000_000
    cap = res["capacity"]
    assert (cap["cpus_committed"], cap["memory_committed"]) == (1, 64_000_000)
    assert cpu_list(cap["shared_cpus"]) == ONLINE - cpus_of(sk, a)
    assert set(res["sensors"]) >= {"cpufreq", "thermal", "power", "memory_controllers"}
    out = sk.kiva("info", "--resources").stdout
    assert "NUMA" in out and "node 0" in out.lower(), out


def test_governor_needs_cpufreq(sk):
    if os.path.isdir("/sys/devices/system/cpu/cpu0/cpufreq"):
        pytest.skip("this host has cpufreq: the fixture test covers the refusal path")
    st, body = sk.api.patch("/1.0", {"config": {"host.cpu.governor": "performance"}})
    assert st == 400, body
    assert "no CPU frequency scaling" in body["error"], body
    st, srv = sk.api.get("/1.0")
    assert "host.cpu.governor" not in srv["metadata"]["config"]
    st, body = sk.api.patch("/1.0", {"config": {"bogus.key": "1"}})
    assert st == 400 and "Unknown server configuration key: bogus.key" in body["error"], body
