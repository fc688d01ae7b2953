"""Chain names, comments and hashes: the reference's test vectors and the round trips DEL/GC rely on."""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge_plugin.firewall._model import (
    Attachment,
    go_quote,
    instance_hash,
    ipt_chain,
    ipt_comment,
    network_hash,
    nft_comment,
    parse_ipt_comment,
    ref_ipt_chain,
    ref_ipt_comment,
    spoof_iface_chain,
    spoof_mac_chain,
    spoof_owner_comment,
    spoof_ref_comment,
)


def test_reference_nft_comment_vector() -> None:
    # reference-behaviour.md A.7: net unit-test, if eth0, id one
    att = Attachment("unit-test", "one", "eth0")
    assert nft_comment(att) == "6fd94d501e58f0aa-287fc69eff0574a2, net: unit-test, if: eth0, id: one"
    assert instance_hash(att) == "6fd94d501e58f0aa-287fc69eff0574a2"
    assert network_hash("unit-test") == hashlib.sha512(b"unit-test").hexdigest()[:16]


def test_reference_chain_name_vector() -> None:
    # the reference's utils test: FormatChainName("test", "1234")
    assert ref_ipt_chain("test", "1234") == "CNI-2bbe0c48b91a7d1b8a6753a8"
    assert len(ref_ipt_chain("n", "x" * 500)) == 28


def test_reference_comment_is_go_quoted() -> None:
    assert ref_ipt_comment("test", "1234") == 'name: "test" id: "1234"'
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'


def test_nft_comment_strips_quotes_and_truncates() -> None:
    att = Attachment('n"et', "c" * 200, "eth0")
    comment = nft_comment(att)
    assert len(comment) == 128
    assert comment.startswith(instance_hash(att) + ", net: net, if: eth0, id: ccc")


def test_our_chain_differs_per_ifname_and_from_the_reference() -> None:
    a, b = Attachment("net", "cid", "eth0"), Attachment("net", "cid", "eth1")
    assert ipt_chain(a) != ipt_chain(b)
    assert ipt_chain(a) != ref_ipt_chain("net", "cid")
    assert len(ipt_chain(a)) == 28 and ipt_chain(a).startswith("CNI-")


def test_parse_reference_and_our_comments() -> None:
    ref = parse_ipt_comment(ref_ipt_comment("net", "cid"))
    assert ref is not None and (ref.network, ref.container_id, ref.ifname) == ("net", "cid", None)
    assert ref.chain() == ref_ipt_chain("net", "cid")
    att = Attachment("net", "cid", "eth0")
    ours = parse_ipt_comment(ipt_comment(att))
    assert ours is not None and ours.chain() == ipt_chain(att)
    assert parse_ipt_comment("something else") is None
    assert parse_ipt_comment('name: "a" id: "b" trailing') is None


names = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40)


@given(names, names, names)
def test_ipt_comment_round_trip(network: str, cid: str, ifname: str) -> None:
    owner = parse_ipt_comment(ipt_comment(Attachment(network, cid, ifname)))
    assert owner is not None
    assert (owner.network, owner.container_id, owner.ifname) == (network, cid, ifname)


def test_spoofcheck_names_match_the_reference() -> None:
    att = Attachment("net", "dummy-0", "eth0")
    assert spoof_iface_chain(att) == "cni-br-iface-dummy-0-eth0"
    assert spoof_mac_chain(att) == "cni-br-iface-dummy-0-eth0-mac"
    assert spoof_ref_comment(att) == "macspoofchk-dummy-0-eth0"
    assert spoof_owner_comment(att) == "macspoofchk " + nft_comment(att)


@pytest.mark.parametrize("cid", ["a" * 64, "b" * 300])
def test_spoofcheck_comments_fit_nft(cid: str) -> None:
    att = Attachment("net", cid, "eth0")
    assert len(spoof_ref_comment(att)) <= 128
    owner = spoof_owner_comment(att)
    assert len(owner) <= 128 and owner.startswith("macspoofchk " + instance_hash(att))
