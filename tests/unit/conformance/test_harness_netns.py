"""The harness's namespaces are always removed: at the end, on SIGTERM, and they never are the root ns."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conformance import netns


@pytest.fixture(autouse=True)
def _restore_signal_handlers():
    """create() installs SIGTERM/SIGHUP handlers; give pytest its own back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    installed = netns._hooks_installed
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    netns._hooks_installed = installed


def _exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def test_create_registers_and_cleanup_all_removes(needs_root: None) -> None:
    a, b = netns.create("t"), netns.create("t")
    try:
        assert a.name.startswith("cnict-") and _exists(a.name) and _exists(b.name)
        assert {a.name, b.name} <= set(netns.live())
        root = os.stat("/proc/self/ns/net").st_ino
        assert os.stat(a.path).st_ino != root
        assert "UP" in netns.links(a)["lo"]["flags"]
    finally:
        netns.cleanup_all()
    assert not _exists(a.name) and not _exists(b.name)
    assert netns.live() == []


SCRIPT = """
import sys, time
from conformance import netns
ns = netns.create("sig")
print(ns.name, flush=True)
try:
    time.sleep(60)
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_sigterm_removes_namespaces(needs_root: None) -> None:
    p = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    name = p.stdout.readline().strip()
    assert name and _exists(name)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 130
    deadline = time.monotonic() + 5
    while _exists(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _exists(name)
