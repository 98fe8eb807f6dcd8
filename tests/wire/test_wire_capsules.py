"""Capsules (RFC 9297 §3.2) and the WebTransport close/drain capsules on both twins."""

from __future__ import annotations

from types import ModuleType

import pytest

from py_libp2p_webtransport.errors import FramingError, LocalProtocolError

# 0x2843 >= 64 -> 2-byte form 0x68 0x43; 0x78ae >= 16384 -> 4-byte form 0x80 0x00 0x78 0xae.
CLOSE_TYPE = bytes([0x68, 0x43])
DRAIN_TYPE = bytes([0x80, 0x00, 0x78, 0xAE])


def test_encode_capsule_exact_bytes(wire_module: ModuleType) -> None:
    assert wire_module.encode_capsule(0x00, b"dgram") == b"\x00\x05dgram"
    assert wire_module.encode_capsule(0x2843, b"") == CLOSE_TYPE + b"\x00"


def test_drain_exact_bytes(wire_module: ModuleType) -> None:
    assert wire_module.encode_drain_session() == DRAIN_TYPE + b"\x00"


def test_close_exact_bytes(wire_module: ModuleType) -> None:
    # value = 32-bit big-endian code + UTF-8 message; length = 4 + len(message).
    assert wire_module.encode_close_session(0) == CLOSE_TYPE + b"\x04\x00\x00\x00\x00"
    assert (
        wire_module.encode_close_session(0x47415445, "bye")
        == CLOSE_TYPE + b"\x07" + b"GATE" + b"bye"
    )
    assert (
        wire_module.encode_close_session(0xFFFFFFFF, b"x") == CLOSE_TYPE + b"\x05\xff\xff\xff\xffx"
    )


def test_close_utf8_message(wire_module: ModuleType) -> None:
    capsule = wire_module.encode_close_session(7, "héllo ✓")
    raw = "héllo ✓".encode()
    assert capsule == CLOSE_TYPE + bytes([4 + len(raw)]) + b"\x00\x00\x00\x07" + raw
    assert wire_module.decode_close_session(capsule[3:]) == (7, "héllo ✓")


def test_close_message_limits(wire_module: ModuleType) -> None:
    longest = "a" * 1024
    capsule = wire_module.encode_close_session(1, longest)
    # 1028-byte value: length in the 2-byte form 0x44 0x04.
    assert capsule[:4] == CLOSE_TYPE + b"\x44\x04"
    assert wire_module.decode_close_session(capsule[4:]) == (1, longest)
    with pytest.raises(LocalProtocolError):
        wire_module.encode_close_session(1, "a" * 1025)
    # 1024 bytes, but as multi-byte characters 342 * 3 = 1026 bytes: too long.
    with pytest.raises(LocalProtocolError):
        wire_module.encode_close_session(1, "€" * 342)


@pytest.mark.parametrize("code", [-1, 2**32, 2**62])
def test_close_code_out_of_range(wire_module: ModuleType, code: int) -> None:
    with pytest.raises(LocalProtocolError):
        wire_module.encode_close_session(code)


def test_close_bytes_message_must_be_utf8(wire_module: ModuleType) -> None:
    with pytest.raises(LocalProtocolError):
        wire_module.encode_close_session(0, b"\xff\xfe")


@pytest.mark.parametrize("value", [b"", b"\x00", b"\x00\x00\x00"])
def test_decode_close_too_short(wire_module: ModuleType, value: bytes) -> None:
    with pytest.raises(FramingError):
        wire_module.decode_close_session(value)


def test_decode_close_message_too_long(wire_module: ModuleType) -> None:
    with pytest.raises(FramingError):
        wire_module.decode_close_session(b"\x00\x00\x00\x00" + b"a" * 1025)


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"ok\x80"])
def test_decode_close_bad_utf8(wire_module: ModuleType, bad: bytes) -> None:
    with pytest.raises(FramingError):
        wire_module.decode_close_session(b"\x00\x00\x00\x01" + bad)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_decode_close_buffers(wire_module: ModuleType, kind: type) -> None:
    assert wire_module.decode_close_session(kind(b"\x01\x02\x03\x04hi")) == (0x01020304, "hi")
