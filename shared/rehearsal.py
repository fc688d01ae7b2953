"""`pycni serve`'s warm-up: one ADD, CHECK and DEL of each plugin in private network namespaces.

Importing a module is not all a first call pays for: pyroute2 compiles its message maps, sockets
and event loops are set up, host-local and the firewall take their first code paths. Workers are
forks of the server, so whatever the server has never done, every new worker does again.
Measured: a bridge ADD in a worker of a server that rehearsed it costs about 5 ms less CPU than
in one of a server that only imported the plugins (docs/performance.md).

Everything happens in two namespaces made here with unshare(2) for this thread only (a "host"
and a "container"), which vanish when the last fd to them is closed; state goes to a temporary
directory. The server's own namespace is never touched: if the new namespace cannot be made,
or is not a new one, nothing runs.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable

from .server import CLONE_NEWNET, _libc_call

NETWORK = "pycni-rehearsal"
SUBNET = "10.255.255.0/29"


def _own_netns() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def _new_netns(not_this: int) -> int:
    """unshare this thread into a new network namespace; an fd for it. Refuses to return the old one."""
    _libc_call("unshare", CLONE_NEWNET)
    fd = _own_netns()
    if os.fstat(fd).st_ino == os.fstat(not_this).st_ino:
        os.close(fd)
        raise OSError("unshare(CLONE_NEWNET) left the thread in its namespace")
    return fd


def _requests(bin_dir: str, data_dir: str, netns: str) -> list[tuple[str, dict, dict[str, str], bool]]:
    """(executable, config, environment, expected to succeed) per call, in order; CHECK and DEL get
    ADD's result. The last call is a rejected config, so the error path is warm too."""
    ipam = {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": SUBNET}]]}
    bridge = {"cniVersion": "1.1.0", "name": NETWORK, "type": "bridge", "bridge": "pycni-rh0",
              "isGateway": True, "ipMasq": True, "ipam": ipam}
    host_local = {"cniVersion": "1.1.0", "name": NETWORK + "-ipam", "type": "host-local", "ipam": ipam}
    bad = {"cniVersion": "1.1.0", "name": NETWORK, "type": "host-local",
           "ipam": {"type": "host-local", "ranges": [[{"subnet": "not-a-subnet"}]]}}
    calls = []
    env: dict[str, str] = {}
    for name, conf, cid in (("bridge", bridge, "rehearsal-bridge"), ("host-local", host_local, "rehearsal-ipam")):
        for verb in ("ADD", "CHECK", "DEL"):
            env = {"CNI_COMMAND": verb, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
                   "CNI_PATH": bin_dir, "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
            calls.append((name, conf, env, True))
    calls.append(("host-local", bad, {**env, "CNI_COMMAND": "ADD"}, False))
    return calls


def _run_calls(plugin_for: Callable[[str], object], bin_dir: str, data_dir: str, netns: str) -> list[str]:
    from .skel import run

    problems = []
    prev: dict[str, object] = {}
    for name, conf, env, expect_ok in _requests(bin_dir, data_dir, netns):
        verb = env["CNI_COMMAND"]
        body = dict(conf)
        if verb != "ADD" and name in prev:
            body["prevResult"] = prev[name]
        outcome = run(plugin_for(name), env, lambda: json.dumps(body).encode())  # type: ignore[arg-type]
        if (outcome.exit_code == 0) != expect_ok:
            problems.append(f"{name} {verb} exited {outcome.exit_code}: "
                            f"{outcome.stdout.decode(errors='replace').strip()}")
        elif expect_ok and verb == "ADD":
            prev[name] = json.loads(outcome.stdout)
    return problems


def rehearse() -> list[str]:
    """Run the calls; returns what went wrong (an empty list when all succeeded). Never raises
    except when it cannot return this thread to its own namespace, where serving would be wrong."""
    from . import handoff, invoke
    from .handoff import plugin_object
    from .install import install

    own = _own_netns()
    tmp = tempfile.mkdtemp(prefix="pycni-rehearsal-")
    fds: list[int] = []
    saved = (invoke.in_process, handoff.released_after_reply)
    try:
        bin_dir = os.path.join(tmp, "bin")
        install(bin_dir)  # the server's own launchers, so bridge delegates in-process as in a worker
        invoke.in_process = handoff.InProcess(None, "bridge", os.path.join(bin_dir, "bridge"))
        handoff.released_after_reply = []
        container = _new_netns(own)
        fds.append(container)
        fds.append(_new_netns(own))  # the "host" namespace: this thread stays in it for the calls
        plugins = {name: plugin_object(name) for name in ("bridge", "host-local")}
        return _run_calls(plugins.__getitem__, bin_dir, os.path.join(tmp, "data"),
                          f"/proc/{os.getpid()}/fd/{container}")
    except Exception as e:  # noqa: BLE001 - a warm-up that cannot run is skipped, not fatal
        return [f"skipped: {e}"]
    finally:
        try:
            _libc_call("setns", own, CLONE_NEWNET)
        finally:
            os.close(own)
        kept = handoff.released_after_reply or []
        invoke.in_process, handoff.released_after_reply = saved
        for sock in kept:
            sock.close()
        for fd in fds:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
