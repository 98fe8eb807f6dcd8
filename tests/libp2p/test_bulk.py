"""100 MiB each way over one stream, byte-exact (sha256)."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio
from libp2p.network.stream.exceptions import StreamEOF
from support.wt_helpers import peer_info, wt_host

from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL

SIZE = 100 * 1024 * 1024
CHUNK = 256 * 1024


@pytest.mark.slow
async def test_100_mib_each_way(engine: str) -> None:
    block = os.urandom(CHUNK)
    sent = hashlib.sha256()
    received = hashlib.sha256()
    count = 0
    with trio.fail_after(600):
        async with wt_host(engine) as server, wt_host(engine) as client:
            await client.connect(peer_info(server))
            # Echo: 100 MiB up and the same 100 MiB down, concurrently on one stream.
            stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])

            async def writer() -> None:
                for i in range(SIZE // CHUNK):
                    piece = block[i % 7 :] + block[: i % 7]  # vary the content per chunk
                    sent.update(piece)
                    await stream.write(piece)
                await stream.close()

            async def reader() -> None:
                nonlocal count
                while True:
                    try:
                        chunk = await stream.read(1 << 20)
                    except StreamEOF:
                        break
                    received.update(chunk)
                    count += len(chunk)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                nursery.start_soon(reader)
    assert count == SIZE
    assert received.hexdigest() == sent.hexdigest()
