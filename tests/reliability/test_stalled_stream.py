"""One stalled reader among 100 streams: aioquic's per-stream credit lets the other 99 flow; on
qh3 (per-connection budget) the others flow while under budget and again once the stall breaker
aborted the stalled stream with an explicit error on both sides (README "Backpressure")."""

from __future__ import annotations

import os

import trio
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamReset
from libp2p.network.stream.net_stream import NetStream
from support.rel_helpers import send_buffer_probe, server_connections
from support.wt_helpers import peer_info, read_to_end, wt_host

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.constants import RECEIVE_STALL_ERROR

MiB = 1024 * 1024
CONFIG = {"max_data": 1 * MiB, "max_stream_data": 256 * 1024, "stall_timeout": 2.0}
STALL = TProtocol("/test/reliab/stall/1.0.0")
SINK = TProtocol("/test/reliab/count/1.0.0")
PIECE = 64 * 1024


async def _sink(stream: NetStream) -> None:
    data = await read_to_end(stream)
    await stream.write(b"%d" % len(data))
    await stream.close()


async def _round(client: object, server_id: object, n: int) -> None:
    """``n`` concurrent streams that each send PIECE bytes and get the count back."""

    async def one() -> None:
        stream = await client.new_stream(server_id, [SINK])  # type: ignore[attr-defined]
        await stream.write(os.urandom(PIECE))
        await stream.close()
        assert await read_to_end(stream) == b"%d" % PIECE

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)


async def test_one_stalled_reader_among_100_streams(engine: str) -> None:
    release = trio.Event()
    stalled_outcome: list[object] = []

    async def stall(stream: NetStream) -> None:
        await release.wait()
        try:
            stalled_outcome.append(len(await read_to_end(stream)))
        except StreamReset as error:
            stalled_outcome.append(error)

    with trio.fail_after(90):
        async with wt_host(engine, **CONFIG) as server, wt_host(engine, **CONFIG) as client:
            server.set_stream_handler(STALL, stall)
            server.set_stream_handler(SINK, _sink)
            await client.connect(peer_info(server))
            stalled = await client.new_stream(server.get_id(), [STALL])
            # Phase 1: the stalled stream holds one stream window, well under qh3's budget.
            await stalled.write(os.urandom(256 * 1024))
            (conn,) = server_connections(server)
            while conn.session.unread_bytes() < 200 * 1024:  # minus framing, in flight
                await trio.sleep(0.01)
            await _round(client, server.get_id(), 10)  # others flow on both engines
            assert not release.is_set() and conn.stalls_broken == 0

            # Phase 2: the stalled writer pushes on (blocked by credit), 99 others run.
            writer_error: list[BaseException] = []

            async def push() -> None:
                try:
                    for _ in range(64):
                        await stalled.write(os.urandom(PIECE))
                    await stalled.close()
                except StreamReset as error:
                    writer_error.append(error)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(push)
                # Until it took all the credit it gets: blocked on a full send buffer (or reset).
                full = WebTransportConfig().write_buffer_limit
                while send_buffer_probe(client)() < full and not writer_error:
                    await trio.sleep(0.01)
                await _round(client, server.get_id(), 99)
                if engine == "aioquic":
                    # Per-stream credit: the 99 completed beside the stalled stream.
                    assert conn.stalls_broken == 0 and not writer_error
                    release.set()  # then the stalled stream drains intact
                else:
                    # Per-connection budget: the 99 could only finish after the breaker fired.
                    assert conn.stalls_broken == 1
                    release.set()
            if engine == "aioquic":
                while not stalled_outcome:
                    await trio.sleep(0.01)
                assert stalled_outcome == [256 * 1024 + 64 * PIECE]  # every byte, no reset
            else:
                # The writer learns why: the peer's STOP_SENDING/RESET carries the stall code.
                (error,) = writer_error
                assert f"code {RECEIVE_STALL_ERROR}" in str(error.__cause__), error.__cause__
                while not stalled_outcome:
                    await trio.sleep(0.01)
                assert isinstance(stalled_outcome[0], StreamReset)
                assert "stall_timeout" in str(stalled_outcome[0].__cause__)
