"""host-local's verbs: plain functions, Request in, Result (or nothing) out, CNIError on failure.

Every handler validates the whole request first (config.load_config) and only then opens the
store, so bad input never creates or changes a file. One lock covers a whole verb.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Callable, Optional

from shared.errors import CNIError, ErrorCode
from shared.request import Request
from shared.types import DNS, IPConfig, Result

from .allocator import IPAddress, plan
from .boot import BootInfo, current_boot
from .config import IPAMConfig, load_config
from .store import Lease, Scan, Store

ERR_CHECK_MISSING = 105   # CHECK: no reservation for this container and ifname
ERR_CHECK_MISMATCH = 106  # CHECK: prevResult's addresses are not the reserved ones

# The seam tests use to simulate a reboot in-process (black-box tests back-date files instead).
BootSource = Callable[[], Optional[BootInfo]]
boot_source: BootSource = current_boot


def open_store(conf: IPAMConfig) -> Store:
    return Store(conf.data_dir, conf.name, boot=lambda: boot_source())


def _reclaimable(store: Store, scan: Scan, conf: IPAMConfig,
                 keep: Callable[[Lease], bool] = lambda lease: False
                 ) -> tuple[list[str], set[IPAddress], Optional[BootInfo]]:
    """Files an ADD may reuse: garbage from a crashed writer, our own temp leftovers, and (unless
    switched off) reservations made before the current boot, except those `keep` says are the
    caller's own (a container restarted after a reboot keeps its address)."""
    names = list(scan.garbage) + list(scan.leftovers)
    stale: set[IPAddress] = set()
    boot = None
    if conf.reclaim_after_reboot:
        old, boot = store.stale_since_boot(scan)
        stale = {l.ip for l in old if not keep(l)}
        names += [str(ip) for ip in stale]
    return names, stale, boot


def cmd_add(req: Request) -> Result:
    conf = load_config(req)
    dns = DNS()
    if conf.resolv_conf:
        from .dns import read_resolv_conf

        dns = read_resolv_conf(conf.resolv_conf)
    store = open_store(conf)
    if not store.exists():
        # A request that cannot be met on an empty network (e.g. a requested address outside every
        # range) must not leave a fresh directory and lock behind: plan it first, then create.
        plan(list(conf.range_sets), {}, [], list(conf.requested), {}, req.container_id)
    with store.locked(create=True):
        # Only the once-per-boot reclaim check needs every file's mtime; otherwise read only the
        # files the catalog does not know (those the reference wrote since our last call).
        full = conf.reclaim_after_reboot and store.boot_check_due() is not None
        scan = store.scan(full=full)
        own = {l.ip for l in store.owned(scan, req.container_id, req.ifname)}
        remove, stale, boot = _reclaimable(store, scan, conf, keep=lambda lease: lease.ip in own)
        live = {ip: l for ip, l in scan.leases.items() if ip not in stale} if stale else scan.leases
        mine = [l.ip for l in Scan(live).owned_by(req.container_id, req.ifname)]
        last = {i: store.last_reserved(i) for i in range(len(conf.range_sets))}
        allocations = plan(list(conf.range_sets), live, mine, list(conf.requested), last, req.container_id)
        new = [(a.ip, a.index) for a in allocations if a.new]
        if new or remove or boot is not None:
            store.reserve(req.container_id, req.ifname, new, mine, remove, boot, scan=scan)
        else:
            store.save_catalog(scan)
            if mine and set(store.index_lookup(req.container_id, req.ifname)) != set(mine):
                store.remember(req.container_id, req.ifname, mine)  # e.g. a lease the reference made
    ips = [IPConfig(address=ipaddress.ip_interface(f"{a.ip}/{a.range.subnet.prefixlen}"), gateway=a.range.gateway)
           for a in allocations]
    return Result(ips=ips, routes=list(conf.routes), dns=dns)


def cmd_del(req: Request) -> None:
    conf = load_config(req)
    store = open_store(conf)
    if not store.exists():
        return None  # nothing was ever reserved here; do not create the directory
    with store.locked(create=False):
        store.release(req.container_id, req.ifname)
    return None


def _check_prev(conf: IPAMConfig, req: Request, mine: list[Lease]) -> None:
    from shared.types import prev_result

    prev = prev_result(req.config)
    if prev is None:
        return
    reserved = {l.ip for l in mine}
    claimed = {ip.address.ip for ip in prev.ips}
    missing = sorted((str(ip) for ip in reserved - claimed))
    ours = {ip for ip in claimed if any(rs.contains(ip) for rs in conf.range_sets)}
    foreign = sorted(str(ip) for ip in ours - reserved)
    if missing or foreign:
        parts = []
        if foreign:
            parts.append(f"prevResult lists {', '.join(foreign)}, not reserved for this container")
        if missing:
            parts.append(f"reserved {', '.join(missing)} is missing from prevResult")
        raise CNIError(ERR_CHECK_MISMATCH, f"host-local: addresses of container {req.container_id} "
                                           f"({req.ifname}) do not match prevResult", "; ".join(parts))


def cmd_check(req: Request) -> None:
    conf = load_config(req)
    store = open_store(conf)
    mine: list[Lease] = []
    if store.exists():
        with store.locked(create=False):
            mine = store.lookup(req.container_id, req.ifname)
    if not mine:
        raise CNIError(ERR_CHECK_MISSING, f"host-local: Failed to find address added by container {req.container_id}")
    _check_prev(conf, req, mine)
    return None


def cmd_gc(req: Request) -> None:
    """Release every reservation whose attachment is not in cni.dev/valid-attachments."""
    from shared.gc import valid_attachments

    conf = load_config(req)
    valid = valid_attachments(req.config)
    valid_ids = {cid for cid, _ in valid}
    store = open_store(conf)
    if not store.exists():
        return None
    with store.locked(create=False):
        scan = store.scan()
        names = list(scan.garbage) + list(scan.leftovers)
        dropped: set[tuple[str, str]] = set()
        for lease in scan.leases.values():
            if lease.ifname is None:
                keep = lease.container_id in valid_ids
            else:
                keep = (lease.container_id, lease.ifname) in valid
            if not keep:
                names.append(str(lease.ip))
                if lease.ifname is not None:
                    dropped.add((lease.container_id, lease.ifname))
        if names or dropped:
            store.remove(names, dropped)
        store.prune_index(store.scan())
    return None


def _writable(path: str) -> Optional[str]:
    """Why ADD could not write under `path` (or its nearest existing ancestor), or None."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"{probe} is not a directory"
    try:
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            return f"{probe} is on a read-only file system"
    except OSError as e:
        return f"cannot stat {probe}: {e.strerror}"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def cmd_status(req: Request) -> None:
    """Error 50 when an ADD could not be served: the store is not writable or a range set is full."""
    conf = load_config(req)
    store = open_store(conf)
    problem = _writable(store.dir)
    if problem is None and store.exists():
        lock = store.path("lock")
        if os.path.exists(lock) and not os.access(lock, os.R_OK):
            problem = f"{lock} is not readable"
    if problem is not None:
        raise CNIError(ErrorCode.NOT_AVAILABLE, f"host-local: cannot reserve addresses in {store.dir}", problem)
    if not store.exists():
        return None
    with store.locked(create=False):
        scan = store.scan(full=conf.reclaim_after_reboot and store.boot_check_due() is not None)
        _, stale, _ = _reclaimable(store, scan, conf)
    live = [ip for ip in scan.leases if ip not in stale]
    for i, rs in enumerate(conf.range_sets):
        if rs.free(live) <= 0:
            raise CNIError(ErrorCode.NOT_AVAILABLE, f"host-local: no IP addresses available in range set {i}: {rs}",
                           f"all {rs.capacity()} addresses are reserved")
    return None
