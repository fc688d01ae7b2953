"""The bridge NetConf: raw JSON in, one frozen, fully validated dataclass out.

Keys are read the way the reference (Go encoding/json) reads them: case-insensitively, `null`
keeps the default, unknown keys are ignored, and a wrong JSON type is an error. Everything the
reference only finds out half-way through ADD (a bad MAC, MTU, bridge name or masquerade backend)
is checked here, before any side effect.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from shared.args import parse_cni_args
from shared.errors import CNIError, ErrorCode, invalid_config
from shared.request import IFNAME_MAX_BYTES, Request, validate_ifname
from shared.types import DNS

DEFAULT_BRIDGE = "cni0"
MAX_VLAN = 4094
_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
BACKENDS = ("iptables", "nftables")
MIN_MTU, MAX_MTU = 68, 65535


@dataclass(frozen=True)
class NetConf:
    """Every key of the reference bridge, with its defaults."""

    name: str
    cni_version: str = ""
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False
    force_address: bool = False
    ip_masq: bool = False
    ip_masq_backend: str | None = None
    mtu: int = 0
    hairpin_mode: bool = False
    promisc_mode: bool = False
    vlan: int = 0
    vlans: tuple[int, ...] = ()
    vlan_trunk_set: bool = False  # `vlanTrunk: []` still turns VLAN filtering on, as in the reference
    preserve_default_vlan: bool = False
    macspoofchk: bool = False
    enabledad: bool = False
    disable_container_interface: bool = False
    port_isolation: bool = False
    mac: str = ""
    ipam_type: str = ""
    dns: DNS = field(default_factory=DNS)

    @property
    def is_layer3(self) -> bool:
        return self.ipam_type != ""

    @property
    def vlan_filtering(self) -> bool:
        return self.vlan != 0 or self.vlan_trunk_set

    @property
    def vlan_gateway_name(self) -> str:
        return f"{self.bridge}.{self.vlan}"


# -- Go-style field access ------------------------------------------------------------------------

def _fold(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Case-insensitive keys; a later duplicate wins, as in Go."""
    return {k.lower(): v for k, v in obj.items()}


def _type_error(key: str, value: Any, want: str) -> CNIError:
    return CNIError(ErrorCode.DECODING_FAILURE,
                    f"failed to load netconf: json: cannot unmarshal {_json_kind(value)} into field {key} of type {want}",
                    f"{key} = {value!r}")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_GO_TYPES: dict[str, Any] = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
}


def _get(raw: Mapping[str, Any], key: str, go_type: str, default: Any) -> Any:
    """A scalar field as Go's decoder reads it: absent or null keeps the default, a wrong type fails."""
    value = raw.get(key.lower())
    if value is None:
        return default
    if not _GO_TYPES[go_type](value):
        raise _type_error(key, value, go_type)
    return value


def _get_bool(raw: Mapping[str, Any], key: str, default: bool = False) -> bool:
    return bool(_get(raw, key, "bool", default))


def _get_int(raw: Mapping[str, Any], key: str, default: int | None = 0) -> int | None:
    return _get(raw, key, "int", default)  # type: ignore[no-any-return]


def _get_str(raw: Mapping[str, Any], key: str, default: str | None = "") -> str | None:
    return _get(raw, key, "string", default)  # type: ignore[no-any-return]


def _get_obj(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key.lower())
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(key, value, "object")
    return _fold(value)


# -- the pieces -----------------------------------------------------------------------------------

def collect_vlan_trunk(raw_trunk: Any) -> tuple[tuple[int, ...], bool]:
    """Sorted unique VIDs and whether the key was present at all (reference `collectVlanTrunk`)."""
    if raw_trunk is None:
        return (), False
    if not isinstance(raw_trunk, list):
        raise _type_error("vlanTrunk", raw_trunk, "[]*VlanTrunk")
    vids: set[int] = set()
    for i, item in enumerate(raw_trunk):
        if item is None:
            continue
        if not isinstance(item, dict):
            raise _type_error(f"vlanTrunk[{i}]", item, "VlanTrunk")
        entry = _fold(item)
        min_id = _get_int(entry, "minID", None)
        max_id = _get_int(entry, "maxID", None)
        one_id = _get_int(entry, "id", None)
        if min_id is not None and max_id is not None:
            if not 1 <= min_id <= MAX_VLAN:
                raise invalid_config("incorrect trunk minID parameter", f"vlanTrunk[{i}].minID = {min_id}: must be 1..4094")
            if not 1 <= max_id <= MAX_VLAN:
                raise invalid_config("incorrect trunk maxID parameter", f"vlanTrunk[{i}].maxID = {max_id}: must be 1..4094")
            if max_id < min_id:
                raise invalid_config("minID is greater than maxID in trunk parameter",
                                     f"vlanTrunk[{i}]: minID {min_id} > maxID {max_id}")
            vids.update(range(min_id, max_id + 1))
        elif min_id is None and max_id is not None:
            raise invalid_config("minID and maxID should be configured simultaneously, minID is missing",
                                 f"vlanTrunk[{i}]")
        elif max_id is None and min_id is not None:
            raise invalid_config("minID and maxID should be configured simultaneously, maxID is missing",
                                 f"vlanTrunk[{i}]")
        if one_id is not None:
            if not 1 <= one_id <= MAX_VLAN:
                raise invalid_config("incorrect trunk id parameter", f"vlanTrunk[{i}].id = {one_id}: must be 1..4094")
            vids.add(one_id)
    return tuple(sorted(vids)), True


def _check_link_name(field_name: str, value: str) -> None:
    try:
        validate_ifname(value)
    except CNIError as e:
        raise invalid_config(f"invalid {field_name} {value!r}: {e.msg}",
                             f"a Linux interface name: 1..{IFNAME_MAX_BYTES} bytes, no '/', ':' or white space") from None


def check_mac(value: str, source: str) -> str:
    """A unicast Ethernet address, normalised to lower case (the kernel refuses multicast ones)."""
    if not _MAC_RE.fullmatch(value):
        raise invalid_config(f"invalid MAC address {value!r} in {source}", "expected six hex pairs like 0a:58:0a:00:00:05")
    if int(value[:2], 16) & 1:
        raise invalid_config(f"invalid MAC address {value!r} in {source}", "a multicast address cannot be an interface MAC")
    if value == "00:00:00:00:00:00":
        raise invalid_config(f"invalid MAC address {value!r} in {source}", "the all-zero address cannot be an interface MAC")
    return value.lower()


def resolve_mac(raw: Mapping[str, Any], cni_args: str) -> str:
    """runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC (the reference order)."""
    found = parse_cni_args(cni_args, ("MAC",)).get("MAC", "")
    source = "CNI_ARGS MAC"
    args_cni = _get_obj(_get_obj(raw, "args"), "cni")
    if args_cni.get("mac") not in (None, ""):
        found, source = _get_str(args_cni, "mac") or "", "args.cni.mac"
    runtime = _get_obj(raw, "runtimeConfig")
    if runtime.get("mac") not in (None, ""):
        found, source = _get_str(runtime, "mac") or "", "runtimeConfig.mac"
    return check_mac(found, source) if found else ""


def _dns(raw: Mapping[str, Any]) -> DNS:
    value = raw.get("dns")
    if value is None:
        return DNS()
    if not isinstance(value, dict):
        raise _type_error("dns", value, "DNS")
    try:
        return DNS.from_json(_fold(value))
    except CNIError as e:
        raise CNIError(ErrorCode.DECODING_FAILURE, f"failed to load netconf: dns: {e.msg}") from None


def validate_backend(backend: str | None) -> None:
    """The firewall package owns this check; a local fallback keeps config loading independent of it."""
    try:
        from .firewall import validate_backend as fw_validate
    except ImportError:
        fw_validate = None
    if fw_validate is not None:
        fw_validate(backend)
        return
    if backend is not None and backend not in BACKENDS:
        raise invalid_config(f'unknown ipmasq backend "{backend}"', f"ipMasqBackend must be one of {list(BACKENDS)}")


def load_conf(config: Mapping[str, Any], cni_args: str = "", strict: bool = True) -> NetConf:
    """Parse and validate everything up front (ADD and CHECK).

    `strict=False` (DEL, GC, STATUS) still needs well-typed JSON but skips the value checks: a
    config that became invalid must not stop the cleanup of what an earlier ADD made."""
    raw = _fold(config)
    vlan = _get_int(raw, "vlan") or 0
    if strict and not 0 <= vlan <= MAX_VLAN:
        raise invalid_config(f"invalid VLAN ID {vlan} (must be between 0 and {MAX_VLAN})", f"vlan = {vlan}")
    try:
        vlans, trunk_set = collect_vlan_trunk(raw.get("vlantrunk"))
    except CNIError:
        if strict:
            raise
        vlans, trunk_set = (), True
    try:
        mac = resolve_mac(raw, cni_args)
    except CNIError:
        if strict:
            raise
        mac = ""
    ipam_type = _get_str(_get_obj(raw, "ipam"), "type") or ""
    backend = _get_str(raw, "ipMasqBackend", None)
    mtu = _get_int(raw, "mtu") or 0
    conf = NetConf(
        name=config["name"],
        cni_version=_get_str(raw, "cniVersion") or "",
        bridge=_get_str(raw, "bridge", DEFAULT_BRIDGE) or "",
        is_gateway=_get_bool(raw, "isGateway"),
        is_default_gateway=_get_bool(raw, "isDefaultGateway"),
        force_address=_get_bool(raw, "forceAddress"),
        ip_masq=_get_bool(raw, "ipMasq"),
        ip_masq_backend=backend,
        mtu=mtu,
        hairpin_mode=_get_bool(raw, "hairpinMode"),
        promisc_mode=_get_bool(raw, "promiscMode"),
        vlan=vlan,
        vlans=vlans,
        vlan_trunk_set=trunk_set,
        preserve_default_vlan=_get_bool(raw, "preserveDefaultVlan"),
        macspoofchk=_get_bool(raw, "macspoofchk"),
        enabledad=_get_bool(raw, "enabledad"),
        disable_container_interface=_get_bool(raw, "disableContainerInterface"),
        port_isolation=_get_bool(raw, "portIsolation"),
        mac=mac,
        ipam_type=ipam_type,
        dns=_dns(raw),
    )
    if strict:
        _validate(conf)
    if conf.is_default_gateway and not conf.is_gateway:
        conf = replace(conf, is_gateway=True)
    return conf


def _validate(conf: NetConf) -> None:
    """Cross-field rules and the checks the reference leaves to the kernel."""
    if conf.is_layer3 and conf.disable_container_interface:
        raise invalid_config("cannot use IPAM when DisableContainerInterface flag is set",
                             f'ipam.type = "{conf.ipam_type}" with disableContainerInterface = true')
    if conf.hairpin_mode and conf.promisc_mode:
        raise invalid_config("cannot set hairpin mode and promiscuous mode at the same time",
                             "hairpinMode and promiscMode are both true")
    if conf.bridge == "":
        raise invalid_config('invalid bridge "": a bridge name is required', 'omit "bridge" to use cni0')
    _check_link_name("bridge", conf.bridge)
    if conf.mtu != 0 and not MIN_MTU <= conf.mtu <= MAX_MTU:
        raise invalid_config(f"invalid mtu {conf.mtu}", f"must be 0 (kernel default) or {MIN_MTU}..{MAX_MTU}")
    if conf.vlan and conf.is_layer3 and (conf.is_gateway or conf.is_default_gateway):
        _check_link_name("VLAN gateway interface name (bridge + '.' + vlan)", conf.vlan_gateway_name)
    if conf.ip_masq:
        validate_backend(conf.ip_masq_backend)


SCHEMA = "bridge-config"


def load_request(req: Request) -> NetConf:
    """Load and check the whole config before any side effect.

    shared/schemas/bridge-config.json is the source of truth for what a value may be; as in
    host-local, jsonschema (~150 ms to import and compile) is consulted only when the typed loader
    rejects something, and then its message, naming the field and value, is the one the caller
    sees (the loader's Go-style text goes into the details). A unit test checks that the loader
    and the schema reject the same values.
    """
    try:
        return load_conf(req.config, req.args)
    except CNIError as err:
        if err.code not in (ErrorCode.DECODING_FAILURE, ErrorCode.INVALID_NETWORK_CONFIG):
            raise
        from shared.schema import schema_errors

        problems = schema_errors(req.config, SCHEMA)
        if not problems:
            raise
        raise CNIError(err.code, f"invalid {problems[0]}", str(err)) from None
