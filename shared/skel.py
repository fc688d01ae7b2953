"""The process wrapper: environment and stdin in, one JSON document and an exit status out.

Handlers are plain functions `Request -> Result | None` that raise CNIError; `run()` is pure with
respect to the process (it takes env and stdin, returns bytes and a status), so tests, the
conformance harness and a long-lived server call the same code path as the executable.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from .errors import CNIError, ErrorCode
from .request import COMMANDS, Request, build_request, config_version, parse_env
from .types import Result
from .version import ALL_VERSIONS, CURRENT, check_supported, check_verb_allowed, version_info

Handler = Callable[[Request], Optional[Result]]


@dataclass(frozen=True)
class Plugin:
    """A plugin is its handler table: verbs it lacks succeed as no-ops (GC, STATUS) or fail (others)."""

    name: str
    handlers: Mapping[str, Handler]
    about: str = ""
    supported: tuple[str, ...] = ALL_VERSIONS


@dataclass(frozen=True)
class Outcome:
    stdout: bytes
    exit_code: int
    stderr: str = ""


def error_version(version: Optional[str], supported: tuple[str, ...] = ALL_VERSIONS) -> str:
    """The cniVersion an error object carries: the config's if supported ('' is 0.1.0), else current.

    `None` means no config version is known (environment errors, undecodable stdin).
    """
    if version is None:
        return CURRENT
    effective = version or "0.1.0"
    return effective if effective in supported else CURRENT


def _error_outcome(err: CNIError, version: Optional[str], stderr: str = "",
                   supported: tuple[str, ...] = ALL_VERSIONS) -> Outcome:
    body = json.dumps(err.to_dict(error_version(version, supported)), indent=4) + "\n"
    return Outcome(body.encode(), 1, stderr)


def _check_own_netns(req: Request) -> None:
    """Refuse to configure the plugin's own namespace, before doing any work (the reference checks after)."""
    if req.command not in ("ADD", "DEL") or not req.netns or req.netns_override:
        return
    try:
        theirs = os.stat(req.netns)
        ours = os.stat("/proc/self/ns/net")
    except (OSError, ValueError):  # a path that cannot be opened is not our namespace
        return
    if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
        raise CNIError(ErrorCode.INVALID_NETNS,
                       "plugin's netns and netns from CNI_NETNS should not be the same", req.netns)


def dispatch(plugin: Plugin, req: Request) -> Optional[Result]:
    """Version gating and the handler call, in the reference's order; no I/O of its own.

    unknown verb (4) -> cniVersion not a string (6) -> CHECK/GC/STATUS gating (6 unparsable,
    1 too old) -> exact support (1) -> own-netns check (8, before any work) -> handler.
    """
    if req.command not in COMMANDS or req.command == "VERSION":
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {req.command}")
    version = config_version(req.config)
    check_verb_allowed(req.command, version, plugin.supported)
    check_supported(version, plugin.supported)
    handler = plugin.handlers.get(req.command)
    if handler is None:
        if req.command in ("GC", "STATUS"):
            return None
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {req.command}",
                       f"{plugin.name} does not implement {req.command}")
    _check_own_netns(req)
    return handler(req)


def render(req: Request, result: Optional[Result]) -> bytes:
    if req.command != "ADD" or result is None:
        return b""
    return (json.dumps(result.to_json(req.cni_version), indent=4) + "\n").encode()


def run(plugin: Plugin, env: Mapping[str, str], read_stdin: Callable[[], bytes]) -> Outcome:
    """The whole protocol for one invocation. Never raises."""
    version: Optional[str] = None
    try:
        command = env.get("CNI_COMMAND", "")
        if command == "" and plugin.about:
            return Outcome(b"", 0, f"{plugin.about}\nCNI protocol versions supported: "
                                   f"{', '.join(plugin.supported)}\n")
        if command == "VERSION":  # stdin is never read, other variables never checked
            body = json.dumps(version_info(plugin.supported), separators=(",", ":")) + "\n"
            return Outcome(body.encode(), 0)
        parse_env(env)  # environment errors come before stdin is read
        try:
            stdin = read_stdin()
        except OSError as e:
            raise CNIError(ErrorCode.IO_FAILURE, f"error reading from stdin: {e}") from None
        req = build_request(env, stdin)
        raw_version = req.config.get("cniVersion")
        version = "" if raw_version is None else raw_version if isinstance(raw_version, str) else None
        result = dispatch(plugin, req)
        return Outcome(render(req, result), 0)
    except CNIError as err:
        return _error_outcome(err, version, supported=plugin.supported)
    except Exception as e:  # the truly unexpected: still CNI error JSON, details on stderr
        import traceback  # only this path pays for it

        err = CNIError(ErrorCode.INTERNAL, f"{type(e).__name__}: {e}")
        return _error_outcome(err, version, traceback.format_exc(), plugin.supported)


def main(plugin: Plugin) -> int:
    """Entry point of an installed executable."""
    outcome = run(plugin, os.environ, sys.stdin.buffer.read)
    try:
        if outcome.stderr:
            sys.stderr.write(outcome.stderr)
            sys.stderr.flush()
        if outcome.stdout:
            sys.stdout.buffer.write(outcome.stdout)
            sys.stdout.buffer.flush()
    except (OSError, ValueError):  # the runtime closed our pipes: nothing left to tell it
        return 1
    return outcome.exit_code
