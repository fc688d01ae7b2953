"""The GC verb's input: which (container ID, ifname) attachments are still valid."""
from __future__ import annotations

from typing import Any

from .errors import CNIError, ErrorCode

VALID_KEY = "cni.dev/valid-attachments"
LEGACY_KEY = "cni.dev/attachments"  # the spec-v1.1.0 tag's name; libcni still sends both


def valid_attachments(config: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """Absent or null means an empty list: every attachment of this network is stale."""
    raw = config.get(VALID_KEY)
    key = VALID_KEY
    if raw is None and LEGACY_KEY in config:
        raw, key = config.get(LEGACY_KEY), LEGACY_KEY
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, f"invalid {key}", "must be a list of {containerID, ifname}")
    out = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str) \
                or not isinstance(item.get("ifname"), str):
            raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, f"invalid {key}[{i}]",
                           f"expected {{containerID: string, ifname: string}}, got {item!r}")
        out.add((item["containerID"], item["ifname"]))
    return frozenset(out)
