"""Our client against our server over two real QUIC engines, with exact event sequences."""

from __future__ import annotations

import pytest
from support.h3pair import Pair, establish

from py_libp2p_webtransport.errors import LocalProtocolError
from py_libp2p_webtransport.session import (
    ConnectionClosed,
    SessionClosed,
    SessionEstablished,
    SessionRejected,
    SessionRequested,
    StopSendingReceived,
    StreamDataReceived,
    StreamOpened,
    StreamReset,
)

WT_FIRST = 0x52E4A40FA8DB  # draft-16 §4.4: h = first + n + n // 0x1e


def test_session_established(engine: str) -> None:
    pair = Pair(engine)
    pair.pump()
    assert pair.client.h3 is not None and pair.server.h3 is not None
    sid = pair.client.h3.connect(
        "node.example:4001",
        "/.well-known/libp2p-webtransport?type=noise",
        pair.now,
        origin="https://app.example",
    )
    pair.pump()
    (requested,) = pair.server.take()
    assert isinstance(requested, SessionRequested)
    assert (requested.session_id, requested.authority, requested.path) == (
        sid,
        "node.example:4001",
        "/.well-known/libp2p-webtransport?type=noise",
    )
    # Our server offers draft-02, so our client speaks it, Chromium-style.
    assert requested.protocol == "webtransport"
    assert requested.origin == "https://app.example"
    assert (b"sec-webtransport-http3-draft02", b"1") in requested.headers
    assert pair.client.take() == []  # nothing until the server answers
    pair.server.h3.accept_session(sid)
    pair.pump()
    assert pair.server.take() == [SessionEstablished(sid)]
    assert pair.client.take() == [SessionEstablished(sid)]


def test_connect_before_server_settings_waits_for_them(engine: str) -> None:
    pair = Pair(engine)
    assert pair.client.h3 is not None
    # Called before a single datagram moved: the CONNECT must wait for the server's SETTINGS.
    sid = pair.client.h3.connect("a", "/.well-known/libp2p-webtransport?type=noise", pair.now)
    assert pair.client.h3.peer_settings is None
    pair.pump()
    assert [type(e) for e in pair.server.take()] == [SessionRequested]
    assert pair.server.h3 is not None
    pair.server.h3.accept_session(sid)
    pair.pump()
    assert pair.client.take() == [SessionEstablished(sid)]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/elsewhere?type=noise", 404),
        ("/.well-known/libp2p-webtransport", 400),
        ("/.well-known/libp2p-webtransport?type=tls", 400),
    ],
)
def test_server_refuses_bad_paths(engine: str, path: str, status: int) -> None:
    pair = Pair(engine)
    assert pair.client.h3 is not None
    pair.pump()
    sid = pair.client.h3.connect("a", path, pair.now)
    pair.pump()
    assert pair.server.take() == []  # answered by the layer, the application never sees it
    assert pair.client.take() == [SessionRejected(sid, status, f"HTTP status {status}")]
    with pytest.raises(LocalProtocolError):
        pair.client.h3.open_stream(sid)


def test_application_rejects_session(engine: str) -> None:
    pair = Pair(engine)
    pair.pump()
    assert pair.client.h3 is not None and pair.server.h3 is not None
    sid = pair.client.h3.connect("a", "/.well-known/libp2p-webtransport?type=noise", pair.now)
    pair.pump()
    pair.server.take()
    pair.server.h3.reject_session(sid, 403)
    pair.pump()
    assert pair.client.take() == [SessionRejected(sid, 403, "HTTP status 403")]
    with pytest.raises(LocalProtocolError):
        pair.server.h3.accept_session(sid)  # already answered
    with pytest.raises(LocalProtocolError):
        pair.server.h3.reject_session(sid, 200)


def test_streams_both_ways(engine: str) -> None:
    pair = Pair(engine)
    sid = establish(pair)
    client, server = pair.client.h3, pair.server.h3
    assert client is not None and server is not None

    c_bidi = client.open_stream(sid)
    c_uni = client.open_stream(sid, bidirectional=False)
    client.send_stream_data(c_bidi, b"ping")
    client.send_stream_data(c_uni, b"one-way", end_stream=True)
    pair.pump()
    assert pair.server.take() == [
        StreamOpened(sid, c_bidi, True),
        StreamDataReceived(c_bidi, b"ping", False),
        StreamOpened(sid, c_uni, False),
        StreamDataReceived(c_uni, b"one-way", True),
    ]
    server.send_stream_data(c_bidi, b"pong", end_stream=True)
    s_bidi = server.open_stream(sid)
    s_uni = server.open_stream(sid, bidirectional=False)
    server.send_stream_data(s_bidi, b"from server")
    server.send_stream_data(s_uni, b"", end_stream=True)
    pair.pump()
    assert pair.client.take() == [
        StreamDataReceived(c_bidi, b"pong", True),
        StreamOpened(sid, s_bidi, True),
        StreamDataReceived(s_bidi, b"from server", False),
        StreamOpened(sid, s_uni, False),
        StreamDataReceived(s_uni, b"", True),
    ]
    # Stream ids follow QUIC's rules for each initiator and direction (RFC 9000 §2.1).
    assert (c_bidi % 4, c_uni % 4, s_bidi % 4, s_uni % 4) == (0, 2, 1, 3)
    with pytest.raises(LocalProtocolError):
        client.send_stream_data(s_uni, b"not ours to write")  # a peer uni stream is read-only
    with pytest.raises(LocalProtocolError):
        client.send_stream_data(999, b"no such stream")


def test_big_payload_arrives_intact(engine: str) -> None:
    pair = Pair(engine)
    sid = establish(pair)
    client = pair.client.h3
    assert client is not None
    payload = bytes(range(256)) * 1024  # 256 KiB: many packets
    stream = client.open_stream(sid)
    client.send_stream_data(stream, payload, end_stream=True)
    pair.pump(max_rounds=2000)
    received = [e for e in pair.server.take() if isinstance(e, StreamDataReceived)]
    assert b"".join(e.data for e in received) == payload
    assert received[-1].end_stream


@pytest.mark.parametrize("code", [0, 42, 0x1E, 0xFF, 0xFFFFFFFF])
def test_reset_and_stop_codes_are_mapped_both_ways(engine: str, code: int) -> None:
    pair = Pair(engine)
    sid = establish(pair)
    client, server = pair.client.h3, pair.server.h3
    assert client is not None and server is not None
    reset, stopped = client.open_stream(sid), client.open_stream(sid)
    client.send_stream_data(reset, b"x")
    client.send_stream_data(stopped, b"y")
    pair.pump()
    pair.server.take()
    raw = WT_FIRST + code + code // 0x1E
    client.reset_stream(reset, code)
    server.stop_sending(stopped, code)
    pair.pump()
    assert pair.server.take() == [StreamReset(reset, code, raw)]
    assert pair.client.take() == [StopSendingReceived(stopped, code, raw)]


def test_reset_answering_our_stop_sending_is_not_reported(engine: str) -> None:
    pair = Pair(engine)
    sid = establish(pair)
    client, server = pair.client.h3, pair.server.h3
    assert client is not None and server is not None
    stream = client.open_stream(sid)
    client.send_stream_data(stream, b"x")
    pair.pump()
    pair.server.take()
    server.stop_sending(stream, 5)
    pair.pump()
    assert pair.client.take() == [StopSendingReceived(stream, 5, WT_FIRST + 5)]
    client.reset_stream(stream, 5)  # what a peer does on STOP_SENDING (RFC 9000 §3.5)
    pair.pump()
    assert pair.server.take() == []


def test_a_stream_the_peer_stopped_is_forgotten_once_its_other_side_ends(
    engine: str,
) -> None:
    # The engine answers STOP_SENDING with RESET_STREAM itself: our direction is over, so the
    # stream must not stay in the session's table for the connection's lifetime.
    pair = Pair(engine)
    sid = establish(pair)
    client, server = pair.client.h3, pair.server.h3
    assert client is not None and server is not None
    stream = client.open_stream(sid)
    client.send_stream_data(stream, b"x")
    pair.pump()
    server.send_stream_data(stream, b"y", end_stream=True)  # the server's direction ends
    server.stop_sending(stream, 5)  # and it stops ours
    pair.pump()
    events = pair.client.take()
    assert StopSendingReceived(stream, 5, WT_FIRST + 5) in events
    assert StreamDataReceived(stream, b"y", True) in events
    assert client.live_streams == 0
    with pytest.raises(LocalProtocolError):
        client.send_stream_data(stream, b"late")


def test_close_by_client(engine: str) -> None:
    pair = Pair(engine)
    sid = establish(pair)
    client, server = pair.client.h3, pair.server.h3
    assert client is not None and server is not None
    stream = server.open_stream(sid)
    server.send_stream_data(stream, b"x")
    pair.pump()
    pair.client.take()
    pair.server.take()
    client.close_session(sid, 0x47415445, "GATE")
    pair.pump()
    assert pair.client.take() == [SessionClosed(sid, 0x47415445, "GATE", False)]
    assert pair.server.take() == [SessionClosed(sid, 0x47415445, "GATE", True)]
    for h3 in (client, server):
        with pytest.raises(LocalProtocolError):
            h3.open_stream(sid)
        with pytest.raises(LocalProtocolError):
            h3.send_stream_data(stream, b"after close")
    client.close_session(sid)  # closing twice is a no-op
    pair.pump()
    assert pair.client.take() == [] and pair.server.take() == []


def test_close_by_server_with_long_message(engine: str) -> None:
    pair = Pair(engine)
    sid = establish(pair)
    server = pair.server.h3
    assert server is not None
    message = "é" * 512  # 1024 bytes of UTF-8: the largest message allowed
    server.close_session(sid, 7, message)
    pair.pump()
    assert pair.server.take() == [SessionClosed(sid, 7, message, False)]
    assert pair.client.take() == [SessionClosed(sid, 7, message, True)]


def test_one_session_per_connection(engine: str) -> None:
    pair = Pair(engine)
    establish(pair)
    assert pair.client.h3 is not None
    with pytest.raises(LocalProtocolError):
        pair.client.h3.connect("a", "/.well-known/libp2p-webtransport?type=noise", pair.now)


def test_quic_close_ends_the_session(engine: str) -> None:
    pair = Pair(engine)
    sid = establish(pair)
    pair.client.take()
    pair.server.take()
    pair.client.engine.close(0x100, "bye")
    pair.pump()
    server_events = pair.server.take()
    assert server_events[0] == SessionClosed(sid, 0, "bye", True)
    assert isinstance(server_events[1], ConnectionClosed)
    assert (server_events[1].error_code, server_events[1].remote) == (0x100, True)
    assert len(server_events) == 2


def test_finished_streams_are_forgotten(engine: str) -> None:
    pair = Pair(engine)
    sid = establish(pair)
    client, server = pair.client.h3, pair.server.h3
    assert client is not None and server is not None
    streams = [client.open_stream(sid) for _ in range(20)]
    streams += [client.open_stream(sid, bidirectional=False) for _ in range(5)]
    for stream in streams:
        client.send_stream_data(stream, b"req", end_stream=True)
    pair.pump()
    assert server.live_streams == 20  # the bidi ones still have the server's direction open
    assert client.live_streams == 20
    for stream in streams[:20]:
        server.send_stream_data(stream, b"resp", end_stream=True)
    pair.pump()
    assert (client.live_streams, server.live_streams) == (0, 0)
    # Late signals for finished streams are no-ops, writes are refused.
    client.reset_stream(streams[0], 1)
    client.stop_sending(streams[0], 1)
    with pytest.raises(LocalProtocolError):
        client.send_stream_data(streams[0], b"late")
    pair.pump()
    assert pair.server.take()[-1] == StreamDataReceived(streams[-1], b"req", True)
    assert pair.client.take()[-1] == StreamDataReceived(streams[19], b"resp", True)
    assert pair.client.take() == [] and pair.server.take() == []


def test_bad_local_arguments_raise_before_anything_is_sent(engine: str) -> None:
    pair = Pair(engine)
    sid = establish(pair)
    client = pair.client.h3
    assert client is not None
    stream = client.open_stream(sid)
    with pytest.raises(LocalProtocolError):
        client.close_session(sid, 0, "x" * 1025)  # the close message is capped at 1024 bytes
    with pytest.raises(LocalProtocolError):
        client.close_session(sid, 1 << 32)  # session codes are 32-bit
    with pytest.raises(LocalProtocolError):
        client.reset_stream(stream, 1 << 32)  # so are stream codes
    with pytest.raises(LocalProtocolError):
        client.open_stream(sid + 4)  # no such session
    with pytest.raises(LocalProtocolError):
        client.close_session(sid + 4)
    # Nothing of the above reached the wire: the session and the stream still work.
    client.send_stream_data(stream, b"still here", end_stream=True)
    pair.pump()
    assert pair.server.take() == [
        StreamOpened(sid, stream, True),
        StreamDataReceived(stream, b"still here", True),
    ]


def test_client_stream_right_after_connect_is_held_then_delivered(engine: str) -> None:
    """libp2p's dialer starts Noise right after its CONNECT: one flight, no extra round trip."""
    pair = Pair(engine)
    client = pair.client.h3
    assert client is not None
    sid = client.connect("a", "/.well-known/libp2p-webtransport?type=noise", pair.now)
    with pytest.raises(LocalProtocolError):
        client.open_stream(sid)  # CONNECT not sent yet: no server SETTINGS so far
    pair.pump()  # handshake and SETTINGS; the CONNECT goes out
    assert [type(e) for e in pair.server.take()] == [SessionRequested]
    early = client.open_stream(sid)  # CONNECT sent, no answer yet
    client.send_stream_data(early, b"noise message 1")
    pair.pump()
    server = pair.server.h3
    assert server is not None
    assert pair.server.take() == []  # held until the application accepts the session
    server.accept_session(sid)
    pair.pump()
    assert pair.server.take() == [
        SessionEstablished(sid),
        StreamOpened(sid, early, True),
        StreamDataReceived(early, b"noise message 1", False),
    ]
    assert pair.client.take() == [SessionEstablished(sid)]


def test_early_client_stream_ends_when_the_session_is_rejected(engine: str) -> None:
    pair = Pair(engine)
    pair.pump()
    client, server = pair.client.h3, pair.server.h3
    assert client is not None and server is not None
    sid = client.connect("a", "/.well-known/libp2p-webtransport?type=noise", pair.now)
    early = client.open_stream(sid)
    client.send_stream_data(early, b"noise message 1")
    pair.pump()
    assert [type(e) for e in pair.server.take()] == [SessionRequested]
    server.reject_session(sid, 403)
    pair.pump()
    assert pair.client.take() == [SessionRejected(sid, 403, "HTTP status 403")]
    assert client.live_streams == 0  # ended locally with the session
    with pytest.raises(LocalProtocolError):
        client.send_stream_data(early, b"too late")
    assert pair.server.take() == []  # the held stream was refused, never delivered
