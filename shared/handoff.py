"""The launcher's side of the warm path: hand one invocation to `pycni serve`, or say "do it yourself".

Imported by every installed executable before anything else, so it uses only modules a bare
`python -I -S` has already loaded (os, sys) plus the `_socket` extension (the `socket` module would
pull in enum and selectors). It never reads stdin: the caller's fds 0, 1 and 2, its network
namespace and its working directory travel to the server with SCM_RIGHTS, so when we fall back,
stdin is untouched and the cold path reads it exactly as it would have.

Handshake (one request, at most one run):
  client -> server   request frame + fds of our netns and cwd
  server -> client   b"?"  "I am in your namespace and about to run; may I?"  (or b"N": declined)
  client -> server   b"G" + fds 0, 1, 2: the client commits; from here on it never falls back
  server -> client   b"=" + status byte, after stdout/stderr were written and flushed
Before b"G" the server does nothing with the request, so a client that gives up (no server, nobody
listening, no b"?" in time, b"N", any error) can run the cold path safely. After b"G" the client
waits without a deadline; if the connection ends without a status it prints CNI error 11 (try
again later) instead of running the request a second time, because it cannot know how far the
server got.
"""
import posix as _posix  # `os` costs 1.5 ms more of start-up; the warm path needs none of it
import sys

EXECUTABLES = {"host-local": "ipam_hostlocal.main", "bridge": "bridge_plugin.main"}
DEFAULT_SOCKET = "/run/pycni/pycni.sock"
MAGIC = b"PYCNI1\0"
HANDSHAKE_TIMEOUT = 5.0  # seconds for connect + send + b"?" (a burst queues); then fall back
_S_IFSOCK = 0o140000

# Set to a list by a warm worker, which exits as soon as its caller has the answer: plugins put
# here what may be released only then (a socket whose close waits for an RCU grace period). On
# the cold path it stays None: the runtime waits for the process's exit, so they must not wait.
released_after_reply: "list | None" = None


def _environ() -> dict:
    """The environment as bytes (os.environb once os is loaded, e.g. in tests)."""
    os = sys.modules.get("os")
    return os.environb if os is not None else _posix.environ


def _getenv(name: str, default: str) -> str:
    value = _environ().get(name.encode())
    return default if value is None else value.decode("utf-8", "surrogateescape")


def socket_path() -> str:
    """PYCNI_SOCKET overrides the well-known path; an empty value or "off" disables the warm path."""
    return _getenv("PYCNI_SOCKET", DEFAULT_SOCKET)


def _mnt_id() -> bytes:
    st = _posix.stat("/proc/self/ns/mnt")
    return f"{st.st_dev}:{st.st_ino}".encode()


def encode_request(name: str, umask: int, mnt_id: bytes, env: dict) -> bytes:
    """Fields joined by NUL; the environment as KEY=VALUE bytes, one per field."""
    fields = [name.encode(), b"%o" % umask, mnt_id]
    fields += [k + b"=" + v for k, v in env.items() if b"\0" not in k + v]
    body = b"\0".join(fields)
    return MAGIC + len(body).to_bytes(4, "big") + body


def decode_request(payload: bytes) -> tuple[str, int, bytes, dict[str, str]]:
    """Inverse of encode_request (used by the server); payload excludes MAGIC and length."""
    import os

    name, umask, mnt_id, *pairs = payload.split(b"\0")
    env: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition(b"=")
        env[os.fsdecode(key)] = os.fsdecode(value)
    return name.decode(), int(umask, 8), mnt_id, env


def _peer_uid(sock) -> int:
    import _socket

    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # pid, uid, gid
    return int.from_bytes(creds[4:8], sys.byteorder)


def _rights(_socket, fds: list) -> tuple:
    return (_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
            b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds))


def _recv_byte(sock) -> bytes:
    try:
        return sock.recv(1)
    except OSError:
        return b""


def _lost(name: str) -> int:
    """The server took the request and then vanished: report a retryable error, do not run twice."""
    msg = (b'{\n    "cniVersion": "1.1.0",\n    "code": 11,\n    "msg": "pycni server ended before '
           b'answering",\n    "details": "the request may or may not have run; retry it (' +
           name.encode() + b')"\n}\n')
    try:
        _posix.write(1, msg)
    except OSError:
        pass
    return 1


def leave(status: int) -> None:
    """Exit after a warm run: nothing of ours is buffered, so skip the interpreter's teardown."""
    _posix._exit(status)


def handoff(name: str) -> "int | None":
    """Run this invocation in the warm server. Returns its exit status, or None: run it here."""
    path = socket_path()
    if not path or path == "off":
        return None
    try:
        if _posix.stat(path).st_mode & 0o170000 != _S_IFSOCK:
            return None
    except OSError:
        return None
    import _socket

    fds: list[int] = []
    sock = None
    try:
        fds.append(_posix.open("/proc/self/ns/net", _posix.O_RDONLY | _posix.O_CLOEXEC))
        fds.append(_posix.open(".", _posix.O_RDONLY | _posix.O_DIRECTORY | _posix.O_CLOEXEC))
        umask = _posix.umask(0)
        _posix.umask(umask)
        frame = encode_request(name, umask, _mnt_id(), dict(_environ()))
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        sock.settimeout(float(_getenv("PYCNI_HANDOFF_TIMEOUT", str(HANDSHAKE_TIMEOUT))))
        sock.connect(path)
        if _peer_uid(sock) != 0:
            return None  # only a root server may run our requests
        sent = sock.sendmsg([frame], [_rights(_socket, fds)])
        if sent < len(frame):
            sock.sendall(frame[sent:])
        if _recv_byte(sock) != b"?":
            return None  # declined, refused, too slow or gone: nothing ran
        # stdio travels only now: a server that never answers must not hold our stdout open
        # (the runtime reads it until EOF).
        if sock.sendmsg([b"G"], [_rights(_socket, [0, 1, 2])]) != 1:
            return None
    except (OSError, ValueError):
        if sock is not None:
            sock.close()
        return None
    finally:
        for fd in fds:
            _posix.close(fd)
    # Committed: the server runs the request exactly once; wait for it without a deadline.
    sock.settimeout(None)
    answer = b""
    try:
        while len(answer) < 2:
            chunk = sock.recv(2 - len(answer))
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    sock.close()
    if len(answer) == 2 and answer[:1] == b"=":
        return answer[1]
    return _lost(name)


# --- in-process delegation to our own host-local ----------------------------------------------

def _as(text: bytes, name: str, other: str) -> bytes:
    """The launcher text `pycni install` writes for `other`, given the one it wrote for `name`."""
    for a, b in ((f"# pycni {name}:", f"# pycni {other}:"), (f"handoff({name!r})", f"handoff({other!r})"),
                 (f"in_process({name!r},", f"in_process({other!r},"),
                 (f"from {EXECUTABLES[name]} import", f"from {EXECUTABLES[other]} import")):
        text = text.replace(a.encode(), b.encode())
    return text


def _interpreter(first_line: bytes) -> "str | None":
    import os

    if not first_line.startswith(b"#!") or not first_line.endswith(b" -IS"):
        return None
    return os.path.realpath(os.fsdecode(first_line[2:-4]))


def same_install(candidate: bytes, reference: bytes, reference_name: str) -> "str | None":
    """Which of our plugins `candidate` launches, if it is byte for byte the launcher the same
    `pycni install` wrote (same interpreter, same sys.path, same code) as `reference`; else None.
    The interpreter may be spelt differently in the #! line if it is the same file."""
    cand_first, _, cand_body = candidate.partition(b"\n")
    ref_first, _, ref_body = reference.partition(b"\n")
    python = _interpreter(cand_first)
    if python is None or python != _interpreter(ref_first):
        return None
    for name in EXECUTABLES:
        if cand_body == _as(ref_body, reference_name, name):
            return name
    return None


def plugin_object(name: str):
    """The skel.Plugin the executable `name` runs (its main module's module-level Plugin)."""
    import importlib

    from .skel import Plugin

    module = importlib.import_module(EXECUTABLES[name])
    for value in vars(module).values():
        if isinstance(value, Plugin):
            return value
    return None


class InProcess:
    """shared.invoke's hook: run a delegate that is our own installed launcher in this process.

    The outcome is what exec'ing it would have given (skel.run is the whole protocol and never
    raises), minus a second interpreter start-up. Anything else is left to exec (None).
    """

    def __init__(self, reference: "bytes | None", reference_name: str, reference_path: str = "") -> None:
        self.reference = reference
        self.reference_name = reference_name
        self.reference_path = reference_path
        self.plugins: dict = {}

    def plugin_for(self, binary: str):
        if self.reference is None:
            try:
                with open(self.reference_path, "rb") as f:
                    self.reference = f.read(1 << 16)
            except OSError:
                self.reference = b""
        try:
            with open(binary, "rb") as f:
                candidate = f.read(len(self.reference) + 4096)
        except OSError:
            return None
        name = same_install(candidate, self.reference, self.reference_name) if self.reference else None
        if name is None:
            return None
        if name not in self.plugins:
            self.plugins[name] = plugin_object(name)
        return self.plugins[name]

    def __call__(self, binary: str, env, stdin: bytes):
        plugin = self.plugin_for(binary)
        if plugin is None:
            return None
        from .skel import run

        return run(plugin, env, lambda: stdin)


def in_process(name: str, launcher: str) -> None:
    """Called by the launcher on the cold path: delegations to our own plugins skip the exec."""
    import os

    from . import invoke

    invoke.in_process = InProcess(None, name, os.path.abspath(launcher))
