"""Delegation: find a plugin by type in CNI_PATH and exec it the way a runtime would.

The delegate gets the caller's environment with only CNI_COMMAND changed and the identical stdin
bytes; its stderr is relayed; its error object (code, msg, details) is passed through unchanged.
"""
from __future__ import annotations

import errno
import json
import os
import sys
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from .errors import CNIError, ErrorCode
from .request import Request
from .types import Result

DEFAULT_TIMEOUT = 60.0
TEXT_BUSY_RETRIES = 5  # libcni retries "text file busy" (a binary still being written) 5 times
TEXT_BUSY_DELAY = 0.2

# Set only inside the warm server (shared.server): given the resolved delegate binary, its env and
# stdin, return a skel.Outcome when that binary is one of our own installed launchers (run it
# in-process), or None to exec it as usual.
in_process: Optional[Callable[[str, Mapping[str, str], bytes], Any]] = None


def find_in_path(plugin_type: str, paths: Sequence[str]) -> str:
    if not plugin_type:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, "no plugin name provided",
                       "the plugin type (e.g. ipam.type) is empty")
    if "/" in plugin_type or plugin_type in (".", "..") or ".." in plugin_type:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, f"invalid plugin name: {plugin_type}",
                       "a plugin type must be a bare file name")
    if not paths:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "required env variables [CNI_PATH] missing",
                       f"CNI_PATH is needed to find plugin {plugin_type!r}")
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate):
            return candidate
    raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG,
                   f'failed to find plugin "{plugin_type}" in path {list(paths)}')


def _parse_error(stdout: bytes, stderr: bytes, status: int, plugin_type: str) -> CNIError:
    text = stdout.strip()
    if text:
        try:
            obj: Any = json.loads(text)
        except ValueError:
            obj = None
        code = obj.get("code") if isinstance(obj, dict) else None
        if isinstance(code, int) and not isinstance(code, bool) and code >= 0:
            msg, details = obj.get("msg"), obj.get("details")
            return CNIError(code, msg if isinstance(msg, str) else "",
                            details if isinstance(details, str) else "")
        return CNIError(ErrorCode.INTERNAL,
                        f"netplugin {plugin_type} failed but error parsing its diagnostic message",
                        text.decode(errors="replace")[:4096])
    if stderr.strip():
        return CNIError(ErrorCode.INTERNAL, f'netplugin {plugin_type} failed: "{stderr.decode(errors="replace").strip()}"',
                        f"exit status {status}")
    return CNIError(ErrorCode.INTERNAL, f"netplugin {plugin_type} failed with no error message",
                    f"exit status {status}")


def delegate_env(req: Request, command: str) -> dict[str, str]:
    """The caller's environment with only CNI_COMMAND changed.

    A Request built in-process may carry no environment; its fields then supply the CNI_* variables.
    """
    env = dict(req.env)
    fields = {"CNI_CONTAINERID": req.container_id, "CNI_NETNS": req.netns, "CNI_IFNAME": req.ifname,
              "CNI_ARGS": req.args, "CNI_PATH": os.pathsep.join(req.path)}
    for name, value in fields.items():
        env.setdefault(name, value)
    env["CNI_COMMAND"] = command
    return env


def delegate_stdin(req: Request) -> bytes:
    """The identical bytes the caller received (the serialised config only for hand-built requests)."""
    if req.stdin or not req.config:
        return req.stdin
    return json.dumps(req.config).encode()


def _run(binary: str, stdin: bytes, env: dict[str, str], timeout: float) -> Any:
    import subprocess  # costs a few ms of start-up; only delegating verbs pay it

    for attempt in range(TEXT_BUSY_RETRIES + 1):
        try:
            return subprocess.run([binary], input=stdin, env=env, capture_output=True,
                                  timeout=timeout, check=False)
        except OSError as e:
            if e.errno != errno.ETXTBSY or attempt == TEXT_BUSY_RETRIES:
                raise
            time.sleep(TEXT_BUSY_DELAY)
    raise AssertionError("unreachable")


def exec_plugin(plugin_type: str, command: str, req: Request,
                timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Run the delegate; return its stdout on success, raise its error otherwise."""
    binary = find_in_path(plugin_type, req.path)
    env = delegate_env(req, command)
    stdin = delegate_stdin(req)
    if in_process is not None:
        outcome = in_process(binary, env, stdin)
        if outcome is not None:
            return _delegate_outcome(plugin_type, outcome.stdout, outcome.stderr.encode(),
                                     outcome.exit_code)
    import subprocess

    try:
        proc = _run(binary, stdin, env, timeout)
    except subprocess.TimeoutExpired:
        raise CNIError(ErrorCode.TRY_AGAIN_LATER, f"delegate {plugin_type} {command} timed out",
                       f"no answer within {timeout:g} s") from None
    except OSError as e:
        raise CNIError(ErrorCode.IO_FAILURE, f"failed to execute delegate {binary}", str(e)) from None
    return _delegate_outcome(plugin_type, proc.stdout, proc.stderr, proc.returncode)


def _delegate_outcome(plugin_type: str, stdout: bytes, stderr: bytes, status: int) -> bytes:
    _relay(stderr)
    if status != 0:
        raise _parse_error(stdout, stderr, status, plugin_type)
    return stdout


def _relay(stderr: bytes) -> None:
    """The delegate's diagnostics go to our stderr, as the runtime expects."""
    if not stderr:
        return
    try:
        sys.stderr.buffer.write(stderr)
    except AttributeError:  # a text-only replacement stderr (tests, embedding)
        sys.stderr.write(stderr.decode(errors="replace"))
    sys.stderr.flush()


def delegate_add(plugin_type: str, req: Request, timeout: float = DEFAULT_TIMEOUT) -> Result:
    out = exec_plugin(plugin_type, "ADD", req, timeout)
    try:
        obj = json.loads(out.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CNIError(ErrorCode.DECODING_FAILURE, f"failed to decode the result of delegate {plugin_type}",
                       str(e)) from None
    if obj is None:
        obj = {}
    if isinstance(obj, dict) and not obj.get("cniVersion"):
        # A result without cniVersion is taken to be in the config's version (cni#895).
        obj = {**obj, "cniVersion": req.cni_version}
    return Result.from_json(obj)


def delegate(plugin_type: str, command: str, req: Request, timeout: float = DEFAULT_TIMEOUT) -> None:
    """DEL, CHECK, GC and STATUS: success is silence."""
    exec_plugin(plugin_type, command, req, timeout)
