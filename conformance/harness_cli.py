"""`pycni conformance --plugin-dir DIR ...`: run the black-box suite against a directory of plugins.

argv[0] is the word "conformance" (shared/cli.py forwards the whole argv). Exit status: 0 only
when no selected case failed (warnings and skips are listed; --strict makes them fail too);
1 otherwise; 2 on usage errors;
130 when interrupted (namespaces are still removed).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    from .harness import SUITES

    p = argparse.ArgumentParser(prog="pycni conformance",
                                description="Black-box CNI conformance suite for bridge + host-local "
                                            "style plugins (runs everything in private namespaces).")
    p.add_argument("--plugin-dir", help="directory holding the plugin executables")
    p.add_argument("--suite", action="append", choices=SUITES, default=[],
                   help="run only this suite (repeatable; default: all)")
    p.add_argument("--case", action="append", default=[], metavar="ID", help="run only this case ID (repeatable)")
    p.add_argument("-k", action="append", default=[], metavar="SUBSTRING", dest="substrings",
                   help="run cases whose id/title/group/clause contains SUBSTRING (repeatable)")
    p.add_argument("--report-json", metavar="FILE", help="write the full JSON report here")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report here")
    p.add_argument("--parallel", type=int, default=16, metavar="N",
                   help="concurrency of the stress suite (default 16)")
    p.add_argument("--fault-rounds", type=int, default=10, metavar="N",
                   help="SIGKILL rounds per fault case (default 10)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for the SIGKILL points of the fault suite (default 0: reproducible)")
    p.add_argument("--pass-env", action="append", default=[], metavar="NAME",
                   help="also give the plugins this variable from the harness's environment "
                        "(repeatable; plugins otherwise get a clean environment: PATH and CNI_* only)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run independent cases N at a time (stress/faults always run alone; "
                        "latency figures are only comparable at --jobs 1)")
    p.add_argument("--timeout", type=float, default=30.0, help="per-invocation timeout in seconds")
    p.add_argument("--strict", action="store_true",
                   help="also exit 1 when a case warned or was skipped")
    p.add_argument("--list", action="store_true", help="list the selected cases and exit")
    p.add_argument("--compare", nargs="+", metavar="NAME=REPORT.json",
                   help="print a markdown group x implementation table from JSON reports and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-case progress lines")
    return p


def _preflight(plugin_dir: str) -> str:
    if os.geteuid() != 0:
        return "must run as root (it creates network namespaces)"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is required"
    if not os.path.isdir(plugin_dir):
        return f"--plugin-dir {plugin_dir} is not a directory"
    missing = [p for p in ("host-local", "bridge") if not os.access(os.path.join(plugin_dir, p), os.X_OK)]
    if missing:
        return f"{plugin_dir} lacks executable(s): {', '.join(missing)}"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in and args_in[0] == "conformance":
        args_in = args_in[1:]
    ns = build_parser().parse_args(args_in)

    from . import harness
    from .cases import load
    from .cases._common import Ctx, Target

    if ns.compare:
        import json

        docs = {}
        for item in ns.compare:
            name, _, path = item.partition("=")
            with open(path or name, encoding="utf-8") as f:
                docs[name if path else os.path.basename(name)] = json.load(f)
        print(harness.markdown_comparison(docs))
        return 0
    if not ns.plugin_dir:
        print("pycni conformance: --plugin-dir is required", file=sys.stderr)
        return 2
    registry = load()
    try:
        cases = registry.select(ns.suite, ns.case, ns.substrings)
    except KeyError as e:
        print(f"pycni conformance: {e.args[0]}", file=sys.stderr)
        return 2
    if ns.list:
        for c in cases:
            print(f"{c.id:<10} {c.suite:<8} {c.group:<8} {c.title}  ({c.clause})")
        return 0
    if not cases:
        print("pycni conformance: no case selected", file=sys.stderr)
        return 2
    plugin_dir = os.path.abspath(ns.plugin_dir)
    problem = _preflight(plugin_dir)
    if problem:
        print(f"pycni conformance: {problem}", file=sys.stderr)
        return 2

    from . import netns as nsmod

    nsmod.install_hooks()
    target = Target(plugin_dir, timeout=ns.timeout, parallel=max(1, ns.parallel),
                    fault_rounds=max(1, ns.fault_rounds), seed=ns.seed,
                    pass_env={k: os.environ[k] for k in ns.pass_env if k in os.environ})
    progress = None if ns.quiet else harness.Progress()
    try:
        report = harness.run(cases, lambda case: Ctx(target, case.plugin), plugin_dir, target.latency,
                             progress, meta={"parallel": target.parallel, "fault_rounds": target.fault_rounds, "seed": target.seed,
                                             "cases_selected": len(cases), "jobs": ns.jobs},
                             jobs=max(1, ns.jobs), exclusive=lambda c: c.suite in ("stress", "faults"))
    finally:
        nsmod.cleanup_all()
    report.meta["result_validation"] = target.schema_mode or "structural checks"
    report.meta["versions"] = {k: v for k, v in target._versions.items()}
    print()
    print(report.summary_table())
    failing = [r for r in report.results if r.status != harness.PASS]
    if failing:
        print(f"\n{len(failing)} case(s) did not pass:")
        for r in failing:
            print(f"  {r.status.upper():<7} {r.id:<10} {r.message[:300]}")
    if ns.report_json:
        harness.write_json(report, ns.report_json)
    if ns.junit:
        harness.write_junit(report, ns.junit)
    if report.interrupted:
        print("interrupted: namespaces removed", file=sys.stderr)
        return 130
    return 0 if (report.strictly_ok if ns.strict else report.ok) else 1


if __name__ == "__main__":
    sys.exit(main())
