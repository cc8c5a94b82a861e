"""NAT (ipv4.nat) towards a network namespace that plays the upstream network: a veth pair
vu<hex> (host, 10.Z.0.1/30) <-> the netns (10.Z.0.2/30). With NAT the netns sees the host's
10.Z.0.1 as the source of a container's connections; without it, the container's own address.
Traffic only goes between the test's containers and its netns."""

import ipaddress
import json
import subprocess
import sys

import pytest

from conftest import can_ping, free_subnet, in_container, nic_address, sh

# Runs in the netns: listens on PORT, also sniffs incoming TCP with a raw socket, and prints
# one JSON line per event: {"syn": SRC} for the first SYN to PORT, {"accepted": PEER}.
PROBE = r"""
import json, select, socket, struct, sys, time
port, timeout = int(sys.argv[1]), float(sys.argv[2])
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("0.0.0.0", port)); lst.listen(4)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
print(json.dumps({"ready": True}), flush=True)
deadline, seen = time.monotonic() + timeout, False
while time.monotonic() < deadline:
    r, _, _ = select.select([lst, raw], [], [], 0.1)
    if raw in r:
        pkt = raw.recv(65535)
        ihl = (pkt[0] & 15) * 4
        dport, flags = struct.unpack("!H", pkt[ihl + 2:ihl + 4])[0], pkt[ihl + 13]
        if dport == port and flags & 0x02 and not seen:
            seen = True
            print(json.dumps({"syn": socket.inet_ntoa(pkt[12:16])}), flush=True)
    if lst in r:
        conn, peer = lst.accept()
        conn.sendall(b"upstream\n"); conn.close()
        print(json.dumps({"accepted": peer[0]}), flush=True)
        break
"""


class Upstream:
    """netns up<hex> reachable from the host through vu<hex>."""

    def __init__(self, net, api):
        self.sub = free_subnet(api, prefixlen=30)
        self.host_ip = str(self.sub.network_address + 1)
        self.ns_ip = str(self.sub.network_address + 2)
        self.ns = net.new_netns("up")
        suffix = self.ns[2:]
        self.host_if, peer = f"vu{suffix}", f"vp{suffix}"
        net.veth(self.host_if, peer, netns=self.ns)
        sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", f"{self.ns_ip}/30", "dev", peer],
                    ["ip", "link", "set", peer, "up"]):
            sh("ip", "netns", "exec", self.ns, *cmd)

    def connect_from(self, api, container, port, expect_accept, timeout=4):
        return probe_connect(["ip", "netns", "exec", self.ns], api, container, self.ns_ip,
                             port, expect_accept, timeout)


def probe_connect(prefix, api, container, dst, port, expect_accept, timeout=4):
    """Run PROBE under prefix (a netns), nc from the container to dst:port; return the probe's
    events, nc's return code and output."""
    probe = subprocess.Popen([*prefix, sys.executable, "-c", PROBE, str(port), str(timeout)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(probe.stdout.readline() or "{}") == {"ready": True}, \
            probe.stderr.read()
        rc, out, _ = in_container(api, container,
                                  f"echo hi | nc -w {2 if expect_accept else 1} {dst} {port}")
        try:
            stdout, _ = probe.communicate(timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            probe.kill()
            stdout, _ = probe.communicate()
        events = {}
        for line in stdout.splitlines():
            events.update(json.loads(line))
        return events, rc, out
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()


@pytest.fixture
def upstream(net, api):
    return Upstream(net, api)


def test_nat_masquerades_towards_upstream(kivad, api, kiva, names, net, upstream):
    n = net.network(**{"ipv4.nat": "true"})
    c = names("nn")
    kiva("launch", "busybox", c, "-n", n)
    addr = nic_address(api, c)
    assert can_ping(api, c, upstream.ns_ip, wait=2)
    events, rc, out = upstream.connect_from(api, c, 8081, expect_accept=True)
    assert events.get("syn") == upstream.host_ip, events
    assert events.get("accepted") == upstream.host_ip, events
    assert rc == 0 and "upstream" in out, (rc, out)
    assert addr != upstream.host_ip


def test_no_nat_keeps_container_source(kivad, api, kiva, names, net, upstream):
    n = net.network(**{"ipv4.nat": "true"})
    c = names("nn")
    kiva("launch", "busybox", c, "-n", n)
    addr = nic_address(api, c)
    kiva("network", "set", n, "ipv4.nat=false")
    # the SYN arrives from the container's own address; the netns has no route back
    events, rc, _ = upstream.connect_from(api, c, 8082, expect_accept=False, timeout=2)
    assert events.get("syn") == addr, events
    assert "accepted" not in events and rc != 0, (events, rc)
    assert not can_ping(api, c, upstream.ns_ip)
    # with a route back to the network's subnet the connection works, still from addr
    sub = api.get(f"/1.0/networks/{n}")[1]["metadata"]["config"]["ipv4.address"]
    sh("ip", "netns", "exec", upstream.ns, "ip", "route", "add",
       str(ipaddress.ip_interface(sub).network), "via", upstream.host_ip)
    events, rc, out = upstream.connect_from(api, c, 8083, expect_accept=True)
    assert events.get("accepted") == addr and rc == 0 and "upstream" in out, (events, out)
    assert can_ping(api, c, upstream.ns_ip, wait=2)
    # NAT back on: the host's address again
    kiva("network", "set", n, "ipv4.nat=true")
    events, rc, out = upstream.connect_from(api, c, 8084, expect_accept=True)
    assert events.get("accepted") == upstream.host_ip, events


def test_nat_leaves_same_bridge_traffic_alone(kivad, api, kiva, names, net):
    """The masquerade is for traffic leaving the subnet: on the bridge a container sees the
    other's own address."""
    n = net.network(**{"ipv4.nat": "true"})
    a, b = names("nn"), names("nn")
    kiva("launch", "busybox", a, "-n", n)
    kiva("launch", "busybox", b, "-n", n)
    aa, ab = nic_address(api, a), nic_address(api, b)
    events, rc, out = probe_connect(["nsenter", "-t", str(api.pid(b)), "-n"], api, a, ab, 9000,
                                    expect_accept=True)
    assert events.get("accepted") == aa and rc == 0 and "upstream" in out, (events, out)
