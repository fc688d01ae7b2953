"""The disk store against a tmp dir: reference file format, atomic writes, lock identity, index,
legacy files, crash leftovers and the reboot seam."""
from __future__ import annotations

import fcntl
import ipaddress
import os
import stat
import time

import pytest

from ipam_hostlocal.boot import BootInfo, current_boot
from ipam_hostlocal.store import BOOT_MARKER, INDEX_DIR, Store, index_name, parse_owner
from shared.errors import CNIError

ip = ipaddress.ip_address


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path), "net1", boot=lambda: BootInfo("boot-b", time.time() - 3600))


def files(store):
    return sorted(os.listdir(store.dir))


def test_reserve_writes_the_reference_format(store):
    with store.locked(create=True):
        store.reserve("c1", "eth0", [(ip("10.1.2.2"), 0), (ip("2001:db8::2"), 1)], [])
    assert open(store.path("10.1.2.2"), "rb").read() == b"c1\r\neth0"
    assert open(store.path("2001:db8::2"), "rb").read() == b"c1\r\neth0"
    assert open(store.path("last_reserved_ip.0"), "rb").read() == b"10.1.2.2"
    assert open(store.path("last_reserved_ip.1"), "rb").read() == b"2001:db8::2"
    assert stat.S_IMODE(os.stat(store.path("10.1.2.2")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path("lock")).st_mode) == 0o750
    assert not [n for n in files(store) if n.startswith(".pycni-tmp")]
    assert store.index_lookup("c1", "eth0") == [ip("10.1.2.2"), ip("2001:db8::2")]


def test_lock_file_keeps_its_inode(store):
    with store.locked(create=True):
        pass
    inode = os.stat(store.path("lock")).st_ino
    for _ in range(3):
        with store.locked(create=True):
            store.reserve("c1", "eth0", [], [])
        with store.locked(create=False):
            store.release("c1", "eth0")
    assert os.stat(store.path("lock")).st_ino == inode


def test_lock_excludes_a_reference_style_holder(store):
    with store.locked(create=True):
        pass
    fd = os.open(store.path("lock"), os.O_RDONLY)  # what the reference does
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        slow = Store(os.path.dirname(store.dir), "net1", lock_timeout=0.2)
        start = time.monotonic()
        with pytest.raises(CNIError) as e:
            with slow.locked(create=False):
                pytest.fail("got a lock someone else holds")
        assert e.value.code == 11 and time.monotonic() - start >= 0.2
    finally:
        os.close(fd)


def test_scan_reads_owners_legacy_garbage_and_leftovers(store):
    with store.locked(create=True):
        pass
    (lambda p, d: open(store.path(p), "wb").write(d))("10.1.2.2", b"c1\r\neth0")
    open(store.path("10.1.2.3"), "wb").write(b"legacy-id\n")
    open(store.path("10.1.2.4"), "wb").write(b"")
    open(store.path("10.1.2.5"), "wb").write(b"\xff\xfe")
    open(store.path(".pycni-tmp.1.abc"), "wb").write(b"c9\r\neth0")
    open(store.path("not-an-ip"), "wb").write(b"c1\r\neth0")
    with store.locked(create=False):
        scan = store.scan()
    assert {str(k): (v.container_id, v.ifname) for k, v in scan.leases.items()} == {
        "10.1.2.2": ("c1", "eth0"), "10.1.2.3": ("legacy-id", None)}
    assert sorted(scan.garbage) == ["10.1.2.4", "10.1.2.5"]
    assert scan.leftovers == [".pycni-tmp.1.abc"]
    assert [str(l.ip) for l in scan.owned_by("legacy-id", "eth7")] == ["10.1.2.3"]


def test_parse_owner():
    assert parse_owner(b"abc\r\neth0") == ("abc", "eth0")
    assert parse_owner(b"  abc  \n") == ("abc", None)
    assert parse_owner(b"") is None and parse_owner(b"-bad\r\neth0") is None and parse_owner(b"a\r\nb c") is None
    assert parse_owner(b"abc\r\n") == ("abc", None)  # TrimSpace makes it a legacy ID, as in the reference


def test_release_uses_a_verified_index_hit(store, monkeypatch):
    with store.locked(create=True):
        store.reserve("c1", "eth0", [(ip("10.1.2.2"), 0)], [])
        store.reserve("c2", "eth0", [(ip("10.1.2.3"), 0)], [])
        monkeypatch.setattr(Store, "scan", lambda self: pytest.fail("scanned despite an index hit"))
        assert store.release("c1", "eth0") == [ip("10.1.2.2")]
    assert "10.1.2.2" not in files(store) and "10.1.2.3" in files(store)
    assert not os.path.exists(os.path.join(store.meta, INDEX_DIR, index_name("c1", "eth0")))


def test_release_falls_back_to_a_scan_for_reference_reservations(store):
    with store.locked(create=True):
        pass
    open(store.path("10.1.2.7"), "wb").write(b"ref\r\neth0")  # written by the reference: no index entry
    open(store.path("10.1.2.8"), "wb").write(b"ref")  # legacy: released only when no full match exists
    with store.locked(create=False):
        assert store.release("ref", "eth0") == [ip("10.1.2.7")]
        assert store.release("ref", "eth0") == [ip("10.1.2.8")]
    assert [n for n in files(store) if n[0].isdigit()] == []


def test_stale_index_entry_never_releases_someone_elses_address(store):
    with store.locked(create=True):
        store.reserve("c1", "eth0", [(ip("10.1.2.2"), 0)], [])
    # the reference released c1 and handed .2 to c2; the index entry for c1 stayed behind
    open(store.path("10.1.2.2"), "wb").write(b"c2\r\neth0")
    with store.locked(create=False):
        assert store.release("c1", "eth0") == []
    assert open(store.path("10.1.2.2"), "rb").read() == b"c2\r\neth0"


def test_reserve_is_all_or_nothing(store):
    with store.locked(create=True):
        pass
    os.mkdir(store.path("last_reserved_ip.1"))  # the second write will fail
    with store.locked(create=False):
        with pytest.raises(CNIError) as e:
            store.reserve("c1", "eth0", [(ip("10.1.2.2"), 0), (ip("10.1.3.2"), 1)], [])
    assert e.value.code == 5
    assert not [n for n in files(store) if n[0].isdigit() and n != "last_reserved_ip.0"]
    assert not [n for n in files(store) if n.startswith(".pycni-tmp")]


def test_reserve_refuses_an_existing_file(store):
    with store.locked(create=True):
        open(store.path("10.1.2.2"), "wb").write(b"other\r\neth0")
        with pytest.raises(CNIError) as e:
            store.reserve("c1", "eth0", [(ip("10.1.2.2"), 0)], [])
    assert e.value.code == 11
    assert open(store.path("10.1.2.2"), "rb").read() == b"other\r\neth0"


def test_stale_since_boot_runs_once_per_boot(tmp_path):
    boot = BootInfo("boot-b", time.time() - 100)
    s = Store(str(tmp_path), "net1", boot=lambda: boot)
    with s.locked(create=True):
        s.reserve("old", "eth0", [(ip("10.1.2.2"), 0)], [])
        s.reserve("new", "eth0", [(ip("10.1.2.3"), 0)], [])
    os.utime(s.path("10.1.2.2"), (boot.boot_time - 50, boot.boot_time - 50))
    with s.locked(create=False):
        stale, seen = s.stale_since_boot(s.scan())
        assert [str(l.ip) for l in stale] == ["10.1.2.2"] and seen == boot
        s.reserve("x", "eth0", [], [], remove=["10.1.2.2"], boot=boot)
        assert open(os.path.join(s.meta, BOOT_MARKER)).read().split("\n")[1] == "boot-b"
        os.utime(s.path("10.1.2.3"), (boot.boot_time - 50, boot.boot_time - 50))
        assert s.stale_since_boot(s.scan()) == ([], None)  # already checked in this boot


def test_unknown_boot_reclaims_nothing(tmp_path):
    s = Store(str(tmp_path), "net1", boot=lambda: None)
    with s.locked(create=True):
        s.reserve("old", "eth0", [(ip("10.1.2.2"), 0)], [])
        os.utime(s.path("10.1.2.2"), (1, 1))
        assert s.stale_since_boot(s.scan()) == ([], None)


def test_current_boot_reads_proc():
    boot = current_boot()
    assert boot is not None and len(boot.boot_id) == 36 and boot.boot_time < time.time()


def test_network_dir_creation_failure_is_io_error(tmp_path):
    (tmp_path / "file").write_text("x")
    s = Store(str(tmp_path / "file"), "net1")
    with pytest.raises(CNIError) as e:
        with s.locked(create=True):
            pass
    assert e.value.code == 5


def test_bookkeeping_failure_does_not_fail_the_reservation(tmp_path):
    s = Store(str(tmp_path), "net1", boot=lambda: BootInfo("b", 0.0))
    (tmp_path / ".pycni").write_text("not a directory")  # the index and marker cannot be written
    with s.locked(create=True):
        s.reserve("c1", "eth0", [(ip("10.1.2.2"), 0)], [], boot=BootInfo("b", 0.0))
        assert s.release("c1", "eth0") == [ip("10.1.2.2")]  # found by the full scan instead


def test_last_reserved_is_parsed_untrimmed_like_the_reference(store):
    with store.locked(create=True):
        store.reserve("c1", "eth0", [(ip("10.1.2.5"), 0)], [])
        assert store.last_reserved(0) == ip("10.1.2.5")
        open(store.path("last_reserved_ip.0"), "w").write("10.1.2.5\n")
        assert store.last_reserved(0) is None  # the round robin restarts, as in the reference
        assert store.last_reserved(7) is None
