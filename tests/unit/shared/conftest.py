"""Fixtures for the core's unit tests (helpers live in tests/support/core_plugin.py)."""
from __future__ import annotations

import pytest

from shared import skel
from tests.support.core_plugin import Recorder, make_plugin


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def plugin(recorder: Recorder) -> skel.Plugin:
    return make_plugin(recorder)
