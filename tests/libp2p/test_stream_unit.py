"""Unit tests of ``WebTransportStream`` alone, against a recording stand-in for its connection.

Only the stream's own rules are tested here (buffering, EOF vs reset, backpressure, deadlines);
the end-to-end tests cover the same behaviour over real engines and sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import trio
import trio.testing
from libp2p.io.exceptions import IOException
from libp2p.stream_muxer.exceptions import MuxedStreamClosed, MuxedStreamEOF, MuxedStreamReset

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.errors import StreamEnded
from py_libp2p_webtransport.stream import WebTransportStream


@dataclass
class RecordingConn:
    """A ``StreamHost`` that records what the stream asks; the send buffer is set by the test."""

    config: WebTransportConfig = field(
        default_factory=lambda: WebTransportConfig(write_buffer_limit=1000, write_chunk_size=400)
    )
    sent: list[tuple[bytes, bool]] = field(default_factory=list)
    consumed: int = 0
    resets: list[int] = field(default_factory=list)
    stops: list[int] = field(default_factory=list)
    forgotten: bool = False
    send_buffer: int = 0
    watched: list[WebTransportStream] = field(default_factory=list)

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self.sent.append((data, end_stream))
        self.send_buffer += len(data)

    def consume(self, stream_id: int, n: int) -> None:
        self.consumed += n

    def reset_stream(self, stream_id: int, code: int) -> None:
        self.resets.append(code)

    def stop_sending(self, stream_id: int, code: int) -> None:
        self.stops.append(code)

    def send_buffer_size(self, stream_id: int) -> int:
        return self.send_buffer

    def wake_when_writable(self, stream: WebTransportStream) -> None:
        self.watched.append(stream)

    def forget_stream(self, stream_id: int) -> None:
        self.forgotten = True

    def get_remote_address(self) -> tuple[str, int]:
        return ("127.0.0.1", 4433)


def make() -> tuple[WebTransportStream, RecordingConn]:
    conn = RecordingConn()
    return WebTransportStream(conn, 0, is_initiator=True), conn


async def test_read_returns_everything_buffered_up_to_n() -> None:
    stream, conn = make()
    for piece in (b"ab", b"cd", b"ef"):
        stream.on_data(piece, False)
    assert await stream.read(5) == b"abcde"
    assert await stream.read(100) == b"f"
    assert conn.consumed == 6  # credit follows what the application read


async def test_read_waits_then_eof_raises_stream_ended() -> None:
    stream, _ = make()
    got: list[object] = []

    async def reader() -> None:
        got.append(await stream.read(10))
        try:
            await stream.read(10)
        except MuxedStreamEOF as eof:  # py-libp2p's convention; NetStream makes it StreamEOF
            got.append(eof)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # nothing buffered: the reader waits
        stream.on_data(b"xyz", True)
    assert got[0] == b"xyz" and isinstance(got[1], StreamEnded) and len(got) == 2
    assert isinstance(got[1], IOException)  # read_exactly and multiselect stop on it at once


async def test_peer_reset_raises_on_read_and_write_and_drops_buffer() -> None:
    stream, conn = make()
    stream.on_data(b"unread", False)
    stream.on_reset(3)
    with pytest.raises(MuxedStreamReset):
        await stream.read(10)
    with pytest.raises(MuxedStreamReset):
        await stream.write(b"x")
    assert conn.consumed == 6  # dropped bytes still return their credit


async def test_reset_wakes_a_waiting_reader() -> None:
    stream, _ = make()
    errors: list[BaseException] = []

    async def reader() -> None:
        try:
            await stream.read(10)
        except MuxedStreamReset as error:
            errors.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        stream.on_reset(None)
    assert len(errors) == 1


async def test_stop_sending_from_peer_fails_writes_not_reads() -> None:
    stream, _ = make()
    stream.on_data(b"still readable", False)
    stream.on_stop_sending(0)
    with pytest.raises(MuxedStreamReset):
        await stream.write(b"x")
    assert await stream.read() == b"still readable"


async def test_write_chunks_and_waits_for_send_buffer() -> None:
    stream, conn = make()
    done = trio.Event()

    async def writer() -> None:
        await stream.write(b"a" * 2000)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        # 400-byte chunks until the unacknowledged 1000-byte bound is reached, then it waits.
        assert [len(d) for d, _ in conn.sent] == [400, 400, 400]
        assert not done.is_set() and conn.watched == [stream]
        conn.send_buffer = 0  # acks arrived
        stream.on_writable()
        await trio.testing.wait_all_tasks_blocked()
        assert [len(d) for d, _ in conn.sent] == [400, 400, 400, 400, 400]
    assert b"".join(d for d, _ in conn.sent) == b"a" * 2000


async def test_close_is_half_close() -> None:
    stream, conn = make()
    await stream.close()
    assert conn.sent == [(b"", True)]
    with pytest.raises(MuxedStreamClosed):
        await stream.write(b"late")
    stream.on_data(b"reply", True)
    assert await stream.read() == b"reply"
    with pytest.raises(MuxedStreamEOF):
        await stream.read()
    assert conn.forgotten  # both directions done


async def test_close_read_sends_stop_sending_and_discards() -> None:
    stream, conn = make()
    stream.on_data(b"12345", False)
    await stream.close_read(9)
    assert conn.stops == [9] and conn.consumed == 5
    stream.on_data(b"more", False)  # in flight before the peer saw STOP_SENDING
    assert conn.consumed == 9
    with pytest.raises(MuxedStreamClosed):
        await stream.read()


async def test_local_reset_sends_code_both_ways() -> None:
    stream, conn = make()
    await stream.reset(42)
    assert conn.resets == [42] and conn.stops == [42] and conn.forgotten
    with pytest.raises(MuxedStreamClosed):
        await stream.write(b"x")


async def test_deadline_raises_timeout_error() -> None:
    stream, _ = make()
    stream.set_deadline(0)
    with pytest.raises(TimeoutError):
        await stream.read(1)
    with pytest.raises(ValueError):
        stream.set_deadline(-1)


async def test_connection_loss_is_a_reset_not_eof() -> None:
    stream, _ = make()
    stream.on_data(b"unread", False)
    stream.on_connection_lost("gone")
    with pytest.raises(MuxedStreamReset):
        await stream.read(1)
    with pytest.raises(MuxedStreamReset):
        await stream.write(b"x")
    assert stream.get_remote_address() == ("127.0.0.1", 4433)


async def test_reset_after_connection_loss_still_reads_as_the_loss() -> None:
    """py-libp2p's swarm resets every stream of a connection that died; a reader that comes
    afterwards must still learn the connection was lost (a reset), not "closed for reading"."""
    stream, conn = make()
    stream.on_connection_lost("idle timeout")
    await stream.reset()
    with pytest.raises(MuxedStreamReset, match="idle timeout"):
        await stream.read(1)
    assert conn.resets == [] and conn.stops == []  # nothing sent on a dead connection


async def test_local_reset_on_a_live_connection_reads_as_closed() -> None:
    stream, _ = make()
    await stream.reset()
    with pytest.raises(MuxedStreamClosed):
        await stream.read(1)


async def test_py_libp2p_read_exactly_sees_eof_in_one_read() -> None:
    """py-libp2p's ``read_exactly`` (ping, multistream) stops at the first EOF: one read, not the
    100 retries an empty read gets (the browser ping x20 regression)."""
    from libp2p.io.exceptions import IncompleteReadError
    from libp2p.io.utils import read_exactly

    stream, _ = make()
    stream.on_data(b"p" * 32, True)
    assert await read_exactly(stream, 32) == b"p" * 32
    reads = 0
    original = stream.read

    async def counting_read(n: int | None = None) -> bytes:
        nonlocal reads
        reads += 1
        return await original(n)

    stream.read = counting_read  # type: ignore[method-assign]
    with pytest.raises((IncompleteReadError, MuxedStreamEOF)):
        await read_exactly(stream, 32)
    assert reads == 1
