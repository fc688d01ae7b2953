"""Recording fake CNI plugins: tiny executables that log what a runtime sent them and answer as told.

Used to test the runtime driver (and by the harness for chain checks such as a pass-through plugin
after `bridge`). Each fake appends one JSON line per call to `<dir>/calls.jsonl` (plugin name, CNI_*
environment, stdin, plus any extra variables asked for) and reads its behaviour per verb from
`<dir>/<name>.behaviour.json`, which can be changed between calls:

    {"ADD": {"result": {...}}, "DEL": {"exit": 1, "stdout": {"code": 11, "msg": "busy"}}}

Keys per verb: `stdout` (str printed verbatim, anything else as JSON), `stderr`, `exit`, `sleep`
(seconds), `result` (ADD: printed when there is no prevResult), `passthrough` (ADD: print the
prevResult when present; the default), `versions` (VERSION's supportedVersions).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALL = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

_SCRIPT = r'''#!{python} -IS
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
name = os.path.basename(__file__)
data = sys.stdin.buffer.read()
cmd = os.environ.get("CNI_COMMAND", "")
try:
    with open(os.path.join(here, name + ".behaviour.json")) as f:
        spec = json.load(f)
except OSError:
    spec = {{}}
b = spec.get(cmd, {{}})
rec = {{"plugin": name, "command": cmd, "stdin": data.decode("utf-8", "replace"),
       "env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}},
       "extra": {{k: os.environ.get(k) for k in spec.get("record_env", [])}}}}
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps(rec) + "\n")
if b.get("sleep"):
    time.sleep(b["sleep"])
out = None
if "stdout" in b:
    out = b["stdout"] if isinstance(b["stdout"], str) else json.dumps(b["stdout"])
elif cmd == "VERSION":
    out = json.dumps({{"cniVersion": "1.1.0", "supportedVersions": b.get("versions", {all})}})
elif cmd == "ADD" and not b.get("exit"):
    try:
        conf = json.loads(data)
    except ValueError:
        conf = {{}}
    if conf.get("prevResult") is not None and b.get("passthrough", True):
        out = json.dumps(conf["prevResult"])
    else:
        out = json.dumps(b.get("result", {{"cniVersion": conf.get("cniVersion", "1.1.0")}}))
if out is not None:
    sys.stdout.write(out)
if b.get("stderr"):
    sys.stderr.write(b["stderr"])
sys.exit(b.get("exit", 0))
'''


@dataclass
class FakePlugins:
    """A directory of fake plugins sharing one call log."""

    dir: Path

    def make(self, name: str, **behaviour: Any) -> Path:
        path = self.dir / name
        path.write_text(_SCRIPT.format(python=sys.executable, all=json.dumps(ALL)))
        path.chmod(0o755)
        self.behave(name, **behaviour)
        return path

    def behave(self, name: str, **behaviour: Any) -> None:
        (self.dir / f"{name}.behaviour.json").write_text(json.dumps(behaviour))

    def calls(self, command: str | None = None) -> list[dict[str, Any]]:
        log = self.dir / "calls.jsonl"
        if not log.exists():
            return []
        out = []
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            rec["config"] = json.loads(rec["stdin"]) if rec["stdin"].strip() else None
            if command is None or rec["command"] == command:
                out.append(rec)
        return out

    def clear(self) -> None:
        (self.dir / "calls.jsonl").unlink(missing_ok=True)


def fake_plugins(directory: str | os.PathLike[str]) -> FakePlugins:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    return FakePlugins(path)
