"""Fixtures for end-to-end tests: every test runs on both QUIC engines."""

from __future__ import annotations

import pytest
from wt_helpers import ENGINES


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The QUIC engine under test (every host of a test uses it)."""
    return str(request.param)
