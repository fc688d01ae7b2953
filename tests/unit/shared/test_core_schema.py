"""The JSON Schemas: precise enough to reject wrong shapes, loose enough for what the reference emits."""
from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest

from shared.errors import CNIError
from shared.schema import SCHEMA_DIR, load_schema, result_problems, schema_errors, validate, validate_result
from shared.version import ALL_VERSIONS
from tests.support.core_plugin import sample_result

# What the Go reference prints (bridge + host-local, v1.x plugins), copied from real runs' shapes.
REFERENCE_BRIDGE_1_0_0 = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "cni0", "mac": "ce:1c:2e:55:2b:a1"},
                   {"name": "veth4e4e04a5", "mac": "a6:a0:c8:44:e6:76"},
                   {"name": "eth0", "mac": "2a:7b:19:f5:d8:0f", "sandbox": "/var/run/netns/test"}],
    "ips": [{"interface": 2, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.22.0.1"}],
    "dns": {},
}
REFERENCE_HOST_LOCAL_0_4_0 = {"cniVersion": "0.4.0",
                              "ips": [{"version": "4", "address": "10.10.0.2/24", "gateway": "10.10.0.1"}],
                              "dns": {}}
REFERENCE_HOST_LOCAL_0_2_0 = {"cniVersion": "0.2.0", "ip4": {"ip": "10.10.0.2/24", "gateway": "10.10.0.1"},
                              "dns": {}}


def test_every_schema_is_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    names = [f[:-5] for f in os.listdir(SCHEMA_DIR) if f.endswith(".json")]
    for v in ALL_VERSIONS:
        assert f"result-{v}" in names
    for name in names:
        Draft202012Validator.check_schema(load_schema(name))


@pytest.mark.parametrize("doc, version", [(REFERENCE_BRIDGE_1_0_0, "1.0.0"),
                                          (dict(REFERENCE_BRIDGE_1_0_0, cniVersion="1.1.0"), "1.1.0"),
                                          (REFERENCE_HOST_LOCAL_0_4_0, "0.4.0"),
                                          (REFERENCE_HOST_LOCAL_0_2_0, "0.2.0"),
                                          ({"ip4": {"ip": "10.10.0.2/24"}, "dns": {}}, "0.1.0"),
                                          ({"ip4": {"ip": "10.10.0.2/24"}}, ""),
                                          ({"cniVersion": "1.1.0"}, "1.1.0")])  # L2-only bridge
def test_reference_outputs_are_accepted(doc: dict[str, Any], version: str) -> None:
    assert result_problems(doc, version) == []
    validate_result(doc, version)


def _mutate(version: str, path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(sample_result().to_json(version))
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize("version, path, value, where", [
    ("1.1.0", ["ips", 0, "version"], "4", "ips[0]"),  # `version` does not exist in 1.x
    ("1.0.0", ["ips", 0, "version"], "4", "ips[0]"),
    ("0.4.0", ["ip4"], {"ip": "10.0.0.2/24"}, "(top level)"),  # 0.x keys in 0.4.0
    ("1.1.0", ["ip4"], {"ip": "10.0.0.2/24"}, "(top level)"),
    ("0.2.0", ["ips"], [], "(top level)"),  # 0.3+ keys in 0.2.0
    ("0.3.0", ["ip"], [], "(top level)"),  # the 0.3.0 spec typo is not accepted
    ("0.4.0", ["ips", 0, "version"], KeyError, "ips[0]"),
    ("0.4.0", ["ips", 0, "version"], "6", "ips[0].address"),  # family mismatch
    ("0.4.0", ["ips", 0, "version"], 4, "ips[0].version"),
    ("1.1.0", ["ips", 0, "address"], "10.1.0.5", "ips[0].address"),  # not CIDR
    ("1.1.0", ["ips", 0, "address"], "10.1.0.5/33", "ips[0].address"),
    ("1.1.0", ["ips", 0, "address"], "10.1.0.5/255.255.0.0", "ips[0].address"),
    ("1.1.0", ["ips", 0, "address"], "10.1.0.5/16\n", "ips[0].address"),
    ("1.1.0", ["ips", 0, "address"], "fe80::1%eth0/64", "ips[0].address"),
    ("1.1.0", ["ips", 0, "address"], "gg::1/64", "ips[0].address"),
    ("1.1.0", ["ips", 0, "gateway"], "fd00::1", "ips[0].gateway"),  # wrong family
    ("1.1.0", ["ips", 2, "gateway"], "10.1.0.1", "ips[2].gateway"),
    ("1.1.0", ["ips", 0, "gateway"], "10.1.0.256", "ips[0].gateway"),
    ("1.1.0", ["ips", 0, "interface"], "2", "ips[0].interface"),  # index types
    ("1.1.0", ["ips", 0, "interface"], 2.0, "ips[0].interface"),
    ("1.1.0", ["ips", 0, "interface"], -1, "ips[0].interface"),
    ("1.1.0", ["ips", 0, "interface"], True, "ips[0].interface"),
    ("1.1.0", ["ips", 0, "interface"], 3, "ips[0].interface"),  # out of range
    ("0.4.0", ["ips", 0, "interface"], 7, "ips[0].interface"),
    ("1.1.0", ["interfaces", 0, "name"], KeyError, "interfaces[0]"),
    ("1.1.0", ["interfaces", 2, "mtu"], "1400", "interfaces[2].mtu"),
    ("0.4.0", ["interfaces", 2, "mtu"], 1400, "interfaces[2]"),  # 1.1.0-only field
    ("1.1.0", ["routes", 0, "dst"], "0.0.0.0", "routes[0].dst"),
    ("1.1.0", ["routes", 0, "gw"], "nope", "routes[0].gw"),
    ("1.1.0", ["routes", 0, "table"], -1, "routes[0].table"),
    ("1.1.0", ["routes", 0, "via"], "x", "routes[0]"),
    ("0.2.0", ["ip4", "routes", 0, "mtu"], 1400, "ip4.routes[0]"),  # extras do not exist in 0.2.0
    ("0.2.0", ["ip4", "ip"], "fd00::2/64", "ip4.ip"),
    ("0.2.0", ["ip6", "routes", 0, "dst"], "0.0.0.0/0", "ip6.routes[0].dst"),
    ("0.2.0", ["ip4"], KeyError, None),  # still valid with ip6 alone ...
    ("1.1.0", ["dns", "nameservers"], "1.1.1.1", "dns.nameservers"),
    ("1.1.0", ["dns", "servers"], [], "dns"),
    ("1.1.0", ["cniVersion"], "1.0.0", "cniVersion"),
    ("1.1.0", ["cniVersion"], KeyError, "(top level)"),
    ("0.2.0", ["cniVersion"], KeyError, "(top level)"),
])
def test_wrong_shapes_are_rejected(version: str, path: list[Any], value: Any, where: str | None) -> None:
    doc = _mutate(version, path, value)
    problems = result_problems(doc, version)
    if where is None:
        assert problems == []
        return
    assert problems and any(p.startswith(where + ":") for p in problems), problems
    with pytest.raises(CNIError) as e:
        validate_result(doc, version)
    assert e.value.code == 6 and version in e.value.msg


def test_0_2_0_needs_an_address() -> None:
    assert result_problems({"cniVersion": "0.2.0", "dns": {}}, "0.2.0")
    assert result_problems({"cniVersion": "0.2.0", "ip6": {"ip": "fd00::2/64"}}, "0.2.0") == []


def test_unknown_version() -> None:
    assert result_problems({}, "9.9.9")
    with pytest.raises(CNIError) as e:
        validate_result({}, "9.9.9")
    assert e.value.code == 1


def test_non_object_results() -> None:
    for doc in (None, [], "x", 5):
        assert result_problems(doc, "1.1.0")


# -- netconf / error / version-info ------------------------------------------------------------

GOOD = {"cniVersion": "1.1.0", "name": "net1", "type": "bridge", "capabilities": {"mac": True},
        "runtimeConfig": {"mac": "c2:11:22:33:44:55", "unknownCap": [1]},
        "args": {"cni": {"ips": ["10.0.0.5"], "labels": [{"key": "a", "value": "b"}]}, "vendor": 1},
        "prevResult": {"cniVersion": "1.1.0"}, "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"},
        "cni.dev/valid-attachments": [{"containerID": "c", "ifname": "eth0"}],
        "cni.dev/attachments": None, "cni.dev/future": {"x": 1}, "pluginSpecific": 7}


def test_netconf_accepts_the_generic_keys() -> None:
    assert schema_errors(GOOD, "netconf") == []
    assert schema_errors({"name": "n", "type": "t"}, "netconf") == []


@pytest.mark.parametrize("key, value", [("name", 5), ("name", "-x"), ("name", ""), ("type", "../x"),
                                        ("type", "a/b"), ("type", ".."), ("capabilities", {"mac": "yes"}),
                                        ("runtimeConfig", []), ("args", "x"), ("prevResult", []),
                                        ("ipam", {"subnet": "x"}), ("ipam", {"type": "/bin/x"}),
                                        ("cni.dev/valid-attachments", [{"containerID": "c"}]),
                                        ("cni.dev/attachments", {"containerID": "c", "ifname": "e"}),
                                        ("cniVersion", 1), ("dns", {"nameservers": "x"})])
def test_netconf_rejects(key: str, value: Any) -> None:
    with pytest.raises(CNIError) as e:
        validate(dict(GOOD, **{key: value}), "netconf")
    assert e.value.code == 7 and key.split("/")[0] in e.value.msg


def test_netconf_can_be_extended_by_ref() -> None:
    """A plugin schema composes the base by file name (the registry resolves it)."""
    from jsonschema import Draft202012Validator

    from shared.schema import _format_checker, _registry

    plugin_schema = {"allOf": [{"$ref": "https://pycni.invalid/schemas/netconf.json"}],
                     "properties": {"mtu": {"type": "integer"}}}
    v = Draft202012Validator(plugin_schema, registry=_registry(), format_checker=_format_checker())
    assert v.is_valid(dict(GOOD, mtu=1400))
    assert not v.is_valid(dict(GOOD, mtu="x")) and not v.is_valid(dict(GOOD, name=5))


def test_error_and_version_schemas() -> None:
    assert schema_errors({"cniVersion": "1.1.0", "code": 7, "msg": "m", "details": "d"}, "error") == []
    assert schema_errors({"code": 7, "msg": "m"}, "error") == []  # the reference omits cniVersion
    assert schema_errors({"code": -1, "msg": "m"}, "error")
    assert schema_errors({"code": 7}, "error")
    info = json.loads('{"cniVersion":"1.1.0","supportedVersions":["0.1.0","1.1.0"]}')
    assert schema_errors(info, "version-info") == []
    assert schema_errors(dict(info, supportedVersions=[]), "version-info")
    assert schema_errors(dict(info, supportedVersions=["1.1"]), "version-info")
