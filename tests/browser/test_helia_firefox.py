"""Helia (`@helia/unixfs` over `@helia/bitswap`) in headless Firefox ESR against the Python
node's Bitswap over WebTransport (the Chromium cases, and what they check: test_helia.py)."""

from __future__ import annotations

import pytest
from support.helia_checks import MiB, cat_both_ways, python_fetches_what_the_browser_added

pytestmark = pytest.mark.browser
BROWSER = "firefox"


async def test_helia_cats_10_mib_beside_our_fetch_protocol(engine: str) -> None:
    await cat_both_ways(engine, 10 * MiB, BROWSER)


async def test_the_python_node_fetches_what_the_browser_added(engine: str) -> None:
    await python_fetches_what_the_browser_added(engine, BROWSER)
