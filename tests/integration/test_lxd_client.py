"""The stock LXD client (Debian's lxd-client 5.0) driving kivad, exactly as an LXD user types the
commands: LXD_DIR points it at kivad's socket. Plus what a raw WebSocket client sees for wrong
and reused operation secrets."""

import base64
import fcntl
import json
import os
import pty
import re
import select
import shutil
import socket
import struct
import subprocess
import termios
import time

import pytest

from conftest import instance_names, running_kivad, wait_until

LXC = shutil.which("lxc")
pytestmark = pytest.mark.skipif(LXC is None, reason="the LXD client is not installed "
                                                    "(apt-get install lxd-client)")


@pytest.fixture(scope="module")
def kd():
    yield from running_kivad("itlxc")


@pytest.fixture
def ln(kd):
    yield from instance_names(kd, "lx")


def lxc_env(kd):
    conf = os.path.join(kd.dir, "lxc-conf")
    os.makedirs(conf, exist_ok=True)
    return dict(os.environ, LXD_DIR=kd.dir, LXD_CONF=conf)


def lxc(kd, *args, check=True, input=None, timeout=60):
    r = subprocess.run([LXC, *args], capture_output=True, text=True, env=lxc_env(kd),
                       input=input, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"lxc {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def test_info_list_images_operations(kd, ln):
    c = ln()
    lxc(kd, "launch", "busybox", c, "-c", "limits.cpu=1", "-c", "limits.memory=64MB")
    info = lxc(kd, "info").stdout
    assert "api_version: \"1.0\"" in info or "api_version: 1.0" in info
    assert c in lxc(kd, "list").stdout
    rows = json.loads(lxc(kd, "list", "--format", "json").stdout)
    mine = [r for r in rows if r["name"] == c]
    assert mine and mine[0]["status"] == "Running"
    assert mine[0]["config"]["limits.memory"] == "64MB"
    assert "busybox" in lxc(kd, "image", "list").stdout
    assert "busybox" in lxc(kd, "image", "alias", "list").stdout
    assert "DESCRIPTION" in lxc(kd, "operation", "list").stdout


def test_exec_streams_codes_env_stdin(kd, ln):
    c = ln()
    lxc(kd, "launch", "busybox", c)
    r = lxc(kd, "exec", c, "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert lxc(kd, "exec", c, "--env", "FOO=bar", "--", "sh", "-c", "echo $FOO").stdout == \
        "bar\n"
    assert lxc(kd, "exec", c, "--", "cat", input="hello\nworld\n").stdout == "hello\nworld\n"
    big = "x" * 300000 + "\n"
    assert lxc(kd, "exec", c, "--", "wc", "-c", input=big).stdout.strip() == str(len(big))


def drive_pty(argv, env, steps, timeout=20):
    """Run argv on a pty; steps: list of (bytes to send, seconds to read after)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    out = b""

    def read_for(t):
        nonlocal out
        end = time.time() + t
        while time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    return

    read_for(1)
    for data, wait in steps:
        if callable(data):
            data(fd, pid)
        else:
            os.write(fd, data)
        read_for(wait)
    deadline = time.time() + timeout
    while time.time() < deadline:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            os.close(fd)
            return out.decode(errors="replace"), os.WEXITSTATUS(st)
        read_for(0.2)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"{argv} did not exit:\n{out.decode(errors='replace')}")


def resize(rows, cols):
    def do(fd, pid):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(pid, 28)  # SIGWINCH, as a terminal emulator does
    return do


def test_interactive_exec_pty_resize_ctrl_c_ctrl_d(kd, ln):
    c = ln()
    lxc(kd, "launch", "busybox", c)
    out, code = drive_pty([LXC, "exec", c, "--", "sh"], lxc_env(kd), [
        (b"echo pty-$((6*7))\r", 1),
        (b"echo name=$(tty)\r", 1),
        (resize(33, 111), 0.5),
        (b"stty size\r", 1),
        (b"sleep 100\r", 0.5),
        (b"\x03", 0.5),
        (b"echo after-$((1+1))\r", 1),
        (b"\x04", 1),
    ])
    assert "pty-42" in out and "33 111" in out and "after-2" in out, out
    # the container's own pty, as with LXD: tty(1) finds its name
    assert re.search(r"name=/dev/pts/\d+", out), out
    assert code == 0


def test_config_state_changes(kd, ln):
    c = ln()
    lxc(kd, "launch", "busybox", c)
    lxc(kd, "config", "set", c, "limits.memory", "128MB")
    assert lxc(kd, "config", "get", c, "limits.memory").stdout.strip() == "128MB"
    assert "limits.memory: 128MB" in lxc(kd, "config", "show", c).stdout
    for verb, status in [("stop", "Stopped"), ("start", "Running"), ("restart", "Running"),
                         ("pause", "Frozen"), ("start", "Running")]:
        lxc(kd, verb, c)
        assert kd.api.state(c)["status"] == status, verb
    lxc(kd, "delete", "-f", c)
    assert c not in kd.api.instance_names()


def test_console_log_and_attach(kd, ln):
    c = ln()
    lxc(kd, "launch", "busybox", c)
    wait_until(lambda: "booted" in lxc(kd, "console", c, "--show-log").stdout, timeout=10,
               what="the console log")
    out, _ = drive_pty([LXC, "console", c], lxc_env(kd), [
        (b"\r", 0.5), (b"echo con-$((6*7))\r", 1), (b"\x01", 0.3), (b"q", 1)])
    assert "con-42" in out, out


def test_monitor_prints_lifecycle_events(kd, ln):
    c = ln()
    p = subprocess.Popen([LXC, "monitor", "--type=lifecycle"], env=lxc_env(kd),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        lxc(kd, "launch", "busybox", c)
        lxc(kd, "stop", "-f", c)
        time.sleep(1)
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=10)
    assert f"source: /1.0/instances/{c}" in out, out
    for action in ("instance-created", "instance-started", "instance-stopped"):
        assert f"action: {action}" in out, out


# ---------------------------------------------------------------------------------------------
# operation secrets, with a raw WebSocket client


def ws_connect(sock_path, path):
    """HTTP upgrade on the unix socket; returns (status line, socket)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock_path)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: kiva\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return head.split(b"\r\n", 1)[0].decode(), s


def ws_closed_by_server(s):
    """True when the server ends the connection (EOF or a close frame) within 3 s."""
    s.settimeout(3)
    try:
        data = s.recv(4096)
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True
    return data == b"" or (data[0] & 0x0F) == 0x8


def test_wrong_and_reused_secrets_are_refused(kd, ln):
    c = ln()
    kd.kiva("launch", "busybox", c)
    st, body = kd.api.post(f"/1.0/instances/{c}/exec",
                           {"command": ["sleep", "1"], "wait-for-websocket": True})
    assert st == 202, body
    op = body["metadata"]["id"]
    fds = body["metadata"]["metadata"]["fds"]
    line, bad = ws_connect(kd.socket, f"/1.0/operations/{op}/websocket?secret={'0' * 64}")
    assert ws_closed_by_server(bad), "a wrong secret is refused"
    socks = []
    for k in ("0", "1", "2", "control"):
        line, s = ws_connect(kd.socket, f"/1.0/operations/{op}/websocket?secret={fds[k]}")
        assert "101" in line, line
        socks.append(s)
    line, again = ws_connect(kd.socket, f"/1.0/operations/{op}/websocket?secret={fds['1']}")
    assert ws_closed_by_server(again), "a used secret is refused"
    res = kd.api.wait((202, {"operation": f"/1.0/operations/{op}"}), timeout=20)
    assert res["status"] == "Success" and res["metadata"]["return"] == 0, res
    for s in socks:
        s.close()


def test_monitor_logging_and_operation_events(kd, ln):
    c = ln()
    p = subprocess.Popen([LXC, "monitor", "--type=logging", "--type=operation"],
                         env=lxc_env(kd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(1)
        lxc(kd, "launch", "busybox", c)
        time.sleep(1)
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=10)
    assert "type: logging" in out and f"Event instance-started /1.0/instances/{c}" in out, out
    assert "type: operation" in out and "Creating instance" in out, out
    assert "type: lifecycle" not in out


def test_waiting_exec_can_be_cancelled(kd, ln):
    c = ln()
    kd.kiva("launch", "busybox", c)
    st, body = kd.api.post(f"/1.0/instances/{c}/exec",
                           {"command": ["true"], "wait-for-websocket": True})
    op = body["metadata"]["id"]
    assert body["metadata"]["may_cancel"] is True
    st, r = kd.api.delete(f"/1.0/operations/{op}")
    assert st == 200, r
    st, r = kd.api.get(f"/1.0/operations/{op}")
    assert r["metadata"]["status"] == "Failure" and "cancelled" in r["metadata"]["err"], r
    st, r = kd.api.delete(f"/1.0/operations/{op}")
    assert st == 400 and "already ended" in r["error"]
    # a finished create, say, cannot be cancelled
    st, body = kd.api.post("/1.0/instances", {"name": ln(), "source": {"type": "image",
                                                                        "alias": "busybox"}})
    op2 = body["metadata"]["id"]
    kd.api.wait((st, body))
    st, r = kd.api.delete(f"/1.0/operations/{op2}")
    assert st in (400, 403), r


def test_snapshot_restore_copy_export(kd, ln):
    c, from_snap, from_inst = ln(), ln(), ln()
    lxc(kd, "launch", "busybox", c)
    lxc(kd, "exec", c, "--", "sh", "-c", "echo one > /root/f")
    lxc(kd, "snapshot", c, "s0")
    lxc(kd, "exec", c, "--", "sh", "-c", "echo two > /root/f")
    lxc(kd, "restore", c, "s0")
    assert lxc(kd, "exec", c, "--", "cat", "/root/f").stdout == "one\n"
    lxc(kd, "copy", f"{c}/s0", from_snap)
    lxc(kd, "copy", c, from_inst)
    assert {from_snap, from_inst} <= kd.api.instance_names()
    out = os.path.join(kd.dir, "exp.tar.gz")
    lxc(kd, "export", c, out)
    with open(out, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"
    os.unlink(out)
