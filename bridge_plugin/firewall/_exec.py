"""Run firewall commands with a timeout; turn every failure into a CNIError that names the command."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable, Sequence

from shared.errors import CNIError, ErrorCode

TIMEOUT = 30.0  # seconds; iptables waits at most WAIT for the xtables lock, so this only fires on a hang
WAIT = "20"  # iptables-restore -w: seconds to wait for the xtables lock


@dataclass(frozen=True)
class Output:
    rc: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], str | None], Output]


def available(tool: str) -> bool:
    return shutil.which(tool) is not None


def _env() -> dict[str, str]:
    """A fixed C locale so error texts are stable; keep PATH so Debian's alternatives resolve."""
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"}


def run(argv: Sequence[str], stdin: str | None = None) -> Output:
    """Run argv; a missing binary or a timeout raises, a non-zero exit is returned for the caller to judge."""
    try:
        proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=TIMEOUT,
                              env=_env(), check=False)
    except FileNotFoundError as e:
        raise CNIError(ErrorCode.NOT_AVAILABLE, f"{argv[0]} not found", str(e)) from e
    except subprocess.TimeoutExpired as e:
        raise CNIError(ErrorCode.TRY_AGAIN_LATER, f"{' '.join(argv)} timed out after {TIMEOUT:g}s",
                       "the firewall may be locked by another process") from e
    except OSError as e:
        raise CNIError(ErrorCode.INTERNAL, f"failed to run {argv[0]}", str(e)) from e
    return Output(proc.returncode, proc.stdout, proc.stderr)


def failure(argv: Sequence[str], out: Output, what: str, stdin: str | None = None) -> CNIError:
    """The error for a command that exited non-zero: names the command, carries its stderr."""
    detail = out.stderr.strip() or out.stdout.strip() or f"exit status {out.rc}"
    if stdin is not None:
        detail += f"\ninput was:\n{stdin.strip()}"
    return CNIError(ErrorCode.INTERNAL, f"{what}: `{' '.join(argv)}` failed (exit {out.rc})", detail)


def checked(runner: Runner, argv: Sequence[str], what: str, stdin: str | None = None) -> Output:
    out = runner(argv, stdin)
    if out.rc != 0:
        raise failure(argv, out, what, stdin)
    return out
