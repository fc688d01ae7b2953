"""Conformance cases, one module per group. `load()` imports them all into one registry."""
from __future__ import annotations

from typing import Any, Callable

from ..harness import Case, Registry

REGISTRY = Registry()
PLUGINS = ("host-local", "bridge")
_SHORT = {"host-local": "hl", "bridge": "br"}
MODULES = ("version", "env", "config", "results", "lifecycle", "ipam", "bridge", "runtime", "stress",
           "faults")


def generic(tid: str, group: str, title: str, clause: str, fix: str,
            plugins: tuple[str, ...] = PLUGINS) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Register one case per plugin: `<tid>.hl`, `<tid>.br` (a generic CNI rule, checked on each)."""
    def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        for p in plugins:
            REGISTRY.add(Case(f"{tid}.{_SHORT[p]}", "generic", group, f"{title} [{p}]", clause,
                              fix, fn, p))
        return fn
    return register


def specific(tid: str, suite: str, group: str, title: str, clause: str, fix: str,
             plugin: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    return REGISTRY.case(tid, suite, group, title, clause, fix, plugin)


def load() -> Registry:
    import importlib

    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return REGISTRY
