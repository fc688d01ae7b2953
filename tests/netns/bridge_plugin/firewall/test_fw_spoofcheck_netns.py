"""macspoofchk with real nft (bridge family), inside a namespace each test creates."""
from __future__ import annotations

from typing import Any

import pytest

import bridge_plugin.firewall as fw
from bridge_plugin.firewall._model import Attachment, spoof_iface_chain, spoof_mac_chain, spoof_ref_comment
from tests.support.netns import Namespace, run_in

from fw_netns_support import counted, host, nft_chains, nft_rules, require, run_parallel  # noqa: F401

A = Attachment("net", "c1", "eth0")
B = Attachment("net", "c2", "eth0")
OTHER = Attachment("other", "c3", "eth0")
MAC = "02:42:ac:11:00:02"


@pytest.fixture(autouse=True)
def _nft() -> None:
    require(["nft"])


def counts(ns: Namespace, att: Attachment) -> tuple[int, int, int]:
    """(PREROUTING jumps into att's chain, rules in its iface chain, rules in its mac chain)"""
    rules = nft_rules(ns, "bridge", "nat")
    iface, mac = spoof_iface_chain(att), spoof_mac_chain(att)
    jumps = sum(1 for r in rules if r["chain"] == "PREROUTING" and {"jump": {"target": iface}} in r["expr"])
    return (jumps, sum(r["chain"] == iface for r in rules), sum(r["chain"] == mac for r in rules))


def test_setup_matches_the_reference_counts_even_when_repeated(host: Namespace) -> None:
    run_in(host, fw.setup_spoofcheck, A, "vethaaaa0001", MAC)
    assert counts(host, A) == (1, 1, 2)  # the reference's test expects 1, 1, 2
    run_in(host, fw.setup_spoofcheck, A, "vethaaaa0001", MAC)
    assert counts(host, A) == (1, 1, 2)
    rules = nft_rules(host, "bridge", "nat")
    base = [r for r in rules if r["chain"] == "PREROUTING"]
    assert base[0]["comment"] == "macspoofchk-c1-eth0"
    assert base[0]["expr"][0]["match"]["right"] == "vethaaaa0001"
    mac_rules = [r["expr"] for r in rules if r["chain"] == spoof_mac_chain(A)]
    assert mac_rules[0][0]["match"]["right"] == MAC and mac_rules[1] == [{"drop": None}]


def test_teardown_removes_its_rules_and_chains_only(host: Namespace) -> None:
    run_in(host, fw.setup_spoofcheck, A, "vethaaaa0001", MAC)
    run_in(host, fw.setup_spoofcheck, B, "vethaaaa0002", "02:42:ac:11:00:03")
    run_in(host, fw.teardown_spoofcheck, A)
    assert counts(host, A) == (0, 0, 0)
    assert spoof_iface_chain(A) not in nft_chains(host, "bridge", "nat")
    assert spoof_mac_chain(A) not in nft_chains(host, "bridge", "nat")
    assert counts(host, B) == (1, 1, 2)
    run_in(host, fw.teardown_spoofcheck, A)  # twice is fine
    run_in(host, fw.teardown_spoofcheck, B)
    assert nft_chains(host, "bridge", "nat") == {"PREROUTING"}


def test_teardown_on_untouched_namespace_is_a_no_op(host: Namespace) -> None:
    run_in(host, fw.teardown_spoofcheck, A)
    run_in(host, fw.gc_spoofcheck, "net", frozenset())
    assert nft_chains(host, "bridge", "nat") == set()


def write_reference(ns: Namespace, att: Attachment, veth: str, mac: str) -> None:
    """The reference's two transactions (go-nft), in nft text form, with its comments everywhere."""
    iface, macc, c = spoof_iface_chain(att), spoof_mac_chain(att), spoof_ref_comment(att)
    script = f"""
add table bridge nat
add chain bridge nat PREROUTING {{ type filter hook prerouting priority -300 ; policy accept ; }}
add chain bridge nat {iface}
add chain bridge nat {macc}
flush chain bridge nat {iface}
flush chain bridge nat {macc}
add rule bridge nat PREROUTING iifname "{veth}" jump {iface} comment "{c}"
add rule bridge nat {iface} jump {macc} comment "{c}"
add rule bridge nat {macc} ether saddr {mac} return comment "{c}"
add rule bridge nat {macc} drop comment "{c}"
"""
    ns.exec(["nft", "-f", "-"], input=script, text=True, check=True, capture_output=True)


def test_reference_rules_removed_by_teardown(host: Namespace) -> None:
    write_reference(host, A, "vethref00001", MAC)
    write_reference(host, B, "vethref00002", MAC)
    run_in(host, fw.teardown_spoofcheck, A)
    assert counts(host, A) == (0, 0, 0) and counts(host, B) == (1, 1, 2)


def test_gc_removes_only_this_networks_stale_attachments(host: Namespace) -> None:
    stale = Attachment("net", "gone", "eth0")
    ref_gone = Attachment("?", "refgone", "eth0")  # its veth no longer exists: stale on any network
    ref_live = Attachment("?", "reflive", "eth0")  # its veth exists: may belong to another network
    host.ip("link", "add", "vethlive0001", "type", "veth", "peer", "name", "vethlivp0001")
    for i, att in enumerate((A, B, stale, OTHER)):
        run_in(host, fw.setup_spoofcheck, att, f"vethown{i:05d}", MAC)
    write_reference(host, ref_gone, "vethgone0001", MAC)
    write_reference(host, ref_live, "vethlive0001", MAC)
    run_in(host, fw.gc_spoofcheck, "net", frozenset({("c1", "eth0"), ("c2", "eth0")}))
    assert counts(host, stale) == (0, 0, 0) and counts(host, ref_gone) == (0, 0, 0)
    for att in (A, B, OTHER, ref_live):
        assert counts(host, att) == (1, 1, 2), att
    chains = nft_chains(host, "bridge", "nat")
    assert spoof_iface_chain(stale) not in chains and spoof_mac_chain(ref_gone) not in chains


def test_parallel_setups_all_succeed(host: Namespace) -> None:
    atts = [Attachment("net", f"par{i}", "eth0") for i in range(16)]
    calls = [(fw.setup_spoofcheck, (att, f"vethpar{i:05d}", f"02:00:00:00:00:{i:02x}")) for i, att in enumerate(atts)]
    assert run_in(host, run_parallel, calls) == []
    assert all(counts(host, att) == (1, 1, 2) for att in atts)
    assert run_in(host, run_parallel, [(fw.teardown_spoofcheck, (att,)) for att in atts]) == []
    assert nft_chains(host, "bridge", "nat") == {"PREROUTING"}


def _costs() -> dict[str, Any]:
    return {"add": counted(fw.setup_spoofcheck, A, "vethcost0001", MAC),
            "add again": counted(fw.setup_spoofcheck, A, "vethcost0001", MAC),
            "del": counted(fw.teardown_spoofcheck, A)}


def test_command_counts(host: Namespace) -> None:
    costs = run_in(host, _costs)
    for op, (count, ms, argvs) in costs.items():
        print(f"spoofcheck {op}: {count} commands, {ms:.1f} ms: {argvs}")
        assert count == 2  # one read, one atomic transaction
    assert counts(host, A) == (0, 0, 0)
