"""qh3: the per-connection receive budget bounds what an unread connection takes (issue 7).

qh3 2.1.0 returns credit when events are popped from its native core and its facade pops them
all at once, so without the budget a receiver that never reads still takes everything (the
first test shows it, and fails if qh3 ever starts to follow reads by itself: then the budget
could be dropped). With it, delivery stops within one connection window past the budget.
"""

from __future__ import annotations

import random

import pytest
from support.enginepair import EnginePair, ServerCertificate

from py_libp2p_webtransport.engine import (
    ConnectionTerminated,
    DatagramReceived,
    EngineConfig,
    StreamDataReceived,
    available_engines,
)

MIB = 1024 * 1024
WINDOW = MIB  # max_data and max_stream_data of the receiver
BUDGET = 2 * MIB
TOTAL = 8 * MIB


def data(n: int) -> bytes:
    return random.Random(n).randbytes(n)


@pytest.fixture(params=available_engines())
def sender(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_pair(sender: str, cert: ServerCertificate, budget: int = BUDGET) -> EnginePair:
    pair = EnginePair(
        sender,
        "qh3",
        cert,
        server_config=EngineConfig(
            is_client=False, max_data=WINDOW, max_stream_data=WINDOW, recv_budget=budget
        ),
        auto_consume=False,
    )
    pair.handshake()
    return pair


def delivered(pair: EnginePair) -> int:
    return sum(len(e.data) for e in pair.srv.of_type(StreamDataReceived))


def test_qh3_without_budget_credit_follows_arrival(sender: str, cert: ServerCertificate) -> None:
    pair = make_pair(sender, cert, budget=1 << 62)
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, data(TOTAL), end_stream=True)
    pair.settle()
    assert delivered(pair) == TOTAL  # nothing was consumed, yet all of it came in


def test_qh3_budget_stops_a_receiver_that_never_reads(sender: str, cert: ServerCertificate) -> None:
    pair = make_pair(sender, cert)
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, data(TOTAL), end_stream=True)
    pair.settle()
    engine = pair.srv.engine
    assert BUDGET < delivered(pair) <= BUDGET + WINDOW
    assert engine.receive_paused
    assert engine.unread_streams() == {sid: engine.unread_bytes()}  # what the stall breaker reads
    assert engine._quic._core.has_events  # type: ignore[attr-defined]  # held in the core
    assert pair.client.engine.send_buffer_size(sid) > 0  # the rest waits at the sender


def test_qh3_consuming_resumes_until_everything_arrives(
    sender: str, cert: ServerCertificate
) -> None:
    pair = make_pair(sender, cert)
    sid = pair.client.engine.get_next_available_stream_id()
    sent = data(TOTAL)
    pair.client.engine.send_stream_data(sid, sent, end_stream=True)
    consumed = 0
    for _ in range(100):
        pair.settle()
        assert pair.srv.engine.unread_bytes() <= BUDGET + WINDOW
        new = delivered(pair) - consumed
        pair.srv.engine.consume(sid, new)
        consumed += new
        if any(e.end_stream for e in pair.srv.of_type(StreamDataReceived)):
            break
    assert pair.srv.stream_bytes(sid) == sent


def test_qh3_paused_connection_still_learns_it_was_closed(
    sender: str, cert: ServerCertificate
) -> None:
    pair = make_pair(sender, cert)
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, data(TOTAL))
    pair.settle()
    assert pair.srv.engine.receive_paused
    pair.client.engine.close(7, "bye")
    pair.run(lambda: bool(pair.srv.of_type(ConnectionTerminated)), max_steps=500)
    assert pair.srv.of_type(ConnectionTerminated)[0].error_code == 7


def test_qh3_budget_also_holds_back_datagrams(sender: str, cert: ServerCertificate) -> None:
    # The documented price of a per-connection bound: everything queues behind unread data.
    pair = make_pair(sender, cert)
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, data(TOTAL))
    pair.settle()
    pair.client.engine.send_datagram(b"urgent")
    pair.settle()
    assert not pair.srv.of_type(DatagramReceived)
    pair.srv.engine.consume(sid, pair.srv.engine.unread_bytes(sid))
    pair.settle()
    assert pair.srv.of_type(DatagramReceived) == [DatagramReceived(b"urgent")]


def test_qh3_unread_slow_stream_stalls_a_fast_one(sender: str, cert: ServerCertificate) -> None:
    # The price of a per-connection bound (aioquic's per-stream windows do not have it): once a
    # stream nobody reads holds the budget, a stream that is read eagerly stalls as well.
    pair = make_pair(sender, cert)
    slow = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(slow, data(BUDGET + 2 * WINDOW))
    pair.settle()
    fast = slow + 4
    sent = data(TOTAL // 2)
    pair.client.engine.send_stream_data(fast, sent, end_stream=True)

    def read_fast_until_quiet() -> None:
        for _ in range(50):
            pair.settle()
            unread = pair.srv.engine.unread_bytes(fast)
            if not unread:
                return
            pair.srv.engine.consume(fast, unread)

    read_fast_until_quiet()
    assert len(pair.srv.stream_bytes(fast)) < len(sent)  # stalled behind the slow stream
    pair.srv.engine.consume(slow, pair.srv.engine.unread_bytes(slow))
    read_fast_until_quiet()
    pair.srv.engine.consume(slow, pair.srv.engine.unread_bytes(slow))
    read_fast_until_quiet()
    assert pair.srv.stream_bytes(fast) == sent
