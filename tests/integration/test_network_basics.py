"""Networks and NICs with real bridges and containers: the default network, addresses from IPAM,
routes and resolv.conf inside, two containers talking over one bridge, network create / show /
list / info / set / delete, --no-profiles, static addresses, address reuse and pools."""

import ipaddress
import json
import os

import pytest
import yaml

from conftest import (can_ping, default_network, free_subnet, http_get, in_container,
                      nft_table, nic_address, sh, wait_until)


def subnet_of(api, net):
    return ipaddress.ip_interface(
        api.get(f"/1.0/networks/{net}")[1]["metadata"]["config"]["ipv4.address"])


def start_httpd(api, name, text="hello"):
    rc, _, err = in_container(api, name,
                              f"echo {text} > /tmp/index.html && httpd -p 80 -h /tmp")
    assert rc == 0, err


def test_default_network_and_launch(kivad, api, kiva, names):
    dnet = default_network(kivad)
    st, body = api.get(f"/1.0/networks/{dnet}")
    assert st == 200, body
    net = body["metadata"]
    assert net["type"] == "bridge" and net["managed"] is True
    assert net["config"]["ipv4.nat"] == "true"
    gw = ipaddress.ip_interface(net["config"]["ipv4.address"])
    assert str(gw.network).startswith("10.") and gw.network.prefixlen == 24
    # the bridge exists on the host with the gateway address
    assert f"inet {gw.with_prefixlen} " in sh("ip", "-o", "-4", "addr", "show", "dev", dnet)
    assert f"/1.0/networks/{dnet}" in api.get("/1.0/networks")[1]["metadata"]

    c = names("nb")
    kiva("launch", "busybox", c)
    addr = nic_address(api, c)
    assert addr and ipaddress.ip_address(addr) in gw.network and addr != str(gw.ip)
    row = kiva("list", c, "-f", "csv").stdout.strip().split(",")
    assert row[0] == c and row[1] == "RUNNING" and row[2] == f"{addr} (eth0)", row
    state_eth0 = api.state(c)["network"]["eth0"]
    inst = api.instance(c)
    assert state_eth0["host_name"] == inst["config"]["volatile.eth0.host_name"]
    assert inst["config"]["volatile.eth0.ipv4.address"] == addr
    assert state_eth0["hwaddr"] == inst["config"]["volatile.eth0.hwaddr"]
    assert inst["expanded_devices"]["eth0"] == {"type": "nic", "network": dnet, "name": "eth0"}
    # inside: the address, a default route via the gateway, a nameserver
    rc, out, _ = in_container(api, c, "ip -4 addr show dev eth0")
    assert rc == 0 and f"inet {addr}/24" in out, out
    rc, out, _ = in_container(api, c, "ip route")
    assert rc == 0 and f"default via {gw.ip} dev eth0" in out, out
    rc, out, _ = in_container(api, c, "cat /etc/resolv.conf")
    assert rc == 0 and any(line.startswith("nameserver ") for line in out.splitlines()), out
    # the gateway (KIVA's bridge) answers
    assert can_ping(api, c, gw.ip)
    # the host veth is a port of the bridge
    assert f"master {dnet} " in sh("ip", "-o", "link", "show", "dev", state_eth0["host_name"])


def test_two_containers_on_one_bridge(kivad, api, kiva, names):
    a, b = names("nb"), names("nb")
    kiva("launch", "busybox", a)
    kiva("launch", "busybox", b)
    aa, ab = nic_address(api, a), nic_address(api, b)
    assert aa != ab
    start_httpd(api, b, "from-b")
    assert can_ping(api, a, ab) and can_ping(api, b, aa)
    out = http_get(api, a, ab)
    assert out.startswith("HTTP/1.") and "200 OK" in out and out.rstrip().endswith("from-b"), out


def test_network_create_launch_show_set_delete(kivad, api, kiva, names, net):
    sub = free_subnet(api)
    gw = f"{sub.network_address + 1}/24"
    name = net.name("nt")
    net.networks.append(name)
    r = kiva("network", "create", name, f"ipv4.address={gw}", "--description", "test net")
    assert name in r.stdout
    assert f"inet {gw} " in sh("ip", "-o", "-4", "addr", "show", "dev", name)
    cfg = api.get(f"/1.0/networks/{name}")[1]["metadata"]["config"]
    assert cfg["ipv4.address"] == gw

    c = names("nb")
    kiva("launch", "busybox", c, "-n", name)
    addr = nic_address(api, c)
    assert ipaddress.ip_address(addr) in sub, addr
    assert api.instance(c)["expanded_devices"]["eth0"]["network"] == name
    rc, out, _ = in_container(api, c, "ip route")
    assert f"default via {sub.network_address + 1} dev eth0" in out, out

    shown = yaml.safe_load(kiva("network", "show", name).stdout)
    assert shown["name"] == name and shown["type"] == "bridge"
    assert shown["description"] == "test net"
    assert shown["config"]["ipv4.address"] == gw
    assert shown["used_by"] == [f"/1.0/instances/{c}"]
    rows = [line.split(",") for line in
            kiva("network", "list", "-f", "csv").stdout.strip().splitlines()]
    mine = [row for row in rows if row[0] == name]
    assert mine and mine[0][1:4] == ["bridge", "YES", gw] and mine[0][5] == "1", mine
    listed = json.loads(kiva("network", "list", "-f", "json").stdout)
    assert any(n["name"] == name for n in listed)
    info = kiva("network", "info", name).stdout
    assert f"Name: {name}" in info and f"inet\t{gw}" in info and "State: up" in info, info
    assert kiva("network", "get", name, "ipv4.address").stdout.strip() == gw

    # ipv4.nat=false persists and the masquerade of the subnet goes
    table = nft_table(kivad)
    assert f"ip saddr {sub} ip daddr != {sub} masquerade" not in \
        sh("nft", "list", "table", "inet", table)
    kiva("network", "set", name, "ipv4.nat=true")
    assert f"ip saddr {sub} ip daddr != {sub} masquerade" in \
        sh("nft", "list", "table", "inet", table)
    assert can_ping(api, c, sub.network_address + 1)
    kiva("network", "set", name, "ipv4.nat=false")
    assert api.get(f"/1.0/networks/{name}")[1]["metadata"]["config"]["ipv4.nat"] == "false"
    assert kiva("network", "get", name, "ipv4.nat").stdout.strip() == "false"
    assert f"ip saddr {sub} ip daddr != {sub} masquerade" not in \
        sh("nft", "list", "table", "inet", table)

    # delete refused while used
    r = kiva("network", "delete", name, check=False)
    assert r.returncode != 0 and f"Network '{name}' is in use" in r.stderr, r.stderr
    st, body = api.delete(f"/1.0/networks/{name}")
    assert st == 409 and "in use" in body["error"], body
    assert os.path.exists(f"/sys/class/net/{name}")
    assert api.get(f"/1.0/networks/{name}")[0] == 200
    assert can_ping(api, c, sub.network_address + 1)
    # accepted once the instance is gone, and the bridge goes
    kiva("delete", "--force", c)
    kiva("network", "delete", name)
    assert api.get(f"/1.0/networks/{name}")[0] == 404
    assert not os.path.exists(f"/sys/class/net/{name}")


def test_auto_network_avoids_used_subnets(kivad, api, net):
    a = net.network()
    b = net.network()
    sa, sb = subnet_of(api, a), subnet_of(api, b)
    assert sa.network.prefixlen == 24 and sb.network.prefixlen == 24
    assert not sa.network.overlaps(sb.network)
    cfg = api.get(f"/1.0/networks/{a}")[1]["metadata"]["config"]
    assert cfg["ipv4.nat"] == "true"
    others = [ipaddress.ip_interface(n["config"]["ipv4.address"]).network
              for n in api.get("/1.0/networks?recursion=1")[1]["metadata"]
              if n["name"] not in (a, b) and n["config"].get("ipv4.address", "none") != "none"]
    assert not any(sa.network.overlaps(o) or sb.network.overlaps(o) for o in others)


def test_no_profiles_gives_no_nic(kivad, api, kiva, names, net):
    c = names("nb")
    kiva("launch", "busybox", c, "--no-profiles")
    inst = api.instance(c)
    assert inst["profiles"] == [] and inst["expanded_devices"] == {}
    assert not [k for k in inst["config"] if k.startswith("volatile.eth0")]
    assert set((api.state(c).get("network") or {}).keys()) <= {"lo"}
    rc, out, _ = in_container(api, c, "ls /sys/class/net")
    assert out.split() == ["lo"], out
    row = kiva("list", c, "-f", "csv").stdout.strip().split(",")
    assert row[2] == "", row
    # --no-profiles -n NET: only that eth0
    n = net.network()
    d = names("nb")
    kiva("launch", "busybox", d, "--no-profiles", "-n", n)
    assert list(api.instance(d)["expanded_devices"]) == ["eth0"]
    assert ipaddress.ip_address(nic_address(api, d)) in subnet_of(api, n).network


def test_static_address_on_second_nic(kivad, api, kiva, names, net):
    n = net.network()
    sub = subnet_of(api, n).network
    static = str(sub.network_address + 77)
    c, peer = names("nb"), names("nb")
    kiva("launch", "busybox", c)
    kiva("launch", "busybox", peer, "--no-profiles", "-n", n)
    kiva("config", "device", "add", c, "eth1", "nic", f"network={n}", f"ipv4.address={static}")
    assert api.instance(c)["devices"]["eth1"]["ipv4.address"] == static
    assert "volatile.eth1.ipv4.address" not in api.instance(c)["config"]
    wait_until(lambda: nic_address(api, c, "eth1") == static, timeout=5, what="eth1 address")
    rc, out, _ = in_container(api, c, "ip -4 addr show dev eth1")
    assert f"inet {static}/24" in out, out
    assert can_ping(api, peer, static)
    # and it survives a restart
    kiva("stop", "--force", c)
    kiva("start", c)
    assert nic_address(api, c, "eth1") == static
    assert can_ping(api, peer, static)


def test_address_reused_after_delete(kivad, api, kiva, names, net):
    n = net.network()
    a, b, c = names("nb"), names("nb"), names("nb")
    kiva("launch", "busybox", a, "-n", n)
    kiva("launch", "busybox", b, "-n", n)
    addr_a, addr_b = nic_address(api, a), nic_address(api, b)
    sub = subnet_of(api, n).network
    # the lowest free addresses of the pool, in order
    assert [addr_a, addr_b] == [str(sub.network_address + 2), str(sub.network_address + 3)]
    kiva("delete", "--force", a)
    kiva("launch", "busybox", c, "-n", n)
    assert nic_address(api, c) == addr_a
    assert can_ping(api, b, addr_a)


def test_ipam_pool_ranges(kivad, api, kiva, names, net):
    sub = free_subnet(api)
    base = sub.network_address
    n = net.network(**{"ipv4.address": f"{base + 1}/24",
                       "ipv4.dhcp.ranges": f"{base + 50}-{base + 51},{base + 60}-{base + 60}"})
    got = []
    for _ in range(3):
        c = names("nb")
        kiva("init", "busybox", c, "-n", n)
        got.append(api.instance(c)["config"]["volatile.eth0.ipv4.address"])
    assert got == [str(base + 50), str(base + 51), str(base + 60)]
    # the pool is exhausted: a clear error and no instance
    c = names("nb")
    r = kiva("init", "busybox", c, "-n", n, check=False)
    assert r.returncode != 0 and f"No free IPv4 address left on network '{n}'" in r.stderr, \
        r.stderr
    assert c not in api.instance_names()
    # a static address outside the pool but inside the subnet is fine
    s = names("nb")
    kiva("init", "busybox", s, "--no-profiles")
    kiva("config", "device", "add", s, "eth0", "nic", f"network={n}",
         f"ipv4.address={base + 200}")
    kiva("start", s)
    assert nic_address(api, s) == str(base + 200)
    # a bad pool is refused and changes nothing
    before = api.get(f"/1.0/networks/{n}")[1]["metadata"]
    r = kiva("network", "set", n, f"ipv4.dhcp.ranges={base + 10}-10.255.255.1", check=False)
    assert r.returncode != 0 and "Invalid range" in r.stderr and "outside" in r.stderr, r.stderr
    assert api.get(f"/1.0/networks/{n}")[1]["metadata"] == before


def test_mtu_hwaddr_and_nameservers(kivad, api, kiva, names, net):
    n = net.network(**{"bridge.mtu": "1400", "dns.nameservers": "10.9.9.9,10.9.9.10"})
    assert open(f"/sys/class/net/{n}/mtu").read().strip() == "1400"
    c = names("nb")
    kiva("launch", "busybox", c, "-n", n)
    host = api.instance(c)["config"]["volatile.eth0.host_name"]
    rc, out, _ = in_container(api, c, "cat /sys/class/net/eth0/mtu /etc/resolv.conf")
    lines = out.split("\n")
    assert lines[0] == "1400", out
    assert [x for x in lines if x.startswith("nameserver")] == \
        ["nameserver 10.9.9.9", "nameserver 10.9.9.10"], out
    assert open(f"/sys/class/net/{host}/mtu").read().strip() == "1400"
    # NIC keys: mtu and hwaddr, applied to the running NIC
    kiva("config", "device", "set", c, "eth0", "mtu=1300", "hwaddr=00:16:3e:aa:bb:cc")
    rc, out, _ = in_container(api, c, "cat /sys/class/net/eth0/mtu /sys/class/net/eth0/address")
    assert out.split() == ["1300", "00:16:3e:aa:bb:cc"], out
    assert open(f"/sys/class/net/{host}/mtu").read().strip() == "1300"
    peer = names("nb")
    kiva("launch", "busybox", peer, "-n", n)
    assert can_ping(api, peer, nic_address(api, c))
    rc, out, _ = in_container(api, peer, "cat /sys/class/net/eth0/mtu")
    assert out.strip() == "1400"


def test_bridge_mtu_unset_restores_default(kivad, api, kiva, names, net):
    n = net.network(**{"bridge.mtu": "1400"})
    kiva("network", "unset", n, "bridge.mtu")
    assert "bridge.mtu" not in api.get(f"/1.0/networks/{n}")[1]["metadata"]["config"]
    c = names("nb")
    kiva("launch", "busybox", c, "-n", n)
    rc, out, _ = in_container(api, c, "cat /sys/class/net/eth0/mtu")
    assert out.strip() == "1500" and \
        open(f"/sys/class/net/{n}/mtu").read().strip() == "1500", out
