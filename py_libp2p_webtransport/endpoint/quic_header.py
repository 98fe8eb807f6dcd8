"""Just enough of the QUIC packet header to route a datagram to its connection (RFC 9000 §17).

The endpoint reads the destination connection id of every datagram before any engine sees it;
for long headers it also needs the version, the packet type and the source id (a new connection
starts only from a valid-looking version 1 Initial). Nothing here decrypts anything, and in a
coalesced datagram only the first packet's header matters: all packets of one datagram carry
the same destination id (RFC 9000 §12.2).

Sans-IO and allocation-light: one call per datagram on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .._errors import MalformedPacket

__all__ = [
    "MAX_CID_LENGTH",
    "MIN_INITIAL_DATAGRAM_SIZE",
    "QUIC_VERSION_1",
    "LongPacketType",
    "PacketHeader",
    "is_valid_initial",
    "parse_header",
]

QUIC_VERSION_1 = 0x00000001
MAX_CID_LENGTH = 20  # RFC 9000 §17.2: version 1 connection ids are at most 20 bytes
MIN_INITIAL_DATAGRAM_SIZE = 1200  # RFC 9000 §14.1: a client's Initial datagram is padded to this

_LONG_HEADER_BIT = 0x80
_FIXED_BIT = 0x40


class LongPacketType(IntEnum):
    """Long-header packet types of QUIC version 1 (bits 5-4 of the first byte)."""

    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    RETRY = 3


@dataclass(frozen=True, slots=True)
class PacketHeader:
    """The routing-relevant part of a packet header.

    ``version`` and ``packet_type`` are None for short headers; ``source_cid`` is empty for them.
    ``version`` 0 is a Version Negotiation packet.
    """

    is_long: bool
    version: int | None
    packet_type: LongPacketType | None
    destination_cid: bytes
    source_cid: bytes


def parse_header(data: bytes, short_cid_length: int) -> PacketHeader:
    """Parse the first packet header of a datagram.

    ``short_cid_length`` is the length of our own connection ids: short headers do not encode it.
    Raises ``MalformedPacket`` when the bytes cannot be a QUIC packet header.
    """
    n = len(data)
    if n == 0:
        raise MalformedPacket("empty datagram")
    first = data[0]
    if not first & _LONG_HEADER_BIT:
        if not first & _FIXED_BIT:
            raise MalformedPacket("short header without the fixed bit")
        end = 1 + short_cid_length
        if n < end:
            raise MalformedPacket(f"short header of {n} bytes, need {end} for the connection id")
        return PacketHeader(False, None, None, data[1:end], b"")
    if n < 7:
        raise MalformedPacket(f"long header of {n} bytes")
    version = int.from_bytes(data[1:5], "big")
    dcid_len = data[5]
    if version == QUIC_VERSION_1 and dcid_len > MAX_CID_LENGTH:
        raise MalformedPacket(f"destination connection id of {dcid_len} bytes")
    scid_at = 6 + dcid_len
    if n < scid_at + 1:
        raise MalformedPacket("long header truncated in the destination connection id")
    scid_len = data[scid_at]
    if version == QUIC_VERSION_1 and scid_len > MAX_CID_LENGTH:
        raise MalformedPacket(f"source connection id of {scid_len} bytes")
    end = scid_at + 1 + scid_len
    if n < end:
        raise MalformedPacket("long header truncated in the source connection id")
    # Version Negotiation (version 0) has no type bits and no fixed-bit rule.
    packet_type = LongPacketType((first >> 4) & 0x03) if version else None
    return PacketHeader(True, version, packet_type, data[6:scid_at], data[scid_at + 1 : end])


def is_valid_initial(header: PacketHeader, datagram_size: int) -> bool:
    """Whether a packet may create connection state: a version 1 Initial in a full-size datagram.

    A client's first datagram is padded to 1200 bytes (RFC 9000 §14.1) and its destination id is
    at least 8 bytes (§7.2); anything else for an unknown id is dropped without state.
    """
    return (
        header.is_long
        and header.version == QUIC_VERSION_1
        and header.packet_type is LongPacketType.INITIAL
        and datagram_size >= MIN_INITIAL_DATAGRAM_SIZE
        and len(header.destination_cid) >= 8
    )
