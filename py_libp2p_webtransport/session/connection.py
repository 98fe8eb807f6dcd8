"""``WebTransportH3``: WebTransport over HTTP/3 on one QUIC connection, both roles, sans-IO.

Feed every engine event to ``handle_engine_event``; pull ``SessionEvent``s with ``next_event``.
Everything this layer writes goes straight to the engine (``send_stream_data`` & co.), so the
caller transmits (``engine.datagrams_to_send``) after every call into it.

Scope: one WebTransport session per QUIC connection (a libp2p connection is one session); a
second CONNECT is answered 429 (checklist §D 25). Datagrams are not used by libp2p and ignored.
Sources: RFC 9114 (HTTP/3), RFC 9220 (extended CONNECT), RFC 9297 (capsules),
draft-ietf-webtrans-http3 02 and 15/16; shared requirements checklist §D, §E, §G.
"""

from __future__ import annotations

from collections import deque

from .. import _wire
from ..constants import CapsuleType, FrameType, H3ErrorCode, StreamType
from ..engine import base as eng
from ..errors import LocalProtocolError, MessageError, NeedMoreData, RemoteProtocolError
from .config import H3Config
from .events import (
    ConnectionClosed,
    SessionClosed,
    SessionDraining,
    SessionEstablished,
    SessionEvent,
    SessionRejected,
    SessionRequested,
    StopSendingReceived,
    StreamDataReceived,
    StreamOpened,
    StreamReset,
)
from .headers import (
    HeaderCodec,
    build_request,
    build_response,
    parse_request,
    parse_response,
    request_status,
)
from .pending import PendingStreams
from .settings import (
    choose_client_protocol,
    client_settings,
    server_settings,
    validate_peer_settings,
)
from .streams import Incoming, Kind, RequestStream, State, WtStream

_GONE = H3ErrorCode.WT_SESSION_GONE
_BUFFER_REJECTED = H3ErrorCode.WT_BUFFERED_STREAM_REJECTED
# Frame types a request stream or the control stream must never carry (RFC 9114 §7.2, §11.2.1:
# the HTTP/2-only types are reserved and forbidden).
_HTTP2_ONLY_FRAMES = frozenset({0x2, 0x6, 0x8, 0x9})
_OVER = frozenset({State.DEAD})
_CONTROL_ONLY_FRAMES = frozenset(
    {FrameType.CANCEL_PUSH, FrameType.SETTINGS, FrameType.GOAWAY, FrameType.MAX_PUSH_ID}
)


class WebTransportH3:
    """The HTTP/3 + WebTransport state machine of one QUIC connection (client or server)."""

    def __init__(
        self, engine: eng.QuicEngine, *, is_client: bool, config: H3Config | None = None
    ) -> None:
        self._engine = engine
        self._is_client = is_client
        self._config = config if config is not None else H3Config()
        self._codec = HeaderCodec()
        self._events: deque[SessionEvent] = deque()
        self._pending = PendingStreams(
            self._config.pending_stream_timeout,
            self._config.max_pending_streams,
            self._config.max_pending_bytes,
        )
        self._wt: dict[int, WtStream] = {}  # every live WebTransport stream (hot path)
        self._incoming: dict[int, Incoming] = {}  # peer streams that are not WT streams
        self._requests: dict[int, RequestStream] = {}  # CONNECT streams, by session id
        self._session_id: int | None = None  # the one session of this connection
        self._peer_settings: dict[int, int] | None = None
        self._settings_deadline: float | None = None
        self._local_decoder_stream: int | None = None
        self._critical_local: set[int] = set()  # our control and QPACK streams
        self._seen_uni: set[int] = set()  # peer's control / QPACK stream types already opened
        self._closed = False

    # ---- lifecycle -----------------------------------------------------------------------------

    def initialize(self, now: float) -> None:
        """Open our control and QPACK streams and send SETTINGS (call once, first)."""
        cfg = self._config
        settings = client_settings(cfg) if self._is_client else server_settings(cfg)
        control = self._open_uni(StreamType.CONTROL)
        payload = _wire.encode_settings(settings)
        self._engine.send_stream_data(control, _wire.encode_frame(FrameType.SETTINGS, payload))
        self._open_uni(StreamType.QPACK_ENCODER)
        self._local_decoder_stream = self._open_uni(StreamType.QPACK_DECODER)
        self._settings_deadline = now + cfg.settings_timeout

    def _open_uni(self, stream_type: int) -> int:
        stream_id = self._engine.get_next_available_stream_id(is_unidirectional=True)
        self._engine.send_stream_data(stream_id, _wire.encode_varint(stream_type))
        self._critical_local.add(stream_id)
        return stream_id

    @property
    def peer_settings(self) -> dict[int, int] | None:
        """The peer's SETTINGS once received (read-only view for logs and tests)."""
        return None if self._peer_settings is None else dict(self._peer_settings)

    def next_event(self) -> SessionEvent | None:
        """Pop the oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must run next (SETTINGS deadline, held-stream deadlines)."""
        if self._closed:
            return None
        deadlines = [self._pending.next_deadline()]
        if self._peer_settings is None:
            deadlines.append(self._settings_deadline)
        present = [d for d in deadlines if d is not None]
        return min(present) if present else None

    def handle_timer(self, now: float) -> None:
        """Reject held streams whose deadline passed; close if the peer's SETTINGS are late."""
        if self._closed:
            return
        deadline = self._settings_deadline
        if self._peer_settings is None and deadline is not None and now >= deadline:
            self._connection_error(H3ErrorCode.H3_MISSING_SETTINGS, "no SETTINGS from the peer")
            return
        for held in self._pending.pop_expired(now):
            self._reject_held(held.stream_id, held.bidirectional, held.size, _BUFFER_REJECTED)

    # ---- engine input --------------------------------------------------------------------------

    def handle_engine_event(self, event: eng.EngineEvent, now: float) -> None:
        """Process one engine event (feed every event of the engine here, in order)."""
        if self._closed:
            return
        # The hot path first: payload of an established WebTransport stream goes straight out.
        if type(event) is eng.StreamDataReceived:
            stream = self._wt.get(event.stream_id)
            if stream is not None:
                self._events.append(
                    StreamDataReceived(event.stream_id, event.data, event.end_stream)
                )
                if event.end_stream:
                    stream.recv_done = True
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
        self._closed = True
        req = self._session()
        if req is not None and req.state in (State.REQUESTED, State.ESTABLISHED):
            req.state = State.CLOSED
            self._events.append(SessionClosed(req.session_id, 0, event.reason, event.remote))
        self._events.append(ConnectionClosed(event.error_code, event.reason, event.remote))

    def _connection_error(self, code: int, reason: str) -> None:
        """Close the QUIC connection with an HTTP/3 error code (RFC 9114 §8)."""
        self._engine.close(code, reason)
        self._closed = True
        self._events.append(ConnectionClosed(code, reason, False))

    # ---- stream data dispatch ------------------------------------------------------------------

    def _on_stream_data(self, stream_id: int, data: bytes, end: bool, now: float) -> None:
        if stream_id in self._pending:
            if not self._pending.append(stream_id, data, end):
                held = self._pending.pop(stream_id)
                assert held is not None
                self._reject_held(stream_id, held.bidirectional, held.size, _BUFFER_REJECTED)
                self._engine.consume(stream_id, len(data))
            return
        req = self._requests.get(stream_id)
        if req is not None:
            self._on_request_data(req, data, end)
            return
        incoming = self._incoming.get(stream_id)
        if incoming is None:
            if self._is_local(stream_id):
                # A stream of ours we already let go of (its session is gone): drain it.
                self._engine.consume(stream_id, len(data))
                return
            incoming = Incoming(Kind.UNI_HEADER if stream_id & 2 else Kind.BIDI_HEADER)
            self._incoming[stream_id] = incoming
        kind = incoming.kind
        if kind is Kind.UNI_HEADER or kind is Kind.BIDI_HEADER:
            incoming.buf += data
            self._parse_stream_start(stream_id, incoming, end, now)
        elif kind is Kind.CONTROL:
            self._on_control_data(stream_id, incoming, data, end)
        else:  # QPACK streams carry nothing we act on (capacity 0); ignored streams are drained
            if end and kind is Kind.QPACK:
                raise RemoteProtocolError(
                    "peer closed a QPACK stream", H3ErrorCode.H3_CLOSED_CRITICAL_STREAM
                )
            self._engine.consume(stream_id, len(data))
            if end:
                del self._incoming[stream_id]

    def _is_local(self, stream_id: int) -> bool:
        return (stream_id & 1) == (0 if self._is_client else 1)

    def _parse_stream_start(self, stream_id: int, inc: Incoming, end: bool, now: float) -> None:
        """Read a peer stream's type (uni) or first varint (bidi) and route the stream."""
        buf = inc.buf
        try:
            if inc.kind is Kind.UNI_HEADER:
                stream_type, session_id, offset = _wire.parse_uni_stream_type(buf)
            else:
                stream_type, session_id, offset = _wire.parse_bidi_stream_start(buf)
        except NeedMoreData:
            if end:  # the stream ended inside its header: nothing to route
                del self._incoming[stream_id]
                self._engine.consume(stream_id, len(buf))
            return
        inc.buf = b""
        if session_id is not None:  # 0x54 / 0x41 <session id>: a WebTransport stream
            del self._incoming[stream_id]
            _wire.check_session_id(session_id)
            self._engine.consume(stream_id, offset)
            is_bidi = inc.kind is Kind.BIDI_HEADER
            self._on_wt_stream(stream_id, session_id, is_bidi, buf[offset:], end, now)
        elif inc.kind is Kind.BIDI_HEADER:
            del self._incoming[stream_id]
            if self._is_client:  # server-initiated bidi streams exist only for WebTransport
                raise RemoteProtocolError(
                    f"server bidi stream {stream_id} is not a WebTransport stream",
                    H3ErrorCode.H3_STREAM_CREATION_ERROR,
                )
            req = RequestStream(stream_id, State.HEADERS, self._config.max_frame_payload)
            self._requests[stream_id] = req
            self._on_request_data(req, buf, end)
        else:
            self._on_uni_stream_type(stream_id, inc, stream_type, buf[offset:], end)
            self._engine.consume(stream_id, offset)

    def _on_uni_stream_type(
        self, stream_id: int, inc: Incoming, stream_type: int, rest: bytes, end: bool
    ) -> None:
        if stream_type in (StreamType.CONTROL, StreamType.QPACK_ENCODER, StreamType.QPACK_DECODER):
            if stream_type in self._seen_uni:  # RFC 9114 §6.2.1, RFC 9204 §4.2
                raise RemoteProtocolError(
                    f"second uni stream of type {stream_type}", H3ErrorCode.H3_STREAM_CREATION_ERROR
                )
            self._seen_uni.add(stream_type)
            inc.kind = Kind.CONTROL if stream_type == StreamType.CONTROL else Kind.QPACK
            if inc.kind is Kind.CONTROL:
                inc.reader = _wire.FrameReader(max_payload=self._config.max_frame_payload)
        elif stream_type == StreamType.PUSH:
            # We never send MAX_PUSH_ID, and only servers push (RFC 9114 §4.6, §6.2.2).
            code = (
                H3ErrorCode.H3_ID_ERROR if self._is_client else H3ErrorCode.H3_STREAM_CREATION_ERROR
            )
            raise RemoteProtocolError("unexpected push stream", code)
        else:  # unknown or GREASE stream types must be ignored (RFC 9114 §6.2.3)
            inc.kind = Kind.IGNORED
            self._stop(stream_id, H3ErrorCode.H3_STREAM_CREATION_ERROR)
        self._on_stream_data_known(stream_id, inc, rest, end)

    def _on_stream_data_known(self, stream_id: int, inc: Incoming, data: bytes, end: bool) -> None:
        if inc.kind is Kind.CONTROL:
            self._on_control_data(stream_id, inc, data, end)
        elif data or end:
            self._on_stream_data(stream_id, data, end, 0.0)

    # ---- control stream ------------------------------------------------------------------------

    def _on_control_data(self, stream_id: int, inc: Incoming, data: bytes, end: bool) -> None:
        assert inc.reader is not None
        for frame_type, payload in inc.reader.feed(data):
            self._on_control_frame(frame_type, payload)
            if self._closed:
                return
        self._engine.consume(stream_id, len(data))
        if end:
            raise RemoteProtocolError(
                "peer closed its control stream", H3ErrorCode.H3_CLOSED_CRITICAL_STREAM
            )

    def _on_control_frame(self, frame_type: int, payload: bytes) -> None:
        if self._peer_settings is None:
            if frame_type != FrameType.SETTINGS:
                raise RemoteProtocolError(
                    f"control stream starts with frame 0x{frame_type:x}, not SETTINGS",
                    H3ErrorCode.H3_MISSING_SETTINGS,
                )
            settings = _wire.decode_settings(payload)
            validate_peer_settings(settings)
            self._peer_settings = settings
            self._on_peer_settings()
            return
        unexpected = (
            frame_type in (FrameType.SETTINGS, FrameType.DATA, FrameType.HEADERS)
            or frame_type in (FrameType.PUSH_PROMISE, FrameType.WEBTRANSPORT_STREAM)
            or frame_type in _HTTP2_ONLY_FRAMES
            or (frame_type == FrameType.MAX_PUSH_ID and self._is_client)
        )
        if unexpected:
            raise RemoteProtocolError(
                f"frame 0x{frame_type:x} on the control stream", H3ErrorCode.H3_FRAME_UNEXPECTED
            )
        if frame_type == FrameType.GOAWAY:
            req = self._session()
            if req is not None and req.state is State.ESTABLISHED and not req.draining:
                req.draining = True
                self._events.append(SessionDraining(req.session_id))
        # CANCEL_PUSH, MAX_PUSH_ID (server side) and unknown/GREASE frames: nothing to do.

    def _on_peer_settings(self) -> None:
        assert self._peer_settings is not None
        if self._is_client:
            req = self._session()
            if req is not None and req.state is State.UNSENT:
                self._send_connect(req)
            return
        # Server: requests that arrived before SETTINGS are processed now (checklist §D 23).
        for req in list(self._requests.values()):
            held, req.held = req.held, []
            for data, end in held:
                self._feed_request(req, data, end)

    # ---- request (CONNECT) streams -------------------------------------------------------------

    def _on_request_data(self, req: RequestStream, data: bytes, end: bool) -> None:
        if self._peer_settings is None and not self._is_client and req.state is State.HEADERS:
            req.held.append((data, end))
            req.held_bytes += len(data)
            if req.held_bytes > self._config.max_frame_payload:
                self._abort_request(req, H3ErrorCode.H3_EXCESSIVE_LOAD)
            return
        self._feed_request(req, data, end)

    def _feed_request(self, req: RequestStream, data: bytes, end: bool) -> None:
        stream_id = req.session_id
        if req.state is State.DEAD:
            self._engine.consume(stream_id, len(data))
            return
        for frame_type, payload in req.frames.feed(data):
            if frame_type == FrameType.DATA:
                self._on_request_body(req, payload)
            elif frame_type == FrameType.HEADERS:
                self._on_request_headers(req, payload)
            elif frame_type == FrameType.WEBTRANSPORT_STREAM:
                # 0x41 is only valid as the first bytes of a stream (draft-16 §4.2).
                raise RemoteProtocolError(
                    "0x41 inside a request stream", H3ErrorCode.H3_FRAME_ERROR
                )
            elif frame_type in _CONTROL_ONLY_FRAMES or frame_type in _HTTP2_ONLY_FRAMES:
                raise RemoteProtocolError(
                    f"frame 0x{frame_type:x} on a request stream", H3ErrorCode.H3_FRAME_UNEXPECTED
                )
            if self._closed or req.state in _OVER:  # the handler ended the stream
                break
        self._engine.consume(stream_id, len(data))
        if end and not self._closed:
            if req.frames.buffered:  # RFC 9114 §7.1: a truncated last frame is H3_FRAME_ERROR
                raise RemoteProtocolError(
                    f"request stream {stream_id} ended inside a frame", H3ErrorCode.H3_FRAME_ERROR
                )
            self._on_request_fin(req)

    def _on_request_headers(self, req: RequestStream, block: bytes) -> None:
        control, headers = self._codec.decode(req.session_id, block)
        if control and self._local_decoder_stream is not None:
            self._engine.send_stream_data(self._local_decoder_stream, control)
        if self._is_client:
            self._on_response(req, headers)
        elif req.state is State.HEADERS:
            self._on_request(req, headers)
        # Trailers (a later HEADERS) carry nothing for WebTransport: ignored.

    def _on_request(self, req: RequestStream, headers: list[tuple[bytes, bytes]]) -> None:
        """Server: validate a CONNECT and either answer it or ask the application."""
        try:
            request = parse_request(headers)
        except MessageError:
            # A malformed request is a stream error (RFC 9114 §4.1.2).
            self._abort_request(req, H3ErrorCode.H3_MESSAGE_ERROR)
            return
        status = request_status(request, self._config)
        if status == 200 and self._session_id is not None:
            status = 429  # one session per connection (checklist §D 25)
        if status != 200:
            self._answer(req, status, fin=True)
            req.state = State.DEAD
            self._reject_held_session(req.session_id)
            return
        assert request.protocol is not None
        req.state = State.REQUESTED
        self._session_id = req.session_id
        self._events.append(
            SessionRequested(
                req.session_id,
                request.authority,
                request.path,
                request.protocol,
                request.origin,
                request.headers,
            )
        )

    def _on_response(self, req: RequestStream, headers: list[tuple[bytes, bytes]]) -> None:
        """Client: a 2xx establishes the session, anything else rejects it (checklist §E 29)."""
        if req.state is not State.SENT:
            return  # trailers
        try:
            status = parse_response(headers)
        except MessageError as exc:
            self._abort_request(req, H3ErrorCode.H3_MESSAGE_ERROR)
            self._events.append(SessionRejected(req.session_id, 0, f"malformed response: {exc}"))
            return
        if status < 200:
            return  # interim response; the final one follows
        if status >= 300:
            req.state = State.DEAD
            self._reject_held_session(req.session_id)
            self._events.append(SessionRejected(req.session_id, status, f"HTTP status {status}"))
            return
        self._establish(req)

    def _on_request_body(self, req: RequestStream, chunk: bytes) -> None:
        """DATA on the CONNECT stream carries capsules (RFC 9297)."""
        if req.state not in (State.REQUESTED, State.ESTABLISHED):
            return
        try:
            capsules = req.capsules.feed(chunk)
        except RemoteProtocolError as exc:
            self._session_ended(req, 0, f"malformed capsule: {exc}", remote=True)
            self._abort_request(req, H3ErrorCode.H3_MESSAGE_ERROR)
            return
        for capsule_type, value in capsules:
            if capsule_type == CapsuleType.CLOSE_WEBTRANSPORT_SESSION:
                code, message = _wire.decode_close_session(value)
                self._session_ended(req, code, message, remote=True)
                return
            if capsule_type == CapsuleType.DRAIN_WEBTRANSPORT_SESSION and not req.draining:
                req.draining = True
                self._events.append(SessionDraining(req.session_id))

    def _on_request_fin(self, req: RequestStream) -> None:
        if req.state in (State.REQUESTED, State.ESTABLISHED):
            self._session_ended(req, 0, "", remote=True)  # FIN = session closed (draft §5)
        elif req.state is State.SENT:
            req.state = State.DEAD
            self._events.append(
                SessionRejected(req.session_id, 0, "stream ended without a response")
            )
        elif req.state is State.HEADERS:
            req.state = State.DEAD  # a request stream that ended before its HEADERS
        req.recv_done = True

    def _answer(self, req: RequestStream, status: int, fin: bool) -> None:
        block = self._codec.encode(req.session_id, build_response(status))
        frame = _wire.encode_frame(FrameType.HEADERS, block)
        self._engine.send_stream_data(req.session_id, frame, end_stream=fin)
        req.fin_sent = fin

    def _abort_request(self, req: RequestStream, code: int) -> None:
        """Stream error on a request stream: reset both directions, drain what comes."""
        if not req.fin_sent:
            self._reset(req.session_id, code)
            req.fin_sent = True
        if not req.recv_done:
            self._stop(req.session_id, code)
        req.state = State.DEAD
        if self._session_id == req.session_id and not self._is_client:
            self._session_id = None
        self._reject_held_session(req.session_id)

    def _session(self) -> RequestStream | None:
        return None if self._session_id is None else self._requests.get(self._session_id)

    def _establish(self, req: RequestStream) -> None:
        req.state = State.ESTABLISHED
        self._events.append(SessionEstablished(req.session_id))
        for held in self._pending.pop_session(req.session_id):
            self._adopt(held.stream_id, req, held.bidirectional)
            if held.chunks or held.ended:
                event = StreamDataReceived(held.stream_id, held.payload(), held.ended)
                self._events.append(event)

    def _session_ended(self, req: RequestStream, code: int, message: str, remote: bool) -> None:
        """The session is over: end its streams with WT_SESSION_GONE and report it once."""
        if req.state is State.CLOSED or req.state is State.DEAD:
            return
        was_requested = req.state is State.REQUESTED
        req.state = State.CLOSED
        if was_requested and not req.fin_sent:
            # The client gave up before we answered: no response can follow (RFC 9114 §4.1.1).
            self._reset(req.session_id, H3ErrorCode.H3_REQUEST_CANCELLED)
            req.fin_sent = True
        elif not req.fin_sent:  # answer a peer's close with our FIN (draft-16 §6)
            self._engine.send_stream_data(req.session_id, b"", end_stream=True)
            req.fin_sent = True
        for stream_id in sorted(req.streams):
            stream = self._wt.pop(stream_id)
            if not stream.send_done:
                self._reset(stream_id, _GONE)
            if not stream.recv_done:
                self._stop(stream_id, _GONE)
        req.streams.clear()
        self._reject_held_session(req.session_id, _GONE)
        self._events.append(SessionClosed(req.session_id, code, message, remote))

    # ---- WebTransport streams ------------------------------------------------------------------

    def _on_wt_stream(
        self, stream_id: int, session_id: int, bidi: bool, rest: bytes, end: bool, now: float
    ) -> None:
        req = self._requests.get(session_id)
        state = req.state if req is not None else None
        if req is not None and state is State.ESTABLISHED:
            self._adopt(stream_id, req, bidi)
            if rest or end:
                self._events.append(StreamDataReceived(stream_id, rest, end))
        elif state in (State.CLOSED, State.DEAD):
            code = _GONE if state is State.CLOSED else _BUFFER_REJECTED
            self._reject_held(stream_id, bidi, len(rest), code)
        elif self._pending.add(stream_id, session_id, bidi, now):
            self._on_stream_data(stream_id, rest, end, now)
        else:
            self._reject_held(stream_id, bidi, len(rest), _BUFFER_REJECTED)

    def _adopt(self, stream_id: int, req: RequestStream, bidi: bool) -> None:
        self._wt[stream_id] = WtStream(req.session_id, bidi, send_done=not bidi)
        req.streams.add(stream_id)
        self._events.append(StreamOpened(req.session_id, stream_id, bidi))

    def _reject_held(self, stream_id: int, bidi: bool, held_bytes: int, code: int) -> None:
        """Refuse a peer WT stream; its bytes so far and later are drained, not delivered."""
        self._stop(stream_id, code)
        if bidi:
            self._reset(stream_id, code)
        self._engine.consume(stream_id, held_bytes)
        self._incoming[stream_id] = Incoming(Kind.IGNORED)

    def _reject_held_session(self, session_id: int, code: int = _BUFFER_REJECTED) -> None:
        for held in self._pending.pop_session(session_id):
            self._reject_held(held.stream_id, held.bidirectional, held.size, code)

    def _on_stream_reset(self, stream_id: int, code: int) -> None:
        stream = self._wt.get(stream_id)
        if stream is not None:
            stream.recv_done = True
            self._events.append(StreamReset(stream_id, _wire.h3_to_wt_error(code), code))
            return
        held = self._pending.pop(stream_id)
        if held is not None:
            self._engine.consume(stream_id, held.size)
            return
        req = self._requests.get(stream_id)
        if req is not None:
            req.recv_done = True
            if req.state is State.SENT:
                req.state = State.DEAD
                self._events.append(SessionRejected(stream_id, 0, f"CONNECT reset (0x{code:x})"))
            else:
                self._session_ended(req, 0, f"CONNECT stream reset (0x{code:x})", remote=True)
            return
        inc = self._incoming.pop(stream_id, None)
        if inc is not None and inc.kind in (Kind.CONTROL, Kind.QPACK):
            raise RemoteProtocolError(
                "peer reset a critical stream", H3ErrorCode.H3_CLOSED_CRITICAL_STREAM
            )

    def _on_stop_sending(self, stream_id: int, code: int) -> None:
        stream = self._wt.get(stream_id)
        if stream is not None:
            self._events.append(StopSendingReceived(stream_id, _wire.h3_to_wt_error(code), code))
        elif stream_id in self._critical_local:
            raise RemoteProtocolError(
                "peer stopped a critical stream", H3ErrorCode.H3_CLOSED_CRITICAL_STREAM
            )

    # ---- public API: sessions ------------------------------------------------------------------

    def connect(self, authority: str, path: str, now: float, *, origin: str | None = None) -> int:
        """Client: start a session; the CONNECT goes out once acceptable SETTINGS arrived.

        Returns the session id (the CONNECT stream id). Outcome: ``SessionEstablished`` or
        ``SessionRejected`` (status 0 when the server's SETTINGS offer no WebTransport).
        """
        if not self._is_client:
            raise LocalProtocolError("connect() is for clients")
        if self._session_id is not None:
            raise LocalProtocolError("one WebTransport session per connection")
        self._check_open()
        session_id = self._engine.get_next_available_stream_id(is_unidirectional=False)
        req = RequestStream(session_id, State.UNSENT, self._config.max_frame_payload)
        req.target = (authority, path, origin)
        self._requests[session_id] = req
        self._session_id = session_id
        if self._peer_settings is not None:
            self._send_connect(req)
        return session_id

    def _send_connect(self, req: RequestStream) -> None:
        assert self._peer_settings is not None and req.target is not None
        protocol = choose_client_protocol(self._peer_settings)
        if protocol is None:
            req.state = State.DEAD
            reason = "server SETTINGS do not offer WebTransport"
            self._events.append(SessionRejected(req.session_id, 0, reason))
            return
        authority, path, origin = req.target
        block = self._codec.encode(req.session_id, build_request(authority, path, protocol, origin))
        self._engine.send_stream_data(req.session_id, _wire.encode_frame(FrameType.HEADERS, block))
        req.state = State.SENT

    def accept_session(self, session_id: int) -> None:
        """Server: answer a ``SessionRequested`` with 200; ``SessionEstablished`` follows."""
        req = self._requested(session_id)
        self._answer(req, 200, fin=False)
        self._establish(req)

    def reject_session(self, session_id: int, status: int) -> None:
        """Server: answer a ``SessionRequested`` with a non-2xx ``status`` and end the stream."""
        if not 300 <= status <= 599:
            raise LocalProtocolError(f"rejection status must be 3xx-5xx, got {status}")
        req = self._requested(session_id)
        self._answer(req, status, fin=True)
        req.state = State.DEAD
        self._session_id = None
        self._reject_held_session(session_id)

    def _requested(self, session_id: int) -> RequestStream:
        self._check_open()
        req = self._requests.get(session_id)
        if self._is_client or req is None or req.state is not State.REQUESTED:
            raise LocalProtocolError(f"no pending session request {session_id}")
        return req

    def close_session(self, session_id: int, error_code: int = 0, message: str = "") -> None:
        """Close the session: close capsule + FIN, streams reset with WT_SESSION_GONE.

        Reports ``SessionClosed(remote=False)``. A no-op when the session is already over.
        """
        req = self._requests.get(session_id)
        if req is None:
            raise LocalProtocolError(f"unknown session {session_id}")
        if self._closed or req.state is not State.ESTABLISHED:
            return
        capsule = _wire.encode_close_session(error_code, message)
        frame = _wire.encode_frame(FrameType.DATA, capsule)
        self._engine.send_stream_data(session_id, frame, end_stream=True)
        req.fin_sent = True
        self._session_ended(req, error_code, message, remote=False)

    # ---- public API: streams -------------------------------------------------------------------

    def open_stream(self, session_id: int, bidirectional: bool = True) -> int:
        """Open a WebTransport stream in an established session (its header is sent now)."""
        self._check_open()
        req = self._requests.get(session_id)
        if req is None or req.state is not State.ESTABLISHED:
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
            stream.send_done = True

    def reset_stream(self, stream_id: int, error_code: int = 0) -> None:
        """RESET_STREAM with WebTransport application code ``error_code`` (mapped to HTTP/3)."""
        stream = self._live_stream(stream_id)
        if not stream.send_done:
            self._reset(stream_id, _wire.wt_to_h3_error(error_code))
            stream.send_done = True

    def stop_sending(self, stream_id: int, error_code: int = 0) -> None:
        """STOP_SENDING with WebTransport application code ``error_code`` (mapped to HTTP/3)."""
        stream = self._live_stream(stream_id)
        if not stream.recv_done:
            self._stop(stream_id, _wire.wt_to_h3_error(error_code))
            stream.recv_done = True

    def consume(self, stream_id: int, n: int) -> None:
        """The application read ``n`` payload bytes of ``stream_id``: return the credit."""
        self._engine.consume(stream_id, n)

    def _live_stream(self, stream_id: int) -> WtStream:
        self._check_open()
        stream = self._wt.get(stream_id)
        if stream is None:
            raise LocalProtocolError(f"stream {stream_id} is not a live WebTransport stream")
        return stream

    def _reset(self, stream_id: int, code: int) -> None:
        try:
            self._engine.reset_stream(stream_id, code)
        except ValueError:
            # The engine already discarded the stream (both directions finished in packets we
            # have not seen the events of yet): there is nothing left to reset.
            pass

    def _stop(self, stream_id: int, code: int) -> None:
        try:
            self._engine.stop_stream(stream_id, code)
        except ValueError:
            pass  # as in _reset: the stream is already gone inside the engine

    def _check_open(self) -> None:
        if self._closed:
            raise LocalProtocolError("the QUIC connection is closed")
