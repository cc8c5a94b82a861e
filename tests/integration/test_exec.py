"""Non-interactive exec: exit codes, separated output, environment, cwd, refusals."""

import pytest

from conftest import unique_name


@pytest.fixture(scope="module")
def box(kivad):
    """One running container shared by the exec tests of this module."""
    name = unique_name()
    try:
        kivad.kiva("launch", "busybox", name)
        yield name
    finally:
        kivad.force_delete(name)


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_exit_code(kiva, box, code):
    r = kiva("exec", box, "--", "sh", "-c", f"exit {code}", check=False)
    assert r.returncode == code
    assert r.stdout == "" and r.stderr == ""


def test_missing_command_is_127(kiva, box):
    r = kiva("exec", box, "--", "/no/such/command", check=False)
    assert r.returncode == 127
    assert r.stdout == ""


def test_command_killed_by_signal(kiva, box):
    r = kiva("exec", box, "--", "sh", "-c", "kill -9 $$", check=False)
    assert r.returncode == 128 + 9


def test_stdout_and_stderr_are_separate(kiva, box):
    r = kiva("exec", box, "--", "sh", "-c", "echo to-out; echo to-err >&2; echo more-out")
    assert r.stdout == "to-out\nmore-out\n"
    assert r.stderr == "to-err\n"


def test_large_output(kiva, box):
    r = kiva("exec", box, "--", "sh", "-c", "seq 1 200000")
    lines = r.stdout.splitlines()
    assert len(lines) == 200000 and lines[0] == "1" and lines[-1] == "200000"


def test_arguments_are_not_reparsed(kiva, box):
    arg = "a b  'c' \"d\" $HOME; e"
    r = kiva("exec", box, "--", "printf", "%s|", arg, "--flag", "")
    assert r.stdout == f"{arg}|--flag||"


def test_environment(kiva, box):
    r = kiva("exec", box, "--env", "GREETING=hi there", "--env", "EMPTY=", "--",
             "sh", "-c", 'echo "$GREETING|${EMPTY-unset}|$PATH"')
    greeting, empty, path = r.stdout.rstrip("\n").split("|")
    assert greeting == "hi there"
    assert empty == ""
    assert "/bin" in path


def test_cwd(kiva, box):
    assert kiva("exec", box, "--cwd", "/tmp", "--", "pwd").stdout == "/tmp\n"
    assert kiva("exec", box, "--", "pwd").stdout in ("/\n", "/root\n")


def test_cwd_missing_is_an_error(kiva, box):
    r = kiva("exec", box, "--cwd", "/does/not/exist", "--", "pwd", check=False)
    assert r.stdout == ""
    assert r.returncode != 0
    assert "/does/not/exist" in r.stderr


def test_api_exec_as_user(api, box):
    code, out, err = api.exec(box, ["id"], user=1000, group=1000)
    assert code == 0, err
    assert out.startswith(b"uid=1000 gid=1000"), out


def test_runs_inside_the_container(kiva, box):
    assert kiva("exec", box, "--", "hostname").stdout == f"{box}\n"
    # Its own pid namespace: init is pid 1.
    assert kiva("exec", box, "--", "cat", "/proc/1/comm").stdout.strip() in ("init", "sh")


def test_many_sequential_execs(kiva, box):
    for i in range(20):
        r = kiva("exec", box, "--", "sh", "-c", f"echo run-{i}; exit {i % 4}", check=False)
        assert (r.returncode, r.stdout) == (i % 4, f"run-{i}\n")


def test_exec_on_stopped_instance(kivad, kiva, names):
    c = names()
    kiva("init", "busybox", c)
    r = kiva("exec", c, "--", "true", check=False)
    assert r.returncode == 1
    assert "Error: Instance is not running" in r.stderr
    assert r.stdout == ""


def test_exec_on_missing_instance(kiva):
    name = unique_name()
    r = kiva("exec", name, "--", "true", check=False)
    assert r.returncode == 1
    assert f"Instance '{name}' not found" in r.stderr


def test_exec_without_command(kiva, box):
    r = kiva("exec", box, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("Error:")


def test_api_exec_record_output(api, box):
    code, out, err = api.exec(box, ["sh", "-c", "echo $A; echo e >&2; exit 5"],
                              environment={"A": "from-api"}, cwd="/tmp")
    assert (code, out, err) == (5, b"from-api\n", b"e\n")


def test_api_exec_logs_can_be_deleted(api, box):
    op = api.wait(api.post(f"/1.0/instances/{box}/exec",
                           {"command": ["echo", "x"], "record-output": True}))
    url = op["metadata"]["output"]["1"]
    assert api.get(url) == (200, b"x\n")
    status, body = api.delete(url)
    assert status == 200, body
    status, body = api.get(url)
    assert status == 404
    assert "not found" in body["error"]


def test_api_websocket_exec_gives_single_secrets(api, box):
    status, body = api.post(f"/1.0/instances/{box}/exec",
                            {"command": ["true"], "wait-for-websocket": True})
    assert status == 202, body
    fds = body["metadata"]["metadata"]["fds"]
    assert set(fds) == {"0", "1", "2", "control"}
    assert len(set(fds.values())) == 4 and all(len(v) == 64 for v in fds.values())
    status, body = api.post(f"/1.0/instances/{box}/exec",
                            {"command": ["sh"], "wait-for-websocket": True,
                             "interactive": True})
    assert status == 202 and set(body["metadata"]["metadata"]["fds"]) == {"0", "control"}
    status, body = api.post(f"/1.0/instances/{box}/exec",
                            {"command": ["sh"], "interactive": True})
    assert status == 400 and "wait-for-websocket" in body["error"]
