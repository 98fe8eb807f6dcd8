"""Per-stream bookkeeping of ``WebTransportH3`` (plain records; the logic is in connection.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .. import _wire


class Kind(enum.Enum):
    """What a peer-opened, non-WebTransport stream turned out to be."""

    UNI_HEADER = enum.auto()  # uni stream, type not read yet
    BIDI_HEADER = enum.auto()  # bidi stream, first varint not read yet
    CONTROL = enum.auto()
    QPACK = enum.auto()  # encoder or decoder stream: nothing to do with capacity 0
    IGNORED = enum.auto()  # unknown type or rejected stream: drained, never delivered


class State(enum.Enum):
    """The life of a CONNECT (request) stream, i.e. of a session."""

    UNSENT = enum.auto()  # client: waiting for the server's SETTINGS
    SENT = enum.auto()  # client: CONNECT sent, no final response yet
    HEADERS = enum.auto()  # server: waiting for the request HEADERS
    REQUESTED = enum.auto()  # server: SessionRequested reported, waiting for accept/reject
    ESTABLISHED = enum.auto()
    CLOSED = enum.auto()  # the session ended (SessionClosed reported)
    DEAD = enum.auto()  # never became a session (rejected, malformed, cancelled)


@dataclass(slots=True)
class Incoming:
    """A peer stream that is not (or not yet known to be) a WebTransport stream."""

    kind: Kind
    buf: bytes = b""  # header bytes gathered so far
    reader: _wire.FrameReader | None = None  # control stream frames


@dataclass(slots=True)
class WtStream:
    """A live WebTransport stream (either side opened it)."""

    session_id: int
    bidirectional: bool
    send_done: bool = False  # FIN or RESET_STREAM sent (or a peer uni stream)
    recv_done: bool = False  # FIN or reset received, STOP_SENDING sent (or our own uni stream)
    stopped: bool = False  # we sent STOP_SENDING and the peer has not ended its side yet
    peer_stopped: bool = False  # the peer sent STOP_SENDING (our engine resets our side itself)


@dataclass(slots=True, eq=False)
class RequestStream:
    """A request stream: the CONNECT of a session; its id is the session id."""

    session_id: int
    state: State
    max_frame_payload: int
    frames: _wire.FrameReader = field(init=False)
    capsules: _wire.CapsuleReader = field(init=False)
    streams: set[int] = field(default_factory=set)  # live WT streams of this session
    held: list[tuple[bytes, bool]] = field(default_factory=list)  # before the peer's SETTINGS
    held_bytes: int = 0
    target: tuple[str, str, str | None] | None = None  # client: (authority, path, origin)
    fin_sent: bool = False
    recv_done: bool = False
    draining: bool = False

    def __post_init__(self) -> None:
        self.frames = _wire.FrameReader(max_payload=self.max_frame_payload)
        self.capsules = _wire.CapsuleReader(max_capsule=self.max_frame_payload)
