"""CNI_ARGS parsing (R6.19-R6.22, T89/T90) and the GC valid-attachments list (R2.28, T70/T71)."""
from __future__ import annotations

from typing import Any

import pytest

from shared.args import K8S_KEYS, config_args_cni, parse_cni_args
from shared.errors import CNIError
from shared.gc import LEGACY_KEY, VALID_KEY, valid_attachments


def test_known_keys_are_returned() -> None:
    assert parse_cni_args("IP=10.10.0.50", ["IP"]) == {"IP": "10.10.0.50"}
    assert parse_cni_args("", ["IP"]) == {}
    assert parse_cni_args("IP=", ["IP"]) == {"IP": ""}  # values may be empty
    assert parse_cni_args("IP=1.1.1.1;IP=2.2.2.2", ["IP"]) == {"IP": "2.2.2.2"}  # last wins


def test_kubernetes_args_with_ignore_unknown() -> None:  # T89
    text = "IgnoreUnknown=1;IP=10.10.0.51;K8S_POD_NAME=x;K8S_POD_NAMESPACE=y;K8S_POD_INFRA_CONTAINER_ID=z;K8S_POD_UID=u-1"
    assert parse_cni_args(text, ["IP"]) == {"IP": "10.10.0.51"}
    assert parse_cni_args(text, ["IP", *K8S_KEYS])["K8S_POD_UID"] == "u-1"


@pytest.mark.parametrize("flag", ["1", "true", "True", "TRUE"])
def test_ignore_unknown_spellings(flag: str) -> None:
    assert parse_cni_args(f"K8S_POD_NAME=x;IgnoreUnknown={flag}", ["IP"]) == {}


@pytest.mark.parametrize("text, msg", [
    ("K8S_POD_NAME=x", 'ARGS: unknown args ["K8S_POD_NAME=x"]'),  # T90
    ("IgnoreUnknown=0;A=1;B=2", 'ARGS: unknown args ["A=1" "B=2"]'),
    ("IgnoreUnknown=false;A=1", 'ARGS: unknown args ["A=1"]'),
    ("ip=1.2.3.4", 'ARGS: unknown args ["ip=1.2.3.4"]'),  # keys are case-sensitive
    ("IP", 'ARGS: invalid pair "IP"'),
    ("IP=1.2.3.4;", 'ARGS: invalid pair ""'),  # trailing ';'
    ("a=b=c", 'ARGS: invalid pair "a=b=c"'),
    (";IP=1.2.3.4", 'ARGS: invalid pair ""'),
    ("IgnoreUnknown=yes", 'ARGS: error parsing value of pair "IgnoreUnknown=yes"'),
])
def test_bad_args_are_4(text: str, msg: str) -> None:
    with pytest.raises(CNIError) as e:
        parse_cni_args(text, ["IP"])
    assert (e.value.code, e.value.msg) == (4, msg)


def test_args_cni_convention() -> None:
    assert config_args_cni({"args": {"cni": {"ips": ["10.0.0.5"]}}}) == {"ips": ["10.0.0.5"]}
    for conf in ({}, {"args": None}, {"args": "x"}, {"args": {"cni": []}}, {"args": {"vendor": {}}}):
        assert config_args_cni(conf) == {}


# -- GC ----------------------------------------------------------------------------------------

ATT = [{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "eth1"}]


@pytest.mark.parametrize("config", [{}, {VALID_KEY: None}, {VALID_KEY: []}, {LEGACY_KEY: None},
                                    {VALID_KEY: None, LEGACY_KEY: None}])
def test_absent_or_null_means_nothing_is_valid(config: dict[str, Any]) -> None:
    assert valid_attachments(config) == frozenset()


def test_valid_attachments_read() -> None:
    assert valid_attachments({VALID_KEY: ATT}) == {("c1", "eth0"), ("c2", "eth1")}
    assert valid_attachments({LEGACY_KEY: ATT}) == {("c1", "eth0"), ("c2", "eth1")}  # spec-v1.1.0 name
    assert valid_attachments({VALID_KEY: ATT[:1], LEGACY_KEY: ATT}) == {("c1", "eth0")}  # new key wins
    extra = [{"containerID": "c1", "ifname": "eth0", "future": True}]
    assert valid_attachments({VALID_KEY: extra}) == {("c1", "eth0")}


@pytest.mark.parametrize("value", ["c1", {"containerID": "c1"}, [["c1", "eth0"]], [{"containerID": "c1"}],
                                   [{"containerID": 1, "ifname": "eth0"}], [None], 5])
@pytest.mark.parametrize("key", [VALID_KEY, LEGACY_KEY])
def test_malformed_attachments_are_7(value: Any, key: str) -> None:
    with pytest.raises(CNIError) as e:
        valid_attachments({key: value})
    assert e.value.code == 7 and key in e.value.msg
