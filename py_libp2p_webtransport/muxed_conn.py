"""``MuxedConnection``: what our two natively multiplexed connections share.

``WebTransportConnection`` (``conn.py``: streams inside a WebTransport session) and
``QuicConnection`` (``quic_conn.py``: raw QUIC streams) are both one QUIC connection of the
endpoint, one ``IRawConnection`` + ``IMuxedConn`` for py-libp2p's swarm, and the ``StreamHost``
of their ``WebTransportStream`` objects. This base holds that common part: the stream table and
the accept queue, the stream host calls (with the rule that they do nothing once the connection
is gone), the wake-ups after each pump turn, the end of the connection (streams told, accept
queue closed, resource scope released), the metrics hooks (``WebTransportConfig.metrics``,
labelled with ``TRANSPORT_LABEL``) and py-libp2p's small interface members.

A subclass says how a stream operation reaches the wire (``_queue_stream_data`` and the other
abstract methods: through the session or straight to the engine), handles the endpoint's engine
events (``ConnectionHandler``), authenticates the peer and closes the connection.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import trio
from libp2p.abc import IMuxedConn, IMuxedStream, IRawConnection
from libp2p.connection_types import ConnectionType
from libp2p.crypto.keys import PublicKey
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable, MuxedStreamReset
from multiaddr import Multiaddr

from .config import WebTransportConfig
from .errors import StreamLimitReached
from .stream import WebTransportStream

if TYPE_CHECKING:
    from .endpoint import EndpointConnection
    from .engine.base import EngineStats
    from .metrics import Metrics

__all__ = ["MuxedConnection", "host_port", "udp_multiaddr"]

logger = logging.getLogger(__name__)


def host_port(address: tuple[Any, ...]) -> tuple[str, int]:
    """The (host, port) of a UDP socket address, IPv4-mapped IPv6 given as IPv4."""
    host, port = str(address[0]), int(address[1])
    if host.lower().startswith("::ffff:") and "." in host:
        host = host[7:]  # IPv4-mapped IPv6 on a dual-stack socket
    return host, port


def udp_multiaddr(address: tuple[Any, ...], suffix: str) -> Multiaddr:
    """``/ip4|ip6/<host>/udp/<port>`` + ``suffix`` for a UDP socket address."""
    host, port = host_port(address)
    family = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{family}/{host}/udp/{port}{suffix}")


class MuxedConnection(IRawConnection, IMuxedConn):
    """A libp2p connection over one QUIC connection whose streams are ``WebTransportStream``."""

    #: The protocol's name in messages ("WebTransport", "QUIC").
    PROTOCOL: ClassVar[str]
    #: The ``transport`` label of its metrics (``metrics.TRANSPORTS``).
    TRANSPORT_LABEL: ClassVar[str]
    #: What ``_queue_stream_data``, ``_send_reset`` and ``_send_stop`` raise for a stream that
    #: is already over below us (a peer reset or stop, the session's end).
    STREAM_OVER_ERRORS: ClassVar[tuple[type[Exception], ...]]

    def __init__(
        self,
        endpoint_conn: EndpointConnection,
        *,
        is_initiator: bool,
        config: WebTransportConfig,
        local_peer: ID,
    ) -> None:
        self._ep_conn = endpoint_conn
        self._is_initiator = is_initiator
        self.config = config
        self.local_peer = local_peer
        # Until the peer is authenticated it is unknown; the swarm only sees us afterwards.
        self.peer_id: ID = local_peer
        self.remote_public_key: PublicKey | None = None
        self.event_started = trio.Event()
        self._established = False  # the peer is authenticated: the swarm may use us
        # Start of the handshake (``handshake_phases``): a server connection is made once its
        # ALPN is known, so it starts with the endpoint connection's first packet.
        started = endpoint_conn.started_at
        self._started_at = trio.current_time() if started is None else started
        self._established_at: float | None = None  # authenticated (``_set_established``)
        # Prometheus hooks (``WebTransportConfig.metrics``): None when off, and every hook is
        # one ``is not None`` test.
        self._metrics: Metrics | None = None
        if config.metrics:
            from .metrics import Metrics  # loaded only when asked for

            self._metrics = Metrics.get()

        self._streams: dict[int, WebTransportStream] = {}
        self._blocked_writers: set[WebTransportStream] = set()
        self._accept_send, self._accept_recv = trio.open_memory_channel[WebTransportStream](
            config.accept_queue_size
        )
        self._closed = False
        self._close_reason: str | None = None
        self.closed_event = trio.Event()
        self._close_callbacks: list[Callable[[], None]] = []  # on_close
        # Set after every pump turn, then dropped; created only by a task about to wait.
        self._progress: trio.Event | None = None
        self._resource_scope: Any = None
        endpoint_conn.handler = self

    def __repr__(self) -> str:
        role = "client" if self._is_initiator else "server"
        return f"<{type(self).__name__} {role} peer={self.peer_id} remote={self._remote()}>"

    # --- endpoint ConnectionHandler: each subclass reads its own events -------------------------

    @abstractmethod
    def handle_engine_events(self, conn: EndpointConnection, events: list[Any], now: float) -> None:
        """Engine events of one pump turn (synchronously, inside the pump); ends with
        ``_wake_writers()``."""

    @abstractmethod
    def get_timer(self) -> float | None:
        """The subclass's own next deadline, or None."""

    @abstractmethod
    def handle_timer(self, now: float) -> None:
        """That deadline passed."""

    # --- how a stream operation reaches the wire (the session or the engine) --------------------

    @abstractmethod
    def _queue_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Hand a stream's payload (and FIN) down; ``STREAM_OVER_ERRORS`` if it is over."""

    @abstractmethod
    def _return_credit(self, stream_id: int, n: int) -> None:
        """``n`` bytes of the stream were read or dropped."""

    @abstractmethod
    def _send_reset(self, stream_id: int, error_code: int) -> None:
        """RESET_STREAM."""

    @abstractmethod
    def _send_stop(self, stream_id: int, error_code: int) -> None:
        """STOP_SENDING."""

    @abstractmethod
    def _queued_bytes(self, stream_id: int) -> int:
        """A stream's bytes still waiting below us."""

    # --- StreamHost (stream.py): what a stream asks of its connection ----------------------------

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Queue a stream's payload (``end_stream``: FIN)."""
        if self._closed:
            raise MuxedStreamReset(f"stream {stream_id}: connection is closed")
        try:
            self._queue_stream_data(stream_id, data, end_stream)
        except self.STREAM_OVER_ERRORS as error:
            # Ended below us (peer reset/stop, session gone) before our stream object heard
            # of it: to the writer that is a reset.
            raise MuxedStreamReset(f"stream {stream_id}: {error}") from error
        self._ep_conn.transmit_soon()

    def consume(self, stream_id: int, n: int) -> None:
        """A stream's ``n`` bytes were read or dropped: their credit returns to the peer."""
        if not self._closed:
            self._return_credit(stream_id, n)
            self._ep_conn.transmit_soon()

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """RESET_STREAM on a stream (nothing once the connection is gone)."""
        if not self._closed:
            try:
                self._send_reset(stream_id, error_code)
            except self.STREAM_OVER_ERRORS:
                logger.debug("%r: reset of stream %d failed", self, stream_id, exc_info=True)
            self._ep_conn.transmit_soon()
            if self._metrics is not None:
                self._metrics.stream_reset(self.TRANSPORT_LABEL, local=True)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """STOP_SENDING on a stream (nothing once the connection is gone)."""
        if not self._closed:
            try:
                self._send_stop(stream_id, error_code)
            except self.STREAM_OVER_ERRORS:
                logger.debug("%r: stop of stream %d failed", self, stream_id, exc_info=True)
            self._ep_conn.transmit_soon()

    def send_buffer_size(self, stream_id: int) -> int:
        """A stream's bytes still waiting in the engine (its writer's backpressure)."""
        return 0 if self._closed else self._queued_bytes(stream_id)

    def wake_when_writable(self, stream: WebTransportStream) -> None:
        """``stream.on_writable()`` after the next pump turn (see ``_wake_writers``)."""
        self._blocked_writers.add(stream)

    def forget_stream(self, stream_id: int) -> None:
        """The stream carries nothing more: its events are no longer dispatched (late data
        is dropped, its credit returned)."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._blocked_writers.discard(stream)
            if self._metrics is not None:
                self._metrics.streams_closed(self.TRANSPORT_LABEL, 1)

    # --- streams, pump turns and the end of the connection ---------------------------------------

    def _add_stream(self, stream_id: int, *, is_initiator: bool) -> WebTransportStream:
        stream = WebTransportStream(self, stream_id, is_initiator=is_initiator)
        self._streams[stream_id] = stream
        return stream

    def _offer_peer_stream(self, stream_id: int) -> WebTransportStream | None:
        """A stream the peer opened, queued for ``accept_stream``. None when the accept queue
        is full (or closed): the stream is forgotten and the caller refuses it on the wire,
        loudly, instead of dropping its data."""
        stream = self._add_stream(stream_id, is_initiator=False)
        try:
            self._accept_send.send_nowait(stream)
        except (trio.WouldBlock, trio.ClosedResourceError):
            logger.warning("%r: accept queue full, resetting stream %d", self, stream_id)
            del self._streams[stream_id]
            return None
        if self._metrics is not None:
            self._metrics.stream_opened(self.TRANSPORT_LABEL, initiator=False)
        return stream

    def _opened_stream(self, stream_id: int) -> WebTransportStream:
        """A stream we opened (its id taken below us): tracked and counted."""
        stream = self._add_stream(stream_id, is_initiator=True)
        if self._metrics is not None:
            self._metrics.stream_opened(self.TRANSPORT_LABEL, initiator=True)
        return stream

    def _set_established(self) -> None:
        """The peer is authenticated: the swarm may use us (and the metrics count us)."""
        self._established = not self._closed
        if self._established:
            self._established_at = trio.current_time()
            if self._metrics is not None:
                self._metrics.connection_established(self)

    def _connection_lost(self, reason: str, kind: str = "lost") -> None:
        """The connection ended (the first reason is kept): every stream and waiter hears of it.
        ``kind`` is the metrics' reason label: local (we closed), remote (the peer closed),
        lost (neither: idle timeout, stateless reset, engine error)."""
        metrics = self._metrics
        if self._close_reason is None and metrics is not None and self._established_at is not None:
            metrics.connection_closed(self, kind)
            metrics.streams_closed(self.TRANSPORT_LABEL, len(self._streams))
        if self._close_reason is None:
            self._close_reason = reason
        self._closed = True
        self._established = False
        for stream in list(self._streams.values()):
            stream.on_connection_lost(reason)
        self._streams.clear()
        self._blocked_writers.clear()
        self._accept_send.close()
        self._release_resource_scope()
        self._signal_progress()
        self.closed_event.set()
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            callback()

    def _release_resource_scope(self) -> None:
        scope, self._resource_scope = self._resource_scope, None
        if scope is None:
            return
        try:
            if hasattr(scope, "close"):
                scope.close()
            elif hasattr(scope, "release"):
                scope.release()
        except Exception:  # releasing bookkeeping must never break closing
            logger.debug("%r: releasing the resource scope failed", self, exc_info=True)

    def _wake_writers(self) -> None:
        # Every pump turn may have brought acks or credit: wake whoever waits for progress.
        self._signal_progress()
        if self._blocked_writers:
            writers, self._blocked_writers = self._blocked_writers, set()
            for stream in writers:
                stream.on_writable()

    def _signal_progress(self) -> None:
        progress = self._progress
        if progress is not None:
            self._progress = None
            progress.set()

    async def wait_turn(self) -> None:
        """Wait for the end of the next pump turn (or the connection's end)."""
        progress = self._progress
        if progress is None:
            progress = self._progress = trio.Event()
        await progress.wait()

    @property
    def stream_count(self) -> int:
        """Streams the connection still dispatches to (open in at least one direction)."""
        return len(self._streams)

    # --- diagnostics (metrics' sampler, describe) -----------------------------------------------

    def quic_stats(self) -> EngineStats:
        """The QUIC connection's figures now (RTT, congestion window, bytes, losses), from its
        engine (trio thread only)."""
        return self._ep_conn.engine.stats()

    @property
    def receive_paused(self) -> bool:
        """True while unread bytes hold the engine's reception back (qh3 only)."""
        return self._ep_conn.engine.receive_paused

    @property
    def stalls_broken(self) -> int:
        """Streams the stall breaker aborted (WebTransport's session layer has one)."""
        return 0

    @abstractmethod
    def handshake_phases(self) -> dict[str, float]:
        """Seconds each handshake phase took (``quic``, then the subclass's), once done."""

    @abstractmethod
    def describe(self, max_streams: int = 30) -> str:
        """The connection's state and QUIC figures, then one line per stream (SIGUSR1)."""

    # --- IMuxedConn -----------------------------------------------------------------------------

    @property
    def is_initiator(self) -> bool:  # type: ignore[override]
        """True on the dialing side."""
        return self._is_initiator

    @property
    def is_established(self) -> bool:
        """True once the peer is authenticated and until the connection closes."""
        return self._established and not self._closed

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (which must not raise) once when the connection ends; at once if
        it has. Listeners and transports forget the connection this way."""
        if self._closed:
            callback()
        else:
            self._close_callbacks.append(callback)

    @property
    def is_closed(self) -> bool:
        """True once the connection is gone."""
        return self._closed

    @property
    def close_reason(self) -> str | None:
        """Why the connection closed (None while open)."""
        return self._close_reason

    async def start(self) -> None:
        """Tell the swarm we are ready (the handshake already happened in dial/accept)."""
        self.event_started.set()

    @abstractmethod
    def open_stream_nowait(self) -> WebTransportStream:
        """Open a bidirectional stream without a checkpoint; ``StreamLimitReached`` (qh3)
        when the peer's MAX_STREAMS is used up."""

    async def open_stream(self) -> IMuxedStream:
        """Open a bidirectional stream, waiting (up to ``connect_timeout``) for stream credit
        when the peer's MAX_STREAMS is used up."""
        with trio.move_on_after(self.config.connect_timeout):
            while True:
                try:
                    return self.open_stream_nowait()
                except StreamLimitReached:
                    # Credit comes back as the peer retires closed streams; every pump turn
                    # (which brings its MAX_STREAMS) sets _progress.
                    await self.wait_turn()
        raise MuxedConnUnavailable(
            f"the peer granted no stream credit within {self.config.connect_timeout} s"
        )

    async def accept_stream(self) -> IMuxedStream:
        """Wait for the next stream the peer opened; ``MuxedConnUnavailable`` once closed."""
        return await self.accept_wt_stream()

    async def accept_wt_stream(self) -> WebTransportStream:
        """``accept_stream`` with the concrete stream type."""
        try:
            return await self._accept_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise MuxedConnUnavailable(f"connection is closed: {self._close_reason}") from None

    # --- IRawConnection -------------------------------------------------------------------------

    async def read(self, n: int | None = None) -> bytes:
        """Not supported: data flows on streams (the swarm never calls this)."""
        raise NotImplementedError(f"{self.PROTOCOL} is natively multiplexed: read from streams")

    async def write(self, data: bytes) -> None:
        """Not supported: data flows on streams (the swarm never calls this)."""
        raise NotImplementedError(f"{self.PROTOCOL} is natively multiplexed: write to streams")

    def _remote(self) -> tuple[Any, ...]:
        return tuple(self._ep_conn.remote_address)

    def get_remote_address(self) -> tuple[str, int] | None:
        """The peer's UDP (host, port)."""
        return host_port(self._remote())

    def get_connection_type(self) -> ConnectionType:
        """Always a direct connection."""
        return ConnectionType.DIRECT

    def set_resource_scope(self, scope: Any) -> None:
        """Keep the swarm's resource scope; it is released when the connection closes."""
        self._resource_scope = scope
