#!/usr/bin/env python3
"""Side-by-side latency benchmark: pycni (cold and warm) against the Go reference plugins.

    sudo .venv/bin/python bench/run.py            # full run, 5-10 minutes on 2 cores
    sudo .venv/bin/python bench/run.py --quick    # smaller samples, ~3 minutes

Everything happens in network namespaces this script creates and deletes (a "host" namespace per
implementation in which the plugins run, container namespaces, and one for the warm server); state
lives in a temporary directory. Implementations are interleaved run by run so drift on the machine
hits all of them alike. Wall time is measured around exec..wait of the plugin process; CPU time is
the process's user+system time from wait4 (children included: the reference bridge's host-local,
our cold bridge's host-local). For warm mode the server's CPU (the server and its workers, live or
reaped, from /proc) is added: its mean per call, measured around each call once the server has
settled (sequential runs), or over each batch divided by the batch size (concurrent runs).

Prints a Markdown report; --out also writes it to a file.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import pickle
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REFERENCE_DIR = "/usr/lib/cni"
CNI_VERSION = "1.0.0"  # the newest version Debian's reference (v1.1.1) speaks
CLONE_NEWNET = 0x40000000
CLK_TCK = os.sysconf("SC_CLK_TCK")
MODES = ("ref", "cold", "warm")
VERBS = ("ADD", "CHECK", "DEL")


# --- namespaces ---------------------------------------------------------------------------

class Namespaces:
    """Named throw-away netns; all deleted on close, even after a failure."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.made: list[str] = []

    def create(self, label: str) -> str:
        name = f"pb{self.tag}-{label}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self.made.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        return name

    def close(self) -> None:
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self.made.clear()


_libc = ctypes.CDLL(None, use_errno=True)


def setns(name: str) -> None:
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), name)
    finally:
        os.close(fd)


# --- one plugin call ----------------------------------------------------------------------

@dataclass
class Call:
    binary: str
    env: dict[str, str]
    stdin: bytes
    host_ns: str
    warm_wait_pid: int = 0  # warm sequential: wait until the server reaped the request's child


@dataclass
class Sample:
    rc: int
    stdout: bytes
    stderr: bytes
    wall: float
    cpu: float
    server_cpu: float = 0.0


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def proc_cpu(pid: int) -> float:
    """utime+stime+cutime+cstime of a process, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


SERVER_POOL = 4  # `pycni serve --workers`: idle pre-forked children always present


def server_children(pid: int) -> set[str]:
    try:
        return set(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return set()


def tree_cpu(pid: int) -> float:
    """CPU of the server and of its workers, live ones included: a worker serves many requests
    (and their own children, iptables-restore, are reaped into the worker's cutime)."""
    return proc_cpu(pid) + sum(proc_cpu(int(child)) for child in server_children(pid))


def settled(pid: int, timeout: float = 3.0) -> None:
    """Wait until the server and its workers are done with the last request (all asleep and no CPU
    used for 15 ms), so its whole cost is in tree_cpu."""
    deadline = time.monotonic() + timeout
    last, quiet = -1.0, 0
    while time.monotonic() < deadline and quiet < 3:
        kids = server_children(pid)
        now = tree_cpu(pid)
        asleep = all(_state(int(k)) in ("S", "") for k in kids) and _state(pid) in ("S", "")
        quiet = quiet + 1 if (now == last and asleep) else 0
        last = now
        time.sleep(0.005)


def execute(call: Call) -> Sample:
    """exec the plugin in the current (worker) netns; stdout/stderr are small, so no deadlock."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    server_before = tree_cpu(call.warm_wait_pid) if call.warm_wait_pid else 0.0
    start = time.perf_counter()
    pid = os.posix_spawn(call.binary, [call.binary], call.env,
                         file_actions=[(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                                       (os.POSIX_SPAWN_DUP2, err_w, 2)])
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    os.write(in_w, call.stdin)
    os.close(in_w)
    out = _read_all(out_r)
    err = _read_all(err_r)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    os.close(out_r)
    os.close(err_r)
    server = 0.0
    if call.warm_wait_pid:
        settled(call.warm_wait_pid)
        server = tree_cpu(call.warm_wait_pid) - server_before
    return Sample(os.waitstatus_to_exitcode(status), out, err, wall, usage.ru_utime + usage.ru_stime,
                  server)


# --- worker processes (one per concurrent caller) -------------------------------------------

def _send(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj)
    os.write(fd, len(data).to_bytes(4, "big") + data)


def _recv(fd: int) -> Any:
    head = b""
    while len(head) < 4:
        chunk = os.read(fd, 4 - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    size = int.from_bytes(head, "big")
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return pickle.loads(data)


class Worker:
    """A forked process that joins the call's host namespace and execs plugins on command."""

    def __init__(self) -> None:
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.cmd_w)
            os.close(self.res_r)
            try:
                self._loop(cmd_r, res_w)
            finally:
                os._exit(0)
        os.close(cmd_r)
        os.close(res_w)

    @staticmethod
    def _loop(cmd_r: int, res_w: int) -> None:
        current = None
        while True:
            try:
                call = _recv(cmd_r)
            except EOFError:
                return
            if call.host_ns != current:
                setns(call.host_ns)
                current = call.host_ns
            _send(res_w, execute(call))

    def submit(self, call: Call) -> None:
        _send(self.cmd_w, call)

    def result(self) -> Sample:
        return _recv(self.res_r)

    def close(self) -> None:
        os.close(self.cmd_w)
        os.close(self.res_r)
        os.waitpid(self.pid, 0)


# --- configurations -------------------------------------------------------------------------

@dataclass
class Impl:
    mode: str
    bin_dir: str
    host_ns: str
    data_dir: str
    env_extra: dict[str, str]
    server_pid: int = 0


def bridge_config(impl: Impl) -> dict[str, Any]:
    return {"cniVersion": CNI_VERSION, "name": "benchnet", "type": "bridge", "bridge": "pbench0",
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.123.0.0/16"}]],
                     "dataDir": impl.data_dir}}


def hostlocal_config(impl: Impl) -> dict[str, Any]:
    return {"cniVersion": CNI_VERSION, "name": "hlnet", "type": "host-local",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.128.0.0/16"}]],
                     "dataDir": impl.data_dir}}


def populate(data_dir: str, network: str, count: int) -> None:
    """Live reservations in the reference's on-disk format: <dataDir>/<net>/<ip> = '<cid>\\r\\n<ifname>'."""
    directory = Path(data_dir, network)
    directory.mkdir(parents=True, exist_ok=True)
    first = int(IPv4Address("10.128.0.2"))
    for i in range(count):
        ip = IPv4Address(first + i)
        (directory / str(ip)).write_text(f"filler{i:06d}\r\neth0")
    if count:
        (directory / "last_reserved_ip.0").write_text(str(IPv4Address(first + count - 1)))


def make_call(impl: Impl, plugin: str, verb: str, cid: str, netns: str, config: dict[str, Any],
              prev: Any = None, sequential: bool = True) -> Call:
    conf = dict(config)
    if prev is not None and verb != "ADD":
        conf["prevResult"] = prev
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": verb, "CNI_CONTAINERID": cid,
           "CNI_NETNS": f"/run/netns/{netns}", "CNI_IFNAME": "eth0", "CNI_PATH": impl.bin_dir,
           **impl.env_extra}
    wait = impl.server_pid if (impl.mode == "warm" and sequential) else 0
    return Call(os.path.join(impl.bin_dir, plugin), env, json.dumps(conf).encode(), impl.host_ns, wait)


# --- statistics and report ------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass
class Series:
    wall: list[float] = field(default_factory=list)
    own_cpu: list[float] = field(default_factory=list)  # the exec'd process and its children (wait4)
    server_cpu: list[float] = field(default_factory=list)  # warm: the server's share, in clock ticks
    batch_walls: list[float] = field(default_factory=list)  # concurrent: one per batch
    failures: int = 0

    def add(self, s: Sample) -> None:
        self.wall.append(s.wall)
        self.own_cpu.append(s.cpu)
        self.server_cpu.append(s.server_cpu)
        if s.rc != 0:
            self.failures += 1

    @property
    def cpu(self) -> list[float]:
        """Per call: its own CPU plus the server's mean per call. /proc counts the server's CPU in
        10 ms clock ticks, so per-call server figures are steps of 10 ms; their mean is exact."""
        share = sum(self.server_cpu) / len(self.server_cpu) if self.server_cpu else 0.0
        return [c + share for c in self.own_cpu]


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "-"


class Failure(RuntimeError):
    pass


def check(sample: Sample, what: str) -> None:
    if sample.rc != 0:
        raise Failure(f"{what} failed (rc {sample.rc}): {sample.stdout.decode(errors='replace')}"
                      f"{sample.stderr.decode(errors='replace')[-2000:]}")


# --- the runs -------------------------------------------------------------------------------

def rotate(seq: tuple[str, ...], k: int) -> list[str]:
    k %= len(seq)
    return list(seq[k:] + seq[:k])


def run_bridge(impls: dict[str, Impl], workers: list[Worker], cont: dict[str, list[str]], rounds: int,
               warmup: int, results: dict[tuple[str, str], Series]) -> None:
    """Rounds of ADD, CHECK, DEL with len(workers) simultaneous callers, implementations interleaved."""
    n = len(workers)
    for r in range(-warmup, rounds):
        for mode in rotate(tuple(impls), r):
            impl = impls[mode]
            conf = bridge_config(impl)
            cids = [f"b{r + warmup}w{i}{secrets.token_hex(3)}" for i in range(n)]
            prev: list[Any] = [None] * n
            for verb in VERBS:
                calls = [make_call(impl, "bridge", verb, cids[i], cont[mode][i], conf, prev[i],
                                   sequential=(n == 1)) for i in range(n)]
                server_before = tree_cpu(impl.server_pid) if impl.server_pid and n > 1 else 0.0
                start = time.perf_counter()
                for w, c in zip(workers, calls):
                    w.submit(c)
                samples = [w.result() for w in workers]
                batch = time.perf_counter() - start
                for i, s in enumerate(samples):
                    check(s, f"{mode} bridge {verb}")
                    if verb == "ADD":
                        prev[i] = json.loads(s.stdout)
                if impl.server_pid and n > 1:
                    settled(impl.server_pid)
                    share = (tree_cpu(impl.server_pid) - server_before) / n
                    for s in samples:
                        s.server_cpu = share
                if r >= 0:
                    series = results.setdefault((mode, verb), Series())
                    for s in samples:
                        series.add(s)
                    series.batch_walls.append(batch)


def run_hostlocal(impls: dict[str, Impl], worker: Worker, netns: dict[str, str], runs: int,
                  results: dict[tuple[str, str], Series]) -> None:
    for r in range(-1, runs):
        for mode in rotate(tuple(impls), r):
            impl = impls[mode]
            conf = hostlocal_config(impl)
            cid = f"h{r + 1}{secrets.token_hex(4)}"
            prev = None
            for verb in VERBS:
                worker.submit(make_call(impl, "host-local", verb, cid, netns[mode], conf, prev))
                s = worker.result()
                check(s, f"{mode} host-local {verb}")
                if verb == "ADD":
                    prev = json.loads(s.stdout)
                if r >= 0:
                    results.setdefault((mode, verb), Series()).add(s)


# --- environment ----------------------------------------------------------------------------

def start_server(python: str, sock: str, netns: str, log: Path) -> subprocess.Popen:
    """`pycni serve` inside its own throw-away namespace (nsenter keeps the mount namespace)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYCNI_SOCKET": sock}
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", "--", python, "-m", "shared.cli",
                             "serve", "--socket", sock, "--workers", str(SERVER_POOL)], cwd=str(ROOT), env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(sock):
            return proc
        if proc.poll() is not None:
            raise Failure(f"pycni serve exited: {log.read_text()}")
        time.sleep(0.05)
    raise Failure("pycni serve did not come up within 60 s")


def server_pid(proc: subprocess.Popen) -> int:
    """nsenter execs the interpreter, so the Popen pid is the server itself."""
    return proc.pid


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ref = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins"],
                         capture_output=True, text=True).stdout.strip() or "unknown"
    return (f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}, "
            f"reference containernetworking-plugins {ref} ({REFERENCE_DIR})")


def table_rows(results: dict[tuple[str, str], Series], label: str, conc: int) -> list[str]:
    rows = []
    for verb in VERBS:
        ref = results.get(("ref", verb))
        for mode in MODES:
            s = results.get((mode, verb))
            if s is None or not s.wall:
                continue
            thr = ""
            if conc > 1 and s.batch_walls:
                thr = f"{conc * len(s.batch_walls) / sum(s.batch_walls):.0f}"
                if ref and ref.batch_walls and mode != "ref":
                    ref_thr = conc * len(ref.batch_walls) / sum(ref.batch_walls)
                    thr += f" ({ratio(float(thr), ref_thr)})"
            r50 = ratio(pct(s.wall, 50), pct(ref.wall, 50)) if ref and mode != "ref" else ""
            rc = ratio(pct(s.cpu, 50), pct(ref.cpu, 50)) if ref and mode != "ref" else ""
            rows.append(f"| {label} | {verb} | {mode} | {len(s.wall)} | {ms(pct(s.wall, 50))} | "
                        f"{ms(pct(s.wall, 90))} | {ms(pct(s.wall, 99))} | {r50} | {ms(pct(s.cpu, 50))} | "
                        f"{ms(pct(s.cpu, 90))} | {ms(pct(s.cpu, 99))} | {rc} |" + (f" {thr} |" if conc > 1 else ""))
    return rows


HEADER = ("| scenario | verb | impl | n | wall p50 ms | p90 | p99 | p50 ours/ref | CPU p50 ms | p90 | p99 | "
          "CPU p50 ours/ref |")


def _interrupted(*_: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small samples (about 2 minutes)")
    ap.add_argument("--runs", type=int, help="sequential runs per implementation and verb")
    ap.add_argument("--rounds", type=int, help="concurrent rounds per implementation")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--scales", default="10,1000,10000", help="host-local live reservations")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm server")
    ap.add_argument("--out", help="also write the Markdown report here")
    ns = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/run.py must run as root (it creates network namespaces)", file=sys.stderr)
        return 2
    if not Path(REFERENCE_DIR, "bridge").is_file():
        print(f"reference plugins missing in {REFERENCE_DIR} (apt install containernetworking-plugins)",
              file=sys.stderr)
        return 2
    runs = ns.runs or (15 if ns.quick else 60)
    rounds = ns.rounds or (2 if ns.quick else 10)
    hl_runs = max(5, runs // 2) if ns.quick else runs
    scales = [int(x) for x in ns.scales.split(",") if x]
    modes = [m for m in MODES if not (ns.no_warm and m == "warm")]
    from shared.install import install

    signal.signal(signal.SIGTERM, _interrupted)  # clean up the namespaces on `timeout` / kill
    started = time.time()
    lines: list[str] = []
    with ExitStack() as stack:
        nets = Namespaces()
        stack.callback(nets.close)
        tmp = Path(tempfile.mkdtemp(prefix="pycni-bench-"))
        stack.callback(shutil.rmtree, tmp, True)
        ours = tmp / "bin"
        install(str(ours))
        sock = str(tmp / "run" / "pycni.sock")
        impls: dict[str, Impl] = {}
        for mode in modes:
            bin_dir = REFERENCE_DIR if mode == "ref" else str(ours)
            extra = {"PYCNI_SOCKET": sock if mode == "warm" else "off"}
            impls[mode] = Impl(mode, bin_dir, nets.create(f"h{mode}"), str(tmp / f"data-{mode}"), extra)
        if "warm" in impls:
            srv_ns = nets.create("srv")
            proc = start_server(sys.executable, sock, srv_ns, tmp / "server.log")

            def stop() -> None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            stack.callback(stop)
            impls["warm"].server_pid = server_pid(proc)

        conc = ns.concurrency
        cont = {m: [nets.create(f"c{m[0]}{i}") for i in range(conc)] for m in impls}
        workers = [Worker() for _ in range(conc)]
        # newest first: each worker holds copies of the older workers' pipe ends
        stack.callback(lambda: [w.close() for w in reversed(workers)])

        lines += [f"Machine: {machine()}", "",
                  f"Started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(started))}; "
                  f"runs per row: see n.", ""]

        seq: dict[tuple[str, str], Series] = {}
        print(f"bridge+host-local, 1 caller, {runs} runs ...", file=sys.stderr)
        run_bridge(impls, workers[:1], {m: cont[m][:1] for m in impls}, runs, 2, seq)
        par: dict[tuple[str, str], Series] = {}
        print(f"bridge+host-local, {conc} callers, {rounds} rounds ...", file=sys.stderr)
        run_bridge(impls, workers, cont, rounds, 1, par)
        lines += ["### bridge + host-local (L3: isGateway, ipMasq), 1 caller", "", HEADER,
                  "|" + "---|" * 12]
        lines += table_rows(seq, "L3 ×1", 1)
        lines += ["", f"### bridge + host-local (L3), {conc} concurrent callers "
                  "(throughput = calls/s over whole batches)", "",
                  HEADER + " throughput /s |", "|" + "---|" * 13]
        lines += table_rows(par, f"L3 ×{conc}", conc)

        lines += ["", "### host-local alone, 1 caller, by live reservations", "", HEADER, "|" + "---|" * 12]
        hl_all: dict[int, dict[tuple[str, str], Series]] = {}
        for count in scales:
            print(f"host-local with {count} reservations, {hl_runs} runs ...", file=sys.stderr)
            for mode, impl in impls.items():
                impl.data_dir = str(tmp / f"hl{count}-{mode}")
                populate(impl.data_dir, "hlnet", count)
            res: dict[tuple[str, str], Series] = {}
            run_hostlocal(impls, workers[0], {m: cont[m][0] for m in impls}, hl_runs, res)
            hl_all[count] = res
            lines += table_rows(res, f"host-local @{count}", 1)
        if len(scales) > 1:
            lo, hi = scales[0], scales[-1]
            lines += ["", f"### host-local scaling: p50 at {hi} reservations ÷ p50 at {lo}", "",
                      "| verb | " + " | ".join(impls) + " |", "|---|" + "---|" * len(impls)]
            for verb in VERBS:
                cells = [ratio(pct(hl_all[hi][(m, verb)].wall, 50), pct(hl_all[lo][(m, verb)].wall, 50))
                         for m in impls]
                lines.append(f"| {verb} | " + " | ".join(cells) + " |")
    lines += ["", f"Total benchmark time: {time.time() - started:.0f} s."]
    report = "\n".join(lines) + "\n"
    print(report)
    if ns.out:
        Path(ns.out).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
