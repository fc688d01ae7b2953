"""The catalog: ADD and CHECK read only the reservation files they have not seen before, and stay
correct when the reference adds, removes or replaces files between two calls."""
from __future__ import annotations

import ipaddress
import os
import shutil
import time

import pytest

from ipam_hostlocal.boot import BootInfo
from ipam_hostlocal.store import CATALOG, META_DIR, PINS, RELEASED, Store

ip = ipaddress.ip_address


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path), "net1", boot=lambda: BootInfo("boot-b", time.time() - 3600))
    with s.locked(create=True):
        for i in range(20):
            s.reserve(f"c{i}", "eth0", [(ip(f"10.1.2.{i + 2}"), 0)], [])
    return s


def survey(s: Store):
    """One catalogued scan under the lock, saved as ADD saves it."""
    with s.locked(create=False):
        scan = s.scan(full=False)
        s.save_catalog(scan)
    return scan


def owners(scan):
    return {str(k): (v.container_id, v.ifname) for k, v in scan.leases.items()}


def test_first_scan_reads_everything_then_nothing(store):
    first = survey(store)
    assert first.read == 20 and len(first.leases) == 20
    again = survey(store)
    assert again.read == 0 and owners(again) == owners(first)


def test_reserve_catalogs_its_own_files_without_reading_them(store):
    survey(store)
    with store.locked(create=False):
        scan = store.scan(full=False)
        store.reserve("new", "eth0", [(ip("10.1.2.100"), 0)], [], scan=scan)
    after = survey(store)
    assert after.read == 0 and owners(after)["10.1.2.100"] == ("new", "eth0")


def test_files_the_reference_wrote_are_read_once(store):
    survey(store)
    open(store.path("10.1.2.200"), "wb").write(b"ref\r\neth1")
    open(store.path("10.1.2.201"), "wb").write(b"legacy")
    scan = survey(store)
    assert scan.read == 2 and owners(scan)["10.1.2.200"] == ("ref", "eth1")
    assert owners(scan)["10.1.2.201"] == ("legacy", None)
    assert survey(store).read == 0


def test_removed_files_leave_the_catalog_at_its_next_rewrite(store):
    survey(store)
    os.unlink(store.path("10.1.2.2"))  # the reference's DEL
    scan = survey(store)
    assert "10.1.2.2" not in owners(scan) and scan.read == 0
    with store.locked(create=False):  # new files are appended until stale lines outnumber live ones
        for i in range(60, 250):
            scan = store.scan(full=False)
            store.reserve(f"n{i}", "eth0", [(ip(f"10.1.2.{i}"), 0)], [], scan=scan)
            if i < 240:
                os.unlink(store.path(f"10.1.2.{i}"))
    text = open(os.path.join(store.meta, CATALOG)).read()
    assert "10.1.2.2\t" not in text and "10.1.2.120\t" not in text and "10.1.2.245\t" in text
    assert len(text.splitlines()) <= 2 * 29 + 64 + 1
    assert len(os.listdir(os.path.join(store.meta, PINS))) <= 2 * 29 + 64
    scan = survey(store)
    assert scan.read == 0 and len(scan.leases) == 19 + 10


def test_a_replaced_file_is_read_again(store):
    """The reference's DEL then ADD under the same name: on ext4 the freed inode number is usually
    handed straight out again, which the pin prevents."""
    survey(store)
    for round in range(5):
        old = os.stat(store.path("10.1.2.3")).st_ino
        os.unlink(store.path("10.1.2.3"))
        open(store.path("10.1.2.3"), "wb").write(f"other{round}\r\neth0".encode())
        assert os.stat(store.path("10.1.2.3")).st_ino != old
        scan = survey(store)
        assert owners(scan)["10.1.2.3"] == (f"other{round}", "eth0") and scan.read == 1


def test_pins_hold_exactly_the_catalogued_files(store):
    survey(store)
    pins = os.path.join(store.meta, PINS)
    inodes = {os.stat(store.path(f"10.1.2.{i + 2}")).st_ino for i in range(20)}
    assert {int(n) for n in os.listdir(pins)} == inodes
    assert os.stat(store.path("10.1.2.2")).st_nlink == 2  # names and contents are untouched
    os.unlink(store.path("10.1.2.2"))
    survey(store)
    assert len(os.listdir(pins)) == 20  # its line stays until the next rewrite, and so does its pin
    os.unlink(os.path.join(store.meta, CATALOG))  # no catalog: the pins are reconciled by listing
    survey(store)
    assert len(os.listdir(pins)) == 19


def test_garbage_is_never_catalogued(store):
    survey(store)
    open(store.path("10.1.2.99"), "wb").write(b"")  # a crashed reference writer
    for _ in range(2):
        scan = survey(store)
        assert scan.garbage == ["10.1.2.99"] and scan.read == 1
    open(store.path("10.1.2.99"), "wb").write(b"late\r\neth0")  # cannot happen under the lock, but still
    assert owners(survey(store))["10.1.2.99"] == ("late", "eth0")


@pytest.mark.parametrize("damage", [b"", b"pycni-catalog v2\n10.1.2.2\tx\tc0\n", b"something else\n",
                                    b"pycni-catalog v1\n", b"pycni-catalog v2\n\x00\x00\x00\n"])
def test_a_damaged_catalog_means_reading_everything(store, damage):
    survey(store)
    open(os.path.join(store.meta, CATALOG), "wb").write(damage)
    scan = survey(store)
    assert scan.read == 20 and len(scan.leases) == 20


def test_a_write_cut_short_loses_only_its_own_line(store):
    survey(store)
    path = os.path.join(store.meta, CATALOG)
    text = open(path, "rb").read()
    open(path, "wb").write(text[:-5])  # the last line lost its end
    scan = survey(store)
    assert scan.read == 1 and len(scan.leases) == 20


def test_deleting_the_bookkeeping_is_safe(store, tmp_path):
    survey(store)
    shutil.rmtree(tmp_path / META_DIR)
    scan = survey(store)
    assert scan.read == 20 and owners(scan)["10.1.2.2"] == ("c0", "eth0")
    assert survey(store).read == 0


def test_the_callers_own_catalog_entries_are_verified(store):
    survey(store)
    # an in-place rewrite keeps name and inode (the reference never does this, but a person might)
    with open(store.path("10.1.2.2"), "r+b") as f:
        f.write(b"cX\r\neth0")
        f.truncate()
    with store.locked(create=False):
        scan = store.scan(full=False)
        assert owners(scan)["10.1.2.2"] == ("c0", "eth0")  # the catalog's word for everyone else
        assert store.owned(scan, "c0", "eth0") == []
        assert owners(scan)["10.1.2.2"] == ("cX", "eth0") and scan.dirty


def test_released_names_are_read_again_even_with_a_reused_inode(store):
    survey(store)
    with store.locked(create=False):
        assert store.release("c0", "eth0") == [ip("10.1.2.2")]
    assert open(os.path.join(store.meta, RELEASED)).read() == "10.1.2.2\n"
    assert "10.1.2.2" not in store._load_catalog()
    open(store.path("10.1.2.2"), "wb").write(b"ref\r\neth0")
    scan = survey(store)
    assert owners(scan)["10.1.2.2"] == ("ref", "eth0") and scan.read == 1
    assert not os.path.exists(os.path.join(store.meta, RELEASED))  # cleared with the new catalog


def test_lookup_uses_a_verified_index_hit_without_scanning(store, monkeypatch):
    monkeypatch.setattr(Store, "scan", lambda self, full=True: pytest.fail("scanned despite an index hit"))
    with store.locked(create=False):
        assert [str(l.ip) for l in store.lookup("c5", "eth0")] == ["10.1.2.7"]


def test_lookup_miss_finds_reference_leases_and_legacy_files(store):
    survey(store)
    open(store.path("10.1.2.60"), "wb").write(b"ref\r\neth0")
    open(store.path("10.1.2.61"), "wb").write(b"old")
    with store.locked(create=False):
        assert [str(l.ip) for l in store.lookup("ref", "eth0")] == ["10.1.2.60"]
        assert [str(l.ip) for l in store.lookup("old", "eth9")] == ["10.1.2.61"]
        assert store.lookup("nobody", "eth0") == []
    assert survey(store).read == 0  # the misses catalogued what they read


def test_full_scan_still_reads_every_file_with_its_mtime(store):
    survey(store)
    with store.locked(create=False):
        scan = store.scan(full=True)
    assert scan.read == 20 and all(l.mtime < time.time() + 1 for l in scan.leases.values())
