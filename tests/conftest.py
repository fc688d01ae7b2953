"""Fixtures shared by every test tier."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REFERENCE_DIRS = ("/usr/lib/cni", "/opt/cni/bin")


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our plugins installed by `pycni install` into a private bin dir, as a runtime would see them."""
    from shared.install import install

    target = tmp_path_factory.mktemp("cni-bin")
    install(str(target))
    return target


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Debian's containernetworking-plugins (the Go reference), or skip."""
    for candidate in REFERENCE_DIRS:
        host_local = Path(candidate, "host-local")
        if host_local.is_file() and "pycni" not in host_local.read_bytes()[:200].decode(errors="replace"):
            return Path(candidate)
    pytest.skip("Debian's containernetworking-plugins are not installed (reference plugins missing)")


@pytest.fixture
def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 to create test namespaces")


# -- leftovers guard ------------------------------------------------------------------------------
# Tests must leave the machine's root namespace as they found it. The snapshot is compared at the
# end of the session; in CI (CI=true) a difference fails the run, elsewhere it is reported (other
# runs on a developer machine may legitimately be creating namespaces at the same time).

def _root_snapshot() -> dict[str, frozenset[str]]:
    import subprocess

    def lines(*argv: str) -> frozenset[str]:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return frozenset()
        return frozenset(line.split()[0] for line in out.splitlines() if line.strip())

    def rules(*argv: str) -> frozenset[str]:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return frozenset()
        return frozenset(line for line in out.splitlines() if line.startswith(("-A", "-N", ":CNI", "table")))

    return {
        "network namespaces": lines("ip", "netns", "list"),
        "links": lines("ip", "-br", "link"),
        "iptables nat rules": rules("iptables-save", "-t", "nat"),
        "nftables tables": rules("nft", "list", "tables"),
    }


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.geteuid() == 0:
        session.config._pycni_root_snapshot = _root_snapshot()  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = getattr(session.config, "_pycni_root_snapshot", None)
    if before is None:
        return
    after = _root_snapshot()
    leaks = {kind: sorted(after[kind] - before[kind]) for kind in after if after[kind] - before[kind]}
    if not leaks:
        return
    report = "; ".join(f"{kind}: {', '.join(items)}" for kind, items in leaks.items())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"LEFTOVERS in the root namespace after the tests: {report}", red=True)
    if os.environ.get("CI") == "true" and session.exitstatus == 0:
        session.exitstatus = 1
