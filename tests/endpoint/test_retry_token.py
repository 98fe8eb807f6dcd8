"""The Retry token codec, the Retry packet and the policy on their own (no sockets, no clock)."""

from __future__ import annotations

import os

import pytest
from aioquic.quic.packet import get_retry_integrity_tag
from hypothesis import given, settings
from hypothesis import strategies as st

from py_libp2p_webtransport._wire import encode_varint
from py_libp2p_webtransport.endpoint.quic_header import parse_header
from py_libp2p_webtransport.endpoint.retry import (
    AddressValidator,
    RetryTokenCodec,
    encode_retry_packet,
    read_initial_token,
    retry_integrity_tag,
)
from py_libp2p_webtransport.errors import InvalidRetryToken, MalformedPacket

ADDR = ("192.0.2.7", 40000)
V6_ADDR = ("2001:db8::1", 443, 0, 0)
ODCID = bytes.fromhex("8394c8f03e515708")
RSCID = bytes.fromhex("f067a5502a4262b5")
NOW = 12_345.5  # any clock: the codec only compares times it was given


def _reason(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRetryToken) as info:
        call()
    return str(info.value.reason)


@pytest.mark.parametrize("addr", [ADDR, V6_ADDR], ids=["ipv4", "ipv6"])
def test_round_trip(addr) -> None:  # type: ignore[no-untyped-def]
    codec = RetryTokenCodec()
    token = codec.encode(addr, ODCID, RSCID, NOW)
    got = codec.decode(token, addr, RSCID, NOW + 9.9)
    assert got.original_destination_cid == ODCID
    assert got.retry_source_cid == RSCID
    assert (got.host, got.port) == addr[:2]
    assert got.issued_at == NOW


@settings(max_examples=200, deadline=None)
@given(
    odcid=st.binary(min_size=0, max_size=20),
    rscid=st.binary(min_size=0, max_size=20),
    host=st.text(min_size=1, max_size=45),
    port=st.integers(0, 65535),
    age=st.floats(0, 10),
)
def test_round_trip_any_contents(
    odcid: bytes, rscid: bytes, host: str, port: int, age: float
) -> None:
    codec = RetryTokenCodec(lifetime=10)
    token = codec.encode((host, port), odcid, rscid, NOW)
    got = codec.decode(token, (host, port), rscid, NOW + age)
    assert (got.original_destination_cid, got.retry_source_cid, got.host, got.port) == (
        odcid,
        rscid,
        host,
        port,
    )


def test_tokens_are_encrypted_and_unique() -> None:
    codec = RetryTokenCodec()
    first = codec.encode(ADDR, ODCID, RSCID, NOW)
    second = codec.encode(ADDR, ODCID, RSCID, NOW)
    assert first != second  # a fresh nonce each time
    for secret in (ODCID, RSCID, ADDR[0].encode()):
        assert secret not in first


def test_every_tampered_byte_is_rejected() -> None:
    codec = RetryTokenCodec()
    token = codec.encode(ADDR, ODCID, RSCID, NOW)
    for i in range(len(token)):
        tampered = bytearray(token)
        tampered[i] ^= 0x01
        assert _reason(lambda t=bytes(tampered): codec.decode(t, ADDR, RSCID, NOW)) == "forged"
    for cut in (0, 1, 12, len(token) - 1):
        assert _reason(lambda c=cut: codec.decode(token[:c], ADDR, RSCID, NOW)) == "forged"
    assert _reason(lambda: codec.decode(token + b"\0", ADDR, RSCID, NOW)) == "forged"


def test_another_endpoints_token_is_forged() -> None:
    token = RetryTokenCodec().encode(ADDR, ODCID, RSCID, NOW)
    assert _reason(lambda: RetryTokenCodec().decode(token, ADDR, RSCID, NOW)) == "forged"


def test_a_fixed_key_reads_its_own_tokens() -> None:
    key = bytes(range(16))
    token = RetryTokenCodec(key).encode(ADDR, ODCID, RSCID, NOW)
    assert RetryTokenCodec(key).decode(token, ADDR, RSCID, NOW).original_destination_cid == ODCID


def test_expiry_with_an_injected_clock() -> None:
    codec = RetryTokenCodec(lifetime=10.0)
    token = codec.encode(ADDR, ODCID, RSCID, NOW)
    codec.decode(token, ADDR, RSCID, NOW + 10.0)  # the last valid instant
    assert _reason(lambda: codec.decode(token, ADDR, RSCID, NOW + 10.001)) == "expired"
    assert _reason(lambda: codec.decode(token, ADDR, RSCID, NOW + 3600)) == "expired"
    # Issued "in the future" of the checking clock: not ours to trust either.
    assert _reason(lambda: codec.decode(token, ADDR, RSCID, NOW - 1)) == "expired"


def test_other_address_or_port_or_connection_id() -> None:
    codec = RetryTokenCodec()
    token = codec.encode(ADDR, ODCID, RSCID, NOW)
    assert _reason(lambda: codec.decode(token, ("192.0.2.8", ADDR[1]), RSCID, NOW)) == "address"
    assert _reason(lambda: codec.decode(token, (ADDR[0], ADDR[1] + 1), RSCID, NOW)) == "address"
    assert _reason(lambda: codec.decode(token, ADDR, ODCID, NOW)) == "connection_id"


def test_codec_arguments() -> None:
    with pytest.raises(ValueError):
        RetryTokenCodec(lifetime=0)
    with pytest.raises(ValueError):
        RetryTokenCodec(key=b"short")


# ---- the Retry packet -------------------------------------------------------------------------


def test_integrity_tag_matches_rfc9001_appendix_a4() -> None:
    # RFC 9001 A.4: a Retry with token "token" answering an Initial to 8394c8f03e515708.
    packet = bytes.fromhex(
        "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba"
    )
    assert retry_integrity_tag(packet[:-16], ODCID) == packet[-16:]


def test_retry_packet_layout_and_tag() -> None:
    client_scid = os.urandom(4)
    packet = encode_retry_packet(1, client_scid, RSCID, ODCID, b"tok")
    assert packet[0] & 0xF0 == 0xF0  # long header, fixed bit, type Retry
    header = parse_header(packet, 8)
    assert (header.version, header.destination_cid, header.source_cid) == (1, client_scid, RSCID)
    assert packet[7 + len(client_scid) + len(RSCID) : -16] == b"tok"
    # aioquic's independent implementation agrees on the tag.
    assert packet[-16:] == get_retry_integrity_tag(packet[:-16], ODCID, version=1)


def test_retry_packet_arguments() -> None:
    with pytest.raises(ValueError):
        encode_retry_packet(1, b"", RSCID, ODCID, b"")  # a Retry token must not be empty
    with pytest.raises(ValueError):
        encode_retry_packet(1, bytes(21), RSCID, ODCID, b"t")


# ---- the Initial's token ----------------------------------------------------------------------


def _initial(token: bytes, dcid: bytes = ODCID, scid: bytes = b"") -> bytes:
    head = bytes([0xC3]) + (1).to_bytes(4, "big") + bytes([len(dcid)]) + dcid
    return head + bytes([len(scid)]) + scid + encode_varint(len(token)) + token + b"\x40\x10"


@pytest.mark.parametrize("token", [b"", b"t", bytes(100), os.urandom(300)])
def test_read_initial_token(token: bytes) -> None:
    data = _initial(token, scid=os.urandom(3))
    assert read_initial_token(data, parse_header(data, 8)) == token


def test_truncated_token_is_malformed() -> None:
    data = _initial(bytes(100))
    header = parse_header(data, 8)
    with pytest.raises(MalformedPacket):
        read_initial_token(data[:30], header)
    with pytest.raises(MalformedPacket):  # no room for the token length at all
        read_initial_token(data[: 7 + len(ODCID)], header)
    with pytest.raises(MalformedPacket):  # a two-byte length with one byte present
        read_initial_token(data[: 7 + len(ODCID)] + b"\x41", header)


def test_only_initials_carry_tokens() -> None:
    packet = encode_retry_packet(1, b"", RSCID, ODCID, b"tok")
    with pytest.raises(ValueError):
        read_initial_token(packet, parse_header(packet, 8))


# ---- the policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "half_open", "rate_limited", "expected"),
    [
        ("off", 1000, True, False),
        ("always", 0, False, True),
        ("under_load", 3, False, False),
        ("under_load", 4, False, True),  # at the threshold
        ("under_load", 0, True, True),  # a source over its rate
    ],
)
def test_should_retry(mode, half_open, rate_limited, expected) -> None:  # type: ignore[no-untyped-def]
    assert AddressValidator(mode, 4).should_retry(half_open, rate_limited) is expected


def test_policy_arguments() -> None:
    with pytest.raises(ValueError):
        AddressValidator("sometimes", 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AddressValidator("always", -1)


def test_validator_round_trip_and_rejections() -> None:
    validator = AddressValidator("always", 0)
    client_scid = os.urandom(8)
    first = _initial(b"", dcid=ODCID, scid=client_scid)
    first_header = parse_header(first, 8)
    assert validator.validate(first, first_header, ADDR, NOW) is None  # no token yet
    retry = validator.retry_packet(first_header, ADDR, NOW)
    retry_header = parse_header(retry, 8)
    assert retry_header.destination_cid == client_scid
    token = retry[7 + len(client_scid) + len(retry_header.source_cid) : -16]
    second = _initial(token, dcid=retry_header.source_cid, scid=client_scid)
    got = validator.validate(second, parse_header(second, 8), ADDR, NOW + 0.05)
    assert got is not None and got.original_destination_cid == ODCID
    assert validator.rejected == {}
    for addr, now in ((ADDR, NOW + 60), (("192.0.2.99", 1), NOW), (ADDR, NOW + 61)):
        with pytest.raises(InvalidRetryToken):
            validator.validate(second, parse_header(second, 8), addr, now)
    assert validator.rejected == {"expired": 2, "address": 1}


def test_off_ignores_tokens() -> None:
    data = _initial(b"anything")
    assert AddressValidator("off", 0).validate(data, parse_header(data, 8), ADDR, NOW) is None


# ---- hostile input ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(token=st.binary(max_size=200), dcid=st.binary(max_size=20), age=st.floats(-1e9, 1e9))
def test_any_token_bytes_give_a_typed_error(token: bytes, dcid: bytes, age: float) -> None:
    codec = RetryTokenCodec()
    with pytest.raises(InvalidRetryToken) as info:
        codec.decode(token, ADDR, dcid, NOW + age)
    assert info.value.reason == "forged"


@settings(max_examples=300, deadline=None)
@given(
    tail=st.one_of(
        st.binary(max_size=40), st.binary(min_size=2, max_size=6).map(lambda b: b"\x03" + b)
    )
)
def test_any_bytes_after_an_initial_header_give_a_token_or_malformed(tail: bytes) -> None:
    head = bytes([0xC3]) + (1).to_bytes(4, "big") + bytes([8]) + ODCID + b"\x00"
    data = head + tail
    header = parse_header(data, 8)
    # RFC 9000 §16: the two top bits give the varint's size; the rest is the token length.
    size = 1 << (tail[0] >> 6) if tail else 0
    length = int.from_bytes(tail[:size], "big") & ((1 << (8 * size - 2)) - 1) if tail else 0
    if not tail or len(tail) < size + length:
        with pytest.raises(MalformedPacket):
            read_initial_token(data, header)
    else:
        assert read_initial_token(data, header) == tail[size : size + length]
