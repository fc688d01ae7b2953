"""The gratuitous ARP of ADD and how its AF_PACKET socket is closed off the caller's path.

Closing the last reference to an AF_PACKET socket waits for an RCU grace period; `announce()`
leaves that to a forked child. These tests check that the announcement still reaches a neighbour
for every IPv4 address, that the caller keeps no socket, and that the child holds nothing of the
caller's (stdout, locks) while it waits.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import time
from typing import Any

from bridge_plugin import netlink as nl
from tests.support.netns import Namespace, namespaces, run_in

WRONG_MAC = "02:00:00:00:00:99"
ADDRESSES = ("10.61.0.5/24", "10.62.0.5/24")


def _children() -> list[int]:
    pids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    return pids


def _reap_all() -> list[int]:
    statuses = []
    while True:
        try:
            _, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return statuses
        statuses.append(status)


def _announce_in_container() -> dict[str, Any]:
    fds_before = sorted(os.listdir("/proc/self/fd"))
    with nl.rtnl() as ipr:
        link = nl.find_link(ipr, "d0")
    assert link is not None
    nl.announce("d0", link.index, link.mac, [ipaddress.ip_interface(a) for a in ADDRESSES])
    fds_after = sorted(os.listdir("/proc/self/fd"))
    return {"mac": link.mac, "fds": (fds_before, fds_after), "children": _reap_all()}


def _pair(cont: Namespace, peer: Namespace) -> None:
    peer.ip("link", "add", "d1", "type", "veth", "peer", "name", "d0", "netns", cont.name)
    for ns, dev, host in ((peer, "d1", 1), (cont, "d0", 5)):
        for net in ("10.61.0", "10.62.0"):
            ns.ip("addr", "add", f"{net}.{host}/24", "dev", dev)
        ns.ip("link", "set", dev, "up")


def test_announce_corrects_every_ipv4_neighbour_and_leaves_no_socket() -> None:
    with namespaces(2, "pycni-ann") as (cont, peer):
        _pair(cont, peer)
        for a in ADDRESSES:
            ip = a.split("/")[0]
            peer.ip("neigh", "replace", ip, "lladdr", WRONG_MAC, "dev", "d1", "nud", "stale")
        out = run_in(cont, _announce_in_container)
        for a in ADDRESSES:
            neigh = peer.ip("neigh", "show", a.split("/")[0], "dev", "d1").stdout
            assert out["mac"] in neigh and WRONG_MAC not in neigh, neigh
        before, after = out["fds"]
        assert after == before  # the ARP socket is not left open in the caller
        assert out["children"] == [0]  # one child took the socket's last reference and exited cleanly


class _WatchedSocket(socket.socket):
    """On the caller's close, waits until the child has dropped everything it does not need and
    records what it still holds (the child then waits for exactly this close)."""

    child_fds: list[str] = []

    def close(self) -> None:
        if self.fileno() >= 0 and not _WatchedSocket.child_fds:
            _WatchedSocket.child_fds = _settled_fds()
        super().close()


def _settled_fds(timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        kids = _children()
        if kids:
            try:
                targets = sorted(os.readlink(f"/proc/{kids[0]}/fd/{fd}") for fd in os.listdir(f"/proc/{kids[0]}/fd"))
            except FileNotFoundError:
                targets = []
            if len(targets) == 2 or time.monotonic() >= deadline:
                return targets
        elif time.monotonic() >= deadline:
            return []
        time.sleep(0.01)


def _hand_off() -> dict[str, Any]:
    stdout_r, stdout_w = os.pipe()  # stands for the runtime's stdout pipe: not CLOEXEC, like fd 1
    os.set_inheritable(stdout_w, True)
    stdout_target = os.readlink(f"/proc/self/fd/{stdout_w}")
    a, b = socket.socketpair()
    watched = _WatchedSocket(fileno=os.dup(a.fileno()))
    a.close()
    nl._close_elsewhere(watched)
    closed_here = watched.fileno() == -1
    b.settimeout(5)
    eof = b.recv(1) == b""  # the child dropped the last reference
    os.close(stdout_w)
    os.set_blocking(stdout_r, False)
    try:
        stdout_eof = os.read(stdout_r, 1) == b""
    except BlockingIOError:
        stdout_eof = False
    return {"closed_here": closed_here, "eof": eof, "child_fds": _WatchedSocket.child_fds,
            "stdout": stdout_target, "stdout_eof": stdout_eof, "children": _reap_all()}


def test_close_elsewhere_child_keeps_only_the_socket() -> None:
    with namespaces(1, "pycni-ann") as (ns,):
        out = run_in(ns, _hand_off)
    assert out["closed_here"] and out["eof"], out
    held = out["child_fds"]
    assert len(held) == 2 and any(t.startswith("socket:") for t in held) and any(t.startswith("pipe:") for t in held), held
    assert out["stdout"] not in held, out  # the runtime's stdout reaches EOF when the plugin exits
    assert out["stdout_eof"], out
    assert out["children"] == [0], out


def _kept_until_after_reply() -> dict[str, Any]:
    from shared import handoff

    handoff.released_after_reply = []
    a, b = socket.socketpair()
    nl._close_elsewhere(a)
    kept = handoff.released_after_reply == [a] and a.fileno() != -1
    handoff.released_after_reply = None
    return {"kept": kept, "children": _reap_all()}


def test_a_warm_worker_keeps_the_socket_until_it_exits_instead_of_forking() -> None:
    """A warm worker exits right after its caller has the answer: the close can wait until then."""
    with namespaces(1, "pycni-ann") as (ns,):
        out = run_in(ns, _kept_until_after_reply)
    assert out == {"kept": True, "children": []}, out
