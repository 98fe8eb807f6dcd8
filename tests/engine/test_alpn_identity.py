"""One server configuration, two ALPNs: ``h3`` with the certhash certificate, ``libp2p`` with the
libp2p certificate and mutual TLS (``EngineConfig.alpn_certificates``, ``client_auth_alpns``).

Every client/server engine combination, in memory (``enginepair``). qh3's server cannot ask for a
client certificate by itself: ``engine/qh3/client_auth.py`` does it, and these tests fail without.
"""

from __future__ import annotations

import pytest
from support.enginepair import EnginePair, make_certificate

from py_libp2p_webtransport.engine import (
    ConnectionTerminated,
    EngineConfig,
    HandshakeCompleted,
    available_engines,
)

ENGINES = available_engines()
PAIRS = [(c, s) for c in ENGINES for s in ENGINES]


def _server(libp2p: object) -> EngineConfig:
    return EngineConfig(
        is_client=False,
        alpn_protocols=("h3", "libp2p"),
        alpn_certificates=(("libp2p", libp2p.certificate_der, libp2p.private_key_der),),  # type: ignore[attr-defined]
        client_auth_alpns=("libp2p",),
    )


@pytest.mark.parametrize(("client", "server"), PAIRS)
def test_libp2p_alpn_gets_its_certificate_and_the_client_certificate(
    client: str, server: str
) -> None:
    h3_cert, libp2p_cert, client_cert = make_certificate(), make_certificate(), make_certificate()
    client_config = EngineConfig(
        is_client=True,
        alpn_protocols=("libp2p",),
        certificate_der=client_cert.certificate_der,
        private_key_der=client_cert.private_key_der,
    )
    pair = EnginePair(
        client, server, h3_cert, client_config=client_config, server_config=_server(libp2p_cert)
    )
    pair.handshake()
    assert pair.client.of_type(HandshakeCompleted)[0].alpn_protocol == "libp2p"  # type: ignore[attr-defined]
    assert pair.srv.of_type(HandshakeCompleted)[0].alpn_protocol == "libp2p"  # type: ignore[attr-defined]
    assert pair.client.engine.peer_certificate_der() == libp2p_cert.certificate_der
    assert pair.srv.engine.peer_certificate_der() == client_cert.certificate_der
    # Application data flows both ways after the client-authenticated handshake.
    pair.client.engine.send_stream_data(0, b"ping", end_stream=True)
    pair.run(lambda: pair.srv.stream_bytes(0) == b"ping", max_steps=200)
    pair.srv.engine.send_stream_data(0, b"pong", end_stream=True)
    pair.run(lambda: pair.client.stream_bytes(0) == b"pong", max_steps=200)


@pytest.mark.parametrize(("client", "server"), PAIRS)
def test_h3_alpn_keeps_the_default_certificate_and_no_client_auth(client: str, server: str) -> None:
    h3_cert, libp2p_cert = make_certificate(), make_certificate()
    pair = EnginePair(
        client,
        server,
        h3_cert,
        client_config=EngineConfig(is_client=True, alpn_protocols=("h3",)),
        server_config=_server(libp2p_cert),
    )
    pair.handshake()
    assert pair.srv.of_type(HandshakeCompleted)[0].alpn_protocol == "h3"  # type: ignore[attr-defined]
    assert pair.client.engine.peer_certificate_der() == h3_cert.certificate_der
    assert pair.srv.engine.peer_certificate_der() is None


@pytest.mark.parametrize(("client", "server"), PAIRS)
def test_client_without_certificate_has_none_on_the_server(client: str, server: str) -> None:
    # The server asks; a client with nothing to show sends an empty Certificate. aioquic's
    # server then completes without one (the glue refuses the connection: no certificate);
    # our qh3 workaround refuses at once with bad_certificate.
    h3_cert, libp2p_cert = make_certificate(), make_certificate()
    pair = EnginePair(
        client,
        server,
        h3_cert,
        client_config=EngineConfig(is_client=True, alpn_protocols=("libp2p",)),
        server_config=_server(libp2p_cert),
    )
    pair.run(
        lambda: (
            pair.server is not None
            and bool(pair.srv.of_type(HandshakeCompleted) or pair.srv.of_type(ConnectionTerminated))
        ),
        max_steps=400,
    )
    assert pair.srv.engine.peer_certificate_der() is None


@pytest.mark.parametrize(("client", "server"), PAIRS)
def test_no_common_alpn_is_refused_with_a_tls_alert(client: str, server: str) -> None:
    pair = EnginePair(
        client,
        server,
        make_certificate(),
        client_config=EngineConfig(is_client=True, alpn_protocols=("smtp",)),
        server_config=_server(make_certificate()),
    )
    pair.run(lambda: bool(pair.client.of_type(ConnectionTerminated)), max_steps=400)
    closed = pair.client.of_type(ConnectionTerminated)[0]
    # A TLS alert travels as CRYPTO_ERROR 0x100 + alert (RFC 9001 §4.8): aioquic sends
    # no_application_protocol (120), qh3 handshake_failure (40).
    assert closed.error_code in (0x100 + 120, 0x100 + 40), closed  # type: ignore[attr-defined]
    assert not pair.client.of_type(HandshakeCompleted)


@pytest.mark.parametrize(("client", "server"), PAIRS)
def test_client_certificate_verify_with_the_wrong_key_is_refused(client: str, server: str) -> None:
    # The client shows one certificate and signs CertificateVerify with another key: the
    # server's check of the signature (engine/qh3/client_auth.py on qh3) refuses it with a TLS
    # alert, and no handshake completes on the server.
    shown, signer = make_certificate(), make_certificate()
    pair = EnginePair(
        client,
        server,
        make_certificate(),
        client_config=EngineConfig(
            is_client=True,
            alpn_protocols=("libp2p",),
            certificate_der=shown.certificate_der,
            private_key_der=signer.private_key_der,
        ),
        server_config=_server(make_certificate()),
    )
    pair.run(
        lambda: pair.server is not None and bool(pair.srv.of_type(ConnectionTerminated)),
        max_steps=2000,
    )
    closed = pair.srv.of_type(ConnectionTerminated)[0]
    assert 0x100 <= closed.error_code < 0x200, closed  # type: ignore[attr-defined]  # a TLS alert
    assert not pair.srv.of_type(HandshakeCompleted)
