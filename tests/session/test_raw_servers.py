"""Our client against hand-driven servers: what it sends, which servers it accepts, and how it
handles answers, capsules and streams that break the rules.
"""

from __future__ import annotations

import pytest
from support.h3pair import Pair, RawPeer, frame, split_frames, varint

from py_libp2p_webtransport.constants import H3ErrorCode
from py_libp2p_webtransport.session import (
    ConnectionClosed,
    H3Config,
    SessionClosed,
    SessionEstablished,
    SessionRejected,
    StreamDataReceived,
    StreamOpened,
)

PATH = "/.well-known/libp2p-webtransport?type=noise"
OUR_SERVER = {0x08: 1, 0x33: 1, 0x2B603742: 1, 0x2C7CF000: 1, 0x14E9CD29: 1}
WT_BIDI = b"\x40\x41"


def raw_server(engine: str, config: H3Config | None = None) -> tuple[Pair, RawPeer]:
    pair = Pair(engine, server_h3=False, client_config=config)
    pair.pump()  # handshake; creates the server engine
    return pair, RawPeer(pair, pair.server)


def connect(pair: Pair, peer: RawPeer, settings: dict[int, int]) -> int:
    """Server SETTINGS out, client CONNECT in; returns the session id."""
    peer.start(settings)
    pair.pump()
    assert pair.client.h3 is not None
    sid = pair.client.h3.connect("node.example:4001", PATH, pair.now)
    pair.pump()
    return sid


def request_headers(peer: RawPeer, sid: int) -> list[tuple[bytes, bytes]]:
    [(frame_type, block)] = split_frames(peer.data(sid))
    assert frame_type == 0x1
    assert block[:2] == b"\x00\x00"  # Required Insert Count 0, Base 0: no dynamic table
    return peer.decode_headers(sid, block)


def answer(pair: Pair, peer: RawPeer, sid: int, status: bytes, end: bool = False) -> None:
    peer.send(sid, peer.headers(sid, [(b":status", status)]), end=end)
    pair.pump()


def test_client_settings_bytes_on_the_wire(engine: str) -> None:
    pair, peer = raw_server(engine, H3Config(grease_setting_id=None))
    client_uni = {sid: peer.data(sid) for sid in peer.stream_ids() if sid % 4 == 2}
    assert sorted(client_uni.values()) == [
        bytes.fromhex("00 04 10 0100 0700 3301 ab603742 01 ac7cf000 01"),
        b"\x02",
        b"\x03",
    ]


def test_draft02_server_gets_chromium_shaped_connect(engine: str) -> None:
    pair, peer = raw_server(engine)
    sid = connect(pair, peer, OUR_SERVER)
    assert request_headers(peer, sid) == [
        (b":method", b"CONNECT"),
        (b":scheme", b"https"),
        (b":authority", b"node.example:4001"),
        (b":path", PATH.encode()),
        (b":protocol", b"webtransport"),
        (b"sec-webtransport-http3-draft02", b"1"),
    ]
    assert pair.client.take() == []
    answer(pair, peer, sid, b"200")
    assert pair.client.take() == [SessionEstablished(sid)]


def test_draft15_only_server_gets_webtransport_h3(engine: str) -> None:
    pair, peer = raw_server(engine)
    sid = connect(pair, peer, {0x08: 1, 0x33: 1, 0x2C7CF000: 1})
    headers = request_headers(peer, sid)
    assert (b":protocol", b"webtransport-h3") in headers
    assert all(name != b"sec-webtransport-http3-draft02" for name, _ in headers)
    answer(pair, peer, sid, b"200")
    assert pair.client.take() == [SessionEstablished(sid)]


@pytest.mark.parametrize(
    "settings",
    [
        {0x08: 1, 0x33: 1},  # no WebTransport
        {0x33: 1, 0x2B603742: 1, 0x2C7CF000: 1},  # no extended CONNECT
        {0x08: 1, 0x2B603742: 1},  # no H3 datagrams
        {0x08: 1, 0x33: 1, 0xC671706A: 1, 0x14E9CD29: 1},  # other drafts only
    ],
)
def test_server_without_webtransport_is_rejected_without_connect(
    engine: str, settings: dict[int, int]
) -> None:
    pair, peer = raw_server(engine)
    sid = connect(pair, peer, settings)
    assert pair.client.take() == [
        SessionRejected(sid, 0, "server SETTINGS do not offer WebTransport")
    ]
    assert peer.data(sid) == b""  # no CONNECT was ever sent


def test_interim_response_then_200(engine: str) -> None:
    pair, peer = raw_server(engine)
    sid = connect(pair, peer, OUR_SERVER)
    answer(pair, peer, sid, b"103")
    assert pair.client.take() == []
    answer(pair, peer, sid, b"200")
    assert pair.client.take() == [SessionEstablished(sid)]


def test_non_2xx_rejects(engine: str) -> None:
    pair, peer = raw_server(engine)
    sid = connect(pair, peer, OUR_SERVER)
    answer(pair, peer, sid, b"404", end=True)
    assert pair.client.take() == [SessionRejected(sid, 404, "HTTP status 404")]
    assert peer.ended(sid)  # the client finished its side of the CONNECT stream


def test_malformed_response_rejects_and_resets(engine: str) -> None:
    pair, peer = raw_server(engine)
    sid = connect(pair, peer, OUR_SERVER)
    peer.send(sid, peer.headers(sid, [(b"server", b"x")]))
    pair.pump()
    [rejected] = pair.client.take()
    assert isinstance(rejected, SessionRejected) and (rejected.session_id, rejected.status) == (
        sid,
        0,
    )
    assert peer.signals(sid) == [
        ("reset", H3ErrorCode.H3_MESSAGE_ERROR),
        ("stop", H3ErrorCode.H3_MESSAGE_ERROR),
    ]


def test_fin_without_response_rejects(engine: str) -> None:
    pair, peer = raw_server(engine)
    sid = connect(pair, peer, OUR_SERVER)
    peer.send(sid, b"", end=True)
    pair.pump()
    assert pair.client.take() == [SessionRejected(sid, 0, "stream ended without a response")]


def test_server_stream_before_200_is_held_then_delivered(engine: str) -> None:
    pair, peer = raw_server(engine)
    sid = connect(pair, peer, OUR_SERVER)
    stream = peer.open(WT_BIDI + varint(sid) + b"early", uni=False)
    pair.pump()
    assert pair.client.take() == []
    answer(pair, peer, sid, b"200")
    assert pair.client.take() == [
        SessionEstablished(sid),
        StreamOpened(sid, stream, True),
        StreamDataReceived(stream, b"early", False),
    ]


def test_close_capsule_from_server(engine: str) -> None:
    pair, peer = raw_server(engine)
    sid = connect(pair, peer, OUR_SERVER)
    answer(pair, peer, sid, b"200")
    pair.client.take()
    capsule = bytes.fromhex("6843 04 00000000")  # CLOSE_WEBTRANSPORT_SESSION, code 0, no message
    peer.send(sid, frame(0x0, capsule), end=True)
    pair.pump()
    assert pair.client.take() == [SessionClosed(sid, 0, "", True)]
    assert peer.ended(sid)


@pytest.mark.parametrize(
    ("uni", "data", "code"),
    [
        (False, b"\x01\x00", H3ErrorCode.H3_STREAM_CREATION_ERROR),  # a request from a server
        (True, b"\x01\x00", H3ErrorCode.H3_ID_ERROR),  # push without MAX_PUSH_ID
        (False, WT_BIDI + b"\x03", H3ErrorCode.H3_ID_ERROR),  # session id not a client bidi id
    ],
    ids=["server-bidi-request", "push", "bad-session-id"],
)
def test_server_streams_that_break_the_rules(
    engine: str, uni: bool, data: bytes, code: int
) -> None:
    pair, peer = raw_server(engine)
    peer.start(OUR_SERVER)
    peer.open(data, uni=uni)
    pair.pump()
    assert [(type(e), e.error_code) for e in pair.client.take()] == [(ConnectionClosed, code)]
    assert peer.close_code() == code


def test_connect_stream_reset_before_answer_rejects(engine: str) -> None:
    pair, peer = raw_server(engine)
    sid = connect(pair, peer, OUR_SERVER)
    peer.engine.reset_stream(sid, H3ErrorCode.H3_REQUEST_REJECTED)
    pair.pump()
    assert pair.client.take() == [SessionRejected(sid, 0, "CONNECT reset (0x10b)")]
