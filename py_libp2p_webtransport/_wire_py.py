"""Pure-Python reference twin of ``_wire``: the WebTransport-over-HTTP/3 framing hot path.

QUIC varints (RFC 9000 §16), WebTransport stream headers (draft-ietf-webtrans-http3 §4),
HTTP/3 frames and SETTINGS (RFC 9114 §7), capsules (RFC 9297 §3) and the WebTransport
application error-code mapping (draft-16 §4.4). ``csrc/_wire_c.pyx`` implements exactly the same
names and behaviour; this module is the readable definition of both. Sans-IO: no I/O, no clock.
"""

from __future__ import annotations

from ._errors import (
    FramingError,
    LocalProtocolError,
    NeedMoreData,
    SettingsError,
    StreamIdError,
    WebTransportError,
)
from .constants import (
    CLOSE_MESSAGE_MAX,
    VARINT_MAX,
    WT_APP_ERROR_FIRST,
    WT_APP_ERROR_LAST,
    WT_APP_ERROR_MAX,
    CapsuleType,
    FrameType,
    H3ErrorCode,
    StreamType,
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

IMPLEMENTATION = "python"

BytesLike = bytes | bytearray | memoryview

# HTTP/2 setting ids with no HTTP/3 meaning; receiving one is H3_SETTINGS_ERROR (RFC 9114 §7.2.4.1).
_RESERVED_SETTINGS = frozenset((0x2, 0x3, 0x4, 0x5))
# HTTP/2 frame types that must not appear in HTTP/3 (RFC 9114 §7.2.8): H3_FRAME_UNEXPECTED.
_RESERVED_FRAME_TYPES = frozenset((0x2, 0x6, 0x8, 0x9))
# Frame types FrameReader returns whole; any other type is skipped unbuffered (RFC 9114 §9).
_KNOWN_FRAME_TYPES = frozenset(int(t) for t in FrameType) - {
    FrameType.DATA,
    FrameType.WEBTRANSPORT_STREAM,
}
_KNOWN_CAPSULE_TYPES = frozenset(int(t) for t in CapsuleType)
# WT error codes skip one GREASE value (0x1f * N + 0x21) every 0x1e codes (draft-16 §4.4).
_GREASE_STEP = 0x1F
_CODES_PER_GREASE = 0x1E


# --- QUIC variable-length integers (RFC 9000 §16) -----------------------------------------------


def _require_int(value: int, what: str) -> None:
    # bool is an int subclass and accepted, as everywhere in Python; floats and strings are not.
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")


def _check_varint(value: int) -> None:
    _require_int(value, "varint value")
    if value < 0 or value > VARINT_MAX:
        raise LocalProtocolError(f"varint out of range 0..2**62-1: {value}")


def varint_size(value: int) -> int:
    """Return how many bytes (1, 2, 4 or 8) the shortest encoding of ``value`` takes."""
    _check_varint(value)
    if value < 0x40:
        return 1
    if value < 0x4000:
        return 2
    if value < 0x40000000:
        return 4
    return 8


def encode_varint(value: int) -> bytes:
    """Encode ``value`` in its shortest QUIC varint form."""
    size = varint_size(value)
    # The two top bits of the first byte carry log2(size).
    prefix = (0x00, 0x40, 0, 0x80, 0, 0, 0, 0xC0)[size - 1]
    return (value | (prefix << (8 * size - 8))).to_bytes(size, "big")


def encode_varint_into(buf: bytearray, offset: int, value: int) -> int:
    """Write ``value`` as a varint into ``buf`` at ``offset``; return the offset after it.

    Raises ``LocalProtocolError`` when the value is out of range or ``buf`` is too short.
    """
    encoded = encode_varint(value)
    end = offset + len(encoded)
    if offset < 0 or end > len(buf):
        raise LocalProtocolError(f"buffer too short for a {len(encoded)}-byte varint at {offset}")
    buf[offset:end] = encoded
    return end


def decode_varint(data: BytesLike, offset: int = 0) -> tuple[int, int]:
    """Decode one varint at ``offset``; return ``(value, new_offset)``.

    Non-shortest encodings are accepted (RFC 9000 §16). Raises ``NeedMoreData`` when ``data``
    ends before the varint does.
    """
    if offset < 0:
        raise LocalProtocolError(f"negative offset {offset}")
    if offset >= len(data):
        raise NeedMoreData("varint: no bytes")
    first = data[offset]
    size = 1 << (first >> 6)
    end = offset + size
    if end > len(data):
        raise NeedMoreData(f"varint: need {size} bytes")
    value = int.from_bytes(data[offset:end], "big")
    return value & ((1 << (8 * size - 2)) - 1), end


# --- WebTransport stream headers (draft-ietf-webtrans-http3 §4.2, §4.3) -------------------------


def check_session_id(session_id: int) -> None:
    """Raise ``StreamIdError`` unless ``session_id`` is a client-initiated bidi stream id."""
    _require_int(session_id, "session id")
    if session_id < 0 or session_id > VARINT_MAX or session_id % 4 != 0:
        raise StreamIdError(f"invalid WebTransport session id {session_id}")


def encode_stream_header(bidirectional: bool, session_id: int) -> bytes:
    """Return the header that starts a WebTransport stream of ``session_id``.

    Bidi: ``0x41 <session id>`` (WT_STREAM signal); uni: ``0x54 <session id>`` (stream type).
    """
    check_session_id(session_id)
    kind = FrameType.WEBTRANSPORT_STREAM if bidirectional else StreamType.WEBTRANSPORT
    return encode_varint(kind) + encode_varint(session_id)


def _parse_typed_start(data: BytesLike, offset: int, wt_type: int) -> tuple[int, int | None, int]:
    kind, offset = decode_varint(data, offset)
    if kind != wt_type:
        return kind, None, offset
    session_id, offset = decode_varint(data, offset)
    check_session_id(session_id)
    return kind, session_id, offset


def parse_uni_stream_type(data: BytesLike, offset: int = 0) -> tuple[int, int | None, int]:
    """Parse the start of a unidirectional stream.

    Returns ``(stream_type, session_id, new_offset)``; ``session_id`` is None unless the type is
    ``0x54`` (WebTransport). Raises ``NeedMoreData`` or ``StreamIdError``.
    """
    return _parse_typed_start(data, offset, StreamType.WEBTRANSPORT)


def parse_bidi_stream_start(data: BytesLike, offset: int = 0) -> tuple[int, int | None, int]:
    """Parse the first varint of a bidirectional stream.

    Returns ``(first, session_id, new_offset)``: ``first`` is ``0x41`` for a WebTransport stream
    (then ``session_id`` follows), otherwise it is an HTTP/3 frame type and ``session_id`` is None.
    Raises ``NeedMoreData`` or ``StreamIdError``.
    """
    return _parse_typed_start(data, offset, FrameType.WEBTRANSPORT_STREAM)


# --- HTTP/3 frames (RFC 9114 §7) -----------------------------------------------------------------


def encode_frame_header(frame_type: int, length: int) -> bytes:
    """Return the ``type length`` header of an HTTP/3 frame."""
    return encode_varint(frame_type) + encode_varint(length)


def encode_frame(frame_type: int, payload: bytes) -> bytes:
    """Return a whole HTTP/3 frame: header then ``payload``."""
    return encode_frame_header(frame_type, len(payload)) + payload


def parse_frame_header(data: BytesLike, offset: int = 0) -> tuple[int, int, int]:
    """Parse an HTTP/3 frame header; return ``(frame_type, length, new_offset)``.

    Raises ``NeedMoreData`` if the header is incomplete (the payload is not checked).
    """
    frame_type, offset = decode_varint(data, offset)
    length, offset = decode_varint(data, offset)
    return frame_type, length, offset


def encode_settings(settings: dict[int, int]) -> bytes:
    """Return a SETTINGS frame payload: ``id value`` varint pairs in the dict's order."""
    out = bytearray()
    for setting_id, value in settings.items():
        out += encode_varint(setting_id)
        out += encode_varint(value)
    return bytes(out)


def decode_settings(payload: BytesLike) -> dict[int, int]:
    """Decode a SETTINGS frame payload.

    Raises ``FramingError`` (H3_FRAME_ERROR) when truncated and ``SettingsError`` for a
    duplicate id or a reserved HTTP/2 id (0x2-0x5).
    """
    settings: dict[int, int] = {}
    offset = 0
    while offset < len(payload):
        try:
            setting_id, offset = decode_varint(payload, offset)
            value, offset = decode_varint(payload, offset)
        except NeedMoreData:
            raise FramingError("truncated SETTINGS frame") from None
        if setting_id in _RESERVED_SETTINGS:
            raise SettingsError(f"reserved HTTP/2 setting 0x{setting_id:x}")
        if setting_id in settings:
            raise SettingsError(f"duplicate setting 0x{setting_id:x}")
        settings[setting_id] = value
    return settings


# --- Capsules (RFC 9297 §3.2; WT draft §5) -------------------------------------------------------


def encode_capsule(capsule_type: int, value: bytes) -> bytes:
    """Return a capsule: ``type length value``."""
    return encode_varint(capsule_type) + encode_varint(len(value)) + value


def encode_close_session(error_code: int, message: str | bytes = b"") -> bytes:
    """Return a whole CLOSE_WEBTRANSPORT_SESSION capsule (0x2843).

    Its value is the 32-bit big-endian ``error_code`` and a UTF-8 ``message`` of at most 1024
    bytes; anything else raises ``LocalProtocolError``.
    """
    _require_int(error_code, "error code")
    if error_code < 0 or error_code > WT_APP_ERROR_MAX:
        raise LocalProtocolError(f"session error code out of 32-bit range: {error_code}")
    if isinstance(message, str):
        raw = message.encode("utf-8")
    else:
        raw = bytes(message)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LocalProtocolError("close message is not UTF-8") from None
    if len(raw) > CLOSE_MESSAGE_MAX:
        raise LocalProtocolError(f"close message longer than {CLOSE_MESSAGE_MAX} bytes")
    value = error_code.to_bytes(4, "big") + raw
    return encode_capsule(CapsuleType.CLOSE_WEBTRANSPORT_SESSION, value)


def decode_close_session(value: BytesLike) -> tuple[int, str]:
    """Decode a CLOSE_WEBTRANSPORT_SESSION capsule value; return ``(error_code, message)``.

    Raises ``FramingError`` if shorter than 4 bytes, the message exceeds 1024 bytes or is not UTF-8.
    """
    if len(value) < 4:
        raise FramingError("close capsule shorter than its 4-byte error code")
    if len(value) - 4 > CLOSE_MESSAGE_MAX:
        raise FramingError(f"close message longer than {CLOSE_MESSAGE_MAX} bytes")
    error_code = int.from_bytes(value[:4], "big")
    try:
        message = bytes(value[4:]).decode("utf-8")
    except UnicodeDecodeError:
        raise FramingError("close message is not UTF-8") from None
    return error_code, message


def encode_drain_session() -> bytes:
    """Return a whole DRAIN_WEBTRANSPORT_SESSION capsule (0x78ae, empty value)."""
    return encode_capsule(CapsuleType.DRAIN_WEBTRANSPORT_SESSION, b"")


# --- Incremental readers -------------------------------------------------------------------------


class _Reader:
    """Shared machinery: a remainder buffer, byte accounting and a sticky error.

    Subclasses implement ``_parse(view, pos, out) -> new pos`` over ``view`` (the remainder plus the
    new data), consuming whole items or streamed pieces, and stop at the first incomplete item.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._consumed = 0
        self._skipped = 0
        # Bytes of the current item still to stream out (DATA) or drop (unknown type).
        self._stream_left = 0
        self._discard_left = 0
        self._error: WebTransportError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held back because they do not yet form a complete item."""
        return len(self._buf)

    @property
    def consumed(self) -> int:
        """Total bytes consumed so far (headers, payloads, streamed and skipped bytes)."""
        return self._consumed

    @property
    def skipped(self) -> int:
        """How many items of unknown type were skipped without buffering their bodies."""
        return self._skipped

    def feed(self, data: BytesLike) -> list[tuple[int, bytes]]:
        """Add ``data``; return the items it completes, in order.

        After an error the stream is broken: every later call raises the same error.
        """
        if self._error is not None:
            raise self._error
        # Work on the new bytes directly when nothing is held back, so big payloads are not
        # copied into the buffer first.
        view: BytesLike
        if self._buf:
            self._buf += data
            view = self._buf
        else:
            view = data
        out: list[tuple[int, bytes]] = []
        try:
            pos = self._parse(view, out)
        except WebTransportError as exc:
            self._error = exc
            raise
        self._consumed += pos
        if view is self._buf:
            del self._buf[:pos]
        elif pos < len(view):
            self._buf = bytearray(view[pos:])
        return out

    def _parse(self, view: BytesLike, out: list[tuple[int, bytes]]) -> int:
        raise NotImplementedError

    def _take_streamed(self, view: BytesLike, pos: int, out: list[tuple[int, bytes]]) -> int:
        # Stream out or drop as much of the current item as has arrived.
        n = len(view)
        if self._stream_left:
            take = min(self._stream_left, n - pos)
            out.append((0, bytes(view[pos : pos + take])))
            self._stream_left -= take
            return pos + take
        take = min(self._discard_left, n - pos)
        self._discard_left -= take
        return pos + take


class FrameReader(_Reader):
    """Incremental HTTP/3 frame parser for one stream (control or request stream).

    ``feed()`` returns ``(frame_type, payload)`` items. DATA frames (type 0) are not buffered:
    their payload comes out as ``(0, chunk)`` pieces as bytes arrive (an empty DATA frame yields
    nothing). Other known frame types (``FrameType``) come out whole; one larger than
    ``max_payload`` raises ``FramingError`` with code H3_EXCESSIVE_LOAD. Unknown and GREASE
    types are skipped without buffering (RFC 9114 §9) and counted in ``skipped``. HTTP/2-only
    types (0x2, 0x6, 0x8, 0x9) raise ``FramingError`` with H3_FRAME_UNEXPECTED, and a 0x41 signal
    raises ``FramingError`` (H3_FRAME_ERROR): it is only valid as the first bytes of a stream,
    which ``parse_bidi_stream_start`` handles before any frame is read.
    """

    def __init__(self, max_payload: int = 65536) -> None:
        super().__init__()
        self.max_payload = max_payload

    def _parse(self, view: BytesLike, out: list[tuple[int, bytes]]) -> int:
        pos = 0
        n = len(view)
        while pos < n:
            if self._stream_left or self._discard_left:
                pos = self._take_streamed(view, pos, out)
                continue
            try:
                frame_type, length, start = parse_frame_header(view, pos)
            except NeedMoreData:
                break
            if frame_type == FrameType.DATA:
                self._stream_left = length
                pos = start
            elif frame_type in _KNOWN_FRAME_TYPES:
                if length > self.max_payload:
                    raise FramingError(
                        f"frame 0x{frame_type:x} of {length} bytes exceeds {self.max_payload}",
                        H3ErrorCode.H3_EXCESSIVE_LOAD,
                    )
                if start + length > n:
                    break
                out.append((frame_type, bytes(view[start : start + length])))
                pos = start + length
            elif frame_type in _RESERVED_FRAME_TYPES:
                raise FramingError(
                    f"HTTP/2 frame type 0x{frame_type:x}", H3ErrorCode.H3_FRAME_UNEXPECTED
                )
            elif frame_type == FrameType.WEBTRANSPORT_STREAM:
                raise FramingError("WT_STREAM signal in the middle of a stream")
            else:
                self._skipped += 1
                self._discard_left = length
                pos = start
        return pos


class CapsuleReader(_Reader):
    """Incremental capsule parser (RFC 9297 §3.2) for the data of a CONNECT stream.

    ``feed()`` returns ``(capsule_type, value)`` for capsules of known types (``CapsuleType``);
    one longer than ``max_capsule`` raises ``FramingError``. Unknown types are skipped without
    buffering their value and counted in ``skipped``.
    """

    def __init__(self, max_capsule: int = 65536) -> None:
        super().__init__()
        self.max_capsule = max_capsule

    def _parse(self, view: BytesLike, out: list[tuple[int, bytes]]) -> int:
        pos = 0
        n = len(view)
        while pos < n:
            if self._discard_left:
                pos = self._take_streamed(view, pos, out)
                continue
            try:
                capsule_type, length, start = parse_frame_header(view, pos)
            except NeedMoreData:
                break
            if capsule_type in _KNOWN_CAPSULE_TYPES:
                if length > self.max_capsule:
                    raise FramingError(
                        f"capsule 0x{capsule_type:x} of {length} bytes exceeds {self.max_capsule}"
                    )
                if start + length > n:
                    break
                out.append((capsule_type, bytes(view[start : start + length])))
                pos = start + length
            else:
                self._skipped += 1
                self._discard_left = length
                pos = start
        return pos


# --- WebTransport application error codes (draft-16 §4.4) ----------------------------------------


def wt_to_h3_error(code: int) -> int:
    """Map a 32-bit WebTransport application error code into the HTTP/3 code space."""
    _require_int(code, "error code")
    if code < 0 or code > WT_APP_ERROR_MAX:
        raise LocalProtocolError(f"WebTransport error code out of 32-bit range: {code}")
    return WT_APP_ERROR_FIRST + code + code // _CODES_PER_GREASE


def h3_to_wt_error(h3_code: int) -> int | None:
    """Map an HTTP/3 error code back to a WebTransport code; None if it is not one."""
    _require_int(h3_code, "error code")
    if h3_code < WT_APP_ERROR_FIRST or h3_code > WT_APP_ERROR_LAST:
        return None
    if (h3_code - 0x21) % _GREASE_STEP == 0:
        return None
    shifted = h3_code - WT_APP_ERROR_FIRST
    return shifted - shifted // _GREASE_STEP
