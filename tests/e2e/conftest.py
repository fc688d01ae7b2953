"""Fixtures for the end-to-end tests."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["ours", "reference"])
def plugins(request: pytest.FixtureRequest) -> Path:
    """Each end-to-end scenario runs with our plugins and with the Go reference's."""
    if request.param == "reference":
        request.applymarker(pytest.mark.interop)
        return request.getfixturevalue("reference_dir")
    return request.getfixturevalue("plugin_dir")
