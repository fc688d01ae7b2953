"""Start-up cost: the plugin is exec'd per container, so the core imports nothing heavy up front."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import shared

CORE = ("errors", "version", "types", "request", "skel", "args", "gc", "invoke", "schema")
HEAVY = ("pyroute2", "jsonschema", "referencing", "subprocess")


def test_importing_the_core_loads_nothing_heavy() -> None:
    code = ("import sys; " + "; ".join(f"import shared.{m}" for m in CORE) +
            f"; print(__import__('json').dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, check=True,
                         cwd=Path(shared.__file__).parent.parent)
    assert json.loads(out.stdout) == []


def test_no_module_level_import_of_heavy_libraries() -> None:
    root = Path(shared.__file__).parent
    for name in CORE:
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in tree.body:  # module level only; imports inside functions are the intended pattern
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            assert not [m for m in mods if m.split(".")[0] in HEAVY], (name, mods)
    for path in root.glob("*.py"):
        assert "import pyroute2" not in path.read_text() and "from pyroute2" not in path.read_text(), path
