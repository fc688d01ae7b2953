"""The README's demo runs end to end and leaves no namespace behind."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_demo_wires_two_containers_and_cleans_up() -> None:
    if os.geteuid() != 0:
        pytest.skip("the demo needs root for network namespaces")
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    proc = subprocess.run([sys.executable, "-m", "bridge_plugin.demo"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "demo-a -> demo-b" in out and "this is 10.88.0.3" in out and "this is 10.88.0.1" in out
    assert "veths in the host namespace: none" in out and "IPAM reservations: none" in out
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "pycni-demo" not in after.replace(before, "")
