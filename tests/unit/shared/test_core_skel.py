"""The process contract of skel.run/dispatch/main (spec §3): one JSON document or nothing on stdout."""
from __future__ import annotations

import io
import json
import os
import sys
import pytest

from shared import skel
from shared.errors import CNIError, ErrorCode
from shared.request import Request
from shared.schema import result_problems, schema_errors
from tests.support.core_plugin import GOOD_CONF, Recorder, env_for, error_of, make_plugin, raiser, run


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_prints_the_result_in_the_config_version(plugin: skel.Plugin, version: str) -> None:
    out = run(plugin, env_for("ADD"), dict(GOOD_CONF, cniVersion=version))
    assert out.exit_code == 0 and out.stderr == ""
    doc = json.loads(out.stdout)  # exactly one document: json.loads rejects trailing data
    assert doc["cniVersion"] == version
    assert result_problems(doc, version) == []


@pytest.mark.parametrize("command", ["DEL", "CHECK", "GC", "STATUS"])
def test_other_verbs_print_nothing(plugin: skel.Plugin, recorder: Recorder, command: str) -> None:
    out = run(plugin, env_for(command), GOOD_CONF)
    assert (out.exit_code, out.stdout, out.stderr) == (0, b"", "")
    assert recorder.calls[0].command == command


def test_add_returning_none_prints_nothing(recorder: Recorder) -> None:
    p = skel.Plugin("x", {"ADD": lambda req: None})
    out = run(p, env_for("ADD"), GOOD_CONF)
    assert (out.exit_code, out.stdout) == (0, b"")


@pytest.mark.parametrize("code", [ErrorCode.TRY_AGAIN_LATER, ErrorCode.NOT_AVAILABLE, 51, 100, 3])
def test_handler_cni_error_reaches_stdout_unchanged(recorder: Recorder, code: int) -> None:
    recorder.raise_ = CNIError(code, "it broke", "because")
    out = run(make_plugin(recorder), env_for("ADD"), dict(GOOD_CONF, cniVersion="0.4.0"))
    assert error_of(out) == {"cniVersion": "0.4.0", "code": int(code), "msg": "it broke", "details": "because"}
    assert out.stderr == ""


def test_error_without_details_omits_the_key(recorder: Recorder) -> None:
    recorder.raise_ = CNIError(7, "bad")
    assert "details" not in error_of(run(make_plugin(recorder), env_for("DEL"), GOOD_CONF))


def test_unexpected_exception_is_999_with_traceback_on_stderr(recorder: Recorder) -> None:
    recorder.raise_ = KeyError("boom")
    out = run(make_plugin(recorder), env_for("ADD"), GOOD_CONF)
    err = error_of(out)
    assert err["code"] == 999 and "KeyError" in err["msg"]
    assert "Traceback" in out.stderr and b"Traceback" not in out.stdout


def test_stdin_read_failure_is_5(plugin: skel.Plugin) -> None:
    err = error_of(skel.run(plugin, env_for("ADD"), raiser(OSError(5, "Input/output error"))))
    assert err["code"] == 5 and err["msg"].startswith("error reading from stdin: ")


def test_error_json_shape_matches_schema(plugin: skel.Plugin) -> None:
    out = run(plugin, env_for("ADD"), stdin=b"{")
    assert out.stdout.endswith(b"}\n") and out.stdout.count(b"\n") > 1  # indented, like the reference
    assert schema_errors(json.loads(out.stdout), "error") == []


@pytest.mark.parametrize("version, expected", [("0.2.0", "0.2.0"), ("", "0.1.0"), ("7.7.7", "1.1.0"),
                                               ("1.0.0", "1.0.0")])
def test_error_cni_version(recorder: Recorder, version: str, expected: str) -> None:
    recorder.raise_ = CNIError(11, "later")
    err = error_of(run(make_plugin(recorder), env_for("DEL"), dict(GOOD_CONF, cniVersion=version)))
    assert err["cniVersion"] == expected


def test_result_without_ips_cannot_be_printed_as_0_2_0(recorder: Recorder) -> None:  # T112
    recorder.result.ips = []
    err = error_of(run(make_plugin(recorder), env_for("ADD"), dict(GOOD_CONF, cniVersion="0.2.0")))
    assert (err["code"], err["msg"]) == (1, "cannot convert: no valid IP addresses")
    assert err["cniVersion"] == "0.2.0"


def test_own_netns_is_refused_before_the_handler_runs(plugin: skel.Plugin, recorder: Recorder) -> None:
    for command in ("ADD", "DEL"):
        err = error_of(run(plugin, env_for(command, CNI_NETNS="/proc/self/ns/net")))
        assert (err["code"], err["msg"]) == (8, "plugin's netns and netns from CNI_NETNS should not be the same")
    assert recorder.calls == []
    for override in ("1", "true", "TRUE"):
        assert run(plugin, env_for("ADD", CNI_NETNS="/proc/self/ns/net", CNI_NETNS_OVERRIDE=override)).exit_code == 0
    assert run(plugin, env_for("CHECK", CNI_NETNS="/proc/self/ns/net")).exit_code == 0  # ADD/DEL only
    assert run(plugin, env_for("DEL", CNI_NETNS="/no/such/netns")).exit_code == 0  # vanished: fine


def test_dispatch_in_process(plugin: skel.Plugin, recorder: Recorder) -> None:
    req = Request(command="ADD", container_id="c", ifname="eth0", config=dict(GOOD_CONF))
    assert skel.dispatch(plugin, req) is recorder.result
    with pytest.raises(CNIError) as e:
        skel.dispatch(plugin, Request(command="VERSION", config=dict(GOOD_CONF)))
    assert e.value.code == 4


def test_string_stdin_is_accepted(plugin: skel.Plugin, recorder: Recorder) -> None:
    out = skel.run(plugin, env_for("ADD"), lambda: json.dumps(GOOD_CONF))  # type: ignore[arg-type,return-value]
    assert out.exit_code == 0 and recorder.calls[0].stdin == json.dumps(GOOD_CONF).encode()


class _Stdio:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_main_writes_stdout_stderr_and_returns_status(monkeypatch: pytest.MonkeyPatch,
                                                      capfdbinary: pytest.CaptureFixture[bytes],
                                                      plugin: skel.Plugin) -> None:
    monkeypatch.setattr(os, "environ", env_for("ADD"))
    monkeypatch.setattr(sys, "stdin", _Stdio(json.dumps(GOOD_CONF).encode()))
    assert skel.main(plugin) == 0
    captured = capfdbinary.readouterr()
    assert json.loads(captured.out)["cniVersion"] == "1.1.0"
    monkeypatch.setattr(os, "environ", {})
    assert skel.main(plugin) == 0
    assert b"fake plugin v0" in capfdbinary.readouterr().err
    monkeypatch.setattr(os, "environ", env_for("NOPE"))
    monkeypatch.setattr(sys, "stdin", _Stdio(json.dumps(GOOD_CONF).encode()))
    assert skel.main(plugin) == 1
    assert json.loads(capfdbinary.readouterr().out)["code"] == 4


def test_error_version_helper() -> None:
    assert skel.error_version(None) == "1.1.0"
    assert skel.error_version("") == "0.1.0"
    assert skel.error_version("", ("1.1.0",)) == "1.1.0"
    assert skel.error_version("0.4.0") == "0.4.0"
