# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``_wire``: the WebTransport-over-HTTP/3 framing hot path.

Same names and behaviour as ``py_libp2p_webtransport/_wire_py.py`` (the readable reference; read
its docstrings for the rules). Work happens on raw byte pointers obtained through the buffer
protocol; every error is one of the classes in ``errors.py``.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_GET_SIZE,
    PyByteArray_Resize,
)
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memmove

from quicvarint cimport QUICVARINT_MAX, read_varint, varint_len, write_varint

from py_libp2p_webtransport.constants import (
    CLOSE_MESSAGE_MAX,
    WT_APP_ERROR_FIRST,
    WT_APP_ERROR_LAST,
    CapsuleType,
    FrameType,
    H3ErrorCode,
)
from py_libp2p_webtransport._errors import (
    FramingError,
    LocalProtocolError,
    NeedMoreData,
    SettingsError,
    StreamIdError,
    WebTransportError,
)

__all__ = [
    "IMPLEMENTATION",
    "CapsuleReader",
    "FrameReader",
    "check_session_id",
    "decode_close_session",
    "decode_settings",
    "decode_varint",
    "encode_capsule",
    "encode_close_session",
    "encode_drain_session",
    "encode_frame",
    "encode_frame_header",
    "encode_settings",
    "encode_stream_header",
    "encode_varint",
    "encode_varint_into",
    "h3_to_wt_error",
    "parse_bidi_stream_start",
    "parse_frame_header",
    "parse_uni_stream_type",
    "varint_size",
    "wt_to_h3_error",
]

IMPLEMENTATION = "cython"

cdef enum:
    WT_STREAM_SIGNAL = 0x41  # FrameType.WEBTRANSPORT_STREAM
    WT_UNI_STREAM_TYPE = 0x54  # StreamType.WEBTRANSPORT
    FRAME_DATA = 0x00  # FrameType.DATA
    CLOSE_SESSION_CAPSULE = 0x2843  # CapsuleType.CLOSE_WEBTRANSPORT_SESSION
    GREASE_STEP = 0x1F
    CODES_PER_GREASE = 0x1E

cdef uint64_t WT_FIRST = WT_APP_ERROR_FIRST
cdef uint64_t WT_LAST = WT_APP_ERROR_LAST
cdef uint64_t WT_CODE_MAX = 0xFFFFFFFF

# The same tables as the Python twin, built from the same constants.
cdef frozenset _RESERVED_FRAME_TYPES = frozenset((0x2, 0x6, 0x8, 0x9))
cdef frozenset _KNOWN_FRAME_TYPES = frozenset(int(t) for t in FrameType) - {
    FrameType.DATA,
    FrameType.WEBTRANSPORT_STREAM,
}
cdef frozenset _KNOWN_CAPSULE_TYPES = frozenset(int(t) for t in CapsuleType)

# One-byte varints are the common case (types, small lengths): hand out shared objects.
cdef tuple _SMALL_VARINTS = tuple(bytes((i,)) for i in range(0x40))


# --- QUIC variable-length integers (RFC 9000 §16) -----------------------------------------------


cdef inline int _require_int(object value, str what) except -1:
    # As the Python twin: ints (and bool) only; Cython would otherwise coerce some other types.
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return 0


cdef inline uint64_t _varint_value(object value) except? 0xFFFFFFFFFFFFFFFF:
    """Convert a Python int to a varint value, or raise LocalProtocolError."""
    cdef uint64_t v
    _require_int(value, "varint value")
    try:
        v = value
    except OverflowError:
        raise LocalProtocolError(f"varint out of range 0..2**62-1: {value}") from None
    if v > QUICVARINT_MAX:
        raise LocalProtocolError(f"varint out of range 0..2**62-1: {value}")
    return v


def varint_size(value):
    """Return how many bytes (1, 2, 4 or 8) the shortest encoding of ``value`` takes."""
    return varint_len(_varint_value(value))


def encode_varint(value):
    """Encode ``value`` in its shortest QUIC varint form."""
    cdef uint64_t v = _varint_value(value)
    if v < 0x40:
        return _SMALL_VARINTS[v]
    cdef int size = varint_len(v)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, size)
    write_varint(<unsigned char*>PyBytes_AS_STRING(out), v, size)
    return out


def encode_varint_into(buf, Py_ssize_t offset, value):
    """Write ``value`` as a varint into ``buf`` at ``offset``; return the offset after it."""
    cdef uint64_t v = _varint_value(value)
    cdef int size = varint_len(v)
    cdef Py_buffer view
    try:
        PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE | PyBUF_WRITABLE)
    except BufferError:
        raise TypeError("buf must be a writable buffer such as a bytearray") from None
    try:
        if offset < 0 or offset + size > view.len:
            raise LocalProtocolError(f"buffer too short for a {size}-byte varint at {offset}")
        write_varint(<unsigned char*>view.buf + offset, v, size)
    finally:
        PyBuffer_Release(&view)
    return offset + size


def decode_varint(data, Py_ssize_t offset=0):
    """Decode one varint at ``offset``; return ``(value, new_offset)``."""
    cdef uint64_t value
    cdef Py_ssize_t end
    cdef Py_buffer view
    if offset < 0:
        raise LocalProtocolError(f"negative offset {offset}")
    if PyBytes_CheckExact(data):
        # The common case, without the cost of acquiring a buffer.
        end = read_varint(
            <const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), offset, &value
        )
    else:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        end = read_varint(<const unsigned char*>view.buf, view.len, offset, &value)
        PyBuffer_Release(&view)
    if end < 0:
        raise NeedMoreData("truncated varint")
    return value, end


# --- WebTransport stream headers (draft-ietf-webtrans-http3 §4.2, §4.3) -------------------------


cdef inline uint64_t _session_id(object session_id) except? 0xFFFFFFFFFFFFFFFF:
    cdef uint64_t v
    _require_int(session_id, "session id")
    try:
        v = session_id
    except OverflowError:
        raise StreamIdError(f"invalid WebTransport session id {session_id}") from None
    if v > QUICVARINT_MAX or v % 4 != 0:
        raise StreamIdError(f"invalid WebTransport session id {session_id}")
    return v


def check_session_id(session_id):
    """Raise ``StreamIdError`` unless ``session_id`` is a client-initiated bidi stream id."""
    _session_id(session_id)


def encode_stream_header(bint bidirectional, session_id):
    """Return ``0x41 <session id>`` (bidi) or ``0x54 <session id>`` (uni)."""
    cdef uint64_t sid = _session_id(session_id)
    cdef int size = varint_len(sid)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 2 + size)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    # Both 0x41 and 0x54 take the 2-byte form (they are >= 0x40).
    p = write_varint(p, WT_STREAM_SIGNAL if bidirectional else WT_UNI_STREAM_TYPE, 2)
    write_varint(p, sid, size)
    return out


cdef tuple _parse_typed_start(object data, Py_ssize_t offset, uint64_t wt_type):
    cdef uint64_t kind, sid
    cdef Py_ssize_t pos
    cdef Py_buffer view
    if offset < 0:
        raise LocalProtocolError(f"negative offset {offset}")
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    pos = read_varint(<const unsigned char*>view.buf, view.len, offset, &kind)
    if pos >= 0 and kind == wt_type:
        pos = read_varint(<const unsigned char*>view.buf, view.len, pos, &sid)
    PyBuffer_Release(&view)
    if pos < 0:
        raise NeedMoreData("truncated stream header")
    if kind != wt_type:
        return kind, None, pos
    if sid % 4 != 0:
        raise StreamIdError(f"invalid WebTransport session id {sid}")
    return kind, sid, pos


def parse_uni_stream_type(data, Py_ssize_t offset=0):
    """Parse a uni stream's start: ``(stream_type, session_id or None, new_offset)``."""
    return _parse_typed_start(data, offset, WT_UNI_STREAM_TYPE)


def parse_bidi_stream_start(data, Py_ssize_t offset=0):
    """Parse a bidi stream's first varint: ``(first, session_id or None, new_offset)``."""
    return _parse_typed_start(data, offset, WT_STREAM_SIGNAL)


# --- HTTP/3 frames (RFC 9114 §7) and capsules (RFC 9297 §3.2): both are type-length-value ------


cdef bytes _encode_tlv(object item_type, object value):
    cdef uint64_t t = _varint_value(item_type)
    cdef Py_buffer view
    cdef int tsize = varint_len(t), lsize
    cdef bytes out
    cdef unsigned char* p
    PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)
    try:
        lsize = varint_len(<uint64_t>view.len)
        out = PyBytes_FromStringAndSize(NULL, tsize + lsize + view.len)
        p = <unsigned char*>PyBytes_AS_STRING(out)
        p = write_varint(p, t, tsize)
        p = write_varint(p, <uint64_t>view.len, lsize)
        memcpy(p, view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return out


def encode_frame_header(frame_type, length):
    """Return the ``type length`` header of an HTTP/3 frame."""
    cdef uint64_t t = _varint_value(frame_type)
    cdef uint64_t n = _varint_value(length)
    cdef int tsize = varint_len(t), lsize = varint_len(n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, tsize + lsize)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    write_varint(write_varint(p, t, tsize), n, lsize)
    return out


def encode_frame(frame_type, payload):
    """Return a whole HTTP/3 frame: header then ``payload``."""
    return _encode_tlv(frame_type, payload)


def parse_frame_header(data, Py_ssize_t offset=0):
    """Parse an HTTP/3 frame header; return ``(frame_type, length, new_offset)``."""
    cdef uint64_t frame_type, length
    cdef Py_ssize_t pos
    cdef Py_buffer view
    if offset < 0:
        raise LocalProtocolError(f"negative offset {offset}")
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    pos = read_varint(<const unsigned char*>view.buf, view.len, offset, &frame_type)
    if pos >= 0:
        pos = read_varint(<const unsigned char*>view.buf, view.len, pos, &length)
    PyBuffer_Release(&view)
    if pos < 0:
        raise NeedMoreData("truncated frame header")
    return frame_type, length, pos


def encode_settings(settings):
    """Return a SETTINGS frame payload: ``id value`` varint pairs in the dict's order."""
    cdef Py_ssize_t size = 0
    cdef uint64_t k, v
    cdef bytes out
    cdef unsigned char* p
    # Two passes: size first, then one allocation. Settings dicts are a handful of entries.
    for key, value in settings.items():
        size += varint_len(_varint_value(key)) + varint_len(_varint_value(value))
    out = PyBytes_FromStringAndSize(NULL, size)
    p = <unsigned char*>PyBytes_AS_STRING(out)
    for key, value in settings.items():
        k = key
        v = value
        p = write_varint(p, k, varint_len(k))
        p = write_varint(p, v, varint_len(v))
    return out


def decode_settings(payload):
    """Decode a SETTINGS frame payload (see the Python twin for the error rules)."""
    cdef dict settings = {}
    cdef uint64_t k, v
    cdef Py_ssize_t pos = 0
    cdef Py_buffer view
    cdef const unsigned char* p
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char*>view.buf
        while pos < view.len:
            pos = read_varint(p, view.len, pos, &k)
            if pos >= 0:
                pos = read_varint(p, view.len, pos, &v)
            if pos < 0:
                raise FramingError("truncated SETTINGS frame")
            if 0x2 <= k <= 0x5:
                raise SettingsError(f"reserved HTTP/2 setting 0x{k:x}")
            key = k
            if key in settings:
                raise SettingsError(f"duplicate setting 0x{k:x}")
            settings[key] = v
    finally:
        PyBuffer_Release(&view)
    return settings


def encode_capsule(capsule_type, value):
    """Return a capsule: ``type length value``."""
    return _encode_tlv(capsule_type, value)


def encode_close_session(error_code, message=b""):
    """Return a whole CLOSE_WEBTRANSPORT_SESSION capsule (0x2843)."""
    cdef uint64_t code
    _require_int(error_code, "error code")
    try:
        code = error_code
    except OverflowError:
        raise LocalProtocolError(f"session error code out of 32-bit range: {error_code}") from None
    if code > WT_CODE_MAX:
        raise LocalProtocolError(f"session error code out of 32-bit range: {error_code}")
    if isinstance(message, str):
        raw = (<str>message).encode("utf-8")
    else:
        raw = bytes(message)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LocalProtocolError("close message is not UTF-8") from None
    if len(raw) > CLOSE_MESSAGE_MAX:
        raise LocalProtocolError(f"close message longer than {CLOSE_MESSAGE_MAX} bytes")
    cdef unsigned char head[4]
    head[0] = <unsigned char>(code >> 24)
    head[1] = <unsigned char>(code >> 16)
    head[2] = <unsigned char>(code >> 8)
    head[3] = <unsigned char>code
    return _encode_tlv(CLOSE_SESSION_CAPSULE, PyBytes_FromStringAndSize(<char*>head, 4) + raw)


def decode_close_session(value):
    """Decode a CLOSE_WEBTRANSPORT_SESSION capsule value; return ``(error_code, message)``."""
    cdef Py_buffer view
    cdef const unsigned char* p
    cdef unsigned long code
    PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)
    try:
        if view.len < 4:
            raise FramingError("close capsule shorter than its 4-byte error code")
        if view.len - 4 > CLOSE_MESSAGE_MAX:
            raise FramingError(f"close message longer than {CLOSE_MESSAGE_MAX} bytes")
        p = <const unsigned char*>view.buf
        code = (<unsigned long>p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
        try:
            message = p[4:view.len].decode("utf-8")
        except UnicodeDecodeError:
            raise FramingError("close message is not UTF-8") from None
    finally:
        PyBuffer_Release(&view)
    return code, message


_DRAIN_SESSION = _encode_tlv(CapsuleType.DRAIN_WEBTRANSPORT_SESSION, b"")


def encode_drain_session():
    """Return a whole DRAIN_WEBTRANSPORT_SESSION capsule (0x78ae, empty value)."""
    return _DRAIN_SESSION


# --- Incremental readers -------------------------------------------------------------------------


cdef class _Reader:
    """Remainder buffer, byte accounting and sticky error shared by both readers."""

    cdef bytearray _buf
    cdef Py_ssize_t _consumed
    cdef Py_ssize_t _skipped
    # Bytes of the current item still to stream out (DATA) or drop (unknown type).
    cdef uint64_t _stream_left
    cdef uint64_t _discard_left
    cdef object _error

    def __cinit__(self):
        self._buf = bytearray()

    @property
    def buffered(self):
        """Bytes held back because they do not yet form a complete item."""
        return PyByteArray_GET_SIZE(self._buf)

    @property
    def consumed(self):
        """Total bytes consumed so far (headers, payloads, streamed and skipped bytes)."""
        return self._consumed

    @property
    def skipped(self):
        """How many items of unknown type were skipped without buffering their bodies."""
        return self._skipped

    def feed(self, data):
        """Add ``data``; return the items it completes, in order (sticky error afterwards)."""
        cdef Py_buffer view
        cdef bint own = PyByteArray_GET_SIZE(self._buf) > 0
        cdef const unsigned char* p
        cdef Py_ssize_t n, pos
        cdef list out = []
        if self._error is not None:
            raise self._error
        if own:
            self._buf += data
            p = <const unsigned char*>PyByteArray_AS_STRING(self._buf)
            n = PyByteArray_GET_SIZE(self._buf)
        else:
            # Parse the new bytes in place; only an incomplete tail gets copied.
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            p = <const unsigned char*>view.buf
            n = view.len
        try:
            pos = self._parse(p, n, out)
            if own:
                if pos:
                    memmove(<void*>p, p + pos, n - pos)
                    PyByteArray_Resize(self._buf, n - pos)
            elif pos < n:
                self._buf = PyByteArray_FromStringAndSize(<const char*>p + pos, n - pos)
        except WebTransportError as exc:
            self._error = exc
            raise
        finally:
            if not own:
                PyBuffer_Release(&view)
        self._consumed += pos
        return out

    cdef Py_ssize_t _parse(self, const unsigned char* p, Py_ssize_t n, list out) except -1:
        raise NotImplementedError

    cdef inline Py_ssize_t _take_streamed(
        self, const unsigned char* p, Py_ssize_t n, Py_ssize_t pos, list out
    ) except -1:
        cdef uint64_t take
        if self._stream_left:
            take = min(self._stream_left, <uint64_t>(n - pos))
            out.append((0, PyBytes_FromStringAndSize(<const char*>p + pos, <Py_ssize_t>take)))
            self._stream_left -= take
        else:
            take = min(self._discard_left, <uint64_t>(n - pos))
            self._discard_left -= take
        return pos + <Py_ssize_t>take


cdef class FrameReader(_Reader):
    """Incremental HTTP/3 frame parser (rules in the Python twin's ``FrameReader``)."""

    cdef public Py_ssize_t max_payload

    def __init__(self, Py_ssize_t max_payload=65536):
        self.max_payload = max_payload

    cdef Py_ssize_t _parse(self, const unsigned char* p, Py_ssize_t n, list out) except -1:
        cdef Py_ssize_t pos = 0, start
        cdef uint64_t frame_type, length
        while pos < n:
            if self._stream_left or self._discard_left:
                pos = self._take_streamed(p, n, pos, out)
                continue
            start = read_varint(p, n, pos, &frame_type)
            if start >= 0:
                start = read_varint(p, n, start, &length)
            if start < 0:
                break
            if frame_type == FRAME_DATA:
                self._stream_left = length
                pos = start
            elif frame_type in _KNOWN_FRAME_TYPES:
                if length > <uint64_t>self.max_payload:
                    raise FramingError(
                        f"frame 0x{frame_type:x} of {length} bytes exceeds {self.max_payload}",
                        H3ErrorCode.H3_EXCESSIVE_LOAD,
                    )
                if <uint64_t>(n - start) < length:
                    break
                out.append((frame_type, PyBytes_FromStringAndSize(
                    <const char*>p + start, <Py_ssize_t>length)))
                pos = start + <Py_ssize_t>length
            elif frame_type in _RESERVED_FRAME_TYPES:
                raise FramingError(
                    f"HTTP/2 frame type 0x{frame_type:x}", H3ErrorCode.H3_FRAME_UNEXPECTED
                )
            elif frame_type == WT_STREAM_SIGNAL:
                raise FramingError("WT_STREAM signal in the middle of a stream")
            else:
                self._skipped += 1
                self._discard_left = length
                pos = start
        return pos


cdef class CapsuleReader(_Reader):
    """Incremental capsule parser (rules in the Python twin's ``CapsuleReader``)."""

    cdef public Py_ssize_t max_capsule

    def __init__(self, Py_ssize_t max_capsule=65536):
        self.max_capsule = max_capsule

    cdef Py_ssize_t _parse(self, const unsigned char* p, Py_ssize_t n, list out) except -1:
        cdef Py_ssize_t pos = 0, start
        cdef uint64_t capsule_type, length
        while pos < n:
            if self._discard_left:
                pos = self._take_streamed(p, n, pos, out)
                continue
            start = read_varint(p, n, pos, &capsule_type)
            if start >= 0:
                start = read_varint(p, n, start, &length)
            if start < 0:
                break
            if capsule_type in _KNOWN_CAPSULE_TYPES:
                if length > <uint64_t>self.max_capsule:
                    raise FramingError(
                        f"capsule 0x{capsule_type:x} of {length} bytes exceeds {self.max_capsule}"
                    )
                if <uint64_t>(n - start) < length:
                    break
                out.append((capsule_type, PyBytes_FromStringAndSize(
                    <const char*>p + start, <Py_ssize_t>length)))
                pos = start + <Py_ssize_t>length
            else:
                self._skipped += 1
                self._discard_left = length
                pos = start
        return pos


# --- WebTransport application error codes (draft-16 §4.4) ----------------------------------------


def wt_to_h3_error(code):
    """Map a 32-bit WebTransport application error code into the HTTP/3 code space."""
    cdef uint64_t c
    _require_int(code, "error code")
    try:
        c = code
    except OverflowError:
        raise LocalProtocolError(f"WebTransport error code out of 32-bit range: {code}") from None
    if c > WT_CODE_MAX:
        raise LocalProtocolError(f"WebTransport error code out of 32-bit range: {code}")
    return WT_FIRST + c + c // CODES_PER_GREASE


def h3_to_wt_error(h3_code):
    """Map an HTTP/3 error code back to a WebTransport code; None if it is not one."""
    cdef uint64_t h, shifted
    _require_int(h3_code, "error code")
    try:
        h = h3_code
    except OverflowError:
        return None
    if h < WT_FIRST or h > WT_LAST or (h - 0x21) % GREASE_STEP == 0:
        return None
    shifted = h - WT_FIRST
    return shifted - shifted // GREASE_STEP
