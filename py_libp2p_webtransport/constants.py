"""Protocol constants, as IntEnums by family. Sources: draft-ietf-webtrans-http3 (02, 15, 16),
RFC 9114 (HTTP/3), RFC 9000 (QUIC), RFC 9297 (capsules). See shared reference notes for details.
"""

from __future__ import annotations

from enum import IntEnum


class H3ErrorCode(IntEnum):
    """HTTP/3 error codes (RFC 9114 §8.1) plus the WebTransport ones we send."""

    H3_NO_ERROR = 0x100
    H3_GENERAL_PROTOCOL_ERROR = 0x101
    H3_INTERNAL_ERROR = 0x102
    H3_STREAM_CREATION_ERROR = 0x103
    H3_CLOSED_CRITICAL_STREAM = 0x104
    H3_FRAME_UNEXPECTED = 0x105
    H3_FRAME_ERROR = 0x106
    H3_EXCESSIVE_LOAD = 0x107
    H3_ID_ERROR = 0x108
    H3_SETTINGS_ERROR = 0x109
    H3_MISSING_SETTINGS = 0x10A
    H3_REQUEST_REJECTED = 0x10B
    H3_REQUEST_CANCELLED = 0x10C
    H3_REQUEST_INCOMPLETE = 0x10D
    H3_MESSAGE_ERROR = 0x10E
    H3_CONNECT_ERROR = 0x10F
    H3_VERSION_FALLBACK = 0x110
    QPACK_DECOMPRESSION_FAILED = 0x200
    QPACK_ENCODER_STREAM_ERROR = 0x201
    QPACK_DECODER_STREAM_ERROR = 0x202
    H3_DATAGRAM_ERROR = 0x33
    WT_BUFFERED_STREAM_REJECTED = 0x3994BD84
    WT_SESSION_GONE = 0x170D7B68


class FrameType(IntEnum):
    """HTTP/3 frame types we parse or write (RFC 9114 §7.2)."""

    DATA = 0x0
    HEADERS = 0x1
    CANCEL_PUSH = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    GOAWAY = 0x7
    MAX_PUSH_ID = 0xD
    WEBTRANSPORT_STREAM = 0x41  # bidi stream signal: 0x41 <session id> then raw data


class StreamType(IntEnum):
    """HTTP/3 unidirectional stream types (RFC 9114 §6.2, RFC 9204, WT draft)."""

    CONTROL = 0x00
    PUSH = 0x01
    QPACK_ENCODER = 0x02
    QPACK_DECODER = 0x03
    WEBTRANSPORT = 0x54  # uni stream: 0x54 <session id> then raw data


class Setting(IntEnum):
    """HTTP/3 SETTINGS identifiers."""

    QPACK_MAX_TABLE_CAPACITY = 0x1
    MAX_FIELD_SECTION_SIZE = 0x6
    QPACK_BLOCKED_STREAMS = 0x7
    ENABLE_CONNECT_PROTOCOL = 0x8
    H3_DATAGRAM = 0x33
    H3_DATAGRAM_DRAFT04 = 0xFFD277
    ENABLE_WEBTRANSPORT_DRAFT02 = 0x2B603742  # draft-02..06: Chromium, Firefox, go-libp2p <= 0.48
    WT_MAX_SESSIONS_DRAFT07 = 0xC671706A  # not sent: selects draft-07 in Chromium
    WT_MAX_SESSIONS = 0x14E9CD29  # draft-13/14: Safari 26.4+
    WT_ENABLED = 0x2C7CF000  # draft-15/16: webtransport-go >= 0.11 (go-libp2p >= 0.49)
    WT_INITIAL_MAX_DATA = 0x2B61
    WT_INITIAL_MAX_STREAMS_UNI = 0x2B64
    WT_INITIAL_MAX_STREAMS_BIDI = 0x2B65


class CapsuleType(IntEnum):
    """Capsules on the CONNECT stream (RFC 9297, WT draft)."""

    DATAGRAM = 0x00
    CLOSE_WEBTRANSPORT_SESSION = 0x2843
    DRAIN_WEBTRANSPORT_SESSION = 0x78AE


# WebTransport application error codes live in a reserved HTTP/3 range that skips GREASE values:
# h = FIRST + n + n // 0x1e (draft-16 §4.4; webtransport-go errors.go).
WT_APP_ERROR_FIRST = 0x52E4A40FA8DB
WT_APP_ERROR_LAST = 0x52E5AC983162  # maps n = 0xffffffff
WT_APP_ERROR_MAX = 0xFFFFFFFF

# The application error code (WebTransport range) of a stream aborted by the qh3 stall breaker
# (``WebTransportConfig.stall_timeout``): it held the most unread data while reception was paused.
RECEIVE_STALL_ERROR = 0x5354414C  # "STAL"

# The close capsule's message is at most 1024 bytes (draft-16 §5).
CLOSE_MESSAGE_MAX = 1024

# QUIC varints encode 0 .. 2**62 - 1 (RFC 9000 §16).
VARINT_MAX = (1 << 62) - 1

# The libp2p WebTransport HTTP endpoint (libp2p/specs webtransport/README.md).
WELL_KNOWN_PATH = "/.well-known/libp2p-webtransport"
H3_ALPN = "h3"
