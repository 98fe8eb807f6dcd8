"""The stall clock: when paused reception becomes a stall, and which stream then pays for it.

Why it exists: qh3 can only bound unread data per connection (README "Backpressure"). While more
than ``recv_budget`` delivered bytes are unread, the engine takes nothing from the peer
(``QuicEngine.receive_paused``), so one reader that stopped holds back every stream of the
connection, datagrams and close notices included. When reception has stayed paused for
``stall_timeout`` with nothing consumed meanwhile, ``WebTransportH3`` aborts the stream holding the
most unread bytes, loudly (STOP_SENDING + RESET_STREAM with RECEIVE_STALL_ERROR, reported as
``StreamStalled``), and the others flow again once its bytes are consumed: an explicit error,
never a silent drop. aioquic never pauses (its windows are per stream), so the clock never runs.

Sans-IO like the rest of the session layer: the caller passes ``now`` and the engine's answers.
"""

from __future__ import annotations

from collections.abc import Mapping


class StallWatch:
    """How long reception has been paused without the application consuming anything."""

    __slots__ = ("broken", "paused_since", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        # Since when reception has been paused with nothing consumed (None: it flows). Read
        # directly on the per-read path; changed only through the methods below.
        self.paused_since: float | None = None
        self.broken = 0  # streams aborted so far (observable for tests and failure dumps)

    def observe(self, paused: bool, now: float) -> None:
        """After every input: the clock starts when reception pauses and stops when it resumes."""
        if not paused:
            self.paused_since = None
        elif self.paused_since is None:
            self.paused_since = now

    def progress(self, paused: bool, now: float) -> None:
        """The application consumed bytes: that is progress, so the clock starts over (or stops
        if that resumed reception)."""
        self.paused_since = now if paused else None

    def deadline(self) -> float | None:
        """When a pause becomes a stall (None while reception flows)."""
        since = self.paused_since
        return None if since is None else since + self.timeout

    def due(self, now: float) -> bool:
        since = self.paused_since
        return since is not None and now >= since + self.timeout

    def choose(self, unread: Mapping[int, int]) -> int | None:
        """The stream to abort: the one holding the most unread bytes. None when no stream
        holds any; the clock then starts over instead of firing again at once."""
        victim, most = None, 0
        for stream_id, n in unread.items():
            if n > most:
                victim, most = stream_id, n
        if victim is None:
            self.paused_since = None
        return victim

    def broke(self) -> None:
        """A stream was aborted: count it; the clock waits for the next observation."""
        self.broken += 1
        self.paused_since = None
