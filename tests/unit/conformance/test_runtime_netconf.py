"""Loading network configurations like libcni: directory search order, single-config fallback,
version selection from cniVersion ∪ cniVersions (T126) and the list's own validation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.netconf import (conflist_from_bytes, go_marshal, load_file, load_network, select_version)
from shared.errors import CNIError


def write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


def test_t126_highest_supported_of_cniversion_and_cniversions():
    raw = {"name": "n", "cniVersion": "0.3.1", "cniVersions": ["0.4.0", "1.0.0", "1.1.0", "2.0.0"],
           "plugins": [{"type": "x"}]}
    assert conflist_from_bytes(json.dumps(raw).encode()).cni_version == "1.1.0"


@pytest.mark.parametrize("version, versions, expected", [
    ("1.0.0", None, "1.0.0"),
    ("", ["0.4.0"], "0.4.0"),
    ("1.0.0", ["0.3.1"], "1.0.0"),
    ("1.0.0", ["2.0.0", "1.5.0"], "1.0.0"),  # all newer: cniVersion stays
    ("9.0.0", [], "9.0.0"),  # nothing usable: left for the plugins to refuse
    ("", [], ""),
])
def test_select_version(version, versions, expected):
    assert select_version(version, versions) == expected


@pytest.mark.parametrize("versions, match", [("1.0.0", "invalid type for cniVersions"),
                                             ([1], "index 0"), (["1.0.0.0"], "invalid cniVersions entry 1.0.0.0 at index 0")])
def test_bad_cniversions(versions, match):
    with pytest.raises(CNIError, match=match):
        select_version("1.0.0", versions)


@pytest.mark.parametrize("raw, match", [
    ({"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}, "no name"),
    ({"name": 3, "plugins": [{"type": "x"}]}, "invalid name type"),
    ({"name": "n", "plugins": []}, "no plugins in list"),
    ({"name": "n", "plugins": {"type": "x"}}, "invalid 'plugins' type"),
    ({"name": "n", "plugins": [{"bridge": "b"}]}, "missing 'type'"),
    ({"name": "n"}, "no plugin configs found"),
    ({"name": "n", "loadOnlyInlinedPlugins": True}, "no plugins in list"),
    ({"name": "n", "disableGC": "nope", "plugins": [{"type": "x"}]}, "invalid disableGC"),
    ({"name": "n", "cniVersion": 1, "plugins": [{"type": "x"}]}, "invalid cniVersion type"),
])
def test_conflist_errors(raw, match):
    with pytest.raises(CNIError, match=match):
        conflist_from_bytes(json.dumps(raw).encode())


def test_bad_json_is_code_6():
    with pytest.raises(CNIError) as ei:
        conflist_from_bytes(b"{nope")
    assert ei.value.code == 6


def test_directory_conflists_sorted_first_match_wins(tmp_path):
    write(tmp_path / "20-b.conflist", {"name": "net", "cniVersion": "1.0.0", "plugins": [{"type": "second"}]})
    write(tmp_path / "10-a.conflist", {"name": "net", "cniVersion": "1.0.0", "plugins": [{"type": "first"}]})
    write(tmp_path / "05-other.conflist", {"name": "other", "plugins": [{"type": "x"}]})
    write(tmp_path / "01-single.conf", {"name": "net", "type": "single"})
    net = load_network(str(tmp_path), "net")
    assert [p.type for p in net.plugins] == ["first"] and net.source.endswith("10-a.conflist")


def test_single_conf_is_a_deprecated_fallback_wrapped_into_a_list(tmp_path):
    write(tmp_path / "10-x.conflist", {"name": "other", "plugins": [{"type": "x"}]})
    write(tmp_path / "20-s.json", {"name": "other2", "type": "y"})
    write(tmp_path / "30-s.conf", {"name": "net", "cniVersion": "0.4.0", "type": "bridge", "bridge": "br0"})
    net = load_network(str(tmp_path), "net")
    assert net.cni_version == "0.4.0" and [p.type for p in net.plugins] == ["bridge"]
    assert net.plugins[0].raw["bridge"] == "br0"
    assert net.bytes == go_marshal({"cniVersion": "0.4.0", "name": "net",
                                    "plugins": [{"name": "net", "cniVersion": "0.4.0", "type": "bridge",
                                                 "bridge": "br0"}]})


def test_sibling_plugin_directory_is_appended_unless_inline_only(tmp_path):
    write(tmp_path / "10.conflist", {"name": "net", "plugins": [{"type": "a"}]})
    (tmp_path / "net").mkdir()
    write(tmp_path / "net" / "b.conf", {"type": "b"})
    assert [p.type for p in load_network(str(tmp_path), "net").plugins] == ["a", "b"]
    write(tmp_path / "10.conflist", {"name": "net", "loadOnlyInlinedPlugins": True, "plugins": [{"type": "a"}]})
    assert [p.type for p in load_network(str(tmp_path), "net").plugins] == ["a"]


def test_unknown_network_is_an_error(tmp_path):
    with pytest.raises(CNIError, match='no net configuration with name "nope"'):
        load_network(str(tmp_path), "nope")


def test_load_file_by_extension(tmp_path):
    lst = write(tmp_path / "a.conflist", {"name": "l", "plugins": [{"type": "x"}]})
    one = write(tmp_path / "b.conf", {"name": "s", "type": "y"})
    assert load_file(str(lst)).name == "l" and load_file(str(one)).plugins[0].type == "y"


def test_capabilities_union_of_enabled():
    net = conflist_from_bytes(json.dumps({"name": "n", "plugins": [
        {"type": "a", "capabilities": {"ips": True, "mac": False}},
        {"type": "b", "capabilities": {"portMappings": True}}]}).encode())
    assert net.capabilities == frozenset({"ips", "portMappings"})


def test_go_marshal_escapes_like_go():
    assert go_marshal({"b": "<&>", "a": 1}) == b'{"a":1,"b":"\\u003c\\u0026\\u003e"}'
