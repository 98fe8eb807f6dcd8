"""Stream-muxing hot path, pure-Python reference twin of ``_mux_c``.

Three small sans-IO pieces the session layer keeps per stream (and per connection):

* :class:`RecvBuffer` — bytes received from the peer and not yet read by the application.
* :class:`ReceiveCredit` — how much the peer may send us: the advertised limit moves forward only
  as the application *consumes* data (webtransport-go / quic-go ``flow_control.go``), so a slow
  reader bounds the sender instead of growing memory.
* :class:`SendCredit` — how much we may still send to the peer.

Argument errors (negative counts, a non-positive window) raise ``ValueError``/``TypeError``;
protocol and arithmetic violations raise the ``errors.py`` classes. The compiled twin behaves
identically; the differential tests in ``tests/mux`` hold them to it.
"""

from __future__ import annotations

import operator
from collections import deque

from .constants import VARINT_MAX
from .errors import BufferLimitExceeded, FlowControlError, NeedMoreData

__all__ = ["IMPLEMENTATION", "ReceiveCredit", "RecvBuffer", "SendCredit"]

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


class ReceiveCredit:
    """Receive-side flow-control credit of one flow (a stream or a whole connection).

    ``limit`` is the highest offset the peer may send up to. It moves only when the application
    consumes data: once a ``update_threshold`` fraction of the window was consumed since the last
    update (the bytes still grantable fell to ``(1 - threshold) * window``), the new limit is
    ``consumed + window``. So buffered data never exceeds one window, whatever the sender does.
    Modelled on quic-go ``flow_control.go`` (``hasWindowUpdate`` / ``getWindowUpdate``).
    """

    __slots__ = (
        "_window",
        "_max_window",
        "_threshold",
        "_update_below",
        "_limit",
        "_received",
        "_consumed",
    )

    def __init__(
        self, window: int, max_window: int | None = None, update_threshold: float = 0.25
    ) -> None:
        window = _count(window, "window")
        if window == 0:
            raise ValueError("window must be positive")
        max_window = window if max_window is None else _count(max_window, "max_window")
        if max_window < window:
            raise ValueError(f"max_window {max_window} is smaller than window {window}")
        threshold = float(update_threshold)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"update_threshold must be in (0, 1), got {threshold}")
        self._max_window = max_window
        self._threshold = threshold
        self._limit = window
        self._received = 0
        self._consumed = 0
        self._window = 0
        self._update_below = 0
        self._apply_window(window)

    def __repr__(self) -> str:
        return (
            f"<ReceiveCredit limit={self._limit} received={self._received} "
            f"consumed={self._consumed} window={self._window}>"
        )

    def _apply_window(self, window: int) -> None:
        self._window = window
        # An update is due when (limit - consumed) <= (1 - threshold) * window. The left side is
        # an integer, so comparing with the floor is the same test, in exact integer arithmetic.
        self._update_below = int(window * (1.0 - self._threshold))

    @property
    def limit(self) -> int:
        """Highest offset the peer may send up to (what we advertised last)."""
        return self._limit

    @property
    def received(self) -> int:
        """Highest byte offset received so far."""
        return self._received

    @property
    def consumed(self) -> int:
        """Bytes the application has consumed."""
        return self._consumed

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return self._received - self._consumed

    @property
    def window(self) -> int:
        """Current receive window (credit granted ahead of consumption)."""
        return self._window

    @property
    def max_window(self) -> int:
        """Largest window :meth:`set_window` may set."""
        return self._max_window

    @property
    def update_due(self) -> bool:
        """True when enough was consumed since the last update to advertise a new limit."""
        return self._limit - self._consumed <= self._update_below

    def on_received(self, end_offset: int) -> None:
        """Record data up to ``end_offset``; ``FlowControlError`` if that is beyond ``limit``.

        Lower offsets (retransmissions, reordering) leave ``received`` unchanged.
        """
        end_offset = _count(end_offset, "end_offset")
        if end_offset > self._limit:
            raise FlowControlError(
                f"peer sent up to offset {end_offset}, beyond the advertised limit {self._limit}"
            )
        if end_offset > self._received:
            self._received = end_offset

    def on_consumed(self, n: int) -> int | None:
        """Record ``n`` bytes consumed; return the new limit to advertise if an update is due.

        Raises ``FlowControlError`` if more would be consumed than was received.
        """
        n = _count(n, "consumed count")
        if self._consumed + n > self._received:
            raise FlowControlError(
                f"consuming {n} bytes: consumed would pass received {self._received}"
            )
        self._consumed += n
        if self._limit - self._consumed > self._update_below:
            return None
        # A limit must stay encodable as a varint.
        new_limit = min(self._consumed + self._window, VARINT_MAX)
        if new_limit <= self._limit:
            return None  # the window was shrunk: never take back granted credit
        self._limit = new_limit
        return new_limit

    def set_window(self, window: int) -> None:
        """Change the window (auto-tuning), clamped to ``max_window``; used from the next update."""
        window = _count(window, "window")
        if window == 0:
            raise ValueError("window must be positive")
        self._apply_window(min(window, self._max_window))


class SendCredit:
    """Send-side credit: how much we may still send before the peer's advertised limit."""

    __slots__ = ("_limit", "_sent")

    def __init__(self, limit: int) -> None:
        self._limit = _count(limit, "limit")
        self._sent = 0

    def __repr__(self) -> str:
        return f"<SendCredit sent={self._sent} limit={self._limit}>"

    @property
    def limit(self) -> int:
        """The peer's advertised limit (highest offset we may send up to)."""
        return self._limit

    @property
    def sent(self) -> int:
        """Bytes sent so far."""
        return self._sent

    @property
    def available(self) -> int:
        """Bytes we may still send."""
        return self._limit - self._sent

    @property
    def blocked(self) -> bool:
        """True when no credit is left."""
        return self._sent >= self._limit

    def on_sent(self, n: int) -> None:
        """Record ``n`` bytes sent; ``FlowControlError`` if that passes the limit."""
        n = _count(n, "sent count")
        if self._sent + n > self._limit:
            raise FlowControlError(
                f"sending {n} bytes would pass the peer's limit {self._limit} ({self._sent} sent)"
            )
        self._sent += n

    def on_limit(self, new_limit: int) -> bool:
        """Apply a limit from the peer (MAX_DATA / MAX_STREAM_DATA); return True if it grew.

        Decreases are ignored, as QUIC requires (RFC 9000 §4.1).
        """
        new_limit = _count(new_limit, "limit")
        if new_limit <= self._limit:
            return False
        self._limit = new_limit
        return True
