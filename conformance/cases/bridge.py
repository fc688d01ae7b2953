"""bridge specifics: links, addresses, routes, connectivity, masquerade, delegation, cleanup
(spec §7, §9.2 R9.8–R9.13; test ideas T102–T122; users-and-peers #3, #4, #20)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

from . import specific
from ._common import (Ctx, expect_error, firewall_rules, leaks_after, nsmod, ok_result, ok_silent, reservations,
                      result_ips, snapshot)
from .lifecycle import gc_conf

BR = "bridge"


def case(tid: str, title: str, clause: str, fix: str):
    return specific(tid, "bridge", "bridge", title, clause, fix, BR)


def _links(ns: nsmod.NetNS) -> dict:
    return nsmod.links(ns)


def _host_veths(ctx: Ctx) -> list[str]:
    return sorted(n for n, l in _links(ctx.host).items() if l["kind"] == "veth")


def _addr(ctx: Ctx, ns: nsmod.NetNS, ifname: str = "eth0") -> list[str]:
    return _links(ns).get(ifname, {}).get("addrs", [])


def _rules_with(ctx: Ctx, ip: str) -> list[str]:
    """Firewall rules naming this address (exactly, not as a prefix of a longer one)."""
    bare = re.escape(ip.split("/")[0])
    pat = re.compile(rf"(?<![\w.:]){bare}(?![\w:]|\.\d)")
    return sorted(r for r in firewall_rules(ctx) if pat.search(r))


@case("T102", "ADD creates the bridge, the veth pair and the container address",
      "spec R2.2, R9.9, R9.10", "create bridge (up), veth with CNI_IFNAME in the netns, host end enslaved")
def t102(ctx: Ctx) -> None:
    conf = ctx.conf(isGateway=False)
    doc = ctx.add(conf)
    host = _links(ctx.host)
    br = host.get(ctx.bridge)
    if not br or br["kind"] != "bridge" or "UP" not in br["flags"]:
        ctx.fail(f"bridge {ctx.bridge} missing, not a bridge or not up: {br}")
    ports = [n for n, l in host.items() if l["master"] == ctx.bridge and l["kind"] == "veth"]
    if len(ports) != 1:
        ctx.fail(f"expected one veth enslaved to {ctx.bridge}, found {ports}")
    if _addr(ctx, ctx.netns) != ["10.88.0.2/24"]:
        ctx.fail(f"container eth0 addresses {_addr(ctx, ctx.netns)}, expected ['10.88.0.2/24']")
    names = [i.get("name") for i in doc.get("interfaces", [])]
    if names[:1] != [ctx.bridge] or "eth0" not in names or ports[0] not in names:
        ctx.fail(f"result interfaces {names} should list the bridge, host veth {ports[0]} and eth0")


@case("T103", "isGateway puts the gateway on the bridge and enables forwarding", "spec R9.9",
      "add network+1 to the bridge, report it as gateway, set ip_forward")
def t103(ctx: Ctx) -> None:
    doc = ctx.add(ctx.conf(isGateway=True))
    if "10.88.0.1/24" not in _links(ctx.host).get(ctx.bridge, {}).get("addrs", []):
        ctx.fail(f"bridge lacks 10.88.0.1/24: {_links(ctx.host).get(ctx.bridge)}")
    gws = [i.get("gateway") for i in doc.get("ips", [])] or [doc.get("ip4", {}).get("gateway")]
    if gws != ["10.88.0.1"]:
        ctx.fail(f"result gateway {gws}, expected ['10.88.0.1']")
    fwd = ctx.host.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
    if fwd != "1":
        ctx.fail(f"net.ipv4.ip_forward is {fwd!r} in the host netns after ADD with isGateway")


@case("T104", "isDefaultGateway installs the default route", "spec R9.9",
      "add 0.0.0.0/0 via the gateway in the container and in the result")
def t104(ctx: Ctx) -> None:
    doc = ctx.add(ctx.conf(isDefaultGateway=True))
    routes = nsmod.routes(ctx.netns)
    if not any(r.get("dst") == "default" and r.get("gateway") == "10.88.0.1" for r in routes):
        ctx.fail(f"no default route via 10.88.0.1 in the container: {routes}")
    rr = doc.get("routes") or doc.get("ip4", {}).get("routes", [])
    if not any(r.get("dst") == "0.0.0.0/0" and r.get("gw") in ("10.88.0.1", None) for r in rr):
        ctx.fail(f"result routes lack 0.0.0.0/0 via 10.88.0.1: {rr}")


@case("T105", "an existing CNI_IFNAME fails ADD without leftovers", "spec R2.3, R7.8; users #20",
      "fail when the interface exists; release the IP and remove the half-made veth")
def t105(ctx: Ctx) -> None:
    ctx.netns.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer", check=True)
    r = ctx.exec(None, "ADD", ctx.conf())
    expect_error(ctx, r, None, "ADD with eth0 already present")
    if reservations(ctx):
        ctx.fail(f"failed ADD kept the reservation {sorted(reservations(ctx))}")
    if _host_veths(ctx):
        ctx.fail(f"failed ADD left host veths {_host_veths(ctx)}")
    ok_silent(ctx, ctx.exec(None, "DEL", ctx.conf()), "DEL after the failed ADD")


@case("T106", "a bridge with a foreign address: error and rollback; forceAddress replaces it",
      "spec R7.8 (roll back IPAM), R9.9", "call IPAM DEL when ADD fails after IPAM ADD; honour forceAddress")
def t106(ctx: Ctx) -> None:
    ctx.host.ip("link", "add", ctx.bridge, "type", "bridge", check=True)
    ctx.host.ip("addr", "add", "10.99.0.1/24", "dev", ctx.bridge, check=True)
    r = ctx.exec(None, "ADD", ctx.conf(isGateway=True))
    expect_error(ctx, r, None, "ADD onto a bridge holding 10.99.0.1/24")
    if reservations(ctx):
        ctx.fail(f"failed ADD did not roll back its IPAM reservation: {sorted(reservations(ctx))}")
    ok_silent(ctx, ctx.exec(None, "DEL", ctx.conf()), "DEL after the failed ADD")


@case("X27", "forceAddress replaces a foreign bridge address", "spec R9.8, R9.9 (forceAddress)",
      "with forceAddress, delete the conflicting address and add the gateway")
def x27(ctx: Ctx) -> None:
    ctx.host.ip("link", "add", ctx.bridge, "type", "bridge", check=True)
    ctx.host.ip("addr", "add", "10.99.0.1/24", "dev", ctx.bridge, check=True)
    ctx.host.ip("link", "set", ctx.bridge, "up", check=True)
    ctx.add(ctx.conf(isGateway=True, forceAddress=True), "ADD with forceAddress")
    addrs = _links(ctx.host)[ctx.bridge]["addrs"]
    if "10.88.0.1/24" not in addrs or "10.99.0.1/24" in addrs:
        ctx.fail(f"forceAddress should replace 10.99.0.1/24 by 10.88.0.1/24; bridge has {addrs}")


@case("T107", "a missing IPAM binary is an error; DEL still succeeds", "spec R7.2, R2.10",
      "report the missing delegate as error JSON; DEL must not fail on it")
def t107(ctx: Ctx) -> None:
    conf = ctx.conf(ipam=ctx.ipam(type="no-such-ipam"))
    expect_error(ctx, ctx.exec(None, "ADD", conf), None, "ADD with ipam.type no-such-ipam")
    r = ctx.exec(None, "DEL", conf)
    if r.rc != 0:
        ctx.warn(f"DEL with a missing IPAM binary failed: {r.brief()}")
    if _host_veths(ctx):
        ctx.fail(f"ADD with a missing IPAM binary left host veths {_host_veths(ctx)}")


@case("T108", "IPAM errors pass through with their code", "spec R7.6", "return the delegate's error code/msg unchanged")
def t108(ctx: Ctx) -> None:
    conf = ctx.conf(ipam=ctx.ipam(rangeStart="10.88.0.10", rangeEnd="10.88.0.10"))
    ctx.add(conf, cid="c1")
    ns = ctx.container()
    r = ctx.exec(None, "ADD", conf, cid="c2", netns=ns)
    doc = expect_error(ctx, r, None, "ADD with the range exhausted")
    direct = ctx.exec("host-local", "ADD", conf, cid="c3", netns=ns)
    ddoc = expect_error(ctx, direct, None, "host-local ADD with the range exhausted")
    if doc["code"] != ddoc["code"]:
        ctx.fail(f"bridge reported code {doc['code']}, host-local said {ddoc['code']} ({ddoc['msg']!r})")


@case("X20", "a failed ADD leaves no veth behind", "users #20 (plugins#29), spec R2.7",
      "delete the veth pair when ADD fails after creating it")
def x20(ctx: Ctx) -> None:
    conf = ctx.conf(ipam=ctx.ipam(rangeStart="10.88.0.10", rangeEnd="10.88.0.10"))
    ctx.add(conf, cid="c1")
    before = _host_veths(ctx)
    ns = ctx.container()
    expect_error(ctx, ctx.exec(None, "ADD", conf, cid="c2", netns=ns), None, "ADD with the range exhausted")
    extra = sorted(set(_host_veths(ctx)) - set(before))
    inside = "eth0" in _links(ns)
    if extra or inside:
        ctx.fail(f"failed ADD left host veth(s) {extra} and container eth0={inside}")


@case("T109", "mtu is applied to both veth ends", "spec R9.8, R9.9", "create the veth pair with the configured MTU")
def t109(ctx: Ctx) -> None:
    ctx.add(ctx.conf(mtu=1400))
    c = _links(ctx.netns)["eth0"]["mtu"]
    h = [l["mtu"] for l in _links(ctx.host).values() if l["kind"] == "veth"]
    if c != 1400 or h != [1400]:
        ctx.fail(f"MTU container {c}, host veth {h}; expected 1400 on both")


@case("T110", "MAC from runtimeConfig.mac and from CNI_ARGS MAC=", "spec R6.22, CONVENTIONS mac",
      "set the container MAC from runtimeConfig.mac (capability mac), else args, else CNI_ARGS")
def t110(ctx: Ctx) -> None:
    mac = "c2:11:22:33:44:55"
    doc = ctx.add(ctx.conf(capabilities={"mac": True}, runtimeConfig={"mac": mac}))
    got = _links(ctx.netns)["eth0"]["mac"]
    if got != mac:
        ctx.fail(f"container MAC {got}, runtimeConfig.mac asked {mac}")
    if not any(i.get("name") == "eth0" and i.get("mac") == mac for i in doc.get("interfaces", [])):
        ctx.fail(f"result does not report MAC {mac} for eth0: {doc.get('interfaces')}")
    ns = ctx.container()
    mac2 = "c2:11:22:33:44:66"
    ctx.add(ctx.conf(), "ADD with CNI_ARGS MAC=", cid="c2", netns=ns, args=f"IgnoreUnknown=1;MAC={mac2}")
    if _links(ns)["eth0"]["mac"] != mac2:
        ctx.fail(f"CNI_ARGS MAC={mac2} gave {_links(ns)['eth0']['mac']}")


@case("T111", "invalid option combinations are rejected", "spec R9.8",
      "reject hairpinMode+promiscMode and vlan outside 0..4094 before any side effect")
def t111(ctx: Ctx) -> None:
    for what, over in (("hairpinMode+promiscMode", {"hairpinMode": True, "promiscMode": True}),
                       ("vlan 5000", {"vlan": 5000})):
        expect_error(ctx, ctx.exec(None, "ADD", ctx.conf(**over)), None, f"ADD with {what}")
        if reservations(ctx) or _host_veths(ctx):
            ctx.fail(f"rejected {what} but left reservations {reservations(ctx)} / veths {_host_veths(ctx)}")


@case("T112", "L2-only (no ipam): link up, no ips; 0.2.0 cannot express it", "spec R9.9, R4.18",
      "bring the link up without IPAM; fail conversion to 0.x cleanly and clean up on DEL")
def t112(ctx: Ctx) -> None:
    v = ctx.version()
    conf = ctx.conf(ipam={}, isGateway=False)
    conf.pop("ipam")
    doc = ctx.add(conf)
    if doc.get("ips"):
        ctx.fail(f"L2-only result has ips: {doc['ips']}")
    if "UP" not in _links(ctx.netns)["eth0"]["flags"]:
        ctx.fail("container eth0 is not up in L2 mode")
    if "0.2.0" not in ctx.versions():
        return
    ns = ctx.container()
    old = dict(conf, cniVersion="0.2.0")
    expect_error(ctx, ctx.exec(None, "ADD", old, cid="c2", netns=ns), None, f"L2-only ADD at 0.2.0 ({v} ok)")
    ok_silent(ctx, ctx.exec(None, "DEL", old, cid="c2", netns=ns), "DEL after the failed 0.2.0 ADD")
    if "eth0" in _links(ns):
        ctx.fail("DEL after the failed 0.2.0 ADD left eth0 in the container")


@case("T113", "a non-bridge link with the bridge's name is an error", "spec R9.8",
      "check the link kind before using an existing link as bridge")
def t113(ctx: Ctx) -> None:
    ctx.host.ip("link", "add", ctx.bridge, "type", "veth", "peer", "name", "cnipeer0", check=True)
    expect_error(ctx, ctx.exec(None, "ADD", ctx.conf()), None, "ADD with a veth named like the bridge")
    if reservations(ctx):
        ctx.fail(f"failed ADD kept the reservation {sorted(reservations(ctx))}")


@case("T114", "DEL removes links and the reservation (normal, netns gone, no CNI_NETNS)",
      "spec R2.10, R9.11", "delete the container link (host peer goes with it) and release IPAM in every case")
def t114(ctx: Ctx) -> None:
    conf = ctx.conf()
    ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "DEL")
    if "eth0" in _links(ctx.netns) or _host_veths(ctx) or reservations(ctx):
        ctx.fail(f"after DEL: eth0 {'eth0' in _links(ctx.netns)}, veths {_host_veths(ctx)}, "
                 f"reservations {sorted(reservations(ctx))}")
    ns = ctx.container()
    ctx.add(conf, cid="c2", netns=ns)
    nsmod.delete(ns)
    ok_silent(ctx, ctx.exec(None, "DEL", conf, cid="c2", netns=ns.path), "DEL with the netns gone")
    ns3 = ctx.container()
    ctx.add(conf, cid="c3", netns=ns3)
    ok_silent(ctx, ctx.exec(None, "DEL", conf, cid="c3", unset=["CNI_NETNS"]), "DEL without CNI_NETNS")
    if reservations(ctx):
        ctx.fail(f"reservations left after DELs without a netns: {sorted(reservations(ctx))}")


@case("T115", "CHECK: ok after ADD, error when eth0 is gone or prevResult is missing", "spec R2.16, R9.12",
      "verify the links/addresses of prevResult; require prevResult")
def t115(ctx: Ctx) -> None:
    v = ctx.version()
    if v in ("0.1.0", "0.2.0", "0.3.0", "0.3.1"):
        ctx.skip("CHECK needs >= 0.4.0")
    conf = ctx.conf()
    res = ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "CHECK", dict(conf, prevResult=res)), "CHECK after ADD")
    expect_error(ctx, ctx.exec(None, "CHECK", conf), None, "CHECK without prevResult")
    ctx.netns.ip("link", "del", "eth0", check=True)
    expect_error(ctx, ctx.exec(None, "CHECK", dict(conf, prevResult=res)), None, "CHECK with eth0 deleted")


@case("T116", "STATUS is forwarded to IPAM", "spec R2.35, R7.7", "delegate STATUS; fail when the IPAM binary is missing")
def t116(ctx: Ctx) -> None:
    ctx.need_version("1.1.0", "STATUS (spec 1.1.0)")
    ok_silent(ctx, ctx.exec(None, "STATUS", ctx.conf(version="1.1.0")), "STATUS with host-local")
    r = ctx.exec(None, "STATUS", ctx.conf(version="1.1.0", ipam=ctx.ipam(type="no-such-ipam")))
    if r.rc == 0:
        ctx.fail("STATUS succeeded although the IPAM binary does not exist (not forwarded)")
    expect_error(ctx, r, None, "STATUS with a missing IPAM binary")


@case("T117", "GC releases a vanished container's reservation and masquerade rules",
      "spec R2.23, R7.7 (GC forwarded to IPAM); users #3 (no sweeper for rules)",
      "implement GC: forward to IPAM and remove rules of attachments not in the valid list")
def t117(ctx: Ctx) -> None:
    gc_conf(ctx, None)
    conf = ctx.conf(version="1.1.0", ipMasq=True)
    ns = ctx.container()
    ip = result_ips(ctx.add(conf, cid="gone", netns=ns))[0]
    keep = result_ips(ctx.add(conf, cid="kept"))[0]
    nsmod.delete(ns)
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, [("kept", "eth0")]) | {"ipMasq": True, "type": "bridge",
                                                                           "bridge": ctx.bridge}),
              "GC keeping 'kept'")
    owners = {v.split()[0] for v in reservations(ctx).values() if v}
    if "gone" in owners:
        ctx.fail("GC left the vanished container's reservation (GC not forwarded to IPAM)")
    if "kept" not in owners:
        ctx.fail("GC released the reservation of a valid attachment")
    if _rules_with(ctx, ip):
        ctx.fail(f"GC left masquerade rules for {ip}: {_rules_with(ctx, ip)[:3]}")
    if not _rules_with(ctx, keep):
        ctx.fail(f"GC removed the masquerade rules of the valid attachment {keep}")


@case("T118", "config dns overrides IPAM dns", "spec R9.9", "copy the config's dns into the result when set")
def t118(ctx: Ctx) -> None:
    rc = ctx.tmp / "resolv.conf"
    rc.write_text("nameserver 1.1.1.1\n")
    doc = ctx.add(ctx.conf(dns={"nameservers": ["9.9.9.9"]}, ipam=ctx.ipam(resolvConf=str(rc))))
    if doc.get("dns", {}).get("nameservers") != ["9.9.9.9"]:
        ctx.fail(f"result dns {doc.get('dns')}, expected nameservers ['9.9.9.9'] from the config")


SERVER = ("import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
          "s.bind(('0.0.0.0',5701));s.listen(1);print('ready',flush=True)\ns.settimeout(15)\n"
          "c,a=s.accept();d=c.recv(64);c.sendall(b'pong:'+d);c.close()\n")
CLIENT = ("import socket,sys\nc=socket.create_connection((sys.argv[1],5701),timeout=10)\n"
          "c.sendall(b'ping');print(c.recv(64).decode())\n")


def tcp_roundtrip(ctx: Ctx, server_ns: nsmod.NetNS, client_ns: nsmod.NetNS, ip: str) -> str:
    """Start a TCP server in one netns, connect from the other; returns '' or a problem."""
    srv = subprocess.Popen(server_ns.wrap([sys.executable, "-c", SERVER]), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    ctx.procs.append(srv)  # type: ignore[arg-type]
    line = srv.stdout.readline() if srv.stdout else ""
    if "ready" not in line:
        return f"server did not start: {srv.stderr.read() if srv.stderr else ''}"
    try:
        out = client_ns.run([sys.executable, "-c", CLIENT, ip], timeout=20)
    except subprocess.TimeoutExpired:
        return "client timed out"
    if out.stdout.strip() != "pong:ping":
        return f"client got {out.stdout.strip()!r} {out.stderr.strip()[-200:]!r}"
    return ""


@case("X21", "two containers on the bridge talk over TCP", "spec R9.9 (connectivity); T119",
      "enslave both host veths to the bridge, up, with addresses in the subnet")
def x21(ctx: Ctx) -> None:
    conf = ctx.conf()
    a, b = ctx.container(), ctx.container()
    ip_a = result_ips(ctx.add(conf, cid="ca", netns=a))[0].split("/")[0]
    ctx.add(conf, cid="cb", netns=b)
    problem = tcp_roundtrip(ctx, a, b, ip_a)
    if problem:
        ctx.fail(f"TCP from container b to {ip_a}:5701 in container a failed: {problem}")


@case("X22", "ipMasq rules exist after ADD and are gone after DEL", "spec R9.9 ipMasq; users #8",
      "install masquerade for the container address on ADD and remove every rule/chain on DEL")
def x22(ctx: Ctx) -> None:
    conf = ctx.conf(ipMasq=True)
    ctx.host  # make the namespace first so the baseline includes its default tables
    before = firewall_rules(ctx)
    ip = result_ips(ctx.add(conf))[0]
    if not _rules_with(ctx, ip):
        ctx.fail(f"no iptables/nft rule mentions {ip} after ADD with ipMasq")
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "DEL")
    left = sorted(r for r in firewall_rules(ctx) - before if not r.endswith("{"))
    if _rules_with(ctx, ip) or any(r.startswith(":CNI-") for r in left):
        ctx.fail(f"rules left after DEL: {left[:5]}")


def _masq_after_del(ctx: Ctx, how: str) -> None:
    conf = ctx.conf(ipMasq=True)
    ns = ctx.container()
    ip = result_ips(ctx.add(conf, netns=ns))[0]
    if how == "gone":
        nsmod.delete(ns)
        r = ctx.exec(None, "DEL", conf, netns=ns.path)
    else:
        r = ctx.exec(None, "DEL", conf, netns="")
    ok_silent(ctx, r, f"DEL ({how})")
    if _rules_with(ctx, ip):
        ctx.fail(f"masquerade rules for {ip} leaked after DEL with {how}: {_rules_with(ctx, ip)[:3]}")


@case("X23", "DEL without CNI_NETNS still removes masquerade rules", "users #4 (plugins#810, nerdctl#1872)",
      "tear down ipMasq from prevResult/stored state when CNI_NETNS is empty")
def x23(ctx: Ctx) -> None:
    _masq_after_del(ctx, "empty CNI_NETNS")


@case("X24", "DEL after the netns vanished still removes masquerade rules", "users #4; spec R2.10",
      "do not depend on reading the container link to find the rules to delete")
def x24(ctx: Ctx) -> None:
    _masq_after_del(ctx, "gone")


@case("X25", "nothing is left after DEL (links, rules, reservations)", "spec R2.8; users-and-peers §3",
      "undo every modification of ADD on DEL")
def x25(ctx: Ctx) -> None:
    conf = ctx.conf(ipMasq=True, isDefaultGateway=True)
    ctx.host.ip("link", "add", ctx.bridge, "type", "bridge", check=True)  # the bridge may stay
    before = snapshot(ctx)
    nss = [ctx.container() for _ in range(3)]
    for i, ns in enumerate(nss):
        ctx.add(conf, cid=f"c{i}", netns=ns)
    for i, ns in enumerate(nss):
        ok_silent(ctx, ctx.exec(None, "DEL", conf, cid=f"c{i}", netns=ns), f"DEL c{i}")
    problems = leaks_after(ctx, before)
    if problems:
        ctx.fail("; ".join(problems))


@case("X26", "DEL of one interface keeps the other interface's masquerade", "spec R2.6 (state keyed by "
      "network, container, ifname); reference A.7 shares one chain per container",
      "key masquerade state by (network, container, ifname)")
def x26(ctx: Ctx) -> None:
    conf = ctx.conf(ipMasq=True)
    ip0 = result_ips(ctx.add(conf, ifname="eth0"))[0]
    ip1 = result_ips(ctx.add(conf, ifname="eth1"))[0]
    if ip0 == ip1:
        ctx.fail(f"eth0 and eth1 got the same address {ip0}")
    ok_silent(ctx, ctx.exec(None, "DEL", conf, ifname="eth0"), "DEL eth0")
    if not _rules_with(ctx, ip1):
        ctx.fail(f"DEL of eth0 removed the masquerade of eth1 ({ip1})")
    if _rules_with(ctx, ip0):
        ctx.fail(f"DEL of eth0 left its masquerade ({ip0})")


def _fake_ipam(ctx: Ctx, body: str) -> str:
    d = ctx.tmp / "fakebin"
    d.mkdir(exist_ok=True)
    f = d / "fakeipam"
    f.write_text("#!/bin/sh\n" + body)
    f.chmod(0o755)
    return f"{d}:{ctx.target.plugin_dir}"


@case("T120", "the delegate gets identical stdin and env (only CNI_COMMAND set per verb)",
      "spec R7.3, R7.4, P9", "exec IPAM with your exact stdin bytes and environment")
def t120(ctx: Ctx) -> None:
    rec = ctx.tmp / "rec"
    rec.mkdir()
    path = _fake_ipam(ctx, f'd={rec}\ncat > "$d/stdin.$CNI_COMMAND"\nenv | grep "^CNI_" | sort > '
                           f'"$d/env.$CNI_COMMAND"\nexec {ctx.target.binary("host-local")} < "$d/stdin.$CNI_COMMAND"\n')
    conf = ctx.conf(ipam=ctx.ipam(type="fakeipam"))
    stdin = json.dumps(conf).encode()
    for verb in ("ADD", "DEL"):
        env = ctx.env(verb, path=path, args="IgnoreUnknown=1;K8S_POD_NAME=p")
        r = ctx.exec(None, verb, stdin=stdin, env=env)
        if r.rc != 0:
            ctx.fail(f"{verb} through the recording IPAM failed: {r.brief()}")
        got = rec / f"stdin.{verb}"
        if not got.exists():
            ctx.fail(f"{verb} was not delegated to IPAM")
        if got.read_bytes() != stdin:
            ctx.fail(f"{verb}: IPAM stdin differs from the plugin's stdin "
                     f"({len(got.read_bytes())} vs {len(stdin)} bytes)")
        want = sorted(f"{k}={v}" for k, v in env.items() if k.startswith("CNI_"))
        seen = (rec / f"env.{verb}").read_text().splitlines()
        if seen != want:
            ctx.fail(f"{verb}: IPAM env {seen} differs from the plugin's {want}")


@case("T121", "an IPAM result without cniVersion is taken as the config version", "spec R5.4 (cni#895)",
      "assume the config version when the delegate's result lacks cniVersion")
def t121(ctx: Ctx) -> None:
    path = _fake_ipam(ctx, 'cat >/dev/null\nif [ "$CNI_COMMAND" = ADD ]; then\n'
                           'printf \'{"ips":[{"address":"10.88.0.5/24","gateway":"10.88.0.1"}]}\'\nfi\nexit 0\n')
    conf = ctx.conf(ipam={"type": "fakeipam"})
    doc = ok_result(ctx, ctx.exec(None, "ADD", conf, path=path), conf["cniVersion"], "ADD via fake IPAM")
    if result_ips(doc) != ["10.88.0.5/24"] or _addr(ctx, ctx.netns) != ["10.88.0.5/24"]:
        ctx.fail(f"expected 10.88.0.5/24 from the IPAM result; result {result_ips(doc)}, "
                 f"container {_addr(ctx, ctx.netns)}")


@case("T122", "a delegate's code 11 reaches the runtime unchanged", "spec R7.6, §3 code 11",
      "pass the delegate's error object through")
def t122(ctx: Ctx) -> None:
    path = _fake_ipam(ctx, 'cat >/dev/null\nprintf \'{"code":11,"msg":"try again later"}\'\nexit 1\n')
    conf = ctx.conf(ipam={"type": "fakeipam"})
    doc = expect_error(ctx, ctx.exec(None, "ADD", conf, path=path), [11], "ADD when IPAM says 11")
    if "try again later" not in doc["msg"]:
        ctx.fail(f"delegate msg lost: {doc['msg']!r}")
    if _host_veths(ctx):
        ctx.warn(f"failed ADD left host veths {_host_veths(ctx)}")


@case("X28", "CHECK works for an L2-only bridge (no ipam)", "spec R2.16, R2.17; users #18 (CHECK fails on "
      "correct setups); reference A.9 delegates CHECK to an empty ipam type",
      "skip IPAM CHECK when no ipam is configured; check links only")
def x28(ctx: Ctx) -> None:
    v = ctx.version()
    if v in ("0.1.0", "0.2.0", "0.3.0", "0.3.1"):
        ctx.skip("CHECK needs >= 0.4.0")
    conf = ctx.conf(isGateway=False)
    conf.pop("ipam")
    res = ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "CHECK", dict(conf, prevResult=res)), "CHECK of an L2-only attachment")
