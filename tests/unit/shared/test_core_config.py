"""Config decoding and version gating through skel.run (spec §1.4, §5; tests T30-T50)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from shared import skel
from shared.errors import CNIError
from shared.request import config_version, decode_config
from shared.version import ALL_VERSIONS, check_supported, check_verb_allowed, parse_version
from tests.support.core_plugin import GOOD_CONF, Recorder, env_for, error_of, make_plugin, run


@pytest.mark.parametrize("stdin", [b"", b"{not json", b"[1, 2]", b'"name"', b"42", b"true",
                                   b'{"name": "n"} trailing', b"\xef\xbb\xbf{\"name\": \"n\"}",
                                   '{"name": "n"}'.encode("utf-16"), b'{"name": "n", "x": NaN}',
                                   b"\xff\xfe garbage", b"[" * 100_000])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK", "GC", "STATUS", "NOPE"])
def test_undecodable_stdin_is_6(plugin: skel.Plugin, recorder: Recorder, stdin: bytes,
                                command: str) -> None:  # T30-T32, R1.17
    err = error_of(run(plugin, env_for(command), stdin=stdin))
    assert err["code"] == 6 and err["msg"] == "error unmarshall network config"
    assert err["cniVersion"] == "1.1.0"  # no config version known
    assert recorder.calls == []


@pytest.mark.parametrize("config, code, msg", [
    (None, 7, "missing network name"),  # literal null stdin
    ({}, 7, "missing network name"),
    ({"cniVersion": "1.1.0"}, 7, "missing network name"),  # T33
    ({"cniVersion": "1.1.0", "name": ""}, 7, "missing network name"),  # T34
    ({"cniVersion": "1.1.0", "name": None}, 7, "missing network name"),
    ({"cniVersion": "1.1.0", "name": "-net"}, 7, "invalid characters found in network name"),  # T35
    ({"cniVersion": "1.1.0", "name": "net/1"}, 7, "invalid characters found in network name"),
    ({"cniVersion": "1.1.0", "name": "net work"}, 7, "invalid characters found in network name"),
    ({"cniVersion": "1.1.0", "name": "ne%t"}, 7, "invalid characters found in network name"),
    ({"cniVersion": "1.1.0", "name": "net\n"}, 7, "invalid characters found in network name"),
    ({"cniVersion": "1.1.0", "name": ".."}, 7, "invalid characters found in network name"),
    ({"cniVersion": "1.1.0", "name": 123}, 6, "error unmarshall network config"),  # T36
    ({"cniVersion": "1.1.0", "name": ["n"]}, 6, "error unmarshall network config"),
    ({"cniVersion": "1.1.0", "name": True}, 6, "error unmarshall network config"),
])
@pytest.mark.parametrize("command", ["ADD", "NOPE"])  # R1.17: even an unknown verb validates the name first
def test_network_name_errors(plugin: skel.Plugin, config: Any, code: int, msg: str, command: str) -> None:
    err = error_of(run(plugin, env_for(command), config))
    assert (err["code"], err["msg"]) == (code, msg)


def test_bad_name_details_name_the_value(plugin: skel.Plugin) -> None:
    err = error_of(run(plugin, env_for("ADD"), dict(GOOD_CONF, name="net/1")))
    assert err["details"] == "net/1"
    err = error_of(run(plugin, env_for("ADD"), dict(GOOD_CONF, name=123)))
    assert "123" in err["details"]


def test_unknown_command_with_good_stdin_is_4_after_decoding(plugin: skel.Plugin) -> None:
    err = error_of(run(plugin, env_for("NOPE"), dict(GOOD_CONF, cniVersion=1)))
    assert err["code"] == 4  # cniVersion's type is checked after dispatch, as in the reference


@pytest.mark.parametrize("name", ["my_net.v1-a", "a", "0net", "N"])
def test_good_names(plugin: skel.Plugin, recorder: Recorder, name: str) -> None:  # T37
    assert run(plugin, env_for("ADD"), dict(GOOD_CONF, name=name)).exit_code == 0
    assert recorder.calls[0].network_name == name


@pytest.mark.parametrize("version", ["9.9.9", "1.1", "1", "0.5.0", "2.0.0", "1.1.0 ", "v1.1.0"])
@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_unsupported_version_is_1(plugin: skel.Plugin, recorder: Recorder, version: str,
                                  command: str) -> None:  # T38, T39, T50
    err = error_of(run(plugin, env_for(command), dict(GOOD_CONF, cniVersion=version)))
    assert (err["code"], err["msg"]) == (1, "incompatible CNI versions")
    assert err["details"] == (f'config is {json.dumps(version)}, plugin supports '
                              '["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]')
    assert err["cniVersion"] == "1.1.0"  # unsupported config version: the current one
    assert recorder.calls == []


@pytest.mark.parametrize("value", [1, 1.1, ["1.1.0"], {"v": 1}, True])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK", "GC", "STATUS"])
def test_non_string_version_is_6(plugin: skel.Plugin, value: Any, command: str) -> None:  # T40
    err = error_of(run(plugin, env_for(command), dict(GOOD_CONF, cniVersion=value)))
    assert (err["code"], err["msg"]) == (6, "decoding version from network config")
    assert err["cniVersion"] == "1.1.0"


@pytest.mark.parametrize("conf", [{"name": "n"}, {"name": "n", "cniVersion": ""}, {"name": "n", "cniVersion": None}])
def test_absent_version_means_0_1_0(plugin: skel.Plugin, conf: dict[str, Any]) -> None:  # T41
    out = run(plugin, env_for("ADD"), conf)
    doc = json.loads(out.stdout)
    assert out.exit_code == 0 and doc["cniVersion"] == "0.1.0" and "ip4" in doc and "ips" not in doc


def test_absent_version_unsupported_is_1(recorder: Recorder) -> None:
    p = make_plugin(recorder, supported=("0.4.0", "1.0.0", "1.1.0"))
    err = error_of(run(p, env_for("ADD"), {"name": "n"}))
    assert err["code"] == 1 and err["details"].startswith('config is "0.1.0"')


@pytest.mark.parametrize("extra", [
    {"foo": {"bar": 1}},  # T42
    {"capabilities": {"portMappings": True}},  # T43
    {"runtimeConfig": {"unknownCap": [1, 2]}},  # T44
    {"args": {"cni": {"labels": [{"key": "a", "value": "b"}]}, "vendor": {"x": 1}}},  # T45
    {"cni.dev/valid-attachments": [{"containerID": "c", "ifname": "eth0"}]},  # T46
])
def test_extra_keys_are_passed_through(plugin: skel.Plugin, recorder: Recorder, extra: dict[str, Any]) -> None:
    conf = {**GOOD_CONF, **extra}
    assert run(plugin, env_for("ADD"), conf).exit_code == 0
    assert recorder.calls[0].config == conf


@pytest.mark.parametrize("command, version, code, msg", [
    ("CHECK", "0.3.1", 1, "config version does not allow CHECK"),  # T47
    ("CHECK", "0.1.0", 1, "config version does not allow CHECK"),
    ("CHECK", "", 1, "config version does not allow CHECK"),
    ("CHECK", "abc", 6, None),  # T48: parse error before the support check
    ("CHECK", "1.2.3.4", 6, None),
    ("CHECK", "9.9.9", 1, "plugin version does not allow CHECK"),
    ("CHECK", "1.1", 1, "incompatible CNI versions"),  # parses (>= 0.4.0) but is not an exact match
    ("GC", "1.0.0", 1, "config version does not allow GC"),  # T49
    ("GC", "0.4.0", 1, "config version does not allow GC"),
    ("GC", "x.y", 6, None),
    ("STATUS", "1.0.0", 1, "config version does not allow STATUS"),
    ("STATUS", "2.0.0", 1, "plugin version does not allow STATUS"),
])
def test_verb_gating(plugin: skel.Plugin, recorder: Recorder, command: str, version: str, code: int,
                     msg: str | None) -> None:
    err = error_of(run(plugin, env_for(command), dict(GOOD_CONF, cniVersion=version)))
    assert err["code"] == code
    if msg is not None:
        assert err["msg"] == msg
    assert recorder.calls == []


@pytest.mark.parametrize("command, versions", [
    ("CHECK", ("0.4.0", "1.0.0", "1.1.0")), ("GC", ("1.1.0",)), ("STATUS", ("1.1.0",)),
    ("ADD", ALL_VERSIONS), ("DEL", ALL_VERSIONS),
])
def test_verbs_allowed_from_their_version(plugin: skel.Plugin, recorder: Recorder, command: str,
                                          versions: tuple[str, ...]) -> None:
    for version in versions:
        out = run(plugin, env_for(command), dict(GOOD_CONF, cniVersion=version))
        assert out.exit_code == 0, (version, out)
    assert len(recorder.calls) == len(versions)


def test_plugin_without_newer_versions_cannot_check(recorder: Recorder) -> None:  # T69
    p = make_plugin(recorder, supported=("0.1.0", "0.2.0", "0.3.0", "0.3.1"))
    err = error_of(run(p, env_for("CHECK"), dict(GOOD_CONF, cniVersion="0.4.0")))
    assert (err["code"], err["msg"]) == (1, "plugin version does not allow CHECK")


def test_del_of_0x_config_works(plugin: skel.Plugin, recorder: Recorder) -> None:
    for version in ("", "0.1.0", "0.2.0", "0.3.0"):
        assert run(plugin, env_for("DEL"), dict(GOOD_CONF, cniVersion=version)).exit_code == 0
    assert len(recorder.calls) == 4


def test_gc_and_status_without_handler_succeed_silently(recorder: Recorder) -> None:
    p = make_plugin(recorder, verbs=("ADD", "DEL", "CHECK"))
    for command in ("GC", "STATUS"):
        out = run(p, env_for(command), GOOD_CONF)
        assert (out.exit_code, out.stdout) == (0, b"")
    err = error_of(run(p, env_for("GC"), dict(GOOD_CONF, cniVersion="9.9.9")))
    assert err["code"] == 1  # the version is still checked
    assert recorder.calls == []


def test_missing_handler_for_other_verbs_is_an_error(recorder: Recorder) -> None:
    p = make_plugin(recorder, verbs=("ADD",))
    err = error_of(run(p, env_for("CHECK"), GOOD_CONF))
    assert err["code"] == 4 and "CHECK" in err["details"]


# -- the pieces, directly ---------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [("", (0, 1, 0)), ("1", (1, 0, 0)), ("0.4", (0, 4, 0)),
                                            ("1.1.0", (1, 1, 0)), ("10.20.30", (10, 20, 30)),
                                            ("+1.0.0", (1, 0, 0))])
def test_parse_version(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["abc", "1.2.3.4", "1..0", "1.0.", ".1", "1.x", "\u0661.0.0", " 1"])
def test_parse_version_errors_are_6(text: str) -> None:
    with pytest.raises(CNIError) as e:
        parse_version(text)
    assert e.value.code == 6


def test_parse_version_messages_follow_go() -> None:
    with pytest.raises(CNIError) as e:
        parse_version("1.2.3.4")
    assert e.value.msg == 'invalid version "1.2.3.4": too many parts'
    with pytest.raises(CNIError) as e:
        parse_version("1.x")
    assert e.value.msg.startswith('failed to convert minor version part "x"')


def test_check_supported_is_exact() -> None:
    check_supported("1.1.0")
    check_supported("")
    with pytest.raises(CNIError):
        check_supported("1.1")
    check_verb_allowed("ADD", "garbage")  # only CHECK/GC/STATUS are gated


def test_decode_config_and_version_helpers() -> None:
    assert decode_config(b'  {"name": "n", "k": [1, {"x": null}]}\n') == {"name": "n", "k": [1, {"x": None}]}
    with pytest.raises(CNIError) as e:
        decode_config(b"null")
    assert e.value.code == 7
    assert config_version({}) == "" and config_version({"cniVersion": None}) == ""
    assert config_version({"cniVersion": "0.4.0"}) == "0.4.0"
    with pytest.raises(CNIError) as e:
        config_version({"cniVersion": 1})
    assert e.value.code == 6
