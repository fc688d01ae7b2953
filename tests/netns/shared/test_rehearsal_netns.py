"""The warm server's start-up rehearsal: every call succeeds, in namespaces of its own, leaving nothing."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import netns
from tests.support.warm import stop_server

ROOT = Path(__file__).resolve().parents[3]


def _snapshot() -> dict[str, Any]:
    def out(argv: list[str]) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("#"))

    return {"links": out(["ip", "-o", "link", "show"]), "addrs": out(["ip", "-o", "addr", "show"]),
            "nat": out(["iptables-save", "-t", "nat"]), "nft": out(["nft", "list", "ruleset"]),
            "netns": os.stat("/proc/thread-self/ns/net").st_ino,
            "dirs": sorted(glob.glob(os.path.join(tempfile.gettempdir(), "pycni-rehearsal-*")))}


def _rehearse_here() -> dict[str, Any]:
    from shared.rehearsal import rehearse

    before = _snapshot()
    problems = rehearse()
    return {"problems": problems, "before": before, "after": _snapshot()}


def _rehearse_without_unshare() -> dict[str, Any]:
    from shared import rehearsal

    real = rehearsal._libc_call

    def refuse(name: str, *args: int) -> None:
        if name == "unshare":
            raise OSError(1, "Operation not permitted", "unshare")
        real(name, *args)

    rehearsal._libc_call = refuse  # type: ignore[assignment]
    before = _snapshot()
    problems = rehearsal.rehearse()
    return {"problems": problems, "before": before, "after": _snapshot()}


def test_rehearsal_succeeds_and_changes_nothing_where_it_runs(needs_root: None) -> None:
    with netns.namespaces(1, "pw-reh") as (ns,):
        out = netns.run_in(ns, _rehearse_here)
    assert out["problems"] == [], out["problems"]
    assert out["after"] == out["before"]


def test_rehearsal_is_skipped_when_no_namespace_can_be_made(needs_root: None) -> None:
    with netns.namespaces(1, "pw-reh") as (ns,):
        out = netns.run_in(ns, _rehearse_without_unshare)
    assert len(out["problems"]) == 1 and out["problems"][0].startswith("skipped:"), out["problems"]
    assert "unshare" in out["problems"][0]
    assert out["after"] == out["before"]


def test_server_reports_a_clean_rehearsal_before_it_is_ready(needs_root: None, tmp_path: Path) -> None:
    sock = tmp_path / "run" / "pycni.sock"
    with netns.namespaces(1, "pw-reh") as (ns,):
        proc = subprocess.Popen(["nsenter", f"--net={ns.path}", "--", sys.executable, "-m", "shared.cli", "serve",
                                 "--socket", str(sock), "--workers", "1"],
                                cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            lines = []
            deadline = time.monotonic() + 60
            assert proc.stderr is not None
            while time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                lines.append(line.strip())
                if "ready on" in line:
                    break
            assert any("ready on" in line for line in lines), lines
            assert not [line for line in lines if "rehearsal" in line], lines
            links = ns.ip("-o", "link", "show").stdout.splitlines()
            assert len(links) == 1 and ": lo:" in links[0], links  # the rehearsal's links were elsewhere
        finally:
            stop_server(proc)
