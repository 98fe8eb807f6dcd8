"""The table of streams held before their session (bounds in count, bytes and time)."""

from __future__ import annotations

from py_libp2p_webtransport.session.pending import PendingStreams


def test_hold_and_hand_over_in_arrival_order() -> None:
    table = PendingStreams(timeout=5.0, max_streams=8, max_bytes=100)
    assert table.add(8, 0, True, now=1.0)
    assert table.add(6, 4, False, now=1.5)
    assert table.add(12, 0, False, now=2.0)
    assert table.append(8, b"ab", False) and table.append(8, b"cd", True)
    assert table.append(12, b"x", False)
    assert table.total_bytes == 5
    held = table.pop_session(0)
    assert [(h.stream_id, h.payload(), h.ended, h.bidirectional) for h in held] == [
        (8, b"abcd", True, True),
        (12, b"x", False, False),
    ]
    assert table.total_bytes == 0 and len(table) == 1 and 6 in table


def test_count_limit() -> None:
    table = PendingStreams(timeout=5.0, max_streams=2, max_bytes=100)
    assert table.add(0, 0, True, 0.0) and table.add(4, 0, True, 0.0)
    assert not table.add(8, 0, True, 0.0)
    assert 8 not in table


def test_byte_limit_is_across_streams() -> None:
    table = PendingStreams(timeout=5.0, max_streams=4, max_bytes=10)
    table.add(0, 0, True, 0.0)
    table.add(4, 0, True, 0.0)
    assert table.append(0, b"123456", False)
    assert not table.append(4, b"12345", False)  # 11 > 10
    assert table.append(4, b"1234", False)  # exactly 10
    assert table.total_bytes == 10


def test_deadlines() -> None:
    table = PendingStreams(timeout=5.0, max_streams=4, max_bytes=10)
    assert table.next_deadline() is None
    table.add(0, 0, True, 1.0)
    table.add(4, 0, True, 3.0)
    assert table.next_deadline() == 6.0
    assert table.pop_expired(5.9) == []
    assert [h.stream_id for h in table.pop_expired(6.0)] == [0]
    assert table.next_deadline() == 8.0
    assert table.pop(4) is not None and table.pop(4) is None
    assert table.next_deadline() is None
