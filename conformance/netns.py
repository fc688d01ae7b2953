"""Namespaces for the harness: a throw-away "host" netns the plugins run in, plus container netns.

The harness never configures the machine's root namespace. Plugins are exec'd through
`nsenter --net=<host netns>`, so every bridge, veth, address, route and firewall rule they make
lands in a namespace this module created and will delete. Every namespace is registered in a
process-wide set the moment it exists; `cleanup_all()` (called from the runner's finally block, an
atexit hook and the SIGTERM/SIGINT handlers) removes whatever is still there, so an interrupted
run leaves nothing behind.
"""
from __future__ import annotations

import atexit
import os
import secrets
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import Any, Sequence

RUN_DIR = "/run/netns"
PREFIX = "cnic"  # every namespace the harness makes starts with this

_lock = threading.Lock()
_live: set[str] = set()
_hooks_installed = False


def unique(prefix: str) -> str:
    return f"{PREFIX}{prefix}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class NetNS:
    name: str

    @property
    def path(self) -> str:
        return f"{RUN_DIR}/{self.name}"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """argv that runs `argv` with this namespace as its network namespace."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def run(self, argv: Sequence[str], timeout: float = 30, check: bool = False,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        return subprocess.run(self.wrap(argv), text=True, timeout=timeout, check=check, **kwargs)

    def ip(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """iproute2 inside this namespace (inspection and scaffolding only)."""
        return subprocess.run(["ip", "-n", self.name, *args], capture_output=True, text=True,
                              timeout=30, check=check)

    def exists(self) -> bool:
        return os.path.exists(self.path)


def create(kind: str) -> NetNS:
    """Make a fresh namespace with `lo` up; registered for cleanup before it exists."""
    install_hooks()
    ns = NetNS(unique(kind))
    with _lock:
        _live.add(ns.name)
    subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True, timeout=30)
    ns.ip("link", "set", "lo", "up")
    return ns


def delete(ns: NetNS) -> None:
    subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False, timeout=30)
    with _lock:
        _live.discard(ns.name)


def live() -> list[str]:
    with _lock:
        return sorted(_live)


def cleanup_all() -> None:
    """Delete every namespace this process created and has not deleted yet."""
    for name in live():
        delete(NetNS(name))


def _on_signal(signum: int, _frame: Any) -> None:
    cleanup_all()
    # let the runner's finally blocks see an interruption, then exit with the conventional status
    raise KeyboardInterrupt(f"signal {signum}")


def install_hooks() -> None:
    """atexit + SIGTERM/SIGHUP handlers (main thread only; SIGINT already raises KeyboardInterrupt)."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(cleanup_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                signal.signal(sig, _on_signal)
            except (ValueError, OSError):
                pass


def links(ns: NetNS) -> dict[str, dict[str, Any]]:
    """name -> {kind, master, mtu, mac, state, addrs} as iproute2 reports them (JSON)."""
    import json

    out = ns.ip("-j", "-d", "addr", "show")
    if out.returncode != 0:
        return {}
    result: dict[str, dict[str, Any]] = {}
    for link in json.loads(out.stdout or "[]"):
        info = link.get("linkinfo", {})
        result[link["ifname"]] = {
            "kind": info.get("info_kind", ""),
            "master": link.get("master", ""),
            "mtu": link.get("mtu"),
            "mac": link.get("address", ""),
            "flags": link.get("flags", []),
            "state": link.get("operstate", ""),
            "addrs": [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                      if a.get("scope") == "global"],
        }
    return result


def routes(ns: NetNS, family: str = "-4") -> list[dict[str, Any]]:
    import json

    out = ns.ip("-j", family, "route", "show")
    return json.loads(out.stdout or "[]") if out.returncode == 0 else []


def firewall_text(ns: NetNS) -> str:
    """Every iptables/ip6tables/nft rule in the namespace, one text blob, for leak checks."""
    parts = []
    for argv in (["iptables-save"], ["ip6tables-save"], ["nft", "list", "ruleset"]):
        try:
            out = ns.run(argv, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0:
            parts.append("\n".join(line for line in out.stdout.splitlines()
                                   if not line.startswith("#")))
    return "\n".join(parts)
