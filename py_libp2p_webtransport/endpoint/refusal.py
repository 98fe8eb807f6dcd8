"""A stateless refusal: CONNECTION_CLOSE(CONNECTION_REFUSED) in an Initial packet, without TLS.

When admission's owner refuses a new client (its connection gater denies the address, its
resource manager has no room), dropping the Initial leaves the client waiting for its own
timeout. Instead the endpoint answers with what a server that refuses at once sends (RFC 9000
§10.2.3, §20.1): an Initial packet carrying CONNECTION_CLOSE with CONNECTION_REFUSED. Initial
packets are protected with keys anyone can derive from the client's first destination connection
id (RFC 9001 §5.2), so no handshake state, certificate or key exchange is needed: a few AES
operations, no connection kept. The client (a browser, a py peer) fails at once with "connection
refused". Answers are rate limited (``REFUSALS_PER_SECOND``) and always smaller than the Initial
that triggered them (no amplification). Sans-IO.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._wire import encode_varint
from .admission import InitialRateLimiter
from .quic_header import QUIC_VERSION_1, PacketHeader

__all__ = ["CONNECTION_REFUSED", "REFUSALS_PER_SECOND", "Refuser", "initial_keys", "refusal_packet"]

CONNECTION_REFUSED = 0x2
# Each costs ~50 µs (HKDF + AES-GCM): at most 5 % of a core. A burst of thousands of browsers
# must hear "refused" rather than time out; a flood of spoofed Initials gets no more than this.
REFUSALS_PER_SECOND = 1000.0
_INITIAL_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_PN_LENGTH = 2
_GLOBAL = "all"


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context (RFC 8446 §7.1), SHA-256."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def initial_keys(client_dcid: bytes, *, server: bool) -> tuple[bytes, bytes, bytes]:
    """(key, iv, hp) of the Initial packets one side sends (RFC 9001 §5.2, QUIC version 1)."""
    initial_secret = hmac.new(_INITIAL_SALT_V1, client_dcid, hashlib.sha256).digest()
    secret = _expand_label(initial_secret, b"server in" if server else b"client in", 32)
    return (
        _expand_label(secret, b"quic key", 16),
        _expand_label(secret, b"quic iv", 12),
        _expand_label(secret, b"quic hp", 16),
    )


def refusal_packet(header: PacketHeader, reason: str = "") -> bytes:
    """A server Initial answering the client Initial ``header`` with CONNECTION_CLOSE
    (CONNECTION_REFUSED, ``reason``), protected with the Initial keys of its destination id."""
    phrase = reason.encode()[:64]
    frame = b"\x1c" + encode_varint(CONNECTION_REFUSED) + b"\x00"
    frame += encode_varint(len(phrase)) + phrase
    frame += bytes(max(0, 20 - len(frame)))  # PADDING: room for the header protection sample
    key, iv, hp = initial_keys(header.destination_cid, server=True)
    packet_number = 0
    length = _PN_LENGTH + len(frame) + 16  # packet number, payload, AEAD tag
    server_cid = os.urandom(8)
    head = bytes([0xC0 | (_PN_LENGTH - 1)]) + QUIC_VERSION_1.to_bytes(4, "big")
    head += bytes([len(header.source_cid)]) + header.source_cid
    head += bytes([len(server_cid)]) + server_cid
    head += b"\x00"  # no token
    head += encode_varint_2(length)
    pn_offset = len(head)
    head += packet_number.to_bytes(_PN_LENGTH, "big")
    nonce = bytes(a ^ b for a, b in zip(iv, packet_number.to_bytes(12, "big"), strict=True))
    sealed = AESGCM(key).encrypt(nonce, frame, head)
    packet = bytearray(head + sealed)
    sample = bytes(packet[pn_offset + 4 : pn_offset + 20])
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = encryptor.update(sample) + encryptor.finalize()
    packet[0] ^= mask[0] & 0x0F
    for i in range(_PN_LENGTH):
        packet[pn_offset + i] ^= mask[1 + i]
    return bytes(packet)


def encode_varint_2(value: int) -> bytes:
    """A QUIC varint in two bytes (the Length field before the packet number)."""
    if not 0 <= value < 0x4000:
        raise ValueError(f"{value} does not fit a 2-byte varint")
    return (0x4000 | value).to_bytes(2, "big")


class Refuser:
    """Rate-limited refusals of one endpoint."""

    def __init__(self, rate: float = REFUSALS_PER_SECOND) -> None:
        self._limiter = InitialRateLimiter(rate)

    def respond(
        self, header: PacketHeader, trigger_size: int, now: float, reason: str
    ) -> bytes | None:
        """The refusal for a client Initial of ``trigger_size`` bytes, or None (rate limit)."""
        if header.version != QUIC_VERSION_1 or not self._limiter.allow(_GLOBAL, now):
            return None
        packet = refusal_packet(header, reason)
        return packet if len(packet) < trigger_size else None
