"""Issue 15 item 5 in headless Chromium: the demo's WebM (VP8, made by ffmpeg at build time)
served by the Python node as UnixFS over Bitswap, played by the page while Helia streams it into
Media Source Extensions; frames decoded and played to the end (support/demo_harness.py)."""

from __future__ import annotations

import pytest
from support.demo_harness import video_plays_to_the_end

pytestmark = pytest.mark.browser
BROWSER = "chromium"


async def test_video_plays_while_it_arrives_to_the_end(engine: str) -> None:
    await video_plays_to_the_end(engine, BROWSER)
