"""Concurrency: N-way parallel ADD/DEL with duplicate-IP and leak detection, and a latency budget
(spec R2.6, T80; users-and-peers #11, §3, §4)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from . import specific
from ._common import Ctx, leaks_after, nsmod, ok_result, ok_silent, reservations, result_ips, snapshot
from ..harness import CaseFailed, percentile


def case(tid: str, title: str, clause: str, fix: str, plugin: str):
    return specific(tid, "stress", "stress", title, clause, fix, plugin)


def _parallel(ctx: Ctx, n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(0..n-1) concurrently; collect results; CaseFailed from workers becomes one failure."""
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(fn, i) for i in range(n)]
        out, errors = [], []
        for f in futures:
            try:
                out.append(f.result())
            except CaseFailed as e:
                errors.append(str(e))
    if errors:
        ctx.fail(f"{len(errors)} of {n} parallel calls failed; first: {errors[0]}")
    return out


def _subnet_for(n: int) -> dict:
    return {"subnet": "10.88.0.0/16"} if n > 200 else {"subnet": "10.88.0.0/24"}


def _storm(ctx: Ctx, masq: bool) -> None:
    n = ctx.target.parallel
    conf = ctx.conf(ipam=ctx.ipam(**_subnet_for(n)), **({"ipMasq": True} if masq else {}))
    bridge = ctx.plugin == "bridge"
    if bridge:  # the bridge itself may outlive its ports, so make it part of the baseline
        ctx.host.ip("link", "add", ctx.bridge, "type", "bridge", check=True)
        ctx.host.ip("link", "set", ctx.bridge, "up", check=True)
    before = snapshot(ctx)
    nss = [ctx.container() if bridge else ctx.netns for _ in range(n)]

    def add(i: int) -> str:
        r = ctx.exec(None, "ADD", conf, cid=f"s{i}", netns=nss[i])
        return result_ips(ok_result(ctx, r, conf["cniVersion"], f"parallel ADD s{i}"))[0]

    ips = _parallel(ctx, n, add)
    dupes = sorted({ip for ip in ips if ips.count(ip) > 1})
    if dupes:
        ctx.fail(f"{n} parallel ADDs handed out duplicate addresses: {dupes}")
    files = reservations(ctx)
    if len(files) != n:
        ctx.fail(f"{n} parallel ADDs left {len(files)} reservation files")
    if bridge:
        ports = [k for k, l in nsmod.links(ctx.host).items() if l["master"] == ctx.bridge]
        if len(ports) != n:
            ctx.fail(f"{n} parallel ADDs: {len(ports)} veths enslaved to {ctx.bridge}")
        missing = [i for i, ns in enumerate(nss) if nsmod.links(ns).get("eth0", {}).get("addrs") != [ips[i]]]
        if missing:
            ctx.fail(f"containers {missing[:5]} do not carry the address their ADD reported")

    def delete(i: int) -> None:
        ok_silent(ctx, ctx.exec(None, "DEL", conf, cid=f"s{i}", netns=nss[i]), f"parallel DEL s{i}")

    _parallel(ctx, n, delete)
    problems = leaks_after(ctx, before)
    if problems:
        ctx.fail(f"after {n} parallel DELs: " + "; ".join(problems))


@case("S01", "N-way parallel ADD/DEL on one host-local network", "spec T80, R9.5 (flock); users #11",
      "serialise allocation with the directory lock; never hand out an address twice", "host-local")
def s01(ctx: Ctx) -> None:
    _storm(ctx, masq=False)


@case("S02", "N-way parallel ADD/DEL on one bridge with ipMasq", "spec T80; users #11 (nerdctl#2908 chain races)",
      "make bridge/rule creation idempotent under concurrency; DEL everything", "bridge")
def s02(ctx: Ctx) -> None:
    _storm(ctx, masq=True)


@case("S03", "parallel requests for the same IP: exactly one wins", "spec R9.4 (a reserved IP is an error)",
      "create reservation files exclusively (O_EXCL) under the lock", "host-local")
def s03(ctx: Ctx) -> None:
    n = ctx.target.parallel
    conf = ctx.conf()

    def add(i: int) -> bool:
        r = ctx.exec(None, "ADD", conf, cid=f"r{i}", args="IP=10.88.0.50")
        if r.rc == 0:
            got = result_ips(ok_result(ctx, r, conf["cniVersion"], f"ADD r{i}"))
            if got != ["10.88.0.50/24"]:
                raise CaseFailed(f"r{i} asked for 10.88.0.50 and got {got}")
            return True
        return False

    wins = sum(_parallel(ctx, n, add))
    if wins != 1:
        ctx.fail(f"{wins} of {n} concurrent requests for 10.88.0.50 succeeded (exactly one must)")
    if list(reservations(ctx)) != ["10.88.0.50"]:
        ctx.fail(f"reservations after the race: {sorted(reservations(ctx))}")


@case("S04", "churn: parallel workers ADD and DEL repeatedly", "spec R2.6, R2.11; users #11",
      "keep allocation and release consistent under interleaving", "host-local")
def s04(ctx: Ctx) -> None:
    n = max(2, ctx.target.parallel // 2)
    conf = ctx.conf()

    def worker(i: int) -> list[str]:
        got = []
        for k in range(3):
            r = ctx.exec(None, "ADD", conf, cid=f"w{i}")
            got += result_ips(ok_result(ctx, r, conf["cniVersion"], f"ADD w{i} round {k}"))
            live = [f for f, c in reservations(ctx).items() if c.startswith(f"w{i}\r")]
            if len(live) != 1:
                raise CaseFailed(f"w{i} holds {len(live)} reservations while attached")
            ok_silent(ctx, ctx.exec(None, "DEL", conf, cid=f"w{i}"), f"DEL w{i} round {k}")
        return got

    _parallel(ctx, n, worker)
    if reservations(ctx):
        ctx.fail(f"reservations left after churn: {sorted(reservations(ctx))}")


@case("S05", "serial ADD/DEL latency stays within the pod-start budget", "users-and-peers §4 (k8s SLO p99 <= 5 s; "
      "#14 DAD regressions)", "keep start-up lean (lazy imports), no settle waits by default", "bridge")
def s05(ctx: Ctx) -> None:
    conf = ctx.conf()
    adds, dels = [], []
    for i in range(10):
        ns = ctx.container()
        r = ctx.exec(None, "ADD", conf, cid=f"l{i}", netns=ns)
        ok_result(ctx, r, conf["cniVersion"], f"ADD l{i}")
        adds.append(r.seconds)
        d = ctx.exec(None, "DEL", conf, cid=f"l{i}", netns=ns)
        ok_silent(ctx, d, f"DEL l{i}")
        dels.append(d.seconds)
    p50, p99 = percentile(adds, 50), percentile(adds, 99)
    if p99 > 5:
        ctx.fail(f"bridge ADD p99 {p99 * 1000:.0f} ms exceeds the 5 s pod-start budget")
    if p50 > 0.5:
        ctx.warn(f"bridge ADD p50 {p50 * 1000:.0f} ms, DEL p50 {percentile(dels, 50) * 1000:.0f} ms "
                 "(over 500 ms)")
