"""The lifecycle of issue #2 on a real container: launch, list, exec, info, stop, start,
restart, pause, resume, live limits in the container's cgroups, delete."""

import csv
import io
import json
import os
import time

import pytest

from conftest import (cpu_list_count, cpuset_cpus, frozen_in_cgroup, host_uid_of, memory_limit,
                      pid_alive, pids_max, wait_init_ready, wait_until)


def table_rows(text):
    """Rows of a kiva table as lists of stripped cells (header included)."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]


def list_status(kiva, name):
    """The STATE column of `kiva list --format csv` for name, or None when it is not listed."""
    out = kiva("list", "--format", "csv").stdout
    for row in csv.reader(io.StringIO(out)):
        if row and row[0] == name:
            return row[1]
    return None


def launch(kiva, name, *config):
    args = ["launch", "busybox", name]
    for c in config:
        args += ["-c", c]
    kiva(*args)
    return name


def test_launch_list_exec_info(kivad, kiva, api, names):
    c = launch(kiva, names(), "limits.cpu=1", "limits.memory=64MB")

    table = kiva("list").stdout
    rows = table_rows(table)
    assert rows[0][:2] == ["NAME", "STATE"], table
    assert [c, "RUNNING"] in [r[:2] for r in rows], table

    listed = json.loads(kiva("list", "--format", "json").stdout)
    mine = [i for i in listed if i["name"] == c]
    assert len(mine) == 1, listed
    assert mine[0]["status"] == "Running" and mine[0]["status_code"] == 103
    assert mine[0]["config"]["limits.memory"] == "64MB"
    assert mine[0]["config"]["limits.cpu"] == "1"
    assert mine[0]["config"]["volatile.base_image"]
    assert mine[0]["state"]["pid"] > 1

    csv_rows = list(csv.reader(io.StringIO(kiva("list", "--format", "csv").stdout)))
    assert [c, "RUNNING"] in [r[:2] for r in csv_rows]

    r = kiva("exec", c, "--", "sh", "-c", "echo hello from $(hostname)")
    assert r.stdout == f"hello from {c}\n"
    assert r.stderr == ""

    pid = api.pid(c)
    info = kiva("info", c).stdout
    assert f"Name: {c}" in info
    assert "Status: RUNNING" in info
    assert f"PID: {pid}" in info
    assert "limits.memory: 64MB" in info
    assert "limits.cpu: 1" in info

    # The limits are in the running container's cgroups.
    assert memory_limit(api, c) == 64_000_000
    cpus = cpuset_cpus(api, c)
    assert cpu_list_count(cpus) == 1, cpus
    assert api.state(c)["kiva"]["cpus"] == cpus
    assert api.state(c)["kiva"]["cpuset"] == cpus


def test_container_is_unprivileged(kiva, api, names):
    c = launch(kiva, names())
    pid = api.pid(c)
    assert host_uid_of(pid) == [100000] * 4
    # ... while it is root inside.
    assert kiva("exec", c, "--", "id", "-u").stdout.strip() == "0"
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", "100000", "65536"]


def test_stop_start_restart(kivad, kiva, api, names):
    c = launch(kiva, names())
    # Stop once init traps SIGPWR (see test_graceful_stop_right_after_launch for the race).
    pid1 = wait_init_ready(api, c)

    t0 = time.monotonic()
    kiva("stop", c)
    graceful = time.monotonic() - t0
    assert graceful < 1.0, f"graceful stop took {graceful:.2f}s"
    assert list_status(kiva, c) == "STOPPED"
    st = api.state(c)
    assert st["status"] == "Stopped" and st["status_code"] == 102 and st["pid"] == -1
    assert not pid_alive(pid1)
    assert c not in kivad.lxc_running()
    assert c in kivad.lxc_ls()

    kiva("start", c)
    assert list_status(kiva, c) == "RUNNING"
    pid2 = api.pid(c)
    assert pid2 > 1 and pid2 != pid1
    assert kiva("exec", c, "--", "true").returncode == 0

    wait_init_ready(api, c)
    kiva("restart", c)
    assert list_status(kiva, c) == "RUNNING"
    pid3 = api.pid(c)
    assert pid3 != pid2
    assert not pid_alive(pid2)
    assert kiva("exec", c, "--", "hostname").stdout.strip() == c


def test_graceful_stop_right_after_launch(kiva, names):
    """`kiva launch c && kiva stop c` must be as quick as any graceful stop (well under 1 s).
    Repeated because the race is lost only some of the time (about 2 launches in 5 here)."""
    for _ in range(15):
        c = launch(kiva, names())
        t0 = time.monotonic()
        kiva("stop", "--timeout", "3", c)
        took = time.monotonic() - t0
        assert took < 1.0, f"graceful stop right after launch took {took:.2f}s"
        kiva("delete", c)


def test_stop_force(kiva, api, names):
    c = launch(kiva, names())
    pid = api.pid(c)
    kiva("stop", "--force", c)
    assert list_status(kiva, c) == "STOPPED"
    assert not pid_alive(pid)


def test_pause_resume(kiva, api, names):
    c = launch(kiva, names())
    kiva("pause", c)
    assert list_status(kiva, c) == "FROZEN"
    st = api.state(c)
    assert st["status"] == "Frozen" and st["status_code"] == 110
    assert frozen_in_cgroup(api, c) == "FROZEN"

    kiva("resume", c)
    assert list_status(kiva, c) == "RUNNING"
    assert frozen_in_cgroup(api, c) == "THAWED"
    assert kiva("exec", c, "--", "echo", "awake").stdout == "awake\n"


def test_live_memory_limit_persists_across_stop_start(kiva, api, names):
    c = launch(kiva, names(), "limits.memory=64MB")
    assert memory_limit(api, c) == 64_000_000
    pid = api.pid(c)

    kiva("config", "set", c, "limits.memory", "128MB")
    assert api.pid(c) == pid, "a live limit must not restart the container"
    assert memory_limit(api, c) == 128_000_000
    assert kiva("config", "get", c, "limits.memory").stdout.strip() == "128MB"

    wait_init_ready(api, c)
    kiva("stop", c)
    kiva("start", c)
    assert api.pid(c) != pid
    assert memory_limit(api, c) == 128_000_000

    # KiB/MiB are powers of 1024.
    kiva("config", "set", c, "limits.memory=256MiB")
    assert memory_limit(api, c) == 256 * 1024 * 1024

    kiva("config", "unset", c, "limits.memory")
    assert memory_limit(api, c) is None
    assert "limits.memory" not in api.instance(c)["config"]


def test_live_processes_limit(kiva, api, names):
    c = launch(kiva, names(), "limits.processes=50")
    assert pids_max(api, c) == "50"
    forks = "for i in $(seq 30); do sleep 1 & done; echo all-forked; wait"
    r = kiva("exec", c, "--", "sh", "-c", forks)
    assert r.stdout == "all-forked\n"

    kiva("config", "set", c, "limits.processes", "20")
    assert pids_max(api, c) == "20"
    assert api.instance(c)["config"]["limits.processes"] == "20"
    # The kernel enforces it: 30 children cannot all be forked any more.
    r = kiva("exec", c, "--", "sh", "-c", forks, check=False)
    assert r.returncode != 0 and "all-forked" not in r.stdout
    assert "can't fork" in r.stderr, r.stderr

    kiva("config", "unset", c, "limits.processes")
    assert pids_max(api, c) == "max"


def test_cpu_count_and_list(kiva, api, names):
    ncpu = os.cpu_count()
    c = launch(kiva, names(), "limits.cpu=1")
    assert cpu_list_count(cpuset_cpus(api, c)) == 1

    kiva("config", "set", c, "limits.cpu", str(ncpu))
    cpus = cpuset_cpus(api, c)
    assert cpu_list_count(cpus) == ncpu, cpus
    assert api.state(c)["kiva"]["cpus"] == cpus
    assert kiva("exec", c, "--", "nproc").stdout.strip() == str(ncpu)

    # A list (LXD: "0-0" is CPU 0, "0" would be a count) pins exactly those CPUs.
    last = ncpu - 1
    kiva("config", "set", c, "limits.cpu", f"{last}-{last}")
    assert cpuset_cpus(api, c) == str(last)
    assert kiva("exec", c, "--", "nproc").stdout.strip() == "1"


def test_init_creates_a_stopped_instance(kivad, kiva, api, names):
    c = names()
    kiva("init", "busybox", c, "-c", "limits.memory=32MiB")
    assert list_status(kiva, c) == "STOPPED"
    assert c in kivad.lxc_ls() and c in kivad.volumes()
    kiva("start", c)
    assert memory_limit(api, c) == 32 * 1024 * 1024


def test_ephemeral_is_deleted_on_stop(kivad, kiva, api, names):
    c = names()
    kiva("launch", "busybox", c, "--ephemeral")
    assert list_status(kiva, c) == "RUNNING"
    wait_init_ready(api, c)
    kiva("stop", c)
    wait_until(lambda: list_status(kiva, c) is None, timeout=10, what="ephemeral deletion")
    assert c not in kivad.lxc_ls()
    assert c not in kivad.volumes()


def test_delete_running_without_force_is_refused(kiva, api, names):
    c = launch(kiva, names())
    r = kiva("delete", c, check=False)
    assert r.returncode == 1
    assert "running" in r.stderr.lower(), r.stderr
    assert list_status(kiva, c) == "RUNNING"
    status, body = api.delete(f"/1.0/instances/{c}")
    assert status == 400, body
    assert "running" in body["error"].lower()
    assert list_status(kiva, c) == "RUNNING"


def test_delete_force_removes_everything(kivad, kiva, api, names):
    c = launch(kiva, names())
    pid = api.pid(c)
    assert c in kivad.lxc_ls() and c in kivad.volumes()
    kiva("delete", "--force", c)
    assert list_status(kiva, c) is None
    assert c not in api.instance_names()
    status, body = api.get(f"/1.0/instances/{c}")
    assert status == 404 and body["error"] == f"Instance '{c}' not found"
    assert not pid_alive(pid)
    assert c not in kivad.lxc_ls()
    assert c not in kivad.volumes()
    assert not os.path.exists(os.path.join(kivad.pool, "containers", c))
    assert not os.path.exists(os.path.join(kivad.lxcpath, c))
    # Deleting it again says it is not there.
    r = kiva("delete", "--force", c, check=False)
    assert r.returncode == 1 and f"Instance '{c}' not found" in r.stderr


def test_delete_stopped(kivad, kiva, names):
    c = launch(kiva, names())
    kiva("stop", "--force", c)
    kiva("delete", c)
    assert list_status(kiva, c) is None
    assert c not in kivad.lxc_ls() and c not in kivad.volumes()


def test_server_info(kivad, api, kiva):
    status, body = api.get("/1.0")
    assert status == 200 and body["type"] == "sync"
    md = body["metadata"]
    assert md["api_version"] == "1.0"
    assert "instances" in md["api_extensions"]
    env = md["environment"]
    assert env["server"] == "kiva"
    assert env["server_pid"] == kivad.pid()
    assert env["storage"] == "btrfs"
    assert env["cgroup_version"] == (1 if os.path.isdir("/sys/fs/cgroup/memory") else 2)
    if not os.path.exists("/sys/kernel/security/apparmor"):
        assert env["lsm"] == "nop"
    r = kiva("info")
    assert "btrfs" in r.stdout


def test_api_create_is_async(kivad, api, kiva, names):
    c = names()
    status, body, headers = api.request_ex("POST", "/1.0/instances", {
        "name": c, "source": {"type": "image", "alias": "busybox"},
        "config": {"limits.memory": "64MB"}, "start": True})
    assert status == 202, body
    assert body["type"] == "async" and body["status_code"] == 100
    op_url = body["operation"]
    assert headers["Location"] == op_url
    assert f"/1.0/instances/{c}" in body["metadata"]["resources"]["instances"]
    op = api.wait((status, body))
    assert op["status"] == "Success" and op["status_code"] == 200 and op["err"] == "", op
    assert api.state(c)["status"] == "Running"
    st, ops = api.get("/1.0/operations")
    assert st == 200 and op_url in ops["metadata"]["success"]
    assert op["id"] in kiva("operation", "list").stdout
    # KIVA's operations cannot be cancelled.
    st, err = api.delete(op_url)
    assert st == 403 and err["error_code"] == 403


def test_concurrent_starts(kivad, api, kiva, names):
    c = names()
    kiva("init", "busybox", c)
    # Two starts sent back to back: the second is refused up front (409 while the first runs,
    # 400 once it is running) or its operation fails with a message; it ends up running once.
    ops = [api.put(f"/1.0/instances/{c}/state", {"action": "start"}) for _ in range(2)]
    results = []
    for status, body in ops:
        if status == 202:
            results.append(api.wait((status, body)))
        else:
            assert status in (400, 409), body
            if status == 409:
                assert body["error"] == f"Instance '{c}' is busy: Starting instance", body
    assert any(op["status"] == "Success" for op in results)
    for op in results:
        if op["status"] != "Success":
            assert op["status"] == "Failure" and op["err"], op
    assert api.state(c)["status"] == "Running"
    assert kiva("exec", c, "--", "true").returncode == 0
    assert len(kivad.lxc_running() & {c}) == 1


def test_exec_on_frozen_instance_is_refused(kiva, api, names):
    c = launch(kiva, names())
    kiva("pause", c)
    r = kiva("exec", c, "--", "true", check=False)
    assert r.returncode == 1 and r.stderr.startswith("Error: ")
    kiva("resume", c)
    assert kiva("exec", c, "--", "true").returncode == 0


def test_delete_during_start_is_refused(kivad, api, kiva, names):
    """A delete that comes while a start runs must not pull the rootfs from under it: it is
    refused (409 busy, or 400 once the instance runs) and the instance ends up running."""
    c = names()
    kiva("init", "busybox", c)
    start = api.put(f"/1.0/instances/{c}/state", {"action": "start"})
    status, body = api.delete(f"/1.0/instances/{c}")
    assert status in (400, 409), (status, body)
    if status == 409:
        assert body["error"] == f"Instance '{c}' is busy: Starting instance", body
    assert api.wait(start)["status"] == "Success"
    assert api.state(c)["status"] == "Running"
    assert c in kivad.lxc_running()
    assert kiva("exec", c, "--", "true").returncode == 0
