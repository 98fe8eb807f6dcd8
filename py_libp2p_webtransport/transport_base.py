"""What ``WebTransportTransport`` and ``QuicTransport`` (and their listeners) share: the
background nursery, the client sockets, the set of open connections, the metrics (their
endpoints exported, their connections sampled) and shutdown.

A connection is forgotten when it closes: it calls back (``on_close``) and leaves the sets it
is in, and the task that runs the swarm's handler for it ends. py-libp2p's handler for a natively
multiplexed connection never returns (it waits for the swarm to stop, holding one of the swarm's
inbound slots), so without that a closed connection stayed referenced (its engine, buffers) and
every connection a host ever accepted kept a slot: after ``max_connections - min_connections``
of them the swarm refused every new one. Pruning the sets on each accept instead cost O(N).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import trio
from libp2p.crypto.keys import PrivateKey
from libp2p.custom_types import THandler
from libp2p.peer.id import ID

from . import shared_endpoint
from .config import WebTransportConfig
from .endpoint import Endpoint, EndpointOptions
from .engine import DEFAULT_ENGINE, available_engines
from .engine.reset_token import derive_reset_secret
from .errors import ListenError, Unreachable
from .gating import (
    PreHandshakeAdmission,
    Reservation,
    configured_gate,
    configured_resource_manager,
)

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = [
    "ClosableConnection",
    "ConnectionSet",
    "ListenerBase",
    "TransportBase",
    "default_engine",
]

logger = logging.getLogger(__name__)


class ClosableConnection(Protocol):
    """What the sets need of a connection (both connection classes provide it)."""

    @property
    def is_closed(self) -> bool: ...

    def on_close(self, callback: Callable[[], None]) -> None: ...

    async def close(self) -> None: ...

    def describe(self, max_streams: int = 30) -> str: ...


C = TypeVar("C", bound=ClosableConnection)


class ConnectionSet(Generic[C]):
    """Open connections; each leaves when it closes (O(1), no scan)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: set[C] = set()

    def add(self, conn: C) -> None:
        """Hold ``conn`` until it closes (an already closed one is not held)."""
        self._items.add(conn)
        conn.on_close(lambda: self._items.discard(conn))

    def discard(self, conn: C) -> None:
        self._items.discard(conn)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __contains__(self, conn: object) -> bool:
        return conn in self._items

    def snapshot(self) -> list[C]:
        """The open connections (a copy: safe to close them while iterating)."""
        return list(self._items)

    async def close_all(self) -> None:
        """Close every connection concurrently; one failing does not stop the others."""
        async with trio.open_nursery() as nursery:
            for conn in self.snapshot():
                nursery.start_soon(_close_quietly, conn)


async def _close_quietly(conn: ClosableConnection) -> None:
    try:
        await conn.close()
    except Exception:  # keep closing the others
        logger.debug("closing %r failed", conn, exc_info=True)


class TransportBase(Generic[C]):
    """The shared half of a transport: identity, configuration, nursery, client sockets."""

    def __init__(self, private_key: PrivateKey, config: WebTransportConfig | None = None) -> None:
        self.private_key = private_key
        self.config = config or WebTransportConfig()
        self.local_peer = ID.from_pubkey(private_key.get_public_key())
        self.engine_name = self.config.engine or default_engine()
        #: The stateless reset secret, from the host key (None: ``config.stateless_reset``
        #: off); the same for both transports, so a shared socket resets alike whichever
        #: listener bound it.
        self.reset_secret: bytes | None = (
            derive_reset_secret(private_key.to_bytes()) if self.config.stateless_reset else None
        )
        self._nursery: trio.Nursery | None = None
        self._own_nursery_lock = trio.Lock()
        self._own_scope: trio.CancelScope | None = None  # our own system task, if we made one
        self._swarm: Any = None
        self._client_endpoints: dict[int, Endpoint] = {}
        self._client_lock = trio.Lock()
        self._listeners: list[Any] = []
        self._connections: ConnectionSet[C] = ConnectionSet()  # dialed, open
        self._closed = False
        #: Prometheus metrics (``config.metrics``), else None.
        self.metrics: Metrics | None = None
        self._sampling = False  # the metrics' sampler of our connections is running
        if self.config.metrics:
            from .metrics import Metrics  # loaded only when asked for

            self.metrics = Metrics.get()

    # --- TransportManager hooks ---------------------------------------------------------------

    def set_background_nursery(self, nursery: trio.Nursery) -> None:
        """The swarm's nursery: endpoint pumps and connection tasks run there."""
        self._nursery = nursery

    def set_swarm(self, swarm: Any) -> None:
        """Keep the swarm for its gater, resource manager and private-network key."""
        self._swarm = swarm

    def connection_gate(self) -> Any:
        """The connection gater asked before each handshake (``gating.configured_gate``)."""
        return configured_gate(self.config, self._swarm)

    def resource_manager(self) -> Any:
        """The resource manager asked before each handshake (``gating``)."""
        return configured_resource_manager(self.config, self._swarm)

    # --- nursery and client sockets -----------------------------------------------------------

    async def get_nursery(self, preferred: trio.Nursery | None = None) -> trio.Nursery:
        """A nursery for background tasks: the swarm's, else one of our own (system task)."""
        if preferred is not None:
            return preferred
        if self._nursery is not None:
            return self._nursery
        async with self._own_nursery_lock:
            if self._nursery is None:
                ready = trio.Event()

                async def own_nursery() -> None:
                    with trio.CancelScope() as scope:
                        self._own_scope = scope
                        async with trio.open_nursery() as nursery:
                            self._nursery = nursery
                            ready.set()
                            await trio.sleep_forever()

                trio.lowlevel.spawn_system_task(own_nursery)
                await ready.wait()
        assert self._nursery is not None
        return self._nursery

    async def _client_endpoint(self, family: int) -> Endpoint:
        """The host's listening endpoint of ``family`` when it listens (so the peer observes
        our listen port), else one shared client UDP endpoint per address family."""
        listening = shared_endpoint.dial_endpoint(self.local_peer, family)
        if listening is not None:
            if self.metrics is not None:  # maybe another transport's listener: sample ours
                self.watch_endpoint(listening, await self.get_nursery())
            return listening
        async with self._client_lock:
            endpoint = self._client_endpoints.get(family)
            if endpoint is None:
                host = "::" if family == socket.AF_INET6 else "0.0.0.0"
                try:
                    endpoint = await Endpoint.bind(
                        host, 0, EndpointOptions(engine=self.engine_name)
                    )
                except (OSError, ListenError) as error:
                    raise Unreachable(f"cannot open a UDP socket: {error}") from error
                nursery = await self.get_nursery()
                nursery.start_soon(endpoint.run)
                self._client_endpoints[family] = endpoint
                self.watch_endpoint(endpoint, nursery)
            return endpoint

    def watch_endpoint(self, endpoint: Endpoint, nursery: trio.Nursery) -> None:
        """Metrics on: export ``endpoint``'s counters (once, however many transports use it),
        and sample our connections in ``nursery`` from the first endpoint on."""
        if self.metrics is not None:
            self.metrics.watch_endpoint(endpoint)
            if not self._sampling:
                self._sampling = True
                nursery.start_soon(self.metrics.sample_forever, self.connections)

    # --- diagnostics (serve --stats, SIGUSR1) -------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        """Every UDP endpoint: the listeners', then the client ones."""
        listening = [lst.endpoint for lst in self._listeners if lst.endpoint is not None]
        return listening + list(self._client_endpoints.values())

    def connections(self) -> list[C]:
        """The open authenticated connections, accepted then dialed."""
        accepted = [conn for lst in self._listeners for conn in lst.connections]
        return accepted + self._connections.snapshot()

    # --- shutdown -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close listeners, connections and the client endpoints."""
        if self._closed:
            return
        self._closed = True
        for listener in self._listeners:
            await listener.close()
        await self._connections.close_all()
        endpoints = list(self._client_endpoints.values())
        self._client_endpoints.clear()
        for endpoint in endpoints:
            endpoint.close()
        if self._own_scope is not None:
            # Our own system task (no swarm gave us a nursery) ends with us, once the client
            # endpoints have sent their close frames; otherwise each transport leaks one task.
            with trio.move_on_after(1.0):
                for endpoint in endpoints:
                    await endpoint.wait_closed()
            self._own_scope.cancel()


class ListenerBase(Generic[C]):
    """The shared half of a listener: its open connections and the handler's task."""

    def __init__(self, handler: THandler) -> None:
        self._handler = handler
        self._pending = 0  # handshakes in progress
        self._connections: ConnectionSet[C] = ConnectionSet()
        self._closed = False

    @property
    def connections(self) -> list[C]:
        """The authenticated connections of this listener that are still open."""
        return self._connections.snapshot()

    @staticmethod
    def _claim(shared: Any, endpoint_conn: Any) -> Reservation | None:
        """The reservation the socket's admission made for this new connection: whichever
        listener bound the socket decided, every listener of it claims (None: no admission)."""
        return None if shared is None else shared.claim(endpoint_conn.remote_address)

    @staticmethod
    def _settle(reservation: Reservation | None, conn: Any, *, accepted: bool) -> None:
        """The handshake ended: its connection slot goes back (the swarm's ``add_conn`` takes
        one of its own, with the peer id); the receive memory stays with an accepted connection
        until it closes."""
        if reservation is None:
            return
        reservation.release_connection()
        if accepted:
            conn.on_close(reservation.release_memory)  # at once if it already closed
        else:
            reservation.release_memory()

    def _busy(self, max_pending: int) -> bool:
        """True when a new connection must be refused (closed, or too many handshakes)."""
        return self._closed or self._pending >= max_pending

    async def _serve(self, conn: C) -> None:
        """Hand an authenticated ``conn`` to the handler, in a task that ends with it."""
        with trio.CancelScope() as scope:
            # py-libp2p's handler waits for the swarm to stop, not for the connection:
            # cancelled when the connection ends, the task and its swarm slot go with it.
            conn.on_close(scope.cancel)
            if scope.cancel_called:
                return  # closed before the handler saw it
            self._connections.add(conn)
            try:
                await self._handler(conn)  # type: ignore[arg-type]
            finally:
                self._connections.discard(conn)

    async def _close_connections(self) -> None:
        await self._connections.close_all()


def pre_handshake_admission(transport: Any) -> PreHandshakeAdmission:
    """The admission a listener of ``transport`` gives the socket it binds: the gater and the
    resource manager, and the receive window's memory when ``reserve_window_memory`` is on."""
    window = 0
    if transport.config.reserve_window_memory:
        window = transport.config.max_data
        if transport.engine_name == "qh3":
            # what qh3 holds unread at most (aioquic: the window)
            window = transport.engine_config(is_client=False).recv_budget
    return PreHandshakeAdmission(transport.connection_gate, transport.resource_manager, window)


def default_engine() -> str:
    """The package's default engine if installed, else the first installed one."""
    installed = available_engines()
    if DEFAULT_ENGINE in installed or not installed:
        return DEFAULT_ENGINE  # an uninstalled default fails later with a clear EngineError
    return installed[0]
