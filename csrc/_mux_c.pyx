# cython: language_level=3, boundscheck=False, wraparound=False, auto_pickle=False
"""Stream-muxing hot path, compiled twin of ``_mux_py`` (same names, same behaviour).

RecvBuffer keeps received chunks in a list with a head index and copies each returned byte once
with memcpy into a fresh bytes object. Argument checks mirror the Python twin exactly (see
``_count``).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.string cimport memcpy

from py_libp2p_webtransport._errors import BufferLimitExceeded, FlowControlError, NeedMoreData

__all__ = ["IMPLEMENTATION", "RecvBuffer"]

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
