"""Arbitrary bytes on any stream never crash the session layer: every outcome is an event
(a connection error included), never an exception, and the layer stays usable afterwards."""

from __future__ import annotations

import pylsqpack
from hypothesis import given, settings
from hypothesis import strategies as st
from support.h3pair import CHROMIUM_SETTINGS, frame, settings_frame
from test_credit import RecordingEngine

from py_libp2p_webtransport.engine.base import StopSendingReceived as EngineStop
from py_libp2p_webtransport.engine.base import StreamDataReceived as EngineData
from py_libp2p_webtransport.engine.base import StreamReset as EngineReset
from py_libp2p_webtransport.session import WebTransportH3, events

EVENT_TYPES = tuple(
    getattr(events, name)
    for name in events.__dict__
    if name[0].isupper() and name != "SessionEvent"
)
# Client bidi (0, 4, 8), client uni (2, 6, 10), server bidi/uni (1, 3) from the server's view.
STREAM_IDS = st.sampled_from([0, 1, 2, 3, 4, 6, 8, 10])
_, _CONNECT_BLOCK = pylsqpack.Encoder().encode(
    0,
    [
        (b":method", b"CONNECT"),
        (b":scheme", b"https"),
        (b":authority", b"a"),
        (b":path", b"/.well-known/libp2p-webtransport?type=noise"),
        (b":protocol", b"webtransport"),
    ],
)
# Valid beginnings (SETTINGS, a CONNECT, stream headers) so the fuzzer reaches every state.
PREFIXES = st.sampled_from(
    [
        b"",
        b"\x00" + settings_frame(CHROMIUM_SETTINGS),
        b"\x00" + settings_frame({0x08: 1, 0x33: 1, 0x2B603742: 1}),
        frame(0x1, _CONNECT_BLOCK),
        frame(0x1, b"\x00\x00\xd9"),  # :status 200 (static table)
        frame(0x0, b"\x68\x43\x04\x00\x00\x00\x01"),  # a close capsule
        b"\x40\x41\x00",
        b"\x40\x54\x00",
        b"\x02",
        b"\x03",
    ]
)
ACTIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("data"),
            STREAM_IDS,
            PREFIXES,
            st.one_of(st.just(b""), st.binary(max_size=40)),
            st.booleans(),
        ),
        st.tuples(st.just("wt"), st.sampled_from([0, 4, 8, 2, 6]), st.binary(max_size=20)),
        st.tuples(st.just("reset"), STREAM_IDS, st.integers(0, (1 << 62) - 1)),
        st.tuples(st.just("stop"), STREAM_IDS, st.integers(0, (1 << 62) - 1)),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(is_client=st.booleans(), prelude=st.booleans(), actions=ACTIONS)
def test_arbitrary_input_only_produces_events(
    is_client: bool, prelude: bool, actions: list[tuple[object, ...]]
) -> None:
    h3 = WebTransportH3(RecordingEngine(), is_client=is_client)  # type: ignore[arg-type]
    h3.initialize(0.0)
    if prelude:  # a valid start, so the actions also hit established sessions
        control = b"\x00" + settings_frame(CHROMIUM_SETTINGS | {0x08: 1})
        h3.handle_engine_event(EngineData(3 if is_client else 2, control, False), 0.0)
        if is_client:
            h3.connect("a", "/.well-known/libp2p-webtransport?type=noise", 0.0)
            h3.handle_engine_event(EngineData(0, frame(0x1, b"\x00\x00\xd9"), False), 0.0)
        else:
            h3.handle_engine_event(EngineData(0, frame(0x1, _CONNECT_BLOCK), False), 0.0)
            h3.accept_session(0)
    accepted = {0} if prelude and not is_client else set()
    now = 0.0
    seen: list[object] = []
    connected = prelude
    for action in actions:
        now += 1.0
        if action[0] == "data":
            _, sid, prefix, payload, end = action
            h3.handle_engine_event(EngineData(sid, prefix + payload, end), now)  # type: ignore[operator]
        elif action[0] == "wt":  # a well-formed WT stream of session 0 opened by the peer
            offset, payload = action[1], action[2]
            sid = offset + 4 + (1 if is_client else 0)  # a peer-initiated id past stream 0
            header = b"\x40\x54\x00" if sid & 2 else b"\x40\x41\x00"
            h3.handle_engine_event(EngineData(sid, header + payload, False), now)  # type: ignore[operator]
        elif action[0] == "reset":
            h3.handle_engine_event(EngineReset(action[1], action[2]), now)  # type: ignore[arg-type]
        else:
            h3.handle_engine_event(EngineStop(action[1], action[2]), now)  # type: ignore[arg-type]
        timer = h3.get_timer()
        if timer is not None and timer <= now:
            h3.handle_timer(now)
        while (ev := h3.next_event()) is not None:
            assert isinstance(ev, EVENT_TYPES)
            seen.append(ev)
            if isinstance(ev, events.SessionRequested) and ev.session_id not in accepted:
                accepted.add(ev.session_id)
                h3.accept_session(ev.session_id)
        closed = any(isinstance(e, events.ConnectionClosed) for e in seen)
        if is_client and not connected and not closed and h3.peer_settings is not None:
            h3.connect("a", "/.well-known/libp2p-webtransport?type=noise", now)
            connected = True
    closes = [e for e in seen if isinstance(e, events.ConnectionClosed)]
    assert len(closes) <= 1
    if closes:
        assert closes[-1] == seen[-1]  # nothing after a connection error
        assert h3.get_timer() is None
