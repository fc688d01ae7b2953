"""The result model: parsing, writing and the reference's conversions (spec §4.5, R4.11-R4.19)."""
from __future__ import annotations

import copy
import ipaddress
from typing import Any

import pytest

from shared.errors import CNIError
from shared.schema import result_problems
from shared.types import (DNS, Interface, IPConfig, Result, Route, convert_result, parse_cidr, parse_ip,
                          parse_network, prev_result)
from shared.version import ALL_VERSIONS, family_of
from tests.support.core_plugin import NETNS, sample_result

LEGACY = ("0.1.0", "0.2.0")
MIDDLE = ("0.3.0", "0.3.1", "0.4.0")
CURRENT = ("1.0.0", "1.1.0")


# -- parsing primitives ------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["10.1.0.5/16", "0.0.0.0/0", "fd00::5/64", "::/0", "10.0.0.1/32",
                                  "10.0.0.1/024", "::ffff:1.2.3.4/120"])
def test_parse_cidr_accepts_go_forms(text: str) -> None:
    assert parse_cidr(text) == ipaddress.ip_interface(text.replace("/024", "/24"))


@pytest.mark.parametrize("text", ["10.0.0.1", "10.0.0.1/33", "10.0.0.1/255.255.255.0", "10.0.0.1/0.0.0.255",
                                  "fe80::1%eth0/64", "010.0.0.1/8", "10.0.0.1/ 8", "10.0.0.1/+8", "",
                                  "10.0.0.1/24\n", "x/8", "10.0.0.1/-1", 5, None, ["10.0.0.1/8"]])
def test_parse_cidr_rejects(text: Any) -> None:
    with pytest.raises(CNIError) as e:
        parse_cidr(text)
    assert e.value.code == 6


@pytest.mark.parametrize("text", ["1.2.3", "01.2.3.4", "fe80::1%1", "", "1.2.3.4 ", 16909060])
def test_parse_ip_rejects(text: Any) -> None:
    with pytest.raises(CNIError):
        parse_ip(text)


def test_parse_network_masks_host_bits() -> None:
    assert str(parse_network("10.1.2.3/8")) == "10.0.0.0/8"


# -- reading results ---------------------------------------------------------------------------

def test_read_every_family() -> None:
    legacy = {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1",
                                             "routes": [{"dst": "0.0.0.0/0"}]},
              "ip6": {"ip": "fd00::2/64", "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
              "dns": {"nameservers": ["1.1.1.1"]}}
    r = Result.from_json(legacy)
    assert [str(ip.address) for ip in r.ips] == ["10.0.0.2/24", "fd00::2/64"]
    assert [str(rt.dst) for rt in r.routes] == ["0.0.0.0/0", "::/0"]  # ip4 routes, then ip6 routes
    assert r.dns.nameservers == ["1.1.1.1"] and r.interfaces == []
    mid = {"cniVersion": "0.3.0", "interfaces": [{"name": "eth0", "sandbox": NETNS}],
           "ips": [{"version": "4", "address": "10.0.0.2/24", "interface": 0}]}
    r = Result.from_json(mid)
    assert r.ips[0].interface == 0 and r.interfaces[0].sandbox == NETNS


@pytest.mark.parametrize("obj, expected", [
    ({"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.0.0.2/24"}]}, "ip version"),
    ({"cniVersion": "0.4.0", "ips": [{"version": 4, "address": "10.0.0.2/24"}]}, "ip version"),
    ({"cniVersion": "0.2.0", "ip4": {"ip": "fd00::2/64"}}, "wrong address family"),
    ({"cniVersion": "0.2.0", "ip6": {"ip": "10.0.0.2/24"}}, "wrong address family"),
    ({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24", "gateway": "fd00::1"}]}, "gateway"),
    ({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2"}]}, "ip address"),
    ({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24", "interface": "0"}]}, "interface"),
    ({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24", "interface": -2}]}, "interface"),
    ({"cniVersion": "1.1.0", "routes": [{"dst": "10.0.0.0/8", "mtu": 1.5}]}, "mtu"),
    ({"cniVersion": "1.1.0", "routes": [{"dst": "10.0.0.0"}]}, "route dst"),
    ({"cniVersion": "1.1.0", "interfaces": [{"name": 5}]}, "name"),
    ({"cniVersion": "1.1.0", "interfaces": {"name": "x"}}, "interfaces"),
    ({"cniVersion": "1.1.0", "dns": {"nameservers": "1.1.1.1"}}, "nameservers"),
    ({"cniVersion": "1.1.0", "dns": []}, "dns"),
    ({"cniVersion": 1}, "cniVersion"),
    ([], "JSON object"),
])
def test_read_rejects_bad_shapes(obj: Any, expected: str) -> None:
    with pytest.raises(CNIError) as e:
        Result.from_json(obj)
    assert e.value.code == 6 and expected in str(e.value)


def test_read_unknown_version_is_1() -> None:
    with pytest.raises(CNIError) as e:
        Result.from_json({"cniVersion": "9.9.9"})
    assert e.value.code == 1


def test_interface_index_minus_one_parses() -> None:  # spec-upgrades.md: some plugins emit -1
    r = Result.from_json({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "interface": -1}]})
    assert r.ips[0].interface == -1


@pytest.mark.parametrize("expected, actual", [(e, a) for e in ALL_VERSIONS for a in ALL_VERSIONS])
def test_family_rule_when_parsing(expected: str, actual: str) -> None:  # R4.19
    doc = sample_result().to_json(actual)
    if family_of(expected) == family_of(actual):
        assert Result.from_json(doc, expected) == Result.from_json(doc)
    else:
        with pytest.raises(CNIError) as e:
            Result.from_json(doc, expected)
        assert e.value.code == 6 and "unmarshalled CNIVersion" in e.value.msg


def test_missing_version_takes_the_expected_one() -> None:
    r = Result.from_json({"ips": [{"version": "4", "address": "10.0.0.2/24"}]}, "0.4.0")
    assert r.ips[0].family == 4
    r = Result.from_json({"ip4": {"ip": "10.0.0.2/24"}})  # no version at all: 0.1.0
    assert str(r.ips[0].address) == "10.0.0.2/24"


# -- writing and converting --------------------------------------------------------------------

def test_to_1_1_0_keeps_everything() -> None:
    doc = sample_result().to_json("1.1.0")
    assert doc == {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "br0", "mac": "0a:58:0a:00:00:01"}, {"name": "veth1", "mac": "0a:58:0a:00:00:02"},
                       {"name": "eth0", "mac": "0a:58:0a:00:00:03", "mtu": 1400, "sandbox": NETNS}],
        "ips": [{"interface": 2, "address": "10.1.0.5/16", "gateway": "10.1.0.1"},
                {"interface": 2, "address": "10.2.0.5/24"},
                {"interface": 2, "address": "fd00::5/64", "gateway": "fd00::1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "table": 0},
                   {"dst": "192.168.0.0/16"},
                   {"dst": "::/0", "gw": "fd00::1", "priority": 5, "scope": 0}],
        "dns": {"nameservers": ["10.1.0.1"], "domain": "example.org", "search": ["a.example.org"],
                "options": ["ndots:2"]},
    }


@pytest.mark.parametrize("version", MIDDLE)
def test_to_0_3_x_0_4_0(version: str) -> None:  # R4.17, R4.2, R4.3
    doc = sample_result().to_json(version)
    assert "ip" not in doc and [ip["version"] for ip in doc["ips"]] == ["4", "4", "6"]
    assert all("mtu" not in i for i in doc["interfaces"])  # 1.1.0-only interface fields dropped
    assert doc["routes"][0] == {"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "table": 0}  # extras kept
    assert doc["interfaces"][2]["sandbox"] == NETNS


@pytest.mark.parametrize("version", LEGACY)
def test_down_to_0_2_0_keeps_first_of_each_family(version: str) -> None:  # R4.18
    doc = sample_result().to_json(version)
    assert doc == {
        "cniVersion": version,
        "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1",
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "192.168.0.0/16"}]},
        "ip6": {"ip": "fd00::5/64", "gateway": "fd00::1", "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
        "dns": {"nameservers": ["10.1.0.1"], "domain": "example.org", "search": ["a.example.org"],
                "options": ["ndots:2"]},
    }


def test_down_to_0_2_0_drops_routes_of_a_family_without_ip() -> None:
    r = sample_result()
    r.ips = [ip for ip in r.ips if ip.family == 4]
    doc = r.to_json("0.2.0")
    assert "ip6" not in doc and [x["dst"] for x in doc["ip4"]["routes"]] == ["0.0.0.0/0", "192.168.0.0/16"]


@pytest.mark.parametrize("version", LEGACY + ("",))
def test_down_to_0_x_fails_without_ips(version: str) -> None:
    r = sample_result()
    r.ips = []
    with pytest.raises(CNIError) as e:
        r.to_json(version)
    assert (e.value.code, e.value.msg) == (1, "cannot convert: no valid IP addresses")


def test_empty_dns_is_always_written_in_0_x_and_omitted_in_1_x() -> None:  # R4.1, R4.3, R4.8
    r = Result(ips=[IPConfig(parse_cidr("10.0.0.2/24"))])
    for version in LEGACY + MIDDLE:
        assert r.to_json(version)["dns"] == {}
    for version in CURRENT:
        assert "dns" not in r.to_json(version)
    assert "interfaces" not in r.to_json("1.1.0") and "routes" not in r.to_json("0.4.0")


def test_go_zero_value_rules_for_route_and_interface_extras() -> None:
    r = Result(interfaces=[Interface("eth0", mtu=0)],
               routes=[Route(parse_network("10.0.0.0/8"), mtu=0, advmss=0, priority=0, table=0, scope=0)])
    doc = r.to_json("1.1.0")
    assert doc["interfaces"] == [{"name": "eth0"}]
    assert doc["routes"] == [{"dst": "10.0.0.0/8", "table": 0, "scope": 0}]


def test_empty_target_version_is_0_1_0() -> None:  # R4.11
    assert sample_result().to_json("")["cniVersion"] == "0.1.0"


@pytest.mark.parametrize("version", ["9.9.9", "1.1", "0.3"])
def test_unknown_target_version_is_1(version: str) -> None:
    with pytest.raises(CNIError) as e:
        sample_result().to_json(version)
    assert e.value.code == 1


def _source(version: str) -> dict[str, Any]:
    return sample_result().to_json(version)


@pytest.mark.parametrize("src, dst", [(s, d) for s in ALL_VERSIONS for d in ALL_VERSIONS])
def test_conversion_matrix_is_schema_valid(src: str, dst: str) -> None:  # T56, R4.11-R4.18
    doc = _source(src)
    before = copy.deepcopy(doc)
    out = convert_result(doc, dst)
    assert doc == before  # the input is never modified
    assert out["cniVersion"] == dst
    assert result_problems(out, dst) == [], out
    back = Result.from_json(out)
    if family_of(src) > 0 and family_of(dst) > 0:  # no loss of addresses or routes above 0.2.0
        assert back.ips == Result.from_json(doc).ips
        assert [(r.dst, r.gw) for r in back.routes] == [(r.dst, r.gw) for r in Result.from_json(doc).routes]
    if family_of(src) == 0 or family_of(dst) == 0:  # via 0.2.0: first v4 and first v6 only
        assert [str(ip.address) for ip in back.ips] == ["10.1.0.5/16", "fd00::5/64"]
        assert back.interfaces == [] and all(ip.interface is None for ip in back.ips)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_round_trip_is_stable(version: str) -> None:
    doc = _source(version)
    assert Result.from_json(doc).to_json(version) == doc
    assert Result.from_json(doc, version).to_json(version) == doc


def test_same_family_conversions_only_relabel() -> None:  # R4.12, R4.15, R4.10
    for family in (LEGACY, MIDDLE, CURRENT):
        docs = [_source(v) for v in family]
        for doc in docs:
            for other in family:
                assert {**convert_result(doc, other), "cniVersion": "x"} == {**docs[0], "cniVersion": "x"}


def test_up_from_0_2_0() -> None:  # R4.13, R4.14
    legacy = {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1",
                                             "routes": [{"dst": "1.0.0.0/8"}]},
              "ip6": {"ip": "fd00::2/64", "routes": [{"dst": "fd01::/64", "gw": "fd00::1"}]}, "dns": {}}
    assert convert_result(legacy, "0.4.0") == {
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1"},
                {"version": "6", "address": "fd00::2/64"}],
        "routes": [{"dst": "1.0.0.0/8"}, {"dst": "fd01::/64", "gw": "fd00::1"}],
        "dns": {}}
    up = convert_result(legacy, "1.1.0")
    assert all("version" not in ip for ip in up["ips"]) and "dns" not in up and "interfaces" not in up


def test_convert_result_assumes_from_version_only_when_absent() -> None:
    doc = {"ips": [{"version": "4", "address": "10.0.0.2/24"}]}
    assert convert_result(doc, "1.1.0", from_version="0.4.0")["ips"] == [{"address": "10.0.0.2/24"}]
    # Without any version it is read as 0.1.0, where `ips` means nothing (the reference ignores it too).
    assert convert_result(doc, "1.1.0") == {"cniVersion": "1.1.0"}
    with pytest.raises(CNIError):
        convert_result(doc, "0.2.0")


# -- prevResult --------------------------------------------------------------------------------

def test_prev_result_absent_or_empty() -> None:
    assert prev_result({"cniVersion": "1.1.0"}) is None
    assert prev_result({"cniVersion": "1.1.0", "prevResult": None}) is None
    assert prev_result({"cniVersion": "1.1.0", "prevResult": {}}) is None


def test_prev_result_takes_config_version_when_it_has_none() -> None:
    conf = {"cniVersion": "0.4.0", "prevResult": {"ips": [{"version": "4", "address": "10.0.0.2/24"}]}}
    r = prev_result(conf)
    assert r is not None and str(r.ips[0].address) == "10.0.0.2/24"
    assert conf["prevResult"] == {"ips": [{"version": "4", "address": "10.0.0.2/24"}]}  # not modified


def test_prev_result_of_another_family_is_read_in_its_own_version() -> None:
    conf = {"cniVersion": "1.1.0", "prevResult": sample_result().to_json("0.4.0")}
    r = prev_result(conf)
    assert r is not None and len(r.ips) == 3 and r.ips[0].interface == 2


@pytest.mark.parametrize("prev", [[], "x", 5, {"cniVersion": "1.1.0", "ips": [{"address": "bad"}]},
                                  {"cniVersion": "7.0.0"}])
def test_prev_result_errors_are_6(prev: Any) -> None:
    with pytest.raises(CNIError) as e:
        prev_result({"cniVersion": "1.1.0", "prevResult": prev})
    assert e.value.code == 6 and e.value.msg == "could not parse prevResult"


def test_dns_truthiness() -> None:
    assert not DNS() and DNS(domain="x") and DNS(options=["a"])
