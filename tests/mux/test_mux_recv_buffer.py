"""RecvBuffer unit tests, run against both twins through the ``mux_module`` fixture."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from py_libp2p_webtransport.errors import BufferLimitExceeded, FlowControlError, NeedMoreData

# Chunk layouts with empty, one-byte and longer chunks, so reads cross every kind of boundary.
LAYOUTS = [
    [b"abc", b"", b"defgh", b"i", b"jklmnop"],
    [b"x"] * 9,
    [b"0123456789abcdef"],
    [b"ab", b"cd", b"", b"", b"efghijkl", b"m", b"no"],
]


def filled(mod: ModuleType, chunks: list[bytes], limit: int = 0) -> Any:
    buf = mod.RecvBuffer(limit)
    for chunk in chunks:
        buf.append(chunk)
    return buf


def state(buf: Any) -> tuple[int, bool, bool, int, int]:
    return (buf.size, buf.eof, buf.at_eof, buf.total_received, buf.total_consumed)


def test_empty_buffer(mux_module: ModuleType) -> None:
    buf = mux_module.RecvBuffer()
    assert (buf.size, buf.limit, buf.eof, buf.at_eof) == (0, 0, False, False)
    assert buf.read() == b""
    assert buf.read(5) == b""
    assert buf.peek() == b""
    assert buf.read_exactly(0) == b""
    with pytest.raises(NeedMoreData):
        buf.read_exactly(1)
    with pytest.raises(NeedMoreData):
        buf.read_until_eof()
    assert buf.take_consumed() == 0
    assert buf.clear() == 0


def test_read_returns_what_is_buffered_never_more(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"hello", b" ", b"world"])
    assert buf.size == 11
    assert buf.read(100) == b"hello world"
    assert buf.size == 0
    assert buf.read(100) == b""


def test_read_zero_consumes_nothing(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"abc"])
    assert buf.read(0) == b""
    assert buf.size == 3
    assert buf.take_consumed() == 0


def test_read_negative_reads_everything(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"ab", b"cd"])
    assert buf.read(-7) == b"abcd"


@pytest.mark.parametrize("chunks", LAYOUTS)
def test_split_at_every_offset(mux_module: ModuleType, chunks: list[bytes]) -> None:
    whole = b"".join(chunks)
    for k in range(len(whole) + 1):
        buf = filled(mux_module, chunks)
        assert buf.peek(k) == whole[:k]
        assert buf.read(k) == whole[:k]
        assert buf.size == len(whole) - k
        assert buf.peek() == whole[k:]
        assert buf.read() == whole[k:]
        assert buf.size == 0


@pytest.mark.parametrize("chunks", LAYOUTS)
def test_fixed_size_reads_reassemble(mux_module: ModuleType, chunks: list[bytes]) -> None:
    whole = b"".join(chunks)
    for step in range(1, len(whole) + 2):
        buf = filled(mux_module, chunks)
        pieces = []
        while buf.size:
            piece = buf.read(step)
            assert len(piece) == min(step, len(whole) - sum(map(len, pieces)))
            pieces.append(piece)
        assert b"".join(pieces) == whole
        assert buf.total_consumed == len(whole)


@pytest.mark.parametrize("chunks", LAYOUTS)
def test_read_exactly_at_every_offset(mux_module: ModuleType, chunks: list[bytes]) -> None:
    whole = b"".join(chunks)
    for first in range(len(whole) + 1):
        buf = filled(mux_module, chunks)
        assert buf.read_exactly(first) == whole[:first]
        rest = len(whole) - first
        with pytest.raises(NeedMoreData):
            buf.read_exactly(rest + 1)
        assert buf.size == rest  # the failed read left everything in place
        assert buf.read_exactly(rest) == whole[first:]


def test_read_results_are_bytes(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"ab", b"cd", b"ef"])
    results = [buf.peek(3), buf.read(1), buf.read(3), buf.read_exactly(1)]
    buf.feed_eof()
    results.append(buf.read_until_eof())
    assert results == [b"abc", b"a", b"bcd", b"e", b"f"]
    assert all(type(r) is bytes for r in results)


def test_read_exactly_failure_leaves_buffer_unchanged(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"ab", b"cde"])
    buf.read(1)
    before = state(buf)
    with pytest.raises(NeedMoreData):
        buf.read_exactly(5)
    assert state(buf) == before
    assert buf.take_consumed() == 1
    assert buf.read() == b"bcde"


def test_read_exactly_rejects_negative(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"ab"])
    with pytest.raises(ValueError):
        buf.read_exactly(-1)
    assert buf.size == 2


def test_huge_counts(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"ab"])
    with pytest.raises(NeedMoreData):
        buf.read_exactly(2**80)
    with pytest.raises(ValueError):
        buf.read_exactly(-(2**80))
    assert buf.peek(2**80) == b"ab"
    assert buf.read(2**80) == b"ab"


def test_non_integer_counts_raise_type_error(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"ab"])
    for call in (buf.read, buf.read_exactly, buf.peek):
        with pytest.raises(TypeError):
            call(1.0)
    with pytest.raises(TypeError):
        mux_module.RecvBuffer("10")
    assert buf.size == 2


def test_eof_semantics(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"abc"])
    with pytest.raises(NeedMoreData):
        buf.read_until_eof()
    assert buf.size == 3
    buf.feed_eof()
    buf.feed_eof()  # idempotent
    assert (buf.eof, buf.at_eof) == (True, False)
    assert buf.read(1) == b"a"
    assert buf.at_eof is False
    assert buf.read_until_eof() == b"bc"
    assert (buf.eof, buf.at_eof) == (True, True)
    assert buf.read_until_eof() == b""
    assert buf.read() == b""


def test_eof_on_empty_buffer(mux_module: ModuleType) -> None:
    buf = mux_module.RecvBuffer()
    buf.feed_eof()
    assert buf.at_eof is True
    assert buf.read_until_eof() == b""


@pytest.mark.parametrize("data", [b"x", b""])
def test_append_after_eof_raises(mux_module: ModuleType, data: bytes) -> None:
    buf = filled(mux_module, [b"abc"])
    buf.feed_eof()
    before = state(buf)
    with pytest.raises(FlowControlError):
        buf.append(data)
    assert state(buf) == before
    assert buf.read_until_eof() == b"abc"


def test_limit_is_exact(mux_module: ModuleType) -> None:
    buf = mux_module.RecvBuffer(10)
    assert buf.limit == 10
    buf.append(b"12345")
    buf.append(b"67890")  # exactly at the limit
    before = state(buf)
    with pytest.raises(BufferLimitExceeded):
        buf.append(b"x")
    assert state(buf) == before
    buf.append(b"")  # an empty append never exceeds anything
    assert buf.read(3) == b"123"
    buf.append(b"abc")  # reading made room again
    with pytest.raises(BufferLimitExceeded):
        buf.append(b"d")
    assert buf.read() == b"4567890abc"


def test_single_append_larger_than_limit(mux_module: ModuleType) -> None:
    buf = mux_module.RecvBuffer(4)
    with pytest.raises(BufferLimitExceeded):
        buf.append(b"12345")
    assert (buf.size, buf.total_received) == (0, 0)


def test_unbounded_by_default(mux_module: ModuleType) -> None:
    buf = mux_module.RecvBuffer()
    big = bytes(range(256)) * 4096  # 1 MiB
    for _ in range(4):
        buf.append(big)
    assert buf.size == 4 * len(big)
    assert buf.read() == big * 4


def test_negative_limit_rejected(mux_module: ModuleType) -> None:
    with pytest.raises(ValueError):
        mux_module.RecvBuffer(-1)


def test_totals_and_take_consumed(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"abcdef", b"ghij"])
    assert (buf.total_received, buf.total_consumed) == (10, 0)
    buf.peek(4)  # peeking is not consuming
    assert buf.take_consumed() == 0
    buf.read(2)
    buf.read_exactly(3)
    assert buf.take_consumed() == 5
    assert buf.take_consumed() == 0  # reset by the previous call
    buf.append(b"kl")
    buf.feed_eof()
    buf.read_until_eof()
    assert (buf.total_received, buf.total_consumed) == (12, 12)
    assert buf.take_consumed() == 7


def test_clear_drops_and_counts_as_consumed(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"abc", b"defg"])
    buf.read(2)
    assert buf.take_consumed() == 2
    assert buf.clear() == 5
    assert (buf.size, buf.total_received, buf.total_consumed) == (0, 7, 7)
    assert buf.take_consumed() == 5
    assert buf.read() == b""
    buf.append(b"new")  # still usable: clear is not EOF
    assert buf.read() == b"new"


def test_clear_after_eof_reaches_at_eof(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"abc"])
    buf.feed_eof()
    assert buf.clear() == 3
    assert buf.at_eof is True


def test_clear_frees_room_under_limit(mux_module: ModuleType) -> None:
    buf = filled(mux_module, [b"abcd"], limit=4)
    buf.clear()
    buf.append(b"wxyz")
    assert buf.read() == b"wxyz"


def test_append_copies_mutable_input(mux_module: ModuleType) -> None:
    data = bytearray(b"abc")
    buf = mux_module.RecvBuffer()
    buf.append(data)
    buf.append(memoryview(b"xdefx")[1:4])
    data[:] = b"zzz"  # the caller reuses its buffer
    assert buf.read() == b"abcdef"


@pytest.mark.parametrize("bad", ["text", 5, None, [1, 2]])
def test_append_rejects_non_bytes(mux_module: ModuleType, bad: object) -> None:
    buf = mux_module.RecvBuffer()
    with pytest.raises(TypeError):
        buf.append(bad)
    assert buf.size == 0


def test_interleaved_appends_and_reads(mux_module: ModuleType) -> None:
    buf = mux_module.RecvBuffer()
    sent = bytearray()
    got = bytearray()
    for i in range(300):
        chunk = bytes([i % 251]) * (i % 7)
        buf.append(chunk)
        sent += chunk
        got += buf.read(i % 5)
    got += buf.read()
    assert got == sent


def test_hundred_thousand_one_byte_chunks(mux_module: ModuleType) -> None:
    """Many tiny chunks stay correct (speed is the benchmark's job, not a test's)."""
    count = 100_000
    pattern = bytes(i % 253 for i in range(count))
    buf = mux_module.RecvBuffer()
    for i in range(count):
        buf.append(pattern[i : i + 1])
    assert buf.size == count
    pieces = []
    step = 1
    while buf.size:
        pieces.append(buf.read(step))
        step = step * 3 % 4099 + 1  # irregular read sizes, up to ~4 KiB
    assert b"".join(pieces) == pattern
    assert buf.take_consumed() == count
    # And once more, everything in one read.
    for i in range(count):
        buf.append(pattern[i : i + 1])
    assert buf.read() == pattern
