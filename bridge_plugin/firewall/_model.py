"""Who owns a rule, and the names and comments that tag rules with their owner (pure).

Everything here is a deterministic function of (network, container ID, ifname), so that DEL and GC can
find rules without any state on disk. The reference's formats are reproduced exactly (they are how we
recognise rules it wrote); ours differ only where the reference loses information (its iptables chain
ignores ifname, its spoof-check tag ignores the network).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface
from typing import Sequence, Union

IPInterface = Union[IPv4Interface, IPv6Interface]

NFT_COMMENT_MAX = 128  # knftables.CommentLengthMax; nft's own text parser rejects longer comments
IPT_COMMENT_MAX = 256  # xt_comment's limit
IPT_CHAIN_LEN = 28  # the reference's FormatChainName length


@dataclass(frozen=True)
class Attachment:
    """The owner of a set of rules: one interface of one container on one network."""

    network: str
    container_id: str
    ifname: str


def sha512_hex(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


def hash_with_prefix(length: int, prefix: str, to_hash: str) -> str:
    """The reference's MustFormatHashWithPrefix: prefix + sha512 hex, cut to `length`."""
    return (prefix + sha512_hex(to_hash))[:length]


def go_quote(text: str) -> str:
    """Go's %q for the strings CNI allows (printable; quotes, backslashes and controls escaped)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_GO_STR = r'"((?:[^"\\]|\\.)*)"'
_COMMENT_RE = re.compile(rf"^name: {_GO_STR} id: {_GO_STR}(?: if: {_GO_STR})?$")
_UNESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def go_unquote(body: str) -> str:
    """Inverse of go_quote for the text between the quotes."""
    return re.sub(r"\\x([0-9a-fA-F]{2})|\\(.)",
                  lambda m: chr(int(m.group(1), 16)) if m.group(1) else _UNESCAPES.get(m.group(2), m.group(2)),
                  body)


# --- iptables -------------------------------------------------------------------------------------

def ref_ipt_chain(network: str, container_id: str) -> str:
    """The reference's chain: FormatChainName(name, id) = "CNI-" + sha512(name+id), 28 chars."""
    return hash_with_prefix(IPT_CHAIN_LEN, "CNI-", network + container_id)


def ref_ipt_comment(network: str, container_id: str) -> str:
    """The reference's comment: `name: %q id: %q`."""
    return f"name: {go_quote(network)} id: {go_quote(container_id)}"


def ipt_chain(att: Attachment) -> str:
    """Our chain, keyed by ifname too. ':' can appear in neither a network name nor a container ID."""
    return hash_with_prefix(IPT_CHAIN_LEN, "CNI-", f"{att.network}:{att.container_id}:{att.ifname}")


def ipt_comment(att: Attachment) -> str:
    """The reference's comment plus ` if: %q`, so GC can tell our chains' owners apart."""
    return f"{ref_ipt_comment(att.network, att.container_id)} if: {go_quote(att.ifname)}"[:IPT_COMMENT_MAX]


@dataclass(frozen=True)
class IptOwner:
    """What a parsed iptables comment says: ifname None means the reference wrote it."""

    network: str
    container_id: str
    ifname: str | None

    def chain(self) -> str:
        if self.ifname is None:
            return ref_ipt_chain(self.network, self.container_id)
        return ipt_chain(Attachment(self.network, self.container_id, self.ifname))


def parse_ipt_comment(comment: str) -> IptOwner | None:
    m = _COMMENT_RE.match(comment)
    if not m:
        return None
    ifname = go_unquote(m.group(3)) if m.group(3) is not None else None
    return IptOwner(go_unquote(m.group(1)), go_unquote(m.group(2)), ifname)


# --- nftables masquerade (the reference's format, shared with the spoof-check owner tag) ----------

def network_hash(network: str) -> str:
    return hash_with_prefix(16, "", network)


def instance_hash(att: Attachment) -> str:
    """`<sha512(net)[:16]>-<sha512(ifname:cid)[:16]>`: the prefix of every comment we match on."""
    return network_hash(att.network) + "-" + hash_with_prefix(16, "", f"{att.ifname}:{att.container_id}")


def nft_comment(att: Attachment) -> str:
    """The reference's commentForInstance: hash prefix, then a human-readable tail, max 128 chars."""
    def clean(s: str) -> str:
        return s.replace('"', "")
    text = (f"{instance_hash(att)}, net: {clean(att.network)}, if: {clean(att.ifname)}, "
            f"id: {clean(att.container_id)}")
    return text[:NFT_COMMENT_MAX]


# --- spoof check ----------------------------------------------------------------------------------

def spoof_ref_id(att: Attachment) -> str:
    return f"{att.container_id}-{att.ifname}"


def spoof_iface_chain(att: Attachment) -> str:
    return f"cni-br-iface-{spoof_ref_id(att)}"


def spoof_mac_chain(att: Attachment) -> str:
    return spoof_iface_chain(att) + "-mac"


def spoof_ref_comment(att: Attachment) -> str:
    """The reference's tag `macspoofchk-<cid>-<ifname>` (it carries no network)."""
    return f"macspoofchk-{spoof_ref_id(att)}"[:NFT_COMMENT_MAX]


def spoof_owner_comment(att: Attachment) -> str:
    """Our tag on the per-attachment chains' rules: the masquerade comment, so it names the network."""
    return ("macspoofchk " + nft_comment(att))[:NFT_COMMENT_MAX]


def ip_family(ip: IPInterface) -> int:
    return ip.version


def split_families(ips: Sequence[IPInterface]) -> dict[int, list[IPInterface]]:
    out: dict[int, list[IPInterface]] = {}
    for ip in ips:
        out.setdefault(ip.version, []).append(ip)
    return out
