"""Environment validation and its error codes (spec §1; test ideas T08–T25)."""
from __future__ import annotations

from . import generic
from ._common import Ctx, expect_error, ok_result, ok_silent, reservations

ENV_FIX = "validate CNI_* before any side effect and report error code 4 naming the variable"


def _untouched(ctx: Ctx, what: str) -> None:
    """Bad input must change nothing on disk."""
    left = reservations(ctx)
    if left:
        ctx.fail(f"{what}: the rejected call left reservations behind: {sorted(left)}")


def _bad_add(ctx: Ctx, what: str, codes=(4,), mention=(), warn_codes=(), **env) -> None:
    r = ctx.exec(None, "ADD", ctx.conf(), **env)
    expect_error(ctx, r, codes, what, warn_codes=warn_codes, mention=mention)
    _untouched(ctx, what)


@generic("T08", "env", "CNI_COMMAND unset", "spec R1.1, §1.4 (A27: ref prints help, exit 0)",
         "without CNI_COMMAND either print error 4 naming it, or exit 0 with help on stderr only")
def t08(ctx: Ctx) -> None:
    r = ctx.exec(None, "ADD", ctx.conf(), unset=["CNI_COMMAND"])
    if r.rc == 0:
        if r.stdout.strip():
            ctx.fail(f"no CNI_COMMAND: exited 0 but printed on stdout: {r.text[:120]!r}")
        ctx.warn("no CNI_COMMAND: exit 0 with help text (reference quirk) instead of error 4")
        return
    expect_error(ctx, r, [4], "no CNI_COMMAND", mention=["CNI_COMMAND"])
    _untouched(ctx, "no CNI_COMMAND")


@generic("T09", "env", "unknown CNI_COMMAND", "spec R1.1, §1.4", ENV_FIX)
def t09(ctx: Ctx) -> None:
    r = ctx.exec(None, "ADD", ctx.conf(), extra={"CNI_COMMAND": "BOGUS"})
    expect_error(ctx, r, [4], "CNI_COMMAND=BOGUS")
    _untouched(ctx, "CNI_COMMAND=BOGUS")


@generic("T10", "env", "lower-case CNI_COMMAND is unknown", "spec R1.1 (case-sensitive)", ENV_FIX)
def t10(ctx: Ctx) -> None:
    r = ctx.exec(None, "ADD", ctx.conf(), extra={"CNI_COMMAND": "add"})
    expect_error(ctx, r, [4], "CNI_COMMAND=add")
    _untouched(ctx, "CNI_COMMAND=add")


@generic("T11", "env", "ADD without CNI_CONTAINERID", "spec R1.2, §1.2", ENV_FIX)
def t11(ctx: Ctx) -> None:
    _bad_add(ctx, "ADD without CNI_CONTAINERID", mention=["CNI_CONTAINERID"], unset=["CNI_CONTAINERID"])


@generic("T12", "env", "ADD without CNI_NETNS", "spec R1.3, §1.2", ENV_FIX)
def t12(ctx: Ctx) -> None:
    _bad_add(ctx, "ADD without CNI_NETNS", mention=["CNI_NETNS"], unset=["CNI_NETNS"])


@generic("T13", "env", "ADD without CNI_IFNAME", "spec R1.4, §1.2", ENV_FIX)
def t13(ctx: Ctx) -> None:
    _bad_add(ctx, "ADD without CNI_IFNAME", mention=["CNI_IFNAME"], unset=["CNI_IFNAME"])


@generic("T14", "env", "ADD without CNI_NETNS and CNI_IFNAME names both", "spec §1.4 (one error listing all)",
         "collect every missing variable and name them all in one error 4")
def t14(ctx: Ctx) -> None:
    _bad_add(ctx, "ADD without CNI_NETNS and CNI_IFNAME", mention=["CNI_NETNS", "CNI_IFNAME"],
             unset=["CNI_NETNS", "CNI_IFNAME"])


@generic("T15", "env", "empty CNI_IFNAME counts as missing", "spec R1.14, P4", ENV_FIX)
def t15(ctx: Ctx) -> None:
    _bad_add(ctx, "ADD with CNI_IFNAME=''", ifname="")


@generic("T16", "env", "ADD without CNI_PATH", "spec A1 (optional in spec, required by ref)",
         "either work without CNI_PATH or fail with error 4 naming CNI_PATH")
def t16(ctx: Ctx) -> None:
    r = ctx.exec(None, "ADD", ctx.conf(), unset=["CNI_PATH"])
    if r.rc == 0:
        ok_result(ctx, r, ctx.version(), "ADD without CNI_PATH")
        return
    expect_error(ctx, r, [4], "ADD without CNI_PATH", mention=["CNI_PATH"])
    _untouched(ctx, "ADD without CNI_PATH")


@generic("T17", "env", "container ID starting with '-' is rejected", "spec R1.13", ENV_FIX)
def t17(ctx: Ctx) -> None:
    _bad_add(ctx, "CNI_CONTAINERID=-abc", cid="-abc")


@generic("T18", "env", "container IDs with bad characters are rejected", "spec R1.13", ENV_FIX)
def t18(ctx: Ctx) -> None:
    for cid in ("a/b", "a b", "a%b", "\u00e91", "ab\n", "../x"):
        _bad_add(ctx, f"CNI_CONTAINERID={cid!r}", cid=cid)


@generic("T19", "env", "valid container IDs are accepted", "spec R1.13",
         "accept ids matching [A-Za-z0-9][A-Za-z0-9_.-]* (e.g. 64 hex chars)")
def t19(ctx: Ctx) -> None:
    for cid in ("a", "A_b.c-d", "0123456789abcdef" * 4):
        ns = ctx.container()
        conf = ctx.conf()
        ok_result(ctx, ctx.exec(None, "ADD", conf, cid=cid, netns=ns), ctx.version(), f"ADD id {cid}")
        ok_silent(ctx, ctx.exec(None, "DEL", conf, cid=cid, netns=ns), f"DEL id {cid}")


@generic("T20", "env", "interface names: 16 bytes rejected, 15 accepted", "spec R1.14",
         "limit CNI_IFNAME to 15 bytes (error 4) and accept exactly 15")
def t20(ctx: Ctx) -> None:
    _bad_add(ctx, "CNI_IFNAME of 16 chars", ifname="a" * 16)
    conf = ctx.conf()
    ok_result(ctx, ctx.exec(None, "ADD", conf, ifname="b" * 15), ctx.version(), "ADD with 15-char ifname")
    ok_silent(ctx, ctx.exec(None, "DEL", conf, ifname="b" * 15), "DEL with 15-char ifname")


@generic("T21", "env", "interface name length counts UTF-8 bytes", "spec R1.14, P2",
         "measure CNI_IFNAME in bytes, not characters")
def t21(ctx: Ctx) -> None:
    _bad_add(ctx, "CNI_IFNAME of 8 two-byte chars", ifname="\u00e9" * 8)


@generic("T22", "env", "interface names '.' and '..' are rejected", "spec R1.14", ENV_FIX)
def t22(ctx: Ctx) -> None:
    for name in (".", ".."):
        _bad_add(ctx, f"CNI_IFNAME={name!r}", ifname=name)


@generic("T23", "env", "interface names with '/', ':' or whitespace are rejected", "spec R1.14", ENV_FIX)
def t23(ctx: Ctx) -> None:
    for name in ("a/b", "a:b", "a b", "a\tb"):
        _bad_add(ctx, f"CNI_IFNAME={name!r}", ifname=name)


@generic("T24", "env", "DEL validates container ID and interface name", "spec R1.10, §1.2", ENV_FIX)
def t24(ctx: Ctx) -> None:
    expect_error(ctx, ctx.exec(None, "DEL", ctx.conf(), cid="-x"), [4], "DEL with CNI_CONTAINERID=-x")
    expect_error(ctx, ctx.exec(None, "DEL", ctx.conf(), ifname="a/b"), [4], "DEL with CNI_IFNAME=a/b")


@generic("T25", "env", "DEL without the CNI_NETNS variable succeeds", "spec §1.2 (CNI_NETNS optional for DEL), R2.8",
         "do not require CNI_NETNS for DEL; release what you can")
def t25(ctx: Ctx) -> None:
    conf = ctx.conf()
    ctx.add(conf)
    ok_silent(ctx, ctx.exec(None, "DEL", conf, unset=["CNI_NETNS"]), "DEL with CNI_NETNS unset")
    left = reservations(ctx)
    if left:
        ctx.fail(f"DEL without CNI_NETNS succeeded but kept the reservation(s) {sorted(left)}")
