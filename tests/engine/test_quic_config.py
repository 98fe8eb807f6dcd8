"""One builder (``engine/quic_config.py``) turns ``EngineConfig`` into either library's
``QuicConfiguration``; only identity loading and qh3's hostname switch differ per engine."""

from __future__ import annotations

import importlib
import ssl
from typing import Any

import pytest
from support.enginepair import ServerCertificate

from py_libp2p_webtransport.engine import EngineConfig
from py_libp2p_webtransport.errors import EngineError

ADAPTER_MODULES = {
    "qh3": "py_libp2p_webtransport.engine.qh3.adapter",
    "aioquic": "py_libp2p_webtransport.engine.aioquic",
}
SHARED: dict[str, Any] = {
    "max_datagram_size": 1300,
    "max_data": 3 << 20,
    "max_stream_data": 1 << 20,
    "idle_timeout": 12.5,
    "max_datagram_frame_size": 1200,
    "server_name": "example.org",
}


def build(engine: str, config: EngineConfig) -> Any:
    return importlib.import_module(ADAPTER_MODULES[engine])._configuration(config)


def test_shared_fields_reach_the_library_configuration(engine: str) -> None:
    quic = build(engine, EngineConfig(is_client=True, alpn_protocols=("h3", "x"), **SHARED))
    assert {name: getattr(quic, name) for name in SHARED} == SHARED
    assert quic.alpn_protocols == ["h3", "x"] and quic.is_client
    assert quic.verify_mode == ssl.CERT_NONE  # the transport pins the certhash itself


def test_server_identity_is_loaded_by_the_library(engine: str, cert: ServerCertificate) -> None:
    config = EngineConfig(
        is_client=False, certificate_der=cert.certificate_der, private_key_der=cert.private_key_der
    )
    quic = build(engine, config)
    assert quic.certificate is not None and quic.private_key is not None
    broken_pem = EngineConfig(
        is_client=False, certificate_der=b"-----BEGIN junk", private_key_der=b"junk"
    )
    with pytest.raises(EngineError, match="unusable server certificate or key"):
        build(engine, broken_pem)


def test_configurations_and_identities_are_built_once_per_config(
    engine: str, cert: ServerCertificate, tmp_path: Any
) -> None:
    """Every connection of a listener has the same EngineConfig: the library's configuration
    and the loaded identity are reused, a new certificate (a rotation) gets its own, and a
    qlog configuration (whose writer is its own) is built afresh."""
    from support.enginepair import make_certificate

    module = importlib.import_module(ADAPTER_MODULES[engine])
    server = EngineConfig(
        is_client=False, certificate_der=cert.certificate_der, private_key_der=cert.private_key_der
    )
    first = build(engine, server)
    assert build(engine, server) is first
    # An equal config made separately (as each accept makes one) shares it too.
    assert build(engine, EngineConfig(**vars(server))) is first
    assert module._load_identity(cert.certificate_der, cert.private_key_der) == (
        first.certificate,
        first.private_key,
    )
    rotated = make_certificate()
    other = build(
        engine,
        EngineConfig(
            is_client=False,
            certificate_der=rotated.certificate_der,
            private_key_der=rotated.private_key_der,
        ),
    )
    assert other is not first and other.certificate is not first.certificate
    qlog = EngineConfig(**{**vars(server), "qlog_dir": str(tmp_path)})
    assert build(engine, qlog) is not build(engine, qlog)
