"""From ``EngineConfig`` to a library's ``QuicConfiguration``: checks and the fields both share.

qh3 and aioquic take the same ``QuicConfiguration`` constructor fields, so the mapping lives here
once; each adapter adds only what its library does differently (loading the server's identity,
hostname checks, its qlog writer) through the hooks of ``quic_configuration``. The libp2p
settings reach ``EngineConfig`` through ``WebTransportConfig.engine_config`` alone.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from types import ModuleType
from typing import Any, TextIO

from .._errors import EngineError
from .base import EngineConfig
from .qlog import qlog_writer

#: ``load_identity(certificate_der, pkcs8_key_der) -> (certificate, private_key)`` as the
#: library's configuration wants them; raises ``EngineError`` for unusable bytes.
IdentityLoader = Callable[[bytes, bytes], tuple[Any, Any]]


def check_config(config: EngineConfig) -> None:
    """Raise ``EngineError`` for settings no engine can honour (before any library sees them)."""
    problems = []
    if not config.alpn_protocols:
        problems.append("alpn_protocols is empty")
    if config.max_datagram_size < 1200:  # RFC 9000 §14: QUIC needs 1200-byte datagrams
        problems.append(f"max_datagram_size {config.max_datagram_size} < 1200")
    for name in ("max_data", "max_stream_data", "idle_timeout"):
        if getattr(config, name) <= 0:
            problems.append(f"{name} must be > 0")
    for name in ("max_streams_bidi", "max_streams_uni", "max_datagram_frame_size", "recv_budget"):
        if getattr(config, name) < 0:
            problems.append(f"{name} must be >= 0")
    if config.stateless_reset_secret is not None and len(config.stateless_reset_secret) < 16:
        problems.append("stateless_reset_secret must be at least 16 bytes")
    if problems:
        raise EngineError("invalid EngineConfig: " + "; ".join(problems))


def quic_configuration(
    configuration_class: Callable[..., Any],
    config: EngineConfig,
    *,
    load_identity: IdentityLoader,
    logger_module: ModuleType,
) -> Any:
    """The library's ``QuicConfiguration`` for ``config``.

    ``configuration_class`` is qh3's or aioquic's ``QuicConfiguration``; ``logger_module`` its
    ``quic.logger`` module, which ``engine/qlog.py`` extends when ``config.qlog_dir`` is set. Stream
    limits, pacing and the receive budget are not configuration fields in either library: the
    adapters apply them to the connection itself.
    """
    quic_config = configuration_class(
        is_client=config.is_client,
        alpn_protocols=list(config.alpn_protocols),
        max_datagram_size=config.max_datagram_size,
        max_data=config.max_data,
        max_stream_data=config.max_stream_data,
        idle_timeout=config.idle_timeout,
        # qh3 refuses WebTransport without it; the peer sees it as a transport parameter.
        max_datagram_frame_size=config.max_datagram_frame_size,
        server_name=config.server_name,
    )
    if config.is_client and not config.verify_peer:
        # The libp2p layer pins the certificate by hash through peer_certificate_der().
        quic_config.verify_mode = ssl.CERT_NONE
    if not config.is_client:
        if config.certificate_der is None or config.private_key_der is None:
            raise EngineError("a server engine needs certificate_der and private_key_der")
        quic_config.certificate, quic_config.private_key = load_identity(
            *identity_der(config.certificate_der, config.private_key_der)
        )
    elif config.certificate_der is not None and config.private_key_der is not None:
        # A client identity, presented when the server requests it (libp2p mutual TLS).
        quic_config.certificate, quic_config.private_key = load_identity(
            *identity_der(config.certificate_der, config.private_key_der, "client")
        )
    if config.qlog_dir is not None:
        quic_config.quic_logger = qlog_writer(logger_module, config.qlog_dir)
    if config.keylog_file is not None:
        # Both libraries write "<label> <client random> <secret>" lines and flush each.
        quic_config.secrets_log_file = keylog(config.keylog_file)
    return quic_config


#: How many configurations and identities each adapter remembers (a host has a few: client,
#: server, one per ALPN, the previous certificate around a rotation).
CACHE_SIZE = 16


def cached_configurations(build: Callable[[EngineConfig], Any]) -> Callable[[EngineConfig], Any]:
    """``build`` remembered per ``EngineConfig``: every connection of a listener (or every dial)
    has the same one, and building it cost ~40 µs. Neither library changes a configuration
    after construction, so connections share it; never modify one. A qlog configuration is
    built afresh (its writer is per configuration)."""
    cached = functools.lru_cache(maxsize=CACHE_SIZE)(build)

    @functools.wraps(build)
    def configuration(config: EngineConfig) -> Any:
        if config.qlog_dir is not None:
            return build(config)
        return cached(config)

    return configuration


def cached_identities(load_identity: IdentityLoader) -> IdentityLoader:
    """``load_identity`` remembered per certificate: each server connection loaded its identity
    again (~35-65 µs, twice on a socket shared by two ALPNs). The loaded objects are immutable;
    a failure is not remembered."""
    return functools.lru_cache(maxsize=CACHE_SIZE)(load_identity)


_keylogs: dict[str, TextIO] = {}


def keylog(path: str) -> TextIO:
    """The NSS key log file at ``path``, opened for appending once per process (every
    connection shares it; it stays open: it is written until the process ends)."""
    file = _keylogs.get(path)
    if file is None or file.closed:
        file = _keylogs[path] = open(path, "a", encoding="ascii")  # noqa: SIM115
    return file


def identity_der(certificate: bytes, key: bytes, role: str = "server") -> tuple[bytes, bytes]:
    """A certificate and its key as DER (PEM input converted); ``EngineError`` if unusable."""
    try:
        return der_certificate(certificate), der_private_key(key)
    except Exception as exc:  # cryptography's PEM loaders raise several types
        raise EngineError(f"unusable {role} certificate or key: {exc}") from exc


def alpn_identities(
    config: EngineConfig, load_identity: IdentityLoader
) -> dict[str, tuple[Any, Any]]:
    """The server's per-ALPN certificates (``EngineConfig.alpn_certificates``), loaded."""
    return {
        alpn: load_identity(*identity_der(certificate, key))
        for alpn, certificate, key in config.alpn_certificates
    }


def der_certificate(data: bytes) -> bytes:
    """The certificate as DER; PEM input (one certificate) is converted."""
    if data.lstrip().startswith(b"-----BEGIN"):
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return data


def der_private_key(data: bytes) -> bytes:
    """The private key as PKCS#8 DER; PEM input is converted."""
    if data.lstrip().startswith(b"-----BEGIN"):
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
            load_pem_private_key,
        )

        key = load_pem_private_key(data, None)
        return key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return data
