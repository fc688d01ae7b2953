"""Masquerade with real iptables/ip6tables and nft, inside a namespace each test creates."""
from __future__ import annotations

from ipaddress import ip_interface
from typing import Any

import pytest

import bridge_plugin.firewall as fw
from bridge_plugin.firewall._model import Attachment, ipt_chain, nft_comment, ref_ipt_chain, ref_ipt_comment
from tests.support.netns import Namespace, run_in

from fw_netns_support import (  # noqa: I001 - sits next to this file
    counted,
    host,  # noqa: F401 - fixture
    ipt_lines,
    masq_rules,
    nft_rules,
    require,
    run_parallel,
    tools_for,
)

BACKENDS = ["iptables", "nftables"]
A = Attachment("net", "c1", "eth0")
A1 = Attachment("net", "c1", "eth1")
B = Attachment("net", "c2", "eth0")
OTHER = Attachment("other", "c1", "eth0")
V4 = [ip_interface("10.88.0.2/24")]
DUAL = [ip_interface("10.88.0.2/24"), ip_interface("10.89.0.2/24"), ip_interface("fd00:88::2/64")]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    require(tools_for(request.param))
    return str(request.param)


def setup(ns: Namespace, backend: str, att: Attachment, ips: Any) -> None:
    run_in(ns, fw.setup_masquerade, backend, att, ips)


def expected_count(backend: str, ips: Any) -> int:
    """Rules one attachment owns: per IP a jump (iptables) or a rule (nft); iptables adds, per family,
    one ACCEPT per subnet and one MASQUERADE."""
    if backend == "nftables":
        return len(ips)
    families = {ip.version for ip in ips}
    return len(ips) + len({ip.network for ip in ips}) + len(families)


def test_setup_twice_leaves_one_set_of_rules(host: Namespace, backend: str) -> None:
    setup(host, backend, A, DUAL)
    first = masq_rules(host, backend, A)
    setup(host, backend, A, DUAL)
    assert masq_rules(host, backend, A) == first
    assert len(first) == expected_count(backend, DUAL)


def test_dual_stack_multi_subnet_keeps_every_family(host: Namespace, backend: str) -> None:
    # the reference's nftables #1118: only the last subnet kept its rule
    setup(host, backend, A, DUAL)
    text = "\n".join(masq_rules(host, backend, A))
    for addr in ("10.88.0.2", "10.89.0.2", "fd00:88::2"):
        assert addr in text
    if backend == "iptables":
        assert any(line.startswith("v6 -A POSTROUTING -s fd00:88::2/128") for line in masq_rules(host, backend, A))
        assert any("! -d ff00::/8" in line for line in ipt_lines(host, 6))
    else:
        rules = nft_rules(host, "inet", "cni_plugins_masquerade")
        base = [r["expr"] for r in rules if r["chain"] == "postrouting"]
        assert base[-1] == [{"goto": {"target": "masq_checks"}}] and len(base) == 3


def test_teardown_removes_only_its_own_rules(host: Namespace, backend: str) -> None:
    for att in (A, A1, B, OTHER):
        setup(host, backend, att, V4 if att != A1 else [ip_interface("10.88.0.9/24")])
    run_in(host, fw.teardown_masquerade, A, V4)
    assert masq_rules(host, backend, A) == []
    for att in (A1, B, OTHER):
        assert len(masq_rules(host, backend, att)) == expected_count(backend, V4), att
    run_in(host, fw.teardown_masquerade, A1, [])  # the link is gone: no IPs known
    assert masq_rules(host, backend, A1) == []
    assert masq_rules(host, backend, B) and masq_rules(host, backend, OTHER)
    run_in(host, fw.teardown_masquerade, A, [])  # DEL twice is fine
    if backend == "iptables":  # the chains went too, not just their rules
        assert {line.split()[0][1:] for line in ipt_lines(host) if line.startswith(":CNI-")} == \
            {ipt_chain(B), ipt_chain(OTHER)}


def test_teardown_on_untouched_namespace_is_a_no_op(host: Namespace) -> None:
    run_in(host, fw.teardown_masquerade, A, V4)
    run_in(host, fw.gc_masquerade, "net", frozenset())


def test_gc_removes_exactly_the_invalid_attachments(host: Namespace, backend: str) -> None:
    stale = Attachment("net", "gone", "eth0")
    for att in (A, A1, B, OTHER, stale):
        setup(host, backend, att, V4)
    run_in(host, fw.gc_masquerade, "net", frozenset({("c1", "eth0"), ("c2", "eth0")}))
    assert masq_rules(host, backend, A1) == [] and masq_rules(host, backend, stale) == []
    for att in (A, B, OTHER):
        assert len(masq_rules(host, backend, att)) == expected_count(backend, V4)


def test_parallel_setups_on_one_network_all_succeed(host: Namespace, backend: str) -> None:
    atts = [Attachment("net", f"par{i}", "eth0") for i in range(16)]
    calls = [(fw.setup_masquerade, (backend, att, [ip_interface(f"10.88.1.{i + 2}/24")]))
             for i, att in enumerate(atts)]
    assert run_in(host, run_parallel, calls) == []
    for att in atts:
        assert len(masq_rules(host, backend, att)) == expected_count(backend, V4), att
    teardowns = [(fw.teardown_masquerade, (att, [])) for att in atts]
    assert run_in(host, run_parallel, teardowns) == []
    assert all(masq_rules(host, backend, att) == [] for att in atts)


# --- rules written by the reference plugin ------------------------------------------------------

def write_reference_iptables(ns: Namespace, network: str, cid: str, ip: str, prefix: int) -> str:
    """What the reference's SetupIPMasq runs (go-iptables argv order), for one IPv4 address."""
    chain, comment = ref_ipt_chain(network, cid), ref_ipt_comment(network, cid)
    tag = ["-m", "comment", "--comment", comment]
    for argv in (["-N", chain],
                 ["-A", chain, "-d", f"{ip}/{prefix}", "-j", "ACCEPT", *tag],
                 ["-A", chain, "!", "-d", "224.0.0.0/4", "-j", "MASQUERADE", *tag],
                 ["-A", "POSTROUTING", "-s", ip, "-j", chain, *tag]):
        ns.exec(["iptables", "-w", "-t", "nat", *argv], check=True, capture_output=True)
    return chain


def write_reference_nft(ns: Namespace, att: Attachment, ip: str, net: str) -> None:
    """What the reference's knftables transaction adds (nft text syntax, as knftables writes it)."""
    script = f"""
add table inet cni_plugins_masquerade {{ comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }}
add chain inet cni_plugins_masquerade masq_checks
add chain inet cni_plugins_masquerade postrouting {{ type nat hook postrouting priority srcnat ; }}
flush chain inet cni_plugins_masquerade postrouting
add rule inet cni_plugins_masquerade postrouting ip daddr == 224.0.0.0/4  return
add rule inet cni_plugins_masquerade postrouting ip6 daddr == ff00::/8  return
add rule inet cni_plugins_masquerade postrouting goto masq_checks
add rule inet cni_plugins_masquerade masq_checks ip saddr == {ip} ip daddr != {net} masquerade comment "{nft_comment(att)}"
"""
    ns.exec(["nft", "-f", "-"], input=script, text=True, check=True, capture_output=True)


def ref_chain_present(ns: Namespace, chain: str) -> bool:
    return any(chain in line for line in ipt_lines(ns))


def test_reference_iptables_rules_removed_by_teardown(host: Namespace) -> None:
    require(tools_for("iptables"))
    chain = write_reference_iptables(host, "net", "c1", "10.88.0.2", 24)
    other = write_reference_iptables(host, "net", "c2", "10.88.0.3", 24)
    run_in(host, fw.teardown_masquerade, A, [])
    assert not ref_chain_present(host, chain)
    assert ref_chain_present(host, other)
    run_in(host, fw.teardown_masquerade, B, [ip_interface("10.88.0.3/24")])
    assert not ref_chain_present(host, other)


def test_reference_iptables_chain_shared_by_two_ifnames(host: Namespace) -> None:
    require(tools_for("iptables"))
    chain = write_reference_iptables(host, "net", "c1", "10.88.0.2", 24)
    write_reference_iptables_jump = ["-A", "POSTROUTING", "-s", "10.88.0.4", "-j", chain,
                                     "-m", "comment", "--comment", ref_ipt_comment("net", "c1")]
    host.exec(["iptables", "-w", "-t", "nat", *write_reference_iptables_jump], check=True)
    run_in(host, fw.teardown_masquerade, A, [ip_interface("10.88.0.2/24")])
    jumps = [line for line in ipt_lines(host) if line.startswith("-A POSTROUTING") and chain in line]
    assert len(jumps) == 1 and "10.88.0.4/32" in jumps[0]  # eth1's jump and the chain survive
    run_in(host, fw.teardown_masquerade, A1, [ip_interface("10.88.0.4/24")])
    assert not ref_chain_present(host, chain)


def test_reference_iptables_rules_removed_by_gc(host: Namespace) -> None:
    require(tools_for("iptables"))
    stale = write_reference_iptables(host, "net", "gone", "10.88.0.2", 24)
    live = write_reference_iptables(host, "net", "c2", "10.88.0.3", 24)
    foreign = write_reference_iptables(host, "other", "gone", "10.99.0.2", 24)
    run_in(host, fw.gc_masquerade, "net", frozenset({("c2", "eth0")}))
    assert not ref_chain_present(host, stale)
    assert ref_chain_present(host, live) and ref_chain_present(host, foreign)


def test_reference_nft_rules_removed_by_teardown_and_gc(host: Namespace) -> None:
    require(tools_for("nftables"))
    stale = Attachment("net", "gone", "eth0")
    write_reference_nft(host, A, "10.88.0.2", "10.88.0.0/24")
    write_reference_nft(host, B, "10.88.0.3", "10.88.0.0/24")
    write_reference_nft(host, stale, "10.88.0.4", "10.88.0.0/24")
    write_reference_nft(host, OTHER, "10.99.0.2", "10.99.0.0/24")
    run_in(host, fw.teardown_masquerade, A, [])
    assert masq_rules(host, "nftables", A) == []
    run_in(host, fw.gc_masquerade, "net", frozenset({("c2", "eth0")}))
    assert masq_rules(host, "nftables", stale) == []
    assert len(masq_rules(host, "nftables", B)) == 1 and len(masq_rules(host, "nftables", OTHER)) == 1


def test_our_setup_replaces_a_reference_nft_rule_for_the_same_attachment(host: Namespace) -> None:
    require(tools_for("nftables"))
    write_reference_nft(host, A, "10.88.0.2", "10.88.0.0/24")
    setup(host, "nftables", A, DUAL)
    assert len(masq_rules(host, "nftables", A)) == 3


# --- backend selection and cost -----------------------------------------------------------------

def test_auto_backend_and_status_in_a_fresh_namespace(host: Namespace) -> None:
    require([*tools_for("iptables"), *tools_for("nftables")])
    assert run_in(host, fw.masquerade_usable, None) is True
    assert run_in(host, fw.masquerade_usable, "iptables") is True
    assert run_in(host, fw.masquerade_usable, "nftables") is True
    run_in(host, fw.setup_masquerade, None, A, V4)
    assert len(masq_rules(host, "iptables", A)) == expected_count("iptables", V4)  # iptables preferred


def _costs(backend: str, ips: Any) -> dict[str, Any]:
    add = counted(fw.setup_masquerade, backend, A, ips)
    again = counted(fw.setup_masquerade, backend, A, ips)
    delete = counted(fw.teardown_masquerade, A, [])
    return {"add": add, "add again": again, "del": delete}


@pytest.mark.parametrize("ips", [V4, DUAL], ids=["v4", "dual"])
def test_command_counts_per_add_and_del(host: Namespace, backend: str, ips: Any) -> None:
    costs = run_in(host, _costs, backend, ips)
    for op, (count, ms, argvs) in costs.items():
        print(f"{backend} {len(ips)} IPs {op}: {count} commands, {ms:.1f} ms: {argvs}")
    families = len({ip.version for ip in ips})
    if backend == "iptables":
        assert costs["add"][0] == families  # a fresh attachment: one blind restore per family
        assert costs["add again"][0] == 1 + 2 * families  # refused, then one save + one restore per family
        # DEL: save both families, one restore per family that had rules, one nft read
        assert costs["del"][0] == 2 + families + 1
    else:
        assert costs["add"][0] == 2  # one read + one transaction for every IP of every family
        # DEL: iptables-save for both families (nothing found), one nft read, one transaction
        assert costs["del"][0] == 2 + 2
    assert masq_rules(host, backend, A) == []


def _setup_with_only_nft_on_path(bin_dir: str, att: Attachment, ips: Any) -> bool:
    import os
    os.environ["PATH"] = bin_dir
    usable = fw.masquerade_usable("iptables")
    fw.setup_masquerade(None, att, ips)
    return usable


def test_auto_backend_falls_back_to_nftables(host: Namespace, tmp_path: Any) -> None:
    require(tools_for("nftables"))
    import shutil
    (tmp_path / "nft").symlink_to(shutil.which("nft"))
    assert run_in(host, _setup_with_only_nft_on_path, str(tmp_path), A, V4) is False
    assert len(masq_rules(host, "nftables", A)) == 1
