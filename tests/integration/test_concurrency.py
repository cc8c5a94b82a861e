"""20 containers launched at once by 20 `kiva launch` processes."""

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import host_uid_of, pid_alive

N = 20


def test_twenty_concurrent_launches(kivad, kiva, api, names):
    batch = [names("itc") for _ in range(N)]

    with ThreadPoolExecutor(max_workers=N) as pool:
        results = list(pool.map(lambda n: kiva("launch", "busybox", n, "-c", "limits.memory=64MB",
                                                check=False), batch))
    failed = [(n, r.returncode, r.stderr) for n, r in zip(batch, results) if r.returncode != 0]
    assert not failed, failed

    rows = {row[0]: row[1] for row in csv.reader(io.StringIO(kiva("list", "--format",
                                                                  "csv").stdout)) if row}
    assert {n: rows.get(n) for n in batch} == {n: "RUNNING" for n in batch}
    assert set(batch) <= kivad.lxc_running()
    assert set(batch) <= kivad.volumes()

    pids = {n: api.pid(n) for n in batch}
    assert len(set(pids.values())) == N, pids
    assert all(host_uid_of(p)[0] == 100000 for p in pids.values())

    # Each answers an exec, all at once.
    with ThreadPoolExecutor(max_workers=N) as pool:
        outs = list(pool.map(lambda n: kiva("exec", n, "--", "hostname", check=False), batch))
    assert [(r.returncode, r.stdout) for r in outs] == [(0, f"{n}\n") for n in batch]

    # No CPU count: all 20 run on the shared set (the CPUs no instance has for itself).
    st, cap = api.get("/1.0/resources/capacity")
    assert st == 200, cap
    for n in batch:
        kiva_state = api.state(n)["kiva"]
        assert kiva_state["placement"] == "shared", kiva_state
        assert kiva_state["cpuset"] == cap["metadata"]["shared_cpus"], kiva_state

    with ThreadPoolExecutor(max_workers=N) as pool:
        deleted = list(pool.map(lambda n: kiva("delete", "--force", n, check=False), batch))
    failed = [(n, r.returncode, r.stderr) for n, r in zip(batch, deleted) if r.returncode != 0]
    assert not failed, failed

    assert not set(batch) & api.instance_names()
    assert not set(batch) & kivad.lxc_ls()
    assert not set(batch) & kivad.volumes()
    assert not any(pid_alive(p) for p in pids.values())


def test_concurrent_execs_on_one_container(kiva, names):
    c = names()
    kiva("launch", "busybox", c)
    with ThreadPoolExecutor(max_workers=N) as pool:
        execs = list(pool.map(lambda i: kiva("exec", c, "--", "sh", "-c", f"echo {i}; exit {i % 3}",
                                             check=False), range(N)))
    assert [(r.returncode, r.stdout) for r in execs] == [(i % 3, f"{i}\n") for i in range(N)]


def test_concurrent_config_sets_are_all_kept(kiva, api, names):
    c = names()
    kiva("launch", "busybox", c)
    with ThreadPoolExecutor(max_workers=N) as pool:
        sets = list(pool.map(lambda i: kiva("config", "set", c, f"user.k{i}", str(i),
                                            check=False), range(N)))
    assert [(r.returncode, r.stderr) for r in sets] == [(0, "")] * N
    config = api.instance(c)["config"]
    kept = {k: config.get(k) for k in (f"user.k{i}" for i in range(N))}
    assert kept == {f"user.k{i}": str(i) for i in range(N)}


def test_concurrent_patches_are_all_kept(api, kiva, names):
    """PATCH merges: parallel PATCHes of different keys all stick."""
    c = names()
    kiva("init", "busybox", c)
    with ThreadPoolExecutor(max_workers=N) as pool:
        statuses = list(pool.map(lambda i: api.patch(f"/1.0/instances/{c}",
                                                     {"config": {f"user.p{i}": str(i)}})[0],
                                 range(N)))
    assert statuses == [200] * N
    config = api.instance(c)["config"]
    assert {k: config.get(k) for k in (f"user.p{i}" for i in range(N))} == \
        {f"user.p{i}": str(i) for i in range(N)}


def test_concurrent_creates_of_one_name(kivad, kiva, names):
    """Eight clients create the same name at once: exactly one wins, the others get 'already
    exists', and only one container and one rootfs exist afterwards."""
    c = names()
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _: kiva("launch", "busybox", c, check=False), range(8)))
    ok = [r for r in runs if r.returncode == 0]
    refused = [r for r in runs if r.returncode != 0]
    assert len(ok) == 1, [(r.returncode, r.stderr) for r in runs]
    for r in refused:
        assert f"Instance '{c}' already exists" in r.stderr, r.stderr
    assert kivad.lxc_ls() & {c} == {c}
    assert os.path.isdir(os.path.join(kivad.pool, "containers", c))
    assert kiva("exec", c, "--", "true").returncode == 0
