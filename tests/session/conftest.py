"""Fixtures of the session tests: every pair test runs over both QUIC engines."""

from __future__ import annotations

import pytest
from h3pair import ENGINES


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name
