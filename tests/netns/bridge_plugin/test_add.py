"""ADD in real namespaces: result shape per version, L2 and L3, dual stack, connectivity."""
from __future__ import annotations

import pytest

from bridge_plugin.errors import BridgeCode
from shared.version import ALL_VERSIONS
from tests.support.bridgenet import BridgeNet, tcp_reach


def test_l3_add_check_del(net: BridgeNet) -> None:
    conf = net.config(isGateway=True)
    res = net.add(conf)
    assert res.ok, res
    out = res.json
    names = [i["name"] for i in out["interfaces"]]
    assert names[0] == net.bridge and names[1].startswith("veth") and len(names[1]) == 12 and names[2] == "eth0"
    assert out["interfaces"][2]["sandbox"] == net.containers[0].path
    assert "sandbox" not in out["interfaces"][0] and "sandbox" not in out["interfaces"][1]
    assert out["ips"] == [{"interface": 2, "address": "10.77.0.2/24", "gateway": "10.77.0.1"}]

    bridge = net.link(net.host, net.bridge)
    assert bridge is not None and "UP" in bridge["flags"]
    assert bridge["address"] == out["interfaces"][0]["mac"]
    assert "10.77.0.1/24" in net.addrs(net.host, net.bridge)
    veth = net.link(net.host, names[1])
    assert veth is not None and veth["master"] == net.bridge and veth["address"] == out["interfaces"][1]["mac"]
    cont = net.link(net.containers[0], "eth0")
    assert cont is not None and "UP" in cont["flags"] and cont["address"] == out["interfaces"][2]["mac"]
    assert "10.77.0.2/24" in net.addrs(net.containers[0], "eth0")
    assert net.host.exec(["cat", "/proc/sys/net/ipv4/ip_forward"], capture_output=True, text=True).stdout.strip() == "1"
    assert net.reservations() == ["10.77.0.2"] or "10.77.0.2" in net.reservations()

    assert net.check(conf, out).ok
    assert net.delete({**conf, "prevResult": out}).ok
    net.assert_clean()
    assert net.link(net.host, net.bridge) is not None  # the bridge is shared infrastructure: kept


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_every_cni_version(net: BridgeNet, version: str) -> None:
    conf = net.config(version, isGateway=True)
    res = net.add(conf)
    assert res.ok, res
    out = res.json
    assert out["cniVersion"] == version
    if version in ("0.1.0", "0.2.0"):
        assert out["ip4"]["ip"] == "10.77.0.2/24" and out["ip4"]["gateway"] == "10.77.0.1"
        assert "interfaces" not in out
    else:
        assert out["ips"][0]["address"] == "10.77.0.2/24"
        assert ("version" in out["ips"][0]) == version.startswith("0.")
        assert len(out["interfaces"]) == 3
    if version >= "0.4.0":
        assert net.check(conf, out).ok
    assert net.delete({**conf, "prevResult": out}).ok
    net.assert_clean()


def test_dual_stack(net: BridgeNet) -> None:
    conf = net.config(isDefaultGateway=True)
    conf["ipam"] = net.ipam("10.77.0.0/24", "fd00:77::/64")
    res = net.add(conf)
    assert res.ok, res
    out = res.json
    assert [ip["address"] for ip in out["ips"]] == ["10.77.0.2/24", "fd00:77::2/64"]
    assert {"dst": "0.0.0.0/0", "gw": "10.77.0.1"} in out["routes"]
    assert {"dst": "::/0", "gw": "fd00:77::1"} in out["routes"]
    c = net.containers[0]
    assert "fd00:77::2/64" in net.addrs(c, "eth0")
    assert any(r["dst"] == "default" and r["gateway"] == "fd00:77::1" for r in net.routes(c, "-6"))
    assert "fd00:77::1/64" in net.addrs(net.host, net.bridge)
    # DAD is off by default on the container side
    dad = c.exec(["cat", "/proc/sys/net/ipv6/conf/eth0/accept_dad"], capture_output=True, text=True).stdout.strip()
    assert dad == "0"
    assert net.check(conf, out).ok
    assert net.delete({**conf, "prevResult": out}).ok
    net.assert_clean()


def test_layer2(net: BridgeNet) -> None:
    conf = net.config(l3=False)
    res = net.add(conf)
    assert res.ok, res
    out = res.json
    assert "ips" not in out and len(out["interfaces"]) == 3
    assert "UP" in net.link(net.containers[0], "eth0")["flags"]
    assert net.addrs(net.host, net.bridge) == [] or all(a.startswith("fe80") for a in net.addrs(net.host, net.bridge))
    # the L2 bridge's MAC is pinned too: it is not the port's MAC
    assert net.link(net.host, net.bridge)["address"] == out["interfaces"][0]["mac"]
    assert net.check(conf, out).ok  # the reference always fails CHECK on L2 bridges
    assert net.delete({**conf, "prevResult": out}).ok
    net.assert_clean()


def test_layer2_at_0_2_0_fails_and_rolls_back(net: BridgeNet) -> None:
    res = net.add(net.config("0.2.0", l3=False))
    assert not res.ok
    assert res.json["code"] == 1 and "no valid IP addresses" in res.json["msg"]
    net.assert_clean()


def test_two_containers_reach_each_other_and_the_gateway(net2: BridgeNet) -> None:
    conf = net2.config(isGateway=True)
    conf["ipam"] = net2.ipam("10.77.0.0/24", "fd00:77::/64")
    a, b = net2.containers
    ra = net2.add(conf, cid="ca", netns=a)
    rb = net2.add(conf, cid="cb", netns=b)
    assert ra.ok and rb.ok, (ra, rb)
    ip_a, ip6_a = (ip["address"].split("/")[0] for ip in ra.json["ips"])
    ip_b, ip6_b = (ip["address"].split("/")[0] for ip in rb.json["ips"])
    assert ip_a != ip_b
    assert tcp_reach(a, b, ip_b)
    assert tcp_reach(b, a, ip_a)
    assert tcp_reach(a, net2.host, "10.77.0.1")
    assert tcp_reach(a, b, ip6_b)  # no DAD wait in the containers: usable at once
    assert tcp_reach(b, a, ip6_a)
    assert net2.delete(conf, cid="ca", netns=a).ok
    assert net2.delete(conf, cid="cb", netns=b).ok
    net2.assert_clean()


def test_existing_container_ifname_is_an_error(net: BridgeNet) -> None:
    c = net.containers[0]
    c.ip("link", "add", "eth0", "type", "bridge")  # any non-veth device (no dummy module here)
    res = net.add(net.config())
    assert not res.ok and "eth0" in res.json["msg"] and "already exists" in res.json["msg"]
    assert res.json["code"] == BridgeCode.CONTAINER_IFNAME_EXISTS == 120
    assert net.host_veths() == [] and net.reservations() == []
    assert net.link(c, "eth0")["linkinfo"]["info_kind"] == "bridge"  # not ours: untouched


def test_non_bridge_link_with_the_bridge_name(net: BridgeNet) -> None:
    net.host.ip("link", "add", net.bridge, "type", "veth", "peer", "name", "other0")
    res = net.add(net.config())
    assert not res.ok
    assert "already exists but is not a bridge" in res.json["msg"] and net.bridge in res.json["msg"]
    assert res.json["code"] == BridgeCode.BRIDGE_NAME_TAKEN == 121
    assert sorted(net.host_veths()) == sorted([net.bridge, "other0"])  # only the pre-existing pair
    assert net.link(net.containers[0], "eth0") is None and net.reservations() == []


def test_existing_bridge_is_reused(net: BridgeNet) -> None:
    net.host.ip("link", "add", net.bridge, "mtu", "1400", "type", "bridge")
    res = net.add(net.config(mtu=1300))
    assert res.ok, res
    assert net.link(net.host, net.bridge)["linkinfo"]["info_kind"] == "bridge"
    assert net.link(net.containers[0], "eth0")["mtu"] == 1300
    assert net.delete(net.config()).ok


def test_reused_ip_is_announced(net2: BridgeNet) -> None:
    """A neighbour entry still holding an earlier owner's MAC for the IP is corrected by ADD itself."""
    conf = net2.config(isGateway=True)
    keep, c = net2.containers
    assert net2.add(conf, cid="keep", netns=keep).ok  # keeps the bridge's carrier up
    net2.host.ip("neigh", "replace", "10.77.0.9", "lladdr", "02:00:00:00:00:99", "dev", net2.bridge, "nud", "stale")
    reused = {**conf, "capabilities": {"ips": True}, "runtimeConfig": {"ips": ["10.77.0.9/24"]}}
    res = net2.add(reused, cid="new", netns=c)
    assert res.ok, res
    assert res.json["ips"][0]["address"] == "10.77.0.9/24"
    mac = res.json["interfaces"][2]["mac"]
    neigh = net2.host.ip("neigh", "show", "10.77.0.9", "dev", net2.bridge).stdout
    assert mac in neigh, neigh
    assert net2.delete(reused, cid="new", netns=c).ok
    assert net2.delete(conf, cid="keep", netns=keep).ok
    net2.assert_clean()


def test_bridge_mac_is_stable_across_ports(net2: BridgeNet) -> None:
    """An existing port-less L2 bridge gets its MAC pinned before the first port joins (cni#285)."""
    net2.host.ip("link", "add", net2.bridge, "type", "bridge")
    mac = net2.link(net2.host, net2.bridge)["address"]
    conf = net2.config(l3=False)
    a, b = net2.containers
    for cid, ns in (("a", a), ("b", b)):
        res = net2.add(conf, cid=cid, netns=ns)
        assert res.ok, res
        assert res.json["interfaces"][0]["mac"] == mac
        assert net2.link(net2.host, net2.bridge)["address"] == mac
    assert net2.delete(conf, cid="a", netns=a).ok
    assert net2.link(net2.host, net2.bridge)["address"] == mac
    assert net2.delete(conf, cid="b", netns=b).ok
    assert net2.link(net2.host, net2.bridge)["address"] == mac


@pytest.mark.parametrize("port_mac", ["fe:ff:ff:ff:ff:fe", "02:00:00:00:00:01"], ids=["changes", "stays"])
def test_result_reports_the_mac_of_an_unpinned_bridge_after_the_join(net: BridgeNet, port_mac: str) -> None:
    """A bridge someone else made, with a forwarding port, is not pinned: it takes the lowest port MAC,
    so our port may change it ("changes") or not ("stays"); the result has the MAC after the join."""
    h = net.host
    h.ip("link", "add", net.bridge, "type", "bridge")
    h.ip("link", "add", "pp0", "address", port_mac, "type", "veth", "peer", "name", "pp1")
    h.ip("link", "set", "pp0", "master", net.bridge)
    for name in ("pp1", "pp0", net.bridge):
        h.ip("link", "set", name, "up")
    try:
        assert net.link(h, net.bridge)["address"] == port_mac
        conf = net.config(l3=False)
        res = net.add(conf)
        assert res.ok, res
        after = net.link(h, net.bridge)["address"]
        assert res.json["interfaces"][0]["mac"] == after
        assert (after == port_mac) == (port_mac.startswith("02:"))
        assert net.delete(conf).ok
    finally:
        h.ip("link", "del", "pp0")
