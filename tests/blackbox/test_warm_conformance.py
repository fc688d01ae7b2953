"""The conformance harness against our installed plugins with `pycni serve` running: the warm path
must conform exactly as the cold path does (tests/blackbox/test_conformance_suite.py).

The harness hands PYCNI_SOCKET through to every plugin call (--pass-env), pointing them at a server
on a tmp socket. A sampler watches the server's workers to prove the calls really went warm.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.blackbox.test_warm import ROOT, start_server, stop_server
from tests.support import netns
from tests.support.warm import WorkerMoves

pytestmark = [pytest.mark.root]

SUITES = ("generic", "ipam", "bridge", "stress", "faults")


def test_harness_passes_in_warm_mode(plugin_dir: Path, tmp_path: Path, needs_root: None) -> None:
    sock = tmp_path / "run" / "pycni.sock"
    ns = netns.create("pwc-srv")
    proc = None
    try:
        proc = start_server(sock, ns, workers=4)
        sampler = WorkerMoves(proc.pid)
        sampler.start()
        report = tmp_path / "report.json"
        cmd = [sys.executable, "-m", "shared.cli", "conformance", "--plugin-dir", str(plugin_dir),
               "--report-json", str(report), "-q", "--jobs", "2", "--pass-env", "PYCNI_SOCKET"]
        for suite in SUITES:
            cmd += ["--suite", suite]
        env = {**os.environ, "PYCNI_SOCKET": str(sock)}
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=str(ROOT))
        served = sampler.stop()
        assert report.exists(), run.stdout[-2000:] + run.stderr[-2000:]
        cases = json.loads(report.read_text())["cases"]
        failing = {c["id"]: c["message"] for c in cases if c["status"] == "failed"}
        assert not failing, "\n".join(f"{k}: {v}" for k, v in failing.items())
        assert sum(c["status"] == "passed" for c in cases) >= 50
        assert served >= 100, f"only {served} calls were seen in the server's workers"
    finally:
        if proc is not None:
            stop_server(proc)
        netns.delete(ns)
