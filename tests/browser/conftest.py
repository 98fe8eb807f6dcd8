"""Fixtures for the browser suite (helpers live in browser_harness.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["qh3", "aioquic"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)
