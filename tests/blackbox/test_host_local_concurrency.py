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


def test_sigkill_mid_add_leaves_no_empty_or_partial_reservation(plugin_dir, tmp_path):
    """Kill ADDs at random moments: every reservation file that exists is complete, and the
    network stays usable (a later ADD succeeds, GC with no valid attachments empties it)."""
    import random
    import signal
    import time

    binary = str(plugin_dir / "host-local")
    config = {"cniVersion": "1.1.0", "name": "crashy",
              "ipam": {"type": "host-local", "dataDir": str(tmp_path), "ranges": [[{"subnet": "10.30.0.0/24"}]]}}
    rng = random.Random(1234)
    for round_ in range(24):
        p = start(binary, "ADD", config, f"k{round_}")
        time.sleep(rng.uniform(0.0, 0.15))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        p.stdout.close()
        p.stderr.close()
    d = tmp_path / "crashy"
    if d.exists():
        for name in os.listdir(d):
            if name[0].isdigit() and not name.startswith("last"):
                content = (d / name).read_bytes()
                assert content.startswith(b"k") and content.endswith(b"\r\neth0"), (name, content)
    after = json.loads(finish(start(binary, "ADD", config, "survivor")))
    assert after["ips"][0]["address"].startswith("10.30.0.")
    assert not [n for n in os.listdir(d) if n.startswith(".pycni-tmp")]
    gc = start(binary, "GC", config, "gc")
    assert finish(gc) == b""
    assert sorted(os.listdir(d)) == ["last_reserved_ip.0", "lock"]
