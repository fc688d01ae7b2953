"""Throw-away network namespaces for tests: never the machine's root namespace.

`Namespace` wraps a named netns under /run/netns made with `ip netns add` (tests may use iproute2
to build their scaffolding; the plugins themselves never do). `run_in(ns, fn)` runs a Python
callable in a forked child that first joins the namespace, so the test process itself never
leaves the root namespace and a failure cannot strand it elsewhere.
"""
from __future__ import annotations

import os
import pickle
import secrets
import subprocess
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

CLONE_NEWNET = 0x40000000


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Namespace:
    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """iproute2 inside this namespace (test scaffolding and inspection only)."""
        return subprocess.run(["ip", "-n", self.name, *args], capture_output=True, text=True, check=check)

    def exec(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run a command with this namespace as its network namespace."""
        return subprocess.run(["nsenter", f"--net={self.path}", "--", *argv], **kwargs)


def create(prefix: str = "pycni") -> Namespace:
    ns = Namespace(unique(prefix))
    subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True)
    ns.ip("link", "set", "lo", "up")
    return ns


def delete(ns: Namespace) -> None:
    subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)


@contextmanager
def namespaces(count: int = 1, prefix: str = "pycni") -> Iterator[list[Namespace]]:
    made: list[Namespace] = []
    try:
        for _ in range(count):
            made.append(create(prefix))
        yield made
    finally:
        for ns in made:
            delete(ns)


def join(ns: Namespace) -> None:
    """setns(2) into `ns` for the calling process (Python 3.11 has no os.setns)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(ns.path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), ns.path)
    finally:
        os.close(fd)


def run_in(ns: Namespace, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call fn(*args, **kwargs) inside `ns` in a forked child; return its value or re-raise its error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            join(ns)
            payload = ("ok", fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            payload = ("err", (e, traceback.format_exc()))
        try:
            data = pickle.dumps(payload)
        except Exception as e:  # unpicklable value or exception
            data = pickle.dumps(("err", (RuntimeError(repr(e)), traceback.format_exc())))
        with os.fdopen(write_fd, "wb") as w:
            w.write(data)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as r:
        data = r.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "ok":
        return value
    exc, tb = value
    if isinstance(exc, BaseException):
        exc.add_note(f"in namespace {ns.name}:\n{tb}")
        raise exc
    raise RuntimeError(tb)
