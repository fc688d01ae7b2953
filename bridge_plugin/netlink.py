"""Every kernel interaction of the bridge plugin: netlink (pyroute2), namespaces, sysctls, raw packets.

Handlers call the small named functions below; pyroute2 is imported only inside them (it costs
~150 ms), and every pyroute2/OS failure leaves this module as a CNIError whose message names the
interface or address at fault.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import secrets
import socket
import struct
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from shared.errors import CNIError, ErrorCode
from shared.types import IPInterface, Route

from .errors import BridgeCode

CLONE_NEWNET = 0x40000000
IFF_UP = 0x1
IFF_PROMISC = 0x100
IFF_LOWER_UP = 0x10000
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
RT_SCOPE_UNIVERSE = 0
VLAN_FEATURE = "bridge VLAN filtering (kernel option CONFIG_BRIDGE_VLAN_FILTERING)"
# errnos that say "not now" rather than "never": the runtime may retry (code 11)
TRANSIENT_ERRNOS = frozenset({errno.EBUSY, errno.EAGAIN, errno.EINTR, errno.ENOBUFS})


class NetnsNotFound(CNIError):
    """CNI_NETNS names a path that does not exist: DEL treats that as 'already gone'."""


def _kernel_error(msg: str, err: BaseException) -> CNIError:
    """`msg: <strerror>`; code 11 for errnos that may clear up on a retry, else 124."""
    code = getattr(err, "code", None) or getattr(err, "errno", None)
    text = os.strerror(code) if isinstance(code, int) and code > 0 else str(err)
    transient = isinstance(code, int) and code in TRANSIENT_ERRNOS
    kind = ErrorCode.TRY_AGAIN_LATER if transient else BridgeCode.KERNEL_OPERATION_FAILED
    return CNIError(kind, f"{msg}: {text}")


def vanished(msg: str) -> CNIError:
    """A link we just made or found is gone: someone changed the namespace concurrently; retry."""
    return CNIError(ErrorCode.TRY_AGAIN_LATER, msg, "a concurrent change removed it; the operation may be retried")


def _errno(err: BaseException) -> int | None:
    code = getattr(err, "code", None)
    if isinstance(code, int):
        return code
    return getattr(err, "errno", None)


@contextmanager
def mapped(msg: str, *, ignore: Sequence[int] = ()) -> Iterator[None]:
    """Re-raise pyroute2 / OS failures as CNIError(msg: strerror); errnos in `ignore` are swallowed."""
    try:
        yield
    except CNIError:
        raise
    except Exception as e:  # NetlinkError, OSError, decoding errors
        if _errno(e) in ignore:
            return
        if _errno(e) == errno.EOPNOTSUPP and "vlan" in msg.lower():
            raise CNIError(BridgeCode.KERNEL_FEATURE_MISSING, f"{msg}: this kernel lacks {VLAN_FEATURE}") from e
        raise _kernel_error(msg, e) from e


# -- namespaces -------------------------------------------------------------------------------

def _setns(fd: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_netns(path: str) -> int:
    """An fd for the namespace at `path`; NetnsNotFound when the path is gone."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsNotFound(ErrorCode.UNKNOWN_CONTAINER, f"failed to open netns {path!r}: no such file or directory",
                            "CNI_NETNS must name an existing network namespace") from None
    except OSError as e:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"failed to open netns {path!r}: {e.strerror}",
                       "CNI_NETNS") from None


@contextmanager
def entered(path: str) -> Iterator[int]:
    """Run the block inside the namespace at `path` (this thread only), then come back."""
    target = open_netns(path)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(target)
        except OSError as e:
            if e.errno == errno.EINVAL:
                raise CNIError(ErrorCode.INVALID_ENVIRONMENT,
                               f"failed to enter netns {path!r}: not a network namespace", "CNI_NETNS must name a network namespace") from None
            raise _kernel_error(f"failed to enter netns {path!r}", e) from None
        try:
            yield target
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def _iproute_class() -> Any:
    """pyroute2's IPRoute without the package __init__, which imports every pyroute2 feature
    (NDB, IPDB, conntrack, nftables, ...): ~90 ms of CPU per exec saved. The submodules import
    what they use themselves; a package already imported in full is used as it is."""
    if "pyroute2" not in sys.modules:
        import importlib.util
        import types

        spec = importlib.util.find_spec("pyroute2")
        if spec is not None and spec.submodule_search_locations:
            package = types.ModuleType("pyroute2")
            package.__path__ = list(spec.submodule_search_locations)
            package.__spec__ = spec
            package.__file__ = spec.origin
            sys.modules["pyroute2"] = package
    from pyroute2.iproute.linux import IPRoute

    return IPRoute


@contextmanager
def rtnl() -> Iterator[Any]:
    """A route-netlink socket in the namespace the thread is in now."""
    IPRoute = _iproute_class()

    with mapped("failed to open a netlink socket"):
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


# -- links --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str
    mac: str
    mtu: int
    flags: int
    master: int
    peer_index: int  # IFLA_LINK: the veth peer's index (in the peer's namespace)
    in_other_netns: bool  # the veth peer lives in another namespace
    oper_state: str
    vlan_filtering: int | None

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def promisc(self) -> bool:
        return bool(self.flags & IFF_PROMISC)

    @property
    def carrier(self) -> bool:
        return bool(self.flags & IFF_LOWER_UP)


def _to_link(msg: Any) -> Link:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = ""
    vlan_filtering = None
    if info is not None:
        kind = info.get_attr("IFLA_INFO_KIND") or ""
        data = info.get_attr("IFLA_INFO_DATA")
        if kind == "bridge" and data is not None and hasattr(data, "get_attr"):
            vlan_filtering = data.get_attr("IFLA_BR_VLAN_FILTERING")
    return Link(
        index=msg["index"], name=msg.get_attr("IFLA_IFNAME") or "", kind=kind,
        mac=msg.get_attr("IFLA_ADDRESS") or "", mtu=msg.get_attr("IFLA_MTU") or 0, flags=msg["flags"],
        master=msg.get_attr("IFLA_MASTER") or 0, peer_index=msg.get_attr("IFLA_LINK") or 0,
        in_other_netns=msg.get_attr("IFLA_LINK_NETNSID") is not None,
        oper_state=msg.get_attr("IFLA_OPERSTATE") or "", vlan_filtering=vlan_filtering)


def _get_link(ipr: Any, what: str, **key: Any) -> Link | None:
    """One RTM_GETLINK; a missing link is None, any other failure an error naming `what`."""
    try:
        msgs = ipr.link("get", **key)
    except Exception as e:
        if _errno(e) in (errno.ENODEV, errno.ENOENT):
            return None
        raise _kernel_error(f"failed to lookup {what}", e) from e
    return _to_link(msgs[0]) if msgs else None


def find_link(ipr: Any, name: str) -> Link | None:
    return _get_link(ipr, repr(name), ifname=name)


def link_by_index(ipr: Any, index: int) -> Link | None:
    return _get_link(ipr, f"link index {index}", index=index)


def all_links(ipr: Any) -> list[Link]:
    with mapped("failed to list links"):
        return [_to_link(m) for m in ipr.get_links()]


def ensure_bridge(ipr: Any, name: str, mtu: int, promisc: bool, vlan_filtering: bool) -> tuple[Link, bool]:
    """Create the bridge or reuse it (parallel ADDs racing on creation both succeed).

    Returns the bridge as first looked up (index, name, kind, MTU, MAC; its flags may have changed
    since) and whether this call pinned its MAC (see port_may_change_mac). A bridge made here, or found
    without carrier, gets its MAC pinned before our port joins, L2 included, so ports joining and
    leaving can no longer change it (cni#285, netavark#833). A bridge with carrier is left alone: a
    MAC write flushes the bridge's neighbour table, which only matters while it forwards, and its MAC
    was settled when its first port joined."""
    created = False
    link = find_link(ipr, name)
    if link is None:
        kwargs: dict[str, Any] = {"ifname": name, "kind": "bridge"}
        if mtu:
            kwargs["mtu"] = mtu
        if vlan_filtering:
            kwargs["br_vlan_filtering"] = 1
        try:
            ipr.link("add", **kwargs)
            created = True
        except Exception as e:
            if _errno(e) == errno.EOPNOTSUPP and vlan_filtering:
                raise CNIError(BridgeCode.KERNEL_FEATURE_MISSING,
                               f"failed to create bridge {name!r} with VLAN filtering: this kernel lacks {VLAN_FEATURE}",
                               "vlan/vlanTrunk need it; remove them from the config or use a kernel that has it") from e
            if _errno(e) != errno.EEXIST:
                raise _kernel_error(f'failed to create bridge "{name}": could not add "{name}"', e) from e
        link = find_link(ipr, name)
        if link is None:
            raise vanished(f'failed to create bridge "{name}": it vanished after creation')
    if link.kind != "bridge":
        raise CNIError(BridgeCode.BRIDGE_NAME_TAKEN,
                       f'failed to create bridge "{name}": "{name}" already exists but is not a bridge',
                       f"it is a {link.kind or 'device'} link; choose another bridge name")
    if vlan_filtering and not link.vlan_filtering:
        raise CNIError(BridgeCode.KERNEL_FEATURE_MISSING,
                       f'bridge "{name}" exists without VLAN filtering, which vlan/vlanTrunk need',
                       "enable vlan_filtering on it (needs " + VLAN_FEATURE + ") or remove vlan/vlanTrunk")
    if promisc and not link.promisc:
        with mapped(f"could not set promiscuous mode on {name!r}"):
            ipr.link("set", index=link.index, flags=IFF_PROMISC, change=IFF_PROMISC)
    write_sysctl(f"net/ipv6/conf/{name}/accept_ra", "0", ignore_errors=True)
    if not link.up:
        with mapped(f"failed to set bridge {name!r} up"):
            ipr.link("set", index=link.index, state="up")
    # A bridge has carrier only while one of its ports forwards. Without carrier it reaches nobody,
    # so the flush costs nothing, and there is no need to list its ports (a dump of every link in
    # the namespace, which grows with the number of containers).
    pinned = created or not link.carrier
    if pinned:
        pin_mac(ipr, link)
    return link, pinned


def port_may_change_mac(bridge_mac: str, pinned: bool, port_mac: str) -> bool:
    """Whether a port joining can change the bridge's MAC. An unpinned bridge with ports takes the
    lowest port MAC (br_stp_recalculate_bridge_id), so a port with a higher MAC leaves it as it is;
    a pinned one never changes. Netlink does not report addr_assign_type, hence the comparison."""
    if pinned:
        return False
    if not bridge_mac or not port_mac:
        return True
    try:
        return bytes.fromhex(port_mac.replace(":", "")) < bytes.fromhex(bridge_mac.replace(":", ""))
    except ValueError:
        return True


def pin_mac(ipr: Any, link: Link) -> None:
    """Set the MAC to its current value: the kernel then stops deriving it from the ports."""
    with mapped(f"could not set the MAC of bridge {link.name!r}"):
        ipr.link("set", index=link.index, address=link.mac)


def random_veth_name() -> str:
    return "veth" + secrets.token_hex(4)


RTM_NEWLINK = 16


@contextmanager
def _echo(ipr: Any) -> Iterator[None]:
    """Ask the kernel to answer this socket's next create with the object it made (NLM_F_ECHO;
    kernels from 6.3 do so for links), which saves a lookup. Older kernels only acknowledge."""
    status = getattr(ipr, "status", None)
    try:
        status["nlm_echo"] = True  # type: ignore[index]
    except Exception:  # noqa: BLE001 - a pyroute2 without the switch: the caller looks the link up
        status = None
    try:
        yield
    finally:
        if status is not None:
            status["nlm_echo"] = False


def _echoed_link(msgs: Any, name: str) -> Link | None:
    for msg in msgs or ():
        header = msg.get("header") or {}
        if header.get("type") == RTM_NEWLINK and msg.get_attr("IFLA_IFNAME") == name:
            return _to_link(msg)
    return None


def create_veth(ipr: Any, container_netns_fd: int, ifname: str, mtu: int, mac: str,
                netns_path: str = "") -> Link:
    """One RTM_NEWLINK: the host end lands here, the container end directly in its namespace.

    Retries a few times on a host-name collision; any other EEXIST means CNI_IFNAME is taken in the
    container namespace (the kernel registers the peer there first), code 120."""
    peer: dict[str, Any] = {"ifname": ifname, "net_ns_fd": container_netns_fd}
    if mtu:
        peer["mtu"] = mtu
    if mac:
        peer["address"] = mac
    last: Exception | None = None
    for _ in range(10):
        host_name = random_veth_name()
        kwargs: dict[str, Any] = {"ifname": host_name, "kind": "veth", "peer": peer}
        if mtu:
            kwargs["mtu"] = mtu
        try:
            with _echo(ipr):
                msgs = ipr.link("add", **kwargs)
        except Exception as e:
            if _errno(e) == errno.EEXIST and find_link(ipr, host_name) is not None:
                last = e
                continue
            if _errno(e) == errno.EEXIST:
                where = f" in {netns_path}" if netns_path else " in the container namespace"
                raise CNIError(BridgeCode.CONTAINER_IFNAME_EXISTS,
                               f"container interface {ifname!r} already exists{where}",
                               "CNI_IFNAME must name a free interface in the container namespace") from e
            raise _kernel_error(f"failed to make veth pair ({host_name!r} <-> {ifname!r})", e) from e
        link = _echoed_link(msgs, host_name) or find_link(ipr, host_name)
        if link is None:
            raise vanished(f"failed to make veth pair: {host_name!r} vanished after creation")
        return link
    raise CNIError(ErrorCode.TRY_AGAIN_LATER,
                   f"failed to make veth pair for {ifname!r}: no free host name after 10 tries", f"the last attempt said: {last}")


def set_up(ipr: Any, link: Link) -> None:
    with mapped(f"failed to set {link.name!r} up"):
        ipr.link("set", index=link.index, state="up")


def enslave(ipr: Any, link: Link, bridge: Link) -> None:
    with mapped(f"failed to connect {link.name!r} to bridge {bridge.name}"):
        ipr.link("set", index=link.index, master=bridge.index)


def enslave_up(ipr: Any, link: Link, bridge: Link) -> None:
    """Port of the bridge and up, in one request (the kernel joins the bridge first, then opens)."""
    with mapped(f"failed to connect {link.name!r} to bridge {bridge.name} and set it up"):
        ipr.link("set", index=link.index, master=bridge.index, state="up")


def set_port_flags(ipr: Any, link: Link, hairpin: bool, isolated: bool) -> None:
    """Both flags are written together (the reference writes them always; on a new port, whose
    flags start off, that is a no-op unless one of them is on)."""
    with mapped(f"failed to set hairpin mode / isolation on bridge port {link.name!r}"):
        ipr.brport("set", index=link.index, IFLA_BRPORT_MODE=int(hairpin), IFLA_BRPORT_ISOLATED=int(isolated))


def setup_port_vlans(ipr: Any, link: Link, vlan: int, vlans: Sequence[int], preserve_default: bool) -> None:
    """Access VLAN (pvid, untagged) and trunk VIDs on the host port; needs bridge VLAN filtering."""
    if (vlan or vlans) and not preserve_default:
        with mapped(f"failed to remove default vlan on interface {link.name!r}"):
            ipr.vlan_filter("del", index=link.index, vlan_info={"vid": 1})
    if vlan:
        with mapped(f"failed to setup vlan tag {vlan} on interface {link.name!r}"):
            ipr.vlan_filter("add", index=link.index, vlan_info={"vid": vlan, "pvid": True})
    for vid in vlans:
        with mapped(f"failed to setup vlan tag {vid} on interface {link.name!r}"):
            ipr.vlan_filter("add", index=link.index, vlan_info={"vid": vid})
    if not vlan and vlans:
        with mapped(f"failed to setup default native vlan tag on interface {link.name!r}"):
            ipr.vlan_filter("add", index=link.index, vlan_info={"vid": 1, "pvid": True})


def delete_link(ipr: Any, index: int, name: str) -> None:
    """Missing is fine (the container end's deletion takes the host end with it)."""
    with mapped(f"failed to delete link {name!r}", ignore=(errno.ENODEV, errno.ENOENT)):
        ipr.link("del", index=index)


def wait_oper_up(ipr: Any, link: Link, timeout: float = 2.5) -> Link:
    """The reference waits for the host veth to be oper-up; poll briefly instead of fixed sleeps."""
    deadline = time.monotonic() + timeout
    current = link
    delay = 0.005
    while True:
        fresh = link_by_index(ipr, link.index)
        if fresh is None:
            raise vanished(f"bridge port {link.name!r} disappeared")
        current = fresh
        if current.oper_state == "UP":
            return current
        if time.monotonic() >= deadline:
            raise CNIError(ErrorCode.TRY_AGAIN_LATER, f"bridge port in error state: {current.oper_state}",
                           f"{link.name!r} did not come up within {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


# -- addresses and routes -------------------------------------------------------------------------

@dataclass(frozen=True)
class Addr:
    address: IPInterface
    flags: int
    scope: int


def list_addrs(ipr: Any, index: int, family: int | None = None) -> list[Addr]:
    kwargs: dict[str, Any] = {"index": index}
    if family is not None:
        kwargs["family"] = socket.AF_INET if family == 4 else socket.AF_INET6
    with mapped(f"failed to list addresses of link index {index}"):
        msgs = ipr.get_addr(**kwargs)
    out = []
    for m in msgs:
        text = m.get_attr("IFA_ADDRESS") if m["family"] == socket.AF_INET6 else (m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS"))
        flags = m.get_attr("IFA_FLAGS")
        out.append(Addr(ipaddress.ip_interface(f"{text}/{m['prefixlen']}"),
                        flags if flags is not None else m["flags"], m["scope"]))
    return out


def add_addr(ipr: Any, link: Link, iface: IPInterface, *, nodad: bool = False, ignore_exists: bool = False) -> None:
    kwargs: dict[str, Any] = {"index": link.index, "address": str(iface.ip), "prefixlen": iface.network.prefixlen}
    if iface.version == 4:
        kwargs["broadcast"] = str(iface.network.broadcast_address) if iface.network.prefixlen < 31 else None
        if kwargs["broadcast"] is None:
            del kwargs["broadcast"]
    with mapped(f"failed to add IP addr {iface} to {link.name!r}", ignore=(errno.EEXIST,) if ignore_exists else ()):
        ipr.addr("add", **kwargs)


def del_addr(ipr: Any, link: Link, iface: IPInterface) -> None:
    with mapped(f"could not remove IP address {iface} from {link.name!r}",
                ignore=(errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT)):
        ipr.addr("del", index=link.index, address=str(iface.ip), prefixlen=iface.network.prefixlen)


def ensure_gateway_addr(ipr: Any, bridge: Link, iface: IPInterface, force: bool) -> bool:
    """The reference's ensureAddr: exact match is fine, any other v4 address (or an overlapping v6
    one) is a conflict unless forceAddress. Returns whether the address was added now."""
    current = [a.address for a in list_addrs(ipr, bridge.index, iface.version)]
    if any(a == iface for a in current):
        return False
    for other in current:
        if iface.version == 6 and (other.is_link_local or not other.network.overlaps(iface.network)):
            continue
        if not force:
            raise CNIError(BridgeCode.BRIDGE_ADDRESS_CONFLICT,
                           f'"{bridge.name}" already has an IP address different from {iface}',
                           f"it has {other}; set forceAddress to replace it")
        del_addr(ipr, bridge, other)
    with mapped(f'could not add IP address {iface} to "{bridge.name}"', ignore=(errno.EEXIST,)):
        ipr.addr("add", index=bridge.index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    fresh = link_by_index(ipr, bridge.index)
    pin_mac(ipr, fresh or bridge)  # as the reference does when it gives a bridge its gateway address
    return True


def add_route(ipr: Any, link: Link, route: Route, gateway: Any) -> None:
    """Routes as the reference applies them: dst, gw (defaulting to the family gateway), priority,
    table, scope; mtu and advmss are honoured too (the reference drops them)."""
    kwargs: dict[str, Any] = {"dst": str(route.dst), "oif": link.index,
                              "family": socket.AF_INET if route.family == 4 else socket.AF_INET6}
    gw = route.gw if route.gw is not None else gateway
    if gw is not None:
        kwargs["gateway"] = str(gw)
    if route.priority is not None:
        kwargs["priority"] = route.priority
    if route.table is not None:
        kwargs["table"] = route.table
    if route.scope is not None:
        kwargs["scope"] = route.scope
    elif gw is None:
        kwargs["scope"] = 253  # RT_SCOPE_LINK: a directly connected destination
    metrics = {}
    if route.mtu:
        metrics["RTAX_MTU"] = route.mtu
    if route.advmss:
        metrics["RTAX_ADVMSS"] = route.advmss
    if metrics:
        kwargs["metrics"] = metrics
    what = f"'{route.dst} via {gw} dev {link.name} metric {route.priority or 0} (Scope: {route.scope or 0}, Table: {route.table or 0})'"
    with mapped(f"failed to add route {what}", ignore=(errno.EEXIST,)):
        ipr.route("add", **kwargs)


@dataclass(frozen=True)
class RouteEntry:
    dst: Any
    gateway: Any
    oif: int
    table: int


def list_routes(ipr: Any, family: int) -> list[RouteEntry]:
    fam = socket.AF_INET if family == 4 else socket.AF_INET6
    with mapped("failed to list routes"):
        msgs = ipr.route("dump", family=fam)
    out = []
    for m in msgs:
        dst = m.get_attr("RTA_DST")
        net = ipaddress.ip_network(f"{dst}/{m['dst_len']}" if dst else ("0.0.0.0/0" if family == 4 else "::/0"), strict=False)
        gw = m.get_attr("RTA_GATEWAY")
        out.append(RouteEntry(net, ipaddress.ip_address(gw) if gw else None, m.get_attr("RTA_OIF") or 0,
                              m.get_attr("RTA_TABLE") or m["table"]))
    return out


# -- sysctls --------------------------------------------------------------------------------------

def read_sysctl(path: str) -> str | None:
    try:
        with open(f"/proc/sys/{path}") as f:
            return f.read().strip()
    except OSError:
        return None


def write_sysctl(path: str, value: str, *, ignore_errors: bool = False) -> None:
    """Write only when different (a read-only /proc/sys is fine if the value is already right)."""
    if read_sysctl(path) == value:
        return
    try:
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)
    except OSError as e:
        if not ignore_errors:
            raise CNIError(ErrorCode.IO_FAILURE, f"failed to set sysctl {path} = {value}: {e.strerror}",
                           f"/proc/sys/{path}") from None


def enable_forwarding(families: set[int]) -> None:
    if 4 in families:
        with mapped("failed to enable forwarding"):
            write_sysctl("net/ipv4/ip_forward", "1")
    if 6 in families:
        with mapped("failed to enable forwarding"):
            write_sysctl("net/ipv6/conf/all/forwarding", "1")


# -- the container side ---------------------------------------------------------------------------

def configure_container(ipr: Any, ifname: str, ips: Sequence[Any], routes: Sequence[Route],
                        enabledad: bool, link: Link | None = None) -> Link:
    """Sysctls, addresses, link up, optional DAD settle, routes: the reference's ConfigureIface,
    without waiting for anything unless DAD was asked for. `link`: CNI_IFNAME as the caller
    already looked it up (saves a request)."""
    if link is None:
        link = find_link(ipr, ifname)
    if link is None:
        raise vanished(f"failed to lookup {ifname!r}: not found in the container namespace")
    addresses = [ip.address for ip in ips]
    if enabledad:
        write_sysctl(f"net/ipv6/conf/{ifname}/enhanced_dad", "1", ignore_errors=True)
        write_sysctl(f"net/ipv6/conf/{ifname}/accept_dad", "1", ignore_errors=True)
    else:
        write_sysctl(f"net/ipv6/conf/{ifname}/accept_dad", "0", ignore_errors=True)
    write_sysctl(f"net/ipv4/conf/{ifname}/arp_notify", "1", ignore_errors=True)
    if any(a.version == 6 for a in addresses):
        for name in ("lo", ifname):
            if read_sysctl(f"net/ipv6/conf/{name}/disable_ipv6") not in (None, "0"):
                write_sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "0")
        write_sysctl(f"net/ipv6/conf/{ifname}/keep_addr_on_down", "1")
    for addr in addresses:
        add_addr(ipr, link, addr)
    set_up(ipr, link)
    if enabledad and any(a.version == 6 for a in addresses):
        settle_addresses(ipr, link)
    gateways = route_gateways(ips)
    for route in routes:
        add_route(ipr, link, route, gateways.get(route.family))
    return link


def route_gateways(ips: Sequence[Any]) -> dict[int, Any]:
    """First gateway per family, as ConfigureIface picks it."""
    out: dict[int, Any] = {}
    for ip in ips:
        if ip.gateway is not None and ip.family not in out:
            out[ip.family] = ip.gateway
    return out


def settle_addresses(ipr: Any, link: Link, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        tentative = False
        for a in list_addrs(ipr, link.index, 6):
            if a.flags & IFA_F_DADFAILED:
                raise CNIError(BridgeCode.DAD_FAILED, f"failed to settle addresses for {link.name!r}: "
                                                   f"link {link.name} has address {a.address} in DADFAILED state")
            if a.flags & IFA_F_TENTATIVE and not a.address.is_link_local:
                tentative = True
        if not tentative:
            return
        if time.monotonic() >= deadline:
            fresh = link_by_index(ipr, link.index)
            if fresh is not None and fresh.oper_state == "UP":
                raise CNIError(ErrorCode.TRY_AGAIN_LATER, f"failed to settle addresses for {link.name!r}: timed out",
                               f"IPv6 addresses still tentative after {timeout:g} s")
            return
        time.sleep(0.05)


def delete_container_link(ipr: Any, ifname: str) -> list[IPInterface]:
    """Delete CNI_IFNAME (its veth peer goes with it); return its global addresses. Missing is fine."""
    link = find_link(ipr, ifname)
    if link is None:
        return []
    addrs = [a.address for a in list_addrs(ipr, link.index) if _global_unicast(a.address.ip)]
    delete_link(ipr, link.index, ifname)
    return addrs


def _global_unicast(ip: Any) -> bool:
    """Go's net.IP.IsGlobalUnicast: private ranges included."""
    if ip.is_link_local or ip.is_loopback or ip.is_multicast or ip.is_unspecified:
        return False
    return not (ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255"))


def announce(ifname: str, ifindex: int, mac: str, addresses: Sequence[IPInterface]) -> None:
    """A gratuitous ARP / unsolicited neighbour advertisement per address, so neighbours that cached
    a previous owner's MAC for a reused IP switch at once (reference #858). Best effort."""
    hw = bytes.fromhex(mac.replace(":", ""))
    v4 = [a.ip for a in addresses if a.version == 4]
    if v4:
        try:
            _send_garps(ifname, hw, [ip.packed for ip in v4])
        except OSError as e:
            print(f"bridge: could not announce {', '.join(map(str, v4))} on {ifname}: {e.strerror}", file=sys.stderr)
    for addr in addresses:
        if addr.version == 6:
            try:
                _send_unsolicited_na(ifindex, hw, addr.ip)
            except OSError as e:
                print(f"bridge: could not announce {addr.ip} on {ifname}: {e.strerror}", file=sys.stderr)


def _send_garps(ifname: str, hw: bytes, ips: Sequence[bytes]) -> None:
    """All of them through one AF_PACKET socket. Protocol 0 and no bind: the socket never joins
    the receive path, whose removal (a protocol socket rebound to an interface) would wait for an
    RCU grace period; its close, which always does, is left to a detached child."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        for ip in ips:
            eth = b"\xff" * 6 + hw + struct.pack("!H", 0x0806)
            arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + ip + b"\x00" * 6 + ip
            s.sendto(eth + arp + b"\x00" * 18, (ifname, 0x0806))
    finally:
        _close_elsewhere(s)


def _close_elsewhere(s: socket.socket) -> None:
    """Closing the last reference to an AF_PACKET socket waits for an RCU grace period
    (packet_release -> synchronize_net): 10-30 ms here, on every ADD; left open, it is paid at
    exit, before the runtime's wait returns. So a forked child takes the last reference: it
    closes everything else at once (it holds neither the runtime's stdout nor a lock), waits
    until this process has dropped its reference (EOF on a pipe), then exits and pays the wait
    where nobody waits for it. Once this short-lived process exits, whoever inherits the child
    reaps it. If anything fails, the socket is simply closed here. A warm worker, which exits only
    after its caller has the answer, keeps the socket until then instead (no fork)."""
    from shared import handoff

    if handoff.released_after_reply is not None:
        handoff.released_after_reply.append(s)
        return
    fd = s.fileno()
    try:
        r, w = os.pipe()
    except OSError:
        s.close()
        return
    try:
        pid = os.fork()
    except OSError:
        pid = -1
    if pid == 0:  # pragma: no cover - the child only closes, waits and exits
        try:
            keep = sorted((fd, r))
            os.closerange(0, keep[0])
            os.closerange(keep[0] + 1, keep[1])
            os.closerange(keep[1] + 1, 0x7FFFFFFF)  # close_range(2) up to the top
            os.read(r, 1)  # EOF: the parent's reference is gone
        finally:
            os._exit(0)
    s.close()
    os.close(w)
    os.close(r)


def _send_unsolicited_na(ifindex: int, hw: bytes, ip: Any) -> None:
    # type 136, code 0, checksum (kernel fills it), flags: Override; target; option 2 = target lladdr
    icmp = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + ip.packed + struct.pack("!BB", 2, 1) + hw
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        s.bind((str(ip), 0, 0, 0))
        s.sendto(icmp, ("ff02::1", 0, 0, ifindex))
