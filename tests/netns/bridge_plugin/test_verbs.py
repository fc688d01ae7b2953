"""DEL (idempotent, netns gone, no netns), CHECK (what it catches), GC and STATUS."""
from __future__ import annotations

import json
import time

from bridge_plugin.errors import BridgeCode
from tests.support.bridgenet import BridgeNet
from tests.support.netns import delete as delete_ns


def test_del_twice(net: BridgeNet) -> None:
    conf = net.config(isGateway=True)
    res = net.add(conf)
    assert res.ok, res
    full = {**conf, "prevResult": res.json}
    assert net.delete(full).ok
    second = net.delete(full)
    assert second.ok and second.stdout == b""
    net.assert_clean()


def test_del_with_netns_gone(net: BridgeNet) -> None:
    conf = net.config()
    res = net.add(conf)
    assert res.ok, res
    delete_ns(net.containers[0])  # the kernel removes the veth pair with it, once the namespace is destroyed
    assert net.delete({**conf, "prevResult": res.json}).ok
    assert net.reservations() == []
    deadline = time.monotonic() + 5  # namespace destruction runs asynchronously in the kernel (cleanup_net)
    while net.host_veths() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert net.host_veths() == []
    net.containers.clear()


def test_del_with_empty_netns(net: BridgeNet) -> None:
    conf = net.config()
    res = net.add(conf)
    assert res.ok, res
    out = net.delete(conf, netns="")
    assert out.ok, out
    assert net.reservations() == []
    # the container link is the runtime's to remove with the namespace; a DEL with the path removes it
    assert net.delete(conf).ok
    net.assert_clean()


def test_del_of_unknown_attachment_succeeds(net: BridgeNet) -> None:
    assert net.delete(net.config(), cid="never-added").ok


def test_del_keeps_the_bridge_and_other_attachments(net2: BridgeNet) -> None:
    conf = net2.config(isGateway=True)
    a, b = net2.containers
    assert net2.add(conf, cid="a", netns=a).ok
    rb = net2.add(conf, cid="b", netns=b)
    assert rb.ok
    assert net2.delete(conf, cid="a", netns=a).ok
    assert net2.link(b, "eth0") is not None
    assert net2.check(conf, rb.json, cid="b", netns=b).ok
    assert net2.delete(conf, cid="b", netns=b).ok
    assert net2.link(net2.host, net2.bridge) is not None


def test_del_with_invalid_config_still_cleans_up(net: BridgeNet) -> None:
    conf = net.config()
    assert net.add(conf).ok
    assert net.delete({**conf, "vlan": 9999, "mtu": 1}).ok
    net.assert_clean()


def test_check_catches_drift(net: BridgeNet) -> None:
    conf = net.config(isDefaultGateway=True)
    res = net.add(conf)
    assert res.ok, res
    result = res.json
    c = net.containers[0]
    # no prevResult
    out = net.call("CHECK", conf)
    assert not out.ok and out.json["msg"] == "Required prevResult missing" and out.json["code"] == 7
    # a host-side MAC change is tolerated (reference #808)
    net.host.ip("link", "set", result["interfaces"][1]["name"], "address", "02:11:22:33:44:55")
    assert net.check(conf, result).ok
    # a missing route is caught
    c.ip("route", "del", "default")
    out = net.check(conf, result)
    assert not out.ok and "not found in routing table" in out.json["msg"]
    assert out.json["code"] == BridgeCode.CHECK_MISMATCH
    c.ip("route", "add", "default", "via", "10.77.0.1")
    assert net.check(conf, result).ok
    # a missing address is caught
    c.ip("addr", "del", "10.77.0.2/24", "dev", "eth0")
    out = net.check(conf, result)
    assert not out.ok and "Failed to match addr 10.77.0.2/24" in out.json["msg"]
    assert out.json["code"] == BridgeCode.CHECK_MISMATCH
    # the port leaving the bridge is caught
    net.host.ip("link", "set", result["interfaces"][1]["name"], "nomaster")
    c.ip("addr", "add", "10.77.0.2/24", "dev", "eth0")
    c.ip("route", "replace", "default", "via", "10.77.0.1")
    out = net.check(conf, result)
    assert not out.ok and "veth created for bridge" in out.json["msg"]
    assert out.json["code"] == BridgeCode.CHECK_MISMATCH
    # the container interface gone
    c.ip("link", "del", "eth0")
    out = net.check(conf, result)
    assert not out.ok and "eth0" in out.json["msg"]
    assert out.json["code"] == BridgeCode.CHECK_MISMATCH
    assert net.delete(conf).ok
    net.assert_clean()


def test_check_with_netns_gone_is_container_unknown(net: BridgeNet) -> None:
    conf = net.config()
    res = net.add(conf)
    assert res.ok, res
    c = net.containers[0]
    delete_ns(c)
    out = net.check(conf, res.json)
    assert not out.ok and out.json["code"] == 3 and c.path in out.json["msg"]
    assert net.delete({**conf, "prevResult": res.json}).ok
    assert net.reservations() == [] and net.host_veths() == []
    net.containers.clear()


def test_check_wrong_sandbox(net: BridgeNet) -> None:
    conf = net.config(l3=False)
    res = net.add(conf)
    assert res.ok
    result = json.loads(json.dumps(res.json))
    result["interfaces"][2]["sandbox"] = "/run/netns/elsewhere"
    out = net.check(conf, result)
    assert not out.ok and "doesn't match configured netns" in out.json["msg"]
    assert out.json["code"] == BridgeCode.CHECK_MISMATCH
    assert net.delete(conf).ok


def test_gc_releases_stale_reservations(net2: BridgeNet) -> None:
    conf = net2.config()
    a, b = net2.containers
    assert net2.add(conf, cid="live", netns=a).ok
    assert net2.add(conf, cid="stale", netns=b).ok
    gc = {**conf, "cni.dev/valid-attachments": [{"containerID": "live", "ifname": "eth0"}]}
    out = net2.call("GC", gc, cid="", netns="", ifname="")
    assert out.ok, out
    assert net2.reservations() == ["10.77.0.2"] or [r for r in net2.reservations() if "stale" in r] == []
    assert not any("stale" in r for r in net2.reservations())
    assert net2.delete(conf, cid="live", netns=a).ok
    assert net2.delete(conf, cid="stale", netns=b).ok
    net2.assert_clean()


def test_status(net: BridgeNet) -> None:
    assert net.call("STATUS", net.config(), cid="", netns="", ifname="").ok
    assert net.call("STATUS", net.config(l3=False), cid="", netns="", ifname="").ok
    bad = net.config()
    bad["ipam"]["type"] = "no-such-ipam"
    out = net.call("STATUS", bad, cid="", netns="", ifname="")
    assert not out.ok and "no-such-ipam" in out.json["msg"]


def test_status_and_gc_need_1_1_0(net: BridgeNet) -> None:
    out = net.call("STATUS", net.config("1.0.0"), cid="", netns="", ifname="")
    assert not out.ok and out.json["code"] == 1


def _add_del_counting_fds(env_add: dict, env_del: dict, stdin: bytes) -> tuple[int, int, int]:
    import os

    from bridge_plugin.main import PLUGIN
    from shared import skel

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    skel.run(PLUGIN, env_add, lambda: stdin)  # warm up lazy imports
    skel.run(PLUGIN, env_del, lambda: stdin)
    before = fds()
    codes = 0
    for _ in range(3):
        codes += skel.run(PLUGIN, env_add, lambda: stdin).exit_code
        codes += skel.run(PLUGIN, env_del, lambda: stdin).exit_code
    return before, fds(), codes


def test_no_fd_leak_across_invocations(net: BridgeNet) -> None:
    """A long-lived process (the warm `pycni serve` path) runs many ADD/DEL: sockets and fds are closed."""
    from tests.support.netns import run_in

    conf = json.dumps(net.config(isGateway=True)).encode()
    path = net.containers[0].path
    before, after, codes = run_in(net.host, _add_del_counting_fds, net.env("ADD", "c1", path),
                                  net.env("DEL", "c1", path), conf)
    assert codes == 0
    assert after == before
    net.assert_clean()
