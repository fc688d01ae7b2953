"""`pycni install`: write the `bridge` and `host-local` executables into a CNI bin dir.

Each executable is a tiny launcher started by the absolute path of the installing interpreter
with `-I -S` (no environment, no site scanning), with the few directories it needs put on
sys.path explicitly: start-up cost is paid for nothing else. It first offers the invocation to a
running `pycni serve` (shared/handoff.py) and runs the plugin itself only if nobody takes it.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from .handoff import EXECUTABLES
DEFAULT_BIN_DIR = "/opt/cni/bin"

LAUNCHER = """#!{python} -IS
# pycni {name}: written by `pycni install`. Do not put this file on PATH.
import sys
sys.path[:0] = {paths!r}
from shared.handoff import handoff, in_process, leave
status = handoff({name!r})  # a running `pycni serve` did the work (warm path), else None
if status is not None:
    leave(status)
import gc
gc.disable()  # a short-lived process: cyclic GC during the imports costs ~10% of start-up, frees nothing
in_process({name!r}, __file__)  # delegating to our own host-local runs it here, without an exec
from {module} import main
sys.exit(main())
"""


def _package_root(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name} is not importable by {sys.executable}")
    return str(Path(list(spec.submodule_search_locations)[0]).parent)


def search_paths() -> list[str]:
    paths: list[str] = []
    for package in ("shared", "pyroute2", "jsonschema", "filelock", "referencing", "rpds",
                    "jsonschema_specifications", "attr"):
        try:
            root = _package_root(package)
        except (RuntimeError, ImportError, ValueError):
            continue
        if root not in paths:
            paths.append(root)
    return paths


def render_launcher(name: str, python: str | None = None) -> str:
    return LAUNCHER.format(python=python or sys.executable, name=name, paths=search_paths(),
                           module=EXECUTABLES[name])


def install(bin_dir: str = DEFAULT_BIN_DIR) -> list[str]:
    """Write the launchers atomically (a runtime may be exec'ing the old ones)."""
    python = os.path.abspath(sys.executable)
    target = Path(bin_dir)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXECUTABLES:
        final = target / name
        tmp = target / f".{name}.pycni-tmp"
        tmp.write_text(render_launcher(name, python))
        tmp.chmod(0o755)
        os.replace(tmp, final)
        written.append(str(final))
    return written
