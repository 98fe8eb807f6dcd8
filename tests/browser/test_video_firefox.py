"""The demo's video in headless Firefox ESR (what it checks: test_video.py)."""

from __future__ import annotations

import pytest
from support.demo_harness import video_plays_to_the_end

pytestmark = pytest.mark.browser
BROWSER = "firefox"


async def test_video_plays_while_it_arrives_to_the_end(engine: str) -> None:
    await video_plays_to_the_end(engine, BROWSER)
