"""MAC spoof check: drop frames from a container's host veth whose source MAC is not the container's.

The reference's nftables layout, so either plugin can remove the other's rules (table `bridge nat`):

    chain PREROUTING { type filter hook prerouting priority -300; policy accept;
        iifname "<host veth>" jump cni-br-iface-<cid>-<ifname>   comment "macspoofchk-<cid>-<ifname>" }
    chain cni-br-iface-<cid>-<ifname> { jump cni-br-iface-<cid>-<ifname>-mac }
    chain cni-br-iface-<cid>-<ifname>-mac { ether saddr <mac> return; drop }

The PREROUTING rule keeps the reference's exact comment (its DEL looks the rule up by it). The reference's
tag carries no network, so a GC for one network could not tell its attachments from another network's;
the rules inside our per-attachment chains therefore carry `macspoofchk <masquerade comment>`, whose
hash prefix names the network. GC removes our chains of the network being collected whose attachment is
not valid, and chains the reference wrote (untagged) only when they are not valid for this network AND
the host veth they match no longer exists here (it vanishes with the container's netns), because such
rules cannot belong to any live attachment of any network.

ADD is one read (`nft -j list chain bridge nat PREROUTING`) plus one atomic transaction that creates or
flushes the two chains and replaces the PREROUTING jump, so a repeated ADD leaves exactly one set of rules.
"""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

from shared.errors import CNIError, ErrorCode

from . import _exec
from ._model import (
    Attachment,
    instance_hash,
    network_hash,
    spoof_iface_chain,
    spoof_mac_chain,
    spoof_owner_comment,
    spoof_ref_comment,
)

FAMILY = "bridge"
TABLE = "nat"
BASE = "PREROUTING"
OWNER_PREFIX = "macspoofchk "
NOT_FOUND = "No such file or directory"
ATTEMPTS = 3


@dataclass(frozen=True)
class SpoofRule:
    chain: str
    handle: int
    comment: str | None
    jump: str | None  # jump/goto target
    iifname: str | None


@dataclass
class BridgeNat:
    chains: set[str] = field(default_factory=set)
    rules: list[SpoofRule] = field(default_factory=list)

    def jumps_to(self, chain: str) -> list[SpoofRule]:
        return [r for r in self.rules if r.jump == chain]


# --- pure: parse and plan -------------------------------------------------------------------------

def _rule_facts(expr: list[Any]) -> tuple[str | None, str | None]:
    jump = iifname = None
    for stmt in expr:
        if not isinstance(stmt, dict):
            continue
        for verdict in ("jump", "goto"):
            if isinstance(stmt.get(verdict), dict):
                jump = stmt[verdict].get("target")
        match = stmt.get("match")
        if isinstance(match, dict) and match.get("left") == {"meta": {"key": "iifname"}} \
                and isinstance(match.get("right"), str):
            iifname = match["right"]
    return jump, iifname


def parse_table(doc: dict[str, Any]) -> BridgeNat:
    table = BridgeNat()
    for item in doc.get("nftables", []):
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("chain"), dict):
            table.chains.add(item["chain"].get("name", ""))
        rule = item.get("rule")
        if isinstance(rule, dict) and "handle" in rule:
            jump, iifname = _rule_facts(rule.get("expr", []))
            table.rules.append(SpoofRule(rule.get("chain", ""), int(rule["handle"]), rule.get("comment"),
                                         jump, iifname))
    return table


def _chain(name: str, **extra: Any) -> dict[str, Any]:
    return {"family": FAMILY, "table": TABLE, "name": name, **extra}


def _rule(chain: str, expr: list[dict[str, Any]], comment: str) -> dict[str, Any]:
    return {"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr, "comment": comment}}}


def _delete_rule(rule: SpoofRule) -> dict[str, Any]:
    return {"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": rule.chain, "handle": rule.handle}}}


def _drop_attachment_chains(table: BridgeNat, iface: str) -> list[dict[str, Any]]:
    """Delete the jumps into the pair of chains, then the chains (iface first: it references -mac)."""
    mac = iface + "-mac"
    ours = {iface, mac}
    cmds = [_delete_rule(r) for r in table.rules if r.jump in ours and r.chain not in ours]
    cmds += [{"delete": {"chain": _chain(name)}} for name in (iface, mac) if name in table.chains]
    return cmds


def setup_batch(table: BridgeNat, att: Attachment, host_veth: str, mac: str) -> dict[str, Any]:
    iface, mac_chain = spoof_iface_chain(att), spoof_mac_chain(att)
    owner = spoof_owner_comment(att)
    cmds: list[dict[str, Any]] = [
        {"add": {"table": {"family": FAMILY, "name": TABLE}}},
        {"add": {"chain": _chain(BASE, type="filter", hook="prerouting", prio=-300, policy="accept")}},
        {"add": {"chain": _chain(iface)}},
        {"add": {"chain": _chain(mac_chain)}},
        {"flush": {"chain": _chain(iface)}},
        {"flush": {"chain": _chain(mac_chain)}},
    ]
    cmds += [_delete_rule(r) for r in table.jumps_to(iface) if r.chain not in (iface, mac_chain)]
    cmds += [
        _rule(BASE, [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": host_veth}},
                     {"jump": {"target": iface}}], spoof_ref_comment(att)),
        _rule(iface, [{"jump": {"target": mac_chain}}], owner),
        _rule(mac_chain, [{"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "saddr"}},
                                     "right": mac.lower()}},
                          {"return": None}], owner),
        _rule(mac_chain, [{"drop": None}], owner),
    ]
    return {"nftables": cmds}


def teardown_batch(table: BridgeNat, att: Attachment) -> dict[str, Any] | None:
    cmds = _drop_attachment_chains(table, spoof_iface_chain(att))
    return {"nftables": cmds} if cmds else None


def _owner_hash(comment: str | None) -> str | None:
    """The `<nethash>-<insthash>` of our owner tag, None for the reference's (untagged) rules."""
    if comment and comment.startswith(OWNER_PREFIX):
        return comment[len(OWNER_PREFIX):len(OWNER_PREFIX) + 33]
    return None


def gc_batch(table: BridgeNat, network: str, valid: frozenset[tuple[str, str]],
             link_exists: Callable[[str], bool]) -> dict[str, Any] | None:
    live_hashes = {instance_hash(Attachment(network, cid, ifn)) for cid, ifn in valid}
    live_chains = {spoof_iface_chain(Attachment(network, cid, ifn)) for cid, ifn in valid}
    net_prefix = network_hash(network) + "-"
    cmds: list[dict[str, Any]] = []
    for iface in sorted(table.chains):
        into_mac = [r for r in table.rules if r.chain == iface and r.jump == iface + "-mac"]
        if not iface.startswith("cni-br-iface-") or not into_mac:
            continue  # not a per-attachment iface chain
        tag = _owner_hash(into_mac[0].comment)
        if tag is not None:
            stale = tag.startswith(net_prefix) and tag not in live_hashes
        else:  # written by the reference: no network to go by
            veths = [r.iifname for r in table.jumps_to(iface) if r.iifname]
            stale = iface not in live_chains and not any(link_exists(v) for v in veths)
        if stale:
            cmds += _drop_attachment_chains(table, iface)
    return {"nftables": cmds} if cmds else None


# --- applying -------------------------------------------------------------------------------------

def link_exists(name: str) -> bool:
    """In the calling process's netns (unlike /sys/class/net, which shows the netns sysfs was mounted in)."""
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def _read(runner: _exec.Runner, argv: tuple[str, ...]) -> BridgeNat:
    out = runner(argv, None)
    if out.rc != 0:
        if NOT_FOUND in out.stderr:
            return BridgeNat()
        raise _exec.failure(argv, out, "failed to read the spoof-check rules")
    try:
        return parse_table(json.loads(out.stdout))
    except (ValueError, TypeError, AttributeError) as e:
        raise CNIError(ErrorCode.INTERNAL, f"`{' '.join(argv)}` printed unreadable JSON", str(e)) from e


READ_BASE = ("nft", "-j", "list", "chain", FAMILY, TABLE, BASE)
READ_TABLE = ("nft", "-j", "list", "table", FAMILY, TABLE)
APPLY = ("nft", "-j", "-f", "-")


def _transact(runner: _exec.Runner | None, read: tuple[str, ...],
              plan: Callable[[BridgeNat], dict[str, Any] | None], what: str) -> None:
    """Read, plan, apply; retry when a concurrent change removed something the plan deletes."""
    runner = runner or _exec.run
    for attempt in range(ATTEMPTS):
        doc = plan(_read(runner, read))
        if doc is None:
            return
        try:
            _exec.checked(runner, APPLY, what, json.dumps(doc))
            return
        except CNIError:
            if attempt == ATTEMPTS - 1:
                raise


def setup(att: Attachment, host_veth: str, container_mac: str, runner: _exec.Runner | None = None) -> None:
    if not _exec.available("nft"):
        raise CNIError(ErrorCode.NOT_AVAILABLE, "nft not found", "macspoofchk needs nftables (the nft command)")
    _transact(runner, READ_BASE, lambda t: setup_batch(t, att, host_veth, container_mac),
              "failed to set up spoof-check")


def teardown(att: Attachment, runner: _exec.Runner | None = None) -> None:
    if not _exec.available("nft"):
        return  # without nft there can be no nftables rules to remove
    _transact(runner, READ_TABLE, lambda t: teardown_batch(t, att), "failed to tear down spoof-check")


def gc(network: str, valid: frozenset[tuple[str, str]], runner: _exec.Runner | None = None,
       exists: Callable[[str], bool] = link_exists) -> None:
    if not _exec.available("nft"):
        return
    _transact(runner, READ_TABLE, lambda t: gc_batch(t, network, valid, exists),
              "failed to garbage-collect spoof-check")
