"""The libp2p Noise handshake of a WebTransport session, with the certhash extension.

WebTransport runs Noise XX (``Noise_XX_25519_ChaChaPoly_SHA256``) on the first client-opened bidi
stream only to authenticate the peers: no muxer or security negotiation follows, and later traffic
is not Noise-encrypted (libp2p specs ``webtransport/README.md``, ``noise/README.md``). The responder
(server) sends ``NoiseHandshakePayload.extensions.webtransport_certhashes`` in message 2; the
initiator (client) aborts unless every certhash it dialed is in that list.

``NoiseHandshake`` is sans-IO (feed it stream bytes, send what it returns); the trio drivers
(``handshake_outbound``, ``handshake_inbound``) are in handshake.py and still importable from here.

The payload protobuf is encoded and parsed here by hand (three fields, checked against
py-libp2p's generated classes in the tests): we must never emit py-libp2p's unregistered
``early_data`` field, and malformed input must give ``HandshakeError``, not a protobuf exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from libp2p.crypto.keys import PrivateKey, PublicKey
from libp2p.crypto.serialization import deserialize_public_key
from libp2p.peer.id import ID
from noise.connection import Keypair, NoiseConnection

from .errors import CerthashMismatch, HandshakeError, PeerIdMismatch

if TYPE_CHECKING:
    from .handshake import HandshakeStream, drive_handshake, handshake_inbound, handshake_outbound

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "MAX_MESSAGE_SIZE",
    "PROTOCOL_NAME",
    "SIGNED_DATA_PREFIX",
    "HandshakePayload",
    "HandshakeStream",
    "NoiseHandshake",
    "NoiseResult",
    "drive_handshake",
    "handshake_inbound",
    "handshake_outbound",
]

# The trio drivers moved to handshake.py; loaded on first use so this module stays sans-IO.
_DRIVERS = ("HandshakeStream", "drive_handshake", "handshake_inbound", "handshake_outbound")


def __getattr__(name: str) -> object:
    if name in _DRIVERS:
        from . import handshake

        return getattr(handshake, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
SIGNED_DATA_PREFIX = b"noise-libp2p-static-key:"
MAX_MESSAGE_SIZE = 65535
"""Noise's message limit; also the most a 2-byte big-endian length prefix can say."""
DEFAULT_HANDSHAKE_TIMEOUT = 10.0

_DH_LEN = 32
_TAG_LEN = 16
# Smallest valid XX messages: e | e, ee, s(enc), es, payload tag | s(enc), se, payload tag.
_MIN_MESSAGE = (_DH_LEN, _DH_LEN + _DH_LEN + _TAG_LEN + _TAG_LEN, _DH_LEN + _TAG_LEN + _TAG_LEN)

# Protobuf field numbers (libp2p specs noise/README.md; registered extension code points only).
_FIELD_IDENTITY_KEY = 1
_FIELD_IDENTITY_SIG = 2
_FIELD_EXTENSIONS = 4
_FIELD_WEBTRANSPORT_CERTHASHES = 1
_WIRE_VARINT, _WIRE_FIXED64, _WIRE_LEN, _WIRE_FIXED32 = 0, 1, 2, 5


# --- payload protobuf --------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | _WIRE_LEN) + _varint(len(data)) + data


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise HandshakeError("malformed handshake payload: truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise HandshakeError("malformed handshake payload: varint longer than 10 bytes")


def _fields(data: bytes) -> list[tuple[int, bytes | None]]:
    """Split a protobuf message into (field number, bytes) for length-delimited fields.

    Other wire types are skipped (``None``) so that unknown fields stay compatible; groups and
    truncated values raise ``HandshakeError``.
    """
    fields: list[tuple[int, bytes | None]] = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise HandshakeError("malformed handshake payload: field number 0")
        if wire == _WIRE_VARINT:
            _, pos = _read_varint(data, pos)
            fields.append((field, None))
        elif wire in (_WIRE_FIXED64, _WIRE_FIXED32):
            pos += 8 if wire == _WIRE_FIXED64 else 4
            if pos > len(data):
                raise HandshakeError("malformed handshake payload: truncated fixed field")
            fields.append((field, None))
        elif wire == _WIRE_LEN:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise HandshakeError("malformed handshake payload: truncated field")
            fields.append((field, data[pos : pos + length]))
            pos += length
        else:
            raise HandshakeError(f"malformed handshake payload: wire type {wire}")
    return fields


@dataclass(frozen=True, slots=True)
class HandshakePayload:
    """``NoiseHandshakePayload``: identity key, signature and the WebTransport certhashes."""

    identity_key: bytes
    """The libp2p public key, protobuf-serialised (``PublicKey.serialize()``)."""
    identity_sig: bytes
    webtransport_certhashes: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        """Protobuf bytes; ``extensions`` only when there are certhashes, never ``early_data``."""
        out = _len_field(_FIELD_IDENTITY_KEY, self.identity_key)
        out += _len_field(_FIELD_IDENTITY_SIG, self.identity_sig)
        if self.webtransport_certhashes:
            ext = b"".join(
                _len_field(_FIELD_WEBTRANSPORT_CERTHASHES, h) for h in self.webtransport_certhashes
            )
            out += _len_field(_FIELD_EXTENSIONS, ext)
        return out

    @classmethod
    def decode(cls, data: bytes) -> HandshakePayload:
        """Parse protobuf bytes; ``HandshakeError`` when malformed or missing key or signature."""
        key = sig = b""
        hashes: list[bytes] = []
        for field, value in _fields(bytes(data)):
            if value is None:
                if field in (_FIELD_IDENTITY_KEY, _FIELD_IDENTITY_SIG, _FIELD_EXTENSIONS):
                    raise HandshakeError(f"malformed handshake payload: field {field} wire type")
                continue
            if field == _FIELD_IDENTITY_KEY:
                key = value
            elif field == _FIELD_IDENTITY_SIG:
                sig = value
            elif field == _FIELD_EXTENSIONS:
                # Repeated sub-messages merge, as protobuf does.
                for ext_field, ext_value in _fields(value):
                    if ext_field == _FIELD_WEBTRANSPORT_CERTHASHES:
                        if ext_value is None:
                            raise HandshakeError("malformed handshake payload: certhash wire type")
                        hashes.append(ext_value)
        if not key or not sig:
            raise HandshakeError("handshake payload lacks the identity key or its signature")
        return cls(key, sig, tuple(hashes))


# --- sans-IO handshake -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoiseResult:
    """Who is on the other side, as authenticated by the handshake."""

    remote_peer_id: ID
    remote_public_key: PublicKey
    remote_certhashes: tuple[bytes, ...]
    """The certhashes the remote listed (the server's, seen by the client; else empty)."""


class NoiseHandshake:
    """Sans-IO Noise XX with the libp2p payload: feed ``receive_data``, send ``data_to_send``.

    Build one with ``NoiseHandshake.initiator(...)`` or ``NoiseHandshake.responder(...)``. Any
    failure raises a ``HandshakeError`` (or ``CerthashMismatch`` / ``PeerIdMismatch``) and leaves
    the object failed for good.
    """

    def __init__(
        self,
        private_key: PrivateKey,
        *,
        is_initiator: bool,
        certhashes: Iterable[bytes] = (),
        dialed_certhashes: Iterable[bytes] = (),
        expected_peer: ID | None = None,
    ) -> None:
        self.is_initiator = is_initiator
        self._private_key = private_key
        self._certhashes = tuple(bytes(h) for h in certhashes)
        self._dialed = tuple(bytes(h) for h in dialed_certhashes)
        self._expected_peer = expected_peer
        self._inbuf = bytearray()
        self._outbuf = bytearray()
        self._received = 0  # messages read so far
        self._result: NoiseResult | None = None
        self._failed = False

        # A fresh static DH key per handshake: it is bound to the identity by the signature.
        static = x25519.X25519PrivateKey.generate()
        self._static_public = static.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._noise = NoiseConnection.from_name(PROTOCOL_NAME)
        self._noise.set_keypair_from_private_bytes(
            Keypair.STATIC,
            static.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            ),
        )
        if is_initiator:
            self._noise.set_as_initiator()
        else:
            self._noise.set_as_responder()
        self._noise.start_handshake()
        # Keep our own reference: the library drops it once the handshake finishes.
        self._state = self._noise.noise_protocol.handshake_state
        if is_initiator:
            self._send(b"")  # message 1: e, with an empty payload

    @classmethod
    def initiator(
        cls,
        private_key: PrivateKey,
        *,
        dialed_certhashes: Iterable[bytes] = (),
        expected_peer: ID | None = None,
    ) -> NoiseHandshake:
        """The client side: checks the server's certhash list and, if given, its peer id."""
        return cls(
            private_key,
            is_initiator=True,
            dialed_certhashes=dialed_certhashes,
            expected_peer=expected_peer,
        )

    @classmethod
    def responder(
        cls, private_key: PrivateKey, *, certhashes: Iterable[bytes] = ()
    ) -> NoiseHandshake:
        """The server side: lists ``certhashes`` (multihash bytes) in message 2."""
        return cls(private_key, is_initiator=False, certhashes=certhashes)

    # -- public state --------------------------------------------------------------------------

    @property
    def is_complete(self) -> bool:
        """True once the handshake succeeded (after ``data_to_send`` holds the last message)."""
        return self._result is not None

    @property
    def result(self) -> NoiseResult:
        """The authenticated remote; ``HandshakeError`` before completion."""
        if self._result is None:
            raise HandshakeError("the Noise handshake has not completed")
        return self._result

    @property
    def bytes_needed(self) -> int:
        """How many more bytes the next message needs (0 when complete): read at most this."""
        if self._result is not None or self._failed:
            return 0
        if len(self._inbuf) < 2:
            return 2 - len(self._inbuf)
        return 2 + int.from_bytes(self._inbuf[:2], "big") - len(self._inbuf)

    def data_to_send(self) -> bytes:
        """Framed bytes to write to the stream now (may be empty)."""
        out = bytes(self._outbuf)
        self._outbuf.clear()
        return out

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the stream; processes every complete message."""
        if self._failed:
            raise HandshakeError("the Noise handshake already failed")
        if self._result is not None:
            if data:
                self._failed = True
                raise HandshakeError("unexpected data after the Noise handshake")
            return
        self._inbuf += data
        try:
            while self._result is None and len(self._inbuf) >= 2:
                length = int.from_bytes(self._inbuf[:2], "big")
                if len(self._inbuf) < 2 + length:
                    return
                message = bytes(self._inbuf[2 : 2 + length])
                del self._inbuf[: 2 + length]
                self._on_message(message)
            if self._result is not None and self._inbuf:
                raise HandshakeError("unexpected data after the Noise handshake")
        except BaseException:
            self._failed = True
            raise

    # -- internals -----------------------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        try:
            message = bytes(self._noise.write_message(payload))
        except Exception as exc:  # noiseprotocol raises assorted exception types
            raise HandshakeError(f"cannot write Noise message: {exc}") from exc
        if len(message) > MAX_MESSAGE_SIZE:
            raise HandshakeError(
                f"Noise message of {len(message)} bytes exceeds {MAX_MESSAGE_SIZE}"
            )
        self._outbuf += len(message).to_bytes(2, "big") + message

    def _read(self, message: bytes) -> bytes:
        index = self._received
        self._received += 1
        step = 2 * index + (1 if self.is_initiator else 0)  # 0: msg1, 1: msg2, 2: msg3
        if len(message) < _MIN_MESSAGE[step]:
            raise HandshakeError(f"Noise message {step + 1} truncated ({len(message)} bytes)")
        try:
            return bytes(self._noise.read_message(message))
        except Exception as exc:  # bad tag, bad point, ... from noiseprotocol / cryptography
            raise HandshakeError(f"invalid Noise message {step + 1}: {exc}") from exc

    def _payload(self) -> bytes:
        signature = self._private_key.sign(SIGNED_DATA_PREFIX + self._static_public)
        return HandshakePayload(
            self._private_key.get_public_key().serialize(),
            signature,
            self._certhashes,
        ).encode()

    def _authenticate(self, payload_bytes: bytes) -> NoiseResult:
        payload = HandshakePayload.decode(payload_bytes)
        try:
            public_key = deserialize_public_key(payload.identity_key)
        except Exception as exc:  # protobuf, unknown key type, bad key bytes
            raise HandshakeError(f"unusable identity key in handshake payload: {exc}") from exc
        remote_static = self._state.rs.public_bytes
        try:
            valid = public_key.verify(SIGNED_DATA_PREFIX + remote_static, payload.identity_sig)
        except Exception:
            valid = False
        if not valid:
            raise HandshakeError("handshake payload signature does not match the Noise static key")
        return NoiseResult(ID.from_pubkey(public_key), public_key, payload.webtransport_certhashes)

    def _on_message(self, message: bytes) -> None:
        if self.is_initiator:
            # Message 2: authenticate the server, check peer id and certhashes, answer message 3.
            result = self._authenticate(self._read(message))
            if self._expected_peer is not None and result.remote_peer_id != self._expected_peer:
                raise PeerIdMismatch(
                    f"dialed {self._expected_peer} but the handshake authenticated "
                    f"{result.remote_peer_id}"
                )
            offered = set(result.remote_certhashes)
            missing = [h for h in self._dialed if h not in offered]
            if missing:
                raise CerthashMismatch(
                    f"{len(missing)} of {len(self._dialed)} dialed certhashes are not in the "
                    f"server's Noise list of {len(offered)}"
                )
            self._send(self._payload())
            self._result = result
        elif self._received == 0:
            self._read(message)  # message 1: the initiator's ephemeral key; payload ignored
            self._send(self._payload())
        else:
            self._result = self._authenticate(self._read(message))
