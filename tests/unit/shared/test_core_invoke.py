"""Delegation with fake delegate executables in tmp dirs (spec §7, P9; tests T120-T122 style)."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from shared import invoke, skel
from shared.errors import CNIError
from shared.request import Request, build_request
from tests.support.core_plugin import env_for, error_of, run

RECORDER = r'''
import json, os, sys
data = sys.stdin.buffer.read()
rec = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls")
os.makedirs(rec, exist_ok=True)
n = len(os.listdir(rec)) // 2
open(os.path.join(rec, f"{n}.stdin"), "wb").write(data)
with open(os.path.join(rec, f"{n}.env"), "w") as f:
    json.dump(dict(os.environ), f)
'''


def write_delegate(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    """A Python delegate that records its stdin and env next to itself, then runs `body`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!{sys.executable} -S\n{RECORDER}\n{body}\n")
    path.chmod(mode)
    return path


def calls(directory: Path) -> list[tuple[bytes, dict[str, str]]]:
    rec = directory / "calls"
    n = len(list(rec.iterdir())) // 2 if rec.exists() else 0
    return [((rec / f"{i}.stdin").read_bytes(), json.loads((rec / f"{i}.env").read_text())) for i in range(n)]


IPAM_OK_040 = '''print(json.dumps({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.9.0.2/24",
                  "gateway": "10.9.0.1"}], "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}))'''


def request(tmp_path: Path, config: dict[str, Any], command: str = "ADD", **env: str) -> Request:
    stdin = (json.dumps(config, indent=1) + "\n\n").encode()  # odd spacing: bytes must pass unchanged
    base = env_for(command, CNI_PATH=f"{tmp_path / 'empty'}:{tmp_path / 'bin'}", CNI_ARGS="IgnoreUnknown=1;A=b",
                   EXTRA_VAR="kept")
    base.update(env)
    return build_request(base, stdin)


CONF = {"cniVersion": "0.4.0", "name": "net", "type": "bridge", "ipam": {"type": "fake-ipam"}}


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK", "GC", "STATUS"])
def test_delegate_gets_identical_stdin_and_env_but_command(tmp_path: Path, command: str) -> None:
    bindir = tmp_path / "bin"
    write_delegate(bindir, "fake-ipam", IPAM_OK_040 if command == "ADD" else "")
    req = request(tmp_path, CONF, "ADD")
    if command == "ADD":
        invoke.delegate_add("fake-ipam", req)
    else:
        invoke.delegate("fake-ipam", command, req)
    [(stdin, env)] = calls(bindir)
    assert stdin == req.stdin
    expected = dict(req.env, CNI_COMMAND=command)
    assert {k: v for k, v in env.items() if k != "LC_CTYPE"} == expected  # python may add LC_CTYPE


def test_result_without_version_takes_the_config_version(tmp_path: Path) -> None:  # T121, cni#895
    bindir = tmp_path / "bin"
    write_delegate(bindir, "fake-ipam", 'print(json.dumps({"ips": [{"version": "4", "address": "10.9.0.2/24"}]}))')
    r = invoke.delegate_add("fake-ipam", request(tmp_path, CONF))
    assert [str(ip.address) for ip in r.ips] == ["10.9.0.2/24"]
    write_delegate(bindir, "legacy", 'print(json.dumps({"ip4": {"ip": "10.9.0.3/24"}}))')
    r = invoke.delegate_add("legacy", request(tmp_path, dict(CONF, cniVersion="0.2.0")))
    assert [str(ip.address) for ip in r.ips] == ["10.9.0.3/24"]


def test_result_in_another_version_is_honoured(tmp_path: Path) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", IPAM_OK_040)
    r = invoke.delegate_add("fake-ipam", request(tmp_path, dict(CONF, cniVersion="1.1.0")))
    assert r.ips[0].family == 4 and str(r.ips[0].gateway) == "10.9.0.1" and str(r.routes[0].dst) == "0.0.0.0/0"


def test_null_result_is_empty(tmp_path: Path) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", 'print("null")')
    r = invoke.delegate_add("fake-ipam", request(tmp_path, dict(CONF, cniVersion="1.1.0")))
    assert r.ips == [] and r.interfaces == []


def test_stderr_is_relayed(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", f'sys.stderr.write("ipam log line\\n")\n{IPAM_OK_040}')
    invoke.delegate_add("fake-ipam", request(tmp_path, CONF))
    assert "ipam log line" in capfd.readouterr().err


@pytest.mark.parametrize("error", [
    {"code": 11, "msg": "busy, try later", "details": "lock held"},
    {"cniVersion": "1.1.0", "code": 7, "msg": "bad range"},
    {"code": 50, "msg": "exhausted"},
    {"code": 999, "msg": "internal"},
    {"code": 123, "msg": "plugin specific", "details": "x"},
])
def test_error_json_passes_through_unchanged(tmp_path: Path, error: dict[str, Any]) -> None:  # T122
    write_delegate(tmp_path / "bin", "fake-ipam", f"print(json.dumps({error!r}, indent=4)); sys.exit(1)")
    with pytest.raises(CNIError) as e:
        invoke.delegate_add("fake-ipam", request(tmp_path, CONF))
    assert (e.value.code, e.value.msg, e.value.details) == (error["code"], error["msg"], error.get("details", ""))


def test_error_reaches_the_runtime_through_skel(tmp_path: Path) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam",
                   'print(json.dumps({"code": 11, "msg": "try again", "details": "d"})); sys.exit(1)')
    plugin = skel.Plugin("main", {"ADD": lambda req: invoke.delegate_add(req.config["ipam"]["type"], req)})
    env = env_for("ADD", CNI_PATH=str(tmp_path / "bin"))
    err = error_of(run(plugin, env, CONF))
    assert err == {"cniVersion": "0.4.0", "code": 11, "msg": "try again", "details": "d"}


def test_success_through_skel_converts_to_the_config_version(tmp_path: Path) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", IPAM_OK_040)
    plugin = skel.Plugin("main", {"ADD": lambda req: invoke.delegate_add(req.config["ipam"]["type"], req)})
    out = run(plugin, env_for("ADD", CNI_PATH=str(tmp_path / "bin")), dict(CONF, cniVersion="1.0.0"))
    assert json.loads(out.stdout) == {"cniVersion": "1.0.0", "ips": [{"address": "10.9.0.2/24", "gateway": "10.9.0.1"}],
                                      "routes": [{"dst": "0.0.0.0/0"}]}


def test_non_json_failure_output(tmp_path: Path) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", 'print("panic: runtime error"); sys.exit(2)')
    with pytest.raises(CNIError) as e:
        invoke.delegate("fake-ipam", "DEL", request(tmp_path, CONF))
    assert e.value.code == 999 and "error parsing its diagnostic message" in e.value.msg
    assert "panic: runtime error" in e.value.details


def test_non_json_success_output_on_add_is_6(tmp_path: Path) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", 'print("ok!")')
    with pytest.raises(CNIError) as e:
        invoke.delegate_add("fake-ipam", request(tmp_path, CONF))
    assert e.value.code == 6
    write_delegate(tmp_path / "bin", "empty", "")
    with pytest.raises(CNIError) as e:
        invoke.delegate_add("empty", request(tmp_path, CONF))
    assert e.value.code == 6


def test_invalid_result_on_add_is_6(tmp_path: Path) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", 'print(json.dumps({"cniVersion": "1.1.0", "ips": [{"address": "x"}]}))')
    with pytest.raises(CNIError) as e:
        invoke.delegate_add("fake-ipam", request(tmp_path, CONF))
    assert e.value.code == 6


def test_empty_failure_output_with_stderr(tmp_path: Path) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", 'sys.stderr.write("cannot open lock\\n"); sys.exit(3)')
    with pytest.raises(CNIError) as e:
        invoke.delegate("fake-ipam", "DEL", request(tmp_path, CONF))
    assert e.value.msg == 'netplugin fake-ipam failed: "cannot open lock"' and e.value.details == "exit status 3"
    write_delegate(tmp_path / "bin", "mute", "sys.exit(4)")
    with pytest.raises(CNIError) as e:
        invoke.delegate("mute", "DEL", request(tmp_path, CONF))
    assert e.value.msg == "netplugin mute failed with no error message" and e.value.details == "exit status 4"


def test_timeout_is_11(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    slow = bindir / "slow"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(CNIError) as e:
        invoke.exec_plugin("slow", "ADD", request(tmp_path, CONF), timeout=0.3)
    assert e.value.code == 11 and "timed out" in e.value.msg


def test_missing_binary_and_path_rules(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "adir").mkdir()  # a directory is not a plugin
    req = request(tmp_path, CONF)
    for name in ("nope", "adir"):
        with pytest.raises(CNIError) as e:
            invoke.delegate_add(name, req)
        assert e.value.code == 7 and e.value.msg.startswith(f'failed to find plugin "{name}" in path')
    with pytest.raises(CNIError) as e:
        invoke.delegate_add("fake-ipam", request(tmp_path, CONF, CNI_PATH=""))
    assert (e.value.code, e.value.msg) == (4, "required env variables [CNI_PATH] missing")


@pytest.mark.parametrize("name", ["../bin/fake-ipam", "/bin/sh", "a/b", "..", ".", "x..y", ""])
def test_bad_plugin_names_are_rejected_before_any_lookup(tmp_path: Path, name: str) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", IPAM_OK_040)
    with pytest.raises(CNIError) as e:
        invoke.delegate_add(name, request(tmp_path, CONF))
    assert e.value.code == 7
    assert calls(tmp_path / "bin") == []


def test_first_directory_in_path_wins(tmp_path: Path) -> None:
    write_delegate(tmp_path / "first", "fake-ipam", 'print(json.dumps({"ips": [{"version": "4", "address": "10.0.0.1/8"}]}))')
    write_delegate(tmp_path / "bin", "fake-ipam", IPAM_OK_040)
    req = request(tmp_path, CONF, CNI_PATH=f"{tmp_path / 'first'}:{tmp_path / 'bin'}")
    assert str(invoke.delegate_add("fake-ipam", req).ips[0].address) == "10.0.0.1/8"
    assert invoke.find_in_path("fake-ipam", (str(tmp_path / "nowhere"), str(tmp_path / "bin"))) == \
        str(tmp_path / "bin" / "fake-ipam")


def test_non_executable_delegate_is_5(tmp_path: Path) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", IPAM_OK_040, mode=0o644)
    with pytest.raises(CNIError) as e:
        invoke.delegate_add("fake-ipam", request(tmp_path, CONF))
    assert e.value.code == 5


def test_hand_built_request_supplies_env_and_stdin(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    write_delegate(bindir, "fake-ipam", IPAM_OK_040)
    req = Request(command="ADD", container_id="c9", netns="/x", ifname="eth3", args="A=1",
                  path=(str(bindir),), config=dict(CONF))
    invoke.delegate_add("fake-ipam", req)
    [(stdin, env)] = calls(bindir)
    assert json.loads(stdin) == CONF
    assert {k: env[k] for k in ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS",
                                "CNI_PATH")} == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c9", "CNI_NETNS": "/x",
                                                 "CNI_IFNAME": "eth3", "CNI_ARGS": "A=1", "CNI_PATH": str(bindir)}


def test_in_process_hook_is_used_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_delegate(tmp_path / "bin", "fake-ipam", "raise SystemExit('must not be executed')")
    seen: list[tuple[str, dict[str, str], bytes]] = []

    def hook(binary: str, env: dict[str, str], stdin: bytes) -> skel.Outcome:
        seen.append((binary, env, stdin))
        return skel.Outcome(b'{"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.5.0.2/24"}]}', 0, "")

    monkeypatch.setattr(invoke, "in_process", hook)
    req = request(tmp_path, CONF)
    assert str(invoke.delegate_add("fake-ipam", req).ips[0].address) == "10.5.0.2/24"
    assert seen[0][0] == str(tmp_path / "bin" / "fake-ipam") and seen[0][2] == req.stdin
    assert seen[0][1]["CNI_COMMAND"] == "ADD" and calls(tmp_path / "bin") == []
    assert os.stat(seen[0][0]).st_mode & stat.S_IXUSR
