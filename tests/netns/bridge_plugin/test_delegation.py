"""The IPAM delegate sees the bridge's exact stdin and env; its answers and errors are honoured."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bridge_plugin.errors import BridgeCode
from tests.support.bridgenet import BridgeNet

FAKE = """#!/bin/sh
# records every call, then answers according to FAKE_IPAM_MODE
dir="$FAKE_IPAM_LOG"
n=$(ls "$dir" | wc -l)
cat > "$dir/$n.$CNI_COMMAND.stdin"
env | grep -E '^CNI_' | sort > "$dir/$n.$CNI_COMMAND.env"
[ "$CNI_COMMAND" = "ADD" ] || exit 0
case "$FAKE_IPAM_MODE" in
  noips) echo '{"cniVersion": "1.1.0"}' ;;
  noversion) echo '{"ips": [{"address": "10.77.0.40/24", "gateway": "10.77.0.1"}]}' ;;
  busy) echo '{"cniVersion": "1.1.0", "code": 11, "msg": "try later", "details": "fake"}'; exit 1 ;;
esac
"""


@pytest.fixture
def fake_ipam(net: BridgeNet, tmp_path: Path) -> Path:
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    script = bin_dir / "fake-ipam"
    script.write_text(FAKE)
    script.chmod(0o755)
    log = tmp_path / "calls"
    log.mkdir()
    net.path = f"{bin_dir}:{net.bin_dir}"
    return log


def _calls(log: Path) -> list[str]:
    return [p.name.split(".")[1] for p in sorted(log.glob("*.stdin"), key=lambda p: int(p.name.split(".")[0]))]


def _conf(net: BridgeNet) -> dict:
    return net.config("1.0.0", isGateway=True, ipam={"type": "fake-ipam", "anything": [1, 2]})


def test_no_ips_fails_and_releases(net: BridgeNet, fake_ipam: Path) -> None:
    conf = _conf(net)
    res = net.add(conf, args="IgnoreUnknown=1;K8S_POD_NAME=p",
                  extra={"FAKE_IPAM_LOG": str(fake_ipam), "FAKE_IPAM_MODE": "noips"})
    assert not res.ok and res.json["msg"] == "IPAM plugin returned missing IP config"
    assert res.json["code"] == BridgeCode.IPAM_NO_IP_CONFIG == 125
    assert _calls(fake_ipam) == ["ADD", "DEL"]
    sent = json.dumps(conf).encode()
    assert (fake_ipam / "0.ADD.stdin").read_bytes() == sent  # byte for byte
    env = (fake_ipam / "0.ADD.env").read_text()
    assert "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=p" in env and "CNI_CONTAINERID=c1" in env
    assert f"CNI_NETNS={net.containers[0].path}" in env and "CNI_IFNAME=eth0" in env
    net.assert_clean()


def test_result_without_version_is_read_in_the_config_version(net: BridgeNet, fake_ipam: Path) -> None:
    extra = {"FAKE_IPAM_LOG": str(fake_ipam), "FAKE_IPAM_MODE": "noversion"}
    conf = _conf(net)
    res = net.add(conf, extra=extra)
    assert res.ok, res
    assert res.json["ips"] == [{"interface": 2, "address": "10.77.0.40/24", "gateway": "10.77.0.1"}]
    assert net.check(conf, res.json, extra=extra).ok
    assert net.delete(conf, extra=extra).ok
    assert _calls(fake_ipam) == ["ADD", "CHECK", "DEL"]
    net.assert_clean()


def test_delegate_error_code_passes_through(net: BridgeNet, fake_ipam: Path) -> None:
    res = net.add(_conf(net), extra={"FAKE_IPAM_LOG": str(fake_ipam), "FAKE_IPAM_MODE": "busy"})
    assert not res.ok
    assert (res.json["code"], res.json["msg"], res.json.get("details")) == (11, "try later", "fake")
    assert _calls(fake_ipam) == ["ADD"]  # a failed IPAM ADD is not followed by DEL
    net.assert_clean()


def test_gc_and_status_are_delegated(net: BridgeNet, fake_ipam: Path) -> None:
    extra = {"FAKE_IPAM_LOG": str(fake_ipam), "FAKE_IPAM_MODE": ""}
    conf = net.config(ipam={"type": "fake-ipam"})
    assert net.call("GC", conf, cid="", netns="", ifname="", extra=extra).ok
    assert net.call("STATUS", conf, cid="", netns="", ifname="", extra=extra).ok
    assert _calls(fake_ipam) == ["GC", "STATUS"]
    assert os.path.exists(fake_ipam / "0.GC.env")
