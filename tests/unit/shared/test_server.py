"""The warm path's pure parts: request framing, launcher recognition, preload discovery, socket
activation, and the launcher's cheap import footprint."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shared import handoff, server
from shared.install import EXECUTABLES, install, render_launcher

ROOT = Path(__file__).resolve().parents[3]


def test_request_round_trip_keeps_every_byte() -> None:
    env = {b"CNI_COMMAND": b"ADD", b"CNI_ARGS": b"K8S_POD_NAME=a=b;X=", b"EMPTY": b"",
           b"RAW": b"\xff\xfe latin", b"BAD\0KEY": b"dropped"}
    frame = handoff.encode_request("bridge", 0o027, b"4:4026531841", env)
    assert frame.startswith(handoff.MAGIC)
    size = int.from_bytes(frame[len(handoff.MAGIC):len(handoff.MAGIC) + 4], "big")
    body = frame[len(handoff.MAGIC) + 4:]
    assert size == len(body)
    name, umask, mnt, decoded = handoff.decode_request(body)
    assert (name, umask, mnt) == ("bridge", 0o027, b"4:4026531841")
    assert decoded == {"CNI_COMMAND": "ADD", "CNI_ARGS": "K8S_POD_NAME=a=b;X=", "EMPTY": "",
                       "RAW": os.fsdecode(b"\xff\xfe latin")}
    assert os.fsencode(decoded["RAW"]) == b"\xff\xfe latin"  # surrogateescape: exact bytes again


@pytest.mark.parametrize("value", ["off", ""])
def test_handoff_disabled(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PYCNI_SOCKET", value)
    assert handoff.handoff("host-local") is None


def test_handoff_without_a_socket_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYCNI_SOCKET", str(tmp_path / "absent.sock"))
    assert handoff.handoff("host-local") is None
    (tmp_path / "plain").write_text("not a socket")
    monkeypatch.setenv("PYCNI_SOCKET", str(tmp_path / "plain"))
    assert handoff.handoff("host-local") is None


def test_handoff_to_a_socket_nobody_listens_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:
        monkeypatch.setenv("PYCNI_SOCKET", str(path))
        assert handoff.handoff("host-local") is None
    finally:
        s.close()


def test_default_socket_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYCNI_SOCKET", raising=False)
    assert handoff.socket_path() == "/run/pycni/pycni.sock"


def test_imports_inside_functions_are_found(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import os\n\ndef f():\n    from pyroute2 import IPRoute\n    import jsonschema.validators\n"
                   "    from . import sibling\n")
    assert server._imports_of(src) == {"os", "pyroute2", "pyroute2.IPRoute", "jsonschema.validators"}


def test_launchers_are_recognised_exactly(tmp_path: Path) -> None:
    paths = install(str(tmp_path))
    for delegates in (server.in_process_delegates(),  # the warm server's view
                      handoff.InProcess(None, "bridge", str(tmp_path / "bridge"))):  # a cold launcher's
        for path in paths:
            plugin = delegates.plugin_for(path)
            assert plugin is not None and plugin.name == Path(path).name
        edited = tmp_path / "edited"
        edited.write_text(render_launcher("host-local") + "# changed\n")
        other_python = tmp_path / "other"
        other_python.write_text(render_launcher("host-local", "/opt/another/bin/python3"))
        script = tmp_path / "script"
        script.write_text("#!/bin/sh\necho {}\n")
        for candidate in (edited, other_python, script, tmp_path / "missing"):
            assert delegates.plugin_for(str(candidate)) is None, candidate


def test_interpreter_may_be_spelt_differently(tmp_path: Path) -> None:
    link = tmp_path / "py"
    link.symlink_to(sys.executable)
    reference = render_launcher("bridge", sys.executable).encode()
    assert handoff.same_install(render_launcher("host-local", str(link)).encode(), reference, "bridge") == "host-local"


def test_in_process_delegate_runs_the_plugin(tmp_path: Path) -> None:
    binary = install(str(tmp_path))[list(EXECUTABLES).index("host-local")]
    outcome = server.in_process_delegates()(binary, {"CNI_COMMAND": "VERSION"}, b"")
    assert outcome.exit_code == 0 and "supportedVersions" in json.loads(outcome.stdout)
    assert server.in_process_delegates()(str(tmp_path / "nope"), {}, b"") is None


def test_socket_activation(tmp_path: Path) -> None:
    """LISTEN_PID/LISTEN_FDS: the listening socket is fd 3 and the variables are consumed."""
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "act.sock"))
    s.listen(1)
    code = ("import os, sys; sys.path.insert(0, %r); from shared.server import activated_socket; "
            "l = activated_socket(); print(l.getsockname(), l.fileno(), 'LISTEN_FDS' in os.environ)" % str(ROOT))
    out = subprocess.run(["bash", "-c", f'exec 3<&{s.fileno()}; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -c "$1"',
                          sys.executable, code], pass_fds=(s.fileno(),), capture_output=True, text=True, check=True)
    s.close()
    assert out.stdout.split() == [str(tmp_path / "act.sock"), "3", "False"]


def test_no_activation_for_another_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", "1")
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert server.activated_socket() is None


def test_bound_socket_is_root_only(tmp_path: Path) -> None:
    path = tmp_path / "run" / "pycni.sock"
    s = server.bind_socket(str(path))
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
    finally:
        s.close()


def test_launcher_hand_off_imports_nothing_heavy(tmp_path: Path) -> None:
    """The launcher's first step must stay cheap: not even `os`, let alone json, enum or socket."""
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))  # a socket file nobody listens on: the client gets as far as connect()
    code = ("import sys; sys.path[:0] = [%r]; before = set(sys.modules); import shared.handoff as h; "
            "r = h.handoff('host-local'); print(r, ' '.join(sorted(set(sys.modules) - before)))" % str(ROOT))
    try:
        for path, extra in ((tmp_path / "absent.sock", set()), (dead, {"_socket"})):
            out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                                 check=True, env={"PYCNI_SOCKET": str(path)})
            result, *loaded = out.stdout.split()
            assert result == "None"
            assert set(loaded) == {"shared", "shared.handoff"} | extra, out.stdout
    finally:
        s.close()


# --- worker reuse: a worker serves another request only if it is back where it started ------------

def _in_child(fn: Any, *args: Any) -> Any:
    """fn(*args) in a forked child (one thread, like a worker); its return value."""
    import pickle

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            data = pickle.dumps(("ok", fn(*args)))
        except BaseException as e:  # noqa: BLE001
            data = pickle.dumps(("err", repr(e)))
        os.write(w, data)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        kind, value = pickle.loads(f.read())
    os.waitpid(pid, 0)
    assert kind == "ok", value
    return value


def _baseline_after(change: str) -> dict[str, Any]:
    import threading

    mask = os.umask(0o022)
    os.umask(mask)
    cwd = os.getcwd()
    base = server.Baseline()
    os.environ["PYCNI_TEST_LEFTOVER"] = "1"
    os.chdir("/")
    os.umask(0o077)
    if change == "fd":
        os.open("/dev/null", os.O_RDONLY)
    elif change == "thread":
        threading.Thread(target=time.sleep, args=(1,), daemon=True).start()
    elif change == "child":
        import subprocess

        subprocess.Popen(["sleep", "1"])
    clean = base.restore()
    now = os.umask(0o022)
    return {"clean": clean, "env": "PYCNI_TEST_LEFTOVER" in os.environ, "cwd": os.getcwd() == cwd,
            "umask": now == mask}


@pytest.mark.parametrize("change, clean", [("nothing", True), ("fd", False), ("thread", False), ("child", False)])
def test_baseline_restores_the_worker_or_says_it_cannot(needs_root: None, change: str, clean: bool) -> None:
    """Environment, working directory and umask are put back; a leaked fd, a thread or a child
    process left running means the worker must not serve again."""
    assert _in_child(_baseline_after, change) == {"clean": clean, "env": False, "cwd": True, "umask": True}


# --- the pool's arithmetic (no processes: _spawn and the backlog are stand-ins) ---------------------

class _Pool(server.Pool):
    def __init__(self, size: int, limit: int, waiting: bool) -> None:
        a, b = socket.socketpair()
        self._sockets = (a, b)
        super().__init__(a, size, requests=32, limit=limit)
        self.spawned = 0
        self.waiting_now = waiting

    def _spawn(self) -> None:
        self.spawned += 1
        self.idle.add(1000 + self.spawned)
        self.freed_at = time.monotonic()

    def _waiting(self) -> bool:
        return self.waiting_now


def test_pool_keeps_its_idle_workers_within_the_limit() -> None:
    pool = _Pool(size=2, limit=4, waiting=True)
    pool._fill()
    assert pool.spawned == 2 and len(pool.idle) == 2
    pool.busy = {1, 2, 3}
    pool.idle = {4}
    pool._fill()  # one idle, three busy: at the limit, so no more even though requests wait
    assert pool.spawned == 2


def test_pool_forks_past_the_limit_only_when_requests_stall() -> None:
    pool = _Pool(size=1, limit=2, waiting=True)
    pool.busy, pool.idle = {1, 2}, set()
    pool.freed_at = time.monotonic()
    pool._fill()
    assert pool.spawned == 0  # a worker came free just now: wait for the next one
    pool.freed_at -= server.STALL
    pool._fill()
    assert pool.spawned == 1  # nobody came free for STALL seconds while requests wait
    pool.idle.clear()
    pool.waiting_now = False
    pool.freed_at -= server.STALL
    pool._fill()
    assert pool.spawned == 1  # nothing waits: nothing to do


def test_pool_reads_worker_notices_split_anywhere() -> None:
    pool = _Pool(size=1, limit=4, waiting=False)
    pool.idle = {7, 8}
    me = (7).to_bytes(4, sys.byteorder)
    pool._notified(me + server.BUSY + (8).to_bytes(4, sys.byteorder)[:2])
    assert pool.busy == {7} and pool.idle == {8}
    pool._notified((8).to_bytes(4, sys.byteorder)[2:] + server.BUSY + me + server.IDLE)
    assert pool.busy == {8} and pool.idle == {7}
    pool._notified((99).to_bytes(4, sys.byteorder) + server.IDLE)  # reaped already: ignored
    assert 99 not in pool.idle


# --- the closer: the last reference to a slow-to-close socket leaves the worker ----------------------

def _hand_over_through_release() -> dict[str, Any]:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    server._closer = mine
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    inode = os.fstat(slow.fileno()).st_ino
    handoff.released_after_reply = [slow]
    server._release_after_reply()
    data, fds = server._recv_fds(theirs, 1, 4)
    received = [os.fstat(fd).st_ino for fd in fds]
    for fd in fds:
        os.close(fd)
    return {"ours_closed": slow.fileno() == -1, "received": received == [inode],
            "list_reset": handoff.released_after_reply == []}


def test_release_after_reply_hands_the_last_reference_to_the_closer() -> None:
    assert _in_child(_hand_over_through_release) == {"ours_closed": True, "received": True, "list_reset": True}


def _closer_closes() -> bool:
    import select

    closer = server.Closer()
    r, w = os.pipe()
    closer.worker_end.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, w.to_bytes(4, sys.byteorder))])
    os.close(w)
    ready, _, _ = select.select([r], [], [], 5)  # EOF once the closer has closed its copy too
    eof = bool(ready) and os.read(r, 1) == b""
    os.kill(closer.pid, 9)
    os.waitpid(closer.pid, 0)
    return eof


def test_the_closer_process_closes_what_it_is_given() -> None:
    assert _in_child(_closer_closes) is True
