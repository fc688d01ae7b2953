"""The disk store: the only module that touches `<dataDir>/<network>/`.

Files are the reference's, byte for byte, so both implementations can share one directory:

* `<ip>`: one reservation, `<containerID>\\r\\n<ifname>` (CRLF, no trailing newline, mode 0600);
  pre-2018 files hold only `<containerID>` and are still honoured;
* `last_reserved_ip.<N>`: the round-robin cursor of range set N (the address, no newline);
* `lock`: flock(LOCK_EX) on this inode is the mutual exclusion both implementations respect.

pycni keeps its own bookkeeping outside that directory, in `<dataDir>/.pycni/<network>/` (no
network name can start with a dot), so the network directory holds exactly what the reference
would leave there:

* `boot`: the boot_id in which the directory was last checked for reservations from before a reboot;
* `leases/<id>@<ifname>`: an index of each attachment's addresses, so DEL need not read every file.
  An entry is only a hint: every hit is checked against the reservation file itself.
* `catalog`: every reservation file pycni has read or written, as (name, inode, owner), so ADD
  and CHECK only read the files that are new since (the ones the reference wrote). Listing the
  directory returns name and inode without reading anything; a name whose inode changed is read
  again, and garbage is never catalogued (it is re-read until reclaimed).
* `released`: names pycni released since the catalog was last written (appended by DEL and GC,
  cleared with the next catalog), so a file recreated under the same name and a reused inode is
  read again rather than trusted.

The one exception is `<dataDir>/<network>/.pycni-tmp.*`, a write in flight (it has to be on the
same file system to be linked into place). It exists only while the lock is held, so one found
under the lock is a crash leftover and is removed.
"""
from __future__ import annotations

import os
import re
import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

from shared.errors import CNIError, ErrorCode

from .allocator import IPAddress
from .boot import BootInfo, current_boot
from .config import parse_ip

LOCK_NAME = "lock"
LAST_RESERVED_PREFIX = "last_reserved_ip."
META_DIR = ".pycni"
BOOT_MARKER = "boot"
INDEX_DIR = "leases"
CATALOG = "catalog"
PINS = "pins"
RELEASED = "released"
TMP_PREFIX = ".pycni-tmp."
LINE_BREAK = "\r\n"
LOCK_TIMEOUT = 60.0  # seconds; then code 11 (try again later)

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_INDEX_MAGIC = "pycni-lease v1"
_BOOT_MAGIC = "pycni-boot v1"
_CATALOG_MAGIC = "pycni-catalog v2"
Owner = tuple[str, Optional[str]]


def io_error(what: str, e: OSError) -> CNIError:
    return CNIError(ErrorCode.IO_FAILURE, f"{what}: {e.strerror or e}", getattr(e, "filename", None) or "")


@dataclass(frozen=True)
class Lease:
    """One reservation file. `ifname` is None for a legacy file that holds only the container ID."""

    ip: IPAddress
    container_id: str
    ifname: Optional[str]
    mtime: float  # math.inf when taken from the catalog (only the boot check needs it, and it reads all)

    def exact(self, container_id: str, ifname: str) -> bool:
        return self.container_id == container_id and self.ifname == ifname

    def legacy_of(self, container_id: str) -> bool:
        return self.ifname is None and self.container_id == container_id


@dataclass
class Scan:
    """The directory as read under the lock."""

    leases: dict[IPAddress, Lease] = field(default_factory=dict)
    garbage: list[str] = field(default_factory=list)    # address files with no valid owner (crashed writer)
    leftovers: list[str] = field(default_factory=list)  # our temp files from a crashed write
    inodes: dict[str, int] = field(default_factory=dict)  # name -> inode of every lease, for the catalog
    rows: dict[str, str] = field(default_factory=dict)    # name -> its unchanged catalog line
    pinned: Optional[set[int]] = None  # inodes the loaded catalog pinned; None: no usable catalog
    lines: int = 0         # entries in the catalog file, superseded ones included
    compact: bool = False  # an entry must go: rewrite the catalog rather than append to it
    read: int = 0        # reservation files whose content was read by this scan
    dirty: bool = False  # the catalog on disk no longer matches (new, changed or vanished files)

    def owned_by(self, container_id: str, ifname: str) -> list[Lease]:
        """The reference's lookup: full matches, or failing those, legacy ID-only files."""
        ids = [l for l in self.leases.values() if l.container_id == container_id]
        return [l for l in ids if l.ifname == ifname] or [l for l in ids if l.ifname is None]


def parse_owner(data: bytes) -> Optional[tuple[str, Optional[str]]]:
    """(containerID, ifname or None) from a reservation's content; None for empty or garbage content."""
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    cid, sep, ifname = text.partition(LINE_BREAK)
    if not _ID_RE.fullmatch(cid):
        return None
    if not sep:
        return cid, None
    if ifname == "" or any(c.isspace() or c in "/:" for c in ifname):
        return None
    return cid, ifname


def parse_known(name: str) -> Optional[IPAddress]:
    """A catalogued name, known to be a canonical address: IPv4 by integer arithmetic, about three
    times faster than ipaddress's parser, which counts with ten thousand names per call."""
    import ipaddress

    try:
        if ":" in name:
            return ipaddress.IPv6Address(name)
        a, b, c, d = name.split(".")
        return ipaddress.IPv4Address((int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d))
    except ValueError:
        return None


def _might_be_address(name: str) -> bool:
    """A cheap pre-filter before parsing: addresses start with a hex digit or ':'."""
    return bool(name) and (name[0] in "0123456789abcdefABCDEF:")


def index_name(container_id: str, ifname: str) -> str:
    """`<id>@<ifname>`: '@' is in neither charset, so this never parses as an address."""
    name = f"{container_id}@{ifname}"
    if len(name.encode()) <= 200:
        return name
    import hashlib

    return "h-" + hashlib.sha256(name.encode()).hexdigest()


class _LockTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise _LockTimeout()


def flock_exclusive(fd: int, timeout: float) -> None:
    """Blocking flock(LOCK_EX), bounded by a timer where signals can be used (the main thread)."""
    import fcntl

    try:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
    except ValueError:  # not the main thread: block without a timer
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Store:
    """Reservations of one network. Every method but `exists` expects the lock to be held."""

    def __init__(self, data_dir: str, network: str,
                 boot: Callable[[], Optional[BootInfo]] = current_boot,
                 lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.dir = os.path.join(data_dir, network)
        self.meta = os.path.join(data_dir, META_DIR, network)
        self._boot = boot
        self._lock_timeout = lock_timeout

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    # -- locking ---------------------------------------------------------------------------------
    @contextmanager
    def locked(self, create: bool) -> Iterator[None]:
        """flock(LOCK_EX) on `<dir>/lock`, the very inode the reference locks.

        fcntl.flock is used directly rather than filelock: filelock 4.x opens the file read-write,
        may fall back to a soft lock that writes a PID marker into the file, and may exchange or
        unlink the lock path to break a lock. Any of those would lock a different inode than the
        reference (or alter its file) and silently break mutual exclusion. Here the file is only
        ever created if missing (mode 0750, as the reference does) and never renamed or removed.
        """
        if create:
            try:
                os.makedirs(self.dir, 0o755, exist_ok=True)
            except OSError as e:
                raise io_error(f"cannot create the network directory {self.dir}", e) from None
        try:
            fd = os.open(self.path(LOCK_NAME), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o750)
        except OSError as e:
            raise io_error(f"cannot open the lock file {self.path(LOCK_NAME)}", e) from None
        try:
            try:
                flock_exclusive(fd, self._lock_timeout)
            except _LockTimeout:
                raise CNIError(ErrorCode.TRY_AGAIN_LATER, f"timed out after {self._lock_timeout:g}s waiting "
                                                          f"for the lock {self.path(LOCK_NAME)}") from None
            except OSError as e:
                raise io_error(f"cannot lock {self.path(LOCK_NAME)}", e) from None
            yield
        finally:
            os.close(fd)  # closing drops the flock

    # -- reading ---------------------------------------------------------------------------------
    def scan(self, full: bool = True) -> Scan:
        """Every reservation in the directory. `full` reads every file (the reference's Walk does
        the same on each lookup; the boot check needs each file's mtime). Otherwise only files the
        catalog does not know by (name, inode) are read: the directory listing gives both for free."""
        import math

        out = Scan()
        known, out.pinned, out.lines = self._load_catalog()
        if full:
            known = {}
        try:
            entries = list(os.scandir(self.dir))
        except OSError as e:
            raise io_error(f"cannot list {self.dir}", e) from None
        for entry in entries:
            name = entry.name
            if name.startswith(TMP_PREFIX):
                out.leftovers.append(name)
                continue
            cached = known.pop(name, None)
            if cached is not None:
                ip = parse_known(name)  # catalogued names are canonical: no round trip needed
            elif not _might_be_address(name):
                continue
            else:
                ip = parse_ip(name)
                if ip is not None and str(ip) != name:
                    continue
            if ip is None:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                ino = entry.inode()
                if cached is not None and cached[0] == ino:
                    out.leases[ip] = Lease(ip, cached[1], cached[2], math.inf)
                    out.inodes[name] = ino
                    out.rows[name] = cached[3]
                    continue
                with open(entry.path, "rb") as f:
                    data = f.read(4096)
                    st = os.fstat(f.fileno())
            except FileNotFoundError:
                continue
            except OSError as e:
                raise io_error(f"cannot read reservation {entry.path}", e) from None
            out.read += 1
            out.dirty = True
            owner = parse_owner(data)
            if owner is None:
                out.garbage.append(name)
            else:
                out.leases[ip] = Lease(ip, owner[0], owner[1], st.st_mtime)
                out.inodes[name] = st.st_ino
        # catalogued files that are gone need no write: their lines stay (harmless, their inodes
        # are pinned) until the next rewrite
        return out

    def owned(self, scan: Scan, container_id: str, ifname: str) -> list[Lease]:
        """`scan.owned_by`, with every catalogued lease of this container ID read back first: a
        catalog entry is trusted for other containers' addresses, never for the caller's own."""
        import math

        for lease in [l for l in scan.leases.values() if l.container_id == container_id and l.mtime == math.inf]:
            owner = self.read_owner(lease.ip)
            if owner != (lease.container_id, lease.ifname):
                scan.dirty = True
                del scan.leases[lease.ip]
                scan.rows.pop(str(lease.ip), None)
                scan.compact = True
                if owner is None:
                    if os.path.lexists(self.path(str(lease.ip))):
                        scan.garbage.append(str(lease.ip))
                    scan.inodes.pop(str(lease.ip), None)
                else:
                    scan.leases[lease.ip] = Lease(lease.ip, owner[0], owner[1], math.inf)
        return scan.owned_by(container_id, ifname)

    def lookup(self, container_id: str, ifname: str) -> list[Lease]:
        """CHECK's lookup, DEL's path: verified index hits; on a miss the catalogued scan."""
        import math

        hits = [Lease(ip, container_id, ifname, math.inf) for ip in self.index_lookup(container_id, ifname)
                if self.read_owner(ip) == (container_id, ifname)]
        if hits:
            return hits
        scan = self.scan(full=False)
        mine = self.owned(scan, container_id, ifname)
        self.save_catalog(scan)
        return mine

    # -- catalog ---------------------------------------------------------------------------------
    def _load_catalog(self) -> tuple[dict[str, tuple[int, str, Optional[str], str]], Optional[set[int]], int]:
        """name -> (inode, containerID, ifname or None, the line), the inodes the file pins and its
        number of lines; ({}, None, 0) (everything is read) when missing or damaged. Lines are
        appended, so a later line for a name wins and an unterminated last line (a write cut
        short) is ignored. Names pycni released since the last write are left out (read again)."""
        try:
            with open(os.path.join(self.meta, CATALOG), "rb") as f:
                lines = f.read().decode("utf-8", "replace").split("\n")
        except OSError:
            return {}, None, 0
        if len(lines) < 2 or lines[0] != _CATALOG_MAGIC:
            return {}, None, 0
        out: dict[str, tuple[int, str, Optional[str], str]] = {}
        pinned: set[int] = set()
        for line in lines[1:-1]:
            parts = line.split("\t")
            if len(parts) not in (3, 4) or not parts[1].isdigit():
                return {}, None, 0
            ino = int(parts[1])
            pinned.add(ino)
            out[parts[0]] = (ino, parts[2], parts[3] if len(parts) == 4 else None, line)
        try:
            with open(os.path.join(self.meta, RELEASED), "rb") as f:
                for name in f.read().decode("utf-8", "replace").split("\n"):
                    out.pop(name, None)
        except OSError:
            pass
        return out, pinned, len(lines) - 2

    def _pin(self, scan: Scan) -> list[str]:
        """Hard-link each newly catalogued file into `pins/<inode>`; return their catalog lines.
        While pinned, an inode cannot be freed, so its number cannot be reused: a reservation the
        reference removes and creates again under the same name always has a new inode, and is
        read again. A file that cannot be pinned (e.g. on another file system) is left out of the
        catalog, so it is read on every call."""
        pins = os.path.join(self.meta, PINS)
        os.makedirs(pins, 0o700, exist_ok=True)
        added = []
        for name, ino in list(scan.inodes.items()):
            if name in scan.rows:
                continue  # unchanged since the catalog was written: pinned then
            lease = scan.leases.get(parse_ip(name))  # type: ignore[arg-type]
            try:
                if lease is None:
                    raise FileNotFoundError(name)
                os.link(self.path(name), os.path.join(pins, str(ino)), follow_symlinks=False)
            except FileExistsError:
                pass  # a live pin with this number is this very inode
            except OSError:
                del scan.inodes[name]
                continue
            row = f"{name}\t{ino}\t{lease.container_id}" + (f"\t{lease.ifname}" if lease.ifname else "")
            scan.rows[name] = row
            added.append(row)
        return added

    def save_catalog(self, scan: Scan) -> None:
        """Bring the catalog up to date with `scan`: append the lines of new files (one small
        write), or rewrite it without the lines of files that are gone once those outnumber the
        live ones, and unpin their inodes. Best effort: without a catalog the next call reads
        every file once."""
        if not scan.dirty:
            return
        try:
            os.makedirs(self.meta, 0o755, exist_ok=True)
            added = self._pin(scan)
            path = os.path.join(self.meta, CATALOG)
            lines = scan.lines + len(added)
            if scan.pinned is not None and not scan.compact and lines <= 2 * len(scan.inodes) + 64:
                if added:
                    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW)
                    try:
                        os.write(fd, "".join(f"{row}\n" for row in added).encode())
                    finally:
                        os.close(fd)
                    scan.pinned |= {scan.inodes[r.split("\t", 1)[0]] for r in added}
                scan.lines = lines
            else:
                rows = [scan.rows[name] for name in scan.inodes]
                self._replace(path, "".join(f"{row}\n" for row in [_CATALOG_MAGIC, *rows]).encode(), sync=False)
                self._unpin(scan)
                scan.lines, scan.compact = len(rows), False
            try:
                os.unlink(os.path.join(self.meta, RELEASED))
            except FileNotFoundError:
                pass
        except OSError:
            return
        scan.dirty = False

    def _unpin(self, scan: Scan) -> None:
        """After a rewrite: drop the pins of inodes the catalog no longer names."""
        pins = os.path.join(self.meta, PINS)
        needed = set(scan.inodes.values())
        old = scan.pinned
        if old is None:  # there was no usable catalog: reconcile with what is there
            try:
                old = {int(n) for n in os.listdir(pins) if n.isdigit()}
            except OSError:
                old = set()
        for ino in old - needed:
            try:
                os.unlink(os.path.join(pins, str(ino)))
            except OSError:
                pass
        scan.pinned = needed

    def _note_released(self, names: Iterable[str]) -> None:
        """Best effort, and O(1) for DEL: if it fails the catalog entry stays, which only matters if
        the same name is recreated with a reused inode before the next catalog is written."""
        names = list(names)
        if not names or not os.path.exists(os.path.join(self.meta, CATALOG)):
            return
        try:
            fd = os.open(os.path.join(self.meta, RELEASED), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
                         | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, "".join(f"{n}\n" for n in names).encode())
            finally:
                os.close(fd)
        except OSError:
            pass

    def read_owner(self, ip: IPAddress) -> Optional[tuple[str, Optional[str]]]:
        try:
            with open(self.path(str(ip)), "rb") as f:
                return parse_owner(f.read(4096))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise io_error(f"cannot read reservation {self.path(str(ip))}", e) from None

    def last_reserved(self, index: int) -> Optional[IPAddress]:
        """The cursor, parsed untrimmed like the reference (a stray newline restarts the round robin)."""
        try:
            with open(self.path(f"{LAST_RESERVED_PREFIX}{index}"), "rb") as f:
                text = f.read(256).decode("ascii", "replace")
        except FileNotFoundError:
            return None
        except OSError:
            return None  # the reference logs and ignores this
        return parse_ip(text)

    # -- reboot ----------------------------------------------------------------------------------
    def stale_since_boot(self, scan: Scan) -> tuple[list[Lease], Optional[BootInfo]]:
        """Reservations made before the current boot, unless the directory was checked in this boot.

        The mtime comparison runs once per boot (the marker records the boot_id), so a clock
        stepped later cannot make a reservation from this boot look old."""
        boot = self.boot_check_due()
        if boot is None:
            return [], None
        return [l for l in scan.leases.values() if l.mtime < boot.boot_time], boot

    def boot_check_due(self) -> Optional[BootInfo]:
        """The current boot, if the directory has not been checked in it yet (None when unknown)."""
        boot = self._boot()
        if boot is None:
            return None
        try:
            with open(os.path.join(self.meta, BOOT_MARKER), "rb") as f:
                marker = f.read(256).decode("ascii", "replace").split("\n")
        except OSError:
            marker = []
        if len(marker) >= 2 and marker[0] == _BOOT_MAGIC and marker[1] == boot.boot_id:
            return None
        return boot

    # -- index -----------------------------------------------------------------------------------
    def index_lookup(self, container_id: str, ifname: str) -> list[IPAddress]:
        try:
            with open(os.path.join(self.meta, INDEX_DIR, index_name(container_id, ifname)), "rb") as f:
                lines = f.read(65536).decode("utf-8", "replace").split("\n")
        except OSError:
            return []
        if len(lines) < 3 or lines[0] != _INDEX_MAGIC or lines[1] != container_id or lines[2] != ifname:
            return []
        return [ip for line in lines[3:] if line and (ip := parse_ip(line)) is not None]

    # -- writing ---------------------------------------------------------------------------------
    def _write_tmp(self, data: bytes, mode: int, directory: Optional[str] = None, sync: bool = True) -> str:
        name = f"{TMP_PREFIX}{os.getpid()}.{os.urandom(6).hex()}"
        path = os.path.join(directory or self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        return path

    def _create_exclusive(self, name: str, data: bytes) -> int:
        """Complete content or no file: write a temp file, fsync, then link() it into place (link
        fails if the name exists, the same O_EXCL guarantee the reference's create has).
        Returns the new file's inode, for the catalog."""
        tmp = self._write_tmp(data, 0o600)
        try:
            os.link(tmp, self.path(name))
            return os.lstat(tmp).st_ino
        finally:
            os.unlink(tmp)

    def _replace(self, path: str, data: bytes, mode: int = 0o600, sync: bool = True) -> None:
        tmp = self._write_tmp(data, mode, os.path.dirname(path), sync)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def _fsync_dir(self, path: Optional[str] = None) -> None:
        fd = os.open(path or self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _unlink(self, name: str) -> bool:
        try:
            os.unlink(self.path(name))
            return True
        except FileNotFoundError:
            return False

    def _write_index(self, container_id: str, ifname: str, ips: Iterable[IPAddress]) -> None:
        index_dir = os.path.join(self.meta, INDEX_DIR)
        os.makedirs(index_dir, 0o700, exist_ok=True)
        body = "\n".join([_INDEX_MAGIC, container_id, ifname, *(str(ip) for ip in ips)]) + "\n"
        self._replace(os.path.join(index_dir, index_name(container_id, ifname)), body.encode())

    def _drop_index(self, container_id: str, ifname: str) -> None:
        try:
            os.unlink(os.path.join(self.meta, INDEX_DIR, index_name(container_id, ifname)))
        except OSError:
            pass  # best effort: a stale entry is never trusted (hits are verified)

    def reserve(self, container_id: str, ifname: str, new: list[tuple[IPAddress, int]],
                held: list[IPAddress], remove: Iterable[str] = (), boot: Optional[BootInfo] = None,
                scan: Optional[Scan] = None) -> None:
        """Apply one ADD: drop `remove` (reclaimed files), create the `new` reservations with their
        cursors, index them, record the boot; then fsync the directory once. On failure every file
        this call created is removed again, so the reservation is all or nothing. With `scan` (the
        directory as read by this ADD) the catalog is brought up to date as well."""
        created: list[str] = []
        remove = list(remove)
        inodes: dict[str, int] = {}
        try:
            for name in remove:
                self._unlink(name)
            for ip, index in new:
                try:
                    inodes[str(ip)] = self._create_exclusive(str(ip),
                                                             f"{container_id.strip()}{LINE_BREAK}{ifname}".encode())
                except FileExistsError:
                    raise CNIError(ErrorCode.TRY_AGAIN_LATER, f"{ip} was reserved concurrently by a writer that "
                                                              f"does not take the lock {self.path(LOCK_NAME)}") from None
                created.append(str(ip))
                self._replace(self.path(f"{LAST_RESERVED_PREFIX}{index}"), str(ip).encode())
            self._fsync_dir()
        except OSError as e:
            for name in created:
                self._unlink(name)
            raise io_error(f"cannot write reservations in {self.dir}", e) from None
        ips = [*held, *(ip for ip, _ in new)]
        self._write_bookkeeping(container_id, ifname, ips or None, boot)
        if scan is not None:
            import math

            for name in remove:
                scan.leases.pop(parse_ip(name), None)  # type: ignore[arg-type]
                scan.inodes.pop(name, None)
                scan.rows.pop(name, None)
            for ip, _ in new:
                scan.leases[ip] = Lease(ip, container_id.strip(), ifname, math.inf)
                scan.inodes[str(ip)] = inodes[str(ip)]
            scan.garbage, scan.leftovers, scan.dirty = [], [], True
            self.save_catalog(scan)

    def remember(self, container_id: str, ifname: str, ips: list[IPAddress]) -> None:
        """Index an existing lease (one found by a scan), so its DEL need not scan."""
        self._write_bookkeeping(container_id, ifname, ips, None)

    def _write_bookkeeping(self, container_id: str, ifname: str, ips: Optional[list[IPAddress]],
                           boot: Optional[BootInfo]) -> None:
        """Best effort: without the index DEL reads every file; without the boot marker the next
        ADD repeats the reboot check. Neither is worth failing an ADD whose reservation is made."""
        try:
            if ips is not None:
                self._write_index(container_id, ifname, ips)
            if boot is not None:
                os.makedirs(self.meta, 0o755, exist_ok=True)
                self._replace(os.path.join(self.meta, BOOT_MARKER), f"{_BOOT_MAGIC}\n{boot.boot_id}\n".encode(), 0o644)
        except OSError:
            pass

    def release(self, container_id: str, ifname: str) -> list[IPAddress]:
        """DEL: remove this attachment's reservations. The index answers when it can (each hit is
        checked against the reservation file itself); otherwise every file is read, as the
        reference does, so reservations the reference made are released too."""
        try:
            hits = [ip for ip in self.index_lookup(container_id, ifname)
                    if self.read_owner(ip) == (container_id, ifname)]
            scan = None
            if not hits:
                scan = self.scan(full=False)
                hits = [l.ip for l in self.owned(scan, container_id, ifname)]
            for ip in hits:
                self._unlink(str(ip))
            self._note_released(str(ip) for ip in hits)
            if scan is not None:
                for ip in hits:
                    scan.leases.pop(ip, None)
                    scan.rows.pop(str(ip), None)
                    scan.dirty |= scan.inodes.pop(str(ip), None) is not None
                self.save_catalog(scan)
            self._drop_index(container_id, ifname)
            if hits:
                self._fsync_dir()
            return hits
        except OSError as e:
            raise io_error(f"cannot release reservations in {self.dir}", e) from None

    def remove(self, names: Iterable[str], drop_index: Iterable[tuple[str, str]] = ()) -> None:
        """GC: remove files found stale under the lock, and their index entries."""
        names = list(names)
        try:
            for name in names:
                self._unlink(name)
            self._note_released(names)
            for cid, ifname in drop_index:
                self._drop_index(cid, ifname)
            self._fsync_dir()
        except OSError as e:
            raise io_error(f"cannot remove reservations in {self.dir}", e) from None

    def prune_index(self, scan: Scan) -> None:
        """Drop index entries whose attachment holds no reservation any more (e.g. the reference
        released it). Best effort: stale entries are harmless, since every hit is verified."""
        index_dir = os.path.join(self.meta, INDEX_DIR)
        try:
            names = os.listdir(index_dir)
        except OSError:
            return
        live = {index_name(l.container_id, l.ifname) for l in scan.leases.values() if l.ifname is not None}
        for name in names:
            if name not in live:
                try:
                    os.unlink(os.path.join(index_dir, name))
                except OSError:
                    pass
