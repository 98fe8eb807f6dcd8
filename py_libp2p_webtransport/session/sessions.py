"""The session half of ``WebTransportH3``: request (CONNECT) streams, both roles.

Server: validate an extended CONNECT once the client's SETTINGS arrived, answer 404/400/429 (and
malformed requests) itself, otherwise report ``SessionRequested`` and answer 200 on
``accept_session``. Client: send the CONNECT once the server's SETTINGS offer WebTransport, with the
``:protocol`` they call for. Both: capsules on the CONNECT stream (close, drain), and the end of
the session. What happens to the session's streams is left to the subclass (hooks at the end).
Sources: RFC 9114 §4, RFC 9220, RFC 9297, draft-ietf-webtrans-http3 02/15/16, checklist §D, §E, §G.
"""

from __future__ import annotations

from .. import _wire
from .._errors import EngineError, LocalProtocolError, MessageError, RemoteProtocolError
from ..constants import CapsuleType, FrameType, H3ErrorCode
from ..engine import base as eng
from .config import H3Config
from .events import (
    SessionClosed,
    SessionDraining,
    SessionEstablished,
    SessionRejected,
    SessionRequested,
)
from .headers import (
    build_request,
    build_response,
    parse_request,
    parse_response,
    request_status,
)
from .http3 import Http3Base
from .settings import choose_client_protocol
from .streams import RequestStream, State

BUFFER_REJECTED = H3ErrorCode.WT_BUFFERED_STREAM_REJECTED
_OVER = frozenset({State.DEAD})
# Frame types only the control stream may carry (RFC 9114 §7.2). HTTP/2-only types and a 0x41
# signal inside a stream are refused by _wire.FrameReader itself.
_CONTROL_ONLY_FRAMES = frozenset(
    {FrameType.CANCEL_PUSH, FrameType.SETTINGS, FrameType.GOAWAY, FrameType.MAX_PUSH_ID}
)


class SessionHandling(Http3Base):
    """CONNECT streams and the one WebTransport session of a connection."""

    def __init__(
        self, engine: eng.QuicEngine, *, is_client: bool, config: H3Config | None = None
    ) -> None:
        super().__init__(engine, is_client=is_client, config=config)
        self._requests: dict[int, RequestStream] = {}  # CONNECT streams, by session id
        self._session_id: int | None = None  # the one session of this connection

    # ---- HTTP/3 hooks --------------------------------------------------------------------------

    def _on_goaway(self) -> None:
        req = self._session()
        if req is not None and req.state is State.ESTABLISHED and not req.draining:
            req.draining = True
            self._events.append(SessionDraining(req.session_id))

    def _on_request_stream(self, stream_id: int, data: bytes, end: bool) -> None:
        req = RequestStream(stream_id, State.HEADERS, self._config.max_frame_payload)
        self._requests[stream_id] = req
        self._on_request_data(req, data, end)

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
                self._engine.consume(req.session_id, req.held_bytes)
                req.held.clear()
            return
        self._feed_request(req, data, end)

    def _feed_request(self, req: RequestStream, data: bytes, end: bool) -> None:
        stream_id = req.session_id
        if req.state is State.DEAD:
            self._engine.consume(stream_id, len(data))
            if end:
                req.recv_done = True
                self._drop_if_finished(req)
            return
        for frame_type, payload in req.frames.feed(data):
            if frame_type == FrameType.DATA:
                self._on_request_body(req, payload)
            elif frame_type == FrameType.HEADERS:
                self._on_request_headers(req, payload)
            elif frame_type in _CONTROL_ONLY_FRAMES:
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
            self._drop_if_finished(req)

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
            self._give_up(req)
            self._events.append(SessionRejected(req.session_id, status, f"HTTP status {status}"))
            return
        self._establish(req)

    def _on_request_body(self, req: RequestStream, chunk: bytes) -> None:
        """DATA on the CONNECT stream carries capsules (RFC 9297)."""
        if req.state not in (State.REQUESTED, State.ESTABLISHED):
            return
        try:
            for capsule_type, value in req.capsules.feed(chunk):
                if capsule_type == CapsuleType.CLOSE_WEBTRANSPORT_SESSION:
                    code, message = _wire.decode_close_session(value)
                    self._session_ended(req, code, message, remote=True)
                    return
                if capsule_type == CapsuleType.DRAIN_WEBTRANSPORT_SESSION and not req.draining:
                    req.draining = True
                    self._events.append(SessionDraining(req.session_id))
        except RemoteProtocolError as exc:
            # A malformed capsule is a stream error on the CONNECT stream (RFC 9297 §3.3),
            # which ends the session; the QUIC connection lives on.
            self._reset(req.session_id, H3ErrorCode.H3_MESSAGE_ERROR)
            self._stop(req.session_id, H3ErrorCode.H3_MESSAGE_ERROR)
            req.fin_sent = req.recv_done = True
            self._session_ended(req, 0, f"malformed capsule: {exc}", remote=True)

    def _on_request_fin(self, req: RequestStream) -> None:
        req.recv_done = True
        if req.state in (State.REQUESTED, State.ESTABLISHED):
            self._session_ended(req, 0, "", remote=True)  # FIN = session closed (draft §5)
        elif req.state is State.SENT:
            self._give_up(req)
            self._events.append(
                SessionRejected(req.session_id, 0, "stream ended without a response")
            )
        elif req.state is State.HEADERS:  # ended before its HEADERS (RFC 9114 §4.1)
            self._abort_request(req, H3ErrorCode.H3_REQUEST_INCOMPLETE)

    def _on_request_reset(self, req: RequestStream, code: int) -> None:
        req.recv_done = True
        if req.state is State.SENT:
            self._give_up(req)
            reason = f"CONNECT reset (0x{code:x})"
            self._events.append(SessionRejected(req.session_id, 0, reason))
        else:
            self._session_ended(req, 0, f"CONNECT stream reset (0x{code:x})", remote=True)
        self._drop_if_finished(req)

    def _give_up(self, req: RequestStream) -> None:
        """Client: the session did not open; finish our side of the CONNECT stream."""
        req.state = State.DEAD
        if not req.fin_sent:
            self._engine.send_stream_data(req.session_id, b"", end_stream=True)
            req.fin_sent = True
        self._reject_held_session(req.session_id)
        self._end_streams(req)  # streams we opened early, right after the CONNECT

    def _drop_if_finished(self, req: RequestStream) -> None:
        """Forget a request stream that never became the session once both sides ended it,
        so a peer cannot grow our tables with refused requests."""
        if req.state is State.DEAD and req.fin_sent and req.session_id != self._session_id:
            del self._requests[req.session_id]

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
        self._adopt_held(req)

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
            try:
                self._engine.send_stream_data(req.session_id, b"", end_stream=True)
            except EngineError:
                # The peer closed the QUIC connection in the same flight as the capsule
                # (Firefox does): qh3 refuses to send on a closed connection; nothing to answer.
                pass
            req.fin_sent = True
        self._end_streams(req)
        self._events.append(SessionClosed(req.session_id, code, message, remote))

    # ---- public API ----------------------------------------------------------------------------

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
        """Server: answer a ``SessionRequested`` with 200; ``SessionEstablished`` follows.

        A no-op when the client gave up first or the connection is gone (``SessionClosed`` /
        ``ConnectionClosed`` is reported instead).
        """
        req = self._requested(session_id)
        if req is not None:
            self._answer(req, 200, fin=False)
            self._establish(req)

    def reject_session(self, session_id: int, status: int) -> None:
        """Server: answer a ``SessionRequested`` with a non-2xx ``status`` and end the stream.

        A no-op, like ``accept_session``, when the request is already gone.
        """
        if not 300 <= status <= 599:
            raise LocalProtocolError(f"rejection status must be 3xx-5xx, got {status}")
        req = self._requested(session_id)
        if req is not None:
            self._answer(req, status, fin=True)
            req.state = State.DEAD
            self._session_id = None
            self._reject_held_session(session_id)

    def _requested(self, session_id: int) -> RequestStream | None:
        req = self._requests.get(session_id)
        if self._is_client or req is None or req.state in (State.ESTABLISHED, State.DEAD):
            raise LocalProtocolError(f"no pending session request {session_id}")
        if self._closed or req.state is State.CLOSED:
            return None  # the peer or the connection ended it first: nothing to answer
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

    # ---- hooks for the stream layer ------------------------------------------------------------

    def _adopt_held(self, req: RequestStream) -> None:
        """The session is established: hand over the streams held for it."""
        raise NotImplementedError

    def _end_streams(self, req: RequestStream) -> None:
        """The session ended: end its streams (WT_SESSION_GONE) and refuse held ones."""
        raise NotImplementedError

    def _reject_held_session(self, session_id: int, code: int = BUFFER_REJECTED) -> None:
        """Refuse every stream held for ``session_id``."""
        raise NotImplementedError
