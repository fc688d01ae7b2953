"""The CNI result model, held in one internal (1.1.0) form and written out in any spec version.

Conversions follow the reference library: 0.1.0/0.2.0 keep the first IPv4 and first IPv6 address
only and fail when there is none; 0.3.x/0.4.0 carry `ips[].version`; 1.x drop it.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Union

from .errors import CNIError, ErrorCode
from .version import FAMILIES, family_of

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

ROUTE_EXTRAS = (("mtu", "mtu"), ("advmss", "advmss"), ("priority", "priority"),
                ("table", "table"), ("scope", "scope"))


def _bad(what: str, value: Any) -> CNIError:
    return CNIError(ErrorCode.DECODING_FAILURE, f"invalid {what}: {value!r}")


def parse_ip(value: Any, what: str = "IP address") -> IPAddress:
    """Strict like Go's net.ParseIP: no zones, no leading zeros in IPv4."""
    if not isinstance(value, str) or "%" in value:
        raise _bad(what, value)
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise _bad(what, value) from None


def parse_cidr(value: Any, what: str = "CIDR address") -> IPInterface:
    """An address with its prefix, host bits kept (10.1.0.5/16). Like Go's ParseCIDR: the prefix is
    a decimal length (never a netmask), no zone."""
    if not isinstance(value, str) or "%" in value:
        raise _bad(what, value)
    _, slash, prefix = value.partition("/")
    if not slash or not (prefix.isascii() and prefix.isdigit()):
        raise _bad(what, value)
    try:
        return ipaddress.ip_interface(value)
    except ValueError:
        raise _bad(what, value) from None


def parse_network(value: Any, what: str = "CIDR address") -> IPNetwork:
    """A network as Go's ParseCIDR yields it: host bits masked off."""
    return parse_cidr(value, what).network


def _opt_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(key, value)
    return value


def _opt_uint(obj: dict[str, Any], key: str, minimum: int = 0) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(key, value)
    return value


def _str_list(obj: dict[str, Any], key: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(key, value)
    return list(value)


@dataclass
class Interface:
    name: str
    mac: str = ""
    mtu: int | None = None
    sandbox: str = ""
    socket_path: str = ""
    pci_id: str = ""

    @classmethod
    def from_json(cls, obj: Any) -> Interface:
        if not isinstance(obj, dict):
            raise _bad("interface", obj)
        return cls(name=_opt_str(obj, "name"), mac=_opt_str(obj, "mac"), mtu=_opt_uint(obj, "mtu"),
                   sandbox=_opt_str(obj, "sandbox"), socket_path=_opt_str(obj, "socketPath"),
                   pci_id=_opt_str(obj, "pciID"))

    def to_json(self, family: int) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.mac:
            out["mac"] = self.mac
        if family == 2 and self.mtu:  # Go omits a zero MTU
            out["mtu"] = self.mtu
        if self.sandbox:
            out["sandbox"] = self.sandbox
        if family == 2 and self.socket_path:
            out["socketPath"] = self.socket_path
        if family == 2 and self.pci_id:
            out["pciID"] = self.pci_id
        return out


@dataclass
class IPConfig:
    address: IPInterface
    gateway: IPAddress | None = None
    interface: int | None = None

    @property
    def family(self) -> int:
        return self.address.version

    @classmethod
    def from_json(cls, obj: Any) -> IPConfig:
        if not isinstance(obj, dict):
            raise _bad("ip config", obj)
        address = parse_cidr(obj.get("address"), "ip address")
        gw_text = obj.get("gateway")
        gateway = parse_ip(gw_text, "gateway") if gw_text not in (None, "") else None
        if gateway is not None and gateway.version != address.version:
            raise _bad("gateway (address family differs from the address)", gw_text)
        # -1 ("no interface") parses, as in the reference (spec-upgrades.md); schemas reject it.
        return cls(address=address, gateway=gateway, interface=_opt_uint(obj, "interface", minimum=-1))

    def to_json(self, family: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if family == 1:
            out["version"] = str(self.family)
        if self.interface is not None:
            out["interface"] = self.interface
        out["address"] = str(self.address)
        if self.gateway is not None:
            out["gateway"] = str(self.gateway)
        return out


@dataclass
class Route:
    dst: IPNetwork
    gw: IPAddress | None = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None

    @property
    def family(self) -> int:
        return self.dst.version

    @property
    def is_default(self) -> bool:
        return self.dst.prefixlen == 0

    @classmethod
    def from_json(cls, obj: Any) -> Route:
        if not isinstance(obj, dict):
            raise _bad("route", obj)
        dst = parse_network(obj.get("dst"), "route dst")
        gw_text = obj.get("gw")
        gw = parse_ip(gw_text, "route gw") if gw_text not in (None, "") else None
        extras = {attr: _opt_uint(obj, key) for key, attr in ROUTE_EXTRAS}
        return cls(dst=dst, gw=gw, **extras)

    def to_json(self, family: int) -> dict[str, Any]:
        out: dict[str, Any] = {"dst": str(self.dst)}
        if self.gw is not None:
            out["gw"] = str(self.gw)
        if family > 0:  # 0.1.0/0.2.0 routes keep dst and gw only
            for key, attr in ROUTE_EXTRAS:
                value = getattr(self, attr)
                # Go: mtu/advmss/priority are plain ints (0 omitted), table/scope pointers (0 kept).
                if value is not None and (value != 0 or key in ("table", "scope")):
                    out[key] = value
        return out


@dataclass
class DNS:
    nameservers: list[str] = field(default_factory=list)
    domain: str = ""
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.nameservers or self.domain or self.search or self.options)

    @classmethod
    def from_json(cls, obj: Any) -> DNS:
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise _bad("dns", obj)
        return cls(nameservers=_str_list(obj, "nameservers"), domain=_opt_str(obj, "domain"),
                   search=_str_list(obj, "search"), options=_str_list(obj, "options"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out


@dataclass
class Result:
    interfaces: list[Interface] = field(default_factory=list)
    ips: list[IPConfig] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    dns: DNS = field(default_factory=DNS)

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def from_json(cls, obj: Any, expected_version: str | None = None) -> Result:
        """Parse a result of any version into the internal form.

        With `expected_version`, the result's own `cniVersion` (defaulting to it when absent) must
        be of the same family, as the reference library requires.
        """
        if not isinstance(obj, dict):
            raise CNIError(ErrorCode.DECODING_FAILURE, "a CNI result must be a JSON object",
                           f"got {type(obj).__name__}")
        version = obj.get("cniVersion")
        if version in (None, ""):
            version = expected_version if expected_version is not None else ""
        if not isinstance(version, str):
            raise _bad("cniVersion", version)
        fam = family_of(version)
        if expected_version is not None and fam != family_of(expected_version):
            members = sorted(v for v in FAMILIES[family_of(expected_version)] if v)
            raise CNIError(ErrorCode.DECODING_FAILURE,
                           f'result type supports [{" ".join(members)}] but unmarshalled CNIVersion is "{version}"',
                           f'a result of version "{version}" cannot be read as version "{expected_version}"')
        if fam == 0:
            return cls._from_legacy(obj)
        interfaces = [Interface.from_json(i) for i in cls._list(obj, "interfaces")]
        ips = [IPConfig.from_json(i) for i in cls._list(obj, "ips")]
        for ip, raw in zip(ips, cls._list(obj, "ips")):
            declared = raw.get("version")
            if fam == 1 and declared not in (None, "", str(ip.family)):
                raise _bad("ip version (does not match the address)", declared)
        routes = [Route.from_json(r) for r in cls._list(obj, "routes")]
        return cls(interfaces=interfaces, ips=ips, routes=routes, dns=DNS.from_json(obj.get("dns")))

    @staticmethod
    def _list(obj: dict[str, Any], key: str) -> list[Any]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _bad(key, value)
        return value

    @classmethod
    def _from_legacy(cls, obj: dict[str, Any]) -> Result:
        ips: list[IPConfig] = []
        routes: list[Route] = []
        for key, family in (("ip4", 4), ("ip6", 6)):
            section = obj.get(key)
            if section is None:
                continue
            if not isinstance(section, dict):
                raise _bad(key, section)
            address = parse_cidr(section.get("ip"), f"{key}.ip")
            if address.version != family:
                raise _bad(f"{key}.ip (wrong address family)", section.get("ip"))
            gw_text = section.get("gateway")
            gateway = parse_ip(gw_text, f"{key}.gateway") if gw_text not in (None, "") else None
            ips.append(IPConfig(address=address, gateway=gateway))
            routes.extend(Route.from_json(r) for r in cls._list(section, "routes"))
        return cls(ips=ips, routes=routes, dns=DNS.from_json(obj.get("dns")))

    # -- writing ---------------------------------------------------------------------------
    def to_json(self, version: str) -> dict[str, Any]:
        fam = family_of(version)
        if fam == 0:
            return self._to_legacy(version)
        out: dict[str, Any] = {"cniVersion": version}
        if self.interfaces:
            out["interfaces"] = [i.to_json(fam) for i in self.interfaces]
        if self.ips:
            out["ips"] = [ip.to_json(fam) for ip in self.ips]
        if self.routes:
            out["routes"] = [r.to_json(fam) for r in self.routes]
        dns = self.dns.to_json()
        if dns or fam == 1:
            out["dns"] = dns
        return out

    def _to_legacy(self, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version or "0.1.0"}
        found = False
        for key, family in (("ip4", 4), ("ip6", 6)):
            first = next((ip for ip in self.ips if ip.family == family), None)
            if first is None:
                continue
            found = True
            section: dict[str, Any] = {"ip": str(first.address)}
            if first.gateway is not None:
                section["gateway"] = str(first.gateway)
            routes = [r.to_json(0) for r in self.routes if r.family == family]
            if routes:
                section["routes"] = routes
            out[key] = section
        if not found:
            raise CNIError(ErrorCode.INCOMPATIBLE_VERSION, "cannot convert: no valid IP addresses",
                           f'a result without IP addresses cannot be expressed in version "{version}"')
        out["dns"] = self.dns.to_json()
        return out


def prev_result(config: dict[str, Any]) -> Result | None:
    """The `prevResult` of a request, read in its own version (lenient: the reference insists on
    the config's family; we accept any and convert). None when absent or empty."""
    raw = config.get("prevResult")
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise CNIError(ErrorCode.DECODING_FAILURE, "could not parse prevResult", "prevResult must be an object")
    if not raw.get("cniVersion"):
        version = config.get("cniVersion")
        raw = {**raw, "cniVersion": version if isinstance(version, str) else ""}
    try:
        return Result.from_json(raw)
    except CNIError as e:
        raise CNIError(ErrorCode.DECODING_FAILURE, "could not parse prevResult", str(e)) from None


def convert_result(obj: Any, to_version: str, from_version: str | None = None) -> dict[str, Any]:
    """Result JSON of any version -> the same result as `to_version` JSON (the reference's Convert).

    `from_version` is assumed when `obj` has no cniVersion. Raises CNIError: 6 unreadable,
    1 unknown version or no IP address for a 0.1.0/0.2.0 target.
    """
    if isinstance(obj, dict) and not obj.get("cniVersion") and from_version is not None:
        obj = {**obj, "cniVersion": from_version}
    return Result.from_json(obj).to_json(to_version)
