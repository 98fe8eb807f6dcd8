"""Fixtures for the browser suite (helpers: ``support.browser_harness``; the ``engine`` fixture:
``tests/conftest.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> str:
    """The browser of the test module (its ``BROWSER``): the shared checks run once per browser."""
    return str(getattr(request.module, "BROWSER", "chromium"))


@pytest.fixture(autouse=True)
def _browser_available(request: pytest.FixtureRequest) -> None:
    """Skip (or, under CI, fail) before the test starts when the browser or the page is missing."""
    from support.browser_harness import require_browser

    require_browser(getattr(request.module, "BROWSER", "chromium"))
