"""Faults: SIGKILL at random points of ADD/DEL followed by DEL, a simulated reboot, crash leftovers
(spec R2.7, R2.10; users-and-peers #1, #6, §3)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

from . import specific
from ._common import Ctx, leaks_after, nsmod, ok_result, ok_silent, reservations, result_ips, snapshot


def case(tid: str, title: str, clause: str, fix: str, plugin: str):
    return specific(tid, "faults", "faults", title, clause, fix, plugin)


def kill_after(ctx: Ctx, conf: dict, delay: float, command: str = "ADD", **env) -> int | None:
    """Start the plugin, SIGKILL its process group after `delay` s; returns its exit status."""
    p = ctx.spawn(ctx.plugin, ctx.env(command, **env))
    assert p.stdin is not None
    p.stdin.write(json.dumps(conf).encode())
    p.stdin.close()
    time.sleep(delay)
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    return p.returncode


def _typical(ctx: Ctx, conf: dict, **env) -> float:
    """Duration of one undisturbed ADD (then DEL), to spread kill points over it."""
    r = ctx.exec(None, "ADD", conf, cid="probe", **env)
    ok_result(ctx, r, conf["cniVersion"], "probe ADD")
    ok_silent(ctx, ctx.exec(None, "DEL", conf, cid="probe", **env), "probe DEL")
    return r.seconds


def _kill_rounds(ctx: Ctx, conf: dict, command: str) -> None:
    bridge = ctx.plugin == "bridge"
    seed = ctx.target.seed
    rng = random.Random(f"{seed}-{ctx.plugin}-{command}")
    if bridge:
        ctx.host.ip("link", "add", ctx.bridge, "type", "bridge", check=True)
        ctx.host.ip("link", "set", ctx.bridge, "up", check=True)
    probe_ns = ctx.container()
    base = _typical(ctx, conf, netns=probe_ns)
    before = snapshot(ctx)
    for k in range(ctx.target.fault_rounds):
        ns = ctx.container() if bridge else ctx.netns
        cid = f"k{k}"
        # stratified: one random point in each of `rounds` equal slices of 1.3x a normal ADD
        delay = base * 1.3 * (k + rng.random()) / ctx.target.fault_rounds
        if command == "DEL":
            ctx.add(conf, f"ADD {cid}", cid=cid, netns=ns)
        status = kill_after(ctx, conf, delay, command, cid=cid, netns=ns)
        r = ctx.exec(None, "DEL", conf, cid=cid, netns=ns)
        ok_silent(ctx, r, f"DEL after SIGKILL of {command} at {delay * 1000:.0f} ms (seed {seed})")
        problems = leaks_after(ctx, before)
        if bridge and "eth0" in nsmod.links(ns):
            problems.append("container still has eth0")
        if problems:
            ctx.fail(f"round {k}: {command} killed at {delay * 1000:.0f} ms of ~{base * 1000:.0f} ms "
                     f"(exit {status}, seed {seed}), then DEL: " + "; ".join(problems))


@case("F01", "host-local: SIGKILL during ADD, then DEL leaves nothing", "spec R2.7, R2.10; users #6 (plugins#498)",
      "write reservations atomically; make DEL find and remove partial state", "host-local")
def f01(ctx: Ctx) -> None:
    _kill_rounds(ctx, ctx.conf(), "ADD")


@case("F02", "bridge: SIGKILL during ADD, then DEL leaves nothing", "spec R2.7, R2.10; users-and-peers §3",
      "make DEL remove veths, rules and reservations of an interrupted ADD", "bridge")
def f02(ctx: Ctx) -> None:
    _kill_rounds(ctx, ctx.conf(ipMasq=True), "ADD")


@case("F03", "bridge: SIGKILL during DEL, then DEL again cleans up", "spec R2.11 (repeated DEL)",
      "keep DEL idempotent when a previous DEL died half-way", "bridge")
def f03(ctx: Ctx) -> None:
    _kill_rounds(ctx, ctx.conf(ipMasq=True), "DEL")


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise RuntimeError("no btime in /proc/stat")


def _reboot(ctx: Ctx, conf: dict) -> list[str]:
    """The dataDir as a previous boot left it: both addresses of a 2-address range reserved (reference
    on-disk format) by containers that died with the reboot, files dated before the current boot, and
    nothing written by a plugin in this boot yet."""
    ctx.net_dir.mkdir(parents=True)
    taken = {"10.88.0.10": b"old1\r\neth0", "10.88.0.11": b"old2\r\neth0"}
    for ip, owner in taken.items():
        (ctx.net_dir / ip).write_bytes(owner)
    (ctx.net_dir / "last_reserved_ip.0").write_text("10.88.0.11")
    (ctx.net_dir / "lock").write_bytes(b"")
    stamp = _boot_time() - 3600
    for f in ctx.net_dir.iterdir():
        os.utime(f, (stamp, stamp))
    return sorted(taken)


@case("F04", "simulated reboot: reservations from before boot are reclaimed", "users #1 (plugins#252, #697, PR #728)",
      "reclaim reservations older than the current boot (no container survives a reboot)", "host-local")
def f04(ctx: Ctx) -> None:
    conf = ctx.conf(ipam=ctx.ipam(rangeStart="10.88.0.10", rangeEnd="10.88.0.11"))
    taken = _reboot(ctx, conf)
    r = ctx.exec(None, "ADD", conf, cid="new1")
    if r.rc != 0:
        ctx.fail(f"after a simulated reboot the range {taken} is still full: {r.brief()}")
    ok_result(ctx, r, conf["cniVersion"], "ADD after reboot")


@case("F05", "after a reboot, DEL with the old (vanished) netns releases", "spec R2.10; users #1",
      "release on DEL even though the netns path no longer exists", "host-local")
def f05(ctx: Ctx) -> None:
    conf = ctx.conf(ipam=ctx.ipam(rangeStart="10.88.0.10", rangeEnd="10.88.0.11"))
    _reboot(ctx, conf)
    ok_silent(ctx, ctx.exec(None, "DEL", conf, cid="old1", netns="/run/netns/cnic-gone-0"), "DEL old1")
    left = {v.split()[0] for v in reservations(ctx).values() if v}
    if "old1" in left:
        ctx.fail("DEL after reboot kept old1's reservation")
    ctx.add(conf, "ADD into the released address", cid="new1")


@case("F06", "an empty reservation file left by a crash does not block the address", "users #6 (plugins#498)",
      "treat empty reservation files as free (or never create them)", "host-local")
def f06(ctx: Ctx) -> None:
    conf = ctx.conf(ipam=ctx.ipam(rangeStart="10.88.0.10", rangeEnd="10.88.0.10"))
    ctx.net_dir.mkdir(parents=True, exist_ok=True)
    (ctx.net_dir / "10.88.0.10").write_bytes(b"")
    r = ctx.exec(None, "ADD", conf, cid="c1")
    if r.rc != 0:
        ctx.fail(f"a zero-byte reservation file blocks the only address: {r.brief()}")
    got = result_ips(ok_result(ctx, r, conf["cniVersion"], "ADD over an empty reservation"))
    if got != ["10.88.0.10/24"]:
        ctx.fail(f"expected 10.88.0.10/24, got {got}")


@case("F07", "bridge: a container whose netns vanished without DEL is cleaned by a later DEL", "spec R2.10; users #4",
      "release IPAM and remove host-side state when the netns is gone", "bridge")
def f07(ctx: Ctx) -> None:
    conf = ctx.conf(ipMasq=True)
    ctx.host.ip("link", "add", ctx.bridge, "type", "bridge", check=True)
    before = snapshot(ctx)
    ns = ctx.container()
    ctx.add(conf, netns=ns)
    nsmod.delete(ns)
    ok_silent(ctx, ctx.exec(None, "DEL", conf, netns=ns.path), "DEL with the netns gone")
    problems = leaks_after(ctx, before)
    if problems:
        ctx.fail("; ".join(problems))
