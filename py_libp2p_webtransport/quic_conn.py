"""``QuicConnection``: one libp2p connection over QUIC itself (``/quic-v1``, ALPN ``libp2p``).

No HTTP/3, no Noise: TLS 1.3 with the libp2p certificate authenticates both peers
(``libp2p_tls.py``) and every bidirectional QUIC stream is one libp2p stream
(libp2p/specs ``quic``). The streams are ``WebTransportStream`` objects: this connection is
their ``StreamHost`` and talks to the engine directly, so reads, writes, backpressure, resets
and half-closes behave exactly as on our WebTransport connections.

It is the endpoint's ``ConnectionHandler``: at ``HandshakeCompleted`` it checks the peer's
certificate (and, dialing, the expected peer id) before it looks at any other event, and closes
the connection with the TLS alert ``bad_certificate`` when the check fails, so no stream of an
unauthenticated peer ever reaches the swarm. What it shares with ``WebTransportConnection`` (the
stream table, the stream host calls, the end of the connection) is in ``muxed_conn.py``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable
from multiaddr import Multiaddr

from .config import WebTransportConfig
from .engine import base as engine_events
from .errors import DialError, EngineError, InvalidPeerCertificate, StreamLimitReached
from .libp2p_tls import verify_certificate
from .muxed_conn import MuxedConnection, udp_multiaddr
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
    return udp_multiaddr(address, "/quic-v1")


class QuicConnection(MuxedConnection):
    """A libp2p connection over one QUIC connection (both roles)."""

    PROTOCOL = "QUIC"
    TRANSPORT_LABEL = "quic"
    STREAM_OVER_ERRORS = (EngineError,)

    def __init__(
        self,
        endpoint_conn: EndpointConnection,
        *,
        is_initiator: bool,
        config: WebTransportConfig,
        local_peer: ID,
        expected_peer: ID | None = None,
    ) -> None:
        super().__init__(
            endpoint_conn, is_initiator=is_initiator, config=config, local_peer=local_peer
        )
        self._engine = endpoint_conn.engine
        self._expected_peer = expected_peer  # peer_id stays ours until the certificate proves it
        #: Set when the handshake ended: authenticated (``authentication_error`` None) or not.
        self.authenticated = trio.Event()
        self.authentication_error: DialError | None = None
        # Peer bidirectional streams: the highest id seen, and lower ids not seen yet (QUIC
        # opens them implicitly; their first bytes may come later). Any other unknown id is a
        # stream that is over for us.
        self._highest_peer_stream = -1
        self._unseen_peer_streams: set[int] = set()

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
                    if self._metrics is not None:
                        self._metrics.stream_reset(self.TRANSPORT_LABEL, local=False)
                    stream.on_reset(event.error_code)
            elif isinstance(event, engine_events.StopSendingReceived):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.on_stop_sending(event.error_code)
            elif isinstance(event, engine_events.ConnectionTerminated):
                # remote: the peer's CONNECTION_CLOSE; else an idle timeout, a reset, an error.
                self._connection_lost(
                    f"connection closed ({event.reason or event.error_code})",
                    "remote" if event.remote else "lost",
                )
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
            self._connection_lost(f"peer certificate refused: {error}", "local")
            return
        self.peer_id = peer.peer_id
        self.remote_public_key = peer.public_key
        self._set_established()
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
        stream = self._offer_peer_stream(stream_id)
        if stream is None:
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

    def _connection_lost(self, reason: str, kind: str = "lost") -> None:
        # A dial or accept still waiting for the handshake hears that it failed.
        if self.authentication_error is None and not self.authenticated.is_set():
            self.authentication_error = DialError(f"connection ended in the handshake: {reason}")
        self.authenticated.set()
        super()._connection_lost(reason, kind)

    # --- the engine carries the streams (MuxedConnection's stream host calls) -------------------

    def _queue_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self._engine.send_stream_data(stream_id, data, end_stream=end_stream)

    def _return_credit(self, stream_id: int, n: int) -> None:
        self._consume_quietly(stream_id, n)

    def _send_reset(self, stream_id: int, error_code: int) -> None:
        self._engine.reset_stream(stream_id, error_code)

    def _send_stop(self, stream_id: int, error_code: int) -> None:
        self._engine.stop_stream(stream_id, error_code)

    def _queued_bytes(self, stream_id: int) -> int:
        return self._engine.send_buffer_size(stream_id)

    # --- IMuxedConn -----------------------------------------------------------------------------

    def describe(self, max_streams: int = 30) -> str:
        """The connection's state and QUIC figures, then one line per stream (diagnostics)."""
        engine = self._engine
        lines = [
            f"{self!r} closed={self._closed} reason={self._close_reason} "
            f"paused={engine.receive_paused} unread={engine.unread_bytes()}\n  {engine.stats()}"
        ]
        for stream_id, stream in list(self._streams.items())[:max_streams]:
            lines.append(f"  stream {stream_id}: {stream.describe()}")
        if len(self._streams) > max_streams:
            lines.append(f"  ... {len(self._streams) - max_streams} more streams")
        return "\n".join(lines)

    def handshake_phases(self) -> dict[str, float]:
        """Seconds the QUIC + TLS handshake took (``quic``), once authenticated."""
        if self._established_at is None:
            return {}
        return {"quic": max(self._established_at - self._started_at, 0.0)}

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
        return self._opened_stream(stream_id)

    async def close(self) -> None:
        """CONNECTION_CLOSE (no error). Idempotent."""
        if self._closed:
            return
        self._connection_lost("closed locally", "local")
        self._engine.close(_NO_ERROR, "closed")
        self._ep_conn.transmit_soon()

    # --- IRawConnection -------------------------------------------------------------------------

    def get_transport_addresses(self) -> list[Multiaddr]:
        """The peer's address as ``/ip4|ip6/…/udp/…/quic-v1``."""
        return [quic_multiaddr(self._remote())]
