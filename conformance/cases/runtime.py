"""The plugins under a libcni-like runtime (conformance.runtime): conflists, version negotiation,
capabilities, cached results for CHECK/DEL, GC of stale cached attachments (spec §8; T123–T127).

The runtime driver execs plugins directly, so each case gives it a bin dir of tiny wrappers that
enter the case's host namespace first: nothing runs in the machine's root namespace.
"""
from __future__ import annotations

import json
from typing import Any

from . import specific
from ._common import BASE_PATH, Ctx, leaks_after, nsmod, reservations, result_ips, snapshot


def case(tid: str, title: str, clause: str, fix: str):
    return specific(tid, "bridge", "runtime", title, clause, fix, "bridge")


def _runtime(ctx: Ctx) -> Any:
    from ..runtime import Runtime

    wrap = ctx.tmp / "rtbin"
    wrap.mkdir(exist_ok=True)
    for name in ("bridge", "host-local"):
        f = wrap / name
        f.write_text(f"#!/bin/sh\nexec nsenter --net={ctx.host.path} -- {ctx.target.binary(name)}\n")
        f.chmod(0o755)
    return Runtime([str(wrap)], cache_dir=str(ctx.tmp / "cache"), timeout=ctx.target.timeout,
                   env={**ctx.target.pass_env, "PATH": BASE_PATH})


def _net(ctx: Ctx, plugin: dict[str, Any], **top: Any) -> Any:
    from ..netconf import conflist_from_bytes

    doc = {"cniVersion": ctx.version(), "name": ctx.net, **top, "plugins": [plugin]}
    return conflist_from_bytes(json.dumps(doc).encode())


def _bridge_plugin(ctx: Ctx, **over: Any) -> dict[str, Any]:
    conf = ctx.conf()
    for k in ("cniVersion", "name"):
        conf.pop(k)
    conf.update(over)
    return conf


def _call(ctx: Ctx, what: str, fn: Any, *args: Any) -> Any:
    from shared.errors import CNIError

    try:
        return fn(*args)
    except CNIError as e:
        ctx.fail(f"{what} through the runtime failed: code {e.code}: {e}")


@case("R01", "ADD, CHECK and DEL through a libcni-like runtime with its result cache",
      "spec R8.5–R8.7 (T124, T127); R2.15 (CHECK gets the cached result)",
      "accept the cached final result as prevResult on CHECK and DEL; clean up everything")
def r01(ctx: Ctx) -> None:
    from ..runtime import Attachment

    if ctx.version() in ("0.1.0", "0.2.0", "0.3.0", "0.3.1"):
        ctx.skip("needs >= 0.4.0 for CHECK and cached DEL")
    rt = _runtime(ctx)
    net = _net(ctx, _bridge_plugin(ctx, ipMasq=True))
    ctx.host.ip("link", "add", ctx.bridge, "type", "bridge", check=True)
    before = snapshot(ctx)
    att = Attachment("rt1", ctx.netns.path, "eth0")
    out = _call(ctx, "ADD", rt.add, net, att)
    cache = ctx.tmp / "cache" / "results" / f"{ctx.net}-rt1-eth0"
    if not cache.is_file() or json.loads(cache.read_text()).get("kind") != "cniCacheV1":
        ctx.fail(f"runtime cache {cache} missing or not cniCacheV1 (driver problem)")
    if not out.raw or not out.raw.get("ips"):
        ctx.fail(f"ADD result through the runtime has no ips: {out.raw}")
    _call(ctx, "CHECK", rt.check, net, att)
    _call(ctx, "DEL", rt.delete, net, att)
    if cache.exists():
        ctx.fail("the runtime kept the cache file after a successful DEL (driver problem)")
    problems = leaks_after(ctx, before)
    if problems:
        ctx.fail("after runtime DEL: " + "; ".join(problems))


@case("R02", "a conflist listing cniVersions up to 2.0.0 negotiates 1.1.0 and works",
      "spec R5.5, R6.2 (T126)", "support 1.1.0: runtimes pick the highest version they implement")
def r02(ctx: Ctx) -> None:
    from ..runtime import Attachment

    rt = _runtime(ctx)
    net = _net(ctx, _bridge_plugin(ctx), cniVersion="0.3.1", cniVersions=["0.4.0", "1.0.0", "1.1.0", "2.0.0"])
    if net.cni_version != "1.1.0":
        ctx.fail(f"driver negotiated {net.cni_version}, expected 1.1.0 (driver problem)")
    out = _call(ctx, "ADD at the negotiated 1.1.0", rt.add, net, Attachment("rt2", ctx.netns.path))
    if (out.raw or {}).get("cniVersion") != "1.1.0":
        ctx.fail(f"result cniVersion {(out.raw or {}).get('cniVersion')!r}, expected 1.1.0")
    _call(ctx, "DEL", rt.delete, net, Attachment("rt2", ctx.netns.path))


@case("R03", "capabilities become runtimeConfig: mac and ips reach bridge and host-local",
      "spec R6.14, R8.3 (T123), CONVENTIONS mac/ips", "read runtimeConfig.mac and runtimeConfig.ips")
def r03(ctx: Ctx) -> None:
    from ..runtime import Attachment

    rt = _runtime(ctx)
    net = _net(ctx, _bridge_plugin(ctx, capabilities={"mac": True, "ips": True}))
    mac, ip = "c2:11:22:33:44:77", "10.88.0.77/24"
    att = Attachment("rt3", ctx.netns.path, capability_args={"mac": mac, "ips": [ip],
                                                             "portMappings": [{"hostPort": 1}]})
    out = _call(ctx, "ADD with capability args", rt.add, net, att)
    if result_ips(out.raw or {}) != [ip]:
        ctx.fail(f"runtimeConfig.ips [{ip}] gave {result_ips(out.raw or {})}")
    got = nsmod.links(ctx.netns).get("eth0", {}).get("mac")
    if got != mac:
        ctx.fail(f"runtimeConfig.mac {mac} gave container MAC {got}")


@case("R04", "runtime GC: stale cached attachment DEL'd, plugins GC'd, live one untouched",
      "spec R8.8, R2.23 (GC never frees a live attachment)",
      "support GC 1.1.0 and keep valid attachments intact")
def r04(ctx: Ctx) -> None:
    from ..runtime import Attachment

    ctx.need_version("1.1.0", "GC (spec 1.1.0)")
    rt = _runtime(ctx)
    net = _net(ctx, _bridge_plugin(ctx, ipMasq=True), cniVersion="1.1.0")
    gone_ns = ctx.container()
    live, gone = Attachment("live", ctx.netns.path), Attachment("gone", gone_ns.path)
    live_ip = result_ips(_call(ctx, "ADD live", rt.add, net, live).raw)[0]
    _call(ctx, "ADD gone", rt.add, net, gone)
    nsmod.delete(gone_ns)
    _call(ctx, "GC keeping live/eth0", rt.gc, net, [("live", "eth0")])
    owners = {v.split()[0] for v in reservations(ctx).values() if v}
    if owners != {"live"}:
        ctx.fail(f"after runtime GC the reservations belong to {sorted(owners)}, expected only 'live'")
    _call(ctx, "CHECK live after GC", rt.check, net, live)
    if not live_ip:
        ctx.fail("live attachment has no address")


@case("R05", "runtime STATUS at 1.1.0", "spec R2.31, R8.9", "implement STATUS (forwarded to IPAM)")
def r05(ctx: Ctx) -> None:
    ctx.need_version("1.1.0", "STATUS (spec 1.1.0)")
    rt = _runtime(ctx)
    out = _call(ctx, "STATUS", rt.status, _net(ctx, _bridge_plugin(ctx), cniVersion="1.1.0"))
    if out.skipped:
        ctx.fail(f"STATUS was not executed: {out.skipped}")
    if len(out.calls) != 1:
        ctx.fail(f"expected one STATUS call, runtime made {len(out.calls)}")
