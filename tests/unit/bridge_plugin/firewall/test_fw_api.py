"""The contract the bridge handlers call: backend validation and selection, error mapping of commands."""
from __future__ import annotations

from ipaddress import ip_interface
from dataclasses import dataclass, field
from typing import Any, Sequence

import pytest

import bridge_plugin.firewall as fw
from bridge_plugin.firewall import _exec
from shared.errors import CNIError, ErrorCode


class FakeDriver:
    def __init__(self, name: str, works: bool, log: list[tuple[str, ...]], fail: bool = False) -> None:
        self.name, self.works, self.log, self.fail = name, works, log, fail
        self.why_unusable = "" if works else f"{name} is broken here"

    def usable(self) -> bool:
        self.log.append((self.name, "usable"))
        return self.works

    def setup(self, att: fw.Attachment, ips: Sequence[Any]) -> None:
        self.log.append((self.name, "setup", att.container_id))

    def teardown(self, att: fw.Attachment, ips: Sequence[Any]) -> None:
        self.log.append((self.name, "teardown", att.container_id))
        if self.fail:
            raise CNIError(ErrorCode.INTERNAL, f"{self.name} broke")

    def gc(self, network: str, valid: frozenset[tuple[str, str]]) -> None:
        self.log.append((self.name, "gc", network))


@dataclass
class Fakes:
    works: dict[str, bool] = field(default_factory=lambda: {"iptables": True, "nftables": True})
    failing: set[str] = field(default_factory=set)
    log: list[tuple[str, ...]] = field(default_factory=list)


@pytest.fixture
def drivers(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    fakes = Fakes()
    monkeypatch.setattr(fw, "_driver",
                        lambda name: FakeDriver(name, fakes.works[name], fakes.log, name in fakes.failing))
    return fakes


ATT = fw.Attachment("net", "cid", "eth0")
IPS = [ip_interface("10.0.0.2/24")]


@pytest.mark.parametrize("backend", ["iptables", "nftables", None])
def test_valid_backends(backend: str | None) -> None:
    fw.validate_backend(backend)


@pytest.mark.parametrize("backend", ["", "ipfw", "IPTABLES", "nft"])
def test_unknown_backend_is_code_7_naming_it(backend: str) -> None:
    with pytest.raises(CNIError) as e:
        fw.validate_backend(backend)
    assert e.value.code == ErrorCode.INVALID_NETWORK_CONFIG and repr(backend) in e.value.msg


def test_unknown_backend_fails_setup_before_any_command(drivers: Fakes) -> None:
    log = drivers.log
    with pytest.raises(CNIError) as e:
        fw.setup_masquerade("pf", ATT, IPS)
    assert e.value.code == 7 and log == []


def test_auto_prefers_iptables(drivers: Fakes) -> None:
    log = drivers.log
    fw.setup_masquerade(None, ATT, IPS)
    assert log == [("iptables", "usable"), ("iptables", "setup", "cid")]


def test_auto_falls_back_to_nftables(drivers: Fakes) -> None:
    works, log = drivers.works, drivers.log
    works["iptables"] = False
    fw.setup_masquerade(None, ATT, IPS)
    assert log[-1] == ("nftables", "setup", "cid")


def test_no_usable_backend_is_code_50(drivers: Fakes) -> None:
    works = drivers.works
    works["iptables"] = works["nftables"] = False
    with pytest.raises(CNIError) as e:
        fw.setup_masquerade(None, ATT, IPS)
    assert e.value.code == ErrorCode.NOT_AVAILABLE
    assert "iptables is broken here" in e.value.details and "nftables is broken here" in e.value.details
    assert fw.masquerade_usable(None) is False
    with pytest.raises(CNIError) as e:
        fw.setup_masquerade("nftables", ATT, IPS)
    assert e.value.code == ErrorCode.NOT_AVAILABLE and "nftables" in e.value.details


def test_explicit_backend_is_not_replaced(drivers: Fakes) -> None:
    drivers.works["nftables"] = False
    assert fw.masquerade_usable("nftables") is False
    assert fw.masquerade_usable("iptables") is True
    with pytest.raises(CNIError):
        fw.masquerade_usable("bogus")


def test_setup_without_ips_does_nothing(drivers: Fakes) -> None:
    log = drivers.log
    fw.setup_masquerade(None, ATT, [])
    assert log == []


def test_teardown_and_gc_try_both_backends_and_report_failures(drivers: Fakes) -> None:
    log = drivers.log
    drivers.failing.add("iptables")
    with pytest.raises(CNIError) as e:
        fw.teardown_masquerade(ATT, [])
    assert "iptables broke" in e.value.msg
    assert ("nftables", "teardown", "cid") in log  # the second backend still ran
    fw.gc_masquerade("net", frozenset())
    assert ("iptables", "gc", "net") in log and ("nftables", "gc", "net") in log


def test_exec_missing_binary_is_code_50() -> None:
    with pytest.raises(CNIError) as e:
        _exec.run(["/nonexistent/pycni-no-such-tool", "x"])
    assert e.value.code == ErrorCode.NOT_AVAILABLE and "pycni-no-such-tool" in e.value.msg


def test_exec_timeout_is_try_again_later(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_exec, "TIMEOUT", 0.05)
    with pytest.raises(CNIError) as e:
        _exec.run(["sleep", "5"])
    assert e.value.code == ErrorCode.TRY_AGAIN_LATER and "sleep 5" in e.value.msg


def test_failure_names_the_command_and_its_stderr() -> None:
    out = _exec.run(["sh", "-c", "echo boom >&2; exit 3"])
    err = _exec.failure(["sh", "-c", "x"], out, "failed to do it", "input")
    assert out.rc == 3 and "`sh -c x`" in err.msg and "exit 3" in err.msg
    assert "boom" in err.details and "input" in err.details
