"""The conformance engine in-process: registry, runner outcomes, percentiles, reports, CLI plumbing."""
from __future__ import annotations

import io
import json
import math
import xml.etree.ElementTree as ET

import pytest

from conformance import harness
from conformance.harness import (FAIL, PASS, SKIP, WARN, Case, CaseFailed, CaseSkipped, Latency, Registry,
                                 percentile)


class FakeCtx:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _case(id: str, fn, suite: str = "generic", group: str = "g", fix: str = "do it right") -> Case:
    return Case(id, suite, group, f"title {id}", "spec R0", fix, fn)


def _ok(ctx: FakeCtx) -> None:
    pass


def _fail(ctx: FakeCtx) -> None:
    raise CaseFailed("plugin printed garbage")


def _skip(ctx: FakeCtx) -> None:
    raise CaseSkipped("no VLAN filtering")


def _warn(ctx: FakeCtx) -> None:
    ctx.warnings.append("code 999 accepted")


def _boom(ctx: FakeCtx) -> None:
    raise ZeroDivisionError("bug")


# ---------------------------------------------------------------- percentiles

@pytest.mark.parametrize("values,p,expected", [
    ([1.0], 50, 1.0),
    ([1.0], 99, 1.0),
    ([1, 2, 3, 4], 50, 2.5),
    ([1, 2, 3, 4, 5], 50, 3.0),
    ([4, 1, 3, 2, 5], 0, 1.0),
    ([4, 1, 3, 2, 5], 100, 5.0),
    (list(range(1, 101)), 99, 99.01),
    ([10, 20], 25, 12.5),
])
def test_percentile_linear_interpolation(values, p, expected) -> None:
    assert percentile(values, p) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan_and_range_is_checked() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_in_milliseconds() -> None:
    lat = Latency()
    for s in (0.010, 0.020, 0.030, 0.040):
        lat.record("bridge ADD", s)
    lat.record("host-local DEL", 0.005)
    summary = lat.summary()
    assert list(summary) == ["bridge ADD", "host-local DEL"]
    assert summary["bridge ADD"] == {"count": 4, "p50_ms": 25.0, "p99_ms": pytest.approx(39.7),
                                     "max_ms": 40.0}
    assert summary["host-local DEL"]["p50_ms"] == 5.0


# ---------------------------------------------------------------- registry

def test_registry_rejects_duplicates_and_unknown_suites() -> None:
    reg = Registry()
    reg.add(_case("A1", _ok))
    with pytest.raises(ValueError, match="duplicate"):
        reg.add(_case("A1", _ok))
    with pytest.raises(ValueError, match="unknown suite"):
        reg.add(_case("A2", _ok, suite="nope"))


def test_registry_selection_by_suite_id_and_substring() -> None:
    reg = Registry()
    reg.add(_case("T01.hl", _ok))
    reg.add(_case("T82", _ok, suite="ipam", group="ipam"))
    reg.add(_case("S01", _ok, suite="stress", group="stress"))

    @reg.case("B1", "bridge", "bridge", "masquerade gone", "users #4", "fix it")
    def b1(ctx: FakeCtx) -> None:
        pass

    assert [c.id for c in reg.select()] == ["T01.hl", "T82", "S01", "B1"]
    assert [c.id for c in reg.select(suites=["ipam", "stress"])] == ["T82", "S01"]
    assert [c.id for c in reg.select(ids=["S01"])] == ["S01"]
    assert [c.id for c in reg.select(substrings=["masq"])] == ["B1"]
    assert [c.id for c in reg.select(substrings=["users #4"])] == ["B1"]
    assert reg.select(suites=["ipam"], ids=["S01"]) == []
    with pytest.raises(KeyError, match="X9"):
        reg.select(ids=["X9"])


def test_real_registry_has_enough_documented_cases() -> None:
    from conformance.cases import load

    reg = load()
    cases = list(reg)
    assert len(cases) >= 120
    assert {c.suite for c in cases} == set(harness.SUITES)
    for c in cases:
        assert c.id and c.clause and c.fix and c.title, c.id
    # generic cases run against both plugins
    assert {"T09.hl", "T09.br", "T61.hl", "T61.br"} <= {c.id for c in cases}


# ---------------------------------------------------------------- runner

def _run(cases: list[Case], jobs: int = 1) -> tuple[harness.Report, list[FakeCtx], str]:
    made: list[FakeCtx] = []

    def factory(case: Case) -> FakeCtx:
        ctx = FakeCtx()
        made.append(ctx)
        return ctx

    out = io.StringIO()
    report = harness.run(cases, factory, "/fake/dir", progress=harness.Progress(out), jobs=jobs,
                         exclusive=lambda c: c.suite == "stress")
    return report, made, out.getvalue()


def test_runner_outcomes_messages_and_cleanup() -> None:
    cases = [_case("P", _ok), _case("F", _fail), _case("S", _skip), _case("W", _warn), _case("E", _boom)]
    report, made, out = _run(cases)
    by_id = {r.id: r for r in report.results}
    assert [r.id for r in report.results] == ["P", "F", "S", "W", "E"]
    assert by_id["P"].status == PASS
    assert by_id["F"].status == FAIL
    assert by_id["F"].message == "plugin printed garbage -- fix: do it right"
    assert by_id["S"].status == SKIP and by_id["S"].message == "no VLAN filtering"
    assert by_id["W"].status == WARN and by_id["W"].warnings == ["code 999 accepted"]
    assert by_id["E"].status == FAIL and "harness error: ZeroDivisionError" in by_id["E"].message
    assert all(ctx.closed for ctx in made) and len(made) == 5
    assert "[1/5] PASS P" in out and "FAIL F" in out and "plugin printed garbage" in out
    assert not report.ok and not report.strictly_ok
    assert report.totals() == {PASS: 1, FAIL: 2, WARN: 1, SKIP: 1}


def test_ok_allows_warnings_and_skips_strict_does_not() -> None:
    report, _, _ = _run([_case("P", _ok), _case("W", _warn), _case("S", _skip)])
    assert report.ok
    assert not report.strictly_ok
    report, _, _ = _run([_case("P", _ok)])
    assert report.ok and report.strictly_ok


def test_parallel_runner_keeps_registration_order() -> None:
    cases = [_case(f"C{i}", _ok if i % 3 else _fail) for i in range(12)]
    cases.append(_case("ST", _ok, suite="stress"))
    report, made, out = _run(cases, jobs=4)
    assert [r.id for r in report.results] == [c.id for c in cases]
    assert len(made) == 13 and all(c.closed for c in made)
    assert out.count("\n") == 14  # header + one line per case


def test_interrupt_stops_the_run_and_closes_the_context() -> None:
    def interrupt(ctx: FakeCtx) -> None:
        raise KeyboardInterrupt

    report, made, _ = _run([_case("A", _ok), _case("B", interrupt), _case("C", _ok)])
    assert report.interrupted and not report.ok
    assert [r.id for r in report.results] == ["A"]
    assert all(c.closed for c in made) and len(made) == 2


def test_context_factory_failure_is_reported() -> None:
    def factory(case: Case) -> FakeCtx:
        raise OSError("ip netns add failed")

    report = harness.run([_case("A", _ok)], factory, "/x")
    assert report.results[0].status == FAIL
    assert "could not set up the case: ip netns add failed" in report.results[0].message


# ---------------------------------------------------------------- reports

def _sample_report() -> harness.Report:
    report, _, _ = _run([_case("P", _ok, group="env"), _case("F", _fail, group="env"),
                         _case("S", _skip, group="gc"), _case("W", _warn, group="gc")])
    report.latency = {"bridge ADD": {"count": 2, "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 2.0}}
    return report


def test_json_report_round_trips(tmp_path) -> None:
    report = _sample_report()
    path = tmp_path / "r.json"
    harness.write_json(report, str(path))
    doc = json.loads(path.read_text())
    assert doc["target"] == "/fake/dir" and doc["ok"] is False
    assert doc["totals"] == {PASS: 1, FAIL: 1, WARN: 1, SKIP: 1}
    assert doc["groups"] == {"env": {PASS: 1, FAIL: 1, WARN: 0, SKIP: 0},
                             "gc": {PASS: 0, FAIL: 0, WARN: 1, SKIP: 1}}
    assert doc["latency"]["bridge ADD"]["p99_ms"] == 2.0
    assert [c["id"] for c in doc["cases"]] == ["P", "F", "S", "W"]
    assert doc["cases"][1]["clause"] == "spec R0"


def test_junit_xml_structure(tmp_path) -> None:
    report = _sample_report()
    path = tmp_path / "r.xml"
    harness.write_junit(report, str(path))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "4"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"env", "gc"}
    assert suites["env"].get("failures") == "1" and suites["gc"].get("skipped") == "1"
    failed = [tc for tc in suites["env"].findall("testcase") if tc.find("failure") is not None]
    assert len(failed) == 1 and "plugin printed garbage" in failed[0].find("failure").get("message")
    warned = [tc for tc in suites["gc"].findall("testcase") if tc.find("system-out") is not None]
    assert warned and "WARN: code 999 accepted" in warned[0].find("system-out").text


def test_summary_table_lists_groups_totals_and_latency() -> None:
    text = _sample_report().summary_table()
    lines = text.splitlines()
    assert lines[0].split() == ["group", PASS, FAIL, WARN, SKIP]
    assert lines[2].split() == ["env", "1", "1", "0", "0"]
    assert lines[3].split() == ["gc", "0", "0", "1", "1"]
    assert any(line.split() == ["TOTAL", "1", "1", "1", "1"] for line in lines)
    assert any("bridge ADD" in line and "2.0" in line for line in lines)
