"""``LiveConnections``: the open connections of a listener or transport, pruned in amortized O(1).

Connections end in many ways (peer close, idle timeout, reset) and nothing calls back, so the
set forgets closed ones lazily: it prunes when it has doubled since the last prune. A prune per
added connection (what this replaced) cost O(N) per accept, O(N²) for N connections: 1.3 ms per
accept at 600 open connections in ``benchmarks/scale.py``'s profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

__all__ = ["LiveConnections"]


class _Closable(Protocol):
    @property
    def is_closed(self) -> bool: ...


C = TypeVar("C", bound=_Closable)

#: No prune below this many entries (small sets are cheap to keep).
_MIN_PRUNE = 64


class LiveConnections(Generic[C]):
    """A set of connections that iterates over the open ones only."""

    __slots__ = ("_items", "_prune_at")

    def __init__(self) -> None:
        self._items: set[C] = set()
        self._prune_at = _MIN_PRUNE

    def add(self, conn: C) -> None:
        self._items.add(conn)
        if len(self._items) >= self._prune_at:
            self._items = {c for c in self._items if not c.is_closed}
            self._prune_at = max(_MIN_PRUNE, 2 * len(self._items))

    def discard(self, conn: C) -> None:
        self._items.discard(conn)

    def __iter__(self) -> Iterator[C]:
        """The open connections (a snapshot: safe to close them while iterating)."""
        return iter([c for c in self._items if not c.is_closed])

    def __len__(self) -> int:
        """Entries held, closed ones not yet pruned included (an upper bound)."""
        return len(self._items)

    def __contains__(self, conn: object) -> bool:
        return conn in self._items
