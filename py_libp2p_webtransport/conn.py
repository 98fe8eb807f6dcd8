"""``WebTransportConnection``: one QUIC connection carrying one WebTransport session.

It is what py-libp2p's swarm expects from a natively multiplexed transport (like py-libp2p's
``QUICConnection``): an ``IRawConnection`` (so the dial path type-checks) and an ``IMuxedConn``
(so the swarm skips the security and muxer upgrade). It is also the endpoint's
``ConnectionHandler``: the endpoint pump hands it engine events synchronously; it feeds them to
the sans-IO session (``WebTransportH3``), dispatches the session's events to stream objects and
wakes the trio tasks waiting on them. Everything here is glue: no parsing, no policy.

It talks to the session only: flow control, backpressure, the peer's certificate and closing the
QUIC connection are session calls. The endpoint connection is used to wake the pump
(``transmit_soon``) after every call that may have queued something, and for the remote address.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio
from libp2p.abc import IMuxedConn, IMuxedStream, IRawConnection
from libp2p.connection_types import ConnectionType
from libp2p.crypto.keys import PublicKey
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable, MuxedStreamReset
from multiaddr import Multiaddr

from .config import WebTransportConfig
from .constants import H3ErrorCode
from .engine import base as engine_events
from .errors import LocalProtocolError, SessionRejected, StreamLimitReached
from .session import WebTransportH3
from .session import events as sev
from .stream import WebTransportStream

if TYPE_CHECKING:
    from .endpoint import EndpointConnection
    from .metrics import Metrics

logger = logging.getLogger(__name__)


def _host_port(address: tuple[Any, ...]) -> tuple[str, int]:
    host, port = str(address[0]), int(address[1])
    if host.lower().startswith("::ffff:") and "." in host:
        host = host[7:]  # IPv4-mapped IPv6 on a dual-stack socket
    return host, port


def transport_multiaddr(address: tuple[Any, ...]) -> Multiaddr:
    """``/ip4|ip6/<host>/udp/<port>/quic-v1/webtransport`` for a UDP socket address."""
    host, port = _host_port(address)
    family = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{family}/{host}/udp/{port}/quic-v1/webtransport")


class WebTransportConnection(IRawConnection, IMuxedConn):
    """A libp2p connection over one WebTransport session (both roles)."""

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
        # Until Noise finishes the remote peer is unknown; the swarm only sees us afterwards.
        self.peer_id: ID = local_peer
        self.remote_public_key: PublicKey | None = None
        self.event_started = trio.Event()
        self._h3 = WebTransportH3(
            endpoint_conn.engine, is_client=is_initiator, config=config.session_config()
        )
        self.session_id: int | None = None
        self._metrics: Metrics | None = None
        if config.metrics:
            from .metrics import Metrics  # loaded only when asked for

            self._metrics = Metrics.get()

        # Progress of the handshake, waited on by the transport (client) or listener (server).
        self.quic_connected = trio.Event()
        self.session_ready = trio.Event()  # established, rejected or failed
        self.session_rejected: SessionRejected | None = None
        self._established = False  # Noise done: the connection is usable by the swarm
        # trio times of each step (handshake_phases): start, QUIC done, CONNECT done, Noise done.
        # A server connection is made once its ALPN is known: it started with the endpoint's.
        started = endpoint_conn.started_at
        self._started_at = trio.current_time() if started is None else started
        self._quic_at: float | None = None
        self._session_at: float | None = None
        self._established_at: float | None = None

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
        self._h3.initialize(trio.current_time())
        endpoint_conn.transmit_soon()

    def __repr__(self) -> str:
        role = "client" if self._is_initiator else "server"
        return f"<WebTransportConnection {role} peer={self.peer_id} remote={self._remote()}>"

    # --- endpoint ConnectionHandler -----------------------------------------------------------

    def handle_engine_events(self, conn: EndpointConnection, events: list[Any], now: float) -> None:
        """Called by the endpoint pump with a batch of engine events (synchronously)."""
        for event in events:
            if isinstance(event, engine_events.HandshakeCompleted):
                self._quic_at = now
                self.quic_connected.set()
            elif isinstance(event, engine_events.ConnectionTerminated):
                reason = f"connection closed ({event.reason or event.error_code})"
                self._connection_lost(reason, "lost")
        self._h3.handle_engine_events(events, now)
        self._dispatch_session_events()
        self._wake_writers()

    def get_timer(self) -> float | None:
        """The session layer's next deadline (held streams, SETTINGS, the stall breaker)."""
        return self._h3.get_timer()

    def handle_timer(self, now: float) -> None:
        """The session layer's deadline passed."""
        self._h3.handle_timer(now)
        self._dispatch_session_events()
        self._wake_writers()

    @property
    def stalls_broken(self) -> int:
        """Streams the session's stall breaker aborted on this connection (``session/stall.py``)."""
        return self._h3.stalls_broken

    @property
    def stream_count(self) -> int:
        """Streams the connection still dispatches to (open in at least one direction)."""
        return len(self._streams)

    @property
    def session(self) -> WebTransportH3:
        """The session layer under this connection, for diagnostics (``unread_bytes``,
        ``send_buffer_size``, ``receive_paused``, ``stats``); streams are driven through the
        connection, never through this."""
        return self._h3

    def describe(self, max_streams: int = 30) -> str:
        """The connection's state and QUIC figures, then one line per stream (diagnostics)."""
        session = self._h3
        lines = [
            f"{self!r} closed={self._closed} reason={self._close_reason} "
            f"paused={session.receive_paused} stalls_broken={session.stalls_broken} "
            f"unread={session.unread_bytes()}\n  {session.stats()}"
        ]
        for stream_id, stream in list(self._streams.items())[:max_streams]:
            lines.append(f"  stream {stream_id}: {stream.describe()}")
        if len(self._streams) > max_streams:
            lines.append(f"  ... {len(self._streams) - max_streams} more streams")
        return "\n".join(lines)

    def _dispatch_session_events(self) -> None:
        h3 = self._h3
        while (event := h3.next_event()) is not None:
            if isinstance(event, sev.StreamDataReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.on_data(event.data, event.end_stream)
                elif event.data:
                    # A stream we already gave up on: credit goes back, data is discarded.
                    h3.consume(event.stream_id, len(event.data))
            elif isinstance(event, sev.StreamOpened):
                self._on_stream_opened(event)
            elif isinstance(event, sev.StreamReset):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    if self._metrics is not None:
                        self._metrics.stream_reset(local=False)
                    stream.on_reset(event.error_code)
            elif isinstance(event, sev.StopSendingReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.on_stop_sending(event.error_code)
            elif isinstance(event, sev.StreamStalled):
                self._on_stream_stalled(event)
            elif isinstance(event, sev.SessionRequested):
                self._on_session_requested(event)
            elif isinstance(event, sev.SessionEstablished):
                self.session_id = event.session_id
                self._session_at = trio.current_time()
                self.session_ready.set()
            elif isinstance(event, sev.SessionRejected):
                self.session_rejected = SessionRejected(event.status, event.reason or "")
                self.session_ready.set()
                # Streams opened early (Noise right after the CONNECT) die with the session.
                for stream in list(self._streams.values()):
                    stream.on_connection_lost(f"session rejected: {self.session_rejected}")
            elif isinstance(event, sev.SessionClosed):
                self._on_session_closed(event)
            elif isinstance(event, sev.ConnectionClosed):
                reason = f"connection closed ({event.reason or event.error_code})"
                self._connection_lost(reason, "lost")
            elif isinstance(event, sev.SessionDraining):
                logger.debug("%r: peer is draining the session", self)

    def _on_stream_stalled(self, event: sev.StreamStalled) -> None:
        what = "%r: reception paused %.1f s with nothing read; aborted stream %d (%d bytes unread)"
        logger.warning(what, self, self.config.stall_timeout, event.stream_id, event.unread)
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream.on_stalled(event.error_code)

    def _on_session_requested(self, event: sev.SessionRequested) -> None:
        if self._is_initiator or self.session_id is not None:
            return  # the session layer answers a second CONNECT itself
        self.session_id = event.session_id
        self._h3.accept_session(event.session_id)
        self._session_at = trio.current_time()
        self.session_ready.set()

    def _on_stream_opened(self, event: sev.StreamOpened) -> None:
        if not event.bidirectional or event.session_id != self.session_id:
            # libp2p uses bidirectional streams only: refuse the rest explicitly.
            self._h3.stop_sending(event.stream_id, 0)
            return
        stream = WebTransportStream(self, event.stream_id, is_initiator=False)
        self._streams[event.stream_id] = stream
        try:
            self._accept_send.send_nowait(stream)
        except (trio.WouldBlock, trio.ClosedResourceError):
            # Accept queue full (or closed): refuse the stream loudly instead of dropping data.
            logger.warning("%r: accept queue full, resetting stream %d", self, event.stream_id)
            del self._streams[event.stream_id]
            self._h3.reset_stream(event.stream_id, 0)
            self._h3.stop_sending(event.stream_id, 0)
            return
        if self._metrics is not None:
            self._metrics.stream_opened(initiator=False)

    def _on_session_closed(self, event: sev.SessionClosed) -> None:
        who = "peer" if event.remote else "us"
        self._connection_lost(
            f"session closed by {who} (code {event.error_code}: {event.message!r})",
            "remote" if event.remote else "local",
        )
        if event.remote:
            # The session was the whole point of the connection (go-libp2p closes it too).
            self._h3.close_connection(H3ErrorCode.H3_NO_ERROR, "session closed")

    def _connection_lost(self, reason: str, kind: str) -> None:
        """The connection ended; ``kind`` (local, remote, lost) is the metrics' reason label."""
        if self._close_reason is None:
            self._close_reason = reason
            if self._metrics is not None and self._established_at is not None:
                self._metrics.connection_closed(self, kind)
                self._metrics.streams_closed(len(self._streams))
        self._closed = True
        self._established = False
        self.session_ready.set()
        self.quic_connected.set()
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

    # --- StreamHost (stream.py): what a stream asks of its connection --------------------------

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Queue a stream's payload (``end_stream``: FIN)."""
        try:
            self._h3.send_stream_data(stream_id, data, end_stream=end_stream)
        except LocalProtocolError as error:
            # The session already ended this stream (peer reset/stop, session gone) before our
            # stream object heard of it: to the writer that is a reset.
            raise MuxedStreamReset(f"stream {stream_id}: {error}") from error
        self._ep_conn.transmit_soon()

    def consume(self, stream_id: int, n: int) -> None:
        """A stream's ``n`` bytes were read or dropped: their credit returns to the peer."""
        if not self._closed:
            # The time restarts the session's stall clock if reception is paused.
            self._h3.consume(stream_id, n, trio.current_time())
            self._ep_conn.transmit_soon()

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """RESET_STREAM on a stream (nothing once the connection is gone)."""
        if not self._closed:
            self._h3.reset_stream(stream_id, error_code)
            self._ep_conn.transmit_soon()
            if self._metrics is not None:
                self._metrics.stream_reset(local=True)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """STOP_SENDING on a stream (nothing once the connection is gone)."""
        if not self._closed:
            self._h3.stop_sending(stream_id, error_code)
            self._ep_conn.transmit_soon()

    def send_buffer_size(self, stream_id: int) -> int:
        """A stream's bytes still waiting in the engine (its writer's backpressure)."""
        return self._h3.send_buffer_size(stream_id)

    def wake_when_writable(self, stream: WebTransportStream) -> None:
        """``stream.on_writable()`` after the next pump turn (see ``_wake_writers``)."""
        self._blocked_writers.add(stream)

    def forget_stream(self, stream_id: int) -> None:
        """The stream carries nothing more: its events are no longer dispatched."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._blocked_writers.discard(stream)
            if self._metrics is not None:
                self._metrics.streams_closed(1)

    # --- IMuxedConn ---------------------------------------------------------------------------

    @property
    def is_initiator(self) -> bool:  # type: ignore[override]
        """True on the dialing side."""
        return self._is_initiator

    @property
    def is_established(self) -> bool:
        """True once Noise authenticated the peer and until the connection closes."""
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
        """True once the session or the QUIC connection is gone."""
        return self._closed

    @property
    def close_reason(self) -> str | None:
        """Why the connection closed (None while open)."""
        return self._close_reason

    def peer_certificate_der(self) -> bytes | None:
        """Client: the server's TLS certificate (DER) once the QUIC handshake completed."""
        return self._h3.peer_certificate_der()

    async def wait_turn(self) -> None:
        """Wait for the end of the next pump turn (or the connection's end)."""
        progress = self._progress
        if progress is None:
            progress = self._progress = trio.Event()
        await progress.wait()

    def request_session(self, authority: str, path: str) -> None:
        """Client: send the extended CONNECT; ``session_ready`` is set on the answer."""
        self.session_id = self._h3.connect(authority, path, trio.current_time())
        self._ep_conn.transmit_soon()

    def mark_established(self, peer_id: ID, public_key: PublicKey | None = None) -> None:
        """Called by the transport/listener when the Noise handshake authenticated ``peer_id``."""
        self.peer_id = peer_id
        self.remote_public_key = public_key
        self._established = not self._closed
        if self._established:
            self._established_at = trio.current_time()
            if self._metrics is not None:
                self._metrics.connection_established(self)

    def handshake_phases(self) -> dict[str, float]:
        """Seconds each step of the handshake took: ``quic``, ``connect``, ``noise`` (the
        steps reached so far)."""
        marks = (self._started_at, self._quic_at, self._session_at, self._established_at)
        phases: dict[str, float] = {}
        for phase, start, end in zip(("quic", "connect", "noise"), marks, marks[1:], strict=False):
            if start is None or end is None:
                break
            phases[phase] = max(end - start, 0.0)
        return phases

    async def start(self) -> None:
        """Tell the swarm we are ready (the handshake already happened in dial/accept)."""
        self.event_started.set()

    async def open_stream(self) -> IMuxedStream:
        """Open a bidirectional WebTransport stream, waiting (up to ``connect_timeout``) for
        stream credit when the peer's MAX_STREAMS is used up."""
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

    def open_stream_nowait(self) -> WebTransportStream:
        """Open a bidirectional stream without a checkpoint (the engine queues the header).

        Raises ``StreamLimitReached`` (qh3) when the peer's MAX_STREAMS is used up.
        """
        if self._closed or self.session_id is None:
            raise MuxedConnUnavailable(f"connection is closed: {self._close_reason}")
        try:
            stream_id = self._h3.open_stream(self.session_id, bidirectional=True)
        except LocalProtocolError as error:
            raise MuxedConnUnavailable(f"cannot open a stream: {error}") from error
        stream = WebTransportStream(self, stream_id, is_initiator=True)
        self._streams[stream_id] = stream
        self._ep_conn.transmit_soon()
        if self._metrics is not None:
            self._metrics.stream_opened(initiator=True)
        return stream

    async def accept_stream(self) -> IMuxedStream:
        """Wait for the next stream the peer opened; ``MuxedConnUnavailable`` once closed."""
        return await self.accept_wt_stream()

    async def accept_wt_stream(self) -> WebTransportStream:
        """``accept_stream`` with the concrete stream type."""
        try:
            return await self._accept_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise MuxedConnUnavailable(f"connection is closed: {self._close_reason}") from None

    async def close(self) -> None:
        """Close the session (close capsule), then the QUIC connection. Idempotent."""
        if self._closed:
            return
        session_id = self.session_id
        if session_id is not None and self.session_ready.is_set():
            try:
                self._h3.close_session(session_id, 0, "")
                self._ep_conn.transmit_soon()
                # Give the capsule a moment to be acknowledged so the peer sees a clean close;
                # shielded so a cancelled caller still closes the connection below.
                with trio.CancelScope(shield=True), trio.move_on_after(self.config.close_linger):
                    while not self._closed and self._h3.send_buffer_size(session_id) > 0:
                        await self.wait_turn()
            except Exception:  # the session may already be gone; closing must not fail
                logger.debug("%r: close_session failed", self, exc_info=True)
        self._connection_lost("closed locally", "local")
        self._h3.close_connection(H3ErrorCode.H3_NO_ERROR, "closed")
        self._ep_conn.transmit_soon()

    # --- IRawConnection -----------------------------------------------------------------------

    async def read(self, n: int | None = None) -> bytes:
        """Not supported: data flows on streams (the swarm never calls this)."""
        raise NotImplementedError("WebTransport is natively multiplexed: read from streams")

    async def write(self, data: bytes) -> None:
        """Not supported: data flows on streams (the swarm never calls this)."""
        raise NotImplementedError("WebTransport is natively multiplexed: write to streams")

    def _remote(self) -> tuple[Any, ...]:
        return tuple(self._ep_conn.remote_address)

    def get_remote_address(self) -> tuple[str, int] | None:
        """The peer's UDP (host, port)."""
        return _host_port(self._remote())

    def get_transport_addresses(self) -> list[Multiaddr]:
        """The peer's address as ``/ip4|ip6/…/udp/…/quic-v1/webtransport``."""
        return [transport_multiaddr(self._remote())]

    def get_connection_type(self) -> ConnectionType:
        """Always a direct connection."""
        return ConnectionType.DIRECT

    def set_resource_scope(self, scope: Any) -> None:
        """Keep the swarm's resource scope; it is released when the connection closes."""
        self._resource_scope = scope
