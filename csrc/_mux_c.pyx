# cython: language_level=3, boundscheck=False, wraparound=False, auto_pickle=False
"""Stream-muxing hot path, compiled twin of ``_mux_py`` (same names, same behaviour).

RecvBuffer keeps received chunks in a list with a head index and copies each returned byte once
with memcpy into a fresh bytes object; ReceiveCredit and SendCredit do their arithmetic on C
integers. Argument checks mirror the Python twin exactly (see ``_count``).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.string cimport memcpy

from py_libp2p_webtransport.errors import BufferLimitExceeded, FlowControlError, NeedMoreData

__all__ = ["IMPLEMENTATION", "ReceiveCredit", "RecvBuffer", "SendCredit"]

IMPLEMENTATION = "cython"

# QUIC varints encode 0 .. 2**62 - 1 (RFC 9000 §16); every count here is such a byte count.
cdef long long VARINT_MAX = (1LL << 62) - 1

# Consumed chunk slots at the list head are dropped in bulk once there are this many and they
# make up half the list: amortised O(1) per chunk, no per-read list shifting.
cdef Py_ssize_t COMPACT_AT = 64


cdef long long _count(object value, str what) except -1:
    """``value`` as a C integer in 0 .. VARINT_MAX, else ValueError (TypeError if not an int)."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow < 0 or (overflow == 0 and v < 0):
        raise ValueError(f"{what} must not be negative, got {value}")
    if overflow > 0 or v > VARINT_MAX:
        raise ValueError(f"{what} {value} exceeds the QUIC varint range")
    return v


cdef inline bytes _as_bytes(object data):
    # Keep an immutable copy: a caller may reuse its bytearray after append() returns.
    if type(data) is bytes:
        return <bytes>data
    return bytes(memoryview(data))


cdef class RecvBuffer:
    """Bytes received on one stream and not yet read, with an EOF flag.

    Chunks are kept as received; a read copies only the bytes it returns, however many small
    chunks they span. ``limit`` (0 = unbounded) caps the buffered bytes.
    """

    cdef list _chunks
    cdef Py_ssize_t _head  # index of the first unread chunk in _chunks
    cdef Py_ssize_t _offset  # bytes of that chunk already read
    cdef long long _size
    cdef long long _limit
    cdef bint _eof
    cdef long long _total_received
    cdef long long _total_consumed
    cdef long long _unreported

    def __init__(self, limit=0):
        self._chunks = []
        self._head = 0
        self._offset = 0
        self._size = 0
        self._limit = _count(limit, "limit")
        self._eof = False
        self._total_received = 0
        self._total_consumed = 0
        self._unreported = 0

    def __repr__(self):
        return (
            f"<RecvBuffer size={self._size} limit={self._limit} eof={self._eof} "
            f"received={self._total_received} consumed={self._total_consumed}>"
        )

    # --- state -----------------------------------------------------------------------------

    @property
    def size(self):
        """Bytes buffered and not yet read."""
        return self._size

    @property
    def limit(self):
        """Most bytes the buffer may hold (0 = unbounded)."""
        return self._limit

    @property
    def eof(self):
        """True once :meth:`feed_eof` was called (the peer finished the stream)."""
        return self._eof

    @property
    def at_eof(self):
        """True when EOF was fed and every byte has been read."""
        return self._eof and self._size == 0

    @property
    def total_received(self):
        """Bytes ever appended."""
        return self._total_received

    @property
    def total_consumed(self):
        """Bytes ever read or dropped by :meth:`clear`."""
        return self._total_consumed

    cpdef long long take_consumed(self):
        """Return the bytes consumed since the previous call (for flow-control credit)."""
        cdef long long n = self._unreported
        self._unreported = 0
        return n

    # --- input -----------------------------------------------------------------------------

    cpdef append(self, data):
        """Buffer ``data``.

        Raises ``FlowControlError`` after :meth:`feed_eof` (data past the stream's end) and
        ``BufferLimitExceeded`` if the buffer would grow past ``limit``; the buffer is unchanged.
        """
        if self._eof:
            raise FlowControlError("data received after the end of the stream")
        cdef bytes chunk = _as_bytes(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(chunk)
        if self._limit and self._size + n > self._limit:
            raise BufferLimitExceeded(
                f"receive buffer limit {self._limit} exceeded: {self._size} buffered + {n}"
            )
        if n:
            self._chunks.append(chunk)
            self._size += n
            self._total_received += n

    def feed_eof(self):
        """Mark the end of the stream; later appends fail. Idempotent."""
        self._eof = True

    # --- output ----------------------------------------------------------------------------

    cpdef bytes read(self, n=-1):
        """Return up to ``n`` buffered bytes (all of them if ``n`` < 0); never waits.

        Returns ``b""`` only when the buffer is empty (or ``n`` is 0).
        """
        return self._take(self._clamp(n))

    cpdef bytes read_exactly(self, n):
        """Return exactly ``n`` bytes, or raise ``NeedMoreData`` leaving the buffer unchanged."""
        cdef int overflow = 0
        cdef long long v = PyLong_AsLongLongAndOverflow(n, &overflow)
        if overflow < 0 or (overflow == 0 and v < 0):
            raise ValueError(f"read_exactly() needs a non-negative count, got {n}")
        if overflow > 0 or v > self._size:
            raise NeedMoreData(f"need {n} bytes, {self._size} buffered")
        return self._take(<Py_ssize_t>v)

    cpdef bytes read_until_eof(self):
        """Return everything once EOF was fed; before that raise ``NeedMoreData``."""
        if not self._eof:
            raise NeedMoreData(f"stream not finished, {self._size} bytes buffered")
        return self._take(<Py_ssize_t>self._size)

    cpdef bytes peek(self, n=-1):
        """Return up to ``n`` buffered bytes (all if ``n`` < 0) without consuming them."""
        cdef Py_ssize_t want = self._clamp(n)
        if want == 0:
            return b""
        cdef bytes out = PyBytes_FromStringAndSize(NULL, want)
        self._copy_out(PyBytes_AS_STRING(out), want, False)
        return out

    cpdef long long clear(self):
        """Drop everything buffered (stream reset); return how many bytes, counted as consumed."""
        cdef long long n = self._size
        self._chunks = []
        self._head = 0
        self._offset = 0
        self._size = 0
        self._total_consumed += n
        self._unreported += n
        return n

    # --- internals -------------------------------------------------------------------------

    cdef Py_ssize_t _clamp(self, object n) except -1:
        """A read count: ``n``, or everything buffered when ``n`` < 0 or ``n`` > size."""
        cdef int overflow = 0
        cdef long long v = PyLong_AsLongLongAndOverflow(n, &overflow)
        if overflow or v < 0 or v > self._size:
            return <Py_ssize_t>self._size
        return <Py_ssize_t>v

    cdef bytes _take(self, Py_ssize_t n):
        """Remove and return the first ``n`` bytes; ``0 <= n <= size`` is the caller's job."""
        if n == 0:
            return b""
        cdef bytes first = <bytes>self._chunks[self._head]
        cdef Py_ssize_t avail = PyBytes_GET_SIZE(first) - self._offset
        cdef bytes out
        if n == avail and self._offset == 0:
            out = first  # a whole chunk: no copy at all
            self._head += 1
        elif n < avail:
            out = PyBytes_FromStringAndSize(PyBytes_AS_STRING(first) + self._offset, n)
            self._offset += n
        else:
            out = PyBytes_FromStringAndSize(NULL, n)
            self._copy_out(PyBytes_AS_STRING(out), n, True)
        self._size -= n
        self._total_consumed += n
        self._unreported += n
        self._compact()
        return out

    cdef void _copy_out(self, char *dst, Py_ssize_t n, bint consume):
        """Copy the first ``n`` buffered bytes to ``dst``; advance past them if ``consume``."""
        cdef Py_ssize_t head = self._head
        cdef Py_ssize_t offset = self._offset
        cdef Py_ssize_t size
        cdef bytes chunk
        while n > 0:
            chunk = <bytes>self._chunks[head]
            size = PyBytes_GET_SIZE(chunk) - offset
            if size > n:
                memcpy(dst, PyBytes_AS_STRING(chunk) + offset, n)
                offset += n
                break
            memcpy(dst, PyBytes_AS_STRING(chunk) + offset, size)
            dst += size
            n -= size
            head += 1
            offset = 0
        if consume:
            self._head = head
            self._offset = offset

    cdef inline void _compact(self):
        cdef Py_ssize_t count = len(self._chunks)
        if self._head == count:
            self._chunks = []
            self._head = 0
        elif self._head >= COMPACT_AT and self._head * 2 >= count:
            del self._chunks[:self._head]
            self._head = 0


cdef class ReceiveCredit:
    """Receive-side flow-control credit of one flow (a stream or a whole connection).

    ``limit`` is the highest offset the peer may send up to. It moves only when the application
    consumes data: once a ``update_threshold`` fraction of the window was consumed since the last
    update, the new limit is ``consumed + window`` (quic-go ``flow_control.go`` logic).
    """

    cdef long long _window
    cdef long long _max_window
    cdef double _threshold
    cdef long long _update_below
    cdef long long _limit
    cdef long long _received
    cdef long long _consumed

    def __init__(self, window, max_window=None, update_threshold=0.25):
        cdef long long w = _count(window, "window")
        if w == 0:
            raise ValueError("window must be positive")
        cdef long long mw = w if max_window is None else _count(max_window, "max_window")
        if mw < w:
            raise ValueError(f"max_window {mw} is smaller than window {w}")
        cdef double threshold = float(update_threshold)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"update_threshold must be in (0, 1), got {threshold}")
        self._max_window = mw
        self._threshold = threshold
        self._limit = w
        self._received = 0
        self._consumed = 0
        self._apply_window(w)

    def __repr__(self):
        return (
            f"<ReceiveCredit limit={self._limit} received={self._received} "
            f"consumed={self._consumed} window={self._window}>"
        )

    cdef void _apply_window(self, long long window):
        self._window = window
        # Due when (limit - consumed) <= (1 - threshold) * window; the left side is an integer,
        # so comparing with the truncated product is the same test (as in the Python twin).
        self._update_below = <long long>(<double>window * (1.0 - self._threshold))

    @property
    def limit(self):
        """Highest offset the peer may send up to (what we advertised last)."""
        return self._limit

    @property
    def received(self):
        """Highest byte offset received so far."""
        return self._received

    @property
    def consumed(self):
        """Bytes the application has consumed."""
        return self._consumed

    @property
    def buffered(self):
        """Bytes received and not yet consumed."""
        return self._received - self._consumed

    @property
    def window(self):
        """Current receive window (credit granted ahead of consumption)."""
        return self._window

    @property
    def max_window(self):
        """Largest window :meth:`set_window` may set."""
        return self._max_window

    @property
    def update_due(self):
        """True when enough was consumed since the last update to advertise a new limit."""
        return self._limit - self._consumed <= self._update_below

    cpdef on_received(self, end_offset):
        """Record data up to ``end_offset``; ``FlowControlError`` if that is beyond ``limit``."""
        cdef long long end = _count(end_offset, "end_offset")
        if end > self._limit:
            raise FlowControlError(
                f"peer sent up to offset {end}, beyond the advertised limit {self._limit}"
            )
        if end > self._received:
            self._received = end

    cpdef object on_consumed(self, n):
        """Record ``n`` bytes consumed; return the new limit to advertise if an update is due."""
        cdef long long count = _count(n, "consumed count")
        if self._consumed + count > self._received:
            raise FlowControlError(
                f"consuming {count} bytes: consumed would pass received {self._received}"
            )
        self._consumed += count
        if self._limit - self._consumed > self._update_below:
            return None
        cdef long long new_limit
        if self._window > VARINT_MAX - self._consumed:
            new_limit = VARINT_MAX  # a limit must stay encodable as a varint
        else:
            new_limit = self._consumed + self._window
        if new_limit <= self._limit:
            return None  # the window was shrunk: never take back granted credit
        self._limit = new_limit
        return new_limit

    def set_window(self, window):
        """Change the window (auto-tuning), clamped to ``max_window``; used from the next update."""
        cdef long long w = _count(window, "window")
        if w == 0:
            raise ValueError("window must be positive")
        self._apply_window(w if w < self._max_window else self._max_window)


cdef class SendCredit:
    """Send-side credit: how much we may still send before the peer's advertised limit."""

    cdef long long _limit
    cdef long long _sent

    def __init__(self, limit):
        self._limit = _count(limit, "limit")
        self._sent = 0

    def __repr__(self):
        return f"<SendCredit sent={self._sent} limit={self._limit}>"

    @property
    def limit(self):
        """The peer's advertised limit (highest offset we may send up to)."""
        return self._limit

    @property
    def sent(self):
        """Bytes sent so far."""
        return self._sent

    @property
    def available(self):
        """Bytes we may still send."""
        return self._limit - self._sent

    @property
    def blocked(self):
        """True when no credit is left."""
        return self._sent >= self._limit

    cpdef on_sent(self, n):
        """Record ``n`` bytes sent; ``FlowControlError`` if that passes the limit."""
        cdef long long count = _count(n, "sent count")
        if self._sent + count > self._limit:
            raise FlowControlError(
                f"sending {count} bytes would pass the peer's limit {self._limit} "
                f"({self._sent} sent)"
            )
        self._sent += count

    cpdef bint on_limit(self, new_limit) except -1:
        """Apply a limit from the peer (MAX_DATA / MAX_STREAM_DATA); return True if it grew.

        Decreases are ignored, as QUIC requires (RFC 9000 §4.1).
        """
        cdef long long v = _count(new_limit, "limit")
        if v <= self._limit:
            return False
        self._limit = v
        return True
