"""The iptables driver on iptables-legacy (hosts whose `iptables` is the legacy x_tables variant).

Debian's `iptables` here is iptables-nft; PATH is pointed at the -legacy binaries inside the forked
child only, so the driver runs unchanged against the legacy kernel tables of the test's namespace.
"""
from __future__ import annotations

import os
import shutil
from ipaddress import ip_interface
from pathlib import Path
from typing import Any, Callable

import pytest

import bridge_plugin.firewall as fw
from bridge_plugin.firewall._model import Attachment, ipt_chain
from tests.support.netns import Namespace, run_in

from fw_netns_support import host, require, run_parallel  # noqa: F401

TOOLS = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore")


def legacy(tool: str) -> str:
    """iptables-save -> iptables-legacy-save"""
    return tool.replace("tables", "tables-legacy", 1)


@pytest.fixture
def legacy_bin(tmp_path: Path, host: Namespace) -> str:  # noqa: F811
    require([legacy(tool) for tool in TOOLS])
    probe = host.exec(["iptables-legacy-save", "-t", "nat"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the kernel has no legacy iptables nat table: {probe.stderr.strip()}")
    for tool in TOOLS:
        (tmp_path / tool).symlink_to(shutil.which(legacy(tool)) or "")
    return str(tmp_path)


def with_path(bin_dir: str, fn: Callable[..., Any], *args: Any) -> Any:
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return fn(*args)


def legacy_rules(ns: Namespace, att: Attachment) -> list[str]:
    out = []
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save"):
        text = ns.exec([tool, "-t", "nat"], capture_output=True, text=True, check=True).stdout
        out += [line for line in text.splitlines() if line.startswith("-A") and ipt_chain(att) in line]
    return out


def test_legacy_setup_repeat_parallel_teardown(host: Namespace, legacy_bin: str) -> None:  # noqa: F811
    a = Attachment("net", "c1", "eth0")
    dual = [ip_interface("10.88.0.2/24"), ip_interface("fd00:88::2/64")]
    run_in(host, with_path, legacy_bin, fw.setup_masquerade, "iptables", a, dual)
    run_in(host, with_path, legacy_bin, fw.setup_masquerade, "iptables", a, dual)
    assert len(legacy_rules(host, a)) == 6  # per family: jump, ACCEPT, MASQUERADE

    atts = [Attachment("net", f"par{i}", "eth0") for i in range(16)]
    calls = [(fw.setup_masquerade, ("iptables", att, [ip_interface(f"10.88.1.{i + 2}/24")]))
             for i, att in enumerate(atts)]
    assert run_in(host, with_path, legacy_bin, run_parallel, calls) == []
    assert all(len(legacy_rules(host, att)) == 3 for att in atts)

    run_in(host, with_path, legacy_bin, fw.teardown_masquerade, a, [])
    run_in(host, with_path, legacy_bin, fw.gc_masquerade, "net", frozenset())
    assert legacy_rules(host, a) == [] and all(legacy_rules(host, att) == [] for att in atts)
