"""One QUIC connection on an endpoint, the handler its owner plugs in, and the endpoint's counters.

``EndpointConnection`` is a record: its engine, its peer, its handler and the bookkeeping the pump
keeps for it, with what concerns it alone (when it next needs the pump, handing events to its
handler). It holds no reference to the endpoint: ``transmit_soon()`` calls the ``wake`` callback
the endpoint gave it, so this module loads neither the pump nor trio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Protocol

from ..engine.base import Address, ConnectionTerminated, EngineEvent, QuicEngine

__all__ = ["ClosedEvent", "ConnectionHandler", "EndpointConnection", "EndpointStats"]

logger = logging.getLogger(__name__)

INTERNAL_ERROR = 0x1  # QUIC INTERNAL_ERROR (RFC 9000 §20.1)


class ConnectionHandler(Protocol):
    """Implemented by the owner of a connection (the session layer glue)."""

    def handle_engine_events(
        self, conn: EndpointConnection, events: list[EngineEvent], now: float
    ) -> None:
        """The engine produced ``events`` (in order), or datagrams arrived for this connection.

        Called at most once per pump turn (more only if events keep appearing while it
        transmits). ``events`` may be empty after a receive: acknowledgements free send buffer
        space, so this is where blocked writers re-check ``engine.send_buffer_size()``.
        """

    def get_timer(self) -> float | None:
        """An extra deadline of the handler, or None (re-read after every callback and after
        ``transmit_soon()``)."""

    def handle_timer(self, now: float) -> None:
        """The handler's deadline passed."""


class ClosedEvent(Protocol):
    """What ``EndpointConnection.closed_event`` offers (the endpoint passes a ``trio.Event``)."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    async def wait(self) -> None: ...


@dataclass
class EndpointStats:
    """Counters of one endpoint (never reset). The ``dropped_*`` names are admission's reasons."""

    datagrams_received: int = 0
    datagrams_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    connections_accepted: int = 0
    connections_opened: int = 0
    pump_turns: int = 0
    send_blocked: int = 0  # times the kernel's send buffer was full (we waited, dropped nothing)
    send_errors: int = 0  # datagrams the kernel refused (unreachable...): QUIC sees them as lost
    dropped_malformed: int = 0  # not a QUIC header at all
    dropped_unknown_cid: int = 0  # no connection has this id and it is not an Initial
    dropped_bad_version: int = 0  # long header of a version other than 1 for an unknown id
    dropped_small_initial: int = 0  # an Initial in a datagram under 1200 bytes
    dropped_not_listening: int = 0  # an Initial reached a client-only endpoint
    dropped_half_open: int = 0  # an Initial while max_half_open handshakes were running
    dropped_rate_limited: int = 0  # new-connection Initials beyond one source's rate
    dropped_cid_collision: int = 0  # a new client picked an id that routes to another peer
    dropped_invalid_token: int = 0  # an Initial with a forged/expired/misused Retry token
    dropped_gated: int = 0  # an Initial from an address the owner's gater denies
    dropped_over_limit: int = 0  # an Initial over the owner's resource limits
    retries_sent: int = 0  # Initials answered with a Retry instead of a connection
    refusals_sent: int = 0  # gated/over-limit Initials answered with CONNECTION_REFUSED
    stateless_resets_sent: int = 0  # unknown-id short headers answered with a stateless reset
    handshake_timeouts: int = 0  # accepted connections dropped for not finishing the handshake
    engine_errors: int = 0  # connections dropped because their engine raised
    alpn_refused: int = 0  # handshakes refused with a TLS alert: no ALPN we serve (glue counts)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class EndpointConnection:
    """One QUIC connection on an endpoint; the owner sets ``handler`` right away.

    The owner reads ``engine``, ``remote_address``, ``closed``, ``closed_event`` and
    ``handshake_completed``, and calls ``transmit_soon()``. The underscored attributes are the
    pump's bookkeeping.
    """

    def __init__(
        self,
        engine: QuicEngine,
        remote_address: Address,
        wake: Callable[[EndpointConnection], None],
        closed_event: ClosedEvent,
        *,
        handshake_deadline: float | None = None,
        started_at: float | None = None,
    ) -> None:
        self.engine = engine
        self.remote_address = remote_address
        #: When the connection began (trio clock): the first Initial sent or accepted. The
        #: glue's handler may come later (a server's, once the ALPN is known).
        self.started_at = started_at
        self.handler: ConnectionHandler | None = None
        self.closed = False
        self.closed_event = closed_event
        self.handshake_completed = False
        self._wake = wake  # the endpoint's mark-dirty: flush this connection on its next turn
        self._pending_events: list[EngineEvent] = []  # popped, not yet handed to the handler
        self._terminated = False
        # Accepted (server side) connections hold a half-open slot until the handshake ends.
        self._is_server = handshake_deadline is not None
        self._handshake_deadline = handshake_deadline
        self._received = False  # datagrams arrived this turn: the handler hears of it

    def transmit_soon(self) -> None:
        """Flush this connection on the next pump turn (call after engine writes or timer changes).

        Many calls in one trio tick cost one transmit: this only marks the connection dirty and
        wakes the pump once.
        """
        self._wake(self)

    # ---- for the pump ----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest of the engine's timer, the handshake deadline and the handler's timer."""
        deadline = self.engine.get_timer()
        handshake = self._handshake_deadline
        if handshake is not None and not self.handshake_completed:
            if deadline is None or handshake < deadline:
                deadline = handshake
        handler = self.handler
        if handler is not None:
            extra = handler.get_timer()
            if extra is not None and (deadline is None or extra < deadline):
                deadline = extra
        return deadline

    def handshake_overdue(self, now: float) -> bool:
        """An accepted connection that has not completed its handshake in time."""
        deadline = self._handshake_deadline
        return deadline is not None and deadline <= now and not self.handshake_completed

    def fire_timers(self, now: float) -> None:
        """Run the engine's and the handler's timers that are due (engine errors propagate)."""
        engine_timer = self.engine.get_timer()
        if engine_timer is not None and engine_timer <= now:
            self.engine.handle_timer(now)
        handler = self.handler
        if handler is not None:
            handler_timer = handler.get_timer()
            if handler_timer is not None and handler_timer <= now:
                self.call_handler(handler.handle_timer, now)

    def deliver_events(self, now: float) -> None:
        """Hand the pending events to the handler (also none, after a receive: see
        ``ConnectionHandler``). Without a handler yet, they wait for it."""
        handler = self.handler
        if handler is None:
            return
        if not self._pending_events and not self._received:
            return
        self._received = False
        events = self._pending_events
        self._pending_events = []
        self.call_handler(handler.handle_engine_events, self, events, now)

    def call_handler(self, fn: Callable[..., None], *args: object) -> None:
        """A failing handler closes its own connection, never the endpoint."""
        try:
            fn(*args)
        except Exception:
            logger.exception("connection handler failed; closing %r", self)
            self.engine.close(INTERNAL_ERROR, "handler error")

    def terminate(self, error_code: int, reason: str) -> None:
        """Ended on our side without the engine saying so: the handler hears it once."""
        if not self._terminated:
            self._terminated = True
            self._pending_events.append(ConnectionTerminated(error_code, reason, remote=False))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<EndpointConnection {self.engine.name} {self.remote_address} {state}>"
