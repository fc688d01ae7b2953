"""Helpers for the firewall tests: a throw-away namespace, reading its rules, parallel calls inside it.

Every firewall call runs in a forked child that joined the test's namespace (tests.support.netns.run_in)
and every inspection runs through nsenter, so the machine's root namespace firewall is never touched.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Callable, Iterator, Sequence

import pytest

from bridge_plugin.firewall._model import Attachment, instance_hash, ipt_chain
from tests.support.netns import Namespace, namespaces

IPT_TOOLS = ("iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore", "iptables", "ip6tables")
NFT_TOOLS = ("nft",)


def require(tools: Sequence[str]) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (not installed)")


def tools_for(backend: str) -> Sequence[str]:
    return IPT_TOOLS if backend == "iptables" else NFT_TOOLS


@pytest.fixture
def host() -> Iterator[Namespace]:
    """A fresh "host" namespace in which the plugin's firewall code runs."""
    with namespaces(1, "pycni-fw") as made:
        yield made[0]


def ipt_lines(ns: Namespace, family: int = 4) -> list[str]:
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    out = ns.exec([tool, "-t", "nat"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith(("-A", ":"))]


def nft_rules(ns: Namespace, family: str, table: str) -> list[dict[str, Any]]:
    proc = ns.exec(["nft", "-j", "list", "table", family, table], capture_output=True, text=True)
    if proc.returncode != 0:
        assert "No such file or directory" in proc.stderr, proc.stderr
        return []
    return [item["rule"] for item in json.loads(proc.stdout)["nftables"] if "rule" in item]


def nft_chains(ns: Namespace, family: str, table: str) -> set[str]:
    proc = ns.exec(["nft", "-j", "list", "table", family, table], capture_output=True, text=True)
    if proc.returncode != 0:
        return set()
    return {item["chain"]["name"] for item in json.loads(proc.stdout)["nftables"] if "chain" in item}


def masq_rules(ns: Namespace, backend: str, att: Attachment) -> list[str]:
    """Every rule that belongs to `att` in the backend's masquerade layout, as text."""
    if backend == "iptables":
        chain = ipt_chain(att)
        return [f"v{fam} {line}" for fam in (4, 6) for line in ipt_lines(ns, fam)
                if line.startswith("-A") and chain in line]
    return [json.dumps(rule["expr"]) for rule in nft_rules(ns, "inet", "cni_plugins_masquerade")
            if (rule.get("comment") or "").startswith(instance_hash(att))]


def run_parallel(calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[str]:
    """Run every call in its own forked process, all released at the same instant; return the errors.

    Meant to run inside run_in's child, so the processes share its namespace.
    """
    start = time.monotonic() + 0.3
    children = []
    for fn, args in calls:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            time.sleep(max(0.0, start - time.monotonic()))
            try:
                fn(*args)
                msg = b""
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                msg = repr(e).encode() or b"error"
            os.write(write_fd, msg)
            os._exit(0)
        os.close(write_fd)
        children.append((pid, read_fd))
    errors = []
    for pid, read_fd in children:
        with os.fdopen(read_fd, "rb") as r:
            data = r.read()
        os.waitpid(pid, 0)
        if data:
            errors.append(data.decode(errors="replace"))
    return errors


def counted(fn: Callable[..., Any], *args: Any) -> tuple[int, float, list[str]]:
    """Call fn, counting the firewall commands it executes and the wall time (run inside run_in)."""
    from bridge_plugin.firewall import _exec

    real = _exec.run
    argvs: list[str] = []

    def spy(argv: Sequence[str], stdin: str | None = None) -> _exec.Output:
        argvs.append(" ".join(argv))
        return real(argv, stdin)

    _exec.run = spy  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        fn(*args)
        return len(argvs), (time.perf_counter() - t0) * 1000, argvs
    finally:
        _exec.run = real  # type: ignore[assignment]
