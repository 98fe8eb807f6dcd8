"""Differential fuzzing of every parser: the compiled and pure twins give identical results, and
every parser fails only with a typed error from ``errors.py`` (never IndexError, never a hang).

Each property runs ``FUZZ_EXAMPLES`` examples in the normal suite; the ``slow`` test reruns all of
them with ``SLOW_EXAMPLES_TOTAL`` examples in total (≥ 10⁵), split evenly.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libp2p.crypto.ed25519 import create_new_key_pair

from py_libp2p_webtransport import _wire_py
from py_libp2p_webtransport import multiaddr as wt_multiaddr
from py_libp2p_webtransport.errors import WebTransportError
from py_libp2p_webtransport.noise import HandshakePayload, NoiseHandshake
from py_libp2p_webtransport.session.headers import HeaderCodec, parse_request

FUZZ_EXAMPLES = int(os.environ.get("PY_LIBP2P_WEBTRANSPORT_FUZZ_EXAMPLES", "100"))
SLOW_EXAMPLES_TOTAL = 100_000


def _compiled() -> ModuleType | None:
    try:
        return importlib.import_module("py_libp2p_webtransport._wire_c")
    except ImportError:
        return None


WIRE_C = _compiled()
TWINS = [_wire_py] + ([WIRE_C] if WIRE_C is not None else [])
KEY = create_new_key_pair().private_key
FAST = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", result) or ("error", exception type name); an untyped exception fails the test."""
    try:
        return ("ok", call())
    except WebTransportError as error:
        return ("error", type(error).__name__)


def same_on_twins(call: Callable[[ModuleType], Any]) -> None:
    results = [outcome(lambda m=m: call(m)) for m in TWINS]
    assert all(r == results[0] for r in results), results


# Inputs: random bytes, plus bytes that start like the real thing more often than chance.
VARINT_PREFIXED = st.builds(
    lambda head, tail: bytes([head]) + tail,
    st.integers(0, 255),
    st.binary(max_size=64),
)
BLOBS = st.one_of(st.binary(max_size=256), VARINT_PREFIXED)


def _feed_all(reader: Any, chunks: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for chunk in chunks:
        out.extend(reader.feed(chunk))
    return [(t, bytes(v)) for t, v in out]


def _varints(data: bytes, offset: int) -> None:
    same_on_twins(lambda m: m.decode_varint(data, offset))


def _stream_headers(data: bytes) -> None:
    same_on_twins(lambda m: m.parse_bidi_stream_start(data))
    same_on_twins(lambda m: m.parse_uni_stream_type(data))


def _frame_headers_and_settings(data: bytes) -> None:
    same_on_twins(lambda m: m.parse_frame_header(data))
    same_on_twins(lambda m: m.decode_settings(data))


def _frame_reader(chunks: list[bytes], max_payload: int) -> None:
    same_on_twins(lambda m: _feed_all(m.FrameReader(max_payload), chunks))


def _capsules(chunks: list[bytes], max_capsule: int) -> None:
    same_on_twins(lambda m: _feed_all(m.CapsuleReader(max_capsule), chunks))
    same_on_twins(lambda m: m.decode_close_session(b"".join(chunks)))


def _qpack_header_blocks(block: bytes) -> None:
    # One implementation (pylsqpack behind HeaderCodec): typed errors only.
    result = outcome(lambda: HeaderCodec().decode(0, block))
    if result[0] == "ok":
        outcome(lambda: parse_request(result[1][1]))


def _noise_payloads_and_messages(payload: bytes, message: bytes) -> None:
    outcome(lambda: HandshakePayload.decode(payload))
    responder = NoiseHandshake.responder(KEY)
    outcome(lambda: responder.receive_data(len(message).to_bytes(2, "big") + message))
    initiator = NoiseHandshake.initiator(KEY)
    initiator.data_to_send()
    outcome(lambda: initiator.receive_data(len(message).to_bytes(2, "big") + message))


TEXT = st.text(alphabet=st.characters(codec="ascii"), max_size=120)
ADDR_LIKE = st.builds(
    lambda port, tail: f"/ip4/127.0.0.1/udp/{port}/quic-v1/webtransport{tail}",
    st.integers(0, 70000),
    st.one_of(TEXT, st.builds(lambda t: "/certhash/" + t, TEXT)),
)


def _multiaddrs_and_certhashes(text: str) -> None:
    outcome(lambda: wt_multiaddr.decode_certhash(text))
    outcome(lambda: wt_multiaddr.parse_webtransport_multiaddr(text))


PROPERTIES: dict[str, tuple[Callable[..., None], tuple[Any, ...]]] = {
    "varints": (
        _varints,
        (BLOBS, st.integers(0, 8)),
    ),
    "stream_headers": (_stream_headers, (BLOBS,)),
    "frame_headers_and_settings": (_frame_headers_and_settings, (BLOBS,)),
    "frame_reader": (
        _frame_reader,
        (st.lists(BLOBS, max_size=6), st.integers(1, 300)),
    ),
    "capsules": (
        _capsules,
        (st.lists(BLOBS, max_size=6), st.integers(1, 300)),
    ),
    "qpack_header_blocks": (_qpack_header_blocks, (BLOBS,)),
    "noise_payloads_and_messages": (
        _noise_payloads_and_messages,
        (BLOBS, st.binary(max_size=300)),
    ),
    "multiaddrs_and_certhashes": (_multiaddrs_and_certhashes, (st.one_of(TEXT, ADDR_LIKE),)),
}


def build(name: str, examples: int) -> Callable[[], None]:
    """A fresh hypothesis test of property ``name`` running ``examples`` examples."""
    fn, strategies = PROPERTIES[name]
    return settings(FAST, max_examples=examples)(given(*strategies)(fn))


test_varints = build("varints", FUZZ_EXAMPLES)
test_stream_headers = build("stream_headers", FUZZ_EXAMPLES)
test_frame_headers_and_settings = build("frame_headers_and_settings", FUZZ_EXAMPLES)
test_frame_reader = build("frame_reader", FUZZ_EXAMPLES)
test_capsules = build("capsules", FUZZ_EXAMPLES)
test_qpack_header_blocks = build("qpack_header_blocks", FUZZ_EXAMPLES)
test_noise_payloads_and_messages = build("noise_payloads_and_messages", FUZZ_EXAMPLES)
test_multiaddrs_and_certhashes = build("multiaddrs_and_certhashes", FUZZ_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_many_examples(name: str) -> None:
    """≥ 10⁵ examples in total across the parsers (both twins where compiled)."""
    build(name, SLOW_EXAMPLES_TOTAL // len(PROPERTIES))()
