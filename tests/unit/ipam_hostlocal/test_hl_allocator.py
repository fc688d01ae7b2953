"""Pure range arithmetic: round robin, gateway skip, exhaustion, huge ranges, requested addresses."""
from __future__ import annotations

import ipaddress
import time

import pytest

from ipam_hostlocal import allocator
from ipam_hostlocal.allocator import Allocation, RangeSet, next_free, plan
from ipam_hostlocal.config import canonical_range_set
from shared.errors import CNIError

ip = ipaddress.ip_address


def rs(*ranges: dict) -> RangeSet:
    return canonical_range_set(list(ranges), "test")


def walk(rset: RangeSet, n: int, last=None) -> list[str]:
    """Allocate n addresses in a row, the way successive ADDs would."""
    taken: dict = {}
    out = []
    for _ in range(n):
        found = next_free(rset, taken, last)
        if found is None:
            out.append(None)
            break
        last = found[0]
        taken[last] = "x"
        out.append(str(last))
    return out


def test_fresh_24_starts_at_2_and_continues():
    assert walk(rs({"subnet": "10.1.2.0/24"}), 2) == ["10.1.2.2", "10.1.2.3"]


def test_29_yields_five_then_exhausts():
    assert walk(rs({"subnet": "10.1.2.0/29"}), 6) == [f"10.1.2.{i}" for i in range(2, 7)] + [None]


def test_30_yields_exactly_one():
    assert walk(rs({"subnet": "10.1.2.0/30"}), 2) == ["10.1.2.2", None]


def test_round_robin_continues_after_last_and_wraps():
    r = rs({"subnet": "10.1.2.0/29"})
    assert next_free(r, {}, ip("10.1.2.4"))[0] == ip("10.1.2.5")
    # after the range end the walk wraps to the start (skipping the gateway .1)
    assert next_free(r, {}, ip("10.1.2.6"))[0] == ip("10.1.2.2")
    # the last address itself is tried last
    taken = {ip(f"10.1.2.{i}"): 1 for i in (2, 3, 5, 6)}
    assert next_free(r, taken, ip("10.1.2.4"))[0] == ip("10.1.2.4")


def test_last_outside_the_set_starts_at_range_start():
    r = rs({"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.100"})
    assert next_free(r, {}, ip("192.168.0.9"))[0] == ip("10.1.2.100")


def test_gateway_inside_the_range_is_skipped():
    r = rs({"subnet": "10.1.2.0/29", "gateway": "10.1.2.4"})
    assert walk(r, 6) == ["10.1.2.1", "10.1.2.2", "10.1.2.3", "10.1.2.5", "10.1.2.6", None]
    assert r.capacity() == 5


def test_multiple_ranges_in_one_set_wrap_between_ranges():
    r = rs({"subnet": "10.1.2.0/30"}, {"subnet": "10.1.3.0/30"})
    assert walk(r, 3) == ["10.1.2.2", "10.1.3.2", None]
    assert next_free(r, {}, ip("10.1.3.2"))[0] == ip("10.1.2.2")


def test_two_slices_of_one_subnet():
    r = rs({"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.10", "rangeEnd": "10.1.2.11"},
           {"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.20", "rangeEnd": "10.1.2.20"})
    assert walk(r, 4) == ["10.1.2.10", "10.1.2.11", "10.1.2.20", None]


def test_ipv6_64_is_instant_and_exact():
    r = rs({"subnet": "2001:db8::/64"})
    assert r.capacity() == 2**64 - 2  # ::1 .. all-ones (2**64 - 1 addresses) less the gateway ::1
    start = time.perf_counter()
    assert next_free(r, {}, None)[0] == ip("2001:db8::2")
    # a cursor at the very end wraps without walking the range
    assert next_free(r, {}, ip("2001:db8::ffff:ffff:ffff:ffff"))[0] == ip("2001:db8::2")
    taken = {ip("2001:db8::2") + i: 1 for i in range(1000)}
    assert next_free(r, taken, None)[0] == ip("2001:db8::2") + 1000
    assert time.perf_counter() - start < 0.5


def test_exhaustion_of_a_huge_range_is_counted_not_walked(monkeypatch):
    r = rs({"subnet": "2001:db8::/64"})
    # pretend the reservations fill the range: the walk must not even start
    monkeypatch.setattr(RangeSet, "used", lambda self, reserved: self.capacity())
    monkeypatch.setattr(allocator, "_candidates", lambda *a: pytest.fail("walked an exhausted range"))
    assert next_free(r, {}, None) is None


def test_reserved_addresses_outside_the_set_do_not_count():
    r = rs({"subnet": "10.1.2.0/30"})
    assert r.free({ip("10.9.9.9"): 1, ip("10.1.2.1"): 1}) == 1  # the gateway and a foreign address


def plan_for(sets, reserved=None, mine=(), requested=(), last=None):
    return plan(sets, reserved or {}, list(mine), [ip(x) for x in requested], last or {}, "c1")


def test_plan_one_address_per_set():
    out = plan_for([rs({"subnet": "10.1.2.0/24"}), rs({"subnet": "2001:db8::/64"})])
    assert [(a.index, str(a.ip), a.new) for a in out] == [(0, "10.1.2.2", True), (1, "2001:db8::2", True)]


def test_plan_requested_ip_is_matched_in_request_order():
    sets = [rs({"subnet": "10.1.2.0/24"}), rs({"subnet": "10.1.3.0/24"})]
    out = plan_for(sets, requested=["10.1.3.7", "10.1.2.9"])
    assert [str(a.ip) for a in out] == ["10.1.2.9", "10.1.3.7"]


def test_plan_requested_gateway_taken_and_unmet():
    sets = [rs({"subnet": "10.1.2.0/24"})]
    with pytest.raises(CNIError) as e:
        plan_for(sets, requested=["10.1.2.1"])
    assert e.value.code == allocator.ERR_REQUESTED_GATEWAY and "subnet's gateway" in e.value.msg
    with pytest.raises(CNIError) as e:
        plan_for(sets, reserved={ip("10.1.2.9"): "other"}, requested=["10.1.2.9"])
    assert e.value.code == allocator.ERR_REQUESTED_TAKEN and "10.1.2.9 is not available in range set" in e.value.msg
    with pytest.raises(CNIError) as e:
        plan_for(sets, requested=["10.1.2.9", "10.1.2.10", "192.168.1.1"])
    assert e.value.code == allocator.ERR_REQUESTED_UNMET
    assert e.value.msg == "failed to allocate all requested IPs: 10.1.2.10 192.168.1.1"
    assert "second request for range set 0" in e.value.details and "192.168.1.1 is in no range set" in e.value.details


def test_plan_exhaustion_names_the_set():
    sets = [rs({"subnet": "10.1.2.0/24"}), rs({"subnet": "10.1.3.0/30"})]
    with pytest.raises(CNIError) as e:
        plan_for(sets, reserved={ip("10.1.3.2"): "other"})
    assert e.value.code == allocator.ERR_EXHAUSTED
    assert e.value.msg == "failed to allocate for range 1: no IP addresses available in range set: 10.1.3.1-10.1.3.2"


def test_plan_reuses_an_existing_lease():
    sets = [rs({"subnet": "10.1.2.0/24"}), rs({"subnet": "10.1.3.0/24"})]
    out = plan_for(sets, reserved={ip("10.1.2.7"): "c1"}, mine=[ip("10.1.2.7")])
    assert out[0] == Allocation(0, ip("10.1.2.7"), sets[0].ranges[0], new=False)
    assert out[1].new and str(out[1].ip) == "10.1.3.2"
    same = plan_for(sets, reserved={ip("10.1.2.7"): "c1"}, mine=[ip("10.1.2.7")], requested=["10.1.2.7"])
    assert not same[0].new
    with pytest.raises(CNIError) as e:
        plan_for(sets, reserved={ip("10.1.2.7"): "c1"}, mine=[ip("10.1.2.7")], requested=["10.1.2.8"])
    assert e.value.code == allocator.ERR_LEASE_CONFLICT


def test_plan_uses_the_cursor_per_set():
    sets = [rs({"subnet": "10.1.2.0/24"}), rs({"subnet": "10.1.3.0/24"})]
    out = plan_for(sets, last={0: ip("10.1.2.50"), 1: ip("10.1.3.254")})
    assert [str(a.ip) for a in out] == ["10.1.2.51", "10.1.3.2"]
