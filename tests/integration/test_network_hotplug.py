"""NIC hot-plug: attach and detach NICs on a running instance without a restart (init keeps its
pid), with `kiva config device add/remove` and `kiva network attach/detach`."""

import ipaddress
import os

from conftest import can_ping, in_container, nic_address, pid_alive, sh, wait_until


def ifaces(api, name):
    return in_container(api, name, "ls /sys/class/net")[1].split()


def test_device_add_remove_running(kivad, api, kiva, names, net):
    n = net.network()
    sub = ipaddress.ip_interface(
        api.get(f"/1.0/networks/{n}")[1]["metadata"]["config"]["ipv4.address"]).network
    c, peer = names("hp"), names("hp")
    kiva("launch", "busybox", c)
    kiva("launch", "busybox", peer, "-n", n)
    pid = api.pid(c)
    eth0 = nic_address(api, c)

    kiva("config", "device", "add", c, "eth1", "nic", f"network={n}")
    assert api.pid(c) == pid and pid_alive(pid)
    addr = api.instance(c)["config"]["volatile.eth1.ipv4.address"]
    assert ipaddress.ip_address(addr) in sub
    wait_until(lambda: nic_address(api, c, "eth1") == addr, timeout=5, what="eth1's address")
    assert ifaces(api, c) == ["eth0", "eth1", "lo"]
    rc, out, _ = in_container(api, c, "ip -4 addr show dev eth1")
    assert f"inet {addr}/{sub.prefixlen}" in out, out
    host = api.instance(c)["config"]["volatile.eth1.host_name"]
    assert f"master {n} " in sh("ip", "-o", "link", "show", "dev", host)
    assert can_ping(api, peer, addr) and can_ping(api, c, nic_address(api, peer))
    # eth0 untouched
    assert nic_address(api, c) == eth0
    rc, out, _ = in_container(api, c, "ip route")
    assert out.count("default via") == 1, out
    assert kiva("list", c, "-f", "csv").stdout.count("(eth") == 2

    kiva("config", "device", "remove", c, "eth1")
    assert api.pid(c) == pid
    assert ifaces(api, c) == ["eth0", "lo"]
    assert not os.path.exists(f"/sys/class/net/{host}")
    assert "volatile.eth1.ipv4.address" not in api.instance(c)["config"]
    assert not can_ping(api, peer, addr)
    assert nic_address(api, c) == eth0


def test_network_attach_detach(kivad, api, kiva, names, net):
    n1, n2 = net.network(), net.network()
    c, p1, p2 = names("hp"), names("hp"), names("hp")
    kiva("launch", "busybox", c, "--no-profiles")
    kiva("launch", "busybox", p1, "-n", n1)
    kiva("launch", "busybox", p2, "-n", n2)
    pid = api.pid(c)
    assert ifaces(api, c) == ["lo"]

    kiva("network", "attach", n1, c)                 # eth0 on an instance without NICs
    kiva("network", "attach", n2, c, "mgmt", "ens9")  # device mgmt, interface ens9
    assert api.pid(c) == pid
    devs = api.instance(c)["devices"]
    assert devs["eth0"] == {"type": "nic", "network": n1, "name": "eth0"}
    assert devs["mgmt"]["network"] == n2 and devs["mgmt"]["name"] == "ens9"
    assert ifaces(api, c) == ["ens9", "eth0", "lo"]
    a1, a2 = nic_address(api, c, "eth0"), nic_address(api, c, "ens9")
    assert a1 and a2
    assert can_ping(api, p1, a1) and can_ping(api, p2, a2)
    # the first NIC got the default route
    rc, out, _ = in_container(api, c, "ip route")
    assert "default via" in out, out

    # a third: next free ethN
    kiva("network", "attach", n1, c, "eth1")
    assert ifaces(api, c) == ["ens9", "eth0", "eth1", "lo"]
    h1 = api.instance(c)["config"]["volatile.eth1.host_name"]

    # detach with several NICs on n1: the device must be named
    r = kiva("network", "detach", n1, c, check=False)
    assert r.returncode != 0 and r.stderr.startswith("Error:"), r.stderr
    assert ifaces(api, c) == ["ens9", "eth0", "eth1", "lo"]
    kiva("network", "detach", n1, c, "eth1")
    assert not os.path.exists(f"/sys/class/net/{h1}")
    hmgmt = api.instance(c)["config"]["volatile.mgmt.host_name"]
    kiva("network", "detach", n2, c)
    assert not os.path.exists(f"/sys/class/net/{hmgmt}")
    assert ifaces(api, c) == ["eth0", "lo"]
    assert not can_ping(api, p2, a2)
    assert can_ping(api, p1, a1)
    assert api.pid(c) == pid and pid_alive(pid)
    # detaching a network it is not on
    r = kiva("network", "detach", n2, c, check=False)
    assert r.returncode != 0 and r.stderr.startswith("Error:"), r.stderr
    # a network the instance is not on can be deleted right away; n1 cannot
    assert api.delete(f"/1.0/networks/{n1}")[0] == 409


def test_hotplug_survives_restart_and_failures_change_nothing(kivad, api, kiva, names, net):
    n = net.network()
    c = names("hp")
    kiva("launch", "busybox", c, "-n", n)
    pid = api.pid(c)
    before = api.instance(c)
    taken = nic_address(api, c)
    # a taken address, an unknown network, a duplicate interface name: refused, nothing changes
    for args, msg in (([f"network={n}", f"ipv4.address={taken}"], "already in use"),
                      (["network=nosuchnet0"], "Network 'nosuchnet0' not found"),
                      ([f"network={n}", "name=eth0"], "used by two devices")):
        r = kiva("config", "device", "add", c, "eth1", "nic", *args, check=False)
        assert r.returncode != 0 and msg in r.stderr, (args, r.stderr)
    after = api.instance(c)
    assert after["devices"] == before["devices"] and after["config"] == before["config"]
    assert ifaces(api, c) == ["eth0", "lo"] and api.pid(c) == pid

    kiva("network", "attach", n, c)
    a1 = nic_address(api, c, "eth1")
    kiva("stop", "--force", c)
    kiva("start", c)
    assert ifaces(api, c) == ["eth0", "eth1", "lo"]
    assert nic_address(api, c, "eth1") == a1 and nic_address(api, c) == taken
