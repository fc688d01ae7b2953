"""Fixtures for the bridge handler tests: every test gets its own host + container namespaces."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.bridgenet import BridgeNet, bridge_net


def _preload() -> None:
    """Import pyroute2 once in the test process: forked children then start warm."""
    import pyroute2.iproute.linux  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nsenter") is None:
        pytest.skip("needs root, iproute2 and nsenter for network namespaces")
    _preload()


@pytest.fixture
def net(plugin_dir: Path, tmp_path: Path) -> Iterator[BridgeNet]:
    with bridge_net(plugin_dir, tmp_path / "ipam", containers=1) as n:
        yield n


@pytest.fixture
def net2(plugin_dir: Path, tmp_path: Path) -> Iterator[BridgeNet]:
    with bridge_net(plugin_dir, tmp_path / "ipam", containers=2) as n:
        yield n
