"""The graders the cases share: strict stdout parsing, error shape, result rules per version, leaks,
and the CLI's argument handling (no namespaces needed)."""
from __future__ import annotations

import pytest

from conformance.cases._common import Run, leaks, parse_error, result_problems, structural_problems
from conformance.harness_cli import main


def _run(stdout: bytes, rc: int = 0) -> Run:
    return Run("ADD", rc, stdout, b"", 0.01)


def test_document_is_strict() -> None:
    assert _run(b'  {"a": 1}\n').document() == {"a": 1}
    with pytest.raises(ValueError, match="empty"):
        _run(b"  \n").document()
    with pytest.raises(ValueError, match="trailing"):
        _run(b'{"a": 1}{"b": 2}').document()
    with pytest.raises(ValueError):
        _run(b"log line\n{}").document()


@pytest.mark.parametrize("stdout,problem", [
    (b'{"code": 7, "msg": "bad"}', ""),
    (b'{"cniVersion": "1.1.0", "code": 4, "msg": "m", "details": "d"}', ""),
    (b"", "no error JSON"),
    (b"[1]", "not an object"),
    (b'{"code": "7", "msg": "m"}', "non-negative integer"),
    (b'{"code": -1, "msg": "m"}', "non-negative integer"),
    (b'{"code": true, "msg": "m"}', "non-negative integer"),
    (b'{"code": 7}', "'msg' must be a string"),
    (b'{"code": 7, "msg": "m", "details": 3}', "'details' must be a string"),
])
def test_parse_error(stdout: bytes, problem: str) -> None:
    _, got = parse_error(_run(stdout, rc=1))
    assert (problem in got) if problem else got == ""


def test_parse_error_on_success() -> None:
    assert parse_error(_run(b"", rc=0)) == (None, "exited 0")


GOOD = {
    "1.1.0": {"cniVersion": "1.1.0", "interfaces": [{"name": "br0", "mac": "aa:bb:cc:dd:ee:ff"},
                                                     {"name": "eth0", "sandbox": "/run/netns/x", "mtu": 1500}],
              "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 1}],
              "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "priority": 5}],
              "dns": {"nameservers": ["1.1.1.1"]}},
    "1.0.0": {"cniVersion": "1.0.0", "ips": [{"address": "fd00::2/64", "gateway": "fd00::1"}]},
    "0.4.0": {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.2/24"}], "dns": {}},
    "0.3.0": {"cniVersion": "0.3.0", "ips": [{"version": "6", "address": "fd00::2/64"}]},
    "0.2.0": {"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.2/24", "gateway": "10.1.0.1",
                                             "routes": [{"dst": "0.0.0.0/0"}]}, "dns": {}},
    "": {"ip4": {"ip": "10.1.0.2/24"}},
}


@pytest.mark.parametrize("version", sorted(GOOD))
def test_good_results_pass_the_structural_rules(version: str) -> None:
    assert structural_problems(GOOD[version], version) == []


@pytest.mark.parametrize("version,doc,needle", [
    ("1.1.0", {"cniVersion": "1.0.0", "ips": []}, "must equal the config"),
    ("1.1.0", {"cniVersion": "1.1.0", "ips": [{"version": "4", "address": "10.1.0.2/24"}]}, "removed in 1.0.0"),
    ("1.1.0", {"cniVersion": "1.1.0", "ips": [{"address": "10.1.0.2"}]}, "not a CIDR"),
    ("1.1.0", {"cniVersion": "1.1.0", "ips": [{"address": "10.1.0.2/24", "gateway": "fd00::1"}]}, "family"),
    ("1.1.0", {"cniVersion": "1.1.0", "ips": [{"address": "10.1.0.2/24", "interface": 3}]}, "not an index"),
    ("1.1.0", {"cniVersion": "1.1.0", "ip4": {"ip": "10.1.0.2/24"}}, "'ip4' does not exist"),
    ("1.1.0", {"cniVersion": "1.1.0", "routes": [{"dst": "nope"}]}, "routes[0]"),
    ("1.1.0", {"cniVersion": "1.1.0", "dns": {"nameservers": "1.1.1.1"}}, "dns.nameservers"),
    ("0.4.0", {"cniVersion": "0.4.0", "ips": [{"address": "10.1.0.2/24"}]}, "must be \"4\" or \"6\""),
    ("0.4.0", {"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.1.0.2/24"}]}, "contradicts"),
    ("0.2.0", {"cniVersion": "0.2.0", "ips": []}, "does not exist in 0.2.0"),
    ("0.2.0", {"cniVersion": "0.2.0", "ip4": {"ip": "fd00::1/64"}}, "is not IPv4"),
])
def test_bad_results_are_named(version: str, doc: dict, needle: str) -> None:
    problems = structural_problems(doc, version)
    assert any(needle in p for p in problems), problems


def test_result_problems_include_structural_ones() -> None:
    assert result_problems(GOOD["1.1.0"], "1.1.0") == []
    assert result_problems({"cniVersion": "1.1.0", "ips": [{"address": "x"}]}, "1.1.0")


def test_leaks_ignore_per_network_scaffolding() -> None:
    before = {"links": {"lo", "br0"}, "rules": {"-A X"}, "files": set()}
    after = {"links": {"lo", "br0", "veth1234"}, "rules": {"-A X", "table inet foo {", "-A POSTROUTING -s 10.1.0.2"},
             "files": {"10.1.0.2"}}
    problems = leaks(before, after)
    assert any("veth1234" in p for p in problems)
    assert any("-A POSTROUTING -s 10.1.0.2" in p for p in problems)
    assert not any("table inet foo" in p for p in problems)
    assert any("10.1.0.2" in p and "reservation" in p for p in problems)
    assert leaks(before, dict(before)) == []


def test_cli_list_and_usage_errors(capsys) -> None:
    assert main(["conformance", "--plugin-dir", "/nonexistent", "--list", "--suite", "ipam"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed and all(" ipam " in line for line in listed)
    assert main(["conformance", "--plugin-dir", "/x", "--case", "NOPE"]) == 2
    assert "unknown case id" in capsys.readouterr().err
    assert main(["conformance", "--plugin-dir", "/x", "-k", "zzzz-nothing"]) == 2
    assert main(["conformance"]) == 2  # --plugin-dir is required
    assert "--plugin-dir is required" in capsys.readouterr().err


def test_cli_compare_prints_markdown(tmp_path, capsys) -> None:
    import json

    doc = {"groups": {"env": {"passed": 3, "failed": 1, "warned": 0, "skipped": 0}},
           "totals": {"passed": 3, "failed": 1, "warned": 0, "skipped": 0}}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    assert main(["conformance", "--compare", f"ref={tmp_path / 'a.json'}", f"ours={tmp_path / 'a.json'}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| group | ref (pass/fail/warn/skip) | ours (pass/fail/warn/skip) |"
    assert out[2] == "| env | 3 / 1 / 0 / 0 | 3 / 1 / 0 / 0 |"
    assert out[3] == "| **TOTAL** | 3 / 1 / 0 / 0 | 3 / 1 / 0 / 0 |"


def test_plugin_environment_is_clean_plus_pass_env(monkeypatch) -> None:
    from conformance.cases._common import Ctx, Target

    monkeypatch.setenv("LEAKY", "1")
    ctx = Ctx(Target("/bin/dir", pass_env={"PYCNI_SOCKET": "/tmp/s"}), "host-local")
    try:
        env = ctx.env("GC", unset=["CNI_ARGS"])
    finally:
        ctx.close()
    assert env == {"PYCNI_SOCKET": "/tmp/s", "PATH": env["PATH"], "CNI_COMMAND": "GC", "CNI_CONTAINERID": "",
                   "CNI_NETNS": "", "CNI_IFNAME": "", "CNI_PATH": "/bin/dir"}
