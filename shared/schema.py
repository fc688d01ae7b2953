"""JSON Schema validation: the schemas in shared/schemas/ are the single source of truth for what
a config or a result may hold. jsonschema is imported only when something is validated.

Every schema file is registered under https://pycni.invalid/schemas/<file>, so one schema can
`$ref` another by file name (e.g. `{"$ref": "netconf.json"}`). Formats are checked: the standard
ones jsonschema knows (ipv4, ipv6, ...) plus `cidr` (an address with a decimal prefix length, as
Go's ParseCIDR accepts it). As in Go's decoder, `integer` means a JSON number without a fraction
part written as such: 2.0 is not an integer.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from .errors import CNIError, ErrorCode
from .version import ALL_VERSIONS

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")
BASE_URI = "https://pycni.invalid/schemas/"


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """`name` is a file stem in shared/schemas/, e.g. 'host-local-config' or 'result-1.1.0'."""
    with open(os.path.join(SCHEMA_DIR, f"{name}.json"), encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    schema.setdefault("$id", f"{BASE_URI}{name}.json")
    return schema


@lru_cache(maxsize=None)
def _registry() -> Any:
    """Every schema file, addressable by its $id, for cross-file $refs."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resources = []
    for entry in sorted(os.listdir(SCHEMA_DIR)):
        if entry.endswith(".json"):
            schema = load_schema(entry[:-5])
            resources.append((schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


def _is_cidr(instance: object) -> bool:
    from .types import parse_cidr

    if not isinstance(instance, str):
        return True  # formats only constrain strings
    try:
        parse_cidr(instance)
    except CNIError:
        return False
    return True


@lru_cache(maxsize=None)
def _format_checker() -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker()
    checker.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("cidr")(_is_cidr)
    return checker


def _is_go_int(checker: Any, instance: object) -> bool:
    """Go decodes 2.0 into an int field as an error, so 'integer' excludes floats (and booleans)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


@lru_cache(maxsize=None)
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, validators  # costly import, paid only here

    types = Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_go_int)
    return validators.extend(Draft202012Validator, type_checker=types)


@lru_cache(maxsize=None)
def _validator(name: str) -> Any:
    return _validator_class()(load_schema(name), registry=_registry(), format_checker=_format_checker())


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


def _index_problems(obj: Any) -> list[str]:
    """What a schema cannot say: every ips[].interface indexes an entry of `interfaces`."""
    if not isinstance(obj, dict) or not isinstance(obj.get("ips"), list):
        return []
    interfaces = obj.get("interfaces")
    count = len(interfaces) if isinstance(interfaces, list) else 0
    out = []
    for i, ip in enumerate(obj["ips"]):
        index = ip.get("interface") if isinstance(ip, dict) else None
        if isinstance(index, int) and not isinstance(index, bool) and index >= count:
            out.append(f"ips[{i}].interface: {index} is not an index into interfaces (length {count})")
    return out


def result_problems(obj: Any, version: str) -> list[str]:
    """Everything wrong with `obj` as a result of `version` ('' means 0.1.0); [] when valid."""
    effective = version or "0.1.0"
    if effective not in ALL_VERSIONS:
        return [f"(top level): unknown CNI result version {json.dumps(version)}"]
    return schema_errors(obj, f"result-{effective}") + _index_problems(obj)


def validate_result(obj: Any, version: str, code: int = ErrorCode.DECODING_FAILURE) -> None:
    """Raise one CNIError (default code 6) when `obj` is not a valid result of `version`."""
    effective = version or "0.1.0"
    if effective not in ALL_VERSIONS:
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, f"unsupported CNI result version {json.dumps(version)}")
    problems = result_problems(obj, effective)
    if problems:
        raise CNIError(code, f"invalid CNI {effective} result: {problems[0]}", "; ".join(problems[1:4]))
