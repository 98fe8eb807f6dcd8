"""aioquic receive windows follow ``consume()``, not arrival (issue 7).

These are also the guards of the window-writer override: if an aioquic upgrade renames or stops
calling ``_write_stream_limits`` / ``_write_connection_limits``, the stock doubling comes back and
the sender gets past the window, which fails the first two tests.
"""

from __future__ import annotations

import random

import pytest
from support.enginepair import EnginePair, ServerCertificate

from py_libp2p_webtransport.engine import (
    EngineConfig,
    StreamDataReceived,
    StreamReset,
    available_engines,
)

WINDOW = 256 * 1024


def data(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def make_pair(client: str, cert: ServerCertificate, **server: int) -> EnginePair:
    pair = EnginePair(
        client,
        "aioquic",
        cert,
        server_config=EngineConfig(is_client=False, **server),
        auto_consume=False,
    )
    pair.handshake()
    return pair


@pytest.fixture(params=available_engines())
def sender(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_aioquic_receiver_that_never_consumes_holds_sender_at_stream_window(
    sender: str, cert: ServerCertificate
) -> None:
    pair = make_pair(sender, cert, max_stream_data=WINDOW, max_data=16 * WINDOW)
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, data(4 * WINDOW), end_stream=True)
    pair.settle()
    assert len(pair.srv.stream_bytes(sid)) == WINDOW  # stock aioquic would have doubled
    assert pair.srv.engine.unread_bytes(sid) == WINDOW
    assert pair.srv.engine.unread_streams() == {sid: WINDOW}
    assert not pair.srv.engine.receive_paused  # only this stream waits, never the connection


def test_aioquic_connection_window_bounds_all_streams(sender: str, cert: ServerCertificate) -> None:
    pair = make_pair(sender, cert, max_stream_data=4 * WINDOW, max_data=WINDOW)
    sids = []
    for _ in range(4):
        sid = pair.client.engine.get_next_available_stream_id()
        sids.append(sid)
        pair.client.engine.send_stream_data(sid, data(WINDOW), end_stream=True)
    pair.settle()
    assert sum(len(pair.srv.stream_bytes(s)) for s in sids) == WINDOW
    assert pair.srv.engine.unread_bytes() == WINDOW


def test_aioquic_consuming_returns_credit_until_everything_arrives(
    sender: str, cert: ServerCertificate
) -> None:
    pair = make_pair(sender, cert, max_stream_data=WINDOW, max_data=2 * WINDOW)
    sid = pair.client.engine.get_next_available_stream_id()
    sent = data(5 * WINDOW)
    pair.client.engine.send_stream_data(sid, sent, end_stream=True)
    received = bytearray()
    for _ in range(100):
        pair.settle()
        new = pair.srv.stream_bytes(sid)[len(received) :]
        # never more in flight towards the reader than one window past what it consumed
        assert len(pair.srv.stream_bytes(sid)) <= len(received) + WINDOW
        received += new
        pair.srv.engine.consume(sid, len(new))
        if any(isinstance(e, StreamDataReceived) and e.end_stream for e in pair.srv.events):
            break
    assert bytes(received) == sent


def test_aioquic_slow_stream_does_not_block_a_fast_one(
    sender: str, cert: ServerCertificate
) -> None:
    pair = make_pair(sender, cert, max_stream_data=WINDOW, max_data=4 * WINDOW)
    slow = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(slow, data(3 * WINDOW), end_stream=True)
    fast = slow + 4
    sent = data(6 * WINDOW + 1)
    pair.client.engine.send_stream_data(fast, sent, end_stream=True)
    for _ in range(200):
        pair.settle()
        unread = pair.srv.engine.unread_bytes(fast)
        if unread:
            pair.srv.engine.consume(fast, unread)
        elif any(
            isinstance(e, StreamDataReceived) and e.stream_id == fast and e.end_stream
            for e in pair.srv.events
        ):
            break
    assert pair.srv.stream_bytes(fast) == sent
    assert len(pair.srv.stream_bytes(slow)) == WINDOW  # still parked at its window


def test_aioquic_bytes_skipped_by_a_reset_return_connection_credit(
    sender: str, cert: ServerCertificate
) -> None:
    small = 16 * 1024  # fits the sender's initial congestion window without acks
    pair = make_pair(sender, cert, max_stream_data=small, max_data=small)
    first = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(first, data(small * 3 // 4))
    for _ in range(20):  # every flight of it is lost
        pair.client.engine.datagrams_to_send(pair.now)
        pair.now += 0.001
    pair.client.engine.reset_stream(first, 5)
    pair.settle()
    assert pair.srv.of_type(StreamReset) == [StreamReset(first, 5)]
    assert pair.srv.stream_bytes(first) == b""
    # The skipped bytes count as read, so a new stream gets the whole window back.
    second = first + 4
    pair.client.engine.send_stream_data(second, data(small), end_stream=True)
    pair.settle()
    assert len(pair.srv.stream_bytes(second)) == small
