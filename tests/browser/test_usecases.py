"""The use cases browsers come for (issue 8), with js-libp2p in headless Chromium against a
py-libp2p host on our transport: gossip both ways, upload, fetch by CID.
"""

from __future__ import annotations

import hashlib
import os

import pytest
import trio
from libp2p.peer.id import ID
from support.browser_harness import served_host
from support.usecases_harness import run_usecases

from py_libp2p_webtransport.apps.bitswap import running_bitswap
from py_libp2p_webtransport.apps.files import BLOCK_SIZE, ContentStore, FileService
from py_libp2p_webtransport.apps.gossip import (
    mesh_peers,
    publish_with_backpressure,
    running_pubsub,
    topic_peers,
)
from py_libp2p_webtransport.apps.ipld import CID

pytestmark = pytest.mark.browser
BROWSER = "chromium"
MiB = 1024 * 1024
TOPIC = "py-libp2p-webtransport/test-chat"
COUNT = 100


async def test_gossip_100_messages_each_way(engine: str) -> None:
    async with served_host(engine) as served, running_pubsub(served.host) as pubsub:
        sub = await pubsub.subscribe(TOPIC)
        from_browser: list[str] = []
        browser_id: list[ID] = []

        async def python_side() -> None:
            # Publish only once the browser is subscribed and in our mesh (bounded).
            with trio.fail_after(30):
                while not browser_id:
                    peers = topic_peers(pubsub, TOPIC) & mesh_peers(pubsub, TOPIC)
                    browser_id.extend(peers)
                    await trio.sleep(0.05)
            for i in range(COUNT):
                await publish_with_backpressure(pubsub, TOPIC, f"p2b-{i}".encode())
                # Our own copy lands in our subscription too: let collect() drain it.
                await trio.sleep(0)

        async def collect() -> None:
            async def take() -> None:
                text = (await sub.get()).data.decode()
                if not text.startswith("p2b-"):  # not our own
                    from_browser.append(text)

            with trio.move_on_after(60):
                while len(set(from_browser)) < COUNT:
                    await take()
            # Duplicates, if any, arrive right behind the originals.
            with trio.move_on_after(1):
                while True:
                    await take()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(python_side)
            nursery.start_soon(collect)
            steps = [
                {"op": "dial", "addr": served.webtransport_addr},
                {"op": "gossip", "topic": TOPIC, "count": COUNT, "expect": COUNT},
            ]
            report = await run_usecases(steps)

        gossip = report.ok_step("gossip")
        assert gossip["publishFailures"] == 0, gossip["publishErrors"]
        in_browser = gossip["received"]
        expected = [f"p2b-{i}" for i in range(COUNT)]
        missing = set(expected) - set(in_browser)
        assert sorted(in_browser) == sorted(expected), (len(in_browser), sorted(missing)[:10])
        expected = [f"b2p-{i}" for i in range(COUNT)]
        missing = set(expected) - set(from_browser)
        assert sorted(from_browser) == sorted(expected), (len(from_browser), sorted(missing)[:10])


async def test_upload_10_mib(engine: str) -> None:
    service = FileService()
    async with served_host(engine, handlers=dict(service.handlers())) as served:
        steps = [
            {"op": "dial", "addr": served.webtransport_addr},
            {"op": "upload", "bytes": 10 * MiB},
        ]
        report = await run_usecases(steps)
    upload = report.ok_step("upload")
    assert len(service.uploads) == 1
    stored = service.uploads[0]
    # The browser hashed what it sent; we hashed what we stored; the answer carried ours back.
    assert stored.size == 10 * MiB
    assert upload["sha256"] == stored.sha256 == upload["answer"]["sha256"]
    assert upload["answer"]["cid"] == stored.cid
    print(f"upload browser->python ({engine}): {upload['MBps']:.1f} MB/s")


async def test_fetch_10_mib_by_cid(engine: str) -> None:
    service = FileService()
    data = os.urandom(10 * MiB)
    entry = service.store.add_file(data)
    async with served_host(engine, handlers=dict(service.handlers())) as served:
        steps = [
            {"op": "dial", "addr": served.webtransport_addr},
            {"op": "fetch", "cid": entry.cid},
        ]
        report = await run_usecases(steps)
    fetched = report.ok_step("fetch")
    assert fetched["bytes"] == len(data)
    assert fetched["sha256"] == hashlib.sha256(data).hexdigest()
    assert fetched["progressCalls"] == len(entry.blocks) + 1
    print(f"fetch python->browser ({engine}): {fetched['MBps']:.1f} MB/s")


async def test_fetch_over_bitswap(engine: str) -> None:
    """Helia's bitswap (@helia/bitswap) in Chromium wants raw blocks from our Bitswap
    (apps/bitswap.py), which answers on streams it opens as Kubo does. (py-libp2p 0.8.1's
    BitswapClient answers on the requester's stream, which Helia has closed: see
    tests/apps/test_bitswap.py.)"""
    data = os.urandom(1 * MiB)
    entry = ContentStore().add_file(data)
    async with served_host(engine) as served, running_bitswap(served.host) as bitswap:
        for cid, block in zip(entry.blocks, split_blocks(data), strict=True):
            bitswap.add_block(CID.parse(cid), block)
        steps = [
            {"op": "startBitswap"},
            {"op": "dial", "addr": served.webtransport_addr},
            {"op": "bitswapFetch", "cids": entry.blocks, "blockTimeoutMs": 5000},
        ]
        report = await run_usecases(steps, debug=os.environ.get("WT_DEBUG", ""))
    fetched = report.ok_step("bitswapFetch")
    assert fetched["hashes"] == [hashlib.sha256(b).hexdigest() for b in split_blocks(data)]
    print(f"bitswap fetch python->browser ({engine}): {fetched['MBps']:.1f} MB/s")


def split_blocks(data: bytes) -> list[bytes]:
    return [data[i : i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE)]
