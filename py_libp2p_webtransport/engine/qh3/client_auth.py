"""A qh3 server that asks for the client's certificate (libp2p mutual TLS).

qh3 2.1.0's TLS server never sends a CertificateRequest and refuses a client's Certificate and
CertificateVerify. libp2p over QUIC needs both (libp2p/specs ``tls``: "servers MUST require
client authentication"). When the negotiated ALPN asks for it, this module:

1. writes a CertificateRequest just before the server's Certificate (it wraps qh3's module-level
   ``push_certificate`` for the duration of ``_server_handle_hello``; the message lands inside
   the same transcript hash block, so the transcript is EE, CertificateRequest, Certificate,
   CertificateVerify, Finished as RFC 8446 orders it);
2. keeps a copy of the transcript hash before qh3 hashes the client Finished it anticipates
   (the anticipation assumes no client certificate, so its transcript would be wrong);
3. takes the client's Certificate and CertificateVerify out of the incoming handshake bytes
   (``handle_message``), checks the CertificateVerify signature against the transcript, stores
   the certificate where ``peer_certificate`` finds it, and recomputes the Finished qh3 expects.

Whether the certificate proves a libp2p peer is for the layer above (``peer_certificate_der()``).
Guarded by ``tests/engine/test_private_api_qh3.py`` (the names below) and by the libp2p QUIC
handshake tests on qh3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import load_der_x509_certificate
from qh3 import tls as qh3_tls
from qh3._hazmat import Certificate as _X509Certificate

__all__ = ["PATCHED_FUNCTIONS", "PATCHED_METHODS", "ClientAuthContext", "install"]

# qh3.tls names this module relies on (module functions it wraps, Context methods it extends).
PATCHED_FUNCTIONS = ("push_certificate", "push_finished")
PATCHED_METHODS = ("_server_handle_hello", "handle_message")

_CERTIFICATE = 11
_CERTIFICATE_REQUEST = 13
_CERTIFICATE_VERIFY = 15
_SIGNATURE_ALGORITHMS_EXTENSION = 13
_CLIENT_CONTEXT = b"TLS 1.3, client CertificateVerify"
# What we accept in the client's CertificateVerify: ECDSA P-256/P-384, Ed25519, RSA-PSS.
_ALGORITHMS = (0x0403, 0x0503, 0x0807, 0x0804, 0x0805, 0x0806)


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _certificate_request() -> bytes:
    algorithms = b"".join(_u16(a) for a in _ALGORITHMS)
    extension = _u16(_SIGNATURE_ALGORITHMS_EXTENSION) + _u16(len(algorithms) + 2)
    extension += _u16(len(algorithms)) + algorithms
    body = b"\x00" + _u16(len(extension)) + extension  # empty request context
    return bytes([_CERTIFICATE_REQUEST]) + len(body).to_bytes(3, "big") + body


def _verify(certificate_der: bytes, algorithm: int, signature: bytes, message: bytes) -> None:
    key: Any = load_der_x509_certificate(certificate_der).public_key()
    try:
        if algorithm in (0x0403, 0x0503) and isinstance(key, ec.EllipticCurvePublicKey):
            curve_digest: hashes.HashAlgorithm = (
                hashes.SHA256() if algorithm == 0x0403 else hashes.SHA384()
            )
            key.verify(signature, message, ec.ECDSA(curve_digest))
        elif algorithm == 0x0807 and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif algorithm in (0x0804, 0x0805, 0x0806) and isinstance(key, rsa.RSAPublicKey):
            digest = {0x0804: hashes.SHA256(), 0x0805: hashes.SHA384()}.get(
                algorithm, hashes.SHA512()
            )
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            key.verify(signature, message, pss, digest)
        else:
            raise qh3_tls.AlertIllegalParameter(
                f"client CertificateVerify algorithm {algorithm:#06x} does not fit its key"
            )
    except InvalidSignature as exc:
        raise qh3_tls.AlertDecryptError("client CertificateVerify does not verify") from exc


class ClientAuthContext(qh3_tls.Context):
    """qh3's TLS context, able to request and check a client certificate (see the module).

    Instances are made by switching the class of the bridge's context (``install``); the
    ``wt_*`` attributes are set there.
    """

    wt_client_auth: bool
    wt_transcript: Any
    wt_pending: bytes
    wt_client_der: bytes | None
    wt_awaiting: int  # 0: nothing, 1: the client's Certificate, 2: its CertificateVerify

    def _server_handle_hello(self, *args: Any) -> None:
        stock_certificate: Callable[..., None] = qh3_tls.push_certificate
        stock_finished: Callable[..., None] = qh3_tls.push_finished
        finished_calls = 0

        def push_certificate(buf: Any, certificate: Any) -> None:
            if self.wt_client_auth:
                buf.push_bytes(_certificate_request())
            stock_certificate(buf, certificate)

        def push_finished(buf: Any, finished: Any) -> None:
            nonlocal finished_calls
            finished_calls += 1
            if finished_calls == 2 and self.wt_client_auth:
                # qh3 anticipates the client's Finished: keep the transcript before it.
                schedule: Any = self.key_schedule
                self.wt_transcript = schedule.hash.copy()
            stock_finished(buf, finished)

        qh3_tls.push_certificate = push_certificate
        qh3_tls.push_finished = push_finished
        try:
            super()._server_handle_hello(*args)
        finally:
            qh3_tls.push_certificate = stock_certificate
            qh3_tls.push_finished = stock_finished
        if self.wt_client_auth:
            if self._alps_negotiated or self.wt_transcript is None:
                raise qh3_tls.AlertHandshakeFailure("client authentication with ALPS")
            self.wt_awaiting = 1

    def handle_message(self, input_data: bytes, output_buf: Any, epoch: int = -1) -> None:
        if not self.wt_awaiting:
            super().handle_message(input_data, output_buf, epoch)
            return
        self.wt_pending += input_data
        while self.wt_awaiting and len(self.wt_pending) >= 4:
            length = 4 + int.from_bytes(self.wt_pending[1:4], "big")
            if len(self.wt_pending) < length:
                return
            message, self.wt_pending = self.wt_pending[:length], self.wt_pending[length:]
            if self.wt_awaiting == 1:
                self._wt_certificate(message)
            else:
                self._wt_certificate_verify(message)
        if not self.wt_awaiting:
            rest, self.wt_pending = self.wt_pending, b""
            if rest:
                super().handle_message(rest, output_buf, epoch)

    def _wt_certificate(self, message: bytes) -> None:
        if message[0] != _CERTIFICATE:
            raise qh3_tls.AlertUnexpectedMessage("expected the client's Certificate")
        body = message[4:]
        try:
            context_length = body[0]
            pos = 1 + context_length
            list_length = int.from_bytes(body[pos : pos + 3], "big")
            pos += 3
            if pos + list_length != len(body):
                raise qh3_tls.AlertDecodeError("client Certificate has a bad length")
            certificates = []
            while pos < len(body):
                size = int.from_bytes(body[pos : pos + 3], "big")
                certificates.append(body[pos + 3 : pos + 3 + size])
                pos += 3 + size
                pos += 2 + int.from_bytes(body[pos : pos + 2], "big")  # entry extensions
        except IndexError as exc:
            raise qh3_tls.AlertDecodeError("client Certificate is truncated") from exc
        if not certificates or pos != len(body):
            # An empty list means the client declined: libp2p requires the certificate.
            raise qh3_tls.AlertBadCertificate("the client sent no certificate")
        self.wt_client_der = bytes(certificates[0])
        try:
            self._peer_certificate = _X509Certificate(self.wt_client_der)
        except Exception as exc:  # qh3's native parser raises its own types
            raise qh3_tls.AlertBadCertificate("client certificate does not parse") from exc
        self.wt_transcript.update(message)
        self.wt_awaiting = 2

    def _wt_certificate_verify(self, message: bytes) -> None:
        if message[0] != _CERTIFICATE_VERIFY or len(message) < 8:
            raise qh3_tls.AlertUnexpectedMessage("expected the client's CertificateVerify")
        algorithm = int.from_bytes(message[4:6], "big")
        size = int.from_bytes(message[6:8], "big")
        signature = message[8 : 8 + size]
        if 8 + size != len(message):
            raise qh3_tls.AlertDecodeError("client CertificateVerify has a bad length")
        assert self.wt_client_der is not None
        signed = b" " * 64 + _CLIENT_CONTEXT + b"\x00" + self.wt_transcript.copy().digest()
        _verify(self.wt_client_der, algorithm, signature, signed)
        self.wt_transcript.update(message)
        # From here on the key schedule hashes the true transcript; the client's Finished
        # covers it.
        schedule: Any = self.key_schedule
        schedule.hash = self.wt_transcript
        self._expected_verify_data = schedule.finished_verify_data(self._dec_key)
        self.wt_awaiting = 0


def install(tls: Any) -> ClientAuthContext:
    """Make the bridge's server context able to request a client certificate (off until
    ``wt_client_auth`` is set, from the ALPN callback)."""
    tls.__class__ = ClientAuthContext
    tls.wt_client_auth = False
    tls.wt_transcript = None
    tls.wt_pending = b""
    tls.wt_client_der = None
    tls.wt_awaiting = 0
    return tls  # type: ignore[no-any-return]
