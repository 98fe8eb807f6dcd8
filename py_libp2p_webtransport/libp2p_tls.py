"""The libp2p TLS certificate (libp2p/specs ``tls/tls.md``), sans-IO: make one, check one.

A libp2p QUIC peer authenticates with a self-signed certificate whose key is unrelated to its
host key; the host key proves ownership of the certificate's key through the libp2p Public Key
Extension (OID 1.3.6.1.4.1.53594.1.1)::

    SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }

``publicKey`` is the host public key in libp2p's protobuf encoding; ``signature`` is the host
key's signature over ``"libp2p-tls-handshake:" || SubjectPublicKeyInfo(certificate key)``.
The peer id is derived from that host key. No socket, no clock: ``now`` is a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from libp2p.crypto.keys import PrivateKey, PublicKey
from libp2p.crypto.serialization import deserialize_public_key
from libp2p.peer.id import ID

from .errors import InvalidPeerCertificate, PeerIdMismatch

__all__ = [
    "ALPN",
    "EXTENSION_OID",
    "SIGNATURE_PREFIX",
    "Libp2pCertificate",
    "VerifiedPeer",
    "decode_signed_key",
    "encode_signed_key",
    "make_certificate",
    "verify_certificate",
]

ALPN = "libp2p"
"""The ALPN token of libp2p over QUIC (libp2p/specs ``quic``)."""
EXTENSION_OID = x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.1")
SIGNATURE_PREFIX = b"libp2p-tls-handshake:"
# go-libp2p's choices: valid from an hour ago (clock skew) for a century; one key per transport.
_BACKDATE = timedelta(hours=1)
_VALIDITY = timedelta(days=365 * 100)


@dataclass(frozen=True, slots=True)
class Libp2pCertificate:
    """Our certificate for the ``libp2p`` ALPN: DER, its PKCS#8 key, the ``cryptography`` key."""

    der: bytes
    key_der: bytes
    private_key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class VerifiedPeer:
    """What a valid peer certificate proves: the host key and its peer id."""

    peer_id: ID
    public_key: PublicKey


# ---- SignedKey: two OCTET STRINGs in a SEQUENCE, strict DER --------------------------------


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(value)) + value


def _read_tlv(data: bytes, offset: int, tag: int, what: str) -> tuple[bytes, int]:
    """The value of the DER element of ``tag`` at ``offset`` and the offset after it."""
    if offset + 2 > len(data) or data[offset] != tag:
        raise InvalidPeerCertificate(f"libp2p extension: {what} is not a DER tag {tag:#x}")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise InvalidPeerCertificate(f"libp2p extension: bad DER length of {what}")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80 or data[pos] == 0:  # DER: the shortest form only
            raise InvalidPeerCertificate(f"libp2p extension: non-minimal DER length of {what}")
        pos += count
    end = pos + length
    if end > len(data):
        raise InvalidPeerCertificate(f"libp2p extension: {what} is truncated")
    return data[pos:end], end


def encode_signed_key(public_key: bytes, signature: bytes) -> bytes:
    """The extension's value: ``SignedKey`` in DER."""
    return _der_tlv(0x30, _der_tlv(0x04, public_key) + _der_tlv(0x04, signature))


def decode_signed_key(value: bytes) -> tuple[bytes, bytes]:
    """``(publicKey, signature)`` from the extension's DER value; ``InvalidPeerCertificate``
    for anything but exactly one SEQUENCE of two OCTET STRINGs."""
    body, end = _read_tlv(value, 0, 0x30, "SignedKey")
    if end != len(value):
        raise InvalidPeerCertificate("libp2p extension: bytes after SignedKey")
    public_key, pos = _read_tlv(body, 0, 0x04, "publicKey")
    signature, pos = _read_tlv(body, pos, 0x04, "signature")
    if pos != len(body):
        raise InvalidPeerCertificate("libp2p extension: SignedKey has extra fields")
    return public_key, signature


# ---- making ----------------------------------------------------------------------------------


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def make_certificate(
    host_key: PrivateKey,
    now: float,
    *,
    certificate_key: ec.EllipticCurvePrivateKey | None = None,
    validity: timedelta = _VALIDITY,
) -> Libp2pCertificate:
    """A fresh self-signed P-256 certificate carrying ``host_key``'s signed extension.

    ``now`` is Unix time (seconds). ``certificate_key`` defaults to a new random key: it must
    not be derived from the host key (the spec's SHOULD).
    """
    key = certificate_key or ec.generate_private_key(ec.SECP256R1())
    signature = host_key.sign(SIGNATURE_PREFIX + _spki(key.public_key()))
    extension = encode_signed_key(host_key.get_public_key().serialize(), signature)
    start = datetime.fromtimestamp(now, tz=timezone.utc)
    # The serial only has to be unique per issuer; every certificate is its own issuer.
    serial = x509.random_serial_number()
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(serial))])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start - _BACKDATE)
        .not_valid_after(start + validity)
        .add_extension(x509.UnrecognizedExtension(EXTENSION_OID, extension), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Libp2pCertificate(
        der=certificate.public_bytes(serialization.Encoding.DER),
        key_der=key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private_key=key,
    )


# ---- checking --------------------------------------------------------------------------------


def verify_certificate(
    chain: list[bytes] | bytes, now: float, expected_peer: ID | None = None
) -> VerifiedPeer:
    """Check a peer's certificate as the spec demands and return the peer it proves.

    ``chain`` is the DER chain the peer sent (exactly one certificate allowed) or that one
    certificate. Raises ``InvalidPeerCertificate`` (a ``DialError``) when: the chain is not
    exactly one certificate, it does not parse, it is not valid at ``now``, its self-signature
    does not verify, the libp2p extension is missing or repeated or malformed, it carries a
    critical extension we do not understand, or the host key's signature does not verify;
    ``PeerIdMismatch`` when the peer id differs from ``expected_peer``.
    """
    certificates = [chain] if isinstance(chain, bytes | bytearray) else list(chain)
    if len(certificates) != 1:
        raise InvalidPeerCertificate(
            f"a libp2p peer sends exactly one certificate, got {len(certificates)}"
        )
    try:
        certificate = x509.load_der_x509_certificate(bytes(certificates[0]))
    except ValueError as exc:
        raise InvalidPeerCertificate(f"unparseable certificate: {exc}") from exc
    at = datetime.fromtimestamp(now, tz=timezone.utc)
    if at < certificate.not_valid_before_utc:
        raise InvalidPeerCertificate(
            f"certificate not valid before {certificate.not_valid_before_utc.isoformat()}"
        )
    if at > certificate.not_valid_after_utc:
        raise InvalidPeerCertificate(
            f"certificate expired at {certificate.not_valid_after_utc.isoformat()}"
        )
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise InvalidPeerCertificate(f"certificate is not validly self-signed: {exc!r}") from exc

    try:
        extensions = list(certificate.extensions)
    except ValueError as exc:  # duplicate or malformed known extensions
        raise InvalidPeerCertificate(f"malformed certificate extensions: {exc}") from exc
    ours = [ext for ext in extensions if ext.oid == EXTENSION_OID]
    if not ours:
        raise InvalidPeerCertificate("certificate lacks the libp2p public key extension")
    for ext in extensions:
        if (
            ext.critical
            and ext.oid != EXTENSION_OID
            and isinstance(ext.value, x509.UnrecognizedExtension)
        ):
            raise InvalidPeerCertificate(f"unknown critical extension {ext.oid.dotted_string}")
    value = ours[0].value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    key_bytes, signature = decode_signed_key(raw)
    try:
        host_key = deserialize_public_key(key_bytes)
    except Exception as exc:  # protobuf and key decoders raise several types
        raise InvalidPeerCertificate(f"libp2p extension: unusable host key: {exc!r}") from exc
    try:
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        valid = host_key.verify(SIGNATURE_PREFIX + spki, signature)
    except Exception as exc:  # each key type's verify raises its own errors
        raise InvalidPeerCertificate(f"libp2p extension: signature check failed: {exc!r}") from exc
    if not valid:
        raise InvalidPeerCertificate("libp2p extension: the host key's signature does not verify")
    peer_id = ID.from_pubkey(host_key)
    if expected_peer is not None and peer_id != expected_peer:
        raise PeerIdMismatch(f"certificate proves peer {peer_id}, expected {expected_peer}")
    return VerifiedPeer(peer_id=peer_id, public_key=host_key)
