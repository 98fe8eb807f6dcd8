"""FrameReader and CapsuleReader fed arbitrary fragments, on both twins."""

from __future__ import annotations

from types import ModuleType

import pytest

from py_libp2p_webtransport.constants import H3ErrorCode
from py_libp2p_webtransport.errors import FramingError

Items = list[tuple[int, bytes]]


def merge_data(items: Items) -> Items:
    """Join adjacent DATA pieces: how DATA is chunked depends on where the input was split."""
    merged: Items = []
    for kind, payload in items:
        if kind == 0 and merged and merged[-1][0] == 0:
            merged[-1] = (0, merged[-1][1] + payload)
        else:
            merged.append((kind, payload))
    return merged


def feed_all(reader: object, pieces: list[bytes]) -> Items:
    out: Items = []
    for piece in pieces:
        out += reader.feed(piece)  # type: ignore[attr-defined]
    return out


# A request/control-stream mix, written out by hand (type, length, payload):
FRAMES = (
    b"\x04\x04\x08\x01\x33\x01"  # SETTINGS {0x08: 1, 0x33: 1}
    + b"\x01\x03hdr"  # HEADERS "hdr"
    + b"\x00\x05hello"  # DATA "hello"
    + b"\x21\x03zzz"  # GREASE frame type 0x21: skipped
    + b"\x00\x00"  # empty DATA: yields nothing
    + b"\x00\x40\x46"
    + bytes(range(70))  # DATA, 70 bytes (2-byte length 0x40 0x46)
    + b"\x07\x01\x00"  # GOAWAY id 0
)
FRAMES_EXPECTED = [
    (0x04, b"\x08\x01\x33\x01"),
    (0x01, b"hdr"),
    (0x00, b"hello"),
    (0x00, bytes(range(70))),
    (0x07, b"\x00"),
]


def test_frames_in_one_piece(wire_module: ModuleType) -> None:
    reader = wire_module.FrameReader()
    items = reader.feed(FRAMES)
    # In one piece, every DATA frame comes out as one chunk.
    assert items == FRAMES_EXPECTED
    assert reader.skipped == 1
    assert reader.consumed == len(FRAMES)
    assert reader.buffered == 0


def test_frames_every_split_point(wire_module: ModuleType) -> None:
    want = merge_data(FRAMES_EXPECTED)
    for cut in range(len(FRAMES) + 1):
        reader = wire_module.FrameReader()
        items = feed_all(reader, [FRAMES[:cut], FRAMES[cut:]])
        assert merge_data(items) == want, cut
        assert reader.consumed == len(FRAMES) and reader.buffered == 0


def test_frames_every_pair_of_split_points(wire_module: ModuleType) -> None:
    data = FRAMES[:40]  # keep the double loop small
    one_piece = merge_data(wire_module.FrameReader().feed(data))
    # 40 bytes = SETTINGS (6) + HEADERS (5) + DATA (7) + GREASE (5) + empty DATA (2)
    #            + DATA header (3) + the first 12 of its 70 bytes.
    assert one_piece == [FRAMES_EXPECTED[0], FRAMES_EXPECTED[1], (0, b"hello" + bytes(range(12)))]
    for a in range(len(data) + 1):
        for b in range(a, len(data) + 1):
            reader = wire_module.FrameReader()
            items = feed_all(reader, [data[:a], data[a:b], data[b:]])
            assert merge_data(items) == one_piece, (a, b)
            assert reader.consumed + reader.buffered == len(data)


def test_frames_byte_by_byte(wire_module: ModuleType) -> None:
    reader = wire_module.FrameReader()
    pieces = [FRAMES[i : i + 1] for i in range(len(FRAMES))]
    items = feed_all(reader, pieces)
    assert merge_data(items) == merge_data(FRAMES_EXPECTED)
    # DATA bytes come out as they arrive: 5 + 70 one-byte chunks.
    assert sum(1 for kind, _ in items if kind == 0) == 75


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_reader_accepts_buffers(wire_module: ModuleType, kind: type) -> None:
    reader = wire_module.FrameReader()
    items = reader.feed(kind(FRAMES[:10])) + reader.feed(kind(FRAMES[10:]))
    assert merge_data(items) == merge_data(FRAMES_EXPECTED)


def test_data_is_streamed_not_buffered(wire_module: ModuleType) -> None:
    size = 1 << 20
    reader = wire_module.FrameReader(max_payload=16)
    header = b"\x00" + wire_module.encode_varint(size)
    assert reader.feed(header) == []
    assert reader.buffered == 0
    got = 0
    chunk = b"\xab" * 4096
    while got < size:
        items = reader.feed(chunk)
        assert items == [(0, chunk)]
        # Nothing is held back while a DATA frame streams through.
        assert reader.buffered == 0
        got += len(chunk)
    assert reader.consumed == len(header) + size
    assert reader.feed(b"\x01\x01x") == [(1, b"x")]


def test_unknown_frames_skipped_unbuffered(wire_module: ModuleType) -> None:
    reader = wire_module.FrameReader(max_payload=8)
    # Unknown type 0x3f, 100 000 bytes: bigger than max_payload, but skipped, not an error.
    assert reader.feed(b"\x3f" + wire_module.encode_varint(100_000)) == []
    for _ in range(100):
        assert reader.feed(b"\x00" * 1000) == []
        assert reader.buffered == 0
    assert reader.feed(b"\x04\x00") == [(4, b"")]
    assert reader.skipped == 1


def test_partial_frame_is_buffered(wire_module: ModuleType) -> None:
    reader = wire_module.FrameReader()
    assert reader.feed(b"\x01\x05ab") == []
    assert reader.buffered == 4 and reader.consumed == 0
    assert reader.feed(b"cde\x01") == [(1, b"abcde")]
    assert reader.buffered == 1 and reader.consumed == 7


def test_oversized_frame_rejected_at_its_header(wire_module: ModuleType) -> None:
    reader = wire_module.FrameReader(max_payload=100)
    assert reader.feed(b"\x01\x40\x64" + b"a" * 100) == [(1, b"a" * 100)]  # exactly the limit
    with pytest.raises(FramingError) as info:
        reader.feed(b"\x01\x40\x65")  # HEADERS of 101 bytes: no payload needed to refuse it
    assert info.value.error_code == H3ErrorCode.H3_EXCESSIVE_LOAD


def test_errors_are_sticky(wire_module: ModuleType) -> None:
    reader = wire_module.FrameReader(max_payload=10)
    with pytest.raises(FramingError):
        reader.feed(b"\x04\x20")
    with pytest.raises(FramingError):
        reader.feed(b"\x01\x00")


@pytest.mark.parametrize("frame_type", [0x02, 0x06, 0x08, 0x09])
def test_http2_frame_types_unexpected(wire_module: ModuleType, frame_type: int) -> None:
    reader = wire_module.FrameReader()
    with pytest.raises(FramingError) as info:
        reader.feed(bytes([frame_type, 0x00]))
    assert info.value.error_code == H3ErrorCode.H3_FRAME_UNEXPECTED


def test_wt_stream_signal_mid_stream_is_frame_error(wire_module: ModuleType) -> None:
    reader = wire_module.FrameReader()
    assert reader.feed(b"\x01\x00") == [(1, b"")]
    with pytest.raises(FramingError) as info:
        reader.feed(b"\x40\x41\x00")
    assert info.value.error_code == H3ErrorCode.H3_FRAME_ERROR


# Capsules: DATAGRAM (0x00), unknown 0x17 (skipped), CLOSE (0x2843), unknown 0x4000 with 300 bytes,
# DRAIN (0x78ae).
CAPSULES = (
    b"\x00\x03abc"
    + b"\x17\x02??"
    + b"\x68\x43\x06\x00\x00\x01\x00hi"
    + b"\x80\x00\x40\x00\x41\x2c"
    + b"u" * 300
    + b"\x80\x00\x78\xae\x00"
)
CAPSULES_EXPECTED = [(0x00, b"abc"), (0x2843, b"\x00\x00\x01\x00hi"), (0x78AE, b"")]


def test_capsules_every_split_point(wire_module: ModuleType) -> None:
    for cut in range(len(CAPSULES) + 1):
        reader = wire_module.CapsuleReader()
        items = feed_all(reader, [CAPSULES[:cut], CAPSULES[cut:]])
        assert items == CAPSULES_EXPECTED, cut
        assert reader.skipped == 2
        assert reader.consumed == len(CAPSULES) and reader.buffered == 0


def test_capsules_byte_by_byte_do_not_buffer_unknown(wire_module: ModuleType) -> None:
    reader = wire_module.CapsuleReader()
    items: Items = []
    peak = 0
    for i in range(len(CAPSULES)):
        items += reader.feed(CAPSULES[i : i + 1])
        peak = max(peak, reader.buffered)
    assert items == CAPSULES_EXPECTED
    # Only the 8-byte close capsule (and headers) was ever held; never the 300 unknown bytes.
    assert peak <= 10


def test_capsule_decodes_close(wire_module: ModuleType) -> None:
    reader = wire_module.CapsuleReader()
    capsule = wire_module.encode_close_session(9, "done")
    [(kind, value)] = reader.feed(capsule)
    assert kind == 0x2843
    assert wire_module.decode_close_session(value) == (9, "done")


def test_oversized_known_capsule(wire_module: ModuleType) -> None:
    reader = wire_module.CapsuleReader(max_capsule=1024)
    with pytest.raises(FramingError):
        reader.feed(b"\x00\x44\x01")  # DATAGRAM capsule of 1025 bytes
    with pytest.raises(FramingError):
        reader.feed(b"")


def test_oversized_unknown_capsule_is_skipped(wire_module: ModuleType) -> None:
    reader = wire_module.CapsuleReader(max_capsule=4)
    assert reader.feed(b"\x3e\x44\x01" + b"x" * 1025 + b"\x00\x01y") == [(0, b"y")]
    assert reader.skipped == 1


def test_readers_ignore_empty_feeds(wire_module: ModuleType) -> None:
    for reader in (wire_module.FrameReader(), wire_module.CapsuleReader()):
        assert reader.feed(b"") == []
        assert reader.buffered == 0 and reader.consumed == 0
