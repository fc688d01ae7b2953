"""DEL idempotency, CHECK, GC, STATUS and the error object (spec §2.2–2.6, §3; T26–T29, T60–T79)."""
from __future__ import annotations

import json

from . import generic
from ._common import SPEC_CODES, Ctx, expect_error, nsmod, ok_silent, parse_error, reservations

DEL_FIX = "make DEL best effort: succeed when things are already gone, and release the IPAM state"
GC_KEY, GC_OLD_KEY = "cni.dev/valid-attachments", "cni.dev/attachments"


def _released(ctx: Ctx, what: str) -> None:
    left = reservations(ctx)
    if left:
        ctx.fail(f"{what}: DEL succeeded but the reservation(s) {sorted(left)} were not released")


def _need_prev(ctx: Ctx) -> str:
    v = ctx.version()
    if v in ("0.1.0", "0.2.0", "0.3.0", "0.3.1"):
        ctx.skip(f"needs cniVersion >= 0.4.0 (plugin's best is {v})")
    return v


def gc_conf(ctx: Ctx, valid: list[tuple[str, str]] | None, keys=(GC_KEY, GC_OLD_KEY)) -> dict:
    ctx.need_version("1.1.0", "GC (spec 1.1.0)")
    conf = ctx.conf(version="1.1.0")
    if valid is not None:
        for k in keys:
            conf[k] = [{"containerID": c, "ifname": i} for c, i in valid]
    return conf


# ------------------------------------------------------------------ DEL

@generic("T60", "del", "DEL of a container never added", "spec R2.10, R2.11", DEL_FIX)
def t60(ctx: Ctx) -> None:
    ok_silent(ctx, ctx.exec(None, "DEL", ctx.conf(), cid="never-added"), "DEL of an unknown container")


@generic("T61", "del", "DEL twice", "spec R2.11", DEL_FIX)
def t61(ctx: Ctx) -> None:
    conf = ctx.conf()
    ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "first DEL")
    _released(ctx, "first DEL")
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "second DEL")


@generic("T62", "del", "DEL after the netns is gone", "spec R2.10 (release IPAM even without netns)", DEL_FIX)
def t62(ctx: Ctx) -> None:
    conf = ctx.conf()
    ns = ctx.container()
    ctx.add(conf, netns=ns)
    nsmod.delete(ns)
    ok_silent(ctx, ctx.exec(None, "DEL", conf, netns=ns.path), "DEL with a vanished netns")
    _released(ctx, "DEL with a vanished netns")


@generic("T63", "del", "DEL with CNI_NETNS empty", "spec §1.2, R2.8 (nerdctl/ctr do this)", DEL_FIX)
def t63(ctx: Ctx) -> None:
    conf = ctx.conf()
    ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "DEL", conf, netns=""), "DEL with CNI_NETNS=''")
    _released(ctx, "DEL with CNI_NETNS=''")


@generic("T64", "del", "DEL with and without prevResult", "spec R2.9", DEL_FIX)
def t64(ctx: Ctx) -> None:
    v = _need_prev(ctx)
    conf = ctx.conf()
    ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "DEL without prevResult")
    _released(ctx, "DEL without prevResult")
    ns = ctx.container()
    res = ctx.add(conf, cid="ctr2", netns=ns)
    ok_silent(ctx, ctx.exec(None, "DEL", dict(conf, prevResult=res), cid="ctr2", netns=ns),
              f"DEL with the ADD result as prevResult ({v})")
    _released(ctx, "DEL with prevResult")


@generic("T65", "del", "DEL with an empty or foreign prevResult", "spec R2.9, R2.10 (warn-only)",
         "do not let a broken prevResult stop DEL from releasing resources")
def t65(ctx: Ctx) -> None:
    _need_prev(ctx)
    conf = ctx.conf()
    for i, prev in enumerate(({}, {"cniVersion": "0.2.0", "ip4": {"ip": "192.0.2.1/24"}})):
        ns = ctx.container()
        ctx.add(conf, cid=f"c{i}", netns=ns)
        r = ctx.exec(None, "DEL", dict(conf, prevResult=prev), cid=f"c{i}", netns=ns)
        if r.rc != 0:
            expect_error(ctx, r, None, f"DEL with prevResult {prev}")
            ctx.warn(f"DEL with prevResult {json.dumps(prev)} failed: {r.brief()}")
            ok_silent(ctx, ctx.exec(None, "DEL", conf, cid=f"c{i}", netns=ns), "DEL retried without prevResult")
        _released(ctx, f"DEL with prevResult {prev}")


# ------------------------------------------------------------------ CHECK

@generic("T66", "check", "CHECK right after ADD", "spec R2.16, R2.17",
         "CHECK must succeed silently for a healthy attachment")
def t66(ctx: Ctx) -> None:
    _need_prev(ctx)
    conf = ctx.conf()
    res = ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "CHECK", dict(conf, prevResult=res)), "CHECK after ADD")


@generic("T67", "check", "CHECK repeated 5 times right after ADD", "spec R2.16 (tolerate convergence)",
         "do not fail CHECK while the attachment is still settling")
def t67(ctx: Ctx) -> None:
    _need_prev(ctx)
    conf = ctx.conf()
    res = ctx.add(conf)
    for i in range(5):
        ok_silent(ctx, ctx.exec(None, "CHECK", dict(conf, prevResult=res)), f"CHECK #{i + 1}")


@generic("T68", "check", "CHECK after DEL fails", "spec R2.16 (SHOULD fail when its resources are gone)",
         "make CHECK verify that the reservation / links still exist")
def t68(ctx: Ctx) -> None:
    _need_prev(ctx)
    conf = ctx.conf()
    res = ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "DEL")
    r = ctx.exec(None, "CHECK", dict(conf, prevResult=res))
    if r.rc == 0:
        ctx.fail("CHECK succeeded for an attachment that was deleted")
    expect_error(ctx, r, None, "CHECK after DEL")


# ------------------------------------------------------------------ GC

@generic("T26", "gc", "GC with only CNI_COMMAND and CNI_PATH", "spec R2.22, R1.10", "GC needs no attachment variables")
def t26(ctx: Ctx) -> None:
    conf = gc_conf(ctx, [])
    ok_silent(ctx, ctx.exec(None, "GC", conf, env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "CNI_COMMAND": "GC",
                                                    "CNI_PATH": ctx.target.plugin_dir}), "GC")


@generic("T27", "gc", "GC ignores garbage attachment variables", "spec R1.10", "do not validate CNI_CONTAINERID/IFNAME for GC")
def t27(ctx: Ctx) -> None:
    conf = gc_conf(ctx, [])
    ok_silent(ctx, ctx.exec(None, "GC", conf, cid="%%bad", ifname=".."), "GC with garbage env")


@generic("T28", "gc", "GC without CNI_PATH", "spec §1.2 (required for GC)",
         "fail GC without CNI_PATH with error 4 (or work without it)")
def t28(ctx: Ctx) -> None:
    conf = gc_conf(ctx, [])
    r = ctx.exec(None, "GC", conf, unset=["CNI_PATH"])
    if r.rc == 0:
        ctx.warn("GC without CNI_PATH succeeded (spec lists CNI_PATH as required for GC)")
        return
    expect_error(ctx, r, [4], "GC without CNI_PATH", mention=["CNI_PATH"])


@generic("T70", "gc", "GC with an empty valid list", "spec R2.22–R2.24", "accept GC with cni.dev/valid-attachments: []")
def t70(ctx: Ctx) -> None:
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, [])), "GC with []")


@generic("T71", "gc", "GC with the key absent, null, or only the old key", "spec A7, R2.28",
         "treat an absent/null list as empty and read cni.dev/attachments as a fallback")
def t71(ctx: Ctx) -> None:
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, None)), "GC without the key")
    conf = gc_conf(ctx, None)
    conf[GC_KEY] = None
    ok_silent(ctx, ctx.exec(None, "GC", conf), "GC with null")
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, [], keys=(GC_OLD_KEY,))), "GC with only cni.dev/attachments")


@generic("T74", "gc", "GC twice in a row", "spec R2.24", "GC must be idempotent")
def t74(ctx: Ctx) -> None:
    conf = gc_conf(ctx, [])
    ok_silent(ctx, ctx.exec(None, "GC", conf), "first GC")
    ok_silent(ctx, ctx.exec(None, "GC", conf), "second GC")


@generic("X02", "gc", "GC never frees a live attachment", "spec R2.23; users-and-peers §3, whereabouts#176",
         "release only attachments absent from cni.dev/valid-attachments")
def x02(ctx: Ctx) -> None:
    conf = gc_conf(ctx, None)
    live = [("c1", "eth0"), ("c2", "eth0"), ("c2", "eth1")]
    results = {}
    nss = {"c1": ctx.container(), "c2": ctx.container()}
    for cid, ifn in live:
        results[(cid, ifn)] = ctx.add(conf, cid=cid, ifname=ifn, netns=nss[cid])
    before = reservations(ctx)
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, live)), "GC with every attachment valid")
    after = reservations(ctx)
    if before != after:
        ctx.fail(f"GC with all attachments valid changed reservations: {sorted(before)} -> {sorted(after)}")
    for (cid, ifn), res in results.items():
        ok_silent(ctx, ctx.exec(None, "CHECK", dict(conf, prevResult=res), cid=cid, ifname=ifn,
                                netns=nss[cid]), f"CHECK {cid}/{ifn} after GC")


@generic("X03", "gc", "GC releases attachments missing from the valid list", "spec R2.23, R7.7 (GC forwarded to IPAM); "
         "users-and-peers #2/#3", "implement GC: release reservations (and rules) of attachments not listed")
def x03(ctx: Ctx) -> None:
    conf = gc_conf(ctx, None)
    n1, n2 = ctx.container(), ctx.container()
    r1 = ctx.add(conf, cid="c1", netns=n1)
    ctx.add(conf, cid="c2", netns=n2)
    ok_silent(ctx, ctx.exec(None, "GC", gc_conf(ctx, [("c1", "eth0")])), "GC keeping c1 only")
    owners = {v.split()[0] if v else "" for v in reservations(ctx).values()}
    if "c2" in owners:
        ctx.fail("GC succeeded but c2's reservation (not in the valid list) is still there: GC is a no-op")
    if "c1" not in owners:
        ctx.fail("GC released c1's reservation although c1/eth0 was in the valid list")
    ok_silent(ctx, ctx.exec(None, "CHECK", dict(conf, prevResult=r1), cid="c1", netns=n1), "CHECK c1 after GC")


# ------------------------------------------------------------------ STATUS

@generic("T29", "status", "STATUS on a healthy plugin", "spec R2.31, R2.32", "implement STATUS: exit 0, no output, when ADD can work")
def t29(ctx: Ctx) -> None:
    ctx.need_version("1.1.0", "STATUS (spec 1.1.0)")
    conf = ctx.conf(version="1.1.0")
    ok_silent(ctx, ctx.exec(None, "STATUS", conf, env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                                                        "CNI_COMMAND": "STATUS",
                                                        "CNI_PATH": ctx.target.plugin_dir}), "STATUS")


@generic("T76", "status", "STATUS reports an exhausted range with 50/51", "spec R2.32, R2.33 (other codes: fail)",
         "answer STATUS with error 50 when no address is left")
def t76(ctx: Ctx) -> None:
    ctx.need_version("1.1.0", "STATUS (spec 1.1.0)")
    conf = ctx.conf(version="1.1.0", ipam=ctx.ipam(rangeStart="10.88.0.10", rangeEnd="10.88.0.10"))
    ctx.add(conf)
    r = ctx.exec(None, "STATUS", conf)
    if r.rc == 0:
        ok_silent(ctx, r, "STATUS")
        ctx.warn("STATUS says ready although the only range is exhausted (should be error 50)")
        return
    expect_error(ctx, r, [50, 51], "STATUS with an exhausted range")


@generic("T77", "status", "ADD/DEL keep working after a failed STATUS", "spec R2.34",
         "never make other verbs depend on STATUS")
def t77(ctx: Ctx) -> None:
    ctx.need_version("1.1.0", "STATUS (spec 1.1.0)")
    conf = ctx.conf(version="1.1.0", ipam=ctx.ipam(rangeStart="10.88.0.10", rangeEnd="10.88.0.10"))
    ctx.add(conf)
    ctx.exec(None, "STATUS", conf)
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "DEL after STATUS")
    ns = ctx.container()
    ctx.add(conf, "ADD after STATUS and DEL", cid="ctr2", netns=ns)
    ok_silent(ctx, ctx.exec(None, "DEL", conf, cid="ctr2", netns=ns), "DEL ctr2")


# ------------------------------------------------------------------ error object

@generic("T79", "errors", "error object shape on stdout", "spec R3.1–R3.5, A4 (cniVersion optional: warn)",
         "print {cniVersion, code, msg[, details]} on stdout and exit non-zero")
def t79(ctx: Ctx) -> None:
    r = ctx.exec(None, "ADD", stdin=b"{bad")
    doc, problem = parse_error(r)
    if problem:
        ctx.fail(f"bad JSON: {problem} ({r.brief()})")
    assert doc is not None
    extra = set(doc) - {"cniVersion", "code", "msg", "details"}
    if extra:
        ctx.fail(f"error object has keys outside the spec: {sorted(extra)}")
    if not doc["msg"]:
        ctx.fail("error msg is empty")
    r2 = ctx.exec(None, "ADD", ctx.conf(name="bad/name"))
    doc2, problem = parse_error(r2)
    if problem:
        ctx.fail(f"bad name: {problem} ({r2.brief()})")
    assert doc2 is not None
    if "cniVersion" not in doc2:
        ctx.warn("error objects carry no cniVersion (spec wants it; the reference omits it)")
    elif doc2["cniVersion"] != ctx.version():
        ctx.warn(f"error cniVersion {doc2['cniVersion']!r} differs from the config's {ctx.version()!r}")


@generic("X04", "errors", "ADD into the plugin's own netns is refused without side effects",
         "ref R1.16/A11 (code 8; warn-only); project rule: bad input changes nothing",
         "compare CNI_NETNS with your own netns before doing any work")
def x04(ctx: Ctx) -> None:
    before = set(nsmod.links(ctx.host))
    r = ctx.exec(None, "ADD", ctx.conf(), netns=ctx.host.path)
    if r.rc == 0:
        ctx.warn("ADD with CNI_NETNS = the plugin's own netns was accepted (newer reference skel refuses "
                 "it with code 8)")
    else:
        expect_error(ctx, r, SPEC_CODES | {8}, "ADD with CNI_NETNS = the plugin's own netns")
    left = reservations(ctx)
    new_links = set(nsmod.links(ctx.host)) - before - {ctx.bridge}
    if left or new_links:
        ctx.warn(f"side effects of the own-netns ADD: reservations {sorted(left)}, "
                 f"links {sorted(new_links)} left behind")
