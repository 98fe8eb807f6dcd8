"""Events the session layer reports (pull them with ``WebTransportH3.next_event()``).

Past-tense nouns, frozen, slotted: the same style as ``engine/base.py``. Stream events carry the
QUIC stream id; the trio layer maps it to its stream object.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionRequested:
    """Server: a valid extended CONNECT arrived; answer with ``accept_session``/``reject_session``.

    ``protocol`` is the ``:protocol`` token (``webtransport`` for draft-02 clients such as
    Chromium, ``webtransport-h3`` for draft-15+ clients such as webtransport-go v0.11).
    ``headers`` holds every decoded field, pseudo-headers included, in arrival order.
    """

    session_id: int
    authority: str
    path: str
    protocol: str
    origin: str | None
    headers: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """The session is open: client got a 2xx, or the server called ``accept_session``."""

    session_id: int


@dataclass(frozen=True, slots=True)
class SessionRejected:
    """Client: the session did not open.

    ``status`` is the HTTP status of a non-2xx answer, or 0 when the server's SETTINGS do not
    offer WebTransport (the CONNECT is then never sent).
    """

    session_id: int
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened a WebTransport stream of an established session (its header is parsed)."""

    session_id: int
    stream_id: int
    bidirectional: bool


@dataclass(frozen=True, slots=True)
class StreamDataReceived:
    """Payload bytes of a WebTransport stream (stream headers already stripped).

    The application must call ``WebTransportH3.consume(stream_id, len(data))`` once it has read
    them, so that flow-control credit returns to the peer.
    """

    stream_id: int
    data: bytes
    end_stream: bool


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer reset a WebTransport stream.

    ``error_code`` is the WebTransport application code, or ``None`` when ``raw_code`` lies
    outside the WebTransport range (e.g. a plain HTTP/3 code such as WT_SESSION_GONE).
    """

    stream_id: int
    error_code: int | None
    raw_code: int


@dataclass(frozen=True, slots=True)
class StopSendingReceived:
    """The peer sent STOP_SENDING on a WebTransport stream; codes as in ``StreamReset``."""

    stream_id: int
    error_code: int | None
    raw_code: int


@dataclass(frozen=True, slots=True)
class StreamStalled:
    """The stall breaker aborted a WebTransport stream (``stall.StallWatch``).

    Its ``unread`` bytes held the connection's reception paused for ``H3Config.stall_timeout``
    with nothing consumed. The session already sent STOP_SENDING and RESET_STREAM with
    ``error_code`` (a WebTransport code, RECEIVE_STALL_ERROR) as far as each direction was still
    open; the application must drop, and ``consume``, what it buffered for the stream.
    """

    stream_id: int
    error_code: int
    unread: int


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session ended: close capsule, FIN or reset on the CONNECT stream, or a local close.

    ``remote`` is False when ``close_session`` was called locally. Every stream of the session
    is gone (we reset/stopped them with WT_SESSION_GONE).
    """

    session_id: int
    error_code: int
    message: str
    remote: bool


@dataclass(frozen=True, slots=True)
class SessionDraining:
    """The peer asked to wind the session down (DRAIN_WEBTRANSPORT_SESSION or GOAWAY)."""

    session_id: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The QUIC connection is over; ``error_code`` is the QUIC/HTTP/3 code."""

    error_code: int
    reason: str
    remote: bool


SessionEvent = (
    SessionRequested
    | SessionEstablished
    | SessionRejected
    | StreamOpened
    | StreamDataReceived
    | StreamReset
    | StopSendingReceived
    | StreamStalled
    | SessionClosed
    | SessionDraining
    | ConnectionClosed
)
