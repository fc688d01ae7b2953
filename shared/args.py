"""CNI_ARGS (`K1=V1;K2=V2`) as the reference library parses it.

Keys are matched case-sensitively against the plugin's known keys; an unknown key is an error
unless `IgnoreUnknown` is true. Kubernetes runtimes always send `IgnoreUnknown=1` with their
`K8S_POD_*` keys.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from .errors import CNIError, ErrorCode

# What Kubernetes runtimes send (always together with IgnoreUnknown=1).
K8S_KEYS = ("K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID")


def _bool(pair: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "true"):
        return True
    if low in ("0", "false"):
        return False
    raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f'ARGS: error parsing value of pair "{pair}"',
                   f"IgnoreUnknown must be 1, true, 0 or false, not {value!r}")


def parse_cni_args(text: str, known: Iterable[str]) -> dict[str, str]:
    """Return the known keys that are present. Raises code 4 (CNI_ARGS is environment)."""
    if not text:
        return {}
    known_keys = set(known)
    found: dict[str, str] = {}
    unknown: list[str] = []
    ignore_unknown = False
    for pair in text.split(";"):
        parts = pair.split("=")
        if len(parts) != 2:
            raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f'ARGS: invalid pair "{pair}"',
                           "CNI_ARGS must be KEY=VALUE pairs separated by ';'")
        key, value = parts
        if key == "IgnoreUnknown":
            ignore_unknown = _bool(pair, value)
        elif key in known_keys:
            found[key] = value
        else:
            unknown.append(pair)
    if unknown and not ignore_unknown:
        quoted = "[" + " ".join(json.dumps(p) for p in unknown) + "]"  # Go's %q of a []string
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"ARGS: unknown args {quoted}",
                       "set IgnoreUnknown=1 to pass keys this plugin does not use")
    return found


def config_args_cni(config: Mapping[str, Any]) -> dict[str, Any]:
    """`args.cni` of the config (the convention's namespace), or {} when absent or not an object.

    Plugins that do not understand `args` must ignore it, so a malformed one is not an error here.
    """
    args = config.get("args")
    cni = args.get("cni") if isinstance(args, dict) else None
    return cni if isinstance(cni, dict) else {}
