"""Routing-header parser: real packets from a QUIC client, hand-made edge cases, junk."""

from __future__ import annotations

import os

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from hypothesis import given
from hypothesis import strategies as st

from py_libp2p_webtransport.endpoint.quic_header import (
    LongPacketType,
    is_valid_initial,
    parse_header,
)
from py_libp2p_webtransport.errors import MalformedPacket


def _client_initial(cid_length: int = 8) -> tuple[bytes, QuicConnection]:
    config = QuicConfiguration(
        is_client=True, alpn_protocols=["h3"], connection_id_length=cid_length
    )
    client = QuicConnection(configuration=config)
    if cid_length == 0:
        # The Chromium shape: empty source id, 8-byte first destination id (RFC 9000 §7.2).
        client._peer_cid.cid = os.urandom(8)
        client._original_destination_connection_id = client._peer_cid.cid
    client.connect(("127.0.0.1", 4433), now=0.0)
    (datagram, _addr), *_ = client.datagrams_to_send(now=0.0)
    return datagram, client


@pytest.mark.parametrize("cid_length", [8, 0, 20])
def test_real_client_initial(cid_length: int) -> None:
    datagram, client = _client_initial(cid_length)
    header = parse_header(datagram, 8)
    assert header.is_long and header.version == 1
    assert header.packet_type is LongPacketType.INITIAL
    assert header.destination_cid == client.original_destination_connection_id
    assert header.source_cid == client.host_cid
    assert len(header.source_cid) == cid_length
    assert is_valid_initial(header, len(datagram))
    assert not is_valid_initial(header, 1199)


def test_short_header_uses_our_cid_length() -> None:
    cid = os.urandom(8)
    datagram = bytes([0x40 | 0x01]) + cid + os.urandom(30)
    header = parse_header(datagram, 8)
    assert not header.is_long and header.version is None and header.packet_type is None
    assert header.destination_cid == cid and header.source_cid == b""
    assert not is_valid_initial(header, 1500)
    assert parse_header(datagram, 4).destination_cid == cid[:4]


def _long(first: int, version: int, dcid: bytes, scid: bytes, rest: bytes = b"") -> bytes:
    return (
        bytes([first])
        + version.to_bytes(4, "big")
        + bytes([len(dcid)])
        + dcid
        + bytes([len(scid)])
        + scid
        + rest
    )


@pytest.mark.parametrize(
    ("first", "ptype"),
    [
        (0xC0, LongPacketType.INITIAL),
        (0xD0, LongPacketType.ZERO_RTT),
        (0xE0, LongPacketType.HANDSHAKE),
        (0xF0, LongPacketType.RETRY),
    ],
)
def test_long_header_types(first: int, ptype: LongPacketType) -> None:
    datagram = _long(first, 1, b"D" * 8, b"S" * 5, b"\x00" * 1200)
    header = parse_header(datagram, 8)
    assert header.packet_type is ptype
    assert header.destination_cid == b"D" * 8 and header.source_cid == b"S" * 5
    assert is_valid_initial(header, len(datagram)) is (ptype is LongPacketType.INITIAL)


def test_other_versions_are_parsed_but_never_start_a_connection() -> None:
    datagram = _long(0xC0, 0xFF00001D, b"D" * 8, b"S" * 8, b"\x00" * 1200)
    header = parse_header(datagram, 8)
    assert header.version == 0xFF00001D
    assert not is_valid_initial(header, len(datagram))
    vn = parse_header(_long(0x80, 0, b"D" * 8, b"S" * 8, b"\x00\x00\x00\x01"), 8)
    assert vn.version == 0 and vn.packet_type is None


def test_initial_with_short_dcid_never_starts_a_connection() -> None:
    datagram = _long(0xC0, 1, b"D" * 7, b"", b"\x00" * 1200)
    assert not is_valid_initial(parse_header(datagram, 8), len(datagram))


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x40\x01\x02",  # short header shorter than our CID
        b"\x00" + b"\x01" * 20,  # short header without the fixed bit
        b"\xc0\x00\x00\x00",  # long header cut in the version
        b"\xc0\x00\x00\x00\x01\x08abc",  # cut in the DCID
        b"\xc0\x00\x00\x00\x01\x15" + b"x" * 40,  # v1 DCID of 21 bytes
        b"\xc0\x00\x00\x00\x01\x08" + b"x" * 8,  # no SCID length
        b"\xc0\x00\x00\x00\x01\x08" + b"x" * 8 + b"\x15" + b"y" * 30,  # v1 SCID of 21
        b"\xc0\x00\x00\x00\x01\x08" + b"x" * 8 + b"\x08yy",  # cut in the SCID
    ],
)
def test_malformed_headers_raise_typed_error(datagram: bytes) -> None:
    with pytest.raises(MalformedPacket):
        parse_header(datagram, 8)


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=20))
def test_junk_never_raises_anything_else(data: bytes, cid_length: int) -> None:
    try:
        header = parse_header(data, cid_length)
    except MalformedPacket:
        return
    assert len(header.destination_cid) <= max(cid_length, 255)
    assert header.destination_cid in data
