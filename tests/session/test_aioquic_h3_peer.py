"""Interop with an independent WebTransport implementation: aioquic's own ``H3Connection``
(draft-02, ``enable_webtransport=True``) over a bare aioquic ``QuicConnection``, as client against
our server (on each of our engines) and as server against our client.

aioquic's H3 layer does not register the receive side of a WebTransport stream it opens itself
(FACTS.md: a reply kills its connection), so no test replies on a stream aioquic opened.
"""

from __future__ import annotations

import ssl
from typing import Any

from aioquic.h3.connection import H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived, WebTransportStreamDataReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_der_private_key
from support.h3pair import CERT, Pair

from py_libp2p_webtransport.session import (
    SessionClosed,
    SessionEstablished,
    SessionRequested,
    StreamDataReceived,
    StreamOpened,
)

PATH = b"/.well-known/libp2p-webtransport?type=noise"


def _aioquic(is_client: bool, odcid: bytes | None = None) -> QuicConnection:
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=["h3"],
        max_datagram_frame_size=65536,
        verify_mode=ssl.CERT_NONE,
    )
    if not is_client:
        config.certificate = x509.load_der_x509_certificate(CERT[0])
        config.private_key = load_der_private_key(CERT[1], None)
    return QuicConnection(configuration=config, original_destination_connection_id=odcid)


def _h3_events(h3: H3Connection, quic_events: list[Any]) -> list[Any]:
    out: list[Any] = []
    for event in quic_events:
        out.extend(h3.handle_event(event))
    return out


def test_aioquic_h3_client_against_our_server(engine: str) -> None:
    quic = _aioquic(is_client=True)
    pair = Pair(engine, client_h3=False, client_engine=quic)
    pair.pump()
    h3 = H3Connection(quic, enable_webtransport=True)
    _h3_events(h3, pair.client.take())
    sid = quic.get_next_available_stream_id()
    h3.send_headers(
        sid,
        [
            (b":method", b"CONNECT"),
            (b":scheme", b"https"),
            (b":authority", b"127.0.0.1:4001"),
            (b":path", PATH),
            (b":protocol", b"webtransport"),
        ],
    )
    pair.pump()
    server = pair.server.h3
    assert server is not None
    [requested] = pair.server.take()
    assert isinstance(requested, SessionRequested) and requested.protocol == "webtransport"
    server.accept_session(sid)
    pair.pump()
    assert pair.server.take() == [SessionEstablished(sid)]
    [response] = _h3_events(h3, pair.client.take())
    assert isinstance(response, HeadersReceived)
    assert response.headers == [(b":status", b"200")] and not response.stream_ended

    # aioquic opens a uni and a bidi stream; we read both.
    uni = h3.create_webtransport_stream(sid, is_unidirectional=True)
    quic.send_stream_data(uni, b"uni from aioquic", end_stream=True)
    bidi = h3.create_webtransport_stream(sid)
    quic.send_stream_data(bidi, b"bidi from aioquic")
    pair.pump()
    assert pair.server.take() == [
        StreamOpened(sid, uni, False),
        StreamDataReceived(uni, b"uni from aioquic", True),
        StreamOpened(sid, bidi, True),
        StreamDataReceived(bidi, b"bidi from aioquic", False),
    ]
    # We open streams towards aioquic; it sees the payload with our headers stripped.
    ours_bidi = server.open_stream(sid)
    ours_uni = server.open_stream(sid, bidirectional=False)
    server.send_stream_data(ours_bidi, b"bidi from us", end_stream=True)
    server.send_stream_data(ours_uni, b"uni from us", end_stream=True)
    pair.pump()
    received = _h3_events(h3, pair.client.take())
    assert all(isinstance(e, WebTransportStreamDataReceived) for e in received)
    assert sorted((e.stream_id, e.data, e.stream_ended, e.session_id) for e in received) == sorted(
        [(ours_bidi, b"bidi from us", True, sid), (ours_uni, b"uni from us", True, sid)]
    )

    # Our close capsule reaches aioquic as DATA on the CONNECT stream, then FIN.
    server.close_session(sid, 0x1234, "bye")
    pair.pump()
    assert pair.server.take() == [SessionClosed(sid, 0x1234, "bye", False)]
    on_connect = [
        e for e in _h3_events(h3, pair.client.take()) if getattr(e, "stream_id", None) == sid
    ]
    assert (
        b"".join(e.data for e in on_connect if isinstance(e, DataReceived))
        == bytes.fromhex("6843 07 00001234") + b"bye"
    )
    assert on_connect[-1].stream_ended


def test_our_client_against_aioquic_h3_server(engine: str) -> None:
    servers: list[QuicConnection] = []

    def factory(odcid: bytes) -> QuicConnection:
        servers.append(_aioquic(is_client=False, odcid=odcid))
        return servers[-1]

    pair = Pair(engine, server_h3=False, server_factory=factory)
    pair.pump()
    quic = servers[0]
    h3 = H3Connection(quic, enable_webtransport=True)
    _h3_events(h3, pair.server.take())
    pair.pump()  # aioquic's SETTINGS reach our client
    client = pair.client.h3
    assert client is not None
    sid = client.connect("127.0.0.1:4001", PATH.decode(), pair.now)
    pair.pump()
    [request] = _h3_events(h3, pair.server.take())
    assert isinstance(request, HeadersReceived)
    assert (b":protocol", b"webtransport") in request.headers
    h3.send_headers(sid, [(b":status", b"200")])
    pair.pump()
    assert pair.client.take() == [SessionEstablished(sid)]

    stream = client.open_stream(sid)
    client.send_stream_data(stream, b"ping")
    pair.pump()
    [data] = _h3_events(h3, pair.server.take())
    assert isinstance(data, WebTransportStreamDataReceived)
    assert (data.stream_id, data.data, data.session_id) == (stream, b"ping", sid)
    quic.send_stream_data(stream, b"pong", end_stream=True)  # aioquic replies on our stream
    pushed = h3.create_webtransport_stream(sid)
    quic.send_stream_data(pushed, b"from aioquic", end_stream=True)
    pair.pump()
    assert pair.client.take() == [
        StreamDataReceived(stream, b"pong", True),
        StreamOpened(sid, pushed, True),
        StreamDataReceived(pushed, b"from aioquic", True),
    ]
