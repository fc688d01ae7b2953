"""Pure pieces of the handlers and the netlink seam: error translation and collection, fail points."""
from __future__ import annotations

import errno
import os

import pytest

from bridge_plugin import netlink as nl
from bridge_plugin.errors import BridgeCode
from bridge_plugin.handlers import ADD_STEPS, FAIL_ENV, Errors, fail_point
from shared.errors import CNIError, ErrorCode
from shared.request import Request


class FakeNetlinkError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code, "x")
        self.code = code


def test_mapped_names_the_object_and_the_errno() -> None:
    with pytest.raises(CNIError) as e:
        with nl.mapped("failed to add IP addr 10.0.0.2/24 to 'eth0'"):
            raise FakeNetlinkError(errno.EADDRNOTAVAIL)
    assert e.value.msg == "failed to add IP addr 10.0.0.2/24 to 'eth0': Cannot assign requested address"
    assert e.value.code == BridgeCode.KERNEL_OPERATION_FAILED == 124


@pytest.mark.parametrize("err", [errno.EBUSY, errno.EAGAIN])
def test_mapped_transient_errnos_are_try_again_later(err: int) -> None:
    with pytest.raises(CNIError) as e:
        with nl.mapped("failed to connect 'veth0' to bridge cni0"):
            raise FakeNetlinkError(err)
    assert e.value.code == ErrorCode.TRY_AGAIN_LATER
    assert e.value.msg == f"failed to connect 'veth0' to bridge cni0: {os.strerror(err)}"


def test_mapped_os_error_and_opaque_error() -> None:
    with pytest.raises(CNIError) as e:
        with nl.mapped("failed to list links"):
            raise OSError(errno.EPERM, "Operation not permitted")
    assert (e.value.code, e.value.msg) == (124, "failed to list links: Operation not permitted")
    with pytest.raises(CNIError) as e:
        with nl.mapped("failed to list links"):
            raise ValueError("bad attribute")
    assert (e.value.code, e.value.msg) == (124, "failed to list links: bad attribute")


def test_mapped_ignores_listed_errnos_only() -> None:
    with nl.mapped("x", ignore=(errno.EEXIST,)):
        raise FakeNetlinkError(errno.EEXIST)
    with pytest.raises(CNIError):
        with nl.mapped("x", ignore=(errno.EEXIST,)):
            raise FakeNetlinkError(errno.ENOENT)


def test_mapped_names_the_missing_vlan_feature() -> None:
    with pytest.raises(CNIError) as e:
        with nl.mapped("failed to setup vlan tag 5 on interface 'veth0'"):
            raise FakeNetlinkError(errno.EOPNOTSUPP)
    assert "CONFIG_BRIDGE_VLAN_FILTERING" in e.value.msg
    assert e.value.code == BridgeCode.KERNEL_FEATURE_MISSING == 123


def test_open_missing_netns_is_its_own_error() -> None:
    with pytest.raises(nl.NetnsNotFound) as e:
        nl.open_netns("/run/netns/pycni-surely-missing-0")
    assert "failed to open netns" in e.value.msg
    assert e.value.code == ErrorCode.UNKNOWN_CONTAINER == 3


def test_netns_that_is_not_a_namespace_is_a_bad_environment(tmp_path) -> None:
    plain = tmp_path / "not-a-netns"
    plain.write_text("")
    with pytest.raises(CNIError) as e:
        with nl.entered(str(plain)):
            pass
    assert e.value.code == ErrorCode.INVALID_ENVIRONMENT
    assert e.value.msg == f"failed to enter netns {str(plain)!r}: not a network namespace"


def test_failed_sysctl_write_is_an_io_error() -> None:
    with pytest.raises(CNIError) as e:
        nl.write_sysctl("net/pycni-surely-missing-0/value", "1")
    assert e.value.code == ErrorCode.IO_FAILURE and "net/pycni-surely-missing-0/value" in e.value.msg


def test_errors_collects_and_raises_once() -> None:
    errs = Errors()
    errs.run(lambda: None)
    errs.raise_any()  # nothing collected
    errs.run(lambda: (_ for _ in ()).throw(CNIError(11, "first", "d1")))
    errs.run(lambda: 1 / 0)
    with pytest.raises(CNIError) as e:
        errs.raise_any()
    assert e.value.code == 11 and e.value.msg == "first"
    assert "d1" in e.value.details and "ZeroDivisionError" in e.value.details


def test_errors_keeps_999_for_the_truly_unexpected_only() -> None:
    errs = Errors()
    errs.run(lambda: 1 / 0)
    with pytest.raises(CNIError) as e:
        errs.raise_any()
    assert e.value.code == ErrorCode.INTERNAL and e.value.msg.startswith("ZeroDivisionError")


def test_fail_point_reads_only_the_request_env() -> None:
    req = Request(command="ADD", env={FAIL_ENV: "veth"})
    fail_point(req, "bridge")
    with pytest.raises(CNIError) as e:
        fail_point(req, "veth")
    assert e.value.msg == "injected failure after step 'veth'"
    assert e.value.code == BridgeCode.INJECTED_FAILURE
    assert len(set(ADD_STEPS)) == len(ADD_STEPS)


def test_code_table_is_plugin_range_and_clear_of_host_local() -> None:
    """>= 100 is free for plugins; host-local uses 100-106 and its errors pass through the bridge."""
    codes = [c.value for c in BridgeCode]
    assert len(set(codes)) == len(codes)
    assert all(120 <= c <= 139 for c in codes)


def test_only_the_unexpected_uses_internal() -> None:
    """999 appears in the plugin only where a non-CNIError exception is wrapped (Errors.run)."""
    from pathlib import Path

    import bridge_plugin

    pkg = Path(bridge_plugin.__file__).parent
    hits = [f"{p.name}:{n}" for p in pkg.glob("*.py") for n, line in enumerate(p.read_text().splitlines(), 1)
            if "ErrorCode.INTERNAL" in line]
    assert len(hits) == 1 and hits[0].startswith("handlers.py:"), hits


def test_random_veth_names() -> None:
    names = {nl.random_veth_name() for _ in range(50)}
    assert len(names) == 50 and all(len(n) == 12 and n.startswith("veth") for n in names)
    int(next(iter(names))[4:], 16)


def test_global_unicast_like_go() -> None:
    import ipaddress

    assert nl._global_unicast(ipaddress.ip_address("10.0.0.2"))
    assert nl._global_unicast(ipaddress.ip_address("fd00::2"))
    assert not nl._global_unicast(ipaddress.ip_address("fe80::1"))
    assert not nl._global_unicast(ipaddress.ip_address("127.0.0.1"))


def test_handlers_import_no_pyroute2() -> None:
    import subprocess
    import sys

    code = "import sys, bridge_plugin.main; print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_port_may_change_mac_only_when_lower_and_unpinned() -> None:
    from bridge_plugin.netlink import port_may_change_mac

    assert port_may_change_mac("0a:00:00:00:00:05", False, "02:ff:ff:ff:ff:ff") is True
    assert port_may_change_mac("0a:00:00:00:00:05", False, "0a:00:00:00:00:06") is False
    assert port_may_change_mac("0a:00:00:00:00:05", True, "02:00:00:00:00:00") is False
    assert port_may_change_mac("", False, "02:00:00:00:00:00") is True  # unknown: look it up


class _Msg:
    """Just enough of a pyroute2 ifinfmsg for netlink._to_link."""

    def __init__(self, index: int, name: str, msg_type: int = 16) -> None:
        self.fields = {"index": index, "flags": 0, "header": {"type": msg_type}}
        self.attrs = {"IFLA_IFNAME": name, "IFLA_ADDRESS": "0a:00:00:00:00:01", "IFLA_MTU": 1500}

    def __getitem__(self, key: str) -> object:
        return self.fields[key]

    def get(self, key: str, default: object = None) -> object:
        return self.fields.get(key, default)

    def get_attr(self, name: str) -> object:
        return self.attrs.get(name)


class _FakeIPRoute:
    def __init__(self, echo: bool) -> None:
        self.status = {"nlm_echo": False}
        self.echo = echo
        self.calls: list[str] = []

    def link(self, command: str, **kwargs: object) -> list[_Msg]:
        self.calls.append(command)
        if command == "add":
            assert self.status["nlm_echo"] is True  # asked for, only around the create
            return [_Msg(7, str(kwargs["ifname"]))] if self.echo else [_Msg(0, "", msg_type=2)]
        return [_Msg(7, str(kwargs["ifname"]))]


@pytest.mark.parametrize("echo, calls", [(True, ["add"]), (False, ["add", "get"])], ids=["echoed", "older kernel"])
def test_create_veth_uses_the_echo_or_looks_the_link_up(echo: bool, calls: list[str]) -> None:
    from bridge_plugin import netlink as nl

    ipr = _FakeIPRoute(echo)
    link = nl.create_veth(ipr, 99, "eth0", 0, "")
    assert link.index == 7 and link.name.startswith("veth") and ipr.calls == calls
    assert ipr.status["nlm_echo"] is False  # switched off again
