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
    def __init__(self, name: str, works: bool, log: list[tuple[str, ...]], fail: bool = False,
                 fresh: bool = False) -> None:
        self.name, self.works, self.log, self.fail, self.fresh = name, works, log, fail, fresh
        self.why_unusable = "" if works else f"{name} is broken here"

    def create(self, att: fw.Attachment, ips: Sequence[Any]) -> bool:
        self.log.append((self.name, "create", att.container_id))
        return self.works and self.fresh

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
    fresh: bool = False  # whether create() finds no rules of the attachment yet


@pytest.fixture
def drivers(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    fakes = Fakes()
    monkeypatch.setattr(fw, "_driver",
                        lambda name: FakeDriver(name, fakes.works[name], fakes.log, name in fakes.failing,
                                                fakes.fresh))
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
    assert log == [("iptables", "create", "cid"), ("iptables", "usable"), ("iptables", "setup", "cid")]


@pytest.mark.parametrize("backend", [None, "iptables"])
def test_fresh_attachment_takes_the_one_batch_path(drivers: Fakes, backend: str | None) -> None:
    drivers.fresh = True
    fw.setup_masquerade(backend, ATT, IPS)
    assert drivers.log == [("iptables", "create", "cid")]


def test_explicit_nftables_never_tries_iptables(drivers: Fakes) -> None:
    drivers.fresh = True
    fw.setup_masquerade("nftables", ATT, IPS)
    assert drivers.log == [("nftables", "usable"), ("nftables", "setup", "cid")]


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


# --- the real drivers against a scripted command runner ---------------------------------------------

class Script:
    """A Runner that answers each command from a queue of (rc, stdout, stderr) and records the calls."""

    def __init__(self, *answers: tuple[int, str, str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, argv: Sequence[str], stdin: str | None = None) -> _exec.Output:
        self.calls.append((" ".join(argv), stdin))
        rc, out, err = self.answers.pop(0)
        return _exec.Output(rc, out, err)


NO_TABLE = (1, "", "Error: No such file or directory\nlist chain inet cni_plugins_masquerade masq_checks")


def test_nft_driver_reads_once_and_applies_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge_plugin.firewall.nftables import NftablesDriver
    monkeypatch.setattr(_exec, "available", lambda tool: True)
    script = Script(NO_TABLE, (0, "", ""))
    NftablesDriver(script).setup(ATT, IPS)
    assert [c for c, _ in script.calls] == ["nft -j list chain inet cni_plugins_masquerade masq_checks",
                                            "nft -j -f -"]
    assert '"masquerade": null' in (script.calls[1][1] or "")


def test_nft_driver_retries_after_a_concurrent_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge_plugin.firewall.nftables import NftablesDriver
    monkeypatch.setattr(_exec, "available", lambda tool: True)
    script = Script(NO_TABLE, (1, "", "Error: Could not process rule: No such file or directory"),
                    NO_TABLE, (0, "", ""))
    NftablesDriver(script).setup(ATT, IPS)
    assert len(script.calls) == 4


def test_nft_driver_reports_a_broken_nft(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge_plugin.firewall.nftables import NftablesDriver
    monkeypatch.setattr(_exec, "available", lambda tool: True)
    driver = NftablesDriver(Script((1, "", "netlink: Error: Operation not permitted")))
    assert driver.usable() is False
    assert "Operation not permitted" in driver.why_unusable and "nft -j list chain" in driver.why_unusable


def test_iptables_driver_dual_stack_uses_both_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge_plugin.firewall.iptables import IptablesDriver
    monkeypatch.setattr(_exec, "available", lambda tool: True)
    empty = (0, "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n", "")
    script = Script(empty, (0, "", ""), empty, (0, "", ""))
    IptablesDriver(script).setup(ATT, [ip_interface("10.0.0.2/24"), ip_interface("fd00::2/64")])
    assert [c for c, _ in script.calls] == ["iptables-save -t nat", "iptables-restore -w 20 --noflush",
                                            "ip6tables-save -t nat", "ip6tables-restore -w 20 --noflush"]
    assert (script.calls[3][1] or "").startswith("*nat\n:CNI-")


def test_iptables_create_is_one_blind_batch_per_family(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge_plugin.firewall.iptables import IptablesDriver
    monkeypatch.setattr(_exec, "available", lambda tool: True)
    script = Script((0, "", ""), (0, "", ""))
    assert IptablesDriver(script).create(ATT, [ip_interface("10.0.0.2/24"), ip_interface("fd00::2/64")])
    assert [c for c, _ in script.calls] == ["iptables-restore -w 20 --noflush", "ip6tables-restore -w 20 --noflush"]
    v4 = script.calls[0][1] or ""
    assert v4.startswith("*nat\n-N CNI-") and "-A POSTROUTING -s 10.0.0.2 " in v4 and v4.endswith("COMMIT\n")


@pytest.mark.parametrize("answers", [[(1, "", "iptables-restore: line 2 failed: Chain already exists.")],
                                     [(0, "", ""), (1, "", "ip6tables-restore: nat table missing")]],
                         ids=["chain exists", "v6 refused"])
def test_iptables_create_declines_when_a_family_refuses(monkeypatch: pytest.MonkeyPatch, answers: Any) -> None:
    from bridge_plugin.firewall.iptables import IptablesDriver
    monkeypatch.setattr(_exec, "available", lambda tool: True)
    script = Script(*answers)
    assert IptablesDriver(script).create(ATT, [ip_interface("10.0.0.2/24"), ip_interface("fd00::2/64")]) is False
    assert len(script.calls) == len(answers)


def test_iptables_teardown_skips_a_family_whose_tools_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge_plugin.firewall.iptables import IptablesDriver
    monkeypatch.setattr(_exec, "available", lambda tool: True)
    script = Script((0, "*nat\nCOMMIT\n", ""), (1, "", "ip6tables-save: no nat table"))
    IptablesDriver(script).teardown(ATT, [])
    assert len(script.calls) == 2
