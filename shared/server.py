"""`pycni serve`: keep the plugins and their libraries loaded; run each handed-over invocation.

The installed `bridge` and `host-local` executables connect to a root-only unix socket
(shared/handoff.py has the client and the handshake). A connection is served by a worker, a child
process that joins the caller's network namespace and working directory, takes over the caller's
stdin, stdout and stderr, and calls the plugin's own `main()` with the caller's environment: the
bytes and the exit status are the ones the cold path would have produced. Workers are forked
ahead of time from a server that has imported and rehearsed the plugins (shared/rehearsal.py) and
wait in accept(); each checks SO_PEERCRED (uid 0 only). A worker serves another request only if
the last one succeeded and left it exactly as it was (Baseline); a failure, a crash or a leak ends
it. The parent only keeps the pool at size; a small closer process takes over sockets whose last
close would keep a worker waiting.

Socket activation: with LISTEN_PID/LISTEN_FDS set by systemd the first passed fd is used.
"""
from __future__ import annotations

import argparse
import ast
import gc
import importlib
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from .handoff import DEFAULT_SOCKET, EXECUTABLES, MAGIC, InProcess, decode_request

CLONE_NEWNET = 0x40000000
REQUEST_TIMEOUT = 5.0  # a client that does not send its request or its b"G" within this is dropped
MAX_REQUEST = 4 << 20
DEFAULT_POOL = 4
MAX_POOL = 64  # workers at most, even while requests wait on each other (a lock, the xtables lock)
DEFAULT_REQUESTS_PER_WORKER = 32
STALL = 0.1  # seconds with requests waiting and no worker free: then fork beyond the usual limit
PACKAGES = ("shared", "ipam_hostlocal", "bridge_plugin")
LEAN_PACKAGES = ("pyroute2",)  # the plugins import only submodules of these


def _log(msg: str) -> None:
    sys.stderr.write(f"pycni serve: {msg}\n")
    sys.stderr.flush()


# --- start-up: load everything once ---------------------------------------------------------

def _imports_of(path: Path) -> set[str]:
    """Every absolute module name a source file imports, including imports inside functions."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _bare_package(name: str) -> None:
    """Register a package without running its __init__ (as bridge_plugin.netlink does for pyroute2,
    whose __init__ imports NDB, IPDB, conntrack...): a smaller server forks and exits faster."""
    if name in sys.modules:
        return
    import importlib.util
    import types

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType(name)
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    sys.modules[name] = package


def preload(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Import the plugin packages and everything their code imports lazily, so no child pays for it."""
    loaded: list[str] = []
    wanted: set[str] = set()
    for name in LEAN_PACKAGES:
        _bare_package(name)
    for package in packages:
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        root = Path(module.__file__ or "").parent
        for source in sorted(root.rglob("*.py")):
            if "tests" in source.parts:
                continue
            rel = source.relative_to(root.parent).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            wanted.add(".".join(parts))
            wanted |= _imports_of(source)
    for name in sorted(wanted):
        if name.split(".")[0] in ("pytest", "hypothesis") or name.endswith(("__main__", ".demo")):
            continue
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # "from x import function" names are not modules; optional deps may be absent
            continue
    _warm_caches()
    return loaded


def _warm_caches() -> None:
    """Build the JSON Schema validators now rather than in every child."""
    try:
        from . import schema

        directory = Path(schema.__file__).parent / "schemas"
        for stem in sorted(p.stem for p in directory.glob("*.json")):
            schema._validator(stem)
    except Exception as e:  # a broken schema shows up in the request that uses it, as in the cold path
        _log(f"schema warm-up skipped: {e}")


# --- which plugin runs what -----------------------------------------------------------------

def _plugin_module(name: str) -> Any:
    return importlib.import_module(EXECUTABLES[name])


def in_process_delegates() -> InProcess:
    """Delegation to our own installed host-local is served in the worker (see shared.handoff)."""
    from .install import render_launcher

    return InProcess(render_launcher("bridge", sys.executable).encode(), "bridge")


# --- one request, in a forked child -----------------------------------------------------------

def _libc_call(name: str, *args: int) -> None:
    """A libc call Python 3.11's os module lacks (setns, unshare, prctl); OSError on failure."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), name)


def _setns(fd: int) -> None:
    _libc_call("setns", fd, CLONE_NEWNET)


def _recv_fds(conn: socket.socket, size: int, max_fds: int) -> tuple[bytes, list[int]]:
    data, ancdata, _flags, _addr = conn.recvmsg(size, socket.CMSG_SPACE(max_fds * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i:i + 4], sys.byteorder, signed=True)
                    for i in range(0, usable, 4)]
    return data, fds


def _read_request(conn: socket.socket) -> tuple[bytes, list[int]]:
    header = len(MAGIC) + 4
    data, fds = _recv_fds(conn, 65536, 16)
    while len(data) < header:
        chunk = conn.recv(header - len(data))
        if not chunk:
            raise ConnectionError("short request")
        data += chunk
    if data[:len(MAGIC)] != MAGIC:
        raise ConnectionError("bad magic")
    size = int.from_bytes(data[len(MAGIC):header], "big")
    if size > MAX_REQUEST:
        raise ConnectionError("request too large")
    body = data[header:]
    while len(body) < size:
        chunk = conn.recv(min(65536, size - len(body)))
        if not chunk:
            raise ConnectionError("short request")
        body += chunk
    return body[:size], fds


def _own_mnt_id() -> bytes:
    st = os.stat("/proc/self/ns/mnt")
    return f"{st.st_dev}:{st.st_ino}".encode()


def _take_over_stdio(stdin: int, stdout: int, stderr: int) -> None:
    for src, dst in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(src, dst)
    # as a fresh interpreter sets them up (UTF-8 here; stderr line-buffered, never failing)
    sys.stdin = open(0, "r", encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1,
                      closefd=False)


class ClientWatch:
    """If the caller is killed (a runtime's timeout, SIGKILL), the request dies at that point too,
    as it would have in the caller's own process; it must not run on beside a retry. The client
    sends nothing after b"G", so any event on the connection means it is gone. stop() ends the
    watch before the status goes out (the client then hangs up, which is no reason to die)."""

    def __init__(self, conn: socket.socket) -> None:
        import threading

        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._watch, args=(conn.fileno(),), name="pycni-client-watch",
                                        daemon=True)
        self._thread.start()

    def _watch(self, fd: int) -> None:
        import select

        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLRDHUP)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            if any(ready == self._stop_r for ready, _ in events):
                return
            os.kill(os.getpid(), signal.SIGKILL)

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join()
        os.close(self._stop_r)
        os.close(self._stop_w)


def _release_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _run_main(name: str) -> int:
    """What the launcher's `sys.exit(main())` would have exited with."""
    try:
        code = _plugin_module(name).main()
    except SystemExit as e:
        code = e.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code & 0xFF


def serve_connection(conn: socket.socket, names: frozenset[str]) -> bool:
    """Child side. Nothing happens before the client's b"G"; after it, exactly one run.
    Returns whether a request ran and exited 0 (only then may the worker serve another)."""
    conn.settimeout(REQUEST_TIMEOUT)
    payload, fds = _read_request(conn)
    stdio: list[int] = []
    committed = False
    try:
        name, umask, mnt_id, env = decode_request(payload)
        if name not in names or len(fds) != 2 or mnt_id != _own_mnt_id():
            conn.sendall(b"N")  # different mount namespace: paths would mean something else
            return False
        netns, cwd = fds
        _plugin_module(name)  # everything that can fail goes before b"?" (then the client runs cold)
        _setns(netns)
        os.fchdir(cwd)
        conn.sendall(b"?")
        go, stdio = _recv_fds(conn, 1, 3)
        committed = go == b"G" and len(stdio) == 3
        if not committed:
            return False  # the client gave up and runs the cold path itself
    except (OSError, ValueError, ConnectionError, ImportError):
        return False
    finally:
        for fd in fds + ([] if committed else stdio):
            os.close(fd)
    conn.settimeout(None)
    watch = ClientWatch(conn)
    os.umask(umask)
    os.environ.clear()
    os.environ.update(env)
    _take_over_stdio(*stdio)
    for fd in stdio:
        os.close(fd)
    code = _run_main(name)
    _release_stdio()  # the caller's stdout reaches EOF as soon as its launcher exits
    watch.stop()
    conn.sendall(b"=" + bytes([code]))
    _release_after_reply()
    return code == 0


CLOSER_NAME = "pycni-closer"
# A socket a worker hands to the closer (see Closer); None: close things where they are.
_closer: Optional[socket.socket] = None


def _release_after_reply() -> None:
    """What the plugin left for after the reply (shared.handoff.released_after_reply), released now:
    handed to the closer process if there is one, else closed here."""
    from . import handoff

    kept = handoff.released_after_reply or []
    handoff.released_after_reply = []
    if kept and _closer is not None:
        try:
            _closer.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                      b"".join(obj.fileno().to_bytes(4, sys.byteorder, signed=True) for obj in kept))])
        except OSError:
            pass  # no closer: the closes below are the last ones and wait here
    for obj in kept:
        try:
            obj.close()
        except Exception:  # noqa: BLE001 - closing is best effort; the worker's exit closes the rest
            pass


class Closer:
    """A small child of the server that takes over the last reference to sockets whose close waits
    for an RCU grace period (an AF_PACKET socket's release calls synchronize_net(): 10-30 ms). A
    worker sends them here over a unix socket and closes its own copy at once, so it is free for
    the next request that much sooner; here each batch is closed in its own thread, so the waits
    overlap. If the closer is gone, workers close the sockets themselves."""

    def __init__(self) -> None:
        self.worker_end, self._own_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.pid = os.fork()
        if self.pid == 0:
            self.worker_end.close()
            self._serve()
        self._own_end.close()

    def _serve(self) -> None:
        import threading

        try:
            for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            _die_with_parent()
            with open("/proc/self/comm", "w") as comm:
                comm.write(CLOSER_NAME)  # so ps (and the tests) can tell it from the workers
            while True:
                _data, fds = _recv_fds(self._own_end, 1, 64)
                if not _data:
                    break
                if fds:
                    threading.Thread(target=self._close_all, args=(fds,), daemon=True).start()
        except BaseException:  # noqa: BLE001 - the server's workers fall back to closing themselves
            pass
        finally:
            os._exit(0)

    @staticmethod
    def _close_all(fds: list[int]) -> None:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


class Baseline:
    """A worker as it waits for a request. A worker serves another request only if the one before
    succeeded and it can be put back exactly so: same namespace, working directory, umask,
    environment, open files, no threads or child processes, stdio on /dev/null. Anything else and it exits."""

    def __init__(self) -> None:
        self.netns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.environ = dict(os.environ)
        self.fds = self._fds()
        self.netns_ino = os.fstat(self.netns).st_ino

    @staticmethod
    def _fds() -> frozenset[str]:
        return frozenset(os.listdir("/proc/self/fd"))

    @staticmethod
    def _threads() -> int:
        return len(os.listdir("/proc/self/task"))

    @staticmethod
    def _children() -> str:
        """Processes the request started and left running (a joined thread's are reparented to us)."""
        pid = os.getpid()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return f.read().strip()
        except OSError:
            return "unknown"

    def restore(self) -> bool:
        try:
            _setns(self.netns)
            os.fchdir(self.cwd)
        except OSError:
            return False
        os.umask(self.umask)
        os.environ.clear()
        os.environ.update(self.environ)
        gc.collect()  # what the request left in cycles (the worker runs with automatic GC off)
        for _ in range(20):  # a joined thread's task may linger for a moment
            if self._threads() == 1:
                break
            time.sleep(0.0005)
        fds = self._fds()  # listing opens one fd of its own, in both listings
        return (fds == self.fds and self._threads() == 1 and not self._children()
                and os.stat("/proc/thread-self/ns/net").st_ino == self.netns_ino)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[4:8], sys.byteorder)


BUSY, IDLE = b"B", b"I"


def _worker(listener: socket.socket, notify: int, names: frozenset[str],
            hook: Optional[Callable[..., Any]], requests: int = DEFAULT_REQUESTS_PER_WORKER) -> None:
    """A pre-forked child: accept a connection, tell the parent, serve it; again (at most
    `requests` times) while every request succeeds and leaves the process as it found it."""
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # idle: SIGTERM from the parent simply ends us
    gc.disable()  # short-lived: exit frees everything
    _die_with_parent()
    from . import handoff, invoke

    invoke.in_process = hook
    handoff.released_after_reply = []  # released after the reply, or by the kernel at os._exit
    log = os.fdopen(os.dup(2), "w", buffering=1)  # the server's log: fd 2 becomes each caller's stderr
    baseline = Baseline()
    me = os.getpid().to_bytes(4, sys.byteorder)
    try:
        for served in range(max(1, requests)):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # idle: the parent may trim us
            while True:
                conn, _ = listener.accept()
                if _peer_uid(conn) == 0:
                    break
                conn.close()  # not root: refuse, keep waiting
            # Busy from here: a stopping server lets us finish. If we die before our b"?" the
            # client falls back to its cold path, which is safe: nothing has run.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.write(notify, me + BUSY)
            try:
                ok = serve_connection(conn, names)
            finally:
                conn.close()
            if not ok or served == requests - 1 or not baseline.restore():
                break
            os.write(notify, me + IDLE)
    except BaseException:
        traceback.print_exc(file=log)
    finally:
        os._exit(0)


def _die_with_parent() -> None:
    """An idle worker must not outlive a killed server (it would hold the socket open)."""
    PR_SET_PDEATHSIG = 1
    _libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGTERM)


class Pool:
    """Keep `size` idle pre-forked workers blocked in accept() on the listening socket.

    Forking a process with pyroute2 and jsonschema loaded takes milliseconds; doing it ahead of
    time takes it off the request's path. A worker serves up to `requests` requests, one at a
    time, as long as each succeeds and leaves the worker as it found it (Baseline); so a burst is
    served by `limit` workers rather than by one fork each, which the CPU would pay for
    (fork, first-touch copies of the server's pages, exit). `requests` 1 gives every request a
    fresh process. Requests beyond `limit` wait in the listen backlog; if they wait while no
    worker has come free for STALL seconds (requests blocked on a lock), one more worker is
    forked, up to MAX_POOL.
    """

    def __init__(self, listener: socket.socket, size: int, requests: int = DEFAULT_REQUESTS_PER_WORKER,
                 limit: int | None = None) -> None:
        self.listener = listener
        self.size = max(1, size)
        self.requests = max(1, requests)
        if limit is None:
            limit = max(self.size, 8 * (os.cpu_count() or 1)) if self.requests > 1 else MAX_POOL
        self.limit = max(self.size, min(limit, MAX_POOL))
        self.names = frozenset(EXECUTABLES)
        self.hook = in_process_delegates()
        self.idle: set[int] = set()
        self.busy: set[int] = set()
        self.notify_r, self.notify_w = os.pipe2(os.O_CLOEXEC)
        self.closer: Optional[Closer] = None
        self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.pending = b""
        self.freed_at = 0.0  # when a worker last became available (spawned or idle again)

    def _spawn(self) -> None:
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            os.close(self.notify_r)
            os.close(self.wake_r)
            os.close(self.wake_w)
            global _closer
            _closer = self.closer.worker_end if self.closer is not None else None
            _worker(self.listener, self.notify_w, self.names, self.hook, self.requests)
        self.idle.add(pid)
        self.freed_at = time.monotonic()

    def _notified(self, data: bytes) -> None:
        """Workers write their pid and B (took a request) or I (ready for another)."""
        self.pending += data
        usable = len(self.pending) - len(self.pending) % 5
        for i in range(0, usable, 5):
            pid = int.from_bytes(self.pending[i:i + 4], sys.byteorder)
            if self.pending[i + 4:i + 5] == BUSY:
                self.idle.discard(pid)
                self.busy.add(pid)
            elif pid in self.busy:  # not if it was reaped meanwhile
                self.busy.discard(pid)
                self.idle.add(pid)
                self.freed_at = time.monotonic()
        self.pending = self.pending[usable:]

    def _reap(self) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.idle.discard(pid)
            self.busy.discard(pid)

    def _trim(self) -> None:
        for pid in sorted(self.idle)[self.size:]:
            try:
                os.kill(pid, signal.SIGTERM)  # idle workers die on SIGTERM; busy ones ignore it
            except OSError:
                pass

    def _waiting(self) -> bool:
        """Connections wait in the listen backlog."""
        import select

        return bool(select.select([self.listener], [], [], 0)[0])

    def _fill(self) -> None:
        try:
            while len(self.idle) < self.size and len(self.idle) + len(self.busy) < self.limit:
                self._spawn()
            if (not self.idle and len(self.busy) < MAX_POOL
                    and time.monotonic() - self.freed_at >= STALL and self._waiting()):
                self._spawn()  # every worker is held up (a lock?) while requests wait
        except OSError as e:
            _log(f"fork failed: {e}")  # clients fall back to the cold path meanwhile

    def run(self, ready: Optional[Callable[[], None]] = None) -> None:
        import select

        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select() via the wakeup fd
        gc.collect()
        gc.freeze()  # keep the preloaded objects' pages shared with the children
        try:
            try:
                self.closer = Closer()
            except OSError as e:
                _log(f"no closer process ({e}): workers close their own AF_PACKET sockets")
            for _ in range(self.size):
                self._spawn()
            if ready:
                ready()
            active = time.monotonic()
            while True:
                starved = not self.idle and len(self.busy) >= self.limit
                readable, _, _ = select.select([self.notify_r, self.wake_r], [], [],
                                               STALL / 2 if starved else 1.0)
                now = time.monotonic()
                if readable:
                    active = now
                elif now - active >= 1.0:
                    self._trim()  # a quiet second: shrink back after a burst
                    active = now
                if self.notify_r in readable:
                    self._notified(os.read(self.notify_r, 4096))
                if self.wake_r in readable:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                self._reap()
                self._fill()
        finally:
            for pid in list(self.idle):  # idle workers hold no request; busy ones finish theirs
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass


def activated_socket() -> Optional[socket.socket]:
    """The listening socket systemd passed us (sd_listen_fds), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    if count < 1:
        return None
    os.set_inheritable(3, False)
    return socket.socket(fileno=3)


class AlreadyServing(Exception):
    """Another `pycni serve` holds this socket path."""


def claim_socket_path(path: str) -> Any:
    """Hold `<path>.lock` for the server's lifetime.

    Without it a second server would unlink the first one's socket and take over its path, and
    when either exited it would unlink the socket the other still serves. filelock is right here:
    the server is long-lived, so its import cost does not matter, and nothing else shares the file.
    """
    from filelock import FileLock, Timeout

    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    lock = FileLock(path + ".lock", timeout=0, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        raise AlreadyServing(f"another pycni serve is already serving {path}") from None
    return lock


def bind_socket(path: str) -> socket.socket:
    """A root-only listening socket: directory 0700 when we create it, socket 0600.

    The caller holds the path's claim (claim_socket_path), so a socket file found here is a
    stale one left by a server that died."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def _stop(*_: Any) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        args = args[1:]
    parser = argparse.ArgumentParser(prog="pycni serve", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default=None,
                        help=f"listening socket path (default: $PYCNI_SOCKET or {DEFAULT_SOCKET}; "
                             "ignored under socket activation)")
    parser.add_argument("--no-preload", action="store_true", help="do not import the plugins up front")
    parser.add_argument("--no-rehearsal", action="store_true",
                        help="do not rehearse ADD/CHECK/DEL in private namespaces at start-up")
    parser.add_argument("--workers", type=int, default=DEFAULT_POOL,
                        help=f"idle pre-forked workers kept ready (default {DEFAULT_POOL})")
    parser.add_argument("--requests-per-worker", type=int, default=DEFAULT_REQUESTS_PER_WORKER,
                        help="requests a worker may serve, one after another, while each succeeds and leaves it "
                             f"as it was (default {DEFAULT_REQUESTS_PER_WORKER}; 1: a fresh process per request)")
    ns = parser.parse_args(args)
    if os.geteuid() != 0:
        _log("must run as root (it configures network namespaces for root callers)")
        return 1
    listener = activated_socket()
    if not ns.no_preload:
        preload()  # before binding: until we can serve quickly, callers take the cold path at once
        if not ns.no_rehearsal:
            from .rehearsal import rehearse

            for problem in rehearse():
                _log(f"rehearsal: {problem}")
    path = None
    claim = None
    if listener is None:
        path = ns.socket or os.environ.get("PYCNI_SOCKET") or DEFAULT_SOCKET
        try:
            claim = claim_socket_path(path)
        except AlreadyServing as e:
            _log(str(e))
            return 1
        listener = bind_socket(path)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        Pool(listener, ns.workers, ns.requests_per_worker).run(ready=lambda: _log(f"ready on {path or 'the activated socket'}"))
    finally:
        listener.close()
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass
        if claim is not None:
            claim.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
