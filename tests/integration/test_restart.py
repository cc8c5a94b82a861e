"""kivad restarts: the store replays (from its log and its snapshots) to the same instances,
images and aliases, and running containers keep running through it."""

import json
import os
import subprocess
import time

import pytest

from conftest import KIVAD, pid_alive, unique_name


def api_view(d):
    api = d.api
    return {
        "instances": sorted(api.instances(), key=lambda i: i["name"]),
        "images": sorted(api.get("/1.0/images?recursion=1")[1]["metadata"],
                         key=lambda i: i["fingerprint"]),
        "aliases": sorted(api.get("/1.0/images/aliases?recursion=1")[1]["metadata"],
                          key=lambda a: json.dumps(a, sort_keys=True)),
    }


def test_restart_shared_kivad_replays_state(kivad, kiva, api, names):
    """SIGTERM + start on the session's kivad, whose store holds every earlier test's history."""
    running, stopped = names(), names()
    kiva("launch", "busybox", running, "-c", "limits.memory=64MB", "-c", "limits.cpu=1")
    kiva("init", "busybox", stopped, "-c", "user.note=hello")
    alias = unique_name("al")
    fp = api.get("/1.0/images/aliases/busybox")[1]["metadata"]["target"]
    assert api.post("/1.0/images/aliases", {"name": alias, "target": fp})[0] == 200
    before = api_view(kivad)
    pid = api.pid(running)
    lxc_before, volumes_before = kivad.lxc_ls(), kivad.volumes()

    t0 = time.monotonic()
    kivad.restart()
    took = time.monotonic() - t0

    assert api_view(kivad) == before
    assert api.pid(running) == pid and pid_alive(pid)
    assert kivad.lxc_ls() == lxc_before and kivad.volumes() == volumes_before
    assert kiva("exec", running, "--", "hostname").stdout == f"{running}\n"
    kiva("start", stopped)
    assert kiva("exec", stopped, "--", "hostname").stdout == f"{stopped}\n"
    assert api.delete(f"/1.0/images/aliases/{alias}")[0] == 200
    assert took < 5, f"restart took {took:.1f}s"


def test_restart_after_snapshot(kivad_factory):
    """More changes than the snapshot threshold (1024): the restart restores the snapshot and
    replays the entries after it."""
    d = kivad_factory()
    c = unique_name()
    d.kiva("init", "busybox", c)
    for i in range(1100):
        status, body = d.api.patch(f"/1.0/instances/{c}", {"config": {"user.n": str(i)}})
        assert status == 200, body
    snapshots = [f for f in os.listdir(os.path.join(d.dir, "raft")) if f.startswith("snapshot")]
    assert snapshots, os.listdir(os.path.join(d.dir, "raft"))
    before = api_view(d)
    d.kill()
    d.start()
    assert api_view(d) == before
    assert d.api.instance(c)["config"]["user.n"] == "1099"


def test_second_kivad_on_same_state_dir_refused(kivad):
    port = kivad.port + 1
    r = subprocess.run([KIVAD, "--state-dir", kivad.dir, "--socket", kivad.socket + ".2",
                        "--raft-address", f"127.0.0.1:{port}", "--daemon"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"Another kivad is running on {kivad.dir}" in r.stderr
    assert kivad.api.alive() and len(kivad.pids()) == 1
    assert not os.path.exists(kivad.socket + ".2")


def test_raft_address_in_use_is_a_clear_error(kivad_factory, kivad):
    d = kivad_factory(build_busybox=False)
    d.stop()
    d.port = kivad.port  # taken by the shared kivad
    r = subprocess.run(d.command(), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"127.0.0.1:{kivad.port}" in r.stderr
    assert "in use" in r.stderr.lower(), r.stderr
    assert kivad.api.alive()


def test_second_kivad_does_not_steal_a_live_socket(kivad_factory, kivad):
    d = kivad_factory(build_busybox=False)
    d.stop()
    server_pid = kivad.api.get("/1.0")[1]["metadata"]["environment"]["server_pid"]
    cmd = [KIVAD, "--state-dir", d.dir, "--socket", kivad.socket,
           "--raft-address", f"127.0.0.1:{d.port}", "--pool-size", "3GiB", "--daemon"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    try:
        assert kivad.api.get("/1.0")[1]["metadata"]["environment"]["server_pid"] == server_pid
        assert r.returncode != 0
        assert kivad.socket in r.stderr
    finally:
        if r.returncode == 0:
            # Give the shared kivad its socket back: stop the intruder, restart the shared one.
            d.stop()
            kivad.restart()
