"""Config parsing and version handling (spec §5, §6; test ideas T30–T50)."""
from __future__ import annotations

import json

from . import generic
from ._common import Ctx, expect_error, ok_result, ok_silent, reservations, result_ips

CONF_FIX = "decode stdin strictly: undecodable JSON is error 6, an invalid config error 7"


def _bad(ctx: Ctx, stdin: bytes, codes, what: str, command: str = "ADD", warn_codes=()) -> None:
    r = ctx.exec(None, command, stdin=stdin)
    expect_error(ctx, r, codes, what, warn_codes=warn_codes)
    left = reservations(ctx)
    if left:
        ctx.fail(f"{what}: the rejected call left reservations behind: {sorted(left)}")


def _with(ctx: Ctx, **over) -> bytes:
    return json.dumps(ctx.conf(**over)).encode()


def _without(ctx: Ctx, key: str) -> bytes:
    conf = ctx.conf()
    conf.pop(key)
    return json.dumps(conf).encode()


@generic("T30", "config", "empty stdin is a decoding error", "spec §3 code 6", CONF_FIX)
def t30(ctx: Ctx) -> None:
    _bad(ctx, b"", [6], "ADD with empty stdin")


@generic("T31", "config", "malformed JSON is a decoding error", "spec §3 code 6", CONF_FIX)
def t31(ctx: Ctx) -> None:
    _bad(ctx, b"{not json", [6], "ADD with '{not json'")
    conf = json.dumps(ctx.conf()).encode()
    _bad(ctx, conf[: len(conf) // 2], [6], "ADD with truncated JSON")


@generic("T32", "config", "non-object JSON is a decoding error", "spec §3 code 6 (null: accept 6 or 7)", CONF_FIX)
def t32(ctx: Ctx) -> None:
    for doc in (b"[1,2]", b'"net"', b"42"):
        _bad(ctx, doc, [6], f"ADD with stdin {doc.decode()}")
    _bad(ctx, b"null", [6, 7], "ADD with stdin null")


@generic("T33", "config", "missing network name", "spec R1.15, §3 code 7", "reject a config without 'name' with error 7")
def t33(ctx: Ctx) -> None:
    _bad(ctx, _without(ctx, "name"), [7], "ADD without name")


@generic("T34", "config", "empty network name", "spec R1.15, §3 code 7", "reject name \"\" with error 7")
def t34(ctx: Ctx) -> None:
    _bad(ctx, _with(ctx, name=""), [7], "ADD with name ''")


@generic("T35", "config", "network names with bad characters", "spec R1.15 (also stops path traversal)",
         "validate name against [A-Za-z0-9][A-Za-z0-9_.-]* with error 7")
def t35(ctx: Ctx) -> None:
    for name in ("-net", "net/1", "net work", "ne%t", "..", "../../etc"):
        _bad(ctx, _with(ctx, name=name), [7], f"ADD with name {name!r}")


@generic("T36", "config", "non-string network name", "spec §1.4 (ref 6; accept 6 or 7)", CONF_FIX)
def t36(ctx: Ctx) -> None:
    _bad(ctx, _with(ctx, name=123), [6, 7], "ADD with name 123")


@generic("T37", "config", "network name with all allowed characters", "spec R1.15",
         "accept names with letters, digits, '_', '.', '-'")
def t37(ctx: Ctx) -> None:
    conf = ctx.conf(name="my_net.v1-a")
    ok_result(ctx, ctx.exec(None, "ADD", conf), conf["cniVersion"], "ADD with name my_net.v1-a")


@generic("T38", "config", "unknown cniVersion: code 1 and no side effects", "spec R5.1, §3 code 1",
         "check cniVersion before allocating anything")
def t38(ctx: Ctx) -> None:
    _bad(ctx, _with(ctx, cniVersion="9.9.9"), [1], "ADD at 9.9.9")
    res = ctx.add(ctx.conf(), "ADD after the rejected one", cid="ctr2")
    ips = result_ips(res)
    if "10.88.0.2/24" not in ips:
        ctx.fail(f"the first good ADD after a rejected one got {ips}, not 10.88.0.2/24: "
                 "the rejected call consumed an address")


@generic("T39", "config", "cniVersion '1.1' (not exact) is unsupported", "spec R5.2 exact match",
         "compare cniVersion strings exactly")
def t39(ctx: Ctx) -> None:
    _bad(ctx, _with(ctx, cniVersion="1.1"), [1], "ADD at '1.1'")
    _bad(ctx, _with(ctx, cniVersion="1.0"), [1], "ADD at '1.0'")


@generic("T40", "config", "numeric cniVersion", "spec §1.4 (ref 6; accept 6 or 1)", CONF_FIX)
def t40(ctx: Ctx) -> None:
    _bad(ctx, _with(ctx, cniVersion=1), [6, 1, 7], "ADD with cniVersion 1 (number)")


@generic("T41", "config", "absent cniVersion means 0.1.0", "spec R5.1 (library: 0.1.0)",
         "treat a missing cniVersion as 0.1.0: answer in 0.1.0 shape or reject with code 1")
def t41(ctx: Ctx) -> None:
    r = ctx.exec(None, "ADD", stdin=_without(ctx, "cniVersion"))
    if "0.1.0" in ctx.versions():
        ok_result(ctx, r, "", "ADD without cniVersion")
    else:
        expect_error(ctx, r, [1], "ADD without cniVersion (0.1.0 unsupported)")


@generic("T42", "config", "unknown top-level keys are tolerated", "spec R6.12 (may reject only with code 2)",
         "ignore keys you do not know (or reject with code 2 naming key and value)")
def t42(ctx: Ctx) -> None:
    conf = ctx.conf(foo={"bar": 1})
    r = ctx.exec(None, "ADD", conf)
    if r.rc != 0:
        expect_error(ctx, r, [2], "ADD with unknown key foo", mention=["foo"])
        ctx.warn("rejects unknown keys (allowed with code 2)")
        return
    ok_result(ctx, r, conf["cniVersion"], "ADD with unknown key foo")


@generic("T43", "config", "'capabilities' left in by the runtime is tolerated", "spec A8, R6.14 (libcni leaves it)",
         "never reject 'capabilities' in the plugin config")
def t43(ctx: Ctx) -> None:
    conf = ctx.conf(capabilities={"portMappings": True, "ips": True})
    ok_result(ctx, ctx.exec(None, "ADD", conf), conf["cniVersion"], "ADD with capabilities")


@generic("T44", "config", "unknown runtimeConfig capabilities are ignored", "spec R6.14, CONVENTIONS",
         "ignore runtimeConfig keys you do not consume")
def t44(ctx: Ctx) -> None:
    conf = ctx.conf(runtimeConfig={"unknownCap": [1, 2]})
    ok_result(ctx, ctx.exec(None, "ADD", conf), conf["cniVersion"], "ADD with runtimeConfig.unknownCap")


@generic("T45", "config", "'args' with labels and vendor keys is tolerated", "spec R6.17",
         "ignore args you do not understand")
def t45(ctx: Ctx) -> None:
    conf = ctx.conf(args={"cni": {"labels": [{"key": "a", "value": "b"}]}, "vendor": {"x": 1}})
    ok_result(ctx, ctx.exec(None, "ADD", conf), conf["cniVersion"], "ADD with args")


@generic("T46", "config", "stray cni.dev/valid-attachments on ADD is ignored", "spec R6.10, R6.15",
         "ignore reserved cni.dev/* keys outside GC")
def t46(ctx: Ctx) -> None:
    conf = ctx.conf(**{"cni.dev/valid-attachments": [{"containerID": "x", "ifname": "eth0"}]})
    ok_result(ctx, ctx.exec(None, "ADD", conf), conf["cniVersion"], "ADD with cni.dev/valid-attachments")


@generic("T47", "config", "CHECK below 0.4.0 is code 1", "spec R2.14, R5.8", "refuse CHECK for cniVersion < 0.4.0 with code 1")
def t47(ctx: Ctx) -> None:
    _bad(ctx, _with(ctx, cniVersion="0.3.1"), [1], "CHECK at 0.3.1", command="CHECK")


@generic("T48", "config", "CHECK with an unparsable cniVersion", "spec §1.4 (ref 6; accept 6 or 1)", CONF_FIX)
def t48(ctx: Ctx) -> None:
    _bad(ctx, _with(ctx, cniVersion="abc"), [6, 1], "CHECK at 'abc'", command="CHECK")


@generic("T49", "config", "GC below 1.1.0 is code 1", "spec R2.29, R5.8", "refuse GC for cniVersion < 1.1.0 with code 1")
def t49(ctx: Ctx) -> None:
    _bad(ctx, _with(ctx, cniVersion="1.0.0"), [1], "GC at 1.0.0", command="GC")


@generic("T49b", "config", "STATUS below 1.1.0 is code 1", "spec R2.36, R5.8",
         "refuse STATUS for cniVersion < 1.1.0 with code 1")
def t49b(ctx: Ctx) -> None:
    _bad(ctx, _with(ctx, cniVersion="1.0.0"), [1], "STATUS at 1.0.0", command="STATUS")


@generic("T50", "config", "DEL at an unknown cniVersion is code 1", "spec R2.13",
         "apply the version check to DEL as well")
def t50(ctx: Ctx) -> None:
    conf = ctx.conf()
    ctx.add(conf)
    _bad_del = ctx.exec(None, "DEL", ctx.conf(cniVersion="9.9.9"))
    expect_error(ctx, _bad_del, [1], "DEL at 9.9.9")
    if not reservations(ctx):
        ctx.fail("DEL at an unsupported version was rejected but still released the reservation")
    ok_silent(ctx, ctx.exec(None, "DEL", conf), "DEL at the right version")
