"""Certificates for hash-pinned WebTransport: deterministic derivation, rotation, verification.

Browsers accept a self-signed certificate pinned by hash only if it is ECDSA (P-256 here, never
RSA), valid now, valid for at most 14 days and carries at least one X.509 extension (W3C
webtransport "custom certificate requirements"; libp2p specs ``webtransport/README.md``).

Every certificate is a pure function of the host key and a time bucket, so the certhashes in
our addresses survive restarts (go-libp2p issue #1824). Buckets are ``14 d - 2 h`` long and
staggered per key; certificate ``k`` is valid from the start of bucket ``k`` for 14 days, so it
overlaps the next one by 2 hours. The current certificate switches 1 hour after a bucket starts,
which keeps the one we serve valid for at least 1 hour on either side of "now" (clock skew).
This is go-libp2p's schedule (``cert_manager.go``) written as arithmetic instead of timers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID
from libp2p.crypto.keys import PrivateKey

from .errors import CerthashMismatch, InvalidCertificate
from .multiaddr import certhash_multihash

__all__ = [
    "BUCKET_LENGTH",
    "CERT_VALIDITY",
    "CLOCK_SKEW_ALLOWANCE",
    "CertManager",
    "CerthashPeriod",
    "DerivedCertificate",
    "certhash_schedule",
    "derive_certificate",
    "next_rotation_after",
    "verify_server_certificate",
]

CERT_VALIDITY = timedelta(days=14)
"""Total validity of each certificate: the browsers' maximum (exactly 14 days is accepted)."""
CLOCK_SKEW_ALLOWANCE = timedelta(hours=1)
BUCKET_LENGTH = CERT_VALIDITY - 2 * CLOCK_SKEW_ALLOWANCE
"""Distance between consecutive certificates' NotBefore: they overlap by two skew allowances."""

_BUCKET_MS = BUCKET_LENGTH // timedelta(milliseconds=1)
_VALIDITY_MS = CERT_VALIDITY // timedelta(milliseconds=1)
_SKEW_MS = CLOCK_SKEW_ALLOWANCE // timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HKDF_INFO = b"py-libp2p-webtransport deterministic certificate v1"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True, slots=True)
class DerivedCertificate:
    """One self-signed certificate with its key, as DER and as ``cryptography`` objects."""

    der: bytes
    key_der: bytes
    """The private key as PKCS#8 DER."""
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    certhash: bytes
    """SHA-256 multihash bytes of ``der``."""
    not_before: float
    """Unix time (seconds)."""
    not_after: float


def _host_key_material(private_key: PrivateKey) -> bytes:
    # The key type prefixes the raw bytes so keys of different types never share material.
    return private_key.get_type().name.encode() + b":" + private_key.to_bytes()


def _stagger_ms(private_key: PrivateKey) -> int:
    """A per-key offset (whole minutes, below 14 days) so nodes do not all rotate at once.

    go uses the first two raw public-key bytes; we hash the public key first because some key
    encodings (RSA DER, compressed secp256k1) start with constant bytes.
    """
    digest = hashlib.sha256(private_key.get_public_key().to_bytes()).digest()
    minutes = int.from_bytes(digest[:2], "little")
    return (minutes * 60_000) % _VALIDITY_MS


def _index_at(stagger_ms: int, now: float) -> int:
    """The current certificate's bucket at Unix time ``now``.

    Bucket k starts at stagger + k * BUCKET; k is current from its start + 1 h (go switches 1 h
    before the previous certificate's NotAfter, which is its successor's start + 1 h).
    """
    return (int(now * 1000) - _SKEW_MS - stagger_ms) // _BUCKET_MS


def _switch_time(stagger_ms: int, index: int) -> float:
    """Unix time at which bucket ``index`` becomes the current certificate."""
    return (stagger_ms + index * _BUCKET_MS + _SKEW_MS) / 1000


def next_rotation_after(private_key: PrivateKey, now: float) -> float:
    """Unix time of the first rotation after ``now`` for this key (cheap: derives nothing)."""
    stagger = _stagger_ms(private_key)
    return _switch_time(stagger, _index_at(stagger, now) + 1)


def derive_certificate(private_key: PrivateKey, not_before_ms: int) -> DerivedCertificate:
    """Derive the certificate valid from ``not_before_ms`` (Unix ms) for 14 days.

    Same host key and same start give byte-identical DER: the P-256 key and the serial come from
    HKDF-SHA256 over the host key, and the signature is deterministic ECDSA (RFC 6979).
    """
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=56,
        salt=not_before_ms.to_bytes(8, "big", signed=True),
        info=_HKDF_INFO,
    ).derive(_host_key_material(private_key))
    # 320 bits reduced modulo n - 1 then + 1: a scalar in [1, n - 1] with negligible bias.
    scalar = int.from_bytes(okm[:40], "big") % (_P256_ORDER - 1) + 1
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    # A positive serial of at most 127 bits (X.509 allows 20 octets; must be > 0).
    serial = (int.from_bytes(okm[40:56], "big") >> 1) | 1

    start = _EPOCH + timedelta(milliseconds=not_before_ms)
    end = start + CERT_VALIDITY
    empty_name = x509.Name([])
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(empty_name)
        .issuer_name(empty_name)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        # Chromium refuses hash-pinned certificates without any extension (shared FACTS.md).
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    certificate = builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    der = certificate.public_bytes(serialization.Encoding.DER)
    key_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return DerivedCertificate(
        der=der,
        key_der=key_der,
        certificate=certificate,
        private_key=key,
        certhash=certhash_multihash(der),
        not_before=not_before_ms / 1000,
        not_after=(not_before_ms + _VALIDITY_MS) / 1000,
    )


def ephemeral_certificate() -> DerivedCertificate:
    """A certificate in the libp2p shape from a fresh random key, valid from an hour ago.

    For tests, benchmarks and one-off servers that need a working certificate but no stable
    certhash (a listener uses ``CertManager`` instead).
    """
    from libp2p.crypto.ed25519 import create_new_key_pair

    not_before_ms = int(time.time() * 1000) - _SKEW_MS
    return derive_certificate(create_new_key_pair().private_key, not_before_ms)


class CertManager:
    """The listener's certificates: last, current and next, rotated by the injected clock.

    ``current()`` is what the TLS layer serves (ask per new connection; it rotates first if due).
    ``advertised_certhashes()`` goes into the listen addresses, ``noise_certhashes()`` into the
    Noise handshake. Every read rotates first if due, and a rotation calls each ``subscribe``d
    callback at once, so the served certificate and every advertised address change together,
    whichever caller noticed the new bucket. ``maybe_rotate()`` also reports it.
    """

    def __init__(self, private_key: PrivateKey, clock: Callable[[], float] = time.time) -> None:
        self._private_key = private_key
        self._clock = clock
        self._stagger = _stagger_ms(private_key)
        self._cache: dict[int, DerivedCertificate] = {}
        self._index = _index_at(self._stagger, clock())
        self._unreported_rotation = False
        self._subscribers: list[Callable[[], None]] = []
        self._fill()

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after each rotation, synchronously, from the call that noticed it
        (it may read the manager again: the new certificates are in place)."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` (no error if it was not subscribed)."""
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def _certificate(self, index: int) -> DerivedCertificate:
        cert = self._cache.get(index)
        if cert is None:
            cert = derive_certificate(self._private_key, self._stagger + index * _BUCKET_MS)
            self._cache[index] = cert
        return cert

    def _fill(self) -> None:
        for index in (self._index - 1, self._index, self._index + 1):
            self._certificate(index)
        for stale in [i for i in self._cache if not self._index - 1 <= i <= self._index + 1]:
            del self._cache[stale]

    def _rotate_if_due(self) -> None:
        index = _index_at(self._stagger, self._clock())
        if index != self._index:
            self._index = index
            self._unreported_rotation = True
            self._fill()
            for callback in list(self._subscribers):
                callback()

    def maybe_rotate(self) -> bool:
        """Switch certificates if the clock passed ``next_rotation``.

        Returns True when the certificates changed since the previous call, including a switch
        that ``current()`` already made for a new connection, so the caller never misses an
        address update.
        """
        self._rotate_if_due()
        rotated, self._unreported_rotation = self._unreported_rotation, False
        return rotated

    @property
    def next_rotation(self) -> float:
        """Unix time at which ``maybe_rotate()`` will switch to the next certificate."""
        return _switch_time(self._stagger, self._index + 1)

    def seconds_until_rotation(self) -> float:
        """Seconds from now (per the manager's clock) until ``next_rotation``."""
        return self.next_rotation - self._clock()

    def current_certificate(self) -> DerivedCertificate:
        """The certificate to serve now (rotating first if due)."""
        self._rotate_if_due()
        return self._certificate(self._index)

    def current(self) -> tuple[bytes, bytes]:
        """``(certificate DER, PKCS#8 private key DER)`` to serve now."""
        cert = self.current_certificate()
        return cert.der, cert.key_der

    def advertised_certhashes(self) -> list[bytes]:
        """Multihashes for the listen addresses: ``[current, next]`` (rotating first if due)."""
        self._rotate_if_due()
        return [self._certificate(i).certhash for i in (self._index, self._index + 1)]

    def noise_certhashes(self) -> list[bytes]:
        """Multihashes for the Noise extension: ``[last, current, next]``.

        The previous bucket's certificate is included even right after a start: it is a pure
        function of the key, so we advertised it before a restart and clients may still hold it.
        """
        self._rotate_if_due()
        return [self._certificate(i).certhash for i in range(self._index - 1, self._index + 2)]


@dataclass(frozen=True, slots=True)
class CerthashPeriod:
    """A span of time during which a listener advertises one certhash pair."""

    start: float
    """Unix time (seconds) at which this pair becomes the advertised one."""
    end: float
    """Unix time at which the next pair replaces it."""
    certhashes: tuple[bytes, bytes]
    """``(current, next)`` SHA-256 multihashes, in address order."""


def certhash_schedule(private_key: PrivateKey, start: float, end: float) -> list[CerthashPeriod]:
    """Every certhash pair a listener with this key advertises between ``start`` and ``end``.

    Certificates are a pure function of (key, time), so this is what any listener with the key
    advertises at those times, restarts included: a web page or a bootstrap list can carry an
    address that stays right for weeks (any address of one period also dials during the next,
    as consecutive pairs share a certificate).
    """
    if end < start:
        raise ValueError(f"schedule end {end} is before its start {start}")
    stagger = _stagger_ms(private_key)
    derived: dict[int, bytes] = {}

    def certhash(index: int) -> bytes:
        if index not in derived:
            derived[index] = derive_certificate(private_key, stagger + index * _BUCKET_MS).certhash
        return derived[index]

    periods: list[CerthashPeriod] = []
    index = _index_at(stagger, start)
    while True:
        period_start = _switch_time(stagger, index)
        if period_start > end:
            return periods
        periods.append(
            CerthashPeriod(
                start=period_start,
                end=_switch_time(stagger, index + 1),
                certhashes=(certhash(index), certhash(index + 1)),
            )
        )
        index += 1


def verify_server_certificate(der: bytes, dialed_hashes: Iterable[bytes], now: float) -> None:
    """Check a server's certificate as a hash-pinning WebTransport client must.

    ``dialed_hashes`` are the multihash bytes from the dialed address; ``now`` is Unix time.
    Raises ``CerthashMismatch`` when the hash is not among them and ``InvalidCertificate`` when the
    certificate is unparsable, RSA (or not ECDSA at all), valid for over 14 days or not valid now.
    """
    if certhash_multihash(der) not in {bytes(h) for h in dialed_hashes}:
        raise CerthashMismatch("the server's certificate hash is not one of the dialed certhashes")
    try:
        cert = x509.load_der_x509_certificate(der)
        public_key = cert.public_key()
    except Exception as exc:  # cryptography raises ValueError and others for broken DER
        raise InvalidCertificate(f"unparsable server certificate: {exc}") from exc
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise InvalidCertificate(
            f"server certificate key must be ECDSA, not {type(public_key).__name__}"
        )
    if not isinstance(public_key.curve, (ec.SECP256R1, ec.SECP384R1)):
        raise InvalidCertificate(f"server certificate curve {public_key.curve.name} not allowed")
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    if not_after - not_before > CERT_VALIDITY:
        raise InvalidCertificate(
            f"server certificate valid for {not_after - not_before}, more than 14 days"
        )
    moment = _EPOCH + timedelta(seconds=now)
    if not not_before <= moment <= not_after:
        raise InvalidCertificate(
            f"server certificate not valid now ({not_before} .. {not_after}, now {moment})"
        )
