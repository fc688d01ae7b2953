"""host-local specifics: allocation, on-disk reservations, requests, exhaustion, release, GC
(spec §9.1 R9.1–R9.7; test ideas T72–T73, T82–T101; users-and-peers #2, #7)."""
from __future__ import annotations

import time
from ipaddress import ip_interface

from . import specific
from ._common import Ctx, expect_error, ok_result, ok_silent, reservations, result_ips
from .lifecycle import gc_conf

HL = "host-local"


def case(tid: str, title: str, clause: str, fix: str):
    return specific(tid, "ipam", "ipam", title, clause, fix, HL)


def _ips(ctx: Ctx, conf: dict, what: str, **kw) -> list[str]:
    r = ctx.exec(None, "ADD", conf, **kw)
    return result_ips(ok_result(ctx, r, conf["cniVersion"], what))


def _err_pref(ctx: Ctx, conf: dict, what: str, preferred: int | None = 7, **kw) -> None:
    """Any error JSON passes; a code other than the preferred one (if any) is a warning."""
    before = reservations(ctx)
    r = ctx.exec(None, "ADD", conf, **kw)
    doc = expect_error(ctx, r, None, what)
    if preferred is not None and doc["code"] != preferred:
        ctx.warn(f"{what}: code {doc['code']} (spec example wants {preferred}): {doc['msg']!r}")
    after = reservations(ctx)
    if after != before:
        ctx.fail(f"{what}: rejected, but reservations changed {sorted(before)} -> {sorted(after)}")


def _owner(content: str) -> tuple[str, str]:
    parts = content.replace("\r\n", "\n").split("\n")
    return parts[0].strip(), (parts[1].strip() if len(parts) > 1 else "")


@case("T82", "first ADD gets network+2 with gateway network+1", "spec R9.3, R9.6",
      "default rangeStart to network+1, skip the gateway, prefix from the subnet")
def t82(ctx: Ctx) -> None:
    conf = ctx.conf()
    doc = ctx.add(conf)
    if result_ips(doc) != ["10.88.0.2/24"]:
        ctx.fail(f"first address should be 10.88.0.2/24, got {result_ips(doc)}")
    gw = doc.get("ips", [{}])[0].get("gateway") if "ips" in doc else doc.get("ip4", {}).get("gateway")
    if gw != "10.88.0.1":
        ctx.fail(f"gateway should be 10.88.0.1, got {gw!r}")


@case("T83", "reservation files are the reference's on-disk format", "spec R9.5; issue 2 item 4 (drop-in store)",
      "write <dataDir>/<net>/<ip> = '<cid>\\r\\n<ifname>', last_reserved_ip.0 and a lock file")
def t83(ctx: Ctx) -> None:
    ctx.add(ctx.conf())
    f = ctx.net_dir / "10.88.0.2"
    if not f.is_file():
        ctx.fail(f"no reservation file {f} (found {sorted(p.name for p in ctx.net_dir.glob('*'))})")
    if f.read_bytes() != b"ctr1\r\neth0":
        ctx.fail(f"reservation content {f.read_bytes()!r}, expected b'ctr1\\r\\neth0'")
    last = ctx.net_dir / "last_reserved_ip.0"
    if not last.is_file() or last.read_text().strip() != "10.88.0.2":
        ctx.fail(f"last_reserved_ip.0 missing or wrong: {last.read_text() if last.exists() else 'absent'}")
    if not (ctx.net_dir / "lock").exists():
        ctx.fail("no lock file in the network directory (the reference flocks <dataDir>/<net>/lock)")


@case("T84", "allocation is round-robin, not immediate reuse", "spec R9.4 (last_reserved_ip); users #17",
      "continue after the last reserved address instead of reusing a just-freed one")
def t84(ctx: Ctx) -> None:
    conf = ctx.conf()
    a = _ips(ctx, conf, "ADD c1", cid="c1")
    b = _ips(ctx, conf, "ADD c2", cid="c2")
    ok_silent(ctx, ctx.exec(None, "DEL", conf, cid="c1"), "DEL c1")
    c = _ips(ctx, conf, "ADD c3", cid="c3")
    if (a, b, c) != (["10.88.0.2/24"], ["10.88.0.3/24"], ["10.88.0.4/24"]):
        ctx.fail(f"expected .2, .3 then .4 after freeing .2; got {a}, {b}, {c}")


@case("T85", "exhaustion: rangeStart..rangeEnd of two addresses", "spec R9.4",
      "fail with an error naming the exhausted range set and leave no file behind")
def t85(ctx: Ctx) -> None:
    conf = ctx.conf(ipam=ctx.ipam(rangeStart="10.88.0.100", rangeEnd="10.88.0.101"))
    got = _ips(ctx, conf, "ADD c1", cid="c1") + _ips(ctx, conf, "ADD c2", cid="c2")
    if sorted(got) != ["10.88.0.100/24", "10.88.0.101/24"]:
        ctx.fail(f"expected .100 and .101, got {got}")
    _err_pref(ctx, conf, "third ADD on a full range", preferred=None, cid="c3")


@case("T86", "subnets too small to allocate from", "spec R9.2, A23 (code 7 preferred)",
      "reject /31, /32, /127 with error 7 'too small'")
def t86(ctx: Ctx) -> None:
    for subnet in ("10.88.0.0/31", "10.88.0.0/32", "fd00::/127"):
        _err_pref(ctx, ctx.conf(ipam=ctx.ipam(subnet=subnet)), f"subnet {subnet}")


@case("T87", "invalid ranges are rejected", "spec R9.2", "validate subnet/rangeStart/rangeEnd/overlaps/families with error 7")
def t87(ctx: Ctx) -> None:
    bad = {
        "host bits set": ctx.ipam(subnet="10.88.0.5/24"),
        "rangeStart outside the subnet": ctx.ipam(rangeStart="10.99.0.10"),
        "overlapping ranges": ctx.ipam(subnet=None, ranges=[[{"subnet": "10.88.0.0/24"}],
                                                             [{"subnet": "10.88.0.0/25"}]]),
        "mixed families in a set": ctx.ipam(subnet=None, ranges=[[{"subnet": "10.88.0.0/24"},
                                                                   {"subnet": "fd00::/64"}]]),
    }
    for what, ipam in bad.items():
        ipam = {k: v for k, v in ipam.items() if v is not None}
        _err_pref(ctx, ctx.conf(ipam=ipam), what)


@case("T88", "config without ipam is rejected", "spec R9.2", "fail clearly when the 'ipam' key is missing")
def t88(ctx: Ctx) -> None:
    conf = ctx.conf()
    conf.pop("ipam")
    _err_pref(ctx, conf, "ADD without ipam")


@case("T89", "CNI_ARGS IP= requests an address (also with K8S_* args)", "spec R6.18–R6.20",
      "honour IP= and accept the K8S_* keys when IgnoreUnknown=1")
def t89(ctx: Ctx) -> None:
    conf = ctx.conf()
    got = _ips(ctx, conf, "ADD IP=10.88.0.50", cid="c1", args="IP=10.88.0.50")
    if got != ["10.88.0.50/24"]:
        ctx.fail(f"IP=10.88.0.50 gave {got}")
    args = ("IgnoreUnknown=1;IP=10.88.0.51;K8S_POD_NAME=x;K8S_POD_NAMESPACE=y;"
            "K8S_POD_INFRA_CONTAINER_ID=z;K8S_POD_UID=u-1")
    got = _ips(ctx, conf, "ADD with kubelet CNI_ARGS", cid="c2", args=args)
    if got != ["10.88.0.51/24"]:
        ctx.fail(f"IP=10.88.0.51 with kubelet args gave {got}")


@case("T90", "malformed CNI_ARGS are rejected", "spec R6.19", "reject unknown keys without IgnoreUnknown, pairs without '='")
def t90(ctx: Ctx) -> None:
    for args in ("K8S_POD_NAME=x", "IP"):
        _err_pref(ctx, ctx.conf(), f"CNI_ARGS={args!r}", preferred=None, args=args)
    r = ctx.exec(None, "ADD", ctx.conf(), args="IP=10.88.0.7;", cid="c9")
    if r.rc == 0:
        ctx.warn("trailing ';' in CNI_ARGS accepted (the reference rejects it)")
    else:
        expect_error(ctx, r, None, "CNI_ARGS with trailing ';'")


@case("T91", "requested IPs from runtimeConfig.ips and args.cni.ips", "spec R6.17, CONVENTIONS ips",
      "read runtimeConfig.ips (capability ips) and args.cni.ips")
def t91(ctx: Ctx) -> None:
    got = _ips(ctx, ctx.conf(runtimeConfig={"ips": ["10.88.0.60/24"]}), "ADD runtimeConfig.ips", cid="c1")
    if got != ["10.88.0.60/24"]:
        ctx.fail(f"runtimeConfig.ips 10.88.0.60/24 gave {got}")
    got = _ips(ctx, ctx.conf(args={"cni": {"ips": ["10.88.0.61"]}}), "ADD args.cni.ips", cid="c2")
    if got != ["10.88.0.61/24"]:
        ctx.fail(f"args.cni.ips 10.88.0.61 gave {got}")


@case("T92", "impossible requests fail and leave nothing", "spec R9.4",
      "reject a request for the gateway, an address outside every range, or a taken one")
def t92(ctx: Ctx) -> None:
    conf = ctx.conf()
    ctx.add(conf, cid="c0", args="IP=10.88.0.9")
    for what, ip in (("gateway", "10.88.0.1"), ("outside every range", "10.99.0.5"),
                     ("already allocated", "10.88.0.9")):
        _err_pref(ctx, conf, f"request {ip} ({what})", preferred=None, cid="c1", args=f"IP={ip}")


@case("T93", "ADD twice for one (container, ifname) never hands out a second address",
      "spec R2.6, R9.4; users #7 (return the existing lease)",
      "either refuse the duplicate or return the same lease; a different ifname gets its own address")
def t93(ctx: Ctx) -> None:
    conf = ctx.conf()
    first = _ips(ctx, conf, "first ADD")
    r = ctx.exec(None, "ADD", conf)
    if r.rc == 0:
        again = result_ips(ok_result(ctx, r, conf["cniVersion"], "second ADD"))
        if again != first:
            ctx.fail(f"second ADD of the same container/ifname got {again}, first had {first}: "
                     "one attachment now holds two addresses")
    else:
        expect_error(ctx, r, None, "second ADD (duplicate allocation)")
    if len(reservations(ctx)) != 1:
        ctx.fail(f"after two ADDs of one attachment there are {len(reservations(ctx))} reservations")
    other = _ips(ctx, conf, "ADD eth1", ifname="eth1")
    if other == first:
        ctx.fail(f"eth1 of the same container got the same address {other}")


@case("T94", "DEL releases the file; legacy files holding only the id too", "spec R9.7",
      "on DEL remove files whose content is '<cid>\\r\\n<ifname>' or just '<cid>'")
def t94(ctx: Ctx) -> None:
    conf = ctx.conf()
    ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "DEL")
    if reservations(ctx):
        ctx.fail(f"DEL left {reservations(ctx)}")
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "second DEL")
    (ctx.net_dir / "10.88.0.77").write_text("legacy1")
    ok_silent(ctx, ctx.exec(None, "DEL", conf, cid="legacy1"), "DEL of a legacy reservation")
    if (ctx.net_dir / "10.88.0.77").exists():
        ctx.fail("DEL of legacy1 did not remove the legacy file holding only 'legacy1'")


def _dual(ctx: Ctx) -> dict:
    return ctx.ipam(subnet=None, ranges=[[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd00:88::/64"}]])


@case("T95", "dual stack: one address per range set, v4 then v6", "spec R9.4, R9.6",
      "allocate one address from each range set, in set order")
def t95(ctx: Ctx) -> None:
    ipam = {k: v for k, v in _dual(ctx).items() if v is not None}
    got = _ips(ctx, ctx.conf(ipam=ipam), "dual-stack ADD", cid="c1")
    if got != ["10.88.0.2/24", "fd00:88::2/64"]:
        ctx.fail(f"expected ['10.88.0.2/24', 'fd00:88::2/64'], got {got}")
    if "0.2.0" in ctx.versions():
        doc = ctx.add(ctx.conf(version="0.2.0", ipam=ipam), "dual-stack ADD at 0.2.0", cid="c2")
        if "ip4" not in doc or "ip6" not in doc:
            ctx.fail(f"0.2.0 dual-stack result needs ip4 and ip6: {doc}")


@case("T96", "two IPv4 range sets at 0.2.0 are rejected", "spec R9.2", "refuse >1 range set per family below 0.3.0")
def t96(ctx: Ctx) -> None:
    if "0.2.0" not in ctx.versions():
        ctx.skip("0.2.0 not advertised")
    ipam = ctx.ipam(subnet=None, ranges=[[{"subnet": "10.88.0.0/24"}], [{"subnet": "10.89.0.0/24"}]])
    _err_pref(ctx, ctx.conf(version="0.2.0", ipam={k: v for k, v in ipam.items() if v is not None}),
              "two v4 sets at 0.2.0", preferred=None)


@case("T97", "resolvConf becomes the result's dns", "spec R9.1, reference B.5",
      "parse nameserver/search/domain/options from resolvConf")
def t97(ctx: Ctx) -> None:
    rc = ctx.tmp / "resolv.conf"
    rc.write_text("nameserver 1.1.1.1\nsearch a b\ndomain d\noptions ndots:2\n")
    doc = ctx.add(ctx.conf(ipam=ctx.ipam(resolvConf=str(rc))))
    dns = doc.get("dns", {})
    want = {"nameservers": ["1.1.1.1"], "search": ["a", "b"], "domain": "d", "options": ["ndots:2"]}
    for k, v in want.items():
        if dns.get(k) != v:
            ctx.fail(f"dns.{k} should be {v!r}, got {dns.get(k)!r} (dns {dns})")


@case("T98", "ipam routes are copied to the result", "spec R9.6", "copy ipam.routes verbatim into the result")
def t98(ctx: Ctx) -> None:
    routes = [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.88.0.254"}]
    doc = ctx.add(ctx.conf(ipam=ctx.ipam(routes=routes)))
    got = doc.get("routes") if "routes" in doc else doc.get("ip4", {}).get("routes")
    if got != routes:
        ctx.fail(f"routes should be {routes}, got {got}")


@case("T99", "CHECK without prevResult: ok after ADD, error after DEL", "spec R9.7, R2.16",
      "CHECK succeeds iff the attachment's reservation exists")
def t99(ctx: Ctx) -> None:
    conf = ctx.conf()
    ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "CHECK", conf), "CHECK after ADD")
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "DEL")
    expect_error(ctx, ctx.exec(None, "CHECK", conf), None, "CHECK after DEL")


@case("T100", "runtimeConfig.ipRanges take precedence", "spec R9.1, CONVENTIONS ipRanges",
      "prepend runtimeConfig.ipRanges before the configured ranges")
def t100(ctx: Ctx) -> None:
    got = _ips(ctx, ctx.conf(runtimeConfig={"ipRanges": [[{"subnet": "10.20.0.0/24"}]]}), "ADD with ipRanges")
    if not got or ip_interface(got[0]).network.exploded != "10.20.0.0/24":
        ctx.fail(f"first address should come from 10.20.0.0/24, got {got}")


def _three(ctx: Ctx, conf: dict) -> dict[str, str]:
    for cid in ("c1", "c2", "c3"):
        ctx.add(conf, cid=cid)
    return {_owner(v)[0]: k for k, v in reservations(ctx).items()}


@case("T101", "GC releases the stale ones and keeps lock and last_reserved_ip", "spec R2.23; users #2 (PR #1289 traps)",
      "implement GC; never delete lock or last_reserved_ip.*")
def t101(ctx: Ctx) -> None:
    conf = gc_conf(ctx, None)
    owners = _three(ctx, conf)
    extra = {p.name for p in ctx.net_dir.iterdir()} - set(owners.values())
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, [("c2", "eth0")])), "GC keeping c2")
    now = {_owner(v)[0] for v in reservations(ctx).values()}
    if now != {"c2"}:
        ctx.fail(f"after GC keeping only c2 the reservations belong to {sorted(now)}")
    gone = extra - {p.name for p in ctx.net_dir.iterdir()}
    if gone:
        ctx.fail(f"GC deleted bookkeeping files {sorted(gone)}")


@case("T72", "after GC a released attachment can be added again", "spec R2.23, T72",
      "release the file so the address and the attachment are free again")
def t72(ctx: Ctx) -> None:
    conf = gc_conf(ctx, None)
    owners = _three(ctx, conf)
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, [("c1", "eth0")])), "GC keeping c1")
    old_c2 = owners["c2"]
    got = _ips(ctx, conf, f"ADD requesting c2's old address {old_c2}", cid="c4", args=f"IP={old_c2}")
    if got != [f"{old_c2}/24"]:
        ctx.fail(f"requesting {old_c2} after GC gave {got}")
    ctx.add(conf, "re-ADD c2 after GC", cid="c2")


@case("T73", "GC matches on (container, ifname), not container alone", "spec R2.22 (attachment = id + ifname)",
      "compare both containerID and ifname with the valid list")
def t73(ctx: Ctx) -> None:
    conf = gc_conf(ctx, None)
    ctx.add(conf, cid="c1")
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, [("c1", "eth1")])), "GC with c1/eth1 valid")
    if reservations(ctx):
        ctx.fail(f"c1/eth0 survived GC although only c1/eth1 was valid: {reservations(ctx)}")


@case("X10", "GC keeps a legacy file whose container is valid", "users #2 (PR #1289: legacy files)",
      "treat a file holding only '<cid>' as owned by every ifname of that container")
def x10(ctx: Ctx) -> None:
    gc_conf(ctx, None)
    ctx.net_dir.mkdir(parents=True, exist_ok=True)
    (ctx.net_dir / "10.88.0.40").write_text("old1")
    (ctx.net_dir / "10.88.0.41").write_text("old2")
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, [("old1", "eth0")])), "GC keeping old1/eth0")
    if not (ctx.net_dir / "10.88.0.40").exists():
        ctx.fail("GC deleted the legacy reservation of old1, which is a valid container")
    if (ctx.net_dir / "10.88.0.41").exists():
        ctx.fail("GC kept the legacy reservation of old2, which is not valid")


@case("X11", "GC with an empty valid list frees every reservation", "spec R2.28 (empty list is meaningful)",
      "an empty cni.dev/valid-attachments means nothing is valid")
def x11(ctx: Ctx) -> None:
    conf = gc_conf(ctx, None)
    _three(ctx, conf)
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, [])), "GC with []")
    if reservations(ctx):
        ctx.fail(f"GC with an empty valid list kept {sorted(reservations(ctx))}")


@case("X12", "IPv6 /64: requests at the far end, allocation stays fast", "issue 2 item 3; nvidia-k8s-ipam#266",
      "use integer arithmetic; never walk a /64 address by address")
def x12(ctx: Ctx) -> None:
    ipam = ctx.ipam(subnet="fd00:88::/64")
    t0 = time.monotonic()
    got = _ips(ctx, ctx.conf(ipam=ipam), "ADD requesting fd00:88::ffff:ffff:ffff:fffe", cid="c1",
               args="IP=fd00:88::ffff:ffff:ffff:fffe")
    if got != ["fd00:88::ffff:ffff:ffff:fffe/64"]:
        ctx.fail(f"requested fd00:88::ffff:ffff:ffff:fffe, got {got}")
    got = _ips(ctx, ctx.conf(ipam=ipam), "next ADD after the far-end reservation", cid="c2")
    if not got:
        ctx.fail("no address after a far-end reservation")
    if time.monotonic() - t0 > 5:
        ctx.fail(f"two ADDs in a /64 took {time.monotonic() - t0:.1f}s")


@case("X13", "the gateway is never handed out", "spec R9.3", "skip the gateway address while allocating")
def x13(ctx: Ctx) -> None:
    conf = ctx.conf(ipam=ctx.ipam(rangeStart="10.88.0.1", rangeEnd="10.88.0.3"))
    got = _ips(ctx, conf, "ADD c1", cid="c1") + _ips(ctx, conf, "ADD c2", cid="c2")
    if "10.88.0.1/24" in got:
        ctx.fail(f"the gateway 10.88.0.1 was allocated: {got}")
    expect_error(ctx, ctx.exec(None, "ADD", conf, cid="c3"), None, "third ADD (only the gateway left)")


@case("X14", "a dataDir that is a file gives error JSON", "spec §3 (no tracebacks); issue 2 item 6",
      "report an unusable dataDir as a CNI error, not a crash")
def x14(ctx: Ctx) -> None:
    bad = ctx.tmp / "not-a-dir"
    bad.write_text("x")
    r = ctx.exec(None, "ADD", ctx.conf(ipam=ctx.ipam(dataDir=str(bad))))
    expect_error(ctx, r, None, "ADD with dataDir pointing at a file")


@case("X15", "requested IPs in two range sets at once", "spec R9.4 (one request per set)",
      "match each requested IP to the range set holding it")
def x15(ctx: Ctx) -> None:
    ipam = {k: v for k, v in _dual(ctx).items() if v is not None}
    got = _ips(ctx, ctx.conf(ipam=ipam, runtimeConfig={"ips": ["10.88.0.33/24", "fd00:88::33/64"]}),
               "dual-stack ADD with two requested IPs")
    if sorted(got) != ["10.88.0.33/24", "fd00:88::33/64"]:
        ctx.fail(f"requested .33 in both families, got {got}")


@case("X16", "a failing multi-set request releases its partial allocation", "spec R9.4 (all allocations of the call released)",
      "roll back every address allocated by a call that fails")
def x16(ctx: Ctx) -> None:
    ipam = {k: v for k, v in _dual(ctx).items() if v is not None}
    conf = ctx.conf(ipam=ipam, runtimeConfig={"ips": ["10.88.0.34/24", "10.88.0.35/24"]})
    expect_error(ctx, ctx.exec(None, "ADD", conf), None, "two requested IPs for one v4 set")
    if reservations(ctx):
        ctx.fail(f"the failed ADD left {sorted(reservations(ctx))}")
