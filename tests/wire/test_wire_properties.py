"""Property tests: round trips that cross the twins, and a differential fuzz of the two twins.

Round trips encode with one twin and decode with the other (``both_wire_modules``). Expected
reader output is derived from the generated frame list, not from either implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from py_libp2p_webtransport._compat import NO_EXTENSIONS
from py_libp2p_webtransport.errors import ProtocolError, WebTransportError

# Default runs stay quick; the slow variant digs deeper. No deadline: tests never time things.
QUICK = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEEP = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VARINT_MAX = 2**62 - 1
varints = st.one_of(
    st.integers(0, 63),
    st.integers(64, 16383),
    st.integers(16384, 2**30 - 1),
    st.integers(2**30, VARINT_MAX),
)
session_ids = st.integers(0, VARINT_MAX // 4).map(lambda n: n * 4)
KNOWN_FRAMES = [0x01, 0x03, 0x04, 0x05, 0x07, 0x0D]
REFUSED_FRAMES = {0x02, 0x06, 0x08, 0x09, 0x41}
KNOWN_CAPSULES = [0x00, 0x2843, 0x78AE]


def pairs(mods: list[ModuleType]) -> list[tuple[ModuleType, ModuleType]]:
    return [(a, b) for a in mods for b in mods]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def merge_data(items: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    merged: list[tuple[int, bytes]] = []
    for kind, payload in items:
        if kind == 0 and merged and merged[-1][0] == 0:
            merged[-1] = (0, merged[-1][1] + payload)
        elif kind != 0 or payload:
            merged.append((kind, payload))
    return merged


@QUICK
@given(value=varints)
def test_varint_round_trip_across_twins(both_wire_modules: list[ModuleType], value: int) -> None:
    for enc, dec in pairs(both_wire_modules):
        encoded = enc.encode_varint(value)
        assert len(encoded) == dec.varint_size(value)
        assert dec.decode_varint(b"\x00" + encoded + b"\xff", 1) == (value, 1 + len(encoded))
        buf = bytearray(9)
        end = dec.encode_varint_into(buf, 1, value)
        assert bytes(buf[1:end]) == encoded


@QUICK
@given(session_id=session_ids, bidirectional=st.booleans(), tail=st.binary(max_size=8))
def test_stream_header_round_trip_across_twins(
    both_wire_modules: list[ModuleType], session_id: int, bidirectional: bool, tail: bytes
) -> None:
    for enc, dec in pairs(both_wire_modules):
        header = enc.encode_stream_header(bidirectional, session_id)
        parse = dec.parse_bidi_stream_start if bidirectional else dec.parse_uni_stream_type
        kind = 0x41 if bidirectional else 0x54
        assert parse(header + tail) == (kind, session_id, len(header))


@QUICK
@given(values=st.dictionaries(varints.filter(lambda k: not 2 <= k <= 5), varints, max_size=12))
def test_settings_round_trip_across_twins(
    both_wire_modules: list[ModuleType], values: dict[int, int]
) -> None:
    for enc, dec in pairs(both_wire_modules):
        decoded = dec.decode_settings(enc.encode_settings(values))
        assert decoded == values and list(decoded) == list(values)


@QUICK
@given(code=st.integers(0, 2**32 - 1), message=st.text(max_size=300))
def test_close_round_trip_across_twins(
    both_wire_modules: list[ModuleType], code: int, message: str
) -> None:
    for enc, dec in pairs(both_wire_modules):
        capsule = enc.encode_close_session(code, message)
        kind, length, start = dec.parse_frame_header(capsule)
        assert kind == 0x2843 and start + length == len(capsule)
        assert dec.decode_close_session(capsule[start:]) == (code, message)


@QUICK
@given(code=st.integers(0, 2**32 - 1))
def test_error_code_round_trip_across_twins(both_wire_modules: list[ModuleType], code: int) -> None:
    for enc, dec in pairs(both_wire_modules):
        h3 = enc.wt_to_h3_error(code)
        assert (h3 - 0x21) % 0x1F != 0  # never a GREASE code
        assert dec.h3_to_wt_error(h3) == code


frame_types = st.one_of(
    st.sampled_from([0x00, *KNOWN_FRAMES]),
    varints.filter(lambda t: t not in REFUSED_FRAMES and t not in KNOWN_FRAMES and t != 0),
)
frame_lists = st.lists(st.tuples(frame_types, st.binary(max_size=300)), max_size=8)
cut_lists = st.lists(st.integers(0, 10_000), max_size=12)


@QUICK
@given(items=frame_lists, cuts=cut_lists)
def test_frame_reader_any_fragmentation(
    both_wire_modules: list[ModuleType], items: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    known = {0, *KNOWN_FRAMES}
    expected = merge_data([(t, p) for t, p in items if t in known])
    skipped = sum(1 for t, _ in items if t not in known)
    for enc, dec in pairs(both_wire_modules):
        wire = b"".join(enc.encode_frame(t, p) for t, p in items)
        reader = dec.FrameReader(max_payload=300)
        out: list[tuple[int, bytes]] = []
        for piece in split(wire, cuts):
            out += reader.feed(piece)
        assert merge_data(out) == expected
        assert reader.skipped == skipped
        assert reader.consumed == len(wire) and reader.buffered == 0


capsule_types = st.one_of(st.sampled_from(KNOWN_CAPSULES), varints)


capsule_lists = st.lists(st.tuples(capsule_types, st.binary(max_size=300)), max_size=8)


@QUICK
@given(items=capsule_lists, cuts=cut_lists)
def test_capsule_reader_any_fragmentation(
    both_wire_modules: list[ModuleType], items: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    expected = [(t, p) for t, p in items if t in KNOWN_CAPSULES]
    skipped = sum(1 for t, _ in items if t not in KNOWN_CAPSULES)
    for enc, dec in pairs(both_wire_modules):
        wire = b"".join(enc.encode_capsule(t, p) for t, p in items)
        reader = dec.CapsuleReader(max_capsule=300)
        out: list[tuple[int, bytes]] = []
        for piece in split(wire, cuts):
            out += reader.feed(piece)
        assert out == expected
        assert reader.skipped == skipped
        assert reader.consumed == len(wire) and reader.buffered == 0


# --- differential fuzz: both twins on the same (mostly hostile) bytes ---------------------------

# Byte strings built from pieces that matter to the parsers, mixed with raw noise.
interesting_varints = st.sampled_from(
    [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        16,
        17,
        0x21,
        0x33,
        0x41,
        0x54,
        0x2843,
        0x78AE,
        300,
        1025,
        2**62 - 1,
    ]
)


def _any_varint_encoding(value: int, size_class: int) -> bytes:
    # An encoding of ``value`` at least 2**size_class bytes wide: non-shortest forms included.
    size = 1 << size_class
    while size < 8 and value >= 1 << (8 * size - 2):
        size *= 2
    # The two top bits hold log2(size) (RFC 9000 §16).
    return (value | ((size.bit_length() - 1) << (8 * size - 2))).to_bytes(size, "big")


# Byte strings built from varints that matter to the parsers, mixed with raw noise.
any_varint = st.builds(_any_varint_encoding, interesting_varints, st.integers(0, 3))
# type, length, then some bytes: frames, capsules and stream headers, well-formed or not.
tlv = st.tuples(any_varint, any_varint, st.binary(max_size=20)).map(b"".join)
hostile_bytes = st.lists(st.one_of(st.binary(max_size=12), any_varint, tlv), max_size=10).map(
    b"".join
)


def outcome(func: Callable[..., object], *args: object) -> tuple[object, ...]:
    """What a call did: its result, or the exception type (and HTTP/3 code for protocol errors)."""
    try:
        return ("ok", func(*args))
    except ProtocolError as exc:
        return ("error", type(exc), exc.error_code)
    except Exception as exc:  # NeedMoreData, TypeError: compare the type only
        return ("error", type(exc))


def reader_trace(reader: Any, pieces: list[bytes]) -> list[tuple[object, ...]]:
    trace = [outcome(reader.feed, piece) for piece in pieces]
    trace.append(("state", reader.consumed, reader.buffered, reader.skipped))
    return trace


PARSERS_WITH_OFFSET = (
    "decode_varint",
    "parse_frame_header",
    "parse_uni_stream_type",
    "parse_bidi_stream_start",
)


def differential(data: bytes, cuts: list[int]) -> None:
    from py_libp2p_webtransport import _wire_c, _wire_py

    # Every suffix: a structure the strategy put in the middle gets parsed from its start too.
    for offset in range(len(data) + 1):
        for name in PARSERS_WITH_OFFSET:
            c = outcome(getattr(_wire_c, name), data, offset)
            assert c == outcome(getattr(_wire_py, name), data, offset), (name, offset)
        tail = data[offset:]
        for name in ("decode_settings", "decode_close_session"):
            assert outcome(getattr(_wire_c, name), tail) == outcome(getattr(_wire_py, name), tail)
    for offset in range(len(data) + 1):
        pieces = split(data[offset:], cuts)
        for cls in ("FrameReader", "CapsuleReader"):
            c_trace = reader_trace(getattr(_wire_c, cls)(16), pieces)
            assert c_trace == reader_trace(getattr(_wire_py, cls)(16), pieces), (cls, offset)


@QUICK
@given(data=st.one_of(hostile_bytes, st.binary(max_size=64)), cuts=cut_lists)
def test_hostile_bytes_give_only_typed_errors(
    wire_module: ModuleType, data: bytes, cuts: list[int]
) -> None:
    # Never an IndexError, ValueError, OverflowError...: only the package's own errors.
    calls: list[tuple[Callable[..., object], tuple[object, ...]]] = []
    for offset in range(len(data) + 1):
        calls += [(getattr(wire_module, name), (data, offset)) for name in PARSERS_WITH_OFFSET]
        calls += [(wire_module.decode_settings, (data[offset:],))]
        calls += [(wire_module.decode_close_session, (data[offset:],))]
        for reader in (wire_module.FrameReader(16), wire_module.CapsuleReader(16)):
            calls += [(reader.feed, (piece,)) for piece in split(data[offset:], cuts)]
    for func, args in calls:
        try:
            func(*args)
        except WebTransportError:
            pass  # any other exception propagates and fails the test


@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="differential test needs the compiled twin")
@QUICK
@given(data=st.one_of(hostile_bytes, st.binary(max_size=64)), cuts=cut_lists)
def test_twins_agree_on_any_bytes(data: bytes, cuts: list[int]) -> None:
    differential(data, cuts)


@pytest.mark.slow
@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="differential test needs the compiled twin")
@DEEP
@given(data=st.one_of(hostile_bytes, st.binary(max_size=256)), cuts=cut_lists)
def test_twins_agree_on_any_bytes_deep(data: bytes, cuts: list[int]) -> None:
    differential(data, cuts)


@pytest.mark.slow
@DEEP
@given(items=frame_lists, cuts=cut_lists)
def test_frame_reader_any_fragmentation_deep(
    both_wire_modules: list[ModuleType], items: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    test_frame_reader_any_fragmentation.hypothesis.inner_test(  # type: ignore[attr-defined]
        both_wire_modules, items, cuts
    )
