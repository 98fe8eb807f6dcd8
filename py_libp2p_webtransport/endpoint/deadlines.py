"""One deadline per key, earliest first: the endpoint's single timer for all its connections.

A binary heap with lazy deletion: moving a key's deadline pushes a new entry and leaves the old
one to be skipped when it surfaces, so ``set`` is O(log n) and never searches the heap. Engines
move their deadline on almost every packet, so stale entries are compacted away once they
outnumber the live ones. Sans-IO: times are plain floats from the caller's clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["DeadlineHeap"]

K = TypeVar("K", bound=Hashable)


class DeadlineHeap(Generic[K]):
    """At most one live deadline per key; ``pop_due`` hands back the keys whose time came."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, float] = {}
        self._seq = itertools.count()  # ties break by insertion order, never by comparing keys

    def __len__(self) -> int:
        """Number of keys with a live deadline."""
        return len(self._live)

    def get(self, key: K) -> float | None:
        return self._live.get(key)

    def set(self, key: K, deadline: float | None) -> None:
        """Give ``key`` this deadline (None removes it)."""
        if deadline is None:
            self._live.pop(key, None)
            return
        if self._live.get(key) == deadline:
            return
        self._live[key] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
        if len(self._heap) > 4 * len(self._live) + 64:
            self._compact()

    def discard(self, key: K) -> None:
        self._live.pop(key, None)

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None when no key has one."""
        heap, live = self._heap, self._live
        while heap:
            deadline, _, key = heap[0]
            if live.get(key) == deadline:
                return deadline
            heapq.heappop(heap)  # stale: the key moved or went away
        return None

    def pop_due(self, now: float) -> list[K]:
        """Remove and return the keys whose deadline is ``<= now``, earliest first."""
        heap, live = self._heap, self._live
        due: list[K] = []
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if live.get(key) == deadline:
                del live[key]
                due.append(key)
        return due

    def _compact(self) -> None:
        live = self._live
        self._heap = [e for e in self._heap if live.get(e[2]) == e[0]]
        heapq.heapify(self._heap)
