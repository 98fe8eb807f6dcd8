"""QUIC address validation with Retry packets (RFC 9000 §8.1.2, §17.2.5; RFC 9001 §5.8).

A server that is not sure a new client really owns its source address answers the client's
first Initial with a small Retry packet instead of creating connection state. The Retry carries
a token and a new connection id; a client that really receives at that address sends its
Initial again, to the new id and with the token. The token is ours alone to read: it binds the
client's address, the original destination connection id (which the server must echo in its
transport parameters, RFC 9000 §7.3), the id the Retry chose and the time it was issued, all
authenticated and encrypted with AES-128-GCM under a random key that lives only in this process.
No state is kept between the Retry and the second Initial.

``AddressValidator`` is the policy ``admission.py`` consults per new-connection Initial:

* ``"off"``: never Retry; tokens are ignored.
* ``"always"``: every Initial without a token gets a Retry.
* ``"under_load"``: Retry only while at least ``threshold`` handshakes are in progress, or
  when the source has used up its Initial rate (admission's token bucket), instead of
  dropping it. A client whose address is validated is not charged to that rate again.

An Initial whose token does not validate is dropped (the client will not accept a second Retry,
RFC 9000 §17.2.5.2); the endpoint counts and logs it once.

Sans-IO: no sockets, no clock (``now`` is always passed in, in seconds of the caller's clock).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._errors import InvalidRetryToken, MalformedPacket, NeedMoreData
from .._udp import Address
from .._wire import decode_varint
from .quic_header import LongPacketType, PacketHeader

__all__ = [
    "RETRY_MODES",
    "RETRY_TOKEN_LIFETIME",
    "AddressValidator",
    "RetryMode",
    "RetryToken",
    "RetryTokenCodec",
    "encode_retry_packet",
    "read_initial_token",
    "retry_integrity_tag",
]

RetryMode = Literal["off", "always", "under_load"]
RETRY_MODES: tuple[RetryMode, ...] = ("off", "always", "under_load")
RETRY_TOKEN_LIFETIME = 10.0  # seconds; a real client answers a Retry within one round trip

RETRY_CID_LENGTH = 8  # the id a Retry hands out becomes a routing key (the endpoint's length)

# RFC 9001 §5.8: the fixed key and nonce of the QUIC version 1 Retry integrity tag.
_INTEGRITY_KEY = bytes.fromhex("be0c690b9f66575a1d766b54e368c84e")
_INTEGRITY_NONCE = bytes.fromhex("461599d35d632bf2239825bb")
_INTEGRITY_AEAD = AESGCM(_INTEGRITY_KEY)
INTEGRITY_TAG_SIZE = 16

_TOKEN_FORMAT = 1  # first plaintext byte: lets a later format be told apart
_TOKEN_AAD = b"py-libp2p-webtransport retry token"
_NONCE_SIZE = 12
_TIME = struct.Struct(">d")


# ---- the Retry packet -------------------------------------------------------------------------


def retry_integrity_tag(packet_without_tag: bytes, original_destination_cid: bytes) -> bytes:
    """The 16-byte tag that proves a Retry came from who saw the client's Initial (RFC 9001 §5.8).

    AES-128-GCM with a published key over nothing, authenticating the Retry pseudo-packet:
    the original destination id (length-prefixed) followed by the Retry without its tag.
    """
    pseudo = bytes([len(original_destination_cid)]) + original_destination_cid
    return _INTEGRITY_AEAD.encrypt(_INTEGRITY_NONCE, b"", pseudo + packet_without_tag)


def encode_retry_packet(
    version: int,
    destination_cid: bytes,
    source_cid: bytes,
    original_destination_cid: bytes,
    token: bytes,
) -> bytes:
    """A Retry packet (RFC 9000 §17.2.5) to the client's ``destination_cid`` (its source id).

    ``source_cid`` is the id the client must address its next Initial to; ``token`` goes back
    in that Initial. The four unused bits of the first byte are random, as §17.2.5 asks.
    """
    if not token:
        raise ValueError("a Retry must carry a non-empty token (RFC 9000 §17.2.5)")
    for cid in (destination_cid, source_cid, original_destination_cid):
        if len(cid) > 20:
            raise ValueError(f"connection id of {len(cid)} bytes (at most 20)")
    first = 0xC0 | (int(LongPacketType.RETRY) << 4) | (os.urandom(1)[0] & 0x0F)
    packet = (
        bytes([first])
        + version.to_bytes(4, "big")
        + bytes([len(destination_cid)])
        + destination_cid
        + bytes([len(source_cid)])
        + source_cid
        + token
    )
    return packet + retry_integrity_tag(packet, original_destination_cid)


def read_initial_token(data: bytes, header: PacketHeader) -> bytes:
    """The token of the Initial packet at the start of ``data`` (``header`` parsed from it).

    Raises ``MalformedPacket`` when the token length runs past the datagram.
    """
    if header.packet_type is not LongPacketType.INITIAL:
        raise ValueError("only Initial packets carry a token")
    offset = 7 + len(header.destination_cid) + len(header.source_cid)
    try:
        length, offset = decode_varint(data, offset)
    except NeedMoreData as exc:
        raise MalformedPacket(f"Initial truncated in its token length: {exc}") from exc
    end = offset + length
    if end > len(data):
        raise MalformedPacket(f"Initial token of {length} bytes runs past the datagram")
    return bytes(data[offset:end])


# ---- the token --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryToken:
    """What a valid token told us about the connection it validates."""

    original_destination_cid: bytes
    retry_source_cid: bytes
    host: str
    port: int
    issued_at: float


def _address_bytes(address: Address) -> bytes:
    return address[1].to_bytes(2, "big") + address[0].encode()


class RetryTokenCodec:
    """Makes and checks Retry tokens: AES-128-GCM under a key only this object knows.

    Plaintext: format (1) | issued_at (float64) | len + original DCID | len + retry SCID |
    port (2) | host. The ciphertext is prefixed by its random 96-bit nonce.
    """

    def __init__(self, key: bytes | None = None, lifetime: float = RETRY_TOKEN_LIFETIME) -> None:
        if not lifetime > 0:
            raise ValueError(f"token lifetime must be > 0, got {lifetime}")
        self.lifetime = lifetime
        self._aead = AESGCM(key if key is not None else AESGCM.generate_key(bit_length=128))

    def encode(
        self,
        address: Address,
        original_destination_cid: bytes,
        retry_source_cid: bytes,
        now: float,
    ) -> bytes:
        """A token for a client at ``address`` that must come back to ``retry_source_cid``."""
        plain = (
            bytes([_TOKEN_FORMAT])
            + _TIME.pack(now)
            + bytes([len(original_destination_cid)])
            + original_destination_cid
            + bytes([len(retry_source_cid)])
            + retry_source_cid
            + _address_bytes(address)
        )
        nonce = os.urandom(_NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plain, _TOKEN_AAD)

    def decode(
        self, token: bytes, address: Address, destination_cid: bytes, now: float
    ) -> RetryToken:
        """The token's contents if it is ours, fresh, from ``address`` and sent to the id the
        Retry gave; ``InvalidRetryToken`` (with its ``reason``) otherwise."""
        if len(token) <= _NONCE_SIZE:
            raise InvalidRetryToken("forged", f"token of {len(token)} bytes is too short")
        try:
            plain = self._aead.decrypt(token[:_NONCE_SIZE], token[_NONCE_SIZE:], _TOKEN_AAD)
        except InvalidTag:
            raise InvalidRetryToken("forged", "token not issued by this endpoint") from None
        # Authenticated, so well formed unless our own format changed: check anyway, cheaply.
        try:
            if plain[0] != _TOKEN_FORMAT:
                raise IndexError
            (issued_at,) = _TIME.unpack_from(plain, 1)
            at = 1 + _TIME.size
            odcid = plain[at + 1 : at + 1 + plain[at]]
            at += 1 + len(odcid)
            rscid = plain[at + 1 : at + 1 + plain[at]]
            at += 1 + len(rscid)
            port = int.from_bytes(plain[at : at + 2], "big")
            host = plain[at + 2 :].decode()
        except (IndexError, struct.error, UnicodeDecodeError):
            raise InvalidRetryToken("forged", "token of an unknown format") from None
        age = now - issued_at
        if not 0 <= age <= self.lifetime:
            raise InvalidRetryToken("expired", f"token issued {age:.1f} s ago")
        if (host, port) != (address[0], address[1]):
            raise InvalidRetryToken("address", f"token issued to {host} port {port}")
        if rscid != destination_cid:
            raise InvalidRetryToken("connection_id", "Initial not sent to the Retry's id")
        return RetryToken(odcid, rscid, host, port, issued_at)


# ---- the policy -------------------------------------------------------------------------------


class AddressValidator:
    """Decides, per new-connection Initial, between accepting it and answering with a Retry.

    ``threshold``: in ``"under_load"`` mode, Retry once this many handshakes are in progress.
    ``rejected`` counts invalid tokens by ``InvalidRetryToken.reason``.
    """

    def __init__(
        self,
        mode: RetryMode,
        threshold: int,
        *,
        lifetime: float = RETRY_TOKEN_LIFETIME,
        key: bytes | None = None,
    ) -> None:
        if mode not in RETRY_MODES:
            raise ValueError(f"retry must be one of {', '.join(RETRY_MODES)}; got {mode!r}")
        if threshold < 0:
            raise ValueError(f"retry threshold must be >= 0, got {threshold}")
        self.mode: RetryMode = mode
        self.threshold = threshold
        self.codec = RetryTokenCodec(key, lifetime)
        self.rejected: dict[str, int] = {}

    def validate(
        self, data: bytes, header: PacketHeader, address: Address, now: float
    ) -> RetryToken | None:
        """The validated token of this Initial, None if it has none (or Retry is off).

        Raises ``InvalidRetryToken`` (counted in ``rejected``) for a token that is not valid
        and ``MalformedPacket`` for an impossible token length.
        """
        if self.mode == "off":
            return None
        token = read_initial_token(data, header)
        if not token:
            return None
        try:
            return self.codec.decode(token, address, header.destination_cid, now)
        except InvalidRetryToken as exc:
            self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
            raise

    def should_retry(self, half_open: int, rate_limited: bool) -> bool:
        """Whether an Initial without a valid token gets a Retry rather than a connection."""
        if self.mode == "always":
            return True
        if self.mode == "under_load":
            return rate_limited or half_open >= self.threshold
        return False

    def retry_packet(self, header: PacketHeader, address: Address, now: float) -> bytes:
        """The Retry answering the Initial ``header`` from ``address``."""
        assert header.version is not None
        new_cid = os.urandom(RETRY_CID_LENGTH)
        token = self.codec.encode(address, header.destination_cid, new_cid, now)
        return encode_retry_packet(
            header.version, header.source_cid, new_cid, header.destination_cid, token
        )
