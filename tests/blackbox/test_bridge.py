"""The installed `bridge` executable, exec'd like a runtime inside a throw-away host namespace:
32 parallel ADDs then DELs on one bridge, interop with the reference plugins, masquerade end to end."""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.bridgenet import BridgeNet, bridge_net, destroy, make_net, tcp_reach
from tests.support.netns import Namespace, create, delete

PARALLEL = 32


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nsenter") is None:
        pytest.skip("needs root, iproute2 and nsenter for network namespaces")


@pytest.fixture
def net(plugin_dir: Path, tmp_path: Path) -> Iterator[BridgeNet]:
    with bridge_net(plugin_dir, tmp_path / "ipam", containers=1) as n:
        yield n


def _bin(plugin_dir: Path) -> str:
    return str(plugin_dir / "bridge")


def test_add_check_del_blackbox(net: BridgeNet, plugin_dir: Path) -> None:
    conf = net.config(isDefaultGateway=True)
    res = net.add(conf, binary=_bin(plugin_dir))
    assert res.ok, res
    assert res.stdout.endswith(b"\n") and res.json["ips"][0]["interface"] == 2
    assert net.check(conf, res.json, binary=_bin(plugin_dir)).stdout == b""
    out = net.delete({**conf, "prevResult": res.json}, binary=_bin(plugin_dir))
    assert out.ok and out.stdout == b""
    net.assert_clean()


def test_version_and_bad_env(net: BridgeNet, plugin_dir: Path) -> None:
    out = net.call("VERSION", b"", binary=_bin(plugin_dir))
    assert out.ok and "1.1.0" in out.json["supportedVersions"]
    out = net.call("ADD", net.config(), ifname="", binary=_bin(plugin_dir))
    assert out.returncode == 1 and out.json["code"] == 4


def test_failures_reach_the_runtime_with_their_codes(net: BridgeNet, plugin_dir: Path) -> None:
    """The executable prints CNI error JSON (exit 1) with the bridge's own codes, never 999."""
    binary = _bin(plugin_dir)
    c = net.containers[0]
    out = net.add(net.config(), netns="/run/netns/pycni-surely-missing-0", binary=binary)
    assert (out.returncode, out.json["code"]) == (1, 3) and "pycni-surely-missing-0" in out.json["msg"]
    c.ip("link", "add", "eth0", "type", "bridge")
    out = net.add(net.config(), binary=binary)
    assert (out.returncode, out.json["code"]) == (1, 120) and "'eth0' already exists" in out.json["msg"]
    c.ip("link", "del", "eth0")
    conf = net.config()
    res = net.add(conf, binary=binary)
    assert res.ok, res
    c.ip("addr", "flush", "dev", "eth0")
    out = net.check(conf, res.json, binary=binary)
    assert (out.returncode, out.json["code"]) == (1, 126) and "Failed to match addr" in out.json["msg"]
    assert net.delete({**conf, "prevResult": res.json}, binary=binary).ok
    net.host.ip("link", "del", net.bridge)
    net.host.ip("link", "add", net.bridge, "type", "veth", "peer", "name", "other0")
    out = net.add(net.config(), binary=binary)
    assert (out.returncode, out.json["code"]) == (1, 121) and "is not a bridge" in out.json["msg"]
    net.host.ip("link", "del", net.bridge)
    net.assert_clean()


def test_parallel_adds_then_dels_on_one_bridge(plugin_dir: Path, tmp_path: Path) -> None:
    """32 containers at once onto a bridge that does not exist yet: no error, then nothing left."""
    net = make_net(plugin_dir, tmp_path / "ipam", containers=0)
    containers: list[Namespace] = []
    try:
        containers = [create("pycni-par") for _ in range(PARALLEL)]
        net.containers = containers
        conf = net.config(isGateway=True, isDefaultGateway=True)
        conf["ipam"] = net.ipam("10.77.0.0/24", "fd00:77::/64")
        with ThreadPoolExecutor(PARALLEL) as pool:
            adds = list(pool.map(lambda i: net.add(conf, cid=f"par-{i}", netns=containers[i], binary=_bin(plugin_dir)),
                                 range(PARALLEL)))
        failed = [str(r) for r in adds if not r.ok]
        assert failed == [], failed[:3]
        v4 = {r.json["ips"][0]["address"] for r in adds}
        assert len(v4) == PARALLEL  # no duplicate addresses
        assert len(net.host_veths()) == PARALLEL
        with ThreadPoolExecutor(PARALLEL) as pool:
            dels = list(pool.map(lambda i: net.delete({**conf, "prevResult": adds[i].json}, cid=f"par-{i}",
                                                      netns=containers[i], binary=_bin(plugin_dir)), range(PARALLEL)))
        assert [str(r) for r in dels if not r.ok] == []
        net.assert_clean()
        assert net.addrs(net.host, net.bridge).count("10.77.0.1/24") == 1
    finally:
        for ns in containers:
            delete(ns)
        net.containers = []
        destroy(net)


# -- interop with Debian's containernetworking-plugins (the Go reference) ---------------------------

def test_our_bridge_with_reference_host_local(net: BridgeNet, plugin_dir: Path, reference_dir: Path,
                                              tmp_path: Path) -> None:
    net.path = f"{reference_dir}"
    conf = net.config("1.0.0", isGateway=True)  # Debian's reference (v1.1.1) stops at 1.0.0
    res = net.add(conf, binary=_bin(plugin_dir))
    assert res.ok, res
    assert res.json["ips"][0]["address"] == "10.77.0.2/24"
    assert (net.data_dir / net.name / "10.77.0.2").read_text() in ("c1\r\neth0", "c1\neth0")  # by version
    assert net.check(conf, res.json, binary=_bin(plugin_dir)).ok
    assert net.delete(conf, binary=_bin(plugin_dir)).ok
    net.assert_clean()


def test_our_bridge_with_reference_static(net: BridgeNet, plugin_dir: Path, reference_dir: Path) -> None:
    if not (reference_dir / "static").is_file():
        pytest.skip("the reference static IPAM is not installed")
    net.path = str(reference_dir)
    conf = net.config("1.0.0", isGateway=True)
    conf["ipam"] = {"type": "static", "addresses": [{"address": "10.77.0.50/24", "gateway": "10.77.0.1"}],
                    "routes": [{"dst": "192.0.2.0/24"}]}
    res = net.add(conf, binary=_bin(plugin_dir))
    assert res.ok, res
    assert res.json["ips"] == [{"interface": 2, "address": "10.77.0.50/24", "gateway": "10.77.0.1"}]
    routes = net.routes(net.containers[0])
    assert any(r["dst"] == "192.0.2.0/24" and r.get("gateway") == "10.77.0.1" for r in routes)
    assert tcp_reach(net.containers[0], net.host, "10.77.0.1")
    assert net.check(conf, res.json, binary=_bin(plugin_dir)).ok
    assert net.delete(conf, binary=_bin(plugin_dir)).ok
    net.assert_clean()


def test_reference_bridge_with_our_host_local(net: BridgeNet, plugin_dir: Path, reference_dir: Path,
                                              tmp_path: Path) -> None:
    """The Go bridge delegating to our host-local found first in CNI_PATH."""
    if not (reference_dir / "bridge").is_file():
        pytest.skip("the reference bridge is not installed")
    net.path = f"{plugin_dir}:{reference_dir}"
    conf = net.config("1.0.0", isGateway=True)
    ref_bridge = str(reference_dir / "bridge")
    res = net.add(conf, binary=ref_bridge)
    assert res.ok, res
    assert res.json["ips"][0]["address"] == "10.77.0.2/24"
    assert net.reservations()  # written by our host-local
    assert net.check(conf, res.json, binary=ref_bridge).ok
    # and our bridge CHECKs and DELs what the reference made
    assert net.check(conf, res.json, binary=_bin(plugin_dir)).ok
    assert net.delete(conf, binary=_bin(plugin_dir)).ok
    net.assert_clean()


# -- masquerade end to end, once per backend ----------------------------------------------------------

@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ipmasq_add_del(net: BridgeNet, plugin_dir: Path, backend: str) -> None:
    from bridge_plugin.handlers import firewall

    fw = firewall()
    if fw is None:
        pytest.skip("bridge_plugin.firewall is not installed yet")
    tool = "iptables" if backend == "iptables" else "nft"
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    conf = net.config(isGateway=True, ipMasq=True, ipMasqBackend=backend)
    conf["ipam"] = net.ipam("10.77.0.0/24", "fd00:77::/64")
    res = net.add(conf, cid="masq1", binary=_bin(plugin_dir))
    assert res.ok, res
    rules = _rules(net, backend)
    assert "10.77.0.2" in rules and "masquerade" in rules.lower()
    assert net.delete({**conf, "prevResult": res.json}, cid="masq1", binary=_bin(plugin_dir)).ok
    assert "10.77.0.2" not in _rules(net, backend)
    net.assert_clean()


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ipmasq_del_with_netns_gone_removes_rules(net: BridgeNet, plugin_dir: Path, backend: str) -> None:
    from bridge_plugin.handlers import firewall

    if firewall() is None:
        pytest.skip("bridge_plugin.firewall is not installed yet")
    conf = net.config(isGateway=True, ipMasq=True, ipMasqBackend=backend)
    res = net.add(conf, cid="gone1", binary=_bin(plugin_dir))
    assert res.ok, res
    delete(net.containers[0])
    out = net.delete(conf, cid="gone1", netns="", binary=_bin(plugin_dir))  # no prevResult, no netns
    assert out.ok, out
    assert "10.77.0.2" not in _rules(net, backend)
    net.containers.clear()


def _rules(net: BridgeNet, backend: str) -> str:
    if backend == "iptables":
        return net.host.exec(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    return net.host.exec(["nft", "list", "ruleset"], capture_output=True, text=True).stdout


def test_result_is_valid_json_per_version(net: BridgeNet, plugin_dir: Path) -> None:
    for version in ("0.3.1", "1.1.0"):
        conf = net.config(version)
        res = net.add(conf, cid=f"v{version.replace('.', '')}", binary=_bin(plugin_dir))
        assert res.ok, res
        assert json.loads(res.stdout)["cniVersion"] == version
        assert net.delete(conf, cid=f"v{version.replace('.', '')}", binary=_bin(plugin_dir)).ok


def _need_firewall() -> None:
    from bridge_plugin.handlers import firewall

    if firewall() is None:
        pytest.skip("bridge_plugin.firewall is not installed yet")
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed")


def test_macspoofchk_add_del(net: BridgeNet, plugin_dir: Path) -> None:
    _need_firewall()
    conf = net.config(l3=False, macspoofchk=True)
    res = net.add(conf, cid="spoof1", binary=_bin(plugin_dir))
    assert res.ok, res
    ruleset = _rules(net, "nftables")
    assert "spoof1" in ruleset and res.json["interfaces"][2]["mac"] in ruleset
    assert net.delete(conf, cid="spoof1", binary=_bin(plugin_dir)).ok
    assert "spoof1" not in _rules(net, "nftables")
    net.assert_clean()


def test_gc_removes_stale_firewall_rules(plugin_dir: Path, tmp_path: Path) -> None:
    _need_firewall()
    net = make_net(plugin_dir, tmp_path / "ipam", containers=2)
    try:
        conf = net.config(isGateway=True, ipMasq=True, ipMasqBackend="nftables", macspoofchk=True)
        a, b = net.containers
        assert net.add(conf, cid="live", netns=a, binary=_bin(plugin_dir)).ok
        assert net.add(conf, cid="stale", netns=b, binary=_bin(plugin_dir)).ok
        gc = {**conf, "cni.dev/valid-attachments": [{"containerID": "live", "ifname": "eth0"}]}
        out = net.call("GC", gc, cid="", netns="", ifname="", binary=_bin(plugin_dir))
        assert out.ok, out
        rules = _rules(net, "nftables")
        assert "stale" not in rules and "10.77.0.3" not in rules
        assert "live" in rules and "10.77.0.2" in rules
        assert not any(r.startswith("10.77.0.3") for r in net.reservations())
        assert net.delete(conf, cid="live", netns=a, binary=_bin(plugin_dir)).ok
        assert net.delete(conf, cid="stale", netns=b, binary=_bin(plugin_dir)).ok
        net.assert_clean()
    finally:
        destroy(net)


def test_status_50_when_masquerade_is_impossible(net: BridgeNet, plugin_dir: Path, tmp_path: Path) -> None:
    _need_firewall()
    empty = tmp_path / "empty-path"
    empty.mkdir()
    conf = net.config(ipMasq=True)
    out = net.call("STATUS", conf, cid="", netns="", ifname="", binary=_bin(plugin_dir),
                   extra={"PATH": str(empty)})
    assert out.returncode == 1 and out.json["code"] == 50, out
    ok = net.call("STATUS", conf, cid="", netns="", ifname="", binary=_bin(plugin_dir))
    assert ok.ok, ok
