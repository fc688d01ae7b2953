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
