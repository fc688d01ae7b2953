"""Rules the real reference bridge (Debian's containernetworking-plugins) writes are removed by our DEL/GC.

The reference runs inside a throw-away "host" namespace (nsenter) with its own host-local store in a tmp
dir; our teardown/GC then runs in the same namespace.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

import bridge_plugin.firewall as fw
from bridge_plugin.firewall._model import Attachment, ref_ipt_chain, spoof_iface_chain
from tests.support.netns import Namespace, namespaces, run_in
from tests.support.plugin import cni_env

from fw_netns_support import ipt_lines, nft_chains, require, tools_for

NETWORK = "refnet"


@pytest.fixture
def world(reference_dir: Path) -> Iterator[tuple[Namespace, Namespace, Namespace]]:
    require([*tools_for("iptables"), "nft"])
    with namespaces(3, "pycni-fwr") as made:
        yield made[0], made[1], made[2]


def reference_add(ref_dir: Path, host: Namespace, container: Namespace, cid: str, data_dir: Path) -> Any:
    config = {"cniVersion": "0.4.0", "name": NETWORK, "type": "bridge", "bridge": "cniref0", "isGateway": True,
              "ipMasq": True, "macspoofchk": True,
              "ipam": {"type": "host-local", "subnet": "10.66.0.0/24", "dataDir": str(data_dir)}}
    env = cni_env("ADD", cid, container.path, "eth0", path=str(ref_dir))
    proc = subprocess.run(["nsenter", f"--net={host.path}", "--", str(ref_dir / "bridge")],
                          input=json.dumps(config).encode(), env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def has_ref_chain(host: Namespace, cid: str) -> bool:
    return any(ref_ipt_chain(NETWORK, cid) in line for line in ipt_lines(host))


def test_reference_rules_removed_by_teardown_and_gc(world: tuple[Namespace, Namespace, Namespace],
                                                   reference_dir: Path, tmp_path: Path) -> None:
    host, c1, c2 = world
    reference_add(reference_dir, host, c1, "refcid1", tmp_path)
    reference_add(reference_dir, host, c2, "refcid2", tmp_path)
    a1, a2 = Attachment(NETWORK, "refcid1", "eth0"), Attachment(NETWORK, "refcid2", "eth0")
    assert has_ref_chain(host, "refcid1") and has_ref_chain(host, "refcid2")
    assert {spoof_iface_chain(a1), spoof_iface_chain(a2)} <= nft_chains(host, "bridge", "nat")

    # DEL without IPs (the link is already gone) still finds the reference's rules by their tags
    run_in(host, fw.teardown_masquerade, a1, [])
    run_in(host, fw.teardown_spoofcheck, a1)
    assert not has_ref_chain(host, "refcid1") and has_ref_chain(host, "refcid2")
    assert spoof_iface_chain(a1) not in nft_chains(host, "bridge", "nat")

    # GC: refcid2 is still valid, so nothing goes; once its netns (and so its veth) is gone and it is no
    # longer valid, both its masquerade chain and its spoof check go
    run_in(host, fw.gc_masquerade, NETWORK, frozenset({("refcid2", "eth0")}))
    run_in(host, fw.gc_spoofcheck, NETWORK, frozenset({("refcid2", "eth0")}))
    assert has_ref_chain(host, "refcid2") and spoof_iface_chain(a2) in nft_chains(host, "bridge", "nat")
    c2.ip("link", "del", "eth0")
    run_in(host, fw.gc_masquerade, NETWORK, frozenset())
    run_in(host, fw.gc_spoofcheck, NETWORK, frozenset())
    assert not has_ref_chain(host, "refcid2")
    assert nft_chains(host, "bridge", "nat") == {"PREROUTING"}
