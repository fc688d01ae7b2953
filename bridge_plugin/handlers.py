"""The bridge verbs. Plain functions `Request -> Result | None`; kernel work goes through `netlink`,
firewall rules through `firewall`, addressing through the IPAM delegate.

ADD pushes an undo step for every side effect onto an ExitStack and drops them only once the result
is known to print in the requested version: any failure leaves nothing of this ADD behind. DEL is
best effort: it runs every step, collects the errors and raises once.
"""
from __future__ import annotations

import ipaddress
import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable

from shared import invoke
from shared.errors import CNIError, ErrorCode
from shared.request import Request
from shared.types import Interface, IPConfig, Result, Route, prev_result

from . import netlink as nl
from .config import NetConf, load_conf, load_request
from .errors import BridgeCode

FAIL_ENV = "PYCNI_TEST_FAIL_AT"
# The ADD steps a test can make fail (after the step's side effect, so its undo must run).
ADD_STEPS = ("bridge", "veth", "port", "spoofcheck", "ipam", "container", "gateway", "masquerade", "result")


def fail_point(req: Request, step: str) -> None:
    """Test seam: PYCNI_TEST_FAIL_AT=<step> in the plugin's environment fails ADD right after <step>."""
    if req.env.get(FAIL_ENV) == step:
        raise CNIError(BridgeCode.INJECTED_FAILURE, f"injected failure after step {step!r}", f"{FAIL_ENV}={step}")


# -- the firewall contract (owned by the firewall package) -----------------------------------------

_FW_NAMES = ("Attachment", "setup_masquerade", "teardown_masquerade", "gc_masquerade", "masquerade_usable",
             "setup_spoofcheck", "teardown_spoofcheck", "gc_spoofcheck")


def firewall() -> ModuleType | None:
    """The firewall package, or None while it is not installed / complete."""
    try:
        from . import firewall as fw
    except ImportError:
        return None
    return fw if all(hasattr(fw, n) for n in _FW_NAMES) else None


def _need_firewall(what: str) -> ModuleType:
    fw = firewall()
    if fw is None:
        raise CNIError(ErrorCode.NOT_AVAILABLE, f"{what} is configured but the firewall support is not installed",
                       "bridge_plugin.firewall is missing")
    return fw


def attachment(fw: ModuleType, conf: NetConf, req: Request) -> Any:
    return fw.Attachment(network=conf.name, container_id=req.container_id, ifname=req.ifname)


# -- ADD --------------------------------------------------------------------------------------------

def cmd_add(req: Request) -> Result:
    conf = load_request(req)
    fw = None
    if (conf.ip_masq and conf.is_layer3) or conf.macspoofchk:
        fw = _need_firewall("ipMasq" if conf.ip_masq else "macspoofchk")
    # `resources` (fds, sockets) are always released; `undo` runs only on failure, before them.
    with ExitStack() as resources, ExitStack() as undo:
        result = _add(req, conf, fw, undo, resources)
        result.to_json(req.cni_version)  # a result that cannot be printed is a failed ADD: roll back
        fail_point(req, "result")
        undo.pop_all()
    return result


def _add(req: Request, conf: NetConf, fw: ModuleType | None, undo: ExitStack, resources: ExitStack) -> Result:
    netns_fd = nl.open_netns(req.netns)
    resources.callback(_close, netns_fd)
    with nl.entered(req.netns):
        cont = resources.enter_context(nl.rtnl())
    host = resources.enter_context(nl.rtnl())

    bridge, pinned = nl.ensure_bridge(host, conf.bridge, conf.mtu, conf.promisc_mode, conf.vlan_filtering)
    fail_point(req, "bridge")

    veth = nl.create_veth(host, netns_fd, req.ifname, conf.mtu, conf.mac, req.netns)
    undo.callback(_undo_veth, host, veth)
    fail_point(req, "veth")

    nl.write_sysctl(f"net/ipv6/conf/{veth.name}/accept_ra", "0", ignore_errors=True)
    nl.enslave_up(host, veth, bridge)
    if conf.hairpin_mode or conf.port_isolation:  # a new port starts with both off
        nl.set_port_flags(host, veth, conf.hairpin_mode, conf.port_isolation)
    if conf.vlan or conf.vlans:
        nl.setup_port_vlans(host, veth, conf.vlan, conf.vlans, conf.preserve_default_vlan)
    fail_point(req, "port")

    cont_link = nl.find_link(cont, req.ifname)
    if cont_link is None:
        raise nl.vanished(f"container interface {req.ifname!r} vanished after creation")
    result = Result(interfaces=[Interface(bridge.name, bridge.mac), Interface(veth.name, veth.mac),
                                Interface(req.ifname, cont_link.mac, sandbox=req.netns)])

    if conf.macspoofchk and fw is not None:
        att = attachment(fw, conf, req)
        undo.callback(_quiet, "spoof-check teardown", fw.teardown_spoofcheck, att)  # also after a partial setup
        fw.setup_spoofcheck(att, veth.name, cont_link.mac)
        fail_point(req, "spoofcheck")

    if conf.is_layer3:
        _add_layer3(req, conf, fw, undo, host, cont, bridge, cont_link, result)
    elif not conf.disable_container_interface:
        nl.set_up(cont, cont_link)

    if not conf.disable_container_interface:
        fresh_veth = nl.wait_oper_up(host, veth)  # read after every change ADD makes to it
        if result.ips:
            with nl.entered(req.netns):
                nl.announce(req.ifname, cont_link.index, cont_link.mac, [ip.address for ip in result.ips])
    else:
        fresh_veth = nl.link_by_index(host, veth.index) or veth
    if conf.vlan or nl.port_may_change_mac(bridge.mac, pinned, veth.mac):
        result.interfaces[0].mac = (nl.find_link(host, conf.bridge) or bridge).mac
    result.interfaces[1].mac = fresh_veth.mac
    if conf.dns:
        result.dns = conf.dns
    return result


def _add_layer3(req: Request, conf: NetConf, fw: ModuleType | None, undo: ExitStack,
                host: Any, cont: Any, bridge: nl.Link, cont_link: nl.Link, result: Result) -> None:
    ipam = invoke.delegate_add(conf.ipam_type, req)
    undo.callback(_quiet, "IPAM DEL", invoke.delegate, conf.ipam_type, "DEL", req)
    fail_point(req, "ipam")
    if not ipam.ips:
        raise CNIError(BridgeCode.IPAM_NO_IP_CONFIG, "IPAM plugin returned missing IP config",
                       f"{conf.ipam_type} returned no ips")
    result.ips = [IPConfig(ip.address, ip.gateway, 2) for ip in ipam.ips]
    result.routes = list(ipam.routes)
    result.dns = ipam.dns
    gateways = calc_gateways(conf, result)

    masquerade = None
    if conf.ip_masq and fw is not None:
        att = attachment(fw, conf, req)
        addresses = [ip.address for ip in result.ips]
        undo.callback(_quiet, "masquerade teardown", fw.teardown_masquerade, att, addresses)
        # The rules need only the addresses: the firewall command runs while netlink works on.
        # Started here, in the host namespace, which the thread keeps; joined before any undo.
        masquerade = Concurrent(fw.setup_masquerade, conf.ip_masq_backend, att, addresses)
        undo.callback(masquerade.wait)

    with nl.entered(req.netns):
        nl.configure_container(cont, req.ifname, result.ips, result.routes, conf.enabledad, cont_link)
    fail_point(req, "container")

    if conf.is_gateway:
        target = bridge
        if conf.vlan:
            target = _ensure_vlan_gateway(host, conf, bridge, result)
        for gw in gateways:
            nl.ensure_gateway_addr(host, target, gw, conf.force_address)
        nl.enable_forwarding({gw.version for gw in gateways})
    fail_point(req, "gateway")

    if masquerade is not None:
        masquerade.result()
        fail_point(req, "masquerade")


class Concurrent:
    """fn(*args) in a thread from now on; result() waits for it and raises what it raised.

    The thread starts in the namespace the calling thread is in and stays there (setns is per
    thread), and so do the commands it runs."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        import threading

        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to result()
            self._error = e

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> None:
        self.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def calc_gateways(conf: NetConf, result: Result) -> list[Any]:
    """Fill in gateways and default routes (reference calcGateways), return the bridge's gateway
    addresses as ip/prefix, v4 first. An IPAM default route without a gw already routes via the
    gateway, so no second one is added (reference quirk 8)."""
    v4: list[Any] = []
    v6: list[Any] = []
    defaults_done: set[int] = set()
    for ip in result.ips:
        ip.interface = 2
        if ip.gateway is None and conf.is_gateway:
            ip.gateway = ip.address.network.network_address + 1
        fam = ip.family
        if conf.is_default_gateway and fam not in defaults_done:
            defaults_done.add(fam)
            if not any(r.is_default and r.family == fam for r in result.routes):
                dst = ipaddress.ip_network("0.0.0.0/0" if fam == 4 else "::/0")
                result.routes.append(Route(dst=dst, gw=ip.gateway))
        if conf.is_gateway and ip.gateway is not None:
            gw = ipaddress.ip_interface(f"{ip.gateway}/{ip.address.network.prefixlen}")
            (v4 if fam == 4 else v6).append(gw)
    return v4 + v6


def _ensure_vlan_gateway(host: Any, conf: NetConf, bridge: nl.Link, result: Result) -> nl.Link:
    """The reference's `<bridge>.<vlan>` gateway: a host-side veth pair whose other end is an access
    port of the VLAN. Reported as interfaces[3]. Needs bridge VLAN filtering."""
    name = conf.vlan_gateway_name
    link = nl.find_link(host, name)
    if link is None:
        own_fd = nl.open_netns("/proc/thread-self/ns/net")
        try:
            port = nl.create_veth(host, own_fd, name, bridge.mtu, "")
        finally:
            _close(own_fd)
        nl.enslave(host, port, bridge)
        nl.setup_port_vlans(host, port, conf.vlan, (), conf.preserve_default_vlan)
        nl.set_up(host, port)
        link = nl.find_link(host, name)
        if link is None:
            raise nl.vanished(f"failed to create vlan interface {name!r}")
        nl.set_up(host, link)
    result.interfaces.append(Interface(link.name, link.mac))
    return link


def _undo_veth(host: Any, veth: nl.Link) -> None:
    _quiet("veth removal", nl.delete_link, host, veth.index, veth.name)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _quiet(what: str, fn: Callable[..., Any], *args: Any) -> None:
    """Undo steps never mask the error that triggered the rollback; they report to stderr."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - rollback is best effort
        print(f"bridge: rollback: {what} failed: {e}", file=sys.stderr)


# -- DEL --------------------------------------------------------------------------------------------

@dataclass
class Errors:
    """Collect failures of independent cleanup steps; raise the first, mention the rest."""

    items: list[CNIError] = field(default_factory=list)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except CNIError as e:
            self.items.append(e)
        except Exception as e:  # noqa: BLE001
            self.items.append(CNIError(ErrorCode.INTERNAL, f"{type(e).__name__}: {e}"))
        return None

    def raise_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        rest = "; ".join(str(e) for e in self.items[1:])
        details = "; ".join(p for p in (first.details, f"also: {rest}" if rest else "") if p)
        raise CNIError(first.code, first.msg, details)


def cmd_del(req: Request) -> None:
    conf = load_conf(req.config, req.args, strict=False)
    errors = Errors()
    known: list[Any] = []
    prev = None
    try:
        prev = prev_result(req.config)
    except CNIError:
        prev = None
    if prev is not None:
        known.extend(ip.address for ip in prev.ips)
    link_ok = True
    if req.netns:
        try:
            found = _del_container_link(req)
            known.extend(a for a in found if a not in known)
        except nl.NetnsNotFound:
            pass
        except CNIError as e:
            link_ok = False
            errors.items.append(e)
    if conf.is_layer3 and link_ok:
        # released only once the link is gone, so the address cannot be handed out while in use
        errors.run(invoke.delegate, conf.ipam_type, "DEL", req)
    fw = firewall()
    if fw is not None:
        att = attachment(fw, conf, req)
        if conf.macspoofchk:
            errors.run(fw.teardown_spoofcheck, att)
        if conf.ip_masq and conf.is_layer3:
            errors.run(fw.teardown_masquerade, att, known)
    elif (conf.ip_masq and conf.is_layer3) or conf.macspoofchk:
        print("bridge: firewall support not installed; no rules to remove", file=sys.stderr)
    errors.raise_any()


def _del_container_link(req: Request) -> list[Any]:
    with nl.entered(req.netns):
        with nl.rtnl() as cont:
            return nl.delete_container_link(cont, req.ifname)


# -- CHECK ------------------------------------------------------------------------------------------

def cmd_check(req: Request) -> None:
    conf = load_request(req)
    prev = prev_result(req.config)
    if prev is None:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, "Required prevResult missing",
                       "CHECK needs the ADD result in prevResult")
    if conf.is_layer3:
        invoke.delegate(conf.ipam_type, "CHECK", req)
    br_if = next((i for i in prev.interfaces if i.name == conf.bridge), None)
    cont_if = next((i for i in prev.interfaces if i.name == req.ifname and i.sandbox), None)
    if br_if is None:
        raise CNIError(BridgeCode.CHECK_MISMATCH, f"CNI created bridge {conf.bridge} in host namespace was not found",
                       "prevResult lists no interface with the bridge's name")
    if cont_if is None:
        raise CNIError(BridgeCode.CHECK_MISMATCH, f"CNI created interface in container {req.ifname} not found",
                       "prevResult lists no sandboxed interface named CNI_IFNAME")
    if cont_if.sandbox != req.netns:
        raise CNIError(BridgeCode.CHECK_MISMATCH,
                       f"Sandbox in prevResult {cont_if.sandbox} doesn't match configured netns: {req.netns}")
    with nl.entered(req.netns):
        with nl.rtnl() as cont:
            peer_index = _check_container(cont, req, cont_if, prev)
    with nl.rtnl() as host:
        bridge = _check_bridge(host, conf, br_if)
        _check_host_veth(host, conf, prev, bridge, peer_index)


def _check_bridge(host: Any, conf: NetConf, br_if: Interface) -> nl.Link:
    if br_if.sandbox:
        raise CNIError(BridgeCode.CHECK_MISMATCH, f"Interface {br_if.name} should not be in sandbox")
    link = nl.find_link(host, br_if.name)
    if link is None:
        raise CNIError(BridgeCode.CHECK_MISMATCH, f"Interface name {br_if.name} not found")
    if link.kind != "bridge":
        raise CNIError(BridgeCode.CHECK_MISMATCH, f"Interface {br_if.name} does not have link type of bridge")
    if br_if.mac and br_if.mac.lower() != link.mac.lower():
        raise CNIError(BridgeCode.CHECK_MISMATCH, f"Bridge interface {br_if.name} Mac doesn't match: {br_if.mac}",
                       f"the bridge has {link.mac}")
    if conf.promisc_mode and not link.promisc:
        raise CNIError(BridgeCode.CHECK_MISMATCH, f"Bridge interface {br_if.name} configured Promisc Mode true "
                                           f"doesn't match current state: false")
    return link


def _check_container(cont: Any, req: Request, cont_if: Interface, prev: Result) -> int:
    link = nl.find_link(cont, req.ifname)
    if link is None:
        raise CNIError(BridgeCode.CHECK_MISMATCH, f"CNI created interface in container {req.ifname} not found",
                       f"no link {req.ifname!r} in {req.netns}")
    if link.kind != "veth":
        raise CNIError(BridgeCode.CHECK_MISMATCH, f"Error: Container interface {req.ifname} not of type veth")
    if cont_if.mac and cont_if.mac.lower() != link.mac.lower():
        raise CNIError(BridgeCode.CHECK_MISMATCH,
                       f"Interface {req.ifname} Mac {cont_if.mac} doesn't match container Mac: {link.mac}")
    addrs = [a.address for a in nl.list_addrs(cont, link.index)]
    families = {ip.family for ip in prev.ips} | {r.family for r in prev.routes}
    routes = {fam: nl.list_routes(cont, fam) for fam in sorted(families)}  # only the families checked
    for ip in prev.ips:
        if ip.address not in addrs:
            raise CNIError(BridgeCode.CHECK_MISMATCH, f"Failed to match addr {ip.address} on interface {req.ifname}")
        if not any(r.dst == ip.address.network and r.oif == link.index for r in routes[ip.family]):
            raise CNIError(BridgeCode.CHECK_MISMATCH, f"Failed to find Gateway {ip.gateway} for interface {req.ifname}",
                           f"no route to {ip.address.network} on {req.ifname}")
    for route in prev.routes:
        if not any(_route_matches(route, r) for r in routes[route.family]):
            raise CNIError(BridgeCode.CHECK_MISMATCH, f"Expected Route {route.to_json(2)} not found in routing table")
    return link.peer_index


def _route_matches(want: Route, have: nl.RouteEntry) -> bool:
    if want.dst != have.dst:
        return False
    if want.table is not None and want.table != have.table:
        return False
    return want.is_default or want.gw is None or want.gw == have.gateway


def _check_host_veth(host: Any, conf: NetConf, prev: Result, bridge: nl.Link, peer_index: int) -> None:
    """The host end must be the container end's peer and a port of the bridge. Its MAC is not
    compared: the kernel may change it after ADD returned (reference #808)."""
    found = False
    for iface in prev.interfaces:
        if iface.sandbox or iface.name == conf.bridge or iface.name == conf.vlan_gateway_name:
            continue
        link = nl.find_link(host, iface.name)
        if link is None:
            raise CNIError(BridgeCode.CHECK_MISMATCH, f"Interface name {iface.name} not found")
        if link.kind != "veth":
            continue
        if link.index == peer_index and link.master == bridge.index:
            found = True
    if not found:
        raise CNIError(BridgeCode.CHECK_MISMATCH, f"CNI veth created for bridge {conf.bridge} was not found",
                       "no host interface of prevResult is the container's veth peer and a port of the bridge")


# -- GC and STATUS ----------------------------------------------------------------------------------

def cmd_gc(req: Request) -> None:
    from shared.gc import valid_attachments

    conf = load_conf(req.config, req.args, strict=False)
    valid = valid_attachments(req.config)
    errors = Errors()
    if conf.is_layer3:
        errors.run(invoke.delegate, conf.ipam_type, "GC", req)
    fw = firewall()
    if fw is not None:
        errors.run(fw.gc_masquerade, conf.name, valid)
        errors.run(fw.gc_spoofcheck, conf.name, valid)
    errors.raise_any()


def cmd_status(req: Request) -> None:
    conf = load_conf(req.config, req.args, strict=False)
    if conf.is_layer3:
        invoke.delegate(conf.ipam_type, "STATUS", req)
    if conf.ip_masq and conf.is_layer3:
        fw = _need_firewall("ipMasq")
        if not fw.masquerade_usable(conf.ip_masq_backend):
            backend = conf.ip_masq_backend or "iptables or nftables"
            raise CNIError(ErrorCode.NOT_AVAILABLE, "masquerading is configured but not possible on this host",
                           f"no usable {backend} (ipMasqBackend)")
    if conf.macspoofchk:
        _need_firewall("macspoofchk")

