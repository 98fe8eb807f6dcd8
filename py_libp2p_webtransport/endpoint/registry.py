"""The live connections of an endpoint: every index the pump keeps on them, and their endings.

A connection is pointed at by its routes (admission's table), its half-open slot (admission's
count) while an accepted one handshakes, its entry in the timer heap and, between turns, the set
of connections to flush. Keeping them together means that adding a connection, following its
id and handshake events and retiring it update every index at once, and a retired connection
is left in none. A connection ends when its engine says so, when its engine fails, when its
handshake times out or when the endpoint closes; the handler hears of it exactly once.
No trio and no socket here: the pump passes its ``transmit``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ..engine.base import (
    Address,
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
)
from .admission import Admission
from .connection import INTERNAL_ERROR, EndpointConnection, EndpointStats
from .deadlines import DeadlineHeap

__all__ = ["ConnectionRegistry"]

logger = logging.getLogger(__name__)

CONNECTION_REFUSED = 0x2  # QUIC CONNECTION_REFUSED (RFC 9000 §20.1)


class ConnectionRegistry:
    """``live`` connections, the ``timers`` heap, the ``dirty`` set; routes and half-open slots
    in ``admission``."""

    def __init__(
        self,
        admission: Admission[EndpointConnection],
        stats: EndpointStats,
        transmit: Callable[[EndpointConnection, float], None],
    ) -> None:
        self.live: set[EndpointConnection] = set()
        #: Live connections by peer address: where a stateless reset from that peer may belong
        #: (a reset's connection id is random; only its token, checked by the engine, says).
        self.by_address: dict[Address, list[EndpointConnection]] = {}
        self.dirty: set[EndpointConnection] = set()  # to flush on the next pump turn
        self.timers: DeadlineHeap[EndpointConnection] = DeadlineHeap()
        self._admission = admission
        self._routes = admission.routes
        self._stats = stats
        self._transmit = transmit
        self._clash_logged = False

    def add(self, conn: EndpointConnection, cids: Iterable[bytes]) -> None:
        """A new connection routed by ``cids``; an accepted one takes a half-open slot."""
        self.live.add(conn)
        self.by_address.setdefault(conn.remote_address, []).append(conn)
        if conn._is_server:
            self._admission.half_open += 1
            self._stats.connections_accepted += 1
        else:
            self._stats.connections_opened += 1
        self.add_routes(conn, cids)

    def add_routes(self, conn: EndpointConnection, cids: Iterable[bytes]) -> None:
        if self._routes.add(conn, cids) and not self._clash_logged:
            self._clash_logged = True
            logger.info("connection id clash; keeping the first owner (logged once)")

    def collect_events(self, conn: EndpointConnection) -> bool:
        """Pop the engine's events into ``conn._pending_events``, updating the indexes on the
        way; False if there were none."""
        engine = conn.engine
        pending = conn._pending_events
        found = False
        event = engine.next_event()
        while event is not None:
            found = True
            pending.append(event)
            if isinstance(event, ConnectionIdIssued):
                self.add_routes(conn, [event.connection_id])
            elif isinstance(event, ConnectionIdRetired):
                self._routes.remove(conn, event.connection_id)
            elif isinstance(event, HandshakeCompleted):
                self._handshake_done(conn)
            elif isinstance(event, ConnectionTerminated):
                conn._terminated = True
            event = engine.next_event()
        return found

    def arm_timer(self, conn: EndpointConnection) -> None:
        self.timers.set(conn, conn.next_deadline())

    # ---- endings --------------------------------------------------------------------------

    def fail(self, conn: EndpointConnection, now: float, exc: Exception) -> None:
        """An engine raised: that connection ends (its handler hears why), the endpoint goes on."""
        self._stats.engine_errors += 1
        logger.warning("QUIC engine failed on %r: %r; dropping the connection", conn, exc)
        try:
            conn.engine.close(INTERNAL_ERROR, "engine error")
        except Exception:
            pass
        conn.terminate(INTERNAL_ERROR, f"engine error: {exc!r}")
        conn.deliver_events(now)
        self.retire(conn)

    def time_out_handshake(self, conn: EndpointConnection, now: float) -> None:
        """A handshake that never finishes (garbage Initial, vanished client) frees its
        half-open slot; the engine alone may never time out without a valid packet."""
        self._stats.handshake_timeouts += 1
        try:
            conn.engine.close(CONNECTION_REFUSED, "handshake timeout")
            self._transmit(conn, now)
            self.collect_events(conn)
        except Exception:  # an engine that never saw a valid packet may have no path yet
            logger.debug("closing half-open %r", conn, exc_info=True)
        conn.terminate(0, "handshake timeout")
        conn.deliver_events(now)
        self.retire(conn)

    def close_all(self, now: float) -> None:
        """The endpoint closes: one CONNECTION_CLOSE each, then every connection is retired."""
        for conn in list(self.live):
            conn.engine.close(0, "endpoint closed")
            try:
                self.collect_events(conn)
                conn.deliver_events(now)
                self._transmit(conn, now)
                self.collect_events(conn)
                conn.deliver_events(now)
            except Exception:  # the socket may be unusable; nothing else to do
                logger.debug("error while closing %r", conn, exc_info=True)
            conn.terminate(0, "endpoint closed")
            conn.deliver_events(now)
            self.retire(conn)

    def retire(self, conn: EndpointConnection) -> None:
        """Forget a terminated connection in every index and set its ``closed_event``."""
        if conn.closed:
            return
        if conn._is_server and not conn.handshake_completed:
            self._admission.half_open -= 1
        self._routes.remove_all(conn)
        conn.closed = True
        self.timers.discard(conn)
        self.live.discard(conn)
        peers = self.by_address.get(conn.remote_address)
        if peers is not None:
            peers.remove(conn)
            if not peers:
                del self.by_address[conn.remote_address]
        self.dirty.discard(conn)
        conn.closed_event.set()

    def _handshake_done(self, conn: EndpointConnection) -> None:
        if not conn.handshake_completed:
            conn.handshake_completed = True
            if conn._is_server:
                self._admission.half_open -= 1
