"""Exec an installed plugin exactly as a runtime does: env + stdin in, stdout/stderr/status out."""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass
class PluginRun:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def cni_env(command: str, container_id: str = "", netns: str = "", ifname: str = "",
            args: str = "", path: str = "", extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.update({"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
                "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": path})
    if extra:
        env.update(extra)
    return env


def run_plugin(binary: str, env: Mapping[str, str], config: Any = None, stdin: bytes | None = None,
               timeout: float = 60) -> PluginRun:
    if stdin is None:
        stdin = json.dumps(config).encode() if config is not None else b""
    proc = subprocess.run([binary], input=stdin, env=dict(env), capture_output=True, timeout=timeout,
                          check=False)
    return PluginRun(proc.returncode, proc.stdout, proc.stderr)
