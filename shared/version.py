"""Spec versions: the supported list, ordering, and per-verb gating."""
from __future__ import annotations

import json

from .errors import CNIError, ErrorCode

ALL_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = "1.1.0"

# Result shapes: versions in one family share one JSON layout.
FAMILIES: tuple[frozenset[str], ...] = (
    frozenset({"", "0.1.0", "0.2.0"}),
    frozenset({"0.3.0", "0.3.1", "0.4.0"}),
    frozenset({"1.0.0", "1.1.0"}),
)

MIN_VERSION_FOR = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}


def parse_version(text: str) -> tuple[int, int, int]:
    """Order versions as the reference does: '' is 0.1.0, missing parts are 0, 4+ parts fail."""
    if text == "":
        return (0, 1, 0)
    parts = text.split(".")
    if len(parts) > 3 or not all(p.isdigit() and p.isascii() for p in parts):
        raise CNIError(ErrorCode.DECODING_FAILURE, f"failed to parse version {text!r}",
                       "a version is one to three dot-separated integers")
    nums = [int(p) for p in parts] + [0] * (3 - len(parts))
    return (nums[0], nums[1], nums[2])


def family_of(version: str) -> int:
    for i, fam in enumerate(FAMILIES):
        if version in fam:
            return i
    raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, f"unsupported CNI result version {version!r}")


def check_supported(version: str, supported: tuple[str, ...] = ALL_VERSIONS) -> None:
    """Exact string match, as the reference library does ('1.1' is not '1.1.0')."""
    effective = version or "0.1.0"
    if effective not in supported:
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f'config is "{version}", plugin supports {json.dumps(list(supported))}')


def check_verb_allowed(command: str, version: str, supported: tuple[str, ...] = ALL_VERSIONS) -> None:
    minimum = MIN_VERSION_FOR.get(command)
    if minimum is None:
        return
    floor = parse_version(minimum)
    if parse_version(version) < floor:
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, f"config version does not allow {command}",
                       f'cniVersion "{version}" is below {minimum}')
    if not any(parse_version(v) >= floor for v in supported):
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, f"plugin version does not allow {command}")


def version_info(supported: tuple[str, ...] = ALL_VERSIONS) -> dict[str, object]:
    return {"cniVersion": CURRENT, "supportedVersions": list(supported)}
