"""The bridge plugin's firewall: masquerade (iptables or nftables driver) and the MAC spoof check.

Every function acts on the network namespace of the calling process. Rules are tagged with their owner
(network, container ID, ifname), so DEL and GC find them without state on disk and never touch another
attachment's rules; rules the reference plugin wrote are recognised too. See docs/firewall.md.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence

from shared.errors import CNIError, ErrorCode

from ._model import Attachment, IPInterface

__all__ = [
    "Attachment",
    "MasqueradeDriver",
    "BACKENDS",
    "validate_backend",
    "masquerade_usable",
    "setup_masquerade",
    "teardown_masquerade",
    "gc_masquerade",
    "setup_spoofcheck",
    "teardown_spoofcheck",
    "gc_spoofcheck",
]

BACKENDS = ("iptables", "nftables")


class MasqueradeDriver(Protocol):
    """One firewall backend. Each method reads the current rules once and applies one batch."""

    name: str
    why_unusable: str  # set by a failed usable(): what is missing or failing

    def usable(self) -> bool:
        """The backend's tools exist and work in this netns."""

    def create(self, att: Attachment, ips: Sequence[IPInterface]) -> bool:
        """Lay out the rules of an attachment that has none yet, without reading the rules first.
        False, with nothing changed, when that is not possible (rules exist, backend unusable)."""

    def setup(self, att: Attachment, ips: Sequence[IPInterface]) -> None:
        """Make att's rules exactly those `ips` need (idempotent)."""

    def teardown(self, att: Attachment, ips: Sequence[IPInterface]) -> None:
        """Remove att's rules (found by tag; `ips` may be empty); no-op if the backend is unusable."""

    def gc(self, network: str, valid: frozenset[tuple[str, str]]) -> None:
        """Remove the rules of `network`'s attachments that are not in `valid` (containerID, ifname)."""


def _driver(name: str) -> MasqueradeDriver:
    if name == "iptables":
        from .iptables import IptablesDriver
        return IptablesDriver()
    from .nftables import NftablesDriver
    return NftablesDriver()


def validate_backend(backend: str | None) -> None:
    if backend is not None and backend not in BACKENDS:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, f"invalid ipMasqBackend {backend!r}",
                       "must be \"iptables\" or \"nftables\" (or unset to use what this host supports)")


def _select(backend: str | None) -> MasqueradeDriver:
    """The named backend, or (unset) iptables if it works here, else nftables, as the reference picks."""
    validate_backend(backend)
    reasons = []
    for name in (backend,) if backend else BACKENDS:
        driver = _driver(name)
        if driver.usable():
            return driver
        reasons.append(f"{name}: {driver.why_unusable}")
    wanted = f"ipMasqBackend {backend!r} does not" if backend else "neither iptables nor nftables"
    raise CNIError(ErrorCode.NOT_AVAILABLE, "no usable masquerade backend",
                   f"{wanted} works in this network namespace ({'; '.join(reasons)})")


def masquerade_usable(backend: str | None) -> bool:
    """For STATUS: can an ADD with ipMasq succeed here?"""
    try:
        _select(backend)
    except CNIError as e:
        if e.code == ErrorCode.INVALID_NETWORK_CONFIG:
            raise
        return False
    return True


def setup_masquerade(backend: str | None, att: Attachment, ips: Sequence[IPInterface]) -> None:
    validate_backend(backend)
    if not ips:
        return  # nothing to masquerade (an L2 attachment)
    if backend in (None, "iptables") and _driver("iptables").create(att, ips):
        return  # a fresh attachment on a working iptables: one batch, no read (and iptables works)
    _select(backend).setup(att, ips)


def _all_drivers(action: str, fn: Callable[[MasqueradeDriver], None]) -> None:
    """Run fn on both backends (the attachment may predate a config change); raise once at the end."""
    errors: list[CNIError] = []
    for name in BACKENDS:
        try:
            fn(_driver(name))
        except CNIError as e:
            errors.append(e)
    if errors:
        first = errors[0]
        raise CNIError(first.code, f"failed to {action}: {first.msg}",
                       "\n".join(str(e) for e in errors))


def teardown_masquerade(att: Attachment, ips: Sequence[IPInterface]) -> None:
    _all_drivers("remove masquerading", lambda d: d.teardown(att, ips))


def gc_masquerade(network: str, valid: frozenset[tuple[str, str]]) -> None:
    _all_drivers("garbage-collect masquerading", lambda d: d.gc(network, valid))


def setup_spoofcheck(att: Attachment, host_veth: str, container_mac: str) -> None:
    from . import spoofcheck
    spoofcheck.setup(att, host_veth, container_mac)


def teardown_spoofcheck(att: Attachment) -> None:
    from . import spoofcheck
    spoofcheck.teardown(att)


def gc_spoofcheck(network: str, valid: frozenset[tuple[str, str]]) -> None:
    from . import spoofcheck
    spoofcheck.gc(network, valid)
