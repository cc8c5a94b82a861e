"""Snapshots, restore, copies, schedules and limits.disk on a real kivad and real containers:
what a user sees through the API and in the containers' files."""

import os
import subprocess
import time
from datetime import datetime, timedelta

import pytest

from conftest import instance_names, running_kivad, wait_until

TREE_SUM = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o "
            "-type f -print | sort | while read f; do md5sum \"$f\"; "
            "stat -c '%a %u %g' \"$f\"; done")


@pytest.fixture(scope="module")
def sd():
    yield from running_kivad("itsnap")


@pytest.fixture
def nn(sd):
    yield from instance_names(sd, "sn")


def op(d, status_body, ok=True):
    res = d.api.wait(status_body)
    if ok:
        assert res["status"] == "Success", res
    return res


def snap(d, name, snapname=None, **extra):
    body = dict(extra)
    if snapname:
        body["name"] = snapname
    return op(d, d.api.post(f"/1.0/instances/{name}/snapshots", body))


def snapshots(d, name):
    st, body = d.api.get(f"/1.0/instances/{name}/snapshots?recursion=1")
    assert st == 200, body
    return {s["name"]: s for s in body["metadata"]}


def sh(d, name, script):
    rc, out, err = d.api.exec(name, ["sh", "-c", script])
    assert rc == 0, (script, out, err)
    return out.decode()


def snapshot_volumes(d):
    root = os.path.join(d.pool, "snapshots")
    out = set()
    if os.path.isdir(root):
        for inst in os.listdir(root):
            for v in os.listdir(os.path.join(root, inst)):
                out.add(f"{inst}/{v}")
    return out


def test_snapshot_of_a_running_writer_is_consistent(sd, nn):
    c, copy = nn(), nn()
    sd.kiva("launch", "busybox", c)
    # 8-byte records appended without pause; a cut record or a gap would show in the copy
    sd.api.post(f"/1.0/instances/{c}/exec", {
        "command": ["sh", "-c", "i=0; while :; do printf '%07d\\n' $i >> /root/log; "
                    "i=$((i+1)); done"],
        "wait-for-websocket": False, "record-output": False})
    wait_until(lambda: int(sh(sd, c, "cat /root/log 2>/dev/null | wc -c")) > 800, what="writes")
    t0 = time.monotonic()
    snap(sd, c, "mid")
    took = time.monotonic() - t0
    assert sd.api.state(c)["status"] == "Running"
    before = int(sh(sd, c, "wc -c < /root/log"))
    wait_until(lambda: int(sh(sd, c, "wc -c < /root/log")) > before, what="writes after")
    op(sd, sd.api.post("/1.0/instances", {"name": copy, "source": {"type": "copy",
                                                                   "source": f"{c}/mid"}}))
    with open(os.path.join(sd.pool, "containers", copy, "rootfs", "root", "log"), "rb") as f:
        data = f.read()
    assert data and len(data) % 8 == 0, len(data)
    nums = [int(x) for x in data.split()]
    assert nums == list(range(len(nums))), "a gap or a cut record"
    sh(sd, c, "kill $(pgrep -f 'printf') 2>/dev/null; true")
    assert took < 5, took


def test_restore_brings_back_exactly_the_files_and_config(sd, nn):
    c = nn()
    sd.kiva("launch", "busybox", c, "-c", "limits.memory=64MB")
    sh(sd, c, "echo one > /root/a; echo keep > /root/b; mkdir -p /root/d; echo x > /root/d/x")
    before = sh(sd, c, TREE_SUM)
    snap(sd, c, "s1")
    s = snapshots(sd, c)["s1"]
    assert s["config"]["limits.memory"] == "64MB" and s["stateful"] is False
    assert s["size"] > 0 and s["created_at"] and s["expires_at"].startswith("0001-01-01")
    sh(sd, c, "echo two > /root/a; rm /root/b; rm -r /root/d; touch /root/new; chmod 600 /root/a")
    sd.kiva("config", "set", c, "limits.memory", "128MB")
    assert sh(sd, c, TREE_SUM) != before
    pid = sd.api.pid(c)
    op(sd, sd.api.put(f"/1.0/instances/{c}", {"restore": "s1"}))
    # running before → running after (a new init), the files and the config of the snapshot
    assert sd.api.state(c)["status"] == "Running" and sd.api.pid(c) != pid
    assert sh(sd, c, TREE_SUM) == before
    assert sd.api.instance(c)["config"]["limits.memory"] == "64MB"
    # a stopped instance stays stopped; lxc sends the NAME/SNAP form
    sd.kiva("stop", "--force", c)
    op(sd, sd.api.put(f"/1.0/instances/{c}", {"restore": f"{c}/s1"}))
    st, b = sd.api.put(f"/1.0/instances/{c}", {"restore": "other/s1"})
    assert st == 400, b
    assert sd.api.state(c)["status"] == "Stopped"
    st, events = sd.api.get("/1.0/events?type=lifecycle")
    actions = [(e["metadata"]["action"], e["metadata"]["source"]) for e in events["metadata"]]
    assert ("instance-snapshot-created", f"/1.0/instances/{c}/snapshots/s1") in actions
    assert ("instance-restored", f"/1.0/instances/{c}/snapshots/s1") in actions


def test_names_rename_delete_and_bad_requests(sd, nn):
    c = nn()
    sd.kiva("launch", "busybox", c)
    vols = snapshot_volumes(sd)
    snap(sd, c)  # no name: the default pattern snap%d
    snap(sd, c)
    assert set(snapshots(sd, c)) == {"snap0", "snap1"}
    sd.kiva("config", "set", c, "snapshots.pattern", "pre-%d")
    snap(sd, c)
    assert "pre-0" in snapshots(sd, c)
    for body, status, words in [
        ({"name": "snap0"}, 409, "Snapshot 'snap0' already exists"),
        ({"name": "a/b"}, 400, "'/' is not allowed"),
        ({"name": ".."}, 400, "Invalid snapshot name"),
        ({"name": "x" * 64}, 400, "Invalid snapshot name"),
        ({"stateful": True}, 400, "Stateful snapshots need CRIU"),
        ({"stateful": "yes"}, 400, "stateful"),
        ({"name": 7}, 400, "expected a string"),
        ({"expires_at": "tomorrow"}, 400, "expires_at"),
    ]:
        st, body_ = sd.api.post(f"/1.0/instances/{c}/snapshots", body)
        assert st == status and words in body_["error"], (body, st, body_)
    st, b = sd.api.post("/1.0/instances/nope-xyz/snapshots", {"name": "a"})
    assert st == 404
    st, b = sd.api.get(f"/1.0/instances/{c}/snapshots/none")
    assert st == 404 and "Snapshot 'none'" in b["error"]
    st, b = sd.api.put(f"/1.0/instances/{c}", {"restore": "none"})
    assert st == 404 and "Snapshot 'none'" in b["error"]
    st, b = sd.api.post("/1.0/instances", {"name": nn(), "source": {"type": "copy",
                                                                      "source": f"{c}/none"}})
    assert st == 404
    assert set(snapshots(sd, c)) == {"snap0", "snap1", "pre-0"}
    assert len(snapshot_volumes(sd) - vols) == 3

    op(sd, sd.api.post(f"/1.0/instances/{c}/snapshots/snap1", {"name": "renamed"}))
    assert set(snapshots(sd, c)) == {"snap0", "renamed", "pre-0"}
    st, b = sd.api.post(f"/1.0/instances/{c}/snapshots/snap0", {"name": "renamed"})
    assert st == 409
    op(sd, sd.api.delete(f"/1.0/instances/{c}/snapshots/renamed"))
    assert set(snapshots(sd, c)) == {"snap0", "pre-0"}
    assert len(snapshot_volumes(sd) - vols) == 2
    # expiry can be changed; only that and the description
    st, b = sd.api.patch(f"/1.0/instances/{c}/snapshots/snap0",
                         {"expires_at": "2099-01-01T00:00:00Z"})
    assert st == 200, b
    assert snapshots(sd, c)["snap0"]["expires_at"] == "2099-01-01T00:00:00Z"
    st, b = sd.api.patch(f"/1.0/instances/{c}/snapshots/snap0", {"stateful": True})
    assert st == 400
    # deleting the instance takes its snapshots
    sd.kiva("delete", "--force", c)
    assert not any(v.startswith(c + "/") for v in snapshot_volumes(sd))


def test_copy_from_instance_and_snapshot(sd, nn):
    src, a, b = nn(), nn(), nn()
    sd.kiva("launch", "busybox", src, "-c", "user.role=db")
    sh(sd, src, "echo v1 > /root/v")
    snap(sd, src, "s1")
    sh(sd, src, "echo v2 > /root/v")
    op(sd, sd.api.post("/1.0/instances", {"name": a, "source": {"type": "copy", "source": src},
                                          "start": True}))
    assert sh(sd, a, "cat /root/v").strip() == "v2"
    assert set(snapshots(sd, a)) == {"s1"}, "snapshots come along"
    assert sd.api.instance(a)["config"]["user.role"] == "db"
    op(sd, sd.api.post("/1.0/instances", {"name": b, "source": {"type": "copy",
                                                                "source": f"{src}/s1",
                                                                "instance_only": True},
                                          "start": True}))
    assert sh(sd, b, "cat /root/v").strip() == "v1"
    assert snapshots(sd, b) == {}
    # the copy is its own: writing to it does not touch the source
    sh(sd, b, "echo mine > /root/v")
    assert sh(sd, src, "cat /root/v").strip() == "v2"


def test_leftovers_are_removed_and_a_cut_restore_is_finished(sd, nn):
    c = nn()
    sd.kiva("launch", "busybox", c)
    sh(sd, c, "echo base > /root/f")
    snap(sd, c, "s1")
    sd.kiva("stop", "--force", c)
    sd.kill()
    # a snapshot volume no record names (a create cut before its commit)
    orphan = os.path.join(sd.pool, "snapshots", c, "deadbeefdeadbeef")
    subprocess.run(["btrfs", "subvolume", "create", orphan], check=True, capture_output=True)
    # a restore cut between its renames: the live volume moved away, the restored one ready
    live = os.path.join(sd.pool, "containers", c)
    os.rename(live, os.path.join(sd.pool, "containers", f".old-{c}"))
    subprocess.run(["btrfs", "subvolume", "snapshot",
                    os.path.join(sd.pool, "containers", f".old-{c}"),
                    os.path.join(sd.pool, "containers", f".restore-{c}")], check=True,
                   capture_output=True)
    with open(os.path.join(sd.pool, "containers", f".restore-{c}", "rootfs", "root", "f"),
              "w") as f:
        f.write("restored\n")
    sd.start()
    assert not os.path.exists(orphan)
    assert not os.path.exists(os.path.join(sd.pool, "containers", f".old-{c}"))
    assert not os.path.exists(os.path.join(sd.pool, "containers", f".restore-{c}"))
    sd.kiva("start", c)
    assert sh(sd, c, "cat /root/f").strip() == "restored"
    assert set(snapshots(sd, c)) == {"s1"}


def test_limits_disk_is_enforced_by_btrfs_quota(sd, nn):
    if sd.api.get("/1.0")[1]["metadata"]["environment"]["storage"] != "btrfs":
        pytest.skip("limits.disk needs the btrfs storage driver")
    c = nn()
    sd.kiva("launch", "busybox", c, "-c", "limits.disk=40MB")
    rc, out, err = sd.api.exec(c, ["sh", "-c", "dd if=/dev/zero of=/root/big bs=1M count=80 "
                                               "conv=fsync"])
    assert rc != 0 and b"quota" in err.lower(), (rc, err)
    sh(sd, c, "rm -f /root/big")
    sd.kiva("config", "set", c, "limits.disk", "200MB")
    sh(sd, c, "dd if=/dev/zero of=/root/big bs=1M count=80 conv=fsync 2>/dev/null")
    r = sd.kiva("config", "set", c, "limits.disk", "lots", check=False)
    assert r.returncode != 0 and "limits.disk" in r.stderr


def test_expired_snapshots_are_deleted(sd, nn):
    c = nn()
    sd.kiva("launch", "busybox", c)
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
    snap(sd, c, "short", expires_at=soon)
    snap(sd, c, "long")
    sd.kiva("config", "set", c, "snapshots.expiry", "1w")
    snap(sd, c, "weekly")
    w = snapshots(sd, c)["weekly"]
    created = datetime.strptime(w["created_at"][:19], "%Y-%m-%dT%H:%M:%S")
    expires = datetime.strptime(w["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")
    assert abs((expires - created) - timedelta(days=7)) <= timedelta(seconds=2), w
    wait_until(lambda: "short" not in snapshots(sd, c), timeout=15, what="expiry")
    assert {"long", "weekly"} <= set(snapshots(sd, c))


def test_bad_schedule_values_are_refused(sd, nn):
    c = nn()
    sd.kiva("launch", "busybox", c)
    for key, value, words in [
        ("snapshots.schedule", "61 * * * *", "minute"),
        ("snapshots.schedule", "@sometimes", "snapshots.schedule"),
        ("snapshots.expiry", "2 days", "snapshots.expiry"),
        ("snapshots.pattern", "a/%d", "snapshots.pattern"),
    ]:
        r = sd.kiva("config", "set", c, key, value, check=False)
        assert r.returncode != 0 and words in r.stderr, (key, value, r.stderr)
        assert key not in sd.api.instance(c)["config"]


def test_schedule_fires_and_a_missed_one_runs_once_at_start(sd, nn):
    """Real minutes: the first scheduled snapshot within ~60 s, then kivad stopped across a
    minute boundary takes the missed one once when it starts (about two minutes in all)."""
    c = nn()
    sd.kiva("launch", "busybox", c)
    sd.kiva("config", "set", c, "snapshots.pattern", "auto%d")
    sd.kiva("config", "set", c, "snapshots.schedule", "* * * * *")
    wait_until(lambda: "auto0" in snapshots(sd, c), timeout=75, interval=0.5,
               what="the first scheduled snapshot")
    assert set(snapshots(sd, c)) == {"auto0"}
    sd.stop()
    # wait past the next minute boundary (and a little more): that fire time is missed
    now = time.time()
    time.sleep(60 - now % 60 + 2)
    sd.start()
    wait_until(lambda: "auto1" in snapshots(sd, c), timeout=10, what="the missed snapshot")
    time.sleep(3)
    assert set(snapshots(sd, c)) == {"auto0", "auto1"}, "the missed one runs once"
    sd.kiva("config", "unset", c, "snapshots.schedule")


def test_publish_an_instance_and_a_snapshot(sd, nn):
    c, x, y = nn(), nn(), nn()
    alias_i, alias_s = f"pub-{c}", f"pubsnap-{c}"
    sd.kiva("launch", "busybox", c)
    sh(sd, c, "echo first > /root/marker")
    snap(sd, c, "s1")
    sh(sd, c, "echo second > /root/marker")
    try:
        res = op(sd, sd.api.post("/1.0/images", {
            "source": {"type": "instance", "name": c}, "aliases": [{"name": alias_i}],
            "properties": {"description": "published"}, "public": True}))
        fp = res["resources"]["images"][0].rsplit("/", 1)[1]
        st, img = sd.api.get(f"/1.0/images/{fp}")
        assert st == 200 and img["metadata"]["properties"]["description"] == "published"
        assert img["metadata"]["public"] is True
        op(sd, sd.api.post("/1.0/images", {"source": {"type": "snapshot", "name": f"{c}/s1"},
                                           "aliases": [{"name": alias_s}]}))
        sd.kiva("launch", alias_i, x)
        sd.kiva("launch", alias_s, y)
        assert sh(sd, x, "cat /root/marker").strip() == "second"
        assert sh(sd, y, "cat /root/marker").strip() == "first"
        # bad sources change nothing
        for body, status in [({"source": {"type": "snapshot", "name": c}}, 400),
                             ({"source": {"type": "instance", "name": "nope-x"}}, 404),
                             ({"source": {"type": "snapshot", "name": f"{c}/none"}}, 404),
                             ({"source": {"type": "instance", "name": c},
                               "aliases": [{"name": alias_i}]}, 409)]:
            st, b = sd.api.post("/1.0/images", body)
            assert st == status, (body, b)
    finally:
        for n in (x, y):
            sd.force_delete(n)
        for a in (alias_i, alias_s):
            sd.kiva("image", "delete", a, check=False)


def test_ephemeral_can_be_changed(sd, nn):
    c = nn()
    sd.kiva("launch", "busybox", c, "--ephemeral")
    assert sd.api.instance(c)["ephemeral"] is True
    st, b = sd.api.patch(f"/1.0/instances/{c}", {"ephemeral": False})
    assert st == 200, b
    assert sd.api.instance(c)["ephemeral"] is False
    sd.kiva("stop", "--force", c)
    assert c in sd.api.instance_names(), "no longer ephemeral: kept when stopped"
    st, b = sd.api.patch(f"/1.0/instances/{c}", {"ephemeral": "yes"})
    assert st == 400
