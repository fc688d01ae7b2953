"""64 runtimes calling the installed host-local at once on one network."""
from __future__ import annotations

import json
import os
import subprocess

from tests.support.plugin import cni_env

N = 64


def start(binary, command, config, cid):
    env = cni_env(command, cid, "/var/run/netns/pycni-hl-none", "eth0", "", "/nonexistent")
    proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdin.write(json.dumps(config).encode())
    proc.stdin.close()
    return proc


def finish(proc):
    out = proc.stdout.read()
    proc.stderr.read()
    assert proc.wait(timeout=120) == 0, out
    return out


def test_64_parallel_adds_then_dels(plugin_dir, tmp_path):
    binary = str(plugin_dir / "host-local")
    config = {"cniVersion": "1.1.0", "name": "storm",
              "ipam": {"type": "host-local", "dataDir": str(tmp_path),
                       "ranges": [[{"subnet": "10.20.0.0/24"}], [{"subnet": "fd00:20::/64"}]]}}
    cids = [f"ctr-{i:02d}" for i in range(N)]
    adds = [start(binary, "ADD", config, cid) for cid in cids]
    results = {cid: json.loads(finish(p)) for cid, p in zip(cids, adds)}
    v4 = {cid: r["ips"][0]["address"].split("/")[0] for cid, r in results.items()}
    v6 = {cid: r["ips"][1]["address"].split("/")[0] for cid, r in results.items()}
    assert len(set(v4.values())) == N and len(set(v6.values())) == N
    d = tmp_path / "storm"
    for cid in cids:
        assert (d / v4[cid]).read_bytes() == f"{cid}\r\neth0".encode()
        assert (d / v6[cid]).read_bytes() == f"{cid}\r\neth0".encode()
    assert len(os.listdir(d)) == 2 * N + 3  # + lock and two cursors
    dels = [start(binary, "DEL", config, cid) for cid in cids]
    for p in dels:
        assert finish(p) == b""
    assert sorted(os.listdir(d)) == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]
