"""kiva over WebSockets, as a user types it: exec streaming stdin/stdout/stderr and its exit code,
interactive exec on a pseudo-terminal (raw mode, resize, ^D, the local terminal restored), signals
passed on to the command, kiva monitor printing events while another process changes instances,
kiva console (log, attach, Ctrl+a q)."""

import fcntl
import hashlib
import json
import os
import pty
import queue
import select
import signal
import struct
import subprocess
import termios
import threading
import time

import pytest

from conftest import KIVA, instance_names, running_kivad, wait_until


@pytest.fixture(scope="module")
def kd():
    yield from running_kivad("itws")


@pytest.fixture
def names(kd):
    yield from instance_names(kd, "ws")


@pytest.fixture(scope="module")
def box(kd):
    """One running container shared by the exec tests."""
    made = instance_names(kd, "wsbox")
    name = next(made)()
    try:
        kd.kiva("launch", "busybox", name)
        yield name
    finally:
        next(made, None)  # force-deletes it


def kiva_run(kd, *args, input=None, timeout=60):
    """kiva with stdin from input (bytes) or /dev/null, never the test runner's terminal."""
    return subprocess.run([KIVA, *args], input=input,
                          stdin=None if input is not None else subprocess.DEVNULL,
                          capture_output=True, env=kd.env, timeout=timeout)


def sigint_default():
    """A child started from a background job inherits SIGINT ignored; a user's kiva has it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# ---------------------------------------------------------------------------------------------
# A pseudo-terminal session


class Pty:
    """argv on a new pseudo-terminal of rows x cols, as a terminal emulator runs a program."""

    def __init__(self, argv, env, rows=24, cols=80):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.resize(rows, cols)
        self.buf = b""
        self.seen = b""

    def resize(self, rows, cols):
        # The kernel sends SIGWINCH to the terminal's foreground process group.
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data):
        os.write(self.fd, data)

    def expect(self, pattern, timeout=15):
        """Read until pattern (bytes) shows up; return everything up to and including it."""
        deadline = time.monotonic() + timeout
        while pattern not in self.buf:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.fd], [], [], max(left, 0))
            if not r:
                raise AssertionError(f"timed out waiting for {pattern!r}; got {self.buf!r}")
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            if not data:
                raise AssertionError(f"end of output waiting for {pattern!r}; got {self.buf!r}")
            self.buf += data
            self.seen += data
        i = self.buf.index(pattern) + len(pattern)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def wait(self, timeout=15):
        """The exit status; the session is killed if it does not end in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                r, _, _ = select.select([self.fd], [], [], 0.05)
                if r:
                    data = os.read(self.fd, 65536)
                    self.buf += data
                    self.seen += data
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise AssertionError(f"the session did not end; output: {self.seen!r}")

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def close(self):
        self.kill()
        try:
            os.close(self.fd)
        except OSError:
            pass


@pytest.fixture
def ptys():
    made = []

    def new(argv, env, **kw):
        made.append(Pty(argv, env, **kw))
        return made[-1]

    yield new
    for p in made:
        p.close()


def shell_around(kiva_args):
    """sh -c: kiva ARGS, then its exit status and the terminal's modes once it has ended."""
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in [KIVA, *kiva_args])
    return ["/bin/sh", "-c", f'{quoted}; echo "kiva-rc=$?"; stty -a; echo stty-done']


def assert_terminal_restored(p):
    p.expect(b"kiva-rc=")
    rc = int(p.expect(b"\n").strip())
    modes = p.expect(b"stty-done").decode(errors="replace").split()
    # raw mode would have turned these off
    for flag in ("icanon", "echo", "isig", "icrnl", "opost"):
        assert flag in modes and f"-{flag}" not in modes, (flag, modes)
    return rc


# ---------------------------------------------------------------------------------------------
# Non-interactive exec


def test_exec_streams_and_exit_code(kd, box):
    r = kiva_run(kd, "exec", box, "--", "sh", "-c", "echo to-out; echo to-err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, b"to-out\n", b"to-err\n")
    # no terminal: the command gets none either
    r = kiva_run(kd, "exec", box, "--", "sh", "-c", "[ -t 0 ] || [ -t 1 ] && echo tty || echo no")
    assert r.stdout == b"no\n"


def test_exec_large_output_on_both_streams(kd, box):
    r = kiva_run(kd, "exec", box, "--", "sh", "-c", "seq 1 150000; seq 1 70000 >&2")
    assert r.returncode == 0
    out, err = r.stdout.split(b"\n"), r.stderr.split(b"\n")
    assert out[0] == b"1" and out[-2] == b"150000" and len(out) == 150001
    assert err[0] == b"1" and err[-2] == b"70000" and len(err) == 70001


def test_exec_stdin_is_piped_and_ends(kd, box):
    r = kiva_run(kd, "exec", box, "--", "sh", "-c", "cat; echo end-of-stdin", input=b"a\nb\n")
    assert (r.returncode, r.stdout) == (0, b"a\nb\nend-of-stdin\n")
    # binary, several MB: every byte arrives, in order
    data = os.urandom(5 * 1024 * 1024)
    r = kiva_run(kd, "exec", box, "--", "md5sum", input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0].decode() == hashlib.md5(data).hexdigest()
    r = kiva_run(kd, "exec", box, "--", "cat", input=data)
    assert r.stdout == data
    # -n: the command's stdin is empty whatever kiva's is
    r = kiva_run(kd, "exec", "-n", box, "--", "wc", "-c", input=b"ignored")
    assert r.stdout.strip() == b"0"


def test_exec_env_cwd_user(kd, box):
    r = kiva_run(kd, "exec", box, "--env", "GREETING=hi there", "--env", "EMPTY=", "--",
                 "sh", "-c", 'echo "$GREETING|${EMPTY-unset}"')
    assert r.stdout == b"hi there|\n"
    assert kiva_run(kd, "exec", box, "--cwd", "/tmp", "--", "pwd").stdout == b"/tmp\n"
    r = kiva_run(kd, "exec", box, "--user", "1000", "--group", "1000", "--", "id")
    assert r.stdout.startswith(b"uid=1000 gid=1000"), r.stdout
    r = kiva_run(kd, "exec", box, "--user", "nobody", "--", "id")
    assert r.returncode == 1 and b"Invalid user 'nobody'" in r.stderr


def test_exec_errors(kd, box, names):
    c = names()
    kd.kiva("init", "busybox", c)
    r = kiva_run(kd, "exec", c, "--", "true")
    assert r.returncode == 1 and b"Error: Instance is not running" in r.stderr
    assert kiva_run(kd, "exec", box, "--", "/no/such/command").returncode == 127


def exec_then_signal(kd, box, sig):
    p = subprocess.Popen([KIVA, "exec", box, "--", "sh", "-c", "echo started; exec sleep 60"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=kd.env, preexec_fn=sigint_default)
    try:
        assert p.stdout.readline() == b"started\n"
        p.send_signal(sig)
        p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode


def test_exec_sigterm_is_passed_on(kd, box):
    assert exec_then_signal(kd, box, signal.SIGTERM) == 128 + signal.SIGTERM


def test_exec_sigint_is_passed_on(kd, box):
    assert exec_then_signal(kd, box, signal.SIGINT) == 128 + signal.SIGINT


# ---------------------------------------------------------------------------------------------
# Interactive exec


def test_interactive_sh_on_a_pty(kd, box, ptys):
    p = ptys(shell_around(["exec", box, "--", "sh"]), kd.env, rows=24, cols=80)
    p.expect(b"# ")
    p.send(b"echo hi-$((6*7))\r")
    p.expect(b"hi-42")
    p.expect(b"# ")
    p.send(b"[ -t 0 ] && [ -t 1 ] && echo has-tty; stty size; echo name=$(tty)\r")
    p.expect(b"has-tty")
    p.expect(b"24 80")
    p.expect(b"name=/dev/pts/")  # a pty of the container's own devpts
    p.expect(b"# ")
    p.resize(40, 100)
    time.sleep(0.3)  # SIGWINCH → window-resize on the control socket
    p.send(b"stty size\r")
    p.expect(b"40 100")
    p.expect(b"# ")
    p.send(b"\x04")  # ^D: the shell exits
    assert assert_terminal_restored(p) == 0
    assert p.wait() == 0


def test_interactive_exit_code_and_force_noninteractive(kd, box, ptys):
    p = ptys([KIVA, "exec", box, "--", "sh", "-c", "[ -t 0 ] && echo has-tty; exit 5"], kd.env)
    p.expect(b"has-tty")
    assert p.wait() == 5
    # -T on a terminal: pipes, no terminal for the command
    p = ptys([KIVA, "exec", "-T", box, "--", "sh", "-c", "[ -t 0 ] || echo no-tty; exit 6"],
             kd.env)
    p.expect(b"no-tty")
    assert p.wait() == 6


def test_interactive_hangup_restores_the_terminal(kd, box, ptys):
    """SIGHUP (the terminal went away) goes to the remote shell, which exits: kiva exits with its
    status and leaves the terminal as it found it."""
    p = ptys(shell_around(["exec", box, "--", "sh"]), kd.env)
    p.expect(b"# ")
    kiva_pids = [int(x) for x in subprocess.run(["pgrep", "-P", str(p.pid)],
                                                 capture_output=True, text=True).stdout.split()]
    assert len(kiva_pids) == 1
    os.kill(kiva_pids[0], signal.SIGHUP)
    assert assert_terminal_restored(p) == 128 + signal.SIGHUP
    assert p.wait() == 0


# ---------------------------------------------------------------------------------------------
# kiva monitor


class Monitor:
    """kiva --debug monitor ARGS in the background; lines of stdout in a queue."""

    def __init__(self, kd, *args):
        self.p = subprocess.Popen([KIVA, "--debug", "monitor", *args], env=kd.env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        # subscribed once the 101 is in (the --debug trace)
        deadline = time.monotonic() + 15
        while True:
            line = self.p.stderr.readline()
            if "101 Switching Protocols" in line:
                break
            if not line or time.monotonic() > deadline:
                raise AssertionError(f"kiva monitor did not connect: {line!r}")

    def _pump(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read_until(self, predicate, timeout=20):
        """Lines read until predicate(all lines so far) holds."""
        got = []
        deadline = time.monotonic() + timeout
        while not predicate(got):
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"timed out; kiva monitor printed: {''.join(got)}")
            if line is None:
                raise AssertionError(f"kiva monitor ended: {''.join(got)}")
            got.append(line)
        return got

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        try:
            return self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


def test_monitor_prints_lifecycle_events_as_yaml(kd, names):
    c = names()
    m = Monitor(kd, "--type", "lifecycle")
    try:
        # another process changes the instance
        kd.kiva("launch", "busybox", c)
        want = f"  source: /1.0/instances/{c}\n"
        # both events, each to the blank line that ends it
        lines = m.read_until(lambda got: sum(line == want for line in got) >= 2 and
                             got[-1] == "\n")
    finally:
        rc = m.stop()
    text = "".join(lines)
    assert "  action: instance-created\n" in text and "  action: instance-started\n" in text
    assert "type: lifecycle\n" in text and "type: operation" not in text
    # one YAML document per event, each followed by a blank line
    assert text.count("\n\n") == text.count("type: lifecycle\n") >= 2
    assert rc == -signal.SIGINT


def test_monitor_json_with_several_types(kd, names):
    c = names()
    kd.kiva("launch", "busybox", c)
    m = Monitor(kd, "--format", "json", "--type", "lifecycle", "--type=operation")
    try:
        kd.kiva("stop", "--force", c)

        def stopped(got):
            return any(json.loads(line).get("metadata", {}).get("action") == "instance-stopped"
                       for line in got)
        lines = m.read_until(stopped)
    finally:
        m.stop()
    events = [json.loads(line) for line in lines]  # every line is one event
    assert {e["type"] for e in events} <= {"lifecycle", "operation"}
    stop = [e for e in events if e["type"] == "lifecycle"][-1]
    assert stop["metadata"]["source"] == f"/1.0/instances/{c}"
    assert any(e["type"] == "operation" for e in events)


def test_monitor_rejects_unknown_types(kd):
    r = kiva_run(kd, "monitor", "--type", "lifecycle,bogus")
    assert r.returncode == 1 and b"Invalid event type 'bogus'" in r.stderr


# ---------------------------------------------------------------------------------------------
# kiva console


def test_console_show_log(kd, names):
    c = names()
    kd.kiva("launch", "busybox", c)
    wait_until(lambda: b"booted" in kiva_run(kd, "console", c, "--show-log").stdout,
               timeout=15, what="the boot message in the console log")
    r = kiva_run(kd, "console", c, "--show-log")
    assert r.returncode == 0 and r.stdout.startswith(b"\nConsole log:\n\n"), r.stdout
    r = kiva_run(kd, "console", c + "-missing", "--show-log")
    assert r.returncode == 1 and b"not found" in r.stderr


def test_console_attach_and_detach(kd, names, ptys):
    c = names()
    kd.kiva("launch", "busybox", c)
    p = ptys(shell_around(["console", c]), kd.env)
    p.expect(b"To detach from the console, press: <ctrl>+a q")
    time.sleep(0.5)
    p.send(b"\r")
    p.send(b"echo con-$((6*7))\r")
    p.expect(b"con-42")
    p.send(b"\x01q")  # Ctrl+a q
    assert assert_terminal_restored(p) == 0
    assert p.wait() == 0
    assert kd.api.state(c)["status"] == "Running"


def test_console_attach_twice(kd, names, ptys):
    c = names()
    kd.kiva("launch", "busybox", c)
    for i in range(2):
        p = ptys([KIVA, "console", c], kd.env)
        p.expect(b"press: <ctrl>+a q")
        time.sleep(0.5)
        p.send(f"echo round-$(({i}+100))\r".encode())
        p.expect(f"round-{i + 100}".encode())
        p.send(b"\x01q")
        assert p.wait() == 0
