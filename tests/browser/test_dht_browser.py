"""The DHT from a browser in headless Chromium (issue 15, item 4): `@libp2p/kad-dht` in client
mode, connected only to a Python node running Kademlia in server mode, finds the providers of a
CID (and fetches it from the provider it found) and a second Python peer's addresses
(the plan and its checks: support/dht_checks.py).
"""

from __future__ import annotations

import pytest
from support.dht_checks import browser_finds_providers_and_peers

pytestmark = pytest.mark.browser
BROWSER = "chromium"


async def test_browser_finds_providers_and_peers_through_the_python_dht(engine: str) -> None:
    timings = await browser_finds_providers_and_peers(engine, BROWSER)
    print(f"DHT lookups from {BROWSER} ({engine}), ms: {timings}")
