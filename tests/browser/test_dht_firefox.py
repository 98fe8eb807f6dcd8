"""The DHT from a browser in headless Firefox ESR (the Chromium case, and what it checks:
test_dht_browser.py and support/dht_checks.py)."""

from __future__ import annotations

import pytest
from support.dht_checks import browser_finds_providers_and_peers

pytestmark = pytest.mark.browser
BROWSER = "firefox"


async def test_browser_finds_providers_and_peers_through_the_python_dht(engine: str) -> None:
    timings = await browser_finds_providers_and_peers(engine, BROWSER)
    print(f"DHT lookups from {BROWSER} ({engine}), ms: {timings}")
