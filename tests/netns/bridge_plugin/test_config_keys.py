"""Each config key of the reference bridge, observed in the kernel; bad values change nothing."""
from __future__ import annotations

import json

import pytest

from bridge_plugin.errors import BridgeCode
from tests.support.bridgenet import BridgeNet

MAC_RT, MAC_ARGS, MAC_ENV = "0a:58:0a:4d:00:11", "0a:58:0a:4d:00:22", "0a:58:0a:4d:00:33"


def _sysctl(ns, path: str) -> str:
    return ns.exec(["cat", f"/proc/sys/{path}"], capture_output=True, text=True).stdout.strip()


def test_mtu(net: BridgeNet) -> None:
    conf = net.config(mtu=1400)
    res = net.add(conf)
    assert res.ok, res
    assert net.link(net.containers[0], "eth0")["mtu"] == 1400
    assert net.link(net.host, res.json["interfaces"][1]["name"])["mtu"] == 1400
    assert net.link(net.host, net.bridge)["mtu"] == 1400  # a new bridge gets it too
    assert net.delete(conf).ok


@pytest.mark.parametrize("sources,expected", [
    (("runtime", "args", "env"), MAC_RT),
    (("args", "env"), MAC_ARGS),
    (("env",), MAC_ENV),
])
def test_mac_precedence(net: BridgeNet, sources: tuple[str, ...], expected: str) -> None:
    conf = net.config(l3=False)
    if "runtime" in sources:
        conf["capabilities"] = {"mac": True}
        conf["runtimeConfig"] = {"mac": MAC_RT}
    if "args" in sources:
        conf["args"] = {"cni": {"mac": MAC_ARGS}}
    args = f"IgnoreUnknown=1;MAC={MAC_ENV}" if "env" in sources else ""
    res = net.add(conf, args=args)
    assert res.ok, res
    assert res.json["interfaces"][2]["mac"] == expected
    assert net.link(net.containers[0], "eth0")["address"] == expected
    assert net.delete(conf, args=args).ok


def test_hairpin_and_isolation(net: BridgeNet) -> None:
    conf = net.config(l3=False, hairpinMode=True, portIsolation=True)
    res = net.add(conf)
    assert res.ok, res
    port = net.link(net.host, res.json["interfaces"][1]["name"])["linkinfo"]["info_slave_data"]
    assert port["hairpin"] is True and port["isolated"] is True
    assert net.delete(conf).ok


def test_defaults_write_both_port_flags_off(net: BridgeNet) -> None:
    res = net.add(net.config(l3=False))
    port = net.link(net.host, res.json["interfaces"][1]["name"])["linkinfo"]["info_slave_data"]
    assert port["hairpin"] is False and port["isolated"] is False
    assert net.delete(net.config(l3=False)).ok


def test_promisc(net: BridgeNet) -> None:
    conf = net.config(l3=False, promiscMode=True)
    res = net.add(conf)
    assert res.ok, res
    assert net.link(net.host, net.bridge)["promiscuity"] >= 1
    assert net.check(conf, res.json).ok
    assert net.delete(conf).ok


def test_is_default_gateway_implies_gateway(net: BridgeNet) -> None:
    conf = net.config(isDefaultGateway=True)
    res = net.add(conf)
    assert res.ok, res
    assert res.json["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.77.0.1"}]
    assert "10.77.0.1/24" in net.addrs(net.host, net.bridge)
    assert any(r["dst"] == "default" and r["gateway"] == "10.77.0.1" for r in net.routes(net.containers[0]))
    assert net.delete(conf).ok


def test_ipam_default_route_without_gw_is_not_duplicated(net: BridgeNet) -> None:
    conf = net.config(isDefaultGateway=True)
    conf["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}]
    res = net.add(conf)
    assert res.ok, res  # the reference adds a second identical route here (its quirk 8)
    assert [r["dst"] for r in res.json["routes"]].count("0.0.0.0/0") == 1
    assert any(r["dst"] == "default" and r.get("gateway") == "10.77.0.1" for r in net.routes(net.containers[0]))
    assert net.delete(conf).ok


def test_gateway_conflict_and_force_address(net: BridgeNet) -> None:
    net.host.ip("link", "add", net.bridge, "type", "bridge")
    net.host.ip("addr", "add", "10.99.0.1/24", "dev", net.bridge)
    conf = net.config(isGateway=True)
    res = net.add(conf)
    assert not res.ok and "already has an IP address different from 10.77.0.1/24" in res.json["msg"]
    assert res.json["code"] == BridgeCode.BRIDGE_ADDRESS_CONFLICT == 122 and "10.99.0.1/24" in res.json["details"]
    net.assert_clean()  # the IPAM reservation was released, the veth removed
    forced = {**conf, "forceAddress": True}
    res = net.add(forced)
    assert res.ok, res
    assert net.addrs(net.host, net.bridge)[:1] == ["10.77.0.1/24"]
    assert "10.99.0.1/24" not in net.addrs(net.host, net.bridge)
    assert net.delete(forced).ok


def test_dns_from_config_replaces_ipam_dns(net: BridgeNet) -> None:
    conf = net.config(dns={"nameservers": ["9.9.9.9"], "search": ["example.org"]})
    res = net.add(conf)
    assert res.ok, res
    assert res.json["dns"] == {"nameservers": ["9.9.9.9"], "search": ["example.org"]}
    assert net.delete(conf).ok


def test_disable_container_interface(net: BridgeNet) -> None:
    conf = net.config(l3=False, disableContainerInterface=True)
    res = net.add(conf)
    assert res.ok, res
    assert "UP" not in net.link(net.containers[0], "eth0")["flags"]
    assert net.delete(conf).ok
    net.assert_clean()


def test_enabledad(net: BridgeNet) -> None:
    conf = net.config(enabledad=True)
    conf["ipam"] = net.ipam("fd00:77::/64")
    res = net.add(conf)
    assert res.ok, res
    c = net.containers[0]
    assert _sysctl(c, "net/ipv6/conf/eth0/accept_dad") == "1"
    assert _sysctl(c, "net/ipv6/conf/eth0/enhanced_dad") == "1"
    assert "tentative" not in c.ip("-6", "addr", "show", "dev", "eth0", "scope", "global").stdout  # settled
    assert net.delete(conf).ok


def test_vlan_needs_a_kernel_feature(net: BridgeNet) -> None:
    """On kernels without bridge VLAN filtering, ADD names the missing feature and leaves nothing."""
    probe = net.host.ip("link", "add", "vlanprobe0", "type", "bridge", "vlan_filtering", "1", check=False)
    if probe.returncode == 0:
        net.host.ip("link", "del", "vlanprobe0")
        pytest.skip("this kernel has bridge VLAN filtering: the missing-feature path cannot be shown")
    res = net.add(net.config(vlan=100))
    assert not res.ok
    assert "CONFIG_BRIDGE_VLAN_FILTERING" in res.json["msg"]
    assert res.json["code"] == BridgeCode.KERNEL_FEATURE_MISSING == 123
    assert net.link(net.host, net.bridge) is None
    net.assert_clean()


def test_vlan_access_and_trunk(net: BridgeNet) -> None:
    probe = net.host.ip("link", "add", "vlanprobe0", "type", "bridge", "vlan_filtering", "1", check=False)
    if probe.returncode != 0:
        pytest.skip("this kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)")
    net.host.ip("link", "del", "vlanprobe0")
    conf = net.config(l3=False, vlan=100, vlanTrunk=[{"minID": 200, "maxID": 202}])
    res = net.add(conf)
    assert res.ok, res
    vlans = json.loads(net.host.exec(["bridge", "-j", "vlan", "show", "dev", res.json["interfaces"][1]["name"]],
                                     capture_output=True, text=True).stdout)
    vids = {v["vlan"] for port in vlans for v in port["vlans"]}
    assert vids == {100, 200, 201, 202}
    assert net.delete(conf).ok


@pytest.mark.parametrize("keys,needle", [
    ({"hairpinMode": True, "promiscMode": True}, "hairpin mode and promiscuous mode"),
    ({"vlan": 5000}, "invalid VLAN ID 5000"),
    ({"vlanTrunk": [{"minID": 10}]}, "maxID is missing"),
    ({"vlanTrunk": [{"minID": 10, "maxID": 5}]}, "minID is greater than maxID"),
    ({"vlanTrunk": [{"id": 0}]}, "incorrect trunk id"),
    ({"mtu": 20}, "invalid mtu 20"),
    ({"bridge": "a-very-long-bridge-name"}, "invalid bridge"),
    ({"bridge": ""}, 'invalid bridge ""'),
    ({"runtimeConfig": {"mac": "not-a-mac"}}, "invalid MAC address 'not-a-mac' in runtimeConfig.mac"),
    ({"args": {"cni": {"mac": "01:00:5e:00:00:01"}}}, "invalid MAC address '01:00:5e:00:00:01' in args.cni.mac"),
    ({"ipMasq": True, "ipMasqBackend": "pf"}, "pf"),
    ({"disableContainerInterface": True}, "cannot use IPAM when DisableContainerInterface"),
    ({"isGateway": "yes"}, "cannot unmarshal string into field isGateway"),
])
def test_bad_config_changes_nothing(net: BridgeNet, keys: dict, needle: str) -> None:
    res = net.add(net.config(**keys))
    assert not res.ok
    # the schema's message (field and value) comes first; the loader's own text is in the details
    assert needle in res.json["msg"] + res.json.get("details", ""), res.json
    assert res.json["code"] in (6, 7)
    assert net.link(net.host, keys.get("bridge") or net.bridge) is None
    net.assert_clean()


def test_bad_cni_args_mac(net: BridgeNet) -> None:
    res = net.add(net.config(l3=False), args="IgnoreUnknown=1;MAC=zz")
    assert not res.ok and "CNI_ARGS MAC" in res.json["msg"]
    assert net.link(net.host, net.bridge) is None


def test_case_insensitive_keys_and_null_defaults(net: BridgeNet) -> None:
    conf = net.config(l3=False)
    conf.pop("bridge")
    conf["BRIDGE"] = net.bridge
    conf["mtu"] = None
    res = net.add(conf)
    assert res.ok, res
    assert res.json["interfaces"][0]["name"] == net.bridge
    assert net.delete(conf).ok


def test_ipam_route_extras_are_applied(net: BridgeNet) -> None:
    """The reference drops an IPAM route's mtu/advmss; they are applied here."""
    conf = net.config(isGateway=True)
    conf["ipam"]["routes"] = [{"dst": "192.0.2.0/24", "mtu": 1300, "advmss": 1200, "priority": 50}]
    res = net.add(conf)
    assert res.ok, res
    routes = [r for r in net.routes(net.containers[0]) if r["dst"] == "192.0.2.0/24"]
    assert routes, net.routes(net.containers[0])
    text = net.containers[0].ip("route", "show", "192.0.2.0/24").stdout
    assert "mtu 1300" in text and "advmss 1200" in text and "metric 50" in text and "via 10.77.0.1" in text
    assert net.delete(conf).ok


def test_add_with_missing_netns_creates_nothing(net: BridgeNet) -> None:
    res = net.add(net.config(), netns="/run/netns/does-not-exist-here")
    assert not res.ok and "failed to open netns" in res.json["msg"]
    assert res.json["code"] == 3 and "/run/netns/does-not-exist-here" in res.json["msg"]  # container unknown
    assert net.link(net.host, net.bridge) is None and net.reservations() == []
