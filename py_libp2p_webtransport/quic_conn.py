"""``QuicConnection``: one libp2p connection over QUIC itself (``/quic-v1``, ALPN ``libp2p``).

No HTTP/3, no Noise: TLS 1.3 with the libp2p certificate authenticates both peers
(``libp2p_tls.py``) and every bidirectional QUIC stream is one libp2p stream
(libp2p/specs ``quic``). The streams are ``WebTransportStream`` objects: this connection is
their ``StreamHost`` and talks to the engine directly, so reads, writes, backpressure, resets
and half-closes behave exactly as on our WebTransport connections.

It is the endpoint's ``ConnectionHandler``: at ``HandshakeCompleted`` it checks the peer's
certificate (and, dialing, the expected peer id) before it looks at any other event, and closes
the connection with the TLS alert ``bad_certificate`` when the check fails, so no stream of an
unauthenticated peer ever reaches the swarm.
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
from .conn import _host_port
from .engine import base as engine_events
from .errors import DialError, EngineError, InvalidPeerCertificate, StreamLimitReached
from .libp2p_tls import verify_certificate
from .stream import WebTransportStream

if TYPE_CHECKING:
    from .endpoint import EndpointConnection

__all__ = ["BAD_CERTIFICATE", "QuicConnection", "quic_multiaddr"]

logger = logging.getLogger(__name__)

#: CONNECTION_CLOSE for the TLS alert bad_certificate (42): CRYPTO_ERROR 0x100 + alert.
BAD_CERTIFICATE = 0x100 + 42
_NO_ERROR = 0


def quic_multiaddr(address: tuple[Any, ...]) -> Multiaddr:
    """``/ip4|ip6/<host>/udp/<port>/quic-v1`` for a UDP socket address."""
    host, port = _host_port(address)
    family = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{family}/{host}/udp/{port}/quic-v1")


class QuicConnection(IRawConnection, IMuxedConn):
    """A libp2p connection over one QUIC connection (both roles)."""

    def __init__(
        self,
        endpoint_conn: EndpointConnection,
        *,
        is_initiator: bool,
        config: WebTransportConfig,
        local_peer: ID,
        expected_peer: ID | None = None,
    ) -> None:
        self._ep_conn = endpoint_conn
        self._engine = endpoint_conn.engine
        self._is_initiator = is_initiator
        self.config = config
        self.local_peer = local_peer
        self._expected_peer = expected_peer
        self.peer_id: ID = local_peer  # until the certificate proves the peer
        self.remote_public_key: PublicKey | None = None
        self.event_started = trio.Event()
        #: Set when the handshake ended: authenticated (``authentication_error`` None) or not.
        self.authenticated = trio.Event()
        self.authentication_error: DialError | None = None
        self._established = False
        self._streams: dict[int, WebTransportStream] = {}
        self._blocked_writers: set[WebTransportStream] = set()
        # Peer bidirectional streams: the highest id seen, and lower ids not seen yet (QUIC
        # opens them implicitly; their first bytes may come later). Any other unknown id is a
        # stream that is over for us.
        self._highest_peer_stream = -1
        self._unseen_peer_streams: set[int] = set()
        self._accept_send, self._accept_recv = trio.open_memory_channel[WebTransportStream](
            config.accept_queue_size
        )
        self._closed = False
        self._close_reason: str | None = None
        self.closed_event = trio.Event()
        self._close_callbacks: list[Callable[[], None]] = []  # on_close
        self._progress: trio.Event | None = None
        self._resource_scope: Any = None
        self._started_at = trio.current_time()
        self._established_at: float | None = None
        endpoint_conn.handler = self

    def __repr__(self) -> str:
        role = "client" if self._is_initiator else "server"
        remote = tuple(self._ep_conn.remote_address)
        return f"<QuicConnection {role} peer={self.peer_id} remote={remote}>"

    # --- endpoint ConnectionHandler -------------------------------------------------------------

    def handle_engine_events(self, conn: EndpointConnection, events: list[Any], now: float) -> None:
        """Engine events of one pump turn (synchronously, inside the pump)."""
        for event in events:
            if self._closed:
                if isinstance(event, engine_events.StreamDataReceived) and event.data:
                    self._consume_quietly(event.stream_id, len(event.data))
                continue
            if isinstance(event, engine_events.StreamDataReceived):
                self._on_data(event)
            elif isinstance(event, engine_events.HandshakeCompleted):
                self._on_handshake()
            elif isinstance(event, engine_events.StreamReset):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.on_reset(event.error_code)
            elif isinstance(event, engine_events.StopSendingReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.on_stop_sending(event.error_code)
            elif isinstance(event, engine_events.ConnectionTerminated):
                self._connection_lost(f"connection closed ({event.reason or event.error_code})")
        self._wake_writers()

    def get_timer(self) -> float | None:
        """No deadline of our own: the engine's timers are the endpoint's business."""
        return None

    def handle_timer(self, now: float) -> None:
        """Never called (``get_timer`` is always None)."""

    def _on_handshake(self) -> None:
        certificate = self._engine.peer_certificate_der()
        try:
            if certificate is None:
                raise InvalidPeerCertificate("the peer presented no certificate")
            peer = verify_certificate(certificate, self.config.clock(), self._expected_peer)
        except DialError as error:
            logger.info("%r: refusing the peer's certificate: %s", self, error)
            self.authentication_error = error
            self._engine.close(BAD_CERTIFICATE, "libp2p certificate refused")
            self._ep_conn.transmit_soon()
            self._connection_lost(f"peer certificate refused: {error}")
            return
        self.peer_id = peer.peer_id
        self.remote_public_key = peer.public_key
        self._established = True
        self._established_at = trio.current_time()
        self.authenticated.set()

    def _on_data(self, event: engine_events.StreamDataReceived) -> None:
        stream_id = event.stream_id
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.on_data(event.data, event.end_stream)
            return
        peer_opened = bool(stream_id & 1) == self._is_initiator  # bit 0: server-initiated
        if stream_id & 2 and peer_opened:
            # libp2p uses bidirectional streams only: refuse the rest explicitly.
            if event.data:
                self._consume_quietly(stream_id, len(event.data))
            if not event.end_stream and self._established:
                self._engine.stop_stream(stream_id, _NO_ERROR)
            return
        if not self._established or not peer_opened or not self._new_peer_stream(stream_id):
            # Our own stream we gave up on, or a stream already over: credit back, data dropped.
            if event.data:
                self._consume_quietly(stream_id, len(event.data))
            return
        stream = WebTransportStream(self, stream_id, is_initiator=False)
        self._streams[stream_id] = stream
        try:
            self._accept_send.send_nowait(stream)
        except (trio.WouldBlock, trio.ClosedResourceError):
            logger.warning("%r: accept queue full, resetting stream %d", self, stream_id)
            del self._streams[stream_id]
            if event.data:
                self._consume_quietly(stream_id, len(event.data))
            self._engine.reset_stream(stream_id, _NO_ERROR)
            self._engine.stop_stream(stream_id, _NO_ERROR)
            return
        stream.on_data(event.data, event.end_stream)

    def _new_peer_stream(self, stream_id: int) -> bool:
        """True the first time a peer bidirectional stream shows up (it is then counted)."""
        if stream_id > self._highest_peer_stream:
            first = (
                self._highest_peer_stream + 4 if self._highest_peer_stream >= 0 else (stream_id & 3)
            )
            self._unseen_peer_streams.update(range(first, stream_id, 4))
            self._highest_peer_stream = stream_id
            return True
        if stream_id in self._unseen_peer_streams:
            self._unseen_peer_streams.discard(stream_id)
            return True
        return False

    def _consume_quietly(self, stream_id: int, n: int) -> None:
        try:
            self._engine.consume(stream_id, n)
        except Exception:  # the engine may have forgotten the stream already
            logger.debug("%r: consume(%d, %d) failed", self, stream_id, n, exc_info=True)

    def _connection_lost(self, reason: str) -> None:
        if self._close_reason is None:
            self._close_reason = reason
        self._closed = True
        self._established = False
        if self.authentication_error is None and not self.authenticated.is_set():
            self.authentication_error = DialError(f"connection ended in the handshake: {reason}")
        self.authenticated.set()
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

    # --- StreamHost (stream.py) -----------------------------------------------------------------

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Queue a stream's payload (``end_stream``: FIN)."""
        if self._closed:
            raise MuxedStreamReset(f"stream {stream_id}: connection is closed")
        try:
            self._engine.send_stream_data(stream_id, data, end_stream=end_stream)
        except EngineError as error:
            raise MuxedStreamReset(f"stream {stream_id}: {error}") from error
        self._ep_conn.transmit_soon()

    def consume(self, stream_id: int, n: int) -> None:
        """``n`` bytes of the stream were read or dropped: their credit returns to the peer."""
        if not self._closed:
            self._consume_quietly(stream_id, n)
            self._ep_conn.transmit_soon()

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """RESET_STREAM (nothing once the connection is gone)."""
        if not self._closed:
            try:
                self._engine.reset_stream(stream_id, error_code)
            except EngineError:  # the engine already forgot the stream
                logger.debug("%r: reset of stream %d failed", self, stream_id, exc_info=True)
            self._ep_conn.transmit_soon()

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """STOP_SENDING (nothing once the connection is gone)."""
        if not self._closed:
            try:
                self._engine.stop_stream(stream_id, error_code)
            except EngineError:
                logger.debug("%r: stop of stream %d failed", self, stream_id, exc_info=True)
            self._ep_conn.transmit_soon()

    def send_buffer_size(self, stream_id: int) -> int:
        """A stream's bytes still waiting in the engine (the writer's backpressure)."""
        return 0 if self._closed else self._engine.send_buffer_size(stream_id)

    def wake_when_writable(self, stream: WebTransportStream) -> None:
        """``stream.on_writable()`` after the next pump turn."""
        self._blocked_writers.add(stream)

    def forget_stream(self, stream_id: int) -> None:
        """The stream carries nothing more: its late data is dropped (credit returned)."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._blocked_writers.discard(stream)

    # --- IMuxedConn -----------------------------------------------------------------------------

    @property
    def is_initiator(self) -> bool:  # type: ignore[override]
        return self._is_initiator

    @property
    def is_established(self) -> bool:
        """True once the peer's certificate was verified and until the connection closes."""
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
        return self._closed

    @property
    def close_reason(self) -> str | None:
        return self._close_reason

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def describe(self, max_streams: int = 30) -> str:
        """The connection's state and QUIC figures, then one line per stream (diagnostics)."""
        lines = [
            f"{self!r} closed={self._closed} reason={self._close_reason} "
            f"unread={self._engine.unread_bytes()}\n  {self._engine.stats()}"
        ]
        for stream_id, stream in list(self._streams.items())[:max_streams]:
            lines.append(f"  stream {stream_id}: {stream.describe()}")
        return "\n".join(lines)

    def handshake_phases(self) -> dict[str, float]:
        """Seconds the QUIC + TLS handshake took (``quic``), once authenticated."""
        if self._established_at is None:
            return {}
        return {"quic": max(self._established_at - self._started_at, 0.0)}

    async def start(self) -> None:
        self.event_started.set()

    async def open_stream(self) -> IMuxedStream:
        """Open a bidirectional QUIC stream, waiting (up to ``connect_timeout``) for stream
        credit when the peer's MAX_STREAMS is used up."""
        with trio.move_on_after(self.config.connect_timeout):
            while True:
                try:
                    return self.open_stream_nowait()
                except StreamLimitReached:
                    await self.wait_turn()
        raise MuxedConnUnavailable(
            f"the peer granted no stream credit within {self.config.connect_timeout} s"
        )

    def open_stream_nowait(self) -> WebTransportStream:
        """Open a stream without a checkpoint; ``StreamLimitReached`` (qh3) at the peer's limit.

        The empty send reserves the id in the engine (the peer learns of the stream with its
        first byte, as in every QUIC libp2p implementation)."""
        if self._closed or not self._established:
            raise MuxedConnUnavailable(f"connection is not usable: {self._close_reason}")
        stream_id = self._engine.get_next_available_stream_id(False)
        try:
            self._engine.send_stream_data(stream_id, b"", end_stream=False)
        except StreamLimitReached:
            raise
        except EngineError as error:
            raise MuxedConnUnavailable(f"cannot open a stream: {error}") from error
        stream = WebTransportStream(self, stream_id, is_initiator=True)
        self._streams[stream_id] = stream
        return stream

    async def accept_stream(self) -> IMuxedStream:
        """Wait for the next stream the peer opened; ``MuxedConnUnavailable`` once closed."""
        try:
            return await self._accept_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise MuxedConnUnavailable(f"connection is closed: {self._close_reason}") from None

    async def close(self) -> None:
        """CONNECTION_CLOSE (no error). Idempotent."""
        if self._closed:
            return
        self._connection_lost("closed locally")
        self._engine.close(_NO_ERROR, "closed")
        self._ep_conn.transmit_soon()

    # --- IRawConnection -------------------------------------------------------------------------

    async def read(self, n: int | None = None) -> bytes:
        raise NotImplementedError("QUIC is natively multiplexed: read from streams")

    async def write(self, data: bytes) -> None:
        raise NotImplementedError("QUIC is natively multiplexed: write to streams")

    def get_remote_address(self) -> tuple[str, int] | None:
        return _host_port(tuple(self._ep_conn.remote_address))

    def get_transport_addresses(self) -> list[Multiaddr]:
        """The peer's address as ``/ip4|ip6/…/udp/…/quic-v1``."""
        return [quic_multiaddr(tuple(self._ep_conn.remote_address))]

    def get_connection_type(self) -> ConnectionType:
        return ConnectionType.DIRECT

    def set_resource_scope(self, scope: Any) -> None:
        self._resource_scope = scope
