"""Warm path (`pycni serve`) against cold path: the same requests give the same bytes and status.

The installed executables run inside throw-away "host" namespaces (nsenter --net, same mount
namespace); the server listens on a socket in a tmp dir (PYCNI_SOCKET) inside its own throw-away
namespace and is always stopped by its fixture. Whether a call was really served warm is read off
the server's process tree: a worker that serves a request uses CPU (idle workers wait in accept()
and use none), and taking a worker may make the pool fork a new one.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support import netns
from tests.support.plugin import cni_env
from tests.support.warm import stop_server

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.root


@dataclass
class Server:
    pid: int
    sock: str

    def _children(self) -> dict[str, str]:
        """The server's children: pid -> process name."""
        try:
            pids = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return {}
        out = {}
        for pid in pids:
            try:
                out[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
        return out

    def workers(self) -> set[str]:
        """The server's children but its closer process (shared.server.Closer)."""
        return {pid for pid, name in self._children().items() if name != "pycni-closer"}

    def closer_named(self) -> bool:
        """The closer has taken its name (until then it looks like a worker)."""
        return "pycni-closer" in self._children().values()

    def activity(self) -> dict[str, int]:
        """CPU nanoseconds each worker's main thread has run (schedstat), by pid."""
        out = {}
        for pid in self.workers():
            try:
                out[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return out


def start_server(sock: Path, ns: netns.Namespace, workers: int = 2, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(["nsenter", f"--net={ns.path}", "--", sys.executable, "-m", "shared.cli", "serve",
                             "--socket", str(sock), "--workers", str(workers), *extra],
                            cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"pycni serve did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    deadline = time.monotonic() + 10  # the pool is filled right after the socket appears
    srv = Server(proc.pid, str(sock))
    while (not srv.closer_named() or len(srv.workers()) < workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_dir: Path) -> Iterator[Server]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces and the root-only socket")
    sock = tmp_path_factory.mktemp("warm") / "run" / "pycni.sock"
    ns = netns.create("pw-srv")
    proc = None
    try:
        proc = start_server(sock, ns)
        yield Server(proc.pid, str(sock))
    finally:
        if proc is not None:
            stop_server(proc)
        netns.delete(ns)


@pytest.fixture
def hosts(needs_root: None) -> Iterator[list[netns.Namespace]]:
    """Two host namespaces (cold, warm) and two container namespaces (cold, warm)."""
    with netns.namespaces(4, "pw") as made:
        yield made


def run(binary: Path, host: netns.Namespace, env: dict[str, str], stdin: bytes) -> tuple[bytes, int, bytes]:
    proc = host.exec([str(binary)], input=stdin, env=env, capture_output=True, timeout=60)
    return proc.stdout, proc.returncode, proc.stderr


def served(server: Server, before: dict[str, int], timeout: float = 2.0) -> bool:
    """Did a worker take a request since `before` (server.activity()) was read? A worker that
    existed then has run since, a new one was forked, or one has gone (a failed request ends its
    worker; a trim after a quiet second would too, which these sequential calls leave no time for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = server.activity()
        if any(pid not in before or ns > before[pid] for pid, ns in now.items()) or set(before) - set(now):
            return True
        time.sleep(0.01)
    return False


def worker_in(server: Server, ns: netns.Namespace, timeout: float = 5.0) -> bool:
    """Is a worker of the server running inside `ns` (it joins the caller's namespace)?"""
    target = os.stat(ns.path).st_ino
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in server.workers():
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == target:
                    return True
            except OSError:
                continue
        time.sleep(0.01)
    return False


def both(server: Server, plugin_dir: Path, plugin: str, hosts: list[netns.Namespace], command: str,
         config: Any, cid: str = "c1", data: tuple[Path, Path] | None = None,
         **env_kw: Any) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
    """One request cold (hosts[0], container hosts[2]) and warm (hosts[1], container hosts[3])."""
    outs = []
    for i, sock in enumerate(("off", server.sock)):
        conf = config
        if data is not None and isinstance(config, dict):
            conf = json.loads(json.dumps(config).replace("@DATA@", str(data[i])))
        stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
        env = cni_env(command, cid, hosts[2 + i].path, "eth0", "", str(plugin_dir), {"PYCNI_SOCKET": sock})
        for key, value in env_kw.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        before = server.activity()
        stdout, status, _ = run(plugin_dir / plugin, hosts[i], env, stdin)
        if i == 1:
            assert served(server, before), "the warm call fell back to the cold path"
        outs.append((stdout, status))
    return outs[0], outs[1]


def hl_conf(version: str = "1.0.0", subnet: str = "10.77.0.0/24") -> dict[str, Any]:
    return {"cniVersion": version, "name": "warmnet", "type": "host-local",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": "@DATA@"}}


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "cold", tmp_path / "warm"


# --- identical behaviour ----------------------------------------------------------------------

def test_host_local_verbs_identical(server, plugin_dir, hosts, data):
    conf = hl_conf()
    cold, warm = both(server, plugin_dir, "host-local", hosts, "ADD", conf, data=data)
    assert cold == warm and cold[1] == 0 and json.loads(cold[0])["ips"]
    conf["prevResult"] = json.loads(cold[0])
    for command in ("CHECK", "DEL", "DEL"):
        cold, warm = both(server, plugin_dir, "host-local", hosts, command, conf, data=data)
        assert cold == warm == (b"", 0), (command, cold, warm)
    assert sorted(p.name for p in (data[0] / "warmnet").iterdir()) == \
        sorted(p.name for p in (data[1] / "warmnet").iterdir())


FAILURES = [
    ("bad json", "ADD", b"{not json", {}),
    ("bad subnet", "ADD", hl_conf(subnet="10.77.0.0/33"), {}),
    ("unsupported version", "ADD", hl_conf(version="9.9.9"), {}),
    ("missing container id", "ADD", hl_conf(), {"CNI_CONTAINERID": None}),
    ("missing ifname", "DEL", hl_conf(), {"CNI_IFNAME": None}),
    ("unknown command", "FROB", hl_conf(), {}),
    ("check without add", "CHECK", hl_conf(), {}),
    ("version", "VERSION", hl_conf(), {}),
]


@pytest.mark.parametrize("what,command,config,env", FAILURES, ids=[f[0] for f in FAILURES])
def test_host_local_failures_identical(server, plugin_dir, hosts, data, what, command, config, env):
    cold, warm = both(server, plugin_dir, "host-local", hosts, command, config, data=data, **env)
    assert cold == warm, what
    if command != "VERSION":
        assert cold[1] != 0 and json.loads(cold[0])["code"] > 0


MAC = re.compile(rb'"mac": "[0-9a-f:]{17}"')
VETH = re.compile(rb'"name": "veth[0-9a-f]+"')


def normalise(stdout: bytes, hosts: list[netns.Namespace], i: int) -> bytes:
    """Only what is random per attachment (MACs, host veth names, the netns path) is masked."""
    out = MAC.sub(b'"mac": "MAC"', stdout)
    out = VETH.sub(b'"name": "VETH"', out)
    return out.replace(hosts[2 + i].path.encode(), b"NETNS")


def bridge_conf(**extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "warmbr", "type": "bridge", "bridge": "pwbr0",
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.78.0.0/24"}]], "dataDir": "@DATA@"},
            **extra}


def test_bridge_verbs_identical(server, plugin_dir, hosts, data):
    """bridge's host-local delegation is served in-process in the warm server."""
    conf = bridge_conf()
    cold, warm = both(server, plugin_dir, "bridge", hosts, "ADD", conf, data=data)
    assert cold[1] == warm[1] == 0, (cold, warm)
    assert normalise(cold[0], hosts, 0) == normalise(warm[0], hosts, 1)
    for i, out in enumerate((cold, warm)):
        link = hosts[2 + i].ip("-j", "addr", "show", "eth0")
        assert "10.78.0.2" in link.stdout, link.stdout
    prevs = [json.loads(cold[0]), json.loads(warm[0])]
    for command in ("CHECK", "DEL"):
        outs = []
        for i in range(2):
            c = {**conf, "prevResult": prevs[i], "ipam": {**conf["ipam"], "dataDir": str(data[i])}}
            env = cni_env(command, "c1", hosts[2 + i].path, "eth0", "", str(plugin_dir),
                          {"PYCNI_SOCKET": ("off", server.sock)[i]})
            outs.append(run(plugin_dir / "bridge", hosts[i], env, json.dumps(c).encode())[:2])
        assert outs[0] == outs[1] == (b"", 0), (command, outs)
    for i in range(2):
        assert "eth0" not in hosts[2 + i].ip("link", "show").stdout


def test_bridge_ipam_failure_identical(server, plugin_dir, hosts, data):
    conf = bridge_conf()
    conf["ipam"]["ranges"] = [[{"subnet": "10.78.0.0/33"}]]
    cold, warm = both(server, plugin_dir, "bridge", hosts, "ADD", conf, data=data)
    assert cold == warm and cold[1] != 0, (cold, warm)


# --- fallback and the no-second-run rule ------------------------------------------------------

def _hl_add(plugin_dir, host, container, data_dir, sock, **extra_env):
    conf = json.dumps(hl_conf()).replace("@DATA@", str(data_dir)).encode()
    env = cni_env("ADD", "c1", container.path, "eth0", "", str(plugin_dir), {"PYCNI_SOCKET": sock, **extra_env})
    return run(plugin_dir / "host-local", host, env, conf)


def _reservations(data_dir: Path) -> list[str]:
    d = data_dir / "warmnet"
    return sorted(p.name for p in d.iterdir() if p.name[0].isdigit()) if d.exists() else []


def test_fallback_when_server_absent(plugin_dir, hosts, tmp_path):
    out, status, _ = _hl_add(plugin_dir, hosts[0], hosts[2], tmp_path, str(tmp_path / "nobody.sock"))
    assert status == 0 and _reservations(tmp_path) == ["10.77.0.2"]


def test_fallback_when_nobody_listens(plugin_dir, hosts, tmp_path):
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))  # bound, never listening: like a socket file left by a dead server
    try:
        out, status, _ = _hl_add(plugin_dir, hosts[0], hosts[2], tmp_path, str(path))
    finally:
        s.close()
    assert status == 0 and _reservations(tmp_path) == ["10.77.0.2"]


def test_fallback_when_server_does_not_accept(plugin_dir, hosts, tmp_path):
    path = tmp_path / "slow.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen(8)  # the kernel queues the connection; nobody ever answers
    try:
        start = time.monotonic()
        out, status, _ = _hl_add(plugin_dir, hosts[0], hosts[2], tmp_path, str(path),
                                 PYCNI_HANDOFF_TIMEOUT="0.3")
        assert time.monotonic() - start < 10
    finally:
        s.close()
    assert status == 0 and _reservations(tmp_path) == ["10.77.0.2"]


def _fake_server(path: Path, script: list[bytes | None]) -> tuple[socket.socket, threading.Thread, list[bytes]]:
    """Accept one connection and follow `script`: bytes to send, or None to read one byte."""
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = s.accept()
        with conn:
            conn.settimeout(10)
            msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(64))
            for _level, _kind, payload in anc:
                for i in range(0, len(payload) - len(payload) % 4, 4):
                    os.close(int.from_bytes(payload[i:i + 4], sys.byteorder))
            for step in script:
                if step is None:
                    got.append(conn.recv(1))
                else:
                    conn.sendall(step)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return s, t, got


def test_fallback_when_server_declines(plugin_dir, hosts, tmp_path):
    s, t, _ = _fake_server(tmp_path / "no.sock", [b"N"])
    try:
        out, status, _ = _hl_add(plugin_dir, hosts[0], hosts[2], tmp_path, str(tmp_path / "no.sock"))
        t.join(10)
    finally:
        s.close()
    assert status == 0 and _reservations(tmp_path) == ["10.77.0.2"]


def test_server_lost_after_commit_is_try_again_not_a_second_run(plugin_dir, hosts, tmp_path):
    s, t, got = _fake_server(tmp_path / "die.sock", [b"?", None])  # takes the request, then vanishes
    try:
        out, status, _ = _hl_add(plugin_dir, hosts[0], hosts[2], tmp_path, str(tmp_path / "die.sock"))
        t.join(10)
    finally:
        s.close()
    assert got == [b"G"]
    assert status == 1 and json.loads(out)["code"] == 11
    assert _reservations(tmp_path) == []  # the client did not run it cold as well


def test_fallback_after_server_killed(plugin_dir, hosts, tmp_path, needs_root):
    sock = tmp_path / "run" / "pycni.sock"
    proc = start_server(sock, hosts[1])
    try:
        pid = proc.pid
        workers = Server(pid, str(sock)).workers()
        os.kill(pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5  # idle workers die with their parent (PR_SET_PDEATHSIG)
        while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sock.exists()  # SIGKILL leaves the socket file behind
        out, status, _ = _hl_add(plugin_dir, hosts[0], hosts[2], tmp_path, str(sock))
    finally:
        stop_server(proc)
    assert status == 0 and _reservations(tmp_path) == ["10.77.0.2"]


def test_non_root_peer_is_refused(server, tmp_path):
    """SO_PEERCRED: a connection from uid != 0 gets no b"?" (here the socket is opened up on purpose)."""
    os.chmod(server.sock, 0o666)
    os.chmod(os.path.dirname(server.sock), 0o755)
    dir_fd = os.open(os.path.dirname(server.sock), os.O_RDONLY | os.O_DIRECTORY)  # skip 0700 parents
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgid(65534)
            os.setuid(65534)
            from shared.handoff import MAGIC
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(5)
            c.connect(f"/proc/self/fd/{dir_fd}/{os.path.basename(server.sock)}")
            body = b"host-local\x0022\x00x"
            c.sendall(MAGIC + len(body).to_bytes(4, "big") + body)
            answer = c.recv(1)
            os.write(w, b"EOF" if answer == b"" else answer)
        except Exception as e:  # noqa: BLE001
            os.write(w, f"error {e}".encode())
        os._exit(0)
    os.close(w)
    os.close(dir_fd)
    os.waitpid(pid, 0)
    answer = os.read(r, 100)
    os.close(r)
    os.chmod(server.sock, 0o600)
    # the worker closes the connection unanswered: EOF, or EPIPE/ECONNRESET for the sender
    assert answer in (b"EOF", b"error [Errno 32] Broken pipe", b"error [Errno 104] Connection reset by peer"), answer


def test_concurrent_warm_requests_get_distinct_addresses(server, plugin_dir, hosts, tmp_path):
    """Each request runs in its own worker; 8 at once all succeed and never share an address."""
    results: list[tuple[bytes, int, bytes]] = [(b"", -1, b"")] * 8
    conf = json.dumps(hl_conf()).replace("@DATA@", str(tmp_path)).encode()

    def call(i: int) -> None:
        env = cni_env("ADD", f"cc{i}", hosts[2].path, "eth0", "", str(plugin_dir), {"PYCNI_SOCKET": server.sock})
        results[i] = run(plugin_dir / "host-local", hosts[0], env, conf)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(status == 0 for _, status, _ in results), results
    ips = {json.loads(out)["ips"][0]["address"] for out, _, _ in results}
    assert len(ips) == 8 and len(_reservations(tmp_path)) == 8


def test_killing_the_caller_kills_the_warm_request(server, plugin_dir, hosts, tmp_path):
    """SIGKILL of the executable stops the request where it is, as in the cold path: the worker
    must not finish it behind the runtime's back (here: ADD blocked on host-local's lock)."""
    import fcntl

    net_dir = tmp_path / "warmnet"
    net_dir.mkdir()
    lock = os.open(net_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        conf = json.dumps(hl_conf()).replace("@DATA@", str(tmp_path)).encode()
        env = cni_env("ADD", "killed", hosts[2].path, "eth0", "", str(plugin_dir), {"PYCNI_SOCKET": server.sock})
        proc = subprocess.Popen(["nsenter", f"--net={hosts[0].path}", "--", str(plugin_dir / "host-local")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        proc.stdin.write(conf)
        proc.stdin.close()
        assert worker_in(server, hosts[0]), "the call did not go to the server"
        time.sleep(0.3)  # the worker now waits for the lock
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        time.sleep(0.5)  # the worker notices the hang-up and dies
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    time.sleep(0.3)
    assert _reservations(tmp_path) == []  # the request died with its caller


def test_socket_activation_end_to_end(plugin_dir, hosts, tmp_path):
    """systemd-style activation (LISTEN_FDS): the server uses the socket it is handed."""
    import shutil

    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("systemd-socket-activate is not installed")
    sock = tmp_path / "act.sock"
    proc = subprocess.Popen(["nsenter", f"--net={hosts[1].path}", "--", activate, "-l", str(sock), "--",
                             sys.executable, "-m", "shared.cli", "serve", "--workers", "2"],
                            cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        srv = Server(proc.pid, str(sock))  # activate execs the server on the first connection: same pid
        first = tmp_path / "first"
        out, status, _ = _hl_add(plugin_dir, hosts[0], hosts[2], first, str(sock))  # starts it (or runs cold)
        assert status == 0 and _reservations(first) == ["10.77.0.2"], out
        deadline = time.monotonic() + 60
        while len(srv.workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = srv.activity()
        out, status, _ = _hl_add(plugin_dir, hosts[0], hosts[2], tmp_path, str(sock))
        assert status == 0 and _reservations(tmp_path) == ["10.77.0.2"], out
        assert served(srv, before), "the call was not served by the activated server"
    finally:
        stop_server(proc)


def test_systemd_units_in_the_docs_verify(tmp_path):
    """The unit pair documented in docs/performance.md passes `systemd-analyze verify`."""
    import shutil

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    doc = (ROOT / "docs" / "performance.md").read_text()
    blocks = re.findall(r"`/etc/systemd/system/(pycni\.\w+)`:\n\n((?:    .*\n|\n)+?)(?=\S)", doc)
    assert sorted(name for name, _ in blocks) == ["pycni.service", "pycni.socket"]
    pycni = Path(sys.executable).parent / "pycni"
    for name, body in blocks:
        text = "\n".join(line[4:] for line in body.splitlines())
        (tmp_path / name).write_text(text.replace("/opt/pycni/.venv/bin/pycni", str(pycni)).strip() + "\n")
    assert "ExecStart=" in (tmp_path / "pycni.service").read_text()
    assert "ListenStream=/run/pycni/pycni.sock" in (tmp_path / "pycni.socket").read_text()
    run_ = subprocess.run([analyze, "verify", str(tmp_path / "pycni.socket"), str(tmp_path / "pycni.service")],
                          capture_output=True, text=True, timeout=60)
    assert run_.returncode == 0, run_.stderr


def test_second_server_on_the_same_socket_refuses(server: Server) -> None:
    """A second `pycni serve` must not unlink and take over a live server's socket."""
    before = os.stat(server.sock).st_ino
    proc = subprocess.run([sys.executable, "-m", "shared.cli", "serve", "--socket", server.sock, "--no-preload"],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "already serving" in proc.stderr
    assert os.stat(server.sock).st_ino == before  # the first server's socket is untouched


# --- worker reuse -------------------------------------------------------------------------------

def _settle(srv: Server, count: int, timeout: float = 5.0) -> set[str]:
    """The workers once the pool is back to `count` idle ones (it trims after a quiet second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = srv.workers()
        if len(workers) == count:
            return workers
        time.sleep(0.05)
    return srv.workers()


@pytest.mark.parametrize("extra, failing, reused", [
    ((), False, True),                                  # success: the worker serves again
    ((), True, False),                                  # a failed request ends its worker
    (("--requests-per-worker", "1"), False, False),     # a fresh process for every request
], ids=["success", "failure", "one-per-worker"])
def test_a_worker_serves_again_only_after_a_clean_success(plugin_dir, hosts, tmp_path, extra, failing, reused):
    sock = tmp_path / "run" / "pycni.sock"
    ns = netns.create("pw-reuse")
    proc = None
    try:
        proc = start_server(sock, ns, 1, *extra)
        srv = Server(proc.pid, str(sock))
        (only,) = _settle(srv, 1)
        before = srv.activity()
        if failing:
            env = cni_env("ADD", "c1", hosts[2].path, "eth0", "", str(plugin_dir), {"PYCNI_SOCKET": str(sock)})
            out, status, _ = run(plugin_dir / "host-local", hosts[0], env, b"{not json")
            assert status == 1 and json.loads(out)["code"] == 6
        else:
            out, status, _ = _hl_add(plugin_dir, hosts[0], hosts[2], tmp_path, str(sock))
            assert status == 0 and _reservations(tmp_path) == ["10.77.0.2"], out
        assert served(srv, before)
        time.sleep(0.3)  # the worker puts itself back (or exits) after the reply
        assert Path(f"/proc/{only}").exists() is reused
    finally:
        if proc is not None:
            stop_server(proc)
        netns.delete(ns)


def test_sequential_requests_share_a_few_workers(server, plugin_dir, hosts, tmp_path):
    initial = server.workers()
    seen: set[str] = set()
    for i in range(8):
        data = tmp_path / f"d{i}"
        before = server.activity()
        out, status, _ = _hl_add(plugin_dir, hosts[0], hosts[2], data, server.sock)
        assert status == 0 and _reservations(data) == ["10.77.0.2"], out
        assert served(server, before)
        seen |= server.workers()
    forked = seen - initial
    assert len(forked) <= 3, forked  # a fresh process per request would have needed 8
