"""Issue #2 item 9: every bad input gets the right 4xx and a message naming the problem, through
the API and the CLI, and changes nothing: the API's instances and images, `lxc-ls`, the pool's
volumes and the running container's cgroups are identical before and after."""

import json
import os
import socket

import pytest

from conftest import cpuset_cpus, memory_limit, pids_max, unique_name

HOST_CPUS = os.cpu_count()
TOO_MANY_CPUS = 64 if HOST_CPUS < 64 else HOST_CPUS + 1


@pytest.fixture(scope="module")
def target(kivad):
    """A running container with limits, the object of the bad requests."""
    name = unique_name()
    try:
        kivad.kiva("launch", "busybox", name, "-c", "limits.memory=64MB",
                   "-c", "limits.processes=100", "-c", "limits.cpu=1")
        yield name
    finally:
        kivad.force_delete(name)


def snapshot(kivad, target=None):
    api = kivad.api
    st, images = api.get("/1.0/images?recursion=1")
    assert st == 200
    st, aliases = api.get("/1.0/images/aliases")
    assert st == 200
    snap = {
        "instances": sorted(api.instances(), key=lambda i: i["name"]),
        "images": images["metadata"],
        "aliases": aliases["metadata"],
        "lxc-ls": kivad.lxc_ls(),
        "volumes": kivad.volumes(),
        "image-dirs": kivad.image_dirs(),
        "containers-dir": set(os.listdir(kivad.lxcpath)),
        "tmp": set(os.listdir(os.path.join(kivad.dir, "tmp"))),
    }
    if target:
        snap["target"] = {
            "pid": api.pid(target),
            "status": api.state(target)["status"],
            "memory": memory_limit(api, target),
            "pids": pids_max(api, target),
            "cpuset": cpuset_cpus(api, target),
        }
    return snap


@pytest.fixture
def unchanged(kivad, target):
    """Asserts at the end of the test that nothing changed."""
    before = snapshot(kivad, target)
    yield
    after = snapshot(kivad, target)
    for key in before:
        assert after[key] == before[key], f"{key} changed"


def assert_error(resp, status, *fragments):
    got_status, body = resp
    assert got_status == status, body
    assert isinstance(body, dict), body
    assert body["type"] == "error" and body["error_code"] == status, body
    assert body["metadata"] is None
    for fragment in fragments:
        assert fragment in body["error"], (fragment, body["error"])


def assert_cli_error(r, *fragments):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("Error: "), r.stderr
    for fragment in fragments:
        assert fragment in r.stderr, (fragment, r.stderr)


def create_body(name, config=None, alias="busybox"):
    body = {"source": {"type": "image", "alias": alias}}
    if name is not None:
        body["name"] = name
    if config:
        body["config"] = config
    return body


# ---------------------------------------------------------------------------------------------
# instance names

BAD_NAMES = [
    ("a" * 64, "longer than 63 characters"),
    ("1abc", "must start with a letter"),
    ("a_b", "only letters, digits and '-' are allowed"),
    ("-a", "must start with a letter"),
    ("a-", "must not end with '-'"),
    ("a.b", "only letters, digits and '-' are allowed"),
    ("a/b", "only letters, digits and '-' are allowed"),
    ("a b", "only letters, digits and '-' are allowed"),
    ("caf\u00e9", "only letters, digits and '-' are allowed"),
    ("\u0441\u0435\u0440\u0432\u0435\u0440", "only letters, digits and '-' are allowed"),
]


@pytest.mark.parametrize("name,message", BAD_NAMES, ids=[
    "64-chars", "digit-first", "underscore", "dash-first", "dash-last", "dot", "slash", "space",
    "unicode-latin", "unicode-cyrillic"])
def test_invalid_name(kivad, api, kiva, unchanged, name, message):
    assert_error(api.post("/1.0/instances", create_body(name)), 400,
                 f"Invalid instance name '{name}'", message)
    assert_cli_error(kiva("launch", "busybox", "--", name, check=False),
                     f"Invalid instance name '{name}'", message)
    assert_cli_error(kiva("init", "busybox", "--", name, check=False), message)


def test_longest_valid_name_is_63(kivad, kiva, names):
    name = names() + "x" * (63 - len("it-12345678"))
    assert len(name) == 63
    kiva("init", "busybox", name)
    assert name in kivad.lxc_ls()
    kiva("delete", name)


def test_empty_name(api, kiva, unchanged):
    assert_error(api.post("/1.0/instances", create_body("")), 400, "Instance name is required")
    assert_cli_error(kiva("launch", "busybox", "", check=False), "Instance name is required")


def test_missing_name(api, kiva, unchanged):
    assert_error(api.post("/1.0/instances", create_body(None)), 400, "Instance name is required")
    r = kiva("launch", "busybox", check=False)
    assert_cli_error(r, "Invalid number of arguments")


def test_name_not_a_string(api, unchanged):
    assert_error(api.post("/1.0/instances", {"name": 123, "source": {"type": "image",
                                                                     "alias": "busybox"}}),
                 400, "name")


def test_duplicate_name(api, kiva, target, unchanged):
    assert_error(api.post("/1.0/instances", create_body(target)), 409,
                 f"Instance '{target}' already exists")
    assert_cli_error(kiva("launch", "busybox", target, check=False),
                     f"Instance '{target}' already exists")


def test_missing_image(api, kiva, unchanged):
    name = unique_name()
    assert_error(api.post("/1.0/instances", create_body(name, alias="no-such-image")), 404,
                 "Image 'no-such-image' not found")
    assert_cli_error(kiva("launch", "no-such-image", name, check=False),
                     "Image 'no-such-image' not found")
    assert_error(api.post("/1.0/instances", {"name": name, "source": {"type": "image"}}), 400,
                 "Missing source alias or fingerprint")
    assert_error(api.post("/1.0/instances", {"name": name, "source": {"type": "migration"}}),
                 400, "Unsupported source type 'migration'")


# ---------------------------------------------------------------------------------------------
# config keys and values, at creation

BAD_CONFIG = [
    ("limits.memory", "banana", "Invalid value for limits.memory 'banana'"),
    ("limits.memory", "0", "Invalid value for limits.memory '0': must be at least 4MiB"),
    ("limits.memory", "-64MB", "Invalid value for limits.memory '-64MB'"),
    ("limits.memory", "1MB", "must be at least 4MiB"),
    ("limits.memory", "100TB", "host has"),
    ("limits.cpu", "0", "Invalid value for limits.cpu '0': must be at least 1"),
    ("limits.cpu", "-1", "Invalid value for limits.cpu '-1'"),
    ("limits.cpu", str(TOO_MANY_CPUS), f"needs {TOO_MANY_CPUS} CPUs, host has {HOST_CPUS}"),
    ("limits.cpu", f"0-{TOO_MANY_CPUS}", "host has"),
    ("limits.cpu", "abc", "Invalid value for limits.cpu 'abc'"),
    ("limits.processes", "-5", "Invalid value for limits.processes '-5'"),
    ("limits.processes", "0", "Invalid value for limits.processes '0'"),
    ("limits.processes", "many", "Invalid value for limits.processes 'many'"),
    ("limits.bogus", "1", "Unknown configuration key: limits.bogus"),
    ("bogus", "1", "Unknown configuration key: bogus"),
    ("volatile.cpuset", "0", "Configuration key volatile.cpuset is set by the server only"),
    ("volatile.idmap.base", "0", "volatile.idmap.base is set by the server only"),
    ("boot.autostart", "maybe", "boot.autostart"),
]


@pytest.mark.parametrize("key,value,message", BAD_CONFIG,
                         ids=[f"{k}={v}" for k, v, _ in BAD_CONFIG])
def test_invalid_config_at_creation(api, kiva, unchanged, key, value, message):
    name = unique_name()
    assert_error(api.post("/1.0/instances", create_body(name, {key: value})), 400, message)
    assert_cli_error(kiva("launch", "busybox", name, "-c", f"{key}={value}", check=False),
                     message)
    assert_cli_error(kiva("init", "busybox", name, "-c", f"{key}={value}", check=False),
                     message)


def test_config_value_not_a_string(api, unchanged):
    assert_error(api.post("/1.0/instances", create_body(unique_name(), {"limits.memory": 64})),
                 400, "limits.memory", "expected a string")


def test_one_bad_key_refuses_the_whole_request(api, unchanged):
    config = {"limits.memory": "64MB", "user.note": "fine", "limits.cpu": "banana"}
    assert_error(api.post("/1.0/instances", create_body(unique_name(), config)), 400,
                 "limits.cpu")


# ---------------------------------------------------------------------------------------------
# config changes on the running container


@pytest.mark.parametrize("key,value,message", [
    ("limits.memory", "banana", "Invalid value for limits.memory 'banana'"),
    ("limits.memory", "0", "must be at least 4MiB"),
    ("limits.memory", "2MiB", "must be at least 4MiB"),
    ("limits.cpu", "0", "must be at least 1"),
    ("limits.cpu", str(TOO_MANY_CPUS), "host has"),
    ("limits.processes", "-5", "Invalid value for limits.processes '-5'"),
    ("limits.bogus", "1", "Unknown configuration key: limits.bogus"),
], ids=lambda v: v if len(str(v)) < 20 else None)
def test_config_set_bad_value_on_running(api, kiva, target, unchanged, key, value, message):
    # KEY=VALUE form: "-5" alone would be taken for a flag.
    assert_cli_error(kiva("config", "set", target, f"{key}={value}", check=False), message)
    assert_error(api.patch(f"/1.0/instances/{target}", {"config": {key: value}}), 400, message)
    inst = api.instance(target)
    put = {"config": dict(inst["config"], **{key: value}), "description": inst["description"]}
    assert_error(api.put(f"/1.0/instances/{target}", put), 400, message)


def test_volatile_keys_are_the_servers(api, target, unchanged):
    assert_error(api.patch(f"/1.0/instances/{target}", {"config": {"volatile.cpuset": "0-1"}}),
                 400, "Configuration key volatile.cpuset is set by the server only")
    assert_error(api.patch(f"/1.0/instances/{target}", {"config": {"volatile.new": "1"}}),
                 400, "volatile.new is set by the server only")
    # PUT may send volatile.* back unchanged (what GET showed); changing one is refused.
    inst = api.instance(target)
    op = api.wait(api.put(f"/1.0/instances/{target}",
                          {"config": inst["config"], "description": inst["description"]}))
    assert op["status"] == "Success", op
    put = {"config": dict(inst["config"], **{"volatile.x": "y"}),
           "description": inst["description"]}
    assert_error(api.put(f"/1.0/instances/{target}", put), 400,
                 "volatile.x is set by the server only")


def test_cli_config_set_volatile_refused(kiva, target, unchanged):
    assert_cli_error(kiva("config", "set", target, "volatile.cpuset", "0", check=False),
                     "volatile.cpuset is set by the server only")


def test_config_set_refused_by_the_kernel_changes_nothing(kivad, api, kiva, target):
    """A memory limit below what the container holds (tmpfs pages, no swap) is refused by the
    kernel: the request fails and neither the record nor the cgroup change."""
    kiva("exec", target, "--", "dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=24")
    try:
        before = snapshot(kivad, target)
        r = kiva("config", "set", target, "limits.memory", "8MB", check=False)
        assert_cli_error(r, "limits.memory")
        assert snapshot(kivad, target) == before
        assert memory_limit(api, target) == 64_000_000
        assert api.instance(target)["config"]["limits.memory"] == "64MB"
    finally:
        kiva("exec", target, "--", "rm", "-f", "/tmp/fill")


def test_config_on_missing_instance(api, kiva, unchanged):
    name = unique_name()
    assert_cli_error(kiva("config", "set", name, "limits.memory", "64MB", check=False),
                     f"Instance '{name}' not found")
    assert_error(api.patch(f"/1.0/instances/{name}", {"config": {}}), 404,
                 f"Instance '{name}' not found")


# ---------------------------------------------------------------------------------------------
# request bodies, routes and methods


def raw_request(kivad, data, timeout=10):
    """Send raw bytes on the socket, return the raw answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(kivad.socket)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # kivad answered early and closed: its answer is still readable
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:") and \
                            len(body) >= int(line.split(b":")[1]):
                        return b"".join(chunks)
        return b"".join(chunks)


@pytest.mark.parametrize("body,message", [
    ('{"name":"x1",', "Malformed JSON in request body"),
    ("{'name': 'x1'}", "Malformed JSON in request body"),
    ("null", "Malformed JSON in request body"),
    ("[1, 2]", "Request body must be a JSON object"),
    ('"a string"', ""),
    ("", "Request body is required"),
])
def test_malformed_json(api, unchanged, body, message):
    status, answer = api.post("/1.0/instances", body,
                              headers={"Content-Type": "application/json"})
    assert_error((status, answer), 400, message)


def test_malformed_json_on_every_body_route(api, target, unchanged):
    for method, path in [("PUT", f"/1.0/instances/{target}"),
                         ("PATCH", f"/1.0/instances/{target}"),
                         ("PUT", f"/1.0/instances/{target}/state"),
                         ("POST", f"/1.0/instances/{target}/exec"),
                         ("POST", "/1.0/images/aliases")]:
        assert_error(api.request(method, path, '{"oops"'), 400, "Malformed JSON")


def test_body_over_one_mib(kivad, unchanged):
    body = create_body(unique_name())
    body["description"] = "a" * (1 << 20)
    data = json.dumps(body).encode()
    answer = raw_request(kivad, b"POST /1.0/instances HTTP/1.1\r\nHost: kiva\r\n"
                                b"Content-Type: application/json\r\n"
                                b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    err = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert err["error_code"] == 413
    assert err["error"] == f"Request body too large: {len(data)} bytes, the limit is 1048576"


def test_content_length_over_one_mib_answered_at_once(kivad, unchanged):
    """A client announcing 100 MiB gets 413 before sending them."""
    answer = raw_request(kivad, b"POST /1.0/instances HTTP/1.1\r\nHost: kiva\r\n"
                                b"Content-Length: 104857600\r\n\r\n{}")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["error_code"] == 413 and "too large" in body["error"]


def test_chunked_body_refused(api, unchanged):
    body = json.dumps(create_body(unique_name())).encode()
    status, answer = api.request("POST", "/1.0/instances", iter([body[:10], body[10:]]),
                                 headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
    assert_error((status, answer), 411, "Content-Length")


@pytest.mark.parametrize("path", ["/1.0/nope", "/2.0", "/1.0/instances/x/nope",
                                  "/1.0/instances/x/state/extra", "/1.0/operations/x/y/z",
                                  "/1.0/instancesx", "/10"])
def test_unknown_route(api, unchanged, path):
    assert_error(api.get(path), 404, f"Not found: {path}")


@pytest.mark.parametrize("method,path", [
    ("POST", "/1.0"), ("DELETE", "/1.0/instances"), ("PUT", "/1.0/instances"),
    ("PATCH", "/1.0/instances/{t}/state"), ("DELETE", "/1.0/instances/{t}/state"),
    ("GET", "/1.0/instances/{t}/exec"), ("POST", "/1.0/operations"),
])
def test_wrong_method(api, target, unchanged, method, path):
    path = path.format(t=target)
    assert_error(api.request(method, path, "{}" if method != "GET" else None), 405,
                 f"Method not allowed for {path}")


def test_missing_instance_routes(api, unchanged):
    name = unique_name()
    msg = f"Instance '{name}' not found"
    assert_error(api.get(f"/1.0/instances/{name}"), 404, msg)
    assert_error(api.get(f"/1.0/instances/{name}/state"), 404, msg)
    assert_error(api.put(f"/1.0/instances/{name}/state", {"action": "start"}), 404, msg)
    assert_error(api.delete(f"/1.0/instances/{name}"), 404, msg)
    assert_error(api.post(f"/1.0/instances/{name}/exec", {"command": ["true"]}), 404, msg)


def test_missing_operation(api, unchanged):
    assert_error(api.get("/1.0/operations/not-an-operation"), 404,
                 "Operation 'not-an-operation' not found")
    assert_error(api.get("/1.0/operations/not-an-operation/wait?timeout=1"), 404)


# ---------------------------------------------------------------------------------------------
# state changes and exec


@pytest.mark.parametrize("body,message", [
    ({"action": "dance"}, "Unknown action 'dance': one of start, stop, restart, freeze, unfreeze"),
    ({}, "Missing action"),
    ({"action": 3}, "action"),
    ({"action": "stop", "timeout": "x"}, "Invalid timeout: expected an integer"),
    ({"action": "stop", "timeout": 1.5}, "Invalid timeout"),
    ({"action": "stop", "timeout": 99999}, "at most 3600"),
    ({"action": "start"}, "The instance is already running"),
    ({"action": "unfreeze"}, "The instance isn't frozen"),
])
def test_bad_state_change(api, target, unchanged, body, message):
    assert_error(api.put(f"/1.0/instances/{target}/state", body), 400, message)


def test_state_force_not_a_boolean(kivad, api, kiva, names):
    c = names()  # its own container: the bug stops it
    kiva("launch", "busybox", c)
    before = snapshot(kivad, c)
    assert_error(api.put(f"/1.0/instances/{c}/state",
                         {"action": "stop", "force": "yes", "timeout": 5}), 400, "force")
    assert snapshot(kivad, c) == before


def test_cli_state_verbs_on_wrong_state(kiva, target, unchanged):
    assert_cli_error(kiva("start", target, check=False), "The instance is already running")
    assert_cli_error(kiva("resume", target, check=False), "The instance isn't frozen")
    assert_cli_error(kiva("stop", target, "--timeout", "x", check=False), "timeout")


@pytest.mark.parametrize("body,status,message", [
    ({"command": [], "record-output": True}, 400, "Invalid command"),
    ({"record-output": True}, 400, "Invalid command"),
    ({"command": "true", "record-output": True}, 400, "Invalid command"),
    ({"command": [1, 2], "record-output": True}, 400, "Invalid command"),
    ({"command": ["true"], "environment": ["A=1"], "record-output": True}, 400, "environment"),
])
def test_bad_exec(api, target, unchanged, body, status, message):
    assert_error(api.post(f"/1.0/instances/{target}/exec", body), status, message)


def test_cli_exec_without_command(kiva, target, unchanged):
    assert_cli_error(kiva("exec", target, "--", check=False), "Invalid number of arguments")


def test_raw_socket_abuse_leaves_kivad_serving(kivad, api):
    """Clients that connect and vanish, send half a request, a truncated body or garbage must
    not take kivad down (a NULL per-session pointer once crashed it on a bare connect/close)."""
    import socket

    def conn():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(kivad.socket)
        return s

    for _ in range(20):
        conn().close()
    s = conn()
    s.sendall(b"GET /1.0 HTTP/1.1\r\nHo")
    s.close()
    s = conn()
    s.sendall(b"POST /1.0/instances HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na")
    s.close()
    s = conn()
    s.sendall(b"garbage\r\n\r\n")
    reply = s.recv(100)
    s.close()
    assert reply.startswith(b"HTTP/1."), reply
    assert b" 4" in reply.split(b"\r\n")[0], reply
    status, body = api.get("/1.0")
    assert status == 200 and body["metadata"]["environment"]["server"] == "kiva"
