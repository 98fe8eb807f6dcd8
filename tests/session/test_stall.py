"""The stall breaker of the session layer (``session/stall.py``): when unread data has held qh3's
per-connection reception paused for ``stall_timeout`` with nothing consumed, the stream holding
the most unread bytes is aborted with RECEIVE_STALL_ERROR both ways and reported as
``StreamStalled``; the other streams flow again once its bytes are consumed. aioquic's windows are
per stream, so it never pauses and nothing is ever broken there.

Real engines in memory (``support/h3pair.py``), a fake clock; ``StallWatch`` alone at the end.
"""

from __future__ import annotations

from support.h3pair import Pair, establish

from py_libp2p_webtransport import _wire
from py_libp2p_webtransport.constants import RECEIVE_STALL_ERROR
from py_libp2p_webtransport.engine import base as eng
from py_libp2p_webtransport.session import (
    H3Config,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
    StreamStalled,
    WebTransportH3,
)
from py_libp2p_webtransport.session.stall import StallWatch

KiB = 1024
TIMEOUT = 2.0
# A budget well under one stream window: one unread stream is enough to pause qh3's reception.
ENGINE = {"recv_budget": 64 * KiB, "max_stream_data": 256 * KiB, "max_data": 1024 * KiB}


def stalled_pair(engine: str) -> tuple[Pair, int, int, float]:
    """An established pair whose server never reads the client's first stream (200 KiB sent);
    also when the sending started (reception pauses between then and ``pair.now``)."""
    pair = Pair(engine, server_config=H3Config(stall_timeout=TIMEOUT), engine_options=ENGINE)
    session_id = establish(pair)
    client = pair.client.h3
    assert client is not None
    stuck = client.open_stream(session_id)
    pair.server.unread.add(stuck)
    started = pair.now
    client.send_stream_data(stuck, b"s" * (200 * KiB))
    pair.pump()
    return pair, session_id, stuck, started


def server_h3(pair: Pair) -> WebTransportH3:
    assert pair.server.h3 is not None
    return pair.server.h3


def payload(events: list[object], stream_id: int) -> bytes:
    return b"".join(
        e.data for e in events if isinstance(e, StreamDataReceived) and e.stream_id == stream_id
    )


def test_qh3_stall_aborts_the_unread_stream_and_the_others_flow_again() -> None:
    pair, session_id, stuck, started = stalled_pair("qh3")
    server = server_h3(pair)
    timer = server.get_timer()
    assert server.receive_paused and timer is not None
    assert started < timer - TIMEOUT <= pair.now  # the stall deadline counts from the pause
    client = pair.client.h3
    assert client is not None
    other = client.open_stream(session_id)
    client.send_stream_data(other, b"o" * KiB, end_stream=True)
    pair.pump()
    assert payload(pair.server.events, other) == b""  # held back behind the unread stream

    pair.advance(TIMEOUT)
    (stalled,) = [e for e in pair.server.take() if isinstance(e, StreamStalled)]
    assert stalled == StreamStalled(stuck, RECEIVE_STALL_ERROR, server.unread_bytes(stuck))
    assert server.stalls_broken == 1
    # What the glue does with the event: drop the stream's buffered bytes, which resumes reception.
    server.consume(stuck, stalled.unread, pair.now)
    pair.pump()
    assert not server.receive_paused and server.unread_bytes() == 0
    assert payload(pair.server.events, other) == b"o" * KiB
    # The writer learns why on both of its directions.
    code = _wire.wt_to_h3_error(RECEIVE_STALL_ERROR)
    signals = {
        (type(e), e.raw_code) for e in pair.client.take() if getattr(e, "stream_id", None) == stuck
    }
    assert signals == {(StopSendingReceived, code), (StreamReset, code)}


def test_reading_restarts_the_stall_clock() -> None:
    pair, _, stuck, _ = stalled_pair("qh3")
    server = server_h3(pair)
    pair.advance(TIMEOUT * 0.75)
    server.consume(stuck, 1, pair.now)  # progress, but not enough to resume reception
    assert server.receive_paused and server.get_timer() == pair.now + TIMEOUT
    pair.advance(TIMEOUT * 0.75)
    assert server.stalls_broken == 0  # the first deadline passed without a stall
    pair.advance(TIMEOUT * 0.25)
    assert server.stalls_broken == 1


def test_aioquic_never_pauses_so_nothing_is_broken() -> None:
    pair, session_id, stuck, _ = stalled_pair("aioquic")
    server = server_h3(pair)
    client = pair.client.h3
    assert client is not None
    other = client.open_stream(session_id)
    client.send_stream_data(other, b"o" * KiB, end_stream=True)
    pair.pump()
    assert payload(pair.server.events, other) == b"o" * KiB  # per-stream windows
    pair.advance(TIMEOUT * 3)
    assert not server.receive_paused and server.get_timer() is None
    assert server.stalls_broken == 0 and server.unread_bytes(stuck) > 0


class ClosingEngine:
    """Records close(); nothing else of the engine is needed by these calls."""

    receive_paused = False

    def __init__(self) -> None:
        self.closes: list[tuple[int, str]] = []

    def close(self, error_code: int = 0, reason: str = "") -> None:
        self.closes.append((error_code, reason))


def test_close_connection_is_a_no_op_once_the_connection_terminated() -> None:
    engine = ClosingEngine()
    h3 = WebTransportH3(engine, is_client=True)  # type: ignore[arg-type]
    h3.close_connection(7, "first")
    h3.handle_engine_event(eng.ConnectionTerminated(7, "first", remote=False), 1.0)
    h3.close_connection(0, "again")  # the glue closing after the peer's close capsule, say
    assert engine.closes == [(7, "first")]


# ---- StallWatch alone ---------------------------------------------------------------------------


def test_watch_runs_only_while_paused() -> None:
    watch = StallWatch(5.0)
    watch.observe(False, 1.0)
    assert watch.paused_since is None and watch.deadline() is None and not watch.due(100.0)
    watch.observe(True, 2.0)
    watch.observe(True, 3.0)  # still the same pause
    assert watch.deadline() == 7.0 and not watch.due(6.9) and watch.due(7.0)
    watch.progress(True, 4.0)
    assert watch.deadline() == 9.0
    watch.progress(False, 5.0)
    assert watch.paused_since is None


def test_watch_chooses_the_stream_holding_the_most() -> None:
    watch = StallWatch(5.0)
    watch.observe(True, 0.0)
    assert watch.choose({4: 10, 8: 30, 12: 20}) == 8
    watch.broke()
    assert watch.broken == 1 and watch.paused_since is None


def test_watch_with_nothing_to_choose_starts_over() -> None:
    watch = StallWatch(5.0)
    watch.observe(True, 0.0)
    assert watch.choose({}) is None and watch.paused_since is None and watch.broken == 0
    watch.observe(True, 6.0)  # the next observation starts a new pause instead of firing at once
    assert watch.deadline() == 11.0
