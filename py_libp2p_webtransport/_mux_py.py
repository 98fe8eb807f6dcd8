"""Stream-muxing hot path, pure-Python reference twin of ``_mux_c``.

:class:`RecvBuffer` holds the bytes received on one stream and not yet read by the application
(one per libp2p stream, ``stream.py``). Flow-control credit is the engines' business: their
windows follow ``consume()`` (``engine/``).

Argument errors (negative counts, a non-positive window) raise ``ValueError``/``TypeError``;
protocol and arithmetic violations raise the ``errors.py`` classes. The compiled twin behaves
identically; the differential tests in ``tests/mux`` hold them to it.
"""

from __future__ import annotations

import operator
from collections import deque

from ._errors import BufferLimitExceeded, FlowControlError, NeedMoreData
from .constants import VARINT_MAX

__all__ = ["IMPLEMENTATION", "RecvBuffer"]

IMPLEMENTATION = "python"


def _count(value: int, what: str) -> int:
    """Return ``value`` as an int in 0 .. VARINT_MAX (a QUIC byte count), else ``ValueError``."""
    value = operator.index(value)
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value}")
    if value > VARINT_MAX:
        raise ValueError(f"{what} {value} exceeds the QUIC varint range")
    return value


def _as_bytes(data: bytes) -> bytes:
    # Keep an immutable copy: a caller may reuse its bytearray after append() returns.
    if type(data) is bytes:
        return data
    return bytes(memoryview(data))


class RecvBuffer:
    """Bytes received on one stream and not yet read, with an EOF flag.

    Chunks are kept as received (a deque plus an offset into the first chunk), so appends and
    reads are O(1) amortised per byte: a read copies only the bytes it returns, however many
    small chunks they span. ``limit`` (0 = unbounded) caps the buffered bytes.
    """

    __slots__ = (
        "_chunks",
        "_offset",
        "_size",
        "_limit",
        "_eof",
        "_total_received",
        "_total_consumed",
        "_unreported",
    )

    def __init__(self, limit: int = 0) -> None:
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # bytes of _chunks[0] already read
        self._size = 0
        self._limit = _count(limit, "limit")
        self._eof = False
        self._total_received = 0
        self._total_consumed = 0
        self._unreported = 0  # consumed since the last take_consumed()

    def __repr__(self) -> str:
        return (
            f"<RecvBuffer size={self._size} limit={self._limit} eof={self._eof} "
            f"received={self._total_received} consumed={self._total_consumed}>"
        )

    # --- state -----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes buffered and not yet read."""
        return self._size

    @property
    def limit(self) -> int:
        """Most bytes the buffer may hold (0 = unbounded)."""
        return self._limit

    @property
    def eof(self) -> bool:
        """True once :meth:`feed_eof` was called (the peer finished the stream)."""
        return self._eof

    @property
    def at_eof(self) -> bool:
        """True when EOF was fed and every byte has been read."""
        return self._eof and self._size == 0

    @property
    def total_received(self) -> int:
        """Bytes ever appended."""
        return self._total_received

    @property
    def total_consumed(self) -> int:
        """Bytes ever read or dropped by :meth:`clear`."""
        return self._total_consumed

    def take_consumed(self) -> int:
        """Return the bytes consumed since the previous call (for flow-control credit)."""
        n = self._unreported
        self._unreported = 0
        return n

    # --- input -----------------------------------------------------------------------------

    def append(self, data: bytes) -> None:
        """Buffer ``data``.

        Raises ``FlowControlError`` after :meth:`feed_eof` (data past the stream's end) and
        ``BufferLimitExceeded`` if the buffer would grow past ``limit``; the buffer is unchanged.
        """
        if self._eof:
            raise FlowControlError("data received after the end of the stream")
        data = _as_bytes(data)
        n = len(data)
        if self._limit and self._size + n > self._limit:
            raise BufferLimitExceeded(
                f"receive buffer limit {self._limit} exceeded: {self._size} buffered + {n}"
            )
        if n:
            self._chunks.append(data)
            self._size += n
            self._total_received += n

    def feed_eof(self) -> None:
        """Mark the end of the stream; later appends fail. Idempotent."""
        self._eof = True

    # --- output ----------------------------------------------------------------------------

    def read(self, n: int = -1) -> bytes:
        """Return up to ``n`` buffered bytes (all of them if ``n`` < 0); never waits.

        Returns ``b""`` only when the buffer is empty (or ``n`` is 0).
        """
        n = operator.index(n)
        if n < 0 or n > self._size:
            n = self._size
        return self._take(n)

    def read_exactly(self, n: int) -> bytes:
        """Return exactly ``n`` bytes, or raise ``NeedMoreData`` leaving the buffer unchanged."""
        n = operator.index(n)
        if n < 0:
            raise ValueError(f"read_exactly() needs a non-negative count, got {n}")
        if n > self._size:
            raise NeedMoreData(f"need {n} bytes, {self._size} buffered")
        return self._take(n)

    def read_until_eof(self) -> bytes:
        """Return everything once EOF was fed; before that raise ``NeedMoreData``."""
        if not self._eof:
            raise NeedMoreData(f"stream not finished, {self._size} bytes buffered")
        return self._take(self._size)

    def peek(self, n: int = -1) -> bytes:
        """Return up to ``n`` buffered bytes (all if ``n`` < 0) without consuming them."""
        n = operator.index(n)
        if n < 0 or n > self._size:
            n = self._size
        if n == 0:
            return b""
        first = self._chunks[0]
        start = self._offset
        if start + n <= len(first):
            return first[start : start + n]
        parts: list[bytes | memoryview] = []
        need = n
        for chunk in self._chunks:
            size = len(chunk) - start
            if size >= need:
                parts.append(memoryview(chunk)[start : start + need])
                break
            parts.append(memoryview(chunk)[start:] if start else chunk)
            need -= size
            start = 0
        return b"".join(parts)

    def clear(self) -> int:
        """Drop everything buffered (stream reset); return how many bytes, counted as consumed."""
        n = self._size
        self._chunks.clear()
        self._offset = 0
        self._size = 0
        self._total_consumed += n
        self._unreported += n
        return n

    def _take(self, n: int) -> bytes:
        """Remove and return the first ``n`` bytes; ``0 <= n <= size`` is the caller's job."""
        if n == 0:
            return b""
        chunks = self._chunks
        first = chunks[0]
        start = self._offset
        avail = len(first) - start
        if n < avail:
            out = first[start : start + n]
            self._offset = start + n
        elif n == avail:
            out = first[start:] if start else first  # a whole chunk: no copy at all
            chunks.popleft()
            self._offset = 0
        else:
            # Spans chunks: join memoryviews so each byte is copied exactly once.
            parts: list[bytes | memoryview] = [memoryview(first)[start:] if start else first]
            chunks.popleft()
            need = n - avail
            while True:
                chunk = chunks[0]
                size = len(chunk)
                if size > need:
                    parts.append(memoryview(chunk)[:need])
                    self._offset = need
                    break
                parts.append(chunk)
                chunks.popleft()
                need -= size
                if need == 0:
                    self._offset = 0
                    break
            out = b"".join(parts)
        self._size -= n
        self._total_consumed += n
        self._unreported += n
        return out
