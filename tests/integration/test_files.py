"""Files in instances (/1.0/instances/NAME/files, kiva file, the stock `lxc file`): round trips
with content, mode and owner, directories, symlinks, append, delete, running and stopped
instances, and the confinement: `..`, absolute symlinks planted by the container, /proc magic
links and mounts never lead out of the rootfs, pushes past the size limit and ids outside the
instance's map are refused and leave nothing behind."""

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import urllib.parse

import pytest

from conftest import KIVA, instance_names, raw_request, running_kivad, wait_until

LXC = shutil.which("lxc")
LIMIT = 1024 * 1024 * 1024  # API_FILE_MAX
need_lxc = pytest.mark.skipif(not LXC, reason="the stock LXD client (lxc) is not installed")


@pytest.fixture(scope="module")
def fd():
    yield from running_kivad("itfile")


@pytest.fixture
def nn(fd):
    yield from instance_names(fd, "fl")


@pytest.fixture
def box(fd, nn):
    """A running busybox instance."""
    name = nn()
    fd.kiva("launch", "busybox", name)
    return name


@pytest.fixture
def lxc(fd, tmp_path):
    """lxc(*args, check=True, input=None) -> CompletedProcess against fd's socket."""
    conf = tmp_path / "lxd-conf"
    conf.mkdir()
    env = dict(os.environ, LXD_DIR=fd.dir, LXD_CONF=str(conf))

    def run(*args, check=True, input=None, timeout=120):
        r = subprocess.run([LXC, *args], capture_output=True, env=env, input=input,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"lxc {' '.join(args)} exited {r.returncode}\n"
                                 f"stdout: {r.stdout!r}\nstderr: {r.stderr!r}")
        return r
    return run


def rootfs(d, name):
    return os.path.join(d.pool, "containers", name, "rootfs")


def id_base(d, name):
    """Host uid of the instance's root: its rootfs directory's owner."""
    return os.stat(rootfs(d, name)).st_uid


def sh(d, name, script):
    rc, out, err = d.api.exec(name, ["sh", "-c", script])
    assert rc == 0, (script, out, err)
    return out.decode()


def files_url(name, path):
    return f"/1.0/instances/{name}/files?path={urllib.parse.quote(path, safe='')}"


def api_post(d, name, path, body=b"", **headers):
    hdrs = {"Content-Type": "application/octet-stream"}
    hdrs.update({f"X-LXD-{k}": str(v) for k, v in headers.items()})
    return d.api.request_ex("POST", files_url(name, path), body, hdrs)


def chunked_post(d, name, path, chunks, headers=None, timeout=30):
    """A POST with Transfer-Encoding: chunked, as LXD's Go client sends file pushes: the raw
    response (status, body)."""
    head = [f"POST {files_url(name, path)} HTTP/1.1", "Host: kiva",
            "Transfer-Encoding: chunked", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    status, data = raw_request(d, head, chunks, timeout)
    return status, data.partition(b"\r\n\r\n")[2]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree(root):
    """{relative path: ("f", mode, content) | ("d", mode) | ("l", target)} of a local tree."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d", st.st_mode & 0o777)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", st.st_mode & 0o777, f.read())
    return out


def make_tree(root):
    os.makedirs(os.path.join(root, "sub", "deep"))
    with open(os.path.join(root, "one"), "w") as f:
        f.write("one\n")
    with open(os.path.join(root, "sub", "deep", "f"), "wb") as f:
        f.write(secrets.token_bytes(5000))
    os.chmod(os.path.join(root, "one"), 0o600)
    os.chmod(os.path.join(root, "sub"), 0o750)
    os.symlink("one", os.path.join(root, "rel-link"))
    os.symlink("/etc/passwd", os.path.join(root, "abs-link"))
    os.makedirs(os.path.join(root, "empty"))


def exists_inside(d, name, path):
    rc, _, _ = d.api.exec(name, ["test", "-e", path])
    return rc == 0


def leftovers(d):
    """Upload files the server still holds."""
    return os.listdir(os.path.join(d.dir, "tmp"))


# ---------------------------------------------------------------------------------------------
# round trips


def test_kiva_push_pull_round_trip(fd, box, tmp_path):
    src = tmp_path / "src.bin"
    data = secrets.token_bytes(300_000)
    src.write_bytes(data)
    fd.kiva("file", "push", str(src), f"{box}/root/data.bin", "--uid", "1001", "--gid", "1002",
            "--mode", "0640")
    host = os.path.join(rootfs(fd, box), "root", "data.bin")
    st = os.stat(host)
    base = id_base(fd, box)
    # owned by the container's ids, shifted on the host; seen inside at once (running)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (base + 1001, base + 1002, 0o640)
    assert sh(fd, box, "stat -c '%u %g %a' /root/data.bin").split() == ["1001", "1002", "640"]
    assert sh(fd, box, "md5sum /root/data.bin").split()[0] == hashlib.md5(data).hexdigest()
    # the API's headers say the same
    st_, body, hdrs = fd.api.request_ex("GET", files_url(box, "/root/data.bin"))
    assert st_ == 200 and body == data
    assert (hdrs["X-LXD-uid"], hdrs["X-LXD-gid"], hdrs["X-LXD-mode"], hdrs["X-LXD-type"]) == \
        ("1001", "1002", "0640", "file")
    out = tmp_path / "back.bin"
    fd.kiva("file", "pull", f"{box}/root/data.bin", str(out))
    assert out.read_bytes() == data and os.stat(out).st_mode & 0o777 == 0o640
    # into a directory, under the source's name; standard output
    fd.kiva("file", "pull", f"{box}/root/data.bin", str(tmp_path) + "/")
    assert (tmp_path / "data.bin").read_bytes() == data
    r = subprocess.run([KIVA, "file", "pull", f"{box}/root/data.bin", "-"], capture_output=True,
                       env=fd.env)
    assert r.returncode == 0 and r.stdout == data


def test_kiva_push_defaults_stdin_and_create_dirs(fd, box, tmp_path):
    src = tmp_path / "plain"
    src.write_text("plain\n")
    os.chmod(src, 0o604)
    fd.kiva("file", "push", str(src), f"{box}/root/plain")
    assert sh(fd, box, "stat -c '%u %g %a' /root/plain").split() == ["0", "0", "604"]
    r = subprocess.run([KIVA, "file", "push", "-", f"{box}/root/from-stdin"], input=b"piped\n",
                       capture_output=True, env=fd.env)
    assert r.returncode == 0, r.stderr
    assert sh(fd, box, "cat /root/from-stdin") == "piped\n"
    # -p makes the missing parents; without it the parent must exist
    r = fd.kiva("file", "push", str(src), f"{box}/root/a/b/c/plain", check=False)
    assert r.returncode == 1 and "not found" in r.stderr
    fd.kiva("file", "push", "-p", str(src), f"{box}/root/a/b/c/plain")
    assert sh(fd, box, "cat /root/a/b/c/plain; stat -c %a /root/a/b") == "plain\n755\n"
    # several sources need a directory target
    r = fd.kiva("file", "push", str(src), str(src), f"{box}/root/x", check=False)
    assert r.returncode == 1 and "target directory" in r.stderr


def test_existing_file_keeps_owner_and_mode_unless_asked(fd, box, tmp_path):
    sh(fd, box, "echo old > /root/keep; chown 5:6 /root/keep; chmod 600 /root/keep")
    src = tmp_path / "new"
    src.write_text("new\n")
    os.chmod(src, 0o644)
    fd.kiva("file", "push", str(src), f"{box}/root/keep")  # local owner/mode: not applied
    assert sh(fd, box, "cat /root/keep; stat -c '%u %g %a' /root/keep") == "new\n5 6 600\n"
    fd.kiva("file", "push", str(src), f"{box}/root/keep", "--mode", "0604", "--uid", "7")
    assert sh(fd, box, "stat -c '%u %g %a' /root/keep") == "7 6 604\n"


def test_append(fd, box):
    sh(fd, box, "printf 'one\\n' > /root/log; chown 3:4 /root/log; chmod 640 /root/log")
    st, body, _ = api_post(fd, box, "/root/log", b"two\n", write="append", uid=0, gid=0,
                           mode="0644")
    assert st == 200, body
    assert sh(fd, box, "cat /root/log; stat -c '%u %g %a' /root/log") == "one\ntwo\n3 4 640\n"
    # appending to a missing file creates it
    st, body, _ = api_post(fd, box, "/root/new-log", b"first\n", write="append")
    assert st == 200, body
    assert sh(fd, box, "cat /root/new-log") == "first\n"
    st, body, _ = api_post(fd, box, "/root/log", b"x", write="sideways")
    assert st == 400 and "X-LXD-write" in body["error"]


def test_pull_etc_hostname(fd, box, lxc_or_none, tmp_path):
    # written before the first start, as LXD's images do with their hostname template
    assert sh(fd, box, "stat -c '%u:%g %a' /etc/hostname; cat /etc/hostname") == f"0:0 644\n{box}\n"
    out = tmp_path / "hostname"
    fd.kiva("file", "pull", f"{box}/etc/hostname", str(out))
    assert out.read_text() == f"{box}\n"
    if lxc_or_none:
        r = lxc_or_none("file", "pull", f"{box}/etc/hostname", "-")
        assert r.stdout == f"{box}\n".encode()
    # only after a create or copy: what the user writes there stays across restarts
    sh(fd, box, "echo mine > /etc/hostname")
    fd.kiva("restart", "--force", box)
    assert sh(fd, box, "cat /etc/hostname") == "mine\n"


def test_copy_gets_its_hostname_never_through_a_symlink(fd, box, nn):
    """A copy's first start writes its own /etc/hostname; one the source made a symlink to an
    absolute path (the host's /etc/passwd, seen from outside) is replaced, not followed."""
    before = sha256("/etc/passwd")
    inside = sh(fd, box, "cat /etc/passwd")
    sh(fd, box, "ln -sf /etc/passwd /etc/hostname")
    copy = nn()
    fd.kiva("copy", box, copy)
    fd.kiva("start", copy)
    assert sh(fd, copy, "test -L /etc/hostname || cat /etc/hostname") == f"{copy}\n"
    assert sh(fd, copy, "cat /etc/passwd") == inside
    assert sha256("/etc/passwd") == before
    assert sh(fd, box, "readlink /etc/hostname") == "/etc/passwd\n", "the source is left as it was"


@pytest.fixture
def lxc_or_none(request):
    return request.getfixturevalue("lxc") if LXC else None


def test_stopped_instance(fd, nn, tmp_path):
    name = nn()
    fd.kiva("launch", "busybox", name)
    fd.kiva("stop", "--force", name)
    src = tmp_path / "f"
    src.write_text("while stopped\n")
    fd.kiva("file", "push", str(src), f"{name}/root/f", "--uid", "12")
    out = tmp_path / "back"
    fd.kiva("file", "pull", f"{name}/root/f", str(out))
    assert out.read_text() == "while stopped\n"
    fd.kiva("start", name)
    assert sh(fd, name, "cat /root/f; stat -c %u /root/f") == "while stopped\n12\n"


def test_directories_and_symlinks_with_kiva(fd, box, tmp_path):
    src = tmp_path / "tree"
    make_tree(str(src))
    fd.kiva("file", "push", "-r", str(src), f"{box}/root/")
    assert sh(fd, box, "readlink /root/tree/rel-link; readlink /root/tree/abs-link; cat /root/tree/one") \
        == "one\n/etc/passwd\none\n"
    assert sh(fd, box, "stat -c %a /root/tree/sub /root/tree/one") == "750\n600\n"
    out = tmp_path / "out"
    fd.kiva("file", "pull", "-r", f"{box}/root/tree", str(out))
    assert tree(str(out / "tree")) == tree(str(src))
    # a directory listing and a symlink through the API
    st, body, hdrs = fd.api.request_ex("GET", files_url(box, "/root/tree"))
    assert st == 200 and hdrs["X-LXD-type"] == "directory"
    assert body["metadata"] == sorted(["abs-link", "empty", "one", "rel-link", "sub"])
    st, body, hdrs = fd.api.request_ex("GET", files_url(box, "/root/tree/abs-link"))
    assert st == 200 and hdrs["X-LXD-type"] == "symlink" and body == b"/etc/passwd"
    # pulling a directory needs -r; pushing one too
    r = fd.kiva("file", "pull", f"{box}/root/tree", str(tmp_path / "x"), check=False)
    assert r.returncode == 1 and "-r" in r.stderr
    r = fd.kiva("file", "push", str(src), f"{box}/root/t2", check=False)
    assert r.returncode == 1 and "-r" in r.stderr
    # symlinks and directories through the API: created with the container's root as owner
    st, body, _ = api_post(fd, box, "/root/api-link", b"tree/one", type="symlink")
    assert st == 200, body
    st, body, _ = api_post(fd, box, "/root/api-link", b"tree/one", type="symlink")
    assert st == 200, body  # the same again: done
    st, body, _ = api_post(fd, box, "/root/api-link", b"other", type="symlink")
    assert st == 409, body
    st, body, _ = api_post(fd, box, "/root/api-dir", type="directory", mode="0700", uid=9)
    assert st == 200, body
    assert sh(fd, box, "stat -c '%u %a' /root/api-dir; stat -c %u /root/api-link; "
              "cat /root/api-link") == "9 700\n0\none\n"
    base = id_base(fd, box)
    assert os.lstat(os.path.join(rootfs(fd, box), "root", "api-link")).st_uid == base


def test_delete(fd, box, tmp_path):
    sh(fd, box, "mkdir -p /root/d/full; touch /root/d/f /root/d/full/x; mkdir /root/d/empty; "
       "ln -s /etc/passwd /root/d/l")
    fd.kiva("file", "delete", f"{box}/root/d/f", f"{box}/root/d/empty", f"{box}/root/d/l")
    assert sh(fd, box, "ls /root/d; cat /etc/passwd >/dev/null && echo passwd-kept") == \
        "full\npasswd-kept\n"
    r = fd.kiva("file", "delete", f"{box}/root/d/full", check=False)
    assert r.returncode == 1 and "not empty" in r.stderr
    r = fd.kiva("file", "delete", f"{box}/root/d/nope", check=False)
    assert r.returncode == 1 and "not found" in r.stderr
    st, body = fd.api.delete(files_url(box, "/root/d/nope"))
    assert st == 404, body
    st, body = fd.api.delete(files_url(box, "/"))
    assert st == 400, body


def test_names_with_query_characters(fd, box, tmp_path):
    src = tmp_path / "f"
    src.write_text("odd\n")
    for n in ["a b", "a+b", "a&b=c", "50%25", "x?y#z"]:
        fd.kiva("file", "push", str(src), f"{box}/root/{n}")
        assert os.path.exists(os.path.join(rootfs(fd, box), "root", n)), n
        st, body, _ = fd.api.request_ex("GET", files_url(box, f"/root/{n}"))
        assert st == 200 and body == b"odd\n", n


# ---------------------------------------------------------------------------------------------
# the stock LXD client


@need_lxc
def test_lxc_push_pull_round_trip(fd, box, lxc, tmp_path):
    src = tmp_path / "src"
    data = secrets.token_bytes(70_000)
    src.write_bytes(data)
    lxc("file", "push", str(src), f"{box}/root/lxc.bin", "--uid", "33", "--gid", "44",
        "--mode", "0600")
    assert sh(fd, box, "stat -c '%u %g %a' /root/lxc.bin").split() == ["33", "44", "600"]
    out = tmp_path / "out"
    lxc("file", "pull", f"{box}/root/lxc.bin", str(out))
    assert out.read_bytes() == data and os.stat(out).st_mode & 0o777 == 0o600
    assert lxc("file", "pull", f"{box}/root/lxc.bin", "-").stdout == data
    lxc("file", "delete", f"{box}/root/lxc.bin")
    assert not os.path.exists(os.path.join(rootfs(fd, box), "root", "lxc.bin"))
    r = lxc("file", "pull", f"{box}/root/lxc.bin", "-", check=False)
    assert r.returncode != 0 and b"not found" in r.stderr


@need_lxc
def test_lxc_recursive_push_and_pull(fd, box, lxc, tmp_path):
    src = tmp_path / "tree"
    make_tree(str(src))
    lxc("file", "push", "-r", str(src), f"{box}/root/")
    assert sh(fd, box, "readlink /root/tree/rel-link; stat -c %a /root/tree/sub") == "one\n750\n"
    out = tmp_path / "out"
    out.mkdir()
    lxc("file", "pull", "-r", f"{box}/root/tree", str(out))
    assert tree(str(out / "tree")) == tree(str(src))
    # kiva pulls what lxc pushed, lxc what kiva pushed
    out2 = tmp_path / "out2"
    fd.kiva("file", "pull", "-r", f"{box}/root/tree", str(out2))
    assert tree(str(out2 / "tree")) == tree(str(src))
    fd.kiva("file", "push", "-r", str(src), f"{box}/root/from-kiva/", "-p")
    out3 = tmp_path / "out3"
    out3.mkdir()
    lxc("file", "pull", "-r", f"{box}/root/from-kiva/tree", str(out3))
    assert tree(str(out3 / "tree")) == tree(str(src))
    # -p with lxc: parents made through the API
    lxc("file", "push", "-p", str(src / "one"), f"{box}/root/p/q/one")
    assert sh(fd, box, "cat /root/p/q/one") == "one\n"


@need_lxc
def test_lxc_push_past_100mb(fd, box, lxc, tmp_path):
    """lxc sends files chunked; libwebsockets alone would stop reading at 100 MB."""
    src = tmp_path / "big"
    with open(src, "wb") as f:
        for _ in range(150):
            f.write(secrets.token_bytes(1 << 20))
    lxc("file", "push", str(src), f"{box}/root/big")
    assert sha256(os.path.join(rootfs(fd, box), "root", "big")) == sha256(src)
    out = tmp_path / "back"
    fd.kiva("file", "pull", f"{box}/root/big", str(out))
    assert sha256(out) == sha256(src)
    wait_until(lambda: leftovers(fd) == [], timeout=10, what="no upload left in STATE/tmp")


# ---------------------------------------------------------------------------------------------
# confinement


def test_dotdot_stays_inside(fd, box, tmp_path):
    tag = secrets.token_hex(6)
    sh(fd, box, f"echo inside-{tag} > /etc/kiva-marker-{tag}")
    for p in [f"../../../../../../etc/kiva-marker-{tag}", f"/../../etc/kiva-marker-{tag}",
              f"/root/../../../etc/kiva-marker-{tag}"]:
        st, body, _ = fd.api.request_ex("GET", files_url(box, p))
        assert st == 200 and body == f"inside-{tag}\n".encode(), p
    # the host's /etc/shadow is never what comes back
    with open("/etc/shadow", "rb") as f:
        host_shadow = f.read()
    st, body, _ = fd.api.request_ex("GET", files_url(box, "../../../../../../etc/shadow"))
    assert st in (200, 404) and body != host_shadow
    # a push with ".." lands in the container
    host = f"/tmp/kiva-escape-{tag}"
    st, body, _ = api_post(fd, box, f"../../../../..{host}", b"x")
    assert st == 200, body
    assert not os.path.exists(host) and exists_inside(fd, box, host)
    src = tmp_path / "f"
    src.write_text("x\n")
    fd.kiva("file", "push", str(src), f"{box}/../../../..{host}-2")
    assert not os.path.exists(host + "-2") and exists_inside(fd, box, host + "-2")


@need_lxc
def test_absolute_symlink_planted_by_the_container(fd, box, lxc, tmp_path):
    tag = secrets.token_hex(6)
    sh(fd, box, "ln -s / /root/escape; ln -s ../../../../../../.. /root/up; "
       "mkdir -p /tmp && echo container-passwd > /tmp/passwd-marker")
    src = tmp_path / "payload"
    src.write_text("payload\n")
    host = f"/tmp/kiva-escape-{tag}"
    try:
        fd.kiva("file", "push", str(src), f"{box}/root/escape{host}")
        lxc("file", "push", str(src), f"{box}/root/escape{host}-lxc")
        st, body, _ = api_post(fd, box, f"/root/up{host}-api", b"x")
        assert st == 200, body
        for suffix in ["", "-lxc", "-api"]:
            assert not os.path.exists(host + suffix), f"{host}{suffix} was written on the host"
            assert exists_inside(fd, box, host + suffix)
        # reads through them see the container's files
        st, body, _ = fd.api.request_ex("GET", files_url(box, "/root/escape/tmp/passwd-marker"))
        assert st == 200 and body == b"container-passwd\n"
        st, body, _ = fd.api.request_ex("GET", files_url(box, "/root/escape/etc/passwd"))
        with open(os.path.join(rootfs(fd, box), "etc", "passwd"), "rb") as f:
            assert st == 200 and body == f.read()
        # a directory made through the symlink is the container's too
        st, body, _ = api_post(fd, box, f"/root/escape{host}-dir", type="directory")
        assert st == 200 and not os.path.exists(host + "-dir")
        assert exists_inside(fd, box, host + "-dir")
        # deleting through it deletes inside
        fd.kiva("file", "delete", f"{box}/root/escape{host}")
        assert not exists_inside(fd, box, host)
    finally:
        for suffix in ["", "-lxc", "-api", "-dir"]:
            if os.path.islink(host + suffix) or os.path.isfile(host + suffix):
                os.unlink(host + suffix)
            elif os.path.isdir(host + suffix):
                os.rmdir(host + suffix)


def test_proc_tricks(fd, box, tmp_path):
    tag = secrets.token_hex(6)
    host = f"/tmp/kiva-proc-{tag}"
    sh(fd, box, "ln -s /proc/self/root /root/pself; ln -s /proc/1/root /root/p1; "
       "ln -s /proc/1/fd /root/pfd; ln -s /proc/1/fd/0 /root/fd0")
    for p in ["/proc/self/root/etc/passwd", "/proc/1/root/etc/passwd", "/root/pself/etc/passwd",
              "/root/p1/etc/hostname", "/root/pfd/0", "/root/fd0/", "/proc/1/cwd/etc/passwd"]:
        st, body, _ = fd.api.request_ex("GET", files_url(box, p))
        assert st in (403, 404), (p, st, body)
    # a symlink itself is read as one, never followed
    st, body, hdrs = fd.api.request_ex("GET", files_url(box, "/root/fd0"))
    assert st == 200 and hdrs["X-LXD-type"] == "symlink" and body == b"/proc/1/fd/0"
    for p in [f"/proc/self/root{host}", f"/root/pself{host}", f"/root/p1{host}"]:
        st, body, _ = api_post(fd, box, p, b"x")
        assert st in (403, 404), (p, st, body)
        assert not os.path.exists(host), p
    src = tmp_path / "f"
    src.write_text("x\n")
    r = fd.kiva("file", "push", str(src), f"{box}/root/pself{host}", check=False)
    assert r.returncode == 1 and not os.path.exists(host)


def test_running_instance_is_seen_as_it_sees_itself(fd, box, tmp_path):
    """While it runs, the container's own mounts are what the API sees (its tmpfs /tmp and /run),
    but only its root file system and its tmpfs are changed, and pseudo file systems not read."""
    src = tmp_path / "f"
    src.write_text("in tmpfs\n")
    sh(fd, box, "echo from-inside > /run/inside")
    fd.kiva("file", "push", str(src), f"{box}/tmp/pushed")
    assert sh(fd, box, "cat /tmp/pushed") == "in tmpfs\n"
    st, body, _ = fd.api.request_ex("GET", files_url(box, "/run/inside"))
    assert st == 200 and body == b"from-inside\n"
    st, body, hdrs = fd.api.request_ex("GET", files_url(box, "/tmp"))
    assert st == 200 and "pushed" in body["metadata"]
    # made in its tmpfs (whose owner ids are those of its user namespace) with the ids asked for
    fd.kiva("file", "push", str(src), f"{box}/tmp/owned", "--uid", "5", "--gid", "6",
            "--mode", "0600")
    st, body, _ = api_post(fd, box, "/run/d", type="directory", uid=7, gid=8, mode="0710")
    assert st == 200, body
    st, body, _ = api_post(fd, box, "/run/l", b"/tmp/owned", type="symlink", uid=9, gid=9)
    assert st == 200, body
    assert sh(fd, box, "stat -c '%u %g %a' /tmp/owned /run/d; stat -c '%u' /run/l; "
              "cat /run/l") == "5 6 600\n7 8 710\n9\nin tmpfs\n"
    # resolv.conf is bind-mounted from the host: read, not written
    st, body, _ = fd.api.request_ex("GET", files_url(box, "/etc/resolv.conf"))
    assert st == 200, body
    for p in ["/etc/resolv.conf", "/proc/sys/net/ipv4/ip_forward", "/sys/fs/cgroup/pids/x",
              "/proc/x"]:
        st, body, _ = api_post(fd, box, p, b"1\n")
        assert st in (403, 404), (p, st, body)
    st, body = fd.api.delete(files_url(box, "/proc/sys/net/ipv4/ip_forward"))
    assert st == 403, body
    # its mount points stay (the kernel would detach them from its namespace)
    for p in ["/tmp", "/etc/resolv.conf"]:
        st, body = fd.api.delete(files_url(box, p))
        assert st == 409 and "mount point" in body["error"], (p, body)
    assert "tmpfs /tmp " in sh(fd, box, "cat /proc/mounts")
    for p in ["/proc/cpuinfo", "/sys/kernel", "/proc/1/environ"]:
        st, body, _ = fd.api.request_ex("GET", files_url(box, p))
        assert st == 403, (p, st, body)
    # stopped: the rootfs on disk, without the tmpfs
    fd.kiva("stop", "--force", box)
    st, body, _ = fd.api.request_ex("GET", files_url(box, "/tmp/pushed"))
    assert st == 404, body


def test_mount_inside_the_rootfs_is_not_crossed(fd, nn, tmp_path):
    """A stopped instance: a mount under its rootfs (RESOLVE_NO_XDEV) is refused, the mounted
    tree untouched."""
    box = nn()
    fd.kiva("init", "busybox", box)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    target = os.path.join(rootfs(fd, box), "mnt", "host")
    os.makedirs(target, exist_ok=True)
    subprocess.run(["mount", "--bind", str(outside), target], check=True)
    try:
        st, body, _ = fd.api.request_ex("GET", files_url(box, "/mnt/host/secret"))
        assert st == 403 and b"host secret" not in (body if isinstance(body, bytes) else b"")
        st, body, _ = api_post(fd, box, "/mnt/host/new", b"x")
        assert st == 403, body
        st, body = fd.api.delete(files_url(box, "/mnt/host/secret"))
        assert st == 403, body
        assert os.listdir(outside) == ["secret"]
    finally:
        subprocess.run(["umount", target], check=False)


# ---------------------------------------------------------------------------------------------
# refusals


def test_push_over_the_limit_is_refused(fd, box, tmp_path, lxc_or_none):
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(LIMIT + 1)  # sparse
    r = fd.kiva("file", "push", str(huge), f"{box}/root/huge", check=False)
    assert r.returncode == 1 and "too large" in r.stderr and "1.00GiB" in r.stderr, r.stderr
    # a client announcing a 2 GiB chunk is answered at once, chunked as lxc sends
    st, body = chunked_post(fd, box, "/root/huge2", [b"80000000\r\n", b"x" * 1000])
    assert st == 413 and b"too large" in body
    # with Content-Length
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(fd.socket)
    s.sendall((f"POST {files_url(box, '/root/huge3')} HTTP/1.1\r\nHost: kiva\r\n"
               f"Content-Length: {LIMIT + 1}\r\n\r\n").encode() + b"x" * 1000)
    assert s.recv(65536).startswith(b"HTTP/1.1 413")
    s.close()
    if lxc_or_none:  # streamed chunk by chunk until past the limit
        r = lxc_or_none("file", "push", str(huge), f"{box}/root/huge4", check=False,
                        timeout=300)
        assert r.returncode != 0 and b"too large" in r.stderr, r.stderr
    for n in ["huge", "huge2", "huge3", "huge4"]:
        assert not os.path.exists(os.path.join(rootfs(fd, box), "root", n))
    # the server drops the stored part right after writing its answer
    wait_until(lambda: leftovers(fd) == [], timeout=10, what="no upload left in STATE/tmp")


def test_ids_outside_the_map_are_refused(fd, box, tmp_path):
    src = tmp_path / "f"
    src.write_text("x\n")
    r = fd.kiva("file", "push", str(src), f"{box}/root/u70000", "--uid", "70000", check=False)
    assert r.returncode == 1 and "65535" in r.stderr, r.stderr
    for hdr in [{"uid": 70000}, {"gid": 65536}, {"uid": -2}, {"uid": "root"}, {"mode": "0999"},
                {"type": "fifo"}]:
        st, body, _ = api_post(fd, box, "/root/u70000", b"x", **hdr)
        assert st == 400, (hdr, body)
    st, body, _ = api_post(fd, box, "/root/u70000-dir", type="directory", gid=70000)
    assert st == 400, body
    assert not os.path.exists(os.path.join(rootfs(fd, box), "root", "u70000"))
    assert not os.path.exists(os.path.join(rootfs(fd, box), "root", "u70000-dir"))
    # the highest id of the map is fine
    fd.kiva("file", "push", str(src), f"{box}/root/u65535", "--uid", "65535")
    assert os.stat(os.path.join(rootfs(fd, box), "root", "u65535")).st_uid == \
        id_base(fd, box) + 65535


def test_missing_instance_and_paths(fd, box, tmp_path):
    for method in ["GET", "POST", "DELETE"]:
        st, body, _ = fd.api.request_ex(method, files_url("nope-" + secrets.token_hex(3),
                                                          "/etc/passwd"))
        assert st == 404 and "not found" in body["error"], (method, body)
    r = fd.kiva("file", "pull", "nope/etc/passwd", "-", check=False)
    assert r.returncode == 1 and "Instance 'nope' not found" in r.stderr
    st, body = fd.api.get(f"/1.0/instances/{box}/files")
    assert st == 400 and "path" in body["error"]
    st, body = fd.api.get(files_url(box, "/root/no/such/file"))
    assert st == 404, body
    st, body, _ = api_post(fd, box, "/root/no/such/file", b"x")
    assert st == 404, body
    st, body, _ = api_post(fd, box, "/etc", b"x")
    assert st == 400 and "directory" in body["error"]
    st, body, _ = api_post(fd, box, "/etc/passwd/x", b"x")
    assert st == 400, body
    r = fd.kiva("file", "push", "/etc/os-release", box, check=False)
    assert r.returncode == 1 and "NAME/PATH" in r.stderr
