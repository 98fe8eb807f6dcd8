"""The state table of ``WebTransportStream`` (``stream.py``): one state per direction, what
``read`` and ``write`` raise in each, and where every event and operation leads.

Data only, so the rules can be read (and tested, ``tests/libp2p/test_stream_states.py``) in one
place: py-libp2p's streams distinguish ``StreamEnded`` (clean FIN), ``MuxedStreamReset`` (the peer
aborted, the connection was lost, the stall breaker aborted the stream) and ``MuxedStreamClosed``
(our own ``close``/``close_read``/``reset``), as h11 and h2 keep their rules in tables.
"""

from __future__ import annotations

import enum

from libp2p.stream_muxer.exceptions import MuxedStreamClosed, MuxedStreamReset

from .errors import StreamEnded


class ReadState(enum.Enum):
    """Where the receiving direction stands (the value is what ``describe()`` shows)."""

    OPEN = "open"  # bytes may arrive; buffered ones are readable
    FIN_RECEIVED = "fin-received"  # the peer finished: buffered bytes, then StreamEnded
    RESET_BY_PEER = "reset-by-peer"  # the peer's RESET_STREAM aborts the stream: writes fail too
    CLOSED = "closed"  # our close_read()
    RESET = "reset"  # our reset()
    STALLED = "stalled"  # the session's stall breaker aborted the stream (session/stall.py)
    CONNECTION_LOST = "connection-lost"  # the session or the QUIC connection ended
    # Lost after the peer's FIN: every byte had arrived, so the buffered ones stay readable and
    # then the end of stream; after close_read()/reset() (the swarm resets a dead connection's
    # streams) a reader learns of the loss.
    LOST_AFTER_FIN = "lost-after-fin"


class WriteState(enum.Enum):
    """Where the sending direction stands."""

    OPEN = "open"
    FIN_SENT = "fin-sent"  # our close(): FIN sent, unless the stream was already aborted
    STOPPED_BY_PEER = "stopped-by-peer"  # the peer's STOP_SENDING
    RESET = "reset"  # our reset()
    STALLED = "stalled"
    CONNECTION_LOST = "connection-lost"


# What ``read`` raises in each state once nothing is buffered (None: it waits for data).
READ_ERRORS: dict[ReadState, type[Exception] | None] = {
    ReadState.OPEN: None,
    ReadState.FIN_RECEIVED: StreamEnded,
    ReadState.LOST_AFTER_FIN: StreamEnded,
    ReadState.RESET_BY_PEER: MuxedStreamReset,
    ReadState.CLOSED: MuxedStreamClosed,
    ReadState.RESET: MuxedStreamClosed,
    ReadState.STALLED: MuxedStreamReset,
    ReadState.CONNECTION_LOST: MuxedStreamReset,
}
# What ``write`` raises in each state (None: it writes), unless the peer reset the stream
# (``ReadState.RESET_BY_PEER``): then it raises MuxedStreamReset whatever this says.
WRITE_ERRORS: dict[WriteState, type[Exception] | None] = {
    WriteState.OPEN: None,
    WriteState.FIN_SENT: MuxedStreamClosed,
    WriteState.STOPPED_BY_PEER: MuxedStreamReset,
    WriteState.RESET: MuxedStreamClosed,
    WriteState.STALLED: MuxedStreamReset,
    WriteState.CONNECTION_LOST: MuxedStreamReset,
}

# Transitions: from-state -> to-state; a state missing from a table stays as it is.
_R, _W = ReadState, WriteState
ON_PEER_RESET = {
    _R.OPEN: _R.RESET_BY_PEER,
    _R.FIN_RECEIVED: _R.RESET_BY_PEER,
    _R.CLOSED: _R.RESET_BY_PEER,
}
ON_PEER_STOP = {_W.OPEN: _W.STOPPED_BY_PEER, _W.FIN_SENT: _W.STOPPED_BY_PEER}
ON_STALL_READ = {_R.OPEN: _R.STALLED, _R.FIN_RECEIVED: _R.STALLED, _R.CLOSED: _R.STALLED}
ON_STALL_WRITE = {_W.OPEN: _W.STALLED, _W.FIN_SENT: _W.STALLED}
ON_LOST_READ = {
    _R.OPEN: _R.CONNECTION_LOST,
    _R.CLOSED: _R.CONNECTION_LOST,
    _R.FIN_RECEIVED: _R.LOST_AFTER_FIN,
}
ON_LOST_WRITE = {_W.OPEN: _W.CONNECTION_LOST}
CLOSE_WRITE = {_W.OPEN: _W.FIN_SENT, _W.CONNECTION_LOST: _W.FIN_SENT}
CLOSE_READ = {
    _R.OPEN: _R.CLOSED,
    _R.FIN_RECEIVED: _R.CLOSED,
    _R.LOST_AFTER_FIN: _R.CONNECTION_LOST,
}
RESET_READ = {
    _R.OPEN: _R.RESET,
    _R.FIN_RECEIVED: _R.RESET,
    _R.CLOSED: _R.RESET,
    _R.LOST_AFTER_FIN: _R.CONNECTION_LOST,
}
RESET_WRITE = {_W.OPEN: _W.RESET, _W.FIN_SENT: _W.RESET, _W.CONNECTION_LOST: _W.RESET}
