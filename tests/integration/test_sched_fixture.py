"""The scheduler on the box KIVA is built for: kivad reads a two-socket HP Z600 (2 × 6 cores ×
2 threads, 2 × 24 GB, cpufreq, thermal zones, RAPL, EDAC with corrected errors on node 1) from a
copy of tests/fixtures/sched/z600 (--sys-root), with the seed's capacity file (12 CPUs, target
0.85). Instances are only created here, never started: the fake CPUs are not this host's. A
reserved instance (limits.cpu.reserve) is placed at creation, which is what these tests look at.
"""

import os
import shutil
import time

import pytest

from conftest import instance_names, running_kivad

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "sched", "z600")
NODE = [set(range(0, 6)) | set(range(12, 18)), set(range(6, 12)) | set(range(18, 24))]
SIBLING = {c: (c + 12) % 24 for c in range(24)}


def cpu_list(s):
    out = set()
    for part in filter(None, s.strip().split(",")):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def _z600_args(d):
    d.root = os.path.join(d.dir, "root")
    shutil.copytree(FIXTURE, d.root, symlinks=True)
    d.cap = os.path.join(d.dir, "capacity.yaml")
    with open(d.cap, "w") as f:
        f.write("# the seed's keys\nz600_capacity:\n  cpu_total: 12\n  ram_total_gb: 48\n"
                "  disk_total_gb: 100\n  target_utilization: 0.85\n")
    d.extra_args = ["--sys-root", d.root, "--capacity", d.cap, "--default-network", "none"]


@pytest.fixture(scope="module")
def z600():
    yield from running_kivad("itz", _z600_args)


@pytest.fixture
def zn(z600):
    yield from instance_names(z600, "z")
    z600.api.patch("/1.0", {"config": {"host.cpu.governor": None}})


def init(d, name, *config, check=True):
    args = ["init", "busybox", name]
    for c in config:
        args += ["-c", c]
    return d.kiva(*args, check=check)


def capacity(d):
    st, body = d.api.get("/1.0/resources/capacity")
    assert st == 200, body
    return body["metadata"]


def governor(d, cpu):
    with open(os.path.join(d.root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor")) \
            as f:
        return f.read().strip()


def test_resources_show_the_z600(z600):
    st, body = z600.api.get("/1.0/resources")
    assert st == 200, body
    res = body["metadata"]
    cpu = res["cpu"]
    assert cpu["total"] == 24 and len(cpu["sockets"]) == 2
    for sock in cpu["sockets"]:
        assert len(sock["cores"]) == 6
        assert all(len(c["threads"]) == 2 for c in sock["cores"])
        assert sock["frequency_turbo"] == 3460 and sock["frequency_minimum"] == 1600
    assert [n["total"] for n in res["memory"]["nodes"]] == [res["numa"][0]["memory_total"],
                                                            res["numa"][1]["memory_total"]]
    assert [cpu_list(n["cpus"]) for n in res["numa"]] == NODE
    # EDAC: mc1 (node 1) reported 3 corrected errors
    assert res["numa"][1]["memory_errors"] == {"corrected": 3, "uncorrected": 0}
    assert res["numa"][1]["avoided_by_sensitive"] is True
    assert res["numa"][0]["avoided_by_sensitive"] is False
    sensors = res["sensors"]
    assert [(z["type"], z["temperature"]) for z in sensors["thermal"]] == \
        [("x86_pkg_temp", 52.0), ("x86_pkg_temp", 55.0)]
    assert [z["name"] for z in sensors["power"]] == ["package-0", "package-1"]
    assert len(sensors["cpufreq"]) == 24 and sensors["cpufreq"][0]["governor"] == "ondemand"
    cap = res["capacity"]
    assert (cap["cpu_total"], cap["target_utilization"], cap["cpus_usable"]) == (12, 0.85, 10)
    assert cap["source"] == z600.cap
    out = z600.kiva("info", "--resources").stdout
    for word in ("x86_pkg_temp", "package-0", "0.85"):
        assert word in out, out


def test_admission_message_gives_the_numbers(z600, zn):
    big = zn()
    r = init(z600, big, "limits.cpu=64", check=False)
    assert r.returncode != 0
    assert "needs 64 CPUs, host has 12 (target 0.85 → 10 usable, 0 committed)" in r.stderr, \
        r.stderr
    db = zn()
    init(z600, db, "limits.cpu=4", "limits.memory=8GB", "limits.cpu.reserve=true")
    r = init(z600, zn(), "limits.cpu=7", check=False)
    assert "needs 7 CPUs, host has 12 (target 0.85 → 10 usable, 4 committed)" in r.stderr, \
        r.stderr
    r = init(z600, zn(), "limits.memory=40GB", check=False)
    assert "needs 37.3 GiB of memory" in r.stderr and "target 0.85" in r.stderr, r.stderr
    r = init(z600, zn(), "limits.disk=90GB", check=False)
    assert "needs 90.0 GB of disk, host has 100.0 GB (target 0.85 → 85.0 GB usable" in \
        r.stderr, r.stderr
    assert big not in z600.api.instance_names()


def test_count_is_whole_cores_on_one_node_with_its_memory(z600, zn):
    a, b = zn(), zn()
    init(z600, a, "limits.cpu=4", "limits.memory=8GB", "limits.cpu.reserve=true")
    p = z600.api.state(a)["kiva"]
    cpus = cpu_list(p["cpus"])
    assert p["placement"] == "dedicated" and len(cpus) == 4
    assert cpus <= NODE[p["node"]] and p["mems"] == str(p["node"])
    assert all(SIBLING[c] in cpus for c in cpus), "whole cores with their siblings first"
    # the next one goes to the least-loaded node
    init(z600, b, "limits.cpu=4", "limits.cpu.reserve=true")
    q = z600.api.state(b)["kiva"]
    assert q["node"] != p["node"] and not cpu_list(q["cpus"]) & cpus
    st, body = z600.api.get("/1.0/resources")
    numa = body["metadata"]["numa"]
    assert numa[p["node"]]["memory_committed"] == 8_000_000_000
    assert sum(n["cpus_dedicated_count"] for n in numa) == 8


def test_node_request_and_sensitive_instances(z600, zn):
    a, s = zn(), zn()
    init(z600, a, "limits.cpu=2", "limits.cpu.nodes=1", "limits.cpu.reserve=true")
    assert cpu_list(z600.api.state(a)["kiva"]["cpus"]) <= NODE[1]
    # node 1's memory controller reported errors: sensitive instances avoid it
    r = init(z600, zn(), "limits.cpu=2", "limits.cpu.nodes=1", "security.sensitive=true",
             check=False)
    assert "NUMA node 1's memory controller reported errors" in r.stderr, r.stderr
    for _ in range(2):  # whatever the load, never node 1
        name = zn()
        init(z600, name, "limits.cpu=2", "security.sensitive=true", "limits.cpu.reserve=true")
        assert z600.api.state(name)["kiva"]["node"] == 0
    r = init(z600, zn(), "limits.cpu.nodes=7", check=False)
    assert "NUMA node 7 does not exist" in r.stderr, r.stderr
    assert s not in z600.api.instance_names()


def test_explicit_list_overlap_is_refused(z600, zn):
    a = zn()
    init(z600, a, "limits.cpu=0-1", "limits.cpu.reserve=true")
    r = init(z600, zn(), "limits.cpu=1-2", "limits.cpu.reserve=true", check=False)
    assert f"CPU 1 is already dedicated to instance '{a}'" in r.stderr, r.stderr
    # without reserve it is only checked, and refused the same
    r = init(z600, zn(), "limits.cpu=1,3", check=False)
    assert "CPU 1 is already dedicated" in r.stderr, r.stderr


def test_host_cpu_governor_on_dedicated_cpus(z600, zn):
    a = zn()
    init(z600, a, "limits.cpu=2", "limits.cpu.reserve=true")
    mine = cpu_list(z600.api.state(a)["kiva"]["cpus"])
    st, body = z600.api.patch("/1.0", {"config": {"host.cpu.governor": "turbo"}})
    assert st == 400 and "turbo" in body["error"] and "performance" in body["error"], body
    assert all(governor(z600, c) == "ondemand" for c in range(24))

    z600.kiva("config", "set", "host.cpu.governor", "performance")
    assert z600.kiva("config", "get", "host.cpu.governor").stdout.strip() == "performance"
    assert {c for c in range(24) if governor(z600, c) == "performance"} == mine
    st, srv = z600.api.get("/1.0")
    assert srv["metadata"]["config"]["host.cpu.governor"] == "performance"
    # a new dedicated instance gets it too; a deleted one gives its CPUs their governor back
    b = zn()
    init(z600, b, "limits.cpu=2", "limits.cpu.reserve=true")
    theirs = cpu_list(z600.api.state(b)["kiva"]["cpus"])
    assert {c for c in range(24) if governor(z600, c) == "performance"} == mine | theirs
    z600.kiva("delete", a)
    assert {c for c in range(24) if governor(z600, c) == "performance"} == theirs
    # the setting survives a restart and is applied again
    z600.restart()
    assert cpu_list(z600.api.state(b)["kiva"]["cpus"]) == theirs, "reserved CPUs kept"
    assert {c for c in range(24) if governor(z600, c) == "performance"} == theirs
    # kivad's 2 s watch releases instances that stopped by themselves, never reserved ones
    committed = capacity(z600)["cpus_committed"]
    time.sleep(2.5)
    assert capacity(z600)["cpus_committed"] == committed
    assert "stopped by itself" not in z600.log_tail(200), z600.log_tail(20)
    z600.kiva("config", "unset", "host.cpu.governor")
    assert all(governor(z600, c) == "ondemand" for c in range(24))
    assert not os.path.exists(os.path.join(z600.dir, "cpu-governors"))
