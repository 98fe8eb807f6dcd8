"""The libp2p TLS certificate (``libp2p_tls.py``): ours verifies, py-libp2p's verifies, bad ones
are refused with a reason.

Bad certificates are built here from parts with ``cryptography`` so each breaks exactly one rule.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_pair
from libp2p.crypto.rsa import create_new_key_pair as rsa_pair
from libp2p.crypto.secp256k1 import create_new_key_pair as secp256k1_pair
from libp2p.peer.id import ID

from py_libp2p_webtransport.errors import InvalidPeerCertificate, PeerIdMismatch
from py_libp2p_webtransport.libp2p_tls import (
    EXTENSION_OID,
    SIGNATURE_PREFIX,
    decode_signed_key,
    encode_signed_key,
    make_certificate,
    verify_certificate,
)

NOW = 1_790_000_000.0  # some time in 2026
HOST = ed25519_pair(b"\x21" * 32)


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _build(
    *,
    extension: bytes | None,
    extra: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
    not_before: float = NOW - 3600,
    not_after: float = NOW + 3600,
    signer: ec.EllipticCurvePrivateKey | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.fromtimestamp(not_before, tz=timezone.utc))
        .not_valid_after(datetime.fromtimestamp(not_after, tz=timezone.utc))
    )
    if extension is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(EXTENSION_OID, extension), critical=False
        )
    for value, critical in extra:
        builder = builder.add_extension(value, critical=critical)
    return builder.sign(signer or key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _good_extension(key: ec.EllipticCurvePrivateKey) -> bytes:
    signature = HOST.private_key.sign(SIGNATURE_PREFIX + _spki(key))
    return encode_signed_key(HOST.public_key.serialize(), signature)


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param(lambda: ed25519_pair(), id="ed25519"),
        pytest.param(lambda: secp256k1_pair(), id="secp256k1"),
        pytest.param(lambda: rsa_pair(2048), id="rsa"),
    ],
)
def test_our_certificate_proves_our_peer_id(pair) -> None:  # type: ignore[no-untyped-def]
    keys = pair()
    cert = make_certificate(keys.private_key, NOW)
    peer = verify_certificate(cert.der, NOW + 10, ID.from_pubkey(keys.public_key))
    assert peer.peer_id == ID.from_pubkey(keys.public_key)
    assert peer.public_key.serialize() == keys.public_key.serialize()
    # The certificate key is fresh each time, not the host key.
    assert make_certificate(keys.private_key, NOW).der != cert.der


def test_certificate_shape() -> None:
    cert = make_certificate(HOST.private_key, NOW)
    parsed = x509.load_der_x509_certificate(cert.der)
    assert isinstance(parsed.public_key(), ec.EllipticCurvePublicKey)
    assert parsed.issuer == parsed.subject
    assert parsed.not_valid_before_utc.timestamp() <= NOW <= parsed.not_valid_after_utc.timestamp()
    ext = parsed.extensions.get_extension_for_oid(EXTENSION_OID)
    key_bytes, signature = decode_signed_key(ext.value.value)  # type: ignore[attr-defined]
    assert key_bytes == HOST.public_key.serialize()
    assert HOST.public_key.verify(SIGNATURE_PREFIX + _spki(cert.private_key), signature)
    loaded = serialization.load_der_private_key(cert.key_der, None)
    assert _spki(loaded) == _spki(cert.private_key)  # type: ignore[arg-type]


def test_py_libp2p_accepts_ours_and_we_accept_theirs() -> None:
    from libp2p.transport.quic.security import CertificateGenerator, PeerAuthenticator

    peer_id = ID.from_pubkey(HOST.public_key)
    ours = make_certificate(HOST.private_key, time.time())
    assert (
        PeerAuthenticator().verify_peer_certificate(
            x509.load_der_x509_certificate(ours.der), peer_id
        )
        == peer_id
    )
    theirs = CertificateGenerator().generate_certificate(HOST.private_key, peer_id)
    der = theirs.certificate.public_bytes(serialization.Encoding.DER)
    assert verify_certificate(der, time.time(), peer_id).peer_id == peer_id


def test_wrong_signature_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    # The host key signed another certificate key: valid signature, wrong message.
    with pytest.raises(InvalidPeerCertificate, match="signature"):
        verify_certificate(_build(extension=_good_extension(other), key=key), NOW)
    # A flipped bit in the signature.
    good = _good_extension(key)
    key_bytes, signature = decode_signed_key(good)
    flipped = signature[:-1] + bytes([signature[-1] ^ 1])
    bad = encode_signed_key(key_bytes, flipped)
    with pytest.raises(InvalidPeerCertificate, match="signature"):
        verify_certificate(_build(extension=bad, key=key), NOW)
    # Sanity: the same construction with the right signature passes.
    assert verify_certificate(_build(extension=good, key=key), NOW).peer_id == ID.from_pubkey(
        HOST.public_key
    )


def test_missing_extension_is_refused() -> None:
    with pytest.raises(InvalidPeerCertificate, match="lacks the libp2p public key extension"):
        verify_certificate(_build(extension=None), NOW)


@pytest.mark.parametrize(
    ("not_before", "not_after", "match"),
    [
        (NOW - 7200, NOW - 1, "expired"),
        (NOW + 60, NOW + 7200, "not valid before"),
    ],
)
def test_certificate_outside_its_validity_is_refused(
    not_before: float, not_after: float, match: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = _build(
        extension=_good_extension(key), key=key, not_before=not_before, not_after=not_after
    )
    with pytest.raises(InvalidPeerCertificate, match=match):
        verify_certificate(der, NOW)


def test_our_certificate_expires() -> None:
    cert = make_certificate(HOST.private_key, NOW, validity=timedelta(hours=1))
    verify_certificate(cert.der, NOW + 3599)
    with pytest.raises(InvalidPeerCertificate, match="expired"):
        verify_certificate(cert.der, NOW + 3601)


def test_broken_self_signature_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = _build(
        extension=_good_extension(key), key=key, signer=ec.generate_private_key(ec.SECP256R1())
    )
    with pytest.raises(InvalidPeerCertificate, match="self-signed"):
        verify_certificate(der, NOW)


def test_unknown_critical_extension_is_refused_unknown_noncritical_ignored() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    with pytest.raises(InvalidPeerCertificate, match="unknown critical extension"):
        verify_certificate(
            _build(extension=_good_extension(key), key=key, extra=[(unknown, True)]), NOW
        )
    ok = _build(extension=_good_extension(key), key=key, extra=[(unknown, False)])
    assert verify_certificate(ok, NOW).peer_id == ID.from_pubkey(HOST.public_key)


def test_chain_of_two_is_refused() -> None:
    cert = make_certificate(HOST.private_key, NOW)
    with pytest.raises(InvalidPeerCertificate, match="exactly one certificate, got 2"):
        verify_certificate([cert.der, cert.der], NOW)
    with pytest.raises(InvalidPeerCertificate, match="exactly one certificate, got 0"):
        verify_certificate([], NOW)


def test_garbage_is_refused() -> None:
    with pytest.raises(InvalidPeerCertificate, match="unparseable"):
        verify_certificate(b"\x30\x03\x02\x01\x00", NOW)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x04\x00",  # an OCTET STRING, not a SEQUENCE
        b"\x30\x02\x04\x00",  # one field
        b"\x30\x06\x04\x00\x04\x00\x04\x00",  # three fields
        b"\x30\x04\x04\x00\x04\x00\x00",  # trailing byte
        b"\x30\x05\x04\x81\x01\x00\x04",  # non-minimal length
        b"\x30\x04\x04\x05\x00\x00",  # truncated
    ],
)
def test_malformed_signed_key_is_refused(value: bytes) -> None:
    with pytest.raises(InvalidPeerCertificate, match="libp2p extension"):
        decode_signed_key(value)
    with pytest.raises(InvalidPeerCertificate, match="libp2p extension"):
        verify_certificate(_build(extension=value), NOW)


def test_signed_key_round_trip_with_long_fields() -> None:
    public_key, signature = b"k" * 300, b"s" * 70_000
    assert decode_signed_key(encode_signed_key(public_key, signature)) == (public_key, signature)


def test_unusable_host_key_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidPeerCertificate, match="unusable host key"):
        verify_certificate(_build(extension=encode_signed_key(b"\xff\xff", b"sig"), key=key), NOW)


def test_other_peer_is_a_peer_id_mismatch() -> None:
    cert = make_certificate(HOST.private_key, NOW)
    other = ID.from_pubkey(ed25519_pair().public_key)
    with pytest.raises(PeerIdMismatch, match="expected"):
        verify_certificate(cert.der, NOW, other)
