"""The runtime driver with real plugins (ours and the Go reference) in throw-away namespaces:
bridge chained with a recording pass-through plugin (T123), CHECK, GC of a stale attachment, DEL."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conformance.fakeplugin import fake_plugins
from conformance.netconf import conflist_from_bytes
from conformance.runtime import Attachment, Runtime
from tests.support.netns import Namespace, namespaces, run_in

pytestmark = [pytest.mark.root]


def _scenario(plugins: str, tail_dir: str, cache: str, data: str, ctrs: list[str]) -> dict[str, Any]:
    """Runs inside the host namespace; returns what the test asserts on."""
    from pyroute2 import IPRoute

    rt = Runtime([plugins, tail_dir], cache_dir=cache, timeout=30)
    supported = rt.version_info("bridge")
    version = max((v for v in supported if v in ("1.0.0", "1.1.0")), default="0.4.0")
    net = conflist_from_bytes(json.dumps({
        "cniVersion": version, "name": "rtreal",
        "plugins": [
            {"type": "bridge", "bridge": "rtbr0", "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": "10.55.0.0/24"}]]}},
            {"type": "tail", "capabilities": {"portMappings": True}},
        ]}).encode())
    rt.validate(net)
    a1, a2 = Attachment("ctr1", ctrs[0]), Attachment("ctr2", ctrs[1], capability_args={"portMappings": []})
    out1 = rt.add(net, a1)
    out2 = rt.add(net, a2)
    rt.check(net, a1)

    def veths() -> int:
        with IPRoute() as ipr:
            return sum(1 for link in ipr.get_links() if link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "veth")

    before = veths()
    rt.gc(net, [("ctr1", "eth0")])
    after_gc = veths()
    reserved_after_gc = sorted(os.listdir(os.path.join(data, "rtreal")))
    rt.delete(net, a1)
    return {"version": version, "raw1": out1.raw, "ip1": str(out1.result.ips[0].address.ip),
            "ip2": str(out2.result.ips[0].address.ip), "veths": (before, after_gc, veths()),
            "reserved_after_gc": reserved_after_gc,
            "reserved_end": sorted(os.listdir(os.path.join(data, "rtreal"))),
            "add_ms": out1.wall_ms, "calls": [c.command + " " + c.plugin_type for c in rt.last.calls]}


def test_driver_chains_checks_gcs_and_deletes_with_real_plugins(plugins: Path, tmp_path: Path, needs_root: None):
    fakes = fake_plugins(tmp_path / "tail")
    fakes.make("tail")
    cache, data = str(tmp_path / "cache"), str(tmp_path / "data")
    with namespaces(3, "pycni-rtr") as (host, c1, c2):
        got = run_in(host, _scenario, str(plugins), str(fakes.dir), cache, data, [c1.path, c2.path])

    # T123: the pass-through plugin saw bridge's result as prevResult, and capabilities → runtimeConfig
    tail_adds = fakes.calls("ADD")
    assert tail_adds[0]["config"]["prevResult"] == got["raw1"]
    assert tail_adds[0]["config"]["cniVersion"] == got["version"] and "runtimeConfig" not in tail_adds[0]["config"]
    assert tail_adds[1]["config"]["runtimeConfig"] == {"portMappings": []}
    # CHECK ran both plugins with the cached result
    (tail_check,) = fakes.calls("CHECK")
    assert tail_check["config"]["prevResult"]["ips"] == got["raw1"]["ips"]
    # GC deleted the stale attachment (ctr2): its veth and reservation are gone, ctr1's stay
    before, after_gc, end = got["veths"]
    assert (before, after_gc, end) == (2, 1, 0)
    assert got["ip1"] in got["reserved_after_gc"] and got["ip2"] not in got["reserved_after_gc"]
    assert got["ip1"] not in got["reserved_end"]
    dels = fakes.calls("DEL")
    assert [d["env"]["CNI_CONTAINERID"] for d in dels] == ["ctr2", "ctr1"]  # reverse order: tail first
    assert got["calls"] == ["DEL tail", "DEL bridge"]
    assert os.listdir(Path(cache) / "results") == []
