"""Networking robustness: a kivad restart (clean or kill -9) re-applies bridges, addresses, QoS and
nftables idempotently (the host looks exactly the same, running containers stay connected);
deletes leave nothing behind; bad input gets a clear 4xx and changes nothing."""

import json
import os
import re
import secrets
import subprocess
import threading

import pytest

from conftest import (can_ping, default_network, free_subnet, http_get, in_container, kivad_hex,
                      nft_table, nic_address, sh, wait_init_ready, wait_until)


def tagged_links(d):
    """KIVA's interfaces of kivad d (alias kiva:<id>): {name: (kind, master, administratively up)}."""
    tag = "kiva:" + kivad_hex(d)[:8]
    out = {}
    for link in json.loads(sh("ip", "-j", "-d", "link", "show")):
        if link.get("ifalias") == tag:
            kind = (link.get("linkinfo") or {}).get("info_kind", "")
            out[link["ifname"]] = (kind, link.get("master"), "UP" in link.get("flags", []))
    return out


def host_view(d, bridges):
    """What the host has of kivad d's networking."""
    links = tagged_links(d)
    view = {
        "inet": sh("nft", "list", "table", "inet", nft_table(d)),
        "bridge": sh("nft", "list", "table", "bridge", nft_table(d)),
        # without the ifindex: a bridge deleted behind kivad's back comes back with a new one
        "addrs": {b: re.sub(r"^\d+: ", "", sh("ip", "-o", "-4", "addr", "show", "dev", b),
                            flags=re.M) for b in bridges},
        "links": links,
        "tc": {name: sh("tc", "qdisc", "show", "dev", name) for name in sorted(links)
               if links[name][0] in ("veth", "ifb")},
        "routes": sorted(line for line in sh("ip", "-4", "route").splitlines()
                         if any(f"dev {b} " in line + " " for b in bridges)),
    }
    return view


def same_host_view(now, before):
    """Compare two host views key by key, so a failure shows what differs."""
    for key in before:
        if isinstance(before[key], dict):
            for k in sorted(set(before[key]) | set(now[key])):
                assert now[key].get(k) == before[key].get(k), (key, k)
        else:
            assert now[key] == before[key], key


def api_view(d):
    api = d.api
    return {
        "networks": sorted(api.get("/1.0/networks?recursion=1")[1]["metadata"],
                           key=lambda n: n["name"]),
        "acls": sorted(api.get("/1.0/network-acls?recursion=1")[1]["metadata"],
                       key=lambda n: n["name"]),
        "instances": sorted(api.instances(), key=lambda i: i["name"]),
    }


def no_duplicates(view):
    for b, text in view["addrs"].items():
        assert text.count(" inet ") == 1, (b, text)
    for table in ("inet", "bridge"):
        chains = [line.strip() for line in view[table].splitlines()
                  if line.strip().startswith("chain ")]
        assert len(chains) == len(set(chains)), view[table]
    for name, text in view["tc"].items():
        roots = [line for line in text.splitlines() if " root " in line]
        assert len(roots) <= 1, (name, text)


@pytest.fixture
def setup(kivad_factory, net_factory):
    """A dedicated kivad with: the default network, a second network, an ACL on one NIC, QoS on
    another, a hot-plugged NIC, a stopped instance and an unused third network."""
    d = kivad_factory()
    net = net_factory(d)
    k = d.kiva
    dnet = default_network(d)
    n2, n3 = net.network(), net.network()
    acl = net.acl(ingress=[{"action": "allow", "source": "@app=api", "protocol": "tcp",
                            "destination_port": "80"}])
    s = {"d": d, "net": net, "bridges": [dnet, n2, n3], "n2": n2, "n3": n3, "acl": acl}
    N = {role: f"{role[:3]}-{secrets.token_hex(4)}" for role in
         ("web", "api", "other", "plain", "off", "late")}
    s["n"] = N
    for role, args in (("web", ["-n", n2]), ("api", ["-n", n2, "-c", "user.app=api"]),
                       ("other", ["-n", n2]), ("plain", []), ("off", [])):
        k("init" if role == "off" else "launch", "busybox", N[role], *args)
    k("network", "acl", "attach", acl, N["web"], "eth0")
    k("config", "device", "set", N["plain"], "eth0", "limits.ingress=20Mbit",
      "limits.egress=10Mbit")
    k("network", "attach", n2, N["plain"], "eth1")
    rc, _, err = in_container(d.api, N["web"],
                              "echo web > /tmp/index.html && httpd -p 80 -h /tmp")
    assert rc == 0, err
    s["pids"] = {r: d.api.pid(N[r]) for r in ("web", "api", "other", "plain")}
    s["ips"] = {r: nic_address(d.api, N[r]) for r in ("web", "api", "other", "plain")}
    s["ips"]["plain1"] = nic_address(d.api, N["plain"], "eth1")
    return s


def check_connected(s):
    api, ips, N = s["d"].api, s["ips"], s["n"]
    assert "200 OK" in http_get(api, N["api"], ips["web"])
    assert not http_get(api, N["other"], ips["web"])          # the ACL still holds
    assert can_ping(api, N["other"], ips["api"])
    assert can_ping(api, N["api"], ips["plain1"])             # hot-plugged eth1
    assert can_ping(api, N["plain"], ips["plain"].rsplit(".", 1)[0] + ".1")  # its gateway
    for role, pid in s["pids"].items():
        assert api.pid(N[role]) == pid, role


@pytest.mark.parametrize("how", ["restart", "kill9"])
def test_kivad_restart_reapplies_idempotently(setup, how):
    s = setup
    d = s["d"]
    before_host, before_api = host_view(d, s["bridges"]), api_view(d)
    no_duplicates(before_host)
    assert len([1 for v in before_host["links"].values() if v[0] == "ifb"]) == 1
    check_connected(s)
    for _ in range(2):  # twice: re-applying on top of what a restart applied is a no-op too
        if how == "restart":
            d.restart()
        else:
            d.kill()
            d.start()
        same_host_view(host_view(d, s["bridges"]), before_host)
        assert api_view(d) == before_api
    check_connected(s)
    # and the daemon still works: a new instance on n2 gets a fresh address and connectivity
    d.kiva("launch", "busybox", s["n"]["late"], "-n", s["n2"])
    late = nic_address(d.api, s["n"]["late"])
    assert late not in s["ips"].values()
    assert can_ping(d.api, s["n"]["late"], s["ips"]["other"])
    assert not http_get(d.api, s["n"]["late"], s["ips"]["web"])


def test_restart_repairs_what_went_missing(setup):
    """While kivad is down: a network's bridge is deleted, KIVA's tables are deleted, a stray
    tagged veth appears. The restart brings back the first two and removes the third."""
    s = setup
    d = s["d"]
    before = host_view(d, s["bridges"])
    d.stop()
    sh("ip", "link", "del", s["n3"])
    sh("nft", "delete", "table", "inet", nft_table(d))
    sh("nft", "delete", "table", "bridge", nft_table(d))
    stray = "kv" + os.urandom(5).hex()
    s["net"].links.append(stray)
    sh("ip", "link", "add", stray, "type", "veth", "peer", "name", stray + "p")
    sh("ip", "link", "set", stray, "alias", "kiva:" + kivad_hex(d)[:8])
    d.start()
    same_host_view(host_view(d, s["bridges"]), before)
    assert not os.path.exists(f"/sys/class/net/{stray}")
    check_connected(s)


def leftovers(d, needles):
    """Lines of the host's links, qdiscs and nftables that mention any of needles."""
    texts = [sh("ip", "-o", "link", "show"), sh("ip", "-o", "addr", "show"),
             sh("ip", "-4", "route", "show", "table", "all"),
             sh("tc", "qdisc", "show"),
             sh("nft", "list", "table", "inet", nft_table(d)),
             sh("nft", "list", "table", "bridge", nft_table(d))]
    return [line for t in texts for line in t.splitlines() if any(n in line for n in needles)]


def test_delete_leaves_nothing(setup):
    s = setup
    d = s["d"]
    for name in (s["n"]["web"], s["n"]["plain"]):
        cfg = d.api.instance(name)["config"]
        hosts = [v for k, v in cfg.items() if k.endswith(".host_name")]
        needles = hosts + ["kvi" + h[2:] for h in hosts]
        assert leftovers(d, needles), "the test should see the NICs before the delete"
        d.kiva("delete", "--force", name)
        assert leftovers(d, needles) == []
        assert not any(n in tagged_links(d) for n in needles)
    # web's address left the ACL's chains; api's is not mentioned either (no ACL'd NIC left)
    assert s["ips"]["web"] not in sh("nft", "list", "table", "bridge", nft_table(d))
    # a stopped instance holds nothing on the host
    off = d.api.instance(s["n"]["off"])["config"]["volatile.eth0.host_name"]
    assert leftovers(d, [off]) == []
    # a network with no instance: deleted, no bridge, no route, no nft mention
    n3 = s["n3"]
    d.kiva("network", "delete", n3)
    assert not os.path.exists(f"/sys/class/net/{n3}") and leftovers(d, [n3]) == []
    # n2 once its instances are gone
    for role in ("api", "other"):
        d.kiva("delete", "--force", s["n"][role])
    d.kiva("network", "delete", s["n2"])
    assert not os.path.exists(f"/sys/class/net/{s['n2']}") and leftovers(d, [s["n2"]]) == []
    d.kiva("network", "acl", "delete", s["acl"])
    assert "chain to_" not in sh("nft", "list", "table", "bridge", nft_table(d))


def full_view(d):
    return api_view(d), host_view(d, [n["name"] for n in api_view(d)["networks"]])


def test_bad_input_is_4xx_and_changes_nothing(kivad, api, kiva, names, net):
    n = net.network()
    cfg = api.get(f"/1.0/networks/{n}")[1]["metadata"]["config"]
    gw = cfg["ipv4.address"]
    prefix = gw.rsplit(".", 1)[0]
    c = names("rb")
    kiva("launch", "busybox", c, "-n", n)
    taken = nic_address(api, c)
    acl = net.acl(ingress=[{"action": "allow", "protocol": "tcp", "destination_port": "80"}])
    before = full_view(kivad)

    def inst_put(devices):
        status, body, headers = api.request_ex("GET", f"/1.0/instances/{c}")
        inst = body["metadata"]
        put = {k: inst[k] for k in ("architecture", "config", "devices", "ephemeral",
                                    "profiles", "description")}
        put["devices"] = dict(put["devices"], **devices)
        return api.request("PUT", f"/1.0/instances/{c}", put,
                           headers={"If-Match": headers["ETag"]})

    nic = {"type": "nic", "network": n}
    cases = [
        ("overlapping subnet",
         lambda: api.post("/1.0/networks", {"name": net.name(),
                                            "config": {"ipv4.address": f"{prefix}.129/25"}}),
         400, f"overlaps network '{n}'"),
        ("address outside the subnet",
         lambda: inst_put({"eth1": dict(nic, **{"ipv4.address": "10.250.250.250"})}),
         400, "is not in subnet"),
        ("gateway address", lambda: inst_put({"eth1": dict(nic, **{"ipv4.address": gw[:-3]})}),
         None, gw[:-3]),
        ("address already taken",
         lambda: inst_put({"eth1": dict(nic, **{"ipv4.address": taken})}),
         409, f"Address {taken} is already in use"),
        ("unknown network", lambda: inst_put({"eth1": {"type": "nic", "network": "nosuchnet"}}),
         404, "Network 'nosuchnet' not found"),
        ("rate 10Qbit", lambda: inst_put({"eth1": dict(nic, **{"limits.ingress": "10Qbit"})}),
         400, "Invalid rate '10Qbit'"),
        ("ACL bad port",
         lambda: api.put(f"/1.0/network-acls/{acl}", {"ingress": [
             {"action": "allow", "protocol": "tcp", "destination_port": "0"}]}),
         400, "Invalid destination_port entry '0'"),
        ("network name too long (16)",
         lambda: api.post("/1.0/networks", {"name": "n" * 16, "config": {}}),
         400, "longer than 15 characters"),
        ("unknown network key",
         lambda: api.patch(f"/1.0/networks/{n}", {"config": {"ipv4.bogus": "1"}}),
         400, "Unknown network configuration key: ipv4.bogus"),
        ("unknown network (create with an unknown type)",
         lambda: api.post("/1.0/networks", {"name": net.name(), "type": "macvlan"}),
         400, "Unsupported network type"),
        ("address outside the subnet on the network itself",
         lambda: api.patch(f"/1.0/networks/{n}", {"config": {"ipv4.dhcp.ranges":
                                                               "10.250.0.2-10.250.0.9"}}),
         400, "outside"),
        ("bad ipv4.address", lambda: api.post("/1.0/networks", {
            "name": net.name(), "config": {"ipv4.address": "10.1.2.0/24"}}), 400,
         "gateway must be"),
        ("bad nat value", lambda: api.patch(f"/1.0/networks/{n}",
                                            {"config": {"ipv4.nat": "maybe"}}), 400, "ipv4.nat"),
        ("unknown NIC key", lambda: inst_put({"eth1": dict(nic, bogus="1")}), 400,
         "Unknown key 'bogus'"),
        ("delete a network in use", lambda: api.delete(f"/1.0/networks/{n}"), 409, "in use"),
    ]
    for what, call, status, msg in cases:
        st, body = call()
        assert 400 <= st < 500, (what, st, body)
        if status:
            assert st == status, (what, st, body)
        assert msg in body["error"], (what, body)
        assert full_view(kivad) == before, what
    # the CLI says the same
    r = kiva("network", "create", net.name(), f"ipv4.address={prefix}.1/24", check=False)
    assert r.returncode != 0 and "overlaps" in r.stderr, r.stderr
    r = kiva("config", "device", "set", c, "eth0", "limits.egress=10Qbit", check=False)
    assert r.returncode != 0 and "Invalid rate '10Qbit'" in r.stderr, r.stderr
    r = kiva("network", "set", n, "bogus.key=1", check=False)
    assert r.returncode != 0 and "Unknown network configuration key" in r.stderr, r.stderr
    assert full_view(kivad) == before


def test_network_readdress_in_use_refused(kivad, api, kiva, names, net):
    n = net.network()
    c = names("rb")
    kiva("launch", "busybox", c, "-n", n)
    before = full_view(kivad)
    sub = api.get(f"/1.0/networks/{n}")[1]["metadata"]["config"]["ipv4.address"]
    other = str(free_subnet(api).network_address + 1) + "/24"
    st, body = api.patch(f"/1.0/networks/{n}", {"config": {"ipv4.address": other}})
    assert st == 409 and "in use" in body["error"], body
    assert full_view(kivad) == before
    # unused, it moves: the bridge has the new address only and the NIC... is gone with c
    kiva("delete", "--force", c)
    kiva("network", "set", n, f"ipv4.address={other}")
    text = sh("ip", "-o", "-4", "addr", "show", "dev", n)
    assert f"inet {other} " in text and f"inet {sub} " not in text and \
        text.count(" inet ") == 1, text


def test_concurrent_launches_get_distinct_addresses(kivad, api, names, net):
    n = net.network()
    new = [names("cc") for _ in range(8)]
    barrier = threading.Barrier(len(new))
    ops = {}

    def launch(name):
        barrier.wait()
        ops[name] = api.wait(api.post("/1.0/instances", {
            "name": name, "source": {"type": "image", "alias": "busybox"}, "profiles": [],
            "devices": {"eth0": {"type": "nic", "network": n}}, "start": True}))

    threads = [threading.Thread(target=launch, args=(x,)) for x in new]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert all(op["status"] == "Success" for op in ops.values()), ops
    addrs = [nic_address(api, x) for x in new]
    assert len(set(addrs)) == len(new), addrs
    assert can_ping(api, new[0], addrs[-1])


def test_concurrent_hotplugs_get_distinct_addresses(kivad, api, names, net):
    n = net.network()
    new = [names("ch") for _ in range(8)]
    for x in new:
        assert api.wait(api.post("/1.0/instances", {
            "name": x, "source": {"type": "image", "alias": "busybox"}, "profiles": [],
            "start": True}))["status"] == "Success"
    barrier = threading.Barrier(len(new))
    ops = {}

    def attach(name):
        st, body, headers = api.request_ex("GET", f"/1.0/instances/{name}")
        inst = body["metadata"]
        put = {k: inst[k] for k in ("architecture", "config", "devices", "ephemeral",
                                    "profiles", "description")}
        put["devices"] = {"eth0": {"type": "nic", "network": n, "name": "eth0"}}
        barrier.wait()
        ops[name] = api.wait(api.request("PUT", f"/1.0/instances/{name}", put,
                                         headers={"If-Match": headers["ETag"]}))

    threads = [threading.Thread(target=attach, args=(x,)) for x in new]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert all(op["status"] == "Success" for op in ops.values()), ops
    addrs = [api.instance(x)["config"].get("volatile.eth0.ipv4.address") for x in new]
    assert len(set(addrs)) == len(new), addrs


def test_self_stopped_instance_leaves_nothing(kivad, api, kiva, names, net):
    n = net.network()
    c = names("rb")
    kiva("launch", "busybox", c, "-n", n)
    acl = net.acl(ingress=[{"action": "allow", "protocol": "icmp4"}])
    kiva("config", "device", "set", c, "eth0", "limits.egress=10Mbit", f"security.acls={acl}")
    host = api.instance(c)["config"]["volatile.eth0.host_name"]
    needles = [host, "kvi" + host[2:]]
    assert len(leftovers(kivad, needles)) >= 2
    wait_init_ready(api, c)
    in_container(api, c, "poweroff")
    wait_until(lambda: api.instance(c)["status"] == "Stopped", timeout=15,
               what=f"{c} to power off")
    try:
        wait_until(lambda: leftovers(kivad, needles) == [], timeout=5,
                   what="the stopped NIC's ifb and nft chains to go")
    finally:
        kiva("delete", "--force", c)
    assert leftovers(kivad, needles) == []


def test_instance_dies_while_kivad_is_down(setup):
    """kill -9 kivad, the QoS'd instance is killed behind its back: the restart removes its ifb
    and its rules, the others keep theirs."""
    s = setup
    d = s["d"]
    N = s["n"]
    host = d.api.instance(N["plain"])["config"]["volatile.eth0.host_name"]
    web_host = d.api.instance(N["web"])["config"]["volatile.eth0.host_name"]
    d.kill()
    subprocess.run(["lxc-stop", "-P", d.lxcpath, "-n", N["plain"], "-k"], capture_output=True,
                   timeout=60)
    d.start()
    assert d.api.instance(N["plain"])["status"] == "Stopped"
    assert leftovers(d, [host, "kvi" + host[2:], s["ips"]["plain1"]]) == []
    assert f"to_{web_host}" in sh("nft", "list", "table", "bridge", nft_table(d))
    assert "200 OK" in http_get(d.api, N["api"], s["ips"]["web"])
    assert not http_get(d.api, N["other"], s["ips"]["web"])
    d.kiva("start", N["plain"])
    assert nic_address(d.api, N["plain"]) == s["ips"]["plain"]
    assert "htb" in sh("tc", "qdisc", "show", "dev", host)
