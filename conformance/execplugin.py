"""Exec one plugin the way libcni's invoke package does, and read its answer the same way.

The environment is the runtime's own plus the six CNI_* variables (always all six, empty when not
relevant). A plugin that exits non-zero is read as an error object on stdout; when it printed none
the error is synthesised from its stderr and exit status with libcni's wording. A timeout kills the
plugin's whole process group (a bridge plugin may be waiting on its IPAM delegate).
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from shared.errors import CNIError, ErrorCode

CNI_VARS = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")
DEFAULT_TIMEOUT = 60.0
TEXT_BUSY_RETRIES = 5  # libcni retries ETXTBSY five times, a second apart


@dataclass(frozen=True)
class Invocation:
    """One exec of one plugin: what went in, what came out, and how long it took."""

    plugin_type: str
    binary: str
    command: str
    env: Mapping[str, str]  # the six CNI_* variables only
    stdin: bytes
    stdout: bytes = b""
    stderr: bytes = b""
    returncode: int | None = None  # None: killed on timeout or never started
    wall_ms: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class ExecError(CNIError):
    """A plugin's failure, with the invocation that produced it (stdout, stderr, exit status)."""

    def __init__(self, code: int, msg: str, details: str = "", invocation: Invocation | None = None) -> None:
        super().__init__(code, msg, details)
        self.invocation = invocation

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.msg, self.details, self.invocation))


class ExecTimeout(ExecError):
    """The plugin did not finish within the timeout and was killed."""


def find_in_path(plugin_type: str, paths: Sequence[str]) -> str:
    """libcni's FindInPath: first `<dir>/<type>` that is a regular file; executability is not checked."""
    if not plugin_type:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, "no plugin name provided")
    if os.sep in plugin_type:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, f"invalid plugin name: {plugin_type}",
                       "a plugin type is a file name, without a directory")
    if not paths:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, "no paths provided",
                       "give at least one plugin directory")
    for directory in paths:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate):
            return candidate
    raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, f'failed to find plugin "{plugin_type}" in path {list(paths)}',
                   "install the plugin into one of the plugin directories")


def cni_env(command: str, container_id: str = "", netns: str = "", ifname: str = "", args: str = "",
            path: Sequence[str] = ()) -> dict[str, str]:
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
            "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": os.pathsep.join(path)}


def _exit_text(returncode: int) -> str:
    """Go's *exec.ExitError text."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name.lower().removeprefix("sig")
        except ValueError:
            name = str(-returncode)
        return f"signal: {'killed' if name == 'kill' else name}"
    return f"exit status {returncode}"


def interpret_failure(stdout: bytes, stderr: bytes, returncode: int, inv: Invocation | None = None) -> ExecError:
    """libcni's reading of a failed plugin (pkg/invoke/raw_exec.go pluginErr)."""
    status = _exit_text(returncode)
    if not stdout.strip():
        if stderr.strip():
            return ExecError(ErrorCode.INTERNAL,
                             f"netplugin failed: {json.dumps(stderr.decode(errors='replace'))}: {status}", "", inv)
        return ExecError(ErrorCode.INTERNAL, f"netplugin failed with no error message: {status}", "", inv)
    try:
        obj = json.loads(stdout)
        if not isinstance(obj, dict):
            raise ValueError(f"cannot unmarshal {type(obj).__name__} into an error object")
        code, msg, details = obj.get("code", 0), obj.get("msg", ""), obj.get("details", "")
        if isinstance(code, bool) or not isinstance(code, int) or code < 0:
            raise ValueError(f"code must be an unsigned integer, not {code!r}")
        if not isinstance(msg, str) or not isinstance(details, str):
            raise ValueError("msg and details must be strings")
    except (ValueError, UnicodeDecodeError) as e:
        text = stdout.decode(errors="replace")
        return ExecError(ErrorCode.INTERNAL,
                         f"netplugin failed but error parsing its diagnostic message {json.dumps(text)}: {e}",
                         "", inv)
    return ExecError(code, msg, details, inv)


def _popen(binary: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    for attempt in range(TEXT_BUSY_RETRIES + 1):
        try:
            return subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=dict(env), start_new_session=True, close_fds=True)
        except OSError as e:
            if e.errno != errno.ETXTBSY or attempt == TEXT_BUSY_RETRIES:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def run(plugin_type: str, binary: str, cni: Mapping[str, str], stdin: bytes,
        base_env: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> Invocation:
    """Exec and wait; never raises for the plugin's own failure (see `Invocation.returncode`)."""
    env = dict(os.environ if base_env is None else base_env)
    env.update(cni)
    started = time.perf_counter()
    try:
        proc = _popen(binary, env)
    except OSError as e:
        inv = Invocation(plugin_type, binary, cni["CNI_COMMAND"], dict(cni), stdin,
                         wall_ms=(time.perf_counter() - started) * 1000)
        raise ExecError(ErrorCode.IO_FAILURE, f"failed to execute plugin {binary}", str(e), inv) from None
    timed_out = False
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: delegates too
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
    wall_ms = (time.perf_counter() - started) * 1000
    return Invocation(plugin_type, binary, cni["CNI_COMMAND"], dict(cni), stdin, out, err,
                      None if timed_out else proc.returncode, wall_ms, timed_out)


def check(inv: Invocation, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """stdout of a successful invocation; the libcni-style error otherwise."""
    if inv.timed_out:
        raise ExecTimeout(ErrorCode.INTERNAL, f"netplugin {inv.plugin_type} timed out: signal: killed",
                          f"no answer to {inv.command} within {timeout:g} s", inv)
    if inv.returncode != 0:
        raise interpret_failure(inv.stdout, inv.stderr, inv.returncode if inv.returncode is not None else -9, inv)
    return inv.stdout


def decode_version_info(stdout: bytes) -> tuple[str, ...]:
    """The plugin's supportedVersions, read as libcni's PluginDecoder reads them."""
    try:
        obj = json.loads(stdout)
    except (ValueError, UnicodeDecodeError) as e:
        raise CNIError(ErrorCode.DECODING_FAILURE, "decoding version info", str(e)) from None
    if not isinstance(obj, dict):
        raise CNIError(ErrorCode.DECODING_FAILURE, "decoding version info", "expected a JSON object")
    version = obj.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CNIError(ErrorCode.DECODING_FAILURE, "decoding version info: missing field cniVersion")
    supported = obj.get("supportedVersions")
    if not supported:
        if version == "0.2.0":
            return ("0.1.0", "0.2.0")
        raise CNIError(ErrorCode.DECODING_FAILURE, "decoding version info: missing field supportedVersions")
    if not isinstance(supported, list) or not all(isinstance(v, str) for v in supported):
        raise CNIError(ErrorCode.DECODING_FAILURE, "decoding version info",
                       f"supportedVersions must be a list of strings, not {supported!r}")
    return tuple(supported)


@dataclass
class Trace:
    """Every invocation of one runtime operation, for latency reporting and debugging."""

    calls: list[Invocation] = field(default_factory=list)
    wall_ms: float = 0.0
