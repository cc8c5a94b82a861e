"""Uploads with Transfer-Encoding: chunked, as LXD's Go client sends file pushes and `lxc import`
tarballs: streamed to a file like Content-Length uploads; malformed or oversized framing is
refused at once and leaves nothing behind. (File pushes themselves: test_files.py.)"""

import os
import shutil
import subprocess

import pytest

from conftest import instance_names, raw_request, running_kivad, wait_until

LXC = shutil.which("lxc")


@pytest.fixture(scope="module")
def cd():
    yield from running_kivad("itchunk")


@pytest.fixture
def nn(cd):
    yield from instance_names(cd, "ch")


def uploads(d):
    return os.listdir(os.path.join(d.dir, "tmp"))


@pytest.mark.skipif(not LXC, reason="the stock LXD client (lxc) is not installed")
def test_lxc_import_sends_chunked(cd, nn, tmp_path):
    src, dst = nn(), nn()
    cd.kiva("launch", "busybox", src)
    cd.api.exec(src, ["sh", "-c", "echo kept > /root/mark"])
    cd.kiva("stop", "--force", src)
    tarball = tmp_path / "src.tar.gz"
    cd.kiva("export", src, str(tarball))
    conf = tmp_path / "lxd-conf"
    conf.mkdir()
    r = subprocess.run([LXC, "import", str(tarball), dst], capture_output=True, timeout=300,
                       env=dict(os.environ, LXD_DIR=cd.dir, LXD_CONF=str(conf)))
    assert r.returncode == 0, r.stderr
    cd.kiva("start", dst)
    rc, out, _ = cd.api.exec(dst, ["cat", "/root/mark"])
    assert rc == 0 and out == b"kept\n"
    wait_until(lambda: uploads(cd) == [], timeout=10, what="no upload left in STATE/tmp")


def test_malformed_chunked_upload(cd):
    head = ["POST /1.0/instances HTTP/1.1", "Host: kiva", "Transfer-Encoding: chunked",
            "Content-Type: application/octet-stream"]
    for body in [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n",
                 b"10000000000000000\r\n"]:
        st, answer = raw_request(cd, head, [body])
        assert st == 400 and b"Malformed chunked body" in answer, answer[:300]
    wait_until(lambda: uploads(cd) == [], timeout=10, what="no upload left in STATE/tmp")


def test_chunked_json_still_needs_content_length(cd):
    st, answer = raw_request(cd, ["POST /1.0/instances HTTP/1.1", "Host: kiva",
                                  "Transfer-Encoding: chunked",
                                  "Content-Type: application/json"], [b"2\r\n{}\r\n0\r\n\r\n"])
    assert st == 411 and b"Content-Length" in answer
