"""``LiveConnections``: open connections only, and pruning that stays O(1) per add."""

from __future__ import annotations

from py_libp2p_webtransport.live_connections import LiveConnections


class FakeConn:
    """Counts how often its state is asked (the cost of pruning)."""

    checks = 0

    def __init__(self) -> None:
        self.closed = False

    @property
    def is_closed(self) -> bool:
        FakeConn.checks += 1
        return self.closed


def test_iterates_over_open_connections_only() -> None:
    live: LiveConnections[FakeConn] = LiveConnections()
    a, b, c = FakeConn(), FakeConn(), FakeConn()
    for conn in (a, b, c):
        live.add(conn)
    b.closed = True
    assert set(live) == {a, c}
    live.discard(a)
    assert list(live) == [c]
    assert a not in live and c in live


def test_closed_connections_are_forgotten_and_adds_cost_amortized_o1() -> None:
    live: LiveConnections[FakeConn] = LiveConnections()
    open_ones = [FakeConn() for _ in range(100)]
    for conn in open_ones:
        live.add(conn)
    FakeConn.checks = 0
    churn = 10_000
    for _ in range(churn):  # connections that come and end while 100 stay open
        conn = FakeConn()
        live.add(conn)
        conn.closed = True
    # Closed ones do not pile up: at most twice the open ones (plus the last unpruned batch).
    assert len(live) <= 2 * (len(open_ones) + 1) + 1
    # Each prune checks every entry once; entries double between prunes: O(1) per add.
    assert FakeConn.checks <= 3 * churn
    assert set(live) == set(open_ones)


def test_iteration_is_a_snapshot_safe_against_changes() -> None:
    live: LiveConnections[FakeConn] = LiveConnections()
    conns = [FakeConn() for _ in range(5)]
    for conn in conns:
        live.add(conn)
    for conn in live:  # closing and forgetting while iterating (what close() does)
        conn.closed = True
        live.discard(conn)
    assert list(live) == [] and len(live) == 0
