"""The README's host example, run as written on this machine, prints an address that headless
Chromium running js-libp2p dials (the issue's "done when")."""

from __future__ import annotations

import pytest
import trio
from support.browser_harness import run_browser
from support.wt_helpers import readme_host_running

pytestmark = pytest.mark.browser
BROWSER = "chromium"


async def test_chromium_dials_the_readme_host() -> None:
    with trio.fail_after(120):
        async with readme_host_running() as (wt, _tcp):
            report = await run_browser(
                BROWSER, [{"op": "dial", "addr": wt}, {"op": "ping", "count": 3}]
            )
            assert report.ok_step("dial")["remotePeer"] == wt.rsplit("/p2p/", 1)[1]
            report.ok_step("ping")
