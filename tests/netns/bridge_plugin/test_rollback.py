"""A failure at any ADD step undoes everything that ADD did (the reference leaves the veth behind)."""
from __future__ import annotations

import shutil

import pytest

from bridge_plugin.errors import BridgeCode
from bridge_plugin.handlers import ADD_STEPS, FAIL_ENV, firewall
from tests.support.bridgenet import BridgeNet

FIREWALL_STEPS = {"spoofcheck", "masquerade"}


def _firewall_text(net: BridgeNet) -> str:
    out = ""
    if shutil.which("nft"):
        out += net.host.exec(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    if shutil.which("iptables-save"):
        out += net.host.exec(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    return out


@pytest.mark.parametrize("step", ADD_STEPS)
def test_rollback_after_each_step(net: BridgeNet, step: str) -> None:
    with_fw = firewall() is not None
    if step in FIREWALL_STEPS and not with_fw:
        pytest.skip("bridge_plugin.firewall is not installed yet: no firewall step to fail")
    conf = net.config(isGateway=True, ipMasq=with_fw, macspoofchk=with_fw)
    conf["ipam"] = net.ipam("10.77.0.0/24", "fd00:77::/64")
    cid = "rollback-" + step
    res = net.add(conf, cid=cid, extra={FAIL_ENV: step})
    assert not res.ok
    assert res.json["msg"] == f"injected failure after step {step!r}"
    assert res.json["code"] == BridgeCode.INJECTED_FAILURE
    net.assert_clean()
    assert cid not in _firewall_text(net), "firewall rules of the failed ADD are left"
    # the same attachment can be added again at once: nothing stale blocks it
    res = net.add(conf, cid=cid)
    assert res.ok, res
    assert net.delete({**conf, "prevResult": res.json}, cid=cid).ok
    net.assert_clean()
    assert cid not in _firewall_text(net)


def test_ipam_failure_leaves_nothing(net: BridgeNet) -> None:
    conf = net.config()
    conf["ipam"]["type"] = "no-such-ipam"
    res = net.add(conf)
    assert not res.ok and 'failed to find plugin "no-such-ipam"' in res.json["msg"]
    net.assert_clean()


def test_ipam_error_passes_through_and_rolls_back(net2: BridgeNet) -> None:
    conf = net2.config()
    conf["ipam"]["ranges"] = [[{"subnet": "10.77.0.0/30"}]]  # one usable address (.2; .1 is the gateway)
    a, b = net2.containers
    first = net2.add(conf, cid="first", netns=a)
    assert first.ok, first
    second = net2.add(conf, cid="second", netns=b)
    assert not second.ok
    assert "10.77.0.0/30" in second.json["msg"] or "no IP addresses available" in second.json["msg"], second.json
    assert net2.link(b, "eth0") is None and len(net2.host_veths()) == 1
    assert net2.delete(conf, cid="first", netns=a).ok
    net2.assert_clean()
