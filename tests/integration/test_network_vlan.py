"""VLAN on a NIC (`vlan`, `vlan.tagged`) through bridge VLAN filtering. The reference kernel has no
802.1Q / CONFIG_BRIDGE_VLAN_FILTERING: there starting an instance with a VLAN NIC fails with a clear
message and the traffic test skips; on a kernel with it, the traffic test runs."""

import os

import pytest

from conftest import can_ping, nft_table, nic_address, pid_alive, sh

SKIP_REASON = "kernel lacks 802.1Q bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)"


def vlan_filtering_supported(bridge):
    """True when the bridge has a writable vlan_filtering knob (writing its current value back
    changes nothing)."""
    path = f"/sys/class/net/{bridge}/bridge/vlan_filtering"
    try:
        with open(path) as f:
            current = f.read().strip()
        with open(path, "w") as f:
            f.write(current)
    except OSError:
        return False
    return True


@pytest.fixture
def vnet(net):
    n = net.network()
    return n, vlan_filtering_supported(n)


def test_vlan_values_validated(kivad, api, kiva, names, vnet):
    n, _ = vnet
    c = names("vl")
    kiva("init", "busybox", c, "--no-profiles")
    for key, value in (("vlan", "0"), ("vlan", "4095"), ("vlan", "ten"),
                       ("vlan.tagged", "20,5000"), ("vlan.tagged", "x")):
        r = kiva("config", "device", "add", c, "eth0", "nic", f"network={n}", f"{key}={value}",
                 check=False)
        assert r.returncode != 0 and f"Invalid {key} '{value}'" in r.stderr, r.stderr
    assert api.instance(c)["devices"] == {}


def test_vlan_start_fails_clearly_without_filtering(kivad, api, kiva, names, vnet):
    n, supported = vnet
    if supported:
        pytest.skip("this kernel has bridge VLAN filtering: see test_vlan_traffic")
    c = names("vl")
    kiva("init", "busybox", c, "--no-profiles")
    kiva("config", "device", "add", c, "eth0", "nic", f"network={n}", "vlan=10")
    host = api.instance(c)["config"]["volatile.eth0.host_name"]
    r = kiva("start", c, check=False)
    assert r.returncode != 0, r.stdout
    assert "VLAN" in r.stderr and "not supported by this kernel" in r.stderr, r.stderr
    assert api.instance(c)["status"] == "Stopped"
    assert c not in kivad.lxc_running()
    # nothing left of the attempt
    assert not os.path.exists(f"/sys/class/net/{host}")
    assert host not in sh("nft", "list", "table", "bridge", nft_table(kivad))
    assert host not in sh("tc", "qdisc", "show")
    # same through the API, with the tagged form
    d = names("vl")
    st, body = api.post("/1.0/instances", {
        "name": d, "source": {"type": "image", "alias": "busybox"}, "profiles": [],
        "devices": {"eth0": {"type": "nic", "network": n, "vlan.tagged": "20,30"}},
        "start": True})
    op = api.wait((st, body))
    assert op["status"] == "Failure" and "VLAN" in op["err"], op
    assert api.instance(d)["status"] == "Stopped"
    # without the vlan key it starts
    kiva("config", "device", "unset", c, "eth0", "vlan")
    kiva("start", c)
    assert nic_address(api, c)


def test_vlan_on_running_nic_refused_and_nothing_changes(kivad, api, kiva, names, vnet):
    n, supported = vnet
    if supported:
        pytest.skip("this kernel has bridge VLAN filtering: see test_vlan_traffic")
    c, peer = names("vl"), names("vl")
    kiva("launch", "busybox", c, "--no-profiles", "-n", n)
    kiva("launch", "busybox", peer, "--no-profiles", "-n", n)
    pid = api.pid(c)
    before = api.instance(c)
    r = kiva("config", "device", "set", c, "eth0", "vlan=10", check=False)
    assert r.returncode != 0 and "VLAN" in r.stderr, r.stderr
    assert api.pid(c) == pid and pid_alive(pid)
    assert can_ping(api, peer, nic_address(api, c))
    after = api.instance(c)
    assert after["devices"] == before["devices"], after["devices"]
    # and the instance still starts
    kiva("stop", "--force", c)
    kiva("start", c)


def test_vlan_traffic(kivad, api, kiva, names, vnet):
    """Two containers on VLAN 10 reach each other; one on VLAN 20 reaches neither."""
    n, supported = vnet
    if not supported:
        pytest.skip(SKIP_REASON)
    a, b, c = names("vl"), names("vl"), names("vl")
    for name, vid in ((a, 10), (b, 10), (c, 20)):
        kiva("init", "busybox", name, "--no-profiles")
        kiva("config", "device", "add", name, "eth0", "nic", f"network={n}", f"vlan={vid}")
        kiva("start", name)
    aa, ab, ac = (nic_address(api, x) for x in (a, b, c))
    assert can_ping(api, a, ab) and can_ping(api, b, aa)
    assert not can_ping(api, c, aa) and not can_ping(api, c, ab)
    assert not can_ping(api, a, ac)
    # moving c to VLAN 10 joins it to the others
    kiva("config", "device", "set", c, "eth0", "vlan=10")
    assert can_ping(api, c, aa)
