"""Masquerade with iptables/ip6tables: one chain per attachment in the nat table, as the reference lays it out.

Layout per attachment and family (chain `CNI-<sha512(net:cid:ifname)>`, comment
`name: "<net>" id: "<cid>" if: "<ifname>"` on every rule):

    -A POSTROUTING -s <ip> -j CNI-...          (one per container IP)
    -A CNI-... -d <subnet> -j ACCEPT           (one per subnet, all before the MASQUERADE)
    -A CNI-... ! -d 224.0.0.0/4 -j MASQUERADE  (ff00::/8 for v6)

Each operation reads the nat table once (`iptables-save -t nat`), plans a batch from that text (pure
functions below) and applies it with one `iptables-restore -w --noflush`, which iptables applies
atomically. Declaring `:CHAIN - [0:0]` creates the chain or flushes it, so a repeated or concurrent ADD
never fails on "chain exists" and never duplicates the chain's rules; the POSTROUTING jumps are added
only when the read did not show them. Rules the reference wrote (chain `CNI-<sha512(net+cid)>`, comment
without `if:`) are recognised by DEL and GC.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from ipaddress import ip_interface
from typing import Iterable, Sequence

from shared.errors import CNIError, ErrorCode

from . import _exec
from ._model import (
    Attachment,
    IPInterface,
    IptOwner,
    ipt_chain,
    ipt_comment,
    parse_ipt_comment,
    ref_ipt_chain,
    split_families,
)

TOOLS = {4: ("iptables-save", "iptables-restore"), 6: ("ip6tables-save", "ip6tables-restore")}
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
BUILTIN = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")


@dataclass(frozen=True)
class Rule:
    chain: str
    spec: str  # the text after `-A <chain> `, exactly as iptables-save printed it
    target: str | None
    source: IPInterface | None  # -s address/prefix, None if absent or negated
    comment: str | None

    def delete_line(self) -> str:
        return f"-D {self.chain} {self.spec}"


@dataclass
class NatTable:
    chains: set[str] = field(default_factory=set)
    rules: list[Rule] = field(default_factory=list)

    def jumps_to(self, chain: str) -> list[Rule]:
        return [r for r in self.rules if r.target == chain]


# --- pure: parse and plan -------------------------------------------------------------------------

def _source(text: str) -> IPInterface | None:
    try:
        return ip_interface(text)
    except ValueError:
        return None


def _jump_serves(rule: Rule, ip: IPInterface) -> bool:
    """Whether a POSTROUTING jump is the one for `ip`: `-s <ip>/32`, or the reference's old `-s <ip/prefix>`
    form (which iptables stores as the subnet)."""
    if rule.source is None:
        return False
    if rule.source.network.prefixlen == rule.source.max_prefixlen:
        return rule.source.ip == ip.ip
    return rule.source.network == ip.network


def _parse_rule(line: str) -> Rule | None:
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    if len(tokens) < 2 or tokens[0] != "-A":
        return None
    chain = tokens[1]
    spec = line.split(None, 2)[2] if len(line.split(None, 2)) > 2 else ""
    target: str | None = None
    source: IPInterface | None = None
    comment: str | None = None
    i = 2
    while i < len(tokens):
        tok, nxt = tokens[i], (tokens[i + 1] if i + 1 < len(tokens) else None)
        if nxt is not None and tok in ("-j", "--jump", "-g", "--goto", "--comment", "-s", "--source"):
            if tok == "--comment":
                comment = nxt
            elif tok in ("-s", "--source"):
                negated = tokens[i - 1] == "!"
                source = None if negated else _source(nxt)
            else:
                target = nxt
            i += 2
        else:
            i += 1
    return Rule(chain, spec, target, source, comment)


def parse_save(text: str) -> NatTable:
    """Parse `iptables-save -t nat` output (only the nat table section)."""
    table = NatTable()
    in_nat = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            in_nat = line == "*nat"
        elif not in_nat or not line or line.startswith("#"):
            continue
        elif line.startswith(":"):
            table.chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            rule = _parse_rule(line)
            if rule is not None:
                table.rules.append(rule)
    return table


def _quote(text: str) -> str:
    """A double-quoted argument for iptables-restore (which understands \\" and \\\\ inside quotes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _batch(lines: list[str]) -> str:
    return "*nat\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"


def plan_setup(table: NatTable, att: Attachment, family: int, ips: Sequence[IPInterface]) -> list[str]:
    """The restore lines that make `att`'s rules for `family` exactly what `ips` need."""
    chain, comment = ipt_chain(att), _quote(ipt_comment(att))
    tag = f"-m comment --comment {comment}"
    lines = [f":{chain} - [0:0]"]  # creates the chain, or flushes it if it exists
    subnets = dict.fromkeys(str(ip.network) for ip in ips)
    lines += [f"-A {chain} -d {net} {tag} -j ACCEPT" for net in subnets]
    lines.append(f"-A {chain} ! -d {MULTICAST[family]} {tag} -j MASQUERADE")
    served: set[IPInterface] = set()
    for rule in table.jumps_to(chain):
        match = next((ip for ip in ips if _jump_serves(rule, ip)), None)
        if rule.chain == "POSTROUTING" and match is not None and match not in served:
            served.add(match)  # keep the first jump per IP
        else:
            lines.append(rule.delete_line())  # a duplicate, or an IP this attachment no longer has
    for ip in dict.fromkeys(ips):
        if ip not in served:
            lines.append(f"-A POSTROUTING -s {ip.ip} {tag} -j {chain}")
    return lines


def plan_create(att: Attachment, family: int, ips: Sequence[IPInterface]) -> list[str]:
    """The restore lines for an attachment that has no chain yet, planned without reading the table.

    `-N` makes iptables-restore refuse the whole batch if the chain exists, and without the chain no
    jump to it can exist either, so the batch either lays out exactly plan_setup's rules or changes
    nothing."""
    lines = plan_setup(NatTable(), att, family, ips)
    lines[0] = f"-N {ipt_chain(att)}"
    return lines


def _drop_chain(table: NatTable, chain: str, keep: Iterable[Rule] = ()) -> list[str]:
    kept = set(keep)
    lines = [r.delete_line() for r in table.jumps_to(chain) if r not in kept]
    if chain in table.chains and not kept:
        lines += [f"-F {chain}", f"-X {chain}"]
    return lines


def plan_teardown(table: NatTable, att: Attachment, ips: Sequence[IPInterface] | None) -> list[str]:
    """Remove `att`'s chain and jumps, and the reference's chain for the same container.

    The reference's chain serves every ifname of the container, so when the IPs are known (`ips` not
    None) only their jumps go and the chain stays while another IP still jumps to it; with unknown IPs
    (the link is gone) it all goes.
    """
    lines = _drop_chain(table, ipt_chain(att))
    ref = ref_ipt_chain(att.network, att.container_id)
    if ips is not None:
        keep = [r for r in table.jumps_to(ref) if not any(_jump_serves(r, ip) for ip in ips)]
    else:
        keep = []
    lines += _drop_chain(table, ref, keep)
    return lines


def owners(table: NatTable, network: str) -> dict[str, IptOwner]:
    """Chains of `network` found by their comments, checked against the chain name the comment implies."""
    found: dict[str, IptOwner] = {}
    for rule in table.rules:
        owner = parse_ipt_comment(rule.comment) if rule.comment else None
        if owner is None or owner.network != network:
            continue
        chain = owner.chain()
        if rule.chain == chain or rule.target == chain:
            found[chain] = owner
    return found


def plan_gc(table: NatTable, network: str, valid: frozenset[tuple[str, str]]) -> list[str]:
    live_ids = {cid for cid, _ in valid}
    lines: list[str] = []
    for chain, owner in sorted(owners(table, network).items()):
        if owner.ifname is None:
            stale = owner.container_id not in live_ids  # the reference's chain serves all ifnames
        else:
            stale = (owner.container_id, owner.ifname) not in valid
        if stale:
            lines += _drop_chain(table, chain)
    return lines


# --- the driver -----------------------------------------------------------------------------------

class IptablesDriver:
    """MasqueradeDriver on iptables-save / iptables-restore (v4) and their ip6tables twins (v6)."""

    name = "iptables"

    def __init__(self, runner: _exec.Runner | None = None) -> None:
        self._run = runner or _exec.run  # looked up now, so a test can wrap _exec.run
        self._cache: dict[int, NatTable] = {}
        self.why_unusable = ""

    def _tools_present(self, family: int) -> bool:
        return all(_exec.available(tool) for tool in TOOLS[family])

    def _read(self, family: int) -> NatTable:
        cached = self._cache.pop(family, None)
        if cached is not None:
            return cached
        argv = [TOOLS[family][0], "-t", "nat"]
        return parse_save(_exec.checked(self._run, argv, "failed to read the nat table").stdout)

    def _try_read(self, family: int) -> NatTable | None:
        """The table, or None when this family's tools are missing or do not work here."""
        if not self._tools_present(family):
            self.why_unusable = f"{' or '.join(TOOLS[family])} not found"
            return None
        try:
            return self._read(family)
        except CNIError as e:
            self.why_unusable = str(e)
            return None

    def _apply(self, family: int, lines: list[str], what: str) -> None:
        if lines:
            argv = [TOOLS[family][1], "-w", _exec.WAIT, "--noflush"]
            _exec.checked(self._run, argv, what, _batch(lines))

    def usable(self) -> bool:
        """The reference's test: IPv4 iptables can read the nat table. Keeps the read for a following setup."""
        table = self._try_read(4)
        if table is not None:
            self._cache[4] = table
        return table is not None

    def setup(self, att: Attachment, ips: Sequence[IPInterface]) -> None:
        for family, fam_ips in sorted(split_families(ips).items()):
            if not self._tools_present(family):
                raise CNIError(ErrorCode.NOT_AVAILABLE, f"{TOOLS[family][1]} not found",
                               f"needed to masquerade {', '.join(str(ip) for ip in fam_ips)}")
            for attempt in range(3):  # a concurrent change can invalidate the plan; re-read and retry
                lines = plan_setup(self._read(family), att, family, fam_ips)
                try:
                    self._apply(family, lines, "failed to set up masquerading")
                    break
                except CNIError:
                    if attempt == 2:
                        raise
        self._cache.clear()

    def create(self, att: Attachment, ips: Sequence[IPInterface]) -> bool:
        """The usual ADD in one exec per family: lay out the rules of an attachment that has no chain.

        False (and nothing changed for the family that failed) when a chain exists already, or the
        tools are missing or refuse: the caller then takes the read-plan-apply path, which finds
        out why and is idempotent over a family done here."""
        for family, fam_ips in sorted(split_families(ips).items()):
            if not self._tools_present(family):
                return False
            argv = [TOOLS[family][1], "-w", _exec.WAIT, "--noflush"]
            try:
                if self._run(argv, _batch(plan_create(att, family, fam_ips))).rc != 0:
                    return False
            except CNIError as e:
                if e.code == ErrorCode.TRY_AGAIN_LATER:
                    raise  # it hung for the whole timeout: another try would too
                return False
        return True

    def teardown(self, att: Attachment, ips: Sequence[IPInterface]) -> None:
        by_family = split_families(ips)
        errors: list[CNIError] = []
        for family in (4, 6):
            table = self._try_read(family)
            if table is None:
                continue  # no working iptables for this family: nothing of ours can be there
            try:
                known = by_family.get(family, []) if ips else None
                self._apply(family, plan_teardown(table, att, known),
                            "failed to remove masquerading")
            except CNIError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def gc(self, network: str, valid: frozenset[tuple[str, str]]) -> None:
        errors: list[CNIError] = []
        for family in (4, 6):
            table = self._try_read(family)
            if table is None:
                continue
            try:
                self._apply(family, plan_gc(table, network, valid), "failed to garbage-collect masquerading")
            except CNIError as e:
                errors.append(e)
        if errors:
            raise errors[0]
