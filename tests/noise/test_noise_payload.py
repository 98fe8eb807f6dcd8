"""The NoiseHandshakePayload encoding, checked against py-libp2p's generated protobuf classes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.security.noise.pb import noise_pb2

from py_libp2p_webtransport.errors import HandshakeError
from py_libp2p_webtransport.multiaddr import certhash_multihash
from py_libp2p_webtransport.noise import HandshakePayload

KEY = b"\x08\x01\x12\x20" + bytes(range(32))  # shaped like a serialised Ed25519 public key
SIG = bytes(range(64))
HASHES = (certhash_multihash(b"a"), certhash_multihash(b"b"), certhash_multihash(b"c"))


def test_ours_decodes_with_py_libp2p_protobuf() -> None:
    encoded = HandshakePayload(KEY, SIG, HASHES).encode()
    theirs = noise_pb2.NoiseHandshakePayload.FromString(encoded)
    assert theirs.identity_key == KEY
    assert theirs.identity_sig == SIG
    assert theirs.HasField("extensions")
    assert tuple(theirs.extensions.webtransport_certhashes) == HASHES
    assert not theirs.extensions.HasField("early_data"), "never emit the unregistered field"
    assert list(theirs.extensions.stream_muxers) == []


def test_no_extensions_without_certhashes() -> None:
    theirs = noise_pb2.NoiseHandshakePayload.FromString(HandshakePayload(KEY, SIG).encode())
    assert not theirs.HasField("extensions")


def test_theirs_decodes_with_ours_ignoring_unknown_fields() -> None:
    message = noise_pb2.NoiseHandshakePayload(
        identity_key=KEY,
        identity_sig=SIG,
        extensions=noise_pb2.NoiseExtensions(
            webtransport_certhashes=list(HASHES),
            stream_muxers=["/yamux/1.0.0"],
            early_data=b"early",
        ),
    )
    ours = HandshakePayload.decode(message.SerializeToString())
    assert ours == HandshakePayload(KEY, SIG, HASHES)


def test_round_trip() -> None:
    payload = HandshakePayload(KEY, SIG, HASHES[:1])
    assert HandshakePayload.decode(payload.encode()) == payload


def test_unknown_varint_and_fixed_fields_are_skipped() -> None:
    extra = b"\x28\x96\x01" + b"\x31" + bytes(8) + b"\x3d" + bytes(4)  # fields 5, 6, 7
    payload = HandshakePayload(KEY, SIG, HASHES)
    assert HandshakePayload.decode(payload.encode() + extra) == payload


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x0a\x05abc", id="length-past-end"),
        pytest.param(b"\x0a", id="truncated-length"),
        pytest.param(b"\x0a\x80", id="truncated-varint"),
        pytest.param(b"\x08" + b"\xff" * 10 + b"\x01", id="varint-over-10-bytes"),
        pytest.param(b"\x0b", id="wire-type-3-group"),
        pytest.param(b"\x0c", id="wire-type-4"),
        pytest.param(b"\x0e", id="wire-type-6"),
        pytest.param(b"\x02\x01x", id="field-zero"),
        pytest.param(b"\x31\x00\x00", id="truncated-fixed64"),
        pytest.param(b"\x08\x01\x12\x01s", id="identity-key-as-varint"),
        pytest.param(b"\x0a\x01k", id="missing-signature"),
        pytest.param(b"\x12\x01s", id="missing-key"),
        pytest.param(b"\x0a\x01k\x12\x01s\x22\x02\x0a\x05", id="bad-extensions"),
        pytest.param(b"\x0a\x01k\x12\x01s\x22\x02\x08\x01", id="certhash-as-varint"),
    ],
)
def test_malformed_payloads_raise_handshake_error(data: bytes) -> None:
    with pytest.raises(HandshakeError):
        HandshakePayload.decode(data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_only_ever_raise_handshake_error(data: bytes) -> None:
    try:
        payload = HandshakePayload.decode(data)
    except HandshakeError:
        return
    assert payload.identity_key and payload.identity_sig
