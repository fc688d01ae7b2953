"""host-local's configuration: raw JSON in, a frozen, fully validated IPAMConfig out.

Everything is checked here, before the store is touched, so bad input never changes the disk.

The JSON Schema (shared/schemas/host-local-config.json) is the source of truth for types, and its
message is the one the user sees for any value it rejects. Importing jsonschema and compiling the
schema costs ~150 ms per exec, more than the rest of an ADD, so it is not paid on the happy path:
the typed loader below rejects every value the schema rejects (a property test checks the two
agree on random configs), and whenever it rejects anything the schema is consulted first, so a
type error still reads as the schema's "invalid <field>: <value> is not of type ...". The loader
then checks what a schema cannot say (addresses, prefixes, overlaps) with the reference's messages.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Optional

from shared.args import parse_cni_args
from shared.errors import CNIError, ErrorCode, invalid_config
from shared.request import Request
from shared.types import Route
from shared.version import parse_version

from .allocator import IPAddress, IPNetwork, Range, RangeSet

SCHEMA = "host-local-config"
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
CNI_ARGS_KEYS = frozenset({"IP"})


@dataclass(frozen=True)
class IPAMConfig:
    name: str
    cni_version: str
    range_sets: tuple[RangeSet, ...]
    routes: tuple[Route, ...] = ()
    data_dir: str = DEFAULT_DATA_DIR
    resolv_conf: str = ""
    requested: tuple[IPAddress, ...] = ()
    reclaim_after_reboot: bool = True


# -- typed access to raw JSON (mirrors the schema; null means "use the default", as in Go) ---------
_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean"}


def _field(obj: dict[str, Any], key: str, kind: type, path: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise invalid_config(f"invalid {path}: {value!r} is not of type '{_TYPE_NAMES.get(kind, kind.__name__)}'")
    return value


def _str(obj: dict[str, Any], key: str, path: str) -> str:
    return _field(obj, key, str, path) or ""


def _list(obj: dict[str, Any], key: str, path: str) -> list[Any]:
    return _field(obj, key, list, path) or []


def _dict(obj: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    return _field(obj, key, dict, path) or {}


# -- addresses, strict like Go's net.ParseIP / net.ParseCIDR --------------------------------------
def parse_ip(text: str) -> Optional[IPAddress]:
    """None when `text` is not an address. IPv4-mapped IPv6 becomes IPv4, as Go's To4 does."""
    if "%" in text or not text.isascii():
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_cidr(text: str) -> Optional[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """Address/prefix with host bits kept; only a decimal prefix length (no netmask form)."""
    addr, sep, prefix = text.partition("/")
    ip = parse_ip(addr)
    if not sep or ip is None or not (prefix.isascii() and prefix.isdigit()) or len(prefix) > 3:
        return None
    if int(prefix) > ip.max_prefixlen:
        return None
    return ipaddress.ip_interface(f"{ip}/{int(prefix)}")


def parse_requested(text: str) -> Optional[IPAddress]:
    """`ip` or `ip/prefix`; the prefix is dropped, as the reference does."""
    if "/" in text:
        iface = parse_cidr(text)
        return iface.ip if iface is not None else None
    return parse_ip(text)


# -- ranges ----------------------------------------------------------------------------------------
def _last_ip(net: IPNetwork) -> IPAddress:
    """Default rangeEnd: the broadcast address minus one for IPv4, the all-ones address for IPv6."""
    last = net.broadcast_address
    return last - 1 if net.version == 4 else last


class _DecodeError(CNIError):
    """A value that does not even parse: the reference fails while decoding JSON, before range
    validation, so the message is not prefixed with "invalid range set N"."""


def _opt_ip(raw: dict[str, Any], key: str, path: str) -> Optional[IPAddress]:
    text = _str(raw, key, f"{path}.{key}")
    if text == "":
        return None
    ip = parse_ip(text)
    if ip is None:
        raise _DecodeError(7, f"invalid {path}.{key}: invalid IP address: {text}")
    return ip


def canonical_range(raw: dict[str, Any], path: str) -> Range:
    """The reference's Range.Canonicalize, message for message."""
    subnet_text = _str(raw, "subnet", f"{path}.subnet")
    if subnet_text == "":
        raise invalid_config("IP <nil> not v4 nor v6", f"{path}.subnet is missing")
    iface = parse_cidr(subnet_text)
    if iface is None:
        raise _DecodeError(7, f"invalid {path}.subnet: invalid CIDR address: {subnet_text}")
    start_raw = _opt_ip(raw, "rangeStart", path)
    end_raw = _opt_ip(raw, "rangeEnd", path)
    gateway = _opt_ip(raw, "gateway", path)
    net = iface.network
    if iface.network.prefixlen > net.max_prefixlen - 2:
        raise invalid_config(f"Network {iface} too small to allocate from", f"{path}.subnet")
    if iface.ip != net.network_address:
        raise invalid_config(f"Network has host bits set. For a subnet mask of length {net.prefixlen} "
                             f"the network address is {net.network_address}", f"{path}.subnet")
    if gateway is None:
        gateway = net.network_address + 1
    elif gateway.version != net.version:
        raise invalid_config(f"gateway {gateway} is not of the family of network {net}", f"{path}.gateway")

    def inside(ip: IPAddress, lo: Optional[IPAddress], hi: Optional[IPAddress]) -> bool:
        return (ip.version == net.version and ip in net and (lo is None or int(ip) >= int(lo))
                and (hi is None or int(ip) <= int(hi)))

    if start_raw is not None and not inside(start_raw, None, end_raw):
        raise invalid_config(f"RangeStart {start_raw} not in network {net}", f"{path}.rangeStart")
    start = start_raw if start_raw is not None else net.network_address + 1
    if end_raw is not None and not inside(end_raw, start, None):
        raise invalid_config(f"RangeEnd {end_raw} not in network {net}", f"{path}.rangeEnd")
    end = end_raw if end_raw is not None else _last_ip(net)
    return Range(subnet=net, start=start, end=end, gateway=gateway)


def canonical_range_set(raw: Any, path: str) -> RangeSet:
    if raw is None or raw == []:
        raise invalid_config("empty range set", path)
    ranges: list[Range] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise invalid_config(f"invalid {path}[{i}]: {item!r} is not of type 'object'")
        rng = canonical_range(item, f"{path}[{i}]")
        if ranges and rng.version != ranges[0].version:
            raise invalid_config("mixed address families", f"{path}[{i}]")
        ranges.append(rng)
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            if a.overlaps(b):
                raise invalid_config(f"subnets {a} and {b} overlap", path)
    return RangeSet(tuple(ranges))


# -- requested addresses ---------------------------------------------------------------------------
def requested_from_env(args: str) -> list[IPAddress]:
    """CNI_ARGS `IP=` (code 4 on error, like any CNI_ARGS problem)."""
    text = parse_cni_args(args, CNI_ARGS_KEYS).get("IP", "")
    if text == "":
        return []
    ip = parse_requested(text)
    if ip is None:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f'ARGS: error parsing value of pair "IP={text}": '
                                                      f"invalid IP address {text}")
    return [ip]


def _requested_list(items: list[Any], path: str) -> list[IPAddress]:
    out = []
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise invalid_config(f"invalid {path}[{i}]: {text!r} is not of type 'string'")
        if text == "":
            raise invalid_config("cannot understand ip: IP <nil> not v4 nor v6", f"{path}[{i}] is empty")
        ip = parse_requested(text)
        if ip is None:
            raise invalid_config(f"invalid {path}[{i}]: invalid IP address {text}")
        out.append(ip)
    return out


# -- Go's JSON key matching ------------------------------------------------------------------------
_RANGE_KEYS = ("subnet", "rangeStart", "rangeEnd", "gateway")
_ROUTE_KEYS = ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")


def _fold(obj: Any, names: tuple[str, ...]) -> Any:
    """Rename keys that match a field name case-insensitively, as Go's encoding/json accepts them
    ("RangeStart" sets rangeStart); with several spellings the last one in the object wins, as
    each assigns the same field in turn."""
    if not isinstance(obj, dict):
        return obj
    lower = {n.lower(): n for n in names}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = str(key) if key in names else lower.get(str(key).lower(), str(key))
        out.pop(name, None)
        out[name] = value
    return out


def _fold_sets(sets: Any) -> Any:
    if not isinstance(sets, list):
        return sets
    return [[_fold(r, _RANGE_KEYS) for r in rs] if isinstance(rs, list) else rs for rs in sets]


def fold_keys(config: dict[str, Any]) -> dict[str, Any]:
    """The config with every key host-local reads under its documented spelling."""
    out: dict[str, Any] = _fold(config, ("ipam", "runtimeConfig", "args"))
    ipam = _fold(out.get("ipam"), ("type", "routes", "dataDir", "resolvConf", "ranges", "reclaimAfterReboot",
                                   *_RANGE_KEYS))
    if isinstance(ipam, dict):
        ipam["ranges"] = _fold_sets(ipam.get("ranges"))
        if isinstance(ipam.get("routes"), list):
            ipam["routes"] = [_fold(r, _ROUTE_KEYS) for r in ipam["routes"]]
        if ipam["ranges"] is None:
            del ipam["ranges"]
        out["ipam"] = ipam
    runtime = _fold(out.get("runtimeConfig"), ("ipRanges", "ips"))
    if isinstance(runtime, dict):
        if "ipRanges" in runtime:
            runtime["ipRanges"] = _fold_sets(runtime["ipRanges"])
        out["runtimeConfig"] = runtime
    args = _fold(out.get("args"), ("cni",))
    if isinstance(args, dict):
        args["cni"] = _fold(args.get("cni"), ("ips",))
        if args["cni"] is None:
            del args["cni"]
        out["args"] = args
    return out


# -- the whole config ------------------------------------------------------------------------------
def _typed(config: dict[str, Any], ipam: dict[str, Any], req: Request) -> IPAMConfig:
    version = config.get("cniVersion") or ""
    routes = []
    for i, raw in enumerate(_list(ipam, "routes", "ipam.routes")):
        try:
            routes.append(Route.from_json(raw))
        except CNIError as e:
            raise invalid_config(f"invalid ipam.routes[{i}]: {e.msg}") from None
    data_dir = _str(ipam, "dataDir", "ipam.dataDir") or DEFAULT_DATA_DIR
    if "\x00" in data_dir:
        raise invalid_config(f"invalid ipam.dataDir: {data_dir!r} contains a NUL byte")
    resolv_conf = _str(ipam, "resolvConf", "ipam.resolvConf")
    reclaim = _field(ipam, "reclaimAfterReboot", bool, "ipam.reclaimAfterReboot")
    _str(ipam, "type", "ipam.type")

    args = _dict(config, "args", "args")
    cni_args = _dict(args, "cni", "args.cni")
    runtime = _dict(config, "runtimeConfig", "runtimeConfig")
    requested = _requested_list(_list(cni_args, "ips", "args.cni.ips"), "args.cni.ips")
    requested += _requested_list(_list(runtime, "ips", "runtimeConfig.ips"), "runtimeConfig.ips")

    sources: list[tuple[Any, str]] = []
    for i, rs in enumerate(_list(runtime, "ipRanges", "runtimeConfig.ipRanges")):
        sources.append((rs, f"runtimeConfig.ipRanges[{i}]"))
    if _str(ipam, "subnet", "ipam.subnet"):
        sources.append(([ipam], "ipam"))
    else:  # the reference drops rangeStart etc. without a subnet; still check their types
        for key in ("rangeStart", "rangeEnd", "gateway"):
            _str(ipam, key, f"ipam.{key}")
    for i, rs in enumerate(_list(ipam, "ranges", "ipam.ranges")):
        sources.append((rs, f"ipam.ranges[{i}]"))
    for rs, path in sources:
        if rs is not None and not isinstance(rs, list):
            raise invalid_config(f"invalid {path}: {rs!r} is not of type 'array'")
    if not sources:
        raise invalid_config("no IP ranges specified", "set ipam.ranges (or ipam.subnet)")

    sets: list[RangeSet] = []
    for i, (rs, path) in enumerate(sources):
        try:
            sets.append(canonical_range_set(rs, path))
        except _DecodeError:
            raise
        except CNIError as e:
            raise invalid_config(f"invalid range set {i}: {e.msg}", e.details) from None
    per_family = [sum(1 for s in sets if s.version == v) for v in (4, 6)]
    if max(per_family) > 1 and not _at_least(version, (0, 3, 0)):
        raise invalid_config(f"CNI version {version} does not support more than 1 address per family",
                             "cniVersion must be 0.3.0 or later for several range sets of one family")
    for i, a in enumerate(sets):
        for j in range(i + 1, len(sets)):
            if a.overlaps(sets[j]):
                raise invalid_config(f"range set {i} overlaps with {j}", f"{sources[i][1]} and {sources[j][1]}")
    return IPAMConfig(name=req.network_name, cni_version=version, range_sets=tuple(sets), routes=tuple(routes),
                      data_dir=data_dir, resolv_conf=resolv_conf, requested=tuple(requested),
                      reclaim_after_reboot=True if reclaim is None else reclaim)


def _at_least(version: str, floor: tuple[int, int, int]) -> bool:
    try:
        return parse_version(version) >= floor
    except CNIError:
        return False


def load_config(req: Request, use_schema: bool = False) -> IPAMConfig:
    """Validate the whole request (config and CNI_ARGS) before anything touches the disk.

    `use_schema=True` runs the schema up front as well (tests use it to compare both paths)."""
    from shared.schema import validate

    config = fold_keys(req.config)
    if config.get("ipam") is None:
        raise invalid_config("IPAM config missing 'ipam' key")
    if use_schema:
        validate(config, SCHEMA)
    try:
        ipam = _dict(config, "ipam", "ipam")
        conf = _typed(config, ipam, req)
    except CNIError:
        if not use_schema:
            validate(config, SCHEMA)  # the schema's message wins when it also rejects
        raise
    env_ips = requested_from_env(req.args)
    return IPAMConfig(**{**conf.__dict__, "requested": tuple(env_ips) + conf.requested})
