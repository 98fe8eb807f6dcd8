"""HTTP/3 frame headers and SETTINGS (RFC 9114 §7.2) on both twins."""

from __future__ import annotations

from types import ModuleType

import pytest

from py_libp2p_webtransport.constants import H3ErrorCode, Setting
from py_libp2p_webtransport.errors import (
    FramingError,
    LocalProtocolError,
    NeedMoreData,
    SettingsError,
)


def test_frame_exact_bytes(wire_module: ModuleType) -> None:
    # SETTINGS (type 0x04), 3-byte payload: type, length, payload.
    assert wire_module.encode_frame(0x04, b"\x08\x01\x00") == b"\x04\x03\x08\x01\x00"
    # DATA with a 100-byte payload: the length 100 takes the 2-byte form 0x40 0x64.
    assert wire_module.encode_frame(0x00, b"a" * 100) == b"\x00\x40\x64" + b"a" * 100
    # A GREASE type 0x21 (0x1f * 0 + 0x21), empty.
    assert wire_module.encode_frame(0x21, b"") == b"\x21\x00"


def test_frame_header_exact_bytes(wire_module: ModuleType) -> None:
    assert wire_module.encode_frame_header(0x01, 16384) == b"\x01\x80\x00\x40\x00"
    assert wire_module.encode_frame_header(0x2B603742, 0) == b"\xab\x60\x37\x42\x00"


def test_frame_accepts_buffers(wire_module: ModuleType) -> None:
    for payload in (bytearray(b"xy"), memoryview(b"xy")):
        assert wire_module.encode_frame(0x01, payload) == b"\x01\x02xy"


def test_frame_bad_type(wire_module: ModuleType) -> None:
    with pytest.raises(LocalProtocolError):
        wire_module.encode_frame(2**62, b"")
    with pytest.raises(LocalProtocolError):
        wire_module.encode_frame_header(0, -1)
    with pytest.raises(TypeError):
        wire_module.encode_frame(0, "text")


def test_parse_frame_header(wire_module: ModuleType) -> None:
    data = b"\x01\x80\x00\x40\x00" + b"rest"
    assert wire_module.parse_frame_header(data) == (0x01, 16384, 5)
    assert wire_module.parse_frame_header(b"..\x04\x03", 2) == (0x04, 3, 4)


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01\x80\x00", b"\x40", b"\x40\x41"])
def test_parse_frame_header_truncated(wire_module: ModuleType, data: bytes) -> None:
    with pytest.raises(NeedMoreData):
        wire_module.parse_frame_header(data)


def test_encode_settings_exact_bytes_in_given_order(wire_module: ModuleType) -> None:
    settings = {
        Setting.ENABLE_CONNECT_PROTOCOL: 1,
        Setting.H3_DATAGRAM: 1,
        Setting.ENABLE_WEBTRANSPORT_DRAFT02: 1,
        Setting.QPACK_MAX_TABLE_CAPACITY: 4096,
    }
    expected = (
        b"\x08\x01"  # 0x08 = 1
        + b"\x33\x01"  # 0x33 = 1
        + b"\xab\x60\x37\x42\x01"  # 0x2b603742 (4-byte form: 0x80 | 0x2b) = 1
        + b"\x01\x50\x00"  # 0x01 = 4096 (2-byte form: 0x40 | 0x10, 0x00)
    )
    assert wire_module.encode_settings(settings) == expected
    assert wire_module.encode_settings({}) == b""


def test_settings_round_trip(wire_module: ModuleType) -> None:
    settings = {0x8: 1, 0x33: 1, 0x2C7CF000: 1, 0x14E9CD29: 2**62 - 1, 0x1F * 7 + 0x21: 0}
    decoded = wire_module.decode_settings(wire_module.encode_settings(settings))
    assert decoded == settings
    assert list(decoded) == list(settings)


def test_encode_settings_out_of_range(wire_module: ModuleType) -> None:
    with pytest.raises(LocalProtocolError):
        wire_module.encode_settings({0x8: 2**62})
    with pytest.raises(LocalProtocolError):
        wire_module.encode_settings({-1: 0})


@pytest.mark.parametrize("payload", [b"\x08", b"\x08\x40", b"\x33\x01\x08", b"\xab\x60\x37"])
def test_decode_settings_truncated(wire_module: ModuleType, payload: bytes) -> None:
    with pytest.raises(FramingError) as info:
        wire_module.decode_settings(payload)
    assert info.value.error_code == H3ErrorCode.H3_FRAME_ERROR


def test_decode_settings_duplicate(wire_module: ModuleType) -> None:
    with pytest.raises(SettingsError) as info:
        wire_module.decode_settings(b"\x33\x01\x08\x01\x33\x00")
    assert info.value.error_code == H3ErrorCode.H3_SETTINGS_ERROR
    # The same id in a non-shortest form is still a duplicate.
    with pytest.raises(SettingsError):
        wire_module.decode_settings(b"\x33\x01\x40\x33\x00")


@pytest.mark.parametrize("reserved", [0x2, 0x3, 0x4, 0x5])
def test_decode_settings_reserved_http2_ids(wire_module: ModuleType, reserved: int) -> None:
    with pytest.raises(SettingsError):
        wire_module.decode_settings(bytes([reserved, 0x00]))


def test_decode_settings_accepts_unknown_and_grease(wire_module: ModuleType) -> None:
    # Unknown ids are ignored by the session, but decoding keeps them (RFC 9114 §7.2.4).
    payload = b"\x21\x07" + b"\x06\x40\x64"
    assert wire_module.decode_settings(payload) == {0x21: 7, 0x6: 100}


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_decode_settings_accepts_buffers(wire_module: ModuleType, kind: type) -> None:
    assert wire_module.decode_settings(kind(b"\x33\x01")) == {0x33: 1}
