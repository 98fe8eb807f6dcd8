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
What it shares with ``QuicConnection`` (the stream table, the stream host calls, the end of the
connection) is in ``muxed_conn.py``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio
from libp2p.crypto.keys import PublicKey
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable
from multiaddr import Multiaddr

from .config import WebTransportConfig
from .constants import H3ErrorCode
from .engine import base as engine_events
from .errors import LocalProtocolError, SessionRejected
from .muxed_conn import MuxedConnection, udp_multiaddr
from .session import WebTransportH3
from .session import events as sev
from .stream import WebTransportStream

if TYPE_CHECKING:
    from .endpoint import EndpointConnection

logger = logging.getLogger(__name__)


def transport_multiaddr(address: tuple[Any, ...]) -> Multiaddr:
    """``/ip4|ip6/<host>/udp/<port>/quic-v1/webtransport`` for a UDP socket address."""
    return udp_multiaddr(address, "/quic-v1/webtransport")


class WebTransportConnection(MuxedConnection):
    """A libp2p connection over one WebTransport session (both roles)."""

    PROTOCOL = "WebTransport"
    TRANSPORT_LABEL = "webtransport"
    STREAM_OVER_ERRORS = (LocalProtocolError,)

    def __init__(
        self,
        endpoint_conn: EndpointConnection,
        *,
        is_initiator: bool,
        config: WebTransportConfig,
        local_peer: ID,
    ) -> None:
        super().__init__(
            endpoint_conn, is_initiator=is_initiator, config=config, local_peer=local_peer
        )
        self._h3 = WebTransportH3(
            endpoint_conn.engine, is_client=is_initiator, config=config.session_config()
        )
        self.session_id: int | None = None

        # Progress of the handshake, waited on by the transport (client) or listener (server).
        self.quic_connected = trio.Event()
        self.session_ready = trio.Event()  # established, rejected or failed
        self.session_rejected: SessionRejected | None = None
        # trio times of each step after the start (handshake_phases): QUIC, CONNECT, Noise done
        # (``_established_at``: usable by the swarm).
        self._quic_at: float | None = None
        self._session_at: float | None = None

        self._h3.initialize(trio.current_time())
        endpoint_conn.transmit_soon()

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
                        self._metrics.stream_reset(self.TRANSPORT_LABEL, local=False)
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
        if self._offer_peer_stream(event.stream_id) is None:
            self._h3.reset_stream(event.stream_id, 0)
            self._h3.stop_sending(event.stream_id, 0)

    def _on_session_closed(self, event: sev.SessionClosed) -> None:
        who = "peer" if event.remote else "us"
        self._connection_lost(
            f"session closed by {who} (code {event.error_code}: {event.message!r})",
            "remote" if event.remote else "local",
        )
        if event.remote:
            # The session was the whole point of the connection (go-libp2p closes it too).
            self._h3.close_connection(H3ErrorCode.H3_NO_ERROR, "session closed")

    def _connection_lost(self, reason: str, kind: str = "lost") -> None:
        """The connection ended; ``kind`` (local, remote: the peer closed the session, lost) is
        the metrics' reason label."""
        self.session_ready.set()
        self.quic_connected.set()
        super()._connection_lost(reason, kind)

    # --- the session carries the streams (MuxedConnection's stream host calls) -----------------

    def _queue_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self._h3.send_stream_data(stream_id, data, end_stream=end_stream)

    def _return_credit(self, stream_id: int, n: int) -> None:
        # The time restarts the session's stall clock if reception is paused.
        self._h3.consume(stream_id, n, trio.current_time())

    def _send_reset(self, stream_id: int, error_code: int) -> None:
        self._h3.reset_stream(stream_id, error_code)

    def _send_stop(self, stream_id: int, error_code: int) -> None:
        self._h3.stop_sending(stream_id, error_code)

    def _queued_bytes(self, stream_id: int) -> int:
        return self._h3.send_buffer_size(stream_id)

    # --- IMuxedConn ---------------------------------------------------------------------------

    def peer_certificate_der(self) -> bytes | None:
        """Client: the server's TLS certificate (DER) once the QUIC handshake completed."""
        return self._h3.peer_certificate_der()

    def request_session(self, authority: str, path: str) -> None:
        """Client: send the extended CONNECT; ``session_ready`` is set on the answer."""
        self.session_id = self._h3.connect(authority, path, trio.current_time())
        self._ep_conn.transmit_soon()

    def mark_established(self, peer_id: ID, public_key: PublicKey | None = None) -> None:
        """Called by the transport/listener when the Noise handshake authenticated ``peer_id``."""
        self.peer_id = peer_id
        self.remote_public_key = public_key
        self._set_established()

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
        stream = self._opened_stream(stream_id)
        self._ep_conn.transmit_soon()
        return stream

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

    def get_transport_addresses(self) -> list[Multiaddr]:
        """The peer's address as ``/ip4|ip6/…/udp/…/quic-v1/webtransport``."""
        return [transport_multiaddr(self._remote())]
