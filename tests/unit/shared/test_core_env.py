"""Environment validation through skel.run (spec §1.2-1.4, tests T08-T29)."""
from __future__ import annotations

import json

import pytest

from shared import skel
from shared.request import ENV_ORDER, parse_env, validate_container_id, validate_ifname
from shared.errors import CNIError
from tests.support.core_plugin import GOOD_CONF, Recorder, env_for, error_of, make_plugin, run


def test_missing_command_with_about_prints_help_on_stderr(plugin: skel.Plugin, recorder: Recorder) -> None:
    out = run(plugin, env_for("", CNI_COMMAND=None))
    assert (out.exit_code, out.stdout) == (0, b"")
    assert out.stderr.startswith("fake plugin v0\n")
    assert "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0" in out.stderr
    assert recorder.calls == []


def test_missing_command_without_about_is_error_4(recorder: Recorder) -> None:
    err = error_of(run(make_plugin(recorder, about=""), env_for("", CNI_COMMAND="")))
    assert err["code"] == 4
    assert err["msg"] == "required env variables [CNI_COMMAND] missing"


@pytest.mark.parametrize("command", ["BOGUS", "add", "Add", "VERSION ", "version"])
def test_unknown_command_is_4(plugin: skel.Plugin, command: str) -> None:
    err = error_of(run(plugin, env_for(command)))
    assert err == {"cniVersion": "1.1.0", "code": 4, "msg": f"unknown CNI_COMMAND: {command}"}


@pytest.mark.parametrize("missing, expected", [
    (("CNI_CONTAINERID",), "[CNI_CONTAINERID]"),
    (("CNI_NETNS",), "[CNI_NETNS]"),
    (("CNI_IFNAME",), "[CNI_IFNAME]"),
    (("CNI_NETNS", "CNI_IFNAME"), "[CNI_NETNS,CNI_IFNAME]"),
    (("CNI_IFNAME", "CNI_CONTAINERID", "CNI_NETNS"), "[CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME]"),
])
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_add_missing_variables_listed_together_in_fixed_order(plugin: skel.Plugin, recorder: Recorder,
                                                              missing: tuple[str, ...], expected: str,
                                                              how: str) -> None:
    env = env_for("ADD", **{m: (None if how == "unset" else "") for m in missing})
    err = error_of(run(plugin, env))
    assert (err["code"], err["msg"]) == (4, f"required env variables {expected} missing")
    assert recorder.calls == []


def test_env_errors_come_before_stdin_is_read(plugin: skel.Plugin) -> None:
    def read() -> bytes:
        raise AssertionError("stdin must not be read when the environment is bad")
    out = skel.run(plugin, env_for("ADD", CNI_IFNAME=None), read)
    assert error_of(out)["code"] == 4


def test_cni_path_is_optional_except_for_gc(plugin: skel.Plugin, recorder: Recorder) -> None:
    for command in ("ADD", "DEL", "CHECK", "STATUS"):
        out = run(plugin, env_for(command, CNI_PATH=None))
        assert out.exit_code == 0, (command, out)
    assert [c.command for c in recorder.calls] == ["ADD", "DEL", "CHECK", "STATUS"]
    err = error_of(run(plugin, env_for("GC", CNI_PATH=None)))  # T28
    assert (err["code"], err["msg"]) == (4, "required env variables [CNI_PATH] missing")


def test_del_does_not_need_netns(plugin: skel.Plugin, recorder: Recorder) -> None:  # T25
    out = run(plugin, env_for("DEL", CNI_NETNS=None))
    assert (out.exit_code, out.stdout) == (0, b"")
    assert recorder.calls[0].netns == ""


@pytest.mark.parametrize("cid", ["-abc", "a/b", "a b", "a%b", "\u00e91", "ab\n", "_x", ".x", "a:b"])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_bad_container_id_is_4(plugin: skel.Plugin, cid: str, command: str) -> None:  # T17, T18, T24
    err = error_of(run(plugin, env_for(command, CNI_CONTAINERID=cid)))
    assert (err["code"], err["msg"], err["details"]) == (4, "invalid characters in containerID", cid)


@pytest.mark.parametrize("cid", ["a", "A_b.c-d", "0" * 64, "9abc-def_01.x"])
def test_good_container_ids_accepted(plugin: skel.Plugin, recorder: Recorder, cid: str) -> None:  # T19
    assert run(plugin, env_for("ADD", CNI_CONTAINERID=cid)).exit_code == 0
    assert recorder.calls[-1].container_id == cid


@pytest.mark.parametrize("ifname, msg", [
    ("a" * 16, "interface name is too long"),
    ("\u00e9" * 8, "interface name is too long"),  # 16 bytes in UTF-8 (T21)
    (".", "interface name is . or .."),
    ("..", "interface name is . or .."),
    ("a/b", "interface name contains / or : or whitespace characters"),
    ("a:b", "interface name contains / or : or whitespace characters"),
    ("a b", "interface name contains / or : or whitespace characters"),
    ("a\tb", "interface name contains / or : or whitespace characters"),
    ("a\u00a0b", "interface name contains / or : or whitespace characters"),
    ("a\u3000", "interface name contains / or : or whitespace characters"),
])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_bad_ifname_is_4(plugin: skel.Plugin, ifname: str, msg: str, command: str) -> None:  # T20-T24
    err = error_of(run(plugin, env_for(command, CNI_IFNAME=ifname)))
    assert (err["code"], err["msg"]) == (4, msg)


def test_ifname_length_counts_bytes_and_allows_15(plugin: skel.Plugin) -> None:
    assert run(plugin, env_for("ADD", CNI_IFNAME="a" * 15)).exit_code == 0
    assert run(plugin, env_for("ADD", CNI_IFNAME="\u00e9" * 7 + "a")).exit_code == 0  # 15 bytes
    too_long = error_of(run(plugin, env_for("ADD", CNI_IFNAME="a" * 16)))
    assert too_long["details"] == "interface name should be less than 16 characters"


def test_python_only_whitespace_is_not_go_whitespace() -> None:
    validate_ifname("a\x1cb")  # str.isspace() is True for \x1c; Go's unicode.IsSpace is not


def test_validation_error_returns_before_missing_list(plugin: skel.Plugin) -> None:
    """The reference returns a validation failure at once, missing names only after the loop."""
    err = error_of(run(plugin, env_for("ADD", CNI_NETNS=None, CNI_IFNAME="..")))
    assert err["msg"] == "interface name is . or .."


def test_garbage_attachment_vars_are_ignored_for_gc_and_status(plugin: skel.Plugin,
                                                               recorder: Recorder) -> None:  # T26, T27, T29
    conf = dict(GOOD_CONF, cniVersion="1.1.0")
    for command in ("GC", "STATUS"):
        out = run(plugin, {"CNI_COMMAND": command, "CNI_PATH": "/x", "CNI_CONTAINERID": "%%bad",
                           "CNI_IFNAME": ".."}, conf)
        assert (out.exit_code, out.stdout) == (0, b""), out
    only = run(plugin, {"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, conf)
    assert only.exit_code == 0


def test_version_needs_nothing_and_ignores_stdin(plugin: skel.Plugin, recorder: Recorder) -> None:  # T01-T04
    for stdin in (b'{"cniVersion":"1.1.0"}', b"", b"garbage", b'{"cniVersion":"0.4.0"}'):
        def read() -> bytes:
            raise AssertionError("VERSION never reads stdin")
        out = skel.run(plugin, {"CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "%%", "CNI_IFNAME": ".."}, read)
        assert out.exit_code == 0
        assert out.stdout == (b'{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0",'
                              b'"0.3.1","0.4.0","1.0.0","1.1.0"]}\n')
    assert recorder.calls == []


def test_version_lists_only_what_the_plugin_supports(recorder: Recorder) -> None:
    p = make_plugin(recorder, supported=("0.4.0", "1.0.0"))
    out = run(p, {"CNI_COMMAND": "VERSION"})
    assert json.loads(out.stdout) == {"cniVersion": "1.1.0", "supportedVersions": ["0.4.0", "1.0.0"]}


def test_request_carries_the_environment(plugin: skel.Plugin, recorder: Recorder) -> None:
    env = env_for("ADD", CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=x", CNI_PATH="/a::/b", TRACEPARENT="t")
    run(plugin, env)
    req = recorder.calls[0]
    assert (req.command, req.container_id, req.netns, req.ifname) == ("ADD", "ctr1", env["CNI_NETNS"], "eth0")
    assert req.args == "IgnoreUnknown=1;K8S_POD_NAME=x"
    assert req.path == ("/a", "/b")
    assert req.env == env and req.stdin == json.dumps(GOOD_CONF).encode()


def test_parse_env_direct() -> None:
    command, values = parse_env(env_for("DEL", CNI_NETNS=None))
    assert command == "DEL" and list(values) == list(ENV_ORDER) and values["CNI_NETNS"] == ""


def test_empty_container_id_via_validator_is_3() -> None:
    with pytest.raises(CNIError) as e:
        validate_container_id("")
    assert (e.value.code, e.value.msg) == (3, "missing containerID")
