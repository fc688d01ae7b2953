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
import os
import sys

DEFAULT_SOCKET = "/run/pycni/pycni.sock"
MAGIC = b"PYCNI1\0"
HANDSHAKE_TIMEOUT = 5.0  # seconds for connect + send + b"?" (a burst queues); then fall back
_S_IFSOCK = 0o140000


def socket_path() -> str:
    """PYCNI_SOCKET overrides the well-known path; an empty value or "off" disables the warm path."""
    return os.environ.get("PYCNI_SOCKET", DEFAULT_SOCKET)


def _mnt_id() -> bytes:
    st = os.stat("/proc/self/ns/mnt")
    return f"{st.st_dev}:{st.st_ino}".encode()


def encode_request(name: str, umask: int, mnt_id: bytes, env: dict) -> bytes:
    """Fields joined by NUL; the environment as KEY=VALUE bytes, one per field."""
    fields = [name.encode(), b"%o" % umask, mnt_id]
    fields += [k + b"=" + v for k, v in env.items() if b"\0" not in k + v]
    body = b"\0".join(fields)
    return MAGIC + len(body).to_bytes(4, "big") + body


def decode_request(payload: bytes) -> tuple[str, int, bytes, dict[str, str]]:
    """Inverse of encode_request (used by the server); payload excludes MAGIC and length."""
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
        os.write(1, msg)
    except OSError:
        pass
    return 1


def leave(status: int) -> None:
    """Exit after a warm run: nothing of ours is buffered, so skip the interpreter's teardown."""
    os._exit(status)


def handoff(name: str) -> "int | None":
    """Run this invocation in the warm server. Returns its exit status, or None: run it here."""
    path = socket_path()
    if not path or path == "off":
        return None
    try:
        if os.stat(path).st_mode & 0o170000 != _S_IFSOCK:
            return None
    except OSError:
        return None
    import _socket

    fds: list[int] = []
    sock = None
    try:
        fds.append(os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC))
        fds.append(os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        umask = os.umask(0)
        os.umask(umask)
        frame = encode_request(name, umask, _mnt_id(), dict(os.environb))
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        sock.settimeout(float(os.environ.get("PYCNI_HANDOFF_TIMEOUT", HANDSHAKE_TIMEOUT)))
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
            os.close(fd)
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
