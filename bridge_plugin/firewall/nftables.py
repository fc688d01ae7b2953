"""Masquerade with nftables, through `nft -j` (JSON) in atomic transactions.

The table is the reference's, so either plugin finds the other's rules: `inet cni_plugins_masquerade`
with a base chain `postrouting` (nat, srcnat) that skips multicast and jumps to `masq_checks`, which
holds one rule per container IP:

    ip saddr <ip> ip daddr != <subnet> masquerade comment "<nethash>-<insthash>, net: .., if: .., id: .."

Each operation is one read (`nft -j list chain ...`) and at most one transaction (`nft -j -f -`). ADD
replaces all of the attachment's rules in a single transaction that holds every IP, which fixes the
reference's #1118 (it ran one transaction per IP, each deleting the previous IPs' rules, so only the last
subnet kept masquerading). DEL and GC match the comment's hash prefix, so they need no IPs and touch no
other attachment's rules.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from shared.errors import CNIError, ErrorCode

from . import _exec
from ._model import Attachment, IPInterface, instance_hash, network_hash, nft_comment

FAMILY = "inet"
TABLE = "cni_plugins_masquerade"
CHECKS = "masq_checks"
POSTROUTING = "postrouting"
TABLE_COMMENT = "Masquerading for plugins from github.com/containernetworking/plugins"
CHECKS_COMMENT = "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
NOT_FOUND = "No such file or directory"
ATTEMPTS = 3


@dataclass(frozen=True)
class NftRule:
    chain: str
    handle: int
    comment: str | None


# --- pure: parse and plan -------------------------------------------------------------------------

def parse_rules(doc: dict[str, Any]) -> list[NftRule]:
    """Rules (chain, handle, comment) from an `nft -j list ...` document."""
    out = []
    for item in doc.get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if isinstance(rule, dict) and "handle" in rule:
            out.append(NftRule(rule.get("chain", ""), int(rule["handle"]), rule.get("comment")))
    return out


def _match(proto: str, field: str, op: str, right: Any) -> dict[str, Any]:
    return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field}}, "right": right}}


def _prefix(net: Any) -> dict[str, Any]:
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _rule(chain: str, expr: list[dict[str, Any]], comment: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}
    if comment is not None:
        rule["comment"] = comment
    return {"add": {"rule": rule}}


def _delete(rule: NftRule) -> dict[str, Any]:
    return {"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": rule.chain, "handle": rule.handle}}}


def masquerade_rule(att: Attachment, ip: IPInterface) -> dict[str, Any]:
    proto = "ip" if ip.version == 4 else "ip6"
    return _rule(CHECKS, [_match(proto, "saddr", "==", str(ip.ip)),
                          _match(proto, "daddr", "!=", _prefix(ip.network)),
                          {"masquerade": None}], nft_comment(att))


def skeleton() -> list[dict[str, Any]]:
    """Table and chains (created if missing) and the base chain refilled, as the reference does per ADD."""
    return [
        {"add": {"table": {"family": FAMILY, "name": TABLE, "comment": TABLE_COMMENT}}},
        {"add": {"chain": {"family": FAMILY, "table": TABLE, "name": CHECKS, "comment": CHECKS_COMMENT}}},
        {"add": {"chain": {"family": FAMILY, "table": TABLE, "name": POSTROUTING, "type": "nat",
                           "hook": "postrouting", "prio": 100, "policy": "accept"}}},
        {"flush": {"chain": {"family": FAMILY, "table": TABLE, "name": POSTROUTING}}},
        _rule(POSTROUTING, [_match("ip", "daddr", "==", {"prefix": {"addr": "224.0.0.0", "len": 4}}),
                            {"return": None}]),
        _rule(POSTROUTING, [_match("ip6", "daddr", "==", {"prefix": {"addr": "ff00::", "len": 8}}),
                            {"return": None}]),
        _rule(POSTROUTING, [{"goto": {"target": CHECKS}}]),
    ]


def _owned_by(rule: NftRule, prefix: str) -> bool:
    return rule.chain == CHECKS and rule.comment is not None and rule.comment.startswith(prefix)


def setup_batch(existing: list[NftRule], att: Attachment, ips: Sequence[IPInterface]) -> dict[str, Any]:
    """One transaction: skeleton, drop this attachment's old rules, add one rule per IP (all families)."""
    mine = instance_hash(att)
    cmds = skeleton()
    cmds += [_delete(r) for r in existing if _owned_by(r, mine)]
    cmds += [masquerade_rule(att, ip) for ip in dict.fromkeys(ips)]
    return {"nftables": cmds}


def teardown_batch(existing: list[NftRule], att: Attachment) -> dict[str, Any] | None:
    mine = instance_hash(att)
    cmds = [_delete(r) for r in existing if _owned_by(r, mine)]
    return {"nftables": cmds} if cmds else None


def gc_batch(existing: list[NftRule], network: str, valid: frozenset[tuple[str, str]]) -> dict[str, Any] | None:
    live = {instance_hash(Attachment(network, cid, ifname)) for cid, ifname in valid}
    net_prefix = network_hash(network) + "-"
    cmds = [_delete(r) for r in existing
            if _owned_by(r, net_prefix) and r.comment is not None and r.comment[:33] not in live]
    return {"nftables": cmds} if cmds else None


# --- the driver -----------------------------------------------------------------------------------

class NftablesDriver:
    """MasqueradeDriver on `nft -j`."""

    name = "nftables"
    READ = ("nft", "-j", "list", "chain", FAMILY, TABLE, CHECKS)
    APPLY = ("nft", "-j", "-f", "-")

    def __init__(self, runner: _exec.Runner | None = None) -> None:
        self._run = runner or _exec.run  # looked up now, so a test can wrap _exec.run
        self._cache: list[NftRule] | None = None
        self.why_unusable = ""

    def _read(self) -> list[NftRule]:
        """This plugin's rules; an absent table or chain reads as no rules."""
        if self._cache is not None:
            cached, self._cache = self._cache, None
            return cached
        out = self._run(self.READ, None)
        if out.rc != 0:
            if NOT_FOUND in out.stderr:
                return []
            raise _exec.failure(self.READ, out, "failed to read the masquerade rules")
        try:
            return parse_rules(json.loads(out.stdout))
        except (ValueError, TypeError, AttributeError) as e:
            raise CNIError(ErrorCode.INTERNAL, f"`{' '.join(self.READ)}` printed unreadable JSON", str(e)) from e

    def _apply(self, doc: dict[str, Any] | None, what: str) -> None:
        if doc is not None:
            _exec.checked(self._run, self.APPLY, what, json.dumps(doc))

    def _try_read(self) -> list[NftRule] | None:
        if not _exec.available("nft"):
            self.why_unusable = "nft not found"
            return None
        try:
            return self._read()
        except CNIError as e:
            self.why_unusable = str(e)
            return None

    def usable(self) -> bool:
        """nft exists and can list (or not find) our chain here. Keeps the read for a following setup."""
        rules = self._try_read()
        self._cache = rules
        return rules is not None

    def _transact(self, plan: Any, what: str) -> None:
        """Read, plan, apply; retry when a concurrent change removed a rule the plan deletes by handle."""
        for attempt in range(ATTEMPTS):
            doc = plan(self._read())
            try:
                self._apply(doc, what)
                return
            except CNIError:
                if attempt == ATTEMPTS - 1:
                    raise

    def create(self, att: Attachment, ips: Sequence[IPInterface]) -> bool:
        """No blind path: the rule lives in a shared chain, so only a read can rule out a duplicate."""
        return False

    def setup(self, att: Attachment, ips: Sequence[IPInterface]) -> None:
        if not _exec.available("nft"):
            raise CNIError(ErrorCode.NOT_AVAILABLE, "nft not found", "needed for ipMasqBackend nftables")
        self._transact(lambda rules: setup_batch(rules, att, ips), "failed to set up masquerading")

    def teardown(self, att: Attachment, ips: Sequence[IPInterface]) -> None:
        if not self.usable():
            return  # no working nft here: nothing of ours can be there
        self._transact(lambda rules: teardown_batch(rules, att), "failed to remove masquerading")

    def gc(self, network: str, valid: frozenset[tuple[str, str]]) -> None:
        if not self.usable():
            return
        self._transact(lambda rules: gc_batch(rules, network, valid), "failed to garbage-collect masquerading")
