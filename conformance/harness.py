"""The conformance engine: case registry, runner, progress output, reports and latency figures.

A case is a plain function `fn(ctx) -> None` registered with an ID, the spec clause or user issue
it checks, and a hint telling a plugin author what to fix. It passes by returning, and otherwise
calls `ctx.fail(...)`, `ctx.skip(...)` or `ctx.warn(...)`. Where the spec allows alternatives a
case warns instead of failing. The engine knows nothing about CNI: the plugin-facing context is
built by a factory the caller passes in (see conformance/cases/_common.py), so the engine can be
unit-tested in-process with fake cases.
"""
from __future__ import annotations

import json
import math
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol, TextIO

PASS, FAIL, WARN, SKIP, ERROR = "passed", "failed", "warned", "skipped", "error"
STATUSES = (PASS, FAIL, WARN, SKIP)
SUITES = ("generic", "ipam", "bridge", "stress", "faults")


class CaseFailed(Exception):
    """The plugin does not do what the clause requires."""


class CaseSkipped(Exception):
    """The case cannot run here (missing feature of the machine, or not applicable)."""


class CaseContext(Protocol):
    warnings: list[str]

    def close(self) -> None: ...


@dataclass(frozen=True)
class Case:
    id: str
    suite: str
    group: str
    title: str
    clause: str
    fix: str
    fn: Callable[[Any], None]
    plugin: str = ""  # which executable the case drives ("" = whole plugin dir)

    def matches(self, text: str) -> bool:
        text = text.lower()
        return any(text in s.lower() for s in (self.id, self.title, self.group, self.clause))


class Registry:
    """Cases in registration order; IDs are unique."""

    def __init__(self) -> None:
        self._cases: OrderedDict[str, Case] = OrderedDict()

    def add(self, case: Case) -> Case:
        if case.id in self._cases:
            raise ValueError(f"duplicate case id {case.id}")
        if case.suite not in SUITES:
            raise ValueError(f"case {case.id}: unknown suite {case.suite}")
        self._cases[case.id] = case
        return case

    def case(self, id: str, suite: str, group: str, title: str, clause: str, fix: str,
             plugin: str = "") -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
        """Decorator form of add()."""
        def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
            self.add(Case(id, suite, group, title, clause, fix, fn, plugin))
            return fn
        return register

    def __iter__(self) -> Iterator[Case]:
        return iter(self._cases.values())

    def __len__(self) -> int:
        return len(self._cases)

    def get(self, id: str) -> Case:
        return self._cases[id]

    def select(self, suites: Iterable[str] = (), ids: Iterable[str] = (),
               substrings: Iterable[str] = ()) -> list[Case]:
        suites, ids, subs = set(suites), list(ids), list(substrings)
        unknown = [i for i in ids if i not in self._cases]
        if unknown:
            raise KeyError(f"unknown case id(s): {', '.join(unknown)}")
        chosen = []
        for c in self._cases.values():
            if suites and c.suite not in suites:
                continue
            if ids and c.id not in ids:
                continue
            if subs and not any(c.matches(s) for s in subs):
                continue
            chosen.append(c)
        return chosen


@dataclass
class CaseResult:
    id: str
    suite: str
    group: str
    title: str
    clause: str
    status: str
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    plugin: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "suite": self.suite, "group": self.group, "plugin": self.plugin,
                "title": self.title, "clause": self.clause, "status": self.status,
                "message": self.message, "warnings": self.warnings,
                "seconds": round(self.seconds, 4)}


def percentile(values: Iterable[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    data = sorted(values)
    if not data:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError("percentile must be within 0..100")
    k = (len(data) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


class Latency:
    """Wall time of every plugin invocation, keyed by '<plugin> <VERB>'. Thread-safe appends."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self.samples: dict[str, list[float]] = {}

    def record(self, key: str, seconds: float) -> None:
        with self._lock:
            self.samples.setdefault(key, []).append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for key in sorted(self.samples):
            vals = self.samples[key]
            out[key] = {"count": len(vals), "p50_ms": round(percentile(vals, 50) * 1000, 2),
                        "p99_ms": round(percentile(vals, 99) * 1000, 2),
                        "max_ms": round(max(vals) * 1000, 2)}
        return out


@dataclass
class Report:
    target: str
    results: list[CaseResult]
    latency: dict[str, dict[str, float]]
    started: float
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """No case failed (a warning is an accepted alternative; a skip says why it could not run)."""
        return not self.interrupted and all(r.status in (PASS, WARN, SKIP) for r in self.results)

    @property
    def strictly_ok(self) -> bool:
        return not self.interrupted and all(r.status == PASS for r in self.results)

    def counts(self, key: str = "group") -> OrderedDict[str, dict[str, int]]:
        table: OrderedDict[str, dict[str, int]] = OrderedDict()
        for r in self.results:
            row = table.setdefault(getattr(r, key), {s: 0 for s in STATUSES})
            row[r.status if r.status in STATUSES else FAIL] += 1
        return table

    def totals(self) -> dict[str, int]:
        tot = {s: 0 for s in STATUSES}
        for r in self.results:
            tot[r.status if r.status in STATUSES else FAIL] += 1
        return tot

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime(self.started)),
                "seconds": round(self.seconds, 2), "ok": self.ok, "interrupted": self.interrupted,
                "meta": self.meta, "totals": self.totals(),
                "groups": self.counts("group"), "latency": self.latency,
                "cases": [r.to_json() for r in self.results]}

    def to_junit(self) -> bytes:
        """One <testsuite> per group; warnings appear as system-out so CI keeps them visible."""
        root = ET.Element("testsuites", name=f"cni-conformance {self.target}",
                          tests=str(len(self.results)), time=f"{self.seconds:.3f}")
        by_group: OrderedDict[str, list[CaseResult]] = OrderedDict()
        for r in self.results:
            by_group.setdefault(r.group, []).append(r)
        for group, rows in by_group.items():
            suite = ET.SubElement(root, "testsuite", name=group, tests=str(len(rows)),
                                  failures=str(sum(r.status in (FAIL, ERROR) for r in rows)),
                                  skipped=str(sum(r.status == SKIP for r in rows)),
                                  time=f"{sum(r.seconds for r in rows):.3f}")
            for r in rows:
                tc = ET.SubElement(suite, "testcase", classname=f"{r.suite}.{r.group}",
                                   name=f"{r.id} {r.title}", time=f"{r.seconds:.3f}")
                if r.status in (FAIL, ERROR):
                    ET.SubElement(tc, "failure", message=r.message[:500]).text = \
                        f"{r.message}\nclause: {r.clause}"
                elif r.status == SKIP:
                    ET.SubElement(tc, "skipped", message=r.message[:500])
                if r.warnings:
                    ET.SubElement(tc, "system-out").text = "WARN: " + "\nWARN: ".join(r.warnings)
        return ET.tostring(root, encoding="utf-8", xml_declaration=True)

    def summary_table(self) -> str:
        rows = [("group", *STATUSES)]
        for group, c in self.counts().items():
            rows.append((group, *(str(c[s]) for s in STATUSES)))
        tot = self.totals()
        rows.append(("TOTAL", *(str(tot[s]) for s in STATUSES)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for n, r in enumerate(rows):
            lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                                   for i, c in enumerate(r)))
            if n == 0 or n == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        if self.latency:
            lines.append("")
            lines.append("latency per verb (ms):  p50      p99      max    count")
            for key, v in self.latency.items():
                lines.append(f"  {key:<22}{v['p50_ms']:>8.1f} {v['p99_ms']:>8.1f} "
                             f"{v['max_ms']:>8.1f} {v['count']:>6}")
        return "\n".join(lines)


class Progress:
    """One line per case: status, id, seconds and (for anything but a pass) the message."""

    MARK = {PASS: "PASS", FAIL: "FAIL", WARN: "WARN", SKIP: "SKIP", ERROR: "ERR "}

    def __init__(self, stream: TextIO | None = None, verbose: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose

    def start(self, total: int, target: str) -> None:
        self.total = total
        self.stream.write(f"CNI conformance: {total} case(s) against {target}\n")
        self.stream.flush()

    def done(self, index: int, res: CaseResult) -> None:
        msg = ""
        if res.status != PASS:
            msg = f"  {res.message}" if res.message else ""
        if res.warnings and res.status in (PASS, WARN):
            msg = "  " + " | ".join(res.warnings)
        width = len(str(self.total))
        line = (f"[{index:>{width}}/{self.total}] {self.MARK.get(res.status, '?')} "
                f"{res.id:<34} {res.seconds:6.2f}s{msg}")
        if not self.verbose:
            line = line[:200]
        self.stream.write(line + "\n")
        self.stream.flush()


def run_case(case: Case, ctx: Any) -> CaseResult:
    """Run one case and turn its outcome into a CaseResult; never raises (except interrupts)."""
    res = CaseResult(case.id, case.suite, case.group, case.title, case.clause, PASS,
                     plugin=case.plugin)
    t0 = time.monotonic()
    try:
        case.fn(ctx)
        res.warnings = list(getattr(ctx, "warnings", []))
        if res.warnings:
            res.status = WARN
            res.message = res.warnings[0]
    except CaseFailed as e:
        res.status = FAIL
        res.message = f"{e} -- fix: {case.fix}" if case.fix else str(e)
        res.warnings = list(getattr(ctx, "warnings", []))
    except CaseSkipped as e:
        res.status = SKIP
        res.message = str(e)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # a harness bug or an unexpected machine problem: count as failure
        res.status = FAIL
        tb = traceback.format_exc(limit=3).strip().splitlines()
        res.message = f"harness error: {type(e).__name__}: {e} ({tb[-3] if len(tb) > 2 else ''})"
    res.seconds = time.monotonic() - t0
    return res


def _run_one(case: Case, context_factory: Callable[[Case], Any]) -> CaseResult:
    """Build the context, run, close; a context that cannot be built is a harness failure."""
    ctx = None
    res = CaseResult(case.id, case.suite, case.group, case.title, case.clause, FAIL,
                     "interrupted", plugin=case.plugin)
    try:
        ctx = context_factory(case)
        res = run_case(case, ctx)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        res = CaseResult(case.id, case.suite, case.group, case.title, case.clause, FAIL,
                         f"harness error: could not set up the case: {e}", plugin=case.plugin)
    finally:
        if ctx is not None:
            try:
                ctx.close()
            except Exception as e:  # cleanup trouble is reported on the case
                res.warnings.append(f"cleanup: {e}")
    return res


def run(cases: list[Case], context_factory: Callable[[Case], Any], target: str,
        latency: Latency | None = None, progress: Progress | None = None,
        meta: dict[str, Any] | None = None, jobs: int = 1,
        exclusive: Callable[[Case], bool] = lambda c: False) -> Report:
    """Run `cases`; each gets a fresh context that is closed even on failure or interrupt.

    With jobs > 1 the cases that are not `exclusive` run on a thread pool (cases are isolated by
    their own namespaces and temp dirs); exclusive ones (load and timing sensitive) run alone
    afterwards. Results are reported in registration order either way.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    latency = latency or Latency()
    started = time.time()
    t0 = time.monotonic()
    slots: dict[str, CaseResult] = {}
    interrupted = False
    lock = threading.Lock()
    stop = threading.Event()
    counter = [0]
    if progress:
        progress.start(len(cases), target)

    def one(case: Case) -> None:
        if stop.is_set():
            return
        res = _run_one(case, context_factory)
        with lock:
            slots[case.id] = res
            counter[0] += 1
            if progress:
                progress.done(counter[0], res)

    shared = [c for c in cases if jobs > 1 and not exclusive(c)]
    alone = [c for c in cases if c not in shared]
    try:
        if shared:
            pool = ThreadPoolExecutor(max_workers=jobs)
            futures = [pool.submit(one, c) for c in shared]
            try:
                for f in futures:
                    f.result()
            finally:
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
            stop.clear()
        for case in alone:
            one(case)
    except KeyboardInterrupt:
        stop.set()
        interrupted = True
    results = [slots[c.id] for c in cases if c.id in slots]
    return Report(target, results, latency.summary(), started, time.monotonic() - t0,
                  meta or {}, interrupted)


def write_json(report: Report, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report.to_json(), f, indent=1)
        f.write("\n")


def write_junit(report: Report, path: str) -> None:
    with open(path, "wb") as f:
        f.write(report.to_junit())


def markdown_comparison(reports: dict[str, dict[str, Any]]) -> str:
    """Group x implementation table (passed/failed/warned/skipped) from JSON reports (to_json())."""
    names = list(reports)
    groups: list[str] = []
    for doc in reports.values():
        for g in doc["groups"]:
            if g not in groups:
                groups.append(g)
    head = "| group | " + " | ".join(f"{n} (pass/fail/warn/skip)" for n in names) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]

    def cell(c: dict[str, int] | None) -> str:
        if not c:
            return "-"
        return f"{c[PASS]} / {c[FAIL]} / {c[WARN]} / {c[SKIP]}"

    for g in groups + ["TOTAL"]:
        cells = [cell(doc["totals"] if g == "TOTAL" else doc["groups"].get(g)) for doc in reports.values()]
        label = f"**{g}**" if g == "TOTAL" else g
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
