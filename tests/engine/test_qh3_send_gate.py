"""The send gate that keeps qh3's core from queuing more than its congestion window can carry
(``engine/qh3/send_gate.py``): its arithmetic, its round-robin, and what it does to a live core."""

from __future__ import annotations

import pytest
from support.enginepair import EnginePair, ServerCertificate

from py_libp2p_webtransport.engine.qh3.send_gate import SendGate, send_budget
from py_libp2p_webtransport.errors import EngineError


def test_budget_leaves_a_datagram_and_framing_free() -> None:
    # 100 000 free bytes: minus one datagram (1500) and 1/16 for framing (6250).
    assert send_budget(120_000, 20_000, 0) == 100_000 - 1500 - 6250
    # What the core already holds for first transmission counts against the budget.
    assert send_budget(120_000, 20_000, 50_000) == 100_000 - 1500 - 6250 - 50_000


def test_budget_is_never_negative() -> None:
    assert send_budget(10_000, 12_000, 0) == 0  # in flight above the window (after a loss)
    assert send_budget(30_000, 0, 64_000) == 0


def test_an_idle_core_at_its_minimum_window_still_gets_a_datagram() -> None:
    # Two datagrams is qh3's minimum window: without the floor nothing would ever be released.
    assert send_budget(2 * 1452, 0, 0) > 0
    assert send_budget(1200, 0, 0) > 0  # even below it, when nothing is in flight or queued
    assert send_budget(1200, 600, 0) == 0  # but not on top of bytes in flight


def test_release_shares_the_budget_round_robin() -> None:
    gate = SendGate()
    gate.hold(0, b"a" * 10_000, False)
    gate.hold(4, b"b" * 10_000, True)
    first = gate.release(6000)
    assert [(sid, len(data), fin) for sid, data, fin in first] == [
        (0, 3000, False),
        (4, 3000, False),
    ]
    assert gate.total == 14_000
    # Both still hold data and went to the back in the order they were served.
    second = gate.release(100_000)
    assert [(sid, len(data), fin) for sid, data, fin in second] == [
        (0, 7000, False),
        (4, 7000, True),
    ]
    assert gate.total == 0 and len(gate) == 0


def test_release_gives_each_stream_at_least_a_datagram() -> None:
    gate = SendGate()
    for sid in range(0, 40, 4):
        gate.hold(sid, b"x" * 5000, False)
    out = gate.release(3000)  # less than one datagram per stream: the first streams get one
    assert [len(data) for _, data, _ in out] == [1436, 1436, 128]
    assert sum(len(data) for _, data, _ in out) == 3000


def test_bytes_come_out_in_order_with_the_fin_last() -> None:
    gate = SendGate()
    gate.hold(8, b"0123456789", False)
    gate.hold(8, b"abcdef", True)
    out = []
    while len(gate):
        out += gate.release(4)
    assert b"".join(data for _, data, _ in out) == b"0123456789abcdef"
    assert [fin for _, _, fin in out] == [False] * (len(out) - 1) + [True]


def test_a_fin_alone_is_released_without_budget() -> None:
    gate = SendGate()
    gate.hold(0, b"", True)
    assert gate.release(0) == [(0, b"", True)]


def test_write_after_fin_is_an_engine_error() -> None:
    gate = SendGate()
    gate.hold(0, b"data", True)
    with pytest.raises(EngineError, match="after the end"):
        gate.hold(0, b"more", False)


def test_drop_and_clear_forget_held_bytes() -> None:
    gate = SendGate()
    gate.hold(0, b"x" * 100, False)
    gate.hold(4, b"y" * 50, False)
    gate.drop(0)
    assert gate.total == 50 and not gate.holds(0) and gate.held_bytes(4) == 50
    gate.drop(12)  # unknown: nothing happens
    gate.clear()
    assert gate.total == 0 and len(gate) == 0


def _pair(cert: ServerCertificate) -> EnginePair:
    pair = EnginePair("qh3", "qh3", cert)
    pair.handshake()
    return pair


def test_the_core_never_queues_more_than_its_window(cert: ServerCertificate) -> None:
    pair = _pair(cert)
    engine = pair.client.engine
    core = engine._quic._core  # type: ignore[attr-defined]
    stream_id = engine.get_next_available_stream_id()
    engine.send_stream_data(stream_id, b"z" * (4 << 20), end_stream=True)
    budget_then = send_budget(core.congestion_window, core.bytes_in_flight, 0)
    # The core got at most its budget; the adapter still reports every unsent byte.
    assert core.get_send_buffer_size(stream_id) <= budget_then
    assert engine.send_buffer_size(stream_id) == 4 << 20
    received = 0
    for _ in range(20_000):
        if pair.step() == 0 and not pair.fire_timers():
            break
        pair.now += 0.0001
        unsent = core.get_send_buffer_size(None)
        assert unsent <= max(send_budget(core.congestion_window, 0, 0), 1436)
        received = len(pair.srv.stream_bytes(stream_id))
        if received == 4 << 20:
            break
    assert received == 4 << 20
    assert pair.srv.stream_bytes(stream_id) == b"z" * (4 << 20)


def test_reset_drops_what_the_gate_holds(cert: ServerCertificate) -> None:
    pair = _pair(cert)
    engine = pair.client.engine
    stream_id = engine.get_next_available_stream_id()
    engine.send_stream_data(stream_id, b"z" * (1 << 20))
    assert engine.send_buffer_size(stream_id) == 1 << 20
    engine.reset_stream(stream_id, 7)
    assert engine.send_buffer_size(stream_id) == 0
    pair.settle()
    # The peer sees the reset, and never more than the bytes the core had before it.
    assert len(pair.srv.stream_bytes(stream_id)) < 1 << 20


def test_gated_writes_to_a_new_stream_meet_the_stream_limit_at_once(
    cert: ServerCertificate,
) -> None:
    from dataclasses import replace

    from py_libp2p_webtransport.engine import EngineConfig
    from py_libp2p_webtransport.errors import StreamLimitReached

    pair = EnginePair(
        "qh3", "qh3", cert, server_config=replace(EngineConfig(is_client=False), max_streams_bidi=1)
    )
    pair.handshake()
    engine = pair.client.engine
    engine.send_stream_data(engine.get_next_available_stream_id(), b"z" * (1 << 20))
    with pytest.raises(StreamLimitReached):
        engine.send_stream_data(engine.get_next_available_stream_id(), b"z" * (1 << 20))
