"""A Retry between real engines, in memory: the client follows our Retry packet, and the server
engine built from the token's contents (original DCID, Retry's CID) passes the client's checks of
the transport parameters (RFC 9000 §7.3). Every engine pair, plus a Chromium-like client
(zero-length source CID) against qh3, whose workaround must use the Retry's CID."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.enginepair import CLIENT_ADDR, SERVER_ADDR, ServerCertificate
from test_zero_length_cid import chromium_like_client

from py_libp2p_webtransport.endpoint.quic_header import LongPacketType, parse_header
from py_libp2p_webtransport.endpoint.retry import AddressValidator
from py_libp2p_webtransport.engine import (
    ConnectionTerminated,
    EngineConfig,
    HandshakeCompleted,
    QuicEngine,
    StreamDataReceived,
    create_engine,
)

CLIENTS: dict[str, Callable[[EngineConfig], QuicEngine]] = {
    "qh3": lambda config: create_engine("qh3", config),
    "aioquic": lambda config: create_engine("aioquic", config),
    "chromium-like": chromium_like_client(),
}
COMBINATIONS = [
    ("qh3", "qh3"),
    ("qh3", "aioquic"),
    ("aioquic", "qh3"),
    ("aioquic", "aioquic"),
    ("chromium-like", "qh3"),
    ("chromium-like", "aioquic"),
]


def _retry_then_server(
    client_name: str,
    server_name: str,
    cert: ServerCertificate,
    *,
    pass_retry_cid: bool = True,
) -> tuple[QuicEngine, QuicEngine, float]:
    """Client's first flight -> our Retry -> client's second flight -> a server engine."""
    now = 100.0
    validator = AddressValidator("always", 0)
    client = CLIENTS[client_name](EngineConfig(is_client=True))
    client.connect(SERVER_ADDR, now)
    first = [d for d, _ in client.datagrams_to_send(now)]
    header = parse_header(first[0], 8)
    assert validator.validate(first[0], header, CLIENT_ADDR, now) is None  # no token yet
    retry = validator.retry_packet(header, CLIENT_ADDR, now)
    assert parse_header(retry, 8).packet_type is LongPacketType.RETRY
    now += 0.001
    client.receive_datagrams([retry], SERVER_ADDR, now)
    second = [d for d, _ in client.datagrams_to_send(now)]
    second_header = parse_header(second[0], 8)
    token = validator.validate(second[0], second_header, CLIENT_ADDR, now)
    assert token is not None, "the client did not send our token back"
    assert token.original_destination_cid == header.destination_cid
    server = create_engine(
        server_name,
        EngineConfig(
            is_client=False,
            certificate_der=cert.certificate_der,
            private_key_der=cert.private_key_der,
        ),
        original_destination_connection_id=token.original_destination_cid,
        retry_source_connection_id=second_header.destination_cid if pass_retry_cid else None,
    )
    server.receive_datagrams(second, CLIENT_ADDR, now)
    return client, server, now


def _run(client: QuicEngine, server: QuicEngine, now: float) -> tuple[list[object], list[object]]:
    """Exchange until both are quiet and no timer is due within 1 s; bounded."""
    events: tuple[list[object], list[object]] = ([], [])
    sides = ((client, SERVER_ADDR, events[0]), (server, CLIENT_ADDR, events[1]))
    for _ in range(300):
        moved = 0
        for (engine, _, seen), (peer, from_addr, _) in (
            (sides[0], sides[1]),
            (sides[1], sides[0]),
        ):
            out = [d for d, _ in engine.datagrams_to_send(now)]
            if out:
                peer.receive_datagrams(out, from_addr, now)
                moved += len(out)
            while (event := engine.next_event()) is not None:
                seen.append(event)
                if isinstance(event, StreamDataReceived):
                    engine.consume(event.stream_id, len(event.data))
        for engine, _, seen in sides:
            while (event := engine.next_event()) is not None:
                seen.append(event)
        if any(isinstance(e, ConnectionTerminated) for e in events[0] + events[1]):
            break
        if not moved:
            timers = [t for t in (client.get_timer(), server.get_timer()) if t is not None]
            if not timers or min(timers) > now + 1.0:
                break
            now = max(now, min(timers))
            for engine, _, _ in sides:
                timer = engine.get_timer()
                if timer is not None and timer <= now:
                    engine.handle_timer(now)
        else:
            now += 0.0001
    return events


@pytest.mark.parametrize(
    ("client_name", "server_name"), COMBINATIONS, ids=[f"{c}-to-{s}" for c, s in COMBINATIONS]
)
def test_handshake_and_stream_after_retry(
    client_name: str, server_name: str, cert: ServerCertificate
) -> None:
    client, server, now = _retry_then_server(client_name, server_name, cert)
    client_events, server_events = _run(client, server, now)
    assert any(isinstance(e, HandshakeCompleted) for e in client_events), client_events[-3:]
    assert any(isinstance(e, HandshakeCompleted) for e in server_events)
    assert not any(isinstance(e, ConnectionTerminated) for e in client_events + server_events)
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, b"after retry", end_stream=True)
    _, server_events = _run(client, server, now + 1)
    got = b"".join(
        e.data for e in server_events if isinstance(e, StreamDataReceived) and e.stream_id == sid
    )
    assert got == b"after retry"


@pytest.mark.parametrize("server_name", ["qh3", "aioquic"])
def test_client_refuses_a_server_that_hides_the_retry(
    server_name: str, cert: ServerCertificate
) -> None:
    """Without ``retry_source_connection_id`` the server's transport parameters do not match
    the Retry the client followed: the client must abort (so passing it really matters)."""
    client, server, now = _retry_then_server("aioquic", server_name, cert, pass_retry_cid=False)
    client_events, _ = _run(client, server, now)
    assert not any(isinstance(e, HandshakeCompleted) for e in client_events)
    closes = [e for e in client_events if isinstance(e, ConnectionTerminated)]
    assert closes and "retry_source_connection_id" in closes[0].reason
