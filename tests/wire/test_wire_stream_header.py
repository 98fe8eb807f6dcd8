"""WebTransport stream headers (draft-ietf-webtrans-http3 §4.2/§4.3) on both twins."""

from __future__ import annotations

from types import ModuleType

import pytest

from py_libp2p_webtransport.errors import NeedMoreData, StreamIdError

# 0x41 and 0x54 are >= 64, so both take the 2-byte varint form: 0x40 | (v >> 8), v & 0xff.
WT_BIDI = bytes([0x40, 0x41])
WT_UNI = bytes([0x40, 0x54])


@pytest.mark.parametrize(
    ("bidirectional", "session_id", "expected"),
    [
        (True, 0, WT_BIDI + bytes([0x00])),
        (True, 4, WT_BIDI + bytes([0x04])),
        (True, 60, WT_BIDI + bytes([0x3C])),
        (True, 64, WT_BIDI + bytes([0x40, 0x40])),
        (False, 0, WT_UNI + bytes([0x00])),
        (False, 8, WT_UNI + bytes([0x08])),
        (False, 16384, WT_UNI + bytes([0x80, 0x00, 0x40, 0x00])),
    ],
)
def test_encode_exact_bytes(
    wire_module: ModuleType, bidirectional: bool, session_id: int, expected: bytes
) -> None:
    assert wire_module.encode_stream_header(bidirectional, session_id) == expected


@pytest.mark.parametrize("session_id", [1, 2, 3, 5, 7, -4, -1, 2**62, 2**62 + 4, 2**64])
def test_bad_session_ids_rejected(wire_module: ModuleType, session_id: int) -> None:
    with pytest.raises(StreamIdError):
        wire_module.check_session_id(session_id)
    with pytest.raises(StreamIdError):
        wire_module.encode_stream_header(True, session_id)
    with pytest.raises(StreamIdError):
        wire_module.encode_stream_header(False, session_id)


@pytest.mark.parametrize("session_id", [0, 4, 8, 2**62 - 4])
def test_good_session_ids(wire_module: ModuleType, session_id: int) -> None:
    assert wire_module.check_session_id(session_id) is None


def test_session_id_must_be_int(wire_module: ModuleType) -> None:
    with pytest.raises(TypeError):
        wire_module.check_session_id(4.0)


def test_parse_bidi_webtransport(wire_module: ModuleType) -> None:
    data = WT_BIDI + bytes([0x40, 0x40]) + b"payload"
    assert wire_module.parse_bidi_stream_start(data) == (0x41, 64, 4)


def test_parse_bidi_http3_frame_type(wire_module: ModuleType) -> None:
    # A request stream starts with a HEADERS frame (type 0x01): no session id is read.
    data = bytes([0x01, 0x05]) + b"hdrs!"
    assert wire_module.parse_bidi_stream_start(data) == (0x01, None, 1)


def test_parse_uni_webtransport_and_control(wire_module: ModuleType) -> None:
    assert wire_module.parse_uni_stream_type(WT_UNI + bytes([0x08, 0xAA])) == (0x54, 8, 3)
    # Control stream (0x00), QPACK encoder (0x02): type only.
    assert wire_module.parse_uni_stream_type(bytes([0x00, 0x04])) == (0x00, None, 1)
    assert wire_module.parse_uni_stream_type(bytes([0x02])) == (0x02, None, 1)


def test_parse_at_offset(wire_module: ModuleType) -> None:
    data = b"xyz" + WT_UNI + bytes([0x04])
    assert wire_module.parse_uni_stream_type(data, 3) == (0x54, 4, 6)


def test_round_trip_header(wire_module: ModuleType) -> None:
    for sid in (0, 4, 1 << 20, 2**62 - 4):
        bidi = wire_module.encode_stream_header(True, sid)
        assert wire_module.parse_bidi_stream_start(bidi) == (0x41, sid, len(bidi))
        uni = wire_module.encode_stream_header(False, sid)
        assert wire_module.parse_uni_stream_type(uni) == (0x54, sid, len(uni))


@pytest.mark.parametrize("cut", [0, 1, 2, 3])
def test_truncated_headers_need_more_data(wire_module: ModuleType, cut: int) -> None:
    bidi = WT_BIDI + bytes([0x80, 0x00, 0x40, 0x00])
    uni = WT_UNI + bytes([0x80, 0x00, 0x40, 0x00])
    with pytest.raises(NeedMoreData):
        wire_module.parse_bidi_stream_start(bidi[:cut])
    with pytest.raises(NeedMoreData):
        wire_module.parse_uni_stream_type(uni[:cut])


@pytest.mark.parametrize("session_id_byte", [0x01, 0x02, 0x03, 0x05])
def test_parse_bad_session_id(wire_module: ModuleType, session_id_byte: int) -> None:
    with pytest.raises(StreamIdError):
        wire_module.parse_bidi_stream_start(WT_BIDI + bytes([session_id_byte]))
    with pytest.raises(StreamIdError):
        wire_module.parse_uni_stream_type(WT_UNI + bytes([session_id_byte]))


def test_stream_id_error_carries_h3_id_error(wire_module: ModuleType) -> None:
    with pytest.raises(StreamIdError) as info:
        wire_module.parse_uni_stream_type(WT_UNI + bytes([0x01]))
    assert info.value.error_code == 0x108  # H3_ID_ERROR, RFC 9114 §8.1
