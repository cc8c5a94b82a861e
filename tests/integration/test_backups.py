"""Backups: export → delete → import round trips (files, owners, config, snapshots), the backups
API, and every kind of bad archive refused with a clear error and nothing left behind."""

import gzip
import io
import os
import subprocess
import tarfile
import time

import pytest

from conftest import instance_names, running_kivad

SUMS = ("cd / && find root etc bin -xdev | sort | while read f; do stat -c '%n %a %u %g %F' "
        "\"$f\"; [ -f \"$f\" ] && [ ! -L \"$f\" ] && md5sum \"$f\"; done; true")


@pytest.fixture(scope="module")
def bd():
    yield from running_kivad("itbak")


@pytest.fixture
def bn(bd):
    yield from instance_names(bd, "bk")


@pytest.fixture
def tmp(bd):
    d = os.path.join(bd.dir, "files")
    os.makedirs(d, exist_ok=True)
    yield d
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))


def sh(d, name, script):
    rc, out, err = d.api.exec(name, ["sh", "-c", script])
    assert rc == 0, (script, out, err)
    return out.decode()


def state_of(d):
    """What must not change when an import is refused."""
    pool = d.pool
    listing = {}
    for sub in ("containers", "snapshots", "tmp-import"):
        p = os.path.join(pool, sub)
        listing[sub] = sorted(os.listdir(p)) if os.path.isdir(p) else []
    tmpdir = os.path.join(d.dir, "tmp")
    return (d.api.instance_names(), listing, d.lxc_ls(),
            sorted(os.listdir(tmpdir)) if os.path.isdir(tmpdir) else [])


def test_export_delete_import_round_trip(bd, bn, tmp):
    c = bn()
    bd.kiva("launch", "busybox", c, "-c", "limits.memory=64MB", "-c", "user.team=db")
    sh(bd, c, "echo v1 > /root/data; mkdir -p /root/d; echo x > /root/d/x; "
              "ln -s /root/data /root/link; ln /root/data /root/hard; chown 1000:1000 /root/d; "
              "chmod 640 /root/data")
    bd.kiva("snapshot", c, "s1")
    sh(bd, c, "echo v2 > /root/data")
    before = sh(bd, c, SUMS)
    f = os.path.join(tmp, "c.tar.gz")
    bd.kiva("export", c, f)
    with tarfile.open(f) as t:
        names = t.getnames()
    assert names[0] == "backup/index.yaml"
    assert any(n.startswith("backup/snapshots/s1/rootfs") for n in names)
    assert any(n.startswith("backup/container/rootfs") for n in names)
    # the backup file is not kept around by the CLI's export
    st, backups = bd.api.get(f"/1.0/instances/{c}/backups")
    assert backups["metadata"] == []
    bd.kiva("delete", "--force", c)
    assert c not in bd.api.instance_names()

    bd.kiva("import", f)
    inst = bd.api.instance(c)
    assert inst["config"]["limits.memory"] == "64MB" and inst["config"]["user.team"] == "db"
    bd.kiva("start", c)
    assert sh(bd, c, SUMS) == before
    assert sh(bd, c, "stat -c %u /root/d").strip() == "1000"
    assert sh(bd, c, "stat -c %i /root/data").strip() == sh(bd, c,
                                                             "stat -c %i /root/hard").strip()
    # host side: shifted into this host's idmap
    assert os.stat(os.path.join(bd.pool, "containers", c, "rootfs", "root", "d")).st_uid == 101000
    # the snapshot came along and restores
    st, snaps = bd.api.get(f"/1.0/instances/{c}/snapshots")
    assert [s.rsplit("/", 1)[1] for s in snaps["metadata"]] == ["s1"]
    bd.api.wait(bd.api.put(f"/1.0/instances/{c}", {"restore": "s1"}))
    assert sh(bd, c, "cat /root/data").strip() == "v1"


def test_import_under_another_name_and_instance_only(bd, bn, tmp):
    c, other = bn(), bn()
    bd.kiva("launch", "busybox", c)
    sh(bd, c, "echo mine > /root/f")
    bd.kiva("snapshot", c, "s1")
    f = os.path.join(tmp, "c.tar.zst")
    bd.kiva("export", c, f, "--instance-only", "--compression", "zstd")
    with open(f, "rb") as fh:
        assert fh.read(4) == b"\x28\xb5\x2f\xfd", "zstd magic"
    bd.kiva("import", f, other)
    bd.kiva("start", other)
    assert sh(bd, other, "cat /root/f").strip() == "mine"
    st, snaps = bd.api.get(f"/1.0/instances/{other}/snapshots")
    assert snaps["metadata"] == []
    # the same name again is refused
    r = bd.kiva("import", f, other, check=False)
    assert r.returncode != 0 and f"Instance '{other}' already exists" in r.stderr
    r = bd.kiva("import", f, check=False)  # the name in the archive is taken too
    assert r.returncode != 0 and "already exists" in r.stderr


def test_backups_api(bd, bn):
    c = bn()
    bd.kiva("launch", "busybox", c)
    res = bd.api.wait(bd.api.post(f"/1.0/instances/{c}/backups",
                                  {"name": "b1", "compression_algorithm": "none"}))
    assert res["status"] == "Success", res
    st, b = bd.api.get(f"/1.0/instances/{c}/backups/b1")
    assert st == 200 and b["metadata"]["name"] == "b1" and b["metadata"]["instance_only"] is False
    st, data, headers = bd.api.request_ex("GET", f"/1.0/instances/{c}/backups/b1/export")
    assert st == 200 and data[257:262] == b"ustar", "an uncompressed tar"
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert "backup/index.yaml" in t.getnames()
    for body, status, words in [({"name": "b1"}, 409, "already exists"),
                                ({"name": "a/b"}, 400, "Invalid backup name"),
                                ({"optimized_storage": True}, 400, "Optimized"),
                                ({"compression_algorithm": "lz99"}, 400, "lz99"),
                                ({"expires_at": "never"}, 400, "expires_at")]:
        st, r = bd.api.post(f"/1.0/instances/{c}/backups", body)
        assert st == status and words in r["error"], (body, r)
    res = bd.api.wait(bd.api.post(f"/1.0/instances/{c}/backups/b1", {"name": "b2"}))
    assert res["status"] == "Success"
    st, lst = bd.api.get(f"/1.0/instances/{c}/backups")
    assert lst["metadata"] == [f"/1.0/instances/{c}/backups/b2"]
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    bd.api.wait(bd.api.post(f"/1.0/instances/{c}/backups", {"name": "tmp", "expires_at": soon}))
    deadline = time.time() + 15
    while time.time() < deadline and bd.api.get(f"/1.0/instances/{c}/backups/tmp")[0] == 200:
        time.sleep(0.5)
    assert bd.api.get(f"/1.0/instances/{c}/backups/tmp")[0] == 404, "expired backup deleted"
    bd.api.wait(bd.api.delete(f"/1.0/instances/{c}/backups/b2"))
    assert bd.api.get(f"/1.0/instances/{c}/backups/b2")[0] == 404
    assert not os.listdir(os.path.join(bd.dir, "backups", c))


# ---------------------------------------------------------------------------------------------
# hostile archives

def tar_bytes(members, compress=True):
    """members: list of (TarInfo kwargs, data bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for kw, data in members:
            ti = tarfile.TarInfo(kw.pop("name"))
            for k, v in kw.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return gzip.compress(raw) if compress else raw


INDEX = b"name: evil\nbackend: dir\npool: default\noptimized: false\noptimized_header: false\n" \
        b"type: container\n"
BACKUP_YAML = b"container:\n  name: evil\n  architecture: x86_64\n  config: {}\n  devices: {}\n"


def base(extra=(), index=INDEX):
    d = tarfile.DIRTYPE
    return [({"name": "backup/index.yaml"}, index),
            ({"name": "backup/container", "type": d, "mode": 0o755}, None),
            ({"name": "backup/container/backup.yaml"}, BACKUP_YAML),
            ({"name": "backup/container/rootfs", "type": d, "mode": 0o755, "uid": 100000,
              "gid": 100000}, None),
            *extra]


F = {"uid": 100000, "gid": 100000}
BAD = {
    "absolute path": (base([({"name": "/etc/evil", **F}, b"x")]), "absolute"),
    "dot dot": (base([({"name": "backup/container/rootfs/../../../x", **F}, b"x")]), ".."),
    "symlink out": (base([({"name": "backup/container/rootfs/l", "type": tarfile.SYMTYPE,
                            "linkname": "../../../../etc", **F}, None)]), "rootfs"),
    "hard link out": (base([({"name": "backup/container/rootfs/h", "type": tarfile.LNKTYPE,
                              "linkname": "/etc/shadow", **F}, None)]), "link"),
    "device node": (base([({"name": "backup/container/rootfs/dev/sda", "type": tarfile.BLKTYPE,
                            "devmajor": 8, "devminor": 0, **F}, None)]), "device"),
    "duplicate": (base([({"name": "backup/container/rootfs/a", **F}, b"1"),
                        ({"name": "backup/container/rootfs/a", **F}, b"2")]), "uplicate"),
    "outside backup/": (base([({"name": "etc/passwd", **F}, b"x")]), "backup/"),
    "unlisted snapshot": (base([({"name": "backup/snapshots/s9/rootfs", "type": tarfile.DIRTYPE,
                                  **F}, None)]), "not listed"),
    "no index": (base()[1:], "index.yaml"),
    "optimized": (base(index=INDEX.replace(b"optimized: false", b"optimized: true")),
                  "optimized"),
    "virtual machine": (base(index=INDEX.replace(b"type: container",
                                                 b"type: virtual-machine")), "container"),
    "owner outside the idmap": (base([({"name": "backup/container/rootfs/f", "uid": 5000000,
                                        "gid": 0}, b"x")]), "owner"),
    "bad backup.yaml": ([m if m[0]["name"] != "backup/container/backup.yaml"
                         else ({"name": "backup/container/backup.yaml"}, b"a: [\n")
                         for m in base()], "backup.yaml"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_archives_are_refused_and_leave_nothing(bd, tmp, case):
    members, words = BAD[case]
    f = os.path.join(tmp, "bad.tar.gz")
    with open(f, "wb") as fh:
        fh.write(tar_bytes([(dict(kw), data) for kw, data in members]))
    before = state_of(bd)
    r = bd.kiva("import", f, "evil-x", check=False)
    assert r.returncode != 0, r.stdout
    assert words.lower() in r.stderr.lower(), r.stderr
    assert state_of(bd) == before


def test_truncated_garbage_and_bomb(bd, bn, tmp):
    c = bn()
    bd.kiva("launch", "busybox", c)
    good = os.path.join(tmp, "good.tar.gz")
    bd.kiva("export", c, good, "--instance-only")
    data = open(good, "rb").read()
    cases = {
        "truncated": (data[: len(data) // 2], "truncated"),
        "garbage": (os.urandom(4096), "backup"),
        "empty file": (b"", "mpty"),
    }
    # a zip bomb: 300 MB of zeros in a few hundred KB of gzip
    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb", compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w|") as t:
            for kw, d in base():
                ti = tarfile.TarInfo(kw.pop("name"))
                for k, v in kw.items():
                    setattr(ti, k, v)
                if d is not None:
                    ti.size = len(d)
                t.addfile(ti, io.BytesIO(d) if d is not None else None)
            ti = tarfile.TarInfo("backup/container/rootfs/zeros")
            ti.uid = ti.gid = 100000
            ti.size = 300 * 1024 * 1024

            class Zeros(io.RawIOBase):
                left = ti.size

                def readable(self):
                    return True

                def readinto(self, b):
                    n = min(len(b), self.left)
                    b[:n] = bytes(n)
                    self.left -= n
                    return n

            t.addfile(ti, io.BufferedReader(Zeros(), 1 << 20))
    cases["zip bomb"] = (bomb.getvalue(), "zip bomb")
    for case, (blob, words) in cases.items():
        f = os.path.join(tmp, "bad.bin")
        with open(f, "wb") as fh:
            fh.write(blob)
        before = state_of(bd)
        r = bd.kiva("import", f, "evil-y", check=False)
        assert r.returncode != 0, case
        assert words.lower() in r.stderr.lower(), (case, r.stderr)
        assert state_of(bd) == before, case
    r = bd.kiva("import", good, "bad/name", check=False)
    assert r.returncode != 0 and "name" in r.stderr.lower()
    r = bd.kiva("import", os.path.join(tmp, "missing.tar.gz"), check=False)
    assert r.returncode != 0


def test_kill_during_import_leaves_nothing(bd, bn, tmp):
    c, imp = bn(), bn()
    bd.kiva("launch", "busybox", c)
    sh(bd, c, "dd if=/dev/urandom of=/root/blob bs=1M count=64 2>/dev/null")
    f = os.path.join(tmp, "big.tar")
    bd.kiva("export", c, f, "--compression", "none")
    p = subprocess.Popen(["kiva", "import", f, imp], env=bd.env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    bd.kill()
    p.wait(timeout=30)
    bd.start()
    assert imp not in bd.api.instance_names()
    assert not os.path.exists(os.path.join(bd.pool, "tmp-import"))
    assert imp not in os.listdir(os.path.join(bd.pool, "containers"))
