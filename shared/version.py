"""Spec versions: the supported list, ordering, and per-verb gating (as the reference skel does it)."""
from __future__ import annotations

import json
import re

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

# Go's strconv.Atoi: an optional sign, then ASCII digits.
_ATOI_RE = re.compile(r"[+-]?[0-9]+")
_PART_NAMES = ("major", "minor", "micro")


def _go_quote_list(items: tuple[str, ...] | list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(i) for i in items) + "]"


def parse_version(text: str) -> tuple[int, int, int]:
    """Order versions as the reference does: '' is 0.1.0, missing parts are 0, 4+ parts fail (code 6)."""
    if text == "":
        return (0, 1, 0)
    parts = text.split(".")
    if len(parts) >= 4:
        raise CNIError(ErrorCode.DECODING_FAILURE, f"invalid version {json.dumps(text)}: too many parts",
                       "a version is one to three dot-separated integers")
    nums = []
    for name, part in zip(_PART_NAMES, parts):
        if not _ATOI_RE.fullmatch(part):
            raise CNIError(ErrorCode.DECODING_FAILURE,
                           f"failed to convert {name} version part {json.dumps(part)}: "
                           f"strconv.Atoi: parsing {json.dumps(part)}: invalid syntax",
                           f"version {text!r} is not one to three dot-separated integers")
        nums.append(int(part))
    nums += [0] * (3 - len(nums))
    return (nums[0], nums[1], nums[2])


def family_of(version: str) -> int:
    """0 for 0.1.0/0.2.0 (ip4/ip6), 1 for 0.3.x/0.4.0 (ips with version), 2 for 1.x."""
    for i, fam in enumerate(FAMILIES):
        if version in fam:
            return i
    raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, f"unsupported CNI result version {json.dumps(version)}",
                   f"known versions: {', '.join(ALL_VERSIONS)}")


def check_supported(version: str, supported: tuple[str, ...] = ALL_VERSIONS) -> None:
    """Exact string match, as the reference library does ('1.1' is not '1.1.0'); '' means 0.1.0."""
    effective = version or "0.1.0"
    if effective not in supported:
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {json.dumps(effective)}, plugin supports {_go_quote_list(supported)}")


def check_verb_allowed(command: str, version: str, supported: tuple[str, ...] = ALL_VERSIONS) -> None:
    """CHECK needs >= 0.4.0, GC and STATUS >= 1.1.0 (code 1); an unparsable version is code 6.

    Like the reference, the plugin must also support some version >= the config's.
    """
    minimum = MIN_VERSION_FOR.get(command)
    if minimum is None:
        return
    config = parse_version(version)
    if config < parse_version(minimum):
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, f"config version does not allow {command}",
                       f"cniVersion {json.dumps(version or '0.1.0')} is below {minimum}")
    if not any(parse_version(v) >= config for v in supported):
        raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, f"plugin version does not allow {command}",
                       f"config is {json.dumps(version)}, plugin supports {_go_quote_list(supported)}")


def version_info(supported: tuple[str, ...] = ALL_VERSIONS) -> dict[str, object]:
    """VERSION output; like the reference skel it always reports the current version."""
    return {"cniVersion": CURRENT, "supportedVersions": list(supported)}
