"""Fixtures for the browser suite (helpers live in browser_harness.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["qh3", "aioquic"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> str:
    """The browser of the test module (its ``BROWSER``): the shared checks run once per browser."""
    return str(getattr(request.module, "BROWSER", "chromium"))


@pytest.fixture(autouse=True)
def _browser_available(request: pytest.FixtureRequest) -> None:
    """Skip (or, under CI, fail) before the test starts when the browser or the page is missing."""
    from browser_harness import require_browser

    require_browser(getattr(request.module, "BROWSER", "chromium"))
