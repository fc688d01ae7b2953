"""Turn the CNI_* environment and stdin into one frozen Request, validated once at the edge."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import CNIError, ErrorCode

COMMANDS = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")

# Which variables each verb needs (empty counts as missing). CNI_PATH is required where a
# delegate may have to be found; the spec makes it optional elsewhere.
REQUIRED_ENV: dict[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "GC": ("CNI_PATH",),
    "STATUS": (),
    "VERSION": (),
}
ENV_ORDER = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
# Go's unicode.IsSpace: ASCII white space, NEL, NBSP and the Unicode space separators.
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                      "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
IFNAME_MAX_BYTES = 15


def _env_bytes(value: str) -> bytes:
    """The bytes the kernel handed us (os.environ decodes undecodable bytes as lone surrogates)."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def validate_container_id(value: str) -> None:
    if value == "":
        raise CNIError(ErrorCode.UNKNOWN_CONTAINER, "missing containerID")
    if not _ID_RE.fullmatch(value):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "invalid characters in containerID", value)


def validate_ifname(value: str) -> None:
    if value == "":
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "interface name is empty")
    if len(_env_bytes(value)) > IFNAME_MAX_BYTES:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "interface name is too long",
                       f"interface name should be less than {IFNAME_MAX_BYTES + 1} characters")
    if value in (".", ".."):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, "interface name is . or ..")
    if any(c in "/:" or c in _GO_SPACE for c in value):
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                       "interface name contains / or : or whitespace characters", value)


def validate_network_name(value: Any) -> str:
    if value is None or value == "":
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, "missing network name")
    if not isinstance(value, str):
        raise CNIError(ErrorCode.DECODING_FAILURE, "error unmarshall network config",
                       f"name must be a string, got {_json_type(value)} {json.dumps(value)}")
    if not _ID_RE.fullmatch(value):
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, "invalid characters found in network name", value)
    return value


@dataclass(frozen=True)
class Request:
    """One invocation. Handlers read this, never os.environ or sys.stdin."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: str = ""  # raw CNI_ARGS
    path: tuple[str, ...] = ()
    stdin: bytes = b""
    config: dict[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)  # the whole environment, for delegation

    @property
    def cni_version(self) -> str:
        value = self.config.get("cniVersion", "")
        return value if isinstance(value, str) else ""

    @property
    def network_name(self) -> str:
        return self.config["name"]

    @property
    def runtime_config(self) -> dict[str, Any]:
        value = self.config.get("runtimeConfig")
        return value if isinstance(value, dict) else {}

    @property
    def netns_override(self) -> bool:
        return self.env.get("CNI_NETNS_OVERRIDE", "").lower() in ("1", "true")


def parse_env(env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Check the CNI_* variables in the reference's order; all missing names go in one error."""
    command = env.get("CNI_COMMAND", "")
    needed = set(REQUIRED_ENV.get(command, ()))
    values: dict[str, str] = {}
    missing: list[str] = []
    for name in ENV_ORDER:
        value = env.get(name, "")
        values[name] = value
        if name == "CNI_COMMAND":
            if value == "":
                missing.append(name)
            continue
        if name in needed and value == "":
            missing.append(name)
            continue
        if value and name == "CNI_CONTAINERID" and name in needed:
            validate_container_id(value)
        if value and name == "CNI_IFNAME" and name in needed:
            validate_ifname(value)
    if missing:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                       f"required env variables [{','.join(missing)}] missing")
    return command, values


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON value {name}")


def decode_json(data: bytes | str) -> Any:
    """Strict JSON like Go's decoder: UTF-8 only (no BOM, no UTF-16), no NaN/Infinity."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    return json.loads(text, parse_constant=_reject_constant)


def decode_config(stdin: bytes) -> dict[str, Any]:
    """stdin -> config object; only `name` is checked here (6 undecodable or not a string, 7 missing/bad).

    `cniVersion` is checked later, by dispatch, exactly where the reference checks it.
    """
    try:
        config = decode_json(stdin)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CNIError(ErrorCode.DECODING_FAILURE, "error unmarshall network config",
                       f"stdin is not valid JSON: {e}") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise CNIError(ErrorCode.DECODING_FAILURE, "error unmarshall network config",
                       f"expected a JSON object, got {_json_type(config)}")
    validate_network_name(config.get("name"))
    return config


def config_version(config: Mapping[str, Any]) -> str:
    """The config's `cniVersion` as given ('' when absent or null); code 6 when it is not a string."""
    version = config.get("cniVersion")
    if version is None:
        return ""
    if not isinstance(version, str):
        raise CNIError(ErrorCode.DECODING_FAILURE, "decoding version from network config",
                       f"cniVersion must be a string, got {json.dumps(version)}")
    return version


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def build_request(env: Mapping[str, str], stdin: bytes | str) -> Request:
    """Everything but VERSION: environment checks, then the config, as the reference orders them."""
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8", "surrogateescape")
    command, values = parse_env(env)
    config = decode_config(stdin)
    path_text = values["CNI_PATH"]
    return Request(
        command=command,
        container_id=values["CNI_CONTAINERID"],
        netns=values["CNI_NETNS"],
        ifname=values["CNI_IFNAME"],
        args=values["CNI_ARGS"],
        path=tuple(p for p in path_text.split(":") if p),
        stdin=stdin,
        config=config,
        env=dict(env),
    )
