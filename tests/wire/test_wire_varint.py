"""QUIC varints (RFC 9000 §16) on both twins: spec vectors, boundaries, bad input."""

from __future__ import annotations

from types import ModuleType

import pytest

from py_libp2p_webtransport.errors import LocalProtocolError, NeedMoreData

# RFC 9000 Appendix A.1 sample encodings.
RFC_VECTORS = [
    ("c2197c5eff14e88c", 151288809941952652),
    ("9d7f3e7d", 494878333),
    ("7bbd", 15293),
    ("25", 37),
]

# Boundaries between the 1/2/4/8-byte forms, with the bytes written out from the spec: the two
# top bits of the first byte are log2(length), the rest is the value, big-endian.
BOUNDARIES = [
    (0, b"\x00"),
    (63, b"\x3f"),
    (64, b"\x40\x40"),
    (16383, b"\x7f\xff"),
    (16384, b"\x80\x00\x40\x00"),
    (2**30 - 1, b"\xbf\xff\xff\xff"),
    (2**30, b"\xc0\x00\x00\x00\x40\x00\x00\x00"),
    (2**62 - 1, b"\xff\xff\xff\xff\xff\xff\xff\xff"),
]


@pytest.mark.parametrize(("hex_bytes", "value"), RFC_VECTORS)
def test_rfc_vectors_decode_and_encode(wire_module: ModuleType, hex_bytes: str, value: int) -> None:
    data = bytes.fromhex(hex_bytes)
    assert wire_module.decode_varint(data) == (value, len(data))
    assert wire_module.encode_varint(value) == data
    assert wire_module.varint_size(value) == len(data)


def test_non_shortest_encoding_decodes(wire_module: ModuleType) -> None:
    # RFC 9000 A.1: "the two-byte sequence 0x4025 decodes to 37".
    assert wire_module.decode_varint(bytes.fromhex("4025")) == (37, 2)
    assert wire_module.decode_varint(bytes.fromhex("80000025")) == (37, 4)
    assert wire_module.decode_varint(bytes.fromhex("c000000000000025")) == (37, 8)


@pytest.mark.parametrize(("value", "encoded"), BOUNDARIES)
def test_boundaries(wire_module: ModuleType, value: int, encoded: bytes) -> None:
    assert wire_module.encode_varint(value) == encoded
    assert wire_module.varint_size(value) == len(encoded)
    assert wire_module.decode_varint(encoded) == (value, len(encoded))


@pytest.mark.parametrize("value", [-1, -(2**70), 2**62, 2**64, 2**100])
def test_out_of_range_values(wire_module: ModuleType, value: int) -> None:
    with pytest.raises(LocalProtocolError):
        wire_module.encode_varint(value)
    with pytest.raises(LocalProtocolError):
        wire_module.varint_size(value)
    with pytest.raises(LocalProtocolError):
        wire_module.encode_varint_into(bytearray(16), 0, value)


@pytest.mark.parametrize("value", [1.0, "1", None, b"\x01"])
def test_non_int_values_are_type_errors(wire_module: ModuleType, value: object) -> None:
    with pytest.raises(TypeError):
        wire_module.encode_varint(value)
    with pytest.raises(TypeError):
        wire_module.varint_size(value)


def test_int_subclasses_accepted(wire_module: ModuleType) -> None:
    from py_libp2p_webtransport.constants import Setting

    assert wire_module.encode_varint(True) == b"\x01"
    assert wire_module.encode_varint(Setting.H3_DATAGRAM) == b"\x33"


def test_decode_at_offset(wire_module: ModuleType) -> None:
    data = b"\xaa" + bytes.fromhex("7bbd") + b"\x25"
    value, offset = wire_module.decode_varint(data, 1)
    assert (value, offset) == (15293, 3)
    assert wire_module.decode_varint(data, offset) == (37, 4)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_decode_accepts_buffers(wire_module: ModuleType, kind: type) -> None:
    assert wire_module.decode_varint(kind(bytes.fromhex("9d7f3e7d"))) == (494878333, 4)


@pytest.mark.parametrize("hex_bytes", ["", "40", "80ffff", "c0000000000000"])
def test_truncated_needs_more_data(wire_module: ModuleType, hex_bytes: str) -> None:
    with pytest.raises(NeedMoreData):
        wire_module.decode_varint(bytes.fromhex(hex_bytes))


def test_offset_past_end_needs_more_data(wire_module: ModuleType) -> None:
    with pytest.raises(NeedMoreData):
        wire_module.decode_varint(b"\x01\x02", 2)
    with pytest.raises(NeedMoreData):
        wire_module.decode_varint(b"\x01\x02", 50)


def test_negative_offset_is_local_error(wire_module: ModuleType) -> None:
    with pytest.raises(LocalProtocolError):
        wire_module.decode_varint(b"\x01\x02", -1)


def test_encode_into_writes_at_offset(wire_module: ModuleType) -> None:
    buf = bytearray(b"\xee" * 8)
    end = wire_module.encode_varint_into(buf, 2, 15293)
    assert end == 4
    assert buf == b"\xee\xee\x7b\xbd\xee\xee\xee\xee"
    end = wire_module.encode_varint_into(buf, end, 37)
    assert end == 5 and buf[4] == 0x25


def test_encode_into_exact_fit(wire_module: ModuleType) -> None:
    buf = bytearray(8)
    assert wire_module.encode_varint_into(buf, 0, 2**62 - 1) == 8
    assert buf == b"\xff" * 8


@pytest.mark.parametrize(("size", "offset"), [(0, 0), (3, 0), (4, 1), (8, 8), (8, -1)])
def test_encode_into_too_short_leaves_buffer_alone(
    wire_module: ModuleType, size: int, offset: int
) -> None:
    buf = bytearray(b"\x11" * size)
    with pytest.raises(LocalProtocolError):
        wire_module.encode_varint_into(buf, offset, 494878333)  # needs 4 bytes
    assert buf == b"\x11" * size


def test_encode_into_read_only_buffer(wire_module: ModuleType) -> None:
    with pytest.raises(TypeError):
        wire_module.encode_varint_into(b"\x00" * 8, 0, 1)
