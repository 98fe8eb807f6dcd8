"""Flow-control credit: the session layer consumes exactly the bytes that are its own (control,
QPACK and request streams, stream headers) and leaves WebTransport payload to the application.

A unit test of this one layer, so the engine is a recorder: a real engine would hide a missing
or double ``consume`` behind its windows. The pair tests run the same paths over real engines.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pylsqpack
from support.h3pair import CHROMIUM_SETTINGS, frame, settings_frame, varint

from py_libp2p_webtransport.engine.base import StreamDataReceived as EngineData
from py_libp2p_webtransport.session import (
    SessionRequested,
    StreamDataReceived,
    StreamOpened,
    WebTransportH3,
)


class RecordingEngine:
    """Records consume() per stream; every other engine call is accepted and ignored."""

    name = "recorder"
    receive_paused = False  # never over a receive budget: the stall clock stays out of this

    def __init__(self) -> None:
        self.consumed: Counter[int] = Counter()
        self._next = {True: 3, False: 1}

    def consume(self, stream_id: int, n: int) -> None:
        assert n >= 0
        self.consumed[stream_id] += n

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        sid = self._next[is_unidirectional]
        self._next[is_unidirectional] += 4
        return sid

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def feed(h3: WebTransportH3, stream_id: int, data: bytes, end: bool = False) -> None:
    # One byte at a time: headers and frames split at every possible point.
    for i in range(len(data)):
        h3.handle_engine_event(
            EngineData(stream_id, data[i : i + 1], end and i == len(data) - 1), 0.0
        )
    if not data:
        h3.handle_engine_event(EngineData(stream_id, b"", end), 0.0)


def drain(h3: WebTransportH3) -> list[Any]:
    out = []
    while (ev := h3.next_event()) is not None:
        out.append(ev)
    return out


def test_server_consumes_its_own_bytes_and_leaves_payload() -> None:
    engine = RecordingEngine()
    h3 = WebTransportH3(engine, is_client=False)  # type: ignore[arg-type]
    h3.initialize(0.0)
    control = b"\x00" + settings_frame(CHROMIUM_SETTINGS) + frame(0x21, b"grease")
    feed(h3, 2, control)
    feed(h3, 6, b"\x02" + b"\x20")  # QPACK encoder stream: Set Dynamic Table Capacity 0
    feed(h3, 10, b"\x03")
    _, block = pylsqpack.Encoder().encode(
        0,
        [
            (b":method", b"CONNECT"),
            (b":scheme", b"https"),
            (b":authority", b"a"),
            (b":path", b"/.well-known/libp2p-webtransport?type=noise"),
            (b":protocol", b"webtransport"),
        ],
    )
    request = frame(0x1, block)
    feed(h3, 0, request)
    assert [type(e) for e in drain(h3)] == [SessionRequested]
    h3.accept_session(0)
    header = varint(0x41) + varint(0)
    feed(h3, 4, header + b"payload")
    events = drain(h3)
    assert events[1] == StreamOpened(0, 4, True)
    assert b"".join(e.data for e in events if isinstance(e, StreamDataReceived)) == b"payload"
    uni_header = varint(0x54) + varint(0)
    feed(h3, 14, uni_header + b"more", end=True)
    drain(h3)
    assert engine.consumed == {
        2: len(control),
        6: 2,
        10: 1,
        0: len(request),
        4: len(header),  # the payload is the application's to consume
        14: len(uni_header),
    }
    h3.consume(4, 7)
    assert engine.consumed[4] == len(header) + 7


def test_rejected_and_ignored_streams_are_drained() -> None:
    engine = RecordingEngine()
    h3 = WebTransportH3(engine, is_client=False)  # type: ignore[arg-type]
    h3.initialize(0.0)
    feed(h3, 2, b"\x00" + settings_frame({0x33: 1}))
    grease = varint(0x1F * 9 + 0x21) + b"ignored bytes"
    feed(h3, 6, grease, end=True)
    header = varint(0x41) + varint(0)
    held = header + b"held"
    h3.handle_engine_event(EngineData(4, held, False), 0.0)
    assert engine.consumed[4] == len(header)  # only the header while held
    h3.handle_timer(100.0)  # past the 5 s deadline: rejected, held payload credited back
    h3.handle_engine_event(EngineData(4, b"late", True), 0.0)
    assert drain(h3) == []
    assert engine.consumed[6] == len(grease)
    assert engine.consumed[4] == len(held) + 4


def test_data_after_stop_sending_and_close_is_credited_back() -> None:
    engine = RecordingEngine()
    h3 = WebTransportH3(engine, is_client=False)  # type: ignore[arg-type]
    h3.initialize(0.0)
    feed(h3, 2, b"\x00" + settings_frame({0x33: 1}))
    _, block = pylsqpack.Encoder().encode(
        0,
        [
            (b":method", b"CONNECT"),
            (b":scheme", b"https"),
            (b":authority", b"a"),
            (b":path", b"/.well-known/libp2p-webtransport?type=noise"),
            (b":protocol", b"webtransport-h3"),
        ],
    )
    feed(h3, 0, frame(0x1, block))
    h3.accept_session(0)
    header = varint(0x41) + varint(0)
    feed(h3, 4, header + b"a")
    feed(h3, 8, header + b"b")
    drain(h3)
    h3.stop_sending(4, 1)
    feed(h3, 4, b"in flight")
    h3.close_session(0)
    feed(h3, 8, b"also in flight", end=True)
    assert [type(e).__name__ for e in drain(h3)] == ["SessionClosed"]
    # Only the application's own reads ("a", "b") are left for it to consume.
    assert engine.consumed[4] == len(header) + len(b"in flight")
    assert engine.consumed[8] == len(header) + len(b"also in flight")
