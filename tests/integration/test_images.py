"""Images: the busybox builder, LXD unified tarball import, aliases, delete, and archives that
must be refused without leaving anything behind."""

import csv
import hashlib
import io
import json
import os
import tarfile

import pytest

from conftest import unique_name

META = b"architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  os: test\n" \
       b"  description: integration test image\n"


def image_list(kiva):
    return json.loads(kiva("image", "list", "--format", "json").stdout)


def busybox_fingerprint(api):
    status, body = api.get("/1.0/images/aliases/busybox")
    assert status == 200, body
    return body["metadata"]["target"]


def image_state(kivad):
    """Everything an import could leave behind."""
    api = kivad.api
    return (api.get("/1.0/images?recursion=1")[1]["metadata"],
            api.get("/1.0/images/aliases")[1]["metadata"],
            kivad.image_dirs(),
            set(os.listdir(os.path.join(kivad.dir, "tmp"))))


def tar_image_dir(src, dest, compression="gz"):
    """An LXD unified tarball of an image dir of the pool, its files' owners shifted back from
    100000+ to 0+ (the importer shifts them into the container's range)."""
    def unshift(ti):
        ti.uid = ti.uid - 100000 if ti.uid >= 100000 else ti.uid
        ti.gid = ti.gid - 100000 if ti.gid >= 100000 else ti.gid
        ti.uname = ti.gname = ""
        return ti
    with tarfile.open(dest, f"w:{compression}" if compression else "w") as t:
        t.add(os.path.join(src, "metadata.yaml"), "metadata.yaml", filter=unshift)
        t.add(os.path.join(src, "rootfs"), "rootfs", filter=unshift)
    return dest


def make_tar(dest, entries, compression="gz"):
    """entries: (name, kind, payload) with kind file|dir|symlink|hardlink|chr."""
    with tarfile.open(dest, f"w:{compression}" if compression else "w") as t:
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "file":
                ti.size = len(payload)
                ti.mode = 0o644
                t.addfile(ti, io.BytesIO(payload))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
            elif kind == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            t.addfile(ti)
    return dest


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_image_list_shows_busybox(kivad, kiva, api):
    fp = busybox_fingerprint(api)
    images = image_list(kiva)
    mine = [i for i in images if i["fingerprint"] == fp]
    assert len(mine) == 1
    assert {"name": "busybox", "description": ""} in mine[0]["aliases"]
    assert mine[0]["architecture"] == "x86_64"
    assert mine[0]["size"] > 0
    rows = list(csv.reader(io.StringIO(kiva("image", "list", "--format", "csv").stdout)))
    assert any(r[1] == fp[:12] and "busybox" in r[0] for r in rows), rows
    assert fp in kivad.image_dirs()
    assert os.path.isfile(os.path.join(kivad.pool, "images", fp, "metadata.yaml"))
    assert os.path.isfile(os.path.join(kivad.pool, "images", fp, "rootfs", "bin", "busybox"))


def test_build_again_same_fingerprint_no_duplicate(kivad, kiva, api):
    fp = busybox_fingerprint(api)
    alias = unique_name("img")
    dirs = kivad.image_dirs()
    try:
        r = kiva("image", "build", "busybox", "--alias", alias)
        assert fp in r.stdout
        assert kivad.image_dirs() == dirs
        assert [i["fingerprint"] for i in image_list(kiva)].count(fp) == 1
        status, body = api.get(f"/1.0/images/aliases/{alias}")
        assert status == 200 and body["metadata"]["target"] == fp
    finally:
        # Only the alias: `kiva image delete ALIAS` would delete the busybox image itself.
        api.delete(f"/1.0/images/aliases/{alias}")
    # Rebuilding with the alias it already has is idempotent: same image, nothing changes.
    before = image_state(kivad)
    r = kiva("image", "build", "busybox")
    assert f"Image built with fingerprint: {fp}" in r.stdout
    assert image_state(kivad) == before


def test_import_launch_delete(kivad, kiva, api, names, tmp_path):
    fp_busybox = busybox_fingerprint(api)
    tarball = tar_image_dir(os.path.join(kivad.pool, "images", fp_busybox),
                            str(tmp_path / "busybox-lxd.tar.gz"))
    alias = unique_name("imp")
    r = kiva("image", "import", tarball, "--alias", alias)
    fp = sha256(tarball)
    assert fp in r.stdout
    try:
        assert fp in kivad.image_dirs()
        status, body = api.get(f"/1.0/images/{fp[:16]}")
        assert status == 200 and body["metadata"]["fingerprint"] == fp
        assert body["metadata"]["properties"]["os"] == "Busybox"
        # Shifted into the container's range on import.
        st = os.stat(os.path.join(kivad.pool, "images", fp, "rootfs", "bin", "busybox"))
        assert (st.st_uid, st.st_gid) == (100000, 100000)

        # Importing the same file again is a duplicate.
        before = image_state(kivad)
        r = kiva("image", "import", tarball, check=False)
        assert r.returncode == 1 and "already exists" in r.stderr, r.stderr
        assert image_state(kivad) == before

        c = names()
        kiva("launch", alias, c)
        assert kiva("exec", c, "--", "sh", "-c", "echo imported $(hostname)").stdout == \
            f"imported {c}\n"
        assert api.instance(c)["config"]["volatile.base_image"] == fp
        assert kiva("exec", c, "--", "stat", "-c", "%u", "/bin/busybox").stdout == "0\n"
        kiva("delete", "--force", c)
    finally:
        r = kiva("image", "delete", alias, check=False)
    assert r.returncode == 0, r.stderr
    assert fp not in kivad.image_dirs()
    assert fp not in [i["fingerprint"] for i in image_list(kiva)]
    assert api.get(f"/1.0/images/aliases/{alias}")[0] == 404
    assert api.get(f"/1.0/images/{fp}")[0] == 404


@pytest.mark.parametrize("compression", ["xz", None])
def test_import_other_compressions(kivad, kiva, api, compression, tmp_path):
    fp_busybox = busybox_fingerprint(api)
    tarball = tar_image_dir(os.path.join(kivad.pool, "images", fp_busybox),
                            str(tmp_path / "img.tar"), compression)
    alias = unique_name("imp")
    kiva("image", "import", tarball, "--alias", alias)
    try:
        assert sha256(tarball) in kivad.image_dirs()
    finally:
        kiva("image", "delete", alias)
    assert sha256(tarball) not in kivad.image_dirs()


def test_import_through_the_api(kivad, api, tmp_path):
    tarball = make_tar(str(tmp_path / "tiny.tar.gz"),
                       [("metadata.yaml", "file", META), ("rootfs", "dir", None),
                        ("rootfs/hello", "file", b"hi\n")])
    with open(tarball, "rb") as f:
        data = f.read()
    op = api.wait(api.post("/1.0/images", data,
                           headers={"Content-Type": "application/octet-stream"}))
    assert op["status"] == "Success", op
    fp = op["metadata"]["fingerprint"]
    assert fp == hashlib.sha256(data).hexdigest()
    assert fp in kivad.image_dirs()
    op = api.wait(api.delete(f"/1.0/images/{fp}"))
    assert op["status"] == "Success", op
    assert fp not in kivad.image_dirs()


BAD_ARCHIVES = {
    "not-a-tarball": (None, "Unrecognized archive format"),
    "absolute-path": ([("metadata.yaml", "file", META), ("rootfs", "dir", None),
                       ("/etc/kiva-it-evil", "file", b"x")],
                      "Refusing image entry '/etc/kiva-it-evil': absolute path"),
    "dotdot": ([("metadata.yaml", "file", META), ("rootfs", "dir", None),
                ("rootfs/../../kiva-it-evil", "file", b"x")],
               "'..' path component"),
    "no-metadata": ([("rootfs", "dir", None), ("rootfs/x", "file", b"x")],
                    "no metadata.yaml"),
    "metadata-only": ([("metadata.yaml", "file", META)], "only unified images"),
    "bad-metadata": ([("metadata.yaml", "file", b"::: [\n\t- x"), ("rootfs", "dir", None)],
                     "metadata.yaml"),
    "truncated": ("truncate", "truncated"),
    "symlink-escape": ([("metadata.yaml", "file", META), ("rootfs", "dir", None),
                        ("rootfs/l", "symlink", "../../../../../../../../tmp"),
                        ("rootfs/l/kiva-it-evil", "file", b"x")],
                       "it goes through the symlink 'rootfs/l'"),
    "hardlink-outside": ([("metadata.yaml", "file", META), ("rootfs", "dir", None),
                          ("rootfs/h", "hardlink", "/etc/passwd")],
                         "hard link target '/etc/passwd'"),
    "device-node": ([("metadata.yaml", "file", META), ("rootfs", "dir", None),
                     ("rootfs/null", "chr", None)], "device nodes are not allowed"),
    "duplicate-entry": ([("metadata.yaml", "file", META), ("rootfs", "dir", None),
                         ("rootfs/a", "file", b"1"), ("rootfs/a", "file", b"2")],
                        "duplicate entry"),
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_bad_archive_refused(kivad, kiva, api, tmp_path, case):
    entries, message = BAD_ARCHIVES[case]
    path = str(tmp_path / f"{case}.tar.gz")
    if entries is None:
        with open(path, "wb") as f:
            f.write(b"this is not an image\n" * 200)
    elif entries == "truncate":
        full = tar_image_dir(os.path.join(kivad.pool, "images", busybox_fingerprint(api)),
                             str(tmp_path / "full.tar.gz"))
        with open(full, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
    else:
        make_tar(path, entries)
    before = image_state(kivad)
    alias = unique_name("bad")
    r = kiva("image", "import", path, "--alias", alias, check=False)
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("Error: ") and message in r.stderr, r.stderr
    assert image_state(kivad) == before
    assert api.get(f"/1.0/images/aliases/{alias}")[0] == 404
    assert not os.path.exists("/etc/kiva-it-evil") and not os.path.exists("/tmp/kiva-it-evil")
    # The same archive through the API: a failed operation with the same message.
    with open(path, "rb") as f:
        status, body = api.post("/1.0/images", f.read(),
                                headers={"Content-Type": "application/octet-stream"})
    if status == 202:
        op = api.wait((status, body))
        assert op["status"] == "Failure" and message in op["err"], op
    else:
        assert status == 400 and message in body["error"], body
    assert image_state(kivad) == before


def test_image_alias_errors(kivad, kiva, api):
    fp = busybox_fingerprint(api)
    before = image_state(kivad)
    status, body = api.post("/1.0/images/aliases", {"name": "busybox", "target": fp})
    assert status == 409 and "Alias 'busybox' already exists" in body["error"]
    status, body = api.post("/1.0/images/aliases", {"name": unique_name(), "target": "0" * 64})
    assert status == 404, body
    assert api.get("/1.0/images/aliases/no-such-alias")[0] == 404
    status, body = api.delete("/1.0/images/no-such-image")
    assert status == 404 and "Image 'no-such-image' not found" in body["error"]
    r = kiva("image", "delete", "no-such-image", check=False)
    assert r.returncode == 1 and "not found" in r.stderr
    r = kiva("image", "import", "/nonexistent/file.tar.gz", check=False)
    assert r.returncode == 1 and "/nonexistent/file.tar.gz" in r.stderr
    r = kiva("image", "build", "no-such-builder", check=False)
    assert r.returncode == 1 and "no-such-builder" in r.stderr
    assert image_state(kivad) == before


def test_alias_create_and_delete(kivad, api, kiva, names):
    fp = busybox_fingerprint(api)
    alias = unique_name("al")
    status, body = api.post("/1.0/images/aliases", {"name": alias, "target": fp,
                                                     "description": "it"})
    assert status == 200, body
    try:
        c = names()
        kiva("init", alias, c)
        assert api.instance(c)["config"]["volatile.base_image"] == fp
    finally:
        status, body = api.delete(f"/1.0/images/aliases/{alias}")
    assert status == 200, body
    assert api.get(f"/1.0/images/aliases/{alias}")[0] == 404
    assert fp in kivad.image_dirs()
