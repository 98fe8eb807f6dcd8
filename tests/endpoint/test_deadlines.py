"""DeadlineHeap: one live deadline per key, lazy deletion, compaction."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from py_libp2p_webtransport.endpoint.deadlines import DeadlineHeap


def test_earliest_first_and_moves() -> None:
    heap: DeadlineHeap[str] = DeadlineHeap()
    assert heap.next_deadline() is None and heap.pop_due(1e9) == []
    heap.set("a", 5.0)
    heap.set("b", 3.0)
    heap.set("c", 4.0)
    assert heap.next_deadline() == 3.0
    heap.set("b", 6.0)  # moved later: the 3.0 entry is stale
    assert heap.next_deadline() == 4.0
    heap.set("c", None)  # removed
    assert heap.next_deadline() == 5.0
    assert heap.pop_due(4.9) == []
    assert heap.pop_due(6.0) == ["a", "b"]
    assert len(heap) == 0 and heap.next_deadline() is None


def test_equal_deadlines_keep_insertion_order_and_uncomparable_keys() -> None:
    heap: DeadlineHeap[object] = DeadlineHeap()
    keys = [object() for _ in range(5)]  # objects are not orderable: ties must not compare them
    for k in keys:
        heap.set(k, 1.0)
    assert heap.pop_due(1.0) == keys


def test_discard_and_get() -> None:
    heap: DeadlineHeap[int] = DeadlineHeap()
    heap.set(1, 2.0)
    assert heap.get(1) == 2.0
    heap.discard(1)
    heap.discard(99)  # unknown keys are fine
    assert heap.get(1) is None and heap.pop_due(10.0) == []


def test_stale_entries_are_compacted() -> None:
    heap: DeadlineHeap[int] = DeadlineHeap()
    for i in range(10_000):  # one key moving on every "packet"
        heap.set(0, 1000.0 - i * 0.01)
    assert len(heap._heap) <= 4 * len(heap) + 64 + 1
    assert heap.next_deadline() == 1000.0 - 9999 * 0.01


@given(st.lists(st.tuples(st.integers(0, 9), st.none() | st.floats(0, 100)), max_size=200))
def test_matches_a_dict_model(ops: list[tuple[int, float | None]]) -> None:
    heap: DeadlineHeap[int] = DeadlineHeap()
    model: dict[int, float] = {}
    for key, deadline in ops:
        heap.set(key, deadline)
        if deadline is None:
            model.pop(key, None)
        else:
            model[key] = deadline
        assert heap.next_deadline() == (min(model.values()) if model else None)
    now = random.Random(len(ops)).uniform(0, 100)
    due = heap.pop_due(now)
    expected = sorted((d, k) for k, d in model.items() if d <= now)
    assert [d for d, _ in expected] == [model[k] for k in due]
    assert set(due) == {k for _, k in expected}
    assert len(heap) == len(model) - len(due)
