"""Network ACLs with real containers and real nftables: LXD's semantics as written in
docs/network.md (default deny in both directions once an ACL is attached, replies allowed,
drop/reject before allow, disabled rules ignored, selectors that follow instances), on a NIC and on
a whole network; bad rules are refused and change nothing."""

import ipaddress
import subprocess
import sys

import pytest

from conftest import can_ping, http_get, in_container, nft_table, nic_address, sh, wait_until


def start_servers(api, name):
    """httpd on :80 and an nc "ssh" banner on :22."""
    rc, _, err = in_container(
        api, name,
        f"echo {name} > /tmp/index.html && httpd -p 80 -h /tmp && "
        "(nc -ll -p 22 -e /bin/echo SSH-2.0-x </dev/null >/dev/null 2>&1 &)")
    assert rc == 0, err
    wait_until(lambda: ":22 " in in_container(api, name, "netstat -ltn")[1], timeout=5,
               what=f"nc on :22 in {name}")


def can_http(api, client, addr, port=80):
    return http_get(api, client, addr, port).startswith("HTTP/1.")


def can_ssh(api, client, addr):
    rc, out, _ = in_container(api, client, f"nc -w 1 {addr} 22 </dev/null")
    return rc == 0 and "SSH-2.0-x" in out


def bridge_table(d):
    return sh("nft", "list", "table", "bridge", nft_table(d))


@pytest.fixture
def tier(kivad, api, kiva, names, net):
    """web, api (user.app=api) and other on a network of their own, all serving :80 and :22."""
    n = net.network()
    t = {"net": n}
    for role, extra in (("web", []), ("api", ["-c", "user.app=api"]), ("other", [])):
        name = names(role[:3])
        kiva("launch", "busybox", name, "-n", n, *extra)
        t[role] = name
    for role in ("web", "api", "other"):
        start_servers(api, t[role])
        t[role + "_ip"] = nic_address(api, t[role])
    # open before any ACL
    assert can_http(api, t["other"], t["web_ip"]) and can_ssh(api, t["api"], t["web_ip"])
    assert can_ping(api, t["web"], t["other_ip"])
    return t


def make_web_in(kiva, net):
    name = net.name("wi")
    net.acls.append(name)
    kiva("network", "acl", "create", name)
    kiva("network", "acl", "rule", "add", name, "ingress", "action=allow", "source=@app=api",
         "destination_port=80", "protocol=tcp")
    return name


def test_acl_on_nic_ingress_and_egress(kivad, api, kiva, net, tier):
    web, apic, other = tier["web"], tier["api"], tier["other"]
    wip, aip, oip = tier["web_ip"], tier["api_ip"], tier["other_ip"]
    acl = make_web_in(kiva, net)
    kiva("network", "acl", "attach", acl, web, "eth0")
    assert api.instance(web)["devices"]["eth0"]["security.acls"] == acl
    host = api.instance(web)["config"]["volatile.eth0.host_name"]
    assert f"to_{host}" in bridge_table(kivad)

    # ingress: only api, only tcp/80; the reply comes back
    out = http_get(api, apic, wip)
    assert "200 OK" in out and out.rstrip().endswith(web), out
    assert not can_http(api, other, wip)
    assert not can_ssh(api, apic, wip)
    assert not can_ssh(api, other, wip)
    assert not can_ping(api, apic, wip)
    # egress of web: default deny (no egress rule)
    assert not can_ping(api, web, oip)
    assert not can_http(api, web, oip)
    # NICs without an ACL are not filtered
    assert can_ping(api, apic, oip) and can_http(api, other, aip)

    # an egress rule allowing icmp4: web can ping (the echo reply is a reply)
    kiva("network", "acl", "rule", "add", acl, "egress", "action=allow", "protocol=icmp4")
    assert can_ping(api, web, oip) and can_ping(api, web, aip)
    assert not can_ping(api, apic, wip)  # ingress icmp still denied
    assert not can_http(api, web, oip)

    # egress by instance name: web may reach other:80, not api:80
    kiva("network", "acl", "rule", "add", acl, "egress", "action=allow", f"destination={other}",
         "protocol=tcp", "destination_port=80")
    assert can_http(api, web, oip)
    assert not can_http(api, web, aip)
    assert not can_ssh(api, web, oip)

    # a disabled rule has no effect; enabled, it applies
    kiva("network", "acl", "rule", "add", acl, "ingress", "action=allow", "protocol=icmp4",
         "state=disabled")
    assert not can_ping(api, apic, wip) and not can_ping(api, other, wip)
    st, body = api.get(f"/1.0/network-acls/{acl}")
    rules = body["metadata"]["ingress"]
    assert rules[-1]["state"] == "disabled"
    rules[-1]["state"] = "enabled"
    st, body = api.patch(f"/1.0/network-acls/{acl}", {"ingress": rules})
    assert st == 200, body
    assert can_ping(api, apic, wip) and can_ping(api, other, wip)

    # drop and reject rules are evaluated before allow (LXD's order), whatever their position;
    # reject drops on this kernel (no reject in the bridge family)
    kiva("network", "acl", "rule", "add", acl, "ingress", "action=reject", f"source={apic}",
         "protocol=icmp4")
    assert not can_ping(api, apic, wip) and can_ping(api, other, wip)
    kiva("network", "acl", "rule", "add", acl, "ingress", "action=drop", "source=@app=api",
         "protocol=tcp", "destination_port=80")
    assert not can_http(api, apic, wip)
    kiva("network", "acl", "rule", "remove", acl, "ingress", "action=drop")
    kiva("network", "acl", "rule", "remove", acl, "ingress", "action=reject")
    assert can_http(api, apic, wip) and can_ping(api, apic, wip)

    # detaching restores open traffic
    kiva("network", "acl", "detach", acl, web, "eth0")
    assert "security.acls" not in api.instance(web)["devices"]["eth0"]
    assert f"to_{host}" not in bridge_table(kivad)
    assert can_http(api, other, wip) and can_ssh(api, apic, wip)
    assert can_ping(api, web, oip) and can_http(api, web, aip)


def test_acl_source_cidr_and_range(kivad, api, kiva, net, tier):
    web, apic, other = tier["web"], tier["api"], tier["other"]
    wip, aip, oip = tier["web_ip"], tier["api_ip"], tier["other_ip"]
    acl = net.acl(ingress=[{"action": "allow", "source": f"{oip}/32", "protocol": "tcp",
                            "destination_port": "22,80"},
                           {"action": "allow", "source": f"{aip}-{aip}", "protocol": "icmp4"}])
    kiva("config", "device", "set", web, "eth0", f"security.acls={acl}")
    assert can_http(api, other, wip) and can_ssh(api, other, wip)
    assert not can_http(api, apic, wip) and not can_ssh(api, apic, wip)
    assert can_ping(api, apic, wip) and not can_ping(api, other, wip)


def test_acl_follows_restart_address_and_selector(kivad, api, kiva, net, tier):
    web, apic, other = tier["web"], tier["api"], tier["other"]
    wip, aip = tier["web_ip"], tier["api_ip"]
    acl = make_web_in(kiva, net)
    kiva("network", "acl", "attach", acl, web, "eth0")
    assert can_http(api, apic, wip) and not can_http(api, tier["other"], wip)

    # web restarts: same address, the rules still hold
    kiva("stop", "--force", web)
    kiva("start", web)
    start_servers(api, web)
    assert nic_address(api, web) == wip
    assert can_http(api, apic, wip)
    assert not can_http(api, other, wip) and not can_ssh(api, apic, wip)

    # api stops: its address leaves the rule; it comes back with the start
    kiva("stop", "--force", apic)
    assert f"ip saddr {aip} " not in bridge_table(kivad)
    kiva("start", apic)
    assert f"ip saddr {aip} " in bridge_table(kivad)
    assert can_http(api, apic, wip)

    # api gets a new address: the rule follows it
    new = str(ipaddress.ip_address(aip) + 100)
    kiva("config", "device", "set", apic, "eth0", f"ipv4.address={new}")
    wait_until(lambda: nic_address(api, apic) == new, timeout=5, what="api's new address")
    table = bridge_table(kivad)
    assert f"ip saddr {new} " in table and f"ip saddr {aip} " not in table, table
    assert can_http(api, apic, wip)

    # other joins the api tier: allowed at once; and leaves it again
    kiva("config", "set", other, "user.app=api")
    assert can_http(api, other, wip)
    kiva("config", "unset", other, "user.app")
    assert not can_http(api, other, wip)


def test_acl_on_whole_network(kivad, api, kiva, names, net, tier):
    n, web, apic, other = tier["net"], tier["web"], tier["api"], tier["other"]
    wip, aip, oip = tier["web_ip"], tier["api_ip"], tier["other_ip"]
    acl = net.acl(ingress=[{"action": "allow", "protocol": "icmp4"}],
                  egress=[{"action": "allow"}])
    kiva("network", "set", n, f"security.acls={acl}")
    assert api.get(f"/1.0/network-acls/{acl}")[1]["metadata"]["used_by"] == [f"/1.0/networks/{n}"]
    table = bridge_table(kivad)
    for name in (web, apic, other):
        assert f"to_{api.instance(name)['config']['volatile.eth0.host_name']}" in table
    # every NIC: pings (ingress icmp4) pass, tcp does not
    assert can_ping(api, apic, wip) and can_ping(api, web, oip) and can_ping(api, other, aip)
    assert not can_http(api, apic, wip) and not can_http(api, web, oip)
    assert not can_ssh(api, other, aip)
    # an instance started later, and a NIC hot-plugged later, are filtered as well
    late = names("lat")
    kiva("launch", "busybox", late, "-n", n)
    start_servers(api, late)
    lip = nic_address(api, late)
    assert can_ping(api, apic, lip) and not can_http(api, apic, lip)
    kiva("network", "attach", n, other, "eth1")
    oip1 = nic_address(api, other, "eth1")
    assert can_ping(api, late, oip1) and not can_ssh(api, late, oip1)
    # a NIC's own ACL adds to the network's
    own = make_web_in(kiva, net)
    kiva("network", "acl", "attach", own, web, "eth0")
    assert can_http(api, apic, wip) and not can_http(api, other, wip)
    kiva("network", "acl", "detach", own, web, "eth0")
    # unset: open again
    kiva("network", "unset", n, "security.acls")
    assert can_http(api, apic, wip) and can_http(api, web, oip) and can_ssh(api, other, aip)


def test_acl_delete_in_use_and_bad_rules(kivad, api, kiva, names, net):
    n = net.network()
    c = names("acl")
    kiva("launch", "busybox", c, "-n", n)
    acl = net.acl(ingress=[{"action": "allow", "protocol": "tcp", "destination_port": "80"}])
    kiva("network", "acl", "attach", acl, c, "eth0")

    st, body = api.delete(f"/1.0/network-acls/{acl}")
    assert st == 409 and f"Network ACL '{acl}' is in use by /1.0/instances/{c}" in \
        body["error"], body
    r = kiva("network", "acl", "delete", acl, check=False)
    assert r.returncode != 0 and "is in use" in r.stderr, r.stderr
    assert api.get(f"/1.0/network-acls/{acl}")[0] == 200

    before_acl = api.get(f"/1.0/network-acls/{acl}")[1]["metadata"]
    before_table = bridge_table(kivad)
    before_inet = sh("nft", "list", "table", "inet", nft_table(kivad))
    bad = [
        ({"action": "allow", "protocol": "tcp", "destination_port": "http"},
         "Invalid destination_port entry 'http'"),
        ({"action": "maybe"}, "Invalid action 'maybe'"),
        ({"action": "allow", "protocol": "icmp4", "destination_port": "80"},
         "Field 'destination_port' requires protocol tcp or udp"),
        ({"action": "allow", "protocol": "tcp", "destination_port": "70000"},
         "Invalid destination_port entry '70000'"),
        ({"action": "allow", "source": "10.0.0.300"}, "10.0.0.300"),
        ({"action": "allow", "protocol": "sctp"}, "sctp"),
        ({"action": "allow", "state": "sometimes"}, "sometimes"),
    ]
    for rule, msg in bad:
        for method in (api.put, api.patch):
            st, body = method(f"/1.0/network-acls/{acl}",
                              {"ingress": before_acl["ingress"] + [rule], "egress": []})
            assert st == 400 and msg in body["error"], (rule, body)
        st, body = api.patch(f"/1.0/network-acls/{acl}", {"egress": [rule]})
        assert st == 400 and msg in body["error"] and "egress rule 1" in body["error"], body
    r = kiva("network", "acl", "rule", "add", acl, "ingress", "action=allow", "protocol=tcp",
             "destination_port=http", check=False)
    assert r.returncode != 0 and "Invalid destination_port entry 'http'" in r.stderr, r.stderr
    r = kiva("network", "acl", "rule", "add", acl, "ingress", "action=maybe", check=False)
    assert r.returncode != 0 and "Invalid action 'maybe'" in r.stderr, r.stderr
    r = kiva("network", "acl", "rule", "add", acl, "egress", "action=allow", "protocol=icmp4",
             "destination_port=80", check=False)
    assert r.returncode != 0 and "requires protocol tcp or udp" in r.stderr, r.stderr
    # a new ACL with a bad rule is not created
    bad_name = net.name("na")
    st, body = api.post("/1.0/network-acls", {"name": bad_name, "ingress": [bad[0][0]]})
    assert st == 400 and bad[0][1] in body["error"], body
    assert api.get(f"/1.0/network-acls/{bad_name}")[0] == 404
    # nothing changed
    assert api.get(f"/1.0/network-acls/{acl}")[1]["metadata"] == before_acl
    assert bridge_table(kivad) == before_table
    assert sh("nft", "list", "table", "inet", nft_table(kivad)) == before_inet
    # an unknown ACL on a NIC or a network is refused
    st, body = api.patch(f"/1.0/networks/{n}", {"config": {"security.acls": "nosuchacl"}})
    assert st in (400, 404) and "nosuchacl" in body["error"], body
    r = kiva("config", "device", "set", c, "eth0", "security.acls=nosuchacl", check=False)
    assert r.returncode != 0 and "nosuchacl" in r.stderr, r.stderr
    assert bridge_table(kivad) == before_table

    # once detached it can be deleted
    kiva("network", "acl", "detach", acl, c, "eth0")
    kiva("network", "acl", "delete", acl)
    assert api.get(f"/1.0/network-acls/{acl}")[0] == 404


def test_acl_selectors_acl_name_icmp_type_and_logged(kivad, api, kiva, net, tier):
    web, apic, other = tier["web"], tier["api"], tier["other"]
    wip, aip = tier["web_ip"], tier["api_ip"]
    # a marker ACL on api (allows everything both ways) used as a selector by web's ACL
    marker = net.acl(ingress=[{"action": "allow"}], egress=[{"action": "allow"}])
    kiva("network", "acl", "attach", marker, apic, "eth0")
    acl = net.acl(ingress=[{"action": "allow", "source": marker, "protocol": "tcp",
                            "destination_port": "80", "state": "logged"},
                           {"action": "allow", "protocol": "icmp4", "icmp_type": "0"}])
    kiva("network", "acl", "attach", acl, web, "eth0")
    assert can_http(api, apic, wip) and not can_http(api, other, wip)
    assert "log" in bridge_table(kivad)
    # echo requests are type 8: a rule for type 0 does not let pings in
    assert not can_ping(api, apic, wip)
    rules = api.get(f"/1.0/network-acls/{acl}")[1]["metadata"]["ingress"]
    rules[1]["icmp_type"] = "8"
    assert api.patch(f"/1.0/network-acls/{acl}", {"ingress": rules})[0] == 200
    assert can_ping(api, apic, wip) and can_ping(api, other, wip)
    # the marker's NICs: detached from api, api loses access
    kiva("network", "acl", "detach", marker, apic, "eth0")
    assert not can_http(api, apic, wip)
    assert aip not in bridge_table(kivad)


def netns_http(ns, addr, port=80):
    """HTTP GET from a netns of the test (host python in the netns)."""
    code = ("import socket,sys\n"
            "try:\n"
            f"    s = socket.create_connection(('{addr}', {port}), timeout=1)\n"
            "    s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(s.recv(200).decode())\n"
            "except OSError as e:\n"
            "    print('ERR', e); sys.exit(1)\n")
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=10)
    return r.returncode == 0 and r.stdout.startswith("HTTP/1.")


def test_acl_holds_for_routed_traffic(kivad, api, kiva, net, tier):
    """Traffic routed between an instance and the outside (a netns of the test behind the host)
    is filtered too, in both directions."""
    from test_network_nat import Upstream
    up = Upstream(net, api)
    sub = ipaddress.ip_interface(
        api.get(f"/1.0/networks/{tier['net']}")[1]["metadata"]["config"]["ipv4.address"]).network
    sh("ip", "netns", "exec", up.ns, "ip", "route", "add", str(sub), "via", up.host_ip)
    web, apic, wip = tier["web"], tier["api"], tier["web_ip"]
    assert netns_http(up.ns, wip) and can_ping(api, web, up.ns_ip)

    acl = make_web_in(kiva, net)
    kiva("network", "acl", "attach", acl, web, "eth0")
    assert not netns_http(up.ns, wip)
    assert not can_ping(api, web, up.ns_ip)
    assert can_http(api, apic, wip)
    kiva("network", "acl", "rule", "add", acl, "ingress", "action=allow",
         f"source={up.sub}", "protocol=tcp", "destination_port=80")
    kiva("network", "acl", "rule", "add", acl, "egress", "action=allow",
         f"destination={up.ns_ip}", "protocol=icmp4")
    assert netns_http(up.ns, wip)
    assert can_ping(api, web, up.ns_ip)
    assert not can_ping(api, web, tier["other_ip"])
