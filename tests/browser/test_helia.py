"""Helia (`@helia/unixfs` over `@helia/bitswap`) in headless Chromium against the Python node's
Bitswap (apps/bitswap.py) and UnixFS (apps/unixfs.py), over WebTransport: the browser's standard
stack, with nothing of ours on the page but the plan runner (issue 15).
"""

from __future__ import annotations

import hashlib
import os

import pytest
from support.browser_harness import served_host
from support.helia_checks import MiB, cat_both_ways, python_fetches_what_the_browser_added
from support.usecases_harness import run_usecases

from py_libp2p_webtransport.apps.bitswap import running_bitswap
from py_libp2p_webtransport.apps.ipld import BlockStore
from py_libp2p_webtransport.apps.unixfs import import_directory

pytestmark = pytest.mark.browser
BROWSER = "chromium"


async def test_helia_cats_10_mib_beside_our_fetch_protocol(engine: str) -> None:
    await cat_both_ways(engine, 10 * MiB, BROWSER)


@pytest.mark.slow
async def test_helia_cats_100_mib(engine: str) -> None:
    await cat_both_ways(engine, 100 * MiB, BROWSER)


async def test_helia_reads_paths_inside_a_directory(engine: str) -> None:
    """@helia/verified-fetch of ipfs://<dir>/<path>, unixfs.ls and unixfs.cat at a path; each
    block is fetched once, over Bitswap (Helia keeps what it fetched)."""
    files = {
        "index.html": b"<h1>hello</h1>\n",
        "docs/a.txt": b"a" * 1000,
        "docs/deeper/big.bin": os.urandom(3 * 256 * 1024 + 11),
    }
    store = BlockStore()
    root = import_directory(files.items(), store)
    async with served_host(engine) as served, running_bitswap(served.host, store) as bitswap:
        steps = [
            {"op": "startHelia"},
            {"op": "dial", "addr": served.webtransport_addr},
            {"op": "verifiedFetch", "cid": str(root.cid), "path": "index.html"},
            {"op": "verifiedFetch", "cid": str(root.cid), "path": "docs/deeper/big.bin"},
            {"op": "heliaLs", "cid": str(root.cid), "path": "docs"},
            {"op": "heliaCat", "cid": str(root.cid), "path": "docs/a.txt"},
        ]
        report = await run_usecases(steps, debug=os.environ.get("WT_DEBUG", ""))
    page, blob = report.ok_step("verifiedFetch", 0), report.ok_step("verifiedFetch", 1)
    assert page["status"] == 200, page["error"]
    assert page["contentType"] == "text/html; charset=utf-8"
    assert page["sha256"] == hashlib.sha256(files["index.html"]).hexdigest()
    assert blob["status"] == 200, blob["error"]
    assert blob["sha256"] == hashlib.sha256(files["docs/deeper/big.bin"]).hexdigest()
    assert report.ok_step("heliaLs")["names"] == ["a.txt", "deeper"]
    assert report.ok_step("heliaCat")["sha256"] == hashlib.sha256(files["docs/a.txt"]).hexdigest()
    assert bitswap.stats.blocks_sent == len(store)


async def test_the_python_node_fetches_what_the_browser_added(engine: str) -> None:
    await python_fetches_what_the_browser_added(engine, BROWSER)
