"""QoS on a NIC, measured: iperf3 runs in the containers' network namespaces (nsenter), between two
containers on one bridge. limits.ingress caps the container's download, limits.egress its upload;
removing the limits restores full speed and leaves no qdisc or ifb behind."""

import json
import os
import secrets
import subprocess

import pytest

from conftest import nic_address, sh, wait_until

IPERF = "/usr/bin/iperf3"
pytestmark = pytest.mark.skipif(not os.access(IPERF, os.X_OK), reason="iperf3 not installed")

RESULTS = {}  # measured rates, printed at the end of the module (pytest -s) and in failures


def iperf(api, server, client, server_ip, seconds=3, reverse=False):
    """Receiver-side rate in Mbit/s of an iperf3 test: client -> server (or server -> client
    with reverse), with the server in server's netns and the client in client's."""
    port = 20000 + secrets.randbelow(20000)
    srv = subprocess.Popen(["nsenter", "-t", str(api.pid(server)), "-n", IPERF, "-s", "-1",
                            "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: f":{port} " in sh("nsenter", "-t", str(api.pid(server)), "-n", "ss",
                                             "-Hltn"),
                   timeout=5, what="iperf3 server")
        cmd = ["nsenter", "-t", str(api.pid(client)), "-n", IPERF, "-c", server_ip,
               "-p", str(port), "-t", str(seconds), "-J"] + (["-R"] if reverse else [])
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 20)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
        data = json.loads(r.stdout)
        return data["end"]["sum_received"]["bits_per_second"] / 1e6
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait()


def qos_leftovers(host):
    """What shaping exists for the NIC's host veth: its qdiscs other than the default ones, its
    ifb."""
    found = []
    if os.path.exists(f"/sys/class/net/{host}"):
        for line in sh("tc", "qdisc", "show", "dev", host).splitlines():
            if line.split()[1] not in ("noqueue", "pfifo_fast", "fq_codel"):
                found.append(line)
        found += [line for line in sh("tc", "filter", "show", "dev", host, "ingress").splitlines()
                  if "mirred" in line]
    ifb = "kvi" + host[2:]
    if os.path.exists(f"/sys/class/net/{ifb}"):
        found.append(f"ifb {ifb}")
    return found


@pytest.fixture
def pair(kivad, api, kiva, names, net):
    n = net.network()
    a, b = names("qa"), names("qb")
    kiva("launch", "busybox", a, "-n", n)
    kiva("launch", "busybox", b, "-n", n)
    return a, b, nic_address(api, a), api.instance(a)["config"]["volatile.eth0.host_name"]


def within(value, target, tol=0.10):
    return abs(value - target) <= tol * target


def test_limits_measured_and_removed(kivad, api, kiva, pair):
    a, b, aip, host = pair
    kiva("config", "device", "set", a, "eth0", "limits.ingress=20Mbit", "limits.egress=10Mbit")
    qd = sh("tc", "qdisc", "show", "dev", host)
    assert "htb" in qd and "ingress" in qd, qd
    assert os.path.exists(f"/sys/class/net/kvi{host[2:]}")

    down = iperf(api, a, b, aip)                 # b -> a: a's download
    up = iperf(api, a, b, aip, reverse=True)     # a -> b: a's upload
    RESULTS.update(download_20=down, upload_10=up)
    assert within(down, 20), f"download {down:.2f} Mbit/s, limit 20Mbit"
    assert within(up, 10), f"upload {up:.2f} Mbit/s, limit 10Mbit"

    # change a limit on the running NIC
    kiva("config", "device", "set", a, "eth0", "limits.ingress=40Mbit")
    down = iperf(api, a, b, aip, seconds=2)
    RESULTS.update(download_40=down)
    assert within(down, 40), f"download {down:.2f} Mbit/s, limit 40Mbit"

    # removing the limits restores full speed, no shaping left
    kiva("config", "device", "unset", a, "eth0", "limits.ingress")
    kiva("config", "device", "unset", a, "eth0", "limits.egress")
    assert "limits.ingress" not in api.instance(a)["devices"]["eth0"]
    down = iperf(api, a, b, aip, seconds=1)
    up = iperf(api, a, b, aip, seconds=1, reverse=True)
    RESULTS.update(download_unlimited=down, upload_unlimited=up)
    assert qos_leftovers(host) == [], qos_leftovers(host)
    assert down > 100 and up > 100, (down, up)


def test_limits_removed_in_one_change(kivad, api, kiva, pair):
    """Both limits removed by one PUT (what a curl user or `kiva config edit` does)."""
    a, b, aip, host = pair
    kiva("config", "device", "set", a, "eth0", "limits.ingress=20Mbit", "limits.egress=10Mbit")
    assert qos_leftovers(host)
    status, body, headers = api.request_ex("GET", f"/1.0/instances/{a}")
    inst = body["metadata"]
    dev = inst["devices"]["eth0"]
    del dev["limits.ingress"], dev["limits.egress"]
    put = {k: inst[k] for k in ("architecture", "config", "devices", "ephemeral", "profiles",
                                "description")}
    op = api.wait(api.request("PUT", f"/1.0/instances/{a}", put,
                              headers={"If-Match": headers["ETag"]}))
    assert op["status"] == "Success", op
    assert qos_leftovers(host) == [], qos_leftovers(host)


def test_limits_gone_after_stop(kivad, api, kiva, pair):
    a, b, aip, host = pair
    kiva("config", "device", "set", a, "eth0", "limits.ingress=20Mbit", "limits.egress=10Mbit")
    assert qos_leftovers(host)
    kiva("stop", "--force", a)
    assert not os.path.exists(f"/sys/class/net/{host}")
    assert qos_leftovers(host) == []
    # they come back with the start
    kiva("start", a)
    down = iperf(api, a, b, aip, seconds=2)
    RESULTS.update(download_20_after_restart=down)
    assert within(down, 20), f"download {down:.2f} Mbit/s after a restart"
    kiva("delete", "--force", a)
    assert qos_leftovers(host) == []


def test_limits_set_at_creation(kivad, api, kiva, names, net):
    n = net.network()
    a, b = names("qa"), names("qb")
    kiva("init", "busybox", a, "--no-profiles")
    kiva("config", "device", "add", a, "eth0", "nic", f"network={n}", "limits.egress=10Mbit")
    kiva("start", a)
    kiva("launch", "busybox", b, "-n", n)
    host = api.instance(a)["config"]["volatile.eth0.host_name"]
    assert "htb" not in sh("tc", "qdisc", "show", "dev", host)  # no ingress limit: no HTB root
    up = iperf(api, a, b, nic_address(api, a), seconds=2, reverse=True)
    RESULTS.update(upload_10_from_start=up)
    assert within(up, 10), f"upload {up:.2f} Mbit/s"


def test_bad_rates_refused(kivad, api, kiva, pair):
    a, b, aip, host = pair
    before = api.instance(a)
    for rate in ("10Qbit", "0", "", "-5Mbit", "fast", "10 Mbit"):
        r = kiva("config", "device", "set", a, "eth0", f"limits.ingress={rate}", check=False)
        assert r.returncode != 0 and "Invalid" in r.stderr, (rate, r.stderr)
    after = api.instance(a)
    assert after["devices"] == before["devices"] and after["config"] == before["config"]
    assert qos_leftovers(host) == []


def teardown_module(module):
    if RESULTS:
        print("\nQoS measured (Mbit/s):", json.dumps({k: round(v, 2) for k, v in RESULTS.items()}))
