"""VERSION and version support (spec §2.4, §4.6, §5; test ideas T01–T07)."""
from __future__ import annotations

import re
import subprocess
import time

from . import generic
from ._common import ALL_VERSIONS, Ctx, expect_error, ok_result, ok_silent, vkey

VERSION_RE = re.compile(r"\d+\.\d+\.\d+")


def _version_doc(ctx: Ctx, stdin: bytes, what: str, **env: str) -> dict:
    r = ctx.exec(None, "VERSION", stdin=stdin, env={"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION",
                                                    **env})
    if r.rc != 0:
        ctx.fail(f"{what}: VERSION failed: {r.brief()}")
    try:
        doc = r.document()
    except (ValueError, UnicodeDecodeError) as e:
        ctx.fail(f"{what}: VERSION stdout is not exactly one JSON document ({e})")
    if not isinstance(doc, dict):
        ctx.fail(f"{what}: VERSION output must be an object, got {doc!r:.80}")
    if not isinstance(doc.get("cniVersion"), str):
        ctx.fail(f"{what}: VERSION output lacks a string cniVersion: {doc}")
    sv = doc.get("supportedVersions")
    if not isinstance(sv, list) or not sv or not all(isinstance(v, str) and VERSION_RE.fullmatch(v)
                                                     for v in sv):
        ctx.fail(f"{what}: supportedVersions must be a non-empty list of x.y.z strings, got {sv!r}")
    return doc


@generic("T01", "version", "VERSION answers with cniVersion and supportedVersions", "spec §2.4 R2.20, R4.20",
         "print {\"cniVersion\": ..., \"supportedVersions\": [...]} on stdout and exit 0")
def t01(ctx: Ctx) -> None:
    _version_doc(ctx, b'{"cniVersion":"1.1.0"}', "VERSION")


@generic("T02", "version", "VERSION with empty stdin", "spec R2.19/R2.21 (ref ignores stdin)",
         "VERSION needs only CNI_COMMAND; do not require a config on stdin")
def t02(ctx: Ctx) -> None:
    r = ctx.exec(None, "VERSION", stdin=b"", env={"PATH": "/usr/bin", "CNI_COMMAND": "VERSION"})
    if r.rc != 0:
        expect_error(ctx, r, [], "VERSION with empty stdin", warn_codes=[5, 6])
        return
    _version_doc(ctx, b"", "VERSION with empty stdin")


@generic("T03", "version", "VERSION with non-JSON stdin", "spec R2.21 (ref ignores stdin)",
         "do not parse stdin for VERSION (or at least answer anyway)")
def t03(ctx: Ctx) -> None:
    r = ctx.exec(None, "VERSION", stdin=b"garbage", env={"PATH": "/usr/bin", "CNI_COMMAND": "VERSION"})
    if r.rc != 0:
        expect_error(ctx, r, [], "VERSION with garbage stdin", warn_codes=[6])
        return
    _version_doc(ctx, b"garbage", "VERSION with garbage stdin")


@generic("T04", "version", "VERSION ignores the other CNI_* variables", "spec R1.10, R1.18",
         "validate CNI_CONTAINERID/IFNAME/NETNS only for ADD/DEL/CHECK")
def t04(ctx: Ctx) -> None:
    _version_doc(ctx, b'{"cniVersion":"1.1.0"}', "VERSION with garbage env",
                 CNI_CONTAINERID="%%", CNI_IFNAME="..", CNI_NETNS="/nonexistent", CNI_ARGS="x")


@generic("T05", "version", "VERSION echoes the requested cniVersion", "spec R2.20 vs ref R2.21 (A5): warn-only",
         "answer VERSION with the cniVersion the caller sent when you support it")
def t05(ctx: Ctx) -> None:
    doc = _version_doc(ctx, b'{"cniVersion":"0.4.0"}', "VERSION 0.4.0")
    if doc["cniVersion"] != "0.4.0":
        ctx.warn(f"VERSION for input 0.4.0 answered cniVersion {doc['cniVersion']!r} "
                 "(spec: echo the input; reference: always its own)")


@generic("X01", "version", "supports the current spec version 1.1.0", "spec 1.1.0 (GC, STATUS need it)",
         "add 1.1.0 to supportedVersions and implement GC and STATUS")
def x01(ctx: Ctx) -> None:
    vers = ctx.versions()
    unknown = [v for v in vers if v not in ALL_VERSIONS]
    if unknown:
        ctx.fail(f"supportedVersions lists versions that do not exist: {unknown}")
    if "1.1.0" not in vers:
        ctx.fail(f"supportedVersions {vers} lacks the current spec version 1.1.0: runtimes cannot "
                 "use GC or STATUS with this plugin")
    missing = [v for v in ALL_VERSIONS if v not in vers]
    if missing:
        ctx.warn(f"older versions not supported: {missing}")


@generic("T06", "version", "ADD succeeds at every advertised version", "spec R2.4, R5.1",
         "respond in the format of exactly the config's cniVersion for every supported version")
def t06(ctx: Ctx) -> None:
    for v in sorted(ctx.versions(), key=vkey):
        if v not in ALL_VERSIONS:
            continue
        ns = ctx.container()
        conf = ctx.conf(version=v)
        ok_result(ctx, ctx.exec(None, "ADD", conf, netns=ns), v, f"ADD at {v}")
        ok_silent(ctx, ctx.exec(None, "DEL", conf, netns=ns), f"DEL at {v}")


@generic("T06b", "version", "ADD at an unadvertised or future version fails with code 1",
         "spec R5.1, R5.2 (exact string match)",
         "reject any cniVersion not in supportedVersions with error code 1")
def t06b(ctx: Ctx) -> None:
    vers = ctx.versions()
    for v in [v for v in ALL_VERSIONS if v not in vers] + ["1.2.0", "0.5.0"]:
        r = ctx.exec(None, "ADD", ctx.conf(version=v))
        expect_error(ctx, r, [1], f"ADD at unsupported cniVersion {v}")


@generic("T07", "version", "VERSION does not wait for stdin to close", "ref R1.18 (warn-only)",
         "do not read stdin for VERSION: some callers never close it")
def t07(ctx: Ctx) -> None:
    p = ctx.spawn(ctx.plugin, {"PATH": "/usr/bin", "CNI_COMMAND": "VERSION"})
    t0 = time.monotonic()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        ctx.warn("VERSION blocks until stdin is closed (reads stdin)")
        return
    out = p.stdout.read() if p.stdout else b""
    if p.returncode != 0 or b"supportedVersions" not in out:
        ctx.fail(f"VERSION with an open stdin exited {p.returncode} with {out[:200]!r}")
    if time.monotonic() - t0 > 5:
        ctx.warn("VERSION slow with open stdin")
