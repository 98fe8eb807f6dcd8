"""The HTTP/3 plumbing under ``WebTransportH3``: our control and QPACK streams, the peer's SETTINGS,
routing of peer-opened streams by their first bytes, and connection errors.

Sources: RFC 9114 §6 (stream types and rules), §7.2 (frames), §8 (errors); RFC 9204 §4.2 (QPACK
streams). What the streams carry above HTTP/3 (CONNECT, WebTransport) is left to the subclass
through the ``_on_*`` hooks at the end.
"""

from __future__ import annotations

from collections import deque

from .. import _wire
from .._errors import EngineError, LocalProtocolError, NeedMoreData, RemoteProtocolError
from ..constants import FrameType, H3ErrorCode, StreamType
from ..engine import base as eng
from .config import H3Config
from .events import ConnectionClosed, SessionEvent
from .headers import HeaderCodec
from .settings import client_settings, server_settings, validate_peer_settings
from .streams import Incoming, Kind


class Http3Base:
    """One connection's HTTP/3 layer: critical streams, SETTINGS, stream routing, errors."""

    def __init__(
        self, engine: eng.QuicEngine, *, is_client: bool, config: H3Config | None = None
    ) -> None:
        self._engine = engine
        self._is_client = is_client
        self._config = config if config is not None else H3Config()
        self._codec = HeaderCodec()
        self._events: deque[SessionEvent] = deque()
        self._incoming: dict[int, Incoming] = {}  # peer streams that are not WT streams
        self._peer_settings: dict[int, int] | None = None
        self._settings_deadline: float | None = None
        self._local_decoder_stream: int | None = None
        self._critical_local: set[int] = set()  # our control and QPACK streams
        self._seen_uni: set[int] = set()  # peer's control / QPACK stream types already opened
        self._closed = False  # no more input is processed (connection error or terminated)
        self._terminated = False  # the engine reported ConnectionTerminated

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
        """The peer's SETTINGS once received (a copy, for logs and tests)."""
        return None if self._peer_settings is None else dict(self._peer_settings)

    def next_event(self) -> SessionEvent | None:
        """Pop the oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    def _settings_overdue(self, now: float) -> bool:
        deadline = self._settings_deadline
        return self._peer_settings is None and deadline is not None and now >= deadline

    def _connection_error(self, code: int, reason: str) -> None:
        """Close the QUIC connection with an HTTP/3 error code (RFC 9114 §8)."""
        self._engine.close(code, reason)
        self._closed = True
        self._events.append(ConnectionClosed(code, reason, False))

    def _check_open(self) -> None:
        if self._closed:
            raise LocalProtocolError("the QUIC connection is closed")

    def _is_local(self, stream_id: int) -> bool:
        return (stream_id & 1) == (0 if self._is_client else 1)

    def _reset(self, stream_id: int, code: int) -> None:
        try:
            self._engine.reset_stream(stream_id, code)
        except (ValueError, EngineError):  # the adapters wrap library ValueErrors as EngineError
            # The engine already discarded the stream (both directions finished in packets we
            # have not seen the events of yet): there is nothing left to reset.
            pass

    def _stop(self, stream_id: int, code: int) -> None:
        try:
            self._engine.stop_stream(stream_id, code)
        except (ValueError, EngineError):
            pass  # as in _reset: the stream is already gone inside the engine

    # ---- peer streams that are not WebTransport streams ----------------------------------------

    def _on_incoming_data(self, stream_id: int, data: bytes, end: bool, now: float) -> None:
        """Bytes of a peer stream that is still being typed, or is control/QPACK/ignored."""
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

    def _ignore_stream(self, stream_id: int) -> None:
        """Drain whatever else arrives on ``stream_id`` without delivering it."""
        self._incoming[stream_id] = Incoming(Kind.IGNORED)

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
            _wire.check_session_id(session_id)  # StreamIdError: H3_ID_ERROR
            self._engine.consume(stream_id, offset)  # header bytes are ours, payload the app's
            is_bidi = inc.kind is Kind.BIDI_HEADER
            self._on_wt_stream(stream_id, session_id, is_bidi, buf[offset:], end, now)
        elif inc.kind is Kind.BIDI_HEADER:
            del self._incoming[stream_id]
            if self._is_client:  # server-initiated bidi streams exist only for WebTransport
                raise RemoteProtocolError(
                    f"server bidi stream {stream_id} is not a WebTransport stream",
                    H3ErrorCode.H3_STREAM_CREATION_ERROR,
                )
            self._on_request_stream(stream_id, buf, end)
        else:
            self._on_uni_stream_type(stream_id, inc, stream_type)
            self._engine.consume(stream_id, offset)
            rest = buf[offset:]
            if inc.kind is Kind.CONTROL:
                self._on_control_data(stream_id, inc, rest, end)
            elif rest or end:
                self._on_incoming_data(stream_id, rest, end, now)

    def _on_uni_stream_type(self, stream_id: int, inc: Incoming, stream_type: int) -> None:
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
            code = H3ErrorCode.H3_STREAM_CREATION_ERROR
            if self._is_client:
                code = H3ErrorCode.H3_ID_ERROR
            raise RemoteProtocolError("unexpected push stream", code)
        else:  # unknown or GREASE stream types must be ignored (RFC 9114 §6.2.3)
            inc.kind = Kind.IGNORED
            self._stop(stream_id, H3ErrorCode.H3_STREAM_CREATION_ERROR)

    def _check_critical_reset(self, stream_id: int) -> None:
        """A reset peer stream that is not a WebTransport or request stream."""
        inc = self._incoming.pop(stream_id, None)
        if inc is not None and inc.kind in (Kind.CONTROL, Kind.QPACK):
            raise RemoteProtocolError(
                "peer reset a critical stream", H3ErrorCode.H3_CLOSED_CRITICAL_STREAM
            )

    def _check_critical_stop(self, stream_id: int) -> None:
        if stream_id in self._critical_local:
            raise RemoteProtocolError(
                "peer stopped a critical stream", H3ErrorCode.H3_CLOSED_CRITICAL_STREAM
            )

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
            or frame_type == FrameType.PUSH_PROMISE
            or (frame_type == FrameType.MAX_PUSH_ID and self._is_client)
        )
        if unexpected:
            raise RemoteProtocolError(
                f"frame 0x{frame_type:x} on the control stream", H3ErrorCode.H3_FRAME_UNEXPECTED
            )
        if frame_type == FrameType.GOAWAY:
            self._on_goaway()
        # CANCEL_PUSH, MAX_PUSH_ID (server side): nothing to do. _wire.FrameReader skips unknown
        # and GREASE types and refuses HTTP/2-only ones and 0x41 (H3_FRAME_UNEXPECTED/_ERROR).

    # ---- hooks for the layer above -------------------------------------------------------------

    def _on_peer_settings(self) -> None:
        """The peer's SETTINGS arrived and are valid."""
        raise NotImplementedError

    def _on_goaway(self) -> None:
        """The peer sent GOAWAY on its control stream."""
        raise NotImplementedError

    def _on_request_stream(self, stream_id: int, data: bytes, end: bool) -> None:
        """Server: a client bidi stream that is not a WebTransport stream (an HTTP request)."""
        raise NotImplementedError

    def _on_wt_stream(
        self, stream_id: int, session_id: int, bidi: bool, rest: bytes, end: bool, now: float
    ) -> None:
        """A peer WebTransport stream whose header is parsed (and consumed); ``rest`` is payload."""
        raise NotImplementedError
