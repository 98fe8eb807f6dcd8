"""Our server against hand-driven clients: Chromium-shaped (draft-02), webtransport-go v0.11-shaped
(draft-15), and clients that break the rules. The client side is a bare engine and every byte it
sends is written here, independently of the code under test.
"""

from __future__ import annotations

import pytest
from support.h3pair import (
    CHROMIUM_SETTINGS,
    GO_V011_SETTINGS,
    Pair,
    RawPeer,
    frame,
    settings_frame,
    split_frames,
    varint,
)

from py_libp2p_webtransport.constants import H3ErrorCode
from py_libp2p_webtransport.session import (
    ConnectionClosed,
    H3Config,
    SessionClosed,
    SessionDraining,
    SessionEstablished,
    SessionRequested,
    StreamDataReceived,
    StreamOpened,
)

PATH = b"/.well-known/libp2p-webtransport?type=noise"
GONE = 0x170D7B68
BUFFERED_REJECTED = 0x3994BD84
# Stream signals are varints: 0x41 and 0x54 take two bytes (0x40 prefix).
WT_BIDI = b"\x40\x41"
WT_UNI = b"\x40\x54"


def chromium_connect(path: bytes = PATH) -> list[tuple[bytes, bytes]]:
    """Chromium 156's extended CONNECT for WebTransport draft-02 (FACTS.md)."""
    return [
        (b":method", b"CONNECT"),
        (b":scheme", b"https"),
        (b":authority", b"127.0.0.1:4001"),
        (b":path", path),
        (b":protocol", b"webtransport"),
        (b"sec-webtransport-http3-draft02", b"1"),
        (b"origin", b"http://localhost:8000"),
    ]


def go_connect() -> list[tuple[bytes, bytes]]:
    """webtransport-go v0.11's extended CONNECT (draft-15: ``webtransport-h3``, no origin)."""
    return [
        (b":method", b"CONNECT"),
        (b":protocol", b"webtransport-h3"),
        (b":scheme", b"https"),
        (b":authority", b"127.0.0.1:4001"),
        (b":path", PATH),
    ]


def raw_client(engine: str, config: H3Config | None = None) -> tuple[Pair, RawPeer]:
    pair = Pair(engine, client_h3=False, server_config=config)
    pair.pump()  # handshake; the server's SETTINGS arrive at the raw client
    return pair, RawPeer(pair, pair.client)


def connect(pair: Pair, peer: RawPeer, headers: list[tuple[bytes, bytes]]) -> int:
    """Send the CONNECT on stream 0 (named explicitly: tests may open stream 4 first)."""
    peer.send(0, peer.headers(0, headers))
    pair.pump()
    return 0


def establish_raw(pair: Pair, peer: RawPeer, settings: dict[int, int]) -> int:
    peer.start(settings)
    sid = connect(pair, peer, chromium_connect())
    assert pair.server.h3 is not None
    assert [type(e) for e in pair.server.take()] == [SessionRequested]
    pair.server.h3.accept_session(sid)
    pair.pump()
    assert pair.server.take() == [SessionEstablished(sid)]
    return sid


def server_uni_streams(peer: RawPeer) -> dict[int, bytes]:
    return {sid: peer.data(sid) for sid in peer.stream_ids() if sid % 4 == 3}


# ---- what the server sends ----------------------------------------


def test_server_settings_bytes_on_the_wire(engine: str) -> None:
    pair, peer = raw_client(engine, H3Config(grease_setting_id=None))
    streams = server_uni_streams(peer)
    assert sorted(streams.values()) == sorted(
        [
            bytes.fromhex(
                "00"  # control stream
                "04 17"  # SETTINGS, 23 bytes
                "0100 0700"  # QPACK capacity 0, blocked streams 0
                "0801 3301"  # ENABLE_CONNECT_PROTOCOL, H3_DATAGRAM
                "ab603742 01"  # draft-02 ENABLE_WEBTRANSPORT
                "ac7cf000 01"  # draft-15 WT_ENABLED
                "94e9cd29 01"  # WT_MAX_SESSIONS
            ),
            b"\x02",  # QPACK encoder stream
            b"\x03",  # QPACK decoder stream
        ]
    )


def test_server_settings_carry_grease(engine: str) -> None:
    grease = 0x1F * 1000 + 0x21
    pair, peer = raw_client(engine, H3Config(grease_setting_id=grease))
    control = next(d for d in server_uni_streams(peer).values() if d[:1] == b"\x00")
    assert control.endswith(varint(grease) + b"\x00")


# ---- both drafts against the same server configuration ----------------------------------------


@pytest.mark.parametrize(
    ("settings", "headers", "protocol", "origin"),
    [
        (CHROMIUM_SETTINGS, chromium_connect(), "webtransport", "http://localhost:8000"),
        (GO_V011_SETTINGS, go_connect(), "webtransport-h3", None),
    ],
    ids=["chromium-draft02", "go-v0.11-draft15"],
)
def test_client_shapes_are_accepted(
    engine: str,
    settings: dict[int, int],
    headers: list[tuple[bytes, bytes]],
    protocol: str,
    origin: str | None,
) -> None:
    pair, peer = raw_client(engine)
    peer.start(settings)
    sid = connect(pair, peer, headers)
    assert pair.server.h3 is not None
    assert pair.server.take() == [
        SessionRequested(sid, "127.0.0.1:4001", PATH.decode(), protocol, origin, tuple(headers))
    ]
    assert peer.data(sid) == b""  # the 200 waits for the application
    pair.server.h3.accept_session(sid)
    pair.pump()
    assert pair.server.take() == [SessionEstablished(sid)]
    # HEADERS, 3 bytes: QPACK prefix 00 00, then static-table entry 25 (":status: 200").
    assert peer.data(sid) == bytes.fromhex("01 03 0000 d9")
    assert not peer.ended(sid)

    # A client bidi stream: 0x41 <session id>, then raw bytes both ways.
    wt = peer.open(WT_BIDI + varint(sid) + b"ping", uni=False)
    pair.pump()
    assert pair.server.take() == [
        StreamOpened(sid, wt, True),
        StreamDataReceived(wt, b"ping", False),
    ]
    pair.server.h3.send_stream_data(wt, b"pong", end_stream=True)
    # Server-opened streams start with their header.
    bidi = pair.server.h3.open_stream(sid)
    uni = pair.server.h3.open_stream(sid, bidirectional=False)
    pair.server.h3.send_stream_data(bidi, b"b")
    pair.server.h3.send_stream_data(uni, b"u", end_stream=True)
    pair.pump()
    assert (peer.data(wt), peer.ended(wt)) == (b"pong", True)
    assert peer.data(bidi) == WT_BIDI + varint(sid) + b"b"
    assert (peer.data(uni), peer.ended(uni)) == (WT_UNI + varint(sid) + b"u", True)


def test_connect_waits_for_client_settings(engine: str) -> None:
    pair, peer = raw_client(engine)
    sid = connect(pair, peer, chromium_connect())  # CONNECT before any SETTINGS
    assert pair.server.take() == []
    peer.start(CHROMIUM_SETTINGS)
    pair.pump()
    assert [type(e) for e in pair.server.take()] == [SessionRequested]
    assert pair.server.h3 is not None
    pair.server.h3.accept_session(sid)
    pair.pump()
    assert pair.server.take() == [SessionEstablished(sid)]


@pytest.mark.parametrize(
    ("path", "status"),
    [(b"/nope?type=noise", b"404"), (b"/.well-known/libp2p-webtransport?type=x", b"400")],
)
def test_bad_paths_get_a_final_status(engine: str, path: bytes, status: bytes) -> None:
    pair, peer = raw_client(engine)
    peer.start(CHROMIUM_SETTINGS)
    sid = connect(pair, peer, chromium_connect(path))
    assert pair.server.take() == []
    [(frame_type, block)] = split_frames(peer.data(sid))
    assert peer.decode_headers(sid, block) == [(b":status", status)]
    assert peer.ended(sid)
    if status == b"404":  # static-table entry 27 (":status: 404")
        assert peer.data(sid) == bytes.fromhex("01 03 0000 db")


def test_refused_requests_are_forgotten(engine: str) -> None:
    pair, peer = raw_client(engine)
    peer.start(CHROMIUM_SETTINGS)
    for _ in range(10):
        stream = peer.open(peer.headers(0, chromium_connect(b"/nope")), uni=False, end=True)
        pair.pump()
        assert peer.ended(stream)
    assert pair.server.h3 is not None
    assert pair.server.h3._requests == {}  # noqa: SLF001  (no state kept per refused request)


def test_second_connect_is_answered_429(engine: str) -> None:
    pair, peer = raw_client(engine)
    establish_raw(pair, peer, CHROMIUM_SETTINGS)
    second = peer.open(peer.headers(4, chromium_connect()), uni=False)
    pair.pump()
    assert pair.server.take() == []
    [(_, block)] = split_frames(peer.data(second))
    assert peer.decode_headers(second, block) == [(b":status", b"429")]


def test_malformed_request_is_a_stream_error(engine: str) -> None:
    pair, peer = raw_client(engine)
    peer.start(CHROMIUM_SETTINGS)
    headers = [(b":Method", b"CONNECT"), *chromium_connect()[1:]]
    sid = connect(pair, peer, headers)
    assert pair.server.take() == []
    assert peer.signals(sid) == [
        ("reset", H3ErrorCode.H3_MESSAGE_ERROR),
        ("stop", H3ErrorCode.H3_MESSAGE_ERROR),
    ]
    assert peer.close_code() is None  # the connection lives on


# ---- streams that arrive before their session ----------------------------------------


def test_stream_before_connect_is_held_then_delivered(engine: str) -> None:
    pair, peer = raw_client(engine)
    peer.start(CHROMIUM_SETTINGS)
    peer.send(0, b"")  # reserve stream 0 for the CONNECT, sent later
    peer.send(4, WT_BIDI + b"\x00early", end=False)  # stream 4 names session 0, not yet requested
    pair.pump()
    assert pair.server.take() == []
    assert pair.server.h3 is not None and pair.server.h3.get_timer() is not None
    sid = connect(pair, peer, chromium_connect())
    assert [type(e) for e in pair.server.take()] == [SessionRequested]
    pair.server.h3.accept_session(sid)
    pair.pump()
    assert pair.server.take() == [
        SessionEstablished(sid),
        StreamOpened(sid, 4, True),
        StreamDataReceived(4, b"early", False),
    ]
    peer.send(4, b" and late", end=True)
    pair.pump()
    assert pair.server.take() == [StreamDataReceived(4, b" and late", True)]


def test_held_stream_is_rejected_after_the_deadline(engine: str) -> None:
    pair, peer = raw_client(engine, H3Config(pending_stream_timeout=5.0))
    peer.start(CHROMIUM_SETTINGS)
    peer.send(0, b"")  # reserve stream 0 for the CONNECT, sent later
    peer.send(4, WT_BIDI + b"\x00early")
    uni = peer.open(WT_UNI + b"\x00one-way", uni=True)
    pair.pump()
    pair.advance(4.0)
    assert peer.signals(4) == [] and peer.signals(uni) == []
    pair.advance(1.5)
    assert peer.signals(4) == [("reset", BUFFERED_REJECTED), ("stop", BUFFERED_REJECTED)]
    assert peer.signals(uni) == [("stop", BUFFERED_REJECTED)]
    assert pair.server.take() == []
    assert pair.server.h3 is not None and pair.server.h3.get_timer() is None
    # A CONNECT after the deadline opens the session without the rejected streams.
    sid = connect(pair, peer, chromium_connect())
    pair.server.take()
    pair.server.h3.accept_session(sid)
    pair.pump()
    assert pair.server.take() == [SessionEstablished(sid)]


def test_held_stream_limits(engine: str) -> None:
    config = H3Config(max_pending_streams=1, max_pending_bytes=10)
    pair, peer = raw_client(engine, config)
    peer.start(CHROMIUM_SETTINGS)
    peer.send(0, b"")  # reserve stream 0 for the CONNECT, sent later
    peer.send(4, WT_BIDI + b"\x00" + b"x" * 8)
    peer.send(8, WT_BIDI + b"\x00y")  # over the count limit
    pair.pump()
    assert peer.signals(8) == [("reset", BUFFERED_REJECTED), ("stop", BUFFERED_REJECTED)]
    assert peer.signals(4) == []
    peer.send(4, b"zzz")  # 11 bytes held: over the byte limit
    pair.pump()
    assert peer.signals(4) == [("reset", BUFFERED_REJECTED), ("stop", BUFFERED_REJECTED)]


def test_stream_for_a_refused_session_is_rejected(engine: str) -> None:
    pair, peer = raw_client(engine)
    peer.start(CHROMIUM_SETTINGS)
    connect(pair, peer, chromium_connect(b"/wrong?type=noise"))
    peer.send(4, WT_BIDI + b"\x00data")
    pair.pump()
    assert peer.signals(4) == [("reset", BUFFERED_REJECTED), ("stop", BUFFERED_REJECTED)]
    assert pair.server.take() == []


# ---- closing ----------------------------------------


def test_close_capsule_from_client_ends_streams_with_session_gone(engine: str) -> None:
    pair, peer = raw_client(engine)
    sid = establish_raw(pair, peer, CHROMIUM_SETTINGS)
    wt = peer.open(WT_BIDI + b"\x00hi", uni=False)
    pair.pump()
    pair.server.take()
    capsule = bytes.fromhex("6843 07 00001234") + b"bye"  # CLOSE_WEBTRANSPORT_SESSION
    peer.send(sid, frame(0x0, capsule), end=True)
    pair.pump()
    assert pair.server.take() == [SessionClosed(sid, 0x1234, "bye", True)]
    assert peer.ended(sid)  # the server answered with FIN
    assert peer.signals(wt) == [("reset", GONE), ("stop", GONE)]


def test_reset_of_connect_stream_closes_the_session(engine: str) -> None:
    pair, peer = raw_client(engine)
    sid = establish_raw(pair, peer, CHROMIUM_SETTINGS)
    wt = peer.open(WT_BIDI + b"\x00", uni=False)
    pair.pump()
    pair.server.take()
    peer.engine.reset_stream(sid, H3ErrorCode.H3_REQUEST_CANCELLED)
    pair.pump()
    [closed] = pair.server.take()
    assert isinstance(closed, SessionClosed)
    assert (closed.session_id, closed.error_code, closed.remote) == (sid, 0, True)
    assert peer.signals(wt) == [("reset", GONE), ("stop", GONE)]


def test_client_gives_up_before_the_answer(engine: str) -> None:
    pair, peer = raw_client(engine)
    peer.start(CHROMIUM_SETTINGS)
    sid = connect(pair, peer, chromium_connect())
    assert [type(e) for e in pair.server.take()] == [SessionRequested]
    peer.send(sid, b"", end=True)
    pair.pump()
    assert pair.server.take() == [SessionClosed(sid, 0, "", True)]
    # No response can follow a cancelled request: the server resets its side.
    assert peer.signals(sid) == [("reset", H3ErrorCode.H3_REQUEST_CANCELLED)]
    # An application that answers late (same batch of events) is not an error.
    assert pair.server.h3 is not None
    pair.server.h3.accept_session(sid)
    pair.server.h3.reject_session(sid, 403)
    pair.pump()
    assert pair.server.take() == [] and peer.data(sid) == b""


def test_request_without_headers_is_incomplete(engine: str) -> None:
    pair, peer = raw_client(engine)
    peer.start(CHROMIUM_SETTINGS)
    stream = peer.open(frame(0x21, b"grease"), uni=False, end=True)
    pair.pump()
    assert peer.signals(stream) == [("reset", H3ErrorCode.H3_REQUEST_INCOMPLETE)]
    assert pair.server.take() == [] and peer.close_code() is None


def test_request_held_before_settings_is_bounded(engine: str) -> None:
    pair, peer = raw_client(engine, H3Config(max_frame_payload=1000))
    peer.send(0, frame(0x21, b"x" * 1200))  # a big (GREASE) frame before any SETTINGS
    pair.pump()
    assert peer.signals(0) == [
        ("reset", H3ErrorCode.H3_EXCESSIVE_LOAD),
        ("stop", H3ErrorCode.H3_EXCESSIVE_LOAD),
    ]
    assert peer.close_code() is None


def test_data_in_flight_after_close_is_drained(engine: str) -> None:
    pair, peer = raw_client(engine)
    sid = establish_raw(pair, peer, CHROMIUM_SETTINGS)
    wt = peer.open(WT_BIDI + b"\x00first", uni=False)
    uni = peer.open(WT_UNI + b"\x00first", uni=True)
    pair.pump()
    pair.server.take()
    assert pair.server.h3 is not None
    pair.server.h3.close_session(sid, 9, "")
    # Sent before the client learns of the close: must be drained, never parsed as new streams.
    peer.send(wt, b"\x01\x05later")
    peer.send(uni, b"\x00\x04later", end=True)
    pair.pump()
    assert pair.server.take() == [SessionClosed(sid, 9, "", False)]
    assert peer.close_code() is None


def test_data_after_stop_sending_is_drained(engine: str) -> None:
    pair, peer = raw_client(engine)
    sid = establish_raw(pair, peer, CHROMIUM_SETTINGS)
    wt = peer.open(WT_BIDI + varint(sid) + b"first", uni=False)
    uni = peer.open(WT_UNI + varint(sid) + b"first", uni=True)
    pair.pump()
    pair.server.take()
    assert pair.server.h3 is not None
    pair.server.h3.stop_sending(wt, 3)
    pair.server.h3.stop_sending(uni, 3)
    peer.send(wt, b"\x00\x04later")  # in flight before the STOP_SENDING arrives
    peer.send(uni, b"\x01\x05later")
    pair.pump()
    assert pair.server.take() == []
    assert peer.close_code() is None
    # The stopped stream still carries the server's direction.
    pair.server.h3.send_stream_data(wt, b"reply", end_stream=True)
    pair.pump()
    assert peer.data(wt) == b"reply" and peer.ended(wt)


def test_fin_on_connect_stream_closes_the_session(engine: str) -> None:
    pair, peer = raw_client(engine)
    sid = establish_raw(pair, peer, GO_V011_SETTINGS)
    peer.send(sid, b"", end=True)
    pair.pump()
    assert pair.server.take() == [SessionClosed(sid, 0, "", True)]


def test_server_close_capsule_bytes(engine: str) -> None:
    pair, peer = raw_client(engine)
    sid = establish_raw(pair, peer, CHROMIUM_SETTINGS)
    assert pair.server.h3 is not None
    pair.server.h3.close_session(sid, 0x1234, "bye")
    pair.pump()
    frames = split_frames(peer.data(sid))
    assert frames[1:] == [(0x0, bytes.fromhex("6843 07 00001234") + b"bye")]
    assert peer.ended(sid)


@pytest.mark.parametrize(
    "capsule",
    [
        bytes.fromhex("6843 02 0000"),
        bytes.fromhex("6843 05 00000000 ff"),
        # Declares 70000 bytes (> max_frame_payload): refused at its header, before buffering.
        bytes.fromhex("6843 80011170") + b"\x00" * 1000,
    ],
    ids=["close-too-short", "close-bad-utf8", "close-oversized"],
)
def test_malformed_close_capsule_is_a_stream_error(engine: str, capsule: bytes) -> None:
    pair, peer = raw_client(engine)
    sid = establish_raw(pair, peer, CHROMIUM_SETTINGS)
    wt = peer.open(WT_BIDI + b"\x00", uni=False)
    pair.pump()
    pair.server.take()
    peer.send(sid, frame(0x0, capsule))
    pair.pump()
    [closed] = pair.server.take()
    assert isinstance(closed, SessionClosed)
    assert (closed.session_id, closed.error_code, closed.remote) == (sid, 0, True)
    assert closed.message.startswith("malformed capsule")
    assert peer.signals(sid) == [
        ("reset", H3ErrorCode.H3_MESSAGE_ERROR),
        ("stop", H3ErrorCode.H3_MESSAGE_ERROR),
    ]
    assert peer.signals(wt) == [("reset", GONE), ("stop", GONE)]
    assert peer.close_code() is None


def test_drain_capsule(engine: str) -> None:
    pair, peer = raw_client(engine)
    sid = establish_raw(pair, peer, CHROMIUM_SETTINGS)
    # An unknown capsule first (skipped), then DRAIN_WEBTRANSPORT_SESSION (0x78ae).
    peer.send(sid, frame(0x0, bytes.fromhex("4123 02 abcd") + bytes.fromhex("800078ae 00")))
    pair.pump()
    assert pair.server.take() == [SessionDraining(sid)]


def test_goaway_drains_the_session(engine: str) -> None:
    pair, peer = raw_client(engine)
    peer.start(CHROMIUM_SETTINGS)  # control stream is the client's first uni stream: id 2
    sid = connect(pair, peer, chromium_connect())
    assert pair.server.h3 is not None
    pair.server.take()
    pair.server.h3.accept_session(sid)
    pair.pump()
    pair.server.take()
    # GREASE frame (skipped), then GOAWAY, on the control stream.
    peer.send(2, frame(0x21 + 0x1F * 2, b"xyz") + frame(0x7, varint(0)))
    pair.pump()
    assert pair.server.take() == [SessionDraining(sid)]
    assert peer.close_code() is None


# ---- malformed input: connection errors ----------------------------------------


def _control(settings_bytes: bytes) -> bytes:
    return b"\x00" + settings_bytes


MALFORMED = {
    "http2-setting": ([("uni", _control(settings_frame({0x2: 1})))], H3ErrorCode.H3_SETTINGS_ERROR),
    "duplicate-setting": (
        [("uni", _control(frame(0x4, b"\x33\x01\x33\x01")))],
        H3ErrorCode.H3_SETTINGS_ERROR,
    ),
    "truncated-settings": ([("uni", _control(frame(0x4, b"\x33")))], H3ErrorCode.H3_FRAME_ERROR),
    "control-starts-without-settings": (
        [("uni", _control(frame(0x7, b"\x00")))],
        H3ErrorCode.H3_MISSING_SETTINGS,
    ),
    "second-settings": (
        [("uni", _control(settings_frame({0x33: 1}) + settings_frame({0x33: 1})))],
        H3ErrorCode.H3_FRAME_UNEXPECTED,
    ),
    "data-on-control": (
        [("uni", _control(settings_frame({0x33: 1}) + frame(0x0, b"x")))],
        H3ErrorCode.H3_FRAME_UNEXPECTED,
    ),
    "http2-frame-on-control": (
        [("uni", _control(settings_frame({0x33: 1}) + frame(0x6, b"12345678")))],
        H3ErrorCode.H3_FRAME_UNEXPECTED,
    ),
    "duplicate-control-stream": (
        [("uni", _control(settings_frame({0x33: 1}))), ("uni", _control(settings_frame({})))],
        H3ErrorCode.H3_STREAM_CREATION_ERROR,
    ),
    "duplicate-qpack-stream": (
        [("uni", b"\x02"), ("uni", b"\x02")],
        H3ErrorCode.H3_STREAM_CREATION_ERROR,
    ),
    "control-stream-closed": (
        [("uni-fin", _control(settings_frame({0x33: 1})))],
        H3ErrorCode.H3_CLOSED_CRITICAL_STREAM,
    ),
    "push-stream-from-client": ([("uni", b"\x01\x00")], H3ErrorCode.H3_STREAM_CREATION_ERROR),
    "bad-session-id-bidi": ([("bidi", WT_BIDI + b"\x01data")], H3ErrorCode.H3_ID_ERROR),
    "bad-session-id-uni": ([("uni", WT_UNI + b"\x02data")], H3ErrorCode.H3_ID_ERROR),
    "truncated-request-frame": ([("bidi-fin", b"\x01\x32abc")], H3ErrorCode.H3_FRAME_ERROR),
    "settings-on-request-stream": ([("bidi", frame(0x4, b""))], H3ErrorCode.H3_FRAME_UNEXPECTED),
    "oversized-headers": ([("bidi", b"\x01" + varint(70000) + b"x" * 100)], 0x107),
    "undecodable-headers": ([("bidi", frame(0x1, b"\x00\x00\xff\xff"))], 0x200),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_closes_the_connection(engine: str, case: str) -> None:
    actions, code = MALFORMED[case]
    pair, peer = raw_client(engine)
    if not any(kind.startswith("uni") and data[:1] == b"\x00" for kind, data in actions):
        peer.start({0x33: 1})  # valid SETTINGS, so the bytes under test are what fails
    for kind, data in actions:
        peer.open(data, uni=kind.startswith("uni"), end=kind.endswith("-fin"))
    pair.pump()
    events = pair.server.take()
    assert [(type(e), e.error_code) for e in events] == [(ConnectionClosed, code)]
    assert peer.close_code() == code


def test_wt_frame_inside_a_request_stream(engine: str) -> None:
    pair, peer = raw_client(engine)
    sid = establish_raw(pair, peer, CHROMIUM_SETTINGS)
    peer.send(sid, WT_BIDI + b"\x00")  # 0x41 is only valid as the first bytes of a stream
    pair.pump()
    assert [(type(e), e.error_code) for e in pair.server.take()] == [
        (ConnectionClosed, H3ErrorCode.H3_FRAME_ERROR)
    ]
    assert peer.close_code() == H3ErrorCode.H3_FRAME_ERROR


def test_missing_settings_times_out(engine: str) -> None:
    pair, peer = raw_client(engine, H3Config(settings_timeout=10.0))
    pair.advance(9.0)
    assert peer.close_code() is None
    pair.advance(1.5)
    assert peer.close_code() == H3ErrorCode.H3_MISSING_SETTINGS
    assert [(type(e), e.error_code) for e in pair.server.take()] == [
        (ConnectionClosed, H3ErrorCode.H3_MISSING_SETTINGS)
    ]


def test_unknown_uni_stream_is_stopped_not_fatal(engine: str) -> None:
    pair, peer = raw_client(engine)
    peer.start(CHROMIUM_SETTINGS)
    grease = peer.open(varint(0x1F * 5 + 0x21) + b"whatever", uni=True)
    pair.pump()
    assert peer.signals(grease) == [("stop", H3ErrorCode.H3_STREAM_CREATION_ERROR)]
    assert peer.close_code() is None
    sid = connect(pair, peer, chromium_connect())
    assert [type(e) for e in pair.server.take()] == [SessionRequested]
    assert sid == 0


def test_close_capsule_and_connection_close_in_one_flight(engine: str) -> None:
    """Firefox closes the session and the QUIC connection at once: the server's engine is
    already closed when the capsule is handled, so there is no FIN to answer with; the session
    still ends cleanly (no error out of the session layer)."""
    pair, peer = raw_client(engine)
    sid = establish_raw(pair, peer, CHROMIUM_SETTINGS)
    capsule = bytes.fromhex("6843 07 00001234") + b"bye"  # CLOSE_WEBTRANSPORT_SESSION
    peer.send(sid, frame(0x0, capsule), end=True)
    flight = [d for d, _ in peer.engine.datagrams_to_send(pair.now)]
    peer.engine.close(0x100, "bye")
    flight += [d for d, _ in peer.engine.datagrams_to_send(pair.now)]
    for datagram in flight:  # both reach the server before it handles any event
        pair.server.engine.receive_datagram(datagram, pair.client.addr, pair.now)
    pair.pump()
    events = pair.server.take()
    assert events[0] == SessionClosed(sid, 0x1234, "bye", True)
    assert isinstance(events[-1], ConnectionClosed)
