"""kivad killed (SIGKILL) or stopped (SIGTERM) at awkward moments, then started again on the same
state dir, socket and raft address: the store replays, reconcile finishes or undoes half-made
work, running containers are never touched. Each test runs its own kivad."""

import json
import subprocess
import threading
import time

import pytest

from conftest import pid_alive, unique_name, wait_init_ready


def api_view(d):
    """What a client sees: instances, images, aliases."""
    api = d.api
    return {
        "instances": sorted(api.instances(), key=lambda i: i["name"]),
        "images": sorted(api.get("/1.0/images?recursion=1")[1]["metadata"],
                         key=lambda i: i["fingerprint"]),
        "aliases": sorted(api.get("/1.0/images/aliases?recursion=1")[1]["metadata"],
                          key=lambda a: json.dumps(a, sort_keys=True)),
    }


def lxc_pids(d):
    """Init pid of every running container, from liblxc (works while kivad is down)."""
    pids = {}
    for name in d.lxc_running():
        r = subprocess.run(["lxc-info", "-P", d.lxcpath, "-n", name, "-p", "-H"],
                           capture_output=True, text=True)
        if r.stdout.strip().isdigit():
            pids[name] = int(r.stdout.strip())
    return pids


def assert_consistent(d):
    """Every instance is Running or Stopped and usable; the API, liblxc and the pool agree."""
    insts = {i["name"]: i for i in d.api.instances()}
    assert set(insts) == d.lxc_ls(), (set(insts), d.lxc_ls(), d.log_tail())
    assert set(insts) == d.volumes(), (set(insts), d.volumes(), d.log_tail())
    for name, inst in insts.items():
        assert inst["status"] in ("Running", "Stopped"), inst
        if inst["status"] == "Stopped":
            d.kiva("start", name)
        assert d.kiva("exec", name, "--", "hostname").stdout == f"{name}\n"
    return insts


def delete_all_and_check(d):
    names = d.api.instance_names()
    for name in names:
        d.kiva("delete", "--force", name)
    assert d.api.instance_names() == set()
    assert d.lxc_ls() == set()
    assert d.volumes() == set()


@pytest.mark.parametrize("delay", [0.1, 0.05, 0.02])
def test_kill9_during_launches(kivad_factory, delay):
    """8 launches in flight, SIGKILL after `delay` s (launches take tens of ms: the shorter
    delays catch them before their record is ready, the longer ones while they start)."""
    d = kivad_factory()
    pre_running, pre_stopped = unique_name(), unique_name()
    d.kiva("launch", "busybox", pre_running, "-c", "limits.memory=64MB")
    d.kiva("init", "busybox", pre_stopped)
    pre_pid = d.api.pid(pre_running)

    batch = [unique_name("itk") for _ in range(8)]
    results = {}

    def launch(name):
        results[name] = d.kiva("launch", "busybox", name, check=False, timeout=60)

    threads = [threading.Thread(target=launch, args=(n,)) for n in batch]
    for t in threads:
        t.start()
    time.sleep(delay)
    d.kill()
    for t in threads:
        t.join()
    running_at_kill = lxc_pids(d)
    print("launch exit codes:", sorted(r.returncode for r in results.values()),
          "running at kill:", len(running_at_kill))

    d.start()
    insts = {i["name"]: i for i in d.api.instances()}
    # Nothing committed is lost: what existed before, and every launch that reported success.
    assert insts[pre_running]["status"] == "Running"
    assert d.api.pid(pre_running) == pre_pid
    assert insts[pre_running]["config"]["limits.memory"] == "64MB"
    assert insts[pre_stopped]["status"] == "Stopped"
    succeeded = {n for n, r in results.items() if r.returncode == 0}
    assert succeeded <= set(insts), (succeeded - set(insts), d.log_tail())
    for name in succeeded:
        assert insts[name]["status"] == "Running", insts[name]
    # Containers running when kivad died still run, with the same init.
    for name, pid in running_at_kill.items():
        assert name in insts, (name, d.log_tail())
        assert insts[name]["status"] == "Running"
        assert d.api.pid(name) == pid and pid_alive(pid)
    # Failed launches say so on stderr.
    for name, r in results.items():
        if r.returncode != 0:
            assert r.returncode == 1 and r.stderr.startswith("Error: "), r.stderr

    assert_consistent(d)
    delete_all_and_check(d)


def test_kill9_while_idle_replays_everything(kivad_factory):
    d = kivad_factory()
    running, stopped, frozen = unique_name(), unique_name(), unique_name()
    d.kiva("launch", "busybox", running, "-c", "limits.cpu=1", "-c", "limits.processes=64")
    d.kiva("init", "busybox", stopped, "-c", "user.note=kept")
    d.kiva("launch", "busybox", frozen)
    d.kiva("pause", frozen)
    d.kiva("config", "set", running, "limits.memory", "96MB")
    fp = d.api.get("/1.0/images/aliases/busybox")[1]["metadata"]["target"]
    assert d.api.post("/1.0/images/aliases", {"name": "extra-alias", "target": fp})[0] == 200
    before = api_view(d)
    pids = {n: d.api.pid(n) for n in (running, frozen)}

    d.kill()
    d.start()

    assert api_view(d) == before
    assert {n: d.api.pid(n) for n in (running, frozen)} == pids
    assert d.api.state(frozen)["status"] == "Frozen"
    d.kiva("resume", frozen)
    assert_consistent(d)
    delete_all_and_check(d)


def test_sigterm_leaves_containers_running(kivad_factory):
    d = kivad_factory()
    c = unique_name()
    d.kiva("launch", "busybox", c)
    pid = d.api.pid(c)
    log_before = d.log_tail()
    d.stop()
    assert "shutting down" in d.log_tail() and d.log_tail() != log_before
    # kivad is gone, the container is not.
    assert d.pids() == []
    assert not d.api.alive()
    assert pid_alive(pid)
    assert c in d.lxc_running()
    r = subprocess.run(["lxc-attach", "-P", d.lxcpath, "-n", c, "--", "hostname"],
                       capture_output=True, text=True)
    assert r.stdout == f"{c}\n"


def test_sigterm_then_restart_same_state(kivad_factory):
    d = kivad_factory()
    running, stopped = unique_name(), unique_name()
    d.kiva("launch", "busybox", running, "-c", "limits.memory=64MB")
    d.kiva("init", "busybox", stopped)
    before = api_view(d)
    pid = d.api.pid(running)

    d.restart()

    assert api_view(d) == before
    assert d.api.pid(running) == pid
    assert d.kiva("exec", running, "--", "hostname").stdout == f"{running}\n"
    # Still managed: live limits and graceful stop work on the adopted container.
    d.kiva("config", "set", running, "limits.memory", "128MB")
    wait_init_ready(d.api, running)
    d.kiva("stop", running)
    assert not pid_alive(pid)
    assert_consistent(d)
    delete_all_and_check(d)


def test_kill9_during_deletes(kivad_factory):
    d = kivad_factory()
    batch = [unique_name("itd") for _ in range(6)]
    for n in batch:
        d.kiva("launch", "busybox", n)
    threads = [threading.Thread(target=d.kiva, args=("delete", "--force", n),
                                kwargs={"check": False}) for n in batch]
    for t in threads:
        t.start()
    time.sleep(0.05)
    d.kill()
    for t in threads:
        t.join()
    d.start()
    insts = assert_consistent(d)
    assert set(insts) <= set(batch)
    delete_all_and_check(d)
