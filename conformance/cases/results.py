"""ADD results per version, checked structurally and against the project's JSON Schemas
(spec §4; test ideas T51–T59)."""
from __future__ import annotations

from typing import Callable

from . import generic
from ._common import Ctx, expect_error, ok_result

RESULT_FIX = "build the result in exactly the config's cniVersion format (spec §4)"


def _at(ctx: Ctx, version: str) -> dict:
    if version not in ctx.versions():
        ctx.skip(f"plugin does not advertise {version} (see X01/T06)")
    conf = ctx.conf(version=version)
    return ok_result(ctx, ctx.exec(None, "ADD", conf), version, f"ADD at {version}")


def _family_ok(ctx: Ctx, doc: dict, version: str) -> None:
    ips = doc.get("ips") if "ips" in doc else None
    if version.startswith(("0.3", "0.4", "1.")) and not ips:
        ctx.fail(f"ADD at {version} with host-local IPAM returned no ips: {doc}")


def _result_case(version: str) -> Callable[[Ctx], None]:
    def case(ctx: Ctx) -> None:
        _family_ok(ctx, _at(ctx, version), version)
    case.__name__ = f"result_at_{version.replace('.', '_')}"
    return case


# One case per result shape of the 0.3.0 and later versions: same check, its own clause.
for _tid, _version, _title, _clause in (
        ("T51", "1.1.0", "ADD result at 1.1.0", "spec §4.4 R4.5–R4.8"),
        ("T52", "1.0.0", "ADD result at 1.0.0", "spec §4.3 R4.4"),
        ("T53a", "0.4.0", "ADD result at 0.4.0", "spec §4.2 R4.2"),
        ("T53b", "0.3.1", "ADD result at 0.3.1", "spec §4.2 R4.2"),
        ("T53c", "0.3.0", "ADD result at 0.3.0 uses 'ips' (never 'ip')", "spec §4.2 R4.2")):
    generic(_tid, "results", _title, _clause, RESULT_FIX)(_result_case(_version))


@generic("T54a", "results", "ADD result at 0.2.0 has ip4", "spec §4.1 R4.1", RESULT_FIX)
def t54a(ctx: Ctx) -> None:
    doc = _at(ctx, "0.2.0")
    if "ip4" not in doc:
        ctx.fail(f"0.2.0 result without ip4 for an IPv4 subnet: {doc}")


@generic("T54b", "results", "ADD result at 0.1.0 has ip4", "spec §4.1 R4.1", RESULT_FIX)
def t54b(ctx: Ctx) -> None:
    doc = _at(ctx, "0.1.0")
    if "ip4" not in doc:
        ctx.fail(f"0.1.0 result without ip4 for an IPv4 subnet: {doc}")


@generic("T55", "results", "ADD stdout holds one JSON document and nothing else", "spec R3.4, P6",
         "write logs to stderr only; print exactly one JSON document")
def t55(ctx: Ctx) -> None:
    conf = ctx.conf()
    r = ctx.exec(None, "ADD", conf)
    ok_result(ctx, r, conf["cniVersion"], "ADD")
    if not r.stdout.strip().startswith(b"{"):
        ctx.fail(f"stdout does not start with the JSON object: {r.stdout[:80]!r}")


@generic("T57", "results", "interfaces and indexes are consistent with the plugin's role",
         "spec R4.5, R4.9 (IPAM: no interfaces), R2.2 (sandbox == CNI_NETNS)",
         "IPAM: omit interfaces and ips[].interface; interface plugins: list CNI_IFNAME with sandbox=CNI_NETNS")
def t57(ctx: Ctx) -> None:
    conf = ctx.conf()
    doc = ok_result(ctx, ctx.exec(None, "ADD", conf), conf["cniVersion"], "ADD")
    ifaces = doc.get("interfaces", [])
    if ctx.plugin == "host-local":
        if ifaces:
            ctx.fail(f"an IPAM plugin must not return interfaces: {ifaces}")
        if any("interface" in ip for ip in doc.get("ips", [])):
            ctx.fail(f"an IPAM plugin must not set ips[].interface: {doc['ips']}")
        return
    mine = [i for i, itf in enumerate(ifaces) if itf.get("name") == "eth0"]
    if not mine:
        ctx.fail(f"interfaces has no entry named CNI_IFNAME 'eth0': {ifaces}")
    itf = ifaces[mine[0]]
    if itf.get("sandbox") != ctx.netns.path:
        ctx.fail(f"container interface sandbox is {itf.get('sandbox')!r}, must be CNI_NETNS "
                 f"{ctx.netns.path!r}")
    for ip in doc.get("ips", []):
        if ip.get("interface") != mine[0]:
            ctx.fail(f"ips entry {ip} does not point at the container interface index {mine[0]}")


@generic("T58", "results", "ADD keeps prevResult content (pass-through)", "spec R2.5, A16 (warn-only for "
         "interface-creating plugins)", "output the prevResult's interfaces and IPs along with yours",
         plugins=("bridge",))
def t58(ctx: Ctx) -> None:
    v = ctx.version()
    if v not in ("1.0.0", "1.1.0"):
        ctx.skip("needs a 1.x version")
    prev = {"cniVersion": v, "interfaces": [{"name": "dummy9", "sandbox": ""}],
            "ips": [{"address": "192.0.2.9/24", "interface": 0}]}
    conf = ctx.conf(prevResult=prev)
    doc = ok_result(ctx, ctx.exec(None, "ADD", conf), v, "ADD with prevResult")
    names = [i.get("name") for i in doc.get("interfaces", [])]
    addrs = [i.get("address") for i in doc.get("ips", [])]
    if "dummy9" not in names or "192.0.2.9/24" not in addrs:
        ctx.warn(f"prevResult content dropped (interfaces {names}, ips {addrs}); the spec wants it "
                 "passed through, the reference ignores it too")


@generic("T59", "results", "prevResult of another version family never leaks its format",
         "spec R5.3, R4.19", "parse prevResult in its family (or reject it) and answer in the config version")
def t59(ctx: Ctx) -> None:
    v = ctx.version()
    if v not in ("1.0.0", "1.1.0"):
        ctx.skip("needs a 1.x version")
    prev = {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "192.0.2.9/24"}]}
    conf = ctx.conf(prevResult=prev)
    r = ctx.exec(None, "ADD", conf)
    if r.rc != 0:
        expect_error(ctx, r, None, "ADD with a 0.4.0 prevResult in a 1.x config")
        return
    ok_result(ctx, r, v, "ADD with a 0.4.0 prevResult in a 1.x config")
