"""Deterministic certificate derivation and the client-side verification helper."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_pair
from libp2p.crypto.secp256k1 import create_new_key_pair as secp256k1_pair

from py_libp2p_webtransport.certs import (
    CERT_VALIDITY,
    derive_certificate,
    verify_server_certificate,
)
from py_libp2p_webtransport.errors import CerthashMismatch, InvalidCertificate
from py_libp2p_webtransport.multiaddr import certhash_multihash

START_MS = 1_790_000_000_000  # a whole second, some time in 2026
HOST_KEY = ed25519_pair(b"\x11" * 32).private_key


def test_same_key_and_bucket_give_identical_der() -> None:
    first = derive_certificate(HOST_KEY, START_MS)
    second = derive_certificate(HOST_KEY, START_MS)
    assert first.der == second.der
    assert first.key_der == second.key_der
    assert first.certhash == second.certhash == certhash_multihash(first.der)


def test_derivation_is_identical_in_another_process() -> None:
    # A "restart": a fresh interpreter must derive the same bytes from the same key and start.
    code = (
        "from libp2p.crypto.ed25519 import create_new_key_pair as p;"
        "from py_libp2p_webtransport.certs import derive_certificate as d;"
        f"print(d(p(b'\\x11' * 32).private_key, {START_MS}).der.hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert bytes.fromhex(out.stdout.strip()) == derive_certificate(HOST_KEY, START_MS).der


def test_other_key_or_other_bucket_gives_other_certificate() -> None:
    base = derive_certificate(HOST_KEY, START_MS)
    other_key = derive_certificate(ed25519_pair(b"\x12" * 32).private_key, START_MS)
    other_time = derive_certificate(HOST_KEY, START_MS + 60_000)
    assert len({base.der, other_key.der, other_time.der}) == 3
    assert base.private_key.private_numbers() != other_time.private_key.private_numbers()


@pytest.mark.parametrize("make_key", [ed25519_pair, secp256k1_pair])
def test_certificate_profile(make_key) -> None:  # type: ignore[no-untyped-def]
    derived = derive_certificate(make_key().private_key, START_MS)
    cert = x509.load_der_x509_certificate(derived.der)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)
    # Self-signed with its own key (no chain).
    public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    assert cert.issuer == cert.subject
    assert len(cert.extensions) >= 1
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    start = datetime.fromtimestamp(START_MS / 1000, timezone.utc)
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == CERT_VALIDITY
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=14)
    assert cert.serial_number > 0
    assert (derived.not_before, derived.not_after) == (
        cert.not_valid_before_utc.timestamp(),
        cert.not_valid_after_utc.timestamp(),
    )
    # The key DER is the certificate's key.
    key = serialization.load_der_private_key(derived.key_der, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == public_key.public_numbers()


# --- verify_server_certificate ------------------------------------------------------------------


def _self_signed(key, days: float, start: datetime) -> bytes:  # type: ignore[no-untyped-def]
    name = x509.Name([])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, algorithm)
    )
    return cert.public_bytes(serialization.Encoding.DER)


NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def test_verify_accepts_derived_certificate() -> None:
    derived = derive_certificate(HOST_KEY, START_MS)
    middle = (derived.not_before + derived.not_after) / 2
    other = certhash_multihash(b"another cert")
    verify_server_certificate(derived.der, [other, derived.certhash], middle)
    verify_server_certificate(derived.der, [derived.certhash], derived.not_before)
    verify_server_certificate(derived.der, [derived.certhash], derived.not_after)


def test_verify_accepts_p384() -> None:
    der = _self_signed(ec.generate_private_key(ec.SECP384R1()), 10, NOW)
    verify_server_certificate(der, [certhash_multihash(der)], NOW.timestamp() + 60)


def test_verify_rejects_hash_not_dialed() -> None:
    derived = derive_certificate(HOST_KEY, START_MS)
    with pytest.raises(CerthashMismatch):
        verify_server_certificate(derived.der, [certhash_multihash(b"x")], derived.not_before)
    with pytest.raises(CerthashMismatch):
        verify_server_certificate(derived.der, [], derived.not_before)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(rsa.generate_private_key(65537, 2048), id="rsa"),
        pytest.param(ed25519.Ed25519PrivateKey.generate(), id="ed25519"),
        pytest.param(ec.generate_private_key(ec.SECP256K1()), id="secp256k1"),
    ],
)
def test_verify_rejects_non_allowed_keys(key) -> None:  # type: ignore[no-untyped-def]
    der = _self_signed(key, 10, NOW)
    with pytest.raises(InvalidCertificate):
        verify_server_certificate(der, [certhash_multihash(der)], NOW.timestamp() + 60)


def test_verify_rejects_validity_over_14_days() -> None:
    der = _self_signed(ec.generate_private_key(ec.SECP256R1()), 14 + 1 / 24, NOW)
    with pytest.raises(InvalidCertificate):
        verify_server_certificate(der, [certhash_multihash(der)], NOW.timestamp() + 60)


def test_verify_rejects_not_yet_valid_and_expired() -> None:
    derived = derive_certificate(HOST_KEY, START_MS)
    with pytest.raises(InvalidCertificate):
        verify_server_certificate(derived.der, [derived.certhash], derived.not_before - 1)
    with pytest.raises(InvalidCertificate):
        verify_server_certificate(derived.der, [derived.certhash], derived.not_after + 1)


def test_verify_rejects_garbage_der() -> None:
    garbage = b"\x30\x03\x02\x01\x01"
    with pytest.raises(InvalidCertificate):
        verify_server_certificate(garbage, [certhash_multihash(garbage)], NOW.timestamp())
