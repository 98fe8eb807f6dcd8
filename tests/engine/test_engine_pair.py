"""Engine behaviour through a real client/server pair (every engine combination), in memory."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from support.enginepair import EnginePair, ServerCertificate

from py_libp2p_webtransport.engine import (
    ConnectionIdIssued,
    ConnectionTerminated,
    DatagramReceived,
    EngineConfig,
    HandshakeCompleted,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
    available_engines,
    create_engine,
)
from py_libp2p_webtransport.errors import EngineError, FlowControlError


def payload(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def ended(side_events: list[object], stream_id: int) -> bool:
    return any(
        isinstance(e, StreamDataReceived) and e.stream_id == stream_id and e.end_stream
        for e in side_events
    )


@pytest.fixture
def pair(engine_pair: tuple[str, str], cert: ServerCertificate) -> EnginePair:
    p = EnginePair(*engine_pair, cert)
    p.handshake()
    return p


def test_handshake_completes_with_h3(pair: EnginePair) -> None:
    for side in (pair.client, pair.srv):
        handshakes = side.of_type(HandshakeCompleted)
        assert handshakes == [HandshakeCompleted(alpn_protocol="h3")]


def test_client_sees_server_certificate(pair: EnginePair, cert: ServerCertificate) -> None:
    assert pair.client.engine.peer_certificate_der() == cert.certificate_der


def test_bidi_stream_4mib_both_ways_byte_exact(pair: EnginePair) -> None:
    up, down = payload(4 * 1024 * 1024, 1), payload(4 * 1024 * 1024 + 7, 2)
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, up, end_stream=True)
    pair.run(lambda: ended(pair.srv.events, sid))
    assert pair.srv.stream_bytes(sid) == up
    pair.srv.engine.send_stream_data(sid, down, end_stream=True)
    pair.run(lambda: ended(pair.client.events, sid))
    assert pair.client.stream_bytes(sid) == down


def test_server_opened_stream_reaches_client(pair: EnginePair) -> None:
    sid = pair.srv.engine.get_next_available_stream_id(is_unidirectional=True)
    assert sid & 0x3 == 0x3  # server-initiated unidirectional
    pair.srv.engine.send_stream_data(sid, b"settings", end_stream=False)
    pair.run(lambda: pair.client.stream_bytes(sid) == b"settings")


def test_fin_without_data_is_delivered(pair: EnginePair) -> None:
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, b"abc")
    pair.quiesce()
    pair.client.engine.send_stream_data(sid, b"", end_stream=True)
    pair.run(lambda: ended(pair.srv.events, sid))
    assert pair.srv.stream_bytes(sid) == b"abc"


def test_reset_reaches_peer_with_its_code(pair: EnginePair) -> None:
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, b"partial")
    pair.quiesce()
    pair.client.engine.reset_stream(sid, 0x52E4A40FA8DB)
    pair.run(lambda: bool(pair.srv.of_type(StreamReset)))
    assert pair.srv.of_type(StreamReset) == [StreamReset(sid, 0x52E4A40FA8DB)]
    assert not ended(pair.srv.events, sid)  # a reset is never a clean end of stream


def test_reset_after_everything_was_acknowledged_is_a_no_op(pair: EnginePair) -> None:
    # A handler may reset a stream it already closed; once the peer acknowledged every byte
    # and the FIN there is nothing to abort (RFC 9000 §3.1), and it must not raise.
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, b"done", end_stream=True)
    pair.run(lambda: ended(pair.srv.events, sid))
    pair.srv.engine.send_stream_data(sid, b"bye", end_stream=True)
    pair.run(lambda: ended(pair.client.events, sid))
    pair.settle()
    pair.client.engine.reset_stream(sid, 0x52E4A40FA8DB)
    pair.settle()
    assert pair.srv.stream_bytes(sid) == b"done"
    assert ended(pair.srv.events, sid)


def test_stop_sending_reaches_peer_with_its_code(pair: EnginePair) -> None:
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, b"hello")
    pair.run(lambda: pair.srv.stream_bytes(sid) == b"hello")
    pair.srv.engine.stop_stream(sid, 77)
    pair.run(lambda: bool(pair.client.of_type(StopSendingReceived)))
    assert pair.client.of_type(StopSendingReceived) == [StopSendingReceived(sid, 77)]


def test_close_terminates_the_peer(pair: EnginePair) -> None:
    pair.client.engine.close(0x101, "going away")
    pair.run(
        lambda: (
            bool(pair.srv.of_type(ConnectionTerminated))
            and bool(pair.client.of_type(ConnectionTerminated))
        ),
        max_steps=200,
    )
    assert pair.srv.of_type(ConnectionTerminated) == [
        ConnectionTerminated(0x101, "going away", remote=True)
    ]
    [local] = pair.client.of_type(ConnectionTerminated)
    assert local.remote is False


def test_idle_timeout_fires_through_the_timer(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    pair = EnginePair(
        *engine_pair,
        cert,
        # Without keepalive (test_engine_keepalive.py: with it the pair stays up).
        client_config=EngineConfig(is_client=True, idle_timeout=2.0, keepalive_interval=None),
        server_config=EngineConfig(is_client=False, idle_timeout=2.0, keepalive_interval=None),
    )
    pair.handshake()
    start = pair.now
    # Nobody writes: only timers (and whatever they make the engines send) run.
    pair.run(
        lambda: (
            bool(pair.client.of_type(ConnectionTerminated))
            and bool(pair.srv.of_type(ConnectionTerminated))
        ),
        max_steps=500,
    )
    for side in (pair.client, pair.srv):
        [terminated] = side.of_type(ConnectionTerminated)
        assert terminated.remote is False
    assert pair.now - start > 1.99  # idle time counts from the last packet, just before start


def test_datagrams_both_ways(pair: EnginePair) -> None:
    pair.client.engine.send_datagram(b"ping")
    pair.run(lambda: bool(pair.srv.of_type(DatagramReceived)))
    pair.srv.engine.send_datagram(b"pong")
    pair.run(lambda: bool(pair.client.of_type(DatagramReceived)))
    assert pair.srv.of_type(DatagramReceived) == [DatagramReceived(b"ping")]
    assert pair.client.of_type(DatagramReceived) == [DatagramReceived(b"pong")]


def test_issued_connection_ids_are_routing_keys(pair: EnginePair) -> None:
    issued = [e.connection_id for e in pair.srv.of_type(ConnectionIdIssued)]
    assert issued, "the server must issue spare connection ids"
    host_cids = pair.srv.engine.host_connection_ids
    assert set(issued) <= set(host_cids)
    assert len(set(host_cids)) == len(host_cids)


def test_send_buffer_size_drains_when_acknowledged(pair: EnginePair) -> None:
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, payload(256 * 1024, 3))
    assert pair.client.engine.send_buffer_size(sid) == 256 * 1024
    pair.run(lambda: len(pair.srv.stream_bytes(sid)) == 256 * 1024)
    pair.run(lambda: pair.client.engine.send_buffer_size(sid) == 0)


def test_stats_count_the_transfer(pair: EnginePair) -> None:
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, payload(1024 * 1024, 4), end_stream=True)
    pair.run(lambda: ended(pair.srv.events, sid))
    client, server = pair.client.engine.stats(), pair.srv.engine.stats()
    assert client.bytes_sent > 1024 * 1024 and server.bytes_received == client.bytes_sent
    assert client.packets_sent == server.packets_received > 700
    assert client.rtt > 0 and client.cwnd > 0 and client.packets_lost == 0


def test_stream_limit_is_the_configured_one(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    pair = EnginePair(
        *engine_pair, cert, server_config=EngineConfig(is_client=False, max_streams_bidi=3)
    )
    pair.handshake()
    engine = pair.client.engine
    opened = []
    for _ in range(5):
        sid = engine.get_next_available_stream_id()
        opened.append(sid)
        try:
            engine.send_stream_data(sid, b"x")
        except EngineError:
            break  # an engine may refuse locally instead of queueing: that is fine too
    pair.settle()
    seen = {e.stream_id for e in pair.srv.of_type(StreamDataReceived)}
    assert seen == set(opened[:3])
    assert not pair.client.of_type(ConnectionTerminated)  # the peer knew the limit
    assert not pair.srv.of_type(ConnectionTerminated)


def test_consume_rejects_more_than_delivered(pair: EnginePair) -> None:
    pair.auto_consume = False
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, b"12345")
    pair.run(lambda: pair.srv.stream_bytes(sid) == b"12345")
    with pytest.raises(FlowControlError):
        pair.srv.engine.consume(sid, 6)
    with pytest.raises(FlowControlError):
        pair.srv.engine.consume(sid, -1)
    with pytest.raises(FlowControlError):
        pair.srv.engine.consume(sid + 4, 1)  # never delivered anything
    pair.srv.engine.consume(sid, 5)
    with pytest.raises(FlowControlError):
        pair.srv.engine.consume(sid, 1)


def test_read_accounting_forgets_finished_streams(pair: EnginePair) -> None:
    pair.auto_consume = False
    engine = pair.client.engine
    ended, reset = engine.get_next_available_stream_id(), 4 + engine.get_next_available_stream_id()
    engine.send_stream_data(ended, b"abc", end_stream=True)
    engine.send_stream_data(reset, b"defg")
    pair.run(lambda: len(pair.srv.stream_bytes(reset)) == 4)
    engine.reset_stream(reset, 9)
    pair.run(lambda: bool(pair.srv.of_type(StreamReset)))
    server = pair.srv.engine
    assert (server.unread_bytes(ended), server.unread_bytes(reset)) == (3, 4)
    server.consume(ended, 3)
    server.consume(reset, 4)
    assert server._reads._unread == {}  # type: ignore[attr-defined]  # nothing left behind
    assert server.unread_bytes() == 0


def test_verify_peer_rejects_a_self_signed_server(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    pair = EnginePair(
        *engine_pair,
        cert,
        client_config=EngineConfig(is_client=True, verify_peer=True, server_name="localhost"),
    )
    pair.run(lambda: bool(pair.client.of_type(ConnectionTerminated)), max_steps=2000)
    assert not pair.client.of_type(HandshakeCompleted)
    [terminated] = pair.client.of_type(ConnectionTerminated)
    assert terminated.error_code != 0


def test_datagrams_respect_max_datagram_size(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    pair = EnginePair(
        *engine_pair,
        cert,
        client_config=EngineConfig(is_client=True, max_datagram_size=1300),
        server_config=EngineConfig(is_client=False, max_datagram_size=1250),
    )
    pair.handshake()
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, payload(300_000, 6), end_stream=True)
    pair.run(lambda: ended(pair.srv.events, sid))
    pair.srv.engine.send_stream_data(sid, payload(300_000, 7), end_stream=True)
    pair.run(lambda: ended(pair.client.events, sid))
    assert pair.largest_datagram["server"] == 1250
    # A qh3 client probes the path MTU up to 1472 instead (documented in engine/qh3/adapter.py).
    assert pair.largest_datagram["client"] == (1472 if engine_pair[0] == "qh3" else 1300)


def test_available_engines_and_unknown_name() -> None:
    assert set(available_engines()) == {"qh3", "aioquic"}
    with pytest.raises(EngineError, match="unknown QUIC engine 'quiche'"):
        create_engine("quiche", EngineConfig(is_client=True))


def test_server_needs_certificate_and_dcid(engine: str, cert: ServerCertificate) -> None:
    with pytest.raises(EngineError, match="certificate"):
        create_engine(
            engine,
            EngineConfig(is_client=False),
            original_destination_connection_id=b"12345678",
        )
    server = EngineConfig(
        is_client=False, certificate_der=cert.certificate_der, private_key_der=cert.private_key_der
    )
    with pytest.raises(EngineError, match="destination"):
        create_engine(engine, server)
    quic = create_engine(engine, server, original_destination_connection_id=b"12345678")
    with pytest.raises(EngineError, match="client"):
        quic.connect(("127.0.0.1", 1), 0.0)
    assert quic.original_destination_connection_id == b"12345678"


@pytest.mark.parametrize(
    "bad",
    [
        {"alpn_protocols": ()},
        {"max_datagram_size": 1199},
        {"max_data": 0},
        {"max_stream_data": -1},
        {"idle_timeout": 0},
        {"max_streams_bidi": -1},
        {"max_datagram_frame_size": -1},
        {"recv_budget": -1},
    ],
)
def test_invalid_config_gives_engine_error(engine: str, bad: dict[str, object]) -> None:
    config = replace(EngineConfig(is_client=True), **bad)  # type: ignore[arg-type]
    with pytest.raises(EngineError, match=f"invalid EngineConfig: {next(iter(bad))}"):
        create_engine(engine, config)


def test_pem_certificate_and_key_are_accepted(engine: str, cert: ServerCertificate) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem_cert = x509.load_der_x509_certificate(cert.certificate_der).public_bytes(
        serialization.Encoding.PEM
    )
    pem_key = serialization.load_der_private_key(cert.private_key_der, None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pair = EnginePair(
        engine,
        engine,
        ServerCertificate(pem_cert, pem_key),
    )
    pair.handshake()
    assert pair.client.engine.peer_certificate_der() == cert.certificate_der


def test_missing_private_api_gives_engine_error(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine == "aioquic":
        from aioquic.quic.connection import QuicConnection

        monkeypatch.delattr(QuicConnection, "_write_stream_limits")
        missing = "_write_stream_limits"
    else:
        from qh3.quic.connection import QuicConnection as Qh3Connection

        monkeypatch.delattr(Qh3Connection, "_drain_core")
        missing = "_drain_core"
    with pytest.raises(EngineError, match=f"lacks {missing}"):
        create_engine(engine, EngineConfig(is_client=True))


def test_bad_certificate_bytes_give_engine_error(engine: str) -> None:
    server = EngineConfig(is_client=False, certificate_der=b"junk", private_key_der=b"junk")
    with pytest.raises(EngineError):
        create_engine(engine, server, original_destination_connection_id=b"12345678")


def test_operations_on_unknown_streams_give_engine_error(pair: EnginePair) -> None:
    # Stream 1 is server-initiated bidi and was never opened: the client cannot touch it.
    with pytest.raises(EngineError):
        pair.client.engine.send_stream_data(1 + 4 * 50, b"x")
    with pytest.raises(EngineError):
        pair.client.engine.stop_stream(2, 0)  # our own unidirectional stream: nothing to stop
