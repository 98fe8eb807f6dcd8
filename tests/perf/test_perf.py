"""/perf/1.0.0 over real py-libp2p hosts on loopback: our server, our client, and each against an
independent implementation (a minimal one written here, and py-libp2p's own PerfService)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pytest
import trio
from libp2p.abc import IHost, INetStream
from libp2p.network.stream.exceptions import StreamEOF, StreamError, StreamReset
from libp2p.perf import PerfService
from libp2p.transport.quic.exceptions import QUICStreamClosedError, QUICStreamResetError

from py_libp2p_webtransport.apps.perf import (
    CHUNK_SIZE,
    PERF_PROTOCOL,
    PerfResult,
    _read_chunk,
    perf_handler,
    run_perf,
)
from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL, register_handlers
from py_libp2p_webtransport.errors import PerfError

MiB = 1024 * 1024
SIZES = [
    (0, 0),
    (1, 1),
    (0, 1),
    (1, 0),
    (100_003, 77_777),
    (CHUNK_SIZE, CHUNK_SIZE + 1),
    (3 * MiB + 5, 0),  # upload only
    (0, 2 * MiB + 3),  # download only
]


async def _read_all(stream: INetStream) -> bytes:
    """Read a stream to EOF with whatever read sizes the muxer gives (no perf code involved)."""
    parts = []
    while True:
        try:
            chunk = await stream.read(65536)
        except StreamEOF:
            break
        except StreamReset as exc:
            # py-libp2p QUIC reports EOF after FIN both ways as a "closed" error (see perf.py).
            if isinstance(exc.__cause__, QUICStreamClosedError):
                break
            raise
        if not chunk:
            break
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize(("up", "down"), SIZES)
async def test_run_perf_against_perf_handler(
    host_pair: tuple[IHost, IHost], up: int, down: int
) -> None:
    server, client = host_pair
    server.set_stream_handler(PERF_PROTOCOL, perf_handler)
    with trio.fail_after(60):
        result = await run_perf(client, server.get_id(), up, down)
    assert (result.upload_bytes, result.download_bytes) == (up, down)
    assert result.upload_seconds > 0
    assert result.total_seconds >= result.upload_seconds + result.download_seconds
    if down:
        assert result.time_to_first_byte_seconds is not None
        assert result.download_mb_per_s is not None and result.download_mb_per_s > 0
    else:
        assert result.time_to_first_byte_seconds is None
        assert result.download_mb_per_s is None


@pytest.mark.parametrize(("up", "down"), [(0, 0), (7, 3), (1 * MiB + 1, 333_333)])
async def test_run_perf_against_independent_server(
    host_pair: tuple[IHost, IHost], up: int, down: int
) -> None:
    """A minimal server written here records what it received; the client's counts must match."""
    server, client = host_pair
    seen: list[tuple[int, int]] = []

    async def handler(stream: INetStream) -> None:
        data = await _read_all(stream)
        requested = int.from_bytes(data[:8], "big")
        seen.append((requested, len(data) - 8))
        await stream.write(b"\x5a" * requested)
        await stream.close()

    server.set_stream_handler(PERF_PROTOCOL, handler)
    with trio.fail_after(30):
        result = await run_perf(client, server.get_id(), up, down)
    assert seen == [(down, up)]
    assert (result.upload_bytes, result.download_bytes) == (up, down)


@pytest.mark.parametrize(("up", "down"), [(0, 5), (12_345, 0), (2 * MiB + 1, 1 * MiB + 7)])
async def test_perf_handler_with_raw_client(
    host_pair: tuple[IHost, IHost], up: int, down: int
) -> None:
    """Uneven writes from a hand-written client; the handler returns exactly what was asked."""
    server, client = host_pair
    server.set_stream_handler(PERF_PROTOCOL, perf_handler)
    with trio.fail_after(30):
        stream = await client.new_stream(server.get_id(), [PERF_PROTOCOL])
        header = down.to_bytes(8, "big")
        # Split the header across writes so the handler has to reassemble it.
        await stream.write(header[:3])
        await stream.write(header[3:] + b"\x01" * min(up, 10))
        sent = min(up, 10)
        while sent < up:
            n = min(up - sent, 99_991)
            await stream.write(b"\x01" * n)
            sent += n
        await stream.close_write()
        reply = await _read_all(stream)
    assert len(reply) == down
    assert reply == bytes(down)


async def test_malformed_header_is_logged_and_not_a_hang(
    host_pair: tuple[IHost, IHost], caplog: pytest.LogCaptureFixture
) -> None:
    server, client = host_pair
    server.set_stream_handler(PERF_PROTOCOL, perf_handler)
    caplog.set_level(logging.ERROR, logger="py_libp2p_webtransport.apps.perf")
    with trio.fail_after(15):
        stream = await client.new_stream(server.get_id(), [PERF_PROTOCOL])
        await stream.write(b"\x00\x01\x02")
        await stream.close_write()
        try:
            reply = await _read_all(stream)
        except StreamError:
            reply = b""  # reset: the expected outcome
        # The handler's log record may land just after the client saw the reset.
        while not any("header" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.01)
    assert reply == b""
    errors = [r for r in caplog.records if r.name == "py_libp2p_webtransport.apps.perf"]
    assert errors and errors[0].levelno == logging.ERROR
    assert "3 of 8 header bytes" in errors[0].getMessage()


@pytest.mark.parametrize("extra", [-1, 1])
async def test_wrong_reply_size_raises_perf_error(
    host_pair: tuple[IHost, IHost], extra: int
) -> None:
    server, client = host_pair

    async def handler(stream: INetStream) -> None:
        data = await _read_all(stream)
        await stream.write(bytes(int.from_bytes(data[:8], "big") + extra))
        await stream.close()

    server.set_stream_handler(PERF_PROTOCOL, handler)
    with trio.fail_after(15), pytest.raises(PerfError, match="100 were requested"):
        await run_perf(client, server.get_id(), 10, 100)


async def test_concurrent_runs_on_one_connection(host_pair: tuple[IHost, IHost]) -> None:
    server, client = host_pair
    server.set_stream_handler(PERF_PROTOCOL, perf_handler)
    results: list[PerfResult] = []

    async def one(i: int) -> None:
        results.append(await run_perf(client, server.get_id(), 50_000 * i, 70_001 * i))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(1, 5):
                nursery.start_soon(one, i)
    assert sorted((r.upload_bytes, r.download_bytes) for r in results) == [
        (50_000 * i, 70_001 * i) for i in range(1, 5)
    ]


async def test_progress_is_monotonic_and_complete(host_pair: tuple[IHost, IHost]) -> None:
    server, client = host_pair
    server.set_stream_handler(PERF_PROTOCOL, perf_handler)
    calls: list[tuple[int, int]] = []
    up, down = 3 * CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 5
    with trio.fail_after(30):
        await run_perf(
            client, server.get_id(), up, down, on_progress=lambda u, d: calls.append((u, d))
        )
    assert calls == sorted(calls)
    assert calls[-1] == (up, down)
    assert (up, 0) in calls  # the upload finished before any byte came back


async def test_interop_with_py_libp2p_perf_service(host_pair: tuple[IHost, IHost]) -> None:
    """Our client against py-libp2p's own server."""
    server, client = host_pair
    service = PerfService(server)
    await service.start()
    with trio.fail_after(30):
        result = await run_perf(client, server.get_id(), 200_001, 300_007)
    assert (result.upload_bytes, result.download_bytes) == (200_001, 300_007)


async def test_sizes_out_of_range(host_pair: tuple[IHost, IHost]) -> None:
    server, client = host_pair
    with pytest.raises(ValueError, match="upload_bytes"):
        await run_perf(client, server.get_id(), -1, 0)
    with pytest.raises(ValueError, match="download_bytes"):
        await run_perf(client, server.get_id(), 0, 2**64)


def test_result_json_has_the_documented_keys() -> None:
    result = PerfResult(
        upload_bytes=2_000_000,
        download_bytes=0,
        stream_open_seconds=0.001,
        upload_seconds=0.5,
        time_to_first_byte_seconds=None,
        download_seconds=0.0,
        total_seconds=0.5,
    )
    decoded = json.loads(result.to_json())
    assert sorted(decoded) == sorted(
        [
            "upload_bytes",
            "download_bytes",
            "stream_open_seconds",
            "upload_seconds",
            "time_to_first_byte_seconds",
            "download_seconds",
            "total_seconds",
            "upload_mb_per_s",
            "download_mb_per_s",
        ]
    )
    assert decoded["upload_mb_per_s"] == pytest.approx(4.0)
    assert decoded["download_mb_per_s"] is None


class _ScriptedStream:
    """Unit fake for _read_chunk only: raises what py-libp2p's NetStream raises over QUIC."""

    def __init__(self, cause: Exception) -> None:
        self.cause = cause

    async def read(self, n: int) -> bytes:
        raise StreamReset() from self.cause


async def test_quic_closed_after_both_fins_reads_as_eof() -> None:
    # py-libp2p 0.8.1's QUIC stream raises QUICStreamClosedError (wrapped in StreamReset) for a
    # read after FIN both ways. Not run over real QUIC hosts: that transport also drops the tail
    # of a stream now and then ("Unexpected outbound stream ... in data event"), so such a test
    # would be flaky for reasons outside this package.
    stream: Any = _ScriptedStream(QUICStreamClosedError("Stream 8 is closed"))
    assert await _read_chunk(stream, 10) == b""


async def test_quic_reset_still_raises() -> None:
    stream: Any = _ScriptedStream(QUICStreamResetError("Stream 8 was reset"))
    with pytest.raises(StreamReset):
        await _read_chunk(stream, 10)


@pytest.mark.parametrize("size", [0, 1, 65_537, 2 * MiB + 11])
async def test_echo_handler_returns_exactly_what_was_sent(
    host_pair: tuple[IHost, IHost], size: int
) -> None:
    server, client = host_pair
    register_handlers(server)
    payload = os.urandom(size)
    with trio.fail_after(30):
        stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])

        async def send() -> None:
            for i in range(0, size, 77_777):  # uneven writes, concurrent with the reads
                await stream.write(payload[i : i + 77_777])
            await stream.close_write()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            echoed = await _read_all(stream)
    assert echoed == payload
