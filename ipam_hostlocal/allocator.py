"""Pure range arithmetic: ranges, range sets and the round-robin choice of the next free address.

No I/O here. Addresses are handled as integers, so a fresh IPv6 /64 costs the same as a /30:
exhaustion is decided by counting reservations against the size of the set, and the walk for a
free address steps over at most as many addresses as there are reservations (plus gateways).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Optional, Union

from shared.errors import CNIError

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

# Plugin-specific error codes (>= 100; documented in docs/host-local.md).
ERR_EXHAUSTED = 100          # a range set has no free address
ERR_REQUESTED_TAKEN = 101    # a requested address is reserved by another container
ERR_REQUESTED_GATEWAY = 102  # a requested address is its range's gateway
ERR_REQUESTED_UNMET = 103    # a requested address lies in no range set, or a set got two requests
ERR_LEASE_CONFLICT = 104     # the container already holds another address in that range set


@dataclass(frozen=True)
class Range:
    """One validated range: `start..end` inside `subnet`, with the gateway to skip."""

    subnet: IPNetwork
    start: IPAddress
    end: IPAddress
    gateway: IPAddress

    @property
    def version(self) -> int:
        return self.subnet.version

    def contains(self, ip: IPAddress) -> bool:
        return ip.version == self.version and int(self.start) <= int(ip) <= int(self.end)

    def gateway_inside(self) -> bool:
        return self.contains(self.gateway)

    def size(self) -> int:
        """Addresses this range can hand out (the gateway is never handed out)."""
        return int(self.end) - int(self.start) + 1 - (1 if self.gateway_inside() else 0)

    def overlaps(self, other: Range) -> bool:
        return (self.version == other.version and int(self.start) <= int(other.end)
                and int(other.start) <= int(self.end))

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


@dataclass(frozen=True)
class RangeSet:
    """A list of ranges of one family; each set yields exactly one address per ADD."""

    ranges: tuple[Range, ...]

    @property
    def version(self) -> int:
        return self.ranges[0].version

    def range_for(self, ip: IPAddress) -> Optional[Range]:
        return next((r for r in self.ranges if r.contains(ip)), None)

    def contains(self, ip: IPAddress) -> bool:
        return self.range_for(ip) is not None

    def overlaps(self, other: RangeSet) -> bool:
        return any(a.overlaps(b) for a in self.ranges for b in other.ranges)

    def capacity(self) -> int:
        return sum(r.size() for r in self.ranges)

    def used(self, reserved: Iterable[IPAddress]) -> int:
        """How many of `reserved` take up an address this set could hand out. Plain integer
        comparisons: this runs over every reservation on each ADD (10,000 and more)."""
        bounds = [(r.version, int(r.start), int(r.end), int(r.gateway) if r.gateway.version == r.version else -1)
                  for r in self.ranges]
        count = 0
        for ip in reserved:
            version, value = ip.version, int(ip)
            for rv, lo, hi, gw in bounds:
                if rv == version and lo <= value <= hi:
                    count += value != gw
                    break
        return count

    def free(self, reserved: Iterable[IPAddress]) -> int:
        return self.capacity() - self.used(reserved)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


def _candidates(rs: RangeSet, last: Optional[IPAddress]) -> Iterator[tuple[Range, IPAddress]]:
    """The reference's round-robin order: after `last` (wrapping through the ranges), every address
    once, ending with `last` itself; from range 0's start when `last` is not in the set."""
    ranges = rs.ranges
    idx = next((i for i, r in enumerate(ranges) if last is not None and r.contains(last)), None)
    cur: Optional[IPAddress]
    if idx is None:
        idx, cur = 0, None
    else:
        cur = last
    while True:
        if cur is None:
            cur = ranges[idx].start
        elif cur == ranges[idx].end:
            idx = (idx + 1) % len(ranges)
            cur = ranges[idx].start
        else:
            cur = cur + 1
        yield ranges[idx], cur


def next_free(rs: RangeSet, reserved: Mapping[IPAddress, object] | frozenset[IPAddress] | set[IPAddress],
              last: Optional[IPAddress]) -> Optional[tuple[IPAddress, Range]]:
    """The address the reference would pick, or None when the set is exhausted.

    Exhaustion is counted first, so the walk below always ends within len(reserved) + number of
    ranges + 1 steps, however large the ranges are."""
    if rs.free(reserved) <= 0:
        return None
    for rng, ip in _candidates(rs, last):
        if ip != rng.gateway and ip not in reserved:
            return ip, rng
    raise AssertionError("unreachable: free addresses were counted")  # pragma: no cover


@dataclass(frozen=True)
class Allocation:
    """The address chosen for range set `index`; `new` is False when an existing lease is reused."""

    index: int
    ip: IPAddress
    range: Range
    new: bool


def pick_requested(rs: RangeSet, pending: list[IPAddress]) -> Optional[IPAddress]:
    """The first pending request this set contains, in request order (the reference picks at random)."""
    for ip in pending:
        if rs.contains(ip):
            pending.remove(ip)
            return ip
    return None


def plan(range_sets: list[RangeSet], reserved: Mapping[IPAddress, object], mine: Iterable[IPAddress],
         requested: list[IPAddress], last_reserved: Mapping[int, Optional[IPAddress]],
         container_id: str) -> list[Allocation]:
    """Choose one address per range set, or raise; nothing is written until the whole plan stands.

    `reserved` maps every reserved address to its owner; `mine` are those held by this
    (container ID, ifname) already (an ADD repeated after success returns them unchanged).
    """
    pending = list(dict.fromkeys(requested))
    mine = sorted(set(mine), key=lambda ip: (ip.version, int(ip)))
    taken: dict[IPAddress, object] = dict(reserved)
    out: list[Allocation] = []
    for idx, rs in enumerate(range_sets):
        want = pick_requested(rs, pending)
        held = [ip for ip in mine if rs.contains(ip)]
        if held:
            if want is not None and want not in held:
                raise CNIError(ERR_LEASE_CONFLICT, f"failed to allocate for range {idx}: container {container_id} "
                                                   f"already holds {held[0]} in range set {rs}, requested {want}")
            ip = want if want is not None else held[0]
            out.append(Allocation(idx, ip, rs.range_for(ip), new=False))  # type: ignore[arg-type]
            continue
        if want is not None:
            rng = rs.range_for(want)
            assert rng is not None
            if want == rng.gateway:
                raise CNIError(ERR_REQUESTED_GATEWAY,
                               f"failed to allocate for range {idx}: requested ip {want} is subnet's gateway")
            if want in taken:
                raise CNIError(ERR_REQUESTED_TAKEN, f"failed to allocate for range {idx}: requested IP address "
                                                    f"{want} is not available in range set {rs}")
            out.append(Allocation(idx, want, rng, new=True))
            taken[want] = container_id
            continue
        found = next_free(rs, taken, last_reserved.get(idx))
        if found is None:
            raise CNIError(ERR_EXHAUSTED, f"failed to allocate for range {idx}: "
                                          f"no IP addresses available in range set: {rs}",
                           f"all {rs.capacity()} addresses of range set {idx} are reserved")
        ip, rng = found
        out.append(Allocation(idx, ip, rng, new=True))
        taken[ip] = container_id
    if pending:
        reasons = []
        for ip in pending:
            owner = next((i for i, rs in enumerate(range_sets) if rs.contains(ip)), None)
            reasons.append(f"{ip} is in no range set" if owner is None
                           else f"{ip} is a second request for range set {owner}")
        raise CNIError(ERR_REQUESTED_UNMET,
                       "failed to allocate all requested IPs: " + " ".join(str(ip) for ip in pending),
                       "; ".join(reasons))
    return out
