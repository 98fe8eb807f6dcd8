"""``WebTransportH3``: WebTransport over HTTP/3 on one QUIC connection, both roles, sans-IO.

Layers, one module each: ``http3.Http3Base`` (control/QPACK streams, SETTINGS, stream routing,
connection errors) < ``sessions.SessionHandling`` (CONNECT streams, capsules, session end) <
``WebTransportH3`` here (WebTransport streams, held streams, the stall breaker, timers, the
engine-event entry point, and the engine queries the application needs).

Feed every engine event to ``handle_engine_events`` (or one at a time to ``handle_engine_event``);
pull ``SessionEvent``s with ``next_event``. Everything this layer writes goes straight to the
engine (``send_stream_data`` & co.), so the caller transmits (``engine.datagrams_to_send``) after
every call into it. The application needs no engine handle of its own: flow control
(``consume``), backpressure (``send_buffer_size``), the peer's certificate, counters and the
connection's close all go through this object.

Scope: one WebTransport session per QUIC connection (a libp2p connection is one session); a
second CONNECT is answered 429 (checklist §D 25). Datagrams are not used by libp2p and ignored.
Sources: RFC 9114 (HTTP/3), RFC 9220 (extended CONNECT), RFC 9297 (capsules),
draft-ietf-webtrans-http3 02 and 15/16; shared requirements checklist §D, §E, §G.
"""

from __future__ import annotations

from .. import _wire
from .._errors import LocalProtocolError, RemoteProtocolError
from ..constants import RECEIVE_STALL_ERROR, H3ErrorCode
from ..engine import base as eng
from .config import H3Config
from .events import (
    ConnectionClosed,
    SessionClosed,
    StopSendingReceived,
    StreamDataReceived,
    StreamOpened,
    StreamReset,
    StreamStalled,
)
from .pending import PendingStreams
from .sessions import BUFFER_REJECTED, SessionHandling
from .stall import StallWatch
from .streams import RequestStream, State, WtStream

_GONE = H3ErrorCode.WT_SESSION_GONE


class WebTransportH3(SessionHandling):
    """The HTTP/3 + WebTransport state machine of one QUIC connection (client or server)."""

    def __init__(
        self, engine: eng.QuicEngine, *, is_client: bool, config: H3Config | None = None
    ) -> None:
        super().__init__(engine, is_client=is_client, config=config)
        cfg = self._config
        self._pending = PendingStreams(
            cfg.pending_stream_timeout, cfg.max_pending_streams, cfg.max_pending_bytes
        )
        self._wt: dict[int, WtStream] = {}  # every live WebTransport stream (hot path)
        self._stall = StallWatch(cfg.stall_timeout)
        self._now = 0.0  # the latest time an input brought (for consume() without one)

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def live_streams(self) -> int:
        """WebTransport streams with a direction still open (for metrics and tests)."""
        return len(self._wt)

    @property
    def stalls_broken(self) -> int:
        """Streams the stall breaker aborted so far (see ``stall.py``)."""
        return self._stall.broken

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must run next (SETTINGS, held streams, the stall deadline)."""
        if self._closed:
            return None
        # Called after every pump turn: plain comparisons, no lists.
        timer = self._pending.next_deadline()
        stall = self._stall.deadline()
        if stall is not None and (timer is None or stall < timer):
            timer = stall
        settings = self._settings_deadline if self._peer_settings is None else None
        if settings is not None and (timer is None or settings < timer):
            timer = settings
        return timer

    def handle_timer(self, now: float) -> None:
        """Reject held streams whose deadline passed; close if the peer's SETTINGS are late;
        break a stall (``StreamStalled``) when paused reception reached ``stall_timeout``."""
        if self._closed:
            return
        self._now = now
        if self._settings_overdue(now):
            self._connection_error(H3ErrorCode.H3_MISSING_SETTINGS, "no SETTINGS from the peer")
            return
        for held in self._pending.pop_expired(now):
            self._reject_held(held.stream_id, held.bidirectional, held.size, BUFFER_REJECTED)
        if self._stall.due(now):
            self._break_stall()
        self._watch_stall(now)

    # ---- the stall breaker (policy and reasons: stall.py) ---------------------------------------

    def _watch_stall(self, now: float) -> None:
        """Once per batch of input: is reception paused by unread data, and since when?"""
        paused = self._engine.receive_paused
        if paused:
            req = self._session()
            # A closed session's streams are gone with it: nobody will read, nothing to break.
            paused = not self._closed and (req is None or req.state is not State.CLOSED)
        elif self._stall.paused_since is None:
            return  # the usual case: reception flows and the clock is not running
        self._stall.observe(paused, now)

    def _break_stall(self) -> None:
        """Abort the stream holding the most unread bytes (STOP_SENDING + RESET_STREAM)."""
        # Bytes the session itself holds (held streams, requests, stream headers) are not a
        # reader's: only WebTransport payload the application has not read yet counts.
        unread = {
            stream_id: n
            for stream_id, n in self._engine.unread_streams().items()
            if stream_id not in self._pending
            and stream_id not in self._requests
            and stream_id not in self._incoming
        }
        victim = self._stall.choose(unread)
        if victim is None:
            return
        self._stall.broke()
        stream = self._wt.get(victim)
        if stream is not None and not stream.recv_done:
            self.stop_sending(victim, RECEIVE_STALL_ERROR)
        stream = self._wt.get(victim)  # stop_sending may have let it go
        if stream is not None and not stream.send_done and not stream.peer_stopped:
            self.reset_stream(victim, RECEIVE_STALL_ERROR)
        self._events.append(StreamStalled(victim, RECEIVE_STALL_ERROR, unread[victim]))

    # ---- engine input --------------------------------------------------------------------------

    def handle_engine_events(self, events: list[eng.EngineEvent], now: float) -> None:
        """Process a batch of engine events in order (what the endpoint pump delivers)."""
        for event in events:
            self._on_engine_event(event, now)
        self._now = now
        self._watch_stall(now)

    def handle_engine_event(self, event: eng.EngineEvent, now: float) -> None:
        """Process one engine event (feed every event of the engine, in order)."""
        self._on_engine_event(event, now)
        self._now = now
        self._watch_stall(now)

    def _on_engine_event(self, event: eng.EngineEvent, now: float) -> None:
        if self._closed:
            if type(event) is eng.ConnectionTerminated:
                self._terminated = True
            return
        # The hot path first: payload of an established WebTransport stream goes straight out.
        if type(event) is eng.StreamDataReceived:
            stream = self._wt.get(event.stream_id)
            if stream is not None:
                if stream.stopped:  # in flight before our STOP_SENDING: drain, don't deliver
                    self._drain_stopped(event.stream_id, stream, len(event.data), event.end_stream)
                    return
                self._events.append(
                    StreamDataReceived(event.stream_id, event.data, event.end_stream)
                )
                if event.end_stream:
                    stream.recv_done = True
                    if stream.send_done:
                        self._forget(event.stream_id, stream)
                return
        try:
            if isinstance(event, eng.StreamDataReceived):
                self._on_stream_data(event.stream_id, event.data, event.end_stream, now)
            elif isinstance(event, eng.StreamReset):
                self._on_stream_reset(event.stream_id, event.error_code)
            elif isinstance(event, eng.StopSendingReceived):
                self._on_stop_sending(event.stream_id, event.error_code)
            elif isinstance(event, eng.ConnectionTerminated):
                self._on_terminated(event)
        except RemoteProtocolError as exc:
            self._connection_error(exc.error_code, str(exc))

    def _on_terminated(self, event: eng.ConnectionTerminated) -> None:
        self._closed = self._terminated = True
        req = self._session()
        if req is not None and req.state in (State.REQUESTED, State.ESTABLISHED):
            req.state = State.CLOSED
            self._events.append(SessionClosed(req.session_id, 0, event.reason, event.remote))
        self._events.append(ConnectionClosed(event.error_code, event.reason, event.remote))

    # ---- stream data dispatch ------------------------------------------------------------------

    def _on_stream_data(self, stream_id: int, data: bytes, end: bool, now: float) -> None:
        if stream_id in self._pending:
            if not self._pending.append(stream_id, data, end):
                held = self._pending.pop(stream_id)
                assert held is not None
                self._reject_held(stream_id, held.bidirectional, held.size, BUFFER_REJECTED)
                self._engine.consume(stream_id, len(data))
            return
        req = self._requests.get(stream_id)
        if req is not None:
            self._on_request_data(req, data, end)
            return
        self._on_incoming_data(stream_id, data, end, now)

    # ---- session hooks -------------------------------------------------------------------------

    def _adopt_held(self, req: RequestStream) -> None:
        for held in self._pending.pop_session(req.session_id):
            self._adopt(held.stream_id, req, held.bidirectional, held.payload(), held.ended)

    def _end_streams(self, req: RequestStream) -> None:
        for stream_id in sorted(req.streams):
            stream = self._wt.pop(stream_id)
            if not stream.send_done:
                self._reset(stream_id, _GONE)
            if not stream.recv_done:
                self._stop(stream_id, _GONE)
                stream.stopped = True
            if stream.stopped:
                self._ignore_stream(stream_id)  # drain what is still in flight
        req.streams.clear()
        self._reject_held_session(req.session_id, _GONE)

    # ---- WebTransport streams ------------------------------------------------------------------

    def _on_wt_stream(
        self, stream_id: int, session_id: int, bidi: bool, rest: bytes, end: bool, now: float
    ) -> None:
        req = self._requests.get(session_id)
        state = req.state if req is not None else None
        if req is not None and state is State.ESTABLISHED:
            self._adopt(stream_id, req, bidi, rest, end)
        elif state in (State.CLOSED, State.DEAD):
            code = _GONE if state is State.CLOSED else BUFFER_REJECTED
            self._reject_held(stream_id, bidi, len(rest), code)
        elif self._pending.add(stream_id, session_id, bidi, now):
            self._on_stream_data(stream_id, rest, end, now)
        else:
            self._reject_held(stream_id, bidi, len(rest), BUFFER_REJECTED)

    def _adopt(
        self, stream_id: int, req: RequestStream, bidi: bool, payload: bytes, end: bool
    ) -> None:
        """Make a peer stream live in an established session and deliver what it carried."""
        stream = WtStream(req.session_id, bidi, send_done=not bidi)
        self._wt[stream_id] = stream
        req.streams.add(stream_id)
        self._events.append(StreamOpened(req.session_id, stream_id, bidi))
        if payload or end:
            self._events.append(StreamDataReceived(stream_id, payload, end))
        if end:
            stream.recv_done = True
            if stream.send_done:
                self._forget(stream_id, stream)

    def _reject_held(self, stream_id: int, bidi: bool, held_bytes: int, code: int) -> None:
        """Refuse a peer WT stream; its bytes so far and later are drained, not delivered."""
        self._stop(stream_id, code)
        if bidi:
            self._reset(stream_id, code)
        self._engine.consume(stream_id, held_bytes)
        self._ignore_stream(stream_id)

    def _reject_held_session(self, session_id: int, code: int = BUFFER_REJECTED) -> None:
        for held in self._pending.pop_session(session_id):
            self._reject_held(held.stream_id, held.bidirectional, held.size, code)

    def _on_stream_reset(self, stream_id: int, code: int) -> None:
        stream = self._wt.get(stream_id)
        if stream is not None:
            stream.recv_done = True
            if stream.stopped:  # the expected answer to our STOP_SENDING: nothing to report
                stream.stopped = False
            else:
                self._events.append(StreamReset(stream_id, _wire.h3_to_wt_error(code), code))
            if stream.send_done:
                self._forget(stream_id, stream)
            return
        held = self._pending.pop(stream_id)
        if held is not None:
            self._engine.consume(stream_id, held.size)
            return
        req = self._requests.get(stream_id)
        if req is not None:
            self._on_request_reset(req, code)
            return
        self._check_critical_reset(stream_id)

    def _on_stop_sending(self, stream_id: int, code: int) -> None:
        stream = self._wt.get(stream_id)
        if stream is not None:
            stream.peer_stopped = True
            self._events.append(StopSendingReceived(stream_id, _wire.h3_to_wt_error(code), code))
            # Both engines answer STOP_SENDING with RESET_STREAM themselves (RFC 9000 §3.5):
            # our direction is over, and a stream whose other direction is too is forgotten.
            if not stream.send_done:
                self._send_finished(stream_id, stream)
        else:
            self._check_critical_stop(stream_id)

    # ---- public API: streams (sessions: sessions.SessionHandling) -------------------------

    def open_stream(self, session_id: int, bidirectional: bool = True) -> int:
        """Open a WebTransport stream in a session (its header is sent now).

        The session must be established, except that a client may open streams as soon as its
        CONNECT has been sent (the libp2p WebTransport spec lets the dialer start Noise right
        away; the server holds such streams until it accepts the session, checklist §D 23). If
        the session is then rejected, those streams end with WT_SESSION_GONE.
        """
        self._check_open()
        req = self._requests.get(session_id)
        early = self._is_client and req is not None and req.state is State.SENT
        if req is None or not (req.state is State.ESTABLISHED or early):
            raise LocalProtocolError(f"session {session_id} is not established")
        stream_id = self._engine.get_next_available_stream_id(is_unidirectional=not bidirectional)
        header = _wire.encode_stream_header(bidirectional, session_id)
        self._engine.send_stream_data(stream_id, header)
        self._wt[stream_id] = WtStream(session_id, bidirectional, recv_done=not bidirectional)
        req.streams.add(stream_id)
        return stream_id

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Write payload on a WebTransport stream (``end_stream`` sends FIN)."""
        stream = self._live_stream(stream_id)
        if stream.send_done:  # a peer's uni stream, or FIN/reset already sent
            raise LocalProtocolError(f"stream {stream_id} cannot be written to")
        self._engine.send_stream_data(stream_id, data, end_stream)
        if end_stream:
            self._send_finished(stream_id, stream)

    def reset_stream(self, stream_id: int, error_code: int = 0) -> None:
        """RESET_STREAM with WebTransport application code ``error_code`` (mapped to HTTP/3).

        A no-op when the sending side is already finished or the stream is gone.
        """
        self._check_open()
        stream = self._wt.get(stream_id)
        if stream is not None and not stream.send_done:
            self._reset(stream_id, _wire.wt_to_h3_error(error_code))
            self._send_finished(stream_id, stream)

    def stop_sending(self, stream_id: int, error_code: int = 0) -> None:
        """STOP_SENDING with WebTransport application code ``error_code`` (mapped to HTTP/3).

        A no-op when the receiving side is already finished or the stream is gone.
        """
        self._check_open()
        stream = self._wt.get(stream_id)
        if stream is not None and not stream.recv_done:
            self._stop(stream_id, _wire.wt_to_h3_error(error_code))
            stream.recv_done = stream.stopped = True
            if stream.send_done:
                self._forget(stream_id, stream)

    def _send_finished(self, stream_id: int, stream: WtStream) -> None:
        stream.send_done = True
        if stream.recv_done:
            self._forget(stream_id, stream)

    def _drain_stopped(self, stream_id: int, stream: WtStream, n: int, end: bool) -> None:
        self._engine.consume(stream_id, n)
        if end:
            stream.stopped = False
            if stream.send_done:
                self._forget(stream_id, stream)

    def _forget(self, stream_id: int, stream: WtStream) -> None:
        """Both directions are over for us: drop the stream; what is in flight is drained."""
        del self._wt[stream_id]
        if stream.stopped:
            self._ignore_stream(stream_id)
        req = self._requests.get(stream.session_id)
        if req is not None:
            req.streams.discard(stream_id)

    def consume(self, stream_id: int, n: int, now: float | None = None) -> None:
        """The application read (or dropped) ``n`` payload bytes of ``stream_id``: return the
        credit. Reading is progress, so a running stall clock starts over at ``now`` (default:
        the latest time an input brought)."""
        self._engine.consume(stream_id, n)
        if self._stall.paused_since is not None:
            self._stall.progress(self._engine.receive_paused, self._now if now is None else now)

    def _live_stream(self, stream_id: int) -> WtStream:
        self._check_open()
        stream = self._wt.get(stream_id)
        if stream is None:
            raise LocalProtocolError(f"stream {stream_id} is not a live WebTransport stream")
        return stream

    # ---- engine queries and the connection's close (for the application) ----------------------

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes written to ``stream_id`` that still wait in the engine (write backpressure)."""
        return self._engine.send_buffer_size(stream_id)

    def unread_bytes(self, stream_id: int | None = None) -> int:
        """Delivered, not yet consumed bytes of one stream or (``None``) the connection."""
        return self._engine.unread_bytes(stream_id)

    @property
    def receive_paused(self) -> bool:
        """True while unread bytes hold the engine's reception back (qh3 only)."""
        return self._engine.receive_paused

    def peer_certificate_der(self) -> bytes | None:
        """The peer's TLS certificate (DER) once the QUIC handshake received it."""
        return self._engine.peer_certificate_der()

    def stats(self) -> eng.EngineStats:
        """The QUIC connection's counters (RTT, congestion window, bytes, losses)."""
        return self._engine.stats()

    def close_connection(self, error_code: int = 0, reason: str = "") -> None:
        """Close the QUIC connection (CONNECTION_CLOSE); a no-op once it has terminated.

        The engine reports ``ConnectionTerminated`` after draining, which ends this layer
        (``ConnectionClosed``) as for any other end of the connection.
        """
        if not self._terminated:
            self._engine.close(error_code, reason)
