"""The nftables masquerade and spoof-check planners (pure): JSON batches built from a parsed listing."""
from __future__ import annotations

from ipaddress import ip_interface
from typing import Any

from bridge_plugin.firewall._model import Attachment, nft_comment, spoof_owner_comment, spoof_ref_comment
from bridge_plugin.firewall import nftables, spoofcheck
from bridge_plugin.firewall.nftables import NftRule, gc_batch, parse_rules, setup_batch, teardown_batch

A = Attachment("net", "c1", "eth0")
B = Attachment("net", "c2", "eth0")
OTHER = Attachment("other", "c1", "eth0")


def rule(handle: int, att: Attachment | None, chain: str = "masq_checks") -> NftRule:
    return NftRule(chain, handle, nft_comment(att) if att else None)


def ops(doc: dict[str, Any] | None, verb: str) -> list[dict[str, Any]]:
    assert doc is not None
    return [cmd[verb] for cmd in doc["nftables"] if verb in cmd]


def test_parse_rules_from_listing() -> None:
    doc = {"nftables": [{"metainfo": {}}, {"chain": {"name": "masq_checks"}},
                        {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks",
                                  "handle": 6, "comment": "x", "expr": []}}]}
    assert parse_rules(doc) == [NftRule("masq_checks", 6, "x")]


def test_setup_puts_every_ip_in_one_transaction() -> None:
    # the reference's #1118: per-IP transactions deleted the earlier IPs' rules
    ips = [ip_interface("10.0.0.2/24"), ip_interface("10.1.0.2/24"), ip_interface("fd00::2/64")]
    doc = setup_batch([], A, ips)
    added = [r["rule"] for r in ops(doc, "add") if "rule" in r and r["rule"]["chain"] == "masq_checks"]
    assert len(added) == 3
    assert all(r["comment"] == nft_comment(A) for r in added)
    v6 = added[2]["expr"]
    assert v6[0]["match"]["left"]["payload"] == {"protocol": "ip6", "field": "saddr"}
    assert v6[1]["match"] == {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}},
                              "right": {"prefix": {"addr": "fd00::", "len": 64}}}
    assert v6[2] == {"masquerade": None}


def test_setup_refills_base_chain_and_replaces_own_rules_only() -> None:
    existing = [rule(5, A), rule(6, B), rule(7, OTHER), rule(8, None), rule(9, A)]
    doc = setup_batch(existing, A, [ip_interface("10.0.0.2/24")])
    assert sorted(d["rule"]["handle"] for d in ops(doc, "delete")) == [5, 9]
    assert ops(doc, "flush") == [{"chain": {"family": "inet", "table": "cni_plugins_masquerade",
                                            "name": "postrouting"}}]
    base = [r["rule"]["expr"] for r in ops(doc, "add") if "rule" in r and r["rule"]["chain"] == "postrouting"]
    assert base[-1] == [{"goto": {"target": "masq_checks"}}]
    assert len(base) == 3


def test_teardown_deletes_by_tag_without_ips() -> None:
    existing = [rule(5, A), rule(6, B), rule(7, OTHER), rule(9, A), rule(10, A, chain="postrouting")]
    assert sorted(d["rule"]["handle"] for d in ops(teardown_batch(existing, A), "delete")) == [5, 9]
    assert teardown_batch([rule(6, B)], A) is None


def test_gc_keeps_valid_and_other_networks() -> None:
    stale = Attachment("net", "gone", "eth0")
    existing = [rule(5, A), rule(6, B), rule(7, OTHER), rule(8, stale), rule(9, None)]
    doc = gc_batch(existing, "net", frozenset({("c1", "eth0"), ("c2", "eth0")}))
    assert [d["rule"]["handle"] for d in ops(doc, "delete")] == [8]
    assert gc_batch(existing, "net", frozenset({("c1", "eth0"), ("c2", "eth0"), ("gone", "eth0")})) is None
    assert [d["rule"]["handle"] for d in ops(gc_batch(existing, "net", frozenset()), "delete")] == [5, 6, 8]


def test_gc_matches_truncated_comments_by_hash() -> None:
    long_att = Attachment("net", "x" * 120, "eth0")
    existing = [rule(5, long_att)]
    assert len(existing[0].comment or "") == 128
    assert gc_batch(existing, "net", frozenset({("x" * 120, "eth0")})) is None


# --- spoof check --------------------------------------------------------------------------------

def bridge_listing(*parts: list[dict[str, Any]]) -> spoofcheck.BridgeNat:
    return spoofcheck.parse_table({"nftables": [item for part in parts for item in part]})


def attachment_items(att: Attachment, veth: str, mac: str, handle: int, ref: bool = False) -> list[dict[str, Any]]:
    """The listing of one attachment's spoof-check rules, as `nft -j list table bridge nat` prints it."""
    iface = f"cni-br-iface-{att.container_id}-{att.ifname}"
    tag = spoof_ref_comment(att) if ref else spoof_owner_comment(att)

    def r(chain: str, h: int, comment: str, expr: list[Any]) -> dict[str, Any]:
        return {"rule": {"family": "bridge", "table": "nat", "chain": chain, "handle": h, "comment": comment,
                         "expr": expr}}
    return [
        {"chain": {"family": "bridge", "table": "nat", "name": iface}},
        {"chain": {"family": "bridge", "table": "nat", "name": iface + "-mac"}},
        r("PREROUTING", handle, spoof_ref_comment(att),
          [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": veth}},
           {"jump": {"target": iface}}]),
        r(iface, handle + 1, tag, [{"jump": {"target": iface + "-mac"}}]),
        r(iface + "-mac", handle + 2, tag,
          [{"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "saddr"}}, "right": mac}},
           {"return": None}]),
        r(iface + "-mac", handle + 3, tag, [{"drop": None}]),
    ]


BASE = [{"chain": {"family": "bridge", "table": "nat", "name": "PREROUTING", "type": "filter",
                   "hook": "prerouting", "prio": -300, "policy": "accept"}}]


def test_spoof_setup_batch_is_reference_shaped() -> None:
    doc = spoofcheck.setup_batch(spoofcheck.BridgeNat(), A, "veth1", "02:AA:00:00:00:01")
    adds = ops(doc, "add")
    chains = [a["chain"] for a in adds if "chain" in a]
    assert chains[0] == {"family": "bridge", "table": "nat", "name": "PREROUTING", "type": "filter",
                         "hook": "prerouting", "prio": -300, "policy": "accept"}
    assert [c["name"] for c in chains[1:]] == ["cni-br-iface-c1-eth0", "cni-br-iface-c1-eth0-mac"]
    assert [f["chain"]["name"] for f in ops(doc, "flush")] == ["cni-br-iface-c1-eth0", "cni-br-iface-c1-eth0-mac"]
    rules = [a["rule"] for a in adds if "rule" in a]
    assert [r["chain"] for r in rules] == ["PREROUTING", "cni-br-iface-c1-eth0", "cni-br-iface-c1-eth0-mac",
                                           "cni-br-iface-c1-eth0-mac"]
    assert rules[0]["comment"] == "macspoofchk-c1-eth0"
    assert rules[0]["expr"][0]["match"]["right"] == "veth1"
    assert rules[2]["expr"][0]["match"]["right"] == "02:aa:00:00:00:01"
    assert rules[3]["expr"] == [{"drop": None}]
    assert ops(doc, "delete") == []


def test_spoof_repeated_setup_replaces_the_base_jump() -> None:
    t = bridge_listing(BASE, attachment_items(A, "veth1", "02:00:00:00:00:01", 10),
                       attachment_items(B, "veth2", "02:00:00:00:00:02", 20))
    doc = spoofcheck.setup_batch(t, A, "veth1", "02:00:00:00:00:01")
    assert [d["rule"]["handle"] for d in ops(doc, "delete")] == [10]


def test_spoof_teardown_deletes_jump_then_chains() -> None:
    t = bridge_listing(BASE, attachment_items(A, "veth1", "02:00:00:00:00:01", 10, ref=True),
                       attachment_items(B, "veth2", "02:00:00:00:00:02", 20))
    doc = spoofcheck.teardown_batch(t, A)
    assert doc is not None
    assert doc["nftables"] == [
        {"delete": {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 10}}},
        {"delete": {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-c1-eth0"}}},
        {"delete": {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-c1-eth0-mac"}}},
    ]
    assert spoofcheck.teardown_batch(bridge_listing(BASE), A) is None


def test_spoof_gc_by_network_tag_and_reference_veth() -> None:
    gone_ref = Attachment("?", "ref-gone", "eth0")
    live_ref = Attachment("?", "ref-live", "eth0")
    stale = Attachment("net", "c3", "eth0")
    t = bridge_listing(BASE, attachment_items(A, "veth1", "02:00:00:00:00:01", 10),
                       attachment_items(stale, "veth3", "02:00:00:00:00:03", 20),
                       attachment_items(OTHER, "veth4", "02:00:00:00:00:04", 30),
                       attachment_items(gone_ref, "veth5", "02:00:00:00:00:05", 40, ref=True),
                       attachment_items(live_ref, "veth6", "02:00:00:00:00:06", 50, ref=True))
    doc = spoofcheck.gc_batch(t, "net", frozenset({("c1", "eth0")}), lambda veth: veth == "veth6")
    deleted = {d["chain"]["name"] for d in ops(doc, "delete") if "chain" in d}
    assert deleted == {"cni-br-iface-c3-eth0", "cni-br-iface-c3-eth0-mac",
                       "cni-br-iface-ref-gone-eth0", "cni-br-iface-ref-gone-eth0-mac"}
    assert sorted(d["rule"]["handle"] for d in ops(doc, "delete") if "rule" in d) == [20, 40]


def test_spoof_gc_keeps_reference_rules_of_a_valid_attachment() -> None:
    t = bridge_listing(BASE, attachment_items(Attachment("?", "c9", "eth0"), "veth9", "02:00:00:00:00:09", 10,
                                              ref=True))
    assert spoofcheck.gc_batch(t, "net", frozenset({("c9", "eth0")}), lambda veth: False) is None


def test_nft_module_constants_match_the_reference() -> None:
    assert (nftables.FAMILY, nftables.TABLE, nftables.CHECKS, nftables.POSTROUTING) == \
        ("inet", "cni_plugins_masquerade", "masq_checks", "postrouting")
