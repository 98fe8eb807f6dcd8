"""Backpressure end to end through real py-libp2p hosts: slow readers lose nothing, the
receiver's buffered bytes stay within the configured window (aioquic) or budget + window (qh3),
and a writer to a stalled reader waits instead of queueing without bound."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.network.stream.net_stream import NetStream
from support.rel_helpers import (
    Sampler,
    read_some,
    send_buffer_probe,
    stream_unread_probe,
    unread_probe,
)
from support.wt_helpers import peer_info, wt_host

MiB = 1024 * 1024
# Small windows so that a 4 MB transfer crosses them many times.
WINDOWS = {"max_data": 1 * MiB, "max_stream_data": 256 * 1024}
CHUNK = 64 * 1024
WRITE_BUFFER_LIMIT = 1 * MiB  # WebTransportConfig's default
WRITE_CHUNK = 256 * 1024  # WebTransportConfig.write_chunk_size: one chunk may cross the limit
PROTO = TProtocol("/test/reliab/sink/1.0.0")


def buffered_bound(engine: str, windows: dict[str, int] = WINDOWS) -> tuple[int, int]:
    """(per-connection, per-stream) bound on unread bytes the receiver may hold."""
    if engine == "aioquic":
        # Credit follows consume(): the peer can never be more than a window ahead.
        return windows["max_data"], windows["max_stream_data"]
    # qh3: events are popped (and credit returned) until unread bytes exceed the budget
    # (= max_data, see transport.engine_config); the core holds at most one more window.
    bound = windows["max_data"] + windows["max_data"]
    return bound, bound


Reader = Callable[[NetStream, Any, trio.Event, trio.Event], Awaitable[int]]


def pausing_reader(pause: float) -> Reader:
    """Reads in big chunks but stops for ``pause`` seconds at the start (and until the test
    has checked the held-back writer) and at the middle."""

    async def read(stream: NetStream, digest: Any, paused: trio.Event, checked: trio.Event) -> int:
        count = 0
        halfway_done = False
        paused.set()
        await trio.sleep(pause)
        await checked.wait()  # the test checks the held-back writer while nothing is read
        while chunk := await read_some(stream, 1 << 20):
            digest.update(chunk)
            count += len(chunk)
            if not halfway_done and count >= 2 * MiB:
                halfway_done = True
                await trio.sleep(pause)
        return count

    return read


async def byte_reader(
    stream: NetStream, digest: Any, paused: trio.Event, checked: trio.Event
) -> int:
    """Reads one byte per call (every read hands back one byte of credit)."""
    count = 0
    paused.set()
    while chunk := await read_some(stream, 1):
        digest.update(chunk)
        count += 1
    return count


async def _transfer(
    engine: str, size: int, reader: Reader, pause: float, windows: dict[str, int] = WINDOWS
) -> dict[str, int]:
    received = hashlib.sha256()
    sent = hashlib.sha256()
    result: dict[str, int] = {}
    done = trio.Event()
    paused = trio.Event()
    checked = trio.Event()

    async def handler(stream: NetStream) -> None:
        result["count"] = await reader(stream, received, paused, checked)
        await stream.close()
        done.set()

    async with (
        wt_host(engine, **windows) as server,
        wt_host(engine, **windows) as client,
    ):
        server.set_stream_handler(PROTO, handler)
        await client.connect(peer_info(server))
        conn_sampler = Sampler(unread_probe(server))
        stream_sampler = Sampler(stream_unread_probe(server))
        send_sampler = Sampler(send_buffer_probe(client))
        written = 0
        writer_done = trio.Event()
        stream = await client.new_stream(server.get_id(), [PROTO])

        async def writer() -> None:
            nonlocal written
            chunk = min(CHUNK, size)
            for i in range(size // chunk):
                block = os.urandom(chunk) if i < 4 else bytes([i % 251]) * chunk
                sent.update(block)
                await stream.write(block)
                written += len(block)
            await stream.close()
            writer_done.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(conn_sampler.run)
            await nursery.start(stream_sampler.run)
            await nursery.start(send_sampler.run)
            nursery.start_soon(writer)
            if pause > 0:
                await paused.wait()
                # Wait for the writer to hit the wall (a full send buffer makes it wait).
                while send_sampler.probe() < WRITE_BUFFER_LIMIT:
                    await trio.sleep(0.01)
                # The reader is paused: the writer is held back, not queueing without bound.
                assert not writer_done.is_set()
                # At most what the receiver may buffer, plus the writer's unacknowledged bytes.
                limit = buffered_bound(engine, windows)[0] + WRITE_BUFFER_LIMIT + CHUNK
                assert written <= limit, (written, limit)
                result["written_during_pause"] = written
                # The sender's own engine holds at most write_buffer_limit (+ one chunk) of
                # unacknowledged bytes: the rest waits in the writer, not in a queue.
                send_sampler.sample()
                assert 0 < send_sampler.peak <= WRITE_BUFFER_LIMIT + WRITE_CHUNK, send_sampler.peak
                checked.set()
            await done.wait()
            await writer_done.wait()
            nursery.cancel_scope.cancel()
    assert result["count"] == size
    assert received.hexdigest() == sent.hexdigest()
    conn_bound, stream_bound = buffered_bound(engine, windows)
    assert conn_sampler.samples > 10
    assert conn_sampler.peak <= conn_bound, (conn_sampler.peak, conn_bound)
    assert stream_sampler.peak <= stream_bound, (stream_sampler.peak, stream_bound)
    assert send_sampler.peak <= WRITE_BUFFER_LIMIT + WRITE_CHUNK, send_sampler.peak
    result["peak_conn"] = conn_sampler.peak
    result["peak_stream"] = stream_sampler.peak
    lost = size - result["count"]
    print(f"\n{engine}: {size} B, lost {lost} B, peak unread conn={conn_sampler.peak}", end="")
    print(f" (bound {conn_bound}) stream={stream_sampler.peak} (bound {stream_bound})", end="")
    print(f" peak unacked send buffer={send_sampler.peak}", end="")
    print(f" written during pause={result.get('written_during_pause', '-')}")
    return result


async def test_reader_pausing_1s_on_4mb(engine: str) -> None:
    with trio.fail_after(60):
        result = await _transfer(engine, 4 * MiB, pausing_reader(1.0), 1.0)
    assert result["written_during_pause"] < 4 * MiB


async def test_byte_at_a_time_reader(engine: str) -> None:
    """One byte per read costs a pump turn per byte (~150 µs here), so this stream is 128 KiB
    (not 4 MB) over windows scaled down to match: it still crosses them several times."""
    tiny = {"max_data": 32 * 1024, "max_stream_data": 8 * 1024}
    with trio.fail_after(120):
        await _transfer(engine, 128 * 1024, byte_reader, 0.0, tiny)


@pytest.mark.slow
async def test_reader_pausing_5s_on_4mb(engine: str) -> None:
    with trio.fail_after(90):
        result = await _transfer(engine, 4 * MiB, pausing_reader(5.0), 5.0)
    assert result["written_during_pause"] < 4 * MiB


@pytest.mark.slow
@pytest.mark.parametrize("pause", [1.0, 5.0])
async def test_reader_pausing_on_64mb(engine: str, pause: float) -> None:
    with trio.fail_after(300):
        result = await _transfer(engine, 64 * MiB, pausing_reader(pause), pause)
    assert result["written_during_pause"] < 64 * MiB
