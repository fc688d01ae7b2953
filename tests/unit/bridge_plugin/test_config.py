"""Loading the bridge NetConf: reference defaults, Go JSON rules, and the up-front validation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge_plugin.config import NetConf, collect_vlan_trunk, load_conf
from bridge_plugin.handlers import calc_gateways
from shared.errors import CNIError
from shared.types import DNS, IPConfig, Result, Route, parse_cidr, parse_ip, parse_network

BASE = {"cniVersion": "1.1.0", "name": "n", "type": "bridge"}


def load(**keys) -> NetConf:
    return load_conf({**BASE, **keys})


def test_defaults_match_the_reference() -> None:
    c = load()
    assert c.bridge == "cni0" and c.mtu == 0 and c.vlan == 0 and c.vlans == ()
    assert not (c.is_gateway or c.is_default_gateway or c.force_address or c.ip_masq or c.hairpin_mode
                or c.promisc_mode or c.preserve_default_vlan or c.macspoofchk or c.enabledad
                or c.disable_container_interface or c.port_isolation)
    assert c.ip_masq_backend is None and c.mac == "" and c.ipam_type == "" and not c.is_layer3
    assert not c.dns


def test_is_default_gateway_forces_is_gateway() -> None:
    assert load(isDefaultGateway=True).is_gateway


def test_keys_are_case_insensitive_and_null_keeps_default() -> None:
    c = load_conf({**BASE, "BRIDGE": "br9", "isgateway": True, "mtu": None, "IPAM": {"TYPE": "host-local"}})
    assert c.bridge == "br9" and c.is_gateway and c.mtu == 0 and c.ipam_type == "host-local"


@pytest.mark.parametrize("key,value", [("isGateway", "true"), ("mtu", 1500.5), ("vlan", "1"), ("bridge", 7),
                                       ("ipam", []), ("vlanTrunk", {})])
def test_type_mismatch_is_a_decoding_error(key: str, value) -> None:
    with pytest.raises(CNIError) as e:
        load(**{key: value})
    assert e.value.code == 6 and key in e.value.msg


def test_mac_precedence_and_normalisation() -> None:
    conf = {**BASE, "runtimeConfig": {"mac": "0A:58:00:00:00:01"}, "args": {"cni": {"mac": "0a:58:00:00:00:02"}}}
    assert load_conf(conf, "MAC=0a:58:00:00:00:03").mac == "0a:58:00:00:00:01"
    conf.pop("runtimeConfig")
    assert load_conf(conf, "MAC=0a:58:00:00:00:03").mac == "0a:58:00:00:00:02"
    conf.pop("args")
    assert load_conf(conf, "MAC=0a:58:00:00:00:03").mac == "0a:58:00:00:00:03"
    with pytest.raises(CNIError) as e:
        load_conf(conf, "IP=10.0.0.1")
    assert "unknown args" in e.value.msg


@pytest.mark.parametrize("mac", ["0a:58:00:00:00", "zz:58:00:00:00:01", "01:00:5e:00:00:01", "00:00:00:00:00:00"])
def test_bad_mac(mac: str) -> None:
    with pytest.raises(CNIError) as e:
        load(runtimeConfig={"mac": mac})
    assert e.value.code == 7 and mac in e.value.msg


def test_vlan_trunk_collection() -> None:
    assert collect_vlan_trunk([{"minID": 5, "maxID": 7}, {"id": 6}, {"id": 100}, {}]) == ((5, 6, 7, 100), True)
    assert collect_vlan_trunk([]) == ((), True)
    assert collect_vlan_trunk(None) == ((), False)
    assert load(vlanTrunk=[]).vlan_filtering  # an empty list still asks for VLAN filtering


@pytest.mark.parametrize("trunk,needle", [
    ([{"minID": 0, "maxID": 5}], "incorrect trunk minID"),
    ([{"minID": 1, "maxID": 4095}], "incorrect trunk maxID"),
    ([{"minID": 9, "maxID": 5}], "minID is greater than maxID"),
    ([{"maxID": 5}], "minID is missing"),
    ([{"minID": 5}], "maxID is missing"),
    ([{"id": 4095}], "incorrect trunk id"),
])
def test_bad_trunk(trunk, needle: str) -> None:
    with pytest.raises(CNIError) as e:
        load(vlanTrunk=trunk)
    assert needle in e.value.msg and e.value.code == 7


@pytest.mark.parametrize("keys,needle", [
    ({"vlan": -1}, "invalid VLAN ID -1"),
    ({"vlan": 4095}, "invalid VLAN ID 4095"),
    ({"hairpinMode": True, "promiscMode": True}, "hairpin mode and promiscuous mode"),
    ({"ipam": {"type": "x"}, "disableContainerInterface": True}, "cannot use IPAM"),
    ({"mtu": 67}, "invalid mtu 67"),
    ({"mtu": 65536}, "invalid mtu 65536"),
    ({"bridge": "0123456789abcdef"}, "too long"),
    ({"bridge": "br:0"}, "invalid bridge"),
    ({"bridge": ""}, 'invalid bridge ""'),
    ({"ipMasq": True, "ipMasqBackend": "ebtables"}, "ebtables"),
    ({"ipam": {"type": "x"}, "isGateway": True, "vlan": 4000, "bridge": "bridge01234"}, "VLAN gateway"),
])
def test_bad_values(keys, needle: str) -> None:
    with pytest.raises(CNIError) as e:
        load(**keys)
    assert needle in e.value.msg and e.value.code == 7


def test_backend_typo_is_ignored_without_ipmasq_like_the_reference() -> None:
    assert load(ipMasqBackend="ebtables").ip_masq_backend == "ebtables"


def test_lenient_load_for_cleanup() -> None:
    """DEL/GC/STATUS of a config that has become invalid still works."""
    conf = {**BASE, "vlan": 9999, "mtu": 3, "hairpinMode": True, "promiscMode": True,
            "runtimeConfig": {"mac": "bad"}}
    c = load_conf(conf, strict=False)
    assert c.vlan == 9999 and c.mac == ""
    with pytest.raises(CNIError):
        load_conf(conf)


def test_dns_and_ipam_type() -> None:
    c = load(dns={"Nameservers": ["1.1.1.1"]}, ipam={"type": "static"})
    assert c.dns == DNS(nameservers=["1.1.1.1"]) and c.is_layer3


# -- gateway computation (pure) --------------------------------------------------------------------

def _result(*addrs: str, routes: list[Route] | None = None) -> Result:
    return Result(ips=[IPConfig(parse_cidr(a)) for a in addrs], routes=routes or [])


def test_calc_gateways_fills_gateway_and_default_routes() -> None:
    r = _result("10.1.0.5/24", "10.2.0.5/24", "fd00::5/64")
    gws = calc_gateways(load(isDefaultGateway=True), r)
    assert [str(g) for g in gws] == ["10.1.0.1/24", "10.2.0.1/24", "fd00::1/64"]
    assert all(ip.interface == 2 for ip in r.ips)
    assert [(str(rt.dst), str(rt.gw)) for rt in r.routes] == [("0.0.0.0/0", "10.1.0.1"), ("::/0", "fd00::1")]


def test_calc_gateways_keeps_ipam_gateway_and_default_route() -> None:
    r = _result("10.1.0.5/24", routes=[Route(parse_network("0.0.0.0/0"))])
    r.ips[0].gateway = parse_ip("10.1.0.254")
    gws = calc_gateways(load(isDefaultGateway=True), r)
    assert [str(g) for g in gws] == ["10.1.0.254/24"]
    assert len(r.routes) == 1  # an IPAM default route without gw is not doubled (reference quirk 8)


def test_calc_gateways_without_is_gateway() -> None:
    r = _result("10.1.0.5/24")
    assert calc_gateways(load(), r) == [] and r.ips[0].gateway is None and r.routes == []


def test_schema_accepts_what_load_accepts() -> None:
    from shared.schema import schema_errors

    good = {**BASE, "bridge": "br0", "isGateway": True, "isDefaultGateway": True, "forceAddress": False,
            "ipMasq": True, "ipMasqBackend": "nftables", "mtu": 1400, "hairpinMode": True, "promiscMode": False,
            "vlan": 0, "vlanTrunk": [{"minID": 5, "maxID": 7}, {"id": 9}], "preserveDefaultVlan": False,
            "macspoofchk": True, "enabledad": False, "disableContainerInterface": False, "portIsolation": True,
            "runtimeConfig": {"mac": "0a:58:00:00:00:01"}, "args": {"cni": {"mac": "0a:58:00:00:00:02"}},
            "ipam": {"type": "host-local"}, "dns": {"nameservers": ["1.1.1.1"]}}
    load_conf(good)
    assert schema_errors(good, "bridge-config") == []
    for bad in ({"vlan": 5000}, {"mtu": 10}, {"ipMasqBackend": "pf"}, {"isGateway": "yes"},
                {"runtimeConfig": {"mac": "xx"}}, {"bridge": "0123456789abcdef"}):
        assert schema_errors({**good, **bad}, "bridge-config"), bad
        with pytest.raises(CNIError):
            load_conf({**good, **bad})


def test_schema_file_is_valid_json() -> None:
    path = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "bridge-config.json"
    assert json.loads(path.read_text())["$schema"].startswith("https://json-schema.org/draft/2020-12")


@pytest.mark.parametrize("bad, field", [
    ({"isGateway": "yes"}, "isGateway"),
    ({"mtu": 10}, "mtu"),
    ({"vlan": 5000}, "vlan"),
])
def test_rejection_reads_as_the_schema_names_it(bad: dict, field: str) -> None:
    from bridge_plugin.config import load_request
    from shared.request import Request

    config = {"cniVersion": "1.1.0", "name": "n", "type": "bridge", **bad}
    with pytest.raises(CNIError) as info:
        load_request(Request(command="ADD", config=config))
    assert info.value.msg.startswith(f"invalid {field}: "), info.value
    assert repr(bad[field]) in info.value.msg or str(bad[field]) in info.value.msg
    assert info.value.details  # the loader's own (reference-worded) text is kept
