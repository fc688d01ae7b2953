"""`pycni add|check|del|gc|status` end to end through shared.cli, with fake plugins."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conformance.fakeplugin import FakePlugins, fake_plugins
from conformance.runtime_cli import default_container_id, parse_args_text
from shared import cli
from shared.errors import CNIError

RESULT = {"cniVersion": "1.1.0", "ips": [{"address": "10.9.0.2/24", "gateway": "10.9.0.1"}]}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[FakePlugins, list[str]]:
    fakes = fake_plugins(tmp_path / "bin")
    fakes.make("main", ADD={"result": RESULT})
    fakes.make("meta", ADD={"passthrough": True})
    conf = tmp_path / "net.d"
    conf.mkdir()
    (conf / "10-n.conflist").write_text(json.dumps({
        "cniVersion": "1.1.0", "name": "n",
        "plugins": [{"type": "main", "capabilities": {"ips": True}}, {"type": "meta"}]}))
    opts = ["--conf-dir", str(conf), "--plugin-dir", str(fakes.dir), "--cache-dir", str(tmp_path / "cache")]
    return fakes, opts


def test_add_prints_result_then_check_and_del(setup, capsys, tmp_path):
    fakes, opts = setup
    assert cli.main(["add", "n", "/run/netns/c1", "--container-id", "c1", "--args", "IgnoreUnknown=1;A=b",
                     "--cap", 'ips=["10.9.0.9/24"]', *opts]) == 0
    assert json.loads(capsys.readouterr().out) == RESULT
    add = fakes.calls("ADD")[0]
    assert add["env"]["CNI_ARGS"] == "IgnoreUnknown=1;A=b" and add["env"]["CNI_CONTAINERID"] == "c1"
    assert add["config"]["runtimeConfig"] == {"ips": ["10.9.0.9/24"]}
    assert (tmp_path / "cache/results/n-c1-eth0").exists()
    assert cli.main(["check", "n", "/run/netns/c1", "--container-id", "c1", *opts]) == 0
    assert cli.main(["del", "n", "/run/netns/c1", "--container-id", "c1", *opts]) == 0
    assert capsys.readouterr().out == ""
    assert [c["command"] for c in fakes.calls()] == ["ADD", "ADD", "CHECK", "CHECK", "DEL", "DEL"]
    assert not (tmp_path / "cache/results/n-c1-eth0").exists()


def test_default_container_id_is_cnitools_netns_hash(setup, capsys):
    fakes, opts = setup
    assert cli.main(["add", "n", "/run/netns/c2", *opts]) == 0
    cid = fakes.calls("ADD")[0]["env"]["CNI_CONTAINERID"]
    assert cid == "cnitool-" + hashlib.sha512(b"/run/netns/c2").hexdigest()[:20] == default_container_id("/run/netns/c2")


def test_plugin_error_is_printed_as_json_and_exit_1(setup, capsys):
    fakes, opts = setup
    fakes.behave("main", ADD={"exit": 1, "stdout": {"code": 7, "msg": "bad range", "details": "x"}})
    assert cli.main(["add", "n", "/run/netns/c1", *opts]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"code": 7, "msg": "bad range", "details": "x"}
    assert 'plugin type="main" failed (add)' in captured.err


def test_unknown_network_is_an_error(setup, capsys):
    _, opts = setup
    assert cli.main(["status", "nope", *opts]) == 1
    assert json.loads(capsys.readouterr().out)["code"] == 7


def test_gc_deletes_attachments_not_listed_valid(setup, capsys):
    fakes, opts = setup
    cli.main(["add", "n", "/run/netns/a", "--container-id", "a", *opts])
    cli.main(["add", "n", "/run/netns/b", "--container-id", "b", *opts])
    fakes.clear()
    assert cli.main(["gc", "n", "--valid", "a/eth0", *opts]) == 0
    assert [(c["command"], c["env"]["CNI_CONTAINERID"]) for c in fakes.calls()] == [
        ("DEL", "b"), ("DEL", "b"), ("GC", ""), ("GC", "")]
    assert fakes.calls("GC")[0]["config"]["cni.dev/valid-attachments"] == [{"containerID": "a", "ifname": "eth0"}]


def test_status_error_code_relayed(setup, capsys):
    fakes, opts = setup
    fakes.behave("meta", STATUS={"exit": 1, "stdout": {"code": 51, "msg": "degraded"}})
    assert cli.main(["status", "n", *opts]) == 1
    assert json.loads(capsys.readouterr().out) == {"code": 51, "msg": "degraded"}
    assert [c["plugin"] for c in fakes.calls("STATUS")] == ["main", "meta"]


def test_conf_file_and_verbose_timing(setup, capsys, tmp_path):
    fakes, opts = setup
    conf = tmp_path / "net.d/10-n.conflist"
    rest = opts[2:]
    assert cli.main(["add", "n", "/run/netns/v", "--conf", str(conf), "-v", *rest]) == 0
    err = capsys.readouterr().err
    assert "ADD main: exit 0 in" in err and "ADD n (cniVersion 1.1.0) took" in err


@pytest.mark.parametrize("text", ["a", "a=", "=b", "a=b;;c=d"])
def test_args_pairs_must_be_non_empty(text):
    with pytest.raises(CNIError):
        parse_args_text(text)


def test_args_pairs():
    assert parse_args_text("IgnoreUnknown=1;IP=10.0.0.2") == (("IgnoreUnknown", "1"), ("IP", "10.0.0.2"))


def test_add_validate_probes_versions_first(setup, capsys):
    fakes, opts = setup
    assert cli.main(["add", "n", "/run/netns/v", "--validate", "-v", *opts]) == 0
    assert [(c["command"], c["plugin"]) for c in fakes.calls()] == [
        ("VERSION", "main"), ("VERSION", "meta"), ("ADD", "main"), ("ADD", "meta")]
    err = capsys.readouterr().err
    assert "VERSION main: exit 0" in err and "VALIDATE n" in err and "ADD n (cniVersion 1.1.0)" in err


def test_add_validate_refuses_unsupported_version_and_runs_no_add(setup, capsys):
    fakes, opts = setup
    fakes.behave("meta", VERSION={"versions": ["0.4.0", "1.0.0"]})
    assert cli.main(["add", "n", "/run/netns/v", "--validate", *opts]) == 1
    assert json.loads(capsys.readouterr().out)["code"] == 1
    assert fakes.calls("ADD") == []
