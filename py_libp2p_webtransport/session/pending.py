"""WebTransport streams that arrived before their session was established.

A peer may open a stream right after sending CONNECT, and packets reorder, so a stream header can
name a session we have not seen (or not yet accepted). Such streams are held here, bounded in
count, bytes and time (webtransport-go ``ReorderingTimeout``, 5 s; requirements checklist §D 23),
and either handed over once the session is established or rejected with
WT_BUFFERED_STREAM_REJECTED.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PendingStream:
    """One held stream: its payload so far (header already stripped) and whether it ended."""

    stream_id: int
    session_id: int
    bidirectional: bool
    deadline: float
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    ended: bool = False

    def payload(self) -> bytes:
        """Everything held, joined once (the slow path: only for reordered streams)."""
        return b"".join(self.chunks)


class PendingStreams:
    """The per-connection table of held streams, in arrival order."""

    def __init__(self, timeout: float, max_streams: int, max_bytes: int) -> None:
        self._timeout = timeout
        self._max_streams = max_streams
        self._max_bytes = max_bytes
        self._streams: dict[int, PendingStream] = {}
        self.total_bytes = 0

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, stream_id: int, session_id: int, bidirectional: bool, now: float) -> bool:
        """Start holding a stream; False (nothing held) when the count limit is reached."""
        if len(self._streams) >= self._max_streams:
            return False
        self._streams[stream_id] = PendingStream(
            stream_id, session_id, bidirectional, now + self._timeout
        )
        return True

    def append(self, stream_id: int, data: bytes, end_stream: bool) -> bool:
        """Hold more payload; False when the byte limit would be exceeded (caller rejects)."""
        stream = self._streams[stream_id]
        if self.total_bytes + len(data) > self._max_bytes:
            return False
        if data:
            stream.chunks.append(data)
            stream.size += len(data)
            self.total_bytes += len(data)
        stream.ended = stream.ended or end_stream
        return True

    def pop(self, stream_id: int) -> PendingStream | None:
        """Stop holding a stream (handed over, reset or rejected)."""
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self.total_bytes -= stream.size
        return stream

    def pop_session(self, session_id: int) -> list[PendingStream]:
        """Stop holding, and return in arrival order, every stream of ``session_id``."""
        ids = [s.stream_id for s in self._streams.values() if s.session_id == session_id]
        return [s for s in (self.pop(i) for i in ids) if s is not None]

    def pop_expired(self, now: float) -> list[PendingStream]:
        """Stop holding, and return, every stream whose deadline has passed."""
        ids = [s.stream_id for s in self._streams.values() if s.deadline <= now]
        return [s for s in (self.pop(i) for i in ids) if s is not None]

    def next_deadline(self) -> float | None:
        """The earliest deadline (the timeout is fixed, so the oldest stream's)."""
        for stream in self._streams.values():
            return stream.deadline
        return None
