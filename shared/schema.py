"""JSON Schema validation: the schemas in shared/schemas/ are the single source of truth for what
a config or a result may hold. jsonschema is imported only when something is validated."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import CNIError, ErrorCode


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """`name` is a file stem in shared/schemas/, e.g. 'host-local-config' or 'result-1.1.0'."""
    text = resources.files("shared").joinpath("schemas", f"{name}.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=None)
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator  # costly import, paid only here

    return Draft202012Validator(load_schema(name))


def _location(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def schema_errors(instance: Any, name: str) -> list[str]:
    """Every violation as 'field: message', most relevant first; empty when valid."""
    from jsonschema.exceptions import best_match, relevance

    errors = sorted(_validator(name).iter_errors(instance), key=relevance)
    if not errors:
        return []
    first = best_match(errors)
    ordered = [first] + [e for e in errors if e is not first]
    return [f"{_location(e.absolute_path)}: {e.message}" for e in ordered]


def validate(instance: Any, name: str, code: int = ErrorCode.INVALID_NETWORK_CONFIG) -> None:
    """Raise one CNIError naming the field and the value at fault."""
    problems = schema_errors(instance, name)
    if problems:
        raise CNIError(code, f"invalid {problems[0]}", "; ".join(problems[1:4]))
